//! Tokens and passwords never appear in logs, and every line of a request carries its id.
//! Its own test binary, so the global subscriber capturing the logs is this test's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use canopy_e2e::{TestApp, aws_account_body, random_aws_account};
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
    // The verification link's token travels in a query string and a body.
    let verify_token = app.outbox_token("logs@example.com", "verify_email").await;
    let console_link = app
        .http
        .get(format!(
            "{}/verify-email?token={verify_token}",
            app.server.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(console_link.status(), 200);
    app.verify_email("logs@example.com").await;
    app.get("/v1/me", &token).await;
    let key = app
        .post("/v1/me/api-keys", &token, json!({"name": "k"}))
        .await;
    let key_token = key.body["token"].as_str().unwrap().to_string();
    app.get("/v1/me", &key_token).await;
    app.get("/v1/me", "cnp_sess_forged-token-value").await;

    // A whole connect story: every token it issues travels in a body or, for connection
    // requests and invitations, in the URL path, which the request log must not write.
    let org = app
        .post("/v1/organizations", &token, json!({"name": "Logs Corp"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.set_tier(&org, "pro").await;
    let connect_token = app
        .post(
            &format!("/v1/organizations/{org}/connect-tokens"),
            &token,
            json!({}),
        )
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let redeemed = app
        .call(
            Method::POST,
            "/v1/connect",
            None,
            Some(
                json!({"token": connect_token, "account": aws_account_body(&random_aws_account())}),
            ),
        )
        .await;
    assert_eq!(redeemed.status, 201, "{}", redeemed.body);
    let mut request_tokens = vec![];
    for then in ["confirm", "cancel"] {
        let issued = app
            .post(
                &format!("/v1/organizations/{org}/connection-requests"),
                &token,
                aws_account_body(&random_aws_account()),
            )
            .await;
        let request = issued.body["token"].as_str().unwrap().to_string();
        let preview = app
            .get(&format!("/v1/connection-requests/{request}"), &token)
            .await;
        assert_eq!(preview.status, 200, "{}", preview.body);
        let answered = app
            .post(
                &format!("/v1/connection-requests/{request}/{then}"),
                &token,
                json!({}),
            )
            .await;
        assert!(answered.status.is_success(), "{then}: {}", answered.body);
        request_tokens.push(request);
    }
    let bob = app.sign_up("Bob").await;
    let invitation = app
        .post(
            &format!("/v1/organizations/{org}/invitations"),
            &token,
            json!({"email": bob.email, "role": "member"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let accepted = app
        .post(
            &format!("/v1/invitations/{invitation}/accept"),
            &bob.token,
            json!({}),
        )
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    // The invitation page of the e-mail link carries the id in its path too.
    let page = app
        .http
        .get(format!("{}/invitations/{invitation}", app.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);

    // A password reset: the link's token in a query string and a body, the new password in
    // a body.
    let reset = app
        .call(
            Method::POST,
            "/v1/auth/password-reset",
            None,
            Some(json!({"email": bob.email})),
        )
        .await;
    assert_eq!(reset.status, 202);
    let reset_token = loop {
        let waiting = app.store.outbox().unsent_for(&bob.email).await.unwrap();
        if waiting.iter().any(|m| m.kind == "password_reset") {
            break app.outbox_token(&bob.email, "password_reset").await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let new_password = "another-secret-password-43";
    let done = app
        .call(
            Method::POST,
            "/v1/auth/password-reset/confirm",
            None,
            Some(json!({"token": reset_token, "newPassword": new_password})),
        )
        .await;
    assert_eq!(done.status, 204, "{}", done.body);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request done"), "logs were captured: {logs}");
    assert!(
        logs.contains("/v1/connection-requests/{token}/confirm"),
        "the request log writes the route template"
    );
    let mut secrets = vec![
        password.to_string(),
        token.clone(),
        key_token.clone(),
        "forged-token-value".to_string(),
        connect_token,
        invitation,
        bob.token.clone(),
        verify_token,
        reset_token,
        new_password.to_string(),
    ];
    secrets.extend(request_tokens);
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret leaked into the logs: {}...",
            &secret[..8]
        );
    }
    for line in logs.lines().filter(|l| l.contains("request done")) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["span"]["id"].is_string(),
            "request line without id: {line}"
        );
    }
}
