//! Durable jobs across real processes on PostgreSQL, killed with SIGKILL: two `canopy worker`
//! processes, one killed in the middle of a discovery and again in the middle of a connect of
//! 120 members (the survivor takes each job up once its lease lapses and finishes it; the
//! counts show nothing lost and nothing done twice, and the connect's result and progress are
//! the whole job's); a discovery whose every worker dies (it fails for good and its cloud
//! organization says so); and a `canopy serve` killed while it queues a discovery (the cloud
//! organization and its job are stored together or not at all).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use canopy_aws_testkit::FakeAws;
use canopy_billing::Tier;
use canopy_cloud_org::organization::member::MemberStatus;
use canopy_cloud_org::organization::ports::{
    CloudOrganizationRepository, ConnectClaim, MemberFilter,
};
use canopy_cloud_org::organization::service::{CONNECT_KIND, DISCOVER_KIND};
use canopy_cloud_org::organization::{
    CloudOrganization, CloudOrganizationId, ConnectionStatus, OrganizationIdentity,
};
use canopy_cloud_org::ports::CloudAccountRepository;
use canopy_jobs::{Job, JobId, JobKind, JobStatus, JobStore, NewJob};
use canopy_kernel::PageRequest;
use canopy_kernel::id::OrganizationId;
use canopy_store::{Store, StoreConfig};
use serde_json::json;
use tokio::process::{Child, Command};

const MANAGEMENT: &str = "111111111111";

/// A `canopy worker` on `database` with AWS at `aws`, leases of two seconds.
fn worker(database: &str, aws: &str) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canopy"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CANOPY_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    cmd.args(["worker", "--database-url", database, "--workers", "1"])
        .env("CANOPY_AWS_ENDPOINT_URL", aws)
        .env("CANOPY_AWS_ACCESS_KEY_ID", "AKIDCANOPYTESTS")
        .env("CANOPY_AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("CANOPY_JOB_LEASE_SECONDS", "2")
        .env("CANOPY_JOB_POLL_MS", "100")
        .env("CANOPY_RESYNC_MINUTES", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    cmd.spawn().unwrap()
}

/// SIGKILL, as a crash: no clean-up of any kind.
async fn kill(process: &mut Child) {
    process.start_kill().unwrap();
    process.wait().await.unwrap();
}

async fn job(store: &Store, org: OrganizationId, id: JobId) -> Job {
    store.jobs().get(org, id).await.unwrap().unwrap()
}

/// Waits until `done` says so about the job, or fails after `within`.
async fn until(
    store: &Store,
    org: OrganizationId,
    id: JobId,
    within: Duration,
    done: impl Fn(&Job) -> bool,
) -> Job {
    let start = Instant::now();
    loop {
        let j = job(store, org, id).await;
        if done(&j) {
            return j;
        }
        assert!(start.elapsed() < within, "job never got there: {j:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn members_with(
    store: &Store,
    org: OrganizationId,
    id: CloudOrganizationId,
    status: Option<MemberStatus>,
) -> Vec<String> {
    store
        .cloud_organizations()
        .members(
            org,
            id,
            &MemberFilter {
                status,
                ..Default::default()
            },
            PageRequest {
                limit: PageRequest::MAX_LIMIT,
                after: None,
            },
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| m.found.key)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs postgres"]
async fn a_killed_worker_process_loses_nothing_and_nothing_is_done_twice() {
    canopy_app::bootstrap::install_tls_provider();
    let url = canopy_store::testing::fresh_postgres_url().await.unwrap();
    let store = Store::connect(&StoreConfig::new(url.clone()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let (user, tenant) = canopy_store::testing::user_with_organization(&store, "Kill")
        .await
        .unwrap();
    canopy_store::testing::put_on_tier(&store, tenant.id, Tier::Pro)
        .await
        .unwrap();

    // 40 OUs of 3 accounts; every Organizations call takes 200 ms, so discovery takes seconds.
    let aws = FakeAws::start().await.unwrap();
    let root = aws.create_organization("o-kill000000", MANAGEMENT, "mgmt@example.com");
    let mut keys = Vec::new();
    for ou in 0..40 {
        let ou_id = aws.add_ou(&root, &format!("team-{ou}"));
        for n in 0..3 {
            let key = format!("7{ou:02}0000000{n:02}");
            aws.add_org_account(&ou_id, &key, &format!("acct-{key}"), "ACTIVE");
            keys.push(key);
        }
    }
    aws.set_latency(Duration::from_millis(200));

    let (id, discover) = discovering(&store, tenant.id, user.id, "o-kill000000").await;

    // Worker A takes the discovery; it dies mid-way (SIGKILL: no clean-up of any kind).
    let mut a = worker(&url, &aws.url());
    until(
        &store,
        tenant.id,
        discover.id,
        Duration::from_secs(60),
        |j| j.status == JobStatus::Running,
    )
    .await;
    let started = Instant::now();
    while aws.organizations_calls().total < 20 {
        assert!(started.elapsed() < Duration::from_secs(60), "A never read");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill(&mut a).await;
    let calls_by_a = aws.organizations_calls().total;

    // Worker B takes it up after the lease lapses and finishes it.
    let mut b = worker(&url, &aws.url());
    let done = until(
        &store,
        tenant.id,
        discover.id,
        Duration::from_secs(90),
        |j| j.status.is_terminal(),
    )
    .await;
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 2, "claimed by A, then by B");
    assert!(aws.organizations_calls().total > calls_by_a);
    let mut stored = members_with(&store, tenant.id, id, None).await;
    stored.sort();
    keys.sort();
    assert_eq!(stored, keys, "every account once, none lost");
    let joined = store
        .cloud_organizations()
        .changes(
            tenant.id,
            id,
            PageRequest {
                limit: PageRequest::MAX_LIMIT,
                after: None,
            },
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|c| c.kind == "joined")
        .count();
    assert_eq!(joined, 120, "each account joined once");

    // Now a connect of all 120 members; B is stopped so A2 takes it, and dies mid-way.
    kill(&mut b).await;
    aws.set_latency(Duration::from_millis(40));
    let claimed = store
        .cloud_organizations()
        .claim_for_connect(
            id,
            &keys,
            canopy_store::testing::now(),
            NewJob::new(
                tenant.id,
                JobKind::from_static(CONNECT_KIND),
                Some(id.as_uuid()),
                json!({"accounts": [], "overLimit": []}),
            )
            .by(user.id),
        )
        .await
        .unwrap();
    let ConnectClaim::Queued {
        keys: claimed,
        job: connect,
    } = claimed
    else {
        panic!("{claimed:?}");
    };
    assert_eq!(claimed.len(), 120);
    let mut a2 = worker(&url, &aws.url());
    until(
        &store,
        tenant.id,
        connect.id,
        Duration::from_secs(60),
        |j| j.progress.done >= 30,
    )
    .await;
    kill(&mut a2).await;
    let mut b2 = worker(&url, &aws.url());
    let done = until(
        &store,
        tenant.id,
        connect.id,
        Duration::from_secs(120),
        |j| j.status.is_terminal(),
    )
    .await;
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 2);
    // The result and progress are the whole job's, not the attempt that finished it.
    let result = done.result.as_ref().unwrap();
    assert_eq!(result["failed"], json!([]), "{done:?}");
    assert_eq!(result["connected"], 120, "{done:?}");
    assert_eq!(done.progress.total, Some(120), "{:?}", done.progress);
    assert_eq!(done.progress.done, 120, "{:?}", done.progress);
    let accounts = store
        .cloud_accounts()
        .list(
            tenant.id,
            &Default::default(),
            PageRequest {
                limit: PageRequest::MAX_LIMIT,
                after: None,
            },
        )
        .await
        .unwrap()
        .items;
    assert_eq!(accounts.len(), 120, "one cloud account per member");
    let connected = members_with(&store, tenant.id, id, Some(MemberStatus::Connected)).await;
    assert_eq!(connected.len(), 120, "every member linked");
    kill(&mut b2).await;
}

/// A stored AWS cloud organization `o-...` of `tenant`, `discovering`, with its discovery job
/// queued in the same transaction (as the service records one).
async fn discovering(
    store: &Store,
    tenant: OrganizationId,
    user: canopy_kernel::id::UserId,
    cloud_org_id: &str,
) -> (CloudOrganizationId, Job) {
    let now = canopy_store::testing::now();
    let id = CloudOrganizationId::new();
    let job = store
        .cloud_organizations()
        .create(
            CloudOrganization {
                management_role_arn: Some(format!("arn:aws:iam::{MANAGEMENT}:role/Mgmt")),
                member_role_name: "CanopyAccess".into(),
                ..CloudOrganization::discovering(
                    id,
                    tenant,
                    canopy_cloud_org::Provider::Aws,
                    OrganizationIdentity {
                        cloud_org_id: cloud_org_id.into(),
                        arn: None,
                        management_account_id: Some(MANAGEMENT.into()),
                        management_account_email: None,
                        display_name: None,
                        directory_customer_id: None,
                        lifecycle_state: None,
                    },
                    cloud_org_id.into(),
                    user,
                    now,
                )
            },
            canopy_store::testing::audit(
                tenant,
                canopy_tenancy::AuditAction::CloudOrganizationConnected,
            ),
            Some(
                NewJob::new(
                    tenant,
                    JobKind::from_static(DISCOVER_KIND),
                    Some(id.as_uuid()),
                    json!({"provider": "aws"}),
                )
                .by(user),
            ),
        )
        .await
        .unwrap()
        .unwrap();
    (id, job)
}

/// Every worker that takes the discovery dies in it: after the third death the job fails
/// for good, and its cloud organization leaves `discovering` for `error`, with the reason and
/// what to do, instead of claiming to discover forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs postgres"]
async fn a_discovery_whose_workers_keep_dying_fails_and_its_organization_says_so() {
    canopy_app::bootstrap::install_tls_provider();
    let url = canopy_store::testing::fresh_postgres_url().await.unwrap();
    let store = Store::connect(&StoreConfig::new(url.clone()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let (user, tenant) = canopy_store::testing::user_with_organization(&store, "Doomed")
        .await
        .unwrap();
    let aws = FakeAws::start().await.unwrap();
    let root = aws.create_organization("o-doomed00000", MANAGEMENT, "mgmt@example.com");
    for ou in 0..40 {
        let unit = aws.add_ou(&root, &format!("team-{ou}"));
        aws.add_org_account(&unit, &format!("6{ou:02}000000000"), "acct", "ACTIVE");
    }
    aws.set_latency(Duration::from_millis(200));
    let (id, discover) = discovering(&store, tenant.id, user.id, "o-doomed00000").await;

    for attempt in 1..=NewJob::DEFAULT_MAX_ATTEMPTS {
        let calls_before = aws.organizations_calls().total;
        let mut w = worker(&url, &aws.url());
        until(
            &store,
            tenant.id,
            discover.id,
            Duration::from_secs(60),
            |j| j.status == JobStatus::Running && j.attempts == attempt,
        )
        .await;
        let started = Instant::now();
        while aws.organizations_calls().total < calls_before + 5 {
            assert!(started.elapsed() < Duration::from_secs(60), "it never read");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        kill(&mut w).await;
    }
    // The next worker finds a job out of attempts: it fails it and wraps it up.
    let mut last = worker(&url, &aws.url());
    let failed = until(
        &store,
        tenant.id,
        discover.id,
        Duration::from_secs(60),
        |j| j.status.is_terminal(),
    )
    .await;
    assert_eq!(failed.status, JobStatus::Failed, "{failed:?}");
    assert!(failed.error.as_deref().unwrap().contains("stopped 3 times"));
    let start = Instant::now();
    let cloud_org = loop {
        let c = store
            .cloud_organizations()
            .get(tenant.id, id)
            .await
            .unwrap()
            .unwrap();
        if c.status != ConnectionStatus::Discovering {
            break c;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "still {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(cloud_org.status, ConnectionStatus::Error);
    let error = cloud_org.error.unwrap();
    assert!(error.contains("stopped 3 times"), "{error}");
    assert!(error.contains("Sync again"), "{error}");
    kill(&mut last).await;
}

/// A `canopy serve` on `database` with AWS at `aws`, listening on `port`, running no jobs.
fn server(database: &str, aws: &str, port: u16) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canopy"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CANOPY_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    cmd.args(["serve", "--database-url", database])
        .env("CANOPY_BIND", format!("127.0.0.1:{port}"))
        .env("CANOPY_AWS_ENDPOINT_URL", aws)
        .env("CANOPY_AWS_ACCESS_KEY_ID", "AKIDCANOPYTESTS")
        .env("CANOPY_AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("CANOPY_JOB_WORKERS", "0")
        .env("CANOPY_RESYNC_MINUTES", "0")
        .env("CANOPY_SCAN_MINUTES", "0")
        .env("CANOPY_RETENTION_SWEEP_MINUTES", "0")
        .env("CANOPY_ARGON2_MEMORY_KIB", "1024")
        .env("CANOPY_ARGON2_ITERATIONS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    cmd.spawn().unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn ready(http: &reqwest::Client, base: &str) {
    let start = Instant::now();
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "server never ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server killed between recording a cloud organization and queuing its discovery used to
/// leave it `discovering` for good, with no job, and refuse the next discover as "already
/// connected". The record, its audit event and its job are one transaction now: killed while
/// the job's insert waits on a lock, the server leaves nothing, and the next discover works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs postgres"]
async fn a_server_killed_while_queuing_a_discovery_leaves_nothing_half_recorded() {
    canopy_app::bootstrap::install_tls_provider();
    let url = canopy_store::testing::fresh_postgres_url().await.unwrap();
    let store = Store::connect(&StoreConfig::new(url.clone()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let aws = FakeAws::start().await.unwrap();
    let root = aws.create_organization("o-crash0000001", MANAGEMENT, "mgmt@example.com");
    aws.add_org_account(&root, MANAGEMENT, "management", "ACTIVE");

    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut first = server(&url, &aws.url(), port);
    ready(&http, &base).await;
    let signed: serde_json::Value = http
        .post(format!("{base}/v1/auth/signup"))
        .json(&json!({"email": "crash@example.com", "name": "Crash",
                      "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signed["token"].as_str().unwrap().to_string();
    let created: serde_json::Value = http
        .post(format!("{base}/v1/organizations"))
        .bearer_auth(&token)
        .json(&json!({"name": "Crash"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org: OrganizationId = created["id"].as_str().unwrap().parse().unwrap();
    canopy_store::testing::put_on_tier(&store, org, Tier::Pro)
        .await
        .unwrap();
    let discover = format!("{base}/v1/organizations/{org}/cloud-organizations/aws/discover");
    let body =
        json!({"managementRoleArn": format!("arn:aws:iam::{MANAGEMENT}:role/CanopyManagement")});

    // Jobs locked: the discover request records what it records, then waits on the job insert.
    let lock = canopy_store::testing::lock_table(&store, "jobs")
        .await
        .unwrap();
    let pending = tokio::spawn({
        let (http, discover, token, body) =
            (http.clone(), discover.clone(), token.clone(), body.clone());
        async move {
            http.post(discover)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
        }
    });
    let start = Instant::now();
    while canopy_store::testing::sessions_waiting_on_locks(&store)
        .await
        .unwrap()
        == 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the request never waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill(&mut first).await;
    assert!(
        pending.await.unwrap().is_err(),
        "the killed server answered"
    );
    lock.release().await.unwrap();

    // Nothing half-recorded: no cloud organization without its job.
    let recorded = store
        .cloud_organizations()
        .list(org, PageRequest::first())
        .await
        .unwrap()
        .items;
    assert!(recorded.is_empty(), "left behind: {recorded:?}");

    // A new server takes the same discover as the first time.
    let mut second = server(&url, &aws.url(), port);
    ready(&http, &base).await;
    let again = http
        .post(&discover)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = again.status();
    let answer: serde_json::Value = again.json().await.unwrap();
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{answer}");
    let id = CloudOrganizationId(
        answer["cloudOrganization"]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    );
    let queued = job(
        &store,
        org,
        JobId(answer["job"]["id"].as_str().unwrap().parse().unwrap()),
    )
    .await;
    assert_eq!(queued.subject, Some(id.as_uuid()));
    assert_eq!(queued.status, JobStatus::Queued);
    kill(&mut second).await;
}
