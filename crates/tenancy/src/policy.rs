//! The authorization policy: one function decides what each role may do in an organization.
//! Handlers ask it; they never compare roles themselves.

use crate::membership::Role;

/// Everything a member can attempt inside an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// See the organization, its dashboard, members and cloud accounts.
    View,
    /// Rename, change slug, logo or metadata.
    UpdateOrganization,
    /// Delete the organization and everything it owns.
    DeleteOrganization,
    /// Invite people and cancel invitations.
    Invite,
    /// Remove another member.
    RemoveMember,
    /// Change another member's role.
    ChangeRole,
    /// Give ownership to another member.
    TransferOwnership,
    /// Connect a cloud account.
    ConnectCloudAccount,
    /// Disconnect a cloud account.
    DisconnectCloudAccount,
    /// Read the audit log.
    ReadAuditLog,
    /// Change the organization's subscription tier.
    ManageBilling,
    /// Start and cancel long work: discovery, sync, scans.
    RunJobs,
    /// Create, edit and delete custom detections.
    ManageDetections,
}

impl Action {
    /// Every action, for exhaustive policy tests.
    pub const ALL: [Action; 13] = [
        Action::View,
        Action::UpdateOrganization,
        Action::DeleteOrganization,
        Action::Invite,
        Action::RemoveMember,
        Action::ChangeRole,
        Action::TransferOwnership,
        Action::ConnectCloudAccount,
        Action::DisconnectCloudAccount,
        Action::ReadAuditLog,
        Action::ManageBilling,
        Action::RunJobs,
        Action::ManageDetections,
    ];

    /// The least role that may perform the action (spec: "Per-Operation Checks").
    pub fn minimum_role(self) -> Role {
        match self {
            Action::View => Role::Member,
            Action::UpdateOrganization
            | Action::Invite
            | Action::RemoveMember
            | Action::ConnectCloudAccount
            | Action::DisconnectCloudAccount
            | Action::ReadAuditLog
            | Action::RunJobs
            | Action::ManageDetections => Role::Admin,
            Action::DeleteOrganization
            | Action::ChangeRole
            | Action::TransferOwnership
            | Action::ManageBilling => Role::Owner,
        }
    }
}

/// A member's role does not allow the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("your role does not allow {0:?}")]
pub struct Forbidden(pub Action);

/// Allows `action` for a member holding `role`, or says which action was refused.
pub fn authorize(role: Role, action: Action) -> Result<(), Forbidden> {
    if role.rank() >= action.minimum_role().rank() {
        Ok(())
    } else {
        Err(Forbidden(action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(role: Role) -> Vec<Action> {
        Action::ALL
            .into_iter()
            .filter(|a| authorize(role, *a).is_ok())
            .collect()
    }

    #[test]
    fn member_may_only_view() {
        assert_eq!(allowed(Role::Member), vec![Action::View]);
    }

    #[test]
    fn admin_manages_accounts_and_invites_but_not_roles_or_deletion() {
        let admin = allowed(Role::Admin);
        for action in [
            Action::View,
            Action::UpdateOrganization,
            Action::Invite,
            Action::RemoveMember,
            Action::ConnectCloudAccount,
            Action::DisconnectCloudAccount,
            Action::ReadAuditLog,
            Action::RunJobs,
            Action::ManageDetections,
        ] {
            assert!(admin.contains(&action), "admin must be allowed {action:?}");
        }
        for action in [
            Action::ChangeRole,
            Action::DeleteOrganization,
            Action::TransferOwnership,
            Action::ManageBilling,
        ] {
            assert_eq!(authorize(Role::Admin, action), Err(Forbidden(action)));
        }
    }

    #[test]
    fn owner_may_do_everything() {
        assert_eq!(allowed(Role::Owner), Action::ALL.to_vec());
    }

    #[test]
    fn member_cannot_change_roles_or_connect_accounts() {
        assert!(authorize(Role::Member, Action::ChangeRole).is_err());
        assert!(authorize(Role::Member, Action::ConnectCloudAccount).is_err());
        assert!(authorize(Role::Member, Action::DisconnectCloudAccount).is_err());
        assert!(authorize(Role::Member, Action::Invite).is_err());
    }
}
