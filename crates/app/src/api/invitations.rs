//! Invitations: invite, list, cancel; the invitee accepts or rejects.

use canopy_kernel::PageRequest;
use canopy_kernel::id::InvitationId;
use canopy_kernel::page::Page;
use canopy_tenancy::invitation::{Invitation, InvitationView};
use canopy_tenancy::mail::Delivery;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::members::{MemberDto, RoleDto};
use super::problem::ApiError;
use super::wire::{EmailText, IdText, OrgText};
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
        org: Path<OrgText>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        cursor: Query<Option<IdText>>,
    ) -> Result<Json<InvitationPage>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let page = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        let invitations = state.tenancy.list_invitations(&access, page).await?;
        let deliveries = state
            .tenancy
            .invitation_deliveries(&access, &invitations.items)
            .await?;
        let mut page: InvitationPage = invitations.into();
        for (item, delivery) in page.items.iter_mut().zip(deliveries) {
            item.delivery = delivery.map(Into::into);
        }
        Ok(Json(page))
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
        org: Path<OrgText>,
        body: Json<InviteRequest>,
    ) -> Result<Created, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let invitation = state
            .tenancy
            .invite(&access, body.0.email.as_str(), body.0.role.into())
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
        org: Path<OrgText>,
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

/// Invitation request.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InviteRequest {
    /// Invitee's email.
    pub email: EmailText,
    /// Role granted on acceptance.
    pub role: RoleDto,
}

/// An invitation.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct InvitationDto {
    /// Id.
    pub id: Uuid,
    /// Organization.
    pub organization_id: Uuid,
    /// Invitee email.
    pub email: String,
    /// Role on acceptance.
    pub role: RoleDto,
    /// pending, accepted, rejected, cancelled or replaced.
    pub status: String,
    /// Inviter.
    pub invited_by: Uuid,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// How its e-mail fared; in the organization's list only.
    pub delivery: Option<DeliveryDto>,
}

/// An e-mail's delivery.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DeliveryDto {
    /// `queued` (waiting for the mail relay, or for a retry), `sent` (the mail server accepted
    /// it) or `failed` (refused for good).
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure in the mail server's words.
    pub error: Option<String>,
    /// When it was sent or failed for good.
    pub settled_at: Option<DateTime<Utc>>,
}

impl From<Delivery> for DeliveryDto {
    fn from(d: Delivery) -> Self {
        Self {
            status: d.status.as_str().to_string(),
            attempts: d.attempts,
            error: d.last_error,
            settled_at: d.settled_at,
        }
    }
}

impl From<Invitation> for InvitationDto {
    fn from(i: Invitation) -> Self {
        Self {
            id: i.id.as_uuid(),
            organization_id: i.organization_id.as_uuid(),
            email: i.email.to_string(),
            role: i.role.into(),
            status: i.status.as_str().to_string(),
            invited_by: i.invited_by.as_uuid(),
            expires_at: i.expires_at,
            created_at: i.created_at,
            delivery: None,
        }
    }
}

/// A page of invitations.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct InvitationPage {
    /// Newest first.
    pub items: Vec<InvitationDto>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

impl From<Page<Invitation>> for InvitationPage {
    fn from(p: Page<Invitation>) -> Self {
        Self {
            next_cursor: p.next.map(|c| c.encode()),
            items: p.items.into_iter().map(Into::into).collect(),
        }
    }
}

/// An invitation addressed to the caller.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ReceivedInvitationDto {
    /// The invitation.
    pub invitation: InvitationDto,
    /// Organization name.
    pub organization_name: String,
    /// Organization slug.
    pub organization_slug: String,
    /// Who invited.
    pub invited_by_name: String,
}

impl From<InvitationView> for ReceivedInvitationDto {
    fn from(v: InvitationView) -> Self {
        Self {
            invitation: v.invitation.into(),
            organization_name: v.organization_name,
            organization_slug: v.organization_slug.to_string(),
            invited_by_name: v.invited_by_name,
        }
    }
}
