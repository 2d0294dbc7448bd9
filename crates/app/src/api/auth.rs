//! Sign-up, log-in and log-out. Sign-up and log-in are rate limited per client address.

use canopy_tenancy::user::User;
use chrono::{DateTime, Utc};
use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::problem::ApiError;
use super::wire::{EmailText, Name, NewPassword};
use super::{ApiTags, BearerAuth, NoContent};
use crate::state::AppState;

/// Authentication endpoints.
pub struct AuthApi;

#[derive(ApiResponse)]
enum SignUpResponse {
    /// Registered; the personal organization exists and is active.
    #[oai(status = 201)]
    Created(Json<SessionDto>),
}

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Sign up: creates the user, their personal organization (as owner) and a session.
    #[oai(path = "/auth/signup", method = "post", operation_id = "signUp")]
    async fn sign_up(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<SignUpRequest>,
    ) -> Result<SignUpResponse, ApiError> {
        state.check_auth_rate(req)?;
        let body = body.0;
        let signed_in = state
            .tenancy
            .sign_up(
                body.email.as_str(),
                body.name.as_str(),
                body.password.into_string(),
            )
            .await?;
        tracing::info!(user = %signed_in.user.id, "user signed up");
        Ok(SignUpResponse::Created(Json(SessionDto {
            token: signed_in.token,
            expires_at: signed_in.expires_at,
            user: signed_in.user.into(),
        })))
    }

    /// Log in with email and password; returns a session token.
    #[oai(path = "/auth/login", method = "post", operation_id = "logIn")]
    async fn log_in(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<LogInRequest>,
    ) -> Result<Json<SessionDto>, ApiError> {
        state.check_auth_rate(req)?;
        let body = body.0;
        let signed_in = state.tenancy.log_in(&body.email, body.password).await?;
        Ok(Json(SessionDto {
            token: signed_in.token,
            expires_at: signed_in.expires_at,
            user: signed_in.user.into(),
        }))
    }

    /// Log out: the presented session token stops working.
    #[oai(path = "/auth/logout", method = "post", operation_id = "logOut")]
    async fn log_out(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<NoContent, ApiError> {
        let principal = auth.principal(&state).await?;
        state.tenancy.log_out(&principal, &auth.0.token).await?;
        Ok(NoContent::Done)
    }
}

/// A user.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct UserDto {
    /// Id.
    pub id: Uuid,
    /// Normalized email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Sign-up time.
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserDto {
    fn from(u: User) -> Self {
        Self {
            id: u.id.as_uuid(),
            email: u.email.to_string(),
            name: u.name,
            created_at: u.created_at,
        }
    }
}

/// Sign-up request.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SignUpRequest {
    /// Login email; lower-cased.
    pub email: EmailText,
    /// Display name, 1 to 100 characters, no control characters.
    pub name: Name,
    /// 10 to 256 characters.
    pub password: NewPassword,
}

/// Log-in request.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LogInRequest {
    /// Login email.
    #[oai(validator(max_length = 254))]
    pub email: String,
    /// Password.
    #[oai(validator(max_length = 256))]
    pub password: String,
}

/// A new session.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct SessionDto {
    /// Bearer token; shown only now.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// The signed-in user.
    pub user: UserDto,
}
