//! Settings → Cloud accounts: the list, and one account's page (details, the health timeline
//! with classified errors, editing, sync now, disconnect with typed confirmation). Connecting
//! one is [`super::connect`].

use std::collections::BTreeMap;

use askama::Template;
use canopy_cloud_org::account::{AccountStatus, CloudIdentity};
use canopy_cloud_org::identifiers::AWS_REGIONS;
use canopy_cloud_org::{
    AccountChanges, AccountFilter, CloudAccount, CloudAccountError, CloudAccountId,
};
use canopy_kernel::PageRequest;
use canopy_tenancy::service::OrgAccess;
use poem::http::StatusCode;
use poem::web::{Data, Form, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;

use super::{FieldErrors, check_form};
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page, redirect};
use crate::format;

/// One account in the list.
struct Row {
    id: String,
    name: String,
    provider: &'static str,
    key: String,
    region: String,
    role_arn: String,
    environment: Option<&'static str>,
    status: &'static str,
    ses_domains: String,
    synced: String,
    last_error: Option<String>,
}

#[derive(Template)]
#[template(path = "accounts/list.html")]
struct ListPage {
    chrome: Chrome,
    slug: String,
    rows: Vec<Row>,
    next: Option<String>,
}

/// One health check.
struct Check {
    at: String,
    ago: String,
    ok: bool,
    failure: Option<&'static str>,
    message: Option<String>,
    advice: Option<&'static str>,
    duration_ms: u64,
}

#[derive(Template)]
#[template(path = "accounts/detail.html")]
struct DetailPage {
    chrome: Chrome,
    slug: String,
    id: String,
    name: String,
    provider: &'static str,
    key: String,
    region: String,
    role_arn: String,
    project_number: String,
    status: &'static str,
    status_detail: &'static str,
    synced: String,
    last_error: Option<String>,
    placement: Option<String>,
    checks: Vec<Check>,
    form: EditForm,
    errors: FieldErrors,
    other_errors: Vec<String>,
    disconnect_error: Option<String>,
    regions: Vec<&'static str>,
}

/// The edit form's values.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct EditForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    alias: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    ses_domains: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    role_arn: String,
    #[serde(default)]
    region: String,
}

pub(super) fn name_of(a: &CloudAccount) -> String {
    a.settings
        .alias
        .clone()
        .unwrap_or_else(|| a.identity.account_key().to_string())
}

fn status_word(s: AccountStatus) -> &'static str {
    s.as_str()
}

fn synced(a: &CloudAccount, now: chrono::DateTime<chrono::Utc>) -> String {
    match a.last_synced_at {
        Some(at) => format!("last synced {}", format::ago(at, now)),
        None => "never synced".into(),
    }
}

fn row(a: &CloudAccount, now: chrono::DateTime<chrono::Utc>) -> Row {
    let (region, role_arn) = match &a.identity {
        CloudIdentity::Aws {
            region, role_arn, ..
        } => (region.as_str().to_string(), role_arn.as_str().to_string()),
        CloudIdentity::Gcp { .. } => (String::new(), String::new()),
    };
    Row {
        id: a.id.to_string(),
        name: name_of(a),
        provider: a.identity.provider().as_str(),
        key: a.identity.account_key().to_string(),
        region,
        role_arn,
        environment: a.settings.environment.map(|e| e.as_str()),
        status: status_word(a.status),
        ses_domains: a.settings.ses_domains.join(", "),
        synced: synced(a, now),
        // The list names the failure; the account's page has the whole message and advice.
        last_error: a
            .last_error
            .as_deref()
            .and_then(|e| e.split(':').next())
            .map(|kind| kind.trim().replace('_', " ")),
    }
}

pub(super) fn regions() -> Vec<&'static str> {
    AWS_REGIONS
        .iter()
        .filter(|(p, _)| *p == "aws")
        .map(|(_, r)| *r)
        .collect()
}

pub(super) fn account_failure(e: CloudAccountError) -> Failure {
    match e {
        CloudAccountError::Forbidden(_) => Failure::Forbidden,
        CloudAccountError::NotFound => Failure::NotFound,
        CloudAccountError::Store(s) => Failure::Store(s),
        other => {
            tracing::warn!(error = %other, "unexpected cloud-account refusal");
            Failure::NotFound
        }
    }
}

/// Query of the list: its page.
#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    pub(super) cursor: Option<String>,
    /// What the previous step did (`disconnected`), to say so.
    pub(super) done: Option<String>,
    /// How many accounts a disconnect kept.
    pub(super) kept: Option<u32>,
}

/// `GET /org/{slug}/settings/accounts`.
#[handler]
pub async fn list(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = chrome::organization(&state, req, &slug, "accounts").await?;
    let request =
        PageRequest::parse(Some(100), q.cursor.as_deref()).map_err(|_| Failure::NotFound)?;
    let found = state
        .cloud
        .list(&access, &AccountFilter::default(), request)
        .await
        .map_err(account_failure)?;
    let now = state.tenancy.clock().now();
    Ok(page(
        StatusCode::OK,
        &ListPage {
            chrome,
            slug: access.organization().slug.as_str().to_string(),
            rows: found.items.iter().map(|a| row(a, now)).collect(),
            next: found.next.map(|c| c.encode()),
        },
    ))
}

pub(super) fn lines(raw: &str) -> Vec<String> {
    raw.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `key=value` per line; a line without `=` is reported on the field.
pub(super) fn tags(raw: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for line in raw.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("\u{201c}{line}\u{201d} is not key=value"));
        };
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

pub(super) fn optional(raw: &str) -> Option<String> {
    Some(raw.trim().to_string()).filter(|s| !s.is_empty())
}

/// A form with nothing but the CSRF token.
#[derive(Debug, Deserialize)]
pub struct Plain {
    pub(super) csrf: String,
}

async fn detail_page_of(
    state: &ConsoleState,
    access: &OrgAccess,
    chrome: Chrome,
    id: CloudAccountId,
    form: Option<EditForm>,
    errors: FieldErrors,
    disconnect_error: Option<String>,
) -> Result<DetailPage, Failure> {
    let a = state.cloud.get(access, id).await.map_err(account_failure)?;
    let now = state.tenancy.clock().now();
    let provider = a.identity.provider();
    let checks = state
        .cloud
        .health(access, id, 20)
        .await
        .map_err(account_failure)?
        .into_iter()
        .map(|c| Check {
            at: c.checked_at.to_rfc3339(),
            ago: format::ago(c.checked_at, now),
            ok: c.failure.is_none(),
            failure: c.failure.as_ref().map(|f| f.kind.as_str()),
            message: c.failure.as_ref().map(|f| f.message.clone()),
            advice: c.failure.as_ref().map(|f| f.kind.advice_for(provider)),
            duration_ms: c.duration_ms,
        })
        .collect();
    let (region, role_arn, project_number) = match &a.identity {
        CloudIdentity::Aws {
            region, role_arn, ..
        } => (
            region.as_str().to_string(),
            role_arn.as_str().to_string(),
            String::new(),
        ),
        CloudIdentity::Gcp { project_number, .. } => (
            String::new(),
            String::new(),
            project_number.clone().unwrap_or_default(),
        ),
    };
    let form = form.unwrap_or_else(|| EditForm {
        csrf: chrome.csrf.clone(),
        alias: a.settings.alias.clone().unwrap_or_default(),
        environment: a
            .settings
            .environment
            .map(|e| e.as_str().to_string())
            .unwrap_or_default(),
        ses_domains: a.settings.ses_domains.join("\n"),
        tags: a
            .settings
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n"),
        role_arn: role_arn.clone(),
        region: region.clone(),
    });
    let other_errors = errors.others(&[
        "alias",
        "environment",
        "sesDomains",
        "tags",
        "roleArn",
        "region",
    ]);
    Ok(DetailPage {
        slug: access.organization().slug.as_str().to_string(),
        id: a.id.to_string(),
        name: name_of(&a),
        provider: provider.as_str(),
        key: a.identity.account_key().to_string(),
        region,
        role_arn,
        project_number,
        status: status_word(a.status),
        status_detail: a.status.explain(),
        synced: synced(&a, now),
        last_error: a.last_error.clone(),
        placement: a.placement.as_ref().and_then(|p| p.hierarchy_path.clone()),
        checks,
        form,
        errors,
        other_errors,
        disconnect_error,
        regions: regions(),
        chrome,
    })
}

fn account_id(raw: &str) -> Result<CloudAccountId, Failure> {
    raw.parse::<uuid::Uuid>()
        .map(CloudAccountId)
        .map_err(|_| Failure::NotFound)
}

/// `GET /org/{slug}/settings/accounts/{id}`.
#[handler]
pub async fn detail(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = chrome::organization(&state, req, &slug, "accounts").await?;
    let id = account_id(&id)?;
    let p = detail_page_of(
        &state,
        &access,
        chrome,
        id,
        None,
        FieldErrors::default(),
        None,
    )
    .await?;
    Ok(page(StatusCode::OK, &p))
}

/// `POST /org/{slug}/settings/accounts/{id}`: the edit form (admin or owner).
#[handler]
pub async fn update(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, String)>,
    Form(form): Form<EditForm>,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = chrome::organization(&state, req, &slug, "accounts").await?;
    check_form(&viewer, req, &form.csrf)?;
    let id = account_id(&id)?;
    // A refused edit shows the page again with the input and the errors beside the fields.
    let refused = |form: EditForm, errors: FieldErrors, chrome: Chrome| {
        let (state, access) = (&state, &access);
        async move {
            let p = detail_page_of(state, access, chrome, id, Some(form), errors, None).await?;
            Ok::<_, Failure>(page(StatusCode::UNPROCESSABLE_ENTITY, &p))
        }
    };
    let parsed_tags = match tags(&form.tags) {
        Ok(t) => t,
        Err(message) => return refused(form, FieldErrors::one("tags", message), chrome).await,
    };
    let current = state
        .cloud
        .get(&access, id)
        .await
        .map_err(account_failure)?;
    let aws = matches!(current.identity, CloudIdentity::Aws { .. });
    let changes = AccountChanges {
        alias: Some(optional(&form.alias)),
        environment: Some(optional(&form.environment)),
        tags: Some(parsed_tags),
        ses_domains: Some(lines(&form.ses_domains)),
        role_arn: aws.then(|| form.role_arn.trim().to_string()),
        region: aws.then(|| form.region.trim().to_string()),
        ..AccountChanges::default()
    };
    match state.cloud.update(&access, id, changes).await {
        Ok(a) => Ok(redirect(&format!(
            "/org/{}/settings/accounts/{}?done=saved",
            access.organization().slug.as_str(),
            a.id
        ))),
        Err(CloudAccountError::Invalid(v)) => {
            refused(form, FieldErrors::from_validation(&v, &[]), chrome).await
        }
        Err(e) => Err(account_failure(e)),
    }
}

/// `POST /org/{slug}/settings/accounts/{id}/sync`: checks access now.
#[handler]
pub async fn sync(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, String)>,
    Form(form): Form<Plain>,
) -> Result<Response, Failure> {
    let (viewer, access, _) = chrome::organization(&state, req, &slug, "accounts").await?;
    check_form(&viewer, req, &form.csrf)?;
    let id = account_id(&id)?;
    state
        .cloud
        .sync(&access, id)
        .await
        .map_err(account_failure)?;
    Ok(redirect(&format!(
        "/org/{}/settings/accounts/{id}?done=synced",
        access.organization().slug.as_str()
    )))
}

/// The disconnect form: the account id typed again.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disconnect {
    csrf: String,
    #[serde(default)]
    confirm_account_id: String,
}

/// `POST /org/{slug}/settings/accounts/{id}/disconnect` (admin or owner).
#[handler]
pub async fn disconnect(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, String)>,
    Form(form): Form<Disconnect>,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = chrome::organization(&state, req, &slug, "accounts").await?;
    check_form(&viewer, req, &form.csrf)?;
    let id = account_id(&id)?;
    match state
        .cloud
        .disconnect(&access, id, form.confirm_account_id.trim())
        .await
    {
        Ok(()) => Ok(redirect(&format!(
            "/org/{}/settings/accounts?done=disconnected",
            access.organization().slug.as_str()
        ))),
        Err(CloudAccountError::Invalid(v)) => {
            let message = v
                .errors
                .first()
                .map(|e| e.message.clone())
                .unwrap_or_else(|| "Type the account id to confirm.".into());
            let p = detail_page_of(
                &state,
                &access,
                chrome,
                id,
                None,
                FieldErrors::default(),
                Some(message),
            )
            .await?;
            Ok(page(StatusCode::UNPROCESSABLE_ENTITY, &p))
        }
        Err(e) => Err(account_failure(e)),
    }
}
