//! The organization-wide coverage view and breakdown follow every write. It is served from each account's
//! own detections folded when they are written (not from every detection at read time), so
//! after a scan, a custom detection created, edited and deleted, and an organization detection
//! on one folder, every row of the view must still say what the account's own coverage page
//! (computed from all its detections) says, and deleting what was added must give back the
//! view as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::cloud_org::{app_with_worker, connected_gcp_organization, job_done};
use canopy_e2e::{Options, Session, TestApp, on_both_backends};
use canopy_gcp_testkit::FakeGcp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    by_name;
    the_organization_view_follows_every_write,
);

const SA: &str = "canopy-reader@acme-admin.iam.gserviceaccount.com";

async fn ok(app: &TestApp, owner: &Session, path: &str) -> Value {
    let resp = app.get(path, &owner.token).await;
    assert_eq!(resp.status, StatusCode::OK, "{path}: {}", resp.body);
    resp.body
}

/// The view, checked row by row against each account's own coverage page.
async fn view_agreeing_with_accounts(
    app: &TestApp,
    owner: &Session,
    org: &str,
    base: &str,
) -> Value {
    let view = ok(app, owner, &format!("{base}/coverage")).await;
    let breakdowns = ok(app, owner, &format!("{base}/coverage/breakdown")).await;
    for row in view["accounts"].as_array().unwrap() {
        let id = row["cloudAccountId"].as_str().unwrap();
        let page = ok(
            app,
            owner,
            &format!("/v1/organizations/{org}/cloud-accounts/{id}/coverage"),
        )
        .await;
        let b = &page["breakdown"];
        let len = |k: &str| b[k].as_array().unwrap().len() as u64;
        assert_eq!(
            row["percent"], page["overall"]["percent"],
            "{row} / {}",
            page["overall"]
        );
        assert_eq!(row["ownTechniques"], len("accountTechniques"), "{row}");
        assert_eq!(row["inheritedTechniques"], len("orgTechniques"), "{row}");
        assert_eq!(row["totalTechniques"], page["overall"]["covered"], "{row}");
        let listed = breakdowns["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["cloudAccountId"] == id)
            .unwrap_or_else(|| panic!("{id} has no breakdown: {breakdowns}"));
        assert_eq!(listed["breakdown"], page["breakdown"], "{id}");
    }
    view
}

fn row<'a>(view: &'a Value, project: &str) -> &'a Value {
    view["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["account"] == project)
        .unwrap_or_else(|| panic!("{project} is not in {view}"))
}

fn own(view: &Value, project: &str) -> u64 {
    row(view, project)["ownTechniques"].as_u64().unwrap()
}

fn inherited(view: &Value, project: &str) -> u64 {
    row(view, project)["inheritedTechniques"].as_u64().unwrap()
}

async fn scan(app: &TestApp, owner: &Session, org: &str, path: &str) {
    let queued = app.call(Method::POST, path, Some(&owner.token), None).await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
    let done = job_done(app, owner, org, queued.body["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
}

async fn the_organization_view_follows_every_write(backend: &str) {
    let g = FakeGcp::start().await.unwrap();
    let root = g.add_organization(3101, "view.example", "C0view");
    g.add_folder("folders/51", &root, "Engineering");
    g.add_folder("folders/52", "folders/51", "Platform");
    g.add_folder("folders/61", &root, "Finance");
    g.add_project("eng-platform", 701, "folders/52", "Platform", "ACTIVE");
    g.add_project("eng-tools", 702, "folders/51", "Tools", "ACTIVE");
    g.add_project("fin-ledger", 703, "folders/61", "Ledger", "ACTIVE");
    g.add_sink(
        &root,
        json!({"name": "audit-to-siem", "destination": "pubsub.googleapis.com/projects/sec/topics/audit",
               "filter": "logName:\"cloudaudit.googleapis.com\"", "includeChildren": true}),
    );
    let (app, _workers) = app_with_worker(
        backend,
        Options {
            gcp_endpoint_url: g.url(),
            ..Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "View", "pro").await;
    let (cloud_org, connected) =
        connected_gcp_organization(&app, &owner, &org, &g, "3101", SA).await;
    assert_eq!(connected["result"]["connected"], 3, "{connected}");
    let cloud_org = cloud_org.as_str();
    let base = format!("/v1/organizations/{org}/cloud-organizations/{cloud_org}");
    scan(&app, &owner, &org, &format!("{base}/scan")).await;
    scan(&app, &owner, &org, &format!("{base}/scan/members")).await;

    let before = view_agreeing_with_accounts(&app, &owner, &org, &base).await;
    assert_eq!(before["accounts"].as_array().unwrap().len(), 3, "{before}");
    assert!(
        inherited(&before, "fin-ledger") > 0,
        "the org sink: {before}"
    );
    let nowhere: Vec<String> = before["inNone"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert!(nowhere.len() >= 3, "{before}");

    // An account's own custom detection: its row gains what it covers, the others do not.
    let accounts = ok(
        &app,
        &owner,
        &format!("/v1/organizations/{org}/cloud-accounts?limit=200"),
    )
    .await;
    let platform = accounts["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["accountId"] == "eng-platform")
        .unwrap()["id"]
        .clone();
    let detections = format!("/v1/organizations/{org}/detections");
    let scored = |ts: &[&String]| {
        ts.iter()
            .map(|t| json!({"technique": t, "category": "detect", "value": "partial"}))
            .collect::<Vec<_>>()
    };
    let created = app
        .post(
            &detections,
            &owner.token,
            json!({"name": "SIEM rule", "scope": "account", "cloudAccountId": platform,
                   "techniques": scored(&[&nowhere[0], &nowhere[1]])}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    let added = view_agreeing_with_accounts(&app, &owner, &org, &base).await;
    assert_eq!(
        own(&added, "eng-platform"),
        own(&before, "eng-platform") + 2
    );
    assert_eq!(own(&added, "fin-ledger"), own(&before, "fin-ledger"));
    assert!(
        added["inSome"]
            .as_array()
            .unwrap()
            .contains(&json!(nowhere[0])),
        "{added}"
    );

    // Edited down to one technique: the row follows.
    let edited = app
        .put(
            &format!("{detections}/{id}"),
            &owner.token,
            json!({"name": "SIEM rule", "scope": "account", "cloudAccountId": platform,
                   "techniques": scored(&[&nowhere[2]])}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    let narrowed = view_agreeing_with_accounts(&app, &owner, &org, &base).await;
    assert_eq!(
        own(&narrowed, "eng-platform"),
        own(&before, "eng-platform") + 1
    );
    assert!(
        narrowed["inNone"]
            .as_array()
            .unwrap()
            .contains(&json!(nowhere[0])),
        "{narrowed}"
    );

    // An organization detection on Engineering reaches its two projects, not Finance's.
    let folder = app
        .post(
            &detections,
            &owner.token,
            json!({"name": "Engineering SIEM", "scope": "organization",
                   "cloudOrganizationId": cloud_org, "appliesTo": {"nodes": ["folders/51"]},
                   "techniques": scored(&[&nowhere[3 % nowhere.len()]])}),
        )
        .await;
    assert_eq!(folder.status, StatusCode::CREATED, "{}", folder.body);
    let inherited_view = view_agreeing_with_accounts(&app, &owner, &org, &base).await;
    for (project, gained) in [("eng-platform", 1), ("eng-tools", 1), ("fin-ledger", 0)] {
        assert_eq!(
            inherited(&inherited_view, project),
            inherited(&narrowed, project) + gained,
            "{project}: {inherited_view}"
        );
    }

    // Deleting both gives back the view as it was.
    for gone in [id, folder.body["id"].as_str().unwrap().to_string()] {
        let deleted = app
            .call(
                Method::DELETE,
                &format!("{detections}/{gone}"),
                Some(&owner.token),
                None,
            )
            .await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    }
    let after = view_agreeing_with_accounts(&app, &owner, &org, &base).await;
    assert_eq!(after, before);
}
