//! Subscriptions: one per organization, Free for every organization that exists when this
//! runs. The tier column also accepts the legacy tiers (`free_scan`, `subscriber`) so
//! subscriptions imported from the per-account pricing can be migrated by
//! `canopy admin migrate-legacy-tiers`. Indexes for the retention sweep.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    OrganizationId,
    Tier,
    GraceUntil,
    GraceLegacyTier,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    OrganizationId,
    OccurredAt,
}

#[derive(DeriveIden)]
enum CloudAccountChecks {
    Table,
    CloudAccountId,
    CheckedAt,
}

const TIERS: [&str; 6] = [
    "free",
    "individual",
    "pro",
    "enterprise",
    "free_scan",
    "subscriber",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Subscriptions::Table)
                    .col(
                        ColumnDef::new(Subscriptions::OrganizationId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Subscriptions::Tier).string().not_null())
                    .col(
                        ColumnDef::new(Subscriptions::GraceUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Subscriptions::GraceLegacyTier)
                            .string()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Subscriptions::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Subscriptions::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Subscriptions::Table, Subscriptions::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .check(Expr::col(Subscriptions::Tier).is_in(TIERS))
                    // A grace period is both facts or none.
                    .check(
                        Expr::col(Subscriptions::GraceUntil)
                            .is_null()
                            .and(Expr::col(Subscriptions::GraceLegacyTier).is_null())
                            .or(Expr::col(Subscriptions::GraceUntil)
                                .is_not_null()
                                .and(Expr::col(Subscriptions::GraceLegacyTier).is_not_null())),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("subscriptions_tier_idx")
                    .table(Subscriptions::Table)
                    .col(Subscriptions::Tier)
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO subscriptions (organization_id, tier, created_at, updated_at) \
                 SELECT id, 'free', created_at, created_at FROM organizations",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_events_org_occurred_idx")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::OrganizationId)
                    .col(AuditEvents::OccurredAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("cloud_account_checks_checked_idx")
                    .table(CloudAccountChecks::Table)
                    .col(CloudAccountChecks::CloudAccountId)
                    .col(CloudAccountChecks::CheckedAt)
                    .to_owned(),
            )
            .await
    }
}
