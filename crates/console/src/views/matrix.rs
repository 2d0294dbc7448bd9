//! The ATT&CK matrix as a heatmap: a column per tactic, a cell per IaaS technique coloured by
//! how many of the organization's accounts cover it, sub-techniques folded under their
//! technique (`<details>`, no script). A technique whose coverage could not be read in some
//! accounts is drawn hatched and says so in words: unknown is not uncovered.

use askama::Template;
use canopy_coverage::organization::OrganizationCoverage;
use canopy_detection::catalog::{Catalog, Technique};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Request, Response, handler};
use std::collections::HashMap;

use super::cloud_orgs::{Head, Opened, head, opened};
use crate::ConsoleState;
use crate::chrome::Chrome;
use crate::error::{Failure, page};

/// One technique's cell.
pub(super) struct Cell {
    id: String,
    name: String,
    covered: u32,
    unknown: u32,
    /// `0` (none) to `5` (every account): the colour band.
    band: u8,
    subs: Vec<Cell>,
}

impl Cell {
    /// The cell in words, for the page and for screen readers.
    fn words(&self, accounts: &u32) -> String {
        let mut out = format!("covered in {} of {accounts}", self.covered);
        if self.unknown > 0 {
            out.push_str(&format!(", unknown in {}", self.unknown));
        }
        out
    }
}

/// One tactic's column.
pub(super) struct Column {
    name: String,
    cells: Vec<Cell>,
}

#[derive(Template)]
#[template(path = "cloud_orgs/matrix.html")]
struct MatrixPage {
    chrome: Chrome,
    slug: String,
    head: Head,
    accounts: u32,
    columns: Vec<Column>,
    version: String,
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

fn cell(
    t: &Technique,
    catalog: &Catalog,
    counts: &HashMap<&str, (u32, u32)>,
    accounts: u32,
) -> Cell {
    let (covered, unknown) = counts.get(t.id.as_str()).copied().unwrap_or((0, 0));
    Cell {
        id: t.id.clone(),
        name: t.name.clone(),
        covered,
        unknown,
        band: band(covered, accounts),
        subs: catalog
            .sub_techniques(&t.id)
            .filter(|s| s.iaas)
            .map(|s| cell(s, catalog, counts, accounts))
            .collect(),
    }
}

/// The columns of the IaaS matrix over `view`.
pub(super) fn columns(view: &OrganizationCoverage, catalog: &Catalog) -> Vec<Column> {
    let accounts = u32::try_from(view.accounts.len()).unwrap_or(u32::MAX);
    let counts = counts(view);
    catalog
        .tactics()
        .iter()
        .map(|tactic| Column {
            name: tactic.name.clone(),
            cells: catalog
                .under_tactic(&tactic.shortname)
                .filter(|t| t.iaas || catalog.sub_techniques(&t.id).any(|s| s.iaas))
                .map(|t| cell(t, catalog, &counts, accounts))
                .collect(),
        })
        .filter(|c| !c.cells.is_empty())
        .collect()
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
