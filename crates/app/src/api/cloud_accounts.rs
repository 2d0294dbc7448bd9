//! Cloud accounts: connect (manual), list with filters, read, edit, disconnect, verify (sync),
//! and the health timeline.

use std::collections::BTreeMap;

use canopy_cloud_org::account::{
    AccountInput, CloudAccount, CloudAccountId, CloudIdentity, Features, Provider,
};
use canopy_cloud_org::health::HealthCheck;
use canopy_cloud_org::{AccountChanges, AccountFilter};
use canopy_kernel::PageRequest;
use canopy_kernel::page::Page;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::problem::ApiError;
use super::wire::{
    AccountIdText, AccountStatusDto, ConfigurationSetText, EnvironmentDto, HostName, IdText, Label,
    OrgText, ProjectIdText, ProjectNumberText, ProviderDto, RegionText, RoleArnText, Ruled,
    TagValue,
};
use super::{ApiTags, BearerAuth, NoContent};
use crate::state::AppState;

/// Cloud-account endpoints.
pub struct CloudAccountsApi;

/// SES feature switches.
#[derive(Debug, Clone, Copy, Object, Default)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct FeaturesDto {
    /// Sending through SES.
    #[oai(default)]
    pub sending_enabled: bool,
    /// SES event tracking.
    #[oai(default)]
    pub event_tracking: bool,
    /// Message history storage.
    #[oai(default)]
    pub history_storage: bool,
}

impl From<FeaturesDto> for Features {
    fn from(f: FeaturesDto) -> Self {
        Features {
            sending_enabled: f.sending_enabled,
            event_tracking: f.event_tracking,
            history_storage: f.history_storage,
        }
    }
}

impl From<Features> for FeaturesDto {
    fn from(f: Features) -> Self {
        FeaturesDto {
            sending_enabled: f.sending_enabled,
            event_tracking: f.event_tracking,
            history_storage: f.history_storage,
        }
    }
}

/// Details of an account to connect. AWS needs `accountId`, `roleArn`, `region`; GCP needs
/// `projectId`.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ConnectAccountRequest {
    /// The cloud.
    pub provider: ProviderDto,
    /// AWS: the 12-digit account id.
    pub account_id: Option<AccountIdText>,
    /// AWS: the role Canopy assumes, in that account (`arn:aws:iam::<accountId>:role/...`).
    pub role_arn: Option<RoleArnText>,
    /// AWS: primary region.
    pub region: Option<RegionText>,
    /// GCP: project id.
    pub project_id: Option<ProjectIdText>,
    /// GCP: project number.
    pub project_number: Option<ProjectNumberText>,
    /// Friendly name.
    pub alias: Option<Label>,
    /// Infrastructure stack name.
    pub stack_name: Option<Label>,
    /// SES configuration set.
    pub ses_configuration_set: Option<ConfigurationSetText>,
    /// Verified SES domains (at most 100).
    #[oai(validator(max_items = 100))]
    pub ses_domains: Option<Vec<HostName>>,
    /// Feature switches.
    pub features: Option<FeaturesDto>,
    /// Environment badge.
    pub environment: Option<EnvironmentDto>,
    /// Tags (at most 50; keys 1-128 characters without control characters).
    #[oai(validator(max_properties = 50))]
    pub tags: Option<BTreeMap<String, TagValue>>,
}

fn tags_of(tags: BTreeMap<String, TagValue>) -> BTreeMap<String, String> {
    tags.into_iter()
        .map(|(k, v)| (k, v.into_string()))
        .collect()
}

fn domains_of(domains: Vec<HostName>) -> Vec<String> {
    domains.into_iter().map(HostName::into_string).collect()
}

impl From<ConnectAccountRequest> for AccountInput {
    fn from(r: ConnectAccountRequest) -> Self {
        AccountInput {
            provider: r.provider.as_str().to_string(),
            account_id: r.account_id.map(Ruled::into_string),
            role_arn: r.role_arn.map(Ruled::into_string),
            region: r.region.map(Ruled::into_string),
            project_id: r.project_id.map(Ruled::into_string),
            project_number: r.project_number.map(Ruled::into_string),
            alias: r.alias.map(Ruled::into_string),
            stack_name: r.stack_name.map(Ruled::into_string),
            ses_configuration_set: r.ses_configuration_set.map(Ruled::into_string),
            ses_domains: r.ses_domains.map(domains_of).unwrap_or_default(),
            features: r.features.map(Into::into).unwrap_or_default(),
            environment: r.environment.map(|e| e.as_str().to_string()),
            tags: r.tags.map(tags_of).unwrap_or_default(),
        }
    }
}

/// Changes to an account; absent fields stay, `null` clears alias, environment or
/// configuration set.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct UpdateAccountRequest {
    /// Friendly name; null clears it.
    #[oai(nullable)]
    pub alias: MaybeUndefined<Label>,
    /// Environment; null clears it.
    #[oai(nullable)]
    pub environment: MaybeUndefined<EnvironmentDto>,
    /// Tags (replaced whole).
    #[oai(validator(max_properties = 50))]
    pub tags: Option<BTreeMap<String, TagValue>>,
    /// AWS primary region.
    pub region: Option<RegionText>,
    /// AWS role ARN (same account).
    pub role_arn: Option<RoleArnText>,
    /// Feature switches (replaced whole).
    pub features: Option<FeaturesDto>,
    /// SES domains (replaced whole).
    #[oai(validator(max_items = 100))]
    pub ses_domains: Option<Vec<HostName>>,
    /// SES configuration set; null clears it.
    #[oai(nullable)]
    pub ses_configuration_set: MaybeUndefined<ConfigurationSetText>,
}

fn maybe<T>(v: MaybeUndefined<T>, text: impl Fn(T) -> String) -> Option<Option<String>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(text(v))),
    }
}

/// A connected cloud account.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CloudAccountDto {
    /// Id.
    pub id: Uuid,
    /// `aws` or `gcp`.
    pub provider: String,
    /// The 12-digit AWS account id or the GCP project id.
    pub account_id: String,
    /// Alias, or the account id when there is none: what a filter dropdown shows.
    pub display_name: String,
    /// Friendly name.
    pub alias: Option<String>,
    /// AWS primary region.
    pub region: Option<String>,
    /// AWS role ARN.
    pub role_arn: Option<String>,
    /// GCP project number.
    pub project_number: Option<String>,
    /// Stack name.
    pub stack_name: Option<String>,
    /// SES configuration set.
    pub ses_configuration_set: Option<String>,
    /// SES domains.
    pub ses_domains: Vec<String>,
    /// Feature switches.
    pub features: FeaturesDto,
    /// production, staging or development.
    pub environment: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Connection health.
    pub status: AccountStatusDto,
    /// What the status means (a pending account is not verified yet).
    pub status_detail: String,
    /// Last successful check.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Last failure with advice.
    pub last_error: Option<String>,
    /// Where it sits in the cloud organization it was connected from, when it was.
    pub cloud_organization: Option<PlacementDto>,
    /// Who connected it.
    pub created_by: Uuid,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Where an account sits in its cloud organization.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct PlacementDto {
    /// The cloud organization.
    pub id: Uuid,
    /// Names from the root, `Root/Production/Web`.
    pub hierarchy_path: Option<String>,
    /// The OU, folder or root it sits directly in.
    pub parent_id: Option<String>,
    /// AWS: the organization's management account.
    pub is_management_account: bool,
    /// Delegated administrator of at least one service.
    pub is_delegated_admin: bool,
    /// Services it is the delegated administrator of (`guardduty.amazonaws.com`).
    pub delegated_admin_services: Vec<String>,
    /// When a sync found it gone from the organization: still connected, no longer
    /// inheriting the organization's controls.
    pub left_at: Option<DateTime<Utc>>,
}

impl From<CloudAccount> for CloudAccountDto {
    fn from(a: CloudAccount) -> Self {
        let (region, role_arn, project_number) = match &a.identity {
            CloudIdentity::Aws {
                role_arn, region, ..
            } => (
                Some(region.as_str().to_string()),
                Some(role_arn.as_str().to_string()),
                None,
            ),
            CloudIdentity::Gcp { project_number, .. } => (None, None, project_number.clone()),
        };
        let account_id = a.identity.account_key().to_string();
        Self {
            id: a.id.as_uuid(),
            provider: a.identity.provider().as_str().to_string(),
            display_name: a
                .settings
                .alias
                .clone()
                .unwrap_or_else(|| account_id.clone()),
            account_id,
            alias: a.settings.alias,
            region,
            role_arn,
            project_number,
            stack_name: a.settings.stack_name,
            ses_configuration_set: a.settings.ses_configuration_set,
            ses_domains: a.settings.ses_domains,
            features: a.settings.features.into(),
            environment: a.settings.environment.map(|e| e.as_str().to_string()),
            tags: a.settings.tags,
            status: a.status.into(),
            status_detail: a.status.explain().to_string(),
            last_synced_at: a.last_synced_at,
            last_error: a.last_error,
            cloud_organization: a.placement.map(|p| PlacementDto {
                id: p.cloud_organization_id,
                hierarchy_path: p.hierarchy_path,
                parent_id: p.parent_id,
                is_management_account: p.is_management_account,
                is_delegated_admin: p.is_delegated_admin,
                delegated_admin_services: p.delegated_admin_services,
                left_at: p.left_at,
            }),
            created_by: a.created_by.as_uuid(),
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// A page of accounts.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CloudAccountPage {
    /// Oldest first.
    pub items: Vec<CloudAccountDto>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

impl From<Page<CloudAccount>> for CloudAccountPage {
    fn from(p: Page<CloudAccount>) -> Self {
        Self {
            next_cursor: p.next.map(|c| c.encode()),
            items: p.items.into_iter().map(Into::into).collect(),
        }
    }
}

/// One connection check.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct HealthCheckDto {
    /// When.
    pub checked_at: DateTime<Utc>,
    /// True when access was proven (AWS: the role assumed; GCP: the project read).
    pub ok: bool,
    /// access_denied, role_not_found (or project not found), throttled, network, timeout, canopy_credentials (Canopy itself has no credentials to use) or other.
    pub failure: Option<String>,
    /// What the provider said.
    pub message: Option<String>,
    /// What to do about it.
    pub advice: Option<String>,
    /// Duration, milliseconds.
    pub duration_ms: u64,
}

impl HealthCheckDto {
    /// A check of an account of `provider`, with that provider's advice.
    fn of(c: HealthCheck, provider: Provider) -> Self {
        Self {
            checked_at: c.checked_at,
            ok: c.failure.is_none(),
            failure: c.failure.as_ref().map(|f| f.kind.as_str().to_string()),
            message: c.failure.as_ref().map(|f| f.message.clone()),
            advice: c
                .failure
                .as_ref()
                .map(|f| f.kind.advice_for(provider).to_string()),
            duration_ms: c.duration_ms,
        }
    }
}

/// Result of a sync.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SyncResultDto {
    /// The account after the check.
    pub account: CloudAccountDto,
    /// The check.
    pub check: HealthCheckDto,
}

#[derive(ApiResponse)]
pub(super) enum Connected {
    /// Connected.
    #[oai(status = 201)]
    Created(Json<CloudAccountDto>),
}

#[OpenApi(tag = "ApiTags::CloudAccounts")]
impl CloudAccountsApi {
    /// The organization's cloud accounts, filterable by provider, environment, status and tag
    /// (`tag=key` or `tag=key:value`), paginated (any member).
    #[oai(
        path = "/organizations/:org/cloud-accounts",
        method = "get",
        operation_id = "listCloudAccounts"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        provider: Query<Option<ProviderDto>>,
        environment: Query<Option<EnvironmentDto>>,
        status: Query<Option<AccountStatusDto>>,
        #[oai(validator(max_length = 385, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"))] tag: Query<
            Option<String>,
        >,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        cursor: Query<Option<IdText>>,
    ) -> Result<Json<CloudAccountPage>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let filter = AccountFilter::parse(
            provider.0.map(ProviderDto::as_str),
            environment.0.map(EnvironmentDto::as_str),
            status.0.map(AccountStatusDto::as_str),
            tag.0.as_deref(),
        )?;
        let page = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        Ok(Json(state.cloud.list(&access, &filter, page).await?.into()))
    }

    /// Connects an AWS account or GCP project by its details (admin or owner).
    #[oai(
        path = "/organizations/:org/cloud-accounts",
        method = "post",
        operation_id = "connectCloudAccount"
    )]
    async fn connect(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        body: Json<ConnectAccountRequest>,
    ) -> Result<Connected, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let account = state.cloud.connect(&access, &body.0.into()).await?;
        Ok(Connected::Created(Json(account.into())))
    }

    /// One cloud account (any member).
    #[oai(
        path = "/organizations/:org/cloud-accounts/:id",
        method = "get",
        operation_id = "getCloudAccount"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
    ) -> Result<Json<CloudAccountDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        Ok(Json(
            state.cloud.get(&access, CloudAccountId(id.0)).await?.into(),
        ))
    }

    /// Edits alias, environment, tags, region, role ARN, features and SES settings (admin or owner).
    #[oai(
        path = "/organizations/:org/cloud-accounts/:id",
        method = "patch",
        operation_id = "updateCloudAccount"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
        body: Json<UpdateAccountRequest>,
    ) -> Result<Json<CloudAccountDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let b = body.0;
        let changes = AccountChanges {
            alias: maybe(b.alias, Ruled::into_string),
            environment: maybe(b.environment, |e| e.as_str().to_string()),
            tags: b.tags.map(tags_of),
            region: b.region.map(Ruled::into_string),
            role_arn: b.role_arn.map(Ruled::into_string),
            features: b.features.map(Into::into),
            ses_domains: b.ses_domains.map(domains_of),
            ses_configuration_set: maybe(b.ses_configuration_set, Ruled::into_string),
        };
        Ok(Json(
            state
                .cloud
                .update(&access, CloudAccountId(id.0), changes)
                .await?
                .into(),
        ))
    }

    /// Disconnects an account (admin or owner). `confirmAccountId` must repeat its account or
    /// project id.
    #[oai(
        path = "/organizations/:org/cloud-accounts/:id",
        method = "delete",
        operation_id = "disconnectCloudAccount"
    )]
    async fn disconnect(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
        #[oai(name = "confirmAccountId", validator(max_length = 64))] confirm: Query<
            Option<String>,
        >,
    ) -> Result<NoContent, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        state
            .cloud
            .disconnect(
                &access,
                CloudAccountId(id.0),
                confirm.0.as_deref().unwrap_or_default(),
            )
            .await?;
        Ok(NoContent::Done)
    }

    /// Verifies access now: assumes the role with the External ID and records the outcome
    /// (admin or owner).
    #[oai(
        path = "/organizations/:org/cloud-accounts/:id/sync",
        method = "post",
        operation_id = "syncCloudAccount"
    )]
    async fn sync(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
    ) -> Result<Json<SyncResultDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let (account, check) = state.cloud.sync(&access, CloudAccountId(id.0)).await?;
        let provider = account.identity.provider();
        Ok(Json(SyncResultDto {
            account: account.into(),
            check: HealthCheckDto::of(check, provider),
        }))
    }

    /// The connection's recent checks, newest first (any member).
    #[oai(
        path = "/organizations/:org/cloud-accounts/:id/health",
        method = "get",
        operation_id = "cloudAccountHealth"
    )]
    async fn health(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
    ) -> Result<Json<Vec<HealthCheckDto>>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let id = CloudAccountId(id.0);
        let checks = state
            .cloud
            .health(&access, id, limit.0.unwrap_or(50))
            .await?;
        let provider = state.cloud.get(&access, id).await?.identity.provider();
        Ok(Json(
            checks
                .into_iter()
                .map(|c| HealthCheckDto::of(c, provider))
                .collect(),
        ))
    }
}
