//! The viewer's organizations: the list (with role and members), creating one, and the
//! switcher's choice, which persists the active organization server-side (the API's
//! `PUT /v1/me/active-organization`) so the next visit opens there.

use askama::Template;
use canopy_tenancy::{AccessError, OrganizationError};
use poem::http::StatusCode;
use poem::web::{Data, Form};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;

use super::{FieldErrors, check_form};
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page, redirect};

/// One organization in the list.
struct Row {
    name: String,
    slug: String,
    role: &'static str,
    members: u64,
    active: bool,
}

#[derive(Template)]
#[template(path = "orgs/list.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "orgs/new.html")]
struct NewPage {
    chrome: Chrome,
    name: String,
    slug: String,
    errors: FieldErrors,
}

/// `GET /orgs`.
#[handler]
pub async fn list(state: Data<&ConsoleState>, req: &Request) -> Result<Response, Failure> {
    let (viewer, chrome) = chrome::personal(&state, req, "orgs").await?;
    let me = state
        .tenancy
        .me(&viewer.principal)
        .await
        .map_err(|e| match e {
            canopy_tenancy::SessionError::Store(s) => Failure::Store(s),
            _ => Failure::SignIn("/orgs".into()),
        })?;
    let rows = me
        .organizations
        .iter()
        .map(|o| Row {
            name: o.organization.name.clone(),
            slug: o.organization.slug.as_str().to_string(),
            role: o.role.as_str(),
            members: o.member_count,
            active: Some(o.organization.id) == me.active_organization_id,
        })
        .collect();
    Ok(page(StatusCode::OK, &ListPage { chrome, rows }))
}

/// `GET /orgs/new`.
#[handler]
pub async fn new_page(state: Data<&ConsoleState>, req: &Request) -> Result<Response, Failure> {
    let (_, chrome) = chrome::personal(&state, req, "orgs").await?;
    Ok(page(
        StatusCode::OK,
        &NewPage {
            chrome,
            name: String::new(),
            slug: String::new(),
            errors: FieldErrors::default(),
        },
    ))
}

/// The new-organization form.
#[derive(Debug, Deserialize)]
pub struct Create {
    csrf: String,
    name: String,
    #[serde(default)]
    slug: String,
}

/// `POST /orgs`: creates it (the viewer owns it), makes it active, opens its dashboard.
#[handler]
pub async fn create(
    state: Data<&ConsoleState>,
    req: &Request,
    Form(form): Form<Create>,
) -> Result<Response, Failure> {
    let (viewer, chrome) = chrome::personal(&state, req, "orgs").await?;
    check_form(&viewer, req, &form.csrf)?;
    let slug = Some(form.slug.trim()).filter(|s| !s.is_empty());
    let refused = |status, errors| {
        page(
            status,
            &NewPage {
                chrome: chrome.clone(),
                name: form.name.clone(),
                slug: form.slug.clone(),
                errors,
            },
        )
    };
    match state
        .tenancy
        .create_organization(&viewer.principal, &form.name, slug)
        .await
    {
        Ok(org) => {
            state
                .tenancy
                .set_active_organization(&viewer.principal, org.slug.as_str())
                .await
                .map_err(access_failure)?;
            Ok(redirect(&format!(
                "/org/{}/dashboard?done=created",
                org.slug.as_str()
            )))
        }
        Err(OrganizationError::Invalid(v)) => Ok(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            FieldErrors::from_validation(&v, &[]),
        )),
        Err(OrganizationError::SlugTaken) => Ok(refused(
            StatusCode::CONFLICT,
            FieldErrors::one("slug", "This slug is taken. Choose another one."),
        )),
        Err(OrganizationError::Store(e)) => Err(Failure::Store(e)),
        Err(OrganizationError::Forbidden(_)) => Err(Failure::Forbidden),
        Err(OrganizationError::NotFound) => Err(Failure::NotFound),
    }
}

/// The switcher's choice.
#[derive(Debug, Deserialize)]
pub struct Switch {
    csrf: String,
    org: String,
}

fn access_failure(e: AccessError) -> Failure {
    match e {
        AccessError::Unauthenticated => Failure::SignIn("/".into()),
        AccessError::NotFound | AccessError::NotInPlan(_) => Failure::NotFound,
        AccessError::Store(s) => Failure::Store(s),
    }
}

/// `POST /orgs/switch`: the chosen organization becomes the active one and opens.
#[handler]
pub async fn switch(
    state: Data<&ConsoleState>,
    req: &Request,
    Form(form): Form<Switch>,
) -> Response {
    let viewer = match chrome::viewer(&state, req).await {
        Ok(v) => v,
        Err(f) => return f.into_response(),
    };
    if let Err(f) = check_form(&viewer, req, &form.csrf) {
        return f.into_response();
    }
    match state
        .tenancy
        .set_active_organization(&viewer.principal, &form.org)
        .await
    {
        Ok(access) => redirect(&format!(
            "/org/{}/dashboard",
            access.organization().slug.as_str()
        )),
        Err(e) => access_failure(e).into_response(),
    }
}
