//! Who may do what is resolved from memory, and every change reaches every replica.
//!
//! - On SQLite another process may write the file unannounced (`canopy admin`), so nothing
//!   is served from memory there.
//! - On PostgreSQL two replicas share one database and nothing else: each write on one
//!   (log-out, key revocation, member removal, role change, organization deletion, password
//!   change, and an operator's SQL) is refused or seen on the other within a second, and the
//!   other was serving that caller from its cache before the write, so the refusal is the
//!   notification's doing.
//! - What an organization holds (its accounts, members, invitations, plan and usage) is kept
//!   too: a write is seen at once on the replica that made it and within a second on the
//!   other, whether it came through the API or an operator's SQL.

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

/// Asks `path` on `app` twice and checks the second answer came from its organization reads.
async fn reads_kept(app: &TestApp, path: &str, token: &str) {
    let first = app.get(path, token).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let (hits, _) = app.state.reads.hits_and_misses();
    let again = app.get(path, token).await;
    assert_eq!(again.body, first.body);
    assert!(
        app.state.reads.hits_and_misses().0 > hits,
        "{path} was not served from the organization reads"
    );
}

/// Polls `path` on `app` until its body satisfies `seen`; how long that took.
async fn seen_within(
    app: &TestApp,
    path: &str,
    token: &str,
    seen: impl Fn(&serde_json::Value) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let resp = app.get(path, token).await;
        assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
        if seen(&resp.body) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{path} still answers {:?}",
            resp.body
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn holds(list: &serde_json::Value, field: &str, value: &str) -> bool {
    list["items"]
        .as_array()
        .is_some_and(|items| items.iter().any(|i| i[field] == value))
}

#[tokio::test]
#[ignore = "needs postgres"]
async fn organization_reads_are_kept_and_every_write_reaches_the_other_replica_within_a_second() {
    let (one, two) = two_replicas().await;
    let owner = one.sign_up("owner").await;
    let bob = one.sign_up("bob").await;
    let org = one.create_org_on(&owner, "Reads", "pro").await;
    let accounts = format!("{}/cloud-accounts", org_path(&org));
    let members = format!("{}/members", org_path(&org));
    let invitations = format!("{}/invitations", org_path(&org));
    let usage = format!("{}/usage", org_path(&org));
    for path in [&accounts, &members, &invitations, &usage] {
        reads_kept(&one, path, &owner.token).await;
        reads_kept(&two, path, &owner.token).await;
    }
    let mut slowest = Duration::ZERO;

    // Connected through one: listed there at once, on the other within a second.
    let id = one.connect_random_aws_account(&owner.token, &org).await;
    assert!(holds(
        &one.get(&accounts, &owner.token).await.body,
        "id",
        &id
    ));
    slowest =
        slowest.max(seen_within(&two, &accounts, &owner.token, |b| holds(b, "id", &id)).await);
    slowest = slowest.max(
        seen_within(&two, &usage, &owner.token, |b| {
            b["cloudAccounts"]["used"] == 1
        })
        .await,
    );

    // Renamed through the API, then by an operator's SQL behind both replicas' backs.
    let renamed = one
        .call(
            Method::PATCH,
            &format!("{accounts}/{id}"),
            Some(&owner.token),
            Some(json!({"alias": "Renamed"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
    assert!(holds(
        &one.get(&accounts, &owner.token).await.body,
        "alias",
        "Renamed"
    ));
    slowest = slowest.max(
        seen_within(&two, &accounts, &owner.token, |b| {
            holds(b, "alias", "Renamed")
        })
        .await,
    );
    reads_kept(&two, &accounts, &owner.token).await;
    canopy_store::testing::execute_raw(
        &one.store,
        &format!("UPDATE cloud_accounts SET alias = 'By operator' WHERE id = '{id}'"),
    )
    .await
    .unwrap();
    for app in [&one, &two] {
        slowest = slowest.max(
            seen_within(app, &accounts, &owner.token, |b| {
                holds(b, "alias", "By operator")
            })
            .await,
        );
    }

    // Invited through one: pending on both, and holding a seat in the usage.
    let invited = one
        .post(
            &invitations,
            &owner.token,
            json!({"email": bob.email, "role": "member"}),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{:?}", invited.body);
    assert!(holds(
        &one.get(&invitations, &owner.token).await.body,
        "email",
        &bob.email
    ));
    slowest = slowest.max(
        seen_within(&two, &invitations, &owner.token, |b| {
            holds(b, "email", &bob.email)
        })
        .await,
    );
    slowest = slowest.max(
        seen_within(&two, &usage, &owner.token, |b| {
            b["teamMembers"]["pendingInvitations"] == 1
        })
        .await,
    );

    // Accepted: a member on both.
    let accepted = one
        .post(
            &format!(
                "/v1/invitations/{}/accept",
                invited.body["id"].as_str().unwrap()
            ),
            &bob.token,
            json!({}),
        )
        .await;
    assert!(accepted.status.is_success(), "{:?}", accepted.body);
    slowest = slowest.max(
        seen_within(&two, &members, &owner.token, |b| {
            holds(b, "userId", &bob.user_id)
        })
        .await,
    );

    // A person's record changed by an operator: the member lists they are on follow.
    canopy_store::testing::execute_raw(
        &one.store,
        &format!(
            "UPDATE users SET name = 'Robert' WHERE id = '{}'",
            bob.user_id
        ),
    )
    .await
    .unwrap();
    slowest = slowest
        .max(seen_within(&two, &members, &owner.token, |b| holds(b, "name", "Robert")).await);

    // A new plan: the limits follow on the other replica.
    reads_kept(&two, &usage, &owner.token).await;
    one.set_tier(&org, "enterprise").await;
    slowest =
        slowest.max(seen_within(&two, &usage, &owner.token, |b| b["tier"] == "enterprise").await);
    assert!(slowest < WITHIN, "slowest change took {slowest:?}");
}
