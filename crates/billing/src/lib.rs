//! Canopy billing: the tiers (Free, Individual, Pro, Enterprise) as one table of data, every
//! organization's subscription and the terms in force for it (including a legacy tier's
//! grace period), usage against the limits, the entitlement check, the legacy-tier migration
//! and the retention sweep.
//!
//! API boundary: [`BillingService`] and the traits in [`ports`].
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
    BillingService, EntitlementError, LegacyMigration, RoomError, SubscriptionError,
    SubscriptionView, UsageReport,
};
pub use subscription::{Grace, LegacyTier, Limits, Price, SubscribedTier, Subscription, Terms};
pub use usage::{Exceeded, Usage};
