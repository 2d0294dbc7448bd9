//! Coverage over time: snapshots taken after every scan ([`SnapshotAfter`] wraps the scan
//! jobs) and after every change to a custom detection, and the history read back for trend
//! lines, no further back than the plan's retention (the retention sweep deletes the rest).

use std::sync::Arc;

use async_trait::async_trait;
use canopy_billing::BillingService;
use canopy_cloud_org::CloudAccountId;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_detection::catalog::Catalog;
use canopy_detection::ports::Target;
use canopy_detection::scan::SCAN_ACCOUNT_KIND;
use canopy_detection::service::{DetectionError, DetectionService};
use canopy_jobs::{Job, JobContext, JobFailure, JobHandler, JobKind};
use canopy_kernel::id::OrganizationId;
use canopy_kernel::{Clock, FieldError, PlanLimitExceeded, StoreError, ValidationErrors};
use canopy_tenancy::policy::Action;
use canopy_tenancy::service::OrgAccess;
use chrono::{DateTime, Duration, Utc};

use crate::account::account_coverage;
use crate::organization::organization_coverage;
use crate::snapshot::{CoverageSnapshot, HistoryOf, SnapshotStore, SnapshotTarget};
use crate::summary::AccountSummary;

/// The most snapshots one history read returns.
pub const MAX_POINTS: u64 = 1_000;

/// How far back a history read goes when not told, on a plan that keeps history for ever.
const DEFAULT_DAYS: i64 = 365;

/// Why a history operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Reading the estate failed, or the target is not the tenant's (`NotFound`), or the
    /// caller may not read.
    #[error(transparent)]
    Detection(#[from] DetectionError),
    /// The range reaches further back than the plan keeps history.
    #[error(transparent)]
    Limit(#[from] PlanLimitExceeded),
    /// The range is malformed.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A history read's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The range read.
    pub from: DateTime<Utc>,
    /// Its end.
    pub to: DateTime<Utc>,
    /// Oldest first.
    pub snapshots: Vec<CoverageSnapshot>,
    /// More than [`MAX_POINTS`] were in the range: narrow it to see the rest.
    pub truncated: bool,
}

/// Takes and reads coverage snapshots.
#[derive(Clone)]
pub struct CoverageHistory {
    detections: DetectionService,
    snapshots: Arc<dyn SnapshotStore>,
    billing: BillingService,
    clock: Arc<dyn Clock>,
}

impl CoverageHistory {
    /// Wires the history over its ports.
    pub fn new(
        detections: DetectionService,
        snapshots: Arc<dyn SnapshotStore>,
        billing: BillingService,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            detections,
            snapshots,
            billing,
            clock,
        }
    }

    /// Takes the snapshots a change to `changed`'s detections calls for (by the system: a
    /// scan job, or after a member's change was stored): an account and, while it is a
    /// member, its cloud organization; a cloud organization and every connected member (what
    /// they inherit changed). Returns how many were kept; 0 when the target is gone.
    pub async fn record_after_change(
        &self,
        org: OrganizationId,
        changed: Target,
    ) -> Result<usize, HistoryError> {
        let now = self.clock.now();
        let catalog = Catalog::embedded();
        let mut batch = Vec::new();
        let cloud_org = match changed {
            Target::Account(id) => {
                let Some((account, effective)) = self
                    .detections
                    .account_estate_of(org, CloudAccountId(id))
                    .await?
                else {
                    return Ok(0);
                };
                let cloud_organization = account
                    .placement
                    .as_ref()
                    .filter(|p| p.left_at.is_none())
                    .map(|p| p.cloud_organization_id);
                batch.push(CoverageSnapshot::of_account(
                    org,
                    SnapshotTarget::Account {
                        id,
                        cloud_organization,
                    },
                    now,
                    &account_coverage(catalog, &effective),
                ));
                cloud_organization.map(|c| (c, false))
            }
            Target::CloudOrganization(id) => Some((id, true)),
        };
        if let Some((id, with_members)) = cloud_org
            && let Some(estate) = self
                .detections
                .organization_estate_of(org, CloudOrganizationId(id))
                .await?
        {
            let computed: Vec<_> = estate
                .accounts
                .iter()
                .map(|(a, effective)| {
                    (
                        a.id.as_uuid(),
                        a.identity.account_key().to_string(),
                        account_coverage(catalog, effective),
                    )
                })
                .collect();
            let summaries: Vec<_> = computed
                .iter()
                .map(|(id, key, coverage)| (*id, key.clone(), AccountSummary::from(coverage)))
                .collect();
            let view = organization_coverage(catalog, &summaries);
            let members: Vec<_> = estate
                .accounts
                .iter()
                .zip(&computed)
                .map(|((_, effective), (_, _, coverage))| (effective.as_slice(), coverage))
                .collect();
            batch.push(CoverageSnapshot::of_organization(
                org,
                id,
                now,
                &members,
                &view,
                catalog.version(),
                u32::try_from(catalog.iaas().count()).unwrap_or(u32::MAX),
            ));
            if with_members {
                batch.extend(computed.iter().map(|(account, _, coverage)| {
                    CoverageSnapshot::of_account(
                        org,
                        SnapshotTarget::Account {
                            id: *account,
                            cloud_organization: Some(id),
                        },
                        now,
                        coverage,
                    )
                }));
            }
        }
        let kept = batch.len();
        self.snapshots.record(batch).await?;
        Ok(kept)
    }

    /// `of`'s snapshots in `[from, to]` (any member). `to` defaults to now, `from` to as far
    /// back as the plan keeps history (a year on a plan that keeps it for ever); a `from`
    /// further back than the plan keeps is refused, as the metrics history is.
    pub async fn history(
        &self,
        access: &OrgAccess,
        of: HistoryOf,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<History, HistoryError> {
        access.require(Action::View).map_err(DetectionError::from)?;
        let target = match of {
            HistoryOf::Account(id) => Target::Account(id),
            HistoryOf::CloudOrganization(id) => Target::CloudOrganization(id),
        };
        self.detections.require_target(access, target).await?;
        let now = self.clock.now();
        let terms = self.billing.terms(access.org_id()).await?;
        let to = to.unwrap_or(now);
        let from = match from {
            Some(from) => {
                terms.history_from(from, now)?;
                from
            }
            None => {
                let days = terms
                    .limits
                    .history_retention_days
                    .map_or(DEFAULT_DAYS, i64::from);
                now - Duration::days(days)
            }
        };
        if from > to {
            return Err(ValidationErrors::single(FieldError::new(
                "from",
                "before_to",
                "from must not be after to",
            ))
            .into());
        }
        let mut snapshots = self
            .snapshots
            .history(access.org_id(), of, from, to, MAX_POINTS + 1)
            .await?;
        let truncated = snapshots.len() as u64 > MAX_POINTS;
        snapshots.truncate(MAX_POINTS as usize);
        Ok(History {
            from,
            to,
            snapshots,
            truncated,
        })
    }
}

/// Runs a scan job and then snapshots what it scanned, so every scan leaves a point on the
/// trend line. A snapshot that fails is logged and noted in the result, not a failed scan:
/// re-running a whole scan to retry one trend point would cost far more than the point.
pub struct SnapshotAfter {
    inner: Arc<dyn JobHandler>,
    history: CoverageHistory,
}

impl SnapshotAfter {
    /// Wraps `inner` (a scan handler).
    pub fn new(inner: Arc<dyn JobHandler>, history: CoverageHistory) -> Self {
        Self { inner, history }
    }
}

#[async_trait]
impl JobHandler for SnapshotAfter {
    fn kind(&self) -> JobKind {
        self.inner.kind()
    }

    async fn run(&self, job: &Job, ctx: &dyn JobContext) -> Result<serde_json::Value, JobFailure> {
        let mut result = self.inner.run(job, ctx).await?;
        let Some(subject) = job.subject else {
            return Ok(result);
        };
        let target = if job.kind.as_str() == SCAN_ACCOUNT_KIND {
            Target::Account(subject)
        } else {
            Target::CloudOrganization(subject)
        };
        let kept = match self
            .history
            .record_after_change(job.organization_id, target)
            .await
        {
            Ok(n) => serde_json::json!(n),
            Err(e) => {
                tracing::warn!(error = %e, job = %job.id, "coverage snapshot after a scan failed");
                serde_json::Value::Null
            }
        };
        if let Some(object) = result.as_object_mut() {
            object.insert("coverageSnapshots".into(), kept);
        }
        Ok(result)
    }

    async fn wrap_up(&self, job: &Job) -> Result<(), JobFailure> {
        self.inner.wrap_up(job).await
    }
}
