//! Invitations: invite, list, cancel; the invitee accepts or rejects.

use canopy_kernel::PageRequest;
use canopy_kernel::id::InvitationId;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::models::{InvitationDto, InvitationPage, InviteRequest, MemberDto};
use super::problem::ApiError;
use super::{ApiTags, BearerAuth, NoContent};
use crate::state::AppState;

/// Invitation endpoints.
pub struct InvitationsApi;

#[derive(ApiResponse)]
enum Created {
    /// Invited; a pending invitation to the same email was replaced.
    #[oai(status = 201)]
    Created(Json<InvitationDto>),
}

#[OpenApi(tag = "ApiTags::Invitations")]
impl InvitationsApi {
    /// Pending invitations of the organization, newest first (admin or owner).
    #[oai(
        path = "/organizations/:org/invitations",
        method = "get",
        operation_id = "listInvitations"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<String>,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<InvitationPage>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let page = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        let invitations = state.tenancy.list_invitations(&access, page).await?;
        Ok(Json(invitations.into()))
    }

    /// Invites an email with a role (admin or owner; only an owner can invite an owner).
    #[oai(
        path = "/organizations/:org/invitations",
        method = "post",
        operation_id = "createInvitation"
    )]
    async fn invite(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<String>,
        body: Json<InviteRequest>,
    ) -> Result<Created, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let invitation = state
            .tenancy
            .invite(&access, &body.0.email, body.0.role.into())
            .await?;
        Ok(Created::Created(Json(invitation.into())))
    }

    /// Cancels a pending invitation (admin or owner).
    #[oai(
        path = "/organizations/:org/invitations/:id",
        method = "delete",
        operation_id = "cancelInvitation"
    )]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<String>,
        id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        state
            .tenancy
            .cancel_invitation(&access, InvitationId(id.0))
            .await?;
        Ok(NoContent::Done)
    }

    /// Accepts an invitation addressed to the caller's email; 410 when it expired.
    #[oai(
        path = "/invitations/:id/accept",
        method = "post",
        operation_id = "acceptInvitation"
    )]
    async fn accept(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        id: Path<Uuid>,
    ) -> Result<Json<MemberDto>, ApiError> {
        let principal = auth.principal(&state).await?;
        let member = state
            .tenancy
            .accept_invitation(&principal, InvitationId(id.0))
            .await?;
        Ok(Json(member.into()))
    }

    /// Rejects an invitation addressed to the caller's email.
    #[oai(
        path = "/invitations/:id/reject",
        method = "post",
        operation_id = "rejectInvitation"
    )]
    async fn reject(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        let principal = auth.principal(&state).await?;
        state
            .tenancy
            .reject_invitation(&principal, InvitationId(id.0))
            .await?;
        Ok(NoContent::Done)
    }
}
