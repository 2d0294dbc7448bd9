//! The fake's HTTP endpoints: the token endpoint and Resource Manager v3, answering in
//! Google's JSON (camelCase resources, `{"error": {code, message, status}}` errors).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use poem::http::StatusCode;
use poem::web::{Data, Form, Path, Query};
use poem::{Request, Response, handler};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    Calls, FOLDERS_LIST, ORGANIZATIONS_GET, PROJECTS_GET, PROJECTS_LIST, Shared, State, keys,
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CREATED: &str = "2024-01-15T09:30:00.000Z";

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json; charset=UTF-8")
        .body(body.to_string())
}

/// An error as Google's APIs send it.
pub(crate) fn google_error(code: StatusCode, status: &str, message: &str) -> Response {
    json_response(
        code,
        &json!({"error": {"code": code.as_u16(), "message": message, "status": status}}),
    )
}

pub(crate) fn permission_denied(permission: &str, resource: &str) -> Response {
    google_error(
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        &format!(
            "Permission '{permission}' denied on resource '{resource}' (or it may not exist)."
        ),
    )
}

fn oauth_error(error: &str, description: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": error, "error_description": description}),
    )
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    grant_type: Option<String>,
    assertion: Option<String>,
}

#[handler]
pub(crate) async fn issue_token(
    shared: Data<&Arc<Shared>>,
    form: Option<Form<TokenForm>>,
) -> Response {
    shared.lock().calls.token += 1;
    let Some(Form(form)) = form else {
        return oauth_error("invalid_request", "unreadable form");
    };
    if form.grant_type.as_deref() != Some(JWT_BEARER) {
        return oauth_error("unsupported_grant_type", "Invalid grant_type");
    }
    let assertion = form.assertion.unwrap_or_default();
    let claims = match keys::verify(keys::issued(), &assertion, &shared.token_uri, now()) {
        Ok(claims) => claims,
        Err(refusal) => return oauth_error("invalid_grant", refusal.describe()),
    };
    if claims.scope.trim().is_empty() {
        return oauth_error(
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    let mut state = shared.lock();
    if !state.issued_accounts.contains(&claims.iss) || state.revoked.contains(&claims.iss) {
        return oauth_error("invalid_grant", "Invalid grant: account not found");
    }
    let bytes: [u8; 32] = rand::rng().random();
    let access_token = format!(
        "ya29.fake-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    state.tokens.insert(access_token.clone(), claims.iss);
    json_response(
        StatusCode::OK,
        &json!({"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"}),
    )
}

/// Counts the call, checks its bearer token, then holds an in-flight slot for the answer's
/// latency; throttling and denials come after, as Google's front end checks them per call.
pub(crate) struct Call {
    shared: Arc<Shared>,
}

impl Drop for Call {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
    }
}

pub(crate) async fn begin(
    shared: &Arc<Shared>,
    req: &Request,
    count: fn(&mut Calls) -> &mut u64,
    permission: &str,
) -> Result<Call, Response> {
    let latency = {
        let mut state = shared.lock();
        *count(&mut state.calls) += 1;
        let bearer = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "));
        let account = bearer.and_then(|t| state.tokens.get(t));
        if account.is_none_or(|a| state.revoked.contains(a)) {
            return Err(google_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, \
                 login cookie or other valid authentication credential.",
            ));
        }
        state.in_flight += 1;
        state.max_in_flight = state.max_in_flight.max(state.in_flight);
        state.latency
    };
    let call = Call {
        shared: shared.clone(),
    };
    tokio::time::sleep(latency).await;
    let refusal = {
        let mut state = shared.lock();
        if state.throttle > 0 || state.controls.throttled.contains(permission) {
            state.throttle = state.throttle.saturating_sub(1);
            Some(google_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per \
                 minute' of the service.",
            ))
        } else if state.denied_permissions.contains(permission) {
            Some(permission_denied(permission, "*"))
        } else {
            None
        }
    };
    // The lock is released before `call` may drop: its drop takes the lock too.
    match refusal {
        Some(resp) => Err(resp),
        None => Ok(call),
    }
}

fn organization_json(name: &str, org: &crate::Organization) -> Value {
    json!({
        "name": name,
        "displayName": org.display_name,
        "directoryCustomerId": org.customer_id,
        "state": "ACTIVE",
        "createTime": CREATED,
        "updateTime": CREATED,
        "etag": "BwWWja0YfJA=",
    })
}

fn folder_json(name: &str, folder: &crate::Folder) -> Value {
    json!({
        "name": name,
        "parent": folder.parent,
        "displayName": folder.display_name,
        "state": "ACTIVE",
        "createTime": CREATED,
        "updateTime": CREATED,
        "etag": "W/\"1\"",
    })
}

fn project_json(id: &str, project: &crate::Project) -> Value {
    let mut value = json!({
        "name": format!("projects/{}", project.number),
        "parent": project.parent,
        "projectId": id,
        "state": project.state,
        "displayName": project.display_name,
        "createTime": CREATED,
        "updateTime": CREATED,
        "etag": "W/\"1\"",
    });
    if project.state == "DELETE_REQUESTED"
        && let Some(map) = value.as_object_mut()
    {
        map.insert("deleteTime".into(), json!(CREATED));
    }
    value
}

#[handler]
pub(crate) async fn get_organization(
    req: &Request,
    shared: Data<&Arc<Shared>>,
    Path(id): Path<String>,
) -> Response {
    let _call = match begin(&shared, req, |c| &mut c.get_organization, ORGANIZATIONS_GET).await {
        Ok(call) => call,
        Err(resp) => return resp,
    };
    let name = format!("organizations/{id}");
    let state = shared.lock();
    if state.denied(&name) {
        return permission_denied(ORGANIZATIONS_GET, &name);
    }
    match state.organizations.get(&name) {
        Some(org) => json_response(StatusCode::OK, &organization_json(&name, org)),
        None => google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Organization '{name}' not found."),
        ),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListQuery {
    pub(crate) parent: Option<String>,
    pub(crate) page_token: Option<String>,
    pub(crate) page_size: Option<usize>,
    pub(crate) show_deleted: Option<bool>,
}

fn parent_exists(state: &State, parent: &str) -> bool {
    state.organizations.contains_key(parent) || state.folders.contains_key(parent)
}

/// One page of `items` (already in a stable order) after the query's token, and the next
/// token. Tokens name their parent, so one reused under another parent is refused as Google
/// refuses a token of another query.
pub(crate) fn page<T>(
    state: &State,
    items: Vec<T>,
    query: &ListQuery,
    parent: &str,
) -> Result<(Vec<T>, Option<String>), Box<Response>> {
    let offset = match query.page_token.as_deref().filter(|t| !t.is_empty()) {
        None => 0,
        Some(raw) => raw
            .split_once('@')
            .filter(|(_, p)| *p == parent)
            .and_then(|(o, _)| o.parse::<usize>().ok())
            .ok_or_else(|| {
                Box::new(google_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    "Request contains an invalid argument: page_token",
                ))
            })?,
    };
    let size = query
        .page_size
        .filter(|s| *s > 0)
        .map_or(state.page_size, |s| s.min(state.page_size));
    let total = items.len();
    let end = (offset + size).min(total);
    let next = (end < total).then(|| format!("{end}@{parent}"));
    Ok((
        items
            .into_iter()
            .skip(offset)
            .take(end - offset.min(end))
            .collect(),
        next,
    ))
}

fn list_under(state: &State, query: &ListQuery, permission: &str) -> Result<String, Box<Response>> {
    let Some(parent) = query.parent.clone().filter(|p| !p.is_empty()) else {
        return Err(Box::new(google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Request contains an invalid argument: parent is required",
        )));
    };
    if state.denied(&parent) {
        return Err(Box::new(permission_denied(permission, &parent)));
    }
    if !parent_exists(state, &parent) {
        return Err(Box::new(google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Parent '{parent}' not found."),
        )));
    }
    Ok(parent)
}

#[handler]
pub(crate) async fn list_folders(
    req: &Request,
    shared: Data<&Arc<Shared>>,
    Query(query): Query<ListQuery>,
) -> Response {
    let _call = match begin(&shared, req, |c| &mut c.list_folders, FOLDERS_LIST).await {
        Ok(call) => call,
        Err(resp) => return resp,
    };
    let state = shared.lock();
    let parent = match list_under(&state, &query, FOLDERS_LIST) {
        Ok(parent) => parent,
        Err(resp) => return *resp,
    };
    let children: Vec<Value> = state
        .folders
        .iter()
        .filter(|(_, f)| f.parent == parent)
        .map(|(name, f)| folder_json(name, f))
        .collect();
    match page(&state, children, &query, &parent) {
        Ok((folders, next)) => {
            let mut body = json!({ "folders": folders });
            if let (Some(next), Some(map)) = (next, body.as_object_mut()) {
                map.insert("nextPageToken".into(), json!(next));
            }
            json_response(StatusCode::OK, &body)
        }
        Err(resp) => *resp,
    }
}

#[handler]
pub(crate) async fn list_projects(
    req: &Request,
    shared: Data<&Arc<Shared>>,
    Query(query): Query<ListQuery>,
) -> Response {
    let _call = match begin(&shared, req, |c| &mut c.list_projects, PROJECTS_LIST).await {
        Ok(call) => call,
        Err(resp) => return resp,
    };
    let state = shared.lock();
    let parent = match list_under(&state, &query, PROJECTS_LIST) {
        Ok(parent) => parent,
        Err(resp) => return *resp,
    };
    let show_deleted = query.show_deleted.unwrap_or(false);
    let children: Vec<Value> = state
        .projects
        .iter()
        .filter(|(_, p)| p.parent == parent && (show_deleted || p.state == "ACTIVE"))
        .map(|(id, p)| project_json(id, p))
        .collect();
    match page(&state, children, &query, &parent) {
        // Google omits the list entirely when a page is empty.
        Ok((projects, next)) => {
            let mut body = json!({});
            if let Some(map) = body.as_object_mut() {
                if !projects.is_empty() {
                    map.insert("projects".into(), json!(projects));
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

#[handler]
pub(crate) async fn get_project(
    req: &Request,
    shared: Data<&Arc<Shared>>,
    Path(id): Path<String>,
) -> Response {
    let _call = match begin(&shared, req, |c| &mut c.get_project, PROJECTS_GET).await {
        Ok(call) => call,
        Err(resp) => return resp,
    };
    let state = shared.lock();
    // Google takes the project id or its number.
    let found = state.projects.get_key_value(&id).or_else(|| {
        state
            .projects
            .iter()
            .find(|(_, p)| p.number.to_string() == id)
    });
    let name = format!("projects/{id}");
    match found {
        Some((_, p)) if state.denied(&p.parent) => permission_denied(PROJECTS_GET, &name),
        Some((pid, p)) => json_response(StatusCode::OK, &project_json(pid, p)),
        None => google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Project '{name}' not found."),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with_page_size(page_size: usize) -> State {
        State {
            organizations: Default::default(),
            folders: Default::default(),
            projects: Default::default(),
            denied_resources: Default::default(),
            denied_permissions: Default::default(),
            page_size,
            latency: Default::default(),
            throttle: 0,
            issued_accounts: Default::default(),
            revoked: Default::default(),
            tokens: Default::default(),
            impersonators: Default::default(),
            calls: Calls::default(),
            in_flight: 0,
            max_in_flight: 0,
            controls: Default::default(),
        }
    }

    fn query(token: Option<&str>, size: Option<usize>) -> ListQuery {
        ListQuery {
            parent: Some("folders/1".into()),
            page_token: token.map(Into::into),
            page_size: size,
            show_deleted: None,
        }
    }

    #[test]
    fn pages_walk_every_item_once_and_tokens_are_bound_to_their_parent() {
        let state = state_with_page_size(2);
        let items: Vec<u32> = (0..5).collect();
        let mut seen = vec![];
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let (items, next) = page(
                &state,
                items.clone(),
                &query(cursor.as_deref(), None),
                "folders/1",
            )
            .unwrap_or_default();
            seen.extend(items);
            pages += 1;
            cursor = next;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(seen, vec![0, 1, 2, 3, 4]);
        assert_eq!(pages, 3);
        // A client asking for less than the server's size gets less.
        let (first, _) =
            page(&state, items.clone(), &query(None, Some(1)), "folders/1").unwrap_or_default();
        assert_eq!(first, vec![0]);
        assert!(
            page(
                &state,
                items,
                &query(Some("2@folders/9"), None),
                "folders/1"
            )
            .is_err()
        );
    }
}
