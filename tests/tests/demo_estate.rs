//! `canopy serve --demo` seeds a demo AWS Organization and GCP Organization, discovered,
//! connected and scanned by the job workers through the real services, so coverage with its
//! inherited part, the organization view and a Navigator layer read as they would for a real
//! estate: an account under OU Prod inherits the SCP (a sibling OU's account does not), a
//! project under folder Production inherits the folder sink (a sibling folder's does not),
//! accounts' own detections differ, and a restart queues nothing twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use canopy_e2e::cloud_org::worker_for;
use canopy_e2e::{Options, TestApp, on_both_backends};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    by_name;
    the_demo_estate_shows_inherited_coverage_with_no_cloud_credentials,
);

// The demo cloud's ids (`canopy_demo::estate`), as a reader of the README meets them.
const AWS_ORGANIZATION: &str = "o-d3mocanopy1";
const OU_PROD: &str = "ou-d3mo-prod0001";
const FOLDER_PRODUCTION: &str = "folders/531000000001";
const PAYMENTS_PROD: &str = "310987654103";
const WEB_PROD: &str = "310987654104";
const PAYMENTS_STAGING: &str = "310987654105";
const WEB_STAGING: &str = "310987654106";
const SANDBOX_ALICE: &str = "310987654107";

struct Demo {
    app: TestApp,
    token: String,
    accounts: Value,
}

impl Demo {
    async fn get(&self, path: &str) -> Value {
        let path = format!("/v1/organizations/{}{path}", canopy_app::demo::SLUG);
        let resp = self.app.get(&path, &self.token).await;
        assert_eq!(resp.status, StatusCode::OK, "{path}: {}", resp.body);
        resp.body
    }

    /// The Canopy id of the account or project with this provider id.
    fn id(&self, key: &str) -> String {
        self.accounts["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["accountId"] == key)
            .unwrap_or_else(|| panic!("no account {key}: {}", self.accounts))["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn coverage(&self, key: &str) -> Value {
        self.get(&format!("/cloud-accounts/{}/coverage", self.id(key)))
            .await
    }

    /// The detections of `key` from `scope` (`account` or `organization`), by source.
    async fn detections(&self, key: &str, scope: &str) -> Vec<Value> {
        let page = self
            .get(&format!(
                "/cloud-accounts/{}/detections?scope={scope}&limit=200",
                self.id(key)
            ))
            .await;
        page["items"].as_array().unwrap().clone()
    }
}

fn sources(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["detection"]["source"].as_str().unwrap().to_string())
        .collect()
}

fn technique<'a>(coverage: &'a Value, id: &str) -> &'a Value {
    coverage["techniques"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["technique"] == id)
        .unwrap_or_else(|| panic!("no {id} in the coverage"))
}

fn count(list: &Value) -> usize {
    list.as_array().unwrap().len()
}

async fn the_demo_estate_shows_inherited_coverage_with_no_cloud_credentials(backend: &str) {
    let demo = Options {
        demo: true,
        ..Options::default()
    };
    let app = TestApp::start_with(backend, demo.clone()).await;
    let workers = worker_for(&app);
    let done = tokio::time::timeout(
        Duration::from_secs(120),
        canopy_app::demo::complete(&app.state),
    )
    .await
    .expect("the demo estate is scanned within two minutes")
    .unwrap();
    // Two discoveries, two connects, two organization scans, two members scans, and a scan
    // of each of the six standalone accounts.
    assert_eq!(done.queued, 14);
    assert_eq!(done.cloud_organizations.len(), 2);
    // A restart on the same database seeds nothing and queues nothing twice.
    let restarted = app.replica(demo).await;
    let again = canopy_app::demo::complete(&restarted.state).await.unwrap();
    assert_eq!(again.queued, 0);
    assert_eq!(again.cloud_organizations, done.cloud_organizations);

    let login = app
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": canopy_app::demo::EMAIL, "password": canopy_app::demo::PASSWORD})),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let mut d = Demo {
        token: login.body["token"].as_str().unwrap().to_string(),
        app,
        accounts: Value::Null,
    };
    d.accounts = d.get("/cloud-accounts?limit=200").await;
    // Six standalone accounts, the AWS Organization's nine and the GCP Organization's five.
    assert_eq!(count(&d.accounts["items"]), 20, "{}", d.accounts);
    let (aws, gcp) = (
        done.cloud_organizations[0].to_string(),
        done.cloud_organizations[1].to_string(),
    );
    let listed = d.get("/cloud-organizations").await;
    for item in listed["items"].as_array().unwrap() {
        assert_eq!(item["status"], "connected", "{item}");
    }
    for (id, scanned) in [(&aws, 9), (&gcp, 5)] {
        let status = d
            .get(&format!("/cloud-organizations/{id}/scan-status"))
            .await;
        assert_eq!(status["organization"]["status"], "succeeded", "{status}");
        assert_eq!(status["members"]["result"]["accounts"], scanned, "{status}");
    }

    // The organization view lists every member, side by side.
    let aws_view = d.get(&format!("/cloud-organizations/{aws}/coverage")).await;
    assert_eq!(count(&aws_view["accounts"]), 9, "{aws_view}");
    assert!(aws_view["max"].as_f64().unwrap() > aws_view["min"].as_f64().unwrap());
    assert_eq!(
        count(&d.get(&format!("/cloud-organizations/{gcp}/coverage")).await["accounts"]),
        5
    );

    // An account under OU Prod inherits the organization trail and Prod's SCP, and counts
    // them: its coverage is above what its own detections cover.
    let web_prod = d.coverage(WEB_PROD).await;
    assert_eq!(web_prod["includesOrgDetections"], true);
    let breakdown = &web_prod["breakdown"];
    let own = count(&breakdown["accountTechniques"]) as f64;
    let overall = &web_prod["overall"];
    assert!(
        overall["percent"].as_f64().unwrap()
            > own * 100.0 / overall["total"].as_f64().unwrap() + 1.0,
        "{overall} against {own} techniques of its own"
    );
    let logs = technique(&web_prod, "T1562.008");
    assert_eq!(logs["status"], "covered", "{logs}");
    let contributors = logs["contributors"].as_array().unwrap();
    assert!(
        contributors
            .iter()
            .any(|c| c["inherited"] == true && c["node"] == OU_PROD && c["category"] == "protect"),
        "Prod's SCP: {logs}"
    );
    assert!(
        contributors
            .iter()
            .any(|c| c["inherited"] == true && c["name"] == "org-trail"),
        "the organization trail: {logs}"
    );
    // Under Prod's subtree (OU PCI) too.
    let inherited = d.detections(PAYMENTS_PROD, "organization").await;
    let scp = inherited
        .iter()
        .find(|i| i["detection"]["source"] == "aws.organizations.scp")
        .unwrap();
    assert_eq!(scp["appliesBecause"], "under_node");
    assert_eq!(scp["node"], OU_PROD);

    // Prod's sibling OU does not get the SCP; the organization trail it does.
    let staging = d.detections(PAYMENTS_STAGING, "organization").await;
    let staging_sources = sources(&staging);
    assert!(staging_sources.contains(&"aws.cloudtrail.org_trail".to_string()));
    assert!(
        !staging_sources.contains(&"aws.organizations.scp".to_string()),
        "{staging_sources:?}"
    );
    let staging_logs = technique(&d.coverage(PAYMENTS_STAGING).await, "T1562.008").clone();
    assert!(
        !staging_logs["categories"]
            .as_array()
            .unwrap()
            .contains(&json!("protect")),
        "{staging_logs}"
    );
    // GuardDuty's administrator enrolled everyone but the sandboxes.
    assert!(staging_sources.contains(&"aws.guardduty.delegated_admin".to_string()));
    let sandbox = sources(&d.detections(SANDBOX_ALICE, "organization").await);
    assert!(!sandbox.contains(&"aws.guardduty.delegated_admin".to_string()));

    // Accounts' own detections differ: many, none, a degraded trail, an unreadable source.
    assert!(d.detections(PAYMENTS_PROD, "account").await.len() >= 7);
    assert!(d.detections(WEB_STAGING, "account").await.is_empty());
    let trail = d.detections(WEB_PROD, "account").await;
    assert_eq!(sources(&trail), ["aws.cloudtrail.trail"]);
    assert_eq!(trail[0]["detection"]["status"], "degraded");
    let alice = d.detections(SANDBOX_ALICE, "account").await;
    assert!(
        alice
            .iter()
            .any(|i| i["detection"]["status"] == "unknown" && i["detection"]["advice"].is_string()),
        "{alice:?}"
    );

    // GCP: the project under folder Production inherits its sink; one under Development
    // does not, though both inherit the organization sink.
    let under = sources(&d.detections("web-frontend-prod", "organization").await);
    let outside = sources(&d.detections("analytics-dev", "organization").await);
    assert!(
        under.contains(&"gcp.logging.folder_sink".to_string()),
        "{under:?}"
    );
    assert!(
        !outside.contains(&"gcp.logging.folder_sink".to_string()),
        "{outside:?}"
    );
    assert!(outside.contains(&"gcp.logging.org_sink".to_string()));
    let folder_sink = d
        .detections("web-frontend-prod", "organization")
        .await
        .into_iter()
        .find(|i| i["detection"]["source"] == "gcp.logging.folder_sink")
        .unwrap();
    assert_eq!(folder_sink["node"], FOLDER_PRODUCTION);
    // Object discovery (T1619) shows only in Data Access logs: the folder sink covers it
    // under Production, nothing does under Development.
    let data = technique(&d.coverage("web-frontend-prod").await, "T1619").clone();
    assert_eq!(data["status"], "covered", "{data}");
    assert!(
        data["contributors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["inherited"] == true && c["node"] == FOLDER_PRODUCTION),
        "{data}"
    );
    let dev_data = technique(&d.coverage("analytics-dev").await, "T1619").clone();
    assert_eq!(dev_data["status"], "uncovered", "{dev_data}");

    // The Navigator layer of the Prod account scores techniques, inherited ones said so.
    let layer = d
        .get(&format!(
            "/coverage/navigator-layer?account={}",
            d.id(WEB_PROD)
        ))
        .await;
    assert_eq!(layer["domain"], "enterprise-attack");
    let cells = layer["techniques"].as_array().unwrap();
    let scored = cells
        .iter()
        .filter(|c| c["score"].as_f64().unwrap_or(0.0) > 0.0)
        .count();
    assert!(scored >= 10, "{scored} scored techniques");
    let cell = cells
        .iter()
        .find(|c| c["techniqueID"] == "T1562.008")
        .unwrap();
    assert!(
        cell["comment"].as_str().unwrap().contains("inherited from"),
        "{cell}"
    );
    assert_eq!(
        d.get(&format!("/cloud-organizations/{aws}")).await["cloudOrgId"],
        AWS_ORGANIZATION
    );

    // The standalone accounts are scanned too: their own coverage only, each different, and
    // the one whose role refuses Canopy unknown rather than uncovered.
    let covered = |c: &Value| c["overall"]["covered"].as_u64().unwrap();
    let us = d.coverage("210987654001").await;
    let eu = d.coverage("210987654002").await;
    assert_eq!(us["includesOrgDetections"], false, "{}", us["breakdown"]);
    assert_eq!(count(&us["breakdown"]["orgTechniques"]), 0);
    assert!(
        covered(&us) > covered(&eu),
        "{} / {}",
        us["overall"],
        eu["overall"]
    );
    assert!(eu["degraded"].as_u64().unwrap() > 0, "the regional trail");
    assert_eq!(covered(&d.coverage("210987654005").await), 0);
    let refused = d.coverage(canopy_app::demo::FAILING_ACCOUNT).await;
    assert_eq!(covered(&refused), 0, "{}", refused["overall"]);
    assert!(
        refused["unknown"].as_u64().unwrap() > 0,
        "unreadable is unknown: {}",
        refused["overall"]
    );
    workers.stop().await;
}
