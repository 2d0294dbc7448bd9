//! Your account → Account & security: who you are and whether your address is verified, the
//! password and e-mail changes, your sessions (end one, or every other), your security log.

use askama::Template;
use canopy_kernel::PageRequest;
use canopy_kernel::id::SessionId;
use canopy_tenancy::AccountError;
use canopy_tenancy::account::ClientInfo;
use canopy_tenancy::credential::CredentialKind;
use canopy_tenancy::ports::CryptoError;
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
use crate::session::{SESSION_COOKIE, Viewer, set_cookie};

/// A session in the list.
struct SessionRow {
    id: String,
    current: bool,
    agent: String,
    ip: String,
    created: String,
    last_used: String,
}

/// A line of the security log.
struct LogRow {
    what: String,
    when: String,
    from: String,
}

#[derive(Template)]
#[template(path = "account/show.html")]
struct AccountPage {
    chrome: Chrome,
    verified: Option<String>,
    sessions: Vec<SessionRow>,
    log: Vec<LogRow>,
    new_email: String,
    errors: FieldErrors,
    blocking: Vec<Blocking>,
    /// What the audit logs say instead of the address.
    tombstone: &'static str,
}

/// An organization that stops the account's deletion (its only owner, with members).
struct Blocking {
    name: String,
    slug: String,
    others: u64,
}

/// What a refused form puts back on the page.
#[derive(Default)]
struct Refused {
    new_email: String,
    errors: FieldErrors,
    blocking: Vec<Blocking>,
}

/// A readable summary of a user agent: the browser or tool and the system, or the raw text.
fn agent(ua: Option<&str>) -> String {
    let Some(ua) = ua else {
        return "Unknown client".into();
    };
    let browser = [
        ("Edg/", "Edge"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
        ("python", "Python"),
        ("canopy", "Canopy CLI"),
    ]
    .into_iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| name);
    let system = [
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_string(),
        _ => ua.chars().take(60).collect(),
    }
}

/// What a security-log action reads as.
fn action_text(action: &str, details: &serde_json::Value) -> String {
    match action {
        "email.verified" => "E-mail address verified".into(),
        "email.change_requested" => format!(
            "E-mail change to {} requested",
            details["to"].as_str().unwrap_or("a new address")
        ),
        "email.changed" => format!(
            "E-mail changed to {}",
            details["to"].as_str().unwrap_or("a new address")
        ),
        "password.changed" => "Password changed".into(),
        "password.reset_requested" => "Password reset link requested".into(),
        "password.reset" => "Password reset through an e-mailed link".into(),
        "session.revoked" => "A session was ended".into(),
        "session.others_revoked" => format!(
            "Every other session was ended ({})",
            details["sessionsEnded"].as_u64().unwrap_or(0)
        ),
        other => other.to_string(),
    }
}

async fn render(
    state: &ConsoleState,
    viewer: &Viewer,
    chrome: Chrome,
    status: StatusCode,
    refused: Refused,
) -> Result<Response, Failure> {
    let now = state.tenancy.clock().now();
    let me = state
        .tenancy
        .me(&viewer.principal)
        .await
        .map_err(|_| Failure::SignIn("/account".into()))?;
    let current = match viewer.principal.credential {
        CredentialKind::Session(id) => Some(id),
        CredentialKind::ApiKey(_) => None,
    };
    let sessions = state
        .tenancy
        .list_sessions(&viewer.principal)
        .await
        .map_err(account_failure)?
        .into_iter()
        .map(|s| SessionRow {
            id: s.id.to_string(),
            current: Some(s.id) == current,
            agent: agent(s.user_agent.as_deref()),
            ip: s.ip.unwrap_or_else(|| "unknown address".into()),
            created: format::ago(s.created_at, now),
            last_used: s
                .last_used_at
                .map_or_else(|| "not yet".into(), |at| format::ago(at, now)),
        })
        .collect();
    let log = state
        .tenancy
        .security_log(
            &viewer.principal,
            PageRequest {
                limit: 20,
                after: None,
            },
        )
        .await
        .map_err(account_failure)?
        .items
        .into_iter()
        .map(|e| LogRow {
            what: action_text(e.action.as_str(), &e.details),
            when: format::ago(e.occurred_at, now),
            from: format!(
                "{} · {}",
                agent(e.client.user_agent.as_deref()),
                e.client.ip.unwrap_or_else(|| "unknown address".into())
            ),
        })
        .collect();
    Ok(page(
        status,
        &AccountPage {
            chrome,
            verified: me.user.email_verified_at.map(|at| format::ago(at, now)),
            sessions,
            log,
            new_email: refused.new_email,
            errors: refused.errors,
            blocking: refused.blocking,
            tombstone: canopy_tenancy::account::TOMBSTONE,
        },
    ))
}

pub(super) fn account_failure(e: AccountError) -> Failure {
    match e {
        AccountError::Store(s) => Failure::Store(s),
        AccountError::Crypto(CryptoError::Busy) => Failure::Busy,
        AccountError::SessionNotFound => Failure::NotFound,
        AccountError::Unauthenticated => Failure::SignIn("/account".into()),
        other => {
            tracing::error!(error = %other, "an account change failed");
            Failure::NotFound
        }
    }
}

/// A password-bearing form's checks before anything changes: the viewer, the form's token
/// and origin, then the per-client throttle (these forms try passwords).
async fn checked(
    state: &ConsoleState,
    req: &Request,
    csrf: &str,
) -> Result<(Viewer, Chrome, ClientInfo), Failure> {
    let (viewer, chrome) = chrome::personal(state, req, "account").await?;
    check_form(&viewer, req, csrf)?;
    state.throttle.check(req).map_err(Failure::RateLimited)?;
    let client = state.throttle.client(req);
    Ok((viewer, chrome, client))
}

/// `GET /account`.
#[handler]
pub async fn show(state: Data<&ConsoleState>, req: &Request) -> Result<Response, Failure> {
    let (viewer, chrome) = chrome::personal(&state, req, "account").await?;
    render(&state, &viewer, chrome, StatusCode::OK, Refused::default()).await
}

/// A form with nothing but its token.
#[derive(Debug, Deserialize)]
pub struct Plain {
    csrf: String,
}

/// `POST /account/verification`: the verification link again (a few per hour).
#[handler]
pub async fn resend(
    state: Data<&ConsoleState>,
    req: &Request,
    Form(form): Form<Plain>,
) -> Result<Response, Failure> {
    let viewer = chrome::viewer(&state, req).await?;
    check_form(&viewer, req, &form.csrf)?;
    if !state
        .throttle
        .mail_allowed(&viewer.principal.user_id.to_string())
    {
        return Err(Failure::RateLimited(15 * 60));
    }
    match state.tenancy.resend_verification(&viewer.principal).await {
        Ok(()) => Ok(redirect("/account?done=verification")),
        Err(AccountError::AlreadyVerified) => Ok(redirect("/account?done=verified")),
        Err(e) => Err(account_failure(e)),
    }
}

/// The password form.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
}

/// `POST /account/password`: the current password, then the new one; other sessions end.
#[handler]
pub async fn change_password(
    state: Data<&ConsoleState>,
    req: &Request,
    Form(form): Form<PasswordForm>,
) -> Result<Response, Failure> {
    let (viewer, chrome, client) = checked(&state, req, &form.csrf).await?;
    let errors = match state
        .tenancy
        .change_password(&viewer.principal, form.current, form.new, &client)
        .await
    {
        Ok(_) => return Ok(redirect("/account?done=password")),
        Err(AccountError::WrongPassword) => {
            FieldErrors::one("current", "This is not your current password.")
        }
        Err(AccountError::Invalid(v)) => {
            FieldErrors::from_validation(&v, &[("newPassword", "new")])
        }
        Err(e) => return Err(account_failure(e)),
    };
    render(
        &state,
        &viewer,
        chrome,
        StatusCode::UNPROCESSABLE_ENTITY,
        Refused {
            errors,
            ..Refused::default()
        },
    )
    .await
}

/// The e-mail form.
#[derive(Debug, Deserialize)]
pub struct EmailForm {
    csrf: String,
    email: String,
    password: String,
}

/// `POST /account/email`: asks to move to a new address; it changes once confirmed.
#[handler]
pub async fn change_email(
    state: Data<&ConsoleState>,
    req: &Request,
    Form(form): Form<EmailForm>,
) -> Result<Response, Failure> {
    let (viewer, chrome, client) = checked(&state, req, &form.csrf).await?;
    if !state
        .throttle
        .mail_allowed(&viewer.principal.user_id.to_string())
    {
        return Err(Failure::RateLimited(15 * 60));
    }
    let (status, errors) = match state
        .tenancy
        .request_email_change(&viewer.principal, &form.email, form.password, &client)
        .await
    {
        Ok(()) => return Ok(redirect("/account?done=email-requested")),
        Err(AccountError::WrongPassword) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            FieldErrors::one("password", "This is not your current password."),
        ),
        Err(AccountError::Invalid(v)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            FieldErrors::from_validation(&v, &[("newEmail", "email")]),
        ),
        Err(AccountError::EmailTaken) => (
            StatusCode::CONFLICT,
            FieldErrors::one("email", "Another account has this address."),
        ),
        Err(AccountError::AlreadyVerified) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            FieldErrors::one("email", "This is already your address."),
        ),
        Err(e) => return Err(account_failure(e)),
    };
    let refused = Refused {
        new_email: form.email,
        errors,
        ..Refused::default()
    };
    render(&state, &viewer, chrome, status, refused).await
}

/// The deletion form.
#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    csrf: String,
    password: String,
}

/// `POST /account/delete`: deletes the account for good after the password; refused, naming
/// them, while the caller is the only owner of organizations others belong to.
#[handler]
pub async fn delete(
    state: Data<&ConsoleState>,
    req: &Request,
    Form(form): Form<DeleteForm>,
) -> Result<Response, Failure> {
    let (viewer, chrome, _) = checked(&state, req, &form.csrf).await?;
    let (status, refused) = match state
        .tenancy
        .delete_account(&viewer.principal, form.password)
        .await
    {
        Ok(_) => {
            let mut resp = redirect("/login?done=deleted");
            set_cookie(&mut resp, SESSION_COOKIE, "", 0, state.secure_cookies());
            return Ok(resp);
        }
        Err(AccountError::WrongPassword) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Refused {
                errors: FieldErrors::one("delete-password", "This is not your current password."),
                ..Refused::default()
            },
        ),
        Err(AccountError::LastOwner(held)) => (
            StatusCode::CONFLICT,
            Refused {
                blocking: held
                    .into_iter()
                    .map(|o| Blocking {
                        name: o.name,
                        slug: o.slug.as_str().to_string(),
                        others: o.other_members,
                    })
                    .collect(),
                ..Refused::default()
            },
        ),
        Err(e) => return Err(account_failure(e)),
    };
    render(&state, &viewer, chrome, status, refused).await
}

/// `POST /account/sessions/{id}/revoke`: ends one session (yours only).
#[handler]
pub async fn revoke_session(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(id): Path<String>,
    Form(form): Form<Plain>,
) -> Result<Response, Failure> {
    let viewer = chrome::viewer(&state, req).await?;
    check_form(&viewer, req, &form.csrf)?;
    let id = Uuid::parse_str(&id)
        .map(SessionId)
        .map_err(|_| Failure::NotFound)?;
    let client = state.throttle.client(req);
    state
        .tenancy
        .revoke_session(&viewer.principal, id, &client)
        .await
        .map_err(account_failure)?;
    // Ending the current session is logging out.
    if viewer.principal.credential == CredentialKind::Session(id) {
        return Ok(redirect("/login"));
    }
    Ok(redirect("/account?done=session"))
}

/// `POST /account/sessions/revoke-others`.
#[handler]
pub async fn revoke_others(
    state: Data<&ConsoleState>,
    req: &Request,
    Form(form): Form<Plain>,
) -> Result<Response, Failure> {
    let viewer = chrome::viewer(&state, req).await?;
    check_form(&viewer, req, &form.csrf)?;
    let client = state.throttle.client(req);
    state
        .tenancy
        .revoke_other_sessions(&viewer.principal, &client)
        .await
        .map_err(account_failure)?;
    Ok(redirect("/account?done=sessions"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_read_as_browser_and_system() {
        assert_eq!(
            agent(Some(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
            )),
            "Chrome on Linux"
        );
        assert_eq!(agent(Some("curl/8.5.0")), "curl");
        assert_eq!(agent(None), "Unknown client");
        assert_eq!(agent(Some("weird")), "weird");
    }
}
