//! The composition root: builds every adapter from its configuration section and hands the
//! domain services their ports. Handlers and commands never construct adapters.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::Context;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use canopy_aws::scan::{AwsAccountScanner, AwsOrganizationScanner, ScanSettings};
use canopy_aws::{
    AwsSettings, CloudWatchSettings, CloudWatchSource, OrganizationsDiscoverer,
    OrganizationsSettings, StsRoleVerifier,
};
use canopy_billing::BillingService;
use canopy_cache::grants::{CachedTenancy, GrantCache};
use canopy_cache::org_reads::{Listeners, OrgReadCache};
use canopy_cache::{InProcessCache, RedisCache};
use canopy_cloud_org::organization::OrganizationDiscoverer;
use canopy_cloud_org::organization::connect_job::ConnectMembersHandler;
use canopy_cloud_org::organization::discovery_job::DiscoveryHandler;
use canopy_cloud_org::organization::service::{CloudOrganizationPorts, CloudOrganizationService};
use canopy_cloud_org::ports::{ProjectVerifier, RoleVerifier};
use canopy_cloud_org::{CloudAccountConfig, CloudAccountPorts, CloudAccountService};
use canopy_coverage::history::{CoverageHistory, SnapshotAfter};
use canopy_coverage::views::CoverageViews;
use canopy_credentials::sealing::AesGcmSealer;
use canopy_credentials::{Argon2Cost, Argon2Crypto, HashingLimits};
use canopy_demo::DemoSource;
use canopy_demo::discovery::{DemoDiscoverer, DemoProjectVerifier, DemoRoleVerifier};
use canopy_demo::scanners::{DemoAccountScanner, DemoOrganizationScanner};
use canopy_detection::ports::{AccountScanner, OrganizationScanner};
use canopy_detection::scan::ScanHandler;
use canopy_detection::service::{DetectionPorts, DetectionService};
use canopy_gcp::scan::{GcpAccountScanner, GcpOrganizationScanner};
use canopy_gcp::{GcpProjectVerifier, GcpSettings, ResourceManagerDiscoverer, ServiceAccountKey};
use canopy_jobs::{JobHandler, JobService};
use canopy_kernel::{Clock, SystemClock};
use canopy_mail::Templates;
use canopy_metrics::ports::{MetricSource, SeriesCache};
use canopy_metrics::{MetricsConfig, MetricsPorts, MetricsService};
use canopy_store::{Store, StoreConfig};
use canopy_tenancy::device::DeviceLogins;
use canopy_tenancy::{TenancyConfig, TenancyPorts, TenancyService};
use chrono::Duration;
use secrecy::ExposeSecret;

use crate::config::{
    AuthConfig, AwsConfig, CacheConfig, Config, DatabaseConfig, GcpConfig, JobsConfig,
    MetricsSection, PLACEHOLDER_PRINCIPAL, SecretsConfig,
};
pub use crate::relay::{mail_relay, smtp_transport};
use crate::state::{AppState, Edge, Services};
use crate::worker::{JobRunner, RunnerSettings};

impl From<&DatabaseConfig> for StoreConfig {
    fn from(c: &DatabaseConfig) -> Self {
        StoreConfig {
            url: c.url.clone(),
            max_connections: c.max_connections,
            create_if_missing: true,
        }
    }
}

/// Connects (creating an embedded database on first run) and migrates the database.
pub async fn open_store(config: &DatabaseConfig) -> anyhow::Result<Store> {
    let store = Store::connect(&config.into())
        .await
        .with_context(|| format!("connecting to the database ({})", redact(&config.url)))?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// Connects to a database that must already exist (operator commands), and migrates it.
pub async fn open_existing_store(config: &DatabaseConfig) -> anyhow::Result<Store> {
    let store = Store::connect(&StoreConfig {
        create_if_missing: false,
        ..config.into()
    })
    .await
    .with_context(|| {
        format!(
            "opening the database {}: operator commands never create one; run them where \
             `canopy serve` runs, or pass --database-url",
            redact(&config.url)
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
/// aws-lc-rs, and rustls refuses to guess between them (docs/dependencies.md).
pub fn install_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Canopy's own AWS identity: the configured static key, or the default provider chain
/// (environment, profile, instance or task role), resolved on first use.
async fn aws_identity(config: &AwsConfig) -> aws_config::SdkConfig {
    match (&config.access_key_id, &config.secret_access_key) {
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

impl From<&AwsConfig> for AwsSettings {
    fn from(c: &AwsConfig) -> Self {
        AwsSettings {
            endpoint_url: c.endpoint_url.clone(),
            timeout: StdDuration::from_millis(c.timeout_ms),
        }
    }
}

/// The STS client `canopy connect` detects the local AWS account with: the machine's own
/// credentials (environment, profile, SSO), not Canopy's.
pub async fn local_sts() -> StsRoleVerifier {
    StsRoleVerifier::from_environment(AwsSettings {
        endpoint_url: None,
        timeout: StdDuration::from_secs(10),
    })
    .await
}

/// Where metrics come from: the demo cloud when asked for, CloudWatch otherwise.
fn metric_source(
    demo: bool,
    aws: &AwsConfig,
    metrics: &MetricsSection,
    identity: aws_config::SdkConfig,
    clock: Arc<dyn Clock>,
) -> Arc<dyn MetricSource> {
    if demo {
        return Arc::new(DemoSource::new(
            [crate::demo::FAILING_ACCOUNT.to_string()],
            clock,
        ));
    }
    Arc::new(CloudWatchSource::new(
        identity,
        CloudWatchSettings {
            endpoint_url: aws.endpoint_url.clone(),
            account_timeout: StdDuration::from_millis(metrics.account_timeout_ms),
            ..CloudWatchSettings::default()
        },
    ))
}

/// `real`, or with `--demo` the demo cloud in front of it: the demo answers for its own
/// organizations and accounts and hands the rest to `real`.
fn demo_or<T: ?Sized>(demo: bool, real: Arc<T>, in_front: fn(Arc<T>) -> Arc<T>) -> Arc<T> {
    if demo { in_front(real) } else { real }
}

/// The metrics cache: shared through Redis when configured, in process otherwise.
async fn series_cache(
    cache: &CacheConfig,
    metrics: &MetricsSection,
) -> anyhow::Result<Arc<dyn SeriesCache>> {
    let ttl = StdDuration::from_secs(metrics.cache_ttl_secs);
    Ok(match &cache.redis_url {
        Some(url) => Arc::new(
            RedisCache::connect(url, ttl)
                .await
                .with_context(|| format!("connecting to redis ({})", redact(url)))?,
        ),
        None => Arc::new(InProcessCache::new(ttl)),
    })
}

/// The password hasher and token source.
fn credential_crypto(auth: &AuthConfig) -> anyhow::Result<Arc<Argon2Crypto>> {
    Ok(Arc::new(
        Argon2Crypto::with_limits(
            Argon2Cost {
                memory_kib: auth.argon2_memory_kib,
                iterations: auth.argon2_iterations,
                parallelism: 1,
            },
            hashing_limits(auth),
        )
        .map_err(|e| anyhow::anyhow!(e.to_string()))
        .context("argon2 parameters")?,
    ))
}

/// The configured hashing limits; zero keeps the default sized to the cores.
/// The sealer of customer secrets from the operator's keys (none: GCP organizations are
/// refused with a clear 503 until a key is configured).
fn secret_sealer(config: &SecretsConfig) -> anyhow::Result<Arc<AesGcmSealer>> {
    let current = match (&config.key_file, &config.key) {
        (Some(path), _) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the secret key file {}", path.display()))?,
        ),
        (None, Some(key)) => Some(key.expose_secret().to_string()),
        (None, None) => None,
    };
    let retired: Vec<String> = config
        .retired_keys
        .as_ref()
        .map(|keys| {
            keys.expose_secret()
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Arc::new(
        AesGcmSealer::new(current.as_deref(), &retired).context("the secret keys")?,
    ))
}

/// Resource Manager, and Canopy's own Google identity when the operator gave one.
fn gcp_adapter(
    config: &GcpConfig,
) -> anyhow::Result<(ResourceManagerDiscoverer, Option<ServiceAccountKey>)> {
    let own = match &config.credentials_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the GCP credentials file {}", path.display()))?;
            Some(ServiceAccountKey::parse(&text).context("the GCP credentials file")?)
        }
        None => None,
    };
    let rm = ResourceManagerDiscoverer::new(GcpSettings {
        endpoint_url: config.endpoint_url.clone(),
        max_in_flight: config.max_in_flight.max(1),
        ..GcpSettings::default()
    })?
    .with_own_identity(own.clone());
    Ok((rm, own))
}

fn hashing_limits(auth: &AuthConfig) -> HashingLimits {
    let default = HashingLimits::default();
    HashingLimits {
        concurrent: match auth.hashing_concurrency {
            0 => default.concurrent,
            n => n,
        },
        queue: match auth.hashing_queue {
            0 => default.queue,
            n => n,
        },
    }
}

/// The billing service on an opened store (also what the operator commands use).
pub fn billing_service(store: &Store, clock: Arc<dyn Clock>) -> BillingService {
    BillingService::new(
        Arc::new(store.subscriptions()),
        Arc::new(store.history()),
        clock,
    )
}

/// Builds the application state on an opened store with the given clock.
pub async fn build_state(
    config: &Config,
    store: Store,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<AppState> {
    install_tls_provider();
    let crypto = credential_crypto(&config.auth)?;
    let (grants, reads) = caches(&store);
    let billing = BillingService::new(
        reads.wrap_subscriptions(Arc::new(store.subscriptions())),
        Arc::new(store.history()),
        clock.clone(),
    );
    let tenancy = TenancyService::new(
        reads.wrap_tenancy(CachedTenancy::wrap(
            grants.clone(),
            TenancyPorts {
                users: Arc::new(store.users()),
                credentials: Arc::new(store.credentials()),
                organizations: Arc::new(store.organizations()),
                members: Arc::new(store.memberships()),
                invitations: Arc::new(store.invitations()),
                audit: Arc::new(store.audit_log()),
                security_log: Arc::new(store.security_log()),
                retention: Arc::new(billing.clone()),
                api_keys: Arc::new(billing.clone()),
                renderer: Arc::new(Templates::default()),
                outbox: Arc::new(store.outbox()),
                crypto: crypto.clone(),
                clock: clock.clone(),
            },
        )),
        TenancyConfig {
            session_ttl: Duration::hours(i64::from(config.auth.session_ttl_hours)),
            invitation_ttl: Duration::hours(i64::from(config.auth.invitation_ttl_hours)),
            public_url: config.server.public_url.clone(),
        },
    );
    let devices = DeviceLogins::new(
        Arc::new(store.device_authorizations()),
        Arc::new(store.users()),
        crypto.clone(),
        clock.clone(),
    );
    let identity = aws_identity(&config.aws).await;
    let identity_for_orgs = identity.clone();
    let identity_for_scans = identity.clone();
    let sealer = secret_sealer(&config.secrets)?;
    let (resource_manager, own_google_identity) = gcp_adapter(&config.gcp)?;
    let own_google_identity_for_scans = own_google_identity.clone();
    let secrets_for_orgs = crypto.clone();
    let cloud = CloudAccountService::new(
        CloudAccountPorts {
            accounts: reads.wrap_accounts(Arc::new(store.cloud_accounts())),
            external_ids: Arc::new(store.external_ids()),
            tokens: Arc::new(store.connection_tokens()),
            tenancy: tenancy.clone(),
            billing: billing.clone(),
            aws: demo_or::<dyn RoleVerifier>(
                config.demo,
                Arc::new(StsRoleVerifier::new(identity.clone(), (&config.aws).into())),
                |real| Arc::new(DemoRoleVerifier::new(real)),
            ),
            gcp: demo_or::<dyn ProjectVerifier>(
                config.demo,
                Arc::new(GcpProjectVerifier::new(
                    resource_manager.clone(),
                    Arc::new(store.cloud_organizations()),
                    sealer.clone(),
                    own_google_identity,
                )),
                |real| Arc::new(DemoProjectVerifier::new(real)),
            ),
            secrets: crypto,
            clock: clock.clone(),
        },
        CloudAccountConfig {
            trusted_principal: config.aws.trusted_principal.clone(),
            public_url: config.server.public_url.clone(),
        },
    );
    let metrics = MetricsService::new(
        MetricsPorts {
            cloud: cloud.clone(),
            billing: billing.clone(),
            source: metric_source(
                config.demo,
                &config.aws,
                &config.metrics,
                identity,
                clock.clone(),
            ),
            cache: series_cache(&config.cache, &config.metrics).await?,
            clock: clock.clone(),
        },
        MetricsConfig {
            concurrency: config.metrics.concurrency,
        },
    );
    let jobs = JobService::new(Arc::new(store.jobs()), clock.clone());
    let gcp_organization_scanner = GcpOrganizationScanner::new(&resource_manager);
    let gcp_account_scanner = GcpAccountScanner::new(
        &resource_manager,
        Arc::new(store.cloud_organizations()),
        sealer.clone(),
        own_google_identity_for_scans,
    );
    let discoverer = |real: Arc<dyn OrganizationDiscoverer>| {
        demo_or(config.demo, real, |real| {
            Arc::new(DemoDiscoverer::new(real))
        })
    };
    let cloud_orgs = CloudOrganizationService::new(CloudOrganizationPorts {
        repository: reads.wrap_cloud_organizations(Arc::new(store.cloud_organizations())),
        aws: discoverer(Arc::new(OrganizationsDiscoverer::new(
            identity_for_orgs,
            OrganizationsSettings {
                endpoint_url: config.aws.endpoint_url.clone(),
                max_in_flight: config.aws.organizations_max_in_flight.max(1),
                ..OrganizationsSettings::default()
            },
        ))),
        gcp: discoverer(Arc::new(resource_manager)),
        sealer,
        external_ids: Arc::new(store.external_ids()),
        secrets: secrets_for_orgs,
        billing: billing.clone(),
        jobs: jobs.clone(),
        accounts: cloud.clone(),
        clock: clock.clone(),
    });
    let scan_settings = ScanSettings {
        endpoint_url: config.aws.endpoint_url.clone(),
        regions: if config.aws.scan_regions.is_empty() {
            ScanSettings::default().regions
        } else {
            config.aws.scan_regions.clone()
        },
        max_in_flight_total: config.aws.scan_max_in_flight.max(1),
        ..ScanSettings::default()
    };
    let organization_scanner = |real: Arc<dyn OrganizationScanner>| {
        demo_or(config.demo, real, |real| {
            Arc::new(DemoOrganizationScanner::new(real))
        })
    };
    let account_scanner = |real: Arc<dyn AccountScanner>| {
        demo_or(config.demo, real, |real| {
            Arc::new(DemoAccountScanner::new(real))
        })
    };
    let detections = DetectionService::new(DetectionPorts {
        repository: Arc::new(store.detections()),
        cloud_organizations: Arc::new(store.cloud_organizations()),
        accounts: Arc::new(store.cloud_accounts()),
        organizations: cloud_orgs.clone(),
        aws_organization: organization_scanner(Arc::new(AwsOrganizationScanner::new(
            identity_for_scans.clone(),
            scan_settings.clone(),
        ))),
        gcp_organization: organization_scanner(Arc::new(gcp_organization_scanner)),
        aws_account: account_scanner(Arc::new(AwsAccountScanner::new(
            identity_for_scans,
            scan_settings,
        ))),
        gcp_account: account_scanner(Arc::new(gcp_account_scanner)),
        billing: billing.clone(),
        jobs: jobs.clone(),
        clock: clock.clone(),
    });
    let views = CoverageViews::new(
        detections.clone(),
        Arc::new(store.coverage_marks()),
        Arc::new(canopy_cache::views::InProcessViews::new()),
    );
    let coverage = CoverageHistory::new(
        detections.clone(),
        Arc::new(store.coverage_snapshots()),
        billing.clone(),
        clock,
    );
    Ok(AppState::new(
        Services {
            tenancy,
            billing,
            cloud,
            metrics,
            jobs,
            cloud_orgs,
            detections,
            coverage,
            views,
            grants,
            reads,
            devices,
        },
        store,
        Edge {
            auth_per_minute: config.auth.rate_per_minute,
            trust_forwarded_for: config.server.trust_forwarded_for,
            public_url: config.server.public_url.clone(),
            demo: config.demo,
        },
    ))
}

/// The grant and organization-read caches of this process: on PostgreSQL they serve once
/// they hear every other process's changes (and stop while they cannot); on SQLite nothing
/// would tell them of another process's writes (`canopy admin verify-email` on the same
/// file), so they stay off.
fn caches(store: &Store) -> (GrantCache, OrgReadCache) {
    let (grants, reads) = (GrantCache::shared(), OrgReadCache::shared());
    let listeners = Listeners(vec![Arc::new(grants.clone()), Arc::new(reads.clone())]);
    match store.watch_grants(Arc::new(listeners)) {
        Some(_watching) => (grants, reads),
        None => (GrantCache::off(), OrgReadCache::off()),
    }
}

/// The job runner over `store` with every job handler this build has (`canopy serve` runs
/// `config.workers` of them beside the API; `canopy worker` runs them alone).
pub fn job_runner(config: &JobsConfig, state: &AppState, clock: Arc<dyn Clock>) -> JobRunner {
    // Each domain that queues long work registers its handler here. A job of a kind no
    // handler runs fails with that reason.
    let handlers: Vec<Arc<dyn JobHandler>> = [
        Arc::new(DiscoveryHandler::new(state.cloud_orgs.clone())) as Arc<dyn JobHandler>,
        Arc::new(ConnectMembersHandler::new(state.cloud_orgs.clone())),
    ]
    .into_iter()
    .chain(
        // Every scan leaves a coverage snapshot behind it.
        ScanHandler::all(state.detections.clone(), config.scan_accounts_in_flight)
            .into_iter()
            .map(|scan| {
                Arc::new(SnapshotAfter::new(scan, state.coverage.clone())) as Arc<dyn JobHandler>
            }),
    )
    .collect();
    let store = &state.store;
    JobRunner::new(
        Arc::new(store.jobs()),
        clock,
        handlers,
        RunnerSettings {
            workers: config.workers,
            lease: StdDuration::from_secs(config.lease_seconds.max(3)),
            poll: StdDuration::from_millis(config.poll_ms.max(10)),
        },
        JobRunner::process_name(),
    )
}

/// What `serve` says once at start-up about a setup that cannot work yet: Canopy's own AWS
/// identity missing (every check would fail) and the trusted principal still the placeholder
/// (every role template would trust nobody). Demo mode needs neither.
pub async fn warn_about_setup(config: &Config) -> Vec<&'static str> {
    let mut warnings = Vec::new();
    if config.demo {
        return warnings;
    }
    if config.aws.trusted_principal == PLACEHOLDER_PRINCIPAL {
        warnings.push("aws.trusted_principal");
        tracing::warn!(
            principal = PLACEHOLDER_PRINCIPAL,
            "aws.trusted_principal is still the placeholder: customer roles created from \
             Canopy's templates would trust no real identity. Set CANOPY_AWS_TRUSTED_PRINCIPAL \
             to Canopy's own account root or role ARN"
        );
    }
    let identity = aws_identity(&config.aws).await;
    let sts = StsRoleVerifier::new(identity, (&config.aws).into());
    // The default chain may ask the instance metadata service, which is slow to give up.
    let found = tokio::time::timeout(StdDuration::from_secs(5), sts.has_credentials()).await;
    if !matches!(found, Ok(true)) {
        warnings.push("aws credentials");
        tracing::warn!(
            "Canopy has no AWS credentials of its own, so no account check can succeed \
             (failure: canopy_credentials). Set CANOPY_AWS_ACCESS_KEY_ID and \
             CANOPY_AWS_SECRET_ACCESS_KEY, or run with an instance or task role"
        );
    }
    warnings
}

/// Opens the store and builds the state with the system clock.
pub async fn bootstrap(config: &Config) -> anyhow::Result<AppState> {
    let store = open_store(&config.database).await?;
    build_state(config, store, Arc::new(SystemClock)).await
}

#[cfg(test)]
mod tests {
    use super::{redact, warn_about_setup};
    use crate::config::{AwsConfig, Config};

    #[tokio::test]
    async fn start_up_names_the_placeholder_principal_and_nothing_else_when_set_up() {
        let with_keys = AwsConfig {
            access_key_id: Some("AKIDSETUP".into()),
            secret_access_key: Some("s".to_string().into()),
            ..AwsConfig::default()
        };
        let placeholder = Config {
            aws: with_keys.clone(),
            ..Config::default()
        };
        assert_eq!(
            warn_about_setup(&placeholder).await,
            vec!["aws.trusted_principal"]
        );
        let ready = Config {
            aws: AwsConfig {
                trusted_principal: "arn:aws:iam::111122223333:root".into(),
                ..with_keys
            },
            ..Config::default()
        };
        assert!(warn_about_setup(&ready).await.is_empty());
        let demo = Config {
            demo: true,
            ..Config::default()
        };
        assert!(warn_about_setup(&demo).await.is_empty());
    }

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
