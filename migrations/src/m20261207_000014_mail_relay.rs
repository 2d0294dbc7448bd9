//! The outbox becomes a delivery queue: a relay claims a message under a lease, sends it over
//! SMTP and records the outcome; a temporary failure waits for its next attempt, a refusal is
//! kept with the server's words for an admin. `html_body` holds the HTML alternative,
//! `reference` what the message is about (an invitation's id) so its delivery can be shown
//! beside it. Rows queued before this migration are due at once.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum OutboxMessages {
    Table,
    HtmlBody,
    Reference,
    Attempts,
    NextAttemptAt,
    LeaseOwner,
    LeaseUntil,
    FailedAt,
    LastError,
    SentAt,
}

const DUE_INDEX: &str = "outbox_messages_due_idx";
const REFERENCE_INDEX: &str = "outbox_messages_reference_idx";

fn columns() -> Vec<ColumnDef> {
    vec![
        ColumnDef::new(OutboxMessages::HtmlBody)
            .text()
            .not_null()
            .default("")
            .take(),
        ColumnDef::new(OutboxMessages::Reference)
            .text()
            .null()
            .take(),
        ColumnDef::new(OutboxMessages::Attempts)
            .integer()
            .not_null()
            .default(0)
            .take(),
        ColumnDef::new(OutboxMessages::NextAttemptAt)
            .timestamp_with_time_zone()
            .null()
            .take(),
        ColumnDef::new(OutboxMessages::LeaseOwner)
            .text()
            .null()
            .take(),
        ColumnDef::new(OutboxMessages::LeaseUntil)
            .timestamp_with_time_zone()
            .null()
            .take(),
        ColumnDef::new(OutboxMessages::FailedAt)
            .timestamp_with_time_zone()
            .null()
            .take(),
        ColumnDef::new(OutboxMessages::LastError)
            .text()
            .null()
            .take(),
    ]
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one change at a time.
        for mut column in columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(OutboxMessages::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(DUE_INDEX)
                    .table(OutboxMessages::Table)
                    .col(OutboxMessages::SentAt)
                    .col(OutboxMessages::FailedAt)
                    .col(OutboxMessages::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(REFERENCE_INDEX)
                    .table(OutboxMessages::Table)
                    .col(OutboxMessages::Reference)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [DUE_INDEX, REFERENCE_INDEX] {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(OutboxMessages::Table)
                        .to_owned(),
                )
                .await?;
        }
        for column in columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(OutboxMessages::Table)
                        .drop_column(Alias::new(column.get_column_name()))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
