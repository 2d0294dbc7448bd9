//! Errors of the tenancy service and its ports.

use canopy_kernel::{PlanLimitExceeded, ValidationErrors};

use crate::policy::Action;

/// An adapter failure the domain cannot act on (connection lost, constraint the domain did not
/// expect). Adapters keep the cause in the message for logs; clients never see it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("storage failure: {0}")]
pub struct StoreError(pub String);

/// Everything a tenancy operation can refuse with.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// Input broke a rule; every field and rule is listed.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// No credential, or one that is unknown, expired or revoked.
    #[error("authentication required")]
    Unauthenticated,
    /// Log-in failed. Deliberately the same for an unknown email and a wrong password.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// The object does not exist or the caller may not know it exists.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller is a member but their role does not allow the action.
    #[error("your role does not allow {0:?}")]
    Forbidden(Action),
    /// An admin tried to act on an owner.
    #[error("admins cannot remove or change an owner")]
    OwnerProtected,
    /// Only an owner may invite another owner.
    #[error("only an owner can invite an owner")]
    OwnerInviteRequiresOwner,
    /// The email is already registered.
    #[error("email already registered")]
    EmailTaken,
    /// The slug belongs to another organization.
    #[error("slug already taken")]
    SlugTaken,
    /// The change would leave the organization without an owner.
    #[error("an organization must keep at least one owner")]
    LastOwner,
    /// The invited person is already a member.
    #[error("already a member of this organization")]
    AlreadyMember,
    /// The invitation was accepted, rejected, cancelled or replaced.
    #[error("invitation is no longer pending")]
    InvitationNotPending,
    /// The invitation's time ran out.
    #[error("invitation expired")]
    InvitationExpired,
    /// The invitation is addressed to a different email than the signed-in user's.
    #[error("invitation is addressed to another email")]
    InvitationEmailMismatch,
    /// The organization's plan has no room for another team member.
    #[error(transparent)]
    PlanLimit(#[from] PlanLimitExceeded),
    /// The adapter failed; details are logged, not shown.
    #[error(transparent)]
    Store(#[from] StoreError),
}
