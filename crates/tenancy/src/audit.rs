//! The audit log: who did what to which target, when. Written in the same transaction as the
//! change it describes, so the log and the data never disagree.
//!
//! The vocabulary is closed: every action any domain records is an [`AuditAction`] with a
//! stable wire name, so a client can filter on it and a typo cannot invent a new one. The log
//! belongs to tenancy (the organization boundary); higher domains add their actions here.

use canopy_kernel::id::{AuditEventId, OrganizationId, UserId};
use chrono::{DateTime, Utc};

/// Declares the action enum with its stored and wire names, written once.
macro_rules! audit_actions {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => {
        /// Everything the audit log records.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($(#[$doc])* $variant,)*
        }

        impl AuditAction {
            /// Every action, in the order declared.
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant,)*];

            /// Stable stored and wire name, `noun.verb`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(AuditAction::$variant => $wire,)*
                }
            }
        }
    };
}

audit_actions! {
    /// An organization was created (sign-up's personal one included).
    OrganizationCreated = "organization.created",
    /// Name, slug, logo or metadata changed.
    OrganizationUpdated = "organization.updated",
    /// Ownership moved to another member.
    OwnershipTransferred = "organization.ownership_transferred",
    /// A member's role changed.
    MemberRoleChanged = "member.role_changed",
    /// A member was removed.
    MemberRemoved = "member.removed",
    /// A member left.
    MemberLeft = "member.left",
    /// A member deleted their account (the details name no address).
    MemberAccountDeleted = "member.account_deleted",
    /// Someone was invited.
    InvitationCreated = "invitation.created",
    /// An invitation was cancelled.
    InvitationCancelled = "invitation.cancelled",
    /// An invitation was accepted.
    InvitationAccepted = "invitation.accepted",
    /// An invitation was declined.
    InvitationRejected = "invitation.rejected",
    /// The tier changed (owner or operator).
    SubscriptionChanged = "subscription.changed",
    /// A legacy tier was migrated.
    SubscriptionMigrated = "subscription.migrated",
    /// A cloud account was connected.
    CloudAccountConnected = "cloud_account.connected",
    /// A cloud account's settings changed.
    CloudAccountUpdated = "cloud_account.updated",
    /// A cloud account was disconnected.
    CloudAccountDisconnected = "cloud_account.disconnected",
    /// The External ID was rotated.
    ExternalIdRotated = "external_id.rotated",
    /// A connect token was issued.
    ConnectTokenCreated = "connect_token.created",
    /// A connection request was filed.
    ConnectionRequestCreated = "connection_request.created",
    /// A connection request was cancelled.
    ConnectionRequestCancelled = "connection_request.cancelled",
    /// A member cancelled a job.
    JobCancelled = "job.cancelled",
    /// An AWS or GCP organization was connected.
    CloudOrganizationConnected = "cloud_organization.connected",
    /// A re-sync of a cloud organization was asked for.
    CloudOrganizationSyncRequested = "cloud_organization.sync_requested",
    /// Members of a cloud organization were queued to be connected.
    CloudOrganizationMembersConnectRequested = "cloud_organization.members_connect_requested",
    /// A member was excluded from bulk connects.
    CloudOrganizationMemberExcluded = "cloud_organization.member_excluded",
    /// An excluded member was included again.
    CloudOrganizationMemberIncluded = "cloud_organization.member_included",
    /// A cloud organization was disconnected (deleted); its accounts stayed.
    CloudOrganizationDisconnected = "cloud_organization.disconnected",
    /// A scan of a cloud organization (or of its members) was asked for.
    CloudOrganizationScanRequested = "cloud_organization.scan_requested",
    /// A scan of one cloud account was asked for.
    CloudAccountScanRequested = "cloud_account.scan_requested",
    /// A custom detection was created.
    DetectionCreated = "detection.created",
    /// A custom detection was edited.
    DetectionUpdated = "detection.updated",
    /// A custom detection was deleted.
    DetectionDeleted = "detection.deleted",
}

impl AuditAction {
    /// Reads a stored name.
    pub fn from_stored(raw: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.as_str() == raw)
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of object an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// The organization itself.
    Organization,
    /// A member (by user id).
    Member,
    /// An invitation.
    Invitation,
    /// The organization's subscription.
    Subscription,
    /// A cloud account.
    CloudAccount,
    /// A background job.
    Job,
    /// A connected AWS or GCP organization.
    CloudOrganization,
    /// A detection.
    Detection,
}

impl TargetKind {
    /// Every kind.
    pub const ALL: [TargetKind; 8] = [
        TargetKind::Organization,
        TargetKind::Member,
        TargetKind::Invitation,
        TargetKind::Subscription,
        TargetKind::CloudAccount,
        TargetKind::Job,
        TargetKind::CloudOrganization,
        TargetKind::Detection,
    ];

    /// Stable stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Organization => "organization",
            TargetKind::Member => "member",
            TargetKind::Invitation => "invitation",
            TargetKind::Subscription => "subscription",
            TargetKind::CloudAccount => "cloud_account",
            TargetKind::Job => "job",
            TargetKind::CloudOrganization => "cloud_organization",
            TargetKind::Detection => "detection",
        }
    }

    /// Reads a stored name.
    pub fn from_stored(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// The object of an event: its kind and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditTarget {
    /// What kind of object.
    pub kind: TargetKind,
    /// Its id (a UUID today; kept as text so every kind fits).
    pub id: String,
}

impl AuditTarget {
    /// A target of `kind` with `id`.
    pub fn new(kind: TargetKind, id: impl std::fmt::Display) -> Self {
        Self {
            kind,
            id: id.to_string(),
        }
    }
}

/// An audit event to record alongside a change.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    /// Id.
    pub id: AuditEventId,
    /// The organization the change belongs to.
    pub organization_id: OrganizationId,
    /// Who made the change (`None` for the system or a token-only flow).
    pub actor_id: Option<UserId>,
    /// What happened.
    pub action: AuditAction,
    /// To what.
    pub target: AuditTarget,
    /// Extra facts (old and new role, email, ...).
    pub details: serde_json::Value,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

impl NewAuditEvent {
    /// Builds an event with a new id.
    pub fn new(
        organization_id: OrganizationId,
        actor_id: Option<UserId>,
        action: AuditAction,
        target: AuditTarget,
        details: serde_json::Value,
        occurred_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: AuditEventId::new(),
            organization_id,
            actor_id,
            action,
            target,
            details,
            occurred_at,
        }
    }
}

/// A recorded audit event.
pub type AuditEvent = NewAuditEvent;

/// Which events of the log to read; every field set narrows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only changes made by this user.
    pub actor: Option<UserId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_unique_and_read_back() {
        let mut seen = std::collections::HashSet::new();
        for action in AuditAction::ALL {
            assert!(seen.insert(action.as_str()), "{action:?} repeats a name");
            assert_eq!(AuditAction::from_stored(action.as_str()), Some(*action));
            assert!(action.as_str().contains('.'), "{action:?} is noun.verb");
        }
        assert_eq!(AuditAction::from_stored("member.renamed"), None);
        for kind in TargetKind::ALL {
            assert_eq!(TargetKind::from_stored(kind.as_str()), Some(kind));
        }
    }
}
