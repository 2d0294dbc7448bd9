//! The tenancy stories end to end over HTTP: sign-up to invitation to role change to leaving,
//! credentials, expiry and the last-owner rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::{TestApp, on_both_backends};
use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn signup_create_org_invite_accept_change_role_leave(app: TestApp) {
    // Ada signs up: she gets a personal organization, active, as owner.
    let ada = app.sign_up("Ada").await;
    let me = app.get("/v1/me", &ada.token).await;
    assert_eq!(me.status, StatusCode::OK);
    let personal = &me.body["organizations"][0];
    assert_eq!(personal["organization"]["name"], "Ada's Organization");
    assert_eq!(personal["role"], "owner");
    assert_eq!(
        me.body["activeOrganizationId"],
        personal["organization"]["id"]
    );

    // She creates Acme with a chosen slug; it is now taken.
    let created = app
        .post(
            "/v1/organizations",
            &ada.token,
            json!({"name": "Acme Corp", "slug": "acme-corp"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let avail = app
        .get(
            "/v1/organizations/slug-availability?slug=acme-corp",
            &ada.token,
        )
        .await;
    assert_eq!(avail.body["available"], false);
    let dup = app
        .post(
            "/v1/organizations",
            &ada.token,
            json!({"name": "Other", "slug": "acme-corp"}),
        )
        .await;
    dup.assert_problem(StatusCode::CONFLICT, "slug_taken");

    // Free allows one team member, so inviting Bob needs an upgrade first.
    let bob_email = "bob.story@example.com";
    let refused = app
        .post(
            "/v1/organizations/acme-corp/invitations",
            &ada.token,
            json!({"email": bob_email, "role": "member"}),
        )
        .await;
    refused.assert_problem(StatusCode::PAYMENT_REQUIRED, "plan_limit");
    assert_eq!(refused.body["requiredTier"], "individual");
    let upgraded = app
        .call(
            Method::PUT,
            "/v1/organizations/acme-corp/subscription",
            Some(&ada.token),
            Some(json!({"tier": "individual"})),
        )
        .await;
    assert_eq!(upgraded.status, StatusCode::OK, "{}", upgraded.body);

    // She invites Bob (not yet registered) as member; the outbox holds the accept link.
    let inv = app
        .post(
            "/v1/organizations/acme-corp/invitations",
            &ada.token,
            json!({"email": "  Bob.Story@Example.com ", "role": "member"}),
        )
        .await;
    assert_eq!(inv.status, StatusCode::CREATED, "{}", inv.body);
    assert_eq!(inv.body["email"], bob_email);
    let inv_id = inv.body["id"].as_str().unwrap().to_string();
    let outbox = app.store.outbox().unsent_for(bob_email).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert!(
        outbox[0].body.contains(&format!("/invitations/{inv_id}")),
        "{}",
        outbox[0].body
    );
    assert_eq!(outbox[0].payload["reference"], inv_id.as_str());
    // An operator reads the same message with `canopy admin outbox`.
    let report = canopy_app::admin::outbox(&app.store.outbox(), Some(bob_email), 10, false)
        .await
        .unwrap();
    assert!(
        report.contains(&format!("/invitations/{inv_id}")),
        "{report}"
    );
    assert!(report.contains("1 unsent message(s)"), "{report}");

    // The accept link opens the console's invitation page: signed out, it offers to log in
    // or sign up and come back to it.
    let link = outbox[0].payload["link"].as_str().unwrap();
    let path = &link[link.find("/invitations/").unwrap()..];
    let page = app
        .http
        .get(format!("{}{path}", app.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("/login?next={path}")), "{html}");
    assert!(html.contains(&format!("/signup?next={path}")), "{html}");
    let not_an_id = app
        .http
        .get(format!("{}/invitations/not-an-id", app.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(not_an_id.status(), StatusCode::NOT_FOUND);

    // Bob signs up with that email, sees the invitation and accepts it.
    let bob = app
        .call(
            Method::POST,
            "/v1/auth/signup",
            None,
            Some(json!({"email": bob_email, "name": "Bob", "password": "another good password"})),
        )
        .await;
    assert_eq!(bob.status, StatusCode::CREATED);
    let bob_token = bob.body["token"].as_str().unwrap().to_string();
    let bob_id = bob.body["user"]["id"].as_str().unwrap().to_string();
    let mine = app.get("/v1/me/invitations", &bob_token).await;
    assert_eq!(mine.body[0]["organizationName"], "Acme Corp");
    assert_eq!(mine.body[0]["invitedByName"], "Ada");
    // Accepting waits for Bob to prove the address the invitation went to.
    app.post(
        &format!("/v1/invitations/{inv_id}/accept"),
        &bob_token,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "email_unverified");
    app.verify_email(bob_email).await;
    let accepted = app
        .post(
            &format!("/v1/invitations/{inv_id}/accept"),
            &bob_token,
            json!({}),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(accepted.body["role"], "member");
    let again = app
        .post(
            &format!("/v1/invitations/{inv_id}/accept"),
            &bob_token,
            json!({}),
        )
        .await;
    again.assert_problem(StatusCode::CONFLICT, "invitation_not_pending");

    // The member list shows both; Bob switches his active organization to Acme.
    let members = app
        .get("/v1/organizations/acme-corp/members", &ada.token)
        .await;
    let items = members.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["email"], bob_email);
    let switch = app
        .call(
            Method::PUT,
            "/v1/me/active-organization",
            Some(&bob_token),
            Some(json!({"organization": "acme-corp"})),
        )
        .await;
    assert_eq!(switch.status, StatusCode::OK);
    let bob_me = app.get("/v1/me", &bob_token).await;
    assert_eq!(bob_me.body["activeOrganizationId"], created.body["id"]);
    assert_eq!(bob_me.body["organizations"].as_array().unwrap().len(), 2);

    // Ada promotes Bob to admin; Bob, as admin, still cannot change roles.
    let promoted = app
        .call(
            Method::PATCH,
            &format!("/v1/organizations/acme-corp/members/{bob_id}"),
            Some(&ada.token),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(promoted.body["role"], "admin");
    let refused = app
        .call(
            Method::PATCH,
            &format!("/v1/organizations/acme-corp/members/{}", ada.user_id),
            Some(&bob_token),
            Some(json!({"role": "member"})),
        )
        .await;
    refused.assert_problem(StatusCode::FORBIDDEN, "forbidden");

    // Ada, the last owner, can neither leave nor demote herself; Bob can leave.
    let leave = app
        .post("/v1/organizations/acme-corp/leave", &ada.token, json!({}))
        .await;
    leave.assert_problem(StatusCode::CONFLICT, "last_owner");
    let demote = app
        .call(
            Method::PATCH,
            &format!("/v1/organizations/acme-corp/members/{}", ada.user_id),
            Some(&ada.token),
            Some(json!({"role": "admin"})),
        )
        .await;
    demote.assert_problem(StatusCode::CONFLICT, "last_owner");
    let bob_leaves = app
        .post("/v1/organizations/acme-corp/leave", &bob_token, json!({}))
        .await;
    assert_eq!(bob_leaves.status, StatusCode::NO_CONTENT);
    let gone = app.get("/v1/organizations/acme-corp", &bob_token).await;
    gone.assert_problem(StatusCode::NOT_FOUND, "not_found");

    // Every step is in the audit log, newest first.
    let audit = app
        .get("/v1/organizations/acme-corp/audit-events", &ada.token)
        .await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "member.left",
            "member.role_changed",
            "invitation.accepted",
            "invitation.created",
            "subscription.changed",
            "organization.created"
        ]
    );
    assert_eq!(audit.body["items"][1]["details"]["to"], "admin");
}

async fn ownership_can_be_transferred_then_the_old_owner_can_leave(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let org = app.create_org_on(&ada, "Handover", "pro").await;
    app.add_member(&org, &ada, &bob, "member").await;
    let t = app
        .post(
            &format!("/v1/organizations/{org}/transfer-ownership"),
            &ada.token,
            json!({"userId": bob.user_id}),
        )
        .await;
    assert_eq!(t.status, StatusCode::NO_CONTENT, "{}", t.body);
    let got = app
        .get(&format!("/v1/organizations/{org}"), &ada.token)
        .await;
    assert_eq!(got.body["role"], "admin");
    let left = app
        .post(
            &format!("/v1/organizations/{org}/leave"),
            &ada.token,
            json!({}),
        )
        .await;
    assert_eq!(left.status, StatusCode::NO_CONTENT);
    let bob_view = app
        .get(&format!("/v1/organizations/{org}"), &bob.token)
        .await;
    assert_eq!(bob_view.body["role"], "owner");
}

async fn admins_cannot_remove_owners_and_only_owners_invite_owners(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let root = app.sign_up("Root").await;
    let adm = app.sign_up("Adm").await;
    let org = app.create_org_on(&ada, "Guarded", "pro").await;
    app.add_member(&org, &ada, &root, "owner").await;
    app.add_member(&org, &ada, &adm, "admin").await;
    let removal = app
        .call(
            Method::DELETE,
            &format!("/v1/organizations/{org}/members/{}", root.user_id),
            Some(&adm.token),
            None,
        )
        .await;
    removal.assert_problem(StatusCode::FORBIDDEN, "owner_protected");
    let invite_owner = app
        .post(
            &format!("/v1/organizations/{org}/invitations"),
            &adm.token,
            json!({"email": "x@example.com", "role": "owner"}),
        )
        .await;
    invite_owner.assert_problem(StatusCode::FORBIDDEN, "owner_invite_requires_owner");
    let member_again = app
        .post(
            &format!("/v1/organizations/{org}/invitations"),
            &ada.token,
            json!({"email": adm.email, "role": "member"}),
        )
        .await;
    member_again.assert_problem(StatusCode::CONFLICT, "already_member");
}

async fn expired_invitation_is_gone(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let org = app.create_org_on(&ada, "Slowpokes", "pro").await;
    let inv = app
        .post(
            &format!("/v1/organizations/{org}/invitations"),
            &ada.token,
            json!({"email": bob.email, "role": "member"}),
        )
        .await;
    let id = inv.body["id"].as_str().unwrap();
    app.clock.advance(Duration::hours(47));
    assert_eq!(
        app.get("/v1/me/invitations", &bob.token)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app.clock.advance(Duration::hours(2));
    assert!(
        app.get("/v1/me/invitations", &bob.token)
            .await
            .body
            .as_array()
            .unwrap()
            .is_empty()
    );
    let late = app
        .post(
            &format!("/v1/invitations/{id}/accept"),
            &bob.token,
            json!({}),
        )
        .await;
    late.assert_problem(StatusCode::GONE, "invitation_expired");
    let members = app
        .get(&format!("/v1/organizations/{org}/members"), &ada.token)
        .await;
    assert_eq!(
        members.body["items"].as_array().unwrap().len(),
        1,
        "nobody joined"
    );
}

async fn reinviting_replaces_and_cancel_and_reject_work(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let org = app.create_org_on(&ada, "Invites", "pro").await;
    let path = format!("/v1/organizations/{org}/invitations");
    let first = app
        .post(
            &path,
            &ada.token,
            json!({"email": bob.email, "role": "member"}),
        )
        .await;
    let second = app
        .post(
            &path,
            &ada.token,
            json!({"email": bob.email, "role": "admin"}),
        )
        .await;
    let listed = app.get(&path, &ada.token).await;
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], second.body["id"]);
    let stale = app
        .post(
            &format!(
                "/v1/invitations/{}/accept",
                first.body["id"].as_str().unwrap()
            ),
            &bob.token,
            json!({}),
        )
        .await;
    stale.assert_problem(StatusCode::CONFLICT, "invitation_not_pending");
    let reject = app
        .post(
            &format!(
                "/v1/invitations/{}/reject",
                second.body["id"].as_str().unwrap()
            ),
            &bob.token,
            json!({}),
        )
        .await;
    assert_eq!(reject.status, StatusCode::NO_CONTENT);
    let third = app
        .post(
            &path,
            &ada.token,
            json!({"email": "carol@example.com", "role": "member"}),
        )
        .await;
    let cancel = app
        .call(
            Method::DELETE,
            &format!("{path}/{}", third.body["id"].as_str().unwrap()),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(cancel.status, StatusCode::NO_CONTENT);
    assert!(
        app.get(&path, &ada.token).await.body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

async fn credentials_log_in_log_out_and_api_keys(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    // Same message for unknown email and wrong password.
    let wrong = app
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": ada.email, "password": "not the password"})),
        )
        .await;
    wrong.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let unknown = app
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "nobody@example.com", "password": "not the password"})),
        )
        .await;
    unknown.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);

    let login = app
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": ada.email.to_uppercase(), "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let second = login.body["token"].as_str().unwrap().to_string();
    assert!(second.len() >= 43 + 9, "256-bit token: {second}");

    // An API key works like a session until revoked; its secret is shown once.
    let key = app
        .post(
            "/v1/me/api-keys",
            &second,
            json!({"name": "ci", "expiresInDays": 30}),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.body);
    let key_token = key.body["token"].as_str().unwrap().to_string();
    assert!(key_token.starts_with(key.body["apiKey"]["prefix"].as_str().unwrap()));
    assert_eq!(app.get("/v1/me", &key_token).await.status, StatusCode::OK);
    let listed = app.get("/v1/me/api-keys", &second).await;
    assert_eq!(listed.body[0]["name"], "ci");
    assert!(
        listed.body[0].get("token").is_none(),
        "secrets are never listed"
    );
    let key_id = key.body["apiKey"]["id"].as_str().unwrap();
    let revoke = app
        .call(
            Method::DELETE,
            &format!("/v1/me/api-keys/{key_id}"),
            Some(&second),
            None,
        )
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);
    app.get("/v1/me", &key_token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");

    // Logging out ends that session only.
    let out = app.post("/v1/auth/logout", &second, json!({})).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    app.get("/v1/me", &second)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(app.get("/v1/me", &ada.token).await.status, StatusCode::OK);

    // Sessions expire.
    app.clock.advance(Duration::days(8));
    app.get("/v1/me", &ada.token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
}

async fn deleting_an_organization_removes_it_for_everyone(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let org = app.create_org_on(&ada, "Doomed", "pro").await;
    app.add_member(&org, &ada, &bob, "admin").await;
    let del = app
        .call(
            Method::DELETE,
            &format!("/v1/organizations/{org}"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let bob_orgs = app.get("/v1/organizations", &bob.token).await;
    assert!(
        bob_orgs
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["organization"]["id"] != org.as_str())
    );
    app.get(&format!("/v1/organizations/{org}"), &ada.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

async fn organization_settings_are_validated_and_updated(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let org = app.create_org_on(&ada, "Settings", "pro").await;
    let path = format!("/v1/organizations/{org}");
    let bad = app
        .call(
            Method::PATCH,
            &path,
            Some(&ada.token),
            Some(json!({"slug": "Bad Slug", "logo": "ftp://x", "metadata": [1], "name": ""})),
        )
        .await;
    bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    let named: std::collections::BTreeSet<&str> = fields.iter().copied().collect();
    assert_eq!(
        named,
        ["logo", "metadata", "name", "slug"].into_iter().collect(),
        "every bad field is named: {fields:?}"
    );
    let unchanged = app.get(&path, &ada.token).await;
    assert_eq!(
        unchanged.body["organization"]["name"], "Settings",
        "a refused change stores nothing"
    );
    let ok = app
        .call(
            Method::PATCH,
            &path,
            Some(&ada.token),
            Some(json!({"logo": "https://cdn.example.com/logo.png", "metadata": {"billingEmail": "ap@example.com"}})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["metadata"]["billingEmail"], "ap@example.com");
    let cleared = app
        .call(
            Method::PATCH,
            &path,
            Some(&ada.token),
            Some(json!({"logo": null})),
        )
        .await;
    assert_eq!(cleared.body["logo"], serde_json::Value::Null);
    let reserved = app
        .get("/v1/organizations/slug-availability?slug=admin", &ada.token)
        .await;
    reserved.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(reserved.body["errors"][0]["rule"], "reserved");
}

on_both_backends!(
    signup_create_org_invite_accept_change_role_leave,
    ownership_can_be_transferred_then_the_old_owner_can_leave,
    admins_cannot_remove_owners_and_only_owners_invite_owners,
    expired_invitation_is_gone,
    reinviting_replaces_and_cancel_and_reject_work,
    credentials_log_in_log_out_and_api_keys,
    deleting_an_organization_removes_it_for_everyone,
    organization_settings_are_validated_and_updated,
);
