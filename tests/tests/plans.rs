//! `GET /v1/plans` gives a pricing page everything: tiers, prices, limits, feature matrix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::TestApp;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn plans_describe_every_tier_without_sign_in() {
    let app = TestApp::start("sqlite").await;
    let resp = app.call(Method::GET, "/v1/plans", None, None).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let plans = resp.body["plans"].as_array().unwrap();
    let tiers: Vec<&str> = plans.iter().map(|p| p["tier"].as_str().unwrap()).collect();
    assert_eq!(tiers, ["free", "individual", "pro", "enterprise"]);
    assert_eq!(plans[1]["priceMonthlyCents"], 2900);
    assert_eq!(plans[1]["limits"]["maxAccounts"], 6);
    assert_eq!(plans[2]["limits"]["maxTeamMembers"], 10);
    assert_eq!(plans[2]["features"]["org_features"], true);
    assert_eq!(plans[1]["features"]["org_features"], false);
    assert!(
        plans[3]["priceMonthlyCents"].is_null(),
        "enterprise is custom pricing"
    );
    assert!(
        plans[3]["limits"]["maxAccounts"].is_null(),
        "enterprise is unlimited"
    );
    let features = resp.body["features"].as_array().unwrap();
    assert_eq!(features.len(), 11);
    for plan in plans {
        assert_eq!(
            plan["features"].as_object().unwrap().len(),
            features.len(),
            "{plan}"
        );
    }
}
