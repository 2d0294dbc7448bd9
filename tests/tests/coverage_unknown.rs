//! Coverage does not lie about what it could not read. GuardDuty run by a delegated
//! administrator, scanned two ways the customer's permissions can break it:
//!
//! - the administrator may not read how far it reaches (`DescribeOrganizationConfiguration`
//!   denied): the administrator is covered by its own detector, every other account has
//!   GuardDuty's techniques `unknown` (not `uncovered`), and the organization view counts them
//!   in its `unknown` column, never as gaps or as covered nowhere;
//! - GuardDuty cannot be read at all (`ListOrganizationAdminAccounts` denied): its techniques
//!   are unknown in every account, and again neither gaps nor covered nowhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_aws_testkit::{FakeAws, Fault, GuardDutySetup};
use canopy_e2e::cloud_org::{app_with_worker, job_of, queued_job_succeeds, technique_of};
use canopy_e2e::{Options, Session, TestApp, on_both_backends};
use reqwest::StatusCode;
use serde_json::{Value, json};

const MANAGEMENT: &str = "111111111111";
const ADMIN: &str = "222222222222";
const REGION: &str = "us-east-1";

/// The organization: the management account, the GuardDuty administrator and five members.
fn estate(aws: &FakeAws) -> Vec<String> {
    let root = aws.create_organization("o-unknown0001", MANAGEMENT, "mgmt@example.com");
    aws.add_org_account(&root, MANAGEMENT, "management", "ACTIVE");
    let security = aws.add_ou(&root, "Security");
    aws.add_org_account(&security, ADMIN, "security", "ACTIVE");
    let workloads = aws.add_ou(&root, "Workloads");
    let members: Vec<String> = (0..5).map(|i| format!("30000000000{i}")).collect();
    for m in &members {
        aws.add_org_account(&workloads, m, "workload", "ACTIVE");
    }
    aws.set_guardduty_admin(MANAGEMENT, REGION, ADMIN);
    aws.enable_guardduty(
        ADMIN,
        REGION,
        GuardDutySetup {
            enabled: true,
            auto_enable: Some("ALL".into()),
            members: members.clone(),
        },
    );
    members
}

/// The estate discovered, every account connected and the organization scanned; the app, its
/// workers, the owner, the tenant and the cloud organization's API path.
async fn scanned(
    backend: &str,
    aws: &FakeAws,
) -> (
    TestApp,
    canopy_app::worker::RunningWorkers,
    Session,
    String,
    String,
) {
    let (app, workers) = app_with_worker(
        backend,
        Options {
            aws_endpoint_url: aws.url(),
            scan_regions: vec![REGION.into()],
            ..Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Unknowns", "pro").await;
    let started = app
        .post(
            &format!("/v1/organizations/{org}/cloud-organizations/aws/discover"),
            &owner.token,
            json!({"managementRoleArn": format!("arn:aws:iam::{MANAGEMENT}:role/CanopyManagement")}),
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    job_of(&app, &owner, &org, &started).await;
    let id = started.body["cloudOrganization"]["id"].as_str().unwrap();
    let base = format!("/v1/organizations/{org}/cloud-organizations/{id}");
    let connect = app
        .post(
            &format!("{base}/members/connect"),
            &owner.token,
            json!({"all": true}),
        )
        .await;
    let connected = job_of(&app, &owner, &org, &connect).await;
    assert_eq!(connected["result"]["connected"], 7, "{connected}");
    queued_job_succeeds(&app, &owner, &org, &format!("{base}/scan")).await;
    (app, workers, owner, org, base)
}

/// GuardDuty's techniques, as the scanner scores them.
async fn guardduty_techniques(app: &TestApp, owner: &Session, base: &str) -> Vec<String> {
    let listed = app
        .get(
            &format!("{base}/detections?source=aws.guardduty.delegated_admin&limit=200"),
            &owner.token,
        )
        .await
        .body;
    let mut techniques: Vec<String> = listed["items"][0]["techniques"]
        .as_array()
        .unwrap_or_else(|| panic!("no GuardDuty detection: {listed}"))
        .iter()
        .map(|t| t["technique"].as_str().unwrap().to_string())
        .collect();
    techniques.sort();
    techniques.dedup();
    assert!(techniques.len() > 10, "{listed}");
    techniques
}

/// One account's status of `technique`.
async fn status_in(
    app: &TestApp,
    owner: &Session,
    org: &str,
    key: &str,
    technique: &str,
) -> String {
    technique_of(app, owner, org, key, technique).await["status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The organization view holds `technique` unknown in `accounts` accounts, and never as a
/// gap or as covered nowhere.
fn unknown_not_lacking(view: &Value, technique: &str, accounts: u64) {
    let unknown = view["unknown"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["technique"] == technique)
        .unwrap_or_else(|| panic!("{technique} is not in the unknown column: {view}"));
    assert_eq!(unknown["accounts"], accounts, "{technique}: {unknown}");
    assert!(
        !view["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["technique"] == technique),
        "{technique} ranked as a gap: {}",
        view["gaps"]
    );
    assert!(
        !view["inNone"]
            .as_array()
            .unwrap()
            .contains(&json!(technique)),
        "{technique} listed as covered nowhere"
    );
}

async fn an_administrator_whose_reach_is_unreadable_leaves_members_unknown_not_uncovered(
    backend: &str,
) {
    let aws = FakeAws::start().await.unwrap();
    let members = estate(&aws);
    aws.fail_call(
        ADMIN,
        "guardduty:DescribeOrganizationConfiguration",
        Some(Fault::AccessDenied),
    );
    let (app, workers, owner, org, base) = scanned(backend, &aws).await;
    let techniques = guardduty_techniques(&app, &owner, &base).await;
    let t = &techniques[0];
    assert_eq!(status_in(&app, &owner, &org, ADMIN, t).await, "covered");
    assert_eq!(
        status_in(&app, &owner, &org, &members[0], t).await,
        "unknown"
    );
    let view = app
        .get(&format!("{base}/coverage"), &owner.token)
        .await
        .body;
    for t in &techniques {
        // Everyone but the administrator, whose own detector was read.
        unknown_not_lacking(&view, t, 6);
    }
    let rows = view["accounts"].as_array().unwrap();
    let row = |key: &str| rows.iter().find(|r| r["account"] == key).unwrap().clone();
    assert!(row(&members[0])["unknownTechniques"].as_u64().unwrap() >= techniques.len() as u64);
    assert_eq!(row(ADMIN)["unknownTechniques"], 0, "{view}");
    workers.stop().await;
}

async fn guardduty_unreadable_is_unknown_everywhere_and_never_a_gap(backend: &str) {
    let aws = FakeAws::start().await.unwrap();
    estate(&aws);
    aws.fail_call(
        MANAGEMENT,
        "guardduty:ListOrganizationAdminAccounts",
        Some(Fault::AccessDenied),
    );
    let (app, workers, owner, org, base) = scanned(backend, &aws).await;
    let listed = app
        .get(
            &format!("{base}/detections?source=aws.guardduty.delegated_admin&limit=200"),
            &owner.token,
        )
        .await
        .body;
    let stand_in = &listed["items"][0];
    assert_eq!(stand_in["status"], "unknown", "{listed}");
    let techniques: Vec<String> = stand_in["techniques"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["technique"].as_str().unwrap().to_string())
        .collect();
    assert!(!techniques.is_empty(), "{listed}");
    assert_eq!(
        status_in(&app, &owner, &org, ADMIN, &techniques[0]).await,
        "unknown"
    );
    let view = app
        .get(&format!("{base}/coverage"), &owner.token)
        .await
        .body;
    for t in &techniques {
        unknown_not_lacking(&view, t, 7);
    }
    workers.stop().await;
}

on_both_backends!(by_name;
    an_administrator_whose_reach_is_unreadable_leaves_members_unknown_not_uncovered,
    guardduty_unreadable_is_unknown_everywhere_and_never_a_gap,
);
