//! The storage port of jobs.

use async_trait::async_trait;
use canopy_kernel::id::OrganizationId;
use canopy_kernel::{Page, PageRequest, StoreError};
use canopy_tenancy::audit::NewAuditEvent;
use chrono::{DateTime, Duration, Utc};

use crate::job::{
    Enqueued, Job, JobFilter, JobId, LeaseState, NewJob, Outcome, Progress, WorkerId,
};

/// Where jobs live. Implemented by `canopy-store` on SQLite and PostgreSQL; the contract is the
/// same on both and tested on both.
///
/// Every method returns [`StoreError`] when the store fails; no other error is possible, the
/// outcomes are in the values.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a new queued job and returns it, with its audit event (when it has one) in the
    /// same transaction. A job with a subject MUST NOT be stored while a job of the same kind
    /// on the same subject in the same organization is queued or running, also under concurrent
    /// calls: that one is returned as [`Enqueued::AlreadyActive`] and nothing (no audit event
    /// either) is written.
    async fn enqueue(&self, job: NewJob, now: DateTime<Utc>) -> Result<Enqueued, StoreError>;

    /// Hands one claimable job (see [`Job::is_claimable`]) to `worker` until `now + lease`,
    /// counting an attempt, or `None` when there is none. Two workers never get the same job
    /// while its lease lives. Among claimable jobs, the one whose organization has the fewest
    /// jobs running goes first, then the oldest. A job whose lease lapsed with no attempts
    /// left is failed ("its workers stopped N times") instead of being handed out.
    async fn claim(
        &self,
        worker: &WorkerId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError>;

    /// Hands `worker`, until `now + lease`, one job that ended failed or cancelled and is not
    /// wrapped up yet (see [`crate::JobHandler::wrap_up`]), or `None`. Two workers never hold
    /// the same one at once; one whose worker died is handed out again once the lease lapses.
    /// Every path that ends a job failed or cancelled (a worker's finish, a claim giving up
    /// on a job whose workers kept dying, a cancel of a queued job) MUST leave it to be
    /// wrapped up.
    async fn claim_wrap_up(
        &self,
        worker: &WorkerId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError>;

    /// Records that `worker` wrapped up `job`; false (nothing written) when it no longer held
    /// it.
    async fn wrapped_up(&self, job: JobId, worker: &WorkerId) -> Result<bool, StoreError>;

    /// Extends `worker`'s lease on `job` to `until` and records the heartbeat; says whether a
    /// cancel was requested, or that the worker no longer holds the job.
    async fn renew(
        &self,
        job: JobId,
        worker: &WorkerId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<LeaseState, StoreError>;

    /// Records progress while `worker` holds the job (also a heartbeat).
    async fn report(
        &self,
        job: JobId,
        worker: &WorkerId,
        progress: Progress,
        now: DateTime<Utc>,
    ) -> Result<LeaseState, StoreError>;

    /// Ends `worker`'s hold with `outcome`. Returns false (and writes nothing) when the worker
    /// no longer held the job.
    async fn finish(
        &self,
        job: JobId,
        worker: &WorkerId,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// One job of `org`; `None` for another organization's job.
    async fn get(&self, org: OrganizationId, id: JobId) -> Result<Option<Job>, StoreError>;

    /// `org`'s jobs, newest first.
    async fn list(
        &self,
        org: OrganizationId,
        filter: &JobFilter,
        page: PageRequest,
    ) -> Result<Page<Job>, StoreError>;

    /// Cancels a job of `org`: a queued one at once (status `cancelled`), a running one by
    /// asking its worker (`cancel_requested`); a finished one is returned unchanged. The audit
    /// event is written in the same transaction when anything changed. `None` when `org` has
    /// no such job.
    async fn cancel(
        &self,
        org: OrganizationId,
        id: JobId,
        audit: NewAuditEvent,
        now: DateTime<Utc>,
    ) -> Result<Option<Job>, StoreError>;
}
