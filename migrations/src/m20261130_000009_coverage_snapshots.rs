//! Coverage snapshots (the spec's `coverage_snapshots` with `includes_org_detections`,
//! `org_detection_count`, `org_covered_techniques`, `cloud_organization_id` and
//! `coverage_breakdown`): one account's or one cloud organization's coverage at one moment,
//! for trend lines. A snapshot of an account names it (and the cloud organization it inherited
//! from, if any); a snapshot of a cloud organization names only the cloud organization. The
//! CHECK holds that, as the detections' scope CHECK does.

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
enum CoverageSnapshots {
    Table,
    Id,
    OrganizationId,
    SnapshotScope,
    CloudAccountId,
    CloudOrganizationId,
    TakenAt,
    AttackVersion,
    CoveragePercent,
    CoveredTechniques,
    TotalTechniques,
    DegradedTechniques,
    UnknownTechniques,
    DetectPercent,
    ProtectPercent,
    RespondPercent,
    IncludesOrgDetections,
    OrgDetectionCount,
    OrgCoveredTechniques,
    CoverageBreakdown,
    Accounts,
    MinPercent,
    MaxPercent,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use CoverageSnapshots as S;
        let int = |c: S| ColumnDef::new(c).integer().not_null().default(0).to_owned();
        let real = |c: S| ColumnDef::new(c).double().not_null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(S::Table)
                    .col(ColumnDef::new(S::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(S::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(S::SnapshotScope).string_len(20).not_null())
                    .col(ColumnDef::new(S::CloudAccountId).uuid().null())
                    .col(ColumnDef::new(S::CloudOrganizationId).uuid().null())
                    .col(
                        ColumnDef::new(S::TakenAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(S::AttackVersion).string_len(16).not_null())
                    .col(real(S::CoveragePercent))
                    .col(int(S::CoveredTechniques))
                    .col(int(S::TotalTechniques))
                    .col(int(S::DegradedTechniques))
                    .col(int(S::UnknownTechniques))
                    .col(real(S::DetectPercent))
                    .col(real(S::ProtectPercent))
                    .col(real(S::RespondPercent))
                    .col(
                        ColumnDef::new(S::IncludesOrgDetections)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(int(S::OrgDetectionCount))
                    .col(int(S::OrgCoveredTechniques))
                    .col(
                        ColumnDef::new(S::CoverageBreakdown)
                            .json_binary()
                            .not_null(),
                    )
                    .col(ColumnDef::new(S::Accounts).integer().null())
                    .col(ColumnDef::new(S::MinPercent).double().null())
                    .col(ColumnDef::new(S::MaxPercent).double().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(S::Table, S::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(S::Table, S::CloudAccountId)
                            .to(CloudAccounts::Table, CloudAccounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(S::Table, S::CloudOrganizationId)
                            .to(CloudOrganizations::Table, CloudOrganizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .check(
                        Expr::col(S::SnapshotScope)
                            .eq("account")
                            .and(Expr::col(S::CloudAccountId).is_not_null())
                            .or(Expr::col(S::SnapshotScope)
                                .eq("organization")
                                .and(Expr::col(S::CloudOrganizationId).is_not_null())
                                .and(Expr::col(S::CloudAccountId).is_null())),
                    )
                    .to_owned(),
            )
            .await?;
        // The two history reads (an account's, a cloud organization's) and the retention
        // sweep (an organization's, by time).
        for (name, columns) in [
            ("idx_coverage_account", vec![S::CloudAccountId, S::TakenAt]),
            (
                "idx_coverage_cloud_org",
                vec![S::CloudOrganizationId, S::SnapshotScope, S::TakenAt],
            ),
            (
                "idx_coverage_org_taken",
                vec![S::OrganizationId, S::TakenAt],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(S::Table);
            for c in columns {
                index.col(c);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CoverageSnapshots::Table).to_owned())
            .await
    }
}
