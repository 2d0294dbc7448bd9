//! The console over HTTP, the way a browser without JavaScript meets it: every page for every
//! role (the controls a role sees and the forms it may send follow the one policy table the
//! API enforces), tenant isolation, CSRF and origin checks, escaping, security headers,
//! sessions, the log-in throttle, assets and their budget, and each main form end to end.
//! On SQLite and (in CI) PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::console::{Page, Visitor};
use canopy_e2e::{
    Options, Session, TestApp, aws_account_body, on_both_backends, random_aws_account,
};
use canopy_tenancy::{Action, Role, authorize};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// A form's fields, as sent.
type Fields<'a> = Vec<(&'a str, String)>;
const XSS: &str = "<img src=x onerror=alert(1)>";
/// How the escaped name reads in the HTML (askama writes `<` and `>` as numeric references).
const XSS_ESCAPED: &str = "&#60;img src=x onerror=alert(1)&#62;";

/// An organization on Pro with an owner, an admin, two members, a connected account and a
/// pending invitation; a console visitor logged in per role.
struct Estate {
    app: TestApp,
    org: String,
    slug: String,
    owner: Session,
    account: String,
    account_key: String,
    /// A member nobody acts as, the target of member actions.
    other: Session,
    visitors: Vec<(Role, Visitor)>,
}

async fn logged_in(app: &TestApp, who: &Session) -> Visitor {
    let v = Visitor::new(app);
    let answer = v.log_in(&who.email, PASSWORD).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    v
}

async fn estate(app: TestApp) -> Estate {
    let owner = app.sign_up("Olive").await;
    let admin = app.sign_up("Adam").await;
    let member = app.sign_up("Mia").await;
    let other = app.sign_up("Otto").await;
    let org = app.create_org_on(&owner, "Acme Mail", "pro").await;
    app.add_member(&org, &owner, &admin, "admin").await;
    app.add_member(&org, &owner, &member, "member").await;
    app.add_member(&org, &owner, &other, "member").await;
    let account_key = random_aws_account();
    let r = app
        .post(
            &format!("/v1/organizations/{org}/cloud-accounts"),
            &owner.token,
            aws_account_body(&account_key),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let account = r.body["id"].as_str().unwrap().to_string();
    app.post(
        &format!("/v1/organizations/{org}/invitations"),
        &owner.token,
        json!({"email": "pending@example.com", "role": "member"}),
    )
    .await;
    let slug = app.slug_of(&org, &owner.token).await;
    let mut visitors = Vec::new();
    for (role, who) in [
        (Role::Owner, &owner),
        (Role::Admin, &admin),
        (Role::Member, &member),
    ] {
        visitors.push((role, logged_in(&app, who).await));
    }
    Estate {
        app,
        org,
        slug,
        owner,
        account,
        account_key,
        other,
        visitors,
    }
}

impl Estate {
    fn path(&self, page: &str) -> String {
        format!(
            "/org/{}/{}",
            self.slug,
            page.replace("{account}", &self.account)
        )
    }

    /// What the owner sees through the API: name, members with roles, accounts, tier,
    /// invitations. A refused form must leave all of it as it was.
    async fn fingerprint(&self) -> Value {
        let t = &self.owner.token;
        let org = self
            .app
            .get(&format!("/v1/organizations/{}", self.org), t)
            .await;
        let members = self
            .app
            .get(&format!("/v1/organizations/{}/members", self.org), t)
            .await;
        let mut roles: Vec<String> = members.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{}={}", m["email"], m["role"]))
            .collect();
        roles.sort();
        let accounts = self
            .app
            .get(&format!("/v1/organizations/{}/cloud-accounts", self.org), t)
            .await;
        let tier = self
            .app
            .get(&format!("/v1/organizations/{}/subscription", self.org), t)
            .await;
        let invitations = self
            .app
            .get(&format!("/v1/organizations/{}/invitations", self.org), t)
            .await;
        json!({
            "name": org.body["organization"]["name"],
            "slug": org.body["organization"]["slug"],
            "roles": roles,
            "accounts": accounts.body["items"].as_array().map(Vec::len),
            "tier": tier.body["tier"],
            "invitations": invitations.body["items"].as_array().map(Vec::len),
        })
    }
}

/// Where the console offers a control for `action`, and the marker of that control in the
/// page; `None` for an action the console has no control for. Exhaustive on purpose: a new
/// action in the policy table does not compile here until someone decides.
fn console_control(action: Action) -> Option<(&'static str, &'static str)> {
    match action {
        // Every page is a view; the page matrix below covers it.
        Action::View => None,
        Action::UpdateOrganization => Some((
            "settings/organization",
            "action=\"/org/{slug}/settings/organization\"",
        )),
        Action::DeleteOrganization => Some((
            "settings/organization",
            "action=\"/org/{slug}/settings/organization/delete\"",
        )),
        Action::Invite => Some((
            "settings/members",
            "action=\"/org/{slug}/settings/members\"",
        )),
        Action::RemoveMember => Some(("settings/members", "/remove\"")),
        Action::ChangeRole => Some(("settings/members", "/role\"")),
        Action::TransferOwnership => Some(("settings/members", "/transfer\"")),
        Action::ConnectCloudAccount => Some((
            "settings/accounts",
            "href=\"/org/{slug}/settings/accounts/connect\"",
        )),
        Action::DisconnectCloudAccount => Some(("settings/accounts/{account}", "/disconnect\"")),
        Action::ReadAuditLog => Some(("dashboard", "href=\"/org/{slug}/settings/audit\"")),
        Action::ManageBilling => Some(("billing", "name=\"tier\"")),
        // Their controls live on a cloud organization's pages, which this estate has none
        // of: `console_estate.rs` checks them (hidden from a member, refused with 403).
        Action::RunJobs | Action::ManageDetections => None,
    }
}

/// Every console page of an organization with the action its whole page needs.
const PAGES: &[(&str, Action)] = &[
    ("dashboard", Action::View),
    ("dashboard/figures", Action::View),
    ("settings/accounts", Action::View),
    ("settings/accounts/{account}", Action::View),
    ("settings/accounts/connect", Action::ConnectCloudAccount),
    ("settings/accounts/requests", Action::ConnectCloudAccount),
    (
        "settings/accounts/cloudformation.yaml",
        Action::ConnectCloudAccount,
    ),
    ("settings/members", Action::View),
    ("settings/organization", Action::View),
    ("settings/audit", Action::ReadAuditLog),
    ("billing", Action::View),
    ("cloud-organizations", Action::View),
    ("cloud-organizations/connect", Action::ConnectCloudAccount),
    (
        "cloud-organizations/connect/aws",
        Action::ConnectCloudAccount,
    ),
    (
        "cloud-organizations/connect/gcp",
        Action::ConnectCloudAccount,
    ),
    ("settings/accounts/{account}/coverage", Action::View),
    ("settings/accounts/{account}/matrix", Action::View),
];

/// Every page answers each role as the policy says, and shows exactly the controls the
/// role may use.
async fn every_page_for_every_role(app: TestApp) {
    let e = estate(app).await;
    for (role, v) in &e.visitors {
        for (page, needs) in PAGES {
            // The figures are a fragment htmx asks for.
            let answer = v.get_with(&e.path(page), &[("hx-request", "true")]).await;
            let expected = if authorize(*role, *needs).is_ok() {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(
                answer.status, expected,
                "{role:?} on {page}: {}",
                answer.body
            );
        }
        for action in Action::ALL {
            let Some((page, marker)) = console_control(action) else {
                continue;
            };
            let body = v.get(&e.path(page)).await.body;
            let marker = marker.replace("{slug}", &e.slug);
            assert_eq!(
                body.contains(&marker),
                authorize(*role, action).is_ok(),
                "{role:?} and the control for {action:?} ({marker}) on {page}"
            );
        }
        for page in ["/orgs", "/orgs/new", "/settings/api-keys", "/pricing"] {
            v.get(page).await.expect(StatusCode::OK);
        }
    }
}

/// A role that may not do something is refused by the form too (403), and nothing changes.
async fn forms_refuse_what_the_role_may_not_do(app: TestApp) {
    let e = estate(app).await;
    let before = e.fingerprint().await;
    let other = e.other.user_id.clone();
    let forms: Vec<(Action, String, Fields)> = vec![
        (
            Action::UpdateOrganization,
            e.path("settings/organization"),
            vec![
                ("name", "Renamed".into()),
                ("slug", e.slug.clone()),
                ("logo", String::new()),
            ],
        ),
        (
            Action::DeleteOrganization,
            e.path("settings/organization/delete"),
            vec![("confirm", e.slug.clone())],
        ),
        (
            Action::Invite,
            e.path("settings/members"),
            vec![
                ("email", "new@example.com".into()),
                ("role", "member".into()),
            ],
        ),
        (
            Action::RemoveMember,
            e.path(&format!("settings/members/{other}/remove")),
            vec![],
        ),
        (
            Action::ChangeRole,
            e.path(&format!("settings/members/{other}/role")),
            vec![("role", "admin".into())],
        ),
        (
            Action::TransferOwnership,
            e.path(&format!("settings/members/{other}/transfer")),
            vec![],
        ),
        (
            Action::ConnectCloudAccount,
            e.path("settings/accounts"),
            vec![
                ("provider", "aws".into()),
                ("accountId", random_aws_account()),
                (
                    "roleArn",
                    "arn:aws:iam::123456789012:role/CanopyAccess".into(),
                ),
                ("region", "us-east-1".into()),
            ],
        ),
        (
            Action::DisconnectCloudAccount,
            e.path("settings/accounts/{account}/disconnect"),
            vec![("confirmAccountId", e.account_key.clone())],
        ),
        (
            Action::ManageBilling,
            e.path("billing"),
            vec![("tier", "individual".into())],
        ),
    ];
    for (role, v) in &e.visitors {
        v.get(&e.path("dashboard")).await.expect(StatusCode::OK);
        for (action, path, fields) in &forms {
            if authorize(*role, *action).is_ok() {
                continue;
            }
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let answer = v.post(path, &fields).await;
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{role:?} sending {action:?} to {path}: {}",
                answer.body
            );
        }
    }
    assert_eq!(
        e.fingerprint().await,
        before,
        "a refused form changed something"
    );
}

/// Another tenant's organization, account, member or invitation is a 404, by slug or by id,
/// exactly as the API answers.
async fn another_tenant_is_not_found(app: TestApp) {
    let e = estate(app).await;
    let stranger = e.app.sign_up("Stan").await;
    let theirs = e.app.create_org(&stranger, "Stan's").await;
    let their_slug = e.app.slug_of(&theirs, &stranger.token).await;
    let their_account = e
        .app
        .connect_random_aws_account(&stranger.token, &theirs)
        .await;
    let (_, owner) = &e.visitors[0];
    for page in [
        "dashboard",
        "settings/members",
        "settings/accounts",
        "billing",
    ] {
        owner
            .get(&format!("/org/{their_slug}/{page}"))
            .await
            .expect(StatusCode::NOT_FOUND);
        owner
            .get(&format!("/org/{theirs}/{page}"))
            .await
            .expect(StatusCode::NOT_FOUND);
    }
    // Their account under our organization's slug.
    owner
        .get(&e.path("settings/accounts"))
        .await
        .expect(StatusCode::OK);
    owner
        .get(&e.path(&format!("settings/accounts/{their_account}")))
        .await
        .expect(StatusCode::NOT_FOUND);
    let answer = owner
        .post(
            &e.path(&format!("settings/accounts/{their_account}/disconnect")),
            &[("confirmAccountId", "x")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    let r = e
        .app
        .get(
            &format!("/v1/organizations/{theirs}/cloud-accounts"),
            &stranger.token,
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    // Not signed in: the log-in page, coming back here afterwards.
    let anonymous = Visitor::new(&e.app);
    let answer = anonymous.get(&e.path("settings/members")).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(
        answer.location(),
        Some(format!("/login?next=/org/{}/settings/members", e.slug).as_str())
    );
}

/// A state-changing request that did not come from our page is refused: another origin, a
/// browser-marked cross-site request, a missing or foreign token. The same form from our own
/// page works.
async fn cross_site_posts_are_refused(app: TestApp) {
    let e = estate(app).await;
    let (_, owner) = &e.visitors[0];
    owner.get(&e.path("settings/organization")).await;
    let token = owner.csrf();
    let path = e.path("settings/organization");
    let fields = |name: &'static str| {
        vec![
            ("csrf", token.clone()),
            ("name", name.to_string()),
            ("slug", e.slug.clone()),
            ("logo", String::new()),
        ]
    };
    let before = e.fingerprint().await;
    let without_token: Fields = fields("Evil")
        .into_iter()
        .filter(|(k, _)| *k != "csrf")
        .collect();
    let forged: Fields = fields("Evil")
        .into_iter()
        .map(|(k, v)| {
            if k == "csrf" {
                (k, "forged".to_string())
            } else {
                (k, v)
            }
        })
        .collect();
    let cases: Vec<(Fields, Vec<(&str, &str)>)> = vec![
        (fields("Evil"), vec![("origin", "https://evil.example")]),
        (fields("Evil"), vec![("sec-fetch-site", "cross-site")]),
        (without_token, vec![]),
        (forged, vec![]),
    ];
    for (form, headers) in &cases {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = owner.post_raw(&path, &form, headers).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{headers:?}: {}",
            answer.body
        );
        assert!(answer.body.contains("did not come from a Canopy page"));
    }
    // Another user's token in the owner's browser is foreign too.
    let (_, admin) = &e.visitors[1];
    admin.get(&e.path("settings/organization")).await;
    let foreign = admin.csrf();
    let answer = owner
        .post_raw(
            &path,
            &[
                ("csrf", foreign.as_str()),
                ("name", "Evil"),
                ("slug", &e.slug),
                ("logo", ""),
            ],
            &[],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    // Log-out is a form too: a cross-site one leaves the session alone.
    let answer = owner
        .post_raw(
            "/logout",
            &[("csrf", token.as_str())],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    owner.get(&e.path("dashboard")).await.expect(StatusCode::OK);
    assert_eq!(e.fingerprint().await, before);
    // From our own page it works (same origin, no Origin header from an older browser too).
    let answer = owner
        .post_raw(
            &path,
            &[
                ("csrf", token.as_str()),
                ("name", "Renamed"),
                ("slug", &e.slug),
                ("logo", ""),
            ],
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(e.fingerprint().await["name"], "Renamed");
}

/// Text people typed is text on every page: an organization, an account and a member named
/// like markup are shown escaped, in the page and in the chart's data.
async fn markup_in_names_is_escaped(app: TestApp) {
    let e = estate(app).await;
    let (_, owner) = &e.visitors[0];
    e.app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/organizations/{}", e.org),
            Some(&e.owner.token),
            Some(json!({"name": XSS})),
        )
        .await;
    e.app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/organizations/{}/cloud-accounts/{}", e.org, e.account),
            Some(&e.owner.token),
            Some(json!({"alias": XSS, "sesDomains": ["mail.example.com"], "tags": {"team": XSS}})),
        )
        .await;
    let named = e
        .app
        .call(
            reqwest::Method::POST,
            "/v1/auth/signup",
            None,
            Some(json!({"email": "markup@example.com", "name": XSS, "password": PASSWORD})),
        )
        .await;
    let markup = Session {
        token: named.body["token"].as_str().unwrap().to_string(),
        user_id: named.body["user"]["id"].as_str().unwrap().to_string(),
        email: "markup@example.com".into(),
    };
    e.app.verify_email(&markup.email).await;
    e.app.add_member(&e.org, &e.owner, &markup, "member").await;
    for page in [
        "dashboard",
        "dashboard/figures",
        "settings/accounts",
        "settings/accounts/{account}",
        "settings/members",
        "settings/organization",
        "settings/audit",
    ] {
        let body = owner
            .get_with(&e.path(page), &[("hx-request", "true")])
            .await
            .expect(StatusCode::OK)
            .body
            .clone();
        assert!(!body.contains(XSS), "{page} shows raw markup:\n{body}");
        assert!(
            body.contains(XSS_ESCAPED),
            "{page} does not show the name:\n{body}"
        );
    }
    let orgs = owner.get("/orgs").await.body;
    assert!(!orgs.contains(XSS) && orgs.contains(XSS_ESCAPED));
}

/// The dashboard's figures are kept per selection (on PostgreSQL, where every replica hears
/// every change) and dropped the moment the organization's accounts change on this replica.
async fn figures_are_kept_until_the_accounts_change(app: TestApp) {
    let e = estate(app).await;
    let (_, owner) = &e.visitors[0];
    let path = e.path("dashboard/figures");
    let figures = async |owner: &Visitor| {
        owner
            .get_with(&path, &[("hx-request", "true")])
            .await
            .expect(StatusCode::OK)
            .body
            .clone()
    };
    // The first look records the account's failure to answer (a change), so the figures it
    // drew are not kept; the second draws them again and keeps them.
    figures(owner).await;
    let first = figures(owner).await;
    assert!(first.contains(&e.account_key), "{first}");
    let (hits, _) = e.app.state.reads.hits_and_misses();
    assert_eq!(figures(owner).await, first);
    let kept = e.app.state.reads.hits_and_misses().0 > hits;
    assert_eq!(
        kept,
        e.app.state.reads.listening(),
        "kept exactly where changes are heard"
    );

    let renamed = e
        .app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/organizations/{}/cloud-accounts/{}", e.org, e.account),
            Some(&e.owner.token),
            Some(json!({"alias": "Renamed for the figures"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    let after = figures(owner).await;
    assert!(after.contains("Renamed for the figures"), "{after}");
}

/// Every kind of answer carries the security headers; pages are never cached; the session
/// cookie is HttpOnly and SameSite=Lax; no page has inline script or style.
async fn security_headers_and_cookies(app: TestApp) {
    let e = estate(app).await;
    let (_, owner) = &e.visitors[0];
    let anonymous = Visitor::new(&e.app);
    let login = anonymous.get("/login").await;
    let csrf_cookie = login
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("canopy_csrf="))
        .expect("the log-in page sets its CSRF cookie");
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Lax"));
    let signed = Visitor::new(&e.app);
    signed.get("/login").await;
    let answer = signed
        .post(
            "/login",
            &[("email", &e.owner.email), ("password", PASSWORD)],
        )
        .await;
    let session_cookie = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("canopy_session="))
        .expect("log-in sets the session cookie");
    assert!(session_cookie.contains("HttpOnly"), "{session_cookie}");
    assert!(session_cookie.contains("SameSite=Lax"), "{session_cookie}");
    assert!(
        !session_cookie.contains("Secure"),
        "http:// is not https: {session_cookie}"
    );
    let dashboard = owner.get(&e.path("dashboard")).await;
    let asset = dashboard
        .body
        .split("href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    assert!(asset.starts_with("/assets/"), "{asset}");
    let answers: Vec<(&str, Page)> = vec![
        ("login", login),
        ("dashboard", dashboard),
        ("not found", owner.get("/org/no-such-org/dashboard").await),
        ("no route", owner.get("/no/such/page").await),
        ("forbidden", {
            let (_, member) = &e.visitors[2];
            member.get(&e.path("settings/audit")).await
        }),
        ("redirect", anonymous.get("/").await),
        ("asset", owner.get(&asset).await),
        ("pricing", owner.get("/pricing").await),
    ];
    for (what, page) in &answers {
        let csp = page.header("content-security-policy").unwrap_or_default();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(directive), "{what}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{what}: {csp}");
        assert_eq!(
            page.header("x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            page.header("referrer-policy"),
            Some("same-origin"),
            "{what}"
        );
        assert_eq!(page.header("x-frame-options"), Some("DENY"), "{what}");
        if *what != "asset" {
            assert_eq!(page.header("cache-control"), Some("no-store"), "{what}");
        }
        if page
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
        {
            let body = page.body.to_lowercase();
            assert!(!body.contains(" style=\""), "{what} has an inline style");
            assert!(!body.contains("<style"), "{what} has a style element");
            for script in body.split("<script").skip(1) {
                let tag = script.split('>').next().unwrap_or_default();
                assert!(
                    tag.contains(" src=\"/assets/"),
                    "{what} has an inline script: {tag}"
                );
            }
        }
    }
    // Unknown pages are HTML for people; the API keeps answering problem documents.
    let api = e.app.get("/v1/no-such-endpoint", &e.owner.token).await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert_eq!(api.body["status"], 404);
}

/// Log-out ends the session on the server; log-in does not tell whether an e-mail is
/// registered; and the log-in form shares the API's per-address quota.
async fn sessions_end_and_log_in_reveals_nothing(app: TestApp) {
    let e = estate(app).await;
    let (_, owner) = &e.visitors[0];
    let stolen = owner.cookie("canopy_session").unwrap();
    owner.get(&e.path("dashboard")).await.expect(StatusCode::OK);
    let out = owner.post("/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        owner.cookie("canopy_session"),
        None,
        "the cookie is dropped"
    );
    let replay = Visitor::new(&e.app);
    replay.set_cookie("canopy_session", &stolen);
    let answer = replay.get(&e.path("dashboard")).await;
    assert_eq!(
        answer.status,
        StatusCode::SEE_OTHER,
        "the old cookie no longer works"
    );
    assert!(answer.location().unwrap().starts_with("/login"));
    // The API sees the session ended too: it was one session.
    let me = e.app.get("/v1/me", &stolen).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);

    let wrong_password = Visitor::new(&e.app)
        .log_in(&e.owner.email, "not the password")
        .await;
    let unknown = Visitor::new(&e.app)
        .log_in("nobody-here@example.com", "not the password")
        .await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, wrong_password.status);
    let message = |p: &Page| {
        p.body
            .split("role=\"alert\">")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap_or_default()
            .to_string()
    };
    assert!(!message(&wrong_password).is_empty());
    assert_eq!(message(&unknown), message(&wrong_password));
}

/// The log-in form draws from the API's per-address quota and says how long to wait.
async fn log_in_is_throttled_like_the_api(backend: &str) {
    let app = TestApp::start_with(
        backend,
        Options {
            auth_rate_per_minute: 3,
            ..Options::default()
        },
    )
    .await;
    // One API log-in and two console ones use the quota up.
    let r = app
        .call(
            reqwest::Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "a@example.com", "password": "whatever it is"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let v = Visitor::new(&app);
    for _ in 0..2 {
        assert_eq!(
            v.log_in("a@example.com", "whatever").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let refused = v.log_in("a@example.com", "whatever").await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(refused.body.contains("Too many sign-in attempts"));
    let signup = v.sign_up("Late", "late@example.com", PASSWORD).await;
    assert_eq!(signup.status, StatusCode::TOO_MANY_REQUESTS);
}

/// Assets are content-addressed, cached for a year, revalidated by ETag, compressed, and
/// every page stays within 100 KB of gzipped JavaScript and CSS.
async fn assets_are_cached_compressed_and_within_budget(app: TestApp) {
    let e = estate(app).await;
    let (_, owner) = &e.visitors[0];
    let mut budget_checked = 0;
    for page in [
        "dashboard",
        "settings/accounts",
        "settings/members",
        "billing",
    ] {
        let body = owner.get(&e.path(page)).await.body;
        let assets: Vec<String> = body
            .split('"')
            .filter(|s| s.starts_with("/assets/"))
            .map(str::to_string)
            .collect();
        assert!(
            assets.iter().any(|a| a.ends_with(".css")),
            "{page}: {assets:?}"
        );
        assert!(
            assets.iter().any(|a| a.ends_with(".js")),
            "{page}: {assets:?}"
        );
        let mut gzipped = 0usize;
        for asset in &assets {
            let answer = owner.get_with(asset, &[("accept-encoding", "gzip")]).await;
            answer.expect(StatusCode::OK);
            assert_eq!(answer.header("content-encoding"), Some("gzip"), "{asset}");
            assert_eq!(
                answer.header("cache-control"),
                Some("public, max-age=31536000, immutable"),
                "{asset}"
            );
            gzipped += answer
                .header("content-length")
                .unwrap()
                .parse::<usize>()
                .unwrap();
            let etag = answer.header("etag").unwrap().to_string();
            let again = owner.get_with(asset, &[("if-none-match", &etag)]).await;
            assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{asset}");
            let br = owner
                .get_with(asset, &[("accept-encoding", "br, gzip")])
                .await;
            assert_eq!(br.header("content-encoding"), Some("br"), "{asset}");
            let plain = owner.get(asset).await;
            assert_eq!(plain.header("content-encoding"), None, "{asset}");
        }
        assert!(
            gzipped <= 100 * 1024,
            "{page} loads {gzipped} gzipped bytes"
        );
        budget_checked += 1;
    }
    assert_eq!(budget_checked, 4);
    // A name that is not one of ours, or an old hash, is not served.
    owner
        .get("/assets/console.00000000.css")
        .await
        .expect(StatusCode::NOT_FOUND);
}

/// Sign-up, a second organization, the switcher (remembered at the next log-in), and the
/// invitation page from both sides, all with forms alone.
async fn sign_up_switch_and_answer_an_invitation(app: TestApp) {
    let v = Visitor::new(&app);
    let answer = v.sign_up("Nadia", "nadia@example.com", PASSWORD).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let home = v.follow(&answer).await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    let personal = home.location().unwrap().to_string();
    assert!(personal.ends_with("/dashboard"), "{personal}");
    v.get(&personal).await.expect(StatusCode::OK);
    // Refused input keeps what was typed and says what is wrong, beside the field.
    v.get("/orgs/new").await;
    let refused = v
        .post("/orgs", &[("name", ""), ("slug", "Not A Slug")])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("id=\"name-error\""));
    assert!(refused.body.contains("id=\"slug-error\""));
    assert!(refused.body.contains("value=\"Not A Slug\""));
    let created = v
        .post("/orgs", &[("name", "Second Org"), ("slug", "second-org")])
        .await;
    assert_eq!(
        created.location(),
        Some("/org/second-org/dashboard?done=created")
    );
    let page = v.follow(&created).await.expect(StatusCode::OK).body.clone();
    assert!(page.contains("Organization created."));
    // Switch back to the personal one, log out, log in: it opens there.
    let personal_slug = personal.split('/').nth(2).unwrap().to_string();
    let switched = v.post("/orgs/switch", &[("org", &personal_slug)]).await;
    assert_eq!(switched.location(), Some(personal.as_str()));
    v.post("/logout", &[]).await;
    let again = v.log_in("nadia@example.com", PASSWORD).await;
    let home = v.follow(&again).await;
    assert_eq!(home.location(), Some(personal.as_str()));
    // Switching to an organization that is not yours is a 404.
    let stranger = app.sign_up("Sid").await;
    let theirs = app.create_org(&stranger, "Sid's").await;
    v.get(&personal).await;
    let answer = v.post("/orgs/switch", &[("org", &theirs)]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);

    // Nadia invites Sid from the members page (Free has one seat: she moves to Individual);
    // Sid opens the link signed out, logs in and comes back to it, and accepts.
    app.set_tier("second-org", "individual").await;
    v.get("/org/second-org/settings/members").await;
    let invited = v
        .post(
            "/org/second-org/settings/members",
            &[("email", &stranger.email), ("role", "admin")],
        )
        .await;
    assert_eq!(invited.status, StatusCode::SEE_OTHER, "{}", invited.body);
    let list = v.follow(&invited).await.body;
    assert!(list.contains(&stranger.email) && list.contains("Invitation sent."));
    let outbox = app
        .store
        .outbox()
        .unsent_for(&stranger.email)
        .await
        .unwrap();
    let link = outbox
        .iter()
        .find(|m| m.kind == "invitation")
        .and_then(|m| m.link())
        .unwrap()
        .to_string();
    let path = &link[link.find("/invitations/").unwrap()..];
    let sid = Visitor::new(&app);
    let signed_out = sid.get(path).await.expect(StatusCode::OK).body.clone();
    assert!(
        signed_out.contains(&format!("/login?next={path}")),
        "{signed_out}"
    );
    assert!(
        !signed_out.contains("Second Org"),
        "nothing about it before log-in"
    );
    let logged = sid.log_in(&stranger.email, PASSWORD).await;
    assert_eq!(logged.status, StatusCode::SEE_OTHER);
    let offer = sid.get(path).await.expect(StatusCode::OK).body.clone();
    assert!(
        offer.contains("Join Second Org") && offer.contains("Nadia"),
        "{offer}"
    );
    // Someone else signed in sees nothing of it.
    let other = logged_in(&app, &app.sign_up("Eve").await).await;
    let hidden = other.get(path).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert!(!hidden.body.contains("Second Org"));
    let accepted = sid.post(path, &[("answer", "accept")]).await;
    assert_eq!(
        accepted.location(),
        Some("/org/second-org/dashboard?done=joined")
    );
    sid.get("/org/second-org/settings/members")
        .await
        .expect(StatusCode::OK);
    // Answered: the page no longer offers it.
    assert_eq!(sid.get(path).await.status, StatusCode::NOT_FOUND);
}

/// Cloud accounts with forms: inline errors that keep the input, the plan's limit in words
/// with the way up, editing, and disconnecting after typing the account id.
async fn cloud_account_forms(app: TestApp) {
    let owner = app.sign_up("Fay").await;
    let org = app.create_org(&owner, "Free Org").await;
    let slug = app.slug_of(&org, &owner.token).await;
    let v = logged_in(&app, &owner).await;
    let connect = v
        .get(&format!("/org/{slug}/settings/accounts/connect"))
        .await
        .expect(StatusCode::OK)
        .body
        .clone();
    assert!(connect.contains("External ID") && connect.contains("data-copy=\"trust-policy\""));
    let path = format!("/org/{slug}/settings/accounts");
    let bad = v
        .post(
            &path,
            &[
                ("provider", "aws"),
                ("accountId", "12345"),
                ("roleArn", "not an arn"),
                ("region", "us-east-1"),
                ("alias", "Kept alias"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(bad.body.contains("id=\"accountId-error\""), "{}", bad.body);
    assert!(bad.body.contains("id=\"roleArn-error\""));
    assert!(bad.body.contains("value=\"Kept alias\""));
    let key = random_aws_account();
    let arn = format!("arn:aws:iam::{key}:role/CanopyAccess");
    let ok = v
        .post(
            &path,
            &[
                ("provider", "aws"),
                ("accountId", &key),
                ("roleArn", &arn),
                ("region", "eu-west-1"),
                ("alias", "Primary"),
                ("environment", "production"),
                ("sesDomains", "mail.example.com"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let list = v.get(&path).await.body;
    assert!(list.contains("Primary") && list.contains(&key) && list.contains("env-production"));
    // Free allows one account: the second is refused with the limit, the usage and the tier.
    let second = random_aws_account();
    let second_arn = format!("arn:aws:iam::{second}:role/CanopyAccess");
    let refused = v
        .post(
            &path,
            &[
                ("provider", "aws"),
                ("accountId", &second),
                ("roleArn", &second_arn),
                ("region", "us-east-1"),
            ],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::PAYMENT_REQUIRED,
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains(
            "Your Free plan allows 1 cloud account, and 1 is connected. Upgrade to Individual"
        ),
        "{}",
        refused.body
    );
    assert!(
        refused
            .body
            .contains(&format!("href=\"/org/{slug}/billing\""))
    );
    let accounts = app
        .get(
            &format!("/v1/organizations/{org}/cloud-accounts"),
            &owner.token,
        )
        .await;
    let id = accounts.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let detail = format!("{path}/{id}");
    let edited = v
        .post(
            &detail,
            &[
                ("alias", "Renamed"),
                ("environment", "staging"),
                ("roleArn", &arn),
                ("region", "eu-west-1"),
                ("sesDomains", "a.example.com\nb.example.com"),
                ("tags", "team=mail\ncost=42"),
            ],
        )
        .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER, "{}", edited.body);
    let got = app
        .get(
            &format!("/v1/organizations/{org}/cloud-accounts/{id}"),
            &owner.token,
        )
        .await;
    assert_eq!(got.body["alias"], "Renamed");
    assert_eq!(got.body["environment"], "staging");
    assert_eq!(got.body["tags"]["cost"], "42");
    assert_eq!(
        got.body["sesDomains"],
        json!(["a.example.com", "b.example.com"])
    );
    let wrong = v
        .post(
            &format!("{detail}/disconnect"),
            &[("confirmAccountId", "000000000000")],
        )
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        wrong.body
    );
    assert_eq!(
        app.get(
            &format!("/v1/organizations/{org}/cloud-accounts"),
            &owner.token
        )
        .await
        .body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let gone = v
        .post(
            &format!("{detail}/disconnect"),
            &[("confirmAccountId", &key)],
        )
        .await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER, "{}", gone.body);
    assert!(
        v.follow(&gone)
            .await
            .body
            .contains("No cloud account connected")
    );
}

/// Members, organization settings, API keys, the audit log and the plan, with forms: the
/// refusals the domain makes read as sentences.
async fn settings_forms(app: TestApp) {
    let owner = app.sign_up("Gus").await;
    let org = app
        .create_org_on(&owner, "Settings Org", "individual")
        .await;
    let slug = app.slug_of(&org, &owner.token).await;
    let member = app.sign_up("Hal").await;
    app.add_member(&org, &owner, &member, "member").await;
    let v = logged_in(&app, &owner).await;
    let members = format!("/org/{slug}/settings/members");
    v.get(&members).await.expect(StatusCode::OK);
    // The only owner cannot leave.
    let leave = v.post(&format!("/org/{slug}/settings/leave"), &[]).await;
    assert_eq!(leave.status, StatusCode::CONFLICT, "{}", leave.body);
    assert!(leave.body.contains("must keep at least one owner"));
    // Role change, then the audit log filtered to it.
    let changed = v
        .post(
            &format!("{members}/{}/role", member.user_id),
            &[("role", "admin")],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    let audit = v
        .get(&format!(
            "/org/{slug}/settings/audit?action=member.role_changed&actor="
        ))
        .await
        .expect(StatusCode::OK)
        .body
        .clone();
    assert!(audit.contains("Changed a member&#39;s role"), "{audit}");
    let event = |action: &str| format!("<code class=\"small muted\">{action}</code>");
    assert!(audit.contains(&event("member.role_changed")), "{audit}");
    assert!(
        !audit.contains(&event("invitation.created")),
        "filtered to one action"
    );
    let by_member = v
        .get(&format!(
            "/org/{slug}/settings/audit?action=&actor={}",
            member.user_id
        ))
        .await
        .body;
    assert!(
        by_member.contains(&event("invitation.accepted")),
        "{by_member}"
    );
    assert!(!by_member.contains(&event("member.role_changed")));
    let bad_filter = v
        .get(&format!("/org/{slug}/settings/audit?action=nope"))
        .await;
    assert_eq!(bad_filter.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Individual has 3 seats: two members and one invitation fill it.
    v.get(&members).await;
    let one = v
        .post(&members, &[("email", "x1@example.com"), ("role", "member")])
        .await;
    assert_eq!(one.status, StatusCode::SEE_OTHER, "{}", one.body);
    let full = v
        .post(&members, &[("email", "x2@example.com"), ("role", "member")])
        .await;
    assert_eq!(full.status, StatusCode::PAYMENT_REQUIRED, "{}", full.body);
    assert!(
        full.body.contains(
            "Your Individual plan allows 3 team members (members plus pending invitations), \
             and 3 are taken. Upgrade to Pro to invite more."
        ),
        "{}",
        full.body
    );
    // The slug check while typing, then a rename and a new slug.
    let settings = format!("/org/{slug}/settings/organization");
    let taken = v
        .get_with(
            &format!("{settings}/slug?slug={slug}"),
            &[("hx-request", "true")],
        )
        .await;
    assert!(taken.body.contains("current slug"));
    let other = app.create_org(&owner, "Taken Name").await;
    let other_slug = app.slug_of(&other, &owner.token).await;
    let check = v.get(&format!("{settings}/slug?slug={other_slug}")).await;
    assert!(check.body.contains("is taken"), "{}", check.body);
    let free = v
        .get(&format!(
            "{settings}/slug?slug=fresh-slug-{}",
            &member.user_id[..8]
        ))
        .await;
    assert!(free.body.contains("is available"), "{}", free.body);
    v.get(&settings).await;
    let clash = v
        .post(
            &settings,
            &[
                ("name", "Settings Org"),
                ("slug", &other_slug),
                ("logo", ""),
            ],
        )
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    assert!(clash.body.contains("This slug is taken"));
    let saved = v
        .post(
            &settings,
            &[
                ("name", "Renamed Org"),
                ("slug", "renamed-org"),
                ("logo", "https://example.com/logo.png"),
            ],
        )
        .await;
    assert_eq!(
        saved.location(),
        Some("/org/renamed-org/settings/organization?done=saved")
    );
    // The plan: a downgrade the usage does not fit is refused, listing why.
    let billing = "/org/renamed-org/billing";
    v.get(billing).await.expect(StatusCode::OK);
    let down = v.post(billing, &[("tier", "free")]).await;
    assert_eq!(down.status, StatusCode::CONFLICT, "{}", down.body);
    assert!(down.body.contains("Your usage does not fit the Free plan"));
    let up = v.post(billing, &[("tier", "pro")]).await;
    assert_eq!(up.location(), Some("/org/renamed-org/billing?done=tier"));
    let sub = app
        .get(
            &format!("/v1/organizations/{org}/subscription"),
            &owner.token,
        )
        .await;
    assert_eq!(sub.body["tier"], "pro");
    // API keys: the organizations a key cannot reach (API access is paid) are named, with
    // the way up; then the token once, working against the API, then revoked.
    let keys = v.get("/settings/api-keys").await.body;
    let gated = keys
        .split("Your keys do not reach:")
        .nth(1)
        .and_then(|s| s.split("</ul>").next())
        .unwrap_or_default()
        .to_string();
    assert!(gated.contains("Taken Name (Free)"), "{keys}");
    assert!(
        !gated.contains("Renamed Org"),
        "Pro includes API access: {gated}"
    );
    let created = v
        .post("/settings/api-keys", &[("name", "ci"), ("days", "30")])
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let token = created
        .body
        .split("id=\"new-key\" class=\"secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_string();
    assert_eq!(app.get("/v1/me", &token).await.status, StatusCode::OK);
    let listed = v.get("/settings/api-keys").await.body;
    assert!(!listed.contains(&token), "the token is shown once");
    let id = app.get("/v1/me/api-keys", &owner.token).await.body[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let revoked = v
        .post(&format!("/settings/api-keys/{id}/revoke"), &[])
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get("/v1/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Deleting takes the slug typed again.
    let delete = "/org/renamed-org/settings/organization/delete";
    v.get("/org/renamed-org/settings/organization").await;
    let wrong = v.post(delete, &[("confirm", "renamed")]).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let deleted = v.post(delete, &[("confirm", "renamed-org")]).await;
    assert_eq!(deleted.location(), Some("/orgs?done=deleted"));
    assert_eq!(
        app.get(&format!("/v1/organizations/{org}"), &owner.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

on_both_backends!(
    every_page_for_every_role,
    forms_refuse_what_the_role_may_not_do,
    another_tenant_is_not_found,
    cross_site_posts_are_refused,
    markup_in_names_is_escaped,
    security_headers_and_cookies,
    sessions_end_and_log_in_reveals_nothing,
    assets_are_cached_compressed_and_within_budget,
    sign_up_switch_and_answer_an_invitation,
    cloud_account_forms,
    settings_forms,
    figures_are_kept_until_the_accounts_change,
);

mod throttled {
    canopy_e2e::on_both_backends!(by_name; log_in_is_throttled_like_the_api);
    use super::log_in_is_throttled_like_the_api;
}
