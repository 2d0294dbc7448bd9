//! Contract tests of the billing ports and of the plan limits the tenancy and cloud-account
//! repositories enforce: one body per behaviour, on SQLite by plain `cargo test` and on a
//! fresh PostgreSQL database by `.ci/run`. The races run real concurrent transactions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use canopy_billing::ports::{ChangeSubscriptionError, HistoryStore, SubscriptionRepository};
use canopy_billing::{
    Grace, LegacyMove, LegacyTier, SubscribedTier, Subscription, Tier, legacy::plan_moves,
};
use canopy_cloud_org::account::CloudAccount;
use canopy_cloud_org::connection::{ConnectionToken, TokenKind, TokenStatus};
use canopy_cloud_org::health::HealthCheck;
use canopy_cloud_org::ports::{
    CloudAccountRepository, ConnectError, ConnectionTokenRepository, RedeemError,
};
use canopy_kernel::id::{OrganizationId, UserId};
use canopy_kernel::{LimitedResource, PageRequest};
use canopy_store::testing::{
    audit, aws_account, now, pending_invitation, put_on_tier, random_aws_account_id,
    set_stored_tier, unique, user_with_organization,
};
use canopy_store::{Store, contract};
use canopy_tenancy::invitation::{Invitation, InvitationStatus};
use canopy_tenancy::membership::Role;
use canopy_tenancy::ports::{
    AnswerInvitationError, AuditLog, InvitationRepository, InviteError, OrganizationRepository,
    UserRepository,
};
use canopy_tenancy::{AuditAction, AuditFilter, Email, Slug};
use canopy_tenancy::{NewAuditEvent, OrgRef, Organization};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

fn audit_at(org: OrganizationId, action: AuditAction, at: DateTime<Utc>) -> NewAuditEvent {
    NewAuditEvent {
        occurred_at: at,
        ..audit(org, action)
    }
}

/// A user with a personal organization (on Free); returns both ids.
async fn owner_and_org(store: &Store) -> (UserId, OrganizationId) {
    let (user, org) = user_with_organization(store, "owner").await.unwrap();
    (user.id, org.id)
}

async fn sub(store: &Store, org: OrganizationId) -> Subscription {
    store
        .subscriptions()
        .get(&OrgRef::Id(org))
        .await
        .unwrap()
        .unwrap()
}

async fn on_tier(store: &Store, org: OrganizationId, tier: Tier) {
    put_on_tier(store, org, tier).await.unwrap();
}

fn account(org: OrganizationId) -> CloudAccount {
    aws_account(org, &random_aws_account_id(), "production", &[])
}

async fn connect(store: &Store, org: OrganizationId) -> Result<(), ConnectError> {
    store
        .cloud_accounts()
        .create(account(org), audit(org, AuditAction::CloudAccountConnected))
        .await
}

fn invitation(org: OrganizationId, by: UserId, email: &str) -> Invitation {
    pending_invitation(org, by, &Email::from_trusted(email.into()), Role::Member)
}

async fn invite(store: &Store, inv: &Invitation) -> Result<(), InviteError> {
    store
        .invitations()
        .create_replacing(
            inv.clone(),
            audit(inv.organization_id, AuditAction::InvitationCreated),
        )
        .await
}

contract!(
    every_new_organization_starts_on_free,
    the_account_limit_refuses_the_connect_past_it,
    twenty_concurrent_connects_to_an_individual_org_with_five_accounts_leave_six,
    a_refused_redemption_leaves_the_token_pending,
    pending_invitations_hold_seats_and_reinviting_takes_none,
    concurrent_invites_never_overshoot_the_team_limit,
    accepting_past_a_plan_that_shrank_is_refused_and_stays_pending,
    usage_counts_unexpired_pending_invitations_only,
    a_downgrade_the_usage_does_not_fit_changes_nothing,
    a_downgrade_racing_connects_never_leaves_usage_over_the_plan,
    legacy_subscriptions_move_in_one_transaction_or_not_at_all,
    history_is_served_and_purged_by_cutoff,
);

async fn every_new_organization_starts_on_free(store: Store) {
    let (owner, personal) = owner_and_org(&store).await;
    let created = Organization {
        id: OrganizationId::new(),
        name: "Second".into(),
        slug: Slug::parse(&unique("second"), "slug").unwrap(),
        logo: None,
        metadata: json!({}),
        created_at: now(),
        updated_at: now(),
    };
    store
        .organizations()
        .create(
            created.clone(),
            owner,
            audit(created.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap();
    for org in [personal, created.id] {
        let sub = sub(&store, org).await;
        assert_eq!(sub.tier, SubscribedTier::Current(Tier::Free));
        assert!(sub.grace.is_none());
    }
    let by_slug = store
        .subscriptions()
        .get(&OrgRef::Slug(created.slug.to_string()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_slug.organization_id, created.id);
    assert!(
        store
            .subscriptions()
            .get(&OrgRef::Id(OrganizationId::new()))
            .await
            .unwrap()
            .is_none()
    );
}

async fn the_account_limit_refuses_the_connect_past_it(store: Store) {
    let (_, org) = owner_and_org(&store).await;
    connect(&store, org).await.unwrap();
    match connect(&store, org).await {
        Err(ConnectError::PlanLimit(limit)) => {
            assert_eq!(limit.resource, LimitedResource::CloudAccounts);
            assert_eq!((limit.used, limit.allowed), (1, 1));
            assert_eq!(limit.plan, "free");
        }
        other => panic!("expected a plan limit, got {other:?}"),
    }
    assert_eq!(
        store
            .subscriptions()
            .usage(org, now())
            .await
            .unwrap()
            .cloud_accounts,
        1
    );
    on_tier(&store, org, Tier::Individual).await;
    connect(&store, org).await.unwrap();
}

async fn twenty_concurrent_connects_to_an_individual_org_with_five_accounts_leave_six(
    store: Store,
) {
    let (_, org) = owner_and_org(&store).await;
    on_tier(&store, org, Tier::Individual).await;
    for _ in 0..5 {
        connect(&store, org).await.unwrap();
    }
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { connect(&store, org).await })
        })
        .collect();
    let (mut ok, mut limited) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(ConnectError::PlanLimit(limit)) => {
                assert_eq!((limit.used, limit.allowed), (6, 6));
                limited += 1;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok, limited), (1, 19));
    assert_eq!(
        store
            .subscriptions()
            .usage(org, now())
            .await
            .unwrap()
            .cloud_accounts,
        6
    );
}

async fn a_refused_redemption_leaves_the_token_pending(store: Store) {
    let (owner, org) = owner_and_org(&store).await;
    connect(&store, org).await.unwrap();
    let digest = unique("digest");
    store
        .connection_tokens()
        .insert(
            ConnectionToken {
                kind: TokenKind::ConnectToken,
                digest: digest.clone(),
                organization_id: org,
                created_by: owner,
                input: None,
                status: TokenStatus::Pending,
                expires_at: now() + Duration::minutes(10),
                cloud_account_id: None,
                created_at: now(),
            },
            audit(org, AuditAction::ConnectTokenCreated),
        )
        .await
        .unwrap();
    let refused = store
        .connection_tokens()
        .redeem(
            &digest,
            now(),
            account(org),
            audit(org, AuditAction::OrganizationUpdated),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(RedeemError::Connect(ConnectError::PlanLimit(_)))
        ),
        "{refused:?}"
    );
    let token = store
        .connection_tokens()
        .find(&digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(token.status, TokenStatus::Pending);
    on_tier(&store, org, Tier::Individual).await;
    store
        .connection_tokens()
        .redeem(
            &digest,
            now(),
            account(org),
            audit(org, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .connection_tokens()
            .find(&digest)
            .await
            .unwrap()
            .unwrap()
            .status,
        TokenStatus::Used
    );
}

async fn pending_invitations_hold_seats_and_reinviting_takes_none(store: Store) {
    let (owner, org) = owner_and_org(&store).await;
    let first = invitation(org, owner, "a@example.com");
    assert!(matches!(
        invite(&store, &first).await,
        Err(InviteError::PlanLimit(_))
    ));
    on_tier(&store, org, Tier::Individual).await;
    invite(&store, &first).await.unwrap();
    invite(&store, &invitation(org, owner, "b@example.com"))
        .await
        .unwrap();
    match invite(&store, &invitation(org, owner, "c@example.com")).await {
        Err(InviteError::PlanLimit(limit)) => {
            assert_eq!(limit.resource, LimitedResource::TeamMembers);
            assert_eq!((limit.used, limit.allowed), (3, 3));
        }
        other => panic!("expected a plan limit, got {other:?}"),
    }
    // Re-inviting a@ replaces the pending invitation: same seat.
    invite(&store, &invitation(org, owner, "a@example.com"))
        .await
        .unwrap();
    let usage = store.subscriptions().usage(org, now()).await.unwrap();
    assert_eq!((usage.members, usage.pending_invitations), (1, 2));
}

async fn concurrent_invites_never_overshoot_the_team_limit(store: Store) {
    let (owner, org) = owner_and_org(&store).await;
    on_tier(&store, org, Tier::Individual).await;
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            let inv = invitation(org, owner, &format!("p{i}@example.com"));
            tokio::spawn(async move { invite(&store, &inv).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(InviteError::PlanLimit(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(
        ok, 2,
        "owner plus two pending fill Individual's three seats"
    );
    assert_eq!(
        store
            .subscriptions()
            .usage(org, now())
            .await
            .unwrap()
            .team_members(),
        3
    );
}

async fn accepting_past_a_plan_that_shrank_is_refused_and_stays_pending(store: Store) {
    let (owner, org) = owner_and_org(&store).await;
    let (bob, _) = owner_and_org(&store).await;
    let bob_email = store.users().get(bob).await.unwrap().unwrap().email;
    on_tier(&store, org, Tier::Individual).await;
    let inv = invitation(org, owner, bob_email.as_str());
    invite(&store, &inv).await.unwrap();
    // A plan that shrank underneath (a billing provider's downgrade, an operator's fix).
    set_stored_tier(&store, org, "free").await.unwrap();
    let refused = store
        .invitations()
        .accept(
            inv.id,
            bob,
            now(),
            audit(org, AuditAction::InvitationAccepted),
        )
        .await;
    match refused {
        Err(AnswerInvitationError::PlanLimit(limit)) => {
            assert_eq!((limit.used, limit.allowed), (1, 1))
        }
        other => panic!("expected a plan limit, got {other:?}"),
    }
    let view = store.invitations().get(inv.id).await.unwrap().unwrap();
    assert_eq!(view.invitation.status, InvitationStatus::Pending);
    on_tier(&store, org, Tier::Individual).await;
    store
        .invitations()
        .accept(
            inv.id,
            bob,
            now(),
            audit(org, AuditAction::InvitationAccepted),
        )
        .await
        .unwrap();
    let usage = store.subscriptions().usage(org, now()).await.unwrap();
    assert_eq!((usage.members, usage.pending_invitations), (2, 0));
}

async fn usage_counts_unexpired_pending_invitations_only(store: Store) {
    let (owner, org) = owner_and_org(&store).await;
    on_tier(&store, org, Tier::Pro).await;
    let stale = Invitation {
        expires_at: now() + Duration::minutes(1),
        ..invitation(org, owner, "stale@example.com")
    };
    invite(&store, &stale).await.unwrap();
    let cancelled = invitation(org, owner, "gone@example.com");
    invite(&store, &cancelled).await.unwrap();
    store
        .invitations()
        .cancel(
            org,
            cancelled.id,
            audit(org, AuditAction::InvitationCancelled),
        )
        .await
        .unwrap();
    invite(&store, &invitation(org, owner, "live@example.com"))
        .await
        .unwrap();
    connect(&store, org).await.unwrap();
    let usage = store.subscriptions().usage(org, now()).await.unwrap();
    assert_eq!(
        (
            usage.cloud_accounts,
            usage.members,
            usage.pending_invitations
        ),
        (1, 1, 2)
    );
    let later = store
        .subscriptions()
        .usage(org, now() + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        later.pending_invitations, 1,
        "the expired one holds no seat"
    );
}

async fn a_downgrade_the_usage_does_not_fit_changes_nothing(store: Store) {
    let (owner, org) = owner_and_org(&store).await;
    on_tier(&store, org, Tier::Pro).await;
    for _ in 0..7 {
        connect(&store, org).await.unwrap();
    }
    for i in 0..3 {
        invite(
            &store,
            &invitation(org, owner, &format!("t{i}@example.com")),
        )
        .await
        .unwrap();
    }
    let current = sub(&store, org).await;
    let down = Subscription {
        tier: SubscribedTier::Current(Tier::Individual),
        ..current.clone()
    };
    match store
        .subscriptions()
        .change(
            down,
            current.tier,
            now(),
            audit(org, AuditAction::OrganizationUpdated),
        )
        .await
    {
        Err(ChangeSubscriptionError::Exceeds(list)) => {
            let over: Vec<_> = list
                .iter()
                .map(|e| (e.resource, e.used, e.allowed))
                .collect();
            assert_eq!(
                over,
                [
                    (LimitedResource::CloudAccounts, 7, 6),
                    (LimitedResource::TeamMembers, 4, 3)
                ]
            );
        }
        other => panic!("expected Exceeds, got {other:?}"),
    }
    assert_eq!(sub(&store, org).await, current);
    // Decided on a tier that is no longer stored (an operator moved it meanwhile): refused.
    let stale = Subscription {
        tier: SubscribedTier::Current(Tier::Free),
        ..current.clone()
    };
    assert!(matches!(
        store
            .subscriptions()
            .change(
                stale,
                SubscribedTier::Current(Tier::Enterprise),
                now(),
                audit(org, AuditAction::OrganizationUpdated)
            )
            .await,
        Err(ChangeSubscriptionError::Changed)
    ));
    let missing = Subscription::free(OrganizationId::new(), now());
    assert!(matches!(
        store
            .subscriptions()
            .change(
                missing.clone(),
                SubscribedTier::Current(Tier::Free),
                now(),
                audit(org, AuditAction::OrganizationUpdated)
            )
            .await,
        Err(ChangeSubscriptionError::NotFound)
    ));
}

async fn a_downgrade_racing_connects_never_leaves_usage_over_the_plan(store: Store) {
    let store = Arc::new(store);
    for _ in 0..5 {
        let (_, org) = owner_and_org(&store).await;
        on_tier(&store, org, Tier::Individual).await;
        let connects: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { connect(&store, org).await })
            })
            .collect();
        let down = {
            let store = store.clone();
            tokio::spawn(async move {
                let current = sub(&store, org).await;
                let expected = current.tier;
                store
                    .subscriptions()
                    .change(
                        Subscription {
                            tier: SubscribedTier::Current(Tier::Free),
                            ..current
                        },
                        expected,
                        now(),
                        audit(org, AuditAction::OrganizationUpdated),
                    )
                    .await
            })
        };
        for c in connects {
            let _ = c.await.unwrap();
        }
        let _ = down.await.unwrap();
        let sub = sub(&store, org).await;
        let usage = store.subscriptions().usage(org, now()).await.unwrap();
        assert!(
            sub.terms(now()).exceeded_by(&usage).is_empty(),
            "{:?} with {} accounts",
            sub.tier,
            usage.cloud_accounts
        );
    }
}

async fn legacy_subscriptions_move_in_one_transaction_or_not_at_all(store: Store) {
    let mut orgs = vec![];
    for (tier, accounts) in [("free_scan", 1), ("subscriber", 3), ("subscriber", 8)] {
        let (_, org) = owner_and_org(&store).await;
        on_tier(&store, org, Tier::Enterprise).await;
        for _ in 0..accounts {
            connect(&store, org).await.unwrap();
        }
        set_stored_tier(&store, org, tier).await.unwrap();
        orgs.push(org);
    }
    let candidates = store.subscriptions().legacy_candidates().await.unwrap();
    let ours: Vec<_> = candidates
        .iter()
        .filter(|c| orgs.contains(&c.subscription.organization_id))
        .map(|c| (c.subscription.tier, c.accounts))
        .collect();
    assert_eq!(
        ours,
        [
            (SubscribedTier::Legacy(LegacyTier::FreeScan), 1),
            (SubscribedTier::Legacy(LegacyTier::Subscriber), 3),
            (SubscribedTier::Legacy(LegacyTier::Subscriber), 8)
        ]
    );
    let moves: Vec<LegacyMove> = plan_moves(&candidates, now());
    // Someone changes one subscription between planning and applying: nothing moves.
    set_stored_tier(&store, orgs[1], "pro").await.unwrap();
    let audits = moves
        .iter()
        .map(|m| audit(m.organization_id, AuditAction::SubscriptionMigrated))
        .collect();
    assert!(
        store
            .subscriptions()
            .apply_legacy_moves(&moves, now(), audits)
            .await
            .is_err()
    );
    let untouched = sub(&store, orgs[0]).await;
    assert_eq!(untouched.tier, SubscribedTier::Legacy(LegacyTier::FreeScan));

    let moves = plan_moves(
        &store.subscriptions().legacy_candidates().await.unwrap(),
        now(),
    );
    let audits = moves
        .iter()
        .map(|m| audit(m.organization_id, AuditAction::SubscriptionMigrated))
        .collect();
    store
        .subscriptions()
        .apply_legacy_moves(&moves, now(), audits)
        .await
        .unwrap();
    let after = |i: usize| {
        let store = &store;
        let org = orgs[i];
        async move { sub(store, org).await }
    };
    assert_eq!(after(0).await.tier, SubscribedTier::Current(Tier::Free));
    let graced = after(2).await;
    assert_eq!(graced.tier, SubscribedTier::Current(Tier::Pro));
    assert_eq!(
        graced.grace.map(|g: Grace| g.legacy_tier),
        Some(LegacyTier::Subscriber)
    );
    assert!(
        store
            .subscriptions()
            .legacy_candidates()
            .await
            .unwrap()
            .is_empty()
    );
    let events = store
        .audit_log()
        .list(orgs[2], None, Default::default(), PageRequest::first())
        .await
        .unwrap();
    assert_eq!(events.items[0].action.as_str(), "subscription.migrated");
}

/// Two kinds of event, so the purge can be seen to take only the old one.
const OLD: AuditAction = AuditAction::MemberRemoved;
const RECENT: AuditAction = AuditAction::MemberLeft;

async fn history_is_served_and_purged_by_cutoff(store: Store) {
    let (_, org) = owner_and_org(&store).await;
    let (_, other) = owner_and_org(&store).await;
    on_tier(&store, org, Tier::Pro).await;
    let t0 = now();
    for (days, action) in [(40, OLD), (10, RECENT)] {
        for o in [org, other] {
            let mut a = audit_at(o, action, t0 - Duration::days(days));
            a.organization_id = o;
            store
                .organizations()
                .update(o, Default::default(), t0, a)
                .await
                .unwrap();
        }
    }
    let a = account(org);
    store
        .cloud_accounts()
        .create(a.clone(), audit(org, AuditAction::OrganizationUpdated))
        .await
        .unwrap();
    for days in [40, 10] {
        store
            .cloud_accounts()
            .record_check(
                org,
                HealthCheck {
                    account_id: a.id,
                    checked_at: t0 - Duration::days(days),
                    failure: None,
                    duration_ms: 5,
                },
            )
            .await
            .unwrap();
    }
    let cutoff = t0 - Duration::days(30);
    let served = store
        .audit_log()
        .list(org, Some(cutoff), Default::default(), PageRequest::first())
        .await
        .unwrap();
    assert!(served.items.iter().all(|e| e.action != OLD));
    assert!(served.items.iter().any(|e| e.action == RECENT));
    // A filter narrows within what is served: one action, then an actor nobody is.
    let only = |action| AuditFilter {
        action: Some(action),
        actor: None,
    };
    let recent = store
        .audit_log()
        .list(org, None, only(RECENT), PageRequest::first())
        .await
        .unwrap();
    assert!(!recent.items.is_empty());
    assert!(recent.items.iter().all(|e| e.action == RECENT));
    let by_nobody = store
        .audit_log()
        .list(
            org,
            None,
            AuditFilter {
                action: None,
                actor: Some(UserId::new()),
            },
            PageRequest::first(),
        )
        .await
        .unwrap();
    assert!(by_nobody.items.is_empty());
    let actor = recent.items[0].actor_id;
    let by_actor = store
        .audit_log()
        .list(
            org,
            None,
            AuditFilter {
                action: None,
                actor,
            },
            PageRequest::first(),
        )
        .await
        .unwrap();
    assert!(by_actor.items.iter().all(|e| e.actor_id == actor));
    let checks = store
        .cloud_accounts()
        .health(org, a.id, Some(cutoff), 10)
        .await
        .unwrap();
    assert_eq!(checks.len(), 1);

    let purged = store.history().purge(&[org], cutoff).await.unwrap();
    assert_eq!((purged.audit_events, purged.health_checks), (1, 1));
    let all = store
        .audit_log()
        .list(org, None, Default::default(), PageRequest::first())
        .await
        .unwrap();
    assert!(all.items.iter().all(|e| e.action != OLD));
    let untouched = store
        .audit_log()
        .list(other, None, Default::default(), PageRequest::first())
        .await
        .unwrap();
    assert!(
        untouched.items.iter().any(|e| e.action == OLD),
        "only the named organizations are purged"
    );
}
