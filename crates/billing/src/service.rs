//! Billing use cases: read and change the subscription, report usage, answer entitlement
//! questions, the operator's tier commands, the legacy migration and the retention sweep.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use canopy_kernel::id::OrganizationId;
use canopy_kernel::{Clock, FieldError, LimitedResource, PlanLimitExceeded, ValidationErrors};
use canopy_tenancy::ports::HistoryRetention;
use canopy_tenancy::{Action, NewAuditEvent, OrgAccess, OrgRef, StoreError, TenancyError};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::legacy::{LegacyMove, plan_moves};
use crate::plan::{Feature, Tier, least_tier_with};
use crate::ports::{ChangeSubscriptionError, HistoryStore, Purged, SubscriptionRepository};
use crate::subscription::{SubscribedTier, Subscription, Terms};
use crate::usage::{Exceeded, Usage};

/// Organizations per purge statement, so one statement's parameter list stays small.
const PURGE_CHUNK: usize = 500;

/// Everything a billing operation can refuse with.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// Membership or role refusals, invalid input and storage failures.
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    /// The organization's usage does not fit the tier asked for.
    #[error("usage exceeds the {tier:?} plan")]
    DowngradeExceeds {
        /// The tier asked for.
        tier: Tier,
        /// Every limit the usage goes beyond.
        exceeded: Vec<Exceeded>,
    },
    /// The plan does not include a feature.
    #[error("{} is not in the {plan} plan", .feature.key())]
    FeatureNotInPlan {
        /// The feature.
        feature: Feature,
        /// The tier the organization is on.
        plan: String,
        /// The least tier that includes it.
        required: Tier,
    },
    /// The plan has no room for one more of something.
    #[error(transparent)]
    PlanLimit(#[from] PlanLimitExceeded),
    /// Enterprise subscriptions are changed by an operator, not through the API.
    #[error("enterprise subscriptions are managed by Canopy")]
    ManagedByOperator,
    /// Someone else changed the subscription between reading and writing it.
    #[error("the subscription changed meanwhile")]
    Changed,
}

impl From<StoreError> for BillingError {
    fn from(e: StoreError) -> Self {
        Self::Tenancy(TenancyError::Store(e))
    }
}

impl From<ValidationErrors> for BillingError {
    fn from(e: ValidationErrors) -> Self {
        Self::Tenancy(TenancyError::Invalid(e))
    }
}

/// A subscription with the terms in force now.
#[derive(Debug, Clone)]
pub struct SubscriptionView {
    /// The stored subscription.
    pub subscription: Subscription,
    /// Its terms now.
    pub terms: Terms,
}

/// What a usage meter shows.
#[derive(Debug, Clone)]
pub struct UsageReport {
    /// The subscription and its terms.
    pub subscription: SubscriptionView,
    /// Counts.
    pub usage: Usage,
    /// Every limit the usage goes beyond (after a legacy migration or an operator change).
    pub exceeded: Vec<Exceeded>,
    /// The least tier that fits the usage.
    pub required_tier: Tier,
    /// True when the organization must upgrade to keep what it has.
    pub upgrade_needed: bool,
}

/// What the legacy migration did or would do.
#[derive(Debug, Clone)]
pub struct LegacyMigration {
    /// The moves, one per legacy subscription.
    pub moves: Vec<LegacyMove>,
    /// False for a dry run.
    pub applied: bool,
}

/// The billing use cases.
#[derive(Clone)]
pub struct BillingService {
    subscriptions: Arc<dyn SubscriptionRepository>,
    history: Arc<dyn HistoryStore>,
    clock: Arc<dyn Clock>,
}

impl BillingService {
    /// Builds the service over its adapters.
    pub fn new(
        subscriptions: Arc<dyn SubscriptionRepository>,
        history: Arc<dyn HistoryStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            subscriptions,
            history,
            clock,
        }
    }

    async fn load(&self, org: OrganizationId) -> Result<Subscription, BillingError> {
        self.subscriptions
            .get(&OrgRef::Id(org))
            .await?
            .ok_or(BillingError::Tenancy(TenancyError::NotFound(
                "organization",
            )))
    }

    fn view(&self, subscription: Subscription) -> SubscriptionView {
        SubscriptionView {
            terms: subscription.terms(self.clock.now()),
            subscription,
        }
    }

    /// The terms in force for the organization now.
    pub async fn terms(&self, org: OrganizationId) -> Result<Terms, BillingError> {
        Ok(self.load(org).await?.terms(self.clock.now()))
    }

    /// The organization's subscription (any member).
    pub async fn subscription(&self, access: &OrgAccess) -> Result<SubscriptionView, BillingError> {
        access.require(Action::View)?;
        Ok(self.view(self.load(access.org_id()).await?))
    }

    /// Moves the organization to `tier` (owner). Free, Individual and Pro are self-service;
    /// Enterprise is arranged with sales and set by an operator. A move the current usage
    /// does not fit is refused with every limit it would break. Choosing a tier ends a
    /// running grace period.
    pub async fn change_tier(
        &self,
        access: &OrgAccess,
        tier: &str,
    ) -> Result<SubscriptionView, BillingError> {
        access.require(Action::ManageBilling)?;
        let tier = parse_self_service_tier(tier)?;
        let current = self.load(access.org_id()).await?;
        if current.tier == SubscribedTier::Current(Tier::Enterprise) {
            return Err(BillingError::ManagedByOperator);
        }
        let actor = access.principal().user_id;
        self.change(current, tier, Some(actor), "api").await
    }

    /// Sets any tier, Enterprise included, from an operator command. Refused like a
    /// self-service change when the usage does not fit.
    pub async fn set_tier_as_operator(
        &self,
        org: &str,
        tier: &str,
    ) -> Result<SubscriptionView, BillingError> {
        let tier = Tier::from_stored(tier).ok_or_else(|| {
            ValidationErrors::single(FieldError::new(
                "tier",
                "enum",
                "must be free, individual, pro or enterprise",
            ))
        })?;
        let current =
            self.subscriptions
                .get(&OrgRef::parse(org))
                .await?
                .ok_or(BillingError::Tenancy(TenancyError::NotFound(
                    "organization",
                )))?;
        self.change(current, tier, None, "operator").await
    }

    async fn change(
        &self,
        current: Subscription,
        tier: Tier,
        actor: Option<canopy_kernel::id::UserId>,
        via: &str,
    ) -> Result<SubscriptionView, BillingError> {
        let now = self.clock.now();
        let in_grace = current.active_grace(now).is_some();
        if current.tier == SubscribedTier::Current(tier) && !in_grace {
            return Ok(self.view(current));
        }
        let next = Subscription {
            tier: SubscribedTier::Current(tier),
            grace: None,
            updated_at: now,
            ..current.clone()
        };
        let audit = NewAuditEvent::new(
            current.organization_id,
            actor,
            "subscription.changed",
            ("subscription", current.organization_id.to_string()),
            json!({
                "from": current.tier.as_str(),
                "to": tier.as_str(),
                "via": via,
                "endedGrace": in_grace,
            }),
            now,
        );
        match self
            .subscriptions
            .change(next, current.tier, now, audit)
            .await
        {
            Ok(saved) => Ok(self.view(saved)),
            Err(ChangeSubscriptionError::Exceeds(exceeded)) => {
                Err(BillingError::DowngradeExceeds { tier, exceeded })
            }
            Err(ChangeSubscriptionError::NotFound) => {
                Err(TenancyError::NotFound("organization").into())
            }
            Err(ChangeSubscriptionError::Changed) => Err(BillingError::Changed),
            Err(ChangeSubscriptionError::Store(e)) => Err(e.into()),
        }
    }

    /// Usage against the limits, the tier the usage needs and whether to upgrade (any member).
    pub async fn usage(&self, access: &OrgAccess) -> Result<UsageReport, BillingError> {
        access.require(Action::View)?;
        let subscription = self.view(self.load(access.org_id()).await?);
        let usage = self
            .subscriptions
            .usage(access.org_id(), self.clock.now())
            .await?;
        let exceeded = subscription.terms.exceeded_by(&usage);
        // No organization-level feature is in use until cloud organizations land.
        let wants_org_features = false;
        Ok(UsageReport {
            required_tier: usage.required_tier(wants_org_features),
            upgrade_needed: !exceeded.is_empty(),
            exceeded,
            usage,
            subscription,
        })
    }

    /// The one entitlement check: refuses with `FeatureNotInPlan` unless the organization's
    /// terms include `feature`.
    pub async fn require_feature(
        &self,
        org: OrganizationId,
        feature: Feature,
    ) -> Result<(), BillingError> {
        let terms = self.terms(org).await?;
        if terms.has(feature) {
            return Ok(());
        }
        Err(BillingError::FeatureNotInPlan {
            feature,
            plan: terms.basis.as_str().to_string(),
            required: least_tier_with(feature),
        })
    }

    /// Refuses early (before any work) when the plan has no room for one more `resource`.
    /// Advisory: the authoritative check runs in the transaction that adds it.
    pub async fn ensure_room(
        &self,
        org: OrganizationId,
        resource: LimitedResource,
    ) -> Result<(), BillingError> {
        let now = self.clock.now();
        let terms = self.load(org).await?.terms(now);
        let usage = self.subscriptions.usage(org, now).await?;
        terms.room_for_one(resource, usage.count(resource))?;
        Ok(())
    }

    /// Plans the legacy-tier migration and, unless `dry_run`, applies it in one transaction
    /// with an audit event per organization.
    pub async fn migrate_legacy_tiers(
        &self,
        dry_run: bool,
    ) -> Result<LegacyMigration, BillingError> {
        let now = self.clock.now();
        let candidates = self.subscriptions.legacy_candidates().await?;
        let moves = plan_moves(&candidates, now);
        if dry_run || moves.is_empty() {
            return Ok(LegacyMigration {
                moves,
                applied: false,
            });
        }
        let audits = moves
            .iter()
            .map(|m| {
                NewAuditEvent::new(
                    m.organization_id,
                    None,
                    "subscription.migrated",
                    ("subscription", m.organization_id.to_string()),
                    json!({
                        "from": m.from.as_str(),
                        "to": m.to.as_str(),
                        "accounts": m.accounts,
                        "oldMonthlyCents": m.old_monthly_cents,
                        "newMonthlyCents": m.new_monthly_cents,
                        "graceUntil": m.grace.map(|g| g.until.to_rfc3339()),
                    }),
                    now,
                )
            })
            .collect();
        self.subscriptions
            .apply_legacy_moves(&moves, now, audits)
            .await?;
        Ok(LegacyMigration {
            moves,
            applied: true,
        })
    }

    /// Deletes every organization's history older than its plan's retention.
    pub async fn purge_expired_history(&self) -> Result<Purged, BillingError> {
        let now = self.clock.now();
        let mut by_days: BTreeMap<u32, Vec<OrganizationId>> = BTreeMap::new();
        for sub in self.subscriptions.all().await? {
            if let Some(days) = sub.terms(now).limits.history_retention_days {
                by_days.entry(days).or_default().push(sub.organization_id);
            }
        }
        let mut purged = Purged::default();
        for (days, orgs) in by_days {
            let before = now - Duration::days(i64::from(days));
            for chunk in orgs.chunks(PURGE_CHUNK) {
                purged += self.history.purge(chunk, before).await?;
            }
        }
        Ok(purged)
    }
}

fn parse_self_service_tier(raw: &str) -> Result<Tier, ValidationErrors> {
    match Tier::from_stored(raw.trim()) {
        Some(Tier::Enterprise) => Err(ValidationErrors::single(FieldError::new(
            "tier",
            "self_service",
            "Enterprise is arranged with sales (custom pricing); contact us",
        ))),
        Some(tier) => Ok(tier),
        None => Err(ValidationErrors::single(FieldError::new(
            "tier",
            "enum",
            "must be free, individual or pro",
        ))),
    }
}

/// Retention read from the plan: history older than the plan's days is not served.
#[async_trait]
impl HistoryRetention for BillingService {
    async fn served_since(
        &self,
        org: OrganizationId,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Some(subscription) = self.subscriptions.get(&OrgRef::Id(org)).await? else {
            return Ok(None);
        };
        Ok(subscription
            .terms(now)
            .limits
            .history_retention_days
            .map(|days| now - Duration::days(i64::from(days))))
    }
}

#[cfg(test)]
mod tests {
    use canopy_kernel::ManualClock;
    use canopy_kernel::id::{SessionId, UserId};
    use canopy_tenancy::credential::{CredentialKind, Principal};
    use mockall::predicate::eq;

    use super::*;
    use crate::ports::{MockHistoryStore, MockSubscriptionRepository};
    use crate::subscription::{Grace, LegacyTier};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn service(repo: MockSubscriptionRepository, history: MockHistoryStore) -> BillingService {
        BillingService::new(
            Arc::new(repo),
            Arc::new(history),
            Arc::new(ManualClock::new(now())),
        )
    }

    fn on(org: OrganizationId, tier: SubscribedTier) -> Subscription {
        Subscription {
            tier,
            ..Subscription::free(org, now())
        }
    }

    #[tokio::test]
    async fn free_and_individual_lack_org_features_pro_has_them() {
        for (tier, allowed) in [
            (Tier::Free, false),
            (Tier::Individual, false),
            (Tier::Pro, true),
            (Tier::Enterprise, true),
        ] {
            let org = OrganizationId::new();
            let mut repo = MockSubscriptionRepository::new();
            repo.expect_get()
                .returning(move |_| Ok(Some(on(org, SubscribedTier::Current(tier)))));
            let result = service(repo, MockHistoryStore::new())
                .require_feature(org, Feature::OrgFeatures)
                .await;
            match result {
                Ok(()) => assert!(allowed, "{tier:?}"),
                Err(BillingError::FeatureNotInPlan {
                    feature,
                    plan,
                    required,
                }) => {
                    assert!(!allowed, "{tier:?}");
                    assert_eq!(
                        (feature, plan.as_str(), required),
                        (Feature::OrgFeatures, tier.as_str(), Tier::Pro)
                    );
                }
                Err(e) => panic!("{e:?}"),
            }
        }
    }

    #[tokio::test]
    async fn retention_follows_the_plan_and_enterprise_keeps_everything() {
        let org = OrganizationId::new();
        let mut repo = MockSubscriptionRepository::new();
        let mut tiers = vec![Tier::Enterprise, Tier::Pro, Tier::Free];
        repo.expect_get().times(3).returning(move |_| {
            Ok(Some(on(
                org,
                SubscribedTier::Current(tiers.pop().unwrap_or(Tier::Free)),
            )))
        });
        let billing = service(repo, MockHistoryStore::new());
        let days = |since: Option<DateTime<Utc>>| since.map(|s| (now() - s).num_days());
        assert_eq!(
            days(billing.served_since(org, now()).await.unwrap()),
            Some(30)
        );
        assert_eq!(
            days(billing.served_since(org, now()).await.unwrap()),
            Some(365)
        );
        assert_eq!(billing.served_since(org, now()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn purge_groups_organizations_by_their_retention() {
        let (free, pro, enterprise, graced) = (
            OrganizationId::new(),
            OrganizationId::new(),
            OrganizationId::new(),
            OrganizationId::new(),
        );
        let mut repo = MockSubscriptionRepository::new();
        repo.expect_all().returning(move || {
            Ok(vec![
                on(free, SubscribedTier::Current(Tier::Free)),
                on(pro, SubscribedTier::Current(Tier::Pro)),
                on(enterprise, SubscribedTier::Current(Tier::Enterprise)),
                Subscription {
                    grace: Some(Grace {
                        until: now() + Duration::days(10),
                        legacy_tier: LegacyTier::Subscriber,
                    }),
                    ..on(graced, SubscribedTier::Current(Tier::Pro))
                },
            ])
        });
        let mut history = MockHistoryStore::new();
        history
            .expect_purge()
            .with(eq(vec![free]), eq(now() - Duration::days(30)))
            .times(1)
            .returning(|_, _| {
                Ok(Purged {
                    audit_events: 2,
                    health_checks: 1,
                })
            });
        // During grace the legacy subscriber's 90 days apply, not Pro's 365.
        history
            .expect_purge()
            .with(eq(vec![graced]), eq(now() - Duration::days(90)))
            .times(1)
            .returning(|_, _| Ok(Purged::default()));
        history
            .expect_purge()
            .with(eq(vec![pro]), eq(now() - Duration::days(365)))
            .times(1)
            .returning(|_, _| {
                Ok(Purged {
                    audit_events: 5,
                    health_checks: 0,
                })
            });
        let purged = service(repo, history)
            .purge_expired_history()
            .await
            .unwrap();
        assert_eq!(
            purged,
            Purged {
                audit_events: 7,
                health_checks: 1
            }
        );
    }

    fn access(role: canopy_tenancy::Role) -> (OrgAccess, OrganizationId) {
        let org = canopy_tenancy::Organization {
            id: OrganizationId::new(),
            name: "Acme".into(),
            slug: "acme".into(),
            logo: None,
            metadata: json!({}),
            created_at: now(),
            updated_at: now(),
        };
        let id = org.id;
        let principal = Principal {
            user_id: UserId::new(),
            credential: CredentialKind::Session(SessionId::new()),
        };
        (OrgAccess::for_tests(org, role, principal), id)
    }

    #[tokio::test]
    async fn only_owners_change_tiers_and_enterprise_is_not_self_service() {
        let (admin, _) = access(canopy_tenancy::Role::Admin);
        let mut repo = MockSubscriptionRepository::new();
        repo.expect_change().never();
        let billing = service(repo, MockHistoryStore::new());
        let err = billing.change_tier(&admin, "pro").await.unwrap_err();
        assert!(
            matches!(
                err,
                BillingError::Tenancy(TenancyError::Forbidden(Action::ManageBilling))
            ),
            "{err:?}"
        );

        let (owner, org) = access(canopy_tenancy::Role::Owner);
        let err = billing.change_tier(&owner, "enterprise").await.unwrap_err();
        assert!(
            matches!(&err, BillingError::Tenancy(TenancyError::Invalid(v)) if v.errors[0].rule == "self_service"),
            "{err:?}"
        );

        let mut repo = MockSubscriptionRepository::new();
        repo.expect_get()
            .returning(move |_| Ok(Some(on(org, SubscribedTier::Current(Tier::Enterprise)))));
        repo.expect_change().never();
        let err = service(repo, MockHistoryStore::new())
            .change_tier(&owner, "free")
            .await
            .unwrap_err();
        assert!(matches!(err, BillingError::ManagedByOperator), "{err:?}");
    }

    #[tokio::test]
    async fn choosing_the_same_tier_is_a_no_op_unless_it_ends_a_grace_period() {
        let (owner, org) = access(canopy_tenancy::Role::Owner);
        let mut repo = MockSubscriptionRepository::new();
        repo.expect_get()
            .returning(move |_| Ok(Some(on(org, SubscribedTier::Current(Tier::Pro)))));
        repo.expect_change().never();
        let view = service(repo, MockHistoryStore::new())
            .change_tier(&owner, "pro")
            .await
            .unwrap();
        assert_eq!(view.terms, Terms::of_tier(Tier::Pro));

        let mut repo = MockSubscriptionRepository::new();
        repo.expect_get().returning(move |_| {
            Ok(Some(Subscription {
                grace: Some(Grace {
                    until: now() + Duration::days(30),
                    legacy_tier: LegacyTier::Subscriber,
                }),
                ..on(org, SubscribedTier::Current(Tier::Pro))
            }))
        });
        repo.expect_change()
            .times(1)
            .returning(|next, expected, _, audit| {
                assert_eq!(expected, SubscribedTier::Current(Tier::Pro));
                assert!(next.grace.is_none());
                assert_eq!(audit.details["endedGrace"], true);
                Ok(next)
            });
        let view = service(repo, MockHistoryStore::new())
            .change_tier(&owner, "pro")
            .await
            .unwrap();
        assert_eq!(view.terms, Terms::of_tier(Tier::Pro));
    }
}
