//! Canopy durable jobs: the backbone of long work (cloud-organization discovery and sync now,
//! detection scans next).
//!
//! A job is a stored row: its kind, the tenant organization it belongs to, the subject it acts
//! on, its status and progress. Workers (inside `canopy serve` or `canopy worker`) claim a job
//! through [`JobStore::claim`], which hands it to exactly one worker under a lease; the worker
//! renews the lease while it runs and reports progress. A worker that dies stops renewing, its
//! lease expires and another worker claims the job again: handlers are written so each step is
//! idempotent, and the job resumes without duplicating what was done.
//!
//! At most one job of a kind is queued or running on one subject: the store guarantees it
//! with a constraint, so concurrent requests queue one job and the others are told which one
//! runs ([`Enqueued::AlreadyActive`]).
//!
//! A job that fails for good or is cancelled is *wrapped up*: its handler's
//! [`JobHandler::wrap_up`] brings the job's subject in line (a discovery's cloud organization
//! leaves `discovering`, a connect's members leave `connecting`). The store marks such a job
//! and hands it to a worker ([`JobStore::claim_wrap_up`]) until one has done it, so a worker
//! that dies in between, a job failed by the claim after its workers kept dying, or a queued
//! job cancelled with no worker running are wrapped up too.
//!
//! Claims are fair across tenants: among the jobs ready to run, the one whose organization has
//! the fewest jobs running goes first, so one tenant's 5,000-account discovery does not starve
//! another's.
//!
//! Ports: [`JobStore`] (storage, implemented by `canopy-store` on SQLite and PostgreSQL).
//! Handlers implement [`JobHandler`]; the runner that drives them lives in the app crate,
//! because it needs a timer.

pub mod handler;
pub mod job;
pub mod ports;
pub mod service;

pub use handler::{JobContext, JobFailure, JobHandler};
pub use job::{
    Enqueued, Job, JobFilter, JobId, JobKind, JobStatus, LeaseState, NewJob, Outcome, Progress,
    Throttling, WorkerId,
};
pub use ports::JobStore;
pub use service::{JobError, JobService};
