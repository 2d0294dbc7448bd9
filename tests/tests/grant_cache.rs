//! Who may do what is resolved from memory, and every change reaches every replica.
//!
//! - On SQLite another process may write the file unannounced (`canopy admin`), so nothing
//!   is served from memory there.
//! - On PostgreSQL two replicas share one database and nothing else: each write on one
//!   (log-out, key revocation, member removal, role change, organization deletion, password
//!   change, and an operator's SQL) is refused or seen on the other within a second, and the
//!   other was serving that caller from its cache before the write, so the refusal is the
//!   notification's doing.

use std::time::{Duration, Instant};

use canopy_e2e::{Options, Session, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// How long a change may take to reach the other replica.
const WITHIN: Duration = Duration::from_secs(1);

async fn listening(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.state.grants.listening() {
        assert!(Instant::now() < deadline, "the replica never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn two_replicas() -> (TestApp, TestApp) {
    let one = TestApp::start("postgres").await;
    let two = one.replica(Options::default()).await;
    listening(&one).await;
    listening(&two).await;
    (one, two)
}

/// Asks `path` on `app` twice and checks the second answer came from its cache.
async fn served_from_cache(app: &TestApp, path: &str, token: &str, status: StatusCode) {
    let first = app.get(path, token).await;
    assert_eq!(first.status, status, "{:?}", first.body);
    let (hits, _) = app.state.grants.hits_and_misses();
    let again = app.get(path, token).await;
    assert_eq!(again.status, status, "{:?}", again.body);
    assert!(
        app.state.grants.hits_and_misses().0 > hits,
        "{path} was not served from the cache"
    );
}

/// Polls `path` on `app` until it answers `status`; how long that took.
async fn answers_within(app: &TestApp, path: &str, token: &str, status: StatusCode) -> Duration {
    let start = Instant::now();
    loop {
        let resp = app.get(path, token).await;
        if resp.status == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{path} still answers {} ({:?})",
            resp.status,
            resp.body
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn org_path(org: &str) -> String {
    format!("/v1/organizations/{org}")
}

#[tokio::test]
async fn on_sqlite_another_process_s_write_is_seen_at_once() {
    // Nothing tells this process of a write another one (`canopy admin verify-email`, a
    // worker) makes to the same file, so on SQLite the grants are read every time.
    let app = TestApp::start("sqlite").await;
    let ada = app.sign_up("ada").await;
    assert_eq!(app.get("/v1/me", &ada.token).await.status, StatusCode::OK);
    assert_eq!(app.get("/v1/me", &ada.token).await.status, StatusCode::OK);
    canopy_store::testing::execute_raw(&app.store, "DELETE FROM sessions")
        .await
        .unwrap();
    app.get("/v1/me", &ada.token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(
        app.state.grants.hits_and_misses().0,
        0,
        "nothing served from memory"
    );
}

#[tokio::test]
#[ignore = "needs postgres"]
async fn a_log_out_key_revocation_or_operator_delete_is_refused_on_the_other_replica_within_a_second()
 {
    let (one, two) = two_replicas().await;
    let ada = one.sign_up("ada").await;
    let mut slowest = Duration::ZERO;

    served_from_cache(&two, "/v1/me", &ada.token, StatusCode::OK).await;
    let second = one.log_in(&ada).await;
    let out = one.post("/v1/auth/logout", &ada.token, json!({})).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{:?}", out.body);
    slowest =
        slowest.max(answers_within(&two, "/v1/me", &ada.token, StatusCode::UNAUTHORIZED).await);
    // Only that session ended.
    assert_eq!(
        two.get("/v1/me", &second.token).await.status,
        StatusCode::OK
    );

    let key = one
        .post("/v1/me/api-keys", &second.token, json!({"name": "ci"}))
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{:?}", key.body);
    let (secret, id) = (
        key.body["token"].as_str().unwrap().to_string(),
        key.body["apiKey"]["id"].as_str().unwrap().to_string(),
    );
    served_from_cache(&two, "/v1/me", &secret, StatusCode::OK).await;
    let revoked = one
        .call(
            Method::DELETE,
            &format!("/v1/me/api-keys/{id}"),
            Some(&second.token),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{:?}", revoked.body);
    slowest = slowest.max(answers_within(&two, "/v1/me", &secret, StatusCode::UNAUTHORIZED).await);

    served_from_cache(&two, "/v1/me", &second.token, StatusCode::OK).await;
    canopy_store::testing::execute_raw(&one.store, "DELETE FROM sessions")
        .await
        .unwrap();
    slowest =
        slowest.max(answers_within(&two, "/v1/me", &second.token, StatusCode::UNAUTHORIZED).await);
    assert!(slowest < WITHIN, "slowest refusal took {slowest:?}");
    println!("slowest refusal on the other replica: {slowest:?}");
}

#[tokio::test]
#[ignore = "needs postgres"]
async fn membership_changes_reach_the_other_replica_within_a_second() {
    let (one, two) = two_replicas().await;
    let owner = one.sign_up("owner").await;
    let bob = one.sign_up("bob").await;
    let org = one.create_org_on(&owner, "Shared", "pro").await;
    one.add_member(&org, &owner, &bob, "member").await;
    let audit = format!("{}/audit-events", org_path(&org));
    let mut slowest = Duration::ZERO;

    // A member reads the organization but not its audit log; promoted, they read both.
    served_from_cache(&two, &org_path(&org), &bob.token, StatusCode::OK).await;
    served_from_cache(&two, &audit, &bob.token, StatusCode::FORBIDDEN).await;
    let promoted = one
        .call(
            Method::PATCH,
            &format!("{}/members/{}", org_path(&org), bob.user_id),
            Some(&owner.token),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{:?}", promoted.body);
    slowest = slowest.max(answers_within(&two, &audit, &bob.token, StatusCode::OK).await);

    // Removed, the organization is a 404 to them, and gone from their list.
    let removed = one
        .call(
            Method::DELETE,
            &format!("{}/members/{}", org_path(&org), bob.user_id),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{:?}", removed.body);
    slowest =
        slowest.max(answers_within(&two, &org_path(&org), &bob.token, StatusCode::NOT_FOUND).await);
    let me = two.get("/v1/me", &bob.token).await;
    assert!(
        !me.body["organizations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["slug"] == org.as_str() || o["id"] == org.as_str()),
        "{:?}",
        me.body
    );

    // Deleted, it is a 404 to its owner too.
    served_from_cache(&two, &org_path(&org), &owner.token, StatusCode::OK).await;
    let deleted = one
        .call(Method::DELETE, &org_path(&org), Some(&owner.token), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{:?}", deleted.body);
    slowest = slowest
        .max(answers_within(&two, &org_path(&org), &owner.token, StatusCode::NOT_FOUND).await);
    assert!(slowest < WITHIN, "slowest change took {slowest:?}");
}

#[tokio::test]
#[ignore = "needs postgres"]
async fn a_password_change_ends_the_other_sessions_on_the_other_replica_within_a_second() {
    let (one, two) = two_replicas().await;
    let ada: Session = one.sign_up("ada").await;
    let laptop = one.log_in(&ada).await;
    served_from_cache(&two, "/v1/me", &laptop.token, StatusCode::OK).await;
    let changed = one
        .post(
            "/v1/me/password",
            &ada.token,
            json!({"currentPassword": "correct horse battery", "newPassword": "a new staple battery"}),
        )
        .await;
    assert!(changed.status.is_success(), "{:?}", changed.body);
    let took = answers_within(&two, "/v1/me", &laptop.token, StatusCode::UNAUTHORIZED).await;
    assert!(took < WITHIN, "took {took:?}");
    // The session that changed it goes on, on both.
    assert_eq!(two.get("/v1/me", &ada.token).await.status, StatusCode::OK);
}
