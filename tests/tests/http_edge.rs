//! What every client meets at the edge: problem+json for every failure, body limits, rate
//! limits, request ids, health probes, and invariants that must hold under concurrent calls.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::{Options, TestApp, on_both_backends};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn malformed_and_oversized_bodies_are_client_errors(app: TestApp) {
    let url = format!("{}/v1/auth/signup", app.server.url());
    let resp = app
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "malformed_request");

    let missing_field = app
        .call(
            Method::POST,
            "/v1/auth/signup",
            None,
            Some(json!({"email": "a@example.com"})),
        )
        .await;
    missing_field.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let missing: Vec<_> = missing_field.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["rule"].as_str().unwrap()))
        .collect();
    assert_eq!(missing, [("name", "required"), ("password", "required")]);

    let huge = "x".repeat(70 * 1024);
    let big = app
        .call(
            Method::POST,
            "/v1/auth/signup",
            None,
            Some(json!({"email": "a@example.com", "name": huge, "password": "long enough pw"})),
        )
        .await;
    big.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    app.call(Method::GET, "/v1/no-such-thing", None, None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.call(Method::DELETE, "/v1/auth/signup", None, None)
        .await
        .assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let bad_uuid = app.sign_up("Ada").await;
    app.call(
        Method::DELETE,
        "/v1/me/api-keys/not-a-uuid",
        Some(&bad_uuid.token),
        None,
    )
    .await
    // A path value that cannot be an id names nothing that exists.
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

async fn sign_up_validates_every_field_and_refuses_duplicates(app: TestApp) {
    let bad = app
        .call(
            Method::POST,
            "/v1/auth/signup",
            None,
            Some(json!({"email": "not-an-email", "name": " ", "password": "short"})),
        )
        .await;
    bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let errors: Vec<(String, String)> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().into(),
                e["rule"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            ("email".into(), "format".into()),
            ("name".into(), "format".into()),
            ("password".into(), "length".into())
        ]
    );
    let too_long = app
        .call(
            Method::POST,
            "/v1/auth/signup",
            None,
            Some(json!({"email": "long@example.com", "name": "L", "password": "p".repeat(300)})),
        )
        .await;
    too_long.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let ada = app.sign_up("Ada").await;
    let dup = app
        .call(
            Method::POST,
            "/v1/auth/signup",
            None,
            Some(json!({"email": ada.email.to_uppercase(), "name": "Imposter", "password": "whatever long pw"})),
        )
        .await;
    dup.assert_problem(StatusCode::CONFLICT, "email_taken");
}

async fn concurrent_owner_exits_never_leave_an_organization_ownerless(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let org = app.create_org_on(&ada, "Race", "pro").await;
    let mut owners = vec![ada.clone()];
    for i in 0..3 {
        let o = app.sign_up(&format!("Owner{i}")).await;
        app.add_member(&org, &ada, &o, "owner").await;
        owners.push(o);
    }
    let path = format!("/v1/organizations/{org}/leave");
    let results =
        futures::future::join_all(owners.iter().map(|o| app.post(&path, &o.token, json!({}))))
            .await;
    let left = results
        .iter()
        .filter(|r| r.status == StatusCode::NO_CONTENT)
        .count();
    let refused = results
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!(
        (left, refused),
        (3, 1),
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let stayed = owners
        .iter()
        .zip(&results)
        .find(|(_, r)| r.status == StatusCode::CONFLICT)
        .map(|(o, _)| o)
        .unwrap();
    let view = app
        .get(&format!("/v1/organizations/{org}"), &stayed.token)
        .await;
    assert_eq!(view.body["role"], "owner");
}

async fn probes_and_request_ids(app: TestApp) {
    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert!(ready.body["database"].is_string());
    let resp = app
        .http
        .get(format!("{}/healthz", app.server.url()))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-me-123");
    let forged = app
        .http
        .get(format!("{}/healthz", app.server.url()))
        .header("x-request-id", "bad id\twith tabs")
        .send()
        .await
        .unwrap();
    assert_ne!(forged.headers()["x-request-id"], "bad id\twith tabs");
    let spec = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(spec.body["info"]["title"], "Canopy API");
    assert!(spec.body["paths"]["/v1/auth/signup"].is_object());
    let docs = app
        .http
        .get(format!("{}/docs", app.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
}

on_both_backends!(
    malformed_and_oversized_bodies_are_client_errors,
    sign_up_validates_every_field_and_refuses_duplicates,
    concurrent_owner_exits_never_leave_an_organization_ownerless,
    probes_and_request_ids,
);

#[tokio::test]
async fn sign_up_and_log_in_are_rate_limited_per_address() {
    let app = TestApp::start_with(
        "sqlite",
        Options {
            auth_rate_per_minute: 3,
            ..Options::default()
        },
    )
    .await;
    let attempt = || {
        app.call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "x@example.com", "password": "whatever it is"})),
        )
    };
    for _ in 0..3 {
        assert_eq!(attempt().await.status, StatusCode::UNAUTHORIZED);
    }
    let limited = attempt().await;
    limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let signup = app
        .call(
            Method::POST,
            "/v1/auth/signup",
            None,
            Some(json!({"email": "y@example.com", "name": "Y", "password": "long enough pw"})),
        )
        .await;
    signup.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_log_ins_beyond_the_hashing_queue_is_503_with_retry_after() {
    let app = TestApp::start_with(
        "sqlite",
        Options {
            argon2_memory_kib: 16 * 1024,
            hashing: (1, 1),
            ..Options::default()
        },
    )
    .await;
    let who = app.sign_up("Burst").await;
    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let (url, http, email) = (app.server.url(), app.http.clone(), who.email.clone());
            tokio::spawn(async move {
                http.post(format!("{url}/v1/auth/login"))
                    .json(&json!({"email": email, "password": "correct horse battery"}))
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for attempt in attempts {
        let resp = attempt.await.unwrap();
        match resp.status() {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                let retry: u64 = resp.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry >= 1);
                let body: serde_json::Value = resp.json().await.unwrap();
                assert_eq!(body["code"], "busy");
                busy += 1;
            }
            other => panic!("log-in answered {other}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok={ok} busy={busy}");
    // Saturation passes: the next log-in is served.
    app.log_in(&who).await;
}
