//! Members: list, change roles, remove, leave, transfer ownership. The last owner stays.

use canopy_kernel::id::{OrganizationId, UserId};
use canopy_kernel::page::Page;
use canopy_kernel::{FieldError, PageRequest, StoreError, ValidationErrors};
use serde_json::json;

use super::{OrgAccess, TenancyService};
use crate::audit::{AuditAction, AuditTarget, TargetKind};
use crate::membership::{Member, Role};
use crate::policy::{Action, Forbidden};
use crate::ports::MembershipChangeError;

/// Outcomes of membership operations.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// Input broke a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The caller's role does not allow the change.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The user is not a member of the organization.
    #[error("member not found")]
    NotFound,
    /// An admin tried to act on an owner.
    #[error("admins cannot remove or change an owner")]
    OwnerProtected,
    /// The change would leave the organization without an owner.
    #[error("an organization must keep at least one owner")]
    LastOwner,
    /// The adapter failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<MembershipChangeError> for MemberError {
    fn from(e: MembershipChangeError) -> Self {
        match e {
            MembershipChangeError::NotFound => Self::NotFound,
            MembershipChangeError::LastOwner => Self::LastOwner,
            MembershipChangeError::Store(e) => Self::Store(e),
        }
    }
}

impl TenancyService {
    /// Members of the organization (any member may look).
    pub async fn list_members(
        &self,
        access: &OrgAccess,
        page: PageRequest,
    ) -> Result<Page<Member>, MemberError> {
        access.require(Action::View)?;
        Ok(self.ports.members.list(access.org_id(), page).await?)
    }

    async fn member(&self, org: OrganizationId, user: UserId) -> Result<Member, MemberError> {
        self.ports
            .members
            .get(org, user)
            .await?
            .ok_or(MemberError::NotFound)
    }

    /// Changes a member's role (owner only). The last owner cannot be demoted.
    pub async fn change_role(
        &self,
        access: &OrgAccess,
        user: UserId,
        role: Role,
    ) -> Result<Member, MemberError> {
        access.require(Action::ChangeRole)?;
        let current = self.member(access.org_id(), user).await?;
        if current.role == role {
            return Ok(current);
        }
        let audit = self.audit_by(
            access,
            AuditAction::MemberRoleChanged,
            AuditTarget::new(TargetKind::Member, user),
            json!({"email": current.email.as_str(), "from": current.role.as_str(), "to": role.as_str()}),
        );
        Ok(self
            .ports
            .members
            .change_role(access.org_id(), user, role, audit)
            .await?)
    }

    /// Removes a member (admin or owner; an admin cannot remove an owner).
    pub async fn remove_member(&self, access: &OrgAccess, user: UserId) -> Result<(), MemberError> {
        access.require(Action::RemoveMember)?;
        let target = self.member(access.org_id(), user).await?;
        if target.role == Role::Owner && access.role != Role::Owner {
            return Err(MemberError::OwnerProtected);
        }
        let audit = self.audit_by(
            access,
            AuditAction::MemberRemoved,
            AuditTarget::new(TargetKind::Member, user),
            json!({"email": target.email.as_str(), "role": target.role.as_str()}),
        );
        Ok(self
            .ports
            .members
            .remove(access.org_id(), user, audit)
            .await?)
    }

    /// Leaves the organization. The last owner must hand over ownership first.
    pub async fn leave(&self, access: &OrgAccess) -> Result<(), MemberError> {
        let audit = self.audit_by(
            access,
            AuditAction::MemberLeft,
            AuditTarget::new(TargetKind::Member, access.user_id()),
            json!({"role": access.role.as_str()}),
        );
        Ok(self
            .ports
            .members
            .remove(access.org_id(), access.user_id(), audit)
            .await?)
    }

    /// Gives ownership to another member; the caller becomes an admin.
    pub async fn transfer_ownership(
        &self,
        access: &OrgAccess,
        to: UserId,
    ) -> Result<(), MemberError> {
        access.require(Action::TransferOwnership)?;
        if to == access.user_id() {
            return Err(ValidationErrors::single(FieldError::new(
                "userId",
                "different",
                "must be another member than yourself",
            ))
            .into());
        }
        let target = self.member(access.org_id(), to).await?;
        let audit = self.audit_by(
            access,
            AuditAction::OwnershipTransferred,
            AuditTarget::new(TargetKind::Member, to),
            json!({"to": target.email.as_str(), "fromRole": target.role.as_str()}),
        );
        Ok(self
            .ports
            .members
            .transfer_ownership(access.org_id(), access.user_id(), to, audit)
            .await?)
    }
}
