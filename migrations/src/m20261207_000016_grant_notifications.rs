//! Tells every process when a grant changes: on PostgreSQL, triggers on the tables that decide
//! who may do what send `NOTIFY canopy_grants` with `u:<user id>` or `o:<organization id>`,
//! delivered at commit, so each replica's cache of sessions, keys and memberships drops what
//! another replica (or an operator's SQL) changed. SQLite is one process's embedded database
//! and needs none.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Each trigger's arguments are pairs: the payload's kind and the column holding the id.
/// A row's old and new values are both told, so a moved row names where it was and is.
const NOTIFY: &str = r#"
CREATE OR REPLACE FUNCTION canopy_grant_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    i integer := 0;
BEGIN
    WHILE i < TG_NARGS LOOP
        IF TG_OP <> 'INSERT' THEN
            PERFORM pg_notify('canopy_grants', TG_ARGV[i] || ':' || (to_jsonb(OLD) ->> TG_ARGV[i + 1]));
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM pg_notify('canopy_grants', TG_ARGV[i] || ':' || (to_jsonb(NEW) ->> TG_ARGV[i + 1]));
        END IF;
        i := i + 2;
    END LOOP;
    RETURN NULL;
END
$$
"#;

/// (table, events, arguments). A session's use (`last_used_at`) is no change of grant.
const WATCHED: &[(&str, &str, &str)] = &[
    (
        "sessions",
        "UPDATE OF user_id, token_digest, expires_at OR DELETE",
        "'u', 'user_id'",
    ),
    ("api_keys", "UPDATE OR DELETE", "'u', 'user_id'"),
    ("users", "UPDATE OR DELETE", "'u', 'id'"),
    (
        "memberships",
        "INSERT OR UPDATE OR DELETE",
        "'o', 'organization_id', 'u', 'user_id'",
    ),
    ("organizations", "UPDATE OR DELETE", "'o', 'id'"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(NOTIFY).await?;
        for (table, events, args) in WATCHED {
            db.execute_unprepared(&format!(
                "CREATE TRIGGER {table}_grants AFTER {events} ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION canopy_grant_notify({args})"
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
        for (table, _, _) in WATCHED {
            db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {table}_grants ON {table}"))
                .await?;
        }
        db.execute_unprepared("DROP FUNCTION IF EXISTS canopy_grant_notify()")
            .await?;
        Ok(())
    }
}
