//! Invitations: an admin or owner asks an email to join with a role.

use canopy_kernel::id::{InvitationId, OrganizationId, UserId};
use chrono::{DateTime, Utc};

use crate::membership::Role;
use crate::organization::Slug;
use crate::user::Email;

/// Where an invitation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationStatus {
    /// Waiting for an answer.
    Pending,
    /// Accepted; the invitee is a member.
    Accepted,
    /// Declined by the invitee.
    Rejected,
    /// Withdrawn by an admin or owner.
    Cancelled,
    /// Superseded by a newer invitation to the same email.
    Replaced,
}

impl InvitationStatus {
    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Rejected => "rejected",
            InvitationStatus::Cancelled => "cancelled",
            InvitationStatus::Replaced => "replaced",
        }
    }

    /// Reads the stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        Some(match raw {
            "pending" => InvitationStatus::Pending,
            "accepted" => InvitationStatus::Accepted,
            "rejected" => InvitationStatus::Rejected,
            "cancelled" => InvitationStatus::Cancelled,
            "replaced" => InvitationStatus::Replaced,
            _ => return None,
        })
    }
}

/// An invitation to join an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// Id; also the secret part of the accept link's path.
    pub id: InvitationId,
    /// The inviting organization.
    pub organization_id: OrganizationId,
    /// Normalized email of the invitee.
    pub email: Email,
    /// Role granted on acceptance.
    pub role: Role,
    /// Status.
    pub status: InvitationStatus,
    /// Who invited.
    pub invited_by: UserId,
    /// When it stops being acceptable.
    pub expires_at: DateTime<Utc>,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
}

impl Invitation {
    /// True once the invitation's time has run out.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }
}

/// An invitation with what its invitee needs to decide: who and which organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationView {
    /// The invitation.
    pub invitation: Invitation,
    /// Organization name.
    pub organization_name: String,
    /// Organization slug.
    pub organization_slug: Slug,
    /// Inviter's display name.
    pub invited_by_name: String,
}
