//! `device_authorizations`: a terminal's request to log in as someone who approves it in the
//! console (RFC 8628 style). The device code is kept only as a digest; the user code is short
//! and unique while it lives; the row says who answered, when, and how fast the terminal may
//! poll. A redeemed request stays (status `redeemed`) so a replayed device code is refused.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum DeviceAuthorizations {
    Table,
    Id,
    DeviceCodeDigest,
    UserCode,
    ClientName,
    Status,
    UserId,
    IntervalSeconds,
    CreatedAt,
    ExpiresAt,
    DecidedAt,
    LastPolledAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let ts = |name: DeviceAuthorizations, null: bool| {
            let mut c = ColumnDef::new(name);
            c.timestamp_with_time_zone();
            if null {
                c.null();
            } else {
                c.not_null();
            }
            c
        };
        manager
            .create_table(
                Table::create()
                    .table(DeviceAuthorizations::Table)
                    .col(
                        ColumnDef::new(DeviceAuthorizations::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(DeviceAuthorizations::DeviceCodeDigest)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(DeviceAuthorizations::UserCode)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(DeviceAuthorizations::ClientName)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DeviceAuthorizations::Status)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(DeviceAuthorizations::UserId).uuid().null())
                    .col(
                        ColumnDef::new(DeviceAuthorizations::IntervalSeconds)
                            .integer()
                            .not_null(),
                    )
                    .col(ts(DeviceAuthorizations::CreatedAt, false))
                    .col(ts(DeviceAuthorizations::ExpiresAt, false))
                    .col(ts(DeviceAuthorizations::DecidedAt, true))
                    .col(ts(DeviceAuthorizations::LastPolledAt, true))
                    .foreign_key(
                        ForeignKey::create()
                            .from(DeviceAuthorizations::Table, DeviceAuthorizations::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeviceAuthorizations::Table).to_owned())
            .await
    }
}
