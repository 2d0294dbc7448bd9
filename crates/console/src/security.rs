//! Headers every console answer carries: a Content-Security-Policy without inline script or
//! style (every script and stylesheet is one of our embedded assets; chart data travels as
//! JSON in an escaped `data-chart` attribute), no framing,
//! `nosniff`, a same-origin referrer, and no caching of pages that show someone's data.

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

/// The policy: our own origin only, but for images: `data:` for CSS icons and https for the
/// logos organizations link to.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data: https:; connect-src 'self'; font-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Wraps every console answer (errors included) with the headers.
pub async fn headers<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let asset = req.uri().path().starts_with("/assets/");
    let htmx = req.headers().contains_key("hx-request");
    let mut resp = match next.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(e) => e.into_response(),
    };
    // A fragment request that is sent elsewhere (its session ended) must move the whole page,
    // not draw the log-in page inside the dashboard: htmx navigates on `HX-Redirect`.
    if htmx
        && resp.status() == StatusCode::SEE_OTHER
        && let Some(to) = resp.headers().get(header::LOCATION).cloned()
    {
        resp.set_status(StatusCode::OK);
        resp.headers_mut().remove(header::LOCATION);
        resp.headers_mut().insert("hx-redirect", to);
    }
    let h = resp.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::VARY, HeaderValue::from_static("HX-Request, Cookie"));
    }
    Ok(resp)
}
