//! People look after their own accounts over HTTP, on both backends: the address verified by
//! a single-use link (and what waits for it), the password changed or reset, the address
//! changed, sessions listed and ended, and the security log that records it all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration as StdDuration, Instant};

use canopy_e2e::{Session, TestApp, on_both_backends};
use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

async fn verify(app: &TestApp, token: &str) -> canopy_e2e::Response {
    app.call(
        Method::POST,
        "/v1/auth/verify-email",
        None,
        Some(json!({"token": token})),
    )
    .await
}

async fn log_in(app: &TestApp, email: &str, password: &str) -> canopy_e2e::Response {
    app.call(
        Method::POST,
        "/v1/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

async fn an_unverified_address_waits_for_its_single_use_link(app: TestApp) {
    let ada = app.sign_up_unverified("Ada").await;
    let me = app.get("/v1/me", &ada.token).await;
    assert_eq!(me.body["user"]["emailVerified"], false);

    // What waits for the address: API keys and invitations.
    app.post("/v1/me/api-keys", &ada.token, json!({"name": "ci"}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "email_unverified");
    let owner = app.sign_up("Olga").await;
    let org = app.create_org_on(&owner, "Verify Corp", "pro").await;
    let inv = app
        .post(
            &format!("/v1/organizations/{org}/invitations"),
            &owner.token,
            json!({"email": ada.email, "role": "member"}),
        )
        .await;
    let inv_id = inv.body["id"].as_str().unwrap().to_string();
    app.post(
        &format!("/v1/invitations/{inv_id}/accept"),
        &ada.token,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "email_unverified");

    // Asking again voids the first link: only the newest works.
    let first = app.outbox_token(&ada.email, "verify_email").await;
    let resent = app
        .post("/v1/me/verification-email", &ada.token, json!({}))
        .await;
    assert_eq!(resent.status, StatusCode::ACCEPTED, "{}", resent.body);
    let second = app.outbox_token(&ada.email, "verify_email").await;
    assert_ne!(first, second);
    verify(&app, &first)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "link_invalid");

    let done = verify(&app, &second).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["purpose"], "email_verified");
    assert_eq!(done.body["user"]["emailVerified"], true);
    // Once.
    verify(&app, &second)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "link_invalid");
    app.post("/v1/me/verification-email", &ada.token, json!({}))
        .await
        .assert_problem(StatusCode::CONFLICT, "already_verified");

    // Now both work.
    let key = app
        .post("/v1/me/api-keys", &ada.token, json!({"name": "ci"}))
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.body);
    let accepted = app
        .post(
            &format!("/v1/invitations/{inv_id}/accept"),
            &ada.token,
            json!({}),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);

    // A link older than 24 hours has expired.
    let bob = app.sign_up_unverified("Bob").await;
    let token = app.outbox_token(&bob.email, "verify_email").await;
    app.clock
        .advance(Duration::hours(24) + Duration::seconds(1));
    verify(&app, &token)
        .await
        .assert_problem(StatusCode::GONE, "link_expired");
    verify(&app, "cnp_verify_not-a-real-token")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "link_invalid");
}

async fn sessions(app: &TestApp, who: &Session) -> Vec<serde_json::Value> {
    let list = app.get("/v1/me/sessions", &who.token).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    list.body.as_array().unwrap().clone()
}

async fn a_password_change_ends_every_other_session(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let laptop = app.log_in(&ada).await;
    let phone = app.log_in(&ada).await;
    assert_eq!(sessions(&app, &ada).await.len(), 3);

    let wrong = app
        .post(
            "/v1/me/password",
            &laptop.token,
            json!({"currentPassword": "not my password", "newPassword": "a brand new password"}),
        )
        .await;
    wrong.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(wrong.body["errors"][0]["field"], "currentPassword");
    assert_eq!(wrong.body["errors"][0]["rule"], "incorrect");
    let short = app
        .post(
            "/v1/me/password",
            &laptop.token,
            json!({"currentPassword": PASSWORD, "newPassword": "short"}),
        )
        .await;
    assert_eq!(
        short.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        short.body
    );

    let changed = app
        .post(
            "/v1/me/password",
            &laptop.token,
            json!({"currentPassword": PASSWORD, "newPassword": "a brand new password"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["sessionsEnded"], 2);
    // The laptop stays; the others end at once.
    assert_eq!(
        app.get("/v1/me", &laptop.token).await.status,
        StatusCode::OK
    );
    for gone in [&ada, &phone] {
        assert_eq!(
            app.get("/v1/me", &gone.token).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        log_in(&app, &ada.email, PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        log_in(&app, &ada.email, "a brand new password")
            .await
            .status,
        StatusCode::OK
    );
    // The address hears of it, and the security log keeps it.
    let notices = app.store.outbox().unsent_for(&ada.email).await.unwrap();
    assert!(
        notices.iter().any(|m| m.kind == "password_changed"),
        "{notices:?}"
    );
    let log = app.get("/v1/me/security-log", &laptop.token).await;
    assert_eq!(
        log.body["items"][0]["action"], "password.changed",
        "{}",
        log.body
    );
    assert_eq!(log.body["items"][0]["details"]["sessionsEnded"], 2);
}

async fn request_reset(app: &TestApp, email: &str) -> canopy_e2e::Response {
    app.call(
        Method::POST,
        "/v1/auth/password-reset",
        None,
        Some(json!({"email": email})),
    )
    .await
}

/// Waits for the reset request handled after the answer to queue its message.
/// Reset mails to `email` still in the outbox.
async fn resets_queued(app: &TestApp, email: &str) -> usize {
    let messages = app.store.outbox().unsent_for(email).await.unwrap();
    messages
        .iter()
        .filter(|m| m.kind == "password_reset")
        .count()
}

/// The token of the reset mail that follows the `before` already queued: the request queues
/// it after answering, so wait for it rather than read an older one.
async fn reset_token(app: &TestApp, email: &str, before: usize) -> String {
    let deadline = Instant::now() + StdDuration::from_secs(10);
    while resets_queued(app, email).await <= before {
        assert!(Instant::now() < deadline, "no reset e-mail for {email}");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    app.outbox_token(email, "password_reset").await
}

async fn a_reset_link_works_once_for_thirty_minutes_and_ends_every_session(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let other = app.log_in(&ada).await;

    // The same answer whether or not an account has the address.
    let known = request_reset(&app, &ada.email).await;
    let unknown = request_reset(&app, "nobody-at-all@example.com").await;
    assert_eq!(known.status, StatusCode::ACCEPTED);
    assert_eq!(unknown.status, known.status);
    assert_eq!(unknown.body, known.body);
    let token = reset_token(&app, &ada.email, 0).await;
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    assert!(
        app.store
            .outbox()
            .unsent_for("nobody-at-all@example.com")
            .await
            .unwrap()
            .is_empty()
    );

    let confirm = |token: String, password: &'static str| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/v1/auth/password-reset/confirm",
                None,
                Some(json!({"token": token, "newPassword": password})),
            )
            .await
        }
    };
    let short = confirm(token.clone(), "short").await;
    assert_eq!(
        short.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        short.body
    );
    let done = confirm(token.clone(), "reset password here").await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.body);
    for gone in [&ada, &other] {
        assert_eq!(
            app.get("/v1/me", &gone.token).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        log_in(&app, &ada.email, "reset password here").await.status,
        StatusCode::OK
    );
    confirm(token, "another password 1")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "link_invalid");

    // Thirty minutes, then it has expired.
    let before = resets_queued(&app, &ada.email).await;
    let _ = request_reset(&app, &ada.email).await;
    let late = reset_token(&app, &ada.email, before).await;
    app.clock
        .advance(Duration::minutes(30) + Duration::seconds(1));
    confirm(late, "another password 2")
        .await
        .assert_problem(StatusCode::GONE, "link_expired");
    // Nothing about the reset token is stored in the clear.
    let stored = app.store.outbox().all_for(&ada.email).await.unwrap();
    assert!(stored.iter().any(|m| m.kind == "password_reset"));
}

async fn reset_requests_answer_alike_in_time(app: TestApp) {
    // The lookup happens after the answer: an address with an account and one without are
    // answered in the same time. Interleaved, so drift on the machine hits both alike.
    let ada = app.sign_up("Ada").await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..21 {
        for (email, into) in [
            (ada.email.clone(), &mut known),
            (format!("ghost{i}@example.com"), &mut unknown),
        ] {
            let started = Instant::now();
            let answer = request_reset(&app, &email).await;
            into.push(started.elapsed());
            assert_eq!(answer.status, StatusCode::ACCEPTED);
        }
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[10], unknown[10]);
    let (fast, slow) = (k.min(u), k.max(u));
    assert!(
        slow <= fast * 2 + StdDuration::from_millis(2),
        "median answer with an account {k:?}, without {u:?}"
    );
}

async fn an_email_change_waits_for_the_new_address_and_tells_the_old(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let new = format!("ada.new.{}", ada.email);

    let wrong = app
        .post(
            "/v1/me/email",
            &ada.token,
            json!({"newEmail": new, "currentPassword": "wrong password!"}),
        )
        .await;
    assert_eq!(
        wrong.body["errors"][0]["field"], "currentPassword",
        "{}",
        wrong.body
    );
    app.post(
        "/v1/me/email",
        &ada.token,
        json!({"newEmail": bob.email, "currentPassword": PASSWORD}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "email_taken");

    let asked = app
        .post(
            "/v1/me/email",
            &ada.token,
            json!({"newEmail": new, "currentPassword": PASSWORD}),
        )
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.body);
    let old_mail = app.store.outbox().unsent_for(&ada.email).await.unwrap();
    let notice = old_mail
        .iter()
        .find(|m| m.kind == "email_change_requested")
        .expect("the old address is told");
    assert!(notice.body.contains(&new) && notice.link().is_none());
    // Nothing changed yet.
    assert_eq!(
        log_in(&app, &ada.email, PASSWORD).await.status,
        StatusCode::OK
    );

    let token = app.outbox_token(&new, "confirm_new_email").await;
    let done = verify(&app, &token).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["purpose"], "email_changed");
    assert_eq!(done.body["user"]["email"], new.as_str());
    assert_eq!(log_in(&app, &new, PASSWORD).await.status, StatusCode::OK);
    assert_eq!(
        log_in(&app, &ada.email, PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let log = app.get("/v1/me/security-log", &ada.token).await;
    let actions: Vec<&str> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.starts_with(&["email.changed", "email.change_requested"]),
        "{actions:?}"
    );
}

async fn sessions_are_listed_and_ended_one_or_all(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let other = app
        .http
        .post(format!("{}/v1/auth/login", app.server.url()))
        .header("user-agent", "Mozilla/5.0 (iPhone) Safari/604.1")
        .json(&json!({"email": ada.email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    let other: serde_json::Value = other.json().await.unwrap();
    let other_token = other["token"].as_str().unwrap().to_string();
    let third = app.log_in(&ada).await;

    let list = sessions(&app, &ada).await;
    assert_eq!(list.len(), 3);
    let current: Vec<_> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let phone = list
        .iter()
        .find(|s| {
            s["userAgent"]
                .as_str()
                .is_some_and(|ua| ua.contains("iPhone"))
        })
        .expect("the phone's session names its browser");
    assert_eq!(phone["ip"], "127.0.0.1");
    assert!(phone["lastUsedAt"].is_string() && phone["createdAt"].is_string());

    // Someone else's session is not found.
    let eve = app.sign_up("Eve").await;
    let phone_id = phone["id"].as_str().unwrap();
    app.call(
        Method::DELETE,
        &format!("/v1/me/sessions/{phone_id}"),
        Some(&eve.token),
        None,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let ended = app
        .call(
            Method::DELETE,
            &format!("/v1/me/sessions/{phone_id}"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/v1/me", &other_token).await.status,
        StatusCode::UNAUTHORIZED
    );

    let all = app
        .post("/v1/me/sessions/revoke-others", &ada.token, json!({}))
        .await;
    assert_eq!(all.body["sessionsEnded"], 1, "{}", all.body);
    assert_eq!(
        app.get("/v1/me", &third.token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/v1/me", &ada.token).await.status, StatusCode::OK);
    assert_eq!(sessions(&app, &ada).await.len(), 1);
}

on_both_backends!(
    an_unverified_address_waits_for_its_single_use_link,
    a_password_change_ends_every_other_session,
    a_reset_link_works_once_for_thirty_minutes_and_ends_every_session,
    reset_requests_answer_alike_in_time,
    an_email_change_waits_for_the_new_address_and_tells_the_old,
    sessions_are_listed_and_ended_one_or_all,
);
