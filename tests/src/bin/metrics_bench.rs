//! Metrics fan-out benchmark: the real CloudWatch source (aws-sdk-sts + aws-sdk-cloudwatch)
//! against the local AWS of `canopy-aws-testkit` with an injected latency per call, over 3,
//! 10, 100 and 500 accounts: cold (assume role and fetch), warm credentials (fetch only) and
//! cached; plus fifty concurrent viewers on a cold cache, counted in AWS calls. What is timed
//! is `MetricsService::collect` plus the aggregation: what a request pays beyond reading the
//! organization's account list. Results go to docs/benchmarks.md; `just bench` runs it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use canopy_app::Config;
use canopy_app::bootstrap::build_state;
use canopy_app::config::AwsConfig;
use canopy_aws::{CloudWatchSettings, CloudWatchSource};
use canopy_aws_testkit::FakeAws;
use canopy_cache::InProcessCache;
use canopy_cloud_org::CloudAccountId;
use canopy_cloud_org::identifiers::{AwsAccountId, AwsRegion, RoleArn};
use canopy_kernel::{Clock, SystemClock};
use canopy_metrics::aggregate::aggregate;
use canopy_metrics::ports::{MetricTarget, NoCache, SeriesCache};
use canopy_metrics::{MetricsConfig, MetricsPorts, MetricsService, RangePreset, RangeSpec, Window};
use chrono::Duration as Span;
use clap::Parser;
use hdrhistogram::Histogram;

#[derive(Parser, Debug)]
#[command(about = "Canopy metrics fan-out benchmark")]
struct Args {
    /// Latency injected into every STS and CloudWatch answer, milliseconds.
    #[arg(long, default_value_t = 100)]
    latency_ms: u64,
    /// Account counts to fan out over.
    #[arg(long, value_delimiter = ',', default_value = "3,10,100,500")]
    accounts: Vec<usize>,
    /// Runs of the cold and warm-credential cases (the report gives the median).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Iterations of the cached case (the report gives p50 and p99).
    #[arg(long, default_value_t = 300)]
    cached_iterations: usize,
    /// Concurrent viewers for the call count.
    #[arg(long, default_value_t = 50)]
    viewers: usize,
    /// Fan-out concurrency.
    #[arg(long, default_value_t = 500)]
    concurrency: usize,
    /// Cases to run (cold, warm, cached, viewers); the others print "-" (for profiling one).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "cold,warm,cached,viewers"
    )]
    cases: Vec<String>,
}

/// Canopy's identity, with one HTTP client for every source the bench builds: "cold" means
/// no cached credentials or series, not a new process with a new connection pool.
fn identity(http: &SharedHttpClient) -> SdkConfig {
    SdkConfig::builder()
        .http_client(http.clone())
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDCANOPYBENCH",
            "secret",
            None,
            None,
            "bench",
        )))
        .build()
}

struct Bench {
    aws: FakeAws,
    http: SharedHttpClient,
    base: MetricsPorts,
    concurrency: usize,
    window: Window,
}

impl Bench {
    fn source(&self) -> Arc<CloudWatchSource> {
        Arc::new(CloudWatchSource::new(
            identity(&self.http),
            CloudWatchSettings {
                endpoint_url: Some(self.aws.url()),
                account_timeout: Duration::from_secs(30),
                ..CloudWatchSettings::default()
            },
        ))
    }

    fn service(
        &self,
        source: Arc<CloudWatchSource>,
        cache: Arc<dyn SeriesCache>,
    ) -> MetricsService {
        MetricsService::new(
            MetricsPorts {
                source,
                cache,
                ..self.base.clone()
            },
            MetricsConfig {
                concurrency: self.concurrency,
            },
        )
    }

    /// One request's work: fan out, then aggregate what answered.
    async fn once(
        &self,
        service: &MetricsService,
        targets: &[MetricTarget],
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let outcomes = service.collect(targets, self.window).await;
        let mut answered = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            let series = o
                .result
                .map_err(|f| anyhow::anyhow!("{}: {}", f.kind.as_str(), f.message))?;
            answered.push((o.account, series));
        }
        let report = aggregate(self.window, false, &answered);
        std::hint::black_box(&report);
        Ok(started.elapsed())
    }
}

fn median(mut xs: Vec<Duration>) -> Option<Duration> {
    xs.sort();
    xs.get(xs.len() / 2).copied()
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.1}", d.as_secs_f64() * 1_000.0),
    )
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let aws = FakeAws::start().await?;
    let config = Config {
        aws: AwsConfig {
            endpoint_url: Some(aws.url()),
            access_key_id: Some("AKIDCANOPYBENCH".into()),
            secret_access_key: Some("secret".to_string().into()),
            ..AwsConfig::default()
        },
        ..Config::default()
    };
    let store = canopy_store::testing::migrated("sqlite")
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let state = build_state(&config, store, Arc::new(SystemClock))
        .await
        .context("building the app state")?;
    let window = Window::resolve(RangeSpec::Preset(RangePreset::Day), SystemClock.now())?;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_https();
    let bench = Bench {
        base: MetricsPorts {
            cloud: state.cloud.clone(),
            billing: state.billing.clone(),
            source: Arc::new(CloudWatchSource::new(
                identity(&http),
                CloudWatchSettings::default(),
            )),
            cache: Arc::new(NoCache),
            clock: Arc::new(SystemClock),
        },
        aws,
        http,
        concurrency: args.concurrency,
        window,
    };
    let latency = Duration::from_millis(args.latency_ms);

    println!(
        "latency={}ms range=24h ({} buckets x 5 metrics) concurrency={} runs={} cached_iterations={}\n",
        args.latency_ms, window.buckets, args.concurrency, args.runs, args.cached_iterations
    );
    println!(
        "| accounts | cold median ms | cold max ms | warm-credentials median ms | warm max ms | cached p50 ms | cached p99 ms | {} viewers: AssumeRole / GetMetricData calls |",
        args.viewers
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &n in &args.accounts {
        let targets: Vec<MetricTarget> = (0..n)
            .map(|i| {
                let account = format!("{:012}", 300_000_000_000u64 + (n as u64) * 1_000 + i as u64);
                for b in 0..window.buckets {
                    let at = window.start + Span::seconds(i64::from(b) * window.period + 30);
                    bench
                        .aws
                        .put_metric(&account, "Send", at, 100.0 + f64::from(b));
                    bench.aws.put_metric(&account, "Delivery", at, 98.0);
                    bench.aws.put_metric(&account, "Bounce", at, 2.0);
                }
                Ok(MetricTarget {
                    account: CloudAccountId::new(),
                    role_arn: RoleArn::parse(
                        &format!("arn:aws:iam::{account}:role/CanopyAccess"),
                        "roleArn",
                    )?,
                    aws_account_id: AwsAccountId::parse(&account, "accountId")?,
                    region: AwsRegion::parse("us-east-1", "region")?,
                    external_id: "cnp-bench".into(),
                    session_name: "canopy-bench".into(),
                })
            })
            .collect::<Result<_, canopy_kernel::FieldError>>()
            .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?;
        bench.aws.set_latency(Duration::ZERO);

        let wants = |case: &str| args.cases.iter().any(|c| c == case);
        // Cold: a new source (no credentials) and a new cache, every run.
        bench.aws.set_latency(latency);
        let mut cold = vec![];
        for _ in 0..if wants("cold") { args.runs } else { 0 } {
            let service = bench.service(
                bench.source(),
                Arc::new(InProcessCache::new(Duration::from_secs(60))),
            );
            cold.push(bench.once(&service, &targets).await?);
        }
        // Warm credentials: one source kept, no cache.
        let source = bench.source();
        let uncached = bench.service(source.clone(), Arc::new(NoCache));
        bench.once(&uncached, &targets).await?;
        let mut warm = vec![];
        for _ in 0..if wants("warm") { args.runs } else { 0 } {
            warm.push(bench.once(&uncached, &targets).await?);
        }
        // Cached: everything in the cache.
        let cached_service = bench.service(
            source.clone(),
            Arc::new(InProcessCache::new(Duration::from_secs(600))),
        );
        bench.once(&cached_service, &targets).await?;
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        for _ in 0..if wants("cached") {
            args.cached_iterations
        } else {
            0
        } {
            let d = bench.once(&cached_service, &targets).await?;
            hist.record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))?;
        }
        // Viewers: a cold cache (credentials warm), everyone at once.
        let shared = bench.service(
            source.clone(),
            Arc::new(InProcessCache::new(Duration::from_secs(60))),
        );
        bench.aws.reset_calls();
        let viewers =
            futures::future::join_all((0..args.viewers).map(|_| bench.once(&shared, &targets)))
                .await;
        for v in viewers {
            v?;
        }
        let calls = bench.aws.calls();
        println!(
            "| {n} | {} | {} | {} | {} | {:.2} | {:.2} | {} / {} |",
            ms(median(cold.clone())),
            ms(cold.iter().copied().max()),
            ms(median(warm.clone())),
            ms(warm.iter().copied().max()),
            hist.value_at_quantile(0.5) as f64 / 1_000.0,
            hist.value_at_quantile(0.99) as f64 / 1_000.0,
            calls.assume_role,
            calls.get_metric_data,
        );
    }
    Ok(())
}
