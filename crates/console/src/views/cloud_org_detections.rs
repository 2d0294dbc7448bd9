//! A cloud organization's detections, filtered by scope, source, status, tactic and
//! technique, each with where it applies: every account, the listed ones, or the OU / folder
//! subtrees it is attached to (by path, as people read the tree), and what it was last seen
//! doing.

use std::collections::HashMap;

use askama::Template;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_detection::catalog::Catalog;
use canopy_detection::detection::{AppliesTo, Detection, Scope, ScopeKind, Source, Status};
use canopy_detection::service::DetectionQuery;
use canopy_kernel::PageRequest;
use canopy_tenancy::Action;
use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;
use uuid::Uuid;

use super::cloud_orgs::{Head, coverage_failure, failure, head};
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page};
use crate::format;

/// Detections per page.
const PER_PAGE: u32 = 50;

/// Techniques listed per detection; the rest are counted.
const SHOWN_TECHNIQUES: usize = 8;

/// The filters as the form sends them.
#[derive(Debug, Deserialize, Default)]
pub struct Filters {
    scope: Option<String>,
    source: Option<String>,
    status: Option<String>,
    tactic: Option<String>,
    technique: Option<String>,
    cursor: Option<String>,
}

/// An option of a filter's select.
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

/// One detection as listed.
struct Row {
    name: String,
    source: &'static str,
    scope: &'static str,
    applies: String,
    status: &'static str,
    status_class: &'static str,
    reason: Option<String>,
    /// The first techniques it addresses, and how many more.
    techniques: Vec<String>,
    more: usize,
    seen: String,
    /// Its edit page: custom detections, for those who may manage them.
    edit: Option<String>,
}

#[derive(Template)]
#[template(path = "cloud_orgs/detections.html")]
struct DetectionsPage {
    chrome: Chrome,
    slug: String,
    head: Head,
    tab: &'static str,
    scopes: Vec<Choice>,
    sources: Vec<Choice>,
    statuses: Vec<Choice>,
    tactics: Vec<Choice>,
    technique: String,
    rows: Vec<Row>,
    next: Option<String>,
    query: String,
    filtered: bool,
    /// Where a new custom detection is made, for those who may.
    create: Option<String>,
}

fn choices<'a>(
    all: impl IntoIterator<Item = (&'a str, String)>,
    picked: Option<&str>,
) -> Vec<Choice> {
    all.into_iter()
        .map(|(value, label)| Choice {
            selected: picked == Some(value),
            value: value.to_string(),
            label,
        })
        .collect()
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Where an organization detection applies, by the tree's paths.
fn applies(scope: &Scope, paths: &HashMap<String, String>) -> String {
    let path = |node: &String| paths.get(node).cloned().unwrap_or_else(|| node.clone());
    match scope {
        Scope::Account(_) => "this account".into(),
        Scope::Organization { applies_to, .. } => match applies_to {
            AppliesTo::AllAccounts => "every account".into(),
            AppliesTo::Accounts(keys) => format!(
                "{} listed account(s): {}",
                keys.len(),
                keys.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            AppliesTo::Nodes(nodes) => {
                format!(
                    "under {}",
                    nodes.iter().map(path).collect::<Vec<_>>().join(", ")
                )
            }
            AppliesTo::NodesExcept { nodes, except } => format!(
                "under {} except {}",
                nodes.iter().map(path).collect::<Vec<_>>().join(", "),
                except.iter().map(path).collect::<Vec<_>>().join(", ")
            ),
        },
    }
}

fn row(
    d: &Detection,
    paths: &HashMap<String, String>,
    now: chrono::DateTime<chrono::Utc>,
    edit_base: Option<&str>,
) -> Row {
    Row {
        edit: edit_base
            .filter(|_| d.source == Source::Custom)
            .map(|base| format!("{base}/{}/edit", d.id.as_uuid())),
        name: d.name.clone(),
        source: d.source.as_str(),
        scope: d.scope.kind().as_str(),
        applies: applies(&d.scope, paths),
        status: d.status.as_str(),
        status_class: match d.status {
            Status::Active => "active",
            Status::Degraded => "pending",
            Status::Absent => "inactive",
            Status::Unknown => "unknown",
        },
        reason: d.reason.clone(),
        techniques: d
            .techniques
            .iter()
            .take(SHOWN_TECHNIQUES)
            .map(|t| t.technique.clone())
            .collect(),
        more: d.techniques.len().saturating_sub(SHOWN_TECHNIQUES),
        seen: d.last_seen_at.map_or_else(
            || "never seen".into(),
            |at| format!("seen {}", format::ago(at, now)),
        ),
    }
}

/// `GET /org/{slug}/cloud-organizations/{id}/detections` (any member).
#[handler]
pub async fn show(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, Uuid)>,
    Query(f): Query<Filters>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = chrome::organization(&state, req, &slug, "cloud-orgs").await?;
    let id = CloudOrganizationId(id);
    let cloud_org = state.cloud_orgs.get(&access, id).await.map_err(failure)?;
    let catalog = Catalog::embedded();
    let query = DetectionQuery {
        scope: nonempty(&f.scope).and_then(ScopeKind::from_stored),
        source: nonempty(&f.source).and_then(Source::from_stored),
        status: nonempty(&f.status).and_then(Status::from_stored),
        tactic: nonempty(&f.tactic).map(str::to_string),
        technique: nonempty(&f.technique).map(str::to_string),
    };
    let request =
        PageRequest::parse(Some(PER_PAGE), f.cursor.as_deref()).map_err(|_| Failure::NotFound)?;
    let may_manage = access.require(Action::ManageDetections).is_ok();
    let base = format!(
        "/org/{}/cloud-organizations/{}/detections",
        access.organization().slug.as_str(),
        id.as_uuid()
    );
    let edit_base = may_manage.then_some(base.as_str());
    let (rows, next) = match state
        .detections
        .list_for_cloud_org(&access, id, &query, request)
        .await
    {
        Ok(found) => {
            let tree = state
                .cloud_orgs
                .hierarchy(&access, id)
                .await
                .map_err(failure)?;
            let paths: HashMap<String, String> = tree
                .hierarchy
                .nodes()
                .map(|n| (n.id.clone(), n.path.clone()))
                .collect();
            let now = state.tenancy.clock().now();
            (
                found
                    .items
                    .iter()
                    .map(|d| row(d, &paths, now, edit_base))
                    .collect(),
                found.next.map(|c| c.encode()),
            )
        }
        // An unknown technique or tactic typed in the filter lists nothing, and says so.
        Err(canopy_detection::service::DetectionError::Invalid(_)) => (Vec::new(), None),
        Err(e) => return Err(coverage_failure(e)),
    };
    let now = state.tenancy.clock().now();
    let filtered = [&f.scope, &f.source, &f.status, &f.tactic, &f.technique]
        .iter()
        .any(|v| nonempty(v).is_some());
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("scope", &f.scope),
        ("source", &f.source),
        ("status", &f.status),
        ("tactic", &f.tactic),
        ("technique", &f.technique),
    ] {
        if let Some(v) = nonempty(v) {
            kept.append_pair(k, v);
        }
    }
    Ok(page(
        StatusCode::OK,
        &DetectionsPage {
            chrome,
            slug: access.organization().slug.as_str().to_string(),
            head: head(&cloud_org, now),
            tab: "detections",
            scopes: choices(
                [ScopeKind::Account, ScopeKind::Organization]
                    .map(|s| (s.as_str(), s.as_str().to_string())),
                nonempty(&f.scope),
            ),
            sources: choices(
                Source::ALL.map(|s| (s.as_str(), s.as_str().replace('_', " "))),
                nonempty(&f.source),
            ),
            statuses: choices(
                Status::ALL.map(|s| (s.as_str(), s.as_str().to_string())),
                nonempty(&f.status),
            ),
            tactics: choices(
                catalog
                    .tactics()
                    .iter()
                    .map(|t| (t.shortname.as_str(), t.name.clone())),
                nonempty(&f.tactic),
            ),
            technique: f.technique.clone().unwrap_or_default(),
            rows,
            next,
            query: kept.finish(),
            filtered,
            create: may_manage.then(|| format!("{base}/new")),
        },
    ))
}
