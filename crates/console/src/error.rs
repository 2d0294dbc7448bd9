//! Pages for what went wrong: not found (also another tenant's object, as the API answers),
//! not allowed, the database away (503 with `Retry-After`, like the API), or our own fault (a
//! generic page; the cause goes to the log, never to the browser).

use askama::Template;
use canopy_kernel::StoreError;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};

/// Why a console request cannot be answered with its page.
#[derive(Debug)]
pub enum Failure {
    /// Not signed in: go to the log-in page, then back to this path.
    SignIn(String),
    /// No such thing here, or not yours.
    NotFound,
    /// The role does not allow it.
    Forbidden,
    /// The form did not come from our page (CSRF token or origin).
    CrossSite,
    /// Too many log-ins from this address; seconds to wait.
    RateLimited(u64),
    /// Too many passwords are being checked at once (the API's 503 `busy`).
    Busy,
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<canopy_tenancy::Forbidden> for Failure {
    fn from(_: canopy_tenancy::Forbidden) -> Self {
        Failure::Forbidden
    }
}

/// What is escaped in the `next` parameter: everything but what a path reads well with.
const NEXT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Seconds a browser waits before trying again while the database is away.
const RETRY_SECS: u64 = 2;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    title: &'static str,
    message: String,
}

/// The status of a failure.
pub fn status(failure: &Failure) -> StatusCode {
    match failure {
        Failure::SignIn(_) => StatusCode::SEE_OTHER,
        Failure::NotFound => StatusCode::NOT_FOUND,
        Failure::Forbidden | Failure::CrossSite => StatusCode::FORBIDDEN,
        Failure::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        Failure::Busy => StatusCode::SERVICE_UNAVAILABLE,
        Failure::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        Failure::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A `303 See Other` to `to` (after a form, or to the log-in page).
pub fn redirect(to: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .finish()
}

/// Renders `template` as a page with `status`.
pub fn page<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(html) => Response::builder()
            .status(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "a console template failed to render");
            plain_failure()
        }
    }
}

fn plain_failure() -> Response {
    Response::builder()
        .status(StatusCode::INTERNAL_SERVER_ERROR)
        .content_type("text/plain; charset=utf-8")
        .body("Something went wrong on our side. It has been logged.")
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = status(&self);
        let (title, message) = match &self {
            Failure::SignIn(next) => {
                return redirect(&format!(
                    "/login?next={}",
                    percent_encoding::utf8_percent_encode(next, NEXT)
                ));
            }
            Failure::NotFound => (
                "Not found",
                "There is nothing here, or it is not yours to see.".to_string(),
            ),
            Failure::Forbidden => (
                "Not allowed",
                "Your role in this organization does not allow this. An owner or admin can do it, or change your role.".to_string(),
            ),
            Failure::CrossSite => (
                "Refused",
                "This form did not come from a Canopy page (or it was open so long that your session changed). Go back, reload the page and try again.".to_string(),
            ),
            Failure::RateLimited(secs) => (
                "Too many attempts",
                format!("Too many sign-in attempts from your address. Try again in {secs} seconds."),
            ),
            Failure::Busy => (
                "Busy",
                "Too many sign-ins are being checked at once. Try again in a moment.".to_string(),
            ),
            Failure::Store(StoreError::Unavailable(_)) => (
                "Temporarily unavailable",
                format!("Canopy cannot reach its database right now. Nothing was lost; try again in {RETRY_SECS} seconds."),
            ),
            Failure::Store(e) => {
                tracing::error!(error = %e, "a console request failed");
                (
                    "Something went wrong",
                    "Something went wrong on our side. It has been logged.".to_string(),
                )
            }
        };
        let mut resp = page(
            status,
            &ErrorPage {
                status: status.as_u16(),
                title,
                message,
            },
        );
        let retry = match &self {
            Failure::RateLimited(secs) => Some(*secs),
            Failure::Busy => Some(1),
            Failure::Store(StoreError::Unavailable(_)) => Some(RETRY_SECS),
            _ => None,
        };
        if let Some(secs) = retry
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// Handlers return `Result<_, Failure>`; poem carries the failure's page as the error.
impl From<Failure> for poem::Error {
    fn from(failure: Failure) -> Self {
        poem::Error::from_response(failure.into_response())
    }
}

/// Errors no handler turned into a page (an unknown path, a wrong method, a malformed form).
pub async fn from_poem(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let (title, message) = match status {
        StatusCode::NOT_FOUND => (
            "Not found",
            "There is nothing here, or it is not yours to see.".to_string(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "Not here",
            "This page does not take that kind of request.".to_string(),
        ),
        s if s.is_client_error() => (
            "That did not work",
            "The form was not complete or not understood. Go back and try again.".to_string(),
        ),
        _ => {
            tracing::error!(error = %err, "a console request failed");
            (
                "Something went wrong",
                "Something went wrong on our side. It has been logged.".to_string(),
            )
        }
    };
    page(
        status,
        &ErrorPage {
            status: status.as_u16(),
            title,
            message,
        },
    )
}
