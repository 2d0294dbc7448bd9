//! SES metrics from CloudWatch `GetMetricData` (namespace `AWS/SES`, Sum per period) in each
//! customer account, read with the credentials of the account's role, assumed through STS
//! with the organization's External ID. Assumed credentials are cached per role and reused
//! until shortly before they expire; concurrent requests for one role share one
//! `AssumeRole`. One HTTP client (one connection pool) serves every account.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_smithy_http_client::tls;
use canopy_cloud_org::health::{AccessFailure, FailureKind};
use canopy_cloud_org::identifiers::RoleArn;
use canopy_metrics::ports::{MetricSource, MetricTarget};
use canopy_metrics::{Datapoints, SesMetric, Window};
use chrono::{DateTime, Utc};
use moka::Expiry;
use moka::future::Cache;

use crate::classify;

/// Settings of the CloudWatch source.
#[derive(Debug, Clone)]
pub struct CloudWatchSettings {
    /// Endpoint override for STS and CloudWatch (a local server in tests); `None` for AWS.
    pub endpoint_url: Option<String>,
    /// Time allowed for one account: role assumption plus every page.
    pub account_timeout: Duration,
    /// Assumed credentials are renewed this long before they expire.
    pub refresh_margin: Duration,
    /// Lifetime asked of STS for assumed credentials.
    pub session_duration: Duration,
    /// Roles whose credentials are kept at most.
    pub max_cached_roles: u64,
}

impl Default for CloudWatchSettings {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            account_timeout: Duration::from_secs(10),
            refresh_margin: Duration::from_secs(300),
            session_duration: Duration::from_secs(3_600),
            max_cached_roles: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RoleKey {
    role_arn: RoleArn,
    external_id: String,
    session_name: String,
}

#[derive(Debug)]
struct Assumed {
    credentials: Credentials,
    /// How long after it was stored this entry must be renewed.
    fresh_for: Duration,
}

/// Keeps each role's credentials until the margin before their expiry.
struct UntilRenewal;

impl Expiry<RoleKey, Arc<Assumed>> for UntilRenewal {
    fn expire_after_create(
        &self,
        _key: &RoleKey,
        value: &Arc<Assumed>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.fresh_for)
    }
}

/// [`MetricSource`] on aws-sdk-sts and aws-sdk-cloudwatch. Each account's read runs as its own
/// task, so one request's fan-out spreads over every worker thread instead of being polled
/// by the request's task alone.
#[derive(Clone)]
pub struct CloudWatchSource {
    reader: Arc<Reader>,
}

struct Reader {
    base: SdkConfig,
    settings: CloudWatchSettings,
    credentials: Cache<RoleKey, Arc<Assumed>>,
    sts: Mutex<HashMap<String, aws_sdk_sts::Client>>,
    /// One client per region; each call brings its account's credentials as an operation
    /// override. Building a client per call costs a TLS connector (root certificates parsed)
    /// every time: measured at 14 % of the CPU of a 500-account fan-out.
    cloudwatch: Mutex<HashMap<String, aws_sdk_cloudwatch::Client>>,
}

impl std::fmt::Debug for CloudWatchSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudWatchSource")
            .field("settings", &self.reader.settings)
            .field("cached_roles", &self.reader.credentials.entry_count())
            .finish_non_exhaustive()
    }
}

/// Codes (the start of a classified failure's message) that mean the cached credentials are
/// no longer good, rather than that the role refuses Canopy.
const STALE_CREDENTIALS: [&str; 4] = [
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
];

fn failure(kind: FailureKind, message: impl Into<String>) -> AccessFailure {
    AccessFailure {
        kind,
        message: message.into(),
    }
}

impl CloudWatchSource {
    /// A source acting as Canopy's identity in `base` (its credentials assume the customer
    /// roles). Every client shares one HTTP connection pool.
    pub fn new(base: SdkConfig, settings: CloudWatchSettings) -> Self {
        let base = if base.http_client().is_some() {
            base
        } else {
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .build_https();
            base.into_builder().http_client(http).build()
        };
        let credentials = Cache::builder()
            .max_capacity(settings.max_cached_roles)
            .expire_after(UntilRenewal)
            .build();
        Self {
            reader: Arc::new(Reader {
                base,
                settings,
                credentials,
                sts: Mutex::new(HashMap::new()),
                cloudwatch: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl Reader {
    fn sts(&self, region: &str) -> aws_sdk_sts::Client {
        let mut clients = self.sts.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let mut config = aws_sdk_sts::config::Builder::from(&self.base)
                    .region(Region::new(region.to_string()));
                if let Some(url) = &self.settings.endpoint_url {
                    config = config.endpoint_url(url);
                }
                aws_sdk_sts::Client::from_conf(config.build())
            })
            .clone()
    }

    async fn assume(&self, target: &MetricTarget) -> Result<Arc<Assumed>, AccessFailure> {
        let output = self
            .sts(target.region.as_str())
            .assume_role()
            .role_arn(target.role_arn.as_str())
            .external_id(&target.external_id)
            .role_session_name(&target.session_name)
            .duration_seconds(
                i32::try_from(self.settings.session_duration.as_secs()).unwrap_or(3_600),
            )
            .send()
            .await
            .map_err(|e| classify(&e, "STS"))?;
        let c = output
            .credentials()
            .ok_or_else(|| failure(FailureKind::Other, "STS returned no credentials"))?;
        let expires = SystemTime::try_from(*c.expiration()).ok();
        let lifetime = expires
            .and_then(|e| e.duration_since(SystemTime::now()).ok())
            .unwrap_or_default();
        Ok(Arc::new(Assumed {
            credentials: Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_string()),
                expires,
                "canopy-assumed-role",
            ),
            fresh_for: lifetime.saturating_sub(self.settings.refresh_margin),
        }))
    }

    /// The role's credentials: cached, or assumed once for every concurrent caller.
    async fn credentials(&self, target: &MetricTarget) -> Result<Arc<Assumed>, AccessFailure> {
        let key = RoleKey {
            role_arn: target.role_arn.clone(),
            external_id: target.external_id.clone(),
            session_name: target.session_name.clone(),
        };
        self.credentials
            .try_get_with(key, self.assume(target))
            .await
            .map_err(|e| (*e).clone())
    }

    fn cloudwatch(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        let mut clients = self.cloudwatch.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let retry = aws_sdk_cloudwatch::config::retry::RetryConfig::standard()
                    .with_max_attempts(2)
                    .with_initial_backoff(Duration::from_millis(100));
                let mut config = aws_sdk_cloudwatch::config::Builder::from(&self.base)
                    .region(Region::new(region.to_string()))
                    .retry_config(retry);
                if let Some(url) = &self.settings.endpoint_url {
                    config = config.endpoint_url(url);
                }
                aws_sdk_cloudwatch::Client::from_conf(config.build())
            })
            .clone()
    }

    async fn read(
        &self,
        target: &MetricTarget,
        window: &Window,
        credentials: &Credentials,
    ) -> Result<Datapoints, AccessFailure> {
        let client = self.cloudwatch(target.region.as_str());
        let queries: Vec<MetricDataQuery> = SesMetric::ALL
            .iter()
            .map(|m| {
                MetricDataQuery::builder()
                    .id(format!("m{}", m.index()))
                    .metric_stat(
                        MetricStat::builder()
                            .metric(
                                Metric::builder()
                                    .namespace("AWS/SES")
                                    .metric_name(m.cloudwatch_name())
                                    .build(),
                            )
                            .period(i32::try_from(window.period).unwrap_or(i32::MAX))
                            .stat("Sum")
                            .build(),
                    )
                    .return_data(true)
                    .build()
            })
            .collect();
        let mut data = Datapoints::default();
        let mut next: Option<String> = None;
        loop {
            let page = client
                .get_metric_data()
                .set_metric_data_queries(Some(queries.clone()))
                .start_time(AwsDateTime::from_secs(window.start.timestamp()))
                .end_time(AwsDateTime::from_secs(window.end().timestamp()))
                .scan_by(ScanBy::TimestampAscending)
                .set_next_token(next.take())
                .customize()
                .config_override(
                    aws_sdk_cloudwatch::config::Builder::default()
                        .credentials_provider(credentials.clone()),
                )
                .send()
                .await
                .map_err(|e| classify(&e, "CloudWatch"))?;
            for result in page.metric_data_results() {
                let Some(metric) = result
                    .id()
                    .and_then(|id| id.strip_prefix('m'))
                    .and_then(|i| i.parse::<usize>().ok())
                    .and_then(|i| SesMetric::ALL.get(i).copied())
                else {
                    continue;
                };
                for (t, v) in result.timestamps().iter().zip(result.values()) {
                    if let Some(at) = DateTime::<Utc>::from_timestamp(t.secs(), 0) {
                        data.points.push((metric, at, *v));
                    }
                }
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => return Ok(data),
            }
        }
    }

    async fn fetch_unbounded(
        &self,
        target: &MetricTarget,
        window: &Window,
    ) -> Result<Datapoints, AccessFailure> {
        let assumed = self.credentials(target).await?;
        match self.read(target, window, &assumed.credentials).await {
            // Credentials revoked or expired early: assume again, once.
            Err(f)
                if STALE_CREDENTIALS
                    .iter()
                    .any(|code| f.message.starts_with(code)) =>
            {
                self.credentials
                    .invalidate(&RoleKey {
                        role_arn: target.role_arn.clone(),
                        external_id: target.external_id.clone(),
                        session_name: target.session_name.clone(),
                    })
                    .await;
                let fresh = self.credentials(target).await?;
                self.read(target, window, &fresh.credentials).await
            }
            other => other,
        }
    }
}

#[async_trait]
impl MetricSource for CloudWatchSource {
    async fn fetch(
        &self,
        target: &MetricTarget,
        window: &Window,
    ) -> Result<Datapoints, AccessFailure> {
        let (reader, target, window) = (self.reader.clone(), target.clone(), *window);
        let budget = reader.settings.account_timeout;
        let read = tokio::spawn(async move {
            match tokio::time::timeout(budget, reader.fetch_unbounded(&target, &window)).await {
                Ok(result) => result,
                Err(_) => Err(failure(
                    FailureKind::Timeout,
                    format!(
                        "account {} did not answer within {} ms",
                        target.aws_account_id,
                        budget.as_millis()
                    ),
                )),
            }
        });
        read.await.unwrap_or_else(|e| {
            Err(failure(
                FailureKind::Other,
                format!("the read was cancelled: {e}"),
            ))
        })
    }
}
