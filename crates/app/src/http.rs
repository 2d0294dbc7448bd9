//! The HTTP surface: `/v1` API, `/docs`, `/openapi.json`, health probes, the console at `/`
//! (its own crate, over the same services), and the middleware
//! every request passes: request id and tracing span (logging the route template, never the
//! raw path), body limit, the OpenAPI check of bodies and query parameters, `Allow` on 405,
//! problem errors in the media type the client accepts.

use std::time::Instant;

use poem::http::{HeaderValue, Method, StatusCode, header};
use std::sync::Arc;

use canopy_cache::org_reads::OrgReadCache;
use canopy_console::{AuthThrottle, ConsoleState, DemoLogin, Fragments};
use canopy_kernel::id::OrganizationId;
use poem::web::Json;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler};
use serde_json::json;
use tracing::Instrument;
use uuid::Uuid;

use crate::api;
use crate::api::problem::{ApiError, PROBLEM_JSON, problem_from_poem};
use crate::demo;
use crate::openapi::{self, Lookup, Refusal};
use crate::state::AppState;

/// Header carrying the request id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The OpenAPI document served and committed, as pretty JSON.
pub fn openapi_json() -> String {
    openapi::json()
}

#[handler]
fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

#[handler]
fn spec() -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(openapi::json())
}

/// The console's use of the API's sign-up and log-in quota.
struct SharedThrottle(AppState);

impl AuthThrottle for SharedThrottle {
    fn check(&self, req: &Request) -> Result<(), u64> {
        self.0.auth_wait(req)
    }

    fn client(&self, req: &Request) -> canopy_tenancy::account::ClientInfo {
        self.0.client_info(req)
    }

    fn mail_allowed(&self, key: &str) -> bool {
        self.0.mail_allowed(key)
    }
}

/// What the console runs on, from the application's state.
fn console_state(state: &AppState) -> ConsoleState {
    ConsoleState {
        tenancy: state.tenancy.clone(),
        billing: state.billing.clone(),
        cloud: state.cloud.clone(),
        metrics: state.metrics.clone(),
        cloud_orgs: state.cloud_orgs.clone(),
        jobs: state.jobs.clone(),
        views: state.views.clone(),
        history: state.coverage.clone(),
        detections: state.detections.clone(),
        public_url: state.public_url.clone(),
        demo: state.demo.then(|| DemoLogin {
            email: demo::EMAIL.to_string(),
            password: demo::PASSWORD.to_string(),
        }),
        throttle: Arc::new(SharedThrottle(state.clone())),
        fragments: Arc::new(KeptFragments(state.reads.clone())),
        devices: state.devices.clone(),
    }
}

/// The console's kept fragments, in the organization read cache (dropped with the reads).
struct KeptFragments(OrgReadCache);

impl Fragments for KeptFragments {
    fn get(&self, org: OrganizationId, key: &str) -> Option<Arc<str>> {
        self.0.fragment(org, key)
    }

    fn mark(&self) -> u64 {
        self.0.mark()
    }

    fn put(&self, org: OrganizationId, key: String, html: Arc<str>, mark: u64) {
        self.0.keep_fragment(org, key, html, mark);
    }
}

#[handler]
async fn readyz(state: poem::web::Data<&AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => {
            Json(json!({"status": "ready", "database": state.store.backend_name()})).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::unavailable("database_unavailable", "The database does not answer.", 1)
                .into_response()
        }
    }
}

/// A client-supplied id is kept only if it is short and plain, so it cannot forge log lines.
fn request_id(req: &Request) -> String {
    req.header(REQUEST_ID_HEADER)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_string)
        .unwrap_or_else(|| Uuid::now_v7().to_string())
}

/// What the request log says the request was for: the API's path template (path segments can
/// carry tokens and invitation ids), or the path of a non-API page.
fn logged_route(path: &str) -> String {
    match openapi::routes().template(path) {
        Some(template) => template.to_string(),
        None if path.starts_with("/docs") => "/docs".to_string(),
        None if ["/healthz", "/readyz", "/openapi.json"].contains(&path) => path.to_string(),
        // Console pages: slugs, ids and invitation ids stay out of the log like every other
        // path value.
        None => canopy_console::logged_path(path).unwrap_or_else(|| "(no such route)".into()),
    }
}

/// True when the client asked for `application/json` and not for problem documents: the
/// problem then travels as `application/json` (generated clients decode only that).
fn wants_plain_json(req: &Request) -> bool {
    let Some(accept) = req.header(header::ACCEPT) else {
        return false;
    };
    let types: Vec<&str> = accept
        .split(',')
        .map(|t| t.split(';').next().unwrap_or_default().trim())
        .collect();
    types.contains(&"application/json")
        && !types.contains(&PROBLEM_JSON)
        && !types.contains(&"*/*")
        && !types.contains(&"application/*")
}

/// Wraps each request in a span carrying its id and route, so every log line of the request
/// has them, logs one completion line, and echoes the id to the client.
async fn traced<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let id = request_id(&req);
    let route = logged_route(req.uri().path());
    let plain_json = wants_plain_json(&req);
    let span = tracing::info_span!("request", id = %id, method = %req.method(), route = %route);
    async move {
        let started = Instant::now();
        let mut resp = match next.call(req).await {
            Ok(resp) => resp.into_response(),
            Err(err) => problem_from_poem(err),
        };
        let status = resp.status().as_u16();
        let micros = started.elapsed().as_micros() as u64;
        if status >= 500 {
            tracing::error!(status, micros, "request failed");
        } else {
            tracing::info!(status, micros, "request done");
        }
        if plain_json && resp.content_type() == Some(PROBLEM_JSON) {
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        if let Ok(value) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        Ok(resp)
    }
    .instrument(span)
    .await
}

/// Bounds request bodies. Unlike poem's `SizeLimit`, a request without `Content-Length`
/// (a GET, or a chunked upload) is accepted and its body read up to the limit.
async fn limit_body<E: Endpoint>(next: E, mut req: Request, max: usize) -> poem::Result<Response> {
    let declared = req
        .header(header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The request body exceeds {max} bytes."),
        )
        .into());
    }
    let body = req
        .take_body()
        .into_bytes_limit(max)
        .await
        .map_err(|e| match e {
            poem::error::ReadBodyError::PayloadTooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("The request body exceeds {max} bytes."),
            ),
            other => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_request",
                other.to_string(),
            ),
        })?;
    req.set_body(body);
    next.call(req).await.map(IntoResponse::into_response)
}

/// Holds every API request to the published document before a handler runs: a method the
/// path does not have is 405 with `Allow`, a body or query that breaks its schema is 422, a
/// path value that breaks its schema names nothing (404).
async fn conform<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let path = req.uri().path().to_string();
    match openapi::routes().lookup(req.method(), &path) {
        Lookup::NotFound => {}
        Lookup::MethodNotAllowed(methods) => {
            let allowed = methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let mut resp = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("This resource answers {allowed}."),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&allowed) {
                resp.headers_mut().insert(header::ALLOW, value);
            }
            return Ok(resp);
        }
        // Credentials come before content: without a token the handler answers 401 whatever
        // the body holds.
        Lookup::Found(route, _)
            if route.secured() && req.header(header::AUTHORIZATION).is_none() => {}
        Lookup::Found(route, params) => {
            let json_body = route.has_body()
                && req
                    .content_type()
                    .is_some_and(|c| c.starts_with("application/json"));
            let body = if json_body {
                Some(req.take_body().into_bytes().await.map_err(|e| {
                    ApiError::new(StatusCode::BAD_REQUEST, "malformed_request", e.to_string())
                })?)
            } else {
                None
            };
            let query = req.uri().query().unwrap_or_default().to_string();
            let checked = openapi::routes().check(route, &params, &query, body.as_deref());
            if let Some(bytes) = body {
                req.set_body(bytes);
            }
            match checked {
                Ok(()) => {}
                Err(Refusal::Invalid(errors)) => return Err(ApiError::validation(errors).into()),
                Err(Refusal::NoSuchResource) => return Err(ApiError::not_found("resource").into()),
                Err(Refusal::Malformed(detail)) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "malformed_request",
                        detail,
                    )
                    .into());
                }
            }
        }
    }
    next.call(req).await.map(IntoResponse::into_response)
}

/// The complete application endpoint over `state`.
pub fn app(state: AppState, max_body_bytes: usize) -> impl Endpoint {
    let service = api::service();
    let docs = service.swagger_ui();
    let console = canopy_console::endpoint(console_state(&state));
    Route::new()
        .nest("/v1", service)
        .nest("/docs", docs)
        .at("/openapi.json", get(spec))
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .nest("/", console)
        .around(conform)
        .around(move |next, req| limit_body(next, req, max_body_bytes))
        .data(state)
        .catch_all_error(|err| async move { problem_from_poem(err) })
        .around(traced)
}
