//! Every org-scoped endpoint tried as owner, admin, member, non-member and anonymous, each on
//! a fresh organization so one role's success cannot change what the next one sees. Also a
//! member of another organization using this organization's object ids under their own org.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::{Session, TestApp, aws_account_body, on_both_backends, random_aws_account};
use canopy_jobs::{JobKind, JobStore, NewJob};
use canopy_kernel::Clock;
use canopy_kernel::id::OrganizationId;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Fixture {
    org: String,
    owner: Session,
    admin: Session,
    member: Session,
    outsider: Session,
    outsider_org: String,
    victim: Session,
    invitation: String,
    account: String,
    account_key: String,
    job: String,
    cloud_org: String,
    detection: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Matrix", "pro").await;
    let admin = app.sign_up("Admin").await;
    let member = app.sign_up("Member").await;
    let victim = app.sign_up("Victim").await;
    app.add_member(&org, &owner, &admin, "admin").await;
    app.add_member(&org, &owner, &member, "member").await;
    app.add_member(&org, &owner, &victim, "member").await;
    let outsider = app.sign_up("Outsider").await;
    let outsider_org = app.create_org(&outsider, "Elsewhere").await;
    let inv = app
        .post(
            &format!("/v1/organizations/{org}/invitations"),
            &owner.token,
            json!({"email": "pending@example.com", "role": "member"}),
        )
        .await;
    let account_key = random_aws_account();
    let account = app
        .post(
            &format!("/v1/organizations/{org}/cloud-accounts"),
            &owner.token,
            aws_account_body(&account_key),
        )
        .await;
    assert_eq!(account.status, StatusCode::CREATED, "{}", account.body);
    // No operation queues jobs on its own yet: queue one in the store, as a domain would.
    let org_id = org.parse().unwrap();
    let job = app
        .store
        .jobs()
        .enqueue(
            NewJob::new(
                OrganizationId(org_id),
                JobKind::from_static("test.matrix"),
                None,
                json!({}),
            ),
            app.clock.now(),
        )
        .await
        .unwrap();
    let cloud_org = canopy_e2e::cloud_org::stored_cloud_org(app, &org, &owner).await;
    let detection = app
        .post(
            &format!("/v1/organizations/{org}/detections"),
            &owner.token,
            custom_detection(account.body["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(detection.status, StatusCode::CREATED, "{}", detection.body);
    Fixture {
        detection: detection.body["id"].as_str().unwrap().to_string(),
        cloud_org,
        job: job.job().id.to_string(),
        account: account.body["id"].as_str().unwrap().to_string(),
        account_key,
        org,
        owner,
        admin,
        member,
        outsider,
        outsider_org,
        victim,
        invitation: inv.body["id"].as_str().unwrap().to_string(),
    }
}

/// A custom detection on `account`: a SIEM rule on cloud sign-ins.
fn custom_detection(account: &str) -> Value {
    json!({
        "name": "SIEM: console sign-in from a new country",
        "scope": "account",
        "cloudAccountId": account,
        "techniques": [{"technique": "T1078.004", "category": "detect", "value": "partial"}],
    })
}

#[derive(Clone, Copy, Debug)]
enum Caller {
    Owner,
    Admin,
    Member,
    Outsider,
    Anonymous,
}

const CALLERS: [Caller; 5] = [
    Caller::Owner,
    Caller::Admin,
    Caller::Member,
    Caller::Outsider,
    Caller::Anonymous,
];

struct Case {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    /// Expected status for owner, admin, member, outsider, anonymous.
    expect: [u16; 5],
}

fn cases() -> Vec<Case> {
    let c = |method: Method, path: &'static str, body: Option<Value>, expect: [u16; 5]| Case {
        method,
        path,
        body,
        expect,
    };
    vec![
        c(
            Method::GET,
            "/v1/organizations/{org}",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::PATCH,
            "/v1/organizations/{org}",
            Some(json!({"name": "Renamed"})),
            [200, 200, 403, 404, 401],
        ),
        c(
            Method::DELETE,
            "/v1/organizations/{org}",
            None,
            [204, 403, 403, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/members",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::PATCH,
            "/v1/organizations/{org}/members/{victim}",
            Some(json!({"role": "admin"})),
            [200, 403, 403, 404, 401],
        ),
        c(
            Method::DELETE,
            "/v1/organizations/{org}/members/{victim}",
            None,
            [204, 204, 403, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/leave",
            None,
            [409, 204, 204, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/transfer-ownership",
            Some(json!({"userId": "{victim}"})),
            [204, 403, 403, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/invitations",
            None,
            [200, 200, 403, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/invitations",
            Some(json!({"email": "new@example.com", "role": "member"})),
            [201, 201, 403, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/invitations",
            Some(json!({"email": "boss@example.com", "role": "owner"})),
            [201, 403, 403, 404, 401],
        ),
        c(
            Method::DELETE,
            "/v1/organizations/{org}/invitations/{invitation}",
            None,
            [204, 204, 403, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/audit-events",
            None,
            [200, 200, 403, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/cloud-accounts",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/cloud-accounts",
            Some(json!("{newaccount}")),
            [201, 201, 403, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/cloud-accounts/{account}",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::PATCH,
            "/v1/organizations/{org}/cloud-accounts/{account}",
            Some(json!({"alias": "Renamed"})),
            [200, 200, 403, 404, 401],
        ),
        c(
            Method::DELETE,
            "/v1/organizations/{org}/cloud-accounts/{account}?confirmAccountId={account_key}",
            None,
            [204, 204, 403, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/cloud-accounts/{account}/sync",
            None,
            [200, 200, 403, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/cloud-accounts/{account}/health",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/connect-tokens",
            None,
            [201, 201, 403, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/connection-requests",
            Some(json!("{newaccount}")),
            [201, 201, 403, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/connection-instructions",
            None,
            [200, 200, 403, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/external-id/rotate",
            None,
            [200, 200, 403, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/external-ids",
            None,
            [200, 200, 403, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/subscription",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::PUT,
            "/v1/organizations/{org}/subscription",
            Some(json!({"tier": "pro"})),
            [200, 403, 403, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/usage",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/metrics?range=1h",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/dashboard",
            None,
            [200, 200, 200, 404, 401],
        ),
        // The role check reaches AWS, which is a closed port here: 503 `cloud_unavailable`
        // for the roles allowed to try, before which everyone else is refused.
        c(
            Method::POST,
            "/v1/organizations/{org}/cloud-organizations/aws/discover",
            Some(json!({"managementRoleArn": "arn:aws:iam::123456789012:role/Mgmt"})),
            [503, 503, 403, 404, 401],
        ),
        // A key of the right shape whose private half is not a key: refused after
        // authorization and the plan gate, before any call to Google.
        c(
            Method::POST,
            "/v1/organizations/{org}/cloud-organizations/gcp/discover",
            Some(json!({
                "organizationId": "123456789",
                "serviceAccountKey": {
                    "type": "service_account",
                    "client_email": "reader@acme.iam.gserviceaccount.com",
                    "private_key": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"
                }
            })),
            [422, 422, 403, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/cloud-organizations",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/cloud-organizations/{cloud_org}",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/cloud-organizations/{cloud_org}/hierarchy",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/cloud-organizations/{cloud_org}/members",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/cloud-organizations/{cloud_org}/changes",
            None,
            [200, 200, 200, 404, 401],
        ),
        // No member discovered in the fixture: the selection is refused after authorization.
        c(
            Method::POST,
            "/v1/organizations/{org}/cloud-organizations/{cloud_org}/members/connect",
            Some(json!({"all": true})),
            [422, 422, 403, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/cloud-organizations/{cloud_org}/members/{member}/exclude",
            Some(json!({})),
            [404, 404, 403, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/cloud-organizations/{cloud_org}/members/{member}/include",
            Some(json!({})),
            [404, 404, 403, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/cloud-organizations/{cloud_org}/sync",
            Some(json!({})),
            [202, 202, 403, 404, 401],
        ),
        // A wrong confirmation keeps the fixture: refused after authorization.
        c(
            Method::DELETE,
            "/v1/organizations/{org}/cloud-organizations/{cloud_org}?confirmCloudOrgId=o-nope",
            None,
            [422, 422, 403, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/cloud-organizations/{cloud_org}/detections",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/cloud-accounts/{account}/detections",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/detections",
            Some(json!("{newdetection}")),
            [201, 201, 403, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/detections/{detection}",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::PUT,
            "/v1/organizations/{org}/detections/{detection}",
            Some(json!("{newdetection}")),
            [200, 200, 403, 404, 401],
        ),
        c(
            Method::DELETE,
            "/v1/organizations/{org}/detections/{detection}",
            None,
            [204, 204, 403, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/cloud-organizations/{cloud_org}/scan",
            None,
            [202, 202, 403, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/cloud-organizations/{cloud_org}/scan/members",
            None,
            [202, 202, 403, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/cloud-accounts/{account}/scan",
            None,
            [202, 202, 403, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/cloud-organizations/{cloud_org}/scan-status",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/cloud-accounts/{account}/coverage",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/cloud-organizations/{cloud_org}/coverage",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/cloud-organizations/{cloud_org}/coverage/breakdown",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/cloud-accounts/{account}/coverage/history",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/cloud-organizations/{cloud_org}/coverage/history",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/coverage/navigator-layer?account={account}",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/coverage/navigator-layer?cloudOrganization={cloud_org}",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/jobs",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::GET,
            "/v1/organizations/{org}/jobs/{job}",
            None,
            [200, 200, 200, 404, 401],
        ),
        c(
            Method::POST,
            "/v1/organizations/{org}/jobs/{job}/cancel",
            None,
            [200, 200, 403, 404, 401],
        ),
        c(
            Method::PUT,
            "/v1/me/active-organization",
            Some(json!({"organization": "{org}"})),
            [200, 200, 200, 404, 401],
        ),
    ]
}

/// `METHOD /path/{}/...`: a path template with its parameter names and query left out, so the
/// document's `{id}` and a case's `{account}` compare equal.
fn shape(method: &Method, path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    format!("{method} {out}")
}

/// Every operation of the OpenAPI document that acts on one organization (its path names
/// `{org}`), plus the one that chooses the active organization.
fn org_scoped_operations() -> std::collections::BTreeSet<String> {
    let document: Value = serde_json::from_str(&canopy_app::openapi_json()).unwrap();
    let mut out = std::collections::BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        if !path.contains("{org}") && path != "/v1/me/active-organization" {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            out.insert(shape(&method, path));
        }
    }
    out
}

/// An operation added to the API without a row here fails this test, so the matrix cannot
/// silently fall behind the API again (it once missed two of 29 operations).
#[test]
fn the_matrix_covers_every_org_scoped_operation_of_the_document() {
    let documented = org_scoped_operations();
    assert!(documented.len() >= 30, "{documented:#?}");
    let covered: std::collections::BTreeSet<String> =
        cases().iter().map(|c| shape(&c.method, c.path)).collect();
    let missing: Vec<_> = documented.difference(&covered).collect();
    let unknown: Vec<_> = covered.difference(&documented).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "operations without a matrix row: {missing:#?}\nrows for no documented operation: {unknown:#?}"
    );
}

fn fill(template: &str, f: &Fixture) -> String {
    template
        .replace("{org}", &f.org)
        .replace("{account_key}", &f.account_key)
        .replace("{account}", &f.account)
        .replace("{victim}", &f.victim.user_id)
        .replace("{invitation}", &f.invitation)
        .replace("{job}", &f.job)
        .replace("{cloud_org}", &f.cloud_org)
        .replace("{detection}", &f.detection)
        // No member is discovered in the fixture: an account id that names none.
        .replace("{member}", "123456789012")
}

fn fill_json(body: &Value, f: &Fixture) -> Value {
    if body == "{newaccount}" {
        return aws_account_body(&random_aws_account());
    }
    if body == "{newdetection}" {
        return custom_detection(&f.account);
    }
    serde_json::from_str(&fill(&body.to_string(), f)).unwrap()
}

async fn every_org_endpoint_enforces_the_role_matrix(app: TestApp) {
    let mut failures = vec![];
    for case in cases() {
        for (i, caller) in CALLERS.iter().enumerate() {
            let f = fixture(&app).await;
            let token = match caller {
                Caller::Owner => Some(f.owner.token.as_str()),
                Caller::Admin => Some(f.admin.token.as_str()),
                Caller::Member => Some(f.member.token.as_str()),
                Caller::Outsider => Some(f.outsider.token.as_str()),
                Caller::Anonymous => None,
            };
            let path = fill(case.path, &f);
            let body = case.body.as_ref().map(|b| fill_json(b, &f));
            let resp = app.call(case.method.clone(), &path, token, body).await;
            if resp.status.as_u16() != case.expect[i] {
                failures.push(format!(
                    "{} {} as {caller:?}: expected {}, got {} {}",
                    case.method, case.path, case.expect[i], resp.status, resp.body
                ));
            }
            if resp.status.is_client_error() {
                assert_eq!(
                    resp.headers.get("content-type").unwrap(),
                    "application/problem+json",
                    "{} {} as {caller:?}",
                    case.method,
                    case.path
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix violations:\n{}",
        failures.join("\n")
    );
}

async fn another_tenants_ids_are_not_found_under_your_own_organization(app: TestApp) {
    let f = fixture(&app).await;
    let mine = &f.outsider_org;
    let token = f.outsider.token.as_str();
    let attempts = [
        (
            Method::DELETE,
            format!("/v1/organizations/{mine}/invitations/{}", f.invitation),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/organizations/{mine}/members/{}", f.victim.user_id),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::DELETE,
            format!("/v1/organizations/{mine}/members/{}", f.victim.user_id),
            None,
        ),
        (
            Method::POST,
            format!("/v1/organizations/{mine}/transfer-ownership"),
            Some(json!({"userId": f.victim.user_id})),
        ),
        (
            Method::GET,
            format!("/v1/organizations/{mine}/cloud-accounts/{}", f.account),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/organizations/{mine}/cloud-accounts/{}", f.account),
            Some(json!({"alias": "mine now"})),
        ),
        (
            Method::DELETE,
            format!(
                "/v1/organizations/{mine}/cloud-accounts/{}?confirmAccountId={}",
                f.account, f.account_key
            ),
            None,
        ),
        (
            Method::POST,
            format!("/v1/organizations/{mine}/cloud-accounts/{}/sync", f.account),
            None,
        ),
        (
            Method::GET,
            format!(
                "/v1/organizations/{mine}/cloud-accounts/{}/health",
                f.account
            ),
            None,
        ),
        (
            Method::GET,
            format!("/v1/organizations/{mine}/metrics?account={}", f.account),
            None,
        ),
        (
            Method::GET,
            format!("/v1/organizations/{mine}/jobs/{}", f.job),
            None,
        ),
        (
            Method::GET,
            format!(
                "/v1/organizations/{mine}/cloud-organizations/{}",
                f.cloud_org
            ),
            None,
        ),
        (
            Method::GET,
            format!(
                "/v1/organizations/{mine}/cloud-organizations/{}/members",
                f.cloud_org
            ),
            None,
        ),
        (
            Method::POST,
            format!(
                "/v1/organizations/{mine}/cloud-organizations/{}/sync",
                f.cloud_org
            ),
            Some(json!({})),
        ),
        (
            Method::DELETE,
            format!(
                "/v1/organizations/{mine}/cloud-organizations/{}?confirmCloudOrgId=o-nope",
                f.cloud_org
            ),
            None,
        ),
        (
            Method::POST,
            format!("/v1/organizations/{mine}/jobs/{}/cancel", f.job),
            None,
        ),
        (
            Method::GET,
            format!("/v1/organizations/{mine}/detections/{}", f.detection),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/organizations/{mine}/detections/{}", f.detection),
            Some(custom_detection(&f.account)),
        ),
        (
            Method::DELETE,
            format!("/v1/organizations/{mine}/detections/{}", f.detection),
            None,
        ),
        (
            Method::GET,
            format!(
                "/v1/organizations/{mine}/cloud-accounts/{}/detections",
                f.account
            ),
            None,
        ),
        (
            Method::GET,
            format!(
                "/v1/organizations/{mine}/cloud-organizations/{}/detections",
                f.cloud_org
            ),
            None,
        ),
        (
            Method::POST,
            format!("/v1/organizations/{mine}/cloud-accounts/{}/scan", f.account),
            None,
        ),
        (
            Method::POST,
            format!(
                "/v1/organizations/{mine}/cloud-organizations/{}/scan",
                f.cloud_org
            ),
            None,
        ),
        (
            Method::GET,
            format!(
                "/v1/organizations/{mine}/cloud-organizations/{}/scan-status",
                f.cloud_org
            ),
            None,
        ),
        (
            Method::GET,
            format!(
                "/v1/organizations/{mine}/cloud-accounts/{}/coverage",
                f.account
            ),
            None,
        ),
        (
            Method::GET,
            format!(
                "/v1/organizations/{mine}/cloud-organizations/{}/coverage",
                f.cloud_org
            ),
            None,
        ),
        (
            Method::GET,
            format!(
                "/v1/organizations/{mine}/cloud-accounts/{}/coverage/history",
                f.account
            ),
            None,
        ),
        (
            Method::GET,
            format!(
                "/v1/organizations/{mine}/cloud-organizations/{}/coverage/history",
                f.cloud_org
            ),
            None,
        ),
    ];
    for (method, path, body) in attempts {
        let resp = app.call(method.clone(), &path, Some(token), body).await;
        resp.assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    // The victim is untouched and the invitation still pending.
    let members = app
        .get(
            &format!("/v1/organizations/{}/members", f.org),
            &f.owner.token,
        )
        .await;
    let victim = members.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["userId"] == f.victim.user_id.as_str())
        .unwrap();
    assert_eq!(victim["role"], "member");
    let pending = app
        .get(
            &format!("/v1/organizations/{}/invitations", f.org),
            &f.owner.token,
        )
        .await;
    assert_eq!(pending.body["items"].as_array().unwrap().len(), 1);
    // Someone else's invitation cannot be answered either.
    let accept = app
        .post(
            &format!("/v1/invitations/{}/accept", f.invitation),
            token,
            json!({}),
        )
        .await;
    accept.assert_problem(StatusCode::FORBIDDEN, "invitation_email_mismatch");
}

on_both_backends!(
    every_org_endpoint_enforces_the_role_matrix,
    another_tenants_ids_are_not_found_under_your_own_organization,
);
