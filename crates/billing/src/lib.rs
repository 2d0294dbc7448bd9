//! Canopy billing: the tiers (Free, Individual, Pro, Enterprise) as one table of data, every
//! organization's subscription and the terms in force for it (including a legacy tier's
//! grace period), usage against the limits, the entitlement check, the legacy-tier migration
//! and the retention sweep.
//!
//! # What it offers
//!
//! [`BillingService`]: the subscription, tier changes and usage ([`SubscriptionError`]); the
//! entitlement checks other domains ask before they act ([`BillingService::require_feature`],
//! [`BillingService::ensure_room`]: [`EntitlementError`], [`RoomError`]); the operator's legacy
//! migration and retention sweep. It also answers the two plan questions tenancy asks
//! (`HistoryRetention`, `ApiKeyAccess`), so an embedder hands the same service to both.
//!
//! # What an embedder provides
//!
//! [`ports::SubscriptionRepository`] (one subscription per organization; a change MUST count
//! the usage in the transaction that writes it and return `Exceeds`, `Changed` or `NotFound`)
//! and [`ports::HistoryStore`] (the retention sweep's deletions). Every method MAY fail with
//! [`canopy_kernel::StoreError`]. The storage adapter that adds accounts or members also runs
//! [`Terms::room_for_one`] inside its own transaction: that is where limits hold under
//! concurrency.
//!
//! # Swapping adapters in tests
//!
//! The `mocks` feature exposes a mockall mock of every port:
//!
//! ```text
//! let mut subscriptions = canopy_billing::ports::MockSubscriptionRepository::new();
//! subscriptions.expect_all().returning(|| Ok(vec![]));
//! ```
//!
//! Architecture invariant: limits and features are read from [`Terms`] (built from
//! [`PLANS`]); no handler or service compares tiers itself. Limits that must hold under
//! concurrency are enforced by the storage adapter inside the transaction that adds the
//! account or member, with the same [`Terms::room_for_one`].

pub mod legacy;
pub mod plan;
pub mod ports;
pub mod service;
pub mod subscription;
pub mod usage;

pub use legacy::{LegacyCandidate, LegacyMove};
pub use plan::{
    Feature, PLANS, Plan, Tier, least_tier_allowing, least_tier_with, plan, required_tier,
};
pub use service::{
    BillingService, EntitlementError, LegacyMigration, Room, RoomError, SubscriptionError,
    SubscriptionView, UsageReport,
};
pub use subscription::{Grace, LegacyTier, Limits, Price, SubscribedTier, Subscription, Terms};
pub use usage::{Exceeded, Usage};
