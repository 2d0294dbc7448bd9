//! Every operation on the caller's own account (`/v1/me/...`, log-out, and the invitations
//! addressed to them), the way `authorization_matrix.rs` tries the organization's: without a
//! credential, as the person it belongs to, and with another person's object ids, each on a
//! fresh pair of people so one row's success cannot change what the next one sees. Another
//! person's session, key or invitation is a 404, never theirs to end or answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::{Session, TestApp, on_both_backends};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// Two people, each with a second session, an API key and an invitation from a third.
struct Fixture {
    ada: Session,
    ada_session: String,
    ada_key: String,
    ada_invitation: String,
    bob_session: String,
    bob_key: String,
    bob_invitation: String,
}

/// `who`'s sessions other than the one `who` holds: the id of one.
async fn other_session(app: &TestApp, who: &Session) -> String {
    let second = app.log_in(who).await;
    let list = app.get("/v1/me/sessions", &second.token).await;
    list.body
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .unwrap()
}

async fn api_key(app: &TestApp, who: &Session) -> String {
    let key = app
        .post("/v1/me/api-keys", &who.token, json!({"name": "matrix"}))
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.body);
    key.body["apiKey"]["id"].as_str().unwrap().to_string()
}

async fn fixture(app: &TestApp) -> Fixture {
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let olga = app.sign_up("Olga").await;
    let org = app.create_org_on(&olga, "Inviting", "pro").await;
    let mut invitations = vec![];
    for who in [&ada, &bob] {
        let inv = app
            .post(
                &format!("/v1/organizations/{org}/invitations"),
                &olga.token,
                json!({"email": who.email, "role": "member"}),
            )
            .await;
        assert_eq!(inv.status, StatusCode::CREATED, "{}", inv.body);
        invitations.push(inv.body["id"].as_str().unwrap().to_string());
    }
    Fixture {
        ada_session: other_session(app, &ada).await,
        ada_key: api_key(app, &ada).await,
        bob_session: other_session(app, &bob).await,
        bob_key: api_key(app, &bob).await,
        ada_invitation: invitations[0].clone(),
        bob_invitation: invitations[1].clone(),
        ada,
    }
}

/// One operation: its path (`{mine}` / `{theirs}` stand for an object id), a body, and the
/// status without a credential, as the owner of the object, and with another's object
/// (`None` where the path names no object).
struct Row {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    anonymous: u16,
    own: u16,
    theirs: Option<u16>,
}

fn row(
    method: Method,
    path: &'static str,
    body: Option<Value>,
    anonymous: u16,
    own: u16,
    theirs: Option<u16>,
) -> Row {
    Row {
        method,
        path,
        body,
        anonymous,
        own,
        theirs,
    }
}

fn rows() -> Vec<Row> {
    use Method as M;
    vec![
        row(M::GET, "/v1/me", None, 401, 200, None),
        row(M::GET, "/v1/me/api-keys", None, 401, 200, None),
        row(
            M::POST,
            "/v1/me/api-keys",
            Some(json!({"name": "another"})),
            401,
            201,
            None,
        ),
        row(
            M::DELETE,
            "/v1/me/api-keys/{key}",
            None,
            401,
            204,
            Some(404),
        ),
        row(
            M::POST,
            "/v1/me/deletion",
            Some(json!({"currentPassword": PASSWORD})),
            401,
            200,
            None,
        ),
        row(
            M::POST,
            "/v1/me/email",
            Some(json!({"newEmail": "moved-{n}@example.com", "currentPassword": PASSWORD})),
            401,
            202,
            None,
        ),
        row(M::GET, "/v1/me/invitations", None, 401, 200, None),
        row(
            M::POST,
            "/v1/me/password",
            Some(json!({"currentPassword": PASSWORD, "newPassword": "another long password"})),
            401,
            200,
            None,
        ),
        row(M::GET, "/v1/me/security-log", None, 401, 200, None),
        row(M::GET, "/v1/me/sessions", None, 401, 200, None),
        row(
            M::POST,
            "/v1/me/sessions/revoke-others",
            None,
            401,
            200,
            None,
        ),
        row(
            M::DELETE,
            "/v1/me/sessions/{session}",
            None,
            401,
            204,
            Some(404),
        ),
        // Everyone here is verified already: the resend says so.
        row(M::POST, "/v1/me/verification-email", None, 401, 409, None),
        // An invitation's id is the secret of its e-mailed link: whoever opens it signed in
        // under another address is told so (403 `invitation_email_mismatch`), not 404, so
        // they can switch accounts; it still cannot be answered.
        row(
            M::POST,
            "/v1/invitations/{invitation}/accept",
            Some(json!({})),
            401,
            200,
            Some(403),
        ),
        row(
            M::POST,
            "/v1/invitations/{invitation}/reject",
            Some(json!({})),
            401,
            204,
            Some(403),
        ),
        row(M::POST, "/v1/auth/logout", None, 401, 204, None),
    ]
}

/// Every operation on the caller's own account in the document, by method and path.
fn personal_operations() -> std::collections::BTreeSet<String> {
    let document: Value = serde_json::from_str(&canopy_app::openapi_json()).unwrap();
    let mut out = std::collections::BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        // The active organization is an organization's row in the other matrix.
        let personal = (path.starts_with("/v1/me") && path != "/v1/me/active-organization")
            || path.starts_with("/v1/invitations/")
            || path == "/v1/auth/logout";
        if !personal {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            out.insert(format!("{} {}", method.to_uppercase(), shape(path)));
        }
    }
    out
}

/// The path with every `{...}` emptied, so `{id}` and `{key}` compare equal.
fn shape(path: &str) -> String {
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
    out
}

/// A personal operation added without a row here fails, as in the organization matrix.
#[test]
fn the_matrix_covers_every_personal_operation_of_the_document() {
    let documented = personal_operations();
    let covered: std::collections::BTreeSet<String> = rows()
        .iter()
        .map(|r| format!("{} {}", r.method, shape(r.path)))
        .collect();
    assert_eq!(documented, covered);
}

fn fill(template: &str, f: &Fixture, theirs: bool, n: usize) -> String {
    let (session, key, invitation) = if theirs {
        (&f.bob_session, &f.bob_key, &f.bob_invitation)
    } else {
        (&f.ada_session, &f.ada_key, &f.ada_invitation)
    };
    template
        .replace("{session}", session)
        .replace("{key}", key)
        .replace("{invitation}", invitation)
        .replace("{n}", &n.to_string())
}

async fn every_personal_operation_is_the_callers_own(app: TestApp) {
    let mut failures = vec![];
    for (n, r) in rows().into_iter().enumerate() {
        let attempts = [(None, r.anonymous, false), (Some(false), r.own, false)]
            .into_iter()
            .chain(r.theirs.map(|s| (Some(true), s, true)));
        for (who, expected, theirs) in attempts {
            let f = fixture(&app).await;
            let path = fill(r.path, &f, theirs, n);
            let body = r
                .body
                .as_ref()
                .map(|b| serde_json::from_str(&fill(&b.to_string(), &f, theirs, n)).unwrap());
            let token = who.map(|_| f.ada.token.as_str());
            let got = app.call(r.method.clone(), &path, token, body).await;
            let caller = match who {
                None => "anonymous",
                Some(false) => "owner of the object",
                Some(true) => "another person's object",
            };
            if got.status.as_u16() != expected {
                failures.push(format!(
                    "{} {} as {caller}: expected {expected}, got {} {}",
                    r.method, r.path, got.status, got.body
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

on_both_backends!(every_personal_operation_is_the_callers_own);
