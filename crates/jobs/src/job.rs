//! What a job is: its identity, its state machine, its progress and its lease.

use canopy_kernel::id::{OrganizationId, UserId};
use canopy_kernel::validation::{FieldError, ValidationErrors};
use canopy_tenancy::audit::NewAuditEvent;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

canopy_kernel::define_id!(
    /// One job.
    JobId
);

/// What a job does, as a stable dotted name (`cloud_organization.discover`). The crates that
/// own the work declare their kinds; this crate only stores and routes them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobKind(String);

impl JobKind {
    /// What a kind looks like: lower-case words joined by `.` and `_`, at most 64 characters.
    pub const PATTERN: &'static str = "^[a-z][a-z_]*(\\.[a-z][a-z_]*)*$";

    /// A kind from its stable name; refuses names that break [`JobKind::PATTERN`].
    pub fn parse(raw: &str) -> Result<Self, ValidationErrors> {
        let valid = !raw.is_empty()
            && raw.len() <= 64
            && raw.split('.').all(|part| {
                part.starts_with(|c: char| c.is_ascii_lowercase())
                    && part.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            });
        if valid {
            Ok(Self(raw.to_string()))
        } else {
            Err(ValidationErrors::single(FieldError::new(
                "kind",
                "pattern",
                "must be lower-case words joined by '.' or '_'",
            )))
        }
    }

    /// A kind known at compile time. Panics on a malformed name: a programming error.
    pub fn from_static(raw: &'static str) -> Self {
        match Self::parse(raw) {
            Ok(kind) => kind,
            Err(_) => panic!("malformed job kind {raw:?}"),
        }
    }

    /// The stable name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job is in its life. `queued -> running -> succeeded | failed | cancelled`; a
/// running job whose lease expired is claimed again (it stays `running`, with one more
/// attempt); a retryable failure goes back to `queued` with a later `run_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// Held by a worker under a lease.
    Running,
    /// Finished its work.
    Succeeded,
    /// Gave up; `error` says why.
    Failed,
    /// Stopped at a member's request.
    Cancelled,
}

impl JobStatus {
    /// Every status.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// Stable stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Reads a stored name.
    pub fn from_stored(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// True once nothing more will happen to the job.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// Time lost to a provider's throttling so far, shown as "delayed by throttling".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    /// Calls retried after a throttling answer.
    pub retries: u64,
    /// Milliseconds spent waiting before those retries.
    pub waited_ms: u64,
}

/// How far a job has come, as its handler last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The step under way (`queued`, `organization`, `hierarchy`, `accounts`, `saving`, ...).
    pub phase: String,
    /// Units of work done in this phase.
    pub done: u64,
    /// Units of work known so far, when known.
    pub total: Option<u64>,
    /// One line for people.
    pub message: Option<String>,
    /// Throttling met so far.
    #[serde(default)]
    pub throttling: Throttling,
}

impl Progress {
    /// The progress of a job nobody has started.
    pub fn queued() -> Self {
        Self {
            phase: "queued".into(),
            ..Self::default()
        }
    }

    /// A phase with a count.
    pub fn phase(phase: &str, done: u64, total: Option<u64>) -> Self {
        Self {
            phase: phase.into(),
            done,
            total,
            ..Self::default()
        }
    }
}

/// The name a worker claims jobs under (host, process and a per-worker number), so a lease
/// says who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkerId(pub String);

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Id.
    pub id: JobId,
    /// The tenant organization it works for.
    pub organization_id: OrganizationId,
    /// What it does.
    pub kind: JobKind,
    /// What it acts on (a cloud organization, a cloud account), when anything.
    pub subject: Option<Uuid>,
    /// Its input, as its kind defines it.
    pub payload: serde_json::Value,
    /// Where it is.
    pub status: JobStatus,
    /// How far it came.
    pub progress: Progress,
    /// What it produced, once succeeded (counts, ids), as its kind defines it.
    pub result: Option<serde_json::Value>,
    /// Why it failed (or why its last attempt did).
    pub error: Option<String>,
    /// Times a worker claimed it.
    pub attempts: u32,
    /// Claims allowed before a job whose workers keep dying is failed.
    pub max_attempts: u32,
    /// A member asked to cancel it while it ran; the worker stops at its next heartbeat.
    pub cancel_requested: bool,
    /// The worker holding it, while running.
    pub lease_owner: Option<WorkerId>,
    /// When the lease ends unless renewed.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The worker's last sign of life.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Not to be claimed before this (retries back off).
    pub run_after: DateTime<Utc>,
    /// Who asked for it (none for scheduled work).
    pub created_by: Option<UserId>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When a worker first claimed it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal status.
    pub finished_at: Option<DateTime<Utc>>,
}

impl Job {
    /// True when no worker holds a live lease on it at `now`: queued and due, or running with
    /// an expired lease (its worker died).
    pub fn is_claimable(&self, now: DateTime<Utc>) -> bool {
        match self.status {
            JobStatus::Queued => self.run_after <= now,
            JobStatus::Running => self.lease_expires_at.is_none_or(|until| until < now),
            _ => false,
        }
    }
}

/// A job to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The tenant organization.
    pub organization_id: OrganizationId,
    /// What it does.
    pub kind: JobKind,
    /// What it acts on.
    pub subject: Option<Uuid>,
    /// Its input.
    pub payload: serde_json::Value,
    /// Who asked.
    pub created_by: Option<UserId>,
    /// Claims allowed (at least 1).
    pub max_attempts: u32,
    /// The audit event of the request that queued it, written in the same transaction.
    pub audit: Option<NewAuditEvent>,
}

impl NewJob {
    /// Claims allowed by default: a job survives two dead workers.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

    /// A job of `kind` for `org` on `subject` with `payload`.
    pub fn new(
        organization_id: OrganizationId,
        kind: JobKind,
        subject: Option<Uuid>,
        payload: serde_json::Value,
    ) -> Self {
        Self {
            organization_id,
            kind,
            subject,
            payload,
            created_by: None,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            audit: None,
        }
    }

    /// Records `event` with the job, atomically: a queued request is never unaudited.
    pub fn audited(mut self, event: NewAuditEvent) -> Self {
        self.audit = Some(event);
        self
    }

    /// Records who asked.
    pub fn by(mut self, user: UserId) -> Self {
        self.created_by = Some(user);
        self
    }

    /// The stored job, queued at `now`.
    pub fn into_job(self, now: DateTime<Utc>) -> Job {
        Job {
            id: JobId::new(),
            organization_id: self.organization_id,
            kind: self.kind,
            subject: self.subject,
            payload: self.payload,
            status: JobStatus::Queued,
            progress: Progress::queued(),
            result: None,
            error: None,
            attempts: 0,
            max_attempts: self.max_attempts.max(1),
            cancel_requested: false,
            lease_owner: None,
            lease_expires_at: None,
            heartbeat_at: None,
            run_after: now,
            created_by: self.created_by,
            created_at: now,
            started_at: None,
            finished_at: None,
        }
    }
}

/// What queuing a job did. At most one job of a kind is queued or running on one subject
/// (a database guarantee, so concurrent requests cannot start two): a second request gets the
/// one already there.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    /// Stored, queued.
    Queued(Job),
    /// Nothing stored: this job of the same kind on the same subject is queued or running.
    AlreadyActive(Job),
}

impl Enqueued {
    /// The job queued, or the one already active.
    pub fn job(&self) -> &Job {
        match self {
            Enqueued::Queued(job) | Enqueued::AlreadyActive(job) => job,
        }
    }

    /// The job queued; `Err` with the id of the active one when nothing was queued.
    pub fn queued(self) -> Result<Job, JobId> {
        match self {
            Enqueued::Queued(job) => Ok(job),
            Enqueued::AlreadyActive(job) => Err(job.id),
        }
    }
}

/// Which jobs a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only this kind.
    pub kind: Option<JobKind>,
    /// Only these statuses (any when empty).
    pub statuses: Vec<JobStatus>,
    /// Only jobs on this subject.
    pub subject: Option<Uuid>,
}

/// What a worker learns when it renews its lease or reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// The worker still holds the job; `cancel_requested` asks it to stop.
    Held {
        /// A member asked to cancel.
        cancel_requested: bool,
    },
    /// The lease expired and another worker claimed the job, or it was finished elsewhere:
    /// this worker must stop without writing more.
    Lost,
}

/// How a worker ends its hold on a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The work is done; what it produced.
    Succeeded(serde_json::Value),
    /// The work failed for good.
    Failed(String),
    /// The work stopped because a member asked.
    Cancelled,
    /// The attempt failed in a way a later one may not: queue it again, not before `at`.
    /// Past `max_attempts` this becomes [`Outcome::Failed`].
    Retry {
        /// Why this attempt failed.
        error: String,
        /// Not before.
        at: DateTime<Utc>,
    },
}

/// The delay before retry number `attempt` (1-based): 30 s doubling, at most 15 minutes.
pub fn retry_delay(attempt: u32) -> Duration {
    let secs = 30_i64.saturating_mul(1_i64 << attempt.saturating_sub(1).min(5));
    Duration::seconds(secs.min(900))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_dotted_lower_case_names() {
        assert!(JobKind::parse("cloud_organization.discover").is_ok());
        assert!(JobKind::parse("scan").is_ok());
        for bad in [
            "",
            "Discover",
            "a..b",
            ".a",
            "a.",
            "a-b",
            "a.1",
            &"x".repeat(65),
        ] {
            assert!(JobKind::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn statuses_round_trip_and_know_when_they_end() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::from_stored(s.as_str()), Some(s));
        }
        assert!(!JobStatus::Queued.is_terminal());
        assert!(!JobStatus::Running.is_terminal());
        assert!(JobStatus::Cancelled.is_terminal());
    }

    #[test]
    fn a_job_is_claimable_when_due_or_when_its_lease_lapsed() {
        let now = Utc::now();
        let mut job = NewJob::new(
            OrganizationId::new(),
            JobKind::from_static("test.job"),
            None,
            serde_json::json!({}),
        )
        .into_job(now);
        assert!(job.is_claimable(now));
        job.run_after = now + Duration::seconds(5);
        assert!(!job.is_claimable(now));
        job.status = JobStatus::Running;
        job.lease_expires_at = Some(now + Duration::seconds(10));
        assert!(!job.is_claimable(now));
        assert!(job.is_claimable(now + Duration::seconds(11)));
        job.status = JobStatus::Succeeded;
        assert!(!job.is_claimable(now + Duration::days(1)));
    }

    #[test]
    fn retries_back_off_and_stop_growing() {
        assert_eq!(retry_delay(1), Duration::seconds(30));
        assert_eq!(retry_delay(2), Duration::seconds(60));
        assert_eq!(retry_delay(4), Duration::seconds(240));
        assert_eq!(retry_delay(30), Duration::seconds(900));
    }
}
