//! Coverage history over HTTP: every change to a custom detection leaves a snapshot of the
//! account it reaches, read back as a trend line; the range is bounded by the plan's
//! retention (refused beyond it), the retention sweep deletes what is older, and another
//! tenant's account is a 404. Snapshots after scans are in `gcp_scans.rs` and `scans.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::{TestApp, on_both_backends};
use canopy_kernel::Clock;
use chrono::{Duration, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_backends!(
    by_name;
    each_detection_change_leaves_a_point_within_the_plans_retention,
);

fn points(history: &Value) -> Vec<(f64, u64)> {
    history["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["percent"].as_f64().unwrap(),
                s["covered"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn at(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
        .replace('+', "%2B")
}

async fn each_detection_change_leaves_a_point_within_the_plans_retention(backend: &str) {
    let app = TestApp::start(backend).await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org(&owner, "Trends").await;
    let account = app.connect_random_aws_account(&owner.token, &org).await;
    let history_path = format!("/v1/organizations/{org}/cloud-accounts/{account}/coverage/history");
    let empty = app.get(&history_path, &owner.token).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    assert_eq!(points(&empty.body), vec![]);

    let create = |techniques: Value| {
        json!({"name": "SIEM rule", "scope": "account", "cloudAccountId": account,
               "techniques": techniques})
    };
    let detections = format!("/v1/organizations/{org}/detections");
    let one = app
        .post(
            &detections,
            &owner.token,
            create(json!([{"technique": "T1078.004", "category": "detect", "value": "partial"}])),
        )
        .await;
    assert_eq!(one.status, StatusCode::CREATED, "{}", one.body);
    app.clock.advance(Duration::minutes(5));
    let two = app
        .post(
            &detections,
            &owner.token,
            create(json!([
                {"technique": "T1562.008", "category": "detect", "value": "significant"},
                {"technique": "T1530", "category": "detect", "value": "minimal"}
            ])),
        )
        .await;
    assert_eq!(two.status, StatusCode::CREATED, "{}", two.body);
    app.clock.advance(Duration::minutes(5));
    let deleted = app
        .call(
            reqwest::Method::DELETE,
            &format!("{detections}/{}", two.body["id"].as_str().unwrap()),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);

    let history = app.get(&history_path, &owner.token).await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    let line = points(&history.body);
    let covered: Vec<u64> = line.iter().map(|p| p.1).collect();
    assert_eq!(covered, vec![1, 3, 1], "{}", history.body);
    assert!(line[1].0 > line[0].0 && line[2].0 == line[0].0, "{line:?}");
    let first = &history.body["snapshots"][0];
    assert_eq!(first["includesOrgDetections"], false);
    assert_eq!(first["coverageBreakdown"]["accountDetections"], 1);
    assert_eq!(first["coverageBreakdown"]["accountTechniques"], 1);
    assert_eq!(first["byCategory"]["detect"], first["percent"]);
    assert!(first.get("spread").is_none(), "{first}");

    // A window holds only its points.
    let now = app.clock.now();
    let recent = app
        .get(
            &format!("{history_path}?from={}", at(now - Duration::minutes(7))),
            &owner.token,
        )
        .await;
    assert_eq!(points(&recent.body).len(), 2, "{}", recent.body);
    // Free keeps 30 days: further back is refused, and a backwards range is a bad request.
    let too_far = app
        .get(
            &format!("{history_path}?from={}", at(now - Duration::days(45))),
            &owner.token,
        )
        .await;
    too_far.assert_problem(StatusCode::PAYMENT_REQUIRED, "plan_limit");
    let backwards = app
        .get(
            &format!(
                "{history_path}?from={}&to={}",
                at(now - Duration::days(1)),
                at(now - Duration::days(2))
            ),
            &owner.token,
        )
        .await;
    backwards.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(backwards.body["errors"][0]["field"], "from");
    // Another tenant's account does not exist here.
    let outsider = app.sign_up("Outsider").await;
    let theirs = app.create_org(&outsider, "Elsewhere").await;
    let foreign = app
        .get(
            &format!("/v1/organizations/{theirs}/cloud-accounts/{account}/coverage/history"),
            &outsider.token,
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.body);

    // After the plan's 30 days the sweep deletes the three points.
    app.clock.advance(Duration::days(31));
    let billing = canopy_app::bootstrap::billing_service(&app.store, app.clock.clone());
    let report = canopy_app::admin::purge_history(&billing).await.unwrap();
    assert!(report.contains("3 coverage snapshot(s)"), "{report}");
}
