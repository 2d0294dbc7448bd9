//! One cloud organization's members and what its syncs changed: every account or project
//! found with what Canopy did with it, excluding one from bulk connects or including it
//! again, the changes feed (joined, moved, left, renamed, state changed), sync now, and
//! disconnecting the whole organization with a typed confirmation (its accounts stay
//! connected as standalone ones).

use askama::Template;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_cloud_org::organization::member::MemberStatus;
use canopy_cloud_org::organization::ports::{MemberFilter, RecordedChange};
use canopy_cloud_org::organization::service::CloudOrganizationError;
use canopy_kernel::PageRequest;
use canopy_tenancy::Action;
use canopy_tenancy::service::OrgAccess;
use poem::http::StatusCode;
use poem::web::{Data, Form, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;
use uuid::Uuid;

use super::check_form;
use super::cloud_orgs::{Head, failure, head, member_status_class};
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page, redirect};
use crate::format;

/// Members per page.
const PER_PAGE: u32 = 100;

/// Changes shown, newest first.
const CHANGES: u32 = 25;

/// A member row.
struct MemberRow {
    key: String,
    name: String,
    email: String,
    path: String,
    status: &'static str,
    status_class: &'static str,
    failure: Option<String>,
    /// What the viewer may do with it: `exclude` or `include` (a path word), and its label.
    action: Option<&'static str>,
    action_label: &'static str,
}

/// A change of the feed.
struct ChangeRow {
    kind: String,
    subject: String,
    details: String,
    when: String,
}

#[derive(Template)]
#[template(path = "cloud_orgs/members.html")]
struct MembersPage {
    chrome: Chrome,
    slug: String,
    head: Head,
    tab: &'static str,
    rows: Vec<MemberRow>,
    next: Option<String>,
    changes: Vec<ChangeRow>,
    notice: Option<&'static str>,
    disconnect_error: Option<String>,
}

/// The page's query.
#[derive(Debug, Deserialize, Default)]
pub struct MembersQuery {
    cursor: Option<String>,
    done: Option<String>,
}

/// What a change's facts say, in a few words (`from → to`, or the fields it carries).
fn summary(details: &serde_json::Value) -> String {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match (details.get("from"), details.get("to")) {
        (Some(from), Some(to)) => format!("{} → {}", text(from), text(to)),
        _ => details
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| format!("{k}: {}", text(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
    }
}

fn change_row(c: &RecordedChange, now: chrono::DateTime<chrono::Utc>) -> ChangeRow {
    ChangeRow {
        kind: c.kind.replace('_', " "),
        subject: c.subject.clone().unwrap_or_default(),
        details: summary(&c.details),
        when: format::ago(c.occurred_at, now),
    }
}

async fn members_page(
    state: &ConsoleState,
    access: &OrgAccess,
    chrome: Chrome,
    id: CloudOrganizationId,
    q: &MembersQuery,
    disconnect_error: Option<String>,
) -> Result<MembersPage, Failure> {
    let cloud_org = state.cloud_orgs.get(access, id).await.map_err(failure)?;
    let request =
        PageRequest::parse(Some(PER_PAGE), q.cursor.as_deref()).map_err(|_| Failure::NotFound)?;
    let members = state
        .cloud_orgs
        .members(access, id, &MemberFilter::default(), request)
        .await
        .map_err(failure)?;
    let changes = state
        .cloud_orgs
        .changes(
            access,
            id,
            PageRequest {
                limit: CHANGES,
                after: None,
            },
        )
        .await
        .map_err(failure)?;
    let may = access.require(Action::ConnectCloudAccount).is_ok();
    let now = state.tenancy.clock().now();
    let rows = members
        .items
        .iter()
        .map(|m| MemberRow {
            key: m.found.key.clone(),
            name: m.found.name.clone(),
            email: m.found.email.clone().unwrap_or_default(),
            path: m.hierarchy_path.clone(),
            status: m.status.as_str(),
            status_class: member_status_class(m.status),
            failure: m.failure.clone(),
            action: match m.status {
                _ if !may => None,
                MemberStatus::Discovered | MemberStatus::Failed => Some("exclude"),
                MemberStatus::Excluded => Some("include"),
                MemberStatus::Connecting | MemberStatus::Connected => None,
            },
            action_label: if m.status == MemberStatus::Excluded {
                "Include"
            } else {
                "Exclude"
            },
        })
        .collect();
    Ok(MembersPage {
        chrome,
        slug: access.organization().slug.as_str().to_string(),
        head: head(&cloud_org, now),
        tab: "members",
        rows,
        next: members.next.map(|c| c.encode()),
        changes: changes.items.iter().map(|c| change_row(c, now)).collect(),
        notice: match q.done.as_deref() {
            Some("excluded") => Some("Excluded: bulk connects skip it now."),
            Some("included") => Some("Included again: a connect may take it."),
            _ => None,
        },
        disconnect_error,
    })
}

/// `GET /org/{slug}/cloud-organizations/{id}/members` (any member).
#[handler]
pub async fn show(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, Uuid)>,
    Query(q): Query<MembersQuery>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = chrome::organization(&state, req, &slug, "cloud-orgs").await?;
    let p = members_page(&state, &access, chrome, CloudOrganizationId(id), &q, None).await?;
    Ok(page(StatusCode::OK, &p))
}

/// A form carrying only its token.
#[derive(Debug, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    pub(super) csrf: String,
}

/// `POST /org/{slug}/cloud-organizations/{id}/sync`: queue a sync, follow its job.
#[handler]
pub async fn sync(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, Uuid)>,
    Form(form): Form<TokenForm>,
) -> Result<Response, Failure> {
    let (viewer, access, _) = chrome::organization(&state, req, &slug, "cloud-orgs").await?;
    check_form(&viewer, req, &form.csrf)?;
    let id = CloudOrganizationId(id);
    let job = match state.cloud_orgs.sync(&access, id).await {
        Ok((_, job)) => job.id,
        Err(CloudOrganizationError::SyncInProgress(running)) => running,
        Err(e) => return Err(failure(e)),
    };
    Ok(redirect(&format!(
        "/org/{}/cloud-organizations/{}/jobs/{}",
        access.organization().slug.as_str(),
        id.as_uuid(),
        job.0
    )))
}

/// `POST /org/{slug}/cloud-organizations/{id}/members/{key}/exclude` and `.../include`.
async fn set_excluded(
    state: &ConsoleState,
    req: &Request,
    (slug, id, key): (String, Uuid, String),
    csrf: &str,
    excluded: bool,
) -> Result<Response, Failure> {
    let (viewer, access, _) = chrome::organization(state, req, &slug, "cloud-orgs").await?;
    check_form(&viewer, req, csrf)?;
    let id = CloudOrganizationId(id);
    state
        .cloud_orgs
        .set_excluded(&access, id, &key, excluded)
        .await
        .map_err(failure)?;
    Ok(redirect(&format!(
        "/org/{}/cloud-organizations/{}/members?done={}",
        access.organization().slug.as_str(),
        id.as_uuid(),
        if excluded { "excluded" } else { "included" }
    )))
}

/// `POST .../members/{key}/exclude`.
#[handler]
pub async fn exclude(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(path): Path<(String, Uuid, String)>,
    Form(form): Form<TokenForm>,
) -> Result<Response, Failure> {
    set_excluded(&state, req, path, &form.csrf, true).await
}

/// `POST .../members/{key}/include`.
#[handler]
pub async fn include(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(path): Path<(String, Uuid, String)>,
    Form(form): Form<TokenForm>,
) -> Result<Response, Failure> {
    set_excluded(&state, req, path, &form.csrf, false).await
}

/// The typed confirmation of a disconnect.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisconnectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /org/{slug}/cloud-organizations/{id}/disconnect` (admin or owner, typed id).
#[handler]
pub async fn disconnect(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, Uuid)>,
    Form(form): Form<DisconnectForm>,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = chrome::organization(&state, req, &slug, "cloud-orgs").await?;
    check_form(&viewer, req, &form.csrf)?;
    let id = CloudOrganizationId(id);
    match state.cloud_orgs.delete(&access, id, &form.confirm).await {
        Ok(gone) => Ok(redirect(&format!(
            "/org/{}/cloud-organizations?done=disconnected&kept={}",
            access.organization().slug.as_str(),
            gone.kept_accounts.len()
        ))),
        Err(CloudOrganizationError::Invalid(v)) => {
            let message = v
                .errors
                .first()
                .map_or_else(String::new, |e| e.message.clone());
            let q = MembersQuery::default();
            let p = members_page(&state, &access, chrome, id, &q, Some(message)).await?;
            Ok(page(StatusCode::UNPROCESSABLE_ENTITY, &p))
        }
        Err(e) => Err(failure(e)),
    }
}
