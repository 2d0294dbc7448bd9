//! The job runner against the real store, on SQLite and PostgreSQL: jobs run to their end with
//! progress, a worker that dies mid-job loses its lease and another worker finishes the job
//! without redoing what was done, a cancel stops a running job, a transient failure backs off.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use canopy_app::worker::{JobRunner, RunnerSettings};
use canopy_jobs::{
    Job, JobContext, JobFailure, JobHandler, JobId, JobKind, JobStatus, JobStore, NewJob, Progress,
};
use canopy_kernel::SystemClock;
use canopy_kernel::id::OrganizationId;
use canopy_store::testing::{audit, now, user_with_organization};
use canopy_store::{Store, contract};
use canopy_tenancy::AuditAction;
use serde_json::{Value, json};

/// A handler of `steps` idempotent steps: each step is recorded once per job (a set keyed by
/// job and step, as an upsert keyed by provider ids would be), and progress is reported after
/// each. With `stall_first_attempt`, the first attempt stops after two steps and hangs, as a
/// worker that dies would; with `fail_transiently`, every attempt fails as a throttled call.
#[derive(Default)]
struct Steps {
    steps: u64,
    stall_first_attempt: bool,
    fail_transiently: bool,
    done: Mutex<HashMap<JobId, Vec<u64>>>,
    runs: Mutex<HashMap<JobId, u32>>,
}

#[async_trait]
impl JobHandler for Steps {
    fn kind(&self) -> JobKind {
        JobKind::from_static("test.steps")
    }

    async fn run(&self, job: &Job, ctx: &dyn JobContext) -> Result<Value, JobFailure> {
        *self.runs.lock().unwrap().entry(job.id).or_default() += 1;
        if self.fail_transiently {
            return Err(JobFailure::Transient("throttled out".into()));
        }
        for step in 0..self.steps {
            if self.stall_first_attempt && job.attempts == 1 && step == 2 {
                futures::future::pending::<()>().await;
            }
            {
                let mut done = self.done.lock().unwrap();
                let steps = done.entry(job.id).or_default();
                if !steps.contains(&step) {
                    steps.push(step);
                }
            }
            ctx.progress(Progress::phase("steps", step + 1, Some(self.steps)))
                .await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(json!({"steps": self.steps}))
    }
}

fn runner(
    store: &Store,
    handler: Arc<Steps>,
    workers: usize,
    lease_ms: u64,
    name: &str,
) -> JobRunner {
    JobRunner::new(
        Arc::new(store.jobs()),
        Arc::new(SystemClock),
        vec![handler],
        RunnerSettings {
            workers,
            lease: Duration::from_millis(lease_ms),
            poll: Duration::from_millis(50),
        },
        name,
    )
}

async fn org(store: &Store) -> OrganizationId {
    user_with_organization(store, "runner").await.unwrap().1.id
}

async fn enqueue(store: &Store, org: OrganizationId) -> Job {
    store
        .jobs()
        .enqueue(
            NewJob::new(org, JobKind::from_static("test.steps"), None, json!({})),
            now(),
        )
        .await
        .unwrap()
        .job()
        .clone()
}

/// Polls until `job` reaches a status that satisfies `done`, for at most 20 s.
async fn wait_for(
    store: &Store,
    org: OrganizationId,
    id: JobId,
    done: impl Fn(&Job) -> bool,
) -> Job {
    for _ in 0..400 {
        let job = store.jobs().get(org, id).await.unwrap().unwrap();
        if done(&job) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} did not get there in time");
}

async fn workers_run_every_job_to_its_end_with_progress(store: Store) {
    let org = org(&store).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(enqueue(&store, org).await.id);
    }
    let handler = Arc::new(Steps {
        steps: 4,
        ..Default::default()
    });
    let running = runner(&store, handler.clone(), 2, 3000, "a").spawn();
    for id in &ids {
        let job = wait_for(&store, org, *id, |j| j.status.is_terminal()).await;
        assert_eq!(job.status, JobStatus::Succeeded);
        assert_eq!(job.result, Some(json!({"steps": 4})));
        assert_eq!(job.progress.done, 4);
        assert_eq!(job.progress.total, Some(4));
        assert_eq!(job.attempts, 1);
    }
    running.stop().await;
    assert!(handler.done.lock().unwrap().values().all(|s| s.len() == 4));
}

async fn a_job_whose_worker_died_is_finished_by_another_without_redoing_steps(store: Store) {
    let org = org(&store).await;
    let job = enqueue(&store, org).await;
    let handler = Arc::new(Steps {
        steps: 5,
        stall_first_attempt: true,
        ..Default::default()
    });
    let first = runner(&store, handler.clone(), 1, 1500, "first").spawn();
    wait_for(&store, org, job.id, |j| j.progress.done == 2).await;
    // The first process dies: no more heartbeats, no finish.
    first.abort();
    let second = runner(&store, handler.clone(), 1, 1500, "second").spawn();
    let done = wait_for(&store, org, job.id, |j| j.status.is_terminal()).await;
    second.stop().await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempts, 2);
    assert_eq!(handler.runs.lock().unwrap()[&job.id], 2);
    // Every step recorded exactly once across both attempts: nothing lost, nothing twice.
    let steps = handler.done.lock().unwrap()[&job.id].clone();
    assert_eq!(steps, vec![0, 1, 2, 3, 4]);
}

async fn a_cancelled_running_job_stops(store: Store) {
    let org = org(&store).await;
    let job = enqueue(&store, org).await;
    let handler = Arc::new(Steps {
        steps: 10_000,
        ..Default::default()
    });
    let running = runner(&store, handler.clone(), 1, 600, "a").spawn();
    wait_for(&store, org, job.id, |j| j.progress.done >= 3).await;
    store
        .jobs()
        .cancel(org, job.id, audit(org, AuditAction::JobCancelled), now())
        .await
        .unwrap();
    let cancelled = wait_for(&store, org, job.id, |j| j.status.is_terminal()).await;
    running.stop().await;
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(cancelled.progress.done < 10_000);
}

async fn a_transient_failure_is_queued_again_with_a_back_off(store: Store) {
    let org = org(&store).await;
    let job = enqueue(&store, org).await;
    let handler = Arc::new(Steps {
        fail_transiently: true,
        ..Default::default()
    });
    let running = runner(&store, handler.clone(), 1, 3000, "a").spawn();
    let retried = wait_for(&store, org, job.id, |j| {
        j.status == JobStatus::Queued && j.attempts == 1
    })
    .await;
    running.stop().await;
    assert_eq!(retried.error.as_deref(), Some("throttled out"));
    assert!(retried.run_after >= now() + chrono::Duration::seconds(20));
    assert_eq!(handler.runs.lock().unwrap()[&job.id], 1);
}

async fn a_job_of_a_kind_nobody_runs_fails_with_that_reason(store: Store) {
    let org = org(&store).await;
    let job = store
        .jobs()
        .enqueue(
            NewJob::new(org, JobKind::from_static("test.unknown"), None, json!({})),
            now(),
        )
        .await
        .unwrap()
        .job()
        .clone();
    let running = runner(&store, Arc::new(Steps::default()), 1, 3000, "a").spawn();
    let failed = wait_for(&store, org, job.id, |j| j.status.is_terminal()).await;
    running.stop().await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.error.unwrap().contains("test.unknown"));
}

contract!(
    workers_run_every_job_to_its_end_with_progress,
    a_job_whose_worker_died_is_finished_by_another_without_redoing_steps,
    a_cancelled_running_job_stops,
    a_transient_failure_is_queued_again_with_a_back_off,
    a_job_of_a_kind_nobody_runs_fails_with_that_reason,
);
