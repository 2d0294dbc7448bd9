//! Contract tests of the detection repository on SQLite and (ignored unless `.ci/run`)
//! PostgreSQL: the spec's scope CHECK held by the database itself, round trips with
//! techniques, filters, tenant scoping, and scan writes that update in place.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use canopy_detection::detection::{
    Detection, DetectionId, Scope, ScopeKind, Source, Status, TechniqueScore,
};
use canopy_detection::mapping::{Category, Value};
use canopy_detection::ports::{DetectionFilter, DetectionRepository, ScanWrite, Target};
use canopy_kernel::PageRequest;
use canopy_kernel::id::OrganizationId;
use canopy_store::testing::{self, now};
use canopy_store::{Store, contract};
use canopy_tenancy::AuditAction;

async fn organization(store: &Store) -> OrganizationId {
    testing::unlimited_organization(store).await.unwrap().id
}

async fn account(store: &Store, org: OrganizationId) -> canopy_cloud_org::CloudAccount {
    testing::stored_aws_account(store, org).await.unwrap()
}

fn detection(org: OrganizationId, scope: Scope, source: Source, key: &str) -> Detection {
    let at = now();
    Detection {
        id: DetectionId::new(),
        organization_id: org,
        scope,
        source,
        resource_key: key.into(),
        name: format!("{source} {key}"),
        description: None,
        techniques: vec![
            TechniqueScore::new("T1078.004", Category::Detect, Value::Partial),
            TechniqueScore::new("T1562.008", Category::Protect, Value::Significant),
        ],
        status: Status::Active,
        reason: None,
        advice: None,
        evidence: serde_json::json!({"region": "us-east-1"}),
        first_seen_at: at,
        last_seen_at: Some(at),
        last_scan_job_id: None,
        created_by: None,
        created_at: at,
        updated_at: at,
    }
}

contract!(
    the_database_refuses_a_detection_without_its_scope_target,
    detections_round_trip_with_techniques_and_filters,
    another_tenants_detection_is_invisible,
    a_scan_write_updates_in_place_and_the_identity_is_unique,
);

async fn the_database_refuses_a_detection_without_its_scope_target(store: Store) {
    let org = organization(&store).await;
    let acct = account(&store, org).await;
    let account_id = Some(acct.id.as_uuid());
    // An account detection without its account, an organization detection without its cloud
    // organization, an unknown scope: the CHECK refuses each, whatever the code does.
    for (scope, account) in [
        ("account", None),
        ("organization", account_id),
        ("tenant", account_id),
    ] {
        let refused = testing::insert_detection_row(&store, org, scope, account, None, scope).await;
        assert!(
            refused.is_err(),
            "{scope} with account {account:?} must be refused"
        );
    }
    // The same row with its target is accepted: the refusals were the CHECK's.
    testing::insert_detection_row(&store, org, "account", account_id, None, "ok")
        .await
        .unwrap();
    let stored = store
        .detections()
        .all(
            org,
            Target::Account(acct.id.as_uuid()),
            &DetectionFilter::default(),
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].scope, Scope::Account(acct.id));
}

async fn detections_round_trip_with_techniques_and_filters(store: Store) {
    let org = organization(&store).await;
    let acct = account(&store, org).await;
    let trail = detection(
        org,
        Scope::Account(acct.id),
        Source::AwsCloudTrailTrail,
        "arn:trail",
    );
    let mut guardduty = detection(
        org,
        Scope::Account(acct.id),
        Source::AwsGuardDutyDetector,
        "us-east-1",
    );
    guardduty.techniques = vec![TechniqueScore::new(
        "T1530",
        Category::Detect,
        Value::Minimal,
    )];
    guardduty.status = Status::Degraded;
    let repo = store.detections();
    for d in [&trail, &guardduty] {
        repo.create(
            d.clone(),
            testing::audit(org, AuditAction::DetectionCreated),
        )
        .await
        .unwrap();
    }
    assert_eq!(repo.get(org, trail.id).await.unwrap().unwrap(), trail);
    let target = Target::Account(acct.id.as_uuid());
    let with = |f: DetectionFilter| {
        let repo = repo.clone();
        async move {
            repo.all(org, target, &f)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.resource_key)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        with(DetectionFilter {
            techniques: Some(BTreeSet::from(["T1530".to_string()])),
            ..Default::default()
        })
        .await,
        ["us-east-1"]
    );
    assert_eq!(
        with(DetectionFilter {
            status: Some(Status::Active),
            ..Default::default()
        })
        .await,
        ["arn:trail"]
    );
    assert_eq!(
        with(DetectionFilter {
            source: Some(Source::AwsGuardDutyDetector),
            scope: Some(ScopeKind::Account),
            ..Default::default()
        })
        .await,
        ["us-east-1"]
    );
    // Pages of one by id.
    let first = repo
        .list(
            org,
            target,
            &DetectionFilter::default(),
            PageRequest {
                limit: 1,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 1);
    let second = repo
        .list(
            org,
            target,
            &DetectionFilter::default(),
            PageRequest {
                limit: 1,
                after: first.next,
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items.len(), 1);
    assert_ne!(first.items[0].id, second.items[0].id);
    assert!(second.next.is_none());
    assert!(
        repo.delete(
            org,
            trail.id,
            testing::audit(org, AuditAction::DetectionDeleted)
        )
        .await
        .unwrap()
    );
    assert!(repo.get(org, trail.id).await.unwrap().is_none());
}

async fn another_tenants_detection_is_invisible(store: Store) {
    let org = organization(&store).await;
    let other = organization(&store).await;
    let acct = account(&store, org).await;
    let d = detection(org, Scope::Account(acct.id), Source::Custom, "mine");
    store
        .detections()
        .create(
            d.clone(),
            testing::audit(org, AuditAction::DetectionCreated),
        )
        .await
        .unwrap();
    assert!(store.detections().get(other, d.id).await.unwrap().is_none());
    assert!(
        !store
            .detections()
            .delete(
                other,
                d.id,
                testing::audit(other, AuditAction::DetectionDeleted)
            )
            .await
            .unwrap()
    );
    let mut foreign = d.clone();
    foreign.organization_id = other;
    foreign.name = "taken over".into();
    assert!(
        !store
            .detections()
            .update(
                foreign,
                testing::audit(other, AuditAction::DetectionUpdated)
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .detections()
            .get(org, d.id)
            .await
            .unwrap()
            .unwrap()
            .name,
        d.name
    );
}

async fn a_scan_write_updates_in_place_and_the_identity_is_unique(store: Store) {
    let org = organization(&store).await;
    let acct = account(&store, org).await;
    let repo = store.detections();
    let found = detection(
        org,
        Scope::Account(acct.id),
        Source::AwsGuardDutyDetector,
        "eu-west-1",
    );
    repo.apply_scan(ScanWrite {
        insert: vec![found.clone()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut again = found.clone();
    again.status = Status::Absent;
    again.techniques = vec![TechniqueScore::new(
        "T1496",
        Category::Detect,
        Value::Significant,
    )];
    repo.apply_scan(ScanWrite {
        update: vec![again.clone()],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(repo.get(org, found.id).await.unwrap().unwrap(), again);
    // A second row with the same (target, source, key) is refused, and the failed write
    // leaves nothing behind.
    let twin = detection(
        org,
        Scope::Account(acct.id),
        Source::AwsGuardDutyDetector,
        "eu-west-1",
    );
    let other = detection(
        org,
        Scope::Account(acct.id),
        Source::AwsGuardDutyDetector,
        "us-east-2",
    );
    assert!(
        repo.apply_scan(ScanWrite {
            insert: vec![other.clone(), twin],
            ..Default::default()
        })
        .await
        .is_err()
    );
    assert!(repo.get(org, other.id).await.unwrap().is_none());
}
