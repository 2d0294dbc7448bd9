//! Billing stories over HTTP: subscriptions and usage meters, every limit through every flow,
//! upgrade and retry, refused downgrades, the API-access entitlement, history retention and
//! the legacy-tier migration. Each runs on SQLite and (in CI) on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::{Session, TestApp, aws_account_body, on_both_backends, random_aws_account};
use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn org_path(org: &str, rest: &str) -> String {
    format!("/v1/organizations/{org}{rest}")
}

async fn connect_manually(app: &TestApp, org: &str, who: &Session) -> canopy_e2e::Response {
    app.post(
        &org_path(org, "/cloud-accounts"),
        &who.token,
        aws_account_body(&random_aws_account()),
    )
    .await
}

fn assert_plan_limit(
    resp: &canopy_e2e::Response,
    limit: &str,
    (used, allowed): (u64, u64),
    current: &str,
    required: &str,
) {
    resp.assert_problem(StatusCode::PAYMENT_REQUIRED, "plan_limit");
    assert_eq!(resp.body["limit"], limit, "{}", resp.body);
    assert_eq!(resp.body["used"], used, "{}", resp.body);
    assert_eq!(resp.body["allowed"], allowed, "{}", resp.body);
    assert_eq!(resp.body["currentTier"], current, "{}", resp.body);
    assert_eq!(resp.body["requiredTier"], required, "{}", resp.body);
}

async fn change_tier(
    app: &TestApp,
    org: &str,
    owner: &Session,
    tier: &str,
) -> canopy_e2e::Response {
    app.put(
        &org_path(org, "/subscription"),
        &owner.token,
        json!({"tier": tier}),
    )
    .await
}

async fn a_new_organization_is_free_and_its_meters_say_so(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let org = app.create_org(&ada, "Meters").await;
    let sub = app.get(&org_path(&org, "/subscription"), &ada.token).await;
    assert_eq!(sub.status, StatusCode::OK, "{}", sub.body);
    assert_eq!(sub.body["tier"], "free");
    assert_eq!(sub.body["terms"]["pricing"], "monthly");
    assert_eq!(sub.body["terms"]["priceMonthlyCents"], 0);
    assert_eq!(sub.body["terms"]["limits"]["maxAccounts"], 1);
    assert_eq!(sub.body["terms"]["features"]["api_access"], false);
    assert!(sub.body["grace"].is_null());

    connect_manually(&app, &org, &ada).await;
    let usage = app.get(&org_path(&org, "/usage"), &ada.token).await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.body);
    assert_eq!(
        usage.body["cloudAccounts"],
        json!({"used": 1, "limit": 1, "remaining": 0})
    );
    assert_eq!(
        usage.body["teamMembers"],
        json!({"used": 1, "limit": 1, "remaining": 0, "members": 1, "pendingInvitations": 0})
    );
    assert_eq!(usage.body["historyRetentionDays"], 30);
    assert_eq!(usage.body["requiredTier"], "free");
    assert_eq!(usage.body["upgradeNeeded"], false);
    assert_eq!(usage.body["features"]["org_features"], false);

    // A pricing page needs nothing but /v1/plans.
    let plans = app.call(Method::GET, "/v1/plans", None, None).await;
    let pro = &plans.body["plans"][2];
    assert_eq!(pro["tier"], "pro");
    assert_eq!(pro["priceMonthlyCents"], 25_000);
    assert_eq!(pro["features"]["auto_discovery"], true);
}

async fn every_connect_flow_stops_at_the_account_limit_and_works_after_upgrade(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let org = app.create_org(&ada, "Limits").await;
    assert_eq!(
        connect_manually(&app, &org, &ada).await.status,
        StatusCode::CREATED
    );

    // Free: the second account is refused by every flow.
    let manual = connect_manually(&app, &org, &ada).await;
    assert_plan_limit(&manual, "cloudAccounts", (1, 1), "free", "individual");
    let token = app
        .post(&org_path(&org, "/connect-tokens"), &ada.token, json!({}))
        .await;
    assert_plan_limit(&token, "cloudAccounts", (1, 1), "free", "individual");
    let request = app
        .post(
            &org_path(&org, "/connection-requests"),
            &ada.token,
            aws_account_body(&random_aws_account()),
        )
        .await;
    assert_plan_limit(&request, "cloudAccounts", (1, 1), "free", "individual");

    // Individual: a token and a request issued while there is room ...
    assert_eq!(
        change_tier(&app, &org, &ada, "individual").await.status,
        StatusCode::OK
    );
    let token = app
        .post(&org_path(&org, "/connect-tokens"), &ada.token, json!({}))
        .await;
    assert_eq!(token.status, StatusCode::CREATED, "{}", token.body);
    let token = token.body["token"].as_str().unwrap().to_string();
    let request = app
        .post(
            &org_path(&org, "/connection-requests"),
            &ada.token,
            aws_account_body(&random_aws_account()),
        )
        .await;
    assert_eq!(request.status, StatusCode::CREATED, "{}", request.body);
    let request = request.body["token"].as_str().unwrap().to_string();
    for _ in 0..5 {
        assert_eq!(
            connect_manually(&app, &org, &ada).await.status,
            StatusCode::CREATED
        );
    }
    // ... are refused once the six are used, and stay usable.
    let redeem = |t: String| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/v1/connect",
                None,
                Some(json!({"token": t, "account": aws_account_body(&random_aws_account())})),
            )
            .await
        }
    };
    assert_plan_limit(
        &redeem(token.clone()).await,
        "cloudAccounts",
        (6, 6),
        "individual",
        "pro",
    );
    let confirm = app
        .post(
            &format!("/v1/connection-requests/{request}/confirm"),
            &ada.token,
            json!({}),
        )
        .await;
    assert_plan_limit(&confirm, "cloudAccounts", (6, 6), "individual", "pro");
    assert_plan_limit(
        &connect_manually(&app, &org, &ada).await,
        "cloudAccounts",
        (6, 6),
        "individual",
        "pro",
    );

    // Pro: retry both.
    assert_eq!(
        change_tier(&app, &org, &ada, "pro").await.status,
        StatusCode::OK
    );
    assert_eq!(redeem(token).await.status, StatusCode::CREATED);
    let confirm = app
        .post(
            &format!("/v1/connection-requests/{request}/confirm"),
            &ada.token,
            json!({}),
        )
        .await;
    assert_eq!(confirm.status, StatusCode::CREATED, "{}", confirm.body);
    let usage = app.get(&org_path(&org, "/usage"), &ada.token).await;
    assert_eq!(usage.body["cloudAccounts"]["used"], 8);
    assert_eq!(usage.body["cloudAccounts"]["limit"], 500);
}

async fn inviting_and_accepting_stop_at_the_team_limit(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let org = app.create_org(&ada, "Team").await;
    let invite = |email: String| {
        let (app, ada, org) = (&app, &ada, &org);
        async move {
            app.post(
                &org_path(org, "/invitations"),
                &ada.token,
                json!({"email": email, "role": "member"}),
            )
            .await
        }
    };
    assert_plan_limit(
        &invite(bob.email.clone()).await,
        "teamMembers",
        (1, 1),
        "free",
        "individual",
    );
    assert_eq!(
        change_tier(&app, &org, &ada, "individual").await.status,
        StatusCode::OK
    );
    let bobs = invite(bob.email.clone()).await;
    assert_eq!(bobs.status, StatusCode::CREATED, "{}", bobs.body);
    assert_eq!(
        invite("carol@example.com".into()).await.status,
        StatusCode::CREATED
    );
    // Pending invitations hold their seats; re-inviting Carol takes none.
    assert_plan_limit(
        &invite("dan@example.com".into()).await,
        "teamMembers",
        (3, 3),
        "individual",
        "pro",
    );
    assert_eq!(
        invite("carol@example.com".into()).await.status,
        StatusCode::CREATED
    );

    // The plan shrinks underneath (e.g. a billing provider's downgrade): Bob cannot join.
    app.set_stored_tier(&org, "free").await;
    let accept = format!(
        "/v1/invitations/{}/accept",
        bobs.body["id"].as_str().unwrap()
    );
    let refused = app.post(&accept, &bob.token, json!({})).await;
    assert_plan_limit(&refused, "teamMembers", (2, 1), "free", "individual");
    let usage = app.get(&org_path(&org, "/usage"), &ada.token).await;
    assert_eq!(usage.body["upgradeNeeded"], true);
    assert_eq!(usage.body["requiredTier"], "individual");
    assert_eq!(
        usage.body["exceeded"],
        json!([{"limit": "teamMembers", "used": 3, "allowed": 1}])
    );
    // Upgrade and retry.
    assert_eq!(
        change_tier(&app, &org, &ada, "individual").await.status,
        StatusCode::OK
    );
    let joined = app.post(&accept, &bob.token, json!({})).await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.body);
    let usage = app.get(&org_path(&org, "/usage"), &bob.token).await;
    assert_eq!(usage.body["teamMembers"]["members"], 2);
    assert_eq!(usage.body["teamMembers"]["pendingInvitations"], 1);
}

async fn a_downgrade_that_does_not_fit_is_refused_with_what_exceeds(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let org = app.create_org_on(&ada, "Shrink", "pro").await;
    let mut accounts = vec![];
    for _ in 0..7 {
        let r = connect_manually(&app, &org, &ada).await;
        accounts.push((
            r.body["id"].as_str().unwrap().to_string(),
            r.body["accountId"].as_str().unwrap().to_string(),
        ));
    }
    let mut invitations = vec![];
    for i in 0..3 {
        let r = app
            .post(
                &org_path(&org, "/invitations"),
                &ada.token,
                json!({"email": format!("t{i}@example.com"), "role": "member"}),
            )
            .await;
        invitations.push(r.body["id"].as_str().unwrap().to_string());
    }
    let refused = change_tier(&app, &org, &ada, "individual").await;
    refused.assert_problem(StatusCode::CONFLICT, "downgrade_exceeds_limits");
    assert_eq!(
        refused.body["exceeded"],
        json!([
            {"limit": "cloudAccounts", "used": 7, "allowed": 6},
            {"limit": "teamMembers", "used": 4, "allowed": 3}
        ])
    );
    let still = app.get(&org_path(&org, "/subscription"), &ada.token).await;
    assert_eq!(still.body["tier"], "pro");
    let enterprise = change_tier(&app, &org, &ada, "enterprise").await;
    enterprise.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    // The document offers free, individual and pro only: Enterprise is arranged with sales.
    assert_eq!(
        (
            enterprise.body["errors"][0]["field"].as_str(),
            enterprise.body["errors"][0]["rule"].as_str()
        ),
        (Some("tier"), Some("enum"))
    );
    let unknown = change_tier(&app, &org, &ada, "starter").await;
    assert_eq!(unknown.body["errors"][0]["rule"], "enum");

    // Make room, then the downgrade goes through.
    let (id, key) = &accounts[0];
    let gone = app
        .call(
            Method::DELETE,
            &org_path(
                &org,
                &format!("/cloud-accounts/{id}?confirmAccountId={key}"),
            ),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let cancelled = app
        .call(
            Method::DELETE,
            &org_path(&org, &format!("/invitations/{}", invitations[0])),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::NO_CONTENT);
    let down = change_tier(&app, &org, &ada, "individual").await;
    assert_eq!(down.status, StatusCode::OK, "{}", down.body);
    assert_eq!(down.body["tier"], "individual");
    assert_eq!(down.body["terms"]["limits"]["maxAccounts"], 6);

    // Enterprise is an operator's decision, and then no longer self-service.
    app.set_tier(&org, "enterprise").await;
    let managed = change_tier(&app, &org, &ada, "pro").await;
    managed.assert_problem(StatusCode::CONFLICT, "subscription_managed");
    let audit = app.get(&org_path(&org, "/audit-events"), &ada.token).await;
    let changes: Vec<_> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "subscription.changed")
        .map(|e| (e["details"]["to"].clone(), e["details"]["via"].clone()))
        .collect();
    assert_eq!(
        changes[..2],
        [
            (json!("enterprise"), json!("operator")),
            (json!("individual"), json!("api"))
        ]
    );
}

async fn twenty_simultaneous_connects_to_an_individual_org_with_five_accounts_leave_six(
    app: TestApp,
) {
    let ada = app.sign_up("Ada").await;
    let org = app.create_org_on(&ada, "Race", "individual").await;
    for _ in 0..5 {
        assert_eq!(
            connect_manually(&app, &org, &ada).await.status,
            StatusCode::CREATED
        );
    }
    let results =
        futures::future::join_all((0..20).map(|_| connect_manually(&app, &org, &ada))).await;
    let created = results
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    for r in results.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_plan_limit(r, "cloudAccounts", (6, 6), "individual", "pro");
    }
    assert_eq!(created, 1);
    let listed = app
        .get(&org_path(&org, "/cloud-accounts"), &ada.token)
        .await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 6);
}

async fn api_keys_reach_only_organizations_whose_plan_includes_api_access(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let org = app.create_org(&ada, "Keys").await;
    let key = app
        .post("/v1/me/api-keys", &ada.token, json!({"name": "cli"}))
        .await;
    let key = key.body["token"].as_str().unwrap().to_string();
    let refused = app.get(&org_path(&org, "/cloud-accounts"), &key).await;
    refused.assert_problem(StatusCode::FORBIDDEN, "feature_not_in_plan");
    assert_eq!(refused.body["feature"], "api_access");
    assert_eq!(refused.body["requiredTier"], "individual");
    // Outside organizations, and with a session, nothing changes.
    assert_eq!(app.get("/v1/me", &key).await.status, StatusCode::OK);
    assert_eq!(
        app.get(&org_path(&org, "/cloud-accounts"), &ada.token)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        change_tier(&app, &org, &ada, "individual").await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get(&org_path(&org, "/cloud-accounts"), &key)
            .await
            .status,
        StatusCode::OK
    );
}

async fn history_beyond_the_plan_retention_is_not_served_and_is_purged(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let free = app.create_org(&ada, "Forgetful").await;
    let pro = app.create_org_on(&ada, "Keeper", "pro").await;
    for org in [&free, &pro] {
        let renamed = app
            .call(
                Method::PATCH,
                &org_path(org, ""),
                Some(&ada.token),
                Some(json!({"name": "Old news"})),
            )
            .await;
        assert_eq!(renamed.status, StatusCode::OK);
    }
    app.clock.advance(Duration::days(31));
    let ada = app.log_in(&ada).await;
    let actions = |resp: &canopy_e2e::Response| -> Vec<String> {
        resp.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_string())
            .collect()
    };
    let served = app.get(&org_path(&free, "/audit-events"), &ada.token).await;
    assert!(actions(&served).is_empty(), "{:?}", actions(&served));
    let kept = app.get(&org_path(&pro, "/audit-events"), &ada.token).await;
    assert!(actions(&kept).contains(&"organization.updated".to_string()));

    let billing = canopy_app::bootstrap::billing_service(&app.store, app.clock.clone());
    let report = canopy_app::admin::purge_history(&billing).await.unwrap();
    assert!(report.contains("purged 3 audit event(s)"), "{report}");
    // Upgrading does not bring purged history back; Pro's year is untouched.
    assert_eq!(
        change_tier(&app, &free, &ada, "pro").await.status,
        StatusCode::OK
    );
    let after = app.get(&org_path(&free, "/audit-events"), &ada.token).await;
    assert_eq!(actions(&after), ["subscription.changed"]);
    let kept = app.get(&org_path(&pro, "/audit-events"), &ada.token).await;
    assert!(actions(&kept).contains(&"organization.updated".to_string()));
}

async fn legacy_tiers_migrate_by_account_count_dry_run_then_real(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let mut orgs = vec![];
    for (name, tier, accounts) in [
        ("Scanner", "free_scan", 1),
        ("Small", "subscriber", 3),
        ("Big", "subscriber", 8),
        ("Corp", "enterprise", 2),
        ("Large", "subscriber", 30),
    ] {
        let org = app.create_org_on(&ada, name, "enterprise").await;
        for _ in 0..accounts {
            assert_eq!(
                connect_manually(&app, &org, &ada).await.status,
                StatusCode::CREATED
            );
        }
        app.set_stored_tier(&org, tier).await;
        orgs.push(org);
    }
    let before = app
        .get(&org_path(&orgs[2], "/subscription"), &ada.token)
        .await;
    assert_eq!(before.body["tier"], "subscriber");
    assert_eq!(before.body["terms"]["pricing"], "per_account");
    assert_eq!(before.body["terms"]["pricePerAccountCents"], 900);

    let billing = canopy_app::bootstrap::billing_service(&app.store, app.clock.clone());
    let dry = canopy_app::admin::migrate_legacy_tiers(&billing, true)
        .await
        .unwrap();
    assert!(dry.contains("4 subscription(s) would move"), "{dry}");
    assert!(dry.contains("$72.00"), "{dry}");
    let unchanged = app
        .get(&org_path(&orgs[2], "/subscription"), &ada.token)
        .await;
    assert_eq!(
        unchanged.body["tier"], "subscriber",
        "a dry run changes nothing"
    );

    let real = canopy_app::admin::migrate_legacy_tiers(&billing, false)
        .await
        .unwrap();
    assert!(real.contains("4 subscription(s) migrated"), "{real}");
    let tier = |i: usize| {
        let (app, ada, org) = (&app, &ada, orgs[i].clone());
        async move {
            app.get(&org_path(&org, "/subscription"), &ada.token)
                .await
                .body
        }
    };
    assert_eq!(tier(0).await["tier"], "free");
    assert_eq!(tier(1).await["tier"], "individual");
    assert_eq!(tier(3).await["tier"], "enterprise");
    // 30 accounts paid $270 a month: Pro's $250 at once, no grace at the higher old rate.
    let large = tier(4).await;
    assert_eq!(large["tier"], "pro");
    assert!(large.get("grace").is_none(), "{large}");
    assert_eq!(large["terms"]["priceMonthlyCents"], 25_000);
    let big = tier(2).await;
    assert_eq!(big["tier"], "pro");
    assert_eq!(big["grace"]["legacyTier"], "subscriber");
    let until: DateTime<Utc> = big["grace"]["until"].as_str().unwrap().parse().unwrap();
    let days = (until - canopy_kernel::Clock::now(app.clock.as_ref())).num_days();
    assert!(
        (89..=92).contains(&days),
        "three calendar months: {days} days"
    );
    // During grace the old limits and rate apply: $9 per account, no account cap, the old
    // team size, no org features; a refusal names the plan whose limits apply.
    assert_eq!(big["terms"]["pricing"], "per_account");
    assert_eq!(big["terms"]["pricePerAccountCents"], 900);
    assert!(big["terms"]["limits"]["maxAccounts"].is_null());
    assert_eq!(big["terms"]["features"]["org_features"], false);
    let invite = |token: String, n: usize| {
        let (app, org) = (&app, orgs[2].clone());
        async move {
            app.post(
                &org_path(&org, "/invitations"),
                &token,
                json!({"email": format!("grace{n}@example.com"), "role": "member"}),
            )
            .await
        }
    };
    for n in 0..2 {
        let invited = invite(ada.token.clone(), n).await;
        assert_eq!(invited.status, StatusCode::CREATED);
    }
    let refused = invite(ada.token.clone(), 2).await;
    assert_plan_limit(&refused, "teamMembers", (3, 3), "subscriber", "pro");
    let audit = app
        .get(&org_path(&orgs[2], "/audit-events"), &ada.token)
        .await;
    let migrated = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "subscription.migrated")
        .unwrap();
    assert!(migrated["actorId"].is_null());
    assert_eq!(migrated["details"]["from"], "subscriber");
    let again = canopy_app::admin::migrate_legacy_tiers(&billing, false)
        .await
        .unwrap();
    assert!(again.contains("nothing to migrate"), "{again}");

    // After the grace period, Pro's own terms.
    app.clock.advance(Duration::days(93));
    let ada = app.log_in(&ada).await;
    let after: Value = app
        .get(&org_path(&orgs[2], "/subscription"), &ada.token)
        .await
        .body;
    assert!(after["grace"].is_null());
    assert_eq!(after["terms"]["priceMonthlyCents"], 25_000);
    assert_eq!(after["terms"]["limits"]["maxAccounts"], 500);
    assert_eq!(after["terms"]["features"]["org_features"], true);
    for n in 2..5 {
        let invited = invite(ada.token.clone(), n).await;
        assert_eq!(invited.status, StatusCode::CREATED, "Pro's ten seats");
    }
}

on_both_backends!(
    a_new_organization_is_free_and_its_meters_say_so,
    every_connect_flow_stops_at_the_account_limit_and_works_after_upgrade,
    inviting_and_accepting_stop_at_the_team_limit,
    a_downgrade_that_does_not_fit_is_refused_with_what_exceeds,
    twenty_simultaneous_connects_to_an_individual_org_with_five_accounts_leave_six,
    api_keys_reach_only_organizations_whose_plan_includes_api_access,
    history_beyond_the_plan_retention_is_not_served_and_is_purged,
    legacy_tiers_migrate_by_account_count_dry_run_then_real,
);
