//! Canopy's persistence adapter: sea-orm repositories for every storage port (tenancy,
//! billing, cloud accounts), on SQLite (the embedded default) or PostgreSQL.
//!
//! API boundary: [`Store`] (connect, migrate, ping) hands out one repository type per port
//! ([`Store::users`], [`Store::organizations`], ... each implementing its domain trait), plus
//! [`Outbox`]. Entities and row mappings are crate-private; `testing` (fresh databases and
//! fixtures) exists only with the `testing` feature, which only tests enable.
//!
//! Layout: `tenancy/`, `billing/`, `cloud/` hold one module per port; `txn.rs` the locked
//! write every change of an organization goes through; `error.rs` how database failures reach
//! the domain; `sql.rs` the raw SQL helpers.

mod billing;
mod cloud;
mod coverage;
mod detections;
mod entity;
mod error;
mod grants;
mod jobs;
mod marks;
mod outbox;
mod sql;
mod tenancy;
#[cfg(feature = "testing")]
pub mod testing;
mod txn;

use std::time::Duration;

use canopy_kernel::StoreError;
use canopy_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};

pub use billing::{HistoryPurge, SubscriptionStore};
pub use cloud::{CloudAccountStore, CloudOrganizationStore, ConnectionTokenStore, ExternalIdStore};
pub use coverage::CoverageSnapshotStore;
pub use detections::DetectionStore;
pub use jobs::JobRepository;
pub use marks::CoverageMarkStore;
pub use outbox::{Outbox, OutboxFilter, OutboxMessage};
pub use tenancy::{
    AuditStore, CredentialStore, DeviceAuthorizationStore, InvitationStore, MembershipStore,
    OrganizationStore, SecurityLogStore, UserStore,
};

use crate::error::db_err;

/// Declares a repository type: a handle on the [`Store`] implementing one port, and the
/// `Store` method that hands it out. One type per port keeps method names from colliding.
macro_rules! repository {
    ($(#[$doc:meta])* $name:ident, $accessor:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(crate::Store);

        impl $name {
            /// The store this repository reads and writes.
            #[allow(dead_code)] // not every repository writes under a lock
            fn store(&self) -> &crate::Store {
                &self.0
            }

            /// The connection pool.
            fn db(&self) -> &sea_orm::DatabaseConnection {
                self.0.db()
            }
        }

        impl crate::Store {
            #[doc = concat!("The [`", stringify!($name), "`] of this database.")]
            pub fn $accessor(&self) -> $name {
                $name(self.clone())
            }
        }
    };
}
pub(crate) use repository;

/// How long a pooled connection may sit idle before it is checked on its next use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// Connection settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://path?mode=rwc`, `sqlite::memory:` or `postgres://...`.
    pub url: String,
    /// Pool size for PostgreSQL. SQLite always uses one connection (see [`Store::connect`]).
    pub max_connections: u32,
    /// Create a missing SQLite file. Operator commands open only an existing database, so
    /// one run in the wrong directory cannot make an empty one and report "not found".
    pub create_if_missing: bool,
}

impl StoreConfig {
    /// Settings for a database URL with the default pool size.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            create_if_missing: true,
        }
    }
}

/// The database behind every repository port.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    /// Opens the database. SQLite gets a single connection, WAL and a busy timeout: one writer
    /// at a time is what SQLite allows anyway, and serializing in the pool makes the
    /// transactional invariants (last owner, single-use tokens) hold without lock upgrades.
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        let mut options = ConnectOptions::new(config.url.clone());
        options
            .sqlx_logging(false)
            // sqlx pings every connection it hands out by default: one extra round trip per
            // query. Ping only connections that sat idle for a second or more: a busy server
            // never pays it, and a connection that died while idle (a database restart, a
            // failover, a proxy's idle timeout) is replaced before a request uses it.
            .test_before_acquire_if_idle_for(IDLE_BEFORE_PING)
            .acquire_timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(10));
        if config.url.starts_with("sqlite") {
            let create = config.create_if_missing;
            options
                .max_connections(1)
                .min_connections(1)
                .map_sqlx_sqlite_opts(move |o| {
                    o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .busy_timeout(Duration::from_secs(10))
                        .foreign_keys(true)
                        .create_if_missing(create)
                });
        } else {
            options
                .max_connections(config.max_connections)
                .min_connections(2);
        }
        let db = Database::connect(options).await.map_err(db_err)?;
        Ok(Self { db })
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Migrator::up(&self.db, None).await.map_err(db_err)
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(db_err)
    }

    /// `"sqlite"` or `"postgres"`, for logs and readiness output.
    pub fn backend_name(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Sqlite => "sqlite",
            DbBackend::Postgres => "postgres",
            _ => "other",
        }
    }

    pub(crate) fn is_postgres(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Postgres
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Closes the pool.
    pub async fn close(self) -> Result<(), StoreError> {
        self.db.close().await.map_err(db_err)
    }
}
