//! Driving a release `canopy serve` with `wrk` from outside: the server in its own process,
//! wrk (Debian's small C load generator) beside it, and the CPU the server, PostgreSQL and wrk
//! each spent read from /proc, so a reader sees which was the limit on the shared two cores.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::{clock_ticks, cpu_ticks, postgres_ticks};

/// A `canopy serve` child process on a port of its own.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Server {
    /// Starts `canopy serve` on `database_url` (with `extra` environment) and waits for its
    /// port.
    pub fn start(
        canopy: &Path,
        database_url: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
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

    /// Its process id, for /proc.
    pub fn pid(&self) -> u32 {
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
pub fn status_kib(pid: u32, key: &str) -> u64 {
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
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Requests per second.
    pub rps: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// Answers that were not 2xx.
    pub non_2xx: u64,
    /// The server's CPU, percent of one core.
    pub server_cpu: f64,
    /// PostgreSQL's CPU, percent of one core.
    pub postgres_cpu: f64,
    /// wrk's own CPU, percent of one core.
    pub wrk_cpu: f64,
}

/// The command line every wrk benchmark shares: which server, on which PostgreSQL, and how
/// long wrk drives it.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// The release `canopy` binary to benchmark.
    #[arg(long)]
    pub canopy: PathBuf,
    /// PostgreSQL server URL; a fresh database is created on it.
    #[arg(long, env = "CANOPY_TEST_POSTGRES_URL")]
    pub database_url: Option<String>,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

impl ServerArgs {
    /// A fresh database on the PostgreSQL server these arguments name (the test default
    /// when none is given), for one benchmark run.
    pub async fn fresh_database(&self) -> anyhow::Result<String> {
        let server_url = self
            .database_url
            .clone()
            .unwrap_or_else(|| canopy_store::testing::DEFAULT_POSTGRES_URL.to_string());
        Ok(canopy_store::testing::fresh_postgres_url_on(&server_url).await?)
    }
}

/// The repetition a page or endpoint benchmark shares: connections and runs.
#[derive(clap::Args, Debug, Clone)]
pub struct WrkArgs {
    /// wrk connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Runs per endpoint; the report gives each and the median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

impl WrkArgs {
    /// The load these arguments and the server's describe.
    pub fn load(&self, server: &ServerArgs) -> Load {
        Load {
            threads: server.threads,
            connections: self.connections,
            seconds: server.seconds,
        }
    }
}

/// How hard wrk drives.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// wrk threads.
    pub threads: usize,
    /// Open connections.
    pub connections: usize,
    /// Measured seconds.
    pub seconds: u64,
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

/// The header of an API request with `token`.
pub fn bearer(token: &str) -> Vec<String> {
    vec![format!("Authorization: Bearer {token}")]
}

/// One wrk run against `url` with `headers` (`Name: value`; a session cookie, a bearer token),
/// and the CPU each process spent meanwhile.
pub fn wrk(server: &Server, url: &str, headers: &[String], load: Load) -> anyhow::Result<Run> {
    let ticks = clock_ticks();
    let (server_before, pg_before) = (cpu_ticks(server.pid()), postgres_ticks());
    let started = Instant::now();
    let headers: String = headers.iter().map(|h| format!(" -H '{h}'")).collect();
    // `times` after wrk prints the CPU its children (wrk) used: user and system.
    let script = format!(
        "wrk -t{} -c{} -d{}s --latency{headers} '{url}' && times",
        load.threads, load.connections, load.seconds
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

/// A 2-second warm-up, then `runs` measured runs of `url`, printed as table rows (`| name |
/// run | req/s | p50 ms | p99 ms | server CPU % | PostgreSQL CPU % | wrk CPU % | non-2xx |`)
/// and the median run by throughput; returns the runs.
pub fn measure(
    server: &Server,
    name: &str,
    url: &str,
    headers: &[String],
    load: Load,
    runs: usize,
) -> anyhow::Result<Vec<Run>> {
    wrk(server, url, headers, Load { seconds: 2, ..load })?;
    let mut all = Vec::new();
    for i in 0..runs {
        let r = wrk(server, url, headers, load)?;
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
        all.push(r);
    }
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    if let Some(m) = sorted.get(sorted.len() / 2) {
        println!(
            "| {name} | **median** | **{:.0}** | **{:.2}** | **{:.2}** | {:.0} | {:.0} | {:.0} | {} |",
            m.rps, m.p50_ms, m.p99_ms, m.server_cpu, m.postgres_cpu, m.wrk_cpu, m.non_2xx
        );
    }
    Ok(all)
}
