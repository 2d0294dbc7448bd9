//! Databases for tests: an in-memory SQLite, or a fresh PostgreSQL database per call so test
//! runs never see each other's rows.

use canopy_kernel::id::OrganizationId;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::entity::subscriptions;
use crate::{Store, StoreConfig, db_err};
use canopy_tenancy::StoreError;

/// Environment variable naming the PostgreSQL server for tests (any database on it; a new
/// one is created per call).
pub const POSTGRES_URL_ENV: &str = "CANOPY_TEST_POSTGRES_URL";

/// Used when [`POSTGRES_URL_ENV`] is unset; what `.ci/run` provisions.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/postgres";

/// A private in-memory SQLite database URL.
pub fn sqlite_memory_url() -> String {
    "sqlite::memory:".to_string()
}

fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.rfind('/') {
        Some(slash) if slash > base.find("://").map_or(0, |s| s + 2) => &base[..slash],
        _ => base,
    };
    match query {
        Some(q) => format!("{prefix}/{database}?{q}"),
        None => format!("{prefix}/{database}"),
    }
}

/// Creates an empty database named `canopy_test_<random>` on the server named by
/// [`POSTGRES_URL_ENV`] and returns its URL.
pub async fn fresh_postgres_url() -> Result<String, StoreError> {
    let server =
        std::env::var(POSTGRES_URL_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
    fresh_postgres_url_on(&server).await
}

/// Creates an empty database named `canopy_test_<random>` on `server` and returns its URL.
pub async fn fresh_postgres_url_on(server: &str) -> Result<String, StoreError> {
    let admin = Store::connect(&StoreConfig {
        url: server.to_string(),
        max_connections: 2,
    })
    .await?;
    let name = format!("canopy_test_{}", Uuid::now_v7().simple());
    admin
        .execute_raw(&format!("CREATE DATABASE {name}"))
        .await?;
    admin.close().await?;
    Ok(with_database(server, &name))
}

/// A migrated store on a fresh database of the named backend (`sqlite` or `postgres`).
pub async fn migrated(backend: &str) -> Result<Store, StoreError> {
    let url = match backend {
        "postgres" => fresh_postgres_url().await?,
        _ => sqlite_memory_url(),
    };
    let store = Store::connect(&StoreConfig::new(url)).await?;
    store.migrate().await?;
    Ok(store)
}

/// Writes a subscription's stored tier as is, bypassing every rule (the schema's CHECK still
/// applies): for fixtures of a plan that shrank underneath, and of legacy subscriptions
/// imported from the per-account pricing.
pub async fn set_stored_tier(
    store: &Store,
    org: OrganizationId,
    tier: &str,
) -> Result<(), StoreError> {
    subscriptions::Entity::update_many()
        .col_expr(subscriptions::Column::Tier, Expr::value(tier))
        .filter(subscriptions::Column::OrganizationId.eq(org.as_uuid()))
        .exec(store.db())
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Declares repository contract tests: each named `async fn(Store)` runs on a fresh SQLite
/// database, and (ignored unless `.ci/run` provides PostgreSQL) on a fresh PostgreSQL one.
#[macro_export]
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::testing::migrated("sqlite").await.unwrap()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[ignore = "needs postgres"]
                async fn $name() {
                    super::$name($crate::testing::migrated("postgres").await.unwrap()).await;
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_swapped_keeping_query() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u:p@h:5432", "x"),
            "postgres://u:p@h:5432/x"
        );
    }
}
