//! Approving a terminal's log-in: the code `canopy login` shows, typed here or arriving in
//! its link, the request it names (the device, when it asked, how long it has left), and
//! approve or deny. Approving hands that terminal an API key of the viewer's own, named after
//! the device, listed and revocable with their other keys.

use askama::Template;
use canopy_tenancy::device::{DecideError, DeviceAuthorization};
use poem::http::StatusCode;
use poem::web::{Data, Form, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;

use super::check_form;
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page};
use crate::format;

/// A request as the page shows it.
struct Asking {
    client_name: String,
    user_code: String,
    asked: String,
    asked_iso: String,
    left: String,
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage {
    chrome: Chrome,
    code: String,
    asking: Option<Asking>,
    /// A sentence when the code names no pending request, or the answer could not be taken.
    problem: Option<String>,
    /// After an answer: approved or not, and the device.
    answered: Option<(bool, String)>,
}

/// The code in the link or the form.
#[derive(Debug, Deserialize, Default)]
pub struct CodeQuery {
    code: Option<String>,
}

/// An answer.
#[derive(Debug, Deserialize)]
pub struct Answer {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    action: String,
}

fn asking(a: &DeviceAuthorization, now: chrono::DateTime<chrono::Utc>) -> Asking {
    Asking {
        client_name: a.client_name.clone(),
        user_code: a.user_code.clone(),
        asked: format::ago(a.created_at, now),
        asked_iso: a.created_at.to_rfc3339(),
        left: format::ago(a.expires_at, now),
    }
}

const NOT_PENDING: &str = "No request waits with this code. It may have been mistyped, answered already, or expired (codes live ten minutes): run canopy login again.";

/// `GET /device`.
#[handler]
pub async fn show(
    state: Data<&ConsoleState>,
    req: &Request,
    Query(q): Query<CodeQuery>,
) -> Result<Response, Failure> {
    let (_, chrome) = chrome::personal(&state, req, "api-keys").await?;
    let code = q.code.unwrap_or_default();
    let (mut found, mut problem) = (None, None);
    if !code.trim().is_empty() {
        match state.devices.pending(&code).await {
            Ok(a) => found = Some(asking(&a, state.tenancy.clock().now())),
            Err(DecideError::Store(s)) => return Err(Failure::Store(s)),
            Err(_) => problem = Some(NOT_PENDING.to_string()),
        }
    }
    let status = if problem.is_some() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    Ok(page(
        status,
        &DevicePage {
            chrome,
            code,
            asking: found,
            problem,
            answered: None,
        },
    ))
}

/// `POST /device`: approve or deny.
#[handler]
pub async fn answer(
    state: Data<&ConsoleState>,
    req: &Request,
    Form(f): Form<Answer>,
) -> Result<Response, Failure> {
    let (viewer, chrome) = chrome::personal(&state, req, "api-keys").await?;
    check_form(&viewer, req, &f.csrf)?;
    let approve = f.action == "approve";
    let (status, problem, answered) = match state
        .devices
        .decide(viewer.principal.user_id, &f.code, approve)
        .await
    {
        Ok(a) => {
            tracing::info!(approved = approve, "device log-in answered");
            (StatusCode::OK, None, Some((approve, a.client_name)))
        }
        Err(DecideError::Store(s)) => return Err(Failure::Store(s)),
        Err(DecideError::EmailUnverified) => (
            StatusCode::FORBIDDEN,
            Some(DecideError::EmailUnverified.to_string()),
            None,
        ),
        Err(DecideError::NotFound) => (StatusCode::NOT_FOUND, Some(NOT_PENDING.to_string()), None),
    };
    Ok(page(
        status,
        &DevicePage {
            chrome,
            code: f.code,
            asking: None,
            problem,
            answered,
        },
    ))
}
