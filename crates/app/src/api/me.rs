//! The signed-in user: profile, organizations, active organization, API keys, invitations.

use canopy_kernel::id::ApiKeyId;
use canopy_tenancy::credential::ApiKey;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::auth::UserDto;
use super::invitations::ReceivedInvitationDto;
use super::organizations::MyOrganizationDto;
use super::problem::ApiError;
use super::wire::Name;
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
