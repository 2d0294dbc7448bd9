//! Contract tests of the cloud-account ports on SQLite and (ignored unless `.ci/run`)
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use canopy_cloud_org::account::AccountStatus;
use canopy_cloud_org::external_id::ExternalId;
use canopy_cloud_org::health::{AccessFailure, FailureKind, HealthCheck};
use canopy_cloud_org::ports::{
    AccountFilter, CloudAccountRepository, ConnectError, ExternalIdRepository,
};
use canopy_kernel::PageRequest;
use canopy_kernel::id::OrganizationId;
use canopy_store::testing::{self, aws_account, now, random_aws_account_id as random_account_id};
use canopy_store::{Store, contract};
use canopy_tenancy::AuditAction;
use canopy_tenancy::NewAuditEvent;
use canopy_tenancy::ports::OrganizationRepository;
use chrono::Duration;

fn audit(org: OrganizationId) -> NewAuditEvent {
    testing::audit(org, AuditAction::OrganizationUpdated)
}

/// A stored organization, unlimited: plan limits have their own contract
/// (billing_contract.rs); these tests are about accounts.
async fn organization(store: &Store) -> OrganizationId {
    let org = testing::unlimited_organization(store).await.unwrap();
    assert!(store.organizations().slug_exists(&org.slug).await.unwrap());
    org.id
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
        store
            .cloud_accounts()
            .create(a.clone(), audit(a.organization_id))
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .cloud_accounts()
            .get(org, prod.id)
            .await
            .unwrap()
            .unwrap(),
        prod
    );
    assert!(
        store
            .cloud_accounts()
            .get(other, prod.id)
            .await
            .unwrap()
            .is_none(),
        "scoped by org"
    );

    let all = store
        .cloud_accounts()
        .list(org, &AccountFilter::default(), PageRequest::first())
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
    let got = store
        .cloud_accounts()
        .list(org, &by_env, PageRequest::first())
        .await
        .unwrap();
    assert_eq!(got.items.len(), 1);
    let by_tag = AccountFilter {
        tag: Some(("team".into(), Some("web".into()))),
        ..Default::default()
    };
    let got = store
        .cloud_accounts()
        .list(org, &by_tag, PageRequest::first())
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
        store
            .cloud_accounts()
            .list(org, &by_key, PageRequest::first())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let page = store
        .cloud_accounts()
        .list(
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
    let rest = store
        .cloud_accounts()
        .list(
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
        store
            .cloud_accounts()
            .delete(org, prod.id, audit(org))
            .await
            .unwrap()
    );
    assert!(
        !store
            .cloud_accounts()
            .delete(other, staging.id, audit(other))
            .await
            .unwrap()
    );
}

async fn an_account_belongs_to_one_organization(store: Store) {
    let org = organization(&store).await;
    let other = organization(&store).await;
    let key = random_account_id();
    store
        .cloud_accounts()
        .create(aws_account(org, &key, "production", &[]), audit(org))
        .await
        .unwrap();
    let again = store
        .cloud_accounts()
        .create(aws_account(org, &key, "staging", &[]), audit(org))
        .await;
    assert!(
        matches!(again, Err(ConnectError::AlreadyConnected)),
        "{again:?}"
    );
    let elsewhere = store
        .cloud_accounts()
        .create(aws_account(other, &key, "staging", &[]), audit(other))
        .await;
    assert!(
        matches!(elsewhere, Err(ConnectError::ConnectedElsewhere)),
        "{elsewhere:?}"
    );
    let listed = store
        .cloud_accounts()
        .list(other, &AccountFilter::default(), PageRequest::first())
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
                store
                    .as_ref()
                    .cloud_accounts()
                    .create(account, audit(org))
                    .await
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
    store
        .cloud_accounts()
        .create(account.clone(), audit(org))
        .await
        .unwrap();
    let mut changed = account.clone();
    changed.settings.alias = Some("Renamed".into());
    changed.settings.tags = [("b".to_string(), "2".to_string())].into_iter().collect();
    changed.status = AccountStatus::Error;
    let updated = store
        .cloud_accounts()
        .update(changed, audit(org))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.settings.alias.as_deref(), Some("Renamed"));
    assert_eq!(
        updated.status,
        AccountStatus::Pending,
        "status is set by checks, not edits: never checked, still pending"
    );
    let by_old_tag = AccountFilter {
        tag: Some(("a".into(), None)),
        ..Default::default()
    };
    assert!(
        store
            .cloud_accounts()
            .list(org, &by_old_tag, PageRequest::first())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let mut foreign = account.clone();
    foreign.organization_id = organization(&store).await;
    assert!(
        store
            .cloud_accounts()
            .update(foreign, audit(org))
            .await
            .unwrap()
            .is_none()
    );
}

async fn checks_set_status_and_form_a_timeline(store: Store) {
    let org = organization(&store).await;
    let account = aws_account(org, &random_account_id(), "production", &[]);
    store
        .cloud_accounts()
        .create(account.clone(), audit(org))
        .await
        .unwrap();
    let t0 = now();
    let failed = store
        .cloud_accounts()
        .record_check(
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
    let ok = store
        .cloud_accounts()
        .record_check(
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
    let timeline = store
        .cloud_accounts()
        .health(org, account.id, None, 10)
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
        store
            .cloud_accounts()
            .health(other, account.id, None, 10)
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
            tokio::spawn(async move { store.external_ids().current_or_create(c).await })
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
    let rotated = store
        .external_ids()
        .rotate(candidate("next"), audit(org))
        .await
        .unwrap();
    let current = store
        .external_ids()
        .current_or_create(candidate("ignored"))
        .await
        .unwrap();
    assert_eq!(current.value, rotated.value);
    let history = store.external_ids().history(org).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].value, rotated.value);
    assert!(history[1].retired_at.is_some());
}
