//! Cloud accounts over HTTP: manual connection, validation, conflicts (same and other
//! organization, also concurrent), edits, disconnection with confirmation, External ID
//! rotation, and verification (sync) against STS answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::{
    Options, TestApp, aws_account_body, moto_url, on_both_backends, random_aws_account,
};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn manual_connect_list_edit_and_disconnect(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let org = app.create_org_on(&ada, "Acme", "pro").await;
    let base = format!("/v1/organizations/{org}");

    let instructions = app
        .get(&format!("{base}/connection-instructions"), &ada.token)
        .await;
    assert_eq!(instructions.status, StatusCode::OK, "{}", instructions.body);
    let external_id = instructions.body["externalId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(external_id.starts_with("cnp-"));
    assert_eq!(
        instructions.body["trustPolicy"]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        external_id.as_str()
    );
    // What a whole AWS Organization's roles and a GCP service account need.
    assert_eq!(
        instructions.body["managementRolePolicy"]["Statement"][0]["Action"],
        json!(["organizations:Describe*", "organizations:List*"])
    );
    assert_eq!(instructions.body["memberRoleName"], "CanopyAccess");
    assert!(
        instructions.body["gcpOrganizationRoles"]
            .as_array()
            .unwrap()
            .contains(&json!("roles/browser"))
    );

    let bad = app
        .post(
            &format!("{base}/cloud-accounts"),
            &ada.token,
            json!({"provider": "aws", "accountId": "1234", "roleArn": "arn:aws:iam::999999999999:role/X",
                   "region": "atlantis-1", "sesDomains": ["bad domain"]}),
        )
        .await;
    bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["accountId", "region", "sesDomains.0"]);

    let prod_id = random_aws_account();
    let prod = app
        .post(
            &format!("{base}/cloud-accounts"),
            &ada.token,
            aws_account_body(&prod_id),
        )
        .await;
    assert_eq!(prod.status, StatusCode::CREATED, "{}", prod.body);
    assert_eq!(prod.body["accountId"], prod_id.as_str());
    // Nothing was verified yet: pending until a check reaches the account, and it says so.
    assert_eq!(prod.body["status"], "pending");
    assert!(
        prod.body["statusDetail"]
            .as_str()
            .is_some_and(|d| d.contains("not verified")),
        "{}",
        prod.body
    );
    let prod_uuid = prod.body["id"].as_str().unwrap().to_string();
    let mut staging_body = aws_account_body(&random_aws_account());
    staging_body["environment"] = json!("staging");
    staging_body["tags"] = json!({"team": "web"});
    staging_body["region"] = json!("eu-west-1");
    let staging = app
        .post(&format!("{base}/cloud-accounts"), &ada.token, staging_body)
        .await;
    assert_eq!(staging.status, StatusCode::CREATED);
    let gcp = app
        .post(
            &format!("{base}/cloud-accounts"),
            &ada.token,
            json!({"provider": "gcp", "projectId": format!("acme-{}", &prod_id[..6]), "alias": "Analytics"}),
        )
        .await;
    assert_eq!(gcp.status, StatusCode::CREATED, "{}", gcp.body);

    let list = app.get(&format!("{base}/cloud-accounts"), &ada.token).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 3);
    let filtered = app
        .get(
            &format!("{base}/cloud-accounts?environment=staging"),
            &ada.token,
        )
        .await;
    assert_eq!(filtered.body["items"][0]["id"], staging.body["id"]);
    let tagged = app
        .get(&format!("{base}/cloud-accounts?tag=team:email"), &ada.token)
        .await;
    assert_eq!(tagged.body["items"].as_array().unwrap().len(), 1);
    let gcp_only = app
        .get(&format!("{base}/cloud-accounts?provider=gcp"), &ada.token)
        .await;
    assert_eq!(gcp_only.body["items"][0]["displayName"], "Analytics");
    app.get(&format!("{base}/cloud-accounts?status=sleepy"), &ada.token)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let edited = app
        .call(
            Method::PATCH,
            &format!("{base}/cloud-accounts/{prod_uuid}"),
            Some(&ada.token),
            Some(json!({"alias": "Production", "environment": null, "tags": {"tier": "gold"}, "region": "us-west-2",
                        "features": {"sendingEnabled": true}})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.body["alias"], "Production");
    assert_eq!(edited.body["environment"], serde_json::Value::Null);
    assert_eq!(edited.body["region"], "us-west-2");
    assert_eq!(edited.body["features"]["sendingEnabled"], true);
    let wrong_role = app
        .call(
            Method::PATCH,
            &format!("{base}/cloud-accounts/{prod_uuid}"),
            Some(&ada.token),
            Some(json!({"roleArn": "arn:aws:iam::111111111111:role/Other"})),
        )
        .await;
    wrong_role.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(wrong_role.body["errors"][0]["rule"], "account_mismatch");

    let unconfirmed = app
        .call(
            Method::DELETE,
            &format!("{base}/cloud-accounts/{prod_uuid}"),
            Some(&ada.token),
            None,
        )
        .await;
    unconfirmed.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let removed = app
        .call(
            Method::DELETE,
            &format!("{base}/cloud-accounts/{prod_uuid}?confirmAccountId={prod_id}"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    app.get(&format!("{base}/cloud-accounts/{prod_uuid}"), &ada.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    let audit = app.get(&format!("{base}/audit-events"), &ada.token).await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        &actions[..5],
        [
            "cloud_account.disconnected",
            "cloud_account.updated",
            "cloud_account.connected",
            "cloud_account.connected",
            "cloud_account.connected"
        ]
    );
}

async fn one_account_belongs_to_one_organization(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let eve = app.sign_up("Eve").await;
    let acme = app.create_org_on(&ada, "Acme", "pro").await;
    let evil = app.create_org(&eve, "Evil").await;
    let account = random_aws_account();
    let first = app
        .post(
            &format!("/v1/organizations/{acme}/cloud-accounts"),
            &ada.token,
            aws_account_body(&account),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = app
        .post(
            &format!("/v1/organizations/{acme}/cloud-accounts"),
            &ada.token,
            aws_account_body(&account),
        )
        .await;
    again.assert_problem(StatusCode::CONFLICT, "cloud_account_already_connected");
    let stolen = app
        .post(
            &format!("/v1/organizations/{evil}/cloud-accounts"),
            &eve.token,
            aws_account_body(&account),
        )
        .await;
    stolen.assert_problem(StatusCode::CONFLICT, "cloud_account_connected_elsewhere");
    let text = stolen.body.to_string();
    assert!(
        !text.contains(&acme) && !text.contains("Acme"),
        "nothing about the holder leaks: {text}"
    );
    // The other tenant cannot read it by id either.
    let id = first.body["id"].as_str().unwrap();
    app.get(
        &format!("/v1/organizations/{evil}/cloud-accounts/{id}"),
        &eve.token,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");

    // Ten simultaneous connects of a new account in one organization create exactly one.
    let fresh = random_aws_account();
    let path = format!("/v1/organizations/{acme}/cloud-accounts");
    let results = futures::future::join_all(
        (0..10).map(|_| app.post(&path, &ada.token, aws_account_body(&fresh))),
    )
    .await;
    let created = results
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let conflicts = results
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 9));
}

async fn external_id_rotation_keeps_history(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let org = app.create_org_on(&ada, "Rotator", "pro").await;
    let first = app
        .get(
            &format!("/v1/organizations/{org}/connection-instructions"),
            &ada.token,
        )
        .await;
    let rotated = app
        .post(
            &format!("/v1/organizations/{org}/external-id/rotate"),
            &ada.token,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert_ne!(rotated.body["value"], first.body["externalId"]);
    let now = app
        .get(
            &format!("/v1/organizations/{org}/connection-instructions"),
            &ada.token,
        )
        .await;
    assert_eq!(now.body["externalId"], rotated.body["value"]);
    let history = app
        .get(&format!("/v1/organizations/{org}/external-ids"), &ada.token)
        .await;
    let items = history.body.as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items[0]["retiredAt"].is_null() && items[1]["retiredAt"].is_string());
}

/// Without a cloud organization's key or Canopy's own Google identity there is nothing to
/// read a project with: the check says so (the operator's problem, not the customer's).
async fn a_gcp_project_on_its_own_needs_canopys_google_identity(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let org = app.create_org_on(&ada, "Gcp", "pro").await;
    let project = app
        .post(
            &format!("/v1/organizations/{org}/cloud-accounts"),
            &ada.token,
            json!({"provider": "gcp", "projectId": format!("p-{}", &random_aws_account()[..8])}),
        )
        .await;
    let id = project.body["id"].as_str().unwrap();
    let sync = app
        .post(
            &format!("/v1/organizations/{org}/cloud-accounts/{id}/sync"),
            &ada.token,
            json!({}),
        )
        .await;
    assert_eq!(sync.status, StatusCode::OK, "{}", sync.body);
    assert_eq!(sync.body["check"]["ok"], false);
    assert_eq!(sync.body["check"]["failure"], "canopy_credentials");
    assert!(
        sync.body["check"]["message"]
            .as_str()
            .unwrap()
            .contains("CANOPY_GCP_CREDENTIALS_FILE"),
        "{}",
        sync.body
    );
}

async fn web_initiated_connect_token_is_single_use_and_expires(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let org = app.create_org_on(&ada, "Tokens", "pro").await;
    let issued = app
        .post(
            &format!("/v1/organizations/{org}/connect-tokens"),
            &ada.token,
            json!({}),
        )
        .await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
    let token = issued.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        issued.body["command"],
        format!("canopy connect --token {token} --api-url http://localhost:8080")
    );

    let connect = |token: String, account: String| {
        app.call(
            Method::POST,
            "/v1/connect",
            None,
            Some(json!({"token": token, "account": aws_account_body(&account)})),
        )
    };
    // Bad details are refused and leave the token usable.
    let bad = app
        .call(
            Method::POST,
            "/v1/connect",
            None,
            Some(json!({"token": token, "account": {"provider": "aws", "accountId": "x"}})),
        )
        .await;
    bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // Five simultaneous uses of one token create one account.
    let results =
        futures::future::join_all((0..5).map(|_| connect(token.clone(), random_aws_account())))
            .await;
    let created: Vec<_> = results
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    assert_eq!(
        created.len(),
        1,
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.status != StatusCode::CREATED) {
        r.assert_problem(StatusCode::CONFLICT, "connection_token_used");
    }
    let listed = app
        .get(
            &format!("/v1/organizations/{org}/cloud-accounts"),
            &ada.token,
        )
        .await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["items"][0]["createdBy"], ada.user_id.as_str());

    // A conflict leaves the token usable: it is consumed only with the account it creates.
    let existing = listed.body["items"][0]["accountId"]
        .as_str()
        .unwrap()
        .to_string();
    let retry = app
        .post(
            &format!("/v1/organizations/{org}/connect-tokens"),
            &ada.token,
            json!({}),
        )
        .await;
    let retry_token = retry.body["token"].as_str().unwrap().to_string();
    connect(retry_token.clone(), existing)
        .await
        .assert_problem(StatusCode::CONFLICT, "cloud_account_already_connected");
    assert_eq!(
        connect(retry_token, random_aws_account()).await.status,
        StatusCode::CREATED
    );

    connect("cnp_conn_not-a-real-token".into(), random_aws_account())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "connection_token_unknown");
    let late = app
        .post(
            &format!("/v1/organizations/{org}/connect-tokens"),
            &ada.token,
            json!({}),
        )
        .await;
    app.clock.advance(chrono::Duration::minutes(11));
    connect(
        late.body["token"].as_str().unwrap().into(),
        random_aws_account(),
    )
    .await
    .assert_problem(StatusCode::GONE, "connection_token_expired");
}

async fn cli_initiated_request_is_previewed_and_confirmed_by_an_admin(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let member = app.sign_up("Mia").await;
    let eve = app.sign_up("Eve").await;
    let org = app.create_org_on(&ada, "Requests", "pro").await;
    app.add_member(&org, &ada, &member, "member").await;
    let account = random_aws_account();
    let path = format!("/v1/organizations/{org}/connection-requests");
    app.post(
        &path,
        &ada.token,
        json!({"provider": "aws", "accountId": "nope"}),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let request = app
        .post(&path, &ada.token, aws_account_body(&account))
        .await;
    assert_eq!(request.status, StatusCode::CREATED, "{}", request.body);
    let token = request.body["token"].as_str().unwrap().to_string();
    assert!(
        request.body["confirmUrl"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/connect?token={token}"))
    );

    let preview_path = format!("/v1/connection-requests/{token}");
    app.get(&preview_path, &eve.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "connection_token_unknown");
    app.get(&preview_path, &member.token)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.post(&format!("{preview_path}/confirm"), &eve.token, json!({}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "connection_token_unknown");
    let preview = app.get(&preview_path, &ada.token).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.body["organizationName"], "Requests");
    assert_eq!(preview.body["accountId"], account.as_str());
    assert_eq!(preview.body["status"], "pending");

    let confirmed = app
        .post(&format!("{preview_path}/confirm"), &ada.token, json!({}))
        .await;
    assert_eq!(confirmed.status, StatusCode::CREATED, "{}", confirmed.body);
    assert_eq!(confirmed.body["accountId"], account.as_str());
    app.post(&format!("{preview_path}/confirm"), &ada.token, json!({}))
        .await
        .assert_problem(StatusCode::CONFLICT, "connection_token_used");
    let after = app.get(&preview_path, &ada.token).await;
    assert_eq!(after.body["status"], "used");
    assert_eq!(after.body["cloudAccountId"], confirmed.body["id"]);

    let second = app
        .post(&path, &ada.token, aws_account_body(&random_aws_account()))
        .await;
    let second_token = second.body["token"].as_str().unwrap();
    let cancel = app
        .post(
            &format!("/v1/connection-requests/{second_token}/cancel"),
            &ada.token,
            json!({}),
        )
        .await;
    assert_eq!(cancel.status, StatusCode::NO_CONTENT);
    app.post(
        &format!("/v1/connection-requests/{second_token}/confirm"),
        &ada.token,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "connection_token_cancelled");

    let third = app
        .post(&path, &ada.token, aws_account_body(&random_aws_account()))
        .await;
    let third_token = third.body["token"].as_str().unwrap();
    app.clock.advance(chrono::Duration::minutes(10));
    assert_eq!(
        app.get(
            &format!("/v1/connection-requests/{third_token}"),
            &ada.token
        )
        .await
        .body["expired"],
        true
    );
    app.post(
        &format!("/v1/connection-requests/{third_token}/confirm"),
        &ada.token,
        json!({}),
    )
    .await
    .assert_problem(StatusCode::GONE, "connection_token_expired");
}

on_both_backends!(
    web_initiated_connect_token_is_single_use_and_expires,
    cli_initiated_request_is_previewed_and_confirmed_by_an_admin,
    manual_connect_list_edit_and_disconnect,
    one_account_belongs_to_one_organization,
    external_id_rotation_keeps_history,
    a_gcp_project_on_its_own_needs_canopys_google_identity,
);

async fn refusing_sts() -> String {
    canopy_aws::testing::canned_sts(403, canopy_aws::testing::ACCESS_DENIED)
        .await
        .unwrap()
}

/// Starts an app whose STS calls go to `sts`, connects one AWS account and syncs it.
/// Returns the sync answer and the account's health timeline.
async fn connect_and_sync(sts: String) -> (serde_json::Value, serde_json::Value) {
    let app = TestApp::start_with(
        "sqlite",
        Options {
            aws_endpoint_url: sts,
            ..Options::default()
        },
    )
    .await;
    let ada = app.sign_up("Ada").await;
    let org = app.create_org_on(&ada, "Sync", "pro").await;
    let base = format!("/v1/organizations/{org}/cloud-accounts");
    let account = app
        .post(&base, &ada.token, aws_account_body(&random_aws_account()))
        .await;
    let id = account.body["id"].as_str().unwrap();
    let sync = app
        .post(&format!("{base}/{id}/sync"), &ada.token, json!({}))
        .await;
    assert_eq!(sync.status, StatusCode::OK, "{}", sync.body);
    let health = app.get(&format!("{base}/{id}/health"), &ada.token).await;
    (sync.body, health.body)
}

#[tokio::test]
async fn a_refused_role_marks_the_account_in_error_with_a_health_timeline() {
    let (sync, health) = connect_and_sync(refusing_sts().await).await;
    assert_eq!(sync["check"]["ok"], false);
    assert_eq!(sync["check"]["failure"], "access_denied");
    assert_eq!(sync["account"]["status"], "error");
    assert!(
        sync["account"]["lastError"]
            .as_str()
            .unwrap()
            .contains("External ID")
    );
    assert_eq!(health.as_array().unwrap().len(), 1);
    assert_eq!(health[0]["failure"], "access_denied");
}

#[tokio::test]
#[ignore = "needs moto"]
async fn sync_assumes_the_role_through_moto_and_marks_the_account_active() {
    let (sync, health) = connect_and_sync(moto_url()).await;
    assert_eq!(sync["check"]["ok"], true, "{sync}");
    assert_eq!(sync["account"]["status"], "active");
    assert!(sync["account"]["lastSyncedAt"].is_string());
    assert_eq!(health[0]["ok"], true);
}
