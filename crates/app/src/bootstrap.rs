//! The composition root: builds every adapter from configuration and hands the domain
//! services their ports. Handlers never construct adapters.

use std::sync::Arc;

use anyhow::Context;
use canopy_credentials::{Argon2Cost, Argon2Crypto};
use canopy_kernel::{Clock, SystemClock};
use canopy_store::{OutboxSender, Store, StoreConfig};
use canopy_tenancy::service::TenancyPorts;
use canopy_tenancy::{TenancyConfig, TenancyService};
use chrono::Duration;

use crate::config::Config;
use crate::state::AppState;

/// Connects and migrates the database named in `config`.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&StoreConfig {
        url: config.database_url.clone(),
        max_connections: config.database_max_connections,
    })
    .await
    .with_context(|| {
        format!(
            "connecting to the database ({})",
            redact(&config.database_url)
        )
    })?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// Hides a password in a database URL before it reaches a log or an error.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Builds the application state on an opened store with the given clock.
pub fn build_state(
    config: &Config,
    store: Store,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<AppState> {
    let crypto = Arc::new(
        Argon2Crypto::new(Argon2Cost {
            memory_kib: config.argon2_memory_kib,
            iterations: config.argon2_iterations,
            parallelism: 1,
        })
        .map_err(|e| anyhow::anyhow!(e.0))
        .context("argon2 parameters")?,
    );
    let shared = Arc::new(store.clone());
    let ports = TenancyPorts {
        users: shared.clone(),
        credentials: shared.clone(),
        organizations: shared.clone(),
        members: shared.clone(),
        invitations: shared.clone(),
        audit: shared,
        sender: Arc::new(OutboxSender::new(store.clone())),
        crypto,
        clock,
    };
    let tenancy = TenancyService::new(
        ports,
        TenancyConfig {
            session_ttl: Duration::hours(i64::from(config.session_ttl_hours)),
            invitation_ttl: Duration::hours(i64::from(config.invitation_ttl_hours)),
            public_url: config.public_url.clone(),
        },
    );
    Ok(AppState::new(
        tenancy,
        store,
        config.auth_rate_per_minute,
        config.trust_forwarded_for,
    ))
}

/// Opens the store and builds the state with the system clock.
pub async fn bootstrap(config: &Config) -> anyhow::Result<AppState> {
    let store = open_store(config).await?;
    build_state(config, store, Arc::new(SystemClock))
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact("postgres://canopy:s3cret@db:5432/canopy"),
            "postgres://canopy:***@db:5432/canopy"
        );
        assert_eq!(
            redact("sqlite://canopy.db?mode=rwc"),
            "sqlite://canopy.db?mode=rwc"
        );
    }
}
