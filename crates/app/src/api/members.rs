//! Members: list, change role, remove, leave, transfer ownership.

use canopy_kernel::PageRequest;
use canopy_kernel::id::UserId;
use canopy_kernel::page::Page;
use canopy_tenancy::membership::{Member, Role};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use uuid::Uuid;

use super::problem::ApiError;
use super::wire::{IdText, OrgText};
use super::{ApiTags, BearerAuth, NoContent};
use crate::state::AppState;

/// Member endpoints.
pub struct MembersApi;

#[OpenApi(tag = "ApiTags::Members")]
impl MembersApi {
    /// Members with name, email, role and join time, paginated (any member).
    #[oai(
        path = "/organizations/:org/members",
        method = "get",
        operation_id = "listMembers"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        cursor: Query<Option<IdText>>,
    ) -> Result<Json<MemberPage>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let page = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        let members = state.tenancy.list_members(&access, page).await?;
        Ok(Json(members.into()))
    }

    /// Changes a member's role (owner only; the last owner cannot be demoted).
    #[oai(
        path = "/organizations/:org/members/:user_id",
        method = "patch",
        operation_id = "changeMemberRole"
    )]
    async fn change_role(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        user_id: Path<Uuid>,
        body: Json<ChangeRoleRequest>,
    ) -> Result<Json<MemberDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let member = state
            .tenancy
            .change_role(&access, UserId(user_id.0), body.0.role.into())
            .await?;
        Ok(Json(member.into()))
    }

    /// Removes a member (admin or owner; an admin cannot remove an owner; never the last owner).
    #[oai(
        path = "/organizations/:org/members/:user_id",
        method = "delete",
        operation_id = "removeMember"
    )]
    async fn remove(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        user_id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        state
            .tenancy
            .remove_member(&access, UserId(user_id.0))
            .await?;
        Ok(NoContent::Done)
    }

    /// Leaves the organization (the last owner must transfer ownership first).
    #[oai(
        path = "/organizations/:org/leave",
        method = "post",
        operation_id = "leaveOrganization"
    )]
    async fn leave(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
    ) -> Result<NoContent, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        state.tenancy.leave(&access).await?;
        Ok(NoContent::Done)
    }

    /// Gives ownership to another member; the caller becomes an admin (owner only).
    #[oai(
        path = "/organizations/:org/transfer-ownership",
        method = "post",
        operation_id = "transferOwnership"
    )]
    async fn transfer_ownership(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        body: Json<TransferOwnershipRequest>,
    ) -> Result<NoContent, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        state
            .tenancy
            .transfer_ownership(&access, UserId(body.0.user_id))
            .await?;
        Ok(NoContent::Done)
    }
}

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum RoleDto {
    /// Full access, including deletion and role changes.
    Owner,
    /// Manages members, cloud accounts and settings.
    Admin,
    /// Read-only.
    Member,
}

impl From<Role> for RoleDto {
    fn from(r: Role) -> Self {
        match r {
            Role::Owner => RoleDto::Owner,
            Role::Admin => RoleDto::Admin,
            Role::Member => RoleDto::Member,
        }
    }
}

impl From<RoleDto> for Role {
    fn from(r: RoleDto) -> Self {
        match r {
            RoleDto::Owner => Role::Owner,
            RoleDto::Admin => Role::Admin,
            RoleDto::Member => Role::Member,
        }
    }
}

/// A member of an organization.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct MemberDto {
    /// User id.
    pub user_id: Uuid,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Role.
    pub role: RoleDto,
    /// Join time.
    pub joined_at: DateTime<Utc>,
}

impl From<Member> for MemberDto {
    fn from(m: Member) -> Self {
        Self {
            user_id: m.user_id.as_uuid(),
            name: m.name,
            email: m.email.to_string(),
            role: m.role.into(),
            joined_at: m.joined_at,
        }
    }
}

/// A page of members.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct MemberPage {
    /// Members, by join time.
    pub items: Vec<MemberDto>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl From<Page<Member>> for MemberPage {
    fn from(p: Page<Member>) -> Self {
        Self {
            next_cursor: p.next.map(|c| c.encode()),
            items: p.items.into_iter().map(Into::into).collect(),
        }
    }
}

/// Role change request.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChangeRoleRequest {
    /// The new role.
    pub role: RoleDto,
}

/// Ownership transfer request.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct TransferOwnershipRequest {
    /// The member who becomes owner; the caller becomes admin.
    pub user_id: Uuid,
}
