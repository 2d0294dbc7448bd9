//! Contract tests of the coverage snapshot store on SQLite and (ignored unless `.ci/run`)
//! PostgreSQL: snapshots round trip whole, a history read returns its account's snapshots in
//! the range, oldest first, up to the limit, and never another tenant's. A cloud
//! organization's snapshots are read over HTTP in `tests/tests/gcp_scans.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_coverage::snapshot::{
    BreakdownCounts, CoverageSnapshot, HistoryOf, SnapshotStore, SnapshotTarget,
};
use canopy_coverage::views::MarksStore;
use canopy_detection::catalog::Catalog;
use canopy_kernel::id::OrganizationId;
use canopy_store::testing::{self, now};
use canopy_store::{Store, contract};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

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

contract!(
    snapshots_round_trip_and_read_back_by_target_and_range,
    the_coverage_revision_moves_with_detection_writes_only,
);

/// The triggers of migration 11: a detection written past every repository still moves its
/// tenant's revision (the store's code is not what moves it), another tenant's stays, reading
/// marks moves nothing, and the triggers come back when the migration is redone.
async fn the_coverage_revision_moves_with_detection_writes_only(store: Store) {
    let marks = store.coverage_marks();
    let mine = testing::unlimited_organization(&store).await.unwrap().id;
    let theirs = testing::unlimited_organization(&store).await.unwrap().id;
    let account = testing::stored_aws_account(&store, mine)
        .await
        .unwrap()
        .id
        .as_uuid();
    let (was, other) = (
        marks.revision(mine).await.unwrap(),
        marks.revision(theirs).await.unwrap(),
    );
    let raw = |key: &'static str| {
        testing::insert_detection_row(&store, mine, "account", Some(account), None, key)
    };
    assert_eq!(raw("one").await.unwrap(), 1);
    let moved = marks.revision(mine).await.unwrap();
    assert!(moved > was, "{was} -> {moved}");
    assert_eq!(marks.revision(theirs).await.unwrap(), other);
    marks
        .own_marks(mine, &[account], Catalog::embedded())
        .await
        .unwrap();
    assert_eq!(
        marks.revision(mine).await.unwrap(),
        moved,
        "a read moved it"
    );

    testing::redo_migrations_from(&store, "m20261130_000011_coverage_revisions")
        .await
        .unwrap();
    assert_eq!(marks.revision(mine).await.unwrap(), 0, "redone from empty");
    assert_eq!(raw("two").await.unwrap(), 1);
    assert!(marks.revision(mine).await.unwrap() > 0);
}

async fn snapshots_round_trip_and_read_back_by_target_and_range(store: Store) {
    let org = testing::unlimited_organization(&store).await.unwrap().id;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let account = testing::stored_aws_account(&store, org).await.unwrap();
        ids.push(account.id.as_uuid());
    }
    let (mine, sibling) = (ids[0], ids[1]);
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
    let other = testing::unlimited_organization(&store).await.unwrap().id;
    assert!(
        snapshots
            .history(other, HistoryOf::Account(mine), t0, now(), 100)
            .await
            .unwrap()
            .is_empty()
    );
}
