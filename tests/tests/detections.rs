//! Detections over HTTP: custom detections validated against the ATT&CK catalog and the
//! tenant's own accounts, listed with filters, edited and deleted; organization scans gated by
//! the plan. The scans themselves against moto are in `scans.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::{TestApp, aws_account_body, on_both_backends, random_aws_account};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    by_name;
    custom_detections_are_checked_against_the_catalog_and_the_tenant,
    an_accounts_detections_filter_by_technique_tactic_status_and_source,
    organization_scans_need_a_plan_with_organization_features,
);

fn rule(technique: &str) -> Value {
    json!([{"technique": technique, "category": "detect", "value": "partial"}])
}

async fn custom_detections_are_checked_against_the_catalog_and_the_tenant(backend: &str) {
    let app = TestApp::start(backend).await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Detect", "pro").await;
    let account = app.connect_random_aws_account(&owner.token, &org).await;
    let outsider = app.sign_up("Outsider").await;
    let other = app.create_org(&outsider, "Elsewhere").await;
    let foreign = app
        .connect_random_aws_account(&outsider.token, &other)
        .await;
    let path = format!("/v1/organizations/{org}/detections");
    let body = |account: &str, techniques: Value| {
        json!({"name": "SIEM rule 42", "scope": "account", "cloudAccountId": account,
               "techniques": techniques})
    };

    // A well-formed id that ATT&CK does not have.
    let unknown = app
        .post(&path, &owner.token, body(&account, rule("T1999")))
        .await;
    unknown.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(unknown.body["errors"][0]["field"], "techniques.0.technique");
    assert_eq!(unknown.body["errors"][0]["rule"], "catalog");
    // Not an id at all: the format check names the same field the same way.
    let malformed = app
        .post(&path, &owner.token, body(&account, rule("1078")))
        .await;
    malformed.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        malformed.body["errors"][0]["field"],
        "techniques.0.technique"
    );
    assert_eq!(malformed.body["errors"][0]["rule"], "format");
    // A NUL in the name: refused naming the field, on both backends, and nothing stored.
    let mut nul = body(&account, rule("T1078.004"));
    nul["name"] = json!("SIEM\u{0}rule");
    let refused = app.post(&path, &owner.token, nul).await;
    refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "name");
    assert_eq!(refused.body["errors"][0]["rule"], "control_characters");
    let stored = app
        .get(
            &format!("/v1/organizations/{org}/cloud-accounts/{account}/detections"),
            &owner.token,
        )
        .await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.body);
    assert!(
        !stored.body.to_string().contains("SIEM"),
        "nothing stored: {}",
        stored.body
    );
    // Another tenant's account is not a target here.
    let theirs = app
        .post(&path, &owner.token, body(&foreign, rule("T1078.004")))
        .await;
    theirs.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(theirs.body["errors"][0]["field"], "scope.cloudAccountId");
    // An account detection names no cloud organization.
    let mixed = app
        .post(
            &path,
            &owner.token,
            json!({"name": "x", "scope": "account", "cloudAccountId": account,
                   "cloudOrganizationId": account, "techniques": rule("T1078.004")}),
        )
        .await;
    mixed.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    // A custom detection cannot claim to be unknown.
    let mut unknown_status = body(&account, rule("T1078.004"));
    unknown_status["status"] = json!("unknown");
    let refused = app.post(&path, &owner.token, unknown_status).await;
    assert_eq!(
        refused.body["errors"][0]["field"], "status",
        "{}",
        refused.body
    );

    // Nothing of the refusals was stored.
    let listed = app
        .get(
            &format!("/v1/organizations/{org}/cloud-accounts/{account}/detections"),
            &owner.token,
        )
        .await;
    assert_eq!(listed.body["items"], json!([]));

    let created = app
        .post(&path, &owner.token, body(&account, rule("T1078.004")))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let d = &created.body;
    assert_eq!(d["source"], "custom");
    assert_eq!(d["status"], "active");
    assert_eq!(d["scope"], "account");
    assert_eq!(d["attackVersion"], "18.1");
    let id = d["id"].as_str().unwrap();

    let edited = app
        .put(
            &format!("{path}/{id}"),
            &owner.token,
            json!({"name": "SIEM rule 42 (v2)", "scope": "account", "cloudAccountId": account,
                   "techniques": [
                       {"technique": "T1110.003", "category": "detect", "value": "significant"},
                       {"technique": "T1078.004", "category": "respond", "value": "minimal"}],
                   "status": "degraded"}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.body["name"], "SIEM rule 42 (v2)");
    assert_eq!(edited.body["status"], "degraded");
    assert_eq!(edited.body["techniques"].as_array().unwrap().len(), 2);
    assert_eq!(edited.body["firstSeenAt"], d["firstSeenAt"]);

    // Under the other tenant's path it does not exist.
    let elsewhere = app
        .get(
            &format!("/v1/organizations/{other}/detections/{id}"),
            &outsider.token,
        )
        .await;
    elsewhere.assert_problem(StatusCode::NOT_FOUND, "not_found");

    let gone = app
        .call(
            Method::DELETE,
            &format!("{path}/{id}"),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    app.get(&format!("{path}/{id}"), &owner.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let audit = app
        .get(
            &format!("/v1/organizations/{org}/audit-events"),
            &owner.token,
        )
        .await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("detection."))
        .collect();
    assert_eq!(
        actions,
        [
            "detection.deleted",
            "detection.updated",
            "detection.created"
        ]
    );
}

async fn an_accounts_detections_filter_by_technique_tactic_status_and_source(backend: &str) {
    let app = TestApp::start(backend).await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Filters", "pro").await;
    let account = app.connect_random_aws_account(&owner.token, &org).await;
    for (name, technique, status) in [
        ("sign-ins", "T1078.004", "active"),
        ("bucket reads", "T1530", "active"),
        ("log tampering", "T1562.008", "degraded"),
    ] {
        let created = app
            .post(
                &format!("/v1/organizations/{org}/detections"),
                &owner.token,
                json!({"name": name, "scope": "account", "cloudAccountId": account,
                       "techniques": rule(technique), "status": status}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    }
    let names = |query: &'static str| {
        let app = &app;
        let path = format!("/v1/organizations/{org}/cloud-accounts/{account}/detections{query}");
        let token = owner.token.clone();
        async move {
            let resp = app.get(&path, &token).await;
            assert_eq!(resp.status, StatusCode::OK, "{query}: {}", resp.body);
            let mut names: Vec<String> = resp.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    assert_eq!(i["inherited"], false);
                    i["detection"]["name"].as_str().unwrap().to_string()
                })
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(names("").await.len(), 3);
    // A parent technique matches its sub-techniques.
    assert_eq!(names("?technique=T1078").await, ["sign-ins"]);
    assert_eq!(names("?tactic=collection").await, ["bucket reads"]);
    assert_eq!(names("?tactic=TA0005").await, ["log tampering", "sign-ins"]);
    assert_eq!(names("?status=degraded").await, ["log tampering"]);
    assert_eq!(names("?source=custom&scope=account").await.len(), 3);
    assert!(names("?scope=organization").await.is_empty());
    assert!(names("?technique=T1078&tactic=collection").await.is_empty());
    let unknown = app
        .get(
            &format!("/v1/organizations/{org}/cloud-accounts/{account}/detections?tactic=lunch"),
            &owner.token,
        )
        .await;
    unknown.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(unknown.body["errors"][0]["field"], "tactic");
    // Pages of two, then one, then none.
    let first = app
        .get(
            &format!("/v1/organizations/{org}/cloud-accounts/{account}/detections?limit=2"),
            &owner.token,
        )
        .await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let cursor = first.body["nextCursor"].as_str().unwrap();
    let second = app
        .get(
            &format!(
                "/v1/organizations/{org}/cloud-accounts/{account}/detections?limit=2&cursor={cursor}"
            ),
            &owner.token,
        )
        .await;
    assert_eq!(second.body["items"].as_array().unwrap().len(), 1);
    assert!(second.body.get("nextCursor").is_none());
}

async fn organization_scans_need_a_plan_with_organization_features(backend: &str) {
    let app = TestApp::start(backend).await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Small", "individual").await;
    let cloud_org = canopy_e2e::cloud_org::stored_cloud_org(&app, &org, &owner).await;
    for path in ["scan", "scan/members"] {
        let refused = app
            .call(
                Method::POST,
                &format!("/v1/organizations/{org}/cloud-organizations/{cloud_org}/{path}"),
                Some(&owner.token),
                None,
            )
            .await;
        refused.assert_problem(StatusCode::FORBIDDEN, "feature_not_in_plan");
    }
    // An account scan is on every plan; a second one while the first is queued is refused.
    let account = app
        .post(
            &format!("/v1/organizations/{org}/cloud-accounts"),
            &owner.token,
            aws_account_body(&random_aws_account()),
        )
        .await;
    let account = account.body["id"].as_str().unwrap();
    let scan = format!("/v1/organizations/{org}/cloud-accounts/{account}/scan");
    let queued = app
        .call(Method::POST, &scan, Some(&owner.token), None)
        .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
    assert_eq!(queued.body["kind"], "detection.scan_account");
    let again = app
        .call(Method::POST, &scan, Some(&owner.token), None)
        .await;
    again.assert_problem(StatusCode::CONFLICT, "scan_in_progress");
}
