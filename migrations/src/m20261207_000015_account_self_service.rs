//! Accounts people look after themselves.
//!
//! - `users.email_verified_at`: when the address was proven (a link sent to it was opened).
//!   Users who signed up before verification existed are taken as verified at their sign-up:
//!   they were never asked, and locking them out of API keys now would break their tools.
//! - `user_tokens`: single-use links (verify the address, reset the password, confirm a new
//!   address), stored only as a digest, each with its purpose, expiry and use.
//! - `sessions.user_agent`, `sessions.ip`, `sessions.last_used_at`: what a person needs to
//!   recognise their sessions in a list and end the ones that are not theirs.
//! - `security_events`: the account's own log (password changed, sessions ended, e-mail
//!   changed): it belongs to the person, not to an organization's audit log.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    EmailVerifiedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    UserAgent,
    Ip,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum UserTokens {
    Table,
    Id,
    UserId,
    Purpose,
    TokenDigest,
    Email,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SecurityEvents {
    Table,
    Id,
    UserId,
    Action,
    Ip,
    UserAgent,
    Details,
    OccurredAt,
}

fn ts_null<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .null()
        .take()
}

fn ts<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .take()
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(ts_null(Users::EmailVerifiedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Users::Table)
                    .value(Users::EmailVerifiedAt, Expr::col(Users::CreatedAt))
                    .to_owned(),
            )
            .await?;
        for mut column in [
            ColumnDef::new(Sessions::UserAgent).string().null().take(),
            ColumnDef::new(Sessions::Ip).string().null().take(),
            ts_null(Sessions::LastUsedAt),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(UserTokens::Table)
                    .col(
                        ColumnDef::new(UserTokens::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(UserTokens::UserId).uuid().not_null())
                    .col(ColumnDef::new(UserTokens::Purpose).string().not_null())
                    .col(
                        ColumnDef::new(UserTokens::TokenDigest)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(UserTokens::Email).string().not_null())
                    .col(ts(UserTokens::ExpiresAt))
                    .col(ts_null(UserTokens::UsedAt))
                    .col(ts(UserTokens::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserTokens::Table, UserTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("user_tokens_user_purpose_idx")
                    .table(UserTokens::Table)
                    .col(UserTokens::UserId)
                    .col(UserTokens::Purpose)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SecurityEvents::Table)
                    .col(
                        ColumnDef::new(SecurityEvents::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SecurityEvents::UserId).uuid().not_null())
                    .col(ColumnDef::new(SecurityEvents::Action).string().not_null())
                    .col(ColumnDef::new(SecurityEvents::Ip).string().null())
                    .col(ColumnDef::new(SecurityEvents::UserAgent).string().null())
                    .col(
                        ColumnDef::new(SecurityEvents::Details)
                            .json_binary()
                            .not_null(),
                    )
                    .col(ts(SecurityEvents::OccurredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(SecurityEvents::Table, SecurityEvents::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("security_events_user_idx")
                    .table(SecurityEvents::Table)
                    .col(SecurityEvents::UserId)
                    .col(SecurityEvents::OccurredAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SecurityEvents::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(UserTokens::Table).to_owned())
            .await?;
        for column in [
            Sessions::UserAgent.into_iden(),
            Sessions::Ip.into_iden(),
            Sessions::LastUsedAt.into_iden(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::EmailVerifiedAt)
                    .to_owned(),
            )
            .await
    }
}
