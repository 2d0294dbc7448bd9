//! Invitations: an admin or owner invites an email with a role; the invitee accepts or
//! declines. At most one invitation is pending per (organization, email).

use canopy_kernel::id::InvitationId;
use canopy_kernel::page::Page;
use canopy_kernel::{PageRequest, PlanLimitExceeded, StoreError, ValidationErrors};
use serde_json::json;

use super::{OrgAccess, SessionError, TenancyService};
use crate::audit::{AuditAction, AuditTarget, NewAuditEvent, TargetKind};
use crate::credential::Principal;
use crate::invitation::{Invitation, InvitationStatus, InvitationView};
use crate::mail::{Delivery, Mail, MailContent};
use crate::membership::{Member, Role};
use crate::policy::{Action, Forbidden};
use crate::ports::{AnswerInvitationError, InviteError};
use crate::user::{Email, User};

/// Outcomes of invitation operations.
#[derive(Debug, thiserror::Error)]
pub enum InvitationError {
    /// Input broke a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The caller's role does not allow inviting.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// Only an owner may invite another owner.
    #[error("only an owner can invite an owner")]
    OwnerInviteRequiresOwner,
    /// The invited person is already a member.
    #[error("already a member of this organization")]
    AlreadyMember,
    /// No such invitation (or not visible to the caller).
    #[error("invitation not found")]
    NotFound,
    /// The invitation was accepted, rejected, cancelled or replaced.
    #[error("invitation is no longer pending")]
    NotPending,
    /// The invitation's time ran out.
    #[error("invitation expired")]
    Expired,
    /// The invitation is addressed to a different email than the signed-in user's.
    #[error("invitation is addressed to another email")]
    EmailMismatch,
    /// The organization's plan has no room for another team member.
    #[error(transparent)]
    PlanLimit(#[from] PlanLimitExceeded),
    /// The caller has not verified their address: an invitation is accepted by whoever owns
    /// the address it was sent to.
    #[error("verify your e-mail address before accepting invitations")]
    EmailUnverified,
    /// The caller's user no longer exists.
    #[error("authentication required")]
    Unauthenticated,
    /// The adapter failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AnswerInvitationError> for InvitationError {
    fn from(e: AnswerInvitationError) -> Self {
        match e {
            AnswerInvitationError::NotFound => Self::NotFound,
            AnswerInvitationError::NotPending => Self::NotPending,
            AnswerInvitationError::AlreadyMember => Self::AlreadyMember,
            AnswerInvitationError::PlanLimit(limit) => Self::PlanLimit(limit),
            AnswerInvitationError::Store(e) => Self::Store(e),
        }
    }
}

impl From<InviteError> for InvitationError {
    fn from(e: InviteError) -> Self {
        match e {
            InviteError::PlanLimit(limit) => Self::PlanLimit(limit),
            InviteError::Store(e) => Self::Store(e),
        }
    }
}

impl From<SessionError> for InvitationError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Store(e) => Self::Store(e),
            _ => Self::Unauthenticated,
        }
    }
}

impl TenancyService {
    /// Invites an email with a role (admin or owner; only an owner invites an owner). A pending
    /// invitation for the same email is replaced.
    pub async fn invite(
        &self,
        access: &OrgAccess,
        email: &str,
        role: Role,
    ) -> Result<Invitation, InvitationError> {
        access.require(Action::Invite)?;
        let email = Email::parse(email, "email").map_err(ValidationErrors::single)?;
        if role == Role::Owner && access.role != Role::Owner {
            return Err(InvitationError::OwnerInviteRequiresOwner);
        }
        if let Some(existing) = self.ports.users.find_credentials(&email).await?
            && self
                .ports
                .members
                .get(access.org_id(), existing.user.id)
                .await?
                .is_some()
        {
            return Err(InvitationError::AlreadyMember);
        }
        let now = self.now();
        let invitation = Invitation {
            id: InvitationId::new(),
            organization_id: access.org_id(),
            email,
            role,
            status: InvitationStatus::Pending,
            invited_by: access.user_id(),
            expires_at: now + self.config.invitation_ttl,
            created_at: now,
        };
        let audit = self.audit_by(
            access,
            AuditAction::InvitationCreated,
            AuditTarget::new(TargetKind::Invitation, invitation.id),
            json!({"email": invitation.email.as_str(), "role": role.as_str()}),
        );
        self.ports
            .invitations
            .create_replacing(invitation.clone(), audit)
            .await?;
        let inviter = self.ports.users.get(access.user_id()).await?;
        let mail = Mail {
            to: invitation.email.clone(),
            content: MailContent::Invitation {
                invitation_id: invitation.id.as_uuid(),
                organization: access.organization.name.clone(),
                invited_by: inviter.map(|u| u.name).unwrap_or_default(),
                role: invitation.role,
                link: self.link(&format!("/invitations/{}", invitation.id)),
                expires_at: invitation.expires_at,
            },
        };
        self.send_mail(mail).await?;
        Ok(invitation)
    }

    /// Pending invitations of the organization (admin or owner).
    pub async fn list_invitations(
        &self,
        access: &OrgAccess,
        page: PageRequest,
    ) -> Result<Page<Invitation>, InvitationError> {
        access.require(Action::Invite)?;
        Ok(self
            .ports
            .invitations
            .list_pending(access.org_id(), self.now(), page)
            .await?)
    }

    /// How the e-mail of each invitation fared (queued, sent, refused with the server's
    /// reply), in the order given; `None` where no message was queued. Admin or owner.
    pub async fn invitation_deliveries(
        &self,
        access: &OrgAccess,
        invitations: &[Invitation],
    ) -> Result<Vec<Option<Delivery>>, InvitationError> {
        access.require(Action::Invite)?;
        let mut out = Vec::with_capacity(invitations.len());
        for invitation in invitations {
            // Only this organization's invitations have their delivery read.
            let delivery = if invitation.organization_id == access.org_id() {
                self.ports
                    .outbox
                    .delivery_of(&invitation.id.to_string())
                    .await?
            } else {
                None
            };
            out.push(delivery);
        }
        Ok(out)
    }

    /// Cancels a pending invitation (admin or owner).
    pub async fn cancel_invitation(
        &self,
        access: &OrgAccess,
        id: InvitationId,
    ) -> Result<(), InvitationError> {
        access.require(Action::Invite)?;
        let audit = self.audit_by(
            access,
            AuditAction::InvitationCancelled,
            AuditTarget::new(TargetKind::Invitation, id),
            json!({}),
        );
        if self
            .ports
            .invitations
            .cancel(access.org_id(), id, audit)
            .await?
        {
            Ok(())
        } else {
            Err(InvitationError::NotFound)
        }
    }

    /// Invitations addressed to the caller's email.
    pub async fn my_invitations(
        &self,
        principal: &Principal,
    ) -> Result<Vec<InvitationView>, InvitationError> {
        let user = self.current_user(principal).await?;
        Ok(self
            .ports
            .invitations
            .list_for_email(&user.email, self.now())
            .await?)
    }

    /// Loads an invitation the caller may answer: theirs, pending and unexpired.
    async fn answerable(
        &self,
        principal: &Principal,
        id: InvitationId,
    ) -> Result<(User, InvitationView), InvitationError> {
        let user = self.current_user(principal).await?;
        let view = self
            .ports
            .invitations
            .get(id)
            .await?
            .ok_or(InvitationError::NotFound)?;
        if view.invitation.email != user.email {
            return Err(InvitationError::EmailMismatch);
        }
        if view.invitation.status != InvitationStatus::Pending {
            return Err(InvitationError::NotPending);
        }
        if view.invitation.is_expired(self.now()) {
            return Err(InvitationError::Expired);
        }
        Ok((user, view))
    }

    fn answer_audit(
        &self,
        user: &User,
        view: &InvitationView,
        action: AuditAction,
    ) -> NewAuditEvent {
        NewAuditEvent::new(
            view.invitation.organization_id,
            Some(user.id),
            action,
            AuditTarget::new(TargetKind::Invitation, view.invitation.id),
            json!({"email": user.email.as_str(), "role": view.invitation.role.as_str()}),
            self.now(),
        )
    }

    /// Accepts an invitation addressed to the caller: they join with its role.
    pub async fn accept_invitation(
        &self,
        principal: &Principal,
        id: InvitationId,
    ) -> Result<Member, InvitationError> {
        let (user, view) = self.answerable(principal, id).await?;
        if user.email_verified_at.is_none() {
            return Err(InvitationError::EmailUnverified);
        }
        let audit = self.answer_audit(&user, &view, AuditAction::InvitationAccepted);
        Ok(self
            .ports
            .invitations
            .accept(id, user.id, self.now(), audit)
            .await?)
    }

    /// Declines an invitation addressed to the caller.
    pub async fn reject_invitation(
        &self,
        principal: &Principal,
        id: InvitationId,
    ) -> Result<(), InvitationError> {
        let (user, view) = self.answerable(principal, id).await?;
        let audit = self.answer_audit(&user, &view, AuditAction::InvitationRejected);
        Ok(self.ports.invitations.reject(id, audit).await?)
    }
}
