//! Device log-in for terminals, in the style of RFC 8628: the CLI asks for a code, a person
//! signed in to the console approves it at `/device`, and the CLI, polling, receives an API
//! key of its own. Polls before approval are refused with the RFC's error codes as the
//! problem's `code`, each with the status HTTP gives that situation (RFC 8628 answers 400 for
//! all): `authorization_pending` 409, `slow_down` 429 with `Retry-After` and the new
//! `interval`, `access_denied` 403, `expired_token` 410.

use canopy_tenancy::device::{INTERVAL_SECONDS, LIFETIME_MINUTES, PollError, StartError};
use poem::Request;
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::problem::ApiError;
use crate::state::AppState;

/// Device log-in endpoints.
pub struct DeviceApi;

/// A terminal asking to log in.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeviceStartRequest {
    /// What the terminal calls itself, shown to the person approving (`canopy CLI on ada's
    /// laptop`).
    #[oai(validator(max_length = 100))]
    pub client_name: String,
}

/// What the terminal shows and polls with.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeviceStartDto {
    /// The secret the terminal polls with; never shown to the person.
    pub device_code: String,
    /// The code the person types or checks, `BCDF-GHJK`.
    pub user_code: String,
    /// Where the person approves.
    pub verification_uri: String,
    /// The same, with the code filled in.
    pub verification_uri_complete: String,
    /// Seconds until the request lapses.
    pub expires_in: u32,
    /// Seconds to wait between polls.
    pub interval: u32,
}

/// A poll.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeviceTokenRequest {
    /// The device code from the start.
    #[oai(validator(max_length = 512))]
    pub device_code: String,
}

/// The terminal's own API key, once approved.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeviceTokenDto {
    /// The API key; shown this once.
    pub token: String,
    /// Its id (to revoke it at `DELETE /v1/me/api-keys/{id}`).
    pub key_id: Uuid,
    /// Its name in the person's key list.
    pub name: String,
    /// Whose it is.
    pub user_id: Uuid,
}

impl From<PollError> for ApiError {
    fn from(e: PollError) -> Self {
        let (status, code) = match e {
            PollError::AuthorizationPending => (StatusCode::CONFLICT, "authorization_pending"),
            PollError::SlowDown(_) => (StatusCode::TOO_MANY_REQUESTS, "slow_down"),
            PollError::AccessDenied => (StatusCode::FORBIDDEN, "access_denied"),
            PollError::ExpiredToken => (StatusCode::GONE, "expired_token"),
            PollError::Store(s) => return s.into(),
        };
        let mut error = ApiError::new(status, code, e.to_string());
        if let PollError::SlowDown(interval) = e {
            error.problem.interval = Some(interval);
            error.retry_after = Some(u64::from(interval));
        }
        error
    }
}

#[OpenApi(tag = "ApiTags::Auth")]
impl DeviceApi {
    /// Starts a device log-in: show `userCode` and `verificationUri` to the person, then poll
    /// `POST /auth/device/token` every `interval` seconds. Rate limited per client address.
    #[oai(
        path = "/auth/device",
        method = "post",
        operation_id = "startDeviceLogIn"
    )]
    async fn start(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<DeviceStartRequest>,
    ) -> Result<Json<DeviceStartDto>, ApiError> {
        state.check_auth_rate(req)?;
        let started = state
            .devices
            .start(&body.0.client_name)
            .await
            .map_err(|e| match e {
                StartError::Invalid(v) => ApiError::from(v),
                StartError::Store(s) => ApiError::from(s),
            })?;
        let a = started.authorization;
        let uri = format!("{}/device", state.public_url);
        Ok(Json(DeviceStartDto {
            device_code: started.device_code,
            verification_uri_complete: format!("{uri}?code={}", a.user_code),
            verification_uri: uri,
            user_code: a.user_code,
            expires_in: u32::try_from(LIFETIME_MINUTES * 60).unwrap_or(600),
            interval: INTERVAL_SECONDS,
        }))
    }

    /// Polls a device log-in: the API key once the person approved (once: later polls are
    /// `expired_token`), else 409 `authorization_pending`, 429 `slow_down` (with the new
    /// `interval`), 403 `access_denied` or 410 `expired_token`.
    #[oai(
        path = "/auth/device/token",
        method = "post",
        operation_id = "pollDeviceLogIn"
    )]
    async fn token(
        &self,
        state: Data<&AppState>,
        body: Json<DeviceTokenRequest>,
    ) -> Result<Json<DeviceTokenDto>, ApiError> {
        let issued = state.devices.poll(&body.0.device_code).await?;
        tracing::info!(user = %issued.key.user_id, key = %issued.key.id, "device log-in redeemed");
        Ok(Json(DeviceTokenDto {
            token: issued.token,
            key_id: issued.key.id.as_uuid(),
            name: issued.key.name,
            user_id: issued.key.user_id.as_uuid(),
        }))
    }
}
