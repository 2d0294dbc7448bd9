//! Contract tests of the coverage snapshot store on SQLite and (ignored unless `.ci/run`)
//! PostgreSQL: snapshots round trip whole, a history read returns its account's snapshots in
//! the range, oldest first, up to the limit, and never another tenant's. A cloud
//! organization's snapshots are read over HTTP in `tests/tests/gcp_scans.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_billing::Tier;
use canopy_cloud_org::ports::CloudAccountRepository;
use canopy_coverage::snapshot::{
    BreakdownCounts, CoverageSnapshot, HistoryOf, SnapshotStore, SnapshotTarget,
};
use canopy_kernel::id::OrganizationId;
use canopy_store::testing::{self, aws_account, now, random_aws_account_id};
use canopy_store::{Store, contract};
use canopy_tenancy::AuditAction;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

async fn organization(store: &Store) -> OrganizationId {
    let (_, org) = testing::user_with_organization(store, "owner")
        .await
        .unwrap();
    // Room for two accounts.
    testing::put_on_tier(store, org.id, Tier::Enterprise)
        .await
        .unwrap();
    org.id
}

async fn account(store: &Store, org: OrganizationId) -> Uuid {
    let a = aws_account(org, &random_aws_account_id(), "production", &[]);
    store
        .cloud_accounts()
        .create(
            a.clone(),
            testing::audit(org, AuditAction::CloudAccountConnected),
        )
        .await
        .unwrap();
    a.id.as_uuid()
}

fn snapshot(
    org: OrganizationId,
    account: Uuid,
    at: DateTime<Utc>,
    percent: f64,
) -> CoverageSnapshot {
    CoverageSnapshot {
        id: Uuid::now_v7(),
        organization_id: org,
        target: SnapshotTarget::Account {
            id: account,
            cloud_organization: None,
        },
        taken_at: at,
        attack_version: "18.1".into(),
        percent,
        covered: 12,
        total: 104,
        degraded: 2,
        unknown: 1,
        by_category: [10.6, 3.8, 0.0],
        includes_org_detections: false,
        org_detection_count: 0,
        org_covered_techniques: 0,
        breakdown: BreakdownCounts {
            account_detections: 7,
            org_detections: 0,
            account_techniques: 12,
            org_techniques: 0,
            overlap_techniques: 0,
        },
        spread: None,
    }
}

contract!(snapshots_round_trip_and_read_back_by_target_and_range,);

async fn snapshots_round_trip_and_read_back_by_target_and_range(store: Store) {
    let org = organization(&store).await;
    let (mine, sibling) = (account(&store, org).await, account(&store, org).await);
    let t0 = now() - Duration::days(3);
    let line: Vec<_> = (0..3)
        .map(|i| snapshot(org, mine, t0 + Duration::days(i), 10.0 + i as f64))
        .collect();
    let snapshots = store.coverage_snapshots();
    // Written newest first, read oldest first; the sibling's point is not in the line.
    let mut batch: Vec<_> = line.iter().rev().cloned().collect();
    batch.push(snapshot(org, sibling, t0, 99.0));
    snapshots.record(batch).await.unwrap();

    let all = snapshots
        .history(org, HistoryOf::Account(mine), t0, now(), 100)
        .await
        .unwrap();
    assert_eq!(all, line, "whole snapshots, oldest first");
    let later = snapshots
        .history(
            org,
            HistoryOf::Account(mine),
            t0 + Duration::hours(1),
            now(),
            100,
        )
        .await
        .unwrap();
    assert_eq!(later, line[1..].to_vec());
    let limited = snapshots
        .history(org, HistoryOf::Account(mine), t0, now(), 2)
        .await
        .unwrap();
    assert_eq!(limited, line[..2].to_vec());

    // Another tenant asking with these ids gets nothing.
    let other = organization(&store).await;
    assert!(
        snapshots
            .history(other, HistoryOf::Account(mine), t0, now(), 100)
            .await
            .unwrap()
            .is_empty()
    );
}
