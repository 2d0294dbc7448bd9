//! What the benchmarks share: following a job to its end, medians, and memory and CPU time as
//! Linux reports them in `/proc`.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::{Session, TestApp};

/// Polls job `job` of `org` every 5 ms (the figures' resolution) until it is neither queued
/// nor running; its final document. Unbounded on purpose: a slow run is a result. A poll the
/// API does not answer with 200 (a database it cannot reach while the job runs) is an error.
pub async fn follow(app: &TestApp, owner: &Session, org: &str, job: &str) -> anyhow::Result<Value> {
    let path = format!("/v1/organizations/{org}/jobs/{job}");
    loop {
        let resp = app.get(&path, &owner.token).await;
        if resp.status != reqwest::StatusCode::OK {
            anyhow::bail!("GET {path} answered {}: {}", resp.status, resp.body);
        }
        if resp.body["status"] != "queued" && resp.body["status"] != "running" {
            return Ok(resp.body);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The middle value (the upper one of an even count); panics on an empty list.
pub fn median<T: Copy + Ord>(mut values: Vec<T>) -> T {
    values.sort();
    values[values.len() / 2]
}

/// [`median`] of measured figures (floating point has no total `Ord`; NaN sorts last).
pub fn median_f64(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The nearest-rank percentile `p` (0-100) of measured figures; panics on an empty list.
pub fn percentile_f64(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// A `/proc/self/status` figure in MiB (`VmRSS`, `VmHWM`); 0 where there is no `/proc`.
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The process's resident memory now, MiB.
pub fn rss_mib() -> f64 {
    status_mib("VmRSS")
}

/// The most resident memory the process has held (since the start or the last
/// [`reset_peak_rss`]), MiB.
pub fn peak_rss_mib() -> f64 {
    status_mib("VmHWM")
}

/// Restarts [`peak_rss_mib`] from the current resident memory (Linux's `clear_refs` 5), so a
/// phase's own peak can be read; false where the kernel does not allow it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Clock ticks per second of /proc's CPU times.
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User plus system CPU ticks of one process.
pub fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// CPU ticks of every PostgreSQL process (postmaster, backends, background workers).
pub fn postgres_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_ticks)
        .sum()
}

/// Whether `backend` can run here: PostgreSQL needs the server the environment names (says
/// so when it is skipped).
pub fn backend_available(backend: &str) -> bool {
    let env = canopy_store::testing::POSTGRES_URL_ENV;
    if backend == "postgres" && std::env::var(env).is_err() {
        println!("{backend}: skipped ({env} unset)");
        return false;
    }
    true
}

/// POSTs `path` (with `body`, if any) and checks it was accepted; the answer's body.
pub async fn accepted(
    app: &TestApp,
    owner: &Session,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let resp = app
        .call(reqwest::Method::POST, path, Some(&owner.token), body)
        .await;
    if resp.status != reqwest::StatusCode::ACCEPTED {
        anyhow::bail!("{path}: {} {}", resp.status, resp.body);
    }
    Ok(resp.body)
}

/// Follows job `job` and fails unless it succeeded; its result.
pub async fn succeeded(
    app: &TestApp,
    owner: &Session,
    org: &str,
    job: &Value,
) -> anyhow::Result<Value> {
    let done = follow(
        app,
        owner,
        org,
        job.as_str().ok_or_else(|| anyhow::anyhow!("no job id"))?,
    )
    .await?;
    if done["status"] != "succeeded" {
        anyhow::bail!("job {} ended {}: {done}", done["kind"], done["status"]);
    }
    Ok(done["result"].clone())
}
