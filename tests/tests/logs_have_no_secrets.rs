//! Tokens and passwords never appear in logs, and every line of a request carries its id.
//! Its own test binary, so the global subscriber capturing the logs is this test's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use canopy_e2e::TestApp;
use reqwest::Method;
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_stay_out_of_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let app = TestApp::start("sqlite").await;
    let password = "very-secret-password-42";
    let signup = app
        .call(
            Method::POST,
            "/v1/auth/signup",
            None,
            Some(json!({"email": "logs@example.com", "name": "Logs", "password": password})),
        )
        .await;
    let token = signup.body["token"].as_str().unwrap().to_string();
    app.get("/v1/me", &token).await;
    let key = app
        .post("/v1/me/api-keys", &token, json!({"name": "k"}))
        .await;
    let key_token = key.body["token"].as_str().unwrap().to_string();
    app.get("/v1/me", &key_token).await;
    app.get("/v1/me", "cnp_sess_forged-token-value").await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request done"), "logs were captured: {logs}");
    for secret in [
        password,
        token.as_str(),
        key_token.as_str(),
        "forged-token-value",
    ] {
        assert!(!logs.contains(secret), "a secret leaked into the logs");
    }
    for line in logs.lines().filter(|l| l.contains("request done")) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["span"]["id"].is_string(),
            "request line without id: {line}"
        );
    }
}
