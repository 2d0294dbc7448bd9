//! An organization detection may reach the subtrees of some nodes *except* others beneath
//! them: an organization policy enforced at the organization and turned off at one folder
//! holds everywhere but under that folder. Before, such a policy was marked degraded for the
//! whole organization, so projects where it held lost its credit; now the folders it is off
//! at are stored beside the nodes it reaches (`applies_to_excluded_node_ids`, null when none).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Detections {
    Table,
    AppliesToExcludedNodeIds,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Detections::Table)
                    .add_column(
                        ColumnDef::new(Detections::AppliesToExcludedNodeIds)
                            .json_binary()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Detections::Table)
                    .drop_column(Detections::AppliesToExcludedNodeIds)
                    .to_owned(),
            )
            .await
    }
}
