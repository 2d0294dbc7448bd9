//! The document and the wire agree: what the OpenAPI document declares is what the server
//! accepts and answers. Each test here is a defect found by trying the API from outside
//! (schema fuzzing, hand-made inputs), and failed before its fix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::{Options, TestApp, aws_account_body, on_both_backends, random_aws_account};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn rules(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or_default().to_string(),
                        e["rule"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every `null` in a response body: the document declares no nullable response field.
fn nulls(value: &Value, at: &str, found: &mut Vec<String>) {
    match value {
        Value::Null => found.push(at.to_string()),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                nulls(v, &format!("{at}[{i}]"), found);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                nulls(v, &format!("{at}.{k}"), found);
            }
        }
        _ => {}
    }
}

async fn json_types_are_not_coerced_and_null_is_refused_where_not_declared(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let created = app
        .post("/v1/organizations", &ada.token, json!({"name": false}))
        .await;
    created.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(rules(&created.body), [("name".into(), "type".into())]);
    let numbered = app
        .post("/v1/organizations", &ada.token, json!({"name": 42}))
        .await;
    assert_eq!(numbered.status, StatusCode::UNPROCESSABLE_ENTITY);
    let listed = app.get("/v1/organizations", &ada.token).await;
    assert_eq!(
        listed.body.as_array().unwrap().len(),
        1,
        "nothing named \"false\" or \"42\" was created: {}",
        listed.body
    );

    let org = app.create_org(&ada, "Acme").await;
    let path = format!("/v1/organizations/{org}");
    let null_name = app
        .call(
            Method::PATCH,
            &path,
            Some(&ada.token),
            Some(json!({"name": null})),
        )
        .await;
    null_name.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(rules(&null_name.body), [("name".into(), "type".into())]);
    // The logo is declared nullable: null clears it.
    let set = app
        .call(
            Method::PATCH,
            &path,
            Some(&ada.token),
            Some(json!({"logo": "https://acme.example/logo.png"})),
        )
        .await;
    assert_eq!(set.body["logo"], "https://acme.example/logo.png");
    let cleared = app
        .call(
            Method::PATCH,
            &path,
            Some(&ada.token),
            Some(json!({"logo": null})),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
    assert!(cleared.body.get("logo").is_none(), "{}", cleared.body);
}

async fn control_characters_are_refused_on_every_text_input_and_store_nothing(app: TestApp) {
    let ada = app.sign_up("Ada").await;
    let org = app.create_org_on(&ada, "Acme", "pro").await;
    let base = format!("/v1/organizations/{org}");

    // A control character anywhere is refused before anything is looked up, naming where.
    let nul_path = app.get("/v1/organizations/a%00b", &ada.token).await;
    nul_path.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        rules(&nul_path.body),
        [("org".into(), "control_characters".into())]
    );
    let active = app
        .put(
            "/v1/me/active-organization",
            &ada.token,
            json!({"organization": "x\u{0}"}),
        )
        .await;
    active.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        rules(&active.body),
        [("organization".into(), "control_characters".into())]
    );

    for (body, field) in [
        (json!({"metadata": {"k\u{0}": "v"}}), "metadata"),
        (json!({"metadata": {"k": ["ok", "v\u{0}"]}}), "metadata.k.1"),
        (json!({"logo": "https://x.example/\u{0}"}), "logo"),
        (json!({"name": "Ac\u{0}me"}), "name"),
    ] {
        let refused = app
            .call(Method::PATCH, &base, Some(&ada.token), Some(body.clone()))
            .await;
        refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            rules(&refused.body).iter().any(|(f, _)| f == field),
            "{body}: {}",
            refused.body
        );
    }
    let unchanged = app.get(&base, &ada.token).await;
    assert_eq!(unchanged.body["organization"]["name"], "Acme");
    assert_eq!(unchanged.body["organization"]["metadata"], json!({}));

    let account = random_aws_account();
    for (tags, field) in [
        (json!({"te\u{0}am": "email"}), "tags"),
        (json!({"team": "em\u{0}ail"}), "tags.team"),
    ] {
        let mut body = aws_account_body(&account);
        body["tags"] = tags;
        let refused = app
            .post(&format!("{base}/cloud-accounts"), &ada.token, body)
            .await;
        refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            rules(&refused.body).iter().any(|(f, _)| f == field),
            "{}",
            refused.body
        );
    }
    let listed = app.get(&format!("{base}/cloud-accounts"), &ada.token).await;
    assert_eq!(listed.body["items"], json!([]), "nothing was connected");

    let connected = app
        .post(
            &format!("{base}/cloud-accounts"),
            &ada.token,
            aws_account_body(&account),
        )
        .await;
    assert_eq!(connected.status, StatusCode::CREATED, "{}", connected.body);
    let id = connected.body["id"].as_str().unwrap();
    let account_path = format!("{base}/cloud-accounts/{id}");
    for (body, field) in [
        (json!({"alias": "Prod\u{0}"}), "alias"),
        (json!({"alias": "Prod\u{7}uction"}), "alias"),
        (json!({"tags": {"k": "v\u{0}"}}), "tags.k"),
        (json!({"tags": {"k\u{0}": "v"}}), "tags"),
    ] {
        let refused = app
            .call(
                Method::PATCH,
                &account_path,
                Some(&ada.token),
                Some(body.clone()),
            )
            .await;
        refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            rules(&refused.body).iter().any(|(f, _)| f == field),
            "{body}: {}",
            refused.body
        );
    }
    let still = app.get(&account_path, &ada.token).await;
    assert_eq!(still.body["alias"], format!("Account {account}"));
    assert_eq!(still.body["tags"], json!({"team": "email"}));

    let filtered = app
        .get(&format!("{base}/cloud-accounts?tag=team%00"), &ada.token)
        .await;
    filtered.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        rules(&filtered.body),
        [("tag".into(), "control_characters".into())]
    );
}

async fn problems_carry_only_what_the_schema_declares_and_responses_hold_no_null(app: TestApp) {
    let document: Value = serde_json::from_str(&canopy_app::openapi_json()).unwrap();
    let required: Vec<&str> = document["components"]["schemas"]["Problem"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let unauthenticated = app.call(Method::GET, "/v1/me", None, None).await;
    unauthenticated.assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    for field in &required {
        assert!(
            unauthenticated.body.get(*field).is_some(),
            "a 401 lacks the required {field}: {}",
            unauthenticated.body
        );
    }

    let ada = app.sign_up("Ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let key = app
        .post("/v1/me/api-keys", &ada.token, json!({"name": "laptop"}))
        .await;
    let mut found = vec![];
    for path in [
        "/v1/me".to_string(),
        "/v1/organizations".to_string(),
        format!("/v1/organizations/{org}"),
        "/v1/me/api-keys".to_string(),
        format!("/v1/organizations/{org}/external-ids"),
        format!("/v1/organizations/{org}/usage"),
    ] {
        let resp = app.get(&path, &ada.token).await;
        assert_eq!(resp.status, StatusCode::OK, "{path}: {}", resp.body);
        nulls(&resp.body, &path, &mut found);
    }
    nulls(&key.body, "POST /v1/me/api-keys", &mut found);
    assert!(
        found.is_empty(),
        "null where the document declares none: {found:#?}"
    );
}

async fn statuses_the_document_promises_and_headers_rfc_9110_asks_for(app: TestApp) {
    let document: Value = serde_json::from_str(&canopy_app::openapi_json()).unwrap();
    let signup = &document["paths"]["/v1/auth/signup"]["post"]["responses"];
    assert!(signup.get("415").is_some(), "415 is documented");
    assert!(signup.get("503").is_some(), "503 is documented");

    let url = format!("{}/v1/auth/signup", app.server.url());
    let plain = app
        .http
        .post(&url)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let wrong_method = app
        .call(Method::DELETE, "/v1/auth/signup", None, None)
        .await;
    wrong_method.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(
        wrong_method
            .headers
            .get("allow")
            .and_then(|v| v.to_str().ok()),
        Some("POST")
    );

    // A client that accepts only application/json (as generated clients do) gets the
    // problem in that media type, with the same body.
    let json_only = app
        .http
        .get(format!("{}/v1/me", app.server.url()))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(json_only.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_only.headers()["content-type"], "application/json");

    let root = app
        .http
        .get(format!("{}/", app.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), StatusCode::OK);
    assert_eq!(
        root.url().path(),
        "/login",
        "GET / opens the console, which asks a stranger to log in"
    );
    let docs = app
        .http
        .get(format!("{}/docs", app.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        docs.status(),
        StatusCode::OK,
        "the API reference stays at /docs"
    );
}

async fn the_document_publishes_the_rules_the_server_enforces(app: TestApp) {
    let document: Value = serde_json::from_str(&canopy_app::openapi_json()).unwrap();
    let schemas = &document["components"]["schemas"];
    let create = &schemas["CreateOrganizationRequest"]["properties"];
    assert_eq!(create["name"]["maxLength"], 100);
    assert_eq!(create["slug"]["pattern"], canopy_tenancy::Slug::PATTERN);
    assert_eq!(create["slug"]["minLength"], 3);
    let connect = &schemas["ConnectAccountRequest"]["properties"];
    assert_eq!(
        connect["roleArn"]["pattern"],
        canopy_cloud_org::identifiers::RoleArn::PATTERN
    );
    assert_eq!(
        connect["provider"]["$ref"],
        "#/components/schemas/ProviderDto"
    );
    let limit = document["paths"]["/v1/organizations/{org}/members"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()
        .clone();
    assert_eq!(
        (
            limit["schema"]["minimum"].as_f64(),
            limit["schema"]["maximum"].as_f64()
        ),
        (Some(1.0), Some(200.0))
    );

    // And the server holds requests to them: a limit out of range is a 422 naming it.
    let ada = app.sign_up("Ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let over = app
        .get(
            &format!("/v1/organizations/{org}/members?limit=201"),
            &ada.token,
        )
        .await;
    over.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(rules(&over.body), [("limit".into(), "range".into())]);
}

/// Waiting the advertised `Retry-After` is enough: 40 attempts a minute free one every 1.5 s,
/// which a rounded-down header advertised as 1.
async fn waiting_the_advertised_retry_after_is_enough(backend: &str) {
    let app = TestApp::start_with(
        backend,
        Options {
            auth_rate_per_minute: 40,
            ..Options::default()
        },
    )
    .await;
    let attempt = || {
        app.call(
            Method::POST,
            "/v1/connect",
            None,
            Some(json!({"token": "cnp_conn_unknown", "account": aws_account_body("123456789012")})),
        )
    };
    let mut limited = None;
    for _ in 0..60 {
        let resp = attempt().await;
        if resp.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(resp);
            break;
        }
    }
    let limited = limited.expect("the burst is rate limited");
    let wait: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 2, "1.5 s rounds up to 2, got {wait}");
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    let after = attempt().await;
    assert_ne!(
        after.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        after.body
    );
}

on_both_backends!(
    json_types_are_not_coerced_and_null_is_refused_where_not_declared,
    control_characters_are_refused_on_every_text_input_and_store_nothing,
    problems_carry_only_what_the_schema_declares_and_responses_hold_no_null,
    statuses_the_document_promises_and_headers_rfc_9110_asks_for,
    the_document_publishes_the_rules_the_server_enforces,
);

mod retry_after {
    use super::waiting_the_advertised_retry_after_is_enough;
    canopy_e2e::on_both_backends!(by_name; waiting_the_advertised_retry_after_is_enough);
}
