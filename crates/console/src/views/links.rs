//! The pages e-mail links open, before anyone is logged in: verify an address (or a new one),
//! choose a new password, and ask for a reset link.
//!
//! A link's page shows a button and redeems on POST: mail scanners open links to check them,
//! and a GET that used the single-use token would spend it before the person clicks.

use askama::Template;
use canopy_tenancy::AccountError;
use canopy_tenancy::account::{ClientInfo, TokenPurpose};
use poem::http::StatusCode;
use poem::web::{Data, Form, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;

use super::FieldErrors;
use super::account::account_failure;
use super::auth::{check_pre_session, pre_session_token, with_pre_session};
use crate::ConsoleState;
use crate::error::{Failure, page, redirect};

/// `?token=` of a link.
#[derive(Debug, Deserialize, Default)]
pub struct LinkQuery {
    #[serde(default)]
    token: String,
}

#[derive(Template)]
#[template(path = "account/link.html")]
struct LinkPage {
    csrf: String,
    /// `verify` or `reset`.
    kind: &'static str,
    token: String,
    error: Option<String>,
    errors: FieldErrors,
    done: Option<String>,
}

fn link_page(req: &Request, status: StatusCode, secure: bool, mut page_data: LinkPage) -> Response {
    let (csrf, fresh) = pre_session_token(req);
    page_data.csrf = csrf.clone();
    with_pre_session(page(status, &page_data), &csrf, fresh, secure)
}

fn link_error(e: &AccountError) -> Option<(StatusCode, &'static str)> {
    match e {
        AccountError::LinkInvalid => Some((
            StatusCode::UNPROCESSABLE_ENTITY,
            "This link is not valid: it was already used, or a newer one replaced it. Ask for a new one.",
        )),
        AccountError::LinkExpired => Some((
            StatusCode::GONE,
            "This link has expired. Ask for a new one.",
        )),
        AccountError::EmailTaken => Some((
            StatusCode::CONFLICT,
            "Another account took this address meanwhile: it cannot become yours.",
        )),
        _ => None,
    }
}

/// A link form's checks before anything changes: its pre-session token, then the per-client
/// throttle (these pages try secrets); who is asking.
fn admitted(state: &ConsoleState, req: &Request, csrf: &str) -> Result<ClientInfo, Failure> {
    check_pre_session(req, csrf)?;
    state.throttle.check(req).map_err(Failure::RateLimited)?;
    Ok(state.throttle.client(req))
}

/// The page a link of `kind` opens: its button (and for a reset, the password field), with
/// nothing redeemed yet.
fn opened(state: &ConsoleState, req: &Request, kind: &'static str, token: String) -> Response {
    link_page(
        req,
        StatusCode::OK,
        state.secure_cookies(),
        LinkPage {
            csrf: String::new(),
            kind,
            token,
            error: None,
            errors: FieldErrors::default(),
            done: None,
        },
    )
}

/// `GET /verify-email?token=`: a button that confirms the address.
#[handler]
pub async fn verify_page(
    state: Data<&ConsoleState>,
    req: &Request,
    Query(q): Query<LinkQuery>,
) -> Response {
    opened(&state, req, "verify", q.token)
}

/// The link forms: the token, and for a reset the new password.
#[derive(Debug, Deserialize)]
pub struct LinkForm {
    csrf: String,
    token: String,
    #[serde(default)]
    password: String,
}

/// `POST /verify-email`: redeems a verification or new-address link.
#[handler]
pub async fn verify(
    state: Data<&ConsoleState>,
    req: &Request,
    Form(form): Form<LinkForm>,
) -> Response {
    let client = match admitted(&state, req, &form.csrf) {
        Ok(client) => client,
        Err(f) => return f.into_response(),
    };
    let (status, error, done) = match state.tenancy.confirm_email(&form.token, &client).await {
        Ok(done) => (
            StatusCode::OK,
            None,
            Some(match done.purpose {
                TokenPurpose::ChangeEmail => format!(
                    "Your e-mail address is now {}. Log in with it from now on.",
                    done.user.email
                ),
                _ => format!("{} is verified. Thank you.", done.user.email),
            }),
        ),
        Err(e) => match link_error(&e) {
            Some((status, sentence)) => (status, Some(sentence.to_string()), None),
            None => return account_failure(e).into_response(),
        },
    };
    link_page(
        req,
        status,
        state.secure_cookies(),
        LinkPage {
            csrf: String::new(),
            kind: "verify",
            token: form.token,
            error,
            errors: FieldErrors::default(),
            done,
        },
    )
}

/// `GET /reset-password?token=`: the new-password form.
#[handler]
pub async fn reset_page(
    state: Data<&ConsoleState>,
    req: &Request,
    Query(q): Query<LinkQuery>,
) -> Response {
    opened(&state, req, "reset", q.token)
}

/// `POST /reset-password`: sets the new password; every session ends, then log in.
#[handler]
pub async fn reset(
    state: Data<&ConsoleState>,
    req: &Request,
    Form(form): Form<LinkForm>,
) -> Response {
    let client = match admitted(&state, req, &form.csrf) {
        Ok(client) => client,
        Err(f) => return f.into_response(),
    };
    let (status, error, errors) = match state
        .tenancy
        .reset_password(&form.token, form.password, &client)
        .await
    {
        Ok(_) => return redirect("/login?done=reset"),
        Err(AccountError::Invalid(v)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            FieldErrors::from_validation(&v, &[("newPassword", "password")]),
        ),
        Err(e) => match link_error(&e) {
            Some((status, sentence)) => {
                (status, Some(sentence.to_string()), FieldErrors::default())
            }
            None => return account_failure(e).into_response(),
        },
    };
    link_page(
        req,
        status,
        state.secure_cookies(),
        LinkPage {
            csrf: String::new(),
            kind: "reset",
            token: form.token,
            error,
            errors,
            done: None,
        },
    )
}

#[derive(Template)]
#[template(path = "account/forgot.html")]
struct ForgotPage {
    csrf: String,
    email: String,
    sent: bool,
}

/// `GET /forgot-password`.
#[handler]
pub async fn forgot_page(state: Data<&ConsoleState>, req: &Request) -> Response {
    let (csrf, fresh) = pre_session_token(req);
    let resp = page(
        StatusCode::OK,
        &ForgotPage {
            csrf: csrf.clone(),
            email: String::new(),
            sent: false,
        },
    );
    with_pre_session(resp, &csrf, fresh, state.secure_cookies())
}

/// The forgot-password form.
#[derive(Debug, Deserialize)]
pub struct ForgotForm {
    csrf: String,
    email: String,
}

/// `POST /forgot-password`: the same answer for any address, given before it is looked up.
#[handler]
pub async fn forgot(
    state: Data<&ConsoleState>,
    req: &Request,
    Form(form): Form<ForgotForm>,
) -> Response {
    let client = match admitted(&state, req, &form.csrf) {
        Ok(client) => client,
        Err(f) => return f.into_response(),
    };
    if state.throttle.mail_allowed(&form.email) {
        let tenancy = state.tenancy.clone();
        let email = form.email.clone();
        // After the answer, like the API: its timing must not tell who has an account.
        tokio::spawn(async move {
            if let Err(e) = tenancy.request_password_reset(&email, &client).await {
                tracing::warn!(error = %e, "a password-reset request failed");
            }
        });
    }
    let (csrf, fresh) = pre_session_token(req);
    let resp = page(
        StatusCode::OK,
        &ForgotPage {
            csrf: csrf.clone(),
            email: form.email,
            sent: true,
        },
    );
    with_pre_session(resp, &csrf, fresh, state.secure_cookies())
}
