//! Ports of the billing domain. The storage adapter also enforces the plan limits inside the
//! transactions that add cloud accounts and team members (see the tenancy and cloud-account
//! ports), reading the terms from [`crate::Subscription::terms`].

use async_trait::async_trait;
use canopy_kernel::StoreError;
use canopy_kernel::id::OrganizationId;
use canopy_tenancy::{NewAuditEvent, OrgRef};
use chrono::{DateTime, Utc};

use crate::legacy::{LegacyCandidate, LegacyMove};
use crate::subscription::{SubscribedTier, Subscription};
use crate::usage::{Exceeded, Usage};

/// Why a subscription change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeSubscriptionError {
    /// The organization does not exist.
    #[error("organization not found")]
    NotFound,
    /// The organization's current usage does not fit the new terms.
    #[error("usage exceeds the new plan")]
    Exceeds(Vec<Exceeded>),
    /// The stored tier is no longer the one the change was decided on.
    #[error("the subscription changed meanwhile")]
    Changed,
    /// Anything else.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Subscriptions, one per organization.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SubscriptionRepository: Send + Sync {
    /// The subscription of the organization named by id or slug; `None` when there is no
    /// such organization.
    async fn get(&self, org: &OrgRef) -> Result<Option<Subscription>, StoreError>;

    /// What the organization uses now: cloud accounts, members, and pending invitations
    /// unexpired at `now`.
    async fn usage(&self, org: OrganizationId, now: DateTime<Utc>) -> Result<Usage, StoreError>;

    /// Replaces tier and grace with `next`'s, if the stored tier is still `expected`
    /// (`Changed` otherwise). MUST count the usage in the same transaction, serialized with
    /// every change that adds accounts or members, and return `Exceeds` (changing nothing)
    /// when it does not fit `next.terms(now)`; `NotFound` when the organization is gone.
    /// Writes `audit` with the change.
    async fn change(
        &self,
        next: Subscription,
        expected: SubscribedTier,
        now: DateTime<Utc>,
        audit: NewAuditEvent,
    ) -> Result<Subscription, ChangeSubscriptionError>;

    /// Subscriptions still on a legacy tier, oldest organization first, with their account
    /// counts.
    async fn legacy_candidates(&self) -> Result<Vec<LegacyCandidate>, StoreError>;

    /// Applies every move in one transaction, each with its audit event: all or nothing. A
    /// subscription whose tier is no longer the move's `from` MUST fail the whole batch.
    async fn apply_legacy_moves(
        &self,
        moves: &[LegacyMove],
        now: DateTime<Utc>,
        audits: Vec<NewAuditEvent>,
    ) -> Result<(), StoreError>;

    /// Every subscription, for the retention sweep.
    async fn all(&self) -> Result<Vec<Subscription>, StoreError>;
}

/// What the retention sweep deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purged {
    /// Audit events.
    pub audit_events: u64,
    /// Cloud-account health checks.
    pub health_checks: u64,
    /// Coverage snapshots.
    pub coverage_snapshots: u64,
}

impl std::ops::AddAssign for Purged {
    fn add_assign(&mut self, other: Purged) {
        self.audit_events += other.audit_events;
        self.health_checks += other.health_checks;
        self.coverage_snapshots += other.coverage_snapshots;
    }
}

/// History that a plan's retention bounds (audit events and health checks now; metrics and
/// coverage snapshots as they arrive).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// Deletes the history of these organizations recorded before `before`.
    async fn purge(
        &self,
        orgs: &[OrganizationId],
        before: DateTime<Utc>,
    ) -> Result<Purged, StoreError>;
}
