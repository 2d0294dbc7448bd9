//! Cancelling a running job stops the work itself: once the cancel is stored, no cloud call
//! starts more than one heartbeat later (the discovery's tree reads, a members scan's
//! accounts), the job ends `cancelled`, and what it leaves behind is settled: a cloud
//! organization never discovered says the discovery was cancelled and to sync, and a members
//! scan records nothing for the accounts it did not finish.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use canopy_app::config::JobsConfig;
use canopy_aws_testkit::FakeAws;
use canopy_e2e::cloud_org::job_done;
use canopy_e2e::{Options, Session, TestApp, on_both_backends};
use canopy_kernel::SystemClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

const MANAGEMENT: &str = "111111111111";

/// Leases of three seconds: the runner renews (and hears of a cancel) every second.
const LEASE_SECONDS: u64 = 3;
const HEARTBEAT: Duration = Duration::from_secs(1);
/// What a loaded two-core machine may add to a heartbeat before its renewal is read.
const SLACK: Duration = Duration::from_millis(1500);

fn workers(app: &TestApp) -> canopy_app::worker::RunningWorkers {
    canopy_app::bootstrap::job_runner(
        &JobsConfig {
            workers: 1,
            lease_seconds: LEASE_SECONDS,
            poll_ms: 20,
            resync_minutes: 0,
            scan_minutes: 0,
            scan_accounts_in_flight: 4,
        },
        &app.state,
        Arc::new(SystemClock),
    )
    .spawn()
}

/// An organization of 120 OUs with two accounts each under the root.
fn big_organization(aws: &FakeAws) -> Vec<String> {
    let root = aws.create_organization("o-cancel00001", MANAGEMENT, "mgmt@example.com");
    aws.add_org_account(&root, MANAGEMENT, "management", "ACTIVE");
    let mut keys = Vec::new();
    for ou in 0..120 {
        let unit = aws.add_ou(&root, &format!("team-{ou}"));
        for n in 0..2 {
            let key = format!("5{ou:03}000000{n:02}");
            aws.add_org_account(&unit, &key, &format!("acct-{key}"), "ACTIVE");
            keys.push(key);
        }
    }
    keys
}

async fn start(backend: &str, aws: &FakeAws) -> (TestApp, Session, String) {
    let app = TestApp::start_with(
        backend,
        Options {
            aws_endpoint_url: aws.url(),
            scan_regions: vec!["us-east-1".into()],
            ..Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Cancel", "enterprise").await;
    (app, owner, org)
}

/// Connects the fake's AWS Organization through its management role.
async fn discover(app: &TestApp, owner: &Session, org: &str) -> canopy_e2e::Response {
    app.post(
        &format!("/v1/organizations/{org}/cloud-organizations/aws/discover"),
        &owner.token,
        json!({"managementRoleArn": format!("arn:aws:iam::{MANAGEMENT}:role/CanopyManagement")}),
    )
    .await
}

/// Waits until the fake has answered more than `calls` requests.
async fn until_calls(aws: &FakeAws, calls: usize) {
    let start = Instant::now();
    while aws.arrivals().len() <= calls {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the job never called"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Cancels `job` and returns when the cancel was stored (its answer arrived).
async fn cancel(app: &TestApp, owner: &Session, org: &str, job: &str) -> Instant {
    let asked = app
        .post(
            &format!("/v1/organizations/{org}/jobs/{job}/cancel"),
            &owner.token,
            json!({}),
        )
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    assert_eq!(asked.body["cancelRequested"], true, "{}", asked.body);
    Instant::now()
}

/// Every call the fake saw started within a heartbeat (and the slack) of `cancelled`.
fn no_call_after(aws: &FakeAws, cancelled: Instant) -> usize {
    let late: Vec<Duration> = aws
        .arrivals()
        .into_iter()
        .filter(|at| *at > cancelled)
        .map(|at| at - cancelled)
        .collect();
    assert!(
        late.iter().all(|d| *d <= HEARTBEAT + SLACK),
        "calls started {late:?} after the cancel"
    );
    late.len()
}

async fn a_cancelled_discovery_stops_reading_the_tree(backend: &str) {
    let aws = FakeAws::start().await.unwrap();
    big_organization(&aws);
    let (app, owner, org) = start(backend, &aws).await;
    let running = workers(&app);
    aws.set_latency(Duration::from_millis(250));
    let started = discover(&app, &owner, &org).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let job = started.body["job"]["id"].as_str().unwrap().to_string();
    let id = started.body["cloudOrganization"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Reading the tree (about 250 calls at 8 in flight): cancel a few dozen in.
    until_calls(&aws, 30).await;
    let cancelled = cancel(&app, &owner, &org, &job).await;
    let done = job_done(&app, &owner, &org, &job).await;
    let ended = Instant::now();
    assert_eq!(done["status"], "cancelled", "{done}");
    no_call_after(&aws, cancelled);
    assert!(
        aws.arrivals().len() < 150,
        "read most of the tree anyway: {} calls",
        aws.arrivals().len()
    );
    assert!(
        ended - cancelled < HEARTBEAT + SLACK + Duration::from_secs(2),
        "took {:?} to stop",
        ended - cancelled
    );
    // Wrapped up: never discovered, so the organization says so and what to do.
    let deadline = Instant::now() + Duration::from_secs(30);
    let cloud_org = loop {
        let got = app
            .get(
                &format!("/v1/organizations/{org}/cloud-organizations/{id}"),
                &owner.token,
            )
            .await
            .body;
        if got["status"] != "discovering" || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(cloud_org["status"], "error", "{cloud_org}");
    let error = cloud_org["error"].as_str().unwrap();
    assert!(
        error.contains("cancelled") && error.contains("Sync"),
        "{error}"
    );
    running.stop().await;
}

async fn a_cancelled_members_scan_stops_calling_and_records_nothing_unfinished(backend: &str) {
    let aws = FakeAws::start().await.unwrap();
    let keys = big_organization(&aws);
    let (app, owner, org) = start(backend, &aws).await;
    let running = workers(&app);
    let started = discover(&app, &owner, &org).await;
    let id = started.body["cloudOrganization"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let discovered = job_done(
        &app,
        &owner,
        &org,
        started.body["job"]["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(discovered["status"], "succeeded", "{discovered}");
    let base = format!("/v1/organizations/{org}/cloud-organizations/{id}");
    // A few of them connected is enough to scan for a while.
    let some: Vec<&String> = keys.iter().take(40).collect();
    let connect = app
        .post(
            &format!("{base}/members/connect"),
            &owner.token,
            json!({"accountIds": some}),
        )
        .await;
    assert_eq!(connect.status, StatusCode::ACCEPTED, "{}", connect.body);
    let connected = job_done(
        &app,
        &owner,
        &org,
        connect.body["job"]["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(connected["result"]["connected"], 40, "{connected}");

    aws.set_latency(Duration::from_millis(150));
    let before = aws.arrivals().len();
    let scan = app
        .post(&format!("{base}/scan/members"), &owner.token, json!({}))
        .await;
    assert_eq!(scan.status, StatusCode::ACCEPTED, "{}", scan.body);
    let job = scan.body["id"].as_str().unwrap().to_string();
    until_calls(&aws, before + 40).await;
    let cancelled = cancel(&app, &owner, &org, &job).await;
    let done = job_done(&app, &owner, &org, &job).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    no_call_after(&aws, cancelled);
    // Accounts it did not finish have nothing recorded: fewer than all carry detections
    // from this scan.
    let accounts = app
        .get(
            &format!("/v1/organizations/{org}/cloud-accounts?limit=200"),
            &owner.token,
        )
        .await
        .body;
    let mut scanned = 0;
    for account in accounts["items"].as_array().unwrap() {
        let detections: Value = app
            .get(
                &format!(
                    "/v1/organizations/{org}/cloud-accounts/{}/detections?scope=account",
                    account["id"].as_str().unwrap()
                ),
                &owner.token,
            )
            .await
            .body;
        if !detections["items"].as_array().unwrap().is_empty() {
            scanned += 1;
        }
    }
    assert!(
        scanned < 40,
        "every account was recorded: the scan was not stopped"
    );
    running.stop().await;
}

on_both_backends!(by_name;
    a_cancelled_discovery_stops_reading_the_tree,
    a_cancelled_members_scan_stops_calling_and_records_nothing_unfinished,
);
