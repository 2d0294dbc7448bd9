//! [`JobStore`] on SQLite and PostgreSQL: durable jobs leased to one worker at a time
//! (docs/adr/0001-durable-jobs.md).
//!
//! A claim picks the next claimable job and takes its lease in one transaction. On PostgreSQL
//! the pick is `FOR UPDATE SKIP LOCKED`, so concurrent workers (in one process or many) each get
//! a different job without waiting on each other; on SQLite the single pooled connection runs
//! one transaction at a time, and the claim's guarded `UPDATE` holds the same rule. Every write
//! a worker makes afterwards (renew, report, finish) is guarded by `lease_owner = worker AND
//! status = 'running'`, so a worker whose lease lapsed and was claimed again writes nothing.
//!
//! At most one job of a kind is queued or running on one subject: the partial unique index
//! `jobs_one_active_idx` (migration 12) decides, and [`insert_job`] answers a conflicting
//! insert with the job that holds the place, in whatever transaction it runs (the cloud
//! organization's creation and the connect's member claims queue theirs atomically).
//!
//! Every path that ends a job failed or cancelled sets `wrap_up_pending`; a worker takes such
//! a job with [`JobStore::claim_wrap_up`] and clears the flag once its handler wrapped it up.

use async_trait::async_trait;
use canopy_jobs::{
    Enqueued, Job, JobFilter, JobId, JobKind, JobStatus, JobStore, LeaseState, NewJob, Outcome,
    Progress, WorkerId,
};
use canopy_kernel::id::{OrganizationId, UserId};
use canopy_kernel::{Page, PageRequest, StoreError};
use canopy_tenancy::audit::NewAuditEvent;
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Set, Statement, TransactionTrait,
};
use serde_json::json;

use crate::entity::jobs;
use crate::error::{corrupt, db_err};
use crate::sql::placeholders;
use crate::tenancy::insert_audit;
use crate::txn::Abort;

crate::repository!(
    /// Durable jobs.
    JobRepository,
    jobs
);

/// The next claimable job: queued and due, or running with a lapsed lease. Fair across
/// tenants: the organization with the fewest jobs running (live leases) first, then the
/// earliest due. `{p1}` is now.
const CLAIM_SQL: &str = "\
SELECT j.* FROM jobs j
WHERE (j.status = 'queued' AND j.run_after <= {p1})
   OR (j.status = 'running' AND j.lease_expires_at < {p1})
ORDER BY (SELECT COUNT(*) FROM jobs r
          WHERE r.organization_id = j.organization_id
            AND r.status = 'running' AND r.lease_expires_at >= {p1}),
         j.run_after, j.id
LIMIT 1";

/// Claims that found a job out of attempts before one to hand out; bounds the claim loop.
const MAX_SKIPS: usize = 16;

fn stored_progress(progress: &Progress) -> serde_json::Value {
    serde_json::to_value(progress).unwrap_or_else(|_| json!({"phase": progress.phase}))
}

fn job_from(m: jobs::Model) -> Result<Job, StoreError> {
    Ok(Job {
        id: JobId(m.id),
        organization_id: OrganizationId(m.organization_id),
        kind: JobKind::parse(&m.kind).map_err(|_| corrupt("job kind", &m.kind))?,
        subject: m.subject,
        payload: m.payload,
        status: JobStatus::from_stored(&m.status)
            .ok_or_else(|| corrupt("job status", &m.status))?,
        progress: serde_json::from_value(m.progress.clone())
            .map_err(|_| corrupt("job progress", &m.progress.to_string()))?,
        result: m.result,
        error: m.error,
        attempts: u32::try_from(m.attempts).unwrap_or(0),
        max_attempts: u32::try_from(m.max_attempts).unwrap_or(1),
        cancel_requested: m.cancel_requested,
        lease_owner: m.lease_owner.map(WorkerId),
        lease_expires_at: m.lease_expires_at,
        heartbeat_at: m.heartbeat_at,
        run_after: m.run_after,
        created_by: m.created_by.map(UserId),
        created_at: m.created_at,
        started_at: m.started_at,
        finished_at: m.finished_at,
    })
}

fn job_row(job: &Job) -> jobs::ActiveModel {
    jobs::ActiveModel {
        id: Set(job.id.as_uuid()),
        organization_id: Set(job.organization_id.as_uuid()),
        kind: Set(job.kind.as_str().to_string()),
        subject: Set(job.subject),
        payload: Set(job.payload.clone()),
        status: Set(job.status.as_str().to_string()),
        progress: Set(stored_progress(&job.progress)),
        result: Set(job.result.clone()),
        error: Set(job.error.clone()),
        attempts: Set(i32::try_from(job.attempts).unwrap_or(i32::MAX)),
        max_attempts: Set(i32::try_from(job.max_attempts).unwrap_or(i32::MAX)),
        cancel_requested: Set(job.cancel_requested),
        lease_owner: Set(job.lease_owner.as_ref().map(|w| w.0.clone())),
        lease_expires_at: Set(job.lease_expires_at),
        heartbeat_at: Set(job.heartbeat_at),
        run_after: Set(job.run_after),
        created_by: Set(job.created_by.map(|u| u.as_uuid())),
        created_at: Set(job.created_at),
        started_at: Set(job.started_at),
        finished_at: Set(job.finished_at),
        wrap_up_pending: Set(false),
    }
}

/// Tries to store `job` queued; when a job of its kind on its subject is already queued or
/// running, stores nothing and returns that one. Runs on any connection or transaction, so a
/// record and the job working on it commit together.
pub(crate) async fn insert_job<C: ConnectionTrait>(db: &C, job: Job) -> Result<Enqueued, DbErr> {
    let backend = db.get_database_backend();
    // A job in the place can end between the refused insert and the read of it: try again.
    for _ in 0..3 {
        let mut insert = jobs::Entity::insert(job_row(&job)).build(backend);
        // No conflict target: the only other unique rule on jobs is the partial index of one
        // active job per kind and subject, which both backends then skip instead of failing
        // (and PostgreSQL waits for a concurrent insert to commit or roll back first).
        insert.sql.push_str(" ON CONFLICT DO NOTHING");
        if db.execute_raw(insert).await?.rows_affected() == 1 {
            return Ok(Enqueued::Queued(job));
        }
        let Some(subject) = job.subject else {
            return Err(DbErr::Custom(format!("job id {} taken", job.id)));
        };
        let active = jobs::Entity::find()
            .filter(jobs::Column::OrganizationId.eq(job.organization_id.as_uuid()))
            .filter(jobs::Column::Kind.eq(job.kind.as_str()))
            .filter(jobs::Column::Subject.eq(subject))
            .filter(jobs::Column::Status.is_in(ACTIVE))
            .one(db)
            .await?;
        if let Some(active) = active {
            return job_from(active)
                .map(Enqueued::AlreadyActive)
                .map_err(|e| DbErr::Custom(e.to_string()));
        }
    }
    Err(DbErr::Custom(format!(
        "the {} job on {:?} kept changing while being queued",
        job.kind, job.subject
    )))
}

/// The statuses of a job still to run or running.
const ACTIVE: [&str; 2] = ["queued", "running"];

/// The rows `worker` holds: `job`, running, leased to it.
fn held_by(job: JobId, worker: &WorkerId) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(jobs::Column::Id.eq(job.as_uuid()))
        .add(jobs::Column::Status.eq(JobStatus::Running.as_str()))
        .add(jobs::Column::LeaseOwner.eq(worker.0.as_str()))
}

impl JobRepository {
    /// Reads whether the job `worker` just touched asks to be cancelled.
    async fn lease_state(&self, job: JobId, touched: u64) -> Result<LeaseState, StoreError> {
        if touched != 1 {
            return Ok(LeaseState::Lost);
        }
        let cancel_requested = jobs::Entity::find_by_id(job.as_uuid())
            .select_only()
            .column(jobs::Column::CancelRequested)
            .into_tuple::<bool>()
            .one(self.db())
            .await
            .map_err(db_err)?
            .unwrap_or(false);
        Ok(LeaseState::Held { cancel_requested })
    }
}

#[async_trait]
impl JobStore for JobRepository {
    async fn enqueue(&self, mut job: NewJob, now: DateTime<Utc>) -> Result<Enqueued, StoreError> {
        let audit = job.audit.take();
        let job = job.into_job(now);
        match audit {
            None => insert_job(self.db(), job).await.map_err(db_err),
            Some(audit) => self
                .store()
                .write_locked(&[job.organization_id], move |locked| {
                    Box::pin(async move {
                        let queued = insert_job(locked.txn(), job).await?;
                        // A refused request changed nothing, so it has nothing to audit.
                        if matches!(queued, Enqueued::Queued(_)) {
                            insert_audit(locked, audit).await?;
                        }
                        Ok::<_, Abort<StoreError>>(queued)
                    })
                })
                .await?
                .ok_or_else(|| StoreError::internal("organization vanished")),
        }
    }

    async fn claim(
        &self,
        worker: &WorkerId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError> {
        let backend = self.db().get_database_backend();
        let mut sql = placeholders(backend, CLAIM_SQL, 1);
        if self.store().is_postgres() {
            sql.push_str(" FOR UPDATE OF j SKIP LOCKED");
        }
        for _ in 0..MAX_SKIPS {
            let txn = self.db().begin().await.map_err(db_err)?;
            let picked = jobs::Entity::find()
                .from_raw_sql(Statement::from_sql_and_values(
                    backend,
                    sql.clone(),
                    [now.into()],
                ))
                .one(&txn)
                .await
                .map_err(db_err)?;
            let Some(row) = picked else {
                txn.commit().await.map_err(db_err)?;
                return Ok(None);
            };
            let lapsed = row.status == JobStatus::Running.as_str();
            if lapsed && row.attempts >= row.max_attempts {
                // Its workers died `attempts` times: another claim would likely die the same way.
                jobs::Entity::update_many()
                    .col_expr(
                        jobs::Column::Status,
                        Expr::value(JobStatus::Failed.as_str()),
                    )
                    .col_expr(
                        jobs::Column::Error,
                        Expr::value(format!(
                            "its worker stopped {} times before finishing; not retried",
                            row.attempts
                        )),
                    )
                    .col_expr(
                        jobs::Column::LeaseOwner,
                        Expr::value(Option::<String>::None),
                    )
                    .col_expr(
                        jobs::Column::LeaseExpiresAt,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    )
                    .col_expr(jobs::Column::FinishedAt, Expr::value(now))
                    .col_expr(jobs::Column::WrapUpPending, Expr::value(true))
                    .filter(jobs::Column::Id.eq(row.id))
                    .exec(&txn)
                    .await
                    .map_err(db_err)?;
                txn.commit().await.map_err(db_err)?;
                continue;
            }
            let claimed = jobs::Entity::update_many()
                .col_expr(
                    jobs::Column::Status,
                    Expr::value(JobStatus::Running.as_str()),
                )
                .col_expr(jobs::Column::LeaseOwner, Expr::value(worker.0.clone()))
                .col_expr(jobs::Column::LeaseExpiresAt, Expr::value(now + lease))
                .col_expr(jobs::Column::HeartbeatAt, Expr::value(now))
                .col_expr(
                    jobs::Column::Attempts,
                    Expr::col(jobs::Column::Attempts).add(1),
                )
                .col_expr(
                    jobs::Column::StartedAt,
                    Expr::value(row.started_at.unwrap_or(now)),
                )
                .filter(jobs::Column::Id.eq(row.id))
                .filter(jobs::Column::Status.eq(row.status.clone()))
                .filter(jobs::Column::Attempts.eq(row.attempts))
                .exec(&txn)
                .await
                .map_err(db_err)?;
            if claimed.rows_affected != 1 {
                txn.rollback().await.map_err(db_err)?;
                continue;
            }
            let row = jobs::Entity::find_by_id(row.id)
                .one(&txn)
                .await
                .map_err(db_err)?
                .ok_or_else(|| StoreError::internal("claimed job vanished"))?;
            txn.commit().await.map_err(db_err)?;
            return job_from(row).map(Some);
        }
        Ok(None)
    }

    async fn claim_wrap_up(
        &self,
        worker: &WorkerId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError> {
        for _ in 0..MAX_SKIPS {
            let mut pick = jobs::Entity::find()
                .filter(jobs::Column::WrapUpPending.eq(true))
                .filter(
                    sea_orm::Condition::any()
                        .add(jobs::Column::LeaseExpiresAt.is_null())
                        .add(jobs::Column::LeaseExpiresAt.lt(now)),
                )
                .order_by_asc(jobs::Column::FinishedAt)
                .limit(1);
            let txn = self.db().begin().await.map_err(db_err)?;
            if self.store().is_postgres() {
                pick = pick.lock_with_behavior(
                    sea_orm::sea_query::LockType::Update,
                    sea_orm::sea_query::LockBehavior::SkipLocked,
                );
            }
            let Some(row) = pick.one(&txn).await.map_err(db_err)? else {
                txn.commit().await.map_err(db_err)?;
                return Ok(None);
            };
            // Guarded by the lease read: on SQLite a second worker's claim of the same row
            // touches nothing and moves on.
            let mut guard = sea_orm::Condition::all()
                .add(jobs::Column::Id.eq(row.id))
                .add(jobs::Column::WrapUpPending.eq(true));
            guard = match row.lease_expires_at {
                None => guard.add(jobs::Column::LeaseExpiresAt.is_null()),
                Some(until) => guard.add(jobs::Column::LeaseExpiresAt.eq(until)),
            };
            let taken = jobs::Entity::update_many()
                .col_expr(jobs::Column::LeaseOwner, Expr::value(worker.0.clone()))
                .col_expr(jobs::Column::LeaseExpiresAt, Expr::value(now + lease))
                .filter(guard)
                .exec(&txn)
                .await
                .map_err(db_err)?;
            if taken.rows_affected != 1 {
                txn.rollback().await.map_err(db_err)?;
                continue;
            }
            txn.commit().await.map_err(db_err)?;
            return job_from(row).map(Some);
        }
        Ok(None)
    }

    async fn wrapped_up(&self, job: JobId, worker: &WorkerId) -> Result<bool, StoreError> {
        let done = jobs::Entity::update_many()
            .col_expr(jobs::Column::WrapUpPending, Expr::value(false))
            .col_expr(
                jobs::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                jobs::Column::LeaseExpiresAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(jobs::Column::Id.eq(job.as_uuid()))
            .filter(jobs::Column::WrapUpPending.eq(true))
            .filter(jobs::Column::LeaseOwner.eq(worker.0.as_str()))
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected == 1)
    }

    async fn renew(
        &self,
        job: JobId,
        worker: &WorkerId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<LeaseState, StoreError> {
        let touched = jobs::Entity::update_many()
            .col_expr(jobs::Column::LeaseExpiresAt, Expr::value(until))
            .col_expr(jobs::Column::HeartbeatAt, Expr::value(now))
            .filter(held_by(job, worker))
            .exec(self.db())
            .await
            .map_err(db_err)?;
        self.lease_state(job, touched.rows_affected).await
    }

    async fn report(
        &self,
        job: JobId,
        worker: &WorkerId,
        progress: Progress,
        now: DateTime<Utc>,
    ) -> Result<LeaseState, StoreError> {
        let touched = jobs::Entity::update_many()
            .col_expr(
                jobs::Column::Progress,
                Expr::value(stored_progress(&progress)),
            )
            .col_expr(jobs::Column::HeartbeatAt, Expr::value(now))
            .filter(held_by(job, worker))
            .exec(self.db())
            .await
            .map_err(db_err)?;
        self.lease_state(job, touched.rows_affected).await
    }

    async fn finish(
        &self,
        job: JobId,
        worker: &WorkerId,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        let mut query = jobs::Entity::find().filter(held_by(job, worker));
        if self.store().is_postgres() {
            query = query.lock_exclusive();
        }
        let Some(row) = query.one(&txn).await.map_err(db_err)? else {
            txn.commit().await.map_err(db_err)?;
            return Ok(false);
        };
        let out_of_attempts = row.attempts >= row.max_attempts;
        let mut update = jobs::ActiveModel {
            id: sea_orm::ActiveValue::Unchanged(row.id),
            lease_owner: Set(None),
            lease_expires_at: Set(None),
            ..Default::default()
        };
        match outcome {
            Outcome::Succeeded(result) => {
                update.status = Set(JobStatus::Succeeded.as_str().into());
                update.result = Set(Some(result));
                update.error = Set(None);
                update.finished_at = Set(Some(now));
            }
            Outcome::Cancelled => {
                update.status = Set(JobStatus::Cancelled.as_str().into());
                update.finished_at = Set(Some(now));
                update.wrap_up_pending = Set(true);
            }
            Outcome::Failed(error) => {
                update.status = Set(JobStatus::Failed.as_str().into());
                update.error = Set(Some(error));
                update.finished_at = Set(Some(now));
                update.wrap_up_pending = Set(true);
            }
            Outcome::Retry { error, .. } if out_of_attempts => {
                update.status = Set(JobStatus::Failed.as_str().into());
                update.error = Set(Some(format!(
                    "{error} (gave up after {} attempts)",
                    row.attempts
                )));
                update.finished_at = Set(Some(now));
                update.wrap_up_pending = Set(true);
            }
            Outcome::Retry { error, at } => {
                update.status = Set(JobStatus::Queued.as_str().into());
                update.error = Set(Some(error));
                update.run_after = Set(at);
            }
        }
        update.update(&txn).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn get(&self, org: OrganizationId, id: JobId) -> Result<Option<Job>, StoreError> {
        jobs::Entity::find_by_id(id.as_uuid())
            .filter(jobs::Column::OrganizationId.eq(org.as_uuid()))
            .one(self.db())
            .await
            .map_err(db_err)?
            .map(job_from)
            .transpose()
    }

    async fn list(
        &self,
        org: OrganizationId,
        filter: &JobFilter,
        page: PageRequest,
    ) -> Result<Page<Job>, StoreError> {
        let mut query = jobs::Entity::find()
            .filter(jobs::Column::OrganizationId.eq(org.as_uuid()))
            .order_by_desc(jobs::Column::Id)
            .limit(u64::from(page.limit) + 1);
        if let Some(after) = page.after {
            query = query.filter(jobs::Column::Id.lt(after.0));
        }
        if let Some(kind) = &filter.kind {
            query = query.filter(jobs::Column::Kind.eq(kind.as_str()));
        }
        if !filter.statuses.is_empty() {
            query = query
                .filter(jobs::Column::Status.is_in(filter.statuses.iter().map(|s| s.as_str())));
        }
        if let Some(subject) = filter.subject {
            query = query.filter(jobs::Column::Subject.eq(subject));
        }
        let rows = query.all(self.db()).await.map_err(db_err)?;
        let page = Page::from_overfetch(rows, page.limit, |m| m.id);
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(job_from)
                .collect::<Result<_, _>>()?,
            next: page.next,
        })
    }

    async fn cancel(
        &self,
        org: OrganizationId,
        id: JobId,
        audit: NewAuditEvent,
        now: DateTime<Utc>,
    ) -> Result<Option<Job>, StoreError> {
        let row = self
            .store()
            .write_locked(&[org], move |locked| {
                Box::pin(async move {
                    let Some(row) = jobs::Entity::find_by_id(id.as_uuid())
                        .filter(jobs::Column::OrganizationId.eq(org.as_uuid()))
                        .one(locked.txn())
                        .await?
                    else {
                        return Ok(None);
                    };
                    let status = row.status.clone();
                    let mut update = jobs::ActiveModel {
                        id: sea_orm::ActiveValue::Unchanged(row.id),
                        ..Default::default()
                    };
                    if status == JobStatus::Queued.as_str() {
                        update.status = Set(JobStatus::Cancelled.as_str().into());
                        update.finished_at = Set(Some(now));
                        update.wrap_up_pending = Set(true);
                    } else if status == JobStatus::Running.as_str() && !row.cancel_requested {
                        update.cancel_requested = Set(true);
                    } else {
                        return Ok(Some(row));
                    }
                    let row = update.update(locked.txn()).await?;
                    insert_audit(locked, audit).await?;
                    Ok::<_, Abort<StoreError>>(Some(row))
                })
            })
            .await?
            .flatten();
        row.map(job_from).transpose()
    }
}

/// Operator and test support: how many jobs each status holds, for one organization or all.
impl JobRepository {
    /// Counts jobs by status (all organizations when `org` is `None`).
    pub async fn count_by_status(
        &self,
        org: Option<OrganizationId>,
    ) -> Result<Vec<(JobStatus, u64)>, StoreError> {
        let mut query = jobs::Entity::find()
            .select_only()
            .column(jobs::Column::Status)
            .column_as(jobs::Column::Id.count(), "n")
            .group_by(jobs::Column::Status);
        if let Some(org) = org {
            query = query.filter(jobs::Column::OrganizationId.eq(org.as_uuid()));
        }
        let rows: Vec<(String, i64)> = query.into_tuple().all(self.db()).await.map_err(db_err)?;
        rows.into_iter()
            .map(|(s, n)| {
                JobStatus::from_stored(&s)
                    .map(|s| (s, crate::sql::count(n)))
                    .ok_or_else(|| corrupt("job status", &s))
            })
            .collect()
    }
}
