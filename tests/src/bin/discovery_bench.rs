//! Discovery benchmark: an AWS Organization of 5,000 accounts in 250 OUs four levels deep,
//! served by the local Organizations server of `canopy-aws-testkit` with 50 ms per call,
//! discovered through the whole stack (HTTP request, durable job, the real
//! aws-sdk-organizations, the diff, one transaction of writes) on SQLite and PostgreSQL.
//! Per run: the first discovery (wall time from the request to the job's success, calls, the
//! most calls in flight), an unchanged re-sync (rows written, counted by triggers), and a
//! re-sync with every tenth call throttled (time, retries, time lost). Medians over the runs,
//! and the process's peak memory. Results go to docs/benchmarks.md; `just bench-discovery`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use canopy_aws_testkit::FakeAws;
use canopy_e2e::bench::{self, median, peak_rss_mib};
use canopy_e2e::cloud_org::app_with_worker;
use canopy_e2e::{Options, TestApp};
use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "Canopy AWS Organization discovery benchmark")]
struct Args {
    /// Accounts in the organization.
    #[arg(long, default_value_t = 5_000)]
    accounts: usize,
    /// OUs per level, top down (250 in four levels by default).
    #[arg(long, value_delimiter = ',', default_value = "5,25,75,145")]
    levels: Vec<usize>,
    /// Latency of every Organizations and STS answer, milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Runs per backend (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Every n-th call throttled in the throttled re-sync (10: 10 %).
    #[arg(long, default_value_t = 10)]
    throttle_every: u64,
    /// Backends: sqlite, postgres (PostgreSQL needs CANOPY_TEST_POSTGRES_URL).
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
}

/// One run's figures.
#[derive(Debug, Clone, Copy)]
struct Run {
    discover: Duration,
    calls: u64,
    max_in_flight: u64,
    resync: Duration,
    resync_writes: u64,
    throttled: Duration,
    throttled_calls: u64,
    retries: u64,
    waited_ms: u64,
}

/// The organization: OUs level by level (each under a parent of the level above, round
/// robin), accounts spread evenly over every OU.
async fn organization(args: &Args, latency: Duration) -> anyhow::Result<FakeAws> {
    let aws = FakeAws::start().await?;
    let root = aws.create_organization("o-bench00000", "100000000000", "mgmt@example.com");
    let mut all = Vec::new();
    let mut parents = vec![root.clone()];
    for (depth, count) in args.levels.iter().enumerate() {
        let mut level = Vec::new();
        for i in 0..*count {
            let parent = &parents[i % parents.len()];
            level.push(aws.add_ou(parent, &format!("ou-{depth}-{i}")));
        }
        all.extend(level.iter().cloned());
        parents = level;
    }
    if all.is_empty() {
        bail!("no OUs");
    }
    aws.add_org_account(&root, "100000000000", "management", "ACTIVE");
    for n in 1..args.accounts {
        let ou = &all[n % all.len()];
        aws.add_org_account(
            ou,
            &format!("{:012}", 200_000_000_000u64 + n as u64),
            "acct",
            "ACTIVE",
        );
    }
    aws.set_latency(latency);
    Ok(aws)
}

/// Follows the job a `202 Accepted` answer started until it is done.
async fn follow(
    app: &TestApp,
    owner: &canopy_e2e::Session,
    org: &str,
    started: &Value,
) -> anyhow::Result<Value> {
    let job = started["job"]["id"].as_str().unwrap_or_default();
    bench::follow(app, owner, org, job).await
}

async fn one_run(args: &Args, backend: &str) -> anyhow::Result<Run> {
    let aws = organization(args, Duration::from_millis(args.latency_ms)).await?;
    let (app, workers) = app_with_worker(
        backend,
        Options {
            aws_endpoint_url: aws.url(),
            ..Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Bench").await;
    let org = app.create_org_on(&owner, "Bench", "pro").await;
    aws.reset_organizations_calls();

    let clock = Instant::now();
    let started = app
        .post(
            &format!("/v1/organizations/{org}/cloud-organizations/aws/discover"),
            &owner.token,
            json!({"managementRoleArn": "arn:aws:iam::100000000000:role/CanopyManagement"}),
        )
        .await;
    if started.status != reqwest::StatusCode::ACCEPTED {
        bail!("discover: {}", started.body);
    }
    let done = follow(&app, &owner, &org, &started.body).await?;
    let discover = clock.elapsed();
    if done["result"]["members"].as_u64() != Some(args.accounts as u64) {
        bail!(
            "discovered {} of {}",
            done["result"]["members"],
            args.accounts
        );
    }
    let calls = aws.organizations_calls();
    let id = started.body["cloudOrganization"]["id"]
        .as_str()
        .context("no id")?
        .to_string();
    let sync_path = format!("/v1/organizations/{org}/cloud-organizations/{id}/sync");

    canopy_store::testing::count_writes(&app.store, &canopy_store::testing::CLOUD_ORG_DATA_TABLES)
        .await?;
    let clock = Instant::now();
    let sync = app.post(&sync_path, &owner.token, json!({})).await;
    let done = follow(&app, &owner, &org, &sync.body).await?;
    let resync = clock.elapsed();
    if done["result"]["changes"].as_u64() != Some(0) {
        bail!("an unchanged re-sync found changes: {done}");
    }
    let resync_writes = canopy_store::testing::writes_counted(&app.store).await?;

    aws.reset_organizations_calls();
    aws.throttle_every(Some(args.throttle_every));
    let clock = Instant::now();
    let sync = app.post(&sync_path, &owner.token, json!({})).await;
    let done = follow(&app, &owner, &org, &sync.body).await?;
    let throttled = clock.elapsed();
    if done["status"] != "succeeded" {
        bail!("the throttled re-sync failed: {done}");
    }
    let throttling = &done["result"]["throttling"];
    workers.stop().await;
    Ok(Run {
        discover,
        calls: calls.total,
        max_in_flight: calls.max_in_flight,
        resync,
        resync_writes,
        throttled,
        throttled_calls: aws.organizations_calls().throttled,
        retries: throttling["retries"].as_u64().unwrap_or(0),
        waited_ms: throttling["waitedMs"].as_u64().unwrap_or(0),
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    canopy_app::bootstrap::install_tls_provider();
    let args = Args::parse();
    let ous: usize = args.levels.iter().sum();
    println!(
        "organization: {} accounts, {} OUs in {} levels, {} ms per call, {} runs per backend",
        args.accounts,
        ous,
        args.levels.len(),
        args.latency_ms,
        args.runs
    );
    for backend in &args.backends {
        if !bench::backend_available(backend) {
            continue;
        }
        let mut runs = Vec::new();
        for _ in 0..args.runs {
            runs.push(one_run(&args, backend).await?);
        }
        let ms = |f: fn(&Run) -> Duration| median(runs.iter().map(|r| f(r).as_millis()).collect());
        let n = |f: fn(&Run) -> u64| median(runs.iter().map(f).collect());
        println!(
            "{backend}: discovery {} ms (runs: {:?}), {} calls, at most {} in flight",
            ms(|r| r.discover),
            runs.iter()
                .map(|r| r.discover.as_millis())
                .collect::<Vec<_>>(),
            n(|r| r.calls),
            n(|r| r.max_in_flight),
        );
        println!(
            "{backend}: unchanged re-sync {} ms, {} rows written",
            ms(|r| r.resync),
            n(|r| r.resync_writes),
        );
        println!(
            "{backend}: re-sync with 1 call in {} throttled: {} ms, {} throttled answers, {} retries, {} ms waited (summed over lanes)",
            args.throttle_every,
            ms(|r| r.throttled),
            n(|r| r.throttled_calls),
            n(|r| r.retries),
            n(|r| r.waited_ms),
        );
    }
    println!(
        "peak memory (whole process: server, worker, local AWS): {:.1} MiB",
        peak_rss_mib()
    );
    Ok(())
}
