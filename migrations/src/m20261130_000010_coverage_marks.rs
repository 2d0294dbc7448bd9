//! Each account's own detections folded into one byte per IaaS catalog entry (best active
//! value, degraded, unknown, categories), rewritten in the transaction of every write to that
//! account's detections. The organization-wide coverage view reads one small row per member
//! instead of every detection of the estate. `attack_version` says which catalog the
//! positions refer to: marks folded against another catalog are folded again on read.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum CloudAccounts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum CoverageMarks {
    Table,
    CloudAccountId,
    OrganizationId,
    AttackVersion,
    Detections,
    Marks,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use CoverageMarks as M;
        manager
            .create_table(
                Table::create()
                    .table(M::Table)
                    .col(
                        ColumnDef::new(M::CloudAccountId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(M::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(M::AttackVersion).string_len(16).not_null())
                    .col(
                        ColumnDef::new(M::Detections)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(M::Marks).blob().not_null())
                    .col(
                        ColumnDef::new(M::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(M::Table, M::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(M::Table, M::CloudAccountId)
                            .to(CloudAccounts::Table, CloudAccounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CoverageMarks::Table).to_owned())
            .await
    }
}
