//! The ATT&CK matrix as a heatmap: a column per tactic, a cell per IaaS technique, sub-
//! techniques folded under their technique (`<details>`, no script). For a cloud organization
//! a cell's colour is how many of its accounts cover the technique; for one account it is the
//! quality of the best active detection. A technique whose coverage could not be read is drawn
//! hatched and says so in words: unknown is not uncovered.

use askama::Template;
use canopy_coverage::account::{TechniqueCoverage, TechniqueStatus, account_coverage};
use canopy_coverage::organization::OrganizationCoverage;
use canopy_detection::catalog::{Catalog, Technique};
use canopy_detection::mapping::Value;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Request, Response, handler};
use std::collections::HashMap;

use super::account_coverage::{Membership, estate, membership};
use super::accounts::name_of;
use super::cloud_orgs::{Head, Opened, head, opened};
use crate::ConsoleState;
use crate::chrome::Chrome;
use crate::error::{Failure, page};

/// One technique's cell.
pub(super) struct Cell {
    id: String,
    name: String,
    /// `0` (none) to `5` (every account, or significant): the colour band.
    band: u8,
    /// Coverage could not be read (in some accounts): drawn hatched.
    hatched: bool,
    /// The cell in words, for the page and for screen readers.
    words: String,
    subs: Vec<Cell>,
}

/// One tactic's column.
pub(super) struct Column {
    name: String,
    cells: Vec<Cell>,
}

/// What one colour of the grid means.
pub(super) struct Swatch {
    class: &'static str,
    label: &'static str,
}

const ORGANIZATION_LEGEND: &[(&str, &str)] = &[
    ("heat-0", "in no account"),
    ("heat-1", "in under a quarter"),
    ("heat-2", "under half"),
    ("heat-3", "under three quarters"),
    ("heat-4", "most"),
    ("heat-5", "every account"),
    ("heat-unknown", "unknown in some"),
];

const ACCOUNT_LEGEND: &[(&str, &str)] = &[
    ("heat-0", "not covered"),
    ("heat-1", "only by degraded detections"),
    ("heat-2", "minimal"),
    ("heat-3", "partial"),
    ("heat-5", "significant"),
    ("heat-unknown", "unknown (a source could not be read)"),
];

fn legend(of: &[(&'static str, &'static str)]) -> Vec<Swatch> {
    of.iter()
        .map(|&(class, label)| Swatch { class, label })
        .collect()
}

#[derive(Template)]
#[template(path = "cloud_orgs/matrix.html")]
struct MatrixPage {
    chrome: Chrome,
    slug: String,
    head: Head,
    accounts: u32,
    columns: Vec<Column>,
    legend: Vec<Swatch>,
    version: String,
}

#[derive(Template)]
#[template(path = "accounts/matrix.html")]
struct AccountMatrixPage {
    chrome: Chrome,
    slug: String,
    id: String,
    name: String,
    key: String,
    columns: Vec<Column>,
    legend: Vec<Swatch>,
    version: String,
    membership: Option<Membership>,
}

/// The band of `covered` of `accounts`: none, then quarters, then all.
fn band(covered: u32, accounts: u32) -> u8 {
    match (covered, accounts) {
        (0, _) | (_, 0) => 0,
        (c, a) if c >= a => 5,
        (c, a) => 1 + (4 * c / a).min(3) as u8,
    }
}

/// Per technique of the view: (accounts covering it, accounts where it is unknown).
fn counts(view: &OrganizationCoverage) -> HashMap<&str, (u32, u32)> {
    let accounts = u32::try_from(view.accounts.len()).unwrap_or(u32::MAX);
    let mut lacking: HashMap<&str, u32> = HashMap::new();
    for g in &view.gaps {
        lacking.insert(g.technique.as_str(), g.accounts_lacking);
    }
    let mut unknown: HashMap<&str, u32> = HashMap::new();
    for u in &view.unknown {
        unknown.insert(u.technique.as_str(), u.accounts);
    }
    let mut out = HashMap::new();
    for id in view
        .in_every
        .iter()
        .chain(&view.in_some)
        .chain(&view.in_none)
        .map(String::as_str)
        .chain(lacking.keys().copied())
        .chain(unknown.keys().copied())
    {
        let (l, u) = (
            lacking.get(id).copied().unwrap_or(0),
            unknown.get(id).copied().unwrap_or(0),
        );
        out.insert(id, (accounts.saturating_sub(l + u), u));
    }
    out
}

/// A technique's band, hatch and words, however the grid colours it.
type Paint<'a> = dyn Fn(&Technique) -> (u8, bool, String) + 'a;

fn cell(t: &Technique, catalog: &Catalog, paint: &Paint) -> Cell {
    let (band, hatched, words) = paint(t);
    Cell {
        id: t.id.clone(),
        name: t.name.clone(),
        band,
        hatched,
        words,
        subs: catalog
            .sub_techniques(&t.id)
            .filter(|s| s.iaas)
            .map(|s| cell(s, catalog, paint))
            .collect(),
    }
}

/// The IaaS matrix, every cell painted by `paint`.
fn grid(catalog: &Catalog, paint: &Paint) -> Vec<Column> {
    catalog
        .tactics()
        .iter()
        .map(|tactic| Column {
            name: tactic.name.clone(),
            cells: catalog
                .under_tactic(&tactic.shortname)
                .filter(|t| t.iaas || catalog.sub_techniques(&t.id).any(|s| s.iaas))
                .map(|t| cell(t, catalog, paint))
                .collect(),
        })
        .filter(|c| !c.cells.is_empty())
        .collect()
}

/// The matrix over a cloud organization's `view`: how many accounts cover each technique.
pub(super) fn columns(view: &OrganizationCoverage, catalog: &Catalog) -> Vec<Column> {
    let accounts = u32::try_from(view.accounts.len()).unwrap_or(u32::MAX);
    let counts = counts(view);
    grid(catalog, &|t| {
        let (covered, unknown) = counts.get(t.id.as_str()).copied().unwrap_or((0, 0));
        let mut words = format!("covered in {covered} of {accounts}");
        if unknown > 0 {
            words.push_str(&format!(", unknown in {unknown}"));
        }
        (band(covered, accounts), unknown > 0, words)
    })
}

/// One account's technique: its band by quality, whether unknown, and in words (which
/// detections, own or inherited, cover it).
fn account_paint(t: Option<&TechniqueCoverage>) -> (u8, bool, String) {
    let Some(t) = t else {
        return (0, false, "not covered".into());
    };
    let by = match (t.by_own, t.by_inherited) {
        (true, true) => " · own and inherited",
        (true, false) => " · own",
        (false, true) => " · inherited",
        (false, false) => "",
    };
    match t.status {
        TechniqueStatus::Uncovered => (0, false, "not covered".into()),
        TechniqueStatus::Unknown => (0, true, "unknown: a source could not be read".into()),
        TechniqueStatus::Degraded => (1, false, "only degraded detections".into()),
        TechniqueStatus::Covered => {
            let (band, quality) = match t.quality {
                Some(Value::Significant) => (5, "significant"),
                Some(Value::Partial) => (3, "partial"),
                _ => (2, "minimal"),
            };
            (band, false, format!("{quality}{by}"))
        }
    }
}

/// `GET /org/{slug}/settings/accounts/{id}/matrix`: one account's matrix, by quality.
#[handler]
pub async fn account_matrix(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let (chrome, access, account, effective) = estate(&state, req, &slug, &id).await?;
    let catalog = Catalog::embedded();
    let coverage = account_coverage(catalog, &effective);
    let membership = membership(&state, &access, &account).await?;
    let by_id: HashMap<&str, &TechniqueCoverage> = coverage
        .techniques
        .iter()
        .map(|t| (t.technique.as_str(), t))
        .collect();
    Ok(page(
        StatusCode::OK,
        &AccountMatrixPage {
            chrome,
            slug: access.organization().slug.as_str().to_string(),
            id: account.id.to_string(),
            name: name_of(&account),
            key: account.identity.account_key().to_string(),
            columns: grid(catalog, &|t| {
                account_paint(by_id.get(t.id.as_str()).copied())
            }),
            legend: legend(ACCOUNT_LEGEND),
            version: catalog.version().to_string(),
            membership,
        },
    ))
}

/// `GET /org/{slug}/cloud-organizations/{id}/matrix`.
#[handler]
pub async fn show(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let Opened {
        chrome,
        access,
        cloud_org,
        view,
    } = opened(&state, req, &slug, &id).await?;
    let catalog = Catalog::embedded();
    let now = state.tenancy.clock().now();
    Ok(page(
        StatusCode::OK,
        &MatrixPage {
            chrome,
            slug: access.organization().slug.as_str().to_string(),
            head: head(&cloud_org, now),
            accounts: u32::try_from(view.accounts.len()).unwrap_or(u32::MAX),
            columns: columns(&view, catalog),
            legend: legend(ORGANIZATION_LEGEND),
            version: catalog.version().to_string(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn bands_are_none_quarters_and_all() {
        assert_eq!(band(0, 9), 0);
        assert_eq!(band(1, 9), 1);
        assert_eq!(band(3, 9), 2);
        assert_eq!(band(5, 9), 3);
        assert_eq!(band(8, 9), 4);
        assert_eq!(band(9, 9), 5);
        assert_eq!(band(0, 0), 0);
    }

    fn technique(status: TechniqueStatus, quality: Option<Value>) -> TechniqueCoverage {
        TechniqueCoverage {
            technique: "T1078".into(),
            parent: None,
            status,
            quality,
            categories: Default::default(),
            by_own: false,
            by_inherited: true,
            contributors: vec![],
        }
    }

    #[test]
    fn an_account_cell_is_coloured_by_quality_and_unknown_is_hatched_not_uncovered() {
        let significant = technique(TechniqueStatus::Covered, Some(Value::Significant));
        assert_eq!(
            account_paint(Some(&significant)),
            (5, false, "significant · inherited".into())
        );
        let partial = technique(TechniqueStatus::Covered, Some(Value::Partial));
        assert_eq!(account_paint(Some(&partial)).0, 3);
        let unknown = technique(TechniqueStatus::Unknown, None);
        assert_eq!(account_paint(Some(&unknown)).0, 0);
        assert!(account_paint(Some(&unknown)).1);
        assert_eq!(account_paint(None), (0, false, "not covered".into()));
        assert_eq!(
            account_paint(Some(&technique(TechniqueStatus::Degraded, None))).0,
            1
        );
    }

    #[test]
    fn a_technique_counts_the_accounts_neither_lacking_nor_unknown() {
        let row = |account: &str| canopy_coverage::organization::AccountRow {
            cloud_account_id: Uuid::nil(),
            account: account.into(),
            own_techniques: 0,
            inherited_techniques: 0,
            total_techniques: 0,
            percent: 0.0,
            unknown_techniques: 0,
            weakest_tactic: None,
        };
        let view = OrganizationCoverage {
            accounts: vec![row("1"), row("2"), row("3"), row("4")],
            in_every: ["T1".to_string()].into(),
            in_some: ["T2".to_string()].into(),
            gaps: vec![canopy_coverage::organization::Gap {
                technique: "T2".into(),
                accounts_lacking: 1,
            }],
            unknown: vec![canopy_coverage::organization::UnknownTechnique {
                technique: "T2".into(),
                accounts: 2,
            }],
            ..Default::default()
        };
        let counts = counts(&view);
        assert_eq!(counts["T1"], (4, 0));
        assert_eq!(counts["T2"], (1, 2));
    }
}
