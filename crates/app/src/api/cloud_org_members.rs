//! Members of a cloud organization: list them, connect them as cloud accounts, exclude or
//! include them.

use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_cloud_org::organization::member::MemberStatus;
use canopy_cloud_org::organization::ports::{MemberFilter, Selection, StoredMember};
use canopy_kernel::PageRequest;
use canopy_kernel::validation::{FieldError, ValidationErrors};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::cloud_organizations::page;
use super::jobs::JobDto;
use super::problem::ApiError;
use super::wire::{IdText, MemberKeyText, MemberStatusDto, NodeText, OrgText, SearchText};
use super::{ApiTags, BearerAuth};
use crate::state::AppState;

/// Cloud-organization member endpoints.
pub struct CloudOrgMembersApi;

/// An account or project found in the organization.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CloudOrgMemberDto {
    /// AWS account id or GCP project id.
    pub account_id: String,
    /// Name.
    pub name: String,
    /// AWS: e-mail.
    pub email: Option<String>,
    /// `active`, `suspended`, `pending_closure`, `closed`, `delete_requested`.
    pub state: String,
    /// AWS: `INVITED` or `CREATED`.
    pub joined_method: Option<String>,
    /// AWS: when it joined.
    pub joined_at: Option<DateTime<Utc>>,
    /// The OU, folder or root it sits in.
    pub parent_id: String,
    /// `Root/Production/Web`.
    pub hierarchy_path: String,
    /// Depth of its parent.
    pub hierarchy_level: u8,
    /// The management account.
    pub is_management_account: bool,
    /// Services it is the delegated administrator of.
    pub delegated_admin_services: Vec<String>,
    /// What Canopy did with it.
    pub status: MemberStatusDto,
    /// The cloud account it is linked to.
    pub linked_cloud_account_id: Option<Uuid>,
    /// Why connecting it failed.
    pub failure: Option<String>,
    /// When it left the organization (listed with `includeLeft=true`).
    pub left_at: Option<DateTime<Utc>>,
    /// First seen.
    pub discovered_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<StoredMember> for CloudOrgMemberDto {
    fn from(m: StoredMember) -> Self {
        Self {
            account_id: m.found.key,
            name: m.found.name,
            email: m.found.email,
            state: m.found.state.as_str().to_string(),
            joined_method: m.found.joined_method,
            joined_at: m.found.joined_at,
            parent_id: m.found.parent_id,
            hierarchy_path: m.hierarchy_path,
            hierarchy_level: m.hierarchy_level,
            is_management_account: m.found.is_management,
            delegated_admin_services: m.found.delegated_admin_services,
            status: m.status.into(),
            linked_cloud_account_id: m.linked_cloud_account_id,
            failure: m.failure,
            left_at: m.left_at,
            discovered_at: m.discovered_at,
            updated_at: m.updated_at,
        }
    }
}

/// A page of members.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CloudOrgMemberPage {
    /// In discovery order.
    pub items: Vec<CloudOrgMemberDto>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// Which members to connect: exactly one of `all`, `accountIds` or `under`.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ConnectMembersRequest {
    /// Every member that can be connected.
    pub all: Option<bool>,
    /// These accounts or projects (at most 1,000).
    #[oai(validator(max_items = 1000))]
    pub account_ids: Option<Vec<MemberKeyText>>,
    /// Every member under these OUs / folders (at most 100).
    #[oai(validator(max_items = 100))]
    pub under: Option<Vec<NodeText>>,
    /// Connect as many as the plan allows and report the rest, instead of refusing the whole
    /// request (402) when they do not all fit.
    pub up_to_limit: Option<bool>,
}

/// A connect that was queued.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ConnectStarted {
    /// The job connecting them: follow it at `GET .../jobs/{id}`.
    pub job: JobDto,
    /// Accounts it will connect.
    pub queued: Vec<String>,
    /// Accounts left out: the plan has no room for them.
    pub over_limit: Vec<String>,
}

#[derive(ApiResponse)]
enum ConnectQueued {
    /// Connect queued.
    #[oai(status = 202)]
    Accepted(Json<ConnectStarted>),
}

#[OpenApi(tag = "ApiTags::CloudOrganizations")]
impl CloudOrgMembersApi {
    /// Members, by status, under an OU / folder (its whole subtree), or matching a text
    /// (name, id, e-mail); paginated (any member).
    #[oai(
        path = "/organizations/:org/cloud-organizations/:id/members",
        method = "get",
        operation_id = "listCloudOrganizationMembers"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn members(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
        status: Query<Option<MemberStatusDto>>,
        /// An OU or folder id: members anywhere under it.
        under: Query<Option<NodeText>>,
        q: Query<Option<SearchText>>,
        #[oai(name = "includeLeft")] include_left: Query<Option<bool>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        cursor: Query<Option<IdText>>,
    ) -> Result<Json<CloudOrgMemberPage>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let filter = MemberFilter {
            status: status.0.map(MemberStatusDto::into_domain),
            under: under.0.map(|n| n.into_string()),
            text: q.0.map(|t| t.into_string()),
            include_left: include_left.0.unwrap_or(false),
            parent: None,
        };
        let request = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        let (items, next_cursor) = page(
            state
                .cloud_orgs
                .members(&access, CloudOrganizationId(id.0), &filter, request)
                .await?,
        );
        Ok(Json(CloudOrgMemberPage { items, next_cursor }))
    }

    /// Connects discovered members as cloud accounts through the member role, and verifies
    /// each (admin or owner). Excluded, connected and departed members are skipped. 402 when
    /// they do not all fit in the plan, unless `upToLimit`.
    #[oai(
        path = "/organizations/:org/cloud-organizations/:id/members/connect",
        method = "post",
        operation_id = "connectCloudOrganizationMembers"
    )]
    async fn connect_members(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
        body: Json<ConnectMembersRequest>,
    ) -> Result<ConnectQueued, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let body = body.0;
        let selection = match (body.all, body.account_ids, body.under) {
            (Some(true), None, None) => Selection::All,
            (None | Some(false), Some(ids), None) if !ids.is_empty() => {
                Selection::Keys(ids.into_iter().map(|i| i.into_string()).collect())
            }
            (None | Some(false), None, Some(nodes)) if !nodes.is_empty() => {
                Selection::Under(nodes.into_iter().map(|n| n.into_string()).collect())
            }
            _ => {
                return Err(ValidationErrors::single(FieldError::new(
                    "all",
                    "one_of",
                    "give exactly one of all: true, a non-empty accountIds or a non-empty under",
                ))
                .into());
            }
        };
        let plan = state
            .cloud_orgs
            .connect_members(
                &access,
                CloudOrganizationId(id.0),
                selection,
                body.up_to_limit.unwrap_or(false),
            )
            .await?;
        Ok(ConnectQueued::Accepted(Json(ConnectStarted {
            job: plan.job.into(),
            queued: plan.queued,
            over_limit: plan.over_limit,
        })))
    }

    /// Excludes a member from bulk connects (admin or owner); a connected member stays as it is.
    #[oai(
        path = "/organizations/:org/cloud-organizations/:id/members/:account/exclude",
        method = "post",
        operation_id = "excludeCloudOrganizationMember"
    )]
    async fn exclude(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
        account: Path<NodeText>,
    ) -> Result<Json<CloudOrgMemberDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        Ok(Json(
            state
                .cloud_orgs
                .set_excluded(&access, CloudOrganizationId(id.0), &account.0, true)
                .await?
                .into(),
        ))
    }

    /// Includes an excluded member again (admin or owner).
    #[oai(
        path = "/organizations/:org/cloud-organizations/:id/members/:account/include",
        method = "post",
        operation_id = "includeCloudOrganizationMember"
    )]
    async fn include(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
        account: Path<NodeText>,
    ) -> Result<Json<CloudOrgMemberDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        Ok(Json(
            state
                .cloud_orgs
                .set_excluded(&access, CloudOrganizationId(id.0), &account.0, false)
                .await?
                .into(),
        ))
    }
}

impl MemberStatusDto {
    /// The domain's status.
    pub fn into_domain(self) -> MemberStatus {
        match self {
            Self::Discovered => MemberStatus::Discovered,
            Self::Connecting => MemberStatus::Connecting,
            Self::Connected => MemberStatus::Connected,
            Self::Failed => MemberStatus::Failed,
            Self::Excluded => MemberStatus::Excluded,
        }
    }
}

impl From<MemberStatus> for MemberStatusDto {
    fn from(s: MemberStatus) -> Self {
        match s {
            MemberStatus::Discovered => Self::Discovered,
            MemberStatus::Connecting => Self::Connecting,
            MemberStatus::Connected => Self::Connected,
            MemberStatus::Failed => Self::Failed,
            MemberStatus::Excluded => Self::Excluded,
        }
    }
}
