//! Cloud accounts (AWS accounts, GCP projects), their tags and health checks, and the
//! organizations' External IDs.

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
    OrganizationId,
    Provider,
    AccountKey,
    RoleArn,
    Region,
    ProjectNumber,
    Alias,
    StackName,
    SesConfigurationSet,
    SesDomains,
    Features,
    Environment,
    Tags,
    Status,
    LastSyncedAt,
    LastError,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CloudAccountTags {
    Table,
    CloudAccountId,
    Key,
    Value,
}

#[derive(DeriveIden)]
enum CloudAccountChecks {
    Table,
    Id,
    CloudAccountId,
    CheckedAt,
    FailureKind,
    Message,
    DurationMs,
}

#[derive(DeriveIden)]
enum ExternalIds {
    Table,
    Id,
    OrganizationId,
    Value,
    CreatedAt,
    RetiredAt,
}

fn ts<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .take()
}

fn ts_null<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .null()
        .take()
}

fn opt_text<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).string().null().take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CloudAccounts::Table)
                    .col(
                        ColumnDef::new(CloudAccounts::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(CloudAccounts::OrganizationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(CloudAccounts::Provider).string().not_null())
                    .col(
                        ColumnDef::new(CloudAccounts::AccountKey)
                            .string()
                            .not_null(),
                    )
                    .col(opt_text(CloudAccounts::RoleArn))
                    .col(opt_text(CloudAccounts::Region))
                    .col(opt_text(CloudAccounts::ProjectNumber))
                    .col(opt_text(CloudAccounts::Alias))
                    .col(opt_text(CloudAccounts::StackName))
                    .col(opt_text(CloudAccounts::SesConfigurationSet))
                    .col(
                        ColumnDef::new(CloudAccounts::SesDomains)
                            .json_binary()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CloudAccounts::Features)
                            .json_binary()
                            .not_null(),
                    )
                    .col(opt_text(CloudAccounts::Environment))
                    .col(ColumnDef::new(CloudAccounts::Tags).json_binary().not_null())
                    .col(ColumnDef::new(CloudAccounts::Status).string().not_null())
                    .col(ts_null(CloudAccounts::LastSyncedAt))
                    .col(ColumnDef::new(CloudAccounts::LastError).text().null())
                    .col(ColumnDef::new(CloudAccounts::CreatedBy).uuid().not_null())
                    .col(ts(CloudAccounts::CreatedAt))
                    .col(ts(CloudAccounts::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(CloudAccounts::Table, CloudAccounts::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .check(Expr::col(CloudAccounts::Provider).is_in(["aws", "gcp"]))
                    .check(Expr::col(CloudAccounts::Status).is_in(["active", "inactive", "error"]))
                    .to_owned(),
            )
            .await?;
        // One AWS account or GCP project belongs to at most one organization (spec MVP
        // decision), enforced here so concurrent connects cannot both succeed.
        manager
            .create_index(
                Index::create()
                    .name("cloud_accounts_provider_key_uq")
                    .table(CloudAccounts::Table)
                    .col(CloudAccounts::Provider)
                    .col(CloudAccounts::AccountKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("cloud_accounts_org_idx")
                    .table(CloudAccounts::Table)
                    .col(CloudAccounts::OrganizationId)
                    .col(CloudAccounts::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CloudAccountTags::Table)
                    .col(
                        ColumnDef::new(CloudAccountTags::CloudAccountId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(CloudAccountTags::Key).string().not_null())
                    .col(ColumnDef::new(CloudAccountTags::Value).string().not_null())
                    .primary_key(
                        Index::create()
                            .col(CloudAccountTags::CloudAccountId)
                            .col(CloudAccountTags::Key),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CloudAccountTags::Table, CloudAccountTags::CloudAccountId)
                            .to(CloudAccounts::Table, CloudAccounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("cloud_account_tags_key_idx")
                    .table(CloudAccountTags::Table)
                    .col(CloudAccountTags::Key)
                    .col(CloudAccountTags::Value)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CloudAccountChecks::Table)
                    .col(
                        ColumnDef::new(CloudAccountChecks::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(CloudAccountChecks::CloudAccountId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ts(CloudAccountChecks::CheckedAt))
                    .col(opt_text(CloudAccountChecks::FailureKind))
                    .col(ColumnDef::new(CloudAccountChecks::Message).text().null())
                    .col(
                        ColumnDef::new(CloudAccountChecks::DurationMs)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                CloudAccountChecks::Table,
                                CloudAccountChecks::CloudAccountId,
                            )
                            .to(CloudAccounts::Table, CloudAccounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("cloud_account_checks_account_idx")
                    .table(CloudAccountChecks::Table)
                    .col(CloudAccountChecks::CloudAccountId)
                    .col(CloudAccountChecks::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ExternalIds::Table)
                    .col(
                        ColumnDef::new(ExternalIds::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ExternalIds::OrganizationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ExternalIds::Value)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ts(ExternalIds::CreatedAt))
                    .col(ts_null(ExternalIds::RetiredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ExternalIds::Table, ExternalIds::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Exactly one current External ID per organization, even when two first requests race.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX external_ids_current_uq ON external_ids (organization_id) \
                 WHERE retired_at IS NULL",
            )
            .await?;
        Ok(())
    }
}
