//! Support for black-box tests: start the real server on an ephemeral port over a fresh
//! database, and drive it over HTTP like any client would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod bench;
pub mod browser;
pub mod cloud_org;
pub mod console;
pub mod proxy;
pub mod smtp;
pub mod synthetic;
pub mod wrk;

use std::sync::Arc;

use canopy_app::Config;
use canopy_app::bootstrap::build_state;
use canopy_app::config::{
    AuthConfig, AwsConfig, CacheConfig, GcpConfig, MetricsSection, SecretsConfig, ServerConfig,
};
use canopy_app::server::RunningServer;
use canopy_kernel::ManualClock;
use canopy_store::Store;
use chrono::{DurationRound, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The operator key tests seal customer secrets with (32 bytes of 0x2a, base64).
pub const TEST_SECRET_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// A running Canopy over a fresh database, with a clock the test moves.
pub struct TestApp {
    /// The server.
    pub server: RunningServer,
    /// Its database, for inspecting what was stored (outbox, rows).
    pub store: Store,
    /// Its services, for running job workers beside it.
    pub state: canopy_app::AppState,
    /// The server's clock.
    pub clock: Arc<ManualClock>,
    /// HTTP client.
    pub http: reqwest::Client,
    /// What it was started with (job workers beside it read their settings here).
    pub options: Options,
}

/// Options that differ between tests.
#[derive(Debug, Clone)]
pub struct Options {
    /// Sign-up and log-in attempts per minute per address.
    pub auth_rate_per_minute: u32,
    /// Largest body.
    pub max_body_bytes: usize,
    /// Where AWS calls go: moto, a canned local server, the local AWS of
    /// `canopy-aws-testkit`, or (default) a closed local port so a test never reaches the
    /// internet.
    pub aws_endpoint_url: String,
    /// Where Resource Manager calls go: the local GCP of `canopy-gcp-testkit`, or (default) a
    /// closed local port.
    pub gcp_endpoint_url: String,
    /// Canopy's own Google identity (a key file), for projects connected on their own.
    pub gcp_credentials_file: Option<std::path::PathBuf>,
    /// The operator key sealing customer secrets (`None`: not configured).
    pub secret_key: Option<String>,
    /// Retired operator keys (comma-separated) that still open what they sealed.
    pub retired_secret_keys: Option<String>,
    /// How long fetched metrics are served from the cache.
    pub metrics_cache_ttl_secs: u64,
    /// Redis for a shared metrics cache.
    pub redis_url: Option<String>,
    /// Serve the demo cloud and seed the demo organization, as `canopy serve --demo`.
    pub demo: bool,
    /// argon2id memory, KiB (cheap by default to keep the suite fast).
    pub argon2_memory_kib: u32,
    /// Password hashes at once and log-ins that may wait (0: the defaults).
    pub hashing: (usize, usize),
    /// Regions the detection scanners read (empty: Canopy's default set).
    pub scan_regions: Vec<String>,
    /// AWS calls in flight across the scans of one scanner (`aws.scan_max_in_flight`).
    pub scan_max_in_flight: usize,
    /// Member accounts one members scan reads at once (`jobs.scan_accounts_in_flight`), for
    /// the job workers of [`cloud_org::worker_for`].
    pub scan_accounts_in_flight: usize,
    /// Job workers [`cloud_org::worker_for`] runs (`jobs.workers`).
    pub job_workers: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            auth_rate_per_minute: 100_000,
            max_body_bytes: 64 * 1024,
            aws_endpoint_url: "http://127.0.0.1:9".into(),
            gcp_endpoint_url: "http://127.0.0.1:9/".into(),
            gcp_credentials_file: None,
            secret_key: Some(TEST_SECRET_KEY.into()),
            retired_secret_keys: None,
            metrics_cache_ttl_secs: 60,
            redis_url: None,
            demo: false,
            argon2_memory_kib: 1024,
            hashing: (0, 0),
            scan_regions: Vec::new(),
            scan_max_in_flight: AwsConfig::default().scan_max_in_flight,
            // Few, so a scan test with a handful of accounts still overlaps them.
            scan_accounts_in_flight: 4,
            job_workers: 1,
        }
    }
}

impl TestApp {
    /// Starts on `backend` (`sqlite` or `postgres`) with default options.
    pub async fn start(backend: &str) -> Self {
        Self::start_with(backend, Options::default()).await
    }

    /// Starts on `backend` with `options`.
    pub async fn start_with(backend: &str, options: Options) -> Self {
        let store = canopy_store::testing::migrated(backend).await.unwrap();
        let start = Utc::now()
            .duration_trunc(chrono::Duration::microseconds(1))
            .unwrap();
        Self::serve(store, Arc::new(ManualClock::new(start)), options).await
    }

    /// Starts over an opened store (for one reached through a proxy the test controls).
    pub async fn start_on(store: Store, options: Options) -> Self {
        let start = Utc::now()
            .duration_trunc(chrono::Duration::microseconds(1))
            .unwrap();
        Self::serve(store, Arc::new(ManualClock::new(start)), options).await
    }

    /// Another replica over the same database and clock (for caches shared between
    /// replicas).
    pub async fn replica(&self, options: Options) -> Self {
        Self::serve(self.store.clone(), self.clock.clone(), options).await
    }

    async fn serve(store: Store, clock: Arc<ManualClock>, options: Options) -> Self {
        // The server's warnings and errors go to the test's captured output, so a failure
        // in CI shows what the server logged (`RUST_LOG` widens it).
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .try_init();
        let config = Config {
            server: ServerConfig {
                bind: "127.0.0.1:0".into(),
                max_body_bytes: options.max_body_bytes,
                ..ServerConfig::default()
            },
            auth: AuthConfig {
                rate_per_minute: options.auth_rate_per_minute,
                // Cheap hashes keep the suite fast; production cost is the default's.
                argon2_memory_kib: options.argon2_memory_kib,
                argon2_iterations: 1,
                hashing_concurrency: options.hashing.0,
                hashing_queue: options.hashing.1,
                ..AuthConfig::default()
            },
            aws: AwsConfig {
                endpoint_url: Some(options.aws_endpoint_url.clone()),
                access_key_id: Some("AKIDCANOPYTESTS".into()),
                secret_access_key: Some("test-secret".to_string().into()),
                timeout_ms: 3_000,
                scan_regions: options.scan_regions.clone(),
                scan_max_in_flight: options.scan_max_in_flight,
                ..AwsConfig::default()
            },
            gcp: GcpConfig {
                endpoint_url: Some(options.gcp_endpoint_url.clone()),
                credentials_file: options.gcp_credentials_file.clone(),
                ..GcpConfig::default()
            },
            secrets: SecretsConfig {
                key: options.secret_key.clone().map(Into::into),
                retired_keys: options.retired_secret_keys.clone().map(Into::into),
                ..SecretsConfig::default()
            },
            metrics: MetricsSection {
                cache_ttl_secs: options.metrics_cache_ttl_secs,
                account_timeout_ms: 3_000,
                ..MetricsSection::default()
            },
            cache: CacheConfig {
                redis_url: options.redis_url.clone(),
            },
            demo: options.demo,
            ..Config::default()
        };
        let state = build_state(&config, store.clone(), clock.clone())
            .await
            .unwrap();
        if options.demo {
            canopy_app::demo::seed(&state).await.unwrap();
        }
        let server = canopy_app::start(&config, state.clone()).await.unwrap();
        Self {
            server,
            store,
            state,
            clock,
            http: reqwest::Client::new(),
            options,
        }
    }

    /// Sends a request; `token` becomes a bearer header, `body` JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.server.url(), path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Response {
            status,
            headers,
            body,
        }
    }

    /// GET.
    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Connects an AWS account with a random id to `org` as `token`'s holder; its Canopy id.
    pub async fn connect_random_aws_account(&self, token: &str, org: &str) -> String {
        let resp = self
            .post(
                &format!("/v1/organizations/{org}/cloud-accounts"),
                token,
                aws_account_body(&random_aws_account()),
            )
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
        resp.body["id"].as_str().unwrap().to_string()
    }

    /// Signs up a fresh user and verifies their address by opening the link of the
    /// verification e-mail (read from the outbox); returns their token and id.
    pub async fn sign_up(&self, name: &str) -> Session {
        let session = self.sign_up_unverified(name).await;
        self.verify_email(&session.email).await;
        session
    }

    /// Opens the newest verification link the outbox holds for `email`.
    pub async fn verify_email(&self, email: &str) {
        let token = self.outbox_token(email, "verify_email").await;
        let resp = self
            .call(
                Method::POST,
                "/v1/auth/verify-email",
                None,
                Some(json!({"token": token})),
            )
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    }

    /// The token of the newest unsent message of `kind` to `email` (its link's `token`).
    pub async fn outbox_token(&self, email: &str, kind: &str) -> String {
        let messages = self.store.outbox().unsent_for(email).await.unwrap();
        let link = messages
            .iter()
            .rev()
            .find(|m| m.kind == kind)
            .and_then(|m| m.link())
            .unwrap_or_else(|| panic!("no {kind} message to {email}: {messages:?}"))
            .to_string();
        link.split_once("token=")
            .map(|(_, t)| t.to_string())
            .unwrap_or_else(|| panic!("no token in {link}"))
    }

    /// Signs up a fresh user who has not opened their verification link yet.
    pub async fn sign_up_unverified(&self, name: &str) -> Session {
        let email = format!(
            "{}-{}@example.com",
            name.to_lowercase(),
            &uuid::Uuid::now_v7().simple().to_string()[24..]
        );
        let resp = self
            .call(
                Method::POST,
                "/v1/auth/signup",
                None,
                Some(json!({"email": email, "name": name, "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{:?}", resp.body);
        Session {
            token: resp.body["token"].as_str().unwrap().to_string(),
            user_id: resp.body["user"]["id"].as_str().unwrap().to_string(),
            email,
        }
    }

    /// The slug of organization `org` (an id or a slug), as `token`'s holder reads it.
    pub async fn slug_of(&self, org: &str, token: &str) -> String {
        let r = self.get(&format!("/v1/organizations/{org}"), token).await;
        r.body["organization"]["slug"].as_str().unwrap().to_string()
    }

    /// Creates an organization as `owner`; returns its id.
    pub async fn create_org(&self, owner: &Session, name: &str) -> String {
        let resp = self
            .post("/v1/organizations", &owner.token, json!({"name": name}))
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{:?}", resp.body);
        resp.body["id"].as_str().unwrap().to_string()
    }

    /// Creates an organization as `owner` and puts it on `tier`; returns its id.
    pub async fn create_org_on(&self, owner: &Session, name: &str, tier: &str) -> String {
        let org = self.create_org(owner, name).await;
        self.set_tier(&org, tier).await;
        org
    }

    /// Puts `org` on `tier` as an operator does (`canopy admin set-tier`), Enterprise too.
    /// Goes through this replica's own billing service, so its caches drop the old plan at
    /// once, as they do for a change made through the API.
    pub async fn set_tier(&self, org: &str, tier: &str) {
        canopy_app::admin::set_tier(&self.state.billing, org, tier)
            .await
            .unwrap();
    }

    /// Writes `org`'s stored tier as is, bypassing every rule: a plan that shrank underneath,
    /// or a legacy tier imported from the per-account pricing.
    /// Like any write behind the replica's back, it reaches the replica's caches by
    /// notification: this waits until one was told.
    pub async fn set_stored_tier(&self, org: &str, tier: &str) {
        let mark = self.state.reads.mark();
        canopy_store::testing::set_stored_tier(&self.store, org.parse().unwrap(), tier)
            .await
            .unwrap();
        self.told_since(mark).await;
    }

    /// Waits until this replica's organization-read cache was told of a change after `mark`
    /// (at once when it serves nothing, as on SQLite).
    pub async fn told_since(&self, mark: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.state.reads.listening() && self.state.reads.mark() == mark {
            assert!(
                std::time::Instant::now() < deadline,
                "no change was told within 5 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    /// Logs `who` in again (after the clock moved past their session); returns the new
    /// session.
    pub async fn log_in(&self, who: &Session) -> Session {
        let resp = self
            .call(
                Method::POST,
                "/v1/auth/login",
                None,
                Some(json!({"email": who.email, "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
        Session {
            token: resp.body["token"].as_str().unwrap().to_string(),
            ..who.clone()
        }
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Response {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    /// Invites `who` into `org` with `role` as `by` and accepts; `who` becomes a member.
    pub async fn add_member(&self, org: &str, by: &Session, who: &Session, role: &str) {
        let inv = self
            .post(
                &format!("/v1/organizations/{org}/invitations"),
                &by.token,
                json!({"email": who.email, "role": role}),
            )
            .await;
        assert_eq!(inv.status, StatusCode::CREATED, "{:?}", inv.body);
        let id = inv.body["id"].as_str().unwrap();
        let accepted = self
            .post(
                &format!("/v1/invitations/{id}/accept"),
                &who.token,
                json!({}),
            )
            .await;
        assert_eq!(accepted.status, StatusCode::OK, "{:?}", accepted.body);
    }
}

/// The Redis `.ci/run` starts, when the test needs one.
pub fn redis_url() -> String {
    std::env::var("CANOPY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The moto server `.ci/run` starts, when the test needs one.
pub fn moto_url() -> String {
    std::env::var("CANOPY_TEST_MOTO_URL").unwrap_or_else(|_| "http://127.0.0.1:5123".into())
}

/// A random 12-digit AWS account id, so tests sharing one moto or database never collide.
pub fn random_aws_account() -> String {
    let n = u64::from_le_bytes(uuid::Uuid::now_v7().as_bytes()[8..16].try_into().unwrap());
    format!("{:012}", n % 1_000_000_000_000)
}

/// The body of a manual AWS connect for `account`.
pub fn aws_account_body(account: &str) -> Value {
    json!({
        "provider": "aws",
        "accountId": account,
        "roleArn": format!("arn:aws:iam::{account}:role/CanopyAccess"),
        "region": "us-east-1",
        "alias": format!("Account {account}"),
        "environment": "production",
        "sesDomains": ["mail.example.com"],
        "tags": {"team": "email"}
    })
}

/// A signed-in test user.
#[derive(Debug, Clone)]
pub struct Session {
    /// Bearer token.
    pub token: String,
    /// User id.
    pub user_id: String,
    /// Email.
    pub email: String,
}

/// A response, fully read.
#[derive(Debug)]
pub struct Response {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// JSON body (or a string, or null).
    pub body: Value,
}

impl Response {
    /// Asserts a problem+json answer with `status` and `code`.
    pub fn assert_problem(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{:?}", self.body);
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{:?}",
            self.body
        );
        assert_eq!(self.body["code"], code, "{:?}", self.body);
        assert_eq!(self.body["status"], status.as_u16());
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
    }
}

/// Declares a black-box test that runs on SQLite and (ignored unless `.ci/run`) on PostgreSQL.
/// Each named `async fn(TestApp)` gets a started app; with `by_name;` first, each named
/// `async fn(&str)` gets the backend's name and starts what it needs itself; with
/// `by_name, needs moto;` both runs are ignored unless `.ci/run` (they also need moto).
#[macro_export]
macro_rules! on_both_backends {
    (by_name, needs moto; $($name:ident),* $(,)?) => {
        mod moto_sqlite {
            $(
                #[tokio::test]
                #[ignore = "needs moto"]
                async fn $name() {
                    super::$name("sqlite").await;
                }
            )*
        }
        mod moto_postgres {
            $(
                #[tokio::test]
                #[ignore = "needs moto and postgres"]
                async fn $name() {
                    super::$name("postgres").await;
                }
            )*
        }
    };
    (by_name, needs smtp; $($name:ident),* $(,)?) => {
        mod smtp_sqlite {
            $(
                #[tokio::test]
                #[ignore = "needs aiosmtpd"]
                async fn $name() {
                    super::$name("sqlite").await;
                }
            )*
        }
        mod smtp_postgres {
            $(
                #[tokio::test]
                #[ignore = "needs aiosmtpd and postgres"]
                async fn $name() {
                    super::$name("postgres").await;
                }
            )*
        }
    };
    (by_name; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name("sqlite").await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[ignore = "needs postgres"]
                async fn $name() {
                    super::$name("postgres").await;
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::TestApp::start("sqlite").await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[ignore = "needs postgres"]
                async fn $name() {
                    super::$name($crate::TestApp::start("postgres").await).await;
                }
            )*
        }
    };
}
