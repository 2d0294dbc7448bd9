//! Coverage snapshots: the spec's `coverage_snapshots` row (with `includes_org_detections`,
//! `org_detection_count`, `org_covered_techniques` and `coverage_breakdown`) for one account or
//! one cloud organization at one moment, built from a computed coverage, and the port that
//! keeps them for trend lines. Building is pure; keeping is the [`SnapshotStore`] port's.

use std::collections::BTreeSet;

use async_trait::async_trait;
use canopy_detection::detection::Status;
use canopy_detection::mapping::Category;
use canopy_detection::service::{AccountDetection, Origin};
use canopy_kernel::StoreError;
use canopy_kernel::id::OrganizationId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::account::{AccountCoverage, TechniqueStatus};
use crate::organization::OrganizationCoverage;

/// What a snapshot measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotTarget {
    /// One cloud account, with the cloud organization it inherited from, if any.
    Account {
        /// The cloud account.
        id: Uuid,
        /// Its cloud organization while it is a member.
        cloud_organization: Option<Uuid>,
    },
    /// A cloud organization as a whole (its connected members).
    CloudOrganization(Uuid),
}

/// The spec's `coverage_breakdown` counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakdownCounts {
    /// Own (account-scoped) detections.
    pub account_detections: u32,
    /// Organization detections reaching the account (for a cloud organization: reaching any).
    pub org_detections: u32,
    /// Techniques covered by own detections.
    pub account_techniques: u32,
    /// Techniques covered by organization detections.
    pub org_techniques: u32,
    /// Techniques covered by both.
    pub overlap_techniques: u32,
}

/// A cloud organization's spread over its members.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Connected members counted.
    pub accounts: u32,
    /// The least covered member's percent.
    pub min: f64,
    /// The best covered member's percent.
    pub max: f64,
}

/// One account's or cloud organization's coverage at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct CoverageSnapshot {
    /// Id.
    pub id: Uuid,
    /// The tenant.
    pub organization_id: OrganizationId,
    /// What was measured.
    pub target: SnapshotTarget,
    /// When.
    pub taken_at: DateTime<Utc>,
    /// The ATT&CK version of the catalog it was measured against.
    pub attack_version: String,
    /// Percent covered (a cloud organization: the members' average).
    pub percent: f64,
    /// Techniques covered (a cloud organization: in at least one member).
    pub covered: u32,
    /// Catalog entries counted.
    pub total: u32,
    /// Techniques only degraded (a cloud organization: in at least one member).
    pub degraded: u32,
    /// Techniques only unknown (a cloud organization: in at least one member).
    pub unknown: u32,
    /// Percent per category (a cloud organization: the members' average): detect, protect,
    /// respond.
    pub by_category: [f64; 3],
    /// Whether organization detections counted.
    pub includes_org_detections: bool,
    /// Organization detections that counted.
    pub org_detection_count: u32,
    /// Techniques organization detections covered.
    pub org_covered_techniques: u32,
    /// The breakdown.
    pub breakdown: BreakdownCounts,
    /// A cloud organization's spread; `None` for an account.
    pub spread: Option<Spread>,
}

const CATEGORIES: [Category; 3] = [Category::Detect, Category::Protect, Category::Respond];

fn percent(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl CoverageSnapshot {
    /// One account's snapshot from its computed coverage.
    pub fn of_account(
        organization_id: OrganizationId,
        target: SnapshotTarget,
        taken_at: DateTime<Utc>,
        coverage: &AccountCoverage,
    ) -> Self {
        let b = &coverage.breakdown;
        let breakdown = BreakdownCounts {
            account_detections: b.account_detections,
            org_detections: b.org_detections,
            account_techniques: count(b.account_techniques.len()),
            org_techniques: count(b.org_techniques.len()),
            overlap_techniques: count(b.overlap_techniques.len()),
        };
        Self {
            id: Uuid::now_v7(),
            organization_id,
            target,
            taken_at,
            attack_version: coverage.attack_version.clone(),
            percent: coverage.overall.percent,
            covered: coverage.overall.covered,
            total: coverage.overall.total,
            degraded: coverage.degraded,
            unknown: coverage.unknown,
            by_category: CATEGORIES
                .map(|c| coverage.by_category.get(&c).map_or(0.0, |r| r.percent)),
            includes_org_detections: b.org_detections > 0,
            org_detection_count: b.org_detections,
            org_covered_techniques: breakdown.org_techniques,
            breakdown,
            spread: None,
        }
    }

    /// A cloud organization's snapshot from its members' coverage (`members`, each with its
    /// effective detections) and the organization view computed over them.
    pub fn of_organization(
        organization_id: OrganizationId,
        cloud_organization: Uuid,
        taken_at: DateTime<Utc>,
        members: &[(&[AccountDetection], &AccountCoverage)],
        view: &OrganizationCoverage,
        attack_version: &str,
        catalog_size: u32,
    ) -> Self {
        let n = members.len().max(1) as f64;
        let mut own_techniques = BTreeSet::new();
        let mut org_detections = BTreeSet::new();
        let (mut degraded, mut unknown) = (BTreeSet::new(), BTreeSet::new());
        let mut account_detections = 0u32;
        let mut by_category = [0.0; 3];
        for (effective, coverage) in members {
            own_techniques.extend(coverage.breakdown.account_techniques.iter().cloned());
            account_detections += coverage.breakdown.account_detections;
            org_detections.extend(
                effective
                    .iter()
                    // Counted as the breakdown counts them: an absent control adds nothing.
                    .filter(|d| {
                        matches!(d.origin, Origin::Inherited { .. })
                            && d.detection.status != Status::Absent
                    })
                    .map(|d| d.detection.id),
            );
            for t in &coverage.techniques {
                match t.status {
                    TechniqueStatus::Degraded => degraded.insert(t.technique.as_str()),
                    TechniqueStatus::Unknown => unknown.insert(t.technique.as_str()),
                    _ => false,
                };
            }
            for (slot, category) in by_category.iter_mut().zip(CATEGORIES) {
                *slot += coverage
                    .by_category
                    .get(&category)
                    .map_or(0.0, |r| r.percent);
            }
        }
        let org_techniques = &view.organization.techniques;
        let breakdown = BreakdownCounts {
            account_detections,
            org_detections: count(org_detections.len()),
            account_techniques: count(own_techniques.len()),
            org_techniques: count(org_techniques.len()),
            overlap_techniques: count(own_techniques.intersection(org_techniques).count()),
        };
        Self {
            id: Uuid::now_v7(),
            organization_id,
            target: SnapshotTarget::CloudOrganization(cloud_organization),
            taken_at,
            attack_version: attack_version.to_string(),
            percent: view.average,
            covered: count(view.in_every.len() + view.in_some.len()),
            total: catalog_size,
            degraded: count(degraded.len()),
            unknown: count(unknown.len()),
            by_category: by_category.map(|sum| {
                if members.is_empty() {
                    0.0
                } else {
                    percent(sum / n)
                }
            }),
            includes_org_detections: !org_detections.is_empty(),
            org_detection_count: breakdown.org_detections,
            org_covered_techniques: breakdown.org_techniques,
            breakdown,
            spread: Some(Spread {
                accounts: count(members.len()),
                min: view.min,
                max: view.max,
            }),
        }
    }
}

/// Whose history a read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryOf {
    /// One cloud account's snapshots.
    Account(Uuid),
    /// A cloud organization's own snapshots (not its members').
    CloudOrganization(Uuid),
}

/// Coverage snapshots. Implemented by `canopy-store`; the retention sweep deletes expired
/// ones through billing's `HistoryStore`.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SnapshotStore: Send + Sync {
    /// Keeps these snapshots (one batch: a scan's worth).
    async fn record(&self, snapshots: Vec<CoverageSnapshot>) -> Result<(), StoreError>;

    /// `of`'s snapshots of `org` taken in `[from, to]`, oldest first, at most `limit`.
    async fn history(
        &self,
        org: OrganizationId,
        of: HistoryOf,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<CoverageSnapshot>, StoreError>;
}
