//! Detections (the spec's `detections` with `detection_scope`, `applies_to_all_accounts` and
//! `applies_to_account_ids`): a control found in an account or a cloud organization, or declared
//! by a person, with the ATT&CK techniques it addresses in `detection_techniques` (one row per
//! technique and category, so listings filter by technique or tactic in SQL on both backends).
//!
//! The scope CHECK is the spec's, verbatim: an account detection names an account, an
//! organization detection names a cloud organization. `target_id` repeats whichever of the two
//! the scope names, so `(target_id, source, resource_key)` can be unique: a re-scan updates a
//! control in place, never adds it twice, also when two scans race.

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
enum CloudOrganizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Detections {
    Table,
    Id,
    OrganizationId,
    DetectionScope,
    CloudAccountId,
    CloudOrganizationId,
    AppliesToAllAccounts,
    AppliesToAccountIds,
    AppliesToNodeIds,
    TargetId,
    Source,
    ResourceKey,
    Name,
    Description,
    Status,
    Reason,
    Advice,
    Evidence,
    FirstSeenAt,
    LastSeenAt,
    LastScanJobId,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum DetectionTechniques {
    Table,
    DetectionId,
    TechniqueId,
    Category,
    Value,
}

const STATUSES: [&str; 4] = ["active", "degraded", "absent", "unknown"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Detections as D;
        let at = |c: D| {
            ColumnDef::new(c)
                .timestamp_with_time_zone()
                .not_null()
                .to_owned()
        };
        manager
            .create_table(
                Table::create()
                    .table(D::Table)
                    .col(ColumnDef::new(D::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(D::OrganizationId).uuid().not_null())
                    .col(
                        ColumnDef::new(D::DetectionScope)
                            .string_len(20)
                            .not_null()
                            .default("account"),
                    )
                    .col(ColumnDef::new(D::CloudAccountId).uuid().null())
                    .col(ColumnDef::new(D::CloudOrganizationId).uuid().null())
                    .col(
                        ColumnDef::new(D::AppliesToAllAccounts)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(ColumnDef::new(D::AppliesToAccountIds).json_binary().null())
                    .col(ColumnDef::new(D::AppliesToNodeIds).json_binary().null())
                    .col(ColumnDef::new(D::TargetId).uuid().not_null())
                    .col(ColumnDef::new(D::Source).string_len(64).not_null())
                    .col(ColumnDef::new(D::ResourceKey).string_len(2048).not_null())
                    .col(ColumnDef::new(D::Name).string_len(255).not_null())
                    .col(ColumnDef::new(D::Description).text().null())
                    .col(ColumnDef::new(D::Status).string_len(20).not_null())
                    .col(ColumnDef::new(D::Reason).text().null())
                    .col(ColumnDef::new(D::Advice).text().null())
                    .col(ColumnDef::new(D::Evidence).json_binary().not_null())
                    .col(at(D::FirstSeenAt))
                    .col(
                        ColumnDef::new(D::LastSeenAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(D::LastScanJobId).uuid().null())
                    .col(ColumnDef::new(D::CreatedBy).uuid().null())
                    .col(at(D::CreatedAt))
                    .col(at(D::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(D::Table, D::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(D::Table, D::CloudAccountId)
                            .to(CloudAccounts::Table, CloudAccounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(D::Table, D::CloudOrganizationId)
                            .to(CloudOrganizations::Table, CloudOrganizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .check(Expr::col(D::DetectionScope).is_in(["account", "organization"]))
                    // The spec's detection_scope_check.
                    .check(
                        Expr::col(D::DetectionScope)
                            .eq("account")
                            .and(Expr::col(D::CloudAccountId).is_not_null())
                            .or(Expr::col(D::DetectionScope)
                                .eq("organization")
                                .and(Expr::col(D::CloudOrganizationId).is_not_null())),
                    )
                    .check(Expr::col(D::Status).is_in(STATUSES))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("detections_identity_key")
                    .table(D::Table)
                    .col(D::TargetId)
                    .col(D::Source)
                    .col(D::ResourceKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_detections_org", D::OrganizationId),
            ("idx_detections_cloud_org", D::CloudOrganizationId),
            ("idx_detections_cloud_account", D::CloudAccountId),
            ("idx_detections_scope", D::DetectionScope),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(D::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }

        use DetectionTechniques as T;
        manager
            .create_table(
                Table::create()
                    .table(T::Table)
                    .col(ColumnDef::new(T::DetectionId).uuid().not_null())
                    .col(ColumnDef::new(T::TechniqueId).string_len(16).not_null())
                    .col(ColumnDef::new(T::Category).string_len(16).not_null())
                    .col(ColumnDef::new(T::Value).string_len(16).not_null())
                    .primary_key(
                        Index::create()
                            .col(T::DetectionId)
                            .col(T::TechniqueId)
                            .col(T::Category),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(T::Table, T::DetectionId)
                            .to(D::Table, D::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .check(Expr::col(T::Category).is_in(["detect", "protect", "respond"]))
                    .check(Expr::col(T::Value).is_in(["minimal", "partial", "significant"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_detection_techniques_technique")
                    .table(T::Table)
                    .col(T::TechniqueId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
