//! The billing use cases against mocked ports.

use std::sync::Arc;

use canopy_kernel::ManualClock;
use canopy_kernel::id::{OrganizationId, SessionId, UserId};
use canopy_tenancy::credential::{CredentialKind, Principal};
use canopy_tenancy::ports::{ApiKeyAccess, HistoryRetention};
use canopy_tenancy::{Action, Forbidden, OrgAccess, Slug};
use chrono::{DateTime, Duration, Utc};
use mockall::predicate::eq;
use serde_json::json;

use super::*;
use crate::plan::{Feature, Tier};
use crate::ports::{MockHistoryStore, MockSubscriptionRepository, Purged};
use crate::subscription::{Grace, LegacyTier, SubscribedTier, Subscription, Terms};

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
            Err(EntitlementError::NotInPlan(refused)) => {
                assert!(!allowed, "{tier:?}");
                assert_eq!(
                    (
                        refused.feature.as_str(),
                        refused.plan.as_str(),
                        refused.required_tier.as_str()
                    ),
                    ("org_features", tier.as_str(), "pro")
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
                coverage_snapshots: 3,
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
                coverage_snapshots: 4,
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
            health_checks: 1,
            coverage_snapshots: 7,
        }
    );
}

fn access(role: canopy_tenancy::Role) -> (OrgAccess, OrganizationId) {
    let org = canopy_tenancy::Organization {
        id: OrganizationId::new(),
        name: "Acme".into(),
        slug: Slug::from_trusted("acme".into()),
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
            SubscriptionError::Forbidden(Forbidden(Action::ManageBilling))
        ),
        "{err:?}"
    );

    let (owner, org) = access(canopy_tenancy::Role::Owner);
    let err = billing.change_tier(&owner, "enterprise").await.unwrap_err();
    assert!(
        matches!(&err, SubscriptionError::Invalid(v) if v.errors[0].rule == "self_service"),
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
    assert!(
        matches!(err, SubscriptionError::ManagedByOperator),
        "{err:?}"
    );
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

#[tokio::test]
async fn api_keys_are_refused_on_free_and_allowed_from_individual() {
    for (tier, refused) in [
        (Tier::Free, true),
        (Tier::Individual, false),
        (Tier::Pro, false),
    ] {
        let org = OrganizationId::new();
        let mut repo = MockSubscriptionRepository::new();
        repo.expect_get()
            .returning(move |_| Ok(Some(on(org, SubscribedTier::Current(tier)))));
        let answer = service(repo, MockHistoryStore::new())
            .refusal(org)
            .await
            .unwrap();
        assert_eq!(answer.is_some(), refused, "{tier:?}");
        if let Some(r) = answer {
            assert_eq!(
                (r.feature.as_str(), r.required_tier.as_str()),
                ("api_access", "individual")
            );
        }
    }
}
