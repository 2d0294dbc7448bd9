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
    Job, JobFilter, JobId, JobKind, JobStatus, LeaseState, NewJob, Outcome, Progress, Throttling,
    WorkerId,
};
pub use ports::JobStore;
pub use service::{JobError, JobService};
