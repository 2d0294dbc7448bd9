//! What migration 6 left out, found while building on it: a cloud account that left its cloud
//! organization is flagged rather than disconnected (`organization_left_at`), and a GCP
//! organization keeps its customer's service-account key sealed (AES-256-GCM, the operator's
//! key named by id so keys can rotate) or the service account Canopy impersonates.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CloudAccounts {
    Table,
    OrganizationLeftAt,
}

#[derive(DeriveIden)]
enum CloudOrganizations {
    Table,
    GcpCredentialsSealed,
    GcpCredentialsKeyId,
    GcpServiceAccount,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(CloudAccounts::Table)
                    .add_column(
                        ColumnDef::new(CloudAccounts::OrganizationLeftAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // One column per statement: SQLite's ALTER TABLE takes one at a time.
        let columns = [
            ColumnDef::new(CloudOrganizations::GcpCredentialsSealed)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(CloudOrganizations::GcpCredentialsKeyId)
                .string_len(64)
                .null()
                .to_owned(),
            ColumnDef::new(CloudOrganizations::GcpServiceAccount)
                .string_len(320)
                .null()
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(CloudOrganizations::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
