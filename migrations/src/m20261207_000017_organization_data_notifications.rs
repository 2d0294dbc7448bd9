//! Tells every process when an organization's own records change, on the channel the grant
//! triggers use (migration 16): cloud accounts, invitations and the subscription send
//! `d:<organization id>`, so each replica's cache of organization reads (account lists,
//! member and invitation lists, plan and usage) drops what another process wrote. An
//! account's tags are written with its row (`update` rewrites the row), so the row's trigger
//! covers them. SQLite needs none.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables whose rows an organization's reads are made of, besides memberships (already
/// told as `o:` by migration 16).
const WATCHED: &[&str] = &["cloud_accounts", "invitations", "subscriptions"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for table in WATCHED {
            db.execute_unprepared(&format!(
                "CREATE TRIGGER {table}_organization_data AFTER INSERT OR UPDATE OR DELETE \
                 ON {table} FOR EACH ROW EXECUTE FUNCTION canopy_grant_notify('d', 'organization_id')"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for table in WATCHED {
            db.execute_unprepared(&format!(
                "DROP TRIGGER IF EXISTS {table}_organization_data ON {table}"
            ))
            .await?;
        }
        Ok(())
    }
}
