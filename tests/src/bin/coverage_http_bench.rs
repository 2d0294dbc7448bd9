//! The organization-wide coverage view over HTTP: an AWS Organization of 1,000 accounts on a
//! 4-level OU tree (4 x 4 x 4 x 4 under the root) is discovered and connected through the API
//! (against the local AWS), each account gets 100 own detections and the organization 50
//! organization detections (written through the store, as a scan writes them), then a release
//! `canopy serve` on that PostgreSQL database answers
//! `GET .../cloud-organizations/{id}/coverage` under wrk at 8 connections, then the breakdown
//! (every member's own / inherited technique lists) the same way; then the console's pages of
//! that cloud organization (its dashboard with the breakdown, the heatmap, the detections,
//! the scans and trend) with a session cookie. Results in docs/benchmarks.md;
//! `just bench-coverage`.

use std::collections::HashMap;

use anyhow::{Context, ensure};
use canopy_aws_testkit::FakeAws;
use canopy_cloud_org::CloudAccountId;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_detection::catalog::Catalog;
use canopy_detection::ports::{DetectionRepository, ScanWrite};
use canopy_e2e::bench::{accepted, median_f64 as median, succeeded};
use canopy_e2e::cloud_org::worker_for;
use canopy_e2e::console::Visitor;
use canopy_e2e::synthetic::{Dice, EstateSize, account_detections, organization_detections};
use canopy_e2e::wrk::{Load, Server, ServerArgs, bearer, measure};
use canopy_e2e::{Options, TestApp};
use canopy_kernel::id::OrganizationId;
use canopy_store::{Store, StoreConfig};
use clap::Parser;
use serde_json::{Value, json};

const MANAGEMENT: &str = "100000000000";

#[derive(Parser, Debug)]
#[command(about = "Canopy organization coverage view over HTTP, driven by wrk")]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    estate: EstateSize,
    /// wrk connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Runs per endpoint; the report gives each and the median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The p99 target for the organization view, milliseconds.
    #[arg(long, default_value_t = 50.0)]
    target_p99_ms: f64,
}

/// What the seed made: the owner's token, the organization and the cloud organization.
struct Seeded {
    token: String,
    email: String,
    org: String,
    cloud_org: String,
}

/// The OU tree in the local AWS: ids by level, the root first.
fn tree(aws: &FakeAws, root: &str) -> Vec<Vec<String>> {
    let mut levels = vec![vec![root.to_string()]];
    for depth in 1..=4 {
        let level = levels[depth - 1]
            .iter()
            .flat_map(|parent| (0..4).map(move |i| (parent.clone(), i)))
            .map(|(parent, i)| aws.add_ou(&parent, &format!("ou-{depth}-{i}")))
            .collect();
        levels.push(level);
    }
    levels
}

/// Every cloud account of `org` (provider id to id), page by page.
async fn accounts(
    app: &TestApp,
    token: &str,
    org: &str,
) -> anyhow::Result<HashMap<String, uuid::Uuid>> {
    let mut found = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/organizations/{org}/cloud-accounts?limit=200");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path, token).await;
        ensure!(
            page.status == reqwest::StatusCode::OK,
            "{path}: {}",
            page.body
        );
        for a in page.body["items"].as_array().into_iter().flatten() {
            let key = a["accountId"].as_str().context("accountId")?.to_string();
            let id = a["id"].as_str().context("id")?.parse()?;
            found.insert(key, id);
        }
        match page.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(found),
        }
    }
}

async fn seed(args: &Args, database_url: &str) -> anyhow::Result<Seeded> {
    let store = Store::connect(&StoreConfig::new(database_url)).await?;
    store.migrate().await?;
    let aws = FakeAws::start().await?;
    let root = aws.create_organization("o-covbench00", MANAGEMENT, "mgmt@example.com");
    let levels = tree(&aws, &root);
    let leaves = &levels[4];
    aws.add_org_account(&root, MANAGEMENT, "management", "ACTIVE");
    for n in 1..args.estate.accounts {
        let id = format!("{:012}", 300_000_000_000u64 + n as u64);
        aws.add_org_account(&leaves[n % leaves.len()], &id, "acct", "ACTIVE");
    }
    let app = TestApp::start_on(
        store.clone(),
        Options {
            aws_endpoint_url: aws.url(),
            ..Options::default()
        },
    )
    .await;
    let workers = worker_for(&app);
    let owner = app.sign_up("Bench").await;
    let org = app.create_org_on(&owner, "Bench", "enterprise").await;
    let base = format!("/v1/organizations/{org}/cloud-organizations");
    let started = accepted(
        &app,
        &owner,
        &format!("{base}/aws/discover"),
        Some(json!({"managementRoleArn": format!("arn:aws:iam::{MANAGEMENT}:role/CanopyManagement")})),
    )
    .await?;
    succeeded(&app, &owner, &org, &started["job"]["id"])
        .await
        .context("discovery")?;
    let cloud_org = started["cloudOrganization"]["id"]
        .as_str()
        .context("no cloud organization id")?
        .to_string();
    let connect = accepted(
        &app,
        &owner,
        &format!("{base}/{cloud_org}/members/connect"),
        Some(json!({"all": true})),
    )
    .await?;
    let done = succeeded(&app, &owner, &org, &connect["job"]["id"])
        .await
        .context("connect")?;
    ensure!(
        done["connected"].as_u64() == Some(args.estate.accounts as u64),
        "connected {done}"
    );
    workers.stop().await;

    // The detections, written as scans write them: one transaction per account.
    let ids = accounts(&app, &owner.token, &org).await?;
    let tenant = OrganizationId(org.parse()?);
    let pool: Vec<String> = Catalog::embedded().iaas().map(|t| t.id.clone()).collect();
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let mut keys: Vec<&String> = ids.keys().collect();
    keys.sort();
    let repository = store.detections();
    for key in &keys {
        let account = CloudAccountId(ids[*key]);
        let insert = account_detections(&mut dice, tenant, account, &pool, args.estate.own);
        repository
            .apply_scan(ScanWrite {
                insert,
                ..ScanWrite::default()
            })
            .await?;
    }
    let keys: Vec<String> = keys.into_iter().cloned().collect();
    let organization = organization_detections(
        &mut dice,
        tenant,
        CloudOrganizationId(cloud_org.parse()?),
        &levels,
        &keys,
        &pool,
        args.estate.org,
    );
    repository
        .apply_scan(ScanWrite {
            insert: organization,
            ..ScanWrite::default()
        })
        .await?;
    app.server.task.abort();
    Ok(Seeded {
        token: owner.token,
        email: owner.email,
        org,
        cloud_org,
    })
}

/// A console session on the release server and what its pages need.
struct Console {
    cookie: String,
    slug: String,
    /// A level-1 OU: a quarter of the members.
    subtree: String,
}

/// Logs the owner in through the console's form and picks an OU to narrow to.
async fn console_cookie(base: &str, seeded: &Seeded) -> anyhow::Result<Console> {
    let visitor = Visitor::of(base);
    let signed = visitor.log_in(&seeded.email, "correct horse battery").await;
    ensure!(
        signed.status == reqwest::StatusCode::SEE_OTHER,
        "console log-in: {}",
        signed.status
    );
    let org = get(
        base,
        &format!("/v1/organizations/{}", seeded.org),
        &seeded.token,
    )
    .await?;
    let tree = get(
        base,
        &format!(
            "/v1/organizations/{}/cloud-organizations/{}/hierarchy",
            seeded.org, seeded.cloud_org
        ),
        &seeded.token,
    )
    .await?;
    let subtree = tree["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["depth"] == 1))
        .and_then(|n| n["id"].as_str())
        .context("a level-1 OU")?
        .to_string();
    Ok(Console {
        cookie: format!(
            "Cookie: canopy_session={}",
            visitor.cookie("canopy_session").context("session cookie")?
        ),
        slug: org["organization"]["slug"]
            .as_str()
            .context("the organization's slug")?
            .to_string(),
        subtree,
    })
}

/// Elements in a page (its DOM nodes, text aside): what a browser has to hold.
fn elements(html: &str) -> usize {
    html.as_bytes()
        .windows(2)
        .filter(|w| w[0] == b'<' && w[1].is_ascii_alphabetic())
        .count()
}

/// One GET through the release server, checked.
async fn get(base: &str, path: &str, token: &str) -> anyhow::Result<Value> {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await?;
    Ok(succeeded_answer(resp, path)?.json().await?)
}

/// `resp` when it is a 2xx; otherwise an error naming `what` and the status.
fn succeeded_answer(resp: reqwest::Response, what: &str) -> anyhow::Result<reqwest::Response> {
    ensure!(resp.status().is_success(), "{what}: {}", resp.status());
    Ok(resp)
}

/// Sequential reads of the view, timed end to end (ms): `pairs` times a custom detection is
/// created on `account` and deleted again, each write followed by one read (computed again,
/// since the write moved the revision), then as many reads with nothing written (kept).
async fn sequential(
    base: &str,
    seeded: &Seeded,
    view_path: &str,
    account: &str,
    technique: &str,
    pairs: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let client = reqwest::Client::new();
    let detections = format!("{base}/v1/organizations/{}/detections", seeded.org);
    let timed_read = || async {
        let started = std::time::Instant::now();
        get(base, view_path, &seeded.token).await?;
        anyhow::Ok(started.elapsed().as_secs_f64() * 1e3)
    };
    let mut after_write = Vec::with_capacity(pairs * 2);
    for _ in 0..pairs {
        let created = client
            .post(&detections)
            .bearer_auth(&seeded.token)
            .json(&json!({"name": "bench rule", "scope": "account", "cloudAccountId": account,
                          "techniques": [{"technique": technique, "category": "detect", "value": "partial"}]}))
            .send()
            .await?;
        let id = succeeded_answer(created, "create")?.json::<Value>().await?["id"]
            .as_str()
            .context("created detection id")?
            .to_string();
        after_write.push(timed_read().await?);
        let deleted = client
            .delete(format!("{detections}/{id}"))
            .bearer_auth(&seeded.token)
            .send()
            .await?;
        succeeded_answer(deleted, "delete")?;
        after_write.push(timed_read().await?);
    }
    let mut unchanged = Vec::with_capacity(pairs * 2);
    for _ in 0..pairs * 2 {
        unchanged.push(timed_read().await?);
    }
    Ok((after_write, unchanged))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let database_url = rt.block_on(args.server.fresh_database())?;
    let seeding = std::time::Instant::now();
    let seeded = rt.block_on(seed(&args, &database_url))?;
    eprintln!("seeded in {:.1}s", seeding.elapsed().as_secs_f64());
    let server = Server::start(
        &args.server.canopy,
        &database_url,
        &[("CANOPY_SCAN_MINUTES", "0"), ("CANOPY_RESYNC_MINUTES", "0")],
    )?;
    let view_path = format!(
        "/v1/organizations/{}/cloud-organizations/{}/coverage",
        seeded.org, seeded.cloud_org
    );
    // The first read folds nothing (the writes kept the marks); check what it answers.
    let view = rt.block_on(get(&server.base, &view_path, &seeded.token))?;
    let rows = view["accounts"].as_array().map_or(0, Vec::len);
    ensure!(
        rows == args.estate.accounts,
        "the view lists {rows} accounts"
    );
    ensure!(
        view["organization"]["accountsReached"].as_u64() == Some(args.estate.accounts as u64),
        "the organization's detections reach {} accounts",
        view["organization"]["accountsReached"]
    );
    println!(
        "estate: {} accounts on a 4-level OU tree, {} own detections each, {} organization detections; average coverage {} % (min {}, max {}), {} gaps",
        rows,
        args.estate.own,
        args.estate.org,
        view["average"],
        view["min"],
        view["max"],
        view["gaps"].as_array().map_or(0, Vec::len),
    );
    let account = view["accounts"][0]["cloudAccountId"]
        .as_str()
        .context("a member's cloud account id")?;
    let technique = Catalog::embedded()
        .techniques()
        .first()
        .context("the catalog's first technique")?
        .id
        .clone();
    let (after_write, unchanged) = rt.block_on(sequential(
        &server.base,
        &seeded,
        &view_path,
        account,
        &technique,
        15,
    ))?;
    println!(
        "sequential reads, median of {}: right after a write (computed again) {:.2} ms; nothing written (kept) {:.2} ms",
        after_write.len(),
        median(after_write),
        median(unchanged),
    );
    let load = Load {
        threads: args.server.threads,
        connections: args.connections,
        seconds: args.server.seconds,
    };
    println!(
        "wrk -t{} -c{} -d{}s, runs={}",
        load.threads, load.connections, load.seconds, args.runs
    );
    println!(
        "| endpoint | run | req/s | p50 ms | p99 ms | server CPU % | PostgreSQL CPU % | wrk CPU % | non-2xx |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let url = format!("{}{view_path}", server.base);
    let runs = measure(
        &server,
        "organization view",
        &url,
        &bearer(&seeded.token),
        load,
        args.runs,
    )?;
    let breakdown = format!("{url}/breakdown");
    measure(
        &server,
        "breakdown (technique lists)",
        &breakdown,
        &bearer(&seeded.token),
        load,
        args.runs,
    )?;
    let console = rt.block_on(console_cookie(&server.base, &seeded))?;
    let page = |path: &str| {
        format!(
            "{}/org/{}/cloud-organizations/{}{path}",
            server.base, console.slug, seeded.cloud_org
        )
    };
    let mut dashboard = Vec::new();
    for (name, url) in [
        (
            "console: organization dashboard (gauge, gaps, breakdown page 1 of 20)",
            page(""),
        ),
        (
            "console: dashboard narrowed to one OU subtree",
            format!("{}?under={}", page(""), console.subtree),
        ),
        ("console: ATT&CK heatmap", page("/matrix")),
        ("console: detections (first 50)", page("/detections")),
        ("console: scans and trend", page("/scans")),
        ("console: connect wizard's tree step", page("/select")),
    ] {
        let html = rt.block_on(async {
            reqwest::Client::new()
                .get(&url)
                .header("cookie", console.cookie.trim_start_matches("Cookie: "))
                .send()
                .await?
                .text()
                .await
        })?;
        println!(
            "{name}: {} elements, {} KiB",
            elements(&html),
            html.len() / 1024
        );
        let runs = measure(
            &server,
            name,
            &url,
            std::slice::from_ref(&console.cookie),
            load,
            args.runs,
        )?;
        if dashboard.is_empty() {
            dashboard = runs;
        }
    }
    let console_p99 = median(dashboard.iter().map(|r| r.p99_ms).collect());
    println!(
        "console dashboard p99: median {console_p99:.2} ms over {} runs = {:.2} x the 20 ms target ({})",
        args.runs,
        console_p99 / 20.0,
        if console_p99 < 20.0 { "met" } else { "missed" },
    );
    let median = median(runs.iter().map(|r| r.p99_ms).collect());
    println!(
        "organization view p99: median {median:.2} ms over {} runs = {:.2} x the {} ms target ({})",
        args.runs,
        median / args.target_p99_ms,
        args.target_p99_ms,
        if median < args.target_p99_ms {
            "met"
        } else {
            "missed"
        },
    );
    Ok(())
}
