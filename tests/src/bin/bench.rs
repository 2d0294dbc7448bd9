//! API benchmark, measured from outside the server: a release `canopy serve` runs in its own
//! process on a fresh PostgreSQL database, this binary seeds it through the API, then drives
//! each endpoint with `wrk` (Debian's small C load generator) and reads the CPU time the server,
//! PostgreSQL and wrk each spent from /proc, so a reader can see which of them was the limit
//! on the shared two cores. A second part sends bursts of concurrent log-ins and reads the
//! server's resident memory. Results go to docs/benchmarks.md; `just bench-api` runs it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use canopy_e2e::bench::{clock_ticks, cpu_ticks, postgres_ticks};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "Canopy API throughput, latency and log-in memory, driven by wrk")]
struct Args {
    /// The release `canopy` binary to benchmark.
    #[arg(long)]
    canopy: PathBuf,
    /// PostgreSQL server URL; a fresh database is created on it.
    #[arg(long, env = "CANOPY_TEST_POSTGRES_URL")]
    database_url: Option<String>,
    /// wrk connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Runs per endpoint; the report gives each and the median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
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

/// A `canopy serve` child process on a port of its own.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(canopy: &PathBuf, database_url: &str, extra: &[(&str, &str)]) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = Command::new(canopy);
        cmd.arg("serve")
            .env("CANOPY_DATABASE_URL", database_url)
            .env("CANOPY_BIND", format!("127.0.0.1:{port}"))
            // The bench signs in thousands of times from one address.
            .env("CANOPY_AUTH_RATE_PER_MINUTE", "1000000")
            .env("CANOPY_RETENTION_SWEEP_MINUTES", "0")
            .env("CANOPY_AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("CANOPY_AWS_ACCESS_KEY_ID", "AKIDBENCH")
            .env("CANOPY_AWS_SECRET_ACCESS_KEY", "bench")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", canopy.display()))?;
        let base = format!("http://127.0.0.1:{port}");
        let ready = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if ready.elapsed() > Duration::from_secs(30) {
                bail!("the server did not start");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self { child, base })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `/proc/<pid>/status` value in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// One wrk run as measured.
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    server_cpu: f64,
    postgres_cpu: f64,
    wrk_cpu: f64,
}

/// Milliseconds from wrk's `1.23ms`, `850.00us`, `1.02s`.
fn wrk_ms(raw: &str) -> Option<f64> {
    let (number, unit) = raw.split_at(raw.find(|c: char| c.is_ascii_alphabetic())?);
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => return None,
    })
}

/// Seconds of CPU from bash's `times` line `0m1.234s 0m0.567s` (user, system).
fn times_seconds(line: &str) -> f64 {
    line.split_whitespace()
        .filter_map(|t| {
            let (m, s) = t.trim_end_matches('s').split_once('m')?;
            Some(m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
        })
        .sum()
}

fn wrk(args: &Args, server: &Server, url: &str, token: &str, seconds: u64) -> anyhow::Result<Run> {
    let ticks = clock_ticks();
    let (server_before, pg_before) = (cpu_ticks(server.pid()), postgres_ticks());
    let started = Instant::now();
    // `times` after wrk prints the CPU its children (wrk) used: user and system.
    let script = format!(
        "wrk -t{} -c{} -d{}s --latency -H 'Authorization: Bearer {token}' '{url}' && times",
        args.threads, args.connections, seconds
    );
    let out = Command::new("bash").arg("-c").arg(&script).output()?;
    let wall = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let latency = |pct: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(pct))
            .and_then(|l| wrk_ms(l.split_whitespace().nth(1)?))
            .unwrap_or(f64::NAN)
    };
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .context("wrk printed no Requests/sec")?;
    let non_2xx = text
        .lines()
        .find(|l| l.trim_start().starts_with("Non-2xx"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0);
    let wrk_seconds = text.lines().last().map_or(0.0, times_seconds);
    let percent = |t: u64| t as f64 / ticks / wall * 100.0;
    Ok(Run {
        rps,
        p50_ms: latency("50%"),
        p99_ms: latency("99%"),
        non_2xx,
        server_cpu: percent(cpu_ticks(server.pid()) - server_before),
        postgres_cpu: percent(postgres_ticks() - pg_before),
        wrk_cpu: wrk_seconds / wall * 100.0,
    })
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
    let set = Command::new(&args.canopy)
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
    let server = Server::start(&args.canopy, database_url, extra)?;
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
    let server_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| canopy_store::testing::DEFAULT_POSTGRES_URL.to_string());
    let database_url = rt.block_on(canopy_store::testing::fresh_postgres_url_on(&server_url))?;
    // The migrations run in the first server; admin commands need them in place.
    let server = Server::start(&args.canopy, &database_url, &[])?;
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
            args.threads, args.connections, args.seconds, args.runs, args.members, args.accounts
        );
        println!(
            "| endpoint | run | req/s | p50 ms | p99 ms | server CPU % | PostgreSQL CPU % | wrk CPU % | non-2xx |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for (name, url) in &targets {
            wrk(&args, &server, url, &token, 2)?;
            let mut runs = Vec::new();
            for i in 0..args.runs {
                let r = wrk(&args, &server, url, &token, args.seconds)?;
                println!(
                    "| {name} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {} |",
                    i + 1,
                    r.rps,
                    r.p50_ms,
                    r.p99_ms,
                    r.server_cpu,
                    r.postgres_cpu,
                    r.wrk_cpu,
                    r.non_2xx
                );
                runs.push(r);
            }
            runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
            let m = &runs[runs.len() / 2];
            println!(
                "| {name} | **median** | **{:.0}** | **{:.2}** | **{:.2}** | {:.0} | {:.0} | {:.0} | {} |",
                m.rps, m.p50_ms, m.p99_ms, m.server_cpu, m.postgres_cpu, m.wrk_cpu, m.non_2xx
            );
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
