//! The composition root: builds every adapter from configuration and hands the domain
//! services their ports. Handlers never construct adapters.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::Context;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use canopy_aws::{AwsSettings, CloudWatchSettings, CloudWatchSource, StsRoleVerifier};
use canopy_billing::BillingService;
use canopy_cache::{InProcessCache, RedisCache};
use canopy_cloud_org::CloudAccountService;
use canopy_cloud_org::service::{CloudAccountConfig, CloudAccountPorts};
use canopy_credentials::{Argon2Cost, Argon2Crypto};
use canopy_demo::DemoSource;
use canopy_kernel::{Clock, SystemClock};
use canopy_metrics::ports::{MetricSource, SeriesCache};
use canopy_metrics::{MetricsConfig, MetricsPorts, MetricsService};
use canopy_store::{OutboxSender, Store, StoreConfig};
use canopy_tenancy::service::TenancyPorts;
use canopy_tenancy::{TenancyConfig, TenancyService};
use chrono::Duration;
use secrecy::ExposeSecret;

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

/// Installs the process-wide TLS provider. The dependency graph carries both ring and
/// aws-lc-rs, and rustls refuses to guess between them (FINDINGS.md).
pub fn install_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Canopy's own AWS identity: the configured static key, or the default provider chain
/// (environment, profile, instance or task role), resolved on first use.
async fn aws_identity(config: &Config) -> aws_config::SdkConfig {
    match (&config.aws_access_key_id, &config.aws_secret_access_key) {
        (Some(key), Some(secret)) => {
            let credentials =
                Credentials::new(key, secret.expose_secret(), None, None, "canopy-config");
            aws_config::SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(SharedCredentialsProvider::new(credentials))
                .build()
        }
        _ => {
            aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .load()
                .await
        }
    }
}

/// Where metrics come from: the demo cloud when asked for, CloudWatch otherwise.
fn metric_source(
    config: &Config,
    identity: aws_config::SdkConfig,
    clock: Arc<dyn Clock>,
) -> Arc<dyn MetricSource> {
    if config.demo {
        return Arc::new(DemoSource::new(
            [crate::demo::FAILING_ACCOUNT.to_string()],
            clock,
        ));
    }
    Arc::new(CloudWatchSource::new(
        identity,
        CloudWatchSettings {
            endpoint_url: config.aws_endpoint_url.clone(),
            account_timeout: StdDuration::from_millis(config.metrics_account_timeout_ms),
            ..CloudWatchSettings::default()
        },
    ))
}

/// The metrics cache: shared through Redis when configured, in process otherwise.
async fn series_cache(config: &Config) -> anyhow::Result<Arc<dyn SeriesCache>> {
    let ttl = StdDuration::from_secs(config.metrics_cache_ttl_secs);
    Ok(match &config.redis_url {
        Some(url) => Arc::new(
            RedisCache::connect(url, ttl)
                .await
                .with_context(|| format!("connecting to redis ({})", redact(url)))?,
        ),
        None => Arc::new(InProcessCache::new(ttl)),
    })
}

/// The billing service on an opened store (also what the operator commands use).
pub fn billing_service(store: &Store, clock: Arc<dyn Clock>) -> BillingService {
    let shared = Arc::new(store.clone());
    BillingService::new(shared.clone(), shared, clock)
}

/// Builds the application state on an opened store with the given clock.
pub async fn build_state(
    config: &Config,
    store: Store,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<AppState> {
    install_tls_provider();
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
    let billing = billing_service(&store, clock.clone());
    let ports = TenancyPorts {
        users: shared.clone(),
        credentials: shared.clone(),
        organizations: shared.clone(),
        members: shared.clone(),
        invitations: shared.clone(),
        audit: shared,
        retention: Arc::new(billing.clone()),
        sender: Arc::new(OutboxSender::new(store.clone())),
        crypto: crypto.clone(),
        clock: clock.clone(),
    };
    let tenancy = TenancyService::new(
        ports,
        TenancyConfig {
            session_ttl: Duration::hours(i64::from(config.session_ttl_hours)),
            invitation_ttl: Duration::hours(i64::from(config.invitation_ttl_hours)),
            public_url: config.public_url.clone(),
        },
    );
    let identity = aws_identity(config).await;
    let aws_settings = AwsSettings {
        endpoint_url: config.aws_endpoint_url.clone(),
        timeout: StdDuration::from_millis(config.aws_timeout_ms),
    };
    let cloud = CloudAccountService::new(
        CloudAccountPorts {
            accounts: Arc::new(store.clone()),
            external_ids: Arc::new(store.clone()),
            tokens: Arc::new(store.clone()),
            tenancy: tenancy.clone(),
            billing: billing.clone(),
            aws: Arc::new(StsRoleVerifier::new(identity.clone(), aws_settings)),
            secrets: crypto,
            clock: clock.clone(),
        },
        CloudAccountConfig {
            trusted_principal: config.aws_trusted_principal.clone(),
            public_url: config.public_url.clone(),
        },
    );
    let metrics = MetricsService::new(
        MetricsPorts {
            cloud: cloud.clone(),
            billing: billing.clone(),
            source: metric_source(config, identity, clock.clone()),
            cache: series_cache(config).await?,
            clock,
        },
        MetricsConfig {
            concurrency: config.metrics_concurrency,
        },
    );
    Ok(AppState::new(
        tenancy,
        billing,
        cloud,
        metrics,
        store,
        config.auth_rate_per_minute,
        config.trust_forwarded_for,
    ))
}

/// Opens the store and builds the state with the system clock.
pub async fn bootstrap(config: &Config) -> anyhow::Result<AppState> {
    let store = open_store(config).await?;
    build_state(config, store, Arc::new(SystemClock)).await
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
