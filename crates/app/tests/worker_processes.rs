//! Durable jobs across real processes on PostgreSQL: two `canopy worker` processes, one
//! killed with SIGKILL in the middle of a discovery and again in the middle of a connect of
//! 120 members. The survivor takes each job up once its lease lapses and finishes it; the
//! counts show nothing lost and nothing done twice (one cloud account per member, every member
//! joined once).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use canopy_aws_testkit::FakeAws;
use canopy_billing::Tier;
use canopy_cloud_org::organization::member::MemberStatus;
use canopy_cloud_org::organization::ports::{CloudOrganizationRepository, MemberFilter};
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

    let now = canopy_store::testing::now();
    let id = CloudOrganizationId::new();
    store
        .cloud_organizations()
        .create(
            CloudOrganization {
                id,
                organization_id: tenant.id,
                provider: canopy_cloud_org::Provider::Aws,
                identity: OrganizationIdentity {
                    cloud_org_id: "o-kill000000".into(),
                    arn: None,
                    management_account_id: Some(MANAGEMENT.into()),
                    management_account_email: None,
                    display_name: None,
                    directory_customer_id: None,
                    lifecycle_state: None,
                },
                name: "Kill".into(),
                management_role_arn: Some(format!("arn:aws:iam::{MANAGEMENT}:role/Mgmt")),
                member_role_name: "CanopyAccess".into(),
                gcp_service_account: None,
                gcp_credentials: None,
                status: ConnectionStatus::Discovering,
                error: None,
                unreadable: vec![],
                last_attempt_at: Some(now),
                last_discovered_at: None,
                discovered_count: 0,
                connected_count: 0,
                created_by: user.id,
                created_at: now,
                updated_at: now,
            },
            canopy_store::testing::audit(
                tenant.id,
                canopy_tenancy::AuditAction::CloudOrganizationConnected,
            ),
        )
        .await
        .unwrap();
    let discover = store
        .jobs()
        .enqueue(
            NewJob::new(
                tenant.id,
                JobKind::from_static(DISCOVER_KIND),
                Some(id.as_uuid()),
                json!({"provider": "aws"}),
            )
            .by(user.id),
            now,
        )
        .await
        .unwrap();

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
    a.start_kill().unwrap();
    a.wait().await.unwrap();
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
    b.start_kill().unwrap();
    b.wait().await.unwrap();
    aws.set_latency(Duration::from_millis(40));
    let claimed = store
        .cloud_organizations()
        .claim_for_connect(id, &keys, canopy_store::testing::now())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 120);
    let connect = store
        .jobs()
        .enqueue(
            NewJob::new(
                tenant.id,
                JobKind::from_static(CONNECT_KIND),
                Some(id.as_uuid()),
                json!({"accounts": claimed, "overLimit": []}),
            )
            .by(user.id),
            canopy_store::testing::now(),
        )
        .await
        .unwrap();
    let mut a2 = worker(&url, &aws.url());
    until(
        &store,
        tenant.id,
        connect.id,
        Duration::from_secs(60),
        |j| j.progress.done >= 30,
    )
    .await;
    a2.start_kill().unwrap();
    a2.wait().await.unwrap();
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
    assert_eq!(
        done.result.as_ref().unwrap()["failed"],
        json!([]),
        "{done:?}"
    );
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
    b2.start_kill().unwrap();
    b2.wait().await.unwrap();
}
