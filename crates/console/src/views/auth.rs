//! Log-in, sign-up and log-out. Log-in and sign-up are held to the API's per-address quota;
//! an unknown e-mail and a wrong password get the same answer (the tenancy service also
//! spends the same time on both). Their forms carry the pre-session CSRF token.

use askama::Template;
use canopy_tenancy::SessionError;
use poem::http::StatusCode;
use poem::web::{Data, Form, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;

use super::{FieldErrors, safe_next};
use crate::error::{Failure, page, redirect};
use crate::session::{self, CSRF_COOKIE, SESSION_COOKIE};
use crate::{ConsoleState, DemoLogin};

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    email: String,
    error: Option<String>,
    demo: Option<DemoLogin>,
    /// What the page arrived from: a password reset, an account deletion.
    notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "auth/signup.html")]
struct SignupPage {
    csrf: String,
    next: String,
    name: String,
    email: String,
    error: Option<String>,
    errors: FieldErrors,
}

/// `?next=` on the log-in and sign-up pages (and `?done=` after a reset or a deletion).
#[derive(Debug, Deserialize, Default)]
pub struct Next {
    next: Option<String>,
    done: Option<String>,
}

/// The pre-session token: the browser's, or a new one (then set on the answer).
pub(super) fn pre_session_token(req: &Request) -> (String, bool) {
    match session::cookie(req, CSRF_COOKIE) {
        Some(t) if t.len() >= 32 => (t, false),
        _ => (session::fresh_token(), true),
    }
}

pub(super) fn with_pre_session(
    mut resp: Response,
    token: &str,
    fresh: bool,
    secure: bool,
) -> Response {
    if fresh {
        session::set_cookie(&mut resp, CSRF_COOKIE, token, 3_600, secure);
    }
    resp
}

/// Refuses a pre-session form that did not come from our page.
pub(super) fn check_pre_session(req: &Request, token: &str) -> Result<(), Failure> {
    let cookie = session::cookie(req, CSRF_COOKIE).unwrap_or_default();
    if session::same_origin(req) && !cookie.is_empty() && session::same_token(token, &cookie) {
        Ok(())
    } else {
        Err(Failure::CrossSite)
    }
}

/// A password check that could not run: busy (503, retry) or broken (logged).
fn crypto_failure(e: canopy_tenancy::ports::CryptoError) -> Failure {
    match e {
        canopy_tenancy::ports::CryptoError::Busy => Failure::Busy,
        canopy_tenancy::ports::CryptoError::Failed(cause) => {
            tracing::error!(error = %cause, "password hashing failed");
            Failure::Store(canopy_kernel::StoreError::internal(
                "password hashing failed",
            ))
        }
    }
}

fn where_to(next: Option<&str>) -> String {
    next.and_then(safe_next).unwrap_or("/").to_string()
}

/// `GET /login`.
#[handler]
pub async fn login_page(
    state: Data<&ConsoleState>,
    req: &Request,
    Query(next): Query<Next>,
) -> Response {
    match session::viewer(&state.tenancy, req).await {
        Ok(Some(_)) => return redirect(&where_to(next.next.as_deref())),
        Ok(None) => {}
        Err(e) => return Failure::Store(e).into_response(),
    }
    let (csrf, fresh) = pre_session_token(req);
    let resp = page(
        StatusCode::OK,
        &LoginPage {
            csrf: csrf.clone(),
            next: where_to(next.next.as_deref()),
            email: String::new(),
            error: None,
            demo: state.demo.clone(),
            notice: match next.done.as_deref() {
                Some("reset") => {
                    Some("Your password is set. Every session ended: log in with the new one.")
                }
                Some("deleted") => Some(
                    "Your account is deleted, with the organizations only you belonged to. \
                     Thank you for having used Canopy.",
                ),
                _ => None,
            },
        },
    );
    with_pre_session(resp, &csrf, fresh, state.secure_cookies())
}

/// The log-in form.
#[derive(Debug, Deserialize)]
pub struct LogIn {
    csrf: String,
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// Opens a session and sets its cookie, for as long as the session lives.
fn signed_in(
    state: &ConsoleState,
    signed: canopy_tenancy::service::SignedIn,
    to: &str,
) -> Response {
    let mut resp = redirect(to);
    let max_age = (signed.expires_at - state.tenancy.clock().now())
        .num_seconds()
        .max(0);
    session::set_cookie(
        &mut resp,
        SESSION_COOKIE,
        &signed.token,
        max_age,
        state.secure_cookies(),
    );
    session::set_cookie(&mut resp, CSRF_COOKIE, "", 0, state.secure_cookies());
    resp
}

/// `POST /login`.
#[handler]
pub async fn log_in(
    state: Data<&ConsoleState>,
    req: &Request,
    Form(form): Form<LogIn>,
) -> Response {
    if let Err(f) = check_pre_session(req, &form.csrf) {
        return f.into_response();
    }
    if let Err(secs) = state.throttle.check(req) {
        return Failure::RateLimited(secs).into_response();
    }
    let next = where_to(Some(&form.next));
    let client = state.throttle.client(req);
    match state
        .tenancy
        .log_in(&form.email, form.password, &client)
        .await
    {
        Ok(signed) => signed_in(&state, signed, &next),
        Err(SessionError::Store(e)) => Failure::Store(e).into_response(),
        Err(SessionError::Crypto(e)) => crypto_failure(e).into_response(),
        Err(_) => page(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                csrf: form.csrf,
                next,
                email: form.email,
                error: Some("Invalid e-mail or password.".into()),
                demo: state.demo.clone(),
                notice: None,
            },
        ),
    }
}

/// `GET /signup`.
#[handler]
pub async fn signup_page(
    state: Data<&ConsoleState>,
    req: &Request,
    Query(next): Query<Next>,
) -> Response {
    match session::viewer(&state.tenancy, req).await {
        Ok(Some(_)) => return redirect(&where_to(next.next.as_deref())),
        Ok(None) => {}
        Err(e) => return Failure::Store(e).into_response(),
    }
    let (csrf, fresh) = pre_session_token(req);
    let resp = page(
        StatusCode::OK,
        &SignupPage {
            csrf: csrf.clone(),
            next: next
                .next
                .as_deref()
                .and_then(safe_next)
                .unwrap_or_default()
                .to_string(),
            name: String::new(),
            email: String::new(),
            error: None,
            errors: FieldErrors::default(),
        },
    );
    with_pre_session(resp, &csrf, fresh, state.secure_cookies())
}

/// The sign-up form.
#[derive(Debug, Deserialize)]
pub struct SignUp {
    csrf: String,
    name: String,
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// `POST /signup`: the account, its personal organization, a session; then that
/// organization's dashboard (or where an invitation link sent the person).
#[handler]
pub async fn sign_up(
    state: Data<&ConsoleState>,
    req: &Request,
    Form(form): Form<SignUp>,
) -> Response {
    if let Err(f) = check_pre_session(req, &form.csrf) {
        return f.into_response();
    }
    if let Err(secs) = state.throttle.check(req) {
        return Failure::RateLimited(secs).into_response();
    }
    let refused = |status, error: Option<String>, errors: FieldErrors| {
        page(
            status,
            &SignupPage {
                csrf: form.csrf.clone(),
                next: form.next.clone(),
                name: form.name.clone(),
                email: form.email.clone(),
                error,
                errors,
            },
        )
    };
    match state
        .tenancy
        .sign_up(
            &form.email,
            &form.name,
            form.password.clone(),
            &state.throttle.client(req),
        )
        .await
    {
        Ok(signed) => {
            // Where an invitation link sent the person, else `/`, which opens the personal
            // organization just made active.
            let to = safe_next(&form.next).unwrap_or("/").to_string();
            signed_in(&state, signed, &to)
        }
        Err(SessionError::Invalid(v)) => refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            FieldErrors::from_validation(&v, &[]),
        ),
        Err(SessionError::EmailTaken) => refused(
            StatusCode::CONFLICT,
            None,
            FieldErrors::one(
                "email",
                "This e-mail is already registered. Log in instead.",
            ),
        ),
        Err(SessionError::Store(e)) => Failure::Store(e).into_response(),
        Err(SessionError::Crypto(e)) => crypto_failure(e).into_response(),
        Err(other) => {
            tracing::error!(error = %other, "sign-up failed");
            refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some("Something went wrong on our side. Try again.".into()),
                FieldErrors::default(),
            )
        }
    }
}

/// The log-out form (the user menu's button).
#[derive(Debug, Deserialize)]
pub struct LogOut {
    csrf: String,
}

/// `POST /logout`: ends the session server-side and drops the cookie.
#[handler]
pub async fn log_out(
    state: Data<&ConsoleState>,
    req: &Request,
    Form(form): Form<LogOut>,
) -> Response {
    let viewer = match session::viewer(&state.tenancy, req).await {
        Ok(Some(v)) => v,
        Ok(None) => return redirect("/login"),
        Err(e) => return Failure::Store(e).into_response(),
    };
    if let Err(f) = super::check_form(&viewer, req, &form.csrf) {
        return f.into_response();
    }
    if let Err(e) = state
        .tenancy
        .log_out(&viewer.principal, &viewer.token)
        .await
    {
        return Failure::Store(e).into_response();
    }
    let mut resp = redirect("/login");
    session::set_cookie(&mut resp, SESSION_COOKIE, "", 0, state.secure_cookies());
    resp
}
