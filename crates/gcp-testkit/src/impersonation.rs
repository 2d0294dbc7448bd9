//! IAM Credentials `generateAccessToken`: a caller holding a token this fake issued gets a
//! token of another service account, if that account lets the caller impersonate it (as
//! `roles/iam.serviceAccountTokenCreator` on it does).

use std::sync::Arc;

use base64::Engine;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Request, Response, handler};
use rand::Rng;
use serde_json::json;

use crate::Shared;
use crate::handlers::{google_error, json_response};

/// `POST v1/projects/-/serviceAccounts/{email}:generateAccessToken`.
#[handler]
pub(crate) async fn generate_access_token(
    shared: Data<&Arc<Shared>>,
    req: &Request,
    Path(rest): Path<String>,
) -> Response {
    let Some(target) = rest.strip_suffix(":generateAccessToken") else {
        return google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "unknown method");
    };
    let mut state = shared.lock();
    state.calls.generate_access_token += 1;
    let caller = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .and_then(|t| state.tokens.get(t))
        .cloned();
    let Some(caller) = caller.filter(|c| !state.revoked.contains(c)) else {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    };
    let allowed = state
        .impersonators
        .get(target)
        .is_some_and(|by| by.contains(&caller));
    if !allowed || state.revoked.contains(target) {
        return google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            &format!(
                "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may \
                 not exist): projects/-/serviceAccounts/{target}"
            ),
        );
    }
    let bytes: [u8; 32] = rand::rng().random();
    let token = format!(
        "ya29.impersonated-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    state.tokens.insert(token.clone(), target.to_string());
    json_response(
        StatusCode::OK,
        &json!({"accessToken": token, "expireTime": "2099-01-01T00:00:00Z"}),
    )
}
