//! Cloud organizations: connect a whole AWS Organization by discovery, re-sync it, read its
//! OU tree, members and what each sync changed.

use canopy_cloud_org::identifiers::RoleArn;
use canopy_cloud_org::organization::gcp::GcpOrganizationInput;
use canopy_cloud_org::organization::ports::RecordedChange;
use canopy_cloud_org::organization::service::{AwsOrganizationInput, TreeView};
use canopy_cloud_org::organization::{CloudOrganization, CloudOrganizationId, ConnectionStatus};
use canopy_cloud_org::sealing::ServiceAccountKeyJson;
use canopy_kernel::PageRequest;
use canopy_kernel::page::Page;
use canopy_kernel::validation::{FieldError, ValidationErrors};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use std::collections::HashMap;
use uuid::Uuid;

use super::jobs::JobDto;
use super::problem::ApiError;
use super::wire::{CloudOrgStatusDto, IdText, Label, OrgText, RoleArnText, RoleNameText};
use super::{ApiTags, BearerAuth};
use crate::state::AppState;

/// Cloud-organization endpoints.
pub struct CloudOrganizationsApi;

/// What disconnecting a cloud organization did.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CloudOrganizationDisconnected {
    /// The cloud organization as it was, now `disconnected`.
    pub cloud_organization: CloudOrganizationDto,
    /// Its cloud accounts: still connected, now standalone.
    pub kept_account_ids: Vec<Uuid>,
}

/// Connecting an AWS Organization.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DiscoverAwsRequest {
    /// The role Canopy assumes in the management account (or the Organizations delegated
    /// administrator), trusting Canopy with the organization's External ID and allowing
    /// `organizations:Describe*` and `organizations:List*`.
    pub management_role_arn: RoleArnText,
    /// The role name Canopy assumes in every member account (default `CanopyAccess`).
    pub member_role_name: Option<RoleNameText>,
    /// Name shown in Canopy (default: the organization id).
    pub name: Option<Label>,
}

/// Connecting a GCP Organization.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct DiscoverGcpRequest {
    /// `organizations/123456789` or `123456789`.
    #[oai(validator(max_length = 64))]
    pub organization_id: String,
    /// The key file of a service account granted `roles/resourcemanager.organizationViewer`
    /// and `roles/browser` on the organization, as Google issued it (JSON). Stored sealed,
    /// never returned. Send this or `serviceAccountEmail`.
    pub service_account_key: Option<HashMap<String, serde_json::Value>>,
    /// Or that service account's e-mail, for Canopy's own Google identity to impersonate
    /// (grant it `roles/iam.serviceAccountTokenCreator` on the account); nothing is stored.
    #[oai(validator(max_length = 254))]
    pub service_account_email: Option<String>,
    /// Name shown in Canopy (default: the organization's display name).
    pub name: Option<Label>,
}

impl std::fmt::Debug for DiscoverGcpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoverGcpRequest")
            .field("organization_id", &self.organization_id)
            .field("service_account_key", &"<redacted>")
            .field("service_account_email", &self.service_account_email)
            .finish()
    }
}

/// A cloud organization.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CloudOrganizationDto {
    /// Id.
    pub id: Uuid,
    /// `aws` or `gcp`.
    pub provider: String,
    /// `o-xxxxxxxxxx` or `organizations/123`.
    pub cloud_org_id: String,
    /// Name shown in Canopy.
    pub name: String,
    /// AWS: the organization's ARN.
    pub aws_org_arn: Option<String>,
    /// AWS: the management account.
    pub management_account_id: Option<String>,
    /// AWS: the management account's e-mail.
    pub management_account_email: Option<String>,
    /// AWS: the role Canopy assumes in the management account.
    pub management_role_arn: Option<String>,
    /// AWS: the role name in member accounts.
    pub member_role_name: Option<String>,
    /// GCP: the organization's display name (usually its domain).
    pub gcp_display_name: Option<String>,
    /// GCP: the Workspace / Cloud Identity customer id.
    pub gcp_directory_customer_id: Option<String>,
    /// GCP: the organization's lifecycle state.
    pub gcp_lifecycle_state: Option<String>,
    /// GCP: the service account Canopy reads as (its key is sealed and never returned).
    pub gcp_service_account: Option<String>,
    /// Connection status.
    pub status: CloudOrgStatusDto,
    /// Why the last discovery failed, with advice.
    pub error: Option<String>,
    /// OUs or folders the last discovery could not read.
    pub unreadable: Vec<String>,
    /// Last discovery attempt.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Last successful discovery.
    pub last_discovered_at: Option<DateTime<Utc>>,
    /// Members found (still in the organization).
    pub discovered_count: u32,
    /// Members linked to a cloud account.
    pub connected_count: u32,
    /// Who connected it.
    pub created_by: Uuid,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<CloudOrganization> for CloudOrganizationDto {
    fn from(c: CloudOrganization) -> Self {
        Self {
            id: c.id.as_uuid(),
            provider: c.provider.as_str().to_string(),
            cloud_org_id: c.identity.cloud_org_id,
            name: c.name,
            aws_org_arn: c.identity.arn,
            management_account_id: c.identity.management_account_id,
            management_account_email: c.identity.management_account_email,
            management_role_arn: c.management_role_arn,
            member_role_name: Some(c.member_role_name).filter(|n| !n.is_empty()),
            gcp_display_name: c.identity.display_name,
            gcp_directory_customer_id: c.identity.directory_customer_id,
            gcp_lifecycle_state: c.identity.lifecycle_state,
            gcp_service_account: c.gcp_service_account,
            status: c.status.into(),
            error: c.error,
            unreadable: c.unreadable,
            last_attempt_at: c.last_attempt_at,
            last_discovered_at: c.last_discovered_at,
            discovered_count: c.discovered_count,
            connected_count: c.connected_count,
            created_by: c.created_by.as_uuid(),
            created_at: c.created_at,
        }
    }
}

/// A cloud organization and the job discovering it.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DiscoveryStarted {
    /// The cloud organization (`discovering`).
    pub cloud_organization: CloudOrganizationDto,
    /// The job: follow it at `GET .../jobs/{id}`.
    pub job: JobDto,
}

#[derive(ApiResponse)]
enum Started {
    /// Discovery queued.
    #[oai(status = 202)]
    Accepted(Json<DiscoveryStarted>),
}

/// A page of cloud organizations.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CloudOrganizationPage {
    /// Oldest first.
    pub items: Vec<CloudOrganizationDto>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// An OU, folder or the root, with its member counts.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CloudOrgNodeDto {
    /// The provider's id (`r-ab12`, `ou-ab12-cd34ef56`).
    pub id: String,
    /// The parent's id (absent for the root).
    pub parent_id: Option<String>,
    /// Name.
    pub name: String,
    /// `root`, `ou` or `folder`.
    pub kind: String,
    /// 0 for the root.
    pub depth: u8,
    /// Names from the root (`Root/Production/Web`).
    pub path: String,
    /// Members directly in it.
    pub direct_members: u32,
    /// Members anywhere under it.
    pub total_members: u32,
}

/// The tree, root first then by path.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct HierarchyDto {
    /// Nodes.
    pub nodes: Vec<CloudOrgNodeDto>,
}

impl From<TreeView> for HierarchyDto {
    fn from(t: TreeView) -> Self {
        let mut nodes: Vec<CloudOrgNodeDto> = t
            .hierarchy
            .nodes()
            .map(|n| {
                let count = t.counts.iter().find(|c| c.node_id == n.id);
                CloudOrgNodeDto {
                    id: n.id.clone(),
                    parent_id: n.parent_id.clone(),
                    name: n.name.clone(),
                    kind: n.kind.as_str().to_string(),
                    depth: n.depth,
                    path: n.path.clone(),
                    direct_members: count.map_or(0, |c| c.direct),
                    total_members: count.map_or(0, |c| c.total),
                }
            })
            .collect();
        nodes.sort_by(|a, b| a.depth.cmp(&b.depth).then(a.path.cmp(&b.path)));
        Self { nodes }
    }
}

/// What a sync changed.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CloudOrgChangeDto {
    /// Id.
    pub id: Uuid,
    /// `joined`, `moved`, `state_changed`, `renamed`, `left`, `updated`, `hierarchy_changed`.
    pub kind: String,
    /// The account or project it is about.
    pub account_id: Option<String>,
    /// From and to, or counts.
    pub details: serde_json::Value,
    /// The job that found it.
    pub job_id: Option<Uuid>,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

/// A page of changes.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CloudOrgChangePage {
    /// Newest first.
    pub items: Vec<CloudOrgChangeDto>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

pub(super) fn page<T, D: From<T>>(p: Page<T>) -> (Vec<D>, Option<String>) {
    (
        p.items.into_iter().map(Into::into).collect(),
        p.next.map(|c| c.encode()),
    )
}

impl From<RecordedChange> for CloudOrgChangeDto {
    fn from(c: RecordedChange) -> Self {
        Self {
            id: c.id,
            kind: c.kind,
            account_id: c.subject,
            details: c.details,
            job_id: c.job_id,
            occurred_at: c.occurred_at,
        }
    }
}

#[OpenApi(tag = "ApiTags::CloudOrganizations")]
impl CloudOrganizationsApi {
    /// Connects an AWS Organization (admin or owner; Pro or Enterprise): the management role
    /// is assumed and the organization described now, then the whole tree is discovered by a
    /// job. 202 with the cloud organization (`discovering`) and the job.
    #[oai(
        path = "/organizations/:org/cloud-organizations/aws/discover",
        method = "post",
        operation_id = "discoverAwsOrganization"
    )]
    async fn discover_aws(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        body: Json<DiscoverAwsRequest>,
    ) -> Result<Started, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let body = body.0;
        let role = RoleArn::parse(&body.management_role_arn, "managementRoleArn")
            .map_err(ValidationErrors::single)?;
        let (cloud_org, job) = state
            .cloud_orgs
            .discover_aws(
                &access,
                AwsOrganizationInput {
                    management_role_arn: role,
                    member_role_name: body.member_role_name.map(|n| n.into_string()),
                    name: body.name.map(|n| n.into_string()),
                },
            )
            .await?;
        Ok(Started::Accepted(Json(DiscoveryStarted {
            cloud_organization: cloud_org.into(),
            job: job.into(),
        })))
    }

    /// Connects a GCP Organization (admin or owner; Pro or Enterprise) with a service
    /// account's key: the organization is described now (a refused key or a missing
    /// permission is answered at once), the key sealed, and the folders and projects
    /// discovered by a job. 202 with the cloud organization (`discovering`) and the job.
    #[oai(
        path = "/organizations/:org/cloud-organizations/gcp/discover",
        method = "post",
        operation_id = "discoverGcpOrganization"
    )]
    async fn discover_gcp(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        body: Json<DiscoverGcpRequest>,
    ) -> Result<Started, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let body = body.0;
        let key = body
            .service_account_key
            .map(|key| serde_json::to_string(&key))
            .transpose()
            .map_err(|_| {
                ValidationErrors::single(FieldError::new(
                    "serviceAccountKey",
                    "json",
                    "must be the key file's JSON",
                ))
            })?;
        let (cloud_org, job) = state
            .cloud_orgs
            .discover_gcp(
                &access,
                GcpOrganizationInput {
                    organization_id: body.organization_id,
                    service_account_key: key.map(ServiceAccountKeyJson::new),
                    service_account_email: body.service_account_email,
                    name: body.name.map(|n| n.into_string()),
                },
            )
            .await?;
        Ok(Started::Accepted(Json(DiscoveryStarted {
            cloud_organization: cloud_org.into(),
            job: job.into(),
        })))
    }

    /// The organization's cloud organizations with counts and status (any member).
    #[oai(
        path = "/organizations/:org/cloud-organizations",
        method = "get",
        operation_id = "listCloudOrganizations"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        cursor: Query<Option<IdText>>,
    ) -> Result<Json<CloudOrganizationPage>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let request = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        let (items, next_cursor) = page(state.cloud_orgs.list(&access, request).await?);
        Ok(Json(CloudOrganizationPage { items, next_cursor }))
    }

    /// One cloud organization (any member).
    #[oai(
        path = "/organizations/:org/cloud-organizations/:id",
        method = "get",
        operation_id = "getCloudOrganization"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
    ) -> Result<Json<CloudOrganizationDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        Ok(Json(
            state
                .cloud_orgs
                .get(&access, CloudOrganizationId(id.0))
                .await?
                .into(),
        ))
    }

    /// Disconnects a cloud organization (admin or owner). `confirmCloudOrgId` must repeat its
    /// cloud org id (`o-...` / `organizations/...`). Its tree, members and change log are
    /// deleted and its jobs cancelled; the cloud accounts connected from it stay connected as
    /// standalone accounts (listed in the answer; disconnect them one by one if wanted).
    #[oai(
        path = "/organizations/:org/cloud-organizations/:id",
        method = "delete",
        operation_id = "disconnectCloudOrganization"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
        #[oai(name = "confirmCloudOrgId", validator(max_length = 64))] confirm: Query<
            Option<String>,
        >,
    ) -> Result<Json<CloudOrganizationDisconnected>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let done = state
            .cloud_orgs
            .delete(
                &access,
                CloudOrganizationId(id.0),
                confirm.0.as_deref().unwrap_or_default(),
            )
            .await?;
        let mut cloud_org = done.cloud_organization;
        cloud_org.status = ConnectionStatus::Disconnected;
        Ok(Json(CloudOrganizationDisconnected {
            cloud_organization: cloud_org.into(),
            kept_account_ids: done.kept_accounts.iter().map(|a| a.as_uuid()).collect(),
        }))
    }

    /// The OU / folder tree with member counts per node (any member).
    #[oai(
        path = "/organizations/:org/cloud-organizations/:id/hierarchy",
        method = "get",
        operation_id = "getCloudOrganizationHierarchy"
    )]
    async fn hierarchy(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
    ) -> Result<Json<HierarchyDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        Ok(Json(
            state
                .cloud_orgs
                .hierarchy(&access, CloudOrganizationId(id.0))
                .await?
                .into(),
        ))
    }

    /// Re-discovers now (admin or owner): 202 with the job; the job records what changed.
    #[oai(
        path = "/organizations/:org/cloud-organizations/:id/sync",
        method = "post",
        operation_id = "syncCloudOrganization"
    )]
    async fn sync(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
    ) -> Result<Started, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let (cloud_org, job) = state
            .cloud_orgs
            .sync(&access, CloudOrganizationId(id.0))
            .await?;
        Ok(Started::Accepted(Json(DiscoveryStarted {
            cloud_organization: cloud_org.into(),
            job: job.into(),
        })))
    }

    /// What each sync changed, newest first (any member).
    #[oai(
        path = "/organizations/:org/cloud-organizations/:id/changes",
        method = "get",
        operation_id = "listCloudOrganizationChanges"
    )]
    async fn changes(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        cursor: Query<Option<IdText>>,
    ) -> Result<Json<CloudOrgChangePage>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let request = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        let (items, next_cursor) = page(
            state
                .cloud_orgs
                .changes(&access, CloudOrganizationId(id.0), request)
                .await?,
        );
        Ok(Json(CloudOrgChangePage { items, next_cursor }))
    }
}
