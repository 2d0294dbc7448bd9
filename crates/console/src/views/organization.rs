//! Settings → Organization: its name, slug (checked for availability as it is typed) and logo,
//! and deleting it after typing its slug. Members see the settings read-only.

use askama::Template;
use canopy_tenancy::service::{OrgAccess, OrganizationChanges, OrganizationError};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;

use super::{FieldErrors, check_form};
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page, redirect};
use crate::format;

#[derive(Template)]
#[template(path = "settings/organization.html")]
struct OrganizationPage {
    chrome: Chrome,
    slug: String,
    created: String,
    form: Update,
    errors: FieldErrors,
    other_errors: Vec<String>,
    delete_error: Option<String>,
}

/// The settings form.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct Update {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    logo: String,
}

fn current(access: &OrgAccess) -> Update {
    let org = access.organization();
    Update {
        csrf: String::new(),
        name: org.name.clone(),
        slug: org.slug.as_str().to_string(),
        logo: org.logo.clone().unwrap_or_default(),
    }
}

fn render(
    access: &OrgAccess,
    chrome: Chrome,
    status: StatusCode,
    form: Update,
    errors: FieldErrors,
    delete_error: Option<String>,
) -> Response {
    let org = access.organization();
    let other_errors = errors.others(&["name", "slug", "logo"]);
    page(
        status,
        &OrganizationPage {
            chrome,
            slug: org.slug.as_str().to_string(),
            created: format::when(org.created_at),
            form,
            errors,
            other_errors,
            delete_error,
        },
    )
}

/// `GET /org/{slug}/settings/organization`.
#[handler]
pub async fn show(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = chrome::organization(&state, req, &slug, "organization").await?;
    let form = current(&access);
    Ok(render(
        &access,
        chrome,
        StatusCode::OK,
        form,
        FieldErrors::default(),
        None,
    ))
}

/// `POST /org/{slug}/settings/organization` (admin or owner): saves what changed.
#[handler]
pub async fn update(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Form(form): Form<Update>,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = chrome::organization(&state, req, &slug, "organization").await?;
    check_form(&viewer, req, &form.csrf)?;
    let before = current(&access);
    let logo = form.logo.trim();
    let changes = OrganizationChanges {
        name: (form.name != before.name).then(|| form.name.clone()),
        slug: (form.slug.trim() != before.slug).then(|| form.slug.trim().to_string()),
        logo: (logo != before.logo).then(|| Some(logo.to_string()).filter(|l| !l.is_empty())),
        metadata: None,
    };
    match state.tenancy.update_organization(&access, changes).await {
        Ok(org) => Ok(redirect(&format!(
            "/org/{}/settings/organization?done=saved",
            org.slug.as_str()
        ))),
        Err(OrganizationError::Invalid(v)) => Ok(render(
            &access,
            chrome,
            StatusCode::UNPROCESSABLE_ENTITY,
            form,
            FieldErrors::from_validation(&v, &[]),
            None,
        )),
        Err(OrganizationError::SlugTaken) => Ok(render(
            &access,
            chrome,
            StatusCode::CONFLICT,
            form,
            FieldErrors::one("slug", "This slug is taken. Choose another one."),
            None,
        )),
        Err(OrganizationError::Forbidden(_)) => Err(Failure::Forbidden),
        Err(OrganizationError::NotFound) => Err(Failure::NotFound),
        Err(OrganizationError::Store(e)) => Err(Failure::Store(e)),
    }
}

/// The slug being typed.
#[derive(Debug, Deserialize)]
pub struct SlugQuery {
    #[serde(default)]
    slug: String,
}

#[derive(Template)]
#[template(path = "settings/slug_check.html")]
struct SlugCheck {
    ok: bool,
    message: String,
}

/// `GET /org/{slug}/settings/organization/slug?slug=`: whether a slug is free, as a line
/// under the field (htmx swaps it in while the admin types; without JavaScript the form's
/// own answer says the same).
#[handler]
pub async fn slug_check(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Query(query): Query<SlugQuery>,
) -> Result<Response, Failure> {
    let (_, access, _) = chrome::organization(&state, req, &slug, "organization").await?;
    let wanted = query.slug.trim();
    let (ok, message) = if wanted == access.organization().slug.as_str() {
        (true, "This is the current slug.".to_string())
    } else {
        match state.tenancy.slug_available(wanted).await {
            Ok(true) => (true, format!("{wanted} is available.")),
            Ok(false) => (false, format!("{wanted} is taken.")),
            Err(OrganizationError::Invalid(v)) => (
                false,
                v.errors
                    .first()
                    .map_or_else(|| "Not a valid slug.".to_string(), |e| e.message.clone()),
            ),
            Err(OrganizationError::Store(e)) => return Err(Failure::Store(e)),
            Err(_) => (false, "Not a valid slug.".to_string()),
        }
    };
    Ok(page(StatusCode::OK, &SlugCheck { ok, message }))
}

/// The deletion form: the slug typed again.
#[derive(Debug, Deserialize)]
pub struct Delete {
    csrf: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /org/{slug}/settings/organization/delete` (owner): deletes the organization and
/// everything in it once its slug was typed.
#[handler]
pub async fn delete(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Form(form): Form<Delete>,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = chrome::organization(&state, req, &slug, "organization").await?;
    check_form(&viewer, req, &form.csrf)?;
    if form.confirm.trim() != access.organization().slug.as_str() {
        let current = current(&access);
        return Ok(render(
            &access,
            chrome,
            StatusCode::UNPROCESSABLE_ENTITY,
            current,
            FieldErrors::default(),
            Some(format!(
                "Type {} exactly to delete this organization.",
                access.organization().slug.as_str()
            )),
        ));
    }
    match state.tenancy.delete_organization(&access).await {
        Ok(()) => Ok(redirect("/orgs?done=deleted")),
        Err(OrganizationError::Forbidden(_)) => Err(Failure::Forbidden),
        Err(OrganizationError::NotFound) => Err(Failure::NotFound),
        Err(OrganizationError::Store(e)) => Err(Failure::Store(e)),
        Err(other) => {
            tracing::error!(error = %other, "deleting an organization failed");
            Err(Failure::NotFound)
        }
    }
}
