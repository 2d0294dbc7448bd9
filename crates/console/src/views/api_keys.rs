//! Your account → API keys: create one (its token is shown once, with a copy button), list
//! them with their state, revoke one. Keys belong to the person, not to an organization; a
//! key reaches the organizations whose plan includes API access.

use askama::Template;
use canopy_billing::Feature;
use canopy_kernel::id::ApiKeyId;
use canopy_tenancy::{ApiKeyError, Role};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path};
use poem::{Request, Response, handler};
use serde::Deserialize;
use uuid::Uuid;

use super::{FieldErrors, check_form};
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page, redirect};
use crate::format;
use crate::session::Viewer;

/// One key in the list.
struct Row {
    id: String,
    name: String,
    prefix: String,
    created: String,
    expires: String,
    state: &'static str,
}

/// An organization of the viewer whose plan keeps API keys out.
struct Gated {
    name: String,
    slug: String,
    plan: &'static str,
    /// The viewer may change the plan (owner).
    owner: bool,
}

#[derive(Template)]
#[template(path = "settings/api_keys.html")]
struct KeysPage {
    chrome: Chrome,
    rows: Vec<Row>,
    gated: Vec<Gated>,
    name: String,
    days: String,
    errors: FieldErrors,
    /// The token of the key just created: shown this once.
    created: Option<String>,
}

async fn render(
    state: &ConsoleState,
    viewer: &Viewer,
    chrome: Chrome,
    status: StatusCode,
    form: Create,
    errors: FieldErrors,
    created: Option<String>,
) -> Result<Response, Failure> {
    let now = state.tenancy.clock().now();
    let rows = state
        .tenancy
        .list_api_keys(&viewer.principal)
        .await?
        .into_iter()
        .map(|k| Row {
            id: k.id.to_string(),
            name: k.name,
            prefix: k.prefix,
            created: format::ago(k.created_at, now),
            expires: k
                .expires_at
                .map_or_else(|| "never".to_string(), |at| format::ago(at, now)),
            state: if k.revoked_at.is_some() {
                "revoked"
            } else if k.expires_at.is_some_and(|at| at <= now) {
                "expired"
            } else {
                "active"
            },
        })
        .collect();
    // API access is a paid feature: say which of the viewer's organizations a key cannot
    // reach, with the way to change that.
    let mut gated = Vec::new();
    for summary in state.tenancy.list_organizations(&viewer.principal).await? {
        let terms = state.billing.terms(summary.organization.id).await?;
        if !terms.has(Feature::ApiAccess) {
            gated.push(Gated {
                name: summary.organization.name.clone(),
                slug: summary.organization.slug.as_str().to_string(),
                plan: terms.display_name,
                owner: summary.role == Role::Owner,
            });
        }
    }
    Ok(page(
        status,
        &KeysPage {
            chrome,
            rows,
            gated,
            name: form.name,
            days: form.days,
            errors,
            created,
        },
    ))
}

/// `GET /settings/api-keys`.
#[handler]
pub async fn show(state: Data<&ConsoleState>, req: &Request) -> Result<Response, Failure> {
    let (viewer, chrome) = chrome::personal(&state, req, "api-keys").await?;
    render(
        &state,
        &viewer,
        chrome,
        StatusCode::OK,
        Create::default(),
        FieldErrors::default(),
        None,
    )
    .await
}

/// The new-key form.
#[derive(Debug, Deserialize, Default)]
pub struct Create {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// Days until it expires; empty is never.
    #[serde(default)]
    days: String,
}

/// `POST /settings/api-keys`: creates a key and shows its token once (the answer is not
/// cached and the token is in no URL).
#[handler]
pub async fn create(
    state: Data<&ConsoleState>,
    req: &Request,
    Form(form): Form<Create>,
) -> Result<Response, Failure> {
    let (viewer, chrome) = chrome::personal(&state, req, "api-keys").await?;
    check_form(&viewer, req, &form.csrf)?;
    let days = match form.days.trim() {
        "" => None,
        raw => match raw.parse::<u32>() {
            Ok(d) => Some(d),
            Err(_) => {
                return render(
                    &state,
                    &viewer,
                    chrome,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    form,
                    FieldErrors::one("days", "Enter a whole number of days, or leave it empty."),
                    None,
                )
                .await;
            }
        },
    };
    match state
        .tenancy
        .create_api_key(&viewer.principal, &form.name, days)
        .await
    {
        Ok(issued) => {
            render(
                &state,
                &viewer,
                chrome,
                StatusCode::CREATED,
                Create::default(),
                FieldErrors::default(),
                Some(issued.token),
            )
            .await
        }
        Err(ApiKeyError::Invalid(v)) => {
            let errors = FieldErrors::from_validation(&v, &[("expiresInDays", "days")]);
            render(
                &state,
                &viewer,
                chrome,
                StatusCode::UNPROCESSABLE_ENTITY,
                form,
                errors,
                None,
            )
            .await
        }
        Err(ApiKeyError::EmailUnverified) => {
            render(
                &state,
                &viewer,
                chrome,
                StatusCode::FORBIDDEN,
                form,
                FieldErrors::one(
                    "name",
                    "Verify your e-mail address before creating API keys: open the link we \
                     sent you, or send a new one from your account page.",
                ),
                None,
            )
            .await
        }
        Err(ApiKeyError::NotFound) => Err(Failure::NotFound),
        Err(ApiKeyError::Unauthenticated) => Err(Failure::SignIn("/settings/api-keys".into())),
        Err(ApiKeyError::Store(e)) => Err(Failure::Store(e)),
    }
}

/// A form with nothing but its token.
#[derive(Debug, Deserialize)]
pub struct Plain {
    csrf: String,
}

/// `POST /settings/api-keys/{id}/revoke`: the key stops working at once.
#[handler]
pub async fn revoke(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(id): Path<String>,
    Form(form): Form<Plain>,
) -> Result<Response, Failure> {
    let viewer = chrome::viewer(&state, req).await?;
    check_form(&viewer, req, &form.csrf)?;
    let id = Uuid::parse_str(&id)
        .map(ApiKeyId)
        .map_err(|_| Failure::NotFound)?;
    match state.tenancy.revoke_api_key(&viewer.principal, id).await {
        Ok(()) => Ok(redirect("/settings/api-keys?done=revoked")),
        Err(ApiKeyError::Store(e)) => Err(Failure::Store(e)),
        Err(_) => Err(Failure::NotFound),
    }
}
