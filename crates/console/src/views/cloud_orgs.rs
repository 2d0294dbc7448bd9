//! Cloud organizations: the list (status, members connected, last sync) and one
//! organization's coverage (the average as a gauge, what the organization's own controls add,
//! the largest gaps, and the per-account breakdown own + inherited - overlap = covered,
//! sortable and paged). On a plan without organization features the list shows what they
//! would give and the way to them instead of failing.

use askama::Template;
use canopy_billing::plan::{Feature, least_tier_with};
use canopy_cloud_org::organization::service::CloudOrganizationError;
use canopy_cloud_org::organization::{CloudOrganization, CloudOrganizationId, ConnectionStatus};
use canopy_coverage::organization::{AccountRow, OrganizationCoverage};
use canopy_coverage::views::Summaries;
use canopy_detection::catalog::Catalog;
use canopy_detection::service::DetectionError;
use canopy_kernel::PageRequest;
use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;
use std::sync::Arc;

use canopy_tenancy::service::OrgAccess;
use uuid::Uuid;

use super::accounts::ListQuery;
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page};
use crate::format;

/// Accounts per page of the breakdown.
const PER_PAGE: usize = 50;

/// Gaps listed at most.
const GAPS: usize = 10;

/// What a plan without organization features would gain, and from which tier.
struct Gate {
    feature: String,
    plan: String,
    tier: String,
}

/// The head of a cloud organization: in the list, and above its coverage.
pub(super) struct Head {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) provider: &'static str,
    pub(super) root: String,
    pub(super) status: &'static str,
    pub(super) status_class: &'static str,
    pub(super) problem: Option<String>,
    pub(super) connected: u32,
    pub(super) discovered: u32,
    pub(super) synced: String,
}

#[derive(Template)]
#[template(path = "cloud_orgs/list.html")]
struct ListPage {
    chrome: Chrome,
    slug: String,
    org_name: String,
    gate: Option<Gate>,
    rows: Vec<Head>,
    next: Option<String>,
    notice: Option<String>,
}

/// A technique lacking in some accounts.
struct GapRow {
    id: String,
    name: String,
    tactics: String,
    lacking: u32,
}

/// A sortable column of the breakdown.
struct Column {
    label: &'static str,
    numeric: bool,
    href: String,
    aria_sort: Option<&'static str>,
}

/// A category's or tactic's coverage over the organization's accounts.
struct Spread {
    label: String,
    average: String,
    value: u32,
    lowest: String,
}

/// Per category, then per tactic (kill-chain order): the accounts' average and the least
/// covered account's share, from the kept summaries.
fn spreads(summaries: &Summaries, catalog: &Catalog) -> (Vec<Spread>, Vec<Spread>) {
    let spread = |label: String, percents: Vec<f64>| -> Option<Spread> {
        if percents.is_empty() {
            return None;
        }
        let average = percents.iter().sum::<f64>() / percents.len() as f64;
        let lowest = percents.iter().copied().fold(f64::INFINITY, f64::min);
        Some(Spread {
            label,
            average: format::percent(Some(average)),
            value: average.round().clamp(0.0, 100.0) as u32,
            lowest: format::percent(Some(lowest)),
        })
    };
    let categories = ["detect", "protect", "respond"]
        .iter()
        .enumerate()
        .filter_map(|(i, label)| {
            spread(
                (*label).to_string(),
                summaries
                    .iter()
                    .map(|(_, _, s)| s.by_category[i].percent)
                    .collect(),
            )
        })
        .collect();
    let tactics = catalog
        .tactics()
        .iter()
        .enumerate()
        .filter_map(|(i, tactic)| {
            spread(
                tactic.name.clone(),
                summaries
                    .iter()
                    .filter_map(|(_, _, s)| s.by_tactic.get(i))
                    .filter(|r| r.total > 0)
                    .map(|r| r.percent)
                    .collect(),
            )
        })
        .collect();
    (categories, tactics)
}

/// An OU / folder the breakdown can be narrowed to.
struct NodeChoice {
    id: String,
    label: String,
    selected: bool,
}

/// One account of the breakdown.
struct Row {
    cloud_account_id: Uuid,
    account: String,
    own: u32,
    inherited: u32,
    overlap: u32,
    covered: u32,
    percent: String,
    percent_value: u32,
    unknown: u32,
    weakest: Option<String>,
}

#[derive(Template)]
#[template(path = "cloud_orgs/show.html")]
struct ShowPage {
    chrome: Chrome,
    slug: String,
    head: Head,
    average: String,
    gauge_dash: String,
    min: String,
    max: String,
    reached: u32,
    inherited_techniques: usize,
    only_inherited: String,
    in_every: usize,
    in_some: usize,
    in_none: usize,
    unknown: usize,
    gaps: Vec<GapRow>,
    categories: Vec<Spread>,
    tactics: Vec<Spread>,
    columns: Vec<Column>,
    sort_label: &'static str,
    nodes: Vec<NodeChoice>,
    /// The subtree the table is narrowed to, by path.
    under: Option<String>,
    sort_key: &'static str,
    dir: &'static str,
    rows: Vec<Row>,
    /// Accounts in the table (after the subtree filter).
    shown: usize,
    rows_total: usize,
    page: usize,
    pages: usize,
    prev_href: Option<String>,
    next_href: Option<String>,
}

/// The badge class of a cloud organization's status.
pub(crate) fn status_class(s: ConnectionStatus) -> &'static str {
    match s {
        ConnectionStatus::Connected => "active",
        ConnectionStatus::Discovering | ConnectionStatus::Pending | ConnectionStatus::Partial => {
            "pending"
        }
        ConnectionStatus::Error => "error",
        ConnectionStatus::Disconnected => "inactive",
    }
}

/// The badge class of a member's status: what Canopy did with it.
pub(super) fn member_status_class(
    s: canopy_cloud_org::organization::member::MemberStatus,
) -> &'static str {
    use canopy_cloud_org::organization::member::MemberStatus;
    match s {
        MemberStatus::Connected => "active",
        MemberStatus::Connecting | MemberStatus::Discovered => "pending",
        MemberStatus::Failed => "error",
        MemberStatus::Excluded => "inactive",
    }
}

pub(super) fn head(o: &CloudOrganization, now: DateTime<Utc>) -> Head {
    let problem = match o.status {
        ConnectionStatus::Error => o.error.clone(),
        ConnectionStatus::Partial => Some(format!(
            "{} OU(s) or folder(s) could not be read: {}",
            o.unreadable.len(),
            o.unreadable.join(", ")
        )),
        _ => None,
    };
    Head {
        id: o.id.as_uuid().to_string(),
        name: o.name.clone(),
        provider: o.provider.as_str(),
        root: o.identity.cloud_org_id.clone(),
        status: o.status.as_str(),
        status_class: status_class(o.status),
        problem,
        connected: o.connected_count,
        discovered: o.discovered_count,
        synced: match o.last_discovered_at {
            Some(at) => format!("synced {}", format::ago(at, now)),
            None => "never synced".into(),
        },
    }
}

pub(super) fn failure(e: CloudOrganizationError) -> Failure {
    match e {
        CloudOrganizationError::NotFound => Failure::NotFound,
        CloudOrganizationError::Forbidden(_) => Failure::Forbidden,
        CloudOrganizationError::Store(s) => Failure::Store(s),
        other => {
            tracing::warn!(error = %other, "unexpected cloud-organization refusal");
            Failure::NotFound
        }
    }
}

pub(super) fn coverage_failure(e: DetectionError) -> Failure {
    match e {
        DetectionError::NotFound => Failure::NotFound,
        DetectionError::Forbidden(_) => Failure::Forbidden,
        DetectionError::Store(s) => Failure::Store(s),
        other => {
            tracing::warn!(error = %other, "unexpected coverage refusal");
            Failure::NotFound
        }
    }
}

/// `GET /org/{slug}/cloud-organizations`.
#[handler]
pub async fn list(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = chrome::organization(&state, req, &slug, "cloud-orgs").await?;
    let request =
        PageRequest::parse(Some(50), q.cursor.as_deref()).map_err(|_| Failure::NotFound)?;
    let found = state
        .cloud_orgs
        .list(&access, request)
        .await
        .map_err(failure)?;
    let terms = state.billing.terms(access.org_id()).await?;
    let gate = (!terms.has(Feature::OrgFeatures)).then(|| Gate {
        feature: Feature::OrgFeatures.display_name().to_string(),
        plan: terms.display_name.to_string(),
        tier: least_tier_with(Feature::OrgFeatures)
            .display_name()
            .to_string(),
    });
    let now = state.tenancy.clock().now();
    Ok(page(
        StatusCode::OK,
        &ListPage {
            chrome,
            slug: access.organization().slug.as_str().to_string(),
            org_name: access.organization().name.clone(),
            gate,
            rows: found.items.iter().map(|o| head(o, now)).collect(),
            next: found.next.map(|c| c.encode()),
            notice: (q.done.as_deref() == Some("disconnected")).then(|| {
                format!(
                    "Disconnected. Its {} connected account(s) stay connected as standalone accounts.",
                    q.kept.unwrap_or(0)
                )
            }),
        },
    ))
}

/// How the breakdown is sorted: a column and a direction.
#[derive(Debug, Deserialize, Default)]
pub struct ShowQuery {
    sort: Option<String>,
    dir: Option<String>,
    page: Option<usize>,
    /// An OU / folder id: only the accounts in its subtree.
    under: Option<String>,
}

/// The breakdown's columns: query key, label, numeric, and the descending default.
const COLUMNS: &[(&str, &str, bool)] = &[
    ("account", "Account", false),
    ("own", "Own", true),
    ("inherited", "Inherited", true),
    ("overlap", "Overlap", true),
    ("covered", "Covered", true),
    ("percent", "Coverage", true),
    ("weakest", "Weakest tactic", false),
];

fn overlap(r: &AccountRow) -> u32 {
    (r.own_techniques + r.inherited_techniques).saturating_sub(r.total_techniques)
}

fn sorted<'a>(rows: &'a [AccountRow], sort: &str, descending: bool) -> Vec<&'a AccountRow> {
    let mut out: Vec<&AccountRow> = rows.iter().collect();
    out.sort_by(|a, b| {
        let order = match sort {
            "account" => a.account.cmp(&b.account),
            "own" => a.own_techniques.cmp(&b.own_techniques),
            "inherited" => a.inherited_techniques.cmp(&b.inherited_techniques),
            "overlap" => overlap(a).cmp(&overlap(b)),
            "covered" => a.total_techniques.cmp(&b.total_techniques),
            "weakest" => a.weakest_tactic.cmp(&b.weakest_tactic),
            _ => a.percent.total_cmp(&b.percent),
        };
        // Ties keep a stable, meaningful order: by account id.
        let order = if descending { order.reverse() } else { order };
        order.then_with(|| a.account.cmp(&b.account))
    });
    out
}

fn gaps(view: &OrganizationCoverage, catalog: &Catalog) -> Vec<GapRow> {
    view.gaps
        .iter()
        .take(GAPS)
        .map(|g| {
            let technique = catalog.technique(&g.technique);
            GapRow {
                id: g.technique.clone(),
                name: technique.map(|t| t.name.clone()).unwrap_or_default(),
                tactics: technique
                    .map(|t| {
                        t.tactics
                            .iter()
                            .filter_map(|id| catalog.tactics().iter().find(|x| x.shortname == *id))
                            .map(|x| x.name.clone())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
                lacking: g.accounts_lacking,
            }
        })
        .collect()
}

/// What every page of one cloud organization starts from: the frame, the viewer's access,
/// the organization (another tenant's, or no such id: 404) and its kept coverage view.
pub(super) struct Opened {
    pub(super) chrome: Chrome,
    pub(super) access: OrgAccess,
    pub(super) cloud_org: CloudOrganization,
    pub(super) view: Arc<OrganizationCoverage>,
}

pub(super) async fn opened(
    state: &ConsoleState,
    req: &Request,
    slug: &str,
    id: &str,
) -> Result<Opened, Failure> {
    let (_, access, chrome) = chrome::organization(state, req, slug, "cloud-orgs").await?;
    let id = Uuid::parse_str(id)
        .map(CloudOrganizationId)
        .map_err(|_| Failure::NotFound)?;
    let cloud_org = state.cloud_orgs.get(&access, id).await.map_err(failure)?;
    let view = state
        .views
        .organization(&access, id)
        .await
        .map_err(coverage_failure)?;
    Ok(Opened {
        chrome,
        access,
        cloud_org,
        view,
    })
}

/// A tactic's name from its shortname or id (the id itself when the catalog lacks it).
pub(super) fn tactic_name(catalog: &Catalog, shortname: &str) -> String {
    catalog
        .tactics()
        .iter()
        .find(|t| t.shortname == shortname || t.id == shortname)
        .map_or_else(|| shortname.to_string(), |t| t.name.clone())
}

/// `GET /org/{slug}/cloud-organizations/{id}`: its coverage.
#[handler]
pub async fn show(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, String)>,
    Query(q): Query<ShowQuery>,
) -> Result<Response, Failure> {
    let Opened {
        chrome,
        access,
        cloud_org,
        view,
    } = opened(&state, req, &slug, &id).await?;
    let catalog = Catalog::embedded();
    let slug = access.organization().slug.as_str().to_string();
    let base = format!("/org/{slug}/cloud-organizations/{}", cloud_org.id.as_uuid());

    let sort = COLUMNS
        .iter()
        .find(|(key, _, _)| Some(*key) == q.sort.as_deref())
        .map_or("percent", |(key, _, _)| *key);
    let numeric = COLUMNS.iter().any(|(k, _, n)| *k == sort && *n);
    // Numbers read best largest first, names from A.
    let descending = match q.dir.as_deref() {
        Some("asc") => false,
        Some("desc") => true,
        _ => numeric,
    };
    let placement = state
        .views
        .placement(&access, cloud_org.id)
        .await
        .map_err(coverage_failure)?;
    let summaries = state
        .views
        .summaries(&access, cloud_org.id)
        .await
        .map_err(coverage_failure)?;
    let (categories, tactics) = spreads(&summaries, catalog);
    // A node that is not in the tree (moved away, mistyped) narrows nothing.
    let under = q.under.as_deref().and_then(|u| placement.hierarchy.get(u));
    let mut ordered = sorted(&view.accounts, sort, descending);
    if let Some(node) = under {
        ordered.retain(|r| placement.is_under(r.cloud_account_id, &node.id));
    }
    let total = ordered.len();
    let pages = total.div_ceil(PER_PAGE).max(1);
    let current = q.page.unwrap_or(1).clamp(1, pages);
    let dir = if descending { "desc" } else { "asc" };
    let narrowed = under.map_or_else(String::new, |n| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("under", &n.id);
        format!("&{}", q.finish())
    });
    let href = |page: usize| format!("{base}?sort={sort}&dir={dir}&page={page}{narrowed}");
    let mut nodes: Vec<NodeChoice> = placement
        .hierarchy
        .nodes()
        .filter(|n| n.parent_id.is_some())
        .map(|n| NodeChoice {
            id: n.id.clone(),
            label: n.path.clone(),
            selected: under.is_some_and(|u| u.id == n.id),
        })
        .collect();
    nodes.sort_by(|a, b| a.label.cmp(&b.label));
    let columns = COLUMNS
        .iter()
        .map(|(key, label, numeric)| {
            let active = *key == sort;
            // Choosing the sorted column again flips it; another starts at its default.
            let next_dir = match (active, descending) {
                (true, true) => "asc",
                (true, false) => "desc",
                (false, _) if *numeric => "desc",
                (false, _) => "asc",
            };
            Column {
                label,
                numeric: *numeric,
                href: format!("{base}?sort={key}&dir={next_dir}{narrowed}"),
                aria_sort: active.then_some(if descending {
                    "descending"
                } else {
                    "ascending"
                }),
            }
        })
        .collect();
    let rows = ordered
        .iter()
        .skip((current - 1) * PER_PAGE)
        .take(PER_PAGE)
        .map(|r| Row {
            cloud_account_id: r.cloud_account_id,
            account: r.account.clone(),
            own: r.own_techniques,
            inherited: r.inherited_techniques,
            overlap: overlap(r),
            covered: r.total_techniques,
            percent: format::percent(Some(r.percent)),
            percent_value: r.percent.round().clamp(0.0, 100.0) as u32,
            unknown: r.unknown_techniques,
            weakest: r.weakest_tactic.as_deref().map(|t| tactic_name(catalog, t)),
        })
        .collect();
    let now = state.tenancy.clock().now();
    Ok(page(
        StatusCode::OK,
        &ShowPage {
            chrome,
            head: head(&cloud_org, now),
            average: format::percent(Some(view.average)),
            gauge_dash: format!("{:.1}", view.average.clamp(0.0, 100.0)),
            min: format::percent(Some(view.min)),
            max: format::percent(Some(view.max)),
            reached: view.organization.accounts_reached,
            inherited_techniques: view.organization.techniques.len(),
            only_inherited: format!("{:.1}", view.organization.average_only_inherited),
            in_every: view.in_every.len(),
            in_some: view.in_some.len(),
            in_none: view.in_none.len(),
            unknown: view.unknown.len(),
            gaps: gaps(&view, catalog),
            categories,
            tactics,
            columns,
            sort_label: COLUMNS
                .iter()
                .find(|(k, _, _)| *k == sort)
                .map_or("coverage", |(_, l, _)| l),
            nodes,
            under: under.map(|n| n.path.clone()),
            sort_key: sort,
            dir,
            rows,
            shown: total,
            rows_total: view.accounts.len(),
            page: current,
            pages,
            prev_href: (current > 1).then(|| href(current - 1)),
            next_href: (current < pages).then(|| href(current + 1)),
            slug,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(account: &str, own: u32, inherited: u32, total: u32, percent: f64) -> AccountRow {
        AccountRow {
            cloud_account_id: Uuid::nil(),
            account: account.into(),
            own_techniques: own,
            inherited_techniques: inherited,
            total_techniques: total,
            percent,
            unknown_techniques: 0,
            weakest_tactic: None,
        }
    }

    #[test]
    fn overlap_is_what_own_and_inherited_both_count() {
        assert_eq!(overlap(&row("a", 10, 8, 15, 20.0)), 3);
        assert_eq!(overlap(&row("a", 10, 0, 10, 20.0)), 0);
    }

    #[test]
    fn the_breakdown_sorts_by_any_column_with_ties_by_account() {
        let rows = [
            row("333", 1, 5, 6, 30.0),
            row("111", 4, 2, 6, 30.0),
            row("222", 9, 0, 9, 45.0),
        ];
        let ids = |v: Vec<&AccountRow>| v.iter().map(|r| r.account.clone()).collect::<Vec<_>>();
        assert_eq!(ids(sorted(&rows, "percent", true)), ["222", "111", "333"]);
        assert_eq!(ids(sorted(&rows, "percent", false)), ["111", "333", "222"]);
        assert_eq!(ids(sorted(&rows, "inherited", true)), ["333", "111", "222"]);
        assert_eq!(ids(sorted(&rows, "account", false)), ["111", "222", "333"]);
    }
}
