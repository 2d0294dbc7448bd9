//! At most one job of a kind queued or running on one subject, as a database guarantee: two
//! scans, syncs or connects of one cloud organization requested at once used to pass the
//! service's check side by side and both run. A partial unique index now decides, on both
//! backends, and the store answers the loser with the job already active.
//!
//! Jobs also gain `wrap_up_pending`: a job that failed for good or was cancelled waits there
//! until a worker has run its handler's wrap-up (its cloud organization leaves `discovering`,
//! its members leave `connecting`). A flag on the row, rather than a call after the status
//! change, so that a worker dying in between, or a job ended with no worker at all (a queued
//! job cancelled, a claim giving up on a job whose workers kept dying), is still wrapped up.
//!
//! Rows already duplicated (from before the guarantee) are resolved before the index is
//! built: the oldest active job of each kind and subject stays, the others are cancelled
//! and left to be wrapped up.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    WrapUpPending,
}

const SUPERSEDE: &str = "\
UPDATE jobs SET status = 'cancelled', lease_owner = NULL, lease_expires_at = NULL,
    finished_at = COALESCE(heartbeat_at, run_after), wrap_up_pending = TRUE,
    error = 'cancelled: another job of its kind on the same subject was already queued or running'
WHERE subject IS NOT NULL AND status IN ('queued', 'running')
  AND EXISTS (SELECT 1 FROM jobs older
              WHERE older.organization_id = jobs.organization_id AND older.kind = jobs.kind
                AND older.subject = jobs.subject AND older.status IN ('queued', 'running')
                AND older.id < jobs.id)";

const ONE_ACTIVE: &str = "\
CREATE UNIQUE INDEX jobs_one_active_idx ON jobs (organization_id, kind, subject)
WHERE subject IS NOT NULL AND status IN ('queued', 'running')";

const WRAP_UP: &str = "\
CREATE INDEX jobs_wrap_up_idx ON jobs (finished_at) WHERE wrap_up_pending = TRUE";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(
                        ColumnDef::new(Jobs::WrapUpPending)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for statement in [SUPERSEDE, ONE_ACTIVE, WRAP_UP] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for index in ["jobs_wrap_up_idx", "jobs_one_active_idx"] {
            db.execute_unprepared(&format!("DROP INDEX {index}"))
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .drop_column(Jobs::WrapUpPending)
                    .to_owned(),
            )
            .await
    }
}
