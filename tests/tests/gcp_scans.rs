//! A GCP Organization scanned over HTTP, through the real google-logging2 / -securitycenter1 /
//! -orgpolicy2 / -cloudasset1 clients against the local Google of `canopy-gcp-testkit`: an
//! organization sink reaches every project, a folder sink only the projects under its folder
//! (not a sibling folder's), and an API the service account may not read stays `unknown`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::cloud_org::{
    app_with_worker, connected_gcp_organization, engineering_and_finance, protected,
    queued_job_succeeds,
};
use canopy_e2e::{Options, on_both_backends};
use canopy_gcp_testkit::FakeGcp;
use serde_json::{Value, json};

on_both_backends!(
    by_name;
    a_folder_sink_reaches_only_the_projects_under_its_folder,
    a_folders_override_carves_its_subtree_out_of_an_organization_policy,
);

const SA: &str = "canopy-reader@acme-admin.iam.gserviceaccount.com";

fn sources<'a>(page: &'a Value, source: &str) -> Vec<&'a Value> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["detection"]["source"] == source)
        .collect()
}

async fn a_folder_sink_reaches_only_the_projects_under_its_folder(backend: &str) {
    let g = FakeGcp::start().await.unwrap();
    engineering_and_finance(&g);
    g.add_sink(
        "folders/31",
        json!({"name": "eng-everything", "destination": "storage.googleapis.com/eng-logs",
               "filter": "", "includeChildren": true}),
    );
    let (app, workers) = app_with_worker(
        backend,
        Options {
            gcp_endpoint_url: g.url(),
            ..Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Estate", "pro").await;
    let (id, connected) = connected_gcp_organization(&app, &owner, &org, &g, "3001", SA).await;
    assert_eq!(connected["result"]["connected"], 2, "{connected}");
    let base = format!("/v1/organizations/{org}/cloud-organizations/{id}");

    let scanned = queued_job_succeeds(&app, &owner, &org, &format!("{base}/scan")).await;
    // The cloud organization and its two projects, each with a snapshot after the scan.
    assert_eq!(scanned["result"]["coverageSnapshots"], 3, "{scanned}");
    let status = app
        .get(&format!("{base}/scan-status"), &owner.token)
        .await
        .body;
    let scanner = |source: &str| {
        status["scanners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["source"] == source)
            .cloned()
            .unwrap()
    };
    assert_eq!(scanner("gcp.logging.org_sink")["found"], 1, "{status}");
    assert_eq!(scanner("gcp.logging.folder_sink")["found"], 1, "{status}");
    // SCC was never activated here: no finding, and no error either.
    assert!(scanner("gcp.scc.org")["error"].is_null(), "{status}");
    queued_job_succeeds(&app, &owner, &org, &format!("{base}/scan/members")).await;
    let trend = app
        .get(&format!("{base}/coverage/history"), &owner.token)
        .await
        .body;
    let line = trend["snapshots"].as_array().unwrap();
    assert_eq!(line.len(), 2, "one point per scan: {trend}");
    assert_eq!(line[1]["spread"]["accounts"], 2, "{trend}");
    assert_eq!(line[1]["includesOrgDetections"], true, "{trend}");
    assert!(
        line[1]["orgCoveredTechniques"].as_u64().unwrap() > 0,
        "{trend}"
    );

    let accounts = app
        .get(
            &format!("/v1/organizations/{org}/cloud-accounts?limit=200"),
            &owner.token,
        )
        .await
        .body;
    let view = |project: &str| {
        let id = accounts["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["projectId"] == project || a["accountId"] == project)
            .unwrap_or_else(|| panic!("no project {project}: {accounts}"))["id"]
            .as_str()
            .unwrap()
            .to_string();
        let path = format!("/v1/organizations/{org}/cloud-accounts/{id}/detections?limit=200");
        let (app, owner) = (&app, &owner);
        async move { app.get(&path, &owner.token).await.body }
    };
    let platform = view("eng-platform").await;
    let folder = sources(&platform, "gcp.logging.folder_sink");
    assert_eq!(folder.len(), 1, "{platform}");
    assert_eq!(folder[0]["appliesBecause"], "under_node");
    assert_eq!(folder[0]["node"], "folders/31");
    assert_eq!(sources(&platform, "gcp.logging.org_sink").len(), 1);
    let ledger = view("fin-ledger").await;
    assert!(
        sources(&ledger, "gcp.logging.folder_sink").is_empty(),
        "Engineering's sink does not reach Finance's project: {ledger}"
    );
    assert_eq!(
        sources(&ledger, "gcp.logging.org_sink")[0]["appliesBecause"],
        "all_accounts"
    );
    workers.stop().await;
}

/// Service-account key creation disabled at the organization and turned back on at folder
/// Finance only: the policy still holds, and protects, under Engineering; Finance's subtree is
/// carved out of it (it does not apply there), instead of the whole organization losing it.
async fn a_folders_override_carves_its_subtree_out_of_an_organization_policy(backend: &str) {
    let g = FakeGcp::start().await.unwrap();
    let root = engineering_and_finance(&g);
    g.add_policy(
        &root,
        "iam.disableServiceAccountKeyCreation",
        json!({"spec": {"rules": [{"enforce": true}]}}),
    );
    g.add_policy(
        "folders/41",
        "iam.disableServiceAccountKeyCreation",
        json!({"spec": {"rules": [{"enforce": false}]}}),
    );
    let (app, workers) = app_with_worker(
        backend,
        Options {
            gcp_endpoint_url: g.url(),
            ..Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Override", "pro").await;
    let (id, _) = connected_gcp_organization(&app, &owner, &org, &g, "3001", SA).await;
    let base = format!("/v1/organizations/{org}/cloud-organizations/{id}");
    queued_job_succeeds(&app, &owner, &org, &format!("{base}/scan")).await;

    let listed = app
        .get(&format!("{base}/detections?limit=200"), &owner.token)
        .await
        .body;
    let policy = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["source"] == "gcp.orgpolicy.constraint")
        .unwrap_or_else(|| panic!("no policy: {listed}"));
    assert_eq!(policy["status"], "active", "{policy}");
    assert_eq!(policy["appliesTo"]["nodes"], json!([root]), "{policy}");
    assert_eq!(
        policy["appliesTo"]["except"],
        json!(["folders/41"]),
        "{policy}"
    );
    assert!(protected(&app, &owner, &org, "eng-platform", "T1098.001").await);
    assert!(
        !protected(&app, &owner, &org, "fin-ledger", "T1098.001").await,
        "off under Finance"
    );
    workers.stop().await;
}
