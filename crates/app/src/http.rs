//! The HTTP surface: `/v1` API, `/docs`, `/openapi.json`, health probes, and the middleware
//! every request passes (request id and tracing span, body limit, problem errors).

use std::time::Instant;

use poem::http::HeaderValue;
use poem::web::Json;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler};
use serde_json::json;
use tracing::Instrument;
use uuid::Uuid;

use crate::api;
use crate::api::problem::{ApiError, problem_from_poem};
use crate::state::AppState;

/// Header carrying the request id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The OpenAPI document served and committed, as pretty JSON.
pub fn openapi_json() -> String {
    api::service().spec()
}

#[handler]
fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

#[handler]
async fn readyz(state: poem::web::Data<&AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => {
            Json(json!({"status": "ready", "database": state.store.backend_name()})).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::new(
                poem::http::StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "The database does not answer.",
            )
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

/// Wraps each request in a span carrying its id, so every log line of the request has it,
/// logs one completion line, and echoes the id to the client.
async fn traced<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let id = request_id(&req);
    let span =
        tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
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
        .header(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(ApiError::new(
            poem::http::StatusCode::PAYLOAD_TOO_LARGE,
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
                poem::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("The request body exceeds {max} bytes."),
            ),
            other => ApiError::new(
                poem::http::StatusCode::BAD_REQUEST,
                "malformed_request",
                other.to_string(),
            ),
        })?;
    req.set_body(body);
    next.call(req).await.map(IntoResponse::into_response)
}

/// The complete application endpoint over `state`.
pub fn app(state: AppState, max_body_bytes: usize) -> impl Endpoint {
    let service = api::service();
    let docs = service.swagger_ui();
    let spec = service.spec_endpoint();
    Route::new()
        .nest("/v1", service)
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .around(move |next, req| limit_body(next, req, max_body_bytes))
        .data(state)
        .catch_all_error(|err| async move { problem_from_poem(err) })
        .around(traced)
}
