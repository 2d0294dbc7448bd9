//! Device log-in end to end: a terminal starts it over the API, polls (pending, then told to
//! slow down), a person approves it on the console's `/device` page, and the next poll gets
//! an API key that works and is listed with the person's keys; a second poll is refused.
//! Denial, expiry, a code answered twice and an unverified approver are refused too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::console::Visitor;
use canopy_e2e::{TestApp, on_both_backends};
use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    a_terminal_logs_in_once_a_person_approves,
    denied_expired_and_twice_answered_requests_get_nothing,
);

async fn start(app: &TestApp, name: &str) -> Value {
    let started = app
        .call(
            Method::POST,
            "/v1/auth/device",
            None,
            Some(json!({"clientName": name})),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    started.body
}

/// A poll's status and problem code (or token).
async fn poll(app: &TestApp, device_code: &str) -> (StatusCode, Value) {
    let r = app
        .call(
            Method::POST,
            "/v1/auth/device/token",
            None,
            Some(json!({"deviceCode": device_code})),
        )
        .await;
    (r.status, r.body)
}

async fn a_terminal_logs_in_once_a_person_approves(app: TestApp) {
    let ada = app.sign_up("ada").await;
    let started = start(&app, "canopy CLI on <ada's> laptop").await;
    let code = started["userCode"].as_str().unwrap();
    assert_eq!(code.len(), 9, "{code}");
    assert!(
        started["verificationUri"]
            .as_str()
            .unwrap()
            .ends_with("/device")
    );
    assert!(
        started["verificationUriComplete"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/device?code={code}"))
    );
    assert_eq!(started["interval"], 5);
    let device = started["deviceCode"].as_str().unwrap();

    let (status, body) = poll(&app, device).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "authorization_pending", "{body}");
    let (status, body) = poll(&app, device).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["code"], "slow_down", "polled again at once: {body}");
    assert_eq!(body["interval"], 10);

    // The person sees the request named and approves it.
    let browser = Visitor::new(&app);
    browser.log_in(&ada.email, "correct horse battery").await;
    let shown = browser
        .get(&format!("/device?code={}", code.to_lowercase()))
        .await;
    shown.expect(StatusCode::OK);
    assert!(
        shown
            .body
            .contains("canopy CLI on &#60;ada&#39;s&#62; laptop"),
        "the device is named, escaped: {}",
        shown.body
    );
    assert!(shown.body.contains(code));
    let approved = browser
        .post("/device", &[("code", code), ("action", "approve")])
        .await;
    approved.expect(StatusCode::OK);
    assert!(approved.body.contains("Approved"));

    app.clock.advance(Duration::seconds(11));
    let (status, body) = poll(&app, device).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap();
    assert!(token.starts_with("cnp_key"));
    let me = app.get("/v1/me", token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["user"]["email"], ada.email.as_str());
    let keys = app.get("/v1/me/api-keys", &ada.token).await;
    assert!(
        keys.body
            .to_string()
            .contains("CLI: canopy CLI on <ada's> laptop"),
        "{}",
        keys.body
    );

    // Once: the device code is spent.
    app.clock.advance(Duration::seconds(11));
    let (status, body) = poll(&app, device).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(body["code"], "expired_token");
    let (_, body) = poll(&app, "cnp_dev_never-issued").await;
    assert_eq!(body["code"], "expired_token");
}

async fn denied_expired_and_twice_answered_requests_get_nothing(app: TestApp) {
    let bo = app.sign_up("bo").await;
    let browser = Visitor::new(&app);
    browser.log_in(&bo.email, "correct horse battery").await;

    let denied = start(&app, "someone else's terminal").await;
    let code = denied["userCode"].as_str().unwrap();
    browser
        .get(&format!("/device?code={code}"))
        .await
        .expect(StatusCode::OK);
    let answer = browser
        .post("/device", &[("code", code), ("action", "deny")])
        .await;
    answer.expect(StatusCode::OK);
    assert!(answer.body.contains("Denied"));
    let (status, body) = poll(&app, denied["deviceCode"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "access_denied");
    // Answered already: a second answer finds nothing pending.
    browser
        .post("/device", &[("code", code), ("action", "approve")])
        .await
        .expect(StatusCode::NOT_FOUND);
    let (_, body) = poll(&app, denied["deviceCode"].as_str().unwrap()).await;
    assert_eq!(body["code"], "access_denied", "the denial stands");

    // Ten minutes pass: the code names nothing, the terminal is told to start again.
    let lapsing = start(&app, "slow terminal").await;
    app.clock.advance(Duration::minutes(11));
    browser
        .get(&format!(
            "/device?code={}",
            lapsing["userCode"].as_str().unwrap()
        ))
        .await
        .expect(StatusCode::NOT_FOUND);
    let (_, body) = poll(&app, lapsing["deviceCode"].as_str().unwrap()).await;
    assert_eq!(body["code"], "expired_token");

    // Someone who has not verified their address cannot hand out a key.
    let cy = app.sign_up_unverified("cy").await;
    let unverified = Visitor::new(&app);
    unverified.log_in(&cy.email, "correct horse battery").await;
    let asked = start(&app, "cy's terminal").await;
    unverified
        .get(&format!(
            "/device?code={}",
            asked["userCode"].as_str().unwrap()
        ))
        .await
        .expect(StatusCode::OK);
    unverified
        .post(
            "/device",
            &[
                ("code", asked["userCode"].as_str().unwrap()),
                ("action", "approve"),
            ],
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    let (_, body) = poll(&app, asked["deviceCode"].as_str().unwrap()).await;
    assert_eq!(body["code"], "authorization_pending");

    // Bad input is a clear refusal.
    let empty = app
        .call(
            Method::POST,
            "/v1/auth/device",
            None,
            Some(json!({"clientName": "  "})),
        )
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.body["errors"][0]["field"], "clientName");
}
