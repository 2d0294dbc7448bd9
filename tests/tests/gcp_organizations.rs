//! GCP Organizations over HTTP, through the real google-cloudresourcemanager3 + yup-oauth2
//! against the local Google of `canopy-gcp-testkit`: connect with a service-account key
//! (sealed, never returned), discover folders four deep with a DELETE_REQUESTED project,
//! connect projects (verified with the organization's key), follow a moved folder, survive a
//! denied folder as `partial`, and refuse bad keys, missing permissions and a Canopy with no
//! operator key, each with the field and the rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_cloud_org::organization::ports::CloudOrganizationRepository;
use canopy_e2e::cloud_org::{app_with_worker, job_of, sync_done, worker_for};
use canopy_e2e::{Options, Session, TestApp};
use canopy_gcp_testkit::{FakeGcp, ORGANIZATIONS_GET};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SA: &str = "canopy-reader@acme-admin.iam.gserviceaccount.com";

/// acme.example: Engineering / Platform / Web / Edge (four deep), Finance; six projects, one
/// of them being deleted.
async fn google() -> FakeGcp {
    let g = FakeGcp::start().await.unwrap();
    let org = g.add_organization(1001, "acme.example", "C0abc12");
    g.add_folder("folders/10", &org, "Engineering");
    g.add_folder("folders/11", "folders/10", "Platform");
    g.add_folder("folders/12", "folders/11", "Web");
    g.add_folder("folders/13", "folders/12", "Edge");
    g.add_folder("folders/20", &org, "Finance");
    g.add_project("acme-root", 500, &org, "Root project", "ACTIVE");
    g.add_project("acme-old", 501, "folders/10", "Old", "DELETE_REQUESTED");
    g.add_project("acme-platform", 502, "folders/11", "Platform", "ACTIVE");
    g.add_project("acme-web", 503, "folders/12", "Web", "ACTIVE");
    g.add_project("acme-edge", 504, "folders/13", "Edge", "ACTIVE");
    g.add_project("acme-ledger", 505, "folders/20", "Ledger", "ACTIVE");
    g.set_page_size(2);
    g
}

fn key(g: &FakeGcp) -> Value {
    serde_json::from_str(&g.service_account_key_json(SA)).unwrap()
}

/// The cloud organization as the store holds it.
async fn stored(
    app: &TestApp,
    org: &str,
    id: &str,
) -> canopy_cloud_org::organization::CloudOrganization {
    app.store
        .cloud_organizations()
        .get(
            canopy_kernel::id::OrganizationId(org.parse().unwrap()),
            CloudOrganizationId(id.parse().unwrap()),
        )
        .await
        .unwrap()
        .unwrap()
}

async fn discover(app: &TestApp, owner: &Session, org: &str, body: Value) -> canopy_e2e::Response {
    app.post(
        &format!("/v1/organizations/{org}/cloud-organizations/gcp/discover"),
        &owner.token,
        body,
    )
    .await
}

async fn members(app: &TestApp, owner: &Session, base: &str) -> Vec<Value> {
    app.call(
        Method::GET,
        &format!("{base}/members?limit=200"),
        Some(&owner.token),
        None,
    )
    .await
    .body["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn discovers_connects_and_follows_a_gcp_organization(backend: &str) {
    let g = google().await;
    let (app, workers) = app_with_worker(
        backend,
        Options {
            gcp_endpoint_url: g.url(),
            ..Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Acme", "pro").await;

    let started = discover(
        &app,
        &owner,
        &org,
        json!({"organizationId": "1001", "serviceAccountKey": key(&g)}),
    )
    .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let text = started.body.to_string();
    assert!(!text.contains("PRIVATE KEY"), "the key came back: {text}");
    let cloud_org = &started.body["cloudOrganization"];
    assert_eq!(cloud_org["provider"], "gcp");
    assert_eq!(cloud_org["cloudOrgId"], "organizations/1001");
    assert_eq!(cloud_org["name"], "acme.example");
    assert_eq!(cloud_org["gcpServiceAccount"], SA);
    assert_eq!(cloud_org["gcpDirectoryCustomerId"], "C0abc12");
    let id = cloud_org["id"].as_str().unwrap().to_string();
    let done = job_of(&app, &owner, &org, &started).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    // Stored sealed: neither the key nor its private half is in the row.
    let stored = stored(&app, &org, &id).await;
    let sealed = stored.gcp_credentials.unwrap();
    assert!(!sealed.sealed.contains("PRIVATE") && !sealed.sealed.contains(SA));

    let base = format!("/v1/organizations/{org}/cloud-organizations/{id}");
    let got = app.call(Method::GET, &base, Some(&owner.token), None).await;
    assert_eq!(got.body["status"], "connected", "{}", got.body);
    assert_eq!(got.body["discoveredCount"], 6);
    let tree = app
        .call(
            Method::GET,
            &format!("{base}/hierarchy"),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    let edge = tree["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "folders/13")
        .unwrap()
        .clone();
    assert_eq!(edge["path"], "acme.example/Engineering/Platform/Web/Edge");
    assert_eq!(edge["depth"], 4);
    let found = members(&app, &owner, &base).await;
    let old = found.iter().find(|m| m["accountId"] == "acme-old").unwrap();
    assert_eq!(old["state"], "delete_requested", "{old}");

    // Connect everything under Platform: verified with the organization's key.
    let connect = app
        .post(
            &format!("{base}/members/connect"),
            &owner.token,
            json!({"under": ["folders/11"]}),
        )
        .await;
    assert_eq!(connect.status, StatusCode::ACCEPTED, "{}", connect.body);
    let mut queued: Vec<_> = connect.body["queued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    queued.sort();
    assert_eq!(queued, ["acme-edge", "acme-platform", "acme-web"]);
    let done = job_of(&app, &owner, &org, &connect).await;
    assert_eq!(done["result"]["connected"], 3, "{done}");
    let accounts = app
        .call(
            Method::GET,
            &format!("/v1/organizations/{org}/cloud-accounts?provider=gcp&limit=200"),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    let web = accounts["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["accountId"] == "acme-web")
        .unwrap()
        .clone();
    assert_eq!(web["status"], "active", "{web}");
    assert_eq!(web["projectNumber"], "503");
    assert_eq!(web["cloudOrganization"]["parentId"], "folders/12");
    // A manual sync reads the project with the organization's key too.
    let sync = app
        .post(
            &format!(
                "/v1/organizations/{org}/cloud-accounts/{}/sync",
                web["id"].as_str().unwrap()
            ),
            &owner.token,
            json!({}),
        )
        .await;
    assert_eq!(sync.body["check"]["ok"], true, "{}", sync.body);

    // Web (with Edge) moves under Finance: the members and the linked accounts follow.
    g.move_folder("folders/12", "folders/20");
    let done = sync_done(&app, &owner, &org, &base).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let moved = app
        .call(
            Method::GET,
            &format!("/v1/organizations/{org}/cloud-accounts?provider=gcp&limit=200"),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    let edge = moved["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["accountId"] == "acme-edge")
        .unwrap()
        .clone();
    assert_eq!(
        edge["cloudOrganization"]["hierarchyPath"], "acme.example/Finance/Web/Edge",
        "{edge}"
    );

    // Finance becomes unreadable: partial, listed, and its projects are not reported gone.
    g.deny_folder("folders/20");
    let done = sync_done(&app, &owner, &org, &base).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let got = app.call(Method::GET, &base, Some(&owner.token), None).await;
    assert_eq!(got.body["status"], "partial", "{}", got.body);
    let unreadable = got.body["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 1, "{}", got.body);
    let why = unreadable[0].as_str().unwrap();
    assert!(why.starts_with("folders/20: "), "{why}");
    assert!(why.contains("resourcemanager.folders.list"), "{why}");
    assert_eq!(got.body["discoveredCount"], 6, "nothing reported gone");
    workers.stop().await;
}

async fn bad_keys_missing_permissions_and_plans_are_refused_clearly(backend: &str) {
    let g = google().await;
    let app = TestApp::start_with(
        backend,
        Options {
            gcp_endpoint_url: g.url(),
            ..Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Owner").await;

    // Free: refused before any call to Google.
    let free = app.create_org_on(&owner, "Free", "free").await;
    discover(
        &app,
        &owner,
        &free,
        json!({"organizationId": "1001", "serviceAccountKey": key(&g)}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "feature_not_in_plan");
    assert_eq!(g.calls().token, 0);

    let org = app.create_org_on(&owner, "Acme", "pro").await;
    let field_rule = |r: &canopy_e2e::Response| {
        (
            r.body["errors"][0]["field"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            r.body["errors"][0]["rule"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )
    };
    let mut not_a_key = key(&g);
    not_a_key["type"] = json!("authorized_user");
    let foreign: Value = serde_json::from_str(&g.foreign_key_json(SA)).unwrap();
    for (body, field, rule) in [
        (
            json!({"organizationId": "folders/1", "serviceAccountKey": key(&g)}),
            "organizationId",
            "pattern",
        ),
        (
            json!({"organizationId": "1001", "serviceAccountKey": not_a_key}),
            "serviceAccountKey",
            "service_account",
        ),
        (
            json!({"organizationId": "1001", "serviceAccountKey": foreign}),
            "serviceAccountKey",
            "key_refused",
        ),
    ] {
        let refused = discover(&app, &owner, &org, body).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        assert_eq!(field_rule(&refused), (field.to_string(), rule.to_string()));
        assert!(!refused.body.to_string().contains("PRIVATE KEY"));
    }
    g.deny_all(ORGANIZATIONS_GET);
    let denied = discover(
        &app,
        &owner,
        &org,
        json!({"organizationId": "1001", "serviceAccountKey": key(&g)}),
    )
    .await;
    assert_eq!(
        field_rule(&denied),
        ("serviceAccountKey".into(), "permission_missing".into())
    );
    assert!(
        denied.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("resourcemanager.organizations.get"),
        "{}",
        denied.body
    );
    // Nothing was recorded by any refusal.
    let list = app
        .call(
            Method::GET,
            &format!("/v1/organizations/{org}/cloud-organizations"),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    assert_eq!(list["items"], json!([]));

    // A Canopy whose operator set no key stores no customer credentials: 503, said why.
    g.allow_everything();
    let keyless = TestApp::start_with(
        backend,
        Options {
            gcp_endpoint_url: g.url(),
            secret_key: None,
            ..Options::default()
        },
    )
    .await;
    let owner = keyless.sign_up("Owner").await;
    let org = keyless.create_org_on(&owner, "Keyless", "pro").await;
    let refused = discover(
        &keyless,
        &owner,
        &org,
        json!({"organizationId": "1001", "serviceAccountKey": key(&g)}),
    )
    .await;
    refused.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "secret_key_missing");
}

/// A rotated operator key: what the old key sealed still opens while it is listed as
/// retired, `reseal_secrets` moves it to the new key, and then the old key can go.
async fn a_rotated_secret_key_reseals_and_the_old_one_can_go(backend: &str) {
    let g = google().await;
    let options = || Options {
        gcp_endpoint_url: g.url(),
        ..Options::default()
    };
    let (app, workers) = app_with_worker(backend, options()).await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Rotate", "pro").await;
    let started = discover(
        &app,
        &owner,
        &org,
        json!({"organizationId": "1001", "serviceAccountKey": key(&g)}),
    )
    .await;
    let id = started.body["cloudOrganization"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    job_of(&app, &owner, &org, &started).await;
    workers.stop().await;

    let new_key = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    let rotated = app
        .replica(Options {
            secret_key: Some(new_key.into()),
            retired_secret_keys: Some(canopy_e2e::TEST_SECRET_KEY.into()),
            ..options()
        })
        .await;
    let report = rotated.state.cloud_orgs.reseal_secrets().await.unwrap();
    assert_eq!(report.resealed, 1);
    assert!(report.failed.is_empty());
    // Nothing is left under the old key: a second run has nothing to do.
    assert_eq!(
        rotated
            .state
            .cloud_orgs
            .reseal_secrets()
            .await
            .unwrap()
            .resealed,
        0
    );

    // With the new key alone, the organization still syncs.
    let only_new = app
        .replica(Options {
            secret_key: Some(new_key.into()),
            ..options()
        })
        .await;
    let workers = worker_for(&only_new);
    let base = format!("/v1/organizations/{org}/cloud-organizations/{id}");
    let done = sync_done(&only_new, &owner, &org, &base).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // The old key alone no longer opens it: the sync fails and says why.
    workers.stop().await;
    let only_old = app.replica(options()).await;
    let report = only_old.state.cloud_orgs.reseal_secrets().await.unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(
        report.failed[0].1.contains("no longer configured"),
        "{report:?}"
    );
}

/// Keyless: Canopy's own service account impersonates the customer's once the customer lets
/// it; nothing of the customer's is stored, and projects are verified the same way.
async fn impersonates_a_service_account_without_storing_a_key(backend: &str) {
    const CANOPY: &str = "canopy@canopy-prod.iam.gserviceaccount.com";
    let g = google().await;
    let own = std::env::temp_dir().join(format!("canopy-own-{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&own, g.service_account_key_json(CANOPY)).unwrap();
    let (app, workers) = app_with_worker(
        backend,
        Options {
            gcp_endpoint_url: g.url(),
            gcp_credentials_file: Some(own.clone()),
            ..Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Keyless", "pro").await;
    let body = json!({"organizationId": "1001", "serviceAccountEmail": SA});

    // Not yet allowed: the answer names the role to grant, on the field to fix.
    let refused = discover(&app, &owner, &org, body.clone()).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["errors"][0]["field"], "serviceAccountEmail");
    assert_eq!(refused.body["errors"][0]["rule"], "impersonation_refused");
    let message = refused.body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("roles/iam.serviceAccountTokenCreator"),
        "{message}"
    );
    assert!(message.contains(CANOPY), "{message}");
    // Both or neither credential: refused before anything else.
    for both_or_none in [
        json!({"organizationId": "1001", "serviceAccountEmail": SA, "serviceAccountKey": key(&g)}),
        json!({"organizationId": "1001"}),
    ] {
        let r = discover(&app, &owner, &org, both_or_none).await;
        assert_eq!(r.body["errors"][0]["rule"], "one_of", "{}", r.body);
    }

    g.allow_impersonation(SA, CANOPY);
    let started = discover(&app, &owner, &org, body).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    assert_eq!(started.body["cloudOrganization"]["gcpServiceAccount"], SA);
    let id = started.body["cloudOrganization"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = job_of(&app, &owner, &org, &started).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let stored = stored(&app, &org, &id).await;
    assert!(
        stored.gcp_credentials.is_none(),
        "nothing of the customer's is stored"
    );
    assert_eq!(stored.discovered_count, 6);
    let base = format!("/v1/organizations/{org}/cloud-organizations/{id}");
    let connect = app
        .post(
            &format!("{base}/members/connect"),
            &owner.token,
            json!({"accountIds": ["acme-web"]}),
        )
        .await;
    let done = job_of(&app, &owner, &org, &connect).await;
    assert_eq!(done["result"]["connected"], 1, "{done}");
    assert!(g.calls().generate_access_token >= 3, "{:?}", g.calls());
    workers.stop().await;

    // A Canopy without a Google identity of its own cannot impersonate, and says so.
    let keyless = TestApp::start_with(
        backend,
        Options {
            gcp_endpoint_url: g.url(),
            ..Options::default()
        },
    )
    .await;
    let owner = keyless.sign_up("Owner").await;
    let org = keyless.create_org_on(&owner, "NoIdentity", "pro").await;
    let refused = discover(
        &keyless,
        &owner,
        &org,
        json!({"organizationId": "1001", "serviceAccountEmail": SA}),
    )
    .await;
    assert_eq!(
        refused.body["errors"][0]["rule"], "impersonation_refused",
        "{}",
        refused.body
    );
    assert!(
        refused.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("CANOPY_GCP_CREDENTIALS_FILE")
    );
    let _ = std::fs::remove_file(own);
}

canopy_e2e::on_both_backends!(by_name;
    impersonates_a_service_account_without_storing_a_key,
    a_rotated_secret_key_reseals_and_the_old_one_can_go,
    discovers_connects_and_follows_a_gcp_organization,
    bad_keys_missing_permissions_and_plans_are_refused_clearly,
);
