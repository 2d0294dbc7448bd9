//! The console in a real browser (Debian's headless Chromium through chromedriver): the main
//! story with JavaScript, the same forms with JavaScript off, a cross-site form refused, and
//! an accessibility pass with axe-core over every page. `.ci/run` installs Chromium and runs
//! these; a bare `cargo test` lists them as ignored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use canopy_aws_testkit::FakeAws;
use canopy_e2e::browser::{Browser, Window};
use canopy_e2e::{Options, Session, TestApp, random_aws_account};
use canopy_kernel::Clock;
use chrono::Duration as Span;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(15);

async fn start() -> (TestApp, FakeAws) {
    let aws = FakeAws::start().await.unwrap();
    let app = TestApp::start_with(
        "sqlite",
        Options {
            aws_endpoint_url: aws.url(),
            ..Options::default()
        },
    )
    .await;
    (app, aws)
}

/// Sends of the last day for `account`: `per_hour` every hour, so the totals are known.
fn sends(app: &TestApp, aws: &FakeAws, account: &str, per_hour: f64) {
    let now = app.clock.now();
    for h in 1..=20 {
        aws.put_metric(account, "Send", now - Span::hours(h), per_hour);
        aws.put_metric(account, "Delivery", now - Span::hours(h), per_hour - 1.0);
    }
}

async fn connect_with_the_form(b: &Browser, base: &str, slug: &str, key: &str, alias: &str) {
    b.goto(&format!("{base}/org/{slug}/settings/accounts/connect"))
        .await
        .unwrap();
    b.fill("#accountId", key).await.unwrap();
    b.fill("#roleArn", &format!("arn:aws:iam::{key}:role/CanopyAccess"))
        .await
        .unwrap();
    b.fill("#alias", alias).await.unwrap();
    b.client
        .find(fantoccini::Locator::Css("#environment"))
        .await
        .unwrap()
        .select_by_value("production")
        .await
        .unwrap();
    b.click("form[action$='/settings/accounts'] button[type=submit]")
        .await
        .unwrap();
    b.wait_until("return location.search.includes('done=connected');", WAIT)
        .await
        .unwrap();
}

fn slug_from(path: &str) -> String {
    path.split('/').nth(2).unwrap().to_string()
}

/// Sign-up, a second organization, the switcher remembered across log-ins, two AWS accounts
/// connected against the local AWS, the chart with a line per account and a legend that
/// toggles them, the account filter changing the totals, an invitation, a member who sees no
/// admin controls, and a cross-site form refused.
#[tokio::test]
#[ignore = "needs chromium"]
async fn the_main_story_in_a_browser() {
    let (app, aws) = start().await;
    let base = app.server.url();
    let b = Browser::start(Window::DESKTOP).await.unwrap();

    b.goto(&format!("{base}/signup")).await.unwrap();
    b.fill("#name", "Rita").await.unwrap();
    b.fill("#email", "rita@example.com").await.unwrap();
    b.fill("#password", PASSWORD).await.unwrap();
    b.click("form[action='/signup'] button[type=submit]")
        .await
        .unwrap();
    b.wait_until("return location.pathname.endsWith('/dashboard');", WAIT)
        .await
        .unwrap();
    let personal = slug_from(&b.path().await.unwrap());
    b.wait_until(
        "return document.body.innerText.includes('No AWS account yet');",
        WAIT,
    )
    .await
    .unwrap();

    // A second organization from the switcher's menu.
    b.click(".switcher > summary").await.unwrap();
    b.click(".switcher a[href='/orgs/new']").await.unwrap();
    b.fill("#name", "Acme Mail").await.unwrap();
    b.fill("#slug", "acme-mail").await.unwrap();
    b.click("form[action='/orgs'] button[type=submit]")
        .await
        .unwrap();
    b.wait_until(
        "return location.pathname === '/org/acme-mail/dashboard';",
        WAIT,
    )
    .await
    .unwrap();
    app.set_tier("acme-mail", "pro").await;

    // Switch to the personal organization and back; the choice outlives the session.
    b.click(".switcher > summary").await.unwrap();
    b.click(&format!(".switcher button[value='{personal}']"))
        .await
        .unwrap();
    b.wait_until(
        &format!("return location.pathname === '/org/{personal}/dashboard';"),
        WAIT,
    )
    .await
    .unwrap();
    b.click(".switcher > summary").await.unwrap();
    b.click(".switcher button[value='acme-mail']")
        .await
        .unwrap();
    b.wait_until(
        "return location.pathname === '/org/acme-mail/dashboard';",
        WAIT,
    )
    .await
    .unwrap();
    b.click(".user-menu > summary").await.unwrap();
    b.click("form[action='/logout'] button").await.unwrap();
    b.wait_until("return location.pathname === '/login';", WAIT)
        .await
        .unwrap();
    b.log_in(&base, "rita@example.com", PASSWORD).await.unwrap();
    b.wait_until(
        "return location.pathname === '/org/acme-mail/dashboard';",
        WAIT,
    )
    .await
    .unwrap();

    // Two accounts through the form, with metrics in the local AWS.
    let (first, second) = (random_aws_account(), random_aws_account());
    sends(&app, &aws, &first, 100.0);
    sends(&app, &aws, &second, 30.0);
    connect_with_the_form(&b, &base, "acme-mail", &first, "Primary").await;
    connect_with_the_form(&b, &base, "acme-mail", &second, "Secondary").await;

    b.goto(&format!("{base}/org/acme-mail/dashboard"))
        .await
        .unwrap();
    b.wait_until(
        "return !!document.querySelector('[data-chart][data-drawn]');",
        WAIT,
    )
    .await
    .unwrap();
    let chart = b
        .eval(
            "const c = document.querySelector('[data-chart]');
             return { series: c.getAttribute('data-series'),
                      canvas: !!c.querySelector('canvas'),
                      legend: [...c.querySelectorAll('.u-legend .u-series')].map(e => e.innerText) };",
        )
        .await
        .unwrap();
    assert_eq!(chart["series"], "2", "{chart}");
    assert_eq!(chart["canvas"], true);
    let legend: Vec<String> = serde_json::from_value(chart["legend"].clone()).unwrap();
    assert!(legend.iter().any(|l| l.contains("Primary")), "{legend:?}");
    assert!(legend.iter().any(|l| l.contains("Secondary")), "{legend:?}");
    let sent = b
        .eval("return document.querySelector('.stat .stat-value').innerText;")
        .await
        .unwrap();
    assert_eq!(sent, "2,600");
    // The legend toggles a line.
    b.click(".u-legend .u-series:nth-child(2)").await.unwrap();
    b.wait_until(
        "return document.querySelector('.u-legend .u-series:nth-child(2)').classList.contains('u-off');",
        WAIT,
    )
    .await
    .unwrap();
    // One account: the totals follow, the address bar too (a bookmarkable view).
    let accounts = app
        .get(
            "/v1/organizations/acme-mail/cloud-accounts",
            &rita(&app).await.token,
        )
        .await;
    let second_id = accounts.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["accountId"] == second.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.client
        .find(fantoccini::Locator::Css("#account"))
        .await
        .unwrap()
        .select_by_value(&second_id)
        .await
        .unwrap();
    b.wait_until(
        "return document.querySelector('.stat .stat-value').innerText === '600';",
        WAIT,
    )
    .await
    .unwrap();
    assert!(
        b.path()
            .await
            .unwrap()
            .contains(&format!("account={second_id}"))
    );
    b.wait_until(
        "return document.querySelector('[data-chart]').getAttribute('data-series') === '1';",
        WAIT,
    )
    .await
    .unwrap();
    // Reloading that address shows the same view.
    b.client.refresh().await.unwrap();
    b.wait_until(
        "return document.querySelector('.stat .stat-value') && document.querySelector('.stat .stat-value').innerText === '600';",
        WAIT,
    )
    .await
    .unwrap();

    // Invite a member; the member joins and sees no admin control.
    let mo = app.sign_up("Mo").await;
    b.goto(&format!("{base}/org/acme-mail/settings/members"))
        .await
        .unwrap();
    b.fill("#email", &mo.email).await.unwrap();
    b.click("form[action='/org/acme-mail/settings/members'] button[type=submit]")
        .await
        .unwrap();
    b.wait_until("return location.search.includes('done=invited');", WAIT)
        .await
        .unwrap();
    let link = app
        .store
        .outbox()
        .unsent_for(&mo.email)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.kind == "invitation")
        .unwrap()
        .payload["link"]
        .as_str()
        .unwrap()
        .to_string();
    // The e-mail's link, on this server (the test's public URL is the default one).
    let path = &link[link.find("/invitations/").unwrap()..];
    let member = Browser::start(Window::DESKTOP).await.unwrap();
    member.goto(&format!("{base}{path}")).await.unwrap();
    member.click("a[href^='/login?next=']").await.unwrap();
    member.fill("#email", &mo.email).await.unwrap();
    member.fill("#password", PASSWORD).await.unwrap();
    member
        .click("form[action='/login'] button[type=submit]")
        .await
        .unwrap();
    member
        .wait_until(
            "return location.pathname.startsWith('/invitations/');",
            WAIT,
        )
        .await
        .unwrap();
    member.click("button[value='accept']").await.unwrap();
    member
        .wait_until(
            "return location.pathname === '/org/acme-mail/dashboard';",
            WAIT,
        )
        .await
        .unwrap();
    for (page, absent) in [
        ("settings/accounts", "a[href$='/settings/accounts/connect']"),
        (
            "settings/members",
            "form[action='/org/acme-mail/settings/members']",
        ),
        ("settings/members", "select[name='role']"),
        (
            "settings/organization",
            "form[action$='/settings/organization/delete']",
        ),
        ("billing", "button[name='tier']"),
        ("dashboard", "a[href$='/settings/audit']"),
    ] {
        member
            .goto(&format!("{base}/org/acme-mail/{page}"))
            .await
            .unwrap();
        let found = member
            .eval(&format!(
                "return document.querySelectorAll(\"{absent}\").length;"
            ))
            .await
            .unwrap();
        assert_eq!(found, 0, "a member sees {absent} on {page}");
    }
    member.close().await.unwrap();

    // A page on another origin posts a form to Canopy with Rita's cookie: refused.
    let evil = evil_site(&format!("{base}/org/acme-mail/settings/organization")).await;
    b.goto(&evil).await.unwrap();
    b.wait_until(
        "return document.body.innerText.includes('did not come from a Canopy page');",
        WAIT,
    )
    .await
    .unwrap();
    let org = app
        .get("/v1/organizations/acme-mail", &rita(&app).await.token)
        .await;
    assert_eq!(org.body["organization"]["name"], "Acme Mail");
    b.close().await.unwrap();
}

/// Rita as the API knows her (for reading what the browser did).
async fn rita(app: &TestApp) -> Session {
    let me = app
        .call(
            reqwest::Method::POST,
            "/v1/auth/login",
            None,
            Some(serde_json::json!({"email": "rita@example.com", "password": PASSWORD})),
        )
        .await;
    Session {
        token: me.body["token"].as_str().unwrap().to_string(),
        user_id: me.body["user"]["id"].as_str().unwrap().to_string(),
        email: "rita@example.com".into(),
    }
}

/// A one-page site on another local port whose page posts a form to `target` on load.
async fn evil_site(target: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let page = format!(
        "<!doctype html><html><body><form method=\"post\" action=\"{target}\">\
         <input name=\"csrf\" value=\"guessed\"><input name=\"name\" value=\"Pwned\">\
         <input name=\"slug\" value=\"pwned\"><input name=\"logo\" value=\"\"></form>\
         <script>document.forms[0].submit()</script></body></html>"
    );
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let page = page.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

/// With JavaScript off, the main forms still work: log in, create an organization, connect an
/// account (both providers' fields are there), the dashboard's figures behind a link, switch
/// organizations with the menu (details/summary), invite, log out.
#[tokio::test]
#[ignore = "needs chromium"]
async fn the_main_forms_work_without_javascript() {
    let (app, aws) = start().await;
    let base = app.server.url();
    let owner = app.sign_up("Jo").await;
    let b = Browser::start(Window {
        javascript: false,
        ..Window::DESKTOP
    })
    .await
    .unwrap();
    assert_eq!(
        b.eval("return typeof window.htmx;").await.unwrap(),
        Value::String("undefined".into()),
        "before any page"
    );
    b.log_in(&base, &owner.email, PASSWORD).await.unwrap();
    assert_eq!(
        b.eval("return typeof window.htmx;").await.unwrap(),
        "undefined"
    );
    let personal = slug_from(&b.path().await.unwrap());
    b.goto(&format!("{base}/orgs/new")).await.unwrap();
    b.fill("#name", "No Script").await.unwrap();
    b.fill("#slug", "no-script").await.unwrap();
    b.click("form[action='/orgs'] button[type=submit]")
        .await
        .unwrap();
    b.wait_until(
        "return location.pathname === '/org/no-script/dashboard';",
        WAIT,
    )
    .await
    .unwrap();
    let key = random_aws_account();
    sends(&app, &aws, &key, 10.0);
    b.goto(&format!("{base}/org/no-script/settings/accounts/connect"))
        .await
        .unwrap();
    let gcp_visible = b
        .eval("return document.getElementById('projectId').offsetParent !== null;")
        .await
        .unwrap();
    assert_eq!(gcp_visible, true, "without JavaScript every field is shown");
    b.fill("#accountId", &key).await.unwrap();
    b.fill("#roleArn", &format!("arn:aws:iam::{key}:role/CanopyAccess"))
        .await
        .unwrap();
    b.click("form[action$='/settings/accounts'] button[type=submit]")
        .await
        .unwrap();
    b.wait_until("return location.search.includes('done=connected');", WAIT)
        .await
        .unwrap();
    b.goto(&format!("{base}/org/no-script/dashboard"))
        .await
        .unwrap();
    b.click("noscript a, a[href*='figures=inline']").await.ok();
    b.goto(&format!(
        "{base}/org/no-script/dashboard?range=24h&figures=inline"
    ))
    .await
    .unwrap();
    let text = b.text().await.unwrap();
    assert!(text.contains("200"), "the totals are in the page: {text}");
    assert!(text.contains(&key), "{text}");
    // The switcher is a <details> menu: it opens and posts without JavaScript.
    b.click(".switcher > summary").await.unwrap();
    b.click(&format!(".switcher button[value='{personal}']"))
        .await
        .unwrap();
    b.wait_until(
        &format!("return location.pathname === '/org/{personal}/dashboard';"),
        WAIT,
    )
    .await
    .unwrap();
    app.set_tier("no-script", "individual").await;
    b.goto(&format!("{base}/org/no-script/settings/members"))
        .await
        .unwrap();
    b.fill("#email", "friend@example.com").await.unwrap();
    b.click("form[action='/org/no-script/settings/members'] button[type=submit]")
        .await
        .unwrap();
    b.wait_until("return location.search.includes('done=invited');", WAIT)
        .await
        .unwrap();
    assert!(b.text().await.unwrap().contains("friend@example.com"));
    b.click(".user-menu > summary").await.unwrap();
    b.click("form[action='/logout'] button").await.unwrap();
    b.wait_until("return location.pathname === '/login';", WAIT)
        .await
        .unwrap();
    b.close().await.unwrap();
}

const AXE: &str = include_str!("../assets/axe-core/axe.min.js");

/// axe-core 4.14.1 over every page, signed out and in (desktop and phone width): no serious
/// or critical violation of WCAG 2 A/AA.
#[tokio::test]
#[ignore = "needs chromium"]
async fn every_page_passes_axe() {
    let (app, aws) = start().await;
    let base = app.server.url();
    let owner = app.sign_up("Ally").await;
    let org = app.create_org_on(&owner, "Axe Org", "pro").await;
    let slug = app
        .get(&format!("/v1/organizations/{org}"), &owner.token)
        .await
        .body["organization"]["slug"]
        .as_str()
        .unwrap()
        .to_string();
    let key = random_aws_account();
    sends(&app, &aws, &key, 50.0);
    let mut body = canopy_e2e::aws_account_body(&key);
    body["environment"] = serde_json::json!("staging");
    let account = app
        .post(
            &format!("/v1/organizations/{org}/cloud-accounts"),
            &owner.token,
            body,
        )
        .await;
    let account = account.body["id"].as_str().unwrap().to_string();
    let teammate = app.sign_up("Tess").await;
    app.add_member(&org, &owner, &teammate, "member").await;
    let invitation = app
        .post(
            &format!("/v1/organizations/{org}/invitations"),
            &owner.token,
            serde_json::json!({"email": "later@example.com", "role": "member"}),
        )
        .await;
    let invitation = invitation.body["id"].as_str().unwrap().to_string();
    let org_pages = [
        "dashboard",
        "settings/accounts",
        &format!("settings/accounts/{account}"),
        "settings/accounts/connect",
        "settings/accounts/requests",
        "settings/members",
        "settings/organization",
        "settings/audit",
        "billing",
        "cloud-organizations",
        &format!("settings/accounts/{account}/coverage"),
    ];
    let mut checked = 0;
    for window in [Window::DESKTOP, Window::PHONE] {
        let b = Browser::start(window).await.unwrap();
        for page in [
            "/login",
            "/signup",
            "/pricing",
            &format!("/invitations/{invitation}"),
            "/forgot-password",
            "/reset-password?token=cnp_reset_unknown",
            "/verify-email?token=cnp_verify_unknown",
        ] {
            checked += audit(&b, &format!("{base}{page}")).await;
        }
        b.log_in(&base, &owner.email, PASSWORD).await.unwrap();
        for page in org_pages.iter() {
            checked += audit(&b, &format!("{base}/org/{slug}/{page}")).await;
        }
        for page in [
            "/orgs",
            "/orgs/new",
            "/settings/api-keys",
            "/account",
            "/no/such/page",
        ] {
            checked += audit(&b, &format!("{base}{page}")).await;
        }
        b.close().await.unwrap();
    }
    assert_eq!(checked, 2 * (7 + org_pages.len() + 5));
}

/// The coverage pages over the scanned demo estate (a cloud organization's overview and
/// heatmap, an account's own and inherited coverage) and the connect wizard's pages, desktop
/// and phone: no serious or critical violation either.
#[tokio::test]
#[ignore = "needs chromium"]
async fn the_coverage_pages_pass_axe() {
    let app = TestApp::start_with(
        "sqlite",
        Options {
            demo: true,
            ..Options::default()
        },
    )
    .await;
    let (_workers, done) = canopy_e2e::cloud_org::scanned_demo(&app).await.unwrap();
    let base = app.server.url();
    let slug = canopy_app::demo::SLUG;
    let aws = done.cloud_organizations[0];
    let token = canopy_e2e::cloud_org::demo_token(&app).await;
    let accounts = app
        .get(
            &format!("/v1/organizations/{slug}/cloud-accounts?limit=200"),
            &token,
        )
        .await;
    let inherited = accounts.body["items"]
        .as_array()
        .unwrap()
        .iter()
        // payments-prod, under the demo AWS Organization's OU Prod: it inherits.
        .find(|a| a["accountId"] == "310987654103")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pages = [
        "cloud-organizations".to_string(),
        format!("cloud-organizations/{aws}"),
        format!("cloud-organizations/{aws}/matrix"),
        format!("settings/accounts/{inherited}/coverage"),
        "cloud-organizations/connect".to_string(),
        "cloud-organizations/connect/aws".to_string(),
        "cloud-organizations/connect/gcp".to_string(),
        format!("cloud-organizations/{aws}/select"),
        format!("cloud-organizations/{aws}/members"),
        format!("cloud-organizations/{aws}/detections"),
        format!("cloud-organizations/{aws}/detections/new"),
        format!("cloud-organizations/{aws}/scans"),
        format!("settings/accounts/{inherited}/matrix"),
    ];
    let mut checked = 0;
    for window in [Window::DESKTOP, Window::PHONE] {
        let b = Browser::start(window).await.unwrap();
        b.log_in(&base, canopy_app::demo::EMAIL, canopy_app::demo::PASSWORD)
            .await
            .unwrap();
        for page in &pages {
            checked += audit(&b, &format!("{base}/org/{slug}/{page}")).await;
        }
        b.close().await.unwrap();
    }
    assert_eq!(checked, 2 * pages.len());

    // The picker narrows the catalog as one types and picks a tactic; the trend is drawn.
    let b = Browser::start(Window::DESKTOP).await.unwrap();
    b.log_in(&base, canopy_app::demo::EMAIL, canopy_app::demo::PASSWORD)
        .await
        .unwrap();
    b.goto(&format!(
        "{base}/org/{slug}/cloud-organizations/{aws}/detections/new"
    ))
    .await
    .unwrap();
    let visible = "return [...document.querySelectorAll('[data-pick]')].filter(li => !li.hidden).map(li => li.getAttribute('data-text'));";
    let all = b.eval(visible).await.unwrap();
    b.fill("[data-picker-q]", "t1562").await.unwrap();
    let narrowed = b.eval(visible).await.unwrap();
    let narrowed = narrowed.as_array().unwrap();
    assert!(!narrowed.is_empty() && narrowed.len() < all.as_array().unwrap().len());
    assert!(
        narrowed
            .iter()
            .all(|t| t.as_str().unwrap().contains("t1562"))
    );
    let count = b
        .eval("return document.querySelector('[data-picker-count]').textContent;")
        .await
        .unwrap();
    assert_eq!(count, Value::String(narrowed.len().to_string()));
    b.fill("[data-picker-q]", "").await.unwrap();
    b.eval("const s = document.querySelector('[data-picker-tactic]'); s.value = 'exfiltration'; s.dispatchEvent(new Event('change')); return 1;")
        .await
        .unwrap();
    let tactics = b
        .eval("return [...document.querySelectorAll('[data-pick]')].filter(li => !li.hidden).map(li => li.getAttribute('data-tactics'));")
        .await
        .unwrap();
    let tactics = tactics.as_array().unwrap();
    assert!(!tactics.is_empty());
    assert!(
        tactics
            .iter()
            .all(|t| t.as_str().unwrap().split(' ').any(|x| x == "exfiltration"))
    );
    b.goto(&format!(
        "{base}/org/{slug}/cloud-organizations/{aws}/scans"
    ))
    .await
    .unwrap();
    b.wait_until(
        "return !!document.querySelector('[data-chart][data-drawn]');",
        WAIT,
    )
    .await
    .unwrap();
    let series = b
        .eval("return document.querySelector('[data-chart]').getAttribute('data-series');")
        .await
        .unwrap();
    assert_eq!(series, Value::String("3".into()), "average, least and best");
    b.close().await.unwrap();
}

/// Runs axe on `url` once it settled; panics listing serious and critical violations.
async fn audit(b: &Browser, url: &str) -> usize {
    b.goto(url).await.unwrap();
    if url.ends_with("/dashboard") {
        b.wait_until(
            "return !!document.querySelector('[data-chart][data-drawn]');",
            WAIT,
        )
        .await
        .unwrap();
    }
    // WebDriver scripts run outside the page's CSP, as an extension would.
    b.client
        .execute(&format!("{AXE}\nreturn typeof window.axe;"), vec![])
        .await
        .unwrap();
    let found = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
               .then(r => done(r.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => ({ id: v.id, impact: v.impact, help: v.help,
                              nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')) }))))
               .catch(e => done([{ id: 'axe-error', help: String(e) }]));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(found, Value::Array(vec![]), "{url}: {found:#}");
    1
}

/// The wizard's tree in a browser, on an AWS Organization in moto: checking an OU checks its
/// twelve accounts; unchecking one leaves the OU partly checked (indeterminate); what is sent
/// on is the eleven accounts, not the OU, and the plan check counts eleven. Then the story
/// goes on: connect, "scan now" from the scans tab, and the gauge, the breakdown's top row
/// and the heatmap show the API's numbers; detections filtered by tactic through the form
/// list as many as the API; the Navigator layer the tab offers is a valid 4.5 layer.
#[tokio::test]
#[ignore = "needs chromium and moto"]
async fn the_tree_selects_subtrees_and_sends_what_is_checked() {
    use canopy_e2e::cloud_org::{app_with_worker, estate, job_done, organizations_as};
    let (app, _workers) = app_with_worker(
        "sqlite",
        Options {
            aws_endpoint_url: canopy_e2e::moto_url(),
            ..Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Treeowner").await;
    let org = app.create_org_on(&owner, "Tree Org", "pro").await;
    let slug = app.slug_of(&org, &owner.token).await;
    let management = random_aws_account();
    let e = estate(&organizations_as(&management).await, &management).await;
    let started = app
        .post(
            &format!("/v1/organizations/{org}/cloud-organizations/aws/discover"),
            &owner.token,
            serde_json::json!({"managementRoleArn": format!("arn:aws:iam::{management}:role/CanopyManagement")}),
        )
        .await;
    job_done(
        &app,
        &owner,
        &org,
        started.body["job"]["id"].as_str().unwrap(),
    )
    .await;
    let id = started.body["cloudOrganization"]["id"].as_str().unwrap();

    let base = app.server.url();
    let b = Browser::start(Window::DESKTOP).await.unwrap();
    b.log_in(&base, &owner.email, "correct horse battery")
        .await
        .unwrap();
    b.goto(&format!(
        "{base}/org/{slug}/cloud-organizations/{id}/select"
    ))
    .await
    .unwrap();
    let ou = format!("input[data-node][value='{}']", e.prod);
    b.click(&ou).await.unwrap();
    let checked_under_ou = format!(
        "return document.querySelector(\"{ou}\").closest('li.tree-node')
           .querySelectorAll('input[name=account]:checked').length;"
    );
    assert_eq!(b.eval(&checked_under_ou).await.unwrap(), Value::from(12));
    // Open the OU (its summary's label text) to reach one of its accounts.
    b.click(&format!(
        "li.tree-node:has(> input[value='{}']) > details > summary .badge",
        e.prod
    ))
    .await
    .unwrap();
    b.click(&format!("input[name=account][value='{}']", e.web[0]))
        .await
        .unwrap();
    let state = b
        .eval(&format!(
            "const box = document.querySelector(\"{ou}\");
             return [box.checked, box.indeterminate];"
        ))
        .await
        .unwrap();
    assert_eq!(state, serde_json::json!([false, true]));
    b.click("form.tree-form button[type=submit]").await.unwrap();
    b.wait_until("return location.pathname.endsWith('/confirm');", WAIT)
        .await
        .unwrap();
    let path = b.path().await.unwrap();
    assert_eq!(path.matches("account=").count(), 11, "{path}");
    assert!(!path.contains("under="), "{path}");
    assert!(!path.contains(e.web[0].as_str()), "{path}");
    assert!(b.text().await.unwrap().contains("Connect 11 accounts"));

    // Connect, scan from the scans tab, and the pages show the API's numbers.
    b.click("form[action$='/connect'] button[type=submit]")
        .await
        .unwrap();
    b.wait_until(
        "return !!document.querySelector('#job-progress[aria-busy=\"false\"] a.button.primary');",
        WAIT,
    )
    .await
    .unwrap();
    // An organization trail in moto, so the scan finds a control every account inherits.
    canopy_e2e::cloud_org::organization_trail(&management).await;
    let pages = format!("{base}/org/{slug}/cloud-organizations/{id}");
    b.goto(&format!("{pages}/scans")).await.unwrap();
    b.click("form[action$='/scans'] button[type=submit]")
        .await
        .unwrap();
    let api = format!("/v1/organizations/{org}/cloud-organizations/{id}");
    let mut status = Value::Null;
    for _ in 0..150 {
        status = app
            .get(&format!("{api}/scan-status"), &owner.token)
            .await
            .body;
        if status["members"]["id"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for scan in ["organization", "members"] {
        let job = status[scan]["id"].as_str().expect("both scans queued");
        let done = job_done(&app, &owner, &org, job).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    // The scans tab stops polling once nothing runs, both scans listed as succeeded.
    b.wait_until(
        "return document.querySelector('#scan-jobs').getAttribute('aria-busy') === 'false';",
        WAIT,
    )
    .await
    .unwrap();
    let view = app.get(&format!("{api}/coverage"), &owner.token).await.body;
    assert_eq!(view["accounts"].as_array().unwrap().len(), 11);
    b.goto(&pages).await.unwrap();
    let gauge = b
        .eval("return document.querySelector('.gauge-text').textContent;")
        .await
        .unwrap();
    assert_eq!(
        gauge,
        Value::String(format!("{:.2}%", view["average"].as_f64().unwrap()))
    );
    let first = b
        .eval("return [...document.querySelectorAll('table.breakdown tbody tr:first-child td')].map(td => td.textContent.trim());")
        .await
        .unwrap();
    let top = view["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| {
            a["percent"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["percent"].as_f64().unwrap())
                .then_with(|| b["account"].as_str().cmp(&a["account"].as_str()))
        })
        .unwrap();
    assert_eq!(first[0], top["account"], "{first}");
    assert_eq!(first[4], top["totalTechniques"].to_string(), "{first}");
    b.goto(&format!("{pages}/matrix")).await.unwrap();
    let total = view["accounts"].as_array().unwrap().len();
    for t in view["inEvery"].as_array().unwrap().iter().take(5) {
        let words = b
            .eval(&format!(
                "const c = document.querySelector('[data-technique=\"{}\"] .heat-count'); return c && c.textContent;",
                t.as_str().unwrap()
            ))
            .await
            .unwrap();
        if let Some(words) = words.as_str() {
            assert!(
                words.starts_with(&format!("covered in {total} of {total}")),
                "{t}: {words}"
            );
        }
    }
    // Detections filtered by a tactic through the form, as many as the API lists.
    b.goto(&format!("{pages}/detections")).await.unwrap();
    b.eval("document.querySelector('#f-tactic').value = 'defense-evasion'; return 1;")
        .await
        .unwrap();
    b.click("form.filters button[type=submit]").await.unwrap();
    b.wait_until(
        "return location.search.includes('tactic=defense-evasion');",
        WAIT,
    )
    .await
    .unwrap();
    let rows = b
        .eval("return document.querySelectorAll('main table tbody tr').length;")
        .await
        .unwrap();
    let listed = app
        .get(
            &format!("{api}/detections?tactic=defense-evasion&limit=200"),
            &owner.token,
        )
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        listed > 0,
        "the organization trail is listed under defense evasion"
    );
    assert_eq!(rows, Value::from(listed));
    // The Navigator layer the tab offers is a valid 4.5 layer.
    let layer = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.querySelector('a[download][href$=\"navigator-layer.json\"]').href)
               .then(r => r.json()).then(done).catch(e => done(String(e)));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(layer["versions"]["layer"], "4.5", "{layer}");
    assert_eq!(layer["domain"], "enterprise-attack");
    b.close().await.unwrap();
}

/// The wizard in a browser against the local Google: a service-account key chosen as a file,
/// the folders read four deep, one folder checked (its subtree with it), the plan checked,
/// its projects connected; the API then lists exactly those connected.
#[tokio::test]
#[ignore = "needs chromium"]
async fn the_wizard_connects_a_gcp_organization_through_a_key_upload() {
    use canopy_e2e::cloud_org::app_with_worker;
    use canopy_gcp_testkit::FakeGcp;
    const SA: &str = "canopy-reader@acme-admin.iam.gserviceaccount.com";
    let g = FakeGcp::start().await.unwrap();
    let root = g.add_organization(1001, "acme.example", "C0abc12");
    g.add_folder("folders/10", &root, "Engineering");
    g.add_folder("folders/11", "folders/10", "Platform");
    g.add_folder("folders/12", "folders/11", "Web");
    g.add_folder("folders/20", &root, "Finance");
    g.add_project("acme-root", 500, &root, "Root project", "ACTIVE");
    g.add_project("acme-platform", 502, "folders/11", "Platform", "ACTIVE");
    g.add_project("acme-web", 503, "folders/12", "Web", "ACTIVE");
    g.add_project("acme-eng", 504, "folders/10", "Engineering tools", "ACTIVE");
    g.add_project("acme-ledger", 505, "folders/20", "Ledger", "ACTIVE");
    g.set_page_size(2);
    let (app, _workers) = app_with_worker(
        "sqlite",
        Options {
            gcp_endpoint_url: g.url(),
            ..Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Gina").await;
    let org = app.create_org_on(&owner, "Acme GCP", "pro").await;
    let slug = app.slug_of(&org, &owner.token).await;
    let key = std::env::temp_dir().join(format!("canopy-key-{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&key, g.service_account_key_json(SA)).unwrap();
    let base = app.server.url();

    let b = Browser::start(Window::DESKTOP).await.unwrap();
    b.log_in(&base, &owner.email, PASSWORD).await.unwrap();
    b.goto(&format!(
        "{base}/org/{slug}/cloud-organizations/connect/gcp"
    ))
    .await
    .unwrap();
    b.fill("#organizationId", "1001").await.unwrap();
    b.upload("#keyFile", &key).await.unwrap();
    b.click("form[enctype='multipart/form-data'] button[type=submit]")
        .await
        .unwrap();
    b.wait_until(
        "return !!document.querySelector('#job-progress a.button.primary[href$=\"/select\"]');",
        WAIT,
    )
    .await
    .unwrap();
    b.click("#job-progress a.button.primary").await.unwrap();
    b.wait_until("return !!document.querySelector('[data-tree]');", WAIT)
        .await
        .unwrap();
    let tree = b.text().await.unwrap();
    for folder in ["Engineering", "Finance"] {
        assert!(tree.contains(folder), "{folder} in the tree: {tree}");
    }
    b.click("input[data-node][value='folders/10']")
        .await
        .unwrap();
    b.click("form.tree-form button[type=submit]").await.unwrap();
    b.wait_until(
        "return !!document.querySelector('form[action$=\"/connect\"]');",
        WAIT,
    )
    .await
    .unwrap();
    assert!(b.text().await.unwrap().contains("Connect 3 accounts"));
    b.click("form[action$='/connect'] button[type=submit]")
        .await
        .unwrap();
    b.wait_until(
        "return !!document.querySelector('#job-progress[aria-busy=\"false\"] a.button.primary');",
        WAIT,
    )
    .await
    .unwrap();
    b.close().await.unwrap();
    std::fs::remove_file(&key).ok();

    let list = app
        .get(
            &format!("/v1/organizations/{org}/cloud-organizations"),
            &owner.token,
        )
        .await;
    let id = list.body["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(list.body["items"][0]["provider"], "gcp");
    let members = app
        .get(
            &format!(
                "/v1/organizations/{org}/cloud-organizations/{id}/members?status=connected&limit=200"
            ),
            &owner.token,
        )
        .await;
    let mut connected: Vec<&str> = members.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["accountId"].as_str().unwrap())
        .collect();
    connected.sort_unstable();
    assert_eq!(connected, ["acme-eng", "acme-platform", "acme-web"]);
}
