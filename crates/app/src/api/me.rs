//! The signed-in user: profile, organizations, active organization, API keys, invitations.

use canopy_kernel::PageRequest;
use canopy_kernel::id::{ApiKeyId, SessionId};
use canopy_tenancy::account::HeldOrganization;
use canopy_tenancy::credential::{ApiKey, CredentialKind};
use chrono::{DateTime, Utc};
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::auth::{Accepted, Message, UserDto};
use super::invitations::ReceivedInvitationDto;
use super::organizations::MyOrganizationDto;
use super::problem::ApiError;
use super::wire::{EmailText, IdText, Name, NewPassword};
use super::{ApiTags, BearerAuth, NoContent};
use crate::state::AppState;

/// Endpoints about the caller.
pub struct MeApi;

#[derive(ApiResponse)]
enum CreatedKey {
    /// Created; the token is shown only in this response.
    #[oai(status = 201)]
    Created(Json<CreatedApiKeyDto>),
}

#[OpenApi(tag = "ApiTags::Me")]
impl MeApi {
    /// The caller, every organization they belong to with their role, and the active one.
    #[oai(path = "/me", method = "get", operation_id = "getMe")]
    async fn me(&self, state: Data<&AppState>, auth: BearerAuth) -> Result<Json<MeDto>, ApiError> {
        let principal = auth.principal(&state).await?;
        let me = state.tenancy.me(&principal).await?;
        Ok(Json(MeDto {
            user: me.user.into(),
            organizations: me.organizations.into_iter().map(Into::into).collect(),
            active_organization_id: me.active_organization_id.map(|o| o.as_uuid()),
        }))
    }

    /// Persists the active organization (the caller must be a member).
    #[oai(
        path = "/me/active-organization",
        method = "put",
        operation_id = "setActiveOrganization"
    )]
    async fn set_active_organization(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<ActiveOrganizationRequest>,
    ) -> Result<Json<MyOrganizationDto>, ApiError> {
        let principal = auth.principal(&state).await?;
        let access = state
            .tenancy
            .set_active_organization(&principal, &body.0.organization)
            .await?;
        Ok(Json(MyOrganizationDto {
            organization: access.organization().clone().into(),
            role: access.role().into(),
            member_count: None,
        }))
    }

    /// The caller's API keys, newest first (never their secrets).
    #[oai(path = "/me/api-keys", method = "get", operation_id = "listApiKeys")]
    async fn list_api_keys(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<Json<Vec<ApiKeyDto>>, ApiError> {
        let principal = auth.principal(&state).await?;
        let keys = state.tenancy.list_api_keys(&principal).await?;
        Ok(Json(keys.into_iter().map(Into::into).collect()))
    }

    /// Creates an API key for CLIs and generated clients; the token is shown once.
    #[oai(path = "/me/api-keys", method = "post", operation_id = "createApiKey")]
    async fn create_api_key(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<CreateApiKeyRequest>,
    ) -> Result<CreatedKey, ApiError> {
        let principal = auth.principal(&state).await?;
        let issued = state
            .tenancy
            .create_api_key(&principal, body.0.name.as_str(), body.0.expires_in_days)
            .await?;
        Ok(CreatedKey::Created(Json(CreatedApiKeyDto {
            api_key: issued.key.into(),
            token: issued.token,
        })))
    }

    /// Revokes one of the caller's API keys; it stops working at once.
    #[oai(
        path = "/me/api-keys/:id",
        method = "delete",
        operation_id = "revokeApiKey"
    )]
    async fn revoke_api_key(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        let principal = auth.principal(&state).await?;
        state
            .tenancy
            .revoke_api_key(&principal, ApiKeyId(id.0))
            .await?;
        Ok(NoContent::Done)
    }

    /// Sends the address-verification link again (rate limited: a few per hour).
    #[oai(
        path = "/me/verification-email",
        method = "post",
        operation_id = "resendVerificationEmail"
    )]
    async fn resend_verification(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<Accepted, ApiError> {
        let principal = auth.principal(&state).await?;
        if !state.mail_allowed(&principal.user_id.to_string()) {
            return Err(ApiError::rate_limited(15 * 60));
        }
        state.tenancy.resend_verification(&principal).await?;
        Ok(Accepted::Accepted(Json(Message {
            message: "A new verification link is on its way; it works once, for 24 hours. \
                      Earlier links no longer work."
                .into(),
        })))
    }

    /// Changes the password; the current one is required. Every other session ends (the one
    /// making the change stays), and the account's address gets a notice.
    #[oai(
        path = "/me/password",
        method = "post",
        operation_id = "changePassword"
    )]
    async fn change_password(
        &self,
        state: Data<&AppState>,
        req: &Request,
        auth: BearerAuth,
        body: Json<ChangePasswordRequest>,
    ) -> Result<Json<SessionsEnded>, ApiError> {
        state.check_auth_rate(req)?;
        let principal = auth.principal(&state).await?;
        let body = body.0;
        let ended = state
            .tenancy
            .change_password(
                &principal,
                body.current_password,
                body.new_password.into_string(),
                &state.client_info(req),
            )
            .await?;
        Ok(Json(SessionsEnded {
            sessions_ended: ended,
        }))
    }

    /// Asks to change the account's address (the current password is required). The new
    /// address gets a confirmation link (24 hours, once); the old one a notice. Nothing
    /// changes until the link is opened.
    #[oai(path = "/me/email", method = "post", operation_id = "changeEmail")]
    async fn change_email(
        &self,
        state: Data<&AppState>,
        req: &Request,
        auth: BearerAuth,
        body: Json<ChangeEmailRequest>,
    ) -> Result<Accepted, ApiError> {
        state.check_auth_rate(req)?;
        let principal = auth.principal(&state).await?;
        let body = body.0;
        if !state.mail_allowed(&principal.user_id.to_string()) {
            return Err(ApiError::rate_limited(15 * 60));
        }
        state
            .tenancy
            .request_email_change(
                &principal,
                body.new_email.as_str(),
                body.current_password,
                &state.client_info(req),
            )
            .await?;
        Ok(Accepted::Accepted(Json(Message {
            message: "Open the link sent to the new address to confirm it; until then you \
                      keep signing in with this one."
                .into(),
        })))
    }

    /// The caller's sessions that have not expired, newest first; `current` marks the one
    /// making this request.
    #[oai(path = "/me/sessions", method = "get", operation_id = "listSessions")]
    async fn list_sessions(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<Json<Vec<SessionInfoDto>>, ApiError> {
        let principal = auth.principal(&state).await?;
        let current = match principal.credential {
            CredentialKind::Session(id) => Some(id),
            CredentialKind::ApiKey(_) => None,
        };
        let sessions = state.tenancy.list_sessions(&principal).await?;
        Ok(Json(
            sessions
                .into_iter()
                .map(|s| SessionInfoDto {
                    current: Some(s.id) == current,
                    id: s.id.as_uuid(),
                    created_at: s.created_at,
                    last_used_at: s.last_used_at,
                    expires_at: s.expires_at,
                    user_agent: s.user_agent,
                    ip: s.ip,
                })
                .collect(),
        ))
    }

    /// Ends one of the caller's sessions at once (the current one too).
    #[oai(
        path = "/me/sessions/:id",
        method = "delete",
        operation_id = "revokeSession"
    )]
    async fn revoke_session(
        &self,
        state: Data<&AppState>,
        req: &Request,
        auth: BearerAuth,
        id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        let principal = auth.principal(&state).await?;
        state
            .tenancy
            .revoke_session(&principal, SessionId(id.0), &state.client_info(req))
            .await?;
        Ok(NoContent::Done)
    }

    /// Ends every session of the caller but the current one.
    #[oai(
        path = "/me/sessions/revoke-others",
        method = "post",
        operation_id = "revokeOtherSessions"
    )]
    async fn revoke_other_sessions(
        &self,
        state: Data<&AppState>,
        req: &Request,
        auth: BearerAuth,
    ) -> Result<Json<SessionsEnded>, ApiError> {
        let principal = auth.principal(&state).await?;
        let ended = state
            .tenancy
            .revoke_other_sessions(&principal, &state.client_info(req))
            .await?;
        Ok(Json(SessionsEnded {
            sessions_ended: ended,
        }))
    }

    /// The caller's security log (password, e-mail and session changes), newest first.
    #[oai(
        path = "/me/security-log",
        method = "get",
        operation_id = "listSecurityLog"
    )]
    async fn security_log(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        cursor: Query<Option<IdText>>,
    ) -> Result<Json<SecurityLogPage>, ApiError> {
        let principal = auth.principal(&state).await?;
        let page = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        let events = state.tenancy.security_log(&principal, page).await?;
        Ok(Json(SecurityLogPage {
            next_cursor: events.next.map(|c| c.encode()),
            items: events
                .items
                .into_iter()
                .map(|e| SecurityEventDto {
                    id: e.id,
                    action: e.action.as_str().to_string(),
                    ip: e.client.ip,
                    user_agent: e.client.user_agent,
                    details: e.details,
                    occurred_at: e.occurred_at,
                })
                .collect(),
        }))
    }

    /// Deletes the caller's account for good (the password is required). Organizations the
    /// caller is the only member of go with everything they hold; other memberships end, and
    /// their audit logs keep a tombstone instead of the address. Refused with 409
    /// `last_owner`, naming the organizations, while the caller is the only owner of one
    /// that others belong to. Every session and API key of the account ends.
    #[oai(path = "/me/deletion", method = "post", operation_id = "deleteAccount")]
    async fn delete_account(
        &self,
        state: Data<&AppState>,
        req: &Request,
        auth: BearerAuth,
        body: Json<DeleteAccountRequest>,
    ) -> Result<Json<DeletedAccountDto>, ApiError> {
        state.check_auth_rate(req)?;
        let principal = auth.principal(&state).await?;
        let deleted = state
            .tenancy
            .delete_account(&principal, body.0.current_password)
            .await?;
        let list = |orgs: Vec<HeldOrganization>| {
            orgs.into_iter()
                .map(|o| DeletedOrganizationDto {
                    id: o.id.as_uuid(),
                    slug: o.slug.as_str().to_string(),
                    name: o.name,
                })
                .collect()
        };
        Ok(Json(DeletedAccountDto {
            organizations_deleted: list(deleted.organizations_deleted),
            memberships_ended: list(deleted.memberships_ended),
        }))
    }

    /// Pending invitations addressed to the caller's email.
    #[oai(
        path = "/me/invitations",
        method = "get",
        operation_id = "listMyInvitations"
    )]
    async fn my_invitations(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<Json<Vec<ReceivedInvitationDto>>, ApiError> {
        let principal = auth.principal(&state).await?;
        let invitations = state.tenancy.my_invitations(&principal).await?;
        Ok(Json(invitations.into_iter().map(Into::into).collect()))
    }
}

/// A password change.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ChangePasswordRequest {
    /// The password in use now.
    #[oai(validator(max_length = 256))]
    pub current_password: String,
    /// 10 to 256 characters.
    pub new_password: NewPassword,
}

/// An e-mail change.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ChangeEmailRequest {
    /// The address to move to.
    pub new_email: EmailText,
    /// The password in use now.
    #[oai(validator(max_length = 256))]
    pub current_password: String,
}

/// How many sessions a change ended.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SessionsEnded {
    /// Sessions ended.
    pub sessions_ended: u64,
}

/// One of the caller's sessions.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct SessionInfoDto {
    /// Id.
    pub id: Uuid,
    /// The session making this request.
    pub current: bool,
    /// Opened at.
    pub created_at: DateTime<Utc>,
    /// Last request made with it (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it ends by itself.
    pub expires_at: DateTime<Utc>,
    /// The browser or tool that opened it.
    pub user_agent: Option<String>,
    /// The address it was opened from (as seen through the configured proxy trust).
    pub ip: Option<String>,
}

/// An entry of the security log.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct SecurityEventDto {
    /// Id.
    pub id: Uuid,
    /// `email.verified`, `email.change_requested`, `email.changed`, `password.changed`,
    /// `password.reset_requested`, `password.reset`, `session.revoked` or
    /// `session.others_revoked`.
    pub action: String,
    /// From where.
    pub ip: Option<String>,
    /// With what.
    pub user_agent: Option<String>,
    /// Facts (the new address, how many sessions ended).
    pub details: serde_json::Value,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

/// A page of the security log.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct SecurityLogPage {
    /// Newest first.
    pub items: Vec<SecurityEventDto>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// The signed-in user with their organizations.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct MeDto {
    /// The user.
    pub user: UserDto,
    /// Every organization they belong to, with their role.
    pub organizations: Vec<MyOrganizationDto>,
    /// The organization the console opens.
    pub active_organization_id: Option<Uuid>,
}

/// Sets the active organization.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ActiveOrganizationRequest {
    /// Organization id or slug.
    #[oai(validator(max_length = 64))]
    pub organization: String,
}

/// API key creation request.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CreateApiKeyRequest {
    /// A name to recognise the key by.
    pub name: Name,
    /// Days until it expires (1 to 3650); never when absent.
    #[oai(validator(minimum(value = "1"), maximum(value = "3650")))]
    pub expires_in_days: Option<u32>,
}

/// An API key, without its secret.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ApiKeyDto {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// First characters of the token.
    pub prefix: String,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Creation.
    pub created_at: DateTime<Utc>,
}

impl From<ApiKey> for ApiKeyDto {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.as_uuid(),
            name: k.name,
            prefix: k.prefix,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            created_at: k.created_at,
        }
    }
}

/// A new API key with its token, shown only once.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CreatedApiKeyDto {
    /// The key.
    pub api_key: ApiKeyDto,
    /// The bearer token; store it now.
    pub token: String,
}

/// `POST /v1/me/deletion`.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeleteAccountRequest {
    /// The account's current password.
    #[oai(validator(max_length = 256))]
    pub current_password: String,
}

/// An organization an account deletion removed or left.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeletedOrganizationDto {
    /// Id.
    pub id: Uuid,
    /// Slug.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// What deleting the account removed.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeletedAccountDto {
    /// Organizations the caller was alone in, deleted with all they held.
    pub organizations_deleted: Vec<DeletedOrganizationDto>,
    /// Organizations that stay, without the caller.
    pub memberships_ended: Vec<DeletedOrganizationDto>,
}
