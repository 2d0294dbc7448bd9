//! Who is at the browser, and proof that a form came from our own page.
//!
//! - The session is the same one the API issues at log-in; its token travels in the
//!   `canopy_session` cookie (`HttpOnly`, `SameSite=Lax`, `Secure` on https) and is resolved on
//!   every request, so log-out, expiry and revocation take effect at once. The API never reads
//!   this cookie: `/v1` stays bearer-only, with no CSRF surface.
//! - Every state-changing request carries a CSRF token and passes an origin check. With a
//!   session, the token is derived from the session's secret (SHA-256 of it under a label):
//!   unguessable without the cookie, the same on every replica, gone with the session.
//!   Before log-in (the log-in and sign-up forms), a random token in a `canopy_csrf` cookie is
//!   repeated in the form (double submit).
//! - The origin check refuses a request a browser marks cross-site (`Sec-Fetch-Site`) or whose
//!   `Origin` is not this host.

use base64::Engine;
use canopy_kernel::StoreError;
use canopy_tenancy::{CredentialKind, Principal, SessionError};
use poem::http::{HeaderValue, header};
use poem::{Request, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The session cookie.
pub const SESSION_COOKIE: &str = "canopy_session";
/// The pre-session CSRF cookie.
pub const CSRF_COOKIE: &str = "canopy_csrf";
/// The form field (and `X-CSRF-Token` header for htmx) carrying the token.
pub const CSRF_FIELD: &str = "csrf";

/// A signed-in browser.
#[derive(Clone)]
pub struct Viewer {
    /// Who.
    pub principal: Principal,
    /// The session token (the cookie's value).
    pub token: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
}

/// The CSRF token of the session whose secret is `token`.
pub fn csrf_for(token: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"canopy console csrf\0");
    digest.update(token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.finalize())
}

/// A fresh random token for the pre-session cookie.
pub fn fresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two tokens in time independent of where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name` in the request, if sent.
pub fn cookie(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// `Set-Cookie` for `name`: `HttpOnly; SameSite=Lax; Path=/`, `Secure` when `secure`, living
/// `max_age` seconds (0 deletes it).
pub fn set_cookie(resp: &mut Response, name: &str, value: &str, max_age: i64, secure: bool) {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}");
    if secure {
        cookie.push_str("; Secure");
    }
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Whether a state-changing request may come from where it says it does: not marked
/// cross-site by the browser, and, when it names an origin, naming this host.
pub fn same_origin(req: &Request) -> bool {
    if req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return false;
    }
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

/// The session the request's cookie names, when it is a live one (an API key in the cookie
/// is not a session and is not honoured). A store that cannot answer is an error, not "signed
/// out": a database restart must not send everyone to the log-in page.
pub async fn viewer(
    tenancy: &canopy_tenancy::TenancyService,
    req: &Request,
) -> Result<Option<Viewer>, StoreError> {
    let Some(token) = cookie(req, SESSION_COOKIE) else {
        return Ok(None);
    };
    let principal = match tenancy.authenticate(&token).await {
        Ok(p) => p,
        Err(SessionError::Store(e)) => return Err(e),
        Err(_) => return Ok(None),
    };
    if !matches!(principal.credential, CredentialKind::Session(_)) {
        return Ok(None);
    }
    Ok(Some(Viewer {
        principal,
        csrf: csrf_for(&token),
        token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_depends_on_the_session_and_compares_in_full() {
        let a = csrf_for("cnp_sess_one");
        assert_eq!(a, csrf_for("cnp_sess_one"));
        assert_ne!(a, csrf_for("cnp_sess_two"));
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, &a[..a.len() - 1]));
        assert_ne!(fresh_token(), fresh_token());
    }

    #[test]
    fn cross_site_requests_are_told_apart() {
        let req = |headers: &[(&str, &str)]| {
            let mut builder = Request::builder();
            for (k, v) in headers {
                builder = builder.header(*k, *v);
            }
            builder.finish()
        };
        assert!(same_origin(&req(&[("host", "canopy.example")])));
        assert!(same_origin(&req(&[
            ("host", "canopy.example"),
            ("origin", "https://canopy.example")
        ])));
        assert!(!same_origin(&req(&[
            ("host", "canopy.example"),
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&req(&[
            ("host", "canopy.example"),
            ("origin", "null")
        ])));
        assert!(!same_origin(&req(&[
            ("host", "canopy.example"),
            ("sec-fetch-site", "cross-site")
        ])));
        let cookies = req(&[("cookie", "a=1; canopy_session=tok; b=2")]);
        assert_eq!(cookie(&cookies, SESSION_COOKIE).as_deref(), Some("tok"));
    }
}
