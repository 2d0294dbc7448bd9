//! An organization's subscription: the tier it is on (a current tier, or a legacy one not yet
//! migrated), an optional grace period at the old rate, and the terms that follow from both
//! at a given instant.

use canopy_kernel::id::OrganizationId;
use canopy_kernel::{FeatureNotInPlan, LimitedResource, PlanLimitExceeded};
use chrono::{DateTime, Utc};

use crate::plan::{Feature, PAID, Tier, least_tier_allowing, least_tier_with, plan};
use crate::usage::{Exceeded, Usage};

/// A tier of the per-account pricing that preceded the current tiers (spec "Migration
/// Strategy"). The legacy `enterprise` tier is the current Enterprise unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegacyTier {
    /// One account, free.
    FreeScan,
    /// $9 per account per month, account-level features.
    Subscriber,
}

impl LegacyTier {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LegacyTier::FreeScan => "free_scan",
            LegacyTier::Subscriber => "subscriber",
        }
    }

    /// Reads the stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        match raw {
            "free_scan" => Some(LegacyTier::FreeScan),
            "subscriber" => Some(LegacyTier::Subscriber),
            _ => None,
        }
    }
}

/// What the legacy `subscriber` tier cost per connected account and month, in US cents.
pub const LEGACY_SUBSCRIBER_CENTS_PER_ACCOUNT: u32 = 900;

/// The tier a subscription is stored on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscribedTier {
    /// One of the current tiers.
    Current(Tier),
    /// A legacy tier awaiting `canopy admin migrate-legacy-tiers`.
    Legacy(LegacyTier),
}

impl SubscribedTier {
    /// Stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscribedTier::Current(t) => t.as_str(),
            SubscribedTier::Legacy(l) => l.as_str(),
        }
    }

    /// Reads the stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        Tier::from_stored(raw)
            .map(SubscribedTier::Current)
            .or_else(|| LegacyTier::from_stored(raw).map(SubscribedTier::Legacy))
    }
}

/// A grace period after a legacy migration: until `until`, the legacy tier's limits and rate
/// (for `subscriber`, $9 per connected account) apply instead of the new tier's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grace {
    /// When the new tier's terms start.
    pub until: DateTime<Utc>,
    /// The legacy tier whose limits and rate are honoured meanwhile.
    pub legacy_tier: LegacyTier,
}

/// One organization's subscription. Every organization has exactly one, Free from creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The organization.
    pub organization_id: OrganizationId,
    /// The tier it is on.
    pub tier: SubscribedTier,
    /// The grace period after a legacy migration, if one was granted (past or present).
    pub grace: Option<Grace>,
    /// When the organization was created.
    pub created_at: DateTime<Utc>,
    /// Last tier change.
    pub updated_at: DateTime<Utc>,
}

/// How a plan is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Price {
    /// A flat monthly price in US cents.
    Monthly(u32),
    /// US cents per connected account and month (legacy `subscriber`).
    PerAccount(u32),
    /// Agreed with sales.
    Custom,
}

/// Caps of a plan; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connected cloud accounts.
    pub max_accounts: Option<u32>,
    /// Members plus pending invitations.
    pub max_team_members: Option<u32>,
    /// Days of history kept and served.
    pub history_retention_days: Option<u32>,
}

impl Limits {
    /// The cap on `resource`.
    pub fn get(&self, resource: LimitedResource) -> Option<u32> {
        match resource {
            LimitedResource::CloudAccounts => self.max_accounts,
            LimitedResource::TeamMembers => self.max_team_members,
            LimitedResource::HistoryDays => self.history_retention_days,
        }
    }
}

/// What a subscription gives at one instant: the plan in force, its price, limits and
/// features. Everything that enforces a limit or a feature reads it from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// The stored tier.
    pub tier: SubscribedTier,
    /// Whose limits, features and rate apply: the tier's own, or a legacy tier's during a
    /// grace period or before migration. Refusals name this plan.
    pub basis: SubscribedTier,
    /// Name to show.
    pub display_name: &'static str,
    /// Price.
    pub price: Price,
    /// Caps.
    pub limits: Limits,
    /// Included features.
    pub features: &'static [Feature],
    /// Set while a grace period is running.
    pub grace_until: Option<DateTime<Utc>>,
}

impl Terms {
    /// The terms of a current tier, from the tier table.
    pub fn of_tier(tier: Tier) -> Self {
        let p = plan(tier);
        Self {
            tier: SubscribedTier::Current(tier),
            basis: SubscribedTier::Current(tier),
            display_name: p.display_name,
            price: p.price_monthly_cents.map_or(Price::Custom, Price::Monthly),
            limits: Limits {
                max_accounts: p.max_accounts,
                max_team_members: p.max_team_members,
                history_retention_days: p.history_retention_days,
            },
            features: p.features,
            grace_until: None,
        }
    }

    /// The terms of a legacy tier. `free_scan` was the Free plan; `subscriber` paid per
    /// account for account-level features with no cap on accounts, and kept Individual's team
    /// size and retention (assumptions recorded in docs/ARCHITECTURE.md).
    pub fn of_legacy(legacy: LegacyTier) -> Self {
        let mut terms = match legacy {
            LegacyTier::FreeScan => Self::of_tier(Tier::Free),
            LegacyTier::Subscriber => {
                let individual = plan(Tier::Individual);
                Self {
                    display_name: "Subscriber (legacy)",
                    price: Price::PerAccount(LEGACY_SUBSCRIBER_CENTS_PER_ACCOUNT),
                    limits: Limits {
                        max_accounts: None,
                        max_team_members: individual.max_team_members,
                        history_retention_days: individual.history_retention_days,
                    },
                    features: PAID,
                    ..Self::of_tier(Tier::Individual)
                }
            }
        };
        if legacy == LegacyTier::FreeScan {
            terms.display_name = "Free scan (legacy)";
        }
        terms.tier = SubscribedTier::Legacy(legacy);
        terms.basis = SubscribedTier::Legacy(legacy);
        terms
    }

    /// True when the terms include `feature`.
    pub fn has(&self, feature: Feature) -> bool {
        self.features.contains(&feature)
    }

    /// Refuses unless the terms include `feature`, naming the least tier that does.
    pub fn require(&self, feature: Feature) -> Result<(), FeatureNotInPlan> {
        if self.has(feature) {
            return Ok(());
        }
        Err(FeatureNotInPlan {
            feature: feature.key().to_string(),
            feature_name: feature.display_name().to_string(),
            plan: self.basis.as_str().to_string(),
            required_tier: least_tier_with(feature).as_str().to_string(),
        })
    }

    /// Refuses unless `wanted` more of `resource` fit beside `used`.
    pub fn room_for(
        &self,
        resource: LimitedResource,
        used: u64,
        wanted: u64,
    ) -> Result<(), PlanLimitExceeded> {
        match self.limits.get(resource) {
            Some(allowed) if used + wanted > u64::from(allowed) => Err(PlanLimitExceeded {
                resource,
                used,
                allowed: u64::from(allowed),
                plan: self.basis.as_str().to_string(),
                required_tier: least_tier_allowing(resource, used + wanted)
                    .as_str()
                    .to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// How many more of `resource` fit beside `used` (`None`: no cap).
    pub fn remaining(&self, resource: LimitedResource, used: u64) -> Option<u64> {
        self.limits
            .get(resource)
            .map(|allowed| u64::from(allowed).saturating_sub(used))
    }

    /// Refuses adding one more of `resource` when `used` already fills the cap.
    pub fn room_for_one(
        &self,
        resource: LimitedResource,
        used: u64,
    ) -> Result<(), PlanLimitExceeded> {
        match self.limits.get(resource) {
            Some(allowed) if used >= u64::from(allowed) => Err(PlanLimitExceeded {
                resource,
                used,
                allowed: u64::from(allowed),
                plan: self.basis.as_str().to_string(),
                required_tier: least_tier_allowing(resource, used + 1).as_str().to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Refuses history starting at `start` when it reaches further back from `now` than the
    /// plan's retention; the refusal names the days asked for and the days kept.
    pub fn history_from(
        &self,
        start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), PlanLimitExceeded> {
        let Some(days) = self.limits.history_retention_days else {
            return Ok(());
        };
        if start >= now - chrono::Duration::days(i64::from(days)) {
            return Ok(());
        }
        let asked = (now - start).num_seconds();
        let used = u64::try_from((asked + 86_399) / 86_400).unwrap_or(u64::MAX);
        Err(PlanLimitExceeded {
            resource: LimitedResource::HistoryDays,
            used,
            allowed: u64::from(days),
            plan: self.basis.as_str().to_string(),
            required_tier: least_tier_allowing(LimitedResource::HistoryDays, used)
                .as_str()
                .to_string(),
        })
    }

    /// Every cap the usage goes beyond (empty when it fits).
    pub fn exceeded_by(&self, usage: &Usage) -> Vec<Exceeded> {
        [LimitedResource::CloudAccounts, LimitedResource::TeamMembers]
            .into_iter()
            .filter_map(|resource| {
                let used = usage.count(resource);
                let allowed = u64::from(self.limits.get(resource)?);
                (used > allowed).then_some(Exceeded {
                    resource,
                    used,
                    allowed,
                })
            })
            .collect()
    }

    /// The monthly amount for `accounts` connected accounts; `None` for custom pricing.
    pub fn monthly_cents(&self, accounts: u64) -> Option<u64> {
        match self.price {
            Price::Monthly(c) => Some(u64::from(c)),
            Price::PerAccount(c) => Some(u64::from(c) * accounts),
            Price::Custom => None,
        }
    }
}

impl Subscription {
    /// A new organization's subscription: Free.
    pub fn free(organization_id: OrganizationId, at: DateTime<Utc>) -> Self {
        Self {
            organization_id,
            tier: SubscribedTier::Current(Tier::Free),
            grace: None,
            created_at: at,
            updated_at: at,
        }
    }

    /// The grace period, if it is still running at `now`.
    pub fn active_grace(&self, now: DateTime<Utc>) -> Option<&Grace> {
        self.grace.as_ref().filter(|g| now < g.until)
    }

    /// The terms in force at `now`: during a grace period the legacy tier's limits at its
    /// rate, otherwise the stored tier's.
    pub fn terms(&self, now: DateTime<Utc>) -> Terms {
        if let Some(grace) = self.active_grace(now) {
            return Terms {
                tier: self.tier,
                grace_until: Some(grace.until),
                display_name: match self.tier {
                    SubscribedTier::Current(t) => t.display_name(),
                    SubscribedTier::Legacy(_) => "Legacy",
                },
                ..Terms::of_legacy(grace.legacy_tier)
            };
        }
        match self.tier {
            SubscribedTier::Current(t) => Terms::of_tier(t),
            SubscribedTier::Legacy(l) => Terms::of_legacy(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn stored_spellings_round_trip() {
        for raw in [
            "free",
            "individual",
            "pro",
            "enterprise",
            "free_scan",
            "subscriber",
        ] {
            assert_eq!(
                SubscribedTier::from_stored(raw).map(SubscribedTier::as_str),
                Some(raw)
            );
        }
        assert_eq!(SubscribedTier::from_stored("starter"), None);
    }

    #[test]
    fn room_for_many_names_the_tier_that_fits_them_all() {
        let individual = Terms::of_tier(Tier::Individual);
        let accounts = LimitedResource::CloudAccounts;
        assert_eq!(individual.remaining(accounts, 4), Some(2));
        assert!(individual.room_for(accounts, 4, 2).is_ok());
        let refused = individual.room_for(accounts, 4, 3).unwrap_err();
        assert_eq!((refused.used, refused.allowed), (4, 6));
        assert_eq!(refused.required_tier, "pro");
        let enterprise = Terms::of_tier(Tier::Enterprise);
        assert_eq!(enterprise.remaining(accounts, 10_000), None);
        assert!(enterprise.room_for(accounts, 10_000, 10_000).is_ok());
    }

    #[test]
    fn room_for_one_refuses_at_the_cap_and_names_it() {
        let free = Terms::of_tier(Tier::Free);
        assert!(free.room_for_one(LimitedResource::CloudAccounts, 0).is_ok());
        let refused = free
            .room_for_one(LimitedResource::CloudAccounts, 1)
            .unwrap_err();
        assert_eq!(
            (
                refused.used,
                refused.allowed,
                refused.plan.as_str(),
                refused.required_tier.as_str()
            ),
            (1, 1, "free", "individual")
        );
        let individual = Terms::of_tier(Tier::Individual);
        assert!(
            individual
                .room_for_one(LimitedResource::TeamMembers, 2)
                .is_ok()
        );
        assert!(
            individual
                .room_for_one(LimitedResource::TeamMembers, 3)
                .is_err()
        );
        let enterprise = Terms::of_tier(Tier::Enterprise);
        assert!(
            enterprise
                .room_for_one(LimitedResource::CloudAccounts, 100_000)
                .is_ok()
        );
    }

    #[test]
    fn exceeded_lists_every_cap_the_usage_passes() {
        let usage = Usage {
            cloud_accounts: 7,
            members: 2,
            pending_invitations: 2,
        };
        let over = Terms::of_tier(Tier::Individual).exceeded_by(&usage);
        assert_eq!(
            over,
            vec![
                Exceeded {
                    resource: LimitedResource::CloudAccounts,
                    used: 7,
                    allowed: 6
                },
                Exceeded {
                    resource: LimitedResource::TeamMembers,
                    used: 4,
                    allowed: 3
                },
            ]
        );
        assert!(Terms::of_tier(Tier::Pro).exceeded_by(&usage).is_empty());
    }

    #[test]
    fn grace_honours_the_legacy_limits_at_the_old_rate_until_it_ends() {
        let grace_until = at() + Duration::days(90);
        let sub = Subscription {
            grace: Some(Grace {
                until: grace_until,
                legacy_tier: LegacyTier::Subscriber,
            }),
            tier: SubscribedTier::Current(Tier::Pro),
            ..Subscription::free(OrganizationId::new(), at())
        };
        let during = sub.terms(at());
        assert_eq!(during.basis, SubscribedTier::Legacy(LegacyTier::Subscriber));
        assert_eq!(
            during.price,
            Price::PerAccount(LEGACY_SUBSCRIBER_CENTS_PER_ACCOUNT)
        );
        assert_eq!(during.monthly_cents(8), Some(7_200));
        // A refusal names the plan whose limits apply, not the tier it will become.
        let refused = during
            .room_for_one(LimitedResource::TeamMembers, 3)
            .unwrap_err();
        assert_eq!(refused.plan, "subscriber");
        assert_eq!(refused.required_tier, "pro");
        assert_eq!(during.limits.max_accounts, None);
        assert!(!during.has(Feature::OrgFeatures));
        assert_eq!(during.grace_until, Some(grace_until));
        let after = sub.terms(grace_until);
        assert_eq!(after, Terms::of_tier(Tier::Pro));
        assert!(after.has(Feature::OrgFeatures));
    }

    #[test]
    fn history_reaching_past_the_retention_is_refused_with_the_days() {
        let free = Terms::of_tier(Tier::Free);
        assert!(free.history_from(at() - Duration::days(30), at()).is_ok());
        let refused = free
            .history_from(at() - Duration::days(30) - Duration::hours(1), at())
            .unwrap_err();
        assert_eq!((refused.used, refused.allowed), (31, 30));
        assert_eq!(refused.required_tier, "individual");
        let pro = Terms::of_tier(Tier::Pro)
            .history_from(at() - Duration::days(400), at())
            .unwrap_err();
        assert_eq!(pro.required_tier, "enterprise");
        assert_eq!(refused.resource, LimitedResource::HistoryDays);
        assert!(
            Terms::of_tier(Tier::Enterprise)
                .history_from(at() - Duration::days(4000), at())
                .is_ok()
        );
    }

    #[test]
    fn a_missing_feature_is_refused_with_the_least_tier_that_has_it() {
        let refused = Terms::of_tier(Tier::Free)
            .require(Feature::ApiAccess)
            .unwrap_err();
        assert_eq!(
            (
                refused.feature.as_str(),
                refused.plan.as_str(),
                refused.required_tier.as_str()
            ),
            ("api_access", "free", "individual")
        );
        let org = Terms::of_tier(Tier::Individual)
            .require(Feature::OrgFeatures)
            .unwrap_err();
        assert_eq!(org.required_tier, "pro");
        assert!(
            Terms::of_tier(Tier::Pro)
                .require(Feature::OrgFeatures)
                .is_ok()
        );
    }

    #[test]
    fn legacy_subscriber_is_billed_per_account() {
        let terms = Terms::of_legacy(LegacyTier::Subscriber);
        assert_eq!(terms.monthly_cents(3), Some(2_700));
        assert_eq!(
            Terms::of_legacy(LegacyTier::FreeScan).limits.max_accounts,
            Some(1)
        );
        assert_eq!(Terms::of_tier(Tier::Enterprise).monthly_cents(900), None);
    }
}
