//! The organization-wide coverage view and breakdown follow every write. It is served from each account's
//! own detections folded when they are written (not from every detection at read time), so
//! after a scan, a custom detection created, edited and deleted, and an organization detection
//! on one folder, every row of the view must still say what the account's own coverage page
//! (computed from all its detections) says, and deleting what was added must give back the
//! view as it was. The view is kept in process while the tenant's coverage revision stands,
//! so the same checks hold after the tree changes (a folder moved under another, a project
//! gone, an account deleted), each of which must move the revision; reading must not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_coverage::views::MarksStore;
use canopy_e2e::cloud_org::{
    app_with_worker, connected_gcp_organization, engineering_and_finance, queued_job_succeeds,
    sync_done,
};
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

/// The tenant's coverage revision, as the store keeps it.
async fn revision(app: &TestApp, org: &str) -> i64 {
    let org = canopy_kernel::id::OrganizationId(org.parse().unwrap());
    app.store.coverage_marks().revision(org).await.unwrap()
}

/// The view after a write: the write moved the revision, and the view agrees with every
/// account's page (so what was kept before the write was not served after it).
async fn after_write(app: &TestApp, owner: &Session, org: &str, base: &str, was: i64) -> Value {
    let now = revision(app, org).await;
    assert!(now > was, "the write left the revision at {was}");
    let view = view_agreeing_with_accounts(app, owner, org, base).await;
    assert_eq!(revision(app, org).await, now, "reading moved the revision");
    view
}

async fn resync(app: &TestApp, owner: &Session, org: &str, base: &str) {
    let done = sync_done(app, owner, org, base).await;
    assert_eq!(done["status"], "succeeded", "{done}");
}

async fn the_organization_view_follows_every_write(backend: &str) {
    let g = FakeGcp::start().await.unwrap();
    engineering_and_finance(&g);
    g.add_project("eng-tools", 603, "folders/31", "Tools", "ACTIVE");
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
        connected_gcp_organization(&app, &owner, &org, &g, "3001", SA).await;
    assert_eq!(connected["result"]["connected"], 3, "{connected}");
    let cloud_org = cloud_org.as_str();
    let base = format!("/v1/organizations/{org}/cloud-organizations/{cloud_org}");
    queued_job_succeeds(&app, &owner, &org, &format!("{base}/scan")).await;
    queued_job_succeeds(&app, &owner, &org, &format!("{base}/scan/members")).await;

    let before = view_agreeing_with_accounts(&app, &owner, &org, &base).await;
    let was = revision(&app, &org).await;
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
    let added = after_write(&app, &owner, &org, &base, was).await;
    let was = revision(&app, &org).await;
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
    let narrowed = after_write(&app, &owner, &org, &base, was).await;
    let was = revision(&app, &org).await;
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
                   "cloudOrganizationId": cloud_org, "appliesTo": {"nodes": ["folders/31"]},
                   "techniques": scored(&[&nowhere[3 % nowhere.len()]])}),
        )
        .await;
    assert_eq!(folder.status, StatusCode::CREATED, "{}", folder.body);
    let inherited_view = after_write(&app, &owner, &org, &base, was).await;
    let was = revision(&app, &org).await;
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
    let after = after_write(&app, &owner, &org, &base, was).await;
    assert_eq!(after, before);

    // An organization detection on Finance; then Platform moves under Finance, and
    // eng-platform inherits it from there (the tree and the member's placement changed).
    let finance = app
        .post(
            &detections,
            &owner.token,
            json!({"name": "Finance SIEM", "scope": "organization",
                   "cloudOrganizationId": cloud_org, "appliesTo": {"nodes": ["folders/41"]},
                   "techniques": scored(&[&nowhere[0]])}),
        )
        .await;
    assert_eq!(finance.status, StatusCode::CREATED, "{}", finance.body);
    let was = revision(&app, &org).await;
    let on_finance = view_agreeing_with_accounts(&app, &owner, &org, &base).await;
    assert_eq!(
        inherited(&on_finance, "eng-platform"),
        inherited(&before, "eng-platform")
    );
    g.move_folder("folders/32", "folders/41");
    resync(&app, &owner, &org, &base).await;
    let moved = after_write(&app, &owner, &org, &base, was).await;
    assert_eq!(
        inherited(&moved, "eng-platform"),
        inherited(&before, "eng-platform") + 1,
        "{moved}"
    );
    assert_eq!(
        inherited(&moved, "eng-tools"),
        inherited(&before, "eng-tools")
    );

    // A project gone from the organization leaves the view.
    let was = revision(&app, &org).await;
    g.remove_project("fin-ledger");
    resync(&app, &owner, &org, &base).await;
    let left = after_write(&app, &owner, &org, &base, was).await;
    let keys = |v: &Value| -> Vec<String> {
        v["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["account"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys(&left), ["eng-platform", "eng-tools"], "{left}");

    // A member's cloud account deleted leaves it too.
    let was = revision(&app, &org).await;
    let tools = row(&left, "eng-tools")["cloudAccountId"]
        .as_str()
        .unwrap()
        .to_string();
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/v1/organizations/{org}/cloud-accounts/{tools}?confirmAccountId=eng-tools"),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    let gone = after_write(&app, &owner, &org, &base, was).await;
    assert_eq!(keys(&gone), ["eng-platform"], "{gone}");
}
