//! Deleting your own account over HTTP, on both backends: the password first; refused while
//! you are the only owner of an organization others belong to (naming it), and atomically so
//! when someone joins at that moment; otherwise the organizations you were alone in go, the
//! others keep their audit log with a tombstone instead of your address, and nothing that
//! names you is left.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::{Session, TestApp, on_both_backends};
use canopy_tenancy::Slug;
use canopy_tenancy::account::TOMBSTONE;
use canopy_tenancy::ports::OrganizationRepository;
use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

async fn delete_account(app: &TestApp, who: &Session, password: &str) -> canopy_e2e::Response {
    app.post(
        "/v1/me/deletion",
        &who.token,
        json!({"currentPassword": password}),
    )
    .await
}

/// The id and slug of `who`'s personal organization (the one sign-up made).
async fn personal_org(app: &TestApp, who: &Session) -> (String, String) {
    let me = app.get("/v1/me", &who.token).await;
    let org = &me.body["organizations"][0]["organization"];
    (
        org["id"].as_str().unwrap().to_string(),
        org["slug"].as_str().unwrap().to_string(),
    )
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect()
}

async fn the_last_owner_is_refused_then_leaves_a_tombstone(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let (personal, personal_slug) = personal_org(&app, &ada).await;
    let team = app.create_org_on(&ada, "Team Corp", "pro").await;
    app.add_member(&team, &ada, &bob, "member").await;

    // The password first, and a wrong one changes nothing.
    let wrong = delete_account(&app, &ada, "not my password").await;
    wrong.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        wrong.body["errors"][0]["field"], "currentPassword",
        "{}",
        wrong.body
    );

    // The only owner of an organization Bob belongs to: refused, naming it.
    let refused = delete_account(&app, &ada, PASSWORD).await;
    refused.assert_problem(StatusCode::CONFLICT, "last_owner");
    let named = &refused.body["organizations"];
    assert_eq!(ids(named), vec![team.as_str()], "{}", refused.body);
    assert_eq!(named[0]["otherMembers"], 1);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("Team Corp")
    );
    assert_eq!(app.get("/v1/me", &ada.token).await.status, StatusCode::OK);

    // Once Bob is an owner too, Ada may go.
    let promoted = app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/organizations/{team}/members/{}", bob.user_id),
            Some(&ada.token),
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.body);
    let done = delete_account(&app, &ada, PASSWORD).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(
        ids(&done.body["organizationsDeleted"]),
        vec![personal.as_str()]
    );
    assert_eq!(ids(&done.body["membershipsEnded"]), vec![team.as_str()]);

    // Every credential is gone, and so is the personal organization.
    assert_eq!(
        app.get("/v1/me", &ada.token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        !app.store
            .organizations()
            .slug_exists(&Slug::parse(&personal_slug, "slug").unwrap())
            .await
            .unwrap(),
        "the personal organization went with the account"
    );

    // The team keeps its log, with a tombstone where Ada's address was.
    let log = app
        .get(
            &format!("/v1/organizations/{team}/audit-events?limit=200"),
            &bob.token,
        )
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let text = log.body.to_string();
    assert!(!text.contains(&ada.email), "{text}");
    assert!(text.contains(TOMBSTONE), "{text}");
    let events = log.body["items"].as_array().unwrap();
    assert!(
        events.iter().any(
            |e| e["action"] == "member.account_deleted" && e["actorId"] == ada.user_id.as_str()
        )
    );
    let members = app
        .get(&format!("/v1/organizations/{team}/members"), &bob.token)
        .await;
    assert!(!members.body.to_string().contains(&ada.email));
    let invitations = app
        .get(&format!("/v1/organizations/{team}/invitations"), &bob.token)
        .await;
    assert!(!invitations.body.to_string().contains(&ada.email));
    assert!(
        app.store
            .outbox()
            .all_for(&ada.email)
            .await
            .unwrap()
            .is_empty(),
        "no message to the address is kept"
    );

    // The address is free again: a new sign-up is a new person.
    let again = app
        .call(
            reqwest::Method::POST,
            "/v1/auth/signup",
            None,
            Some(json!({"email": ada.email, "name": "Ada", "password": PASSWORD})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_ne!(again.body["user"]["id"], ada.user_id.as_str());
}

async fn a_member_joining_during_the_deletion_is_never_left_without_an_owner(app: TestApp) {
    // Ada is alone in her team with an invitation out to Bob. Bob accepts while Ada deletes
    // her account: either the deletion saw him (refused) or it went first (his invitation
    // went with the organization). Never both.
    for round in 0..6 {
        let ada = app.sign_up("Ada").await;
        let bob = app.sign_up("Bob").await;
        let team = app
            .create_org_on(&ada, &format!("Race {round}"), "pro")
            .await;
        let inv = app
            .post(
                &format!("/v1/organizations/{team}/invitations"),
                &ada.token,
                json!({"email": bob.email, "role": "member"}),
            )
            .await;
        let inv_id = inv.body["id"].as_str().unwrap().to_string();
        let accept_path = format!("/v1/invitations/{inv_id}/accept");
        let (deleted, accepted) = tokio::join!(
            delete_account(&app, &ada, PASSWORD),
            app.post(&accept_path, &bob.token, json!({})),
        );
        let deleted_ok = deleted.status == StatusCode::OK;
        let accepted_ok = accepted.status == StatusCode::OK;
        assert!(
            deleted_ok != accepted_ok,
            "round {round}: deletion {} {}, acceptance {} {}",
            deleted.status,
            deleted.body,
            accepted.status,
            accepted.body
        );
        if accepted_ok {
            deleted.assert_problem(StatusCode::CONFLICT, "last_owner");
            let members = app
                .get(&format!("/v1/organizations/{team}/members"), &bob.token)
                .await;
            assert!(members.body.to_string().contains(&ada.email));
        } else {
            assert_eq!(accepted.status, StatusCode::NOT_FOUND, "{}", accepted.body);
            let me = app.get("/v1/me", &bob.token).await;
            assert!(!me.body.to_string().contains(&team), "{}", me.body);
        }
    }
}

on_both_backends!(
    the_last_owner_is_refused_then_leaves_a_tombstone,
    a_member_joining_during_the_deletion_is_never_left_without_an_owner,
);
