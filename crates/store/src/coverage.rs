//! [`SnapshotStore`] on sea-orm: coverage snapshots, one row each, written a scan's worth in
//! multi-row INSERTs and read back by account or cloud organization over a time range.

use async_trait::async_trait;
use canopy_coverage::snapshot::{
    BreakdownCounts, CoverageSnapshot, HistoryOf, SnapshotStore, SnapshotTarget, Spread,
};
use canopy_kernel::StoreError;
use canopy_kernel::id::OrganizationId;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use crate::entity::coverage_snapshots as snapshots;
use crate::error::{corrupt, db_err};

crate::repository!(
    /// Coverage snapshots.
    CoverageSnapshotStore,
    coverage_snapshots
);

/// Rows per multi-row INSERT: 23 columns each, well under both backends' parameter limits.
const INSERT_BATCH: usize = 500;

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn row(s: &CoverageSnapshot) -> snapshots::ActiveModel {
    let (scope, account, cloud_org) = match s.target {
        SnapshotTarget::Account {
            id,
            cloud_organization,
        } => ("account", Some(id), cloud_organization),
        SnapshotTarget::CloudOrganization(id) => ("organization", None, Some(id)),
    };
    snapshots::ActiveModel {
        id: Set(s.id),
        organization_id: Set(s.organization_id.as_uuid()),
        snapshot_scope: Set(scope.to_string()),
        cloud_account_id: Set(account),
        cloud_organization_id: Set(cloud_org),
        taken_at: Set(s.taken_at),
        attack_version: Set(s.attack_version.clone()),
        coverage_percent: Set(s.percent),
        covered_techniques: Set(int(s.covered)),
        total_techniques: Set(int(s.total)),
        degraded_techniques: Set(int(s.degraded)),
        unknown_techniques: Set(int(s.unknown)),
        detect_percent: Set(s.by_category[0]),
        protect_percent: Set(s.by_category[1]),
        respond_percent: Set(s.by_category[2]),
        includes_org_detections: Set(s.includes_org_detections),
        org_detection_count: Set(int(s.org_detection_count)),
        org_covered_techniques: Set(int(s.org_covered_techniques)),
        coverage_breakdown: Set(serde_json::to_value(s.breakdown).unwrap_or_default()),
        accounts: Set(s.spread.map(|x| int(x.accounts))),
        min_percent: Set(s.spread.map(|x| x.min)),
        max_percent: Set(s.spread.map(|x| x.max)),
    }
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn snapshot_from(m: snapshots::Model) -> Result<CoverageSnapshot, StoreError> {
    let target = match (m.snapshot_scope.as_str(), m.cloud_account_id) {
        ("account", Some(id)) => SnapshotTarget::Account {
            id,
            cloud_organization: m.cloud_organization_id,
        },
        ("organization", None) => SnapshotTarget::CloudOrganization(
            m.cloud_organization_id
                .ok_or_else(|| corrupt("coverage snapshot target", "no cloud organization"))?,
        ),
        (scope, _) => return Err(corrupt("coverage snapshot scope", scope)),
    };
    let breakdown: BreakdownCounts = serde_json::from_value(m.coverage_breakdown.clone())
        .map_err(|e| corrupt("coverage breakdown", &e.to_string()))?;
    let spread = match (m.accounts, m.min_percent, m.max_percent) {
        (Some(accounts), Some(min), Some(max)) => Some(Spread {
            accounts: count(accounts),
            min,
            max,
        }),
        _ => None,
    };
    Ok(CoverageSnapshot {
        id: m.id,
        organization_id: OrganizationId(m.organization_id),
        target,
        taken_at: m.taken_at,
        attack_version: m.attack_version,
        percent: m.coverage_percent,
        covered: count(m.covered_techniques),
        total: count(m.total_techniques),
        degraded: count(m.degraded_techniques),
        unknown: count(m.unknown_techniques),
        by_category: [m.detect_percent, m.protect_percent, m.respond_percent],
        includes_org_detections: m.includes_org_detections,
        org_detection_count: count(m.org_detection_count),
        org_covered_techniques: count(m.org_covered_techniques),
        breakdown,
        spread,
    })
}

#[async_trait]
impl SnapshotStore for CoverageSnapshotStore {
    async fn record(&self, batch: Vec<CoverageSnapshot>) -> Result<(), StoreError> {
        for chunk in batch.chunks(INSERT_BATCH) {
            snapshots::Entity::insert_many(chunk.iter().map(row))
                .exec(self.db())
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }

    async fn history(
        &self,
        org: OrganizationId,
        of: HistoryOf,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<CoverageSnapshot>, StoreError> {
        let query = snapshots::Entity::find()
            .filter(snapshots::Column::OrganizationId.eq(org.as_uuid()))
            .filter(snapshots::Column::TakenAt.gte(from))
            .filter(snapshots::Column::TakenAt.lte(to));
        let query = match of {
            HistoryOf::Account(id) => query.filter(snapshots::Column::CloudAccountId.eq(id)),
            HistoryOf::CloudOrganization(id) => query
                .filter(snapshots::Column::CloudOrganizationId.eq(id))
                .filter(snapshots::Column::SnapshotScope.eq("organization")),
        };
        query
            .order_by_asc(snapshots::Column::TakenAt)
            .order_by_asc(snapshots::Column::Id)
            .limit(limit)
            .all(self.db())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(snapshot_from)
            .collect()
    }
}
