//! Connect tokens (web-initiated) and connection requests (CLI-initiated): single-use,
//! short-lived, stored only as digests.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ConnectionTokens {
    Table,
    Digest,
    Kind,
    OrganizationId,
    CreatedBy,
    Input,
    Status,
    ExpiresAt,
    CloudAccountId,
    CreatedAt,
    UsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ConnectionTokens::Table)
                    .col(
                        ColumnDef::new(ConnectionTokens::Digest)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ConnectionTokens::Kind).string().not_null())
                    .col(
                        ColumnDef::new(ConnectionTokens::OrganizationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConnectionTokens::CreatedBy)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ConnectionTokens::Input).json_binary().null())
                    .col(ColumnDef::new(ConnectionTokens::Status).string().not_null())
                    .col(
                        ColumnDef::new(ConnectionTokens::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConnectionTokens::CloudAccountId)
                            .uuid()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ConnectionTokens::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConnectionTokens::UsedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ConnectionTokens::Table, ConnectionTokens::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .check(
                        Expr::col(ConnectionTokens::Kind)
                            .is_in(["connect_token", "connection_request"]),
                    )
                    .check(Expr::col(ConnectionTokens::Status).is_in([
                        "pending",
                        "used",
                        "cancelled",
                    ]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("connection_tokens_org_idx")
                    .table(ConnectionTokens::Table)
                    .col(ConnectionTokens::OrganizationId)
                    .to_owned(),
            )
            .await
    }
}
