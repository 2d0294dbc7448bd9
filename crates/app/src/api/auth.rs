//! Sign-up, log-in and log-out. Sign-up and log-in are rate limited per client address.

use canopy_tenancy::account::TokenPurpose;
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
                &state.client_info(req),
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
        let signed_in = state
            .tenancy
            .log_in(&body.email, body.password, &state.client_info(req))
            .await?;
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

    /// Opens a link from an e-mail: verifies the account's address, or confirms a new one.
    /// Single-use; 410 `link_expired` after 24 hours, 422 `link_invalid` once used or replaced.
    #[oai(
        path = "/auth/verify-email",
        method = "post",
        operation_id = "verifyEmail"
    )]
    async fn verify_email(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<TokenRequest>,
    ) -> Result<Json<VerifiedDto>, ApiError> {
        state.check_auth_rate(req)?;
        let done = state
            .tenancy
            .confirm_email(&body.0.token, &state.client_info(req))
            .await?;
        Ok(Json(VerifiedDto {
            purpose: match done.purpose {
                TokenPurpose::ChangeEmail => "email_changed",
                _ => "email_verified",
            }
            .to_string(),
            user: done.user.into(),
        }))
    }

    /// Asks for a password-reset link. The answer is the same whether or not an account has
    /// this address, and comes before the address is even looked up; the link (valid 30
    /// minutes, once) arrives by e-mail if it does. Rate limited per client and per address.
    #[oai(
        path = "/auth/password-reset",
        method = "post",
        operation_id = "requestPasswordReset"
    )]
    async fn request_password_reset(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<ResetRequest>,
    ) -> Result<Accepted, ApiError> {
        state.check_auth_rate(req)?;
        let email = body.0.email;
        if state.mail_allowed(&email) {
            let tenancy = state.tenancy.clone();
            let client = state.client_info(req);
            // After the answer: how long the lookup takes must not tell who has an account.
            tokio::spawn(async move {
                if let Err(e) = tenancy.request_password_reset(&email, &client).await {
                    tracing::warn!(error = %e, "a password-reset request failed");
                }
            });
        }
        Ok(Accepted::Accepted(Json(Message {
            message: "If an account has this address, a link to choose a new password is on \
                      its way. It works once, for 30 minutes."
                .into(),
        })))
    }

    /// Sets a new password with the token of a reset link; every session of the account ends
    /// and the address counts as verified. Single-use; 410 `link_expired` after 30 minutes,
    /// 422 `link_invalid` once used or replaced.
    #[oai(
        path = "/auth/password-reset/confirm",
        method = "post",
        operation_id = "resetPassword"
    )]
    async fn reset_password(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<ResetConfirmRequest>,
    ) -> Result<NoContent, ApiError> {
        state.check_auth_rate(req)?;
        let body = body.0;
        state
            .tenancy
            .reset_password(
                &body.token,
                body.new_password.into_string(),
                &state.client_info(req),
            )
            .await?;
        Ok(NoContent::Done)
    }
}

/// An accepted request whose effect follows by e-mail.
#[derive(ApiResponse)]
pub enum Accepted {
    /// Accepted.
    #[oai(status = 202)]
    Accepted(Json<Message>),
}

/// A sentence for people.
#[derive(Debug, Object)]
pub struct Message {
    /// What happens next.
    pub message: String,
}

/// The token of a link from an e-mail.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TokenRequest {
    /// The `token` query parameter of the link.
    #[oai(validator(max_length = 512))]
    pub token: String,
}

/// What an opened link did.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct VerifiedDto {
    /// `email_verified` or `email_changed`.
    pub purpose: String,
    /// The account as it is now.
    pub user: UserDto,
}

/// A password-reset request.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ResetRequest {
    /// The account's address.
    #[oai(validator(max_length = 254))]
    pub email: String,
}

/// A new password through a reset link.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ResetConfirmRequest {
    /// The `token` query parameter of the link.
    #[oai(validator(max_length = 512))]
    pub token: String,
    /// 10 to 256 characters.
    pub new_password: NewPassword,
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
    /// Whether the address was proven by opening a link sent to it. Until it is, the user
    /// cannot create API keys or accept invitations.
    pub email_verified: bool,
    /// When it was.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// Sign-up time.
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserDto {
    fn from(u: User) -> Self {
        Self {
            id: u.id.as_uuid(),
            email: u.email.to_string(),
            name: u.name,
            email_verified: u.email_verified_at.is_some(),
            email_verified_at: u.email_verified_at,
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
