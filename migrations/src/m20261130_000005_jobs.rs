//! Durable jobs (docs/adr/0001-durable-jobs.md): long work stored as rows, leased to one worker
//! at a time. The status machine is a CHECK; a running job always names its worker and lease.
//! Indexes serve the claim (status, run_after), the per-organization running count of the fair
//! claim, and the organization's listing (newest first, filtered by kind and subject).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    OrganizationId,
    Kind,
    Subject,
    Payload,
    Status,
    Progress,
    Result,
    Error,
    Attempts,
    MaxAttempts,
    CancelRequested,
    LeaseOwner,
    LeaseExpiresAt,
    HeartbeatAt,
    RunAfter,
    CreatedBy,
    CreatedAt,
    StartedAt,
    FinishedAt,
}

const STATUSES: [&str; 5] = ["queued", "running", "succeeded", "failed", "cancelled"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(ColumnDef::new(Jobs::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Jobs::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(Jobs::Kind).string_len(64).not_null())
                    .col(ColumnDef::new(Jobs::Subject).uuid().null())
                    .col(ColumnDef::new(Jobs::Payload).json_binary().not_null())
                    .col(ColumnDef::new(Jobs::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Jobs::Progress).json_binary().not_null())
                    .col(ColumnDef::new(Jobs::Result).json_binary().null())
                    .col(ColumnDef::new(Jobs::Error).text().null())
                    .col(ColumnDef::new(Jobs::Attempts).integer().not_null())
                    .col(ColumnDef::new(Jobs::MaxAttempts).integer().not_null())
                    .col(ColumnDef::new(Jobs::CancelRequested).boolean().not_null())
                    .col(ColumnDef::new(Jobs::LeaseOwner).string_len(255).null())
                    .col(
                        ColumnDef::new(Jobs::LeaseExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Jobs::HeartbeatAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Jobs::RunAfter)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Jobs::CreatedBy).uuid().null())
                    .col(
                        ColumnDef::new(Jobs::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Jobs::StartedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Jobs::FinishedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Jobs::Table, Jobs::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .check(Expr::col(Jobs::Status).is_in(STATUSES))
                    .check(Expr::col(Jobs::Attempts).gte(0))
                    .check(Expr::col(Jobs::MaxAttempts).gte(1))
                    // A running job is held: it names its worker and its lease.
                    .check(
                        Expr::col(Jobs::Status)
                            .ne("running")
                            .or(Expr::col(Jobs::LeaseOwner)
                                .is_not_null()
                                .and(Expr::col(Jobs::LeaseExpiresAt).is_not_null())),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_claim_idx")
                    .table(Jobs::Table)
                    .col(Jobs::Status)
                    .col(Jobs::RunAfter)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_org_status_idx")
                    .table(Jobs::Table)
                    .col(Jobs::OrganizationId)
                    .col(Jobs::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_org_id_idx")
                    .table(Jobs::Table)
                    .col(Jobs::OrganizationId)
                    .col(Jobs::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_org_subject_idx")
                    .table(Jobs::Table)
                    .col(Jobs::OrganizationId)
                    .col(Jobs::Subject)
                    .to_owned(),
            )
            .await
    }
}
