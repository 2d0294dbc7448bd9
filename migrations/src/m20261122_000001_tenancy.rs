//! Tenancy: users, organizations, memberships, credentials, invitations, audit and outbox.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    PasswordHash,
    ActiveOrganizationId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    Name,
    Slug,
    Logo,
    Metadata,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    Id,
    OrganizationId,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    TokenDigest,
    ExpiresAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    UserId,
    Name,
    Prefix,
    TokenDigest,
    ExpiresAt,
    RevokedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Invitations {
    Table,
    Id,
    OrganizationId,
    Email,
    Role,
    Status,
    InvitedBy,
    ExpiresAt,
    AnsweredAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    OrganizationId,
    ActorId,
    Action,
    TargetType,
    TargetId,
    Details,
    OccurredAt,
}

#[derive(DeriveIden)]
enum OutboxMessages {
    Table,
    Id,
    Kind,
    Recipient,
    Subject,
    Body,
    Payload,
    CreatedAt,
    SentAt,
}

fn id_col<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).uuid().not_null().primary_key().take()
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

fn text<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).string().not_null().take()
}

fn fk<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).uuid().not_null().take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .col(id_col(Organizations::Id))
                    .col(text(Organizations::Name))
                    .col(text(Organizations::Slug).unique_key())
                    .col(ColumnDef::new(Organizations::Logo).string().null())
                    .col(
                        ColumnDef::new(Organizations::Metadata)
                            .json_binary()
                            .not_null(),
                    )
                    .col(ts(Organizations::CreatedAt))
                    .col(ts(Organizations::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(id_col(Users::Id))
                    .col(text(Users::Email).unique_key())
                    .col(text(Users::Name))
                    .col(text(Users::PasswordHash))
                    .col(ColumnDef::new(Users::ActiveOrganizationId).uuid().null())
                    .col(ts(Users::CreatedAt))
                    .col(ts(Users::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Users::Table, Users::ActiveOrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Memberships::Table)
                    .col(id_col(Memberships::Id))
                    .col(fk(Memberships::OrganizationId))
                    .col(fk(Memberships::UserId))
                    .col(text(Memberships::Role))
                    .col(ts(Memberships::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Memberships::Table, Memberships::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Memberships::Table, Memberships::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .check(Expr::col(Memberships::Role).is_in(["owner", "admin", "member"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("memberships_org_user_uq")
                    .table(Memberships::Table)
                    .col(Memberships::OrganizationId)
                    .col(Memberships::UserId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("memberships_user_idx")
                    .table(Memberships::Table)
                    .col(Memberships::UserId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(id_col(Sessions::Id))
                    .col(fk(Sessions::UserId))
                    .col(text(Sessions::TokenDigest).unique_key())
                    .col(ts(Sessions::ExpiresAt))
                    .col(ts(Sessions::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(id_col(ApiKeys::Id))
                    .col(fk(ApiKeys::UserId))
                    .col(text(ApiKeys::Name))
                    .col(text(ApiKeys::Prefix))
                    .col(text(ApiKeys::TokenDigest).unique_key())
                    .col(ts_null(ApiKeys::ExpiresAt))
                    .col(ts_null(ApiKeys::RevokedAt))
                    .col(ts(ApiKeys::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKeys::Table, ApiKeys::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("api_keys_user_idx")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::UserId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Invitations::Table)
                    .col(id_col(Invitations::Id))
                    .col(fk(Invitations::OrganizationId))
                    .col(text(Invitations::Email))
                    .col(text(Invitations::Role))
                    .col(text(Invitations::Status))
                    .col(fk(Invitations::InvitedBy))
                    .col(ts(Invitations::ExpiresAt))
                    .col(ts_null(Invitations::AnsweredAt))
                    .col(ts(Invitations::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Invitations::Table, Invitations::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .check(Expr::col(Invitations::Role).is_in(["owner", "admin", "member"]))
                    .check(Expr::col(Invitations::Status).is_in([
                        "pending",
                        "accepted",
                        "rejected",
                        "cancelled",
                        "replaced",
                    ]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("invitations_email_idx")
                    .table(Invitations::Table)
                    .col(Invitations::Email)
                    .to_owned(),
            )
            .await?;
        // At most one pending invitation per (organization, email), even under concurrent
        // invites: a partial unique index, which both SQLite and PostgreSQL support.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX invitations_pending_uq ON invitations (organization_id, email) \
                 WHERE status = 'pending'",
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(id_col(AuditEvents::Id))
                    .col(fk(AuditEvents::OrganizationId))
                    .col(ColumnDef::new(AuditEvents::ActorId).uuid().null())
                    .col(text(AuditEvents::Action))
                    .col(text(AuditEvents::TargetType))
                    .col(text(AuditEvents::TargetId))
                    .col(
                        ColumnDef::new(AuditEvents::Details)
                            .json_binary()
                            .not_null(),
                    )
                    .col(ts(AuditEvents::OccurredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AuditEvents::Table, AuditEvents::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_events_org_id_idx")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::OrganizationId)
                    .col(AuditEvents::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OutboxMessages::Table)
                    .col(id_col(OutboxMessages::Id))
                    .col(text(OutboxMessages::Kind))
                    .col(text(OutboxMessages::Recipient))
                    .col(text(OutboxMessages::Subject))
                    .col(ColumnDef::new(OutboxMessages::Body).text().not_null())
                    .col(
                        ColumnDef::new(OutboxMessages::Payload)
                            .json_binary()
                            .not_null(),
                    )
                    .col(ts(OutboxMessages::CreatedAt))
                    .col(ts_null(OutboxMessages::SentAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
