//! Connecting accounts with tokens and trust: the connection instructions and External ID,
//! connect tokens (web-initiated) and connection requests (CLI-initiated).

use canopy_cloud_org::external_id::ExternalId;
use canopy_cloud_org::{IssuedToken, RequestPreview};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::cloud_accounts::{ConnectAccountRequest, Connected};
use super::problem::ApiError;
use super::wire::OrgText;
use super::{ApiTags, BearerAuth, NoContent};
use crate::state::AppState;

/// Connection endpoints.
pub struct ConnectionsApi;

#[derive(ApiResponse)]
enum Issued {
    /// Issued.
    #[oai(status = 201)]
    Created(Json<IssuedTokenDto>),
}

#[OpenApi(tag = "ApiTags::CloudAccounts")]
impl ConnectionsApi {
    /// The principal to trust, the External ID and a ready trust policy (admin or owner).
    #[oai(
        path = "/organizations/:org/connection-instructions",
        method = "get",
        operation_id = "getConnectionInstructions"
    )]
    async fn instructions(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
    ) -> Result<Json<ConnectionInstructionsDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let i = state.cloud.connection_instructions(&access).await?;
        Ok(Json(ConnectionInstructionsDto {
            trusted_principal: i.trusted_principal,
            external_id: i.external_id,
            trust_policy: i.trust_policy,
            management_role_policy: i.management_role_policy,
            member_role_name: i.member_role_name,
            gcp_organization_roles: i.gcp_organization_roles,
        }))
    }

    /// Replaces the External ID; roles must then trust the new one (admin or owner).
    #[oai(
        path = "/organizations/:org/external-id/rotate",
        method = "post",
        operation_id = "rotateExternalId"
    )]
    async fn rotate(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
    ) -> Result<Json<ExternalIdDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        Ok(Json(state.cloud.rotate_external_id(&access).await?.into()))
    }

    /// Web-initiated connection: a single-use token (10 minutes) and the exact
    /// `canopy connect --token ...` command line (admin or owner).
    #[oai(
        path = "/organizations/:org/connect-tokens",
        method = "post",
        operation_id = "createConnectToken"
    )]
    async fn create_connect_token(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
    ) -> Result<Issued, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        Ok(Issued::Created(Json(
            state.cloud.create_connect_token(&access).await?.into(),
        )))
    }

    /// Connects an account with a connect token instead of a session: the token is the
    /// credential, usable once within 10 minutes.
    #[oai(path = "/connect", method = "post", operation_id = "connectWithToken")]
    async fn connect_with_token(
        &self,
        state: Data<&AppState>,
        req: &poem::Request,
        body: Json<ConnectWithTokenRequest>,
    ) -> Result<Connected, ApiError> {
        state.check_auth_rate(req)?;
        let body = body.0;
        let account = state
            .cloud
            .connect_with_token(&body.token, &body.account.into())
            .await?;
        Ok(Connected::Created(Json(account.into())))
    }

    /// CLI-initiated connection: files the account details and returns a token and a confirm
    /// URL valid 10 minutes (admin or owner).
    #[oai(
        path = "/organizations/:org/connection-requests",
        method = "post",
        operation_id = "createConnectionRequest"
    )]
    async fn create_connection_request(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        body: Json<ConnectAccountRequest>,
    ) -> Result<Issued, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let issued = state
            .cloud
            .create_connection_request(&access, &body.0.into())
            .await?;
        Ok(Issued::Created(Json(issued.into())))
    }

    /// Previews a connection request (admin or owner of its organization; anyone else gets 404).
    #[oai(
        path = "/connection-requests/:token",
        method = "get",
        operation_id = "previewConnectionRequest"
    )]
    async fn preview_request(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        #[oai(validator(max_length = 512))] token: Path<String>,
    ) -> Result<Json<ConnectionRequestPreviewDto>, ApiError> {
        let principal = auth.principal(&state).await?;
        let RequestPreview {
            token: t,
            organization,
            expired,
        } = state.cloud.preview_request(&principal, &token.0).await?;
        let input = t.input.clone().unwrap_or_default();
        Ok(Json(ConnectionRequestPreviewDto {
            organization_id: organization.id.as_uuid(),
            organization_name: organization.name,
            status: t.status.as_str().to_string(),
            expired,
            expires_at: t.expires_at,
            provider: input.provider.clone(),
            account_id: input.account_id.clone().or(input.project_id.clone()),
            region: input.region.clone(),
            role_arn: input.role_arn.clone(),
            alias: input.alias.clone(),
            environment: input.environment.clone(),
            cloud_account_id: t.cloud_account_id.map(|id| id.as_uuid()),
        }))
    }

    /// Confirms a connection request: the account is connected (admin or owner).
    #[oai(
        path = "/connection-requests/:token/confirm",
        method = "post",
        operation_id = "confirmConnectionRequest"
    )]
    async fn confirm_request(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        #[oai(validator(max_length = 512))] token: Path<String>,
    ) -> Result<Connected, ApiError> {
        let principal = auth.principal(&state).await?;
        let account = state.cloud.confirm_request(&principal, &token.0).await?;
        Ok(Connected::Created(Json(account.into())))
    }

    /// Cancels a pending connection request (admin or owner).
    #[oai(
        path = "/connection-requests/:token/cancel",
        method = "post",
        operation_id = "cancelConnectionRequest"
    )]
    async fn cancel_request(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        #[oai(validator(max_length = 512))] token: Path<String>,
    ) -> Result<NoContent, ApiError> {
        let principal = auth.principal(&state).await?;
        state.cloud.cancel_request(&principal, &token.0).await?;
        Ok(NoContent::Done)
    }

    /// Every External ID the organization has had, newest first (admin or owner).
    #[oai(
        path = "/organizations/:org/external-ids",
        method = "get",
        operation_id = "listExternalIds"
    )]
    async fn external_ids(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
    ) -> Result<Json<Vec<ExternalIdDto>>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let history = state.cloud.external_id_history(&access).await?;
        Ok(Json(history.into_iter().map(Into::into).collect()))
    }
}

/// How to grant Canopy access to an AWS account.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ConnectionInstructionsDto {
    /// The principal the role must trust.
    pub trusted_principal: String,
    /// The organization's External ID (required by the trust policy).
    pub external_id: String,
    /// A ready IAM trust policy: for an account's role, an AWS Organization's management
    /// role, and the member role in each of its accounts.
    pub trust_policy: serde_json::Value,
    /// The permissions policy of an AWS Organization's management role
    /// (`organizations:Describe*`, `organizations:List*`).
    pub management_role_policy: serde_json::Value,
    /// The member role name Canopy assumes in an organization's accounts by default.
    pub member_role_name: String,
    /// The roles a GCP Organization's service account needs on the organization.
    pub gcp_organization_roles: Vec<String>,
}

/// An External ID.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ExternalIdDto {
    /// The value.
    pub value: String,
    /// Issued.
    pub created_at: DateTime<Utc>,
    /// Replaced by a rotation; absent while current.
    pub retired_at: Option<DateTime<Utc>>,
}

impl From<ExternalId> for ExternalIdDto {
    fn from(e: ExternalId) -> Self {
        Self {
            value: e.value,
            created_at: e.created_at,
            retired_at: e.retired_at,
        }
    }
}

/// A connect token or connection request; the token is shown only in this response.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct IssuedTokenDto {
    /// The single-use token.
    pub token: String,
    /// When it stops working (10 minutes).
    pub expires_at: DateTime<Utc>,
    /// The exact command that uses it.
    pub command: String,
    /// Where an admin or owner confirms it (connection requests).
    pub confirm_url: Option<String>,
}

impl From<IssuedToken> for IssuedTokenDto {
    fn from(t: IssuedToken) -> Self {
        Self {
            token: t.token,
            expires_at: t.expires_at,
            command: t.command,
            confirm_url: t.confirm_url,
        }
    }
}

/// `POST /v1/connect`: a connect token and the account it connects.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ConnectWithTokenRequest {
    /// The token from `POST .../connect-tokens`.
    #[oai(validator(max_length = 512))]
    pub token: String,
    /// The account details.
    pub account: ConnectAccountRequest,
}

/// A connection request as an admin or owner reviews it.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ConnectionRequestPreviewDto {
    /// Organization the account would join.
    pub organization_id: Uuid,
    /// Its name.
    pub organization_name: String,
    /// pending, used or cancelled.
    pub status: String,
    /// True once its 10 minutes are over.
    pub expired: bool,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// The account that would be connected.
    pub provider: String,
    /// AWS account id or GCP project id.
    pub account_id: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Role ARN.
    pub role_arn: Option<String>,
    /// Alias.
    pub alias: Option<String>,
    /// Environment.
    pub environment: Option<String>,
    /// The account it created, once confirmed.
    pub cloud_account_id: Option<Uuid>,
}
