//! Long work of an organization (discovery, sync, scans) and how far it came.

use canopy_jobs::{Job, JobFilter, JobId, JobKind};
use canopy_kernel::PageRequest;
use canopy_kernel::page::Page;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::problem::ApiError;
use super::wire::{IdText, JobKindText, JobStatusDto, OrgText};
use super::{ApiTags, BearerAuth};
use crate::state::AppState;

/// Job endpoints.
pub struct JobsApi;

#[OpenApi(tag = "ApiTags::Jobs")]
impl JobsApi {
    /// The organization's jobs, newest first, filtered by kind, status and subject (any member).
    #[oai(
        path = "/organizations/:org/jobs",
        method = "get",
        operation_id = "listJobs"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        kind: Query<Option<JobKindText>>,
        status: Query<Option<JobStatusDto>>,
        subject: Query<Option<IdText>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        cursor: Query<Option<IdText>>,
    ) -> Result<Json<JobPage>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let filter = JobFilter {
            kind: kind.0.as_deref().map(JobKind::parse).transpose()?,
            statuses: status
                .0
                .map(JobStatusDto::into_domain)
                .into_iter()
                .collect(),
            subject: subject
                .0
                .as_deref()
                .map(|s| canopy_kernel::Cursor::decode(s, "subject").map(|c| c.0))
                .transpose()?,
        };
        let page = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        Ok(Json(state.jobs.list(&access, &filter, page).await?.into()))
    }

    /// One job with its progress (any member).
    #[oai(
        path = "/organizations/:org/jobs/:id",
        method = "get",
        operation_id = "getJob"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
    ) -> Result<Json<JobDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        Ok(Json(state.jobs.get(&access, JobId(id.0)).await?.into()))
    }

    /// Cancels a job (admin or owner): a queued job stops at once, a running one at its next
    /// heartbeat (`cancelRequested` until then); a finished job is returned as it is.
    #[oai(
        path = "/organizations/:org/jobs/:id/cancel",
        method = "post",
        operation_id = "cancelJob"
    )]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
    ) -> Result<Json<JobDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        Ok(Json(state.jobs.cancel(&access, JobId(id.0)).await?.into()))
    }
}

/// Provider calls retried after throttling, and the time spent waiting.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ThrottlingDto {
    /// Calls retried.
    pub retries: u64,
    /// Milliseconds waited.
    pub waited_ms: u64,
}

/// How far a job has come.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ProgressDto {
    /// The step under way.
    pub phase: String,
    /// Units done in this step.
    pub done: u64,
    /// Units known so far.
    pub total: Option<u64>,
    /// One line for people.
    pub message: Option<String>,
    /// Delays from the provider's throttling.
    pub throttling: ThrottlingDto,
}

/// A job.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct JobDto {
    /// Id.
    pub id: Uuid,
    /// What it does (`cloud_organization.discover`, ...).
    pub kind: String,
    /// What it acts on, when anything.
    pub subject: Option<Uuid>,
    /// Where it is.
    pub status: JobStatusDto,
    /// How far it came.
    pub progress: ProgressDto,
    /// What it produced, once succeeded.
    pub result: Option<serde_json::Value>,
    /// Why it failed, or why its last attempt did.
    pub error: Option<String>,
    /// Times a worker took it up.
    pub attempts: u32,
    /// A cancel was asked and the worker has not stopped yet.
    pub cancel_requested: bool,
    /// Who asked for it (absent for scheduled work).
    pub created_by: Option<Uuid>,
    /// Queued at.
    pub created_at: DateTime<Utc>,
    /// First taken up at.
    pub started_at: Option<DateTime<Utc>>,
    /// Ended at.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker's last sign of life.
    pub heartbeat_at: Option<DateTime<Utc>>,
}

impl From<Job> for JobDto {
    fn from(j: Job) -> Self {
        Self {
            id: j.id.as_uuid(),
            kind: j.kind.as_str().to_string(),
            subject: j.subject,
            status: j.status.into(),
            progress: ProgressDto {
                phase: j.progress.phase,
                done: j.progress.done,
                total: j.progress.total,
                message: j.progress.message,
                throttling: ThrottlingDto {
                    retries: j.progress.throttling.retries,
                    waited_ms: j.progress.throttling.waited_ms,
                },
            },
            result: j.result,
            error: j.error,
            attempts: j.attempts,
            cancel_requested: j.cancel_requested,
            created_by: j.created_by.map(|u| u.as_uuid()),
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            heartbeat_at: j.heartbeat_at,
        }
    }
}

/// A page of jobs.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct JobPage {
    /// Newest first.
    pub items: Vec<JobDto>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

impl From<Page<Job>> for JobPage {
    fn from(p: Page<Job>) -> Self {
        Self {
            next_cursor: p.next.map(|c| c.encode()),
            items: p.items.into_iter().map(Into::into).collect(),
        }
    }
}
