//! The job runner: workers that claim jobs, run their handlers under a renewed lease, and
//! record how each ended (docs/adr/0001-durable-jobs.md). Runs inside `canopy serve` and as
//! `canopy worker`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use canopy_jobs::job::retry_delay;
use canopy_jobs::{
    Job, JobContext, JobFailure, JobHandler, JobStore, LeaseState, Outcome, Progress, WorkerId,
};
use canopy_kernel::{Clock, Stop};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// Timings of the runner.
#[derive(Debug, Clone, Copy)]
pub struct RunnerSettings {
    /// Workers (concurrent jobs).
    pub workers: usize,
    /// Lease length; renewed every third of it.
    pub lease: Duration,
    /// Wait between claims when there is no work.
    pub poll: Duration,
}

/// Claims and runs jobs with the handlers it knows.
#[derive(Clone)]
pub struct JobRunner {
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
    handlers: Arc<HashMap<String, Arc<dyn JobHandler>>>,
    settings: RunnerSettings,
    name: String,
}

/// Stops the runner's workers; each finishes (or gives back) the job it holds first.
#[derive(Debug)]
pub struct RunningWorkers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningWorkers {
    /// Asks every worker to stop after its current job and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Kills the workers at once, as a crash would: their jobs stay leased until the lease
    /// expires. For tests of what survives a dead worker.
    pub fn abort(self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl JobRunner {
    /// A runner over `store` with `handlers` (one per kind). `name` identifies the process in
    /// lease owners (`host:pid`).
    pub fn new(
        store: Arc<dyn JobStore>,
        clock: Arc<dyn Clock>,
        handlers: Vec<Arc<dyn JobHandler>>,
        settings: RunnerSettings,
        name: impl Into<String>,
    ) -> Self {
        let handlers = handlers
            .into_iter()
            .map(|h| (h.kind().as_str().to_string(), h))
            .collect();
        Self {
            store,
            clock,
            handlers: Arc::new(handlers),
            settings,
            name: name.into(),
        }
    }

    /// The default process name: host name (when known) and process id.
    pub fn process_name() -> String {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "canopy".into());
        format!("{host}:{}", std::process::id())
    }

    /// Starts the workers.
    pub fn spawn(&self) -> RunningWorkers {
        let (stop, stopped) = watch::channel(false);
        let tasks = (0..self.settings.workers)
            .map(|n| {
                let runner = self.clone();
                let worker = WorkerId(format!("{}#{n}", self.name));
                let stopped = stopped.clone();
                tokio::spawn(async move { runner.work(worker, stopped).await })
            })
            .collect();
        RunningWorkers { stop, tasks }
    }

    async fn work(self, worker: WorkerId, mut stopped: watch::Receiver<bool>) {
        let lease = chrono::Duration::from_std(self.settings.lease)
            .unwrap_or_else(|_| chrono::Duration::seconds(30));
        while !*stopped.borrow() {
            // Ended jobs first: a subject left `discovering` or `connecting` is what people see.
            match self
                .store
                .claim_wrap_up(&worker, self.clock.now(), lease)
                .await
            {
                Ok(Some(job)) => {
                    self.wrap_up(&worker, job).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(worker = %worker, error = %e, "claiming a wrap-up failed"),
            }
            match self.store.claim(&worker, self.clock.now(), lease).await {
                Ok(Some(job)) => {
                    self.run_one(&worker, job).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(worker = %worker, error = %e, "claiming a job failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.poll) => {}
                _ = stopped.changed() => {}
            }
        }
    }

    /// Runs the wrap-up of a job that failed for good or was cancelled (see
    /// [`JobHandler::wrap_up`]) and records it; a transient failure leaves it for the next
    /// claim after the lease lapses.
    async fn wrap_up(&self, worker: &WorkerId, job: Job) {
        let span = tracing::info_span!("job_wrap_up", id = %job.id, kind = %job.kind);
        async {
            let outcome = match self.handlers.get(job.kind.as_str()) {
                Some(handler) => handler.wrap_up(&job).await,
                None => Ok(()),
            };
            match outcome {
                Ok(()) => {}
                Err(JobFailure::Permanent(error)) => {
                    tracing::error!(%error, "wrapping up the job failed; not retried")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "wrapping up the job failed; retried later");
                    return;
                }
            }
            match self.store.wrapped_up(job.id, worker).await {
                Ok(true) => tracing::info!(status = job.status.as_str(), "job wrapped up"),
                Ok(false) => tracing::warn!("wrap-up lease lost before it was recorded"),
                Err(e) => tracing::warn!(error = %e, "recording a wrap-up failed"),
            }
        }
        .instrument(span)
        .await
    }

    /// Runs one claimed job to its end, renewing its lease meanwhile.
    pub async fn run_one(&self, worker: &WorkerId, job: Job) {
        let span =
            tracing::info_span!("job", id = %job.id, kind = %job.kind, attempt = job.attempts);
        self.run_claimed(worker, job).instrument(span).await;
    }

    async fn run_claimed(&self, worker: &WorkerId, job: Job) {
        let Some(handler) = self.handlers.get(job.kind.as_str()).cloned() else {
            self.end(
                worker,
                &job,
                Outcome::Failed(format!("no worker here runs {} jobs", job.kind)),
            )
            .await;
            return;
        };
        let ctx = Arc::new(Leased {
            store: self.store.clone(),
            clock: self.clock.clone(),
            job: job.id,
            worker: worker.clone(),
            stop: Stop::new(),
            lost: AtomicBool::new(false),
        });
        if job.cancel_requested {
            ctx.stop.request();
        }
        // Aborted when this future ends or is dropped (the worker killed mid-job): a heartbeat
        // must never outlive the work it vouches for.
        let heartbeat = AbortOnDrop({
            let ctx = ctx.clone();
            let every = self.settings.lease / 3;
            let lease = self.settings.lease;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let now = ctx.clock.now();
                    let until = now + chrono::Duration::from_std(lease).unwrap_or_default();
                    match ctx.store.renew(ctx.job, &ctx.worker, now, until).await {
                        Ok(state) => ctx.learn(state),
                        Err(e) => tracing::warn!(error = %e, "renewing a job lease failed"),
                    }
                }
            })
        });
        let result = handler.run(&job, ctx.as_ref()).await;
        drop(heartbeat);
        if ctx.lost.load(Ordering::SeqCst) {
            tracing::warn!("lease lost: another worker owns the job now");
            return;
        }
        let outcome = match result {
            // A job that finished before it saw a cancel request stands as done.
            Ok(value) => Outcome::Succeeded(value),
            Err(JobFailure::Interrupted) => Outcome::Cancelled,
            Err(JobFailure::Permanent(error)) => Outcome::Failed(error),
            Err(JobFailure::Transient(error)) => Outcome::Retry {
                error,
                at: self.clock.now() + retry_delay(job.attempts),
            },
        };
        self.end(worker, &job, outcome).await;
    }

    async fn end(&self, worker: &WorkerId, job: &Job, outcome: Outcome) {
        let label = match &outcome {
            Outcome::Succeeded(_) => "succeeded",
            Outcome::Failed(_) => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::Retry { .. } => "retry",
        };
        match self
            .store
            .finish(job.id, worker, outcome, self.clock.now())
            .await
        {
            Ok(true) => tracing::info!(outcome = label, "job ended"),
            Ok(false) => tracing::warn!("job ended after its lease was lost; not recorded"),
            Err(e) => {
                tracing::warn!(error = %e, "recording a job's end failed; its lease will lapse")
            }
        }
    }
}

/// A task that stops when its handle goes.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The context a handler runs in: progress goes to the store under the lease, and the last
/// heartbeat's news (cancel requested, lease lost) raises the stop signal the handler and the
/// adapters it calls check before each cloud call.
struct Leased {
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
    job: canopy_jobs::JobId,
    worker: WorkerId,
    stop: Stop,
    lost: AtomicBool,
}

impl Leased {
    fn learn(&self, state: LeaseState) {
        match state {
            LeaseState::Held { cancel_requested } => {
                if cancel_requested {
                    self.stop.request();
                }
            }
            LeaseState::Lost => {
                self.lost.store(true, Ordering::SeqCst);
                self.stop.request();
            }
        }
    }
}

#[async_trait]
impl JobContext for Leased {
    async fn progress(&self, progress: Progress) -> Result<(), JobFailure> {
        match self
            .store
            .report(self.job, &self.worker, progress, self.clock.now())
            .await
        {
            Ok(state) => self.learn(state),
            Err(e) => tracing::warn!(error = %e, "recording job progress failed"),
        }
        if self.interrupted() {
            Err(JobFailure::Interrupted)
        } else {
            Ok(())
        }
    }

    fn interrupted(&self) -> bool {
        self.stop.requested()
    }

    fn stop(&self) -> Stop {
        self.stop.clone()
    }
}
