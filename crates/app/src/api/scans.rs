//! Scans on demand: a cloud organization's own controls, its member accounts, one account;
//! and where a cloud organization's latest scans stand, per scanner.

use canopy_cloud_org::CloudAccountId;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_jobs::Job;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;
use uuid::Uuid;

use super::jobs::JobDto;
use super::problem::ApiError;
use super::wire::OrgText;
use super::{ApiTags, BearerAuth};
use crate::state::AppState;

/// Scan endpoints.
pub struct ScansApi;

#[derive(ApiResponse)]
enum ScanQueued {
    /// Scan queued: follow it at `GET .../jobs/{id}`.
    #[oai(status = 202)]
    Accepted(Json<JobDto>),
}

/// How one scanner did in the latest organization scan.
#[derive(Debug, Object, Deserialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
#[serde(rename_all = "camelCase")]
pub struct ScannerStatusDto {
    /// The scanner (a detection source id).
    pub source: String,
    /// Controls found present.
    pub found: u32,
    /// Of which degraded.
    pub degraded: u32,
    /// Controls gone since the scan before.
    pub gone: u32,
    /// Why it could not read, if it could not (the detections stay `unknown`).
    pub error: Option<String>,
    /// What to do about it.
    pub advice: Option<String>,
    /// Provider calls it made.
    pub calls: u32,
}

/// A cloud organization's latest scans.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ScanStatusDto {
    /// The latest organization-level scan.
    pub organization: Option<JobDto>,
    /// Its scanners, once it finished.
    pub scanners: Vec<ScannerStatusDto>,
    /// The latest scan of the member accounts (its result lists each account).
    pub members: Option<JobDto>,
    /// Accounts the latest members scan covered, once it finished.
    pub accounts_scanned: Option<u32>,
    /// Of which with a scanner that could not read.
    pub accounts_with_errors: Option<u32>,
}

fn scanners(job: &Option<Job>) -> Vec<ScannerStatusDto> {
    job.as_ref()
        .and_then(|j| j.result.as_ref())
        .and_then(|r| r.get("sources"))
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default()
}

fn count(job: &Option<Job>, field: &str) -> Option<u32> {
    job.as_ref()
        .and_then(|j| j.result.as_ref())
        .and_then(|r| r.get(field))
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

#[OpenApi(tag = "ApiTags::Detections")]
impl ScansApi {
    /// Scans the cloud organization's own controls (org trail, delegated GuardDuty, Security
    /// Hub, Config aggregator, SCPs; GCP sinks, SCC, org policies, asset feeds) as a job
    /// (admin or owner; Pro or Enterprise). 409 when one is already queued or running.
    #[oai(
        path = "/organizations/:org/cloud-organizations/:id/scan",
        method = "post",
        operation_id = "scanCloudOrganization"
    )]
    async fn scan_cloud_org(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
    ) -> Result<ScanQueued, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let job = state
            .detections
            .scan_cloud_org(&access, CloudOrganizationId(id.0))
            .await?;
        Ok(ScanQueued::Accepted(Json(job.into())))
    }

    /// Scans every connected member account, a bounded number at a time, as one job with
    /// progress per account (admin or owner; Pro or Enterprise).
    #[oai(
        path = "/organizations/:org/cloud-organizations/:id/scan/members",
        method = "post",
        operation_id = "scanCloudOrganizationMembers"
    )]
    async fn scan_members(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
    ) -> Result<ScanQueued, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let job = state
            .detections
            .scan_members(&access, CloudOrganizationId(id.0))
            .await?;
        Ok(ScanQueued::Accepted(Json(job.into())))
    }

    /// Scans one account's own controls as a job (admin or owner; every plan).
    #[oai(
        path = "/organizations/:org/cloud-accounts/:id/scan",
        method = "post",
        operation_id = "scanCloudAccount"
    )]
    async fn scan_account(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
    ) -> Result<ScanQueued, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let job = state
            .detections
            .scan_account(&access, CloudAccountId(id.0))
            .await?;
        Ok(ScanQueued::Accepted(Json(job.into())))
    }

    /// The latest organization and members scans, with per-scanner results (any member).
    #[oai(
        path = "/organizations/:org/cloud-organizations/:id/scan-status",
        method = "get",
        operation_id = "getCloudOrganizationScanStatus"
    )]
    async fn scan_status(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
    ) -> Result<Json<ScanStatusDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let status = state
            .detections
            .scan_status(&access, CloudOrganizationId(id.0))
            .await?;
        Ok(Json(ScanStatusDto {
            scanners: scanners(&status.organization),
            accounts_scanned: count(&status.members, "accounts"),
            accounts_with_errors: count(&status.members, "accountsWithErrors"),
            organization: status.organization.map(Into::into),
            members: status.members.map(Into::into),
        }))
    }
}
