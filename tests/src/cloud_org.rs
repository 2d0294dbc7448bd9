//! A cloud organization in moto for the end-to-end stories: an AWS Organization created
//! through the real SDK, a server with a job worker beside it, and the estate discovered.

use std::sync::Arc;
use std::time::Duration;

use canopy_app::config::JobsConfig;
use canopy_kernel::SystemClock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{Options, Session, TestApp, moto_url, random_aws_account};

/// An SDK configuration acting as `account` in moto (any role there can be assumed), and
/// its access key id (moto's S3 reads the account from it).
pub async fn config_as(account: &str) -> (aws_config::SdkConfig, String) {
    let config = canopy_aws::testing::with_test_credentials();
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&config)
            .endpoint_url(moto_url())
            .build(),
    );
    let c = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/Setup"))
        .role_session_name("setup")
        .send()
        .await
        .unwrap();
    let c = c.credentials().unwrap();
    let access_key = c.access_key_id().to_string();
    let config = config
        .into_builder()
        .endpoint_url(moto_url())
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    c.access_key_id(),
                    c.secret_access_key(),
                    Some(c.session_token().to_string()),
                    None,
                    "setup",
                ),
            ),
        )
        .build();
    (config, access_key)
}

/// An Organizations client acting as `account` in moto.
pub async fn organizations_as(account: &str) -> aws_sdk_organizations::Client {
    aws_sdk_organizations::Client::new(&config_as(account).await.0)
}

/// The ids of the moto organization [`estate`] built.
pub struct Estate {
    /// The management account.
    pub management: String,
    /// The root.
    pub root: String,
    /// OU Production.
    pub prod: String,
    /// OU Development.
    pub dev: String,
    /// The 13 member accounts (12 in Production, the last in Development).
    pub web: Vec<String>,
}

/// An organization in moto: Production (12 accounts) and Development (1), under the root.
pub async fn estate(org: &aws_sdk_organizations::Client, management: &str) -> Estate {
    org.create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .unwrap();
    let root = org.list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_string();
    let ou = |name: &'static str| {
        let root = root.clone();
        async move {
            org.create_organizational_unit()
                .parent_id(root)
                .name(name)
                .send()
                .await
                .unwrap()
                .organizational_unit()
                .unwrap()
                .id()
                .unwrap()
                .to_string()
        }
    };
    let prod = ou("Production").await;
    let dev = ou("Development").await;
    let mut web = Vec::new();
    for i in 0..13 {
        let id = org
            .create_account()
            .account_name(format!("web-{i}"))
            .email(format!("web-{i}-{management}@example.com"))
            .send()
            .await
            .unwrap()
            .create_account_status()
            .unwrap()
            .account_id()
            .unwrap()
            .to_string();
        let to = if i == 12 { &dev } else { &prod };
        org.move_account()
            .account_id(&id)
            .source_parent_id(&root)
            .destination_parent_id(to)
            .send()
            .await
            .unwrap();
        web.push(id);
    }
    Estate {
        management: management.to_string(),
        root,
        prod,
        dev,
        web,
    }
}

/// Polls a job until it leaves `queued` / `running`; its final document. Patient (a minute):
/// CI shares two cores with everything else, and a stalled job still fails the test.
pub async fn job_done(app: &TestApp, owner: &Session, org: &str, job: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let resp = app
            .call(
                Method::GET,
                &format!("/v1/organizations/{org}/jobs/{job}"),
                Some(&owner.token),
                None,
            )
            .await;
        let Some(status) = resp.body["status"].as_str().map(str::to_string) else {
            panic!("job {job}: {} {}", resp.status, resp.body);
        };
        if status != "queued" && status != "running" {
            return resp.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job} did not finish");
}

/// POSTs `path`, which queues a job (a scan), and waits for it to succeed; its final document.
pub async fn queued_job_succeeds(app: &TestApp, owner: &Session, org: &str, path: &str) -> Value {
    let queued = app.call(Method::POST, path, Some(&owner.token), None).await;
    assert_eq!(
        queued.status,
        reqwest::StatusCode::ACCEPTED,
        "{path}: {}",
        queued.body
    );
    let done = job_done(app, owner, org, queued.body["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    done
}

/// A GCP Organization in the local Google: organization 3001 (`estate.example`) with an
/// organization sink to the SIEM, folders Engineering (`folders/31`) > Platform
/// (`folders/32`) and Finance (`folders/41`), and projects `eng-platform` (under Platform)
/// and `fin-ledger` (under Finance). Returns the organization's resource name.
pub fn engineering_and_finance(g: &canopy_gcp_testkit::FakeGcp) -> String {
    let root = g.add_organization(3001, "estate.example", "C0est");
    g.add_folder("folders/31", &root, "Engineering");
    g.add_folder("folders/32", "folders/31", "Platform");
    g.add_folder("folders/41", &root, "Finance");
    g.add_project("eng-platform", 601, "folders/32", "Platform", "ACTIVE");
    g.add_project("fin-ledger", 602, "folders/41", "Ledger", "ACTIVE");
    g.add_sink(
        &root,
        json!({"name": "audit-to-siem", "destination": "pubsub.googleapis.com/projects/sec/topics/audit",
               "filter": "logName:\"cloudaudit.googleapis.com\"", "includeChildren": true}),
    );
    root
}

/// Follows the job a `202 Accepted` answer started until it is done; its final document.
pub async fn job_of(app: &TestApp, owner: &Session, org: &str, started: &crate::Response) -> Value {
    job_done(app, owner, org, started.body["job"]["id"].as_str().unwrap()).await
}

/// Re-syncs the cloud organization at `base` (its API path) and waits for the job.
pub async fn sync_done(app: &TestApp, owner: &Session, org: &str, base: &str) -> Value {
    let sync = app
        .post(&format!("{base}/sync"), &owner.token, json!({}))
        .await;
    assert_eq!(sync.status, reqwest::StatusCode::ACCEPTED, "{}", sync.body);
    job_of(app, owner, org, &sync).await
}

/// In moto, as the management account: `web[0]` moves from Production to Development and
/// `web[1]` leaves the organization.
pub async fn move_one_and_remove_one(e: &Estate) {
    let aws = organizations_as(&e.management).await;
    aws.move_account()
        .account_id(&e.web[0])
        .source_parent_id(&e.prod)
        .destination_parent_id(&e.dev)
        .send()
        .await
        .unwrap();
    aws.remove_account_from_organization()
        .account_id(&e.web[1])
        .send()
        .await
        .unwrap();
}

/// What [`story`] set up.
pub struct Story {
    /// The server.
    pub app: TestApp,
    /// Its job worker.
    pub workers: canopy_app::worker::RunningWorkers,
    /// The owner.
    pub owner: Session,
    /// The tenant organization's id.
    pub org: String,
    /// The moto organization.
    pub e: Estate,
    /// The cloud organization's id.
    pub id: String,
}

/// A server on `backend` with `options`, and its job workers ([`worker_for`]) beside it.
pub async fn app_with_worker(
    backend: &str,
    options: Options,
) -> (TestApp, canopy_app::worker::RunningWorkers) {
    let app = TestApp::start_with(backend, options).await;
    let workers = worker_for(&app);
    (app, workers)
}

/// The job workers of `app`'s options (one by default) beside it, polling every 20 ms.
pub fn worker_for(app: &TestApp) -> canopy_app::worker::RunningWorkers {
    canopy_app::bootstrap::job_runner(
        &JobsConfig {
            workers: app.options.job_workers,
            lease_seconds: 10,
            poll_ms: 20,
            resync_minutes: 0,
            scan_minutes: 0,
            scan_accounts_in_flight: app.options.scan_accounts_in_flight,
        },
        &app.state,
        Arc::new(SystemClock),
    )
    .spawn()
}

/// [`app_with_worker`] on moto, an owner of a Pro organization named `name`, an AWS
/// Organization in moto, discovered.
pub async fn story(backend: &str, name: &str) -> Story {
    let (app, workers) = app_with_worker(
        backend,
        Options {
            aws_endpoint_url: moto_url(),
            ..Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, name, "pro").await;
    let management = random_aws_account();
    let aws = organizations_as(&management).await;
    let e = estate(&aws, &management).await;
    let started = app
        .post(
            &format!("/v1/organizations/{org}/cloud-organizations/aws/discover"),
            &owner.token,
            json!({"managementRoleArn": format!("arn:aws:iam::{management}:role/CanopyManagement")}),
        )
        .await;
    let id = started.body["cloudOrganization"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    job_done(
        &app,
        &owner,
        &org,
        started.body["job"]["id"].as_str().unwrap(),
    )
    .await;
    Story {
        app,
        workers,
        owner,
        org,
        e,
        id,
    }
}

/// A connected AWS cloud organization of `org` (an id) as discovery records it, written to the
/// store directly, for tests about what happens around one rather than discovery itself;
/// returns its id.
pub async fn stored_cloud_org(app: &TestApp, org: &str, owner: &Session) -> String {
    use canopy_cloud_org::account::Provider;
    use canopy_cloud_org::organization::ports::CloudOrganizationRepository;
    use canopy_cloud_org::organization::{
        CloudOrganization, CloudOrganizationId, ConnectionStatus, OrganizationIdentity,
    };
    use canopy_kernel::Clock;
    use canopy_kernel::id::{OrganizationId, UserId};

    let org_id = OrganizationId(org.parse().unwrap());
    let cloud_org = CloudOrganizationId::new();
    let now = app.clock.now();
    app.store
        .cloud_organizations()
        .create(
            CloudOrganization {
                management_role_arn: Some("arn:aws:iam::123456789012:role/Mgmt".into()),
                status: ConnectionStatus::Connected,
                last_discovered_at: Some(now),
                ..CloudOrganization::discovering(
                    cloud_org,
                    org_id,
                    Provider::Aws,
                    OrganizationIdentity {
                        cloud_org_id: format!(
                            "o-{}",
                            &cloud_org.as_uuid().simple().to_string()[22..]
                        ),
                        arn: None,
                        management_account_id: Some(random_aws_account()),
                        management_account_email: None,
                        display_name: None,
                        directory_customer_id: None,
                        lifecycle_state: None,
                    },
                    "Estate".into(),
                    UserId(owner.user_id.parse().unwrap()),
                    now,
                )
            },
            canopy_store::testing::audit(
                org_id,
                canopy_tenancy::AuditAction::CloudOrganizationConnected,
            ),
            None,
        )
        .await
        .unwrap();
    cloud_org.to_string()
}

/// Discovers GCP Organization `number` of `g` as service account `sa` (its key uploaded) and
/// connects all its projects; the cloud organization's id and the connect job's document.
pub async fn connected_gcp_organization(
    app: &TestApp,
    owner: &Session,
    org: &str,
    g: &canopy_gcp_testkit::FakeGcp,
    number: &str,
    sa: &str,
) -> (String, Value) {
    let key: Value = serde_json::from_str(&g.service_account_key_json(sa)).unwrap();
    let started = app
        .post(
            &format!("/v1/organizations/{org}/cloud-organizations/gcp/discover"),
            &owner.token,
            json!({"organizationId": number, "serviceAccountKey": key}),
        )
        .await;
    assert_eq!(
        started.status,
        reqwest::StatusCode::ACCEPTED,
        "{}",
        started.body
    );
    job_of(app, owner, org, &started).await;
    let id = started.body["cloudOrganization"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let connect = app
        .post(
            &format!("/v1/organizations/{org}/cloud-organizations/{id}/members/connect"),
            &owner.token,
            json!({"all": true}),
        )
        .await;
    let done = job_of(app, owner, org, &connect).await;
    (id, done)
}

/// The cloud account of `org` with provider id `key` (AWS account id or GCP project id), as
/// the API lists it.
pub async fn account_of(app: &TestApp, owner: &Session, org: &str, key: &str) -> Value {
    let all = app
        .get(
            &format!("/v1/organizations/{org}/cloud-accounts?limit=200"),
            &owner.token,
        )
        .await
        .body;
    all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["accountId"] == key)
        .cloned()
        .unwrap_or_else(|| panic!("no account {key}: {all}"))
}

/// How the account with provider id `key` is covered for `technique` (its entry of the
/// account's coverage: status, categories, contributors).
pub async fn technique_of(
    app: &TestApp,
    owner: &Session,
    org: &str,
    key: &str,
    technique: &str,
) -> Value {
    let id = account_of(app, owner, org, key).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let coverage = app
        .get(
            &format!("/v1/organizations/{org}/cloud-accounts/{id}/coverage"),
            &owner.token,
        )
        .await
        .body;
    coverage["techniques"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["technique"] == technique)
        .cloned()
        .unwrap_or_else(|| panic!("no {technique} in {coverage}"))
}

/// Whether `technique` has protect credit in the account with provider id `key`.
pub async fn protected(
    app: &TestApp,
    owner: &Session,
    org: &str,
    key: &str,
    technique: &str,
) -> bool {
    technique_of(app, owner, org, key, technique).await["categories"]
        .as_array()
        .unwrap()
        .contains(&json!("protect"))
}

/// The demo estate of a `demo: true` app, discovered, connected and scanned by its job
/// workers (kept running in the first value): what `canopy serve --demo` shows a minute in.
pub async fn scanned_demo(
    app: &TestApp,
) -> anyhow::Result<(
    canopy_app::worker::RunningWorkers,
    canopy_app::demo::Completed,
)> {
    let workers = worker_for(app);
    let done = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        canopy_app::demo::complete(&app.state),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the demo estate was not scanned within two minutes"))??;
    Ok((workers, done))
}

/// A bearer token of the demo user, for comparing a page with the API.
pub async fn demo_token(app: &TestApp) -> String {
    let login = app
        .call(
            reqwest::Method::POST,
            "/v1/auth/login",
            None,
            Some(serde_json::json!({
                "email": canopy_app::demo::EMAIL,
                "password": canopy_app::demo::PASSWORD
            })),
        )
        .await;
    login.body["token"].as_str().unwrap_or_default().to_string()
}

/// The demo estate, scanned, with a console visitor logged in as the demo owner and the
/// owner's bearer token: where the console's coverage pages are compared with the API.
pub struct DemoConsole {
    /// The app, `demo: true`.
    pub app: TestApp,
    /// Its job workers, kept running (a scan started from a page is worked).
    pub workers: canopy_app::worker::RunningWorkers,
    /// What the demo's completion connected.
    pub done: canopy_app::demo::Completed,
    /// The demo owner in the console.
    pub owner: crate::console::Visitor,
    /// The demo owner's bearer token.
    pub token: String,
}

/// A [`DemoConsole`] on `backend`.
pub async fn demo_console(backend: &str) -> DemoConsole {
    let app = TestApp::start_with(
        backend,
        Options {
            demo: true,
            ..Options::default()
        },
    )
    .await;
    let (workers, done) = scanned_demo(&app).await.expect("the demo estate scanned");
    let owner = crate::console::Visitor::new(&app);
    let login = owner
        .log_in(canopy_app::demo::EMAIL, canopy_app::demo::PASSWORD)
        .await;
    assert_eq!(
        login.status,
        reqwest::StatusCode::SEE_OTHER,
        "{}",
        login.body
    );
    let token = demo_token(&app).await;
    DemoConsole {
        app,
        workers,
        done,
        owner,
        token,
    }
}

/// An organization CloudTrail trail, multi-region and logging, made in moto by `management`;
/// the SDK configuration acting as `management`, for what the caller adds next.
pub async fn organization_trail(management: &str) -> aws_config::SdkConfig {
    let (config, access_key) = config_as(management).await;
    let bucket = format!("org-trail-{management}");
    canopy_aws::testing::create_moto_bucket(&access_key, &bucket).await;
    let trails = aws_sdk_cloudtrail::Client::new(&config);
    trails
        .create_trail()
        .name("org-trail")
        .s3_bucket_name(&bucket)
        .is_organization_trail(true)
        .is_multi_region_trail(true)
        .send()
        .await
        .expect("the organization trail created");
    trails
        .start_logging()
        .name("org-trail")
        .send()
        .await
        .expect("the trail logging");
    config
}
