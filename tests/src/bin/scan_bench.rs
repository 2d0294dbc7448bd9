//! Detection-scan benchmark: an AWS Organization of 500 connected member accounts (the
//! management account included, Pro's limit), served by the local AWS of `canopy-aws-testkit`
//! with 50 ms added to every answer, scanned through the whole stack: the two HTTP requests
//! (organization scan, members scan, queued at once as the daily schedule queues them), the
//! durable jobs picked up by the workers, the real aws-sdk clients of every scanner, the
//! reconciliation and the writes. Timed from the first request until both jobs succeeded.
//! Per run: wall time, AWS calls (counted by the local AWS), the most calls in flight at once
//! (asserted against the configured bound), detections found, and the process's memory during
//! the scan. Medians per backend and per concurrency profile: the tuned one this bench
//! documents and the shipped defaults. Results go to docs/benchmarks.md; `just bench-scan`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use canopy_app::config::{AwsConfig, JobsConfig};
use canopy_aws::scan::{DEFAULT_REGIONS, ScanSettings};
use canopy_aws_testkit::{FakeAws, GuardDutySetup, SecurityHubSetup};
use canopy_e2e::Options;
use canopy_e2e::bench::{self, median};
use canopy_e2e::cloud_org::app_with_worker;
use clap::Parser;
use serde_json::{Value, json};

/// The management account.
const MANAGEMENT: &str = "100000000000";
/// The member account delegated GuardDuty and Security Hub administration.
const SECURITY: &str = "200000000001";
/// Where the organization's security services run and every account's own region (the
/// region a connected member gets).
const HOME: &str = "us-east-1";
/// Reads per account and region when nothing is configured there: DescribeTrails,
/// ListDetectors, two Config recorder reads, DescribeConfigRules, DescribeHub and
/// DescribeMetricFilters (crates/aws/tests/scan_local.rs counts the same).
const READS_PER_REGION: u64 = 7;

#[derive(Parser, Debug)]
#[command(about = "Canopy detection-scan benchmark")]
struct Args {
    /// Accounts in the organization, the management account included; all are connected.
    #[arg(long, default_value_t = 500)]
    accounts: usize,
    /// OUs under the root, accounts spread evenly over them.
    #[arg(long, default_value_t = 10)]
    ous: usize,
    /// Latency of every AWS answer during the scans, milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Runs per backend and profile (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Backends: sqlite, postgres (PostgreSQL needs CANOPY_TEST_POSTGRES_URL).
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// Profiles: `tuned` (the three options below) and `defaults` (what Canopy ships).
    #[arg(long, value_delimiter = ',', default_value = "tuned,defaults")]
    profiles: Vec<String>,
    /// Tuned: member accounts one members scan reads at once (jobs.scan_accounts_in_flight).
    #[arg(long, default_value_t = 32)]
    accounts_in_flight: usize,
    /// Tuned: AWS calls in flight across the account scans (aws.scan_max_in_flight).
    #[arg(long, default_value_t = 128)]
    max_in_flight: usize,
    /// Tuned: regions read (aws.scan_regions; empty: Canopy's default 8).
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
    /// Job workers (jobs.workers; with 2 or more the two scans run side by side).
    #[arg(long, default_value_t = JobsConfig::default().workers)]
    job_workers: usize,
    /// The target, milliseconds (reported against, not enforced).
    #[arg(long, default_value_t = 15_000)]
    target_ms: u128,
}

/// How the scanners are allowed to fan out.
#[derive(Debug, Clone)]
struct Profile {
    name: String,
    accounts_in_flight: usize,
    max_in_flight: usize,
    /// Empty: Canopy's default set.
    regions: Vec<String>,
}

impl Profile {
    fn of(name: &str, args: &Args) -> anyhow::Result<Self> {
        Ok(match name {
            "tuned" => Self {
                name: name.into(),
                accounts_in_flight: args.accounts_in_flight,
                max_in_flight: args.max_in_flight,
                regions: args.regions.clone(),
            },
            "defaults" => Self {
                name: name.into(),
                accounts_in_flight: JobsConfig::default().scan_accounts_in_flight,
                max_in_flight: AwsConfig::default().scan_max_in_flight,
                regions: AwsConfig::default().scan_regions,
            },
            other => bail!("unknown profile {other} (tuned, defaults)"),
        })
    }

    /// The regions each account is read in: the configured ones plus its own.
    fn regions_read(&self) -> usize {
        let mut regions: Vec<String> = if self.regions.is_empty() {
            DEFAULT_REGIONS.iter().map(|r| r.to_string()).collect()
        } else {
            self.regions.clone()
        };
        if !regions.iter().any(|r| r == HOME) {
            regions.push(HOME.into());
        }
        regions.len()
    }

    /// The most calls that may be in flight: the account scanner's pool, plus, when the
    /// organization scan runs beside the members scan, its own per-scan bound (the
    /// organization scanner holds a pool of its own; see the report in docs/benchmarks.md).
    fn bound(&self, job_workers: usize) -> u64 {
        let beside = if job_workers > 1 {
            ScanSettings::default()
                .max_in_flight
                .min(self.max_in_flight)
        } else {
            0
        };
        (self.max_in_flight + beside) as u64
    }

    /// What a member account's scan costs here: one AssumeRole, the reads of every region and
    /// the GetDetector of the detector in its own region.
    fn calls_per_account(&self) -> u64 {
        2 + READS_PER_REGION * self.regions_read() as u64
    }
}

/// One run's figures (memory in KiB, so medians stay integers).
#[derive(Debug, Clone, Copy)]
struct Run {
    wall: Duration,
    org_scan: Duration,
    calls: u64,
    assume_role: u64,
    organizations: u64,
    reported: u64,
    peak_in_flight: u64,
    found_org: u64,
    found_members: u64,
    rss_before_kib: u64,
    rss_peak_kib: u64,
    rss_after_kib: u64,
    /// CPU over the scan as a share of one core (200 is both of two), this process and
    /// PostgreSQL's: what the limit was when the calls' floor is not.
    cpu_percent: u64,
    postgres_percent: u64,
}

/// The organization: `--ous` OUs under the root, every account spread over them; GuardDuty on
/// in every account's own region, its administrator and Security Hub's delegated to
/// [`SECURITY`] there, so both scans find something and write it. Returns it and every
/// account id.
async fn organization(args: &Args) -> anyhow::Result<(FakeAws, Vec<String>)> {
    ensure!(
        args.accounts >= 2 && args.ous >= 1,
        "need 2 accounts and 1 OU"
    );
    let aws = FakeAws::start().await?;
    let root = aws.create_organization("o-scanbench00", MANAGEMENT, "mgmt@example.com");
    let ous: Vec<String> = (0..args.ous)
        .map(|i| aws.add_ou(&root, &format!("ou-{i}")))
        .collect();
    aws.add_org_account(&root, MANAGEMENT, "management", "ACTIVE");
    let mut members = vec![MANAGEMENT.to_string()];
    for n in 1..args.accounts {
        let id = format!("{:012}", 200_000_000_000u64 + n as u64);
        let name = if id == SECURITY { "security" } else { "acct" };
        aws.add_org_account(&ous[n % ous.len()], &id, name, "ACTIVE");
        members.push(id);
    }
    let others: Vec<String> = members.iter().filter(|m| *m != SECURITY).cloned().collect();
    for service in ["guardduty.amazonaws.com", "securityhub.amazonaws.com"] {
        aws.delegate_admin(SECURITY, service);
    }
    aws.set_guardduty_admin(MANAGEMENT, HOME, SECURITY);
    aws.set_security_hub_admin(MANAGEMENT, HOME, SECURITY);
    for account in &members {
        let administrator = account == SECURITY;
        aws.enable_guardduty(
            account,
            HOME,
            GuardDutySetup {
                enabled: true,
                auto_enable: administrator.then(|| "ALL".into()),
                members: if administrator {
                    others.clone()
                } else {
                    vec![]
                },
            },
        );
    }
    aws.enable_security_hub(
        SECURITY,
        HOME,
        SecurityHubSetup {
            standards: vec![format!(
                "arn:aws:securityhub:{HOME}::standards/aws-foundational-security-best-practices/v/1.0.0"
            )],
            configuration_type: Some("CENTRAL".into()),
            auto_enable: true,
            aggregators: vec![format!(
                "arn:aws:securityhub:{HOME}:{SECURITY}:finding-aggregator/1"
            )],
            members: others,
        },
    );
    Ok((aws, members))
}

/// Scanner calls a scan job reports (every attempt of every source; AssumeRole not included).
fn reported_calls(sources: &Value) -> u64 {
    sources
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["calls"].as_u64()).sum())
        .unwrap_or(0)
}

fn kib(mib: f64) -> u64 {
    (mib * 1024.0) as u64
}

async fn one_run(args: &Args, backend: &str, profile: &Profile) -> anyhow::Result<Run> {
    let (aws, _members) = organization(args).await?;
    let (app, workers) = app_with_worker(
        backend,
        Options {
            aws_endpoint_url: aws.url(),
            scan_regions: profile.regions.clone(),
            scan_max_in_flight: profile.max_in_flight,
            scan_accounts_in_flight: profile.accounts_in_flight,
            job_workers: args.job_workers,
            ..Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Bench").await;
    let org = app.create_org_on(&owner, "Bench", "pro").await;

    // Untimed: discover the organization and connect every member, with no latency.
    let base = format!("/v1/organizations/{org}/cloud-organizations");
    let started = bench::accepted(
        &app,
        &owner,
        &format!("{base}/aws/discover"),
        Some(json!({"managementRoleArn": format!("arn:aws:iam::{MANAGEMENT}:role/CanopyManagement")})),
    )
    .await?;
    let found = bench::succeeded(&app, &owner, &org, &started["job"]["id"])
        .await
        .context("discovery")?;
    ensure!(
        found["members"].as_u64() == Some(args.accounts as u64),
        "discovered {found}"
    );
    let id = started["cloudOrganization"]["id"]
        .as_str()
        .context("no cloud organization id")?;
    let base = format!("{base}/{id}");
    let connect = bench::accepted(
        &app,
        &owner,
        &format!("{base}/members/connect"),
        Some(json!({"all": true})),
    )
    .await?;
    let done = bench::succeeded(&app, &owner, &org, &connect["job"]["id"])
        .await
        .context("connect")?;
    let connected = done["connected"].as_u64().unwrap_or(0);
    ensure!(
        connected == args.accounts as u64,
        "connected {connected} of {}",
        args.accounts
    );

    aws.set_latency(Duration::from_millis(args.latency_ms));
    aws.reset_max_in_flight();
    let (scanned_before, sts_before, orgs_before) = (
        aws.scan_calls_total(),
        aws.calls().assume_role,
        aws.organizations_calls().total,
    );
    bench::reset_peak_rss();
    let rss_before = bench::rss_mib();
    let (cpu_before, postgres_before) = (
        bench::cpu_ticks(std::process::id()),
        bench::postgres_ticks(),
    );

    let clock = Instant::now();
    let org_job = bench::accepted(&app, &owner, &format!("{base}/scan"), None).await?;
    let members_job = bench::accepted(&app, &owner, &format!("{base}/scan/members"), None).await?;
    let org_result = bench::succeeded(&app, &owner, &org, &org_job["id"])
        .await
        .context("organization scan")?;
    let org_scan = clock.elapsed();
    let members_result = bench::succeeded(&app, &owner, &org, &members_job["id"])
        .await
        .context("members scan")?;
    let wall = clock.elapsed();
    let percent = |ticks: u64| {
        (ticks as f64 / bench::clock_ticks() / wall.as_secs_f64() * 100.0).round() as u64
    };
    let cpu_percent = percent(bench::cpu_ticks(std::process::id()) - cpu_before);
    let postgres_percent = percent(bench::postgres_ticks().saturating_sub(postgres_before));

    let rss_peak = bench::peak_rss_mib();
    let peak_in_flight = aws.max_in_flight();
    let bound = profile.bound(args.job_workers);
    // The point of the bound: a fan-out over hundreds of accounts must not storm AWS.
    if peak_in_flight > bound {
        bail!(
            "{} calls were in flight at once, over the bound of {bound} ({profile:?})",
            peak_in_flight
        );
    }
    ensure!(
        org_result["errors"].as_u64() == Some(0),
        "the organization scan could not read a source: {org_result}"
    );
    ensure!(
        members_result["accounts"].as_u64() == Some(args.accounts as u64)
            && members_result["accountsWithErrors"].as_u64() == Some(0),
        "members scan: {} accounts, {} with errors",
        members_result["accounts"],
        members_result["accountsWithErrors"]
    );
    let members_reported: u64 = members_result["perAccount"]
        .as_array()
        .map(|a| a.iter().map(|s| reported_calls(&s["sources"])).sum())
        .unwrap_or(0);
    let (assume_role, organizations) = (
        aws.calls().assume_role - sts_before,
        aws.organizations_calls().total - orgs_before,
    );
    let scanned = aws.scan_calls_total() - scanned_before;
    workers.stop().await;
    // Stops serving, so the next run's memory is not this run's.
    app.server.task.abort();
    Ok(Run {
        wall,
        org_scan,
        calls: scanned + assume_role + organizations,
        assume_role,
        organizations,
        reported: reported_calls(&org_result["sources"]) + members_reported,
        peak_in_flight,
        found_org: org_result["found"].as_u64().unwrap_or(0),
        found_members: members_result["found"].as_u64().unwrap_or(0),
        rss_before_kib: kib(rss_before),
        rss_peak_kib: kib(rss_peak),
        rss_after_kib: kib(bench::rss_mib()),
        cpu_percent,
        postgres_percent,
    })
}

fn report(args: &Args, backend: &str, profile: &Profile, runs: &[Run]) {
    let ms = |f: fn(&Run) -> Duration| median(runs.iter().map(|r| f(r).as_millis()).collect());
    let n = |f: fn(&Run) -> u64| median(runs.iter().map(f).collect());
    let mib = |f: fn(&Run) -> u64| n(f) as f64 / 1024.0;
    let wall = ms(|r| r.wall);
    let label = format!("{backend} {}", profile.name);
    let regions = if profile.regions.is_empty() {
        format!("the default {}", DEFAULT_REGIONS.len())
    } else {
        profile.regions.join(",")
    };
    println!(
        "{label}: {} accounts in flight, {} calls in flight, regions {regions} ({} read per account)",
        profile.accounts_in_flight,
        profile.max_in_flight,
        profile.regions_read(),
    );
    println!(
        "{label}: organization + members scan {wall} ms (runs: {:?}) = {:.2} x the {} s target ({}); organization scan done at {} ms",
        runs.iter().map(|r| r.wall.as_millis()).collect::<Vec<_>>(),
        wall as f64 / args.target_ms as f64,
        args.target_ms / 1000,
        if wall < args.target_ms {
            "met"
        } else {
            "missed"
        },
        ms(|r| r.org_scan),
    );
    let calls = n(|r| r.calls);
    println!(
        "{label}: {calls} AWS calls ({} AssumeRole, {} Organizations; the jobs report {} scanner calls); expected per member account {} (1 AssumeRole + {READS_PER_REGION} x {} regions + 1 GetDetector), measured {:.1}",
        n(|r| r.assume_role),
        n(|r| r.organizations),
        n(|r| r.reported),
        profile.calls_per_account(),
        profile.regions_read(),
        calls as f64 / args.accounts as f64,
    );
    let bound = profile.bound(args.job_workers);
    let member_calls = profile.calls_per_account() * args.accounts as u64;
    println!(
        "{label}: at most {} calls in flight (runs: {:?}; bound {bound}, configured total {}); floor {} ms (~{member_calls} member-scan calls x {} ms / {})",
        n(|r| r.peak_in_flight),
        runs.iter().map(|r| r.peak_in_flight).collect::<Vec<_>>(),
        profile.max_in_flight,
        u128::from(member_calls) * u128::from(args.latency_ms)
            / profile.max_in_flight.max(1) as u128,
        args.latency_ms,
        profile.max_in_flight,
    );
    println!(
        "{label}: CPU over the scan: this process (server, workers, local AWS) {} %, PostgreSQL {} % (of one core; {} cores here)",
        n(|r| r.cpu_percent),
        n(|r| r.postgres_percent),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "{label}: {} controls found ({} organization, {} in member accounts)",
        n(|r| r.found_org + r.found_members),
        n(|r| r.found_org),
        n(|r| r.found_members),
    );
    println!(
        "{label}: memory {:.1} MiB before the scan, peak {:.1} MiB during it (+{:.1}), {:.1} MiB after",
        mib(|r| r.rss_before_kib),
        mib(|r| r.rss_peak_kib),
        mib(|r| r.rss_peak_kib.saturating_sub(r.rss_before_kib)),
        mib(|r| r.rss_after_kib),
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    canopy_app::bootstrap::install_tls_provider();
    let args = Args::parse();
    let profiles = args
        .profiles
        .iter()
        .map(|p| Profile::of(p, &args))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let resettable = bench::reset_peak_rss();
    println!(
        "organization: {} connected accounts in {} OUs, {} ms per AWS call, {} job workers, {} runs per backend and profile{}",
        args.accounts,
        args.ous,
        args.latency_ms,
        args.job_workers,
        args.runs,
        if resettable {
            ""
        } else {
            " (peak memory not resettable here: process-wide)"
        },
    );
    let mut highest = 0;
    for backend in &args.backends {
        if !bench::backend_available(backend) {
            continue;
        }
        for profile in &profiles {
            let mut runs = Vec::new();
            for _ in 0..args.runs {
                runs.push(one_run(&args, backend, profile).await?);
            }
            report(&args, backend, profile, &runs);
            highest = runs.iter().map(|r| r.rss_peak_kib).fold(highest, u64::max);
        }
    }
    println!(
        "highest peak of any scan, whole process (server, workers, store, local AWS): {:.1} MiB",
        highest as f64 / 1024.0
    );
    Ok(())
}
