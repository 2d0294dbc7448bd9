//! Coverage history: the snapshots taken after every scan and every custom-detection change,
//! for an account or a cloud organization, as trend lines (any member). Never further back
//! than the plan keeps history.

use canopy_coverage::history::History;
use canopy_coverage::snapshot::{CoverageSnapshot, HistoryOf, SnapshotTarget};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::problem::ApiError;
use super::wire::OrgText;
use super::{ApiTags, BearerAuth};
use crate::state::AppState;

/// Coverage history endpoints.
pub struct CoverageHistoryApi;

/// Percent per category at the snapshot.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CategoryPercentsDto {
    /// Detect.
    pub detect: f64,
    /// Protect.
    pub protect: f64,
    /// Respond.
    pub respond: f64,
}

/// The spec's `coverage_breakdown` counts.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct BreakdownCountsDto {
    /// Own (account-scoped) detections.
    pub account_detections: u32,
    /// Organization detections that counted.
    pub org_detections: u32,
    /// Techniques covered by own detections.
    pub account_techniques: u32,
    /// Techniques covered by organization detections.
    pub org_techniques: u32,
    /// Techniques covered by both.
    pub overlap_techniques: u32,
}

/// A cloud organization's spread over its members at the snapshot.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SpreadDto {
    /// Connected members counted.
    pub accounts: u32,
    /// The least covered member's percent.
    pub min: f64,
    /// The best covered member's percent.
    pub max: f64,
}

/// One point of the trend line.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct SnapshotDto {
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// The ATT&CK version it was measured against.
    pub attack_version: String,
    /// Percent covered (a cloud organization: its members' average).
    pub percent: f64,
    /// Techniques covered (a cloud organization: in at least one member).
    pub covered: u32,
    /// Catalog entries counted.
    pub total: u32,
    /// Techniques only degraded (a cloud organization: in at least one member).
    pub degraded: u32,
    /// Techniques only unknown (a cloud organization: in at least one member).
    pub unknown: u32,
    /// Percent per category.
    pub by_category: CategoryPercentsDto,
    /// Whether organization detections counted.
    pub includes_org_detections: bool,
    /// Organization detections that counted.
    pub org_detection_count: u32,
    /// Techniques organization detections covered.
    pub org_covered_techniques: u32,
    /// Own / organization / overlap counts.
    pub coverage_breakdown: BreakdownCountsDto,
    /// An account's cloud organization at the time, if it was a member.
    pub cloud_organization_id: Option<Uuid>,
    /// A cloud organization's spread over its members.
    pub spread: Option<SpreadDto>,
}

impl From<CoverageSnapshot> for SnapshotDto {
    fn from(s: CoverageSnapshot) -> Self {
        let b = s.breakdown;
        Self {
            taken_at: s.taken_at,
            attack_version: s.attack_version,
            percent: s.percent,
            covered: s.covered,
            total: s.total,
            degraded: s.degraded,
            unknown: s.unknown,
            by_category: CategoryPercentsDto {
                detect: s.by_category[0],
                protect: s.by_category[1],
                respond: s.by_category[2],
            },
            includes_org_detections: s.includes_org_detections,
            org_detection_count: s.org_detection_count,
            org_covered_techniques: s.org_covered_techniques,
            coverage_breakdown: BreakdownCountsDto {
                account_detections: b.account_detections,
                org_detections: b.org_detections,
                account_techniques: b.account_techniques,
                org_techniques: b.org_techniques,
                overlap_techniques: b.overlap_techniques,
            },
            cloud_organization_id: match s.target {
                SnapshotTarget::Account {
                    cloud_organization, ..
                } => cloud_organization,
                SnapshotTarget::CloudOrganization(_) => None,
            },
            spread: s.spread.map(|x| SpreadDto {
                accounts: x.accounts,
                min: x.min,
                max: x.max,
            }),
        }
    }
}

/// A trend line.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CoverageHistoryDto {
    /// The range read.
    pub from: DateTime<Utc>,
    /// Its end.
    pub to: DateTime<Utc>,
    /// Oldest first, at most 1,000.
    pub snapshots: Vec<SnapshotDto>,
    /// More were in the range: narrow it to see the rest.
    pub truncated: bool,
}

impl From<History> for CoverageHistoryDto {
    fn from(h: History) -> Self {
        Self {
            from: h.from,
            to: h.to,
            snapshots: h.snapshots.into_iter().map(Into::into).collect(),
            truncated: h.truncated,
        }
    }
}

#[OpenApi(tag = "ApiTags::Coverage")]
impl CoverageHistoryApi {
    /// An account's coverage over time: a snapshot after every scan and every change to a
    /// detection that reaches it (any member). `to` defaults to now, `from` to as far back as
    /// the plan keeps history; a `from` further back is refused (402 `plan_limit`).
    #[oai(
        path = "/organizations/:org/cloud-accounts/:id/coverage/history",
        method = "get",
        operation_id = "getCloudAccountCoverageHistory"
    )]
    async fn account(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
    ) -> Result<Json<CoverageHistoryDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let history = state
            .coverage
            .history(&access, HistoryOf::Account(id.0), from.0, to.0)
            .await?;
        Ok(Json(history.into()))
    }

    /// A cloud organization's coverage over time (its members' average, spread and the
    /// organization's own contribution), as for an account (any member).
    #[oai(
        path = "/organizations/:org/cloud-organizations/:id/coverage/history",
        method = "get",
        operation_id = "getCloudOrganizationCoverageHistory"
    )]
    async fn cloud_organization(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
    ) -> Result<Json<CoverageHistoryDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let history = state
            .coverage
            .history(&access, HistoryOf::CloudOrganization(id.0), from.0, to.0)
            .await?;
        Ok(Json(history.into()))
    }
}
