//! Members: list, change role, remove, leave, transfer ownership.

use canopy_kernel::PageRequest;
use canopy_kernel::id::UserId;
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use uuid::Uuid;

use super::models::{ChangeRoleRequest, MemberDto, MemberPage, TransferOwnershipRequest};
use super::problem::ApiError;
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
        org: Path<String>,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
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
        org: Path<String>,
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
        org: Path<String>,
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
        org: Path<String>,
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
        org: Path<String>,
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
