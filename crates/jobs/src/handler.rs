//! What runs a job: a handler per kind, given a context through which it reports progress and
//! learns that it should stop.

use async_trait::async_trait;

use crate::job::{Job, JobKind, Progress};

/// Why a handler stopped before finishing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobFailure {
    /// The work cannot succeed as asked (access refused, the subject is gone): fail the job
    /// with this message for people.
    #[error("{0}")]
    Permanent(String),
    /// This attempt failed for a reason that may pass (the store or the provider is down):
    /// queue the job again with a back-off, while attempts remain.
    #[error("{0}")]
    Transient(String),
    /// A member cancelled the job, or the worker lost its lease: stop writing.
    #[error("interrupted")]
    Interrupted,
}

/// The handler's view of the job it runs.
#[async_trait]
pub trait JobContext: Send + Sync {
    /// Records progress. Fails with [`JobFailure::Interrupted`] when the job was cancelled or
    /// this worker lost it, so a handler can use `?` to stop.
    async fn progress(&self, progress: Progress) -> Result<(), JobFailure>;

    /// True once the job should stop (cancel requested, lease lost), as the last heartbeat saw.
    fn interrupted(&self) -> bool;

    /// The signal behind [`JobContext::interrupted`], for work that runs outside the handler's
    /// own loop (a discovery or a scan in an adapter): it checks it before every call it makes.
    fn stop(&self) -> canopy_kernel::Stop;
}

/// Runs the jobs of one kind. Steps must be idempotent: a job may run again from the start
/// after its worker died, and must then neither duplicate nor lose what the first run did.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// The kind this handler runs.
    fn kind(&self) -> JobKind;

    /// Does the work; the returned value is stored as the job's result.
    async fn run(&self, job: &Job, ctx: &dyn JobContext) -> Result<serde_json::Value, JobFailure>;

    /// Brings the job's subject in line with how the job ended, once it failed for good or was
    /// cancelled (`job.status` says which, `job.error` why): whatever [`JobHandler::run`] left
    /// in a running state (a cloud organization `discovering`, members `connecting`) is settled
    /// with the reason and what to do next. Called at least once per such job, possibly again
    /// after a worker died in it, and possibly after a newer job on the same subject started:
    /// it must be idempotent and must not undo that newer job's work. A `Transient` failure
    /// leaves it to be tried again. Nothing to do by default.
    async fn wrap_up(&self, job: &Job) -> Result<(), JobFailure> {
        let _ = job;
        Ok(())
    }
}
