//! API benchmark: authenticated `GET /v1/organizations/{org}` and `GET /v1/me` at a fixed
//! number of concurrent keep-alive connections against a release build on PostgreSQL.
//! Results go to docs/benchmarks.md; `just bench` runs it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use canopy_app::Config;
use canopy_app::bootstrap::bootstrap;
use canopy_app::config::{AuthConfig, DatabaseConfig, ServerConfig};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Canopy API throughput and latency benchmark")]
struct Args {
    /// PostgreSQL server URL; a fresh database is created on it.
    #[arg(long, env = "CANOPY_TEST_POSTGRES_URL")]
    database_url: Option<String>,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured seconds per endpoint.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up seconds per endpoint (not measured).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Repetitions per endpoint; the report gives the median run and the spread.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Database pool size of the server.
    #[arg(long, default_value_t = 16)]
    pool: u32,
    /// Cloud accounts seeded into the organization for the list benchmark.
    #[arg(long, default_value_t = 500)]
    accounts: usize,
    /// Server worker threads.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
}

struct RunResult {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    hist: Histogram<u64>,
}

impl RunResult {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

async fn load(
    url: Arc<String>,
    token: Arc<String>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<RunResult> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let url = url.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let (mut ok, mut errors) = (0u64, 0u64);
            while Instant::now() < deadline {
                let t = Instant::now();
                let resp = client
                    .get(url.as_str())
                    .bearer_auth(token.as_str())
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => {
                        r.bytes().await?;
                        ok += 1;
                        hist.record(t.elapsed().as_micros().max(1) as u64)?;
                    }
                    _ => errors += 1,
                }
            }
            anyhow::Ok((ok, errors, hist))
        }));
    }
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut requests, mut errors) = (0, 0);
    for t in tasks {
        let (ok, err, hist) = t.await??;
        requests += ok;
        errors += err;
        total.add(hist)?;
    }
    Ok(RunResult {
        requests,
        errors,
        elapsed: started.elapsed(),
        hist: total,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| canopy_store::testing::DEFAULT_POSTGRES_URL.to_string());
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let db_url = client_rt.block_on(canopy_store::testing::fresh_postgres_url_on(&server_url))?;

    let config = Config {
        server: ServerConfig {
            bind: "127.0.0.1:0".into(),
            ..ServerConfig::default()
        },
        database: DatabaseConfig {
            url: db_url,
            max_connections: args.pool,
        },
        auth: AuthConfig {
            rate_per_minute: 1_000,
            ..AuthConfig::default()
        },
        ..Config::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let server_threads = args.server_threads;
    let server_config = config.clone();
    std::thread::spawn(move || {
        let serve = || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(server_threads)
                .enable_all()
                .build()?;
            rt.block_on(async {
                let state = bootstrap(&server_config).await?;
                let server = canopy_app::start(&server_config, state).await?;
                tx.send(Ok(server.url()))?;
                server.task.await??;
                anyhow::Ok(())
            })
        };
        if let Err(e) = serve() {
            eprintln!("server failed: {e:#}");
        }
    });
    let base: String = rx
        .recv_timeout(Duration::from_secs(60))
        .context("server did not start")?
        .map_err(|e: anyhow::Error| e)?;

    client_rt.block_on(async move {
        let http = reqwest::Client::new();
        let signup: serde_json::Value = http
            .post(format!("{base}/v1/auth/signup"))
            .json(&json!({"email": "bench@example.com", "name": "Bench", "password": "benchmark password"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = Arc::new(signup["token"].as_str().context("token")?.to_string());
        let org: serde_json::Value = http
            .post(format!("{base}/v1/organizations"))
            .bearer_auth(token.as_str())
            .json(&json!({"name": "Bench Org", "slug": "bench-org"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let org_id = org["id"].as_str().context("org id")?;
        for i in 0..args.accounts {
            let account = format!("{:012}", 100_000_000_000u64 + i as u64);
            let environment = ["production", "staging", "development"][i % 3];
            http.post(format!("{base}/v1/organizations/{org_id}/cloud-accounts"))
                .bearer_auth(token.as_str())
                .json(&json!({
                    "provider": "aws",
                    "accountId": account,
                    "roleArn": format!("arn:aws:iam::{account}:role/CanopyAccess"),
                    "region": "us-east-1",
                    "alias": format!("Account {i}"),
                    "environment": environment,
                    "sesDomains": ["mail.example.com"],
                    "tags": {"team": format!("t{}", i % 7)}
                }))
                .send()
                .await?
                .error_for_status()?;
        }
        let targets = [
            ("GET /healthz (no database: the HTTP ceiling)", format!("{base}/healthz")),
            ("GET /v1/organizations/{org}", format!("{base}/v1/organizations/{org_id}")),
            ("GET /v1/me", format!("{base}/v1/me")),
            (
                "GET cloud-accounts?limit=200 (500 in org)",
                format!("{base}/v1/organizations/{org_id}/cloud-accounts?limit=200"),
            ),
            (
                "GET cloud-accounts (first 50 of 500)",
                format!("{base}/v1/organizations/{org_id}/cloud-accounts"),
            ),
        ];
        println!(
            "connections={} seconds={} runs={} server_threads={} pool={} accounts={}",
            args.connections, args.seconds, args.runs, args.server_threads, args.pool, args.accounts
        );
        println!("| endpoint | run | req/s | p50 ms | p99 ms | max ms | errors |");
        println!("|---|---|---|---|---|---|---|");
        for (name, url) in targets {
            let url = Arc::new(url);
            load(url.clone(), token.clone(), args.connections, Duration::from_secs(args.warmup)).await?;
            let mut runs = vec![];
            for run in 0..args.runs {
                let r = load(url.clone(), token.clone(), args.connections, Duration::from_secs(args.seconds)).await?;
                println!(
                    "| {name} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
                    run + 1,
                    r.rps(),
                    r.hist.value_at_quantile(0.5) as f64 / 1000.0,
                    r.hist.value_at_quantile(0.99) as f64 / 1000.0,
                    r.hist.max() as f64 / 1000.0,
                    r.errors
                );
                runs.push(r);
            }
            runs.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
            let median = &runs[runs.len() / 2];
            println!(
                "| {name} | **median** | **{:.0}** | **{:.2}** | **{:.2}** | {:.2} | {} |",
                median.rps(),
                median.hist.value_at_quantile(0.5) as f64 / 1000.0,
                median.hist.value_at_quantile(0.99) as f64 / 1000.0,
                median.hist.max() as f64 / 1000.0,
                median.errors
            );
        }
        anyhow::Ok(())
    })
}
