//! API benchmark, measured from outside the server: a release `canopy serve` runs in its own
//! process on a fresh PostgreSQL database, this binary seeds it through the API, then drives
//! each endpoint with `wrk` (Debian's small C load generator) and reads the CPU time the server,
//! PostgreSQL and wrk each spent from /proc, so a reader can see which of them was the limit
//! on the shared two cores. A second part sends bursts of concurrent log-ins and reads the
//! server's resident memory. Results go to docs/benchmarks.md; `just bench-api` runs it.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use canopy_e2e::wrk::{Server, ServerArgs, WrkArgs, bearer, measure, status_kib};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "Canopy API throughput, latency and log-in memory, driven by wrk")]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    wrk: WrkArgs,
    /// Members of the organization (the owner included) for the members list.
    #[arg(long, default_value_t = 51)]
    members: usize,
    /// Cloud accounts of the organization for the account list.
    #[arg(long, default_value_t = 500)]
    accounts: usize,
    /// Concurrent log-ins per burst (comma-separated).
    #[arg(long, default_value = "100,400", value_delimiter = ',')]
    bursts: Vec<usize>,
    /// Only the log-in bursts.
    #[arg(long)]
    bursts_only: bool,
}

/// The API, through reqwest, for seeding.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("{path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn sign_up(&self, email: &str) -> anyhow::Result<String> {
        let session = self
            .call(
                reqwest::Method::POST,
                "/v1/auth/signup",
                None,
                Some(json!({"email": email, "name": "Bench", "password": "benchmark password"})),
            )
            .await?;
        Ok(session["token"].as_str().context("token")?.to_string())
    }
}

/// Seeds an owner, an Enterprise organization with `members` members and `accounts` accounts.
async fn seed(args: &Args, api: &Api, database_url: &str) -> anyhow::Result<(String, String)> {
    use reqwest::Method;
    let owner = api.sign_up("owner@bench.example").await?;
    let org = api
        .call(
            Method::POST,
            "/v1/organizations",
            Some(&owner),
            Some(json!({"name": "Bench", "slug": "bench-org"})),
        )
        .await?;
    let org_id = org["id"].as_str().context("org id")?.to_string();
    let set = Command::new(&args.server.canopy)
        .args([
            "admin",
            "set-tier",
            "--org",
            "bench-org",
            "--tier",
            "enterprise",
            "--database-url",
            database_url,
        ])
        .output()?;
    if !set.status.success() {
        bail!("set-tier: {}", String::from_utf8_lossy(&set.stderr));
    }
    for i in 1..args.members {
        let email = format!("member{i}@bench.example");
        let token = api.sign_up(&email).await?;
        // Accepting needs a verified address; the bench server sends no e-mail.
        let verified = Command::new(&args.server.canopy)
            .args([
                "admin",
                "verify-email",
                &email,
                "--database-url",
                database_url,
            ])
            .output()?;
        if !verified.status.success() {
            bail!(
                "verify-email: {}",
                String::from_utf8_lossy(&verified.stderr)
            );
        }
        let invitation = api
            .call(
                Method::POST,
                &format!("/v1/organizations/{org_id}/invitations"),
                Some(&owner),
                Some(json!({"email": email, "role": "member"})),
            )
            .await?;
        let id = invitation["id"].as_str().context("invitation id")?;
        api.call(
            Method::POST,
            &format!("/v1/invitations/{id}/accept"),
            Some(&token),
            None,
        )
        .await?;
    }
    for i in 0..args.accounts {
        let account = format!("{:012}", 100_000_000_000u64 + i as u64);
        let environment = ["production", "staging", "development"][i % 3];
        api.call(
            Method::POST,
            &format!("/v1/organizations/{org_id}/cloud-accounts"),
            Some(&owner),
            Some(json!({
                "provider": "aws",
                "accountId": account,
                "roleArn": format!("arn:aws:iam::{account}:role/CanopyAccess"),
                "region": "us-east-1",
                "alias": format!("Account {i}"),
                "environment": environment,
                "sesDomains": ["mail.example.com"],
                "tags": {"team": format!("t{}", i % 7)}
            })),
        )
        .await?;
    }
    Ok((owner, org_id))
}

/// `burst` concurrent log-ins; returns (served, busy, p50 ms, p99 ms).
async fn login_burst(api: &Api, burst: usize) -> anyhow::Result<(usize, usize, f64, f64)> {
    let attempts: Vec<_> = (0..burst)
        .map(|_| {
            let (http, url) = (api.http.clone(), format!("{}/v1/auth/login", api.base));
            tokio::spawn(async move {
                let started = Instant::now();
                let resp = http
                    .post(url)
                    .json(
                        &json!({"email": "owner@bench.example", "password": "benchmark password"}),
                    )
                    .send()
                    .await?;
                anyhow::Ok((resp.status().as_u16(), started.elapsed()))
            })
        })
        .collect();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let (mut served, mut busy) = (0, 0);
    for attempt in attempts {
        let (status, took) = attempt.await??;
        match status {
            200 => {
                served += 1;
                hist.record(took.as_micros().max(1) as u64)?;
            }
            503 => busy += 1,
            other => bail!("log-in answered {other}"),
        }
    }
    let ms = |q| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok((served, busy, ms(0.5), ms(0.99)))
}

async fn bursts(
    args: &Args,
    database_url: &str,
    label: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<()> {
    let server = Server::start(&args.server.canopy, database_url, extra)?;
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base.clone(),
    };
    // One log-in first, so the baseline is a server that has hashed once.
    login_burst(&api, 1).await?;
    let before = status_kib(server.pid(), "VmRSS");
    for &burst in &args.bursts {
        let (served, busy, p50, p99) = login_burst(&api, burst).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!(
            "| {label} | {burst} | {served} | {busy} | {p50:.0} | {p99:.0} | {:.1} | {:.1} | {:.1} |",
            before as f64 / 1024.0,
            status_kib(server.pid(), "VmHWM") as f64 / 1024.0,
            status_kib(server.pid(), "VmRSS") as f64 / 1024.0,
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let database_url = rt.block_on(args.server.fresh_database())?;
    // The migrations run in the first server; admin commands need them in place.
    let server = Server::start(&args.server.canopy, &database_url, &[])?;
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let seeded = Instant::now();
    let (token, org) = rt.block_on(seed(&args, &api, &database_url))?;
    eprintln!("seeded in {:.1}s", seeded.elapsed().as_secs_f64());

    if !args.bursts_only {
        let base = &server.base;
        let targets = [
            ("GET /healthz (no database)", format!("{base}/healthz")),
            (
                "GET /v1/organizations/{org}",
                format!("{base}/v1/organizations/{org}"),
            ),
            ("GET /v1/me", format!("{base}/v1/me")),
            (
                "GET members (51 in org)",
                format!("{base}/v1/organizations/{org}/members?limit=200"),
            ),
            (
                "GET cloud-accounts?limit=200 (500 in org)",
                format!("{base}/v1/organizations/{org}/cloud-accounts?limit=200"),
            ),
        ];
        println!(
            "wrk -t{} -c{} -d{}s, runs={}, members={}, accounts={}",
            args.server.threads,
            args.wrk.connections,
            args.server.seconds,
            args.wrk.runs,
            args.members,
            args.accounts
        );
        println!(
            "| endpoint | run | req/s | p50 ms | p99 ms | server CPU % | PostgreSQL CPU % | wrk CPU % | non-2xx |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for (name, url) in &targets {
            let load = args.wrk.load(&args.server);
            measure(&server, name, url, &bearer(&token), load, args.wrk.runs)?;
        }
    }
    drop(server);

    println!();
    println!(
        "| hashing | concurrent log-ins | served | 503 busy | p50 ms | p99 ms | RSS before MiB | peak RSS MiB | RSS after MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    rt.block_on(bursts(&args, &database_url, "bounded (defaults)", &[]))?;
    rt.block_on(bursts(
        &args,
        &database_url,
        "unbounded (one slot per request)",
        &[
            ("CANOPY_HASHING_CONCURRENCY", "1000"),
            ("CANOPY_HASHING_QUEUE", "1000"),
        ],
    ))?;
    Ok(())
}
