//! A cloud organization's accounts over its life, against moto through the real SDK: linked
//! accounts follow their members when a sync finds them moved or gone, a connect links an
//! account that already exists (a crashed run's, or one connected by hand) instead of failing
//! on it, and disconnecting the cloud organization keeps its accounts, detached, audited.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::cloud_org::{Story, account_of, job_of, move_one_and_remove_one, story, sync_done};
use canopy_e2e::{Session, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn linked_accounts_follow_their_members_and_outlive_a_disconnect(backend: &str) {
    let Story {
        app,
        workers,
        owner,
        org,
        e,
        id,
    } = story(backend, "Lifecycle").await;
    let base = format!("/v1/organizations/{org}/cloud-organizations/{id}");
    let connect = app
        .post(
            &format!("{base}/members/connect"),
            &owner.token,
            json!({"accountIds": [e.web[0], e.web[1], e.web[2]]}),
        )
        .await;
    assert_eq!(connect.status, StatusCode::ACCEPTED, "{}", connect.body);
    let done = job_of(&app, &owner, &org, &connect).await;
    assert_eq!(done["result"]["connected"], 3, "{done}");
    let before = account_of(&app, &owner, &org, &e.web[0]).await;
    assert_eq!(before["cloudOrganization"]["id"], id.as_str());
    assert_eq!(
        before["cloudOrganization"]["hierarchyPath"],
        "Root/Production"
    );
    assert_eq!(before["cloudOrganization"]["parentId"], e.prod.as_str());

    // web-0 moves to Development, web-1 leaves the organization.
    move_one_and_remove_one(&e).await;
    let done = sync_done(&app, &owner, &org, &base).await;
    assert_eq!(done["result"]["changes"], 2, "{done}");

    let moved = account_of(&app, &owner, &org, &e.web[0]).await;
    assert_eq!(
        moved["cloudOrganization"]["hierarchyPath"],
        "Root/Development"
    );
    assert_eq!(moved["cloudOrganization"]["parentId"], e.dev.as_str());
    assert!(
        moved["cloudOrganization"].get("leftAt").is_none(),
        "{moved}"
    );
    // The departed account stays connected, flagged.
    let left = account_of(&app, &owner, &org, &e.web[1]).await;
    assert!(left["cloudOrganization"]["leftAt"].is_string(), "{left}");
    assert_eq!(left["status"], "active");
    let stayed = account_of(&app, &owner, &org, &e.web[2]).await;
    assert_eq!(
        stayed["cloudOrganization"]["hierarchyPath"],
        "Root/Production"
    );

    // Disconnecting needs the cloud org id repeated.
    let cloud_org_id = app
        .call(Method::GET, &base, Some(&owner.token), None)
        .await
        .body["cloudOrgId"]
        .as_str()
        .unwrap()
        .to_string();
    for confirm in ["", "?confirmCloudOrgId=o-wrong00000"] {
        let refused = app
            .call(
                Method::DELETE,
                &format!("{base}{confirm}"),
                Some(&owner.token),
                None,
            )
            .await;
        refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(
            refused.body["errors"][0]["field"], "confirm",
            "{}",
            refused.body
        );
    }
    let gone = app
        .call(
            Method::DELETE,
            &format!("{base}?confirmCloudOrgId={cloud_org_id}"),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.body);
    assert_eq!(gone.body["cloudOrganization"]["status"], "disconnected");
    let mut kept: Vec<String> = gone.body["keptAccountIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    kept.sort();
    let mut expected: Vec<String> = [&moved, &left, &stayed]
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    assert_eq!(kept, expected);

    // The cloud organization and its members are gone; its accounts are not.
    for path in [base.clone(), format!("{base}/members")] {
        app.call(Method::GET, &path, Some(&owner.token), None)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    let detached = account_of(&app, &owner, &org, &e.web[0]).await;
    assert!(detached.get("cloudOrganization").is_none(), "{detached}");
    assert_eq!(detached["status"], "active");

    // Every step was audited.
    let events = app
        .call(
            Method::GET,
            &format!("/v1/organizations/{org}/audit-events?limit=200"),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    let actions: Vec<_> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "cloud_organization.connected",
        "cloud_organization.members_connect_requested",
        "cloud_organization.sync_requested",
        "cloud_organization.disconnected",
    ] {
        assert!(actions.contains(&action), "{action} missing: {actions:?}");
    }

    // The organization can be connected again.
    let again = app
        .post(
            &format!("/v1/organizations/{org}/cloud-organizations/aws/discover"),
            &owner.token,
            json!({"managementRoleArn": format!("arn:aws:iam::{}:role/CanopyManagement", e.management)}),
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    workers.stop().await;
}

async fn a_connect_links_an_account_that_already_exists(backend: &str) {
    let Story {
        app,
        workers,
        owner,
        org,
        e,
        id,
    } = story(backend, "Relink").await;
    // As a run that died between creating the account and linking it would leave it.
    let by_hand = app
        .post(
            &format!("/v1/organizations/{org}/cloud-accounts"),
            &owner.token,
            canopy_e2e::aws_account_body(&e.web[5]),
        )
        .await;
    assert_eq!(by_hand.status, StatusCode::CREATED, "{}", by_hand.body);
    let base = format!("/v1/organizations/{org}/cloud-organizations/{id}");
    let connect = app
        .post(
            &format!("{base}/members/connect"),
            &owner.token,
            json!({"accountIds": [e.web[5], e.web[6]]}),
        )
        .await;
    assert_eq!(connect.status, StatusCode::ACCEPTED, "{}", connect.body);
    let done = job_of(&app, &owner, &org, &connect).await;
    assert_eq!(done["result"]["connected"], 2, "{done}");
    assert_eq!(done["result"]["failed"], json!([]), "{done}");
    let members = app
        .call(
            Method::GET,
            &format!("{base}/members?q={}", e.web[5]),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    assert_eq!(members["items"][0]["status"], "connected", "{members}");
    assert_eq!(
        members["items"][0]["linkedCloudAccountId"],
        by_hand.body["id"]
    );
    let accounts = app
        .call(
            Method::GET,
            &format!("/v1/organizations/{org}/cloud-accounts?limit=200"),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    assert_eq!(accounts["items"].as_array().unwrap().len(), 2, "one each");
    let linked = account_of(&app, &owner, &org, &e.web[5]).await;
    assert_eq!(
        linked["cloudOrganization"]["hierarchyPath"],
        "Root/Production"
    );
    workers.stop().await;
}

/// What [`discovered`] hands back: the server, its workers, the owner, the organization's
/// slug, the discovery job and the cloud organization's path.
type Discovered = (
    TestApp,
    canopy_app::worker::RunningWorkers,
    Session,
    String,
    Value,
    String,
);

/// A server beside the local AWS `aws` (management account 111111111111), its owner's
/// organization `name` on Pro, and the AWS Organization discovered.
async fn discovered(backend: &str, aws: &canopy_aws_testkit::FakeAws, name: &str) -> Discovered {
    let (app, workers) = canopy_e2e::cloud_org::app_with_worker(
        backend,
        canopy_e2e::Options {
            aws_endpoint_url: aws.url(),
            ..canopy_e2e::Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, name, "pro").await;
    let started = app
        .post(
            &format!("/v1/organizations/{org}/cloud-organizations/aws/discover"),
            &owner.token,
            json!({"managementRoleArn": "arn:aws:iam::111111111111:role/CanopyManagement"}),
        )
        .await;
    let done = job_of(&app, &owner, &org, &started).await;
    let id = started.body["cloudOrganization"]["id"].as_str().unwrap();
    let base = format!("/v1/organizations/{org}/cloud-organizations/{id}");
    (app, workers, owner, org, done, base)
}

/// An organization discovered through the local Organizations server, then re-synced
/// unchanged: no row of the tree, the members, the change log or the cloud accounts is
/// written. One account moved afterwards does write, so the counter is watching.
async fn an_unchanged_resync_writes_no_row(backend: &str) {
    let aws = canopy_aws_testkit::FakeAws::start().await.unwrap();
    let root = aws.create_organization("o-still00000", "111111111111", "m@example.com");
    let mut ous = Vec::new();
    for i in 0..6 {
        let ou = aws.add_ou(&root, &format!("team-{i}"));
        let child = aws.add_ou(&ou, &format!("team-{i}-web"));
        for n in 0..5 {
            aws.add_org_account(&child, &format!("8{i:02}00000000{n}"), "web", "ACTIVE");
        }
        ous.push(child);
    }
    aws.add_org_account(&root, "111111111111", "management", "ACTIVE");
    let (app, workers, owner, org, done, base) = discovered(backend, &aws, "Still").await;
    assert_eq!(done["result"]["members"], 31, "{done}");
    // Two connected accounts, so their rows are watched too.
    let connect = app
        .post(
            &format!("{base}/members/connect"),
            &owner.token,
            json!({"accountIds": ["800000000000", "801000000000"]}),
        )
        .await;
    job_of(&app, &owner, &org, &connect).await;

    canopy_store::testing::count_writes(&app.store, &canopy_store::testing::CLOUD_ORG_DATA_TABLES)
        .await
        .unwrap();
    let done = sync_done(&app, &owner, &org, &base).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["changes"], 0, "{done}");
    assert_eq!(
        canopy_store::testing::writes_counted(&app.store)
            .await
            .unwrap(),
        0
    );

    aws.move_org_account("800000000000", &ous[1]);
    let done = sync_done(&app, &owner, &org, &base).await;
    assert_eq!(done["result"]["changes"], 1, "{done}");
    // The member, its linked account and the change record.
    assert_eq!(
        canopy_store::testing::writes_counted(&app.store)
            .await
            .unwrap(),
        3
    );
    workers.stop().await;
}

canopy_e2e::on_both_backends!(by_name;
    an_unchanged_resync_writes_no_row,
    connecting_all_connects_more_than_a_page_of_members,
);

canopy_e2e::on_both_backends!(by_name, needs moto;
    linked_accounts_follow_their_members_and_outlive_a_disconnect,
    a_connect_links_an_account_that_already_exists,
);

/// `{"all": true}` over 230 members: more than one page (200) of the members the connect job
/// reads back. It once connected the first page and left the rest `connecting` for good.
async fn connecting_all_connects_more_than_a_page_of_members(backend: &str) {
    let aws = canopy_aws_testkit::FakeAws::start().await.unwrap();
    let root = aws.create_organization("o-many000000", "111111111111", "m@example.com");
    aws.add_org_account(&root, "111111111111", "management", "ACTIVE");
    let ou = aws.add_ou(&root, "fleet");
    for n in 1..230 {
        aws.add_org_account(
            &ou,
            &format!("{:012}", 300_000_000_000u64 + n),
            "node",
            "ACTIVE",
        );
    }
    let (app, workers, owner, org, done, base) = discovered(backend, &aws, "Fleet").await;
    assert_eq!(done["result"]["members"], 230, "{done}");
    let connect = app
        .post(
            &format!("{base}/members/connect"),
            &owner.token,
            json!({"all": true}),
        )
        .await;
    assert_eq!(connect.status, StatusCode::ACCEPTED, "{}", connect.body);
    let done = job_of(&app, &owner, &org, &connect).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["connected"], 230, "{done}");
    let left = app
        .call(
            Method::GET,
            &format!("{base}/members?status=connecting"),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(left.status, StatusCode::OK, "{}", left.body);
    assert_eq!(left.body["items"], json!([]), "{}", left.body);
    workers.stop().await;
}
