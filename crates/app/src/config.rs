//! Configuration in layers (lowest first): defaults, an optional TOML file, `CANOPY_*`
//! environment variables (plus the conventional `DATABASE_URL`), then command-line flags.
//! Adapters receive small typed pieces of it and never read the environment themselves.

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

/// Everything `canopy serve` can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to listen on.
    pub bind: String,
    /// Database URL: SQLite (the embedded default) or `postgres://...`.
    pub database_url: String,
    /// PostgreSQL pool size.
    pub database_max_connections: u32,
    /// Public base URL of the console, for links in invitations.
    pub public_url: String,
    /// Log-in session lifetime, hours.
    pub session_ttl_hours: u32,
    /// Invitation lifetime, hours (spec: 48).
    pub invitation_ttl_hours: u32,
    /// Sign-up and log-in attempts allowed per client address per minute.
    pub auth_rate_per_minute: u32,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// Trust the first `X-Forwarded-For` address as the client (only behind a proxy you run).
    pub trust_forwarded_for: bool,
    /// Log format.
    pub log_format: LogFormat,
    /// argon2id memory cost, KiB.
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    pub argon2_iterations: u32,
    /// The AWS principal customers' roles trust (Canopy's own account root or role ARN).
    pub aws_trusted_principal: String,
    /// Endpoint override for every AWS service Canopy calls (an emulator); unset for AWS.
    pub aws_endpoint_url: Option<String>,
    /// Time allowed for one AWS call, milliseconds.
    pub aws_timeout_ms: u64,
    /// Static AWS access key for Canopy's own identity; unset to use the default chain
    /// (environment, profile, instance or task role).
    pub aws_access_key_id: Option<String>,
    /// The secret of `aws_access_key_id`. Never logged.
    #[serde(skip_serializing)]
    pub aws_secret_access_key: Option<secrecy::SecretString>,
    /// Seconds a fetched account's metrics are served from the cache.
    pub metrics_cache_ttl_secs: u64,
    /// Accounts whose metrics are fetched at once.
    pub metrics_concurrency: usize,
    /// Time allowed for one account's metrics (role assumption plus every page), ms.
    pub metrics_account_timeout_ms: u64,
    /// Redis URL for a metrics cache shared by several replicas; unset keeps it in process.
    pub redis_url: Option<String>,
    /// Serve synthetic metrics from the demo cloud instead of CloudWatch, and seed a demo
    /// organization (`canopy serve --demo`).
    pub demo: bool,
    /// Minutes between retention sweeps (history older than each plan's retention is
    /// deleted); 0 turns the sweep off.
    pub retention_sweep_minutes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            database_url: "sqlite://canopy.db?mode=rwc".into(),
            database_max_connections: 16,
            public_url: "http://localhost:8080".into(),
            session_ttl_hours: 24 * 7,
            invitation_ttl_hours: 48,
            auth_rate_per_minute: 10,
            max_body_bytes: 256 * 1024,
            trust_forwarded_for: false,
            log_format: LogFormat::Text,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            aws_trusted_principal: "arn:aws:iam::000000000000:root".into(),
            aws_endpoint_url: None,
            aws_timeout_ms: 5_000,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            retention_sweep_minutes: 60,
            metrics_cache_ttl_secs: 60,
            metrics_concurrency: 500,
            metrics_account_timeout_ms: 10_000,
            redis_url: None,
            demo: false,
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (or `./canopy.toml` when present), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file("canopy.toml")),
        }
        figment
            .merge(Env::raw().only(&["DATABASE_URL"]))
            .merge(Env::prefixed("CANOPY_"))
            .extract()
            .map_err(Box::new)
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
                "bind = \"0.0.0.0:9000\"\ninvitation_ttl_hours = 12\n",
            )?;
            jail.set_env("CANOPY_INVITATION_TTL_HOURS", "24");
            jail.set_env("DATABASE_URL", "postgres://x@localhost/db");
            let c = Config::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.bind, "0.0.0.0:9000");
            assert_eq!(c.invitation_ttl_hours, 24, "env wins over file");
            assert_eq!(c.database_url, "postgres://x@localhost/db");
            assert_eq!(c.session_ttl_hours, 168, "default kept");
            Ok(())
        });
    }

    #[test]
    fn default_is_an_embedded_sqlite_file() {
        assert!(
            Config::default()
                .database_url
                .starts_with("sqlite://canopy.db")
        );
    }
}
