//! Configuration in layers (lowest first): defaults, an optional TOML file, `CANOPY_*`
//! environment variables (plus the conventional `DATABASE_URL`), then command-line flags.
//! Grouped into one small typed section per concern, each handed to the adapter that needs
//! it; adapters never read the environment themselves.
//!
//! The file uses the sections (`[database] url = "…"`); the environment keeps the flat names
//! the README documents (`CANOPY_DATABASE_URL`), mapped onto the sections by [`ENV_NAMES`].

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The HTTP edge.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: String,
    /// Public base URL, for links in invitations and connection requests.
    pub public_url: String,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// Trust the first `X-Forwarded-For` address as the client (only behind a proxy you run).
    pub trust_forwarded_for: bool,
    /// Log format.
    pub log_format: LogFormat,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            public_url: "http://localhost:8080".into(),
            max_body_bytes: 256 * 1024,
            trust_forwarded_for: false,
            log_format: LogFormat::Text,
        }
    }
}

/// The database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// SQLite (the embedded default) or `postgres://...`.
    pub url: String,
    /// PostgreSQL pool size.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://canopy.db?mode=rwc".into(),
            max_connections: 16,
        }
    }
}

/// Sessions, invitations, password hashing and the sign-up / log-in rate limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Log-in session lifetime, hours.
    pub session_ttl_hours: u32,
    /// Invitation lifetime, hours (spec: 48).
    pub invitation_ttl_hours: u32,
    /// Sign-up and log-in attempts allowed per client address per minute.
    pub rate_per_minute: u32,
    /// argon2id memory cost, KiB.
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    pub argon2_iterations: u32,
    /// Password hashes computed at once, each holding one argon2 working memory; 0 is one
    /// per core.
    pub hashing_concurrency: usize,
    /// Log-ins that may wait for a hashing slot before the rest get 503; 0 is 16 per core.
    pub hashing_queue: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            session_ttl_hours: 24 * 7,
            invitation_ttl_hours: 48,
            rate_per_minute: 10,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            hashing_concurrency: 0,
            hashing_queue: 0,
        }
    }
}

/// The default trusted principal: a placeholder no customer role should trust, warned about
/// at start-up.
pub const PLACEHOLDER_PRINCIPAL: &str = "arn:aws:iam::000000000000:root";

/// Canopy's own AWS identity and how it calls AWS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsConfig {
    /// The AWS principal customers' roles trust (Canopy's own account root or role ARN).
    pub trusted_principal: String,
    /// Endpoint override for every AWS service Canopy calls (an emulator); unset for AWS.
    pub endpoint_url: Option<String>,
    /// Time allowed for one STS call, milliseconds.
    pub timeout_ms: u64,
    /// Static access key for Canopy's own identity; unset uses the default chain
    /// (environment, profile, instance or task role).
    pub access_key_id: Option<String>,
    /// The secret of `access_key_id`. Never logged, never serialized.
    #[serde(skip_serializing)]
    pub secret_access_key: Option<secrecy::SecretString>,
    /// AWS Organizations calls in flight for one cloud organization's discovery
    /// (Organizations has one global endpoint and throttles hard).
    pub organizations_max_in_flight: usize,
    /// Regions the detection scanners read (empty: Canopy's default set; an account's own
    /// region is always added).
    pub scan_regions: Vec<String>,
    /// AWS calls in flight across every scan of one process.
    pub scan_max_in_flight: usize,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            trusted_principal: PLACEHOLDER_PRINCIPAL.into(),
            endpoint_url: None,
            timeout_ms: 5_000,
            access_key_id: None,
            secret_access_key: None,
            organizations_max_in_flight: 8,
            scan_regions: Vec::new(),
            scan_max_in_flight: 64,
        }
    }
}

/// How Canopy calls Google Cloud.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcpConfig {
    /// Resource Manager endpoint override (a local server); unset for Google. With it, keys
    /// may name any token endpoint.
    pub endpoint_url: Option<String>,
    /// Canopy's own Google identity (a service-account key file), for verifying GCP projects
    /// connected on their own; unset: only projects of a connected GCP organization verify.
    pub credentials_file: Option<std::path::PathBuf>,
    /// Resource Manager calls in flight for one GCP organization's discovery.
    pub max_in_flight: usize,
}

impl Default for GcpConfig {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            credentials_file: None,
            max_in_flight: 8,
        }
    }
}

/// The operator's keys that seal customer secrets at rest (docs/operations.md, rotation).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// The current key: base64 of 32 random bytes (`openssl rand -base64 32`). Never logged.
    #[serde(skip_serializing)]
    pub key: Option<secrecy::SecretString>,
    /// A file holding the current key instead (wins over `key`).
    pub key_file: Option<std::path::PathBuf>,
    /// Retired keys, comma-separated: they still open what they sealed until
    /// `canopy secrets reseal` has moved it to the current key.
    #[serde(skip_serializing)]
    pub retired_keys: Option<secrecy::SecretString>,
}

/// The SES metrics fan-out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Seconds a fetched account's metrics are served from the cache.
    pub cache_ttl_secs: u64,
    /// Accounts whose metrics are fetched at once.
    pub concurrency: usize,
    /// Time allowed for one account's metrics (role assumption plus every page), ms.
    pub account_timeout_ms: u64,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            cache_ttl_secs: 60,
            concurrency: 500,
            account_timeout_ms: 10_000,
        }
    }
}

/// The shared cache.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Redis URL for a metrics cache shared by several replicas; unset keeps it in process.
    pub redis_url: Option<String>,
}

/// History retention.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Minutes between sweeps deleting history older than each plan's retention; 0 is off.
    pub sweep_minutes: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { sweep_minutes: 60 }
    }
}

/// Background job workers (docs/adr/0001-durable-jobs.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Workers inside `canopy serve` (0: this replica serves the API only and `canopy worker`
    /// processes run the jobs).
    pub workers: usize,
    /// Seconds a claimed job stays leased without a heartbeat; a dead worker's job is claimed
    /// again after this.
    pub lease_seconds: u64,
    /// Milliseconds an idle worker waits before looking for work again.
    pub poll_ms: u64,
    /// Minutes between scheduled re-syncs of each cloud organization (0: only on demand).
    pub resync_minutes: u64,
    /// Minutes between scheduled detection scans of each cloud organization and its member
    /// accounts, on plans with organization features (0: only on demand).
    pub scan_minutes: u64,
    /// Member accounts one members scan reads at once.
    pub scan_accounts_in_flight: usize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            lease_seconds: 30,
            poll_ms: 1000,
            resync_minutes: 360,
            scan_minutes: 1_440,
            scan_accounts_in_flight: canopy_detection::scan::DEFAULT_ACCOUNTS_IN_FLIGHT,
        }
    }
}

/// Outgoing e-mail (invitations, address verification, password reset). Without a host,
/// messages stay in the outbox for `canopy admin outbox`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Mail server host; unset keeps e-mail in the outbox.
    pub host: Option<String>,
    /// Port; 587 for `starttls`, 465 for `tls`, 25 for `none` when unset.
    pub port: Option<u16>,
    /// `starttls` (required, the default), `tls` (implicit) or `none` (a relay on this host).
    pub security: String,
    /// AUTH user name.
    pub username: Option<String>,
    /// AUTH password. Never logged, never serialized.
    #[serde(skip_serializing)]
    pub password: Option<secrecy::SecretString>,
    /// The sender, `Name <address>`.
    pub from: String,
    /// Seconds one delivery (connect, TLS, AUTH, the message) may take.
    pub timeout_secs: u64,
    /// Milliseconds between looks at the outbox when it is empty.
    pub poll_ms: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: None,
            port: None,
            security: "starttls".into(),
            username: None,
            password: None,
            from: "Canopy <no-reply@localhost>".into(),
            timeout_secs: 30,
            poll_ms: 2_000,
        }
    }
}

/// Everything `canopy` can be told.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The HTTP edge.
    pub server: ServerConfig,
    /// The database.
    pub database: DatabaseConfig,
    /// Sessions, invitations, hashing, rate limit.
    pub auth: AuthConfig,
    /// AWS.
    pub aws: AwsConfig,
    /// Google Cloud.
    pub gcp: GcpConfig,
    /// Keys sealing customer secrets.
    pub secrets: SecretsConfig,
    /// SES metrics.
    pub metrics: MetricsSection,
    /// Shared cache.
    pub cache: CacheConfig,
    /// History retention.
    pub retention: RetentionConfig,
    /// Background job workers.
    pub jobs: JobsConfig,
    /// Outgoing e-mail.
    pub smtp: SmtpConfig,
    /// Serve synthetic metrics from the demo cloud and seed a demo organization.
    pub demo: bool,
}

/// The environment variables (after `CANOPY_`, lower-cased) and the setting each one sets.
pub const ENV_NAMES: &[(&str, &str)] = &[
    ("bind", "server.bind"),
    ("public_url", "server.public_url"),
    ("max_body_bytes", "server.max_body_bytes"),
    ("trust_forwarded_for", "server.trust_forwarded_for"),
    ("log_format", "server.log_format"),
    ("database_url", "database.url"),
    ("database_max_connections", "database.max_connections"),
    ("session_ttl_hours", "auth.session_ttl_hours"),
    ("invitation_ttl_hours", "auth.invitation_ttl_hours"),
    ("auth_rate_per_minute", "auth.rate_per_minute"),
    ("argon2_memory_kib", "auth.argon2_memory_kib"),
    ("argon2_iterations", "auth.argon2_iterations"),
    ("hashing_concurrency", "auth.hashing_concurrency"),
    ("hashing_queue", "auth.hashing_queue"),
    ("aws_trusted_principal", "aws.trusted_principal"),
    ("aws_endpoint_url", "aws.endpoint_url"),
    ("aws_timeout_ms", "aws.timeout_ms"),
    ("aws_access_key_id", "aws.access_key_id"),
    ("aws_secret_access_key", "aws.secret_access_key"),
    (
        "aws_organizations_max_in_flight",
        "aws.organizations_max_in_flight",
    ),
    ("gcp_endpoint_url", "gcp.endpoint_url"),
    ("gcp_max_in_flight", "gcp.max_in_flight"),
    ("gcp_credentials_file", "gcp.credentials_file"),
    ("secret_key", "secrets.key"),
    ("secret_key_file", "secrets.key_file"),
    ("secret_keys_retired", "secrets.retired_keys"),
    ("metrics_cache_ttl_secs", "metrics.cache_ttl_secs"),
    ("metrics_concurrency", "metrics.concurrency"),
    ("metrics_account_timeout_ms", "metrics.account_timeout_ms"),
    ("redis_url", "cache.redis_url"),
    ("retention_sweep_minutes", "retention.sweep_minutes"),
    ("job_workers", "jobs.workers"),
    ("job_lease_seconds", "jobs.lease_seconds"),
    ("job_poll_ms", "jobs.poll_ms"),
    ("resync_minutes", "jobs.resync_minutes"),
    ("scan_minutes", "jobs.scan_minutes"),
    ("scan_accounts_in_flight", "jobs.scan_accounts_in_flight"),
    ("aws_scan_max_in_flight", "aws.scan_max_in_flight"),
    ("smtp_host", "smtp.host"),
    ("smtp_port", "smtp.port"),
    ("smtp_security", "smtp.security"),
    ("smtp_username", "smtp.username"),
    ("smtp_password", "smtp.password"),
    ("smtp_from", "smtp.from"),
    ("smtp_timeout_secs", "smtp.timeout_secs"),
    ("smtp_poll_ms", "smtp.poll_ms"),
    ("demo", "demo"),
];

/// Settings given on the command line; they win over every other layer.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--bind`.
    pub bind: Option<String>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--demo`.
    pub demo: bool,
}

impl Config {
    /// Loads defaults, then `file` (or `./canopy.toml` when present), then the environment,
    /// then `flags`.
    pub fn load(file: Option<&Path>, flags: &Flags) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file("canopy.toml")),
        }
        let mut config: Config = figment
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            )
            .merge(Env::prefixed("CANOPY_").filter_map(|key| {
                ENV_NAMES
                    .iter()
                    .find(|(name, _)| key == *name)
                    .map(|(_, path)| (*path).into())
            }))
            .extract()
            .map_err(Box::new)?;
        config.apply(flags);
        Ok(config)
    }

    /// Applies command-line flags: the one place they override the other layers.
    pub fn apply(&mut self, flags: &Flags) {
        if let Some(bind) = &flags.bind {
            self.server.bind = bind.clone();
        }
        if let Some(url) = &flags.database_url {
            self.database.url = url.clone();
        }
        self.demo |= flags.demo;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn layers_override_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[server]\nbind = \"0.0.0.0:9000\"\n[auth]\ninvitation_ttl_hours = 12\n",
            )?;
            jail.set_env("CANOPY_INVITATION_TTL_HOURS", "24");
            jail.set_env("DATABASE_URL", "postgres://x@localhost/db");
            jail.set_env("CANOPY_METRICS_CONCURRENCY", "7");
            let flags = Flags {
                bind: Some("127.0.0.1:7000".into()),
                ..Flags::default()
            };
            let c = Config::load(Some(Path::new("c.toml")), &flags).map_err(|e| e.to_string())?;
            assert_eq!(c.server.bind, "127.0.0.1:7000", "flags win over the file");
            assert_eq!(c.auth.invitation_ttl_hours, 24, "env wins over file");
            assert_eq!(c.database.url, "postgres://x@localhost/db");
            assert_eq!(c.metrics.concurrency, 7);
            assert_eq!(c.auth.session_ttl_hours, 168, "default kept");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn every_documented_variable_reaches_its_section() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CANOPY_DATABASE_URL", "postgres://y@localhost/db");
            jail.set_env("CANOPY_AWS_ENDPOINT_URL", "http://127.0.0.1:5123");
            jail.set_env("CANOPY_REDIS_URL", "redis://127.0.0.1:6379");
            jail.set_env("CANOPY_RETENTION_SWEEP_MINUTES", "0");
            // Other CANOPY_* variables (test harnesses, the CLI's token) are not settings.
            jail.set_env("CANOPY_CONNECT_TOKEN", "cnp_conn_x");
            let c = Config::load(None, &Flags::default()).map_err(|e| e.to_string())?;
            assert_eq!(c.database.url, "postgres://y@localhost/db");
            assert_eq!(c.aws.endpoint_url.as_deref(), Some("http://127.0.0.1:5123"));
            assert_eq!(c.cache.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
            assert_eq!(c.retention.sweep_minutes, 0);
            Ok(())
        });
        let paths: std::collections::HashSet<_> = ENV_NAMES.iter().map(|(_, p)| p).collect();
        assert_eq!(
            paths.len(),
            ENV_NAMES.len(),
            "two variables set one setting"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn unknown_keys_in_the_file_are_refused_by_name() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "[server]\nbnd = \"0.0.0.0:9000\"\n")?;
            let err = Config::load(Some(Path::new("typo.toml")), &Flags::default())
                .expect_err("a misspelt key was accepted");
            assert!(err.to_string().contains("bnd"), "{err}");
            jail.create_file("top.toml", "dmo = true\n")?;
            let err = Config::load(Some(Path::new("top.toml")), &Flags::default())
                .expect_err("a misspelt top-level key was accepted");
            assert!(err.to_string().contains("dmo"), "{err}");
            jail.create_file("ok.toml", "demo = true\n[server]\nbind = \"0.0.0.0:9\"\n")?;
            let c = Config::load(Some(Path::new("ok.toml")), &Flags::default())
                .map_err(|e| e.to_string())?;
            assert!(c.demo);
            Ok(())
        });
    }

    #[test]
    fn default_is_an_embedded_sqlite_file() {
        assert!(
            Config::default()
                .database
                .url
                .starts_with("sqlite://canopy.db")
        );
    }
}
