//! The controls a detection scan reads: Cloud Logging sinks (`v2/{parent}/sinks` at
//! organizations, folders and projects), Security Command Center (`v1/organizations/N/
//! organizationSettings` and `/sources`), Org Policy v2 (`v2/{parent}/policies` at
//! organizations and folders) and Cloud Asset feeds (`v1/organizations/N/feeds`). Every call
//! goes through the same token check, latency, throttling, denials and counts as Resource
//! Manager's; a denied organization or folder denies its subtree, projects included.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{Request, Response, handler};
use serde_json::{Value, json};

use crate::handlers::{ListQuery, begin, google_error, json_response, page, permission_denied};
use crate::{
    ASSET_FEEDS_LIST, Calls, FakeGcp, LOGGING_SINKS_LIST, ORG_POLICIES_LIST, SCC_SETTINGS_GET,
    SCC_SOURCES_LIST, State,
};

/// Security Command Center of one organization, once activated.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scc {
    sources: Vec<String>,
}

/// What the scan endpoints serve, by parent resource name.
#[derive(Debug, Default)]
pub(crate) struct Controls {
    sinks: BTreeMap<String, Vec<Value>>,
    policies: BTreeMap<String, Vec<Value>>,
    feeds: BTreeMap<String, Vec<Value>>,
    scc: BTreeMap<String, Scc>,
    /// Permissions whose every call is answered 429.
    pub(crate) throttled: HashSet<String>,
}

impl FakeGcp {
    /// Adds a log sink (Google's `LogSink` JSON, with at least `name`) to `parent`
    /// (`organizations/N`, `folders/N` or `projects/ID`); its `resourceName` is filled in.
    pub fn add_sink(&self, parent: &str, mut sink: Value) {
        let name = sink["name"].as_str().unwrap_or("sink").to_string();
        if let Some(map) = sink.as_object_mut() {
            map.insert(
                "resourceName".into(),
                json!(format!("{parent}/sinks/{name}")),
            );
        }
        self.shared
            .lock()
            .controls
            .sinks
            .entry(parent.to_string())
            .or_default()
            .push(sink);
    }

    /// Sets an organization policy (Google's `Policy` JSON without its name: `spec`,
    /// `dryRunSpec`) on `constraint` at `parent` (`organizations/N` or `folders/N`).
    pub fn add_policy(&self, parent: &str, constraint: &str, mut policy: Value) {
        if let Some(map) = policy.as_object_mut() {
            map.insert(
                "name".into(),
                json!(format!("{parent}/policies/{constraint}")),
            );
        }
        self.shared
            .lock()
            .controls
            .policies
            .entry(parent.to_string())
            .or_default()
            .push(policy);
    }

    /// Activates Security Command Center for `organization` with finding sources of these
    /// display names (`Event Threat Detection`, ...). Before, its settings answer
    /// FAILED_PRECONDITION.
    pub fn activate_scc(&self, organization: &str, sources: &[&str]) {
        self.shared.lock().controls.scc.insert(
            organization.to_string(),
            Scc {
                sources: sources.iter().map(|s| s.to_string()).collect(),
            },
        );
    }

    /// Adds an asset feed `feed_id` (Google's `Feed` JSON without its name) to `organization`.
    pub fn add_feed(&self, organization: &str, feed_id: &str, mut feed: Value) {
        if let Some(map) = feed.as_object_mut() {
            map.insert(
                "name".into(),
                json!(format!("{organization}/feeds/{feed_id}")),
            );
        }
        self.shared
            .lock()
            .controls
            .feeds
            .entry(organization.to_string())
            .or_default()
            .push(feed);
    }

    /// Answers every call needing `permission` with 429 `RESOURCE_EXHAUSTED`, for ever.
    pub fn throttle_permission(&self, permission: &str) {
        self.shared
            .lock()
            .controls
            .throttled
            .insert(permission.to_string());
    }
}

/// `organizations/N`, `folders/N` or `projects/ID` from a path, if it exists; denied when it
/// or anything above it is.
fn resource(
    state: &State,
    kind: &str,
    id: &str,
    permission: &str,
) -> Result<String, Box<Response>> {
    let name = format!("{kind}/{id}");
    let (exists, above) = match kind {
        "organizations" => (state.organizations.contains_key(&name), None),
        "folders" => (state.folders.contains_key(&name), None),
        "projects" => match state.projects.get(id) {
            Some(p) => (true, Some(p.parent.clone())),
            None => (false, None),
        },
        _ => (false, None),
    };
    if state.denied(&name) || above.as_deref().is_some_and(|p| state.denied(p)) {
        return Err(Box::new(permission_denied(permission, &name)));
    }
    if !exists {
        return Err(Box::new(google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Resource '{name}' not found."),
        )));
    }
    Ok(name)
}

/// A page of `items` under `field`, with `nextPageToken` when more follow.
fn paged(
    state: &State,
    items: Vec<Value>,
    query: &ListQuery,
    parent: &str,
    field: &str,
) -> Response {
    match page(state, items, query, parent) {
        Ok((items, next)) => {
            let mut body = json!({});
            if let Some(map) = body.as_object_mut() {
                if !items.is_empty() {
                    map.insert(field.into(), json!(items));
                }
                if let Some(next) = next {
                    map.insert("nextPageToken".into(), json!(next));
                }
            }
            json_response(StatusCode::OK, &body)
        }
        Err(resp) => *resp,
    }
}

/// `GET v2/{organizations|folders|projects}/{id}/sinks`.
#[handler]
pub(crate) async fn list_sinks(
    req: &Request,
    shared: Data<&Arc<crate::Shared>>,
    Path((kind, id)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> Response {
    let count: fn(&mut Calls) -> &mut u64 = |c| &mut c.list_sinks;
    let _call = match begin(&shared, req, count, LOGGING_SINKS_LIST).await {
        Ok(call) => call,
        Err(resp) => return resp,
    };
    let state = shared.lock();
    let parent = match resource(&state, &kind, &id, LOGGING_SINKS_LIST) {
        Ok(parent) => parent,
        Err(resp) => return *resp,
    };
    let sinks = state
        .controls
        .sinks
        .get(&parent)
        .cloned()
        .unwrap_or_default();
    paged(&state, sinks, &query, &parent, "sinks")
}

/// `GET v2/{organizations|folders}/{id}/policies`.
#[handler]
pub(crate) async fn list_policies(
    req: &Request,
    shared: Data<&Arc<crate::Shared>>,
    Path((kind, id)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> Response {
    let count: fn(&mut Calls) -> &mut u64 = |c| &mut c.list_policies;
    let _call = match begin(&shared, req, count, ORG_POLICIES_LIST).await {
        Ok(call) => call,
        Err(resp) => return resp,
    };
    let state = shared.lock();
    let parent = match resource(&state, &kind, &id, ORG_POLICIES_LIST) {
        Ok(parent) => parent,
        Err(resp) => return *resp,
    };
    let policies = state
        .controls
        .policies
        .get(&parent)
        .cloned()
        .unwrap_or_default();
    paged(&state, policies, &query, &parent, "policies")
}

/// `GET v1/organizations/{id}/organizationSettings`.
#[handler]
pub(crate) async fn scc_settings(
    req: &Request,
    shared: Data<&Arc<crate::Shared>>,
    Path(id): Path<String>,
) -> Response {
    let count: fn(&mut Calls) -> &mut u64 = |c| &mut c.get_scc_settings;
    let _call = match begin(&shared, req, count, SCC_SETTINGS_GET).await {
        Ok(call) => call,
        Err(resp) => return resp,
    };
    let state = shared.lock();
    let org = match resource(&state, "organizations", &id, SCC_SETTINGS_GET) {
        Ok(org) => org,
        Err(resp) => return *resp,
    };
    if !state.controls.scc.contains_key(&org) {
        return google_error(
            StatusCode::BAD_REQUEST,
            "FAILED_PRECONDITION",
            &format!("Security Command Center is not activated for {org}."),
        );
    }
    json_response(
        StatusCode::OK,
        &json!({"name": format!("{org}/organizationSettings"), "enableAssetDiscovery": true}),
    )
}

/// `GET v1/organizations/{id}/sources`.
#[handler]
pub(crate) async fn scc_sources(
    req: &Request,
    shared: Data<&Arc<crate::Shared>>,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    let count: fn(&mut Calls) -> &mut u64 = |c| &mut c.list_scc_sources;
    let _call = match begin(&shared, req, count, SCC_SOURCES_LIST).await {
        Ok(call) => call,
        Err(resp) => return resp,
    };
    let state = shared.lock();
    let org = match resource(&state, "organizations", &id, SCC_SOURCES_LIST) {
        Ok(org) => org,
        Err(resp) => return *resp,
    };
    let sources: Vec<Value> = state
        .controls
        .scc
        .get(&org)
        .map(|scc| {
            scc.sources
                .iter()
                .enumerate()
                .map(|(i, display)| {
                    let name = format!("{org}/sources/{}", 1000 + i);
                    json!({"name": name, "canonicalName": name, "displayName": display})
                })
                .collect()
        })
        .unwrap_or_default();
    paged(&state, sources, &query, &org, "sources")
}

/// `GET v1/organizations/{id}/feeds` (one answer: Google does not page feeds).
#[handler]
pub(crate) async fn list_feeds(
    req: &Request,
    shared: Data<&Arc<crate::Shared>>,
    Path(id): Path<String>,
) -> Response {
    let count: fn(&mut Calls) -> &mut u64 = |c| &mut c.list_feeds;
    let _call = match begin(&shared, req, count, ASSET_FEEDS_LIST).await {
        Ok(call) => call,
        Err(resp) => return resp,
    };
    let state = shared.lock();
    let org = match resource(&state, "organizations", &id, ASSET_FEEDS_LIST) {
        Ok(org) => org,
        Err(resp) => return *resp,
    };
    let feeds = state.controls.feeds.get(&org).cloned().unwrap_or_default();
    json_response(StatusCode::OK, &json!({ "feeds": feeds }))
}
