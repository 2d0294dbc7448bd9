//! Contract tests of the cloud-account ports on SQLite and (ignored unless `.ci/run`)
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use canopy_billing::ports::SubscriptionRepository;
use canopy_billing::{SubscribedTier, Subscription, Tier};
use canopy_cloud_org::account::{
    AccountInput, AccountStatus, CloudAccount, CloudAccountId, validate_new,
};
use canopy_cloud_org::external_id::ExternalId;
use canopy_cloud_org::health::{AccessFailure, FailureKind, HealthCheck};
use canopy_cloud_org::ports::{
    AccountFilter, CloudAccountRepository, ConnectError, ExternalIdRepository,
};
use canopy_kernel::PageRequest;
use canopy_kernel::id::{OrganizationId, UserId};
use canopy_store::{Store, contract};
use canopy_tenancy::ports::OrganizationRepository;
use canopy_tenancy::{NewAuditEvent, Organization};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(Duration::microseconds(1))
        .unwrap()
}

fn audit(org: OrganizationId) -> NewAuditEvent {
    NewAuditEvent::new(org, None, "test", ("t", "x".into()), json!({}), now())
}

async fn organization(store: &Store) -> OrganizationId {
    let id = OrganizationId::new();
    let slug = format!("org-{}", &id.to_string()[24..]);
    // An owner row needs a user; the store's org create only needs the user id to exist when
    // foreign keys are on, so create through the user repository.
    let at = now();
    let user = canopy_tenancy::User {
        id: UserId::new(),
        email: format!("{slug}@example.com"),
        name: "Owner".into(),
        active_organization_id: Some(id),
        created_at: at,
        updated_at: at,
    };
    let org = Organization {
        id,
        name: slug.clone(),
        slug,
        logo: None,
        metadata: json!({}),
        created_at: at,
        updated_at: at,
    };
    canopy_tenancy::ports::UserRepository::create_with_organization(
        store,
        canopy_tenancy::ports::NewUser {
            user,
            password_hash: "h".into(),
        },
        org,
        audit(id),
    )
    .await
    .unwrap();
    // Limits have their own contract (billing_contract.rs); these tests are about accounts.
    unlimited(store, id).await;
    assert!(
        OrganizationRepository::slug_exists(store, &format!("org-{}", &id.to_string()[24..]))
            .await
            .unwrap()
    );
    id
}

async fn unlimited(store: &Store, org: OrganizationId) {
    let next = Subscription {
        tier: SubscribedTier::Current(Tier::Enterprise),
        ..Subscription::free(org, now())
    };
    store
        .change(next, SubscribedTier::Current(Tier::Free), now(), audit(org))
        .await
        .unwrap();
}

fn random_account_id() -> String {
    let n = u64::from_le_bytes(uuid::Uuid::now_v7().as_bytes()[8..16].try_into().unwrap());
    format!("{:012}", n % 1_000_000_000_000)
}

fn aws_account(
    org: OrganizationId,
    account_id: &str,
    env: &str,
    tags: &[(&str, &str)],
) -> CloudAccount {
    let (identity, settings) = validate_new(&AccountInput {
        provider: "aws".into(),
        account_id: Some(account_id.into()),
        role_arn: Some(format!("arn:aws:iam::{account_id}:role/CanopyAccess")),
        region: Some("eu-west-1".into()),
        environment: Some(env.into()),
        alias: Some(format!("acct {account_id}")),
        ses_domains: vec!["mail.example.com".into()],
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    })
    .unwrap();
    CloudAccount {
        id: CloudAccountId::new(),
        organization_id: org,
        identity,
        settings,
        status: AccountStatus::Active,
        last_synced_at: None,
        last_error: None,
        created_by: UserId::new(),
        created_at: now(),
        updated_at: now(),
    }
}

contract!(
    accounts_round_trip_and_list_with_filters,
    an_account_belongs_to_one_organization,
    concurrent_connects_create_one_account,
    updates_keep_identity_and_health,
    checks_set_status_and_form_a_timeline,
    external_ids_have_one_current_and_keep_history,
);

async fn accounts_round_trip_and_list_with_filters(store: Store) {
    let org = organization(&store).await;
    let other = organization(&store).await;
    let prod = aws_account(org, &random_account_id(), "production", &[("team", "mail")]);
    let staging = aws_account(org, &random_account_id(), "staging", &[("team", "web")]);
    let foreign = aws_account(other, &random_account_id(), "production", &[]);
    for a in [&prod, &staging, &foreign] {
        CloudAccountRepository::create(&store, a.clone(), audit(a.organization_id))
            .await
            .unwrap();
    }
    assert_eq!(
        CloudAccountRepository::get(&store, org, prod.id)
            .await
            .unwrap()
            .unwrap(),
        prod
    );
    assert!(
        CloudAccountRepository::get(&store, other, prod.id)
            .await
            .unwrap()
            .is_none(),
        "scoped by org"
    );

    let all =
        CloudAccountRepository::list(&store, org, &AccountFilter::default(), PageRequest::first())
            .await
            .unwrap();
    assert_eq!(
        all.items.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![prod.id, staging.id]
    );
    let by_env = AccountFilter {
        environment: prod.settings.environment,
        ..Default::default()
    };
    let got = CloudAccountRepository::list(&store, org, &by_env, PageRequest::first())
        .await
        .unwrap();
    assert_eq!(got.items.len(), 1);
    let by_tag = AccountFilter {
        tag: Some(("team".into(), Some("web".into()))),
        ..Default::default()
    };
    let got = CloudAccountRepository::list(&store, org, &by_tag, PageRequest::first())
        .await
        .unwrap();
    assert_eq!(
        got.items.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![staging.id]
    );
    let by_key = AccountFilter {
        tag: Some(("team".into(), None)),
        ..Default::default()
    };
    assert_eq!(
        CloudAccountRepository::list(&store, org, &by_key, PageRequest::first())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let page = CloudAccountRepository::list(
        &store,
        org,
        &AccountFilter::default(),
        PageRequest {
            limit: 1,
            after: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(page.items.len(), 1);
    let rest = CloudAccountRepository::list(
        &store,
        org,
        &AccountFilter::default(),
        PageRequest {
            limit: 1,
            after: page.next,
        },
    )
    .await
    .unwrap();
    assert_eq!(rest.items[0].id, staging.id);
    assert!(
        CloudAccountRepository::delete(&store, org, prod.id, audit(org))
            .await
            .unwrap()
    );
    assert!(
        !CloudAccountRepository::delete(&store, other, staging.id, audit(other))
            .await
            .unwrap()
    );
}

async fn an_account_belongs_to_one_organization(store: Store) {
    let org = organization(&store).await;
    let other = organization(&store).await;
    let key = random_account_id();
    CloudAccountRepository::create(
        &store,
        aws_account(org, &key, "production", &[]),
        audit(org),
    )
    .await
    .unwrap();
    let again =
        CloudAccountRepository::create(&store, aws_account(org, &key, "staging", &[]), audit(org))
            .await;
    assert!(
        matches!(again, Err(ConnectError::AlreadyConnected)),
        "{again:?}"
    );
    let elsewhere = CloudAccountRepository::create(
        &store,
        aws_account(other, &key, "staging", &[]),
        audit(other),
    )
    .await;
    assert!(
        matches!(elsewhere, Err(ConnectError::ConnectedElsewhere)),
        "{elsewhere:?}"
    );
    let listed = CloudAccountRepository::list(
        &store,
        other,
        &AccountFilter::default(),
        PageRequest::first(),
    )
    .await
    .unwrap();
    assert!(listed.items.is_empty(), "a refused connect stores nothing");
}

async fn concurrent_connects_create_one_account(store: Store) {
    let orgs = [organization(&store).await, organization(&store).await];
    let key = random_account_id();
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            let org = orgs[i % 2];
            let account = aws_account(org, &key, "production", &[]);
            tokio::spawn(async move {
                CloudAccountRepository::create(store.as_ref(), account, audit(org)).await
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => created += 1,
            Err(ConnectError::AlreadyConnected | ConnectError::ConnectedElsewhere) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(created, 1);
}

async fn updates_keep_identity_and_health(store: Store) {
    let org = organization(&store).await;
    let account = aws_account(org, &random_account_id(), "production", &[("a", "1")]);
    CloudAccountRepository::create(&store, account.clone(), audit(org))
        .await
        .unwrap();
    let mut changed = account.clone();
    changed.settings.alias = Some("Renamed".into());
    changed.settings.tags = [("b".to_string(), "2".to_string())].into_iter().collect();
    changed.status = AccountStatus::Error;
    let updated = CloudAccountRepository::update(&store, changed, audit(org))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.settings.alias.as_deref(), Some("Renamed"));
    assert_eq!(
        updated.status,
        AccountStatus::Active,
        "status is set by checks, not edits"
    );
    let by_old_tag = AccountFilter {
        tag: Some(("a".into(), None)),
        ..Default::default()
    };
    assert!(
        CloudAccountRepository::list(&store, org, &by_old_tag, PageRequest::first())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let mut foreign = account.clone();
    foreign.organization_id = organization(&store).await;
    assert!(
        CloudAccountRepository::update(&store, foreign, audit(org))
            .await
            .unwrap()
            .is_none()
    );
}

async fn checks_set_status_and_form_a_timeline(store: Store) {
    let org = organization(&store).await;
    let account = aws_account(org, &random_account_id(), "production", &[]);
    CloudAccountRepository::create(&store, account.clone(), audit(org))
        .await
        .unwrap();
    let t0 = now();
    let failed = CloudAccountRepository::record_check(
        &store,
        org,
        HealthCheck {
            account_id: account.id,
            checked_at: t0,
            failure: Some(AccessFailure {
                kind: FailureKind::AccessDenied,
                message: "AccessDenied: not authorized".into(),
            }),
            duration_ms: 12,
        },
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(failed.status, AccountStatus::Error);
    assert!(
        failed
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("access_denied")
    );
    let ok = CloudAccountRepository::record_check(
        &store,
        org,
        HealthCheck {
            account_id: account.id,
            checked_at: t0 + Duration::seconds(5),
            failure: None,
            duration_ms: 8,
        },
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(ok.status, AccountStatus::Active);
    assert_eq!(ok.last_synced_at, Some(t0 + Duration::seconds(5)));
    assert_eq!(ok.last_error, None);
    let timeline = CloudAccountRepository::health(&store, org, account.id, None, 10)
        .await
        .unwrap();
    assert_eq!(timeline.len(), 2);
    assert!(timeline[0].failure.is_none(), "newest first");
    assert_eq!(
        timeline[1].failure.as_ref().unwrap().kind,
        FailureKind::AccessDenied
    );
    let other = organization(&store).await;
    assert!(
        CloudAccountRepository::health(&store, other, account.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn external_ids_have_one_current_and_keep_history(store: Store) {
    let org = organization(&store).await;
    let candidate = |v: &str| ExternalId {
        organization_id: org,
        value: format!("{v}-{}", uuid::Uuid::now_v7().simple()),
        created_at: now(),
        retired_at: None,
    };
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            let c = candidate(&format!("c{i}"));
            tokio::spawn(async move { store.current_or_create(c).await })
        })
        .collect();
    let mut values = vec![];
    for t in tasks {
        values.push(t.await.unwrap().unwrap().value);
    }
    values.dedup();
    assert_eq!(
        values.len(),
        1,
        "every racer sees the same current External ID"
    );
    let rotated = store.rotate(candidate("next"), audit(org)).await.unwrap();
    let current = store.current_or_create(candidate("ignored")).await.unwrap();
    assert_eq!(current.value, rotated.value);
    let history = store.history(org).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].value, rotated.value);
    assert!(history[1].retired_at.is_some());
}
