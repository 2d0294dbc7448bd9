//! The console's cloud organizations: the list and one organization's coverage, on the demo
//! estate the job workers discovered, connected and scanned. The page shows the numbers the
//! API serves (average, each account's own, inherited, overlap, covered and percent), sorts
//! and pages the breakdown, is a 404 to another tenant, and on a plan without organization
//! features the list says what they would give and where to get them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::cloud_org::{DemoConsole, demo_console};
use canopy_e2e::console::Visitor;
use canopy_e2e::{Options, on_both_backends};
use reqwest::StatusCode;
use serde_json::Value;

on_both_backends!(
    by_name;
    the_organization_coverage_page_shows_what_the_api_serves,
);

/// `45.25%`, as the console writes a percent.
fn percent(v: &Value) -> String {
    format!("{:.2}%", v.as_f64().unwrap())
}

/// The breakdown's rows as (account, cells) in page order.
fn breakdown_rows(html: &str) -> Vec<(String, Vec<String>)> {
    let table = html
        .split("<table class=\"table breakdown\">")
        .nth(1)
        .expect("a breakdown table")
        .split("</table>")
        .next()
        .unwrap();
    table
        .split("<tr>")
        .skip(1)
        .filter(|row| row.contains("<td"))
        .map(|row| {
            let account = row
                .split("<code>")
                .nth(1)
                .and_then(|s| s.split("</code>").next())
                .unwrap()
                .to_string();
            let cells = row
                .split("<td class=\"num\">")
                .skip(1)
                .map(|c| {
                    let c = c.split("</td>").next().unwrap();
                    // The percent cell leads with its bar.
                    c.rsplit("</progress>").next().unwrap().trim().to_string()
                })
                .collect();
            (account, cells)
        })
        .collect()
}

async fn the_organization_coverage_page_shows_what_the_api_serves(backend: &str) {
    let DemoConsole {
        app,
        workers: _workers,
        done,
        owner: visitor,
        token,
    } = demo_console(backend).await;
    let slug = canopy_app::demo::SLUG;

    // The list: both organizations, their status and members, linked.
    let list = visitor
        .get(&format!("/org/{slug}/cloud-organizations"))
        .await;
    list.expect(StatusCode::OK);
    assert!(
        list.body
            .contains("aria-current=\"page\">Cloud organizations"),
        "the sidebar marks the section"
    );
    for id in &done.cloud_organizations {
        let api = app
            .get(
                &format!("/v1/organizations/{slug}/cloud-organizations/{id}"),
                &token,
            )
            .await;
        let name = api.body["name"].as_str().unwrap();
        assert!(list.body.contains(name), "{name} listed");
        assert!(list.body.contains(&format!("/cloud-organizations/{id}\"")));
        assert!(list.body.contains(&format!(
            "{} <span class=\"muted\">of {}</span>",
            api.body["connectedCount"], api.body["discoveredCount"]
        )));
    }
    assert!(!list.body.contains("plan-gate"), "Pro has the features");

    // One organization's coverage: the same numbers as the API's view.
    let aws = done.cloud_organizations[0];
    let path = format!("/org/{slug}/cloud-organizations/{aws}");
    let page = visitor.get(&path).await;
    page.expect(StatusCode::OK);
    let view = app
        .get(
            &format!("/v1/organizations/{slug}/cloud-organizations/{aws}/coverage"),
            &token,
        )
        .await
        .body;
    assert!(
        page.body.contains(&format!(
            "class=\"gauge-text\">{}<",
            percent(&view["average"])
        )),
        "the gauge shows the average {}",
        view["average"]
    );
    let rows = breakdown_rows(&page.body);
    let accounts = view["accounts"].as_array().unwrap();
    assert_eq!(rows.len(), accounts.len());
    for a in accounts {
        let key = a["account"].as_str().unwrap();
        let (_, cells) = rows
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("{key} in the breakdown"));
        let (own, inherited, total) = (
            a["ownTechniques"].as_u64().unwrap(),
            a["inheritedTechniques"].as_u64().unwrap(),
            a["totalTechniques"].as_u64().unwrap(),
        );
        assert_eq!(
            cells[..4],
            [
                own.to_string(),
                inherited.to_string(),
                (own + inherited - total).to_string(),
                total.to_string()
            ],
            "{key}: own, inherited, overlap, covered"
        );
        assert!(
            cells[4].starts_with(&percent(&a["percent"])),
            "{key}: {cells:?}"
        );
    }
    // Sorted by coverage, highest first, unless asked otherwise.
    let percents: Vec<f64> = rows
        .iter()
        .map(|(_, c)| c[4].split('%').next().unwrap().parse().unwrap())
        .collect();
    assert!(percents.windows(2).all(|w| w[0] >= w[1]), "{percents:?}");
    let by_account = visitor.get(&format!("{path}?sort=account&dir=asc")).await;
    let keys: Vec<String> = breakdown_rows(&by_account.body)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(keys, expected);
    assert!(by_account.body.contains("aria-sort=\"ascending\""));

    // The heatmap says, for every technique the view counts, in how many accounts.
    let matrix = visitor.get(&format!("{path}/matrix")).await;
    matrix.expect(StatusCode::OK);
    let total = accounts.len() as u64;
    let lacking = |id: &str| {
        view["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["technique"] == id)
            .map_or(0, |g| g["accountsLacking"].as_u64().unwrap())
    };
    let unknown = |id: &str| {
        view["unknown"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["technique"] == id)
            .map_or(0, |u| u["accounts"].as_u64().unwrap())
    };
    let mut checked = 0;
    for id in view["inEvery"]
        .as_array()
        .unwrap()
        .iter()
        .chain(view["inSome"].as_array().unwrap())
        .chain(
            view["gaps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| &g["technique"]),
        )
        .map(|v| v.as_str().unwrap())
    {
        let Some(cell) = matrix
            .body
            .split(&format!("data-technique=\"{id}\""))
            .nth(1)
        else {
            continue; // Not an IaaS entry of the matrix (a parent shown only for its children).
        };
        let words = cell
            .split("<span class=\"heat-count\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap();
        let (l, u) = (lacking(id), unknown(id));
        let mut expected = format!("covered in {} of {total}", total - l - u);
        if u > 0 {
            expected.push_str(&format!(", unknown in {u}"));
        }
        assert!(
            words.starts_with(&expected),
            "{id}: {words:?}, expected {expected:?}"
        );
        checked += 1;
    }
    assert!(checked > 20, "only {checked} techniques checked");
    assert!(
        matrix.body.contains("heat-unknown"),
        "the demo has unknown coverage"
    );

    // An account's page: the identity and both lists, as the API counts them.
    let first = &accounts[0];
    let account_id = first["cloudAccountId"].as_str().unwrap();
    let api = app
        .get(
            &format!("/v1/organizations/{slug}/cloud-accounts/{account_id}/coverage"),
            &token,
        )
        .await
        .body;
    let b = &api["breakdown"];
    let len = |v: &Value| v.as_array().map_or(0, Vec::len);
    let page = visitor
        .get(&format!(
            "/org/{slug}/settings/accounts/{account_id}/coverage"
        ))
        .await;
    page.expect(StatusCode::OK);
    let identity = format!(
        "<strong>{}</strong> own</span> <span aria-hidden=\"true\">+</span><span class=\"sr-only\">plus</span> <span><strong>{}</strong> inherited</span> <span aria-hidden=\"true\">−</span><span class=\"sr-only\">minus</span> <span><strong>{}</strong> covered by both</span> <span aria-hidden=\"true\">=</span><span class=\"sr-only\">equals</span> <span><strong>{}</strong> covered",
        len(&b["accountTechniques"]),
        len(&b["orgTechniques"]),
        len(&b["overlapTechniques"]),
        b["totalTechniques"]
    );
    assert!(page.body.contains(&identity), "{identity}\n{}", page.body);
    let detections = app
        .get(
            &format!(
                "/v1/organizations/{slug}/cloud-accounts/{account_id}/detections?scope=organization&limit=200"
            ),
            &token,
        )
        .await
        .body;
    let inherited = len(&detections["items"]);
    assert!(
        inherited > 0,
        "the demo account inherits organization controls"
    );
    assert!(page.body.contains(&format!(
        "Inherited from its organization <span class=\"muted small\">{inherited}</span>"
    )));
    assert!(
        page.body.contains("Applies because"),
        "each inherited one says why"
    );

    // Both Navigator layers download as the API serves them.
    for (console, api) in [
        (
            format!("/org/{slug}/settings/accounts/{account_id}/navigator-layer.json"),
            format!("/v1/organizations/{slug}/coverage/navigator-layer?account={account_id}"),
        ),
        (
            format!("{path}/navigator-layer.json"),
            format!("/v1/organizations/{slug}/coverage/navigator-layer?cloudOrganization={aws}"),
        ),
    ] {
        let file = visitor.get(&console).await;
        file.expect(StatusCode::OK);
        assert!(
            file.header("content-disposition")
                .is_some_and(|d| d.starts_with("attachment; filename=\"canopy-")),
            "{console}"
        );
        let layer: Value = serde_json::from_str(&file.body).unwrap();
        assert_eq!(layer["versions"]["layer"], "4.5");
        assert_eq!(layer, app.get(&api, &token).await.body, "{console}");
    }

    // Another tenant: the demo's cloud organization is a 404 under their own slug too.
    let otto = app.sign_up("otto").await;
    let otto_org = app.create_org_on(&otto, "Otto Pro", "pro").await;
    let otto_slug = app
        .get(&format!("/v1/organizations/{otto_org}"), &otto.token)
        .await
        .body["organization"]["slug"]
        .as_str()
        .unwrap()
        .to_string();
    let stranger = Visitor::new(&app);
    stranger.log_in(&otto.email, "correct horse battery").await;
    stranger.get(&path).await.expect(StatusCode::NOT_FOUND);
    stranger
        .get(&format!("/org/{otto_slug}/cloud-organizations/{aws}"))
        .await
        .expect(StatusCode::NOT_FOUND);
    stranger
        .get(&format!("{path}/matrix"))
        .await
        .expect(StatusCode::NOT_FOUND);
    stranger
        .get(&format!("{path}/navigator-layer.json"))
        .await
        .expect(StatusCode::NOT_FOUND);
    stranger
        .get(&format!(
            "/org/{otto_slug}/settings/accounts/{account_id}/coverage"
        ))
        .await
        .expect(StatusCode::NOT_FOUND);
    stranger
        .get(&format!("/org/{otto_slug}/cloud-organizations/not-an-id"))
        .await
        .expect(StatusCode::NOT_FOUND);
    let empty = stranger
        .get(&format!("/org/{otto_slug}/cloud-organizations"))
        .await;
    empty.expect(StatusCode::OK);
    assert!(empty.body.contains("No cloud organization connected"));
    assert!(!empty.body.contains("plan-gate"));

    // On Free, the list says what the features give and which plan has them.
    let free_org = app.create_org(&otto, "Otto Free").await;
    let free_slug = app
        .get(&format!("/v1/organizations/{free_org}"), &otto.token)
        .await
        .body["organization"]["slug"]
        .as_str()
        .unwrap()
        .to_string();
    let gated = stranger
        .get(&format!("/org/{free_slug}/cloud-organizations"))
        .await;
    gated.expect(StatusCode::OK);
    assert!(gated.body.contains("plan-gate"), "{}", gated.body);
    assert!(
        gated.body.contains("come with the Pro plan"),
        "{}",
        gated.body
    );
    assert!(
        gated
            .body
            .contains(&format!("href=\"/org/{free_slug}/billing\""))
    );

    // Its detections, filtered by tactic: the ones the API lists for that tactic, each with
    // where it applies; an unknown technique lists none and says so.
    for tactic in ["", "defense-evasion", "discovery"] {
        let api = app
            .get(
                &format!(
                    "/v1/organizations/{slug}/cloud-organizations/{aws}/detections?limit=200{}",
                    if tactic.is_empty() {
                        String::new()
                    } else {
                        format!("&tactic={tactic}")
                    }
                ),
                &token,
            )
            .await;
        let listed = api.body["items"].as_array().unwrap();
        let page = visitor
            .get(&format!(
                "/org/{slug}/cloud-organizations/{aws}/detections?tactic={tactic}"
            ))
            .await;
        page.expect(StatusCode::OK);
        let rows = page.body.split("<tbody>").nth(1).map_or(0, |b| {
            b.split("</tbody>").next().unwrap().matches("<tr>").count()
        });
        assert_eq!(rows, listed.len(), "tactic {tactic:?}");
        assert!(
            !tactic.is_empty() || rows > 0,
            "the demo organization has detections"
        );
        for d in listed {
            assert!(
                page.body
                    .contains(&html_escaped(d["name"].as_str().unwrap()))
            );
        }
    }
    let all = visitor
        .get(&format!("/org/{slug}/cloud-organizations/{aws}/detections"))
        .await;
    assert!(
        all.body.contains("every account") || all.body.contains("under Root"),
        "{}",
        all.body
    );
    let none = visitor
        .get(&format!(
            "/org/{slug}/cloud-organizations/{aws}/detections?technique=T9999"
        ))
        .await;
    none.expect(StatusCode::OK);
    assert!(none.body.contains("None matches these filters"));
}

/// `s` as askama writes it in text.
fn html_escaped(s: &str) -> String {
    s.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

on_both_backends!(
    by_name, needs moto;
    the_wizard_connects_an_aws_organization_from_the_local_aws,
);

/// Polls the console page of a job (as htmx does) until it shows `done`; the last fragment.
async fn job_page_until(owner: &Visitor, path: &str, done: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let page = owner.get_with(path, &[("hx-request", "true")]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        if page.body.contains(done) {
            return page.body.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job never showed {done:?}:\n{}",
            page.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Provider, credentials (a refusal in words, then the management role), discovery's
/// progress, the tree with every account under its OU, a text filter, the plan check, the
/// connect and its progress; a member is refused every step and another tenant finds none.
/// Then the members page: exclude and include one, sync now, and disconnect with the typed
/// id (a wrong one refused), the accounts staying as standalone ones.
async fn the_wizard_connects_an_aws_organization_from_the_local_aws(backend: &str) {
    use canopy_e2e::cloud_org::{app_with_worker, estate, organizations_as};
    let (app, _workers) = app_with_worker(
        backend,
        Options {
            aws_endpoint_url: canopy_e2e::moto_url(),
            ..Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Wizardowner").await;
    let member = app.sign_up("Wizardmember").await;
    let org = app.create_org_on(&owner, "Wizard Org", "pro").await;
    app.add_member(&org, &owner, &member, "member").await;
    let slug = app.slug_of(&org, &owner.token).await;
    let management = canopy_e2e::random_aws_account();
    let e = estate(&organizations_as(&management).await, &management).await;

    let visitor = Visitor::new(&app);
    visitor.log_in(&owner.email, "correct horse battery").await;
    let base = format!("/org/{slug}/cloud-organizations");
    let start = visitor.get(&format!("{base}/connect")).await;
    start.expect(StatusCode::OK);
    assert!(start.body.contains("AWS Organization") && start.body.contains("GCP Organization"));
    let form = visitor.get(&format!("{base}/connect/aws")).await;
    form.expect(StatusCode::OK);
    assert!(form.body.contains("sts:ExternalId"), "{}", form.body);

    // Not an ARN: the rule beside the field. An account in no organization: said in words.
    let bad = visitor
        .post(
            &format!("{base}/connect/aws"),
            &[("managementRoleArn", "not-an-arn")],
        )
        .await;
    bad.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("managementRoleArn-error"), "{}", bad.body);
    let loner = canopy_e2e::random_aws_account();
    let alone = visitor
        .post(
            &format!("{base}/connect/aws"),
            &[(
                "managementRoleArn",
                &format!("arn:aws:iam::{loner}:role/Canopy"),
            )],
        )
        .await;
    assert_eq!(
        alone.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        alone.body
    );
    assert!(alone.body.contains("role=\"alert\""), "{}", alone.body);

    let started = visitor
        .post(
            &format!("{base}/connect/aws"),
            &[(
                "managementRoleArn",
                &format!("arn:aws:iam::{management}:role/CanopyManagement"),
            )],
        )
        .await;
    started.expect(StatusCode::SEE_OTHER);
    let progress = started.location().unwrap().to_string();
    let id = progress.split('/').nth(4).unwrap().to_string();
    visitor.get(&progress).await.expect(StatusCode::OK);
    job_page_until(&visitor, &progress, "Choose the accounts to connect").await;

    // Every account, under its OU, with the OU's count; the filter narrows to one.
    let tree = visitor.get(&format!("{base}/{id}/select")).await;
    tree.expect(StatusCode::OK);
    for account in &e.web {
        assert!(tree.body.contains(account.as_str()), "{account} missing");
    }
    assert!(tree.body.contains("Production") && tree.body.contains("12 accounts"));
    let found = visitor.get(&format!("{base}/{id}/select?q=web-12")).await;
    assert!(found.body.contains(e.web[12].as_str()));
    assert!(!found.body.contains(e.web[0].as_str()));

    // A member sees none of it; another tenant's cloud organization is a 404.
    let as_member = Visitor::new(&app);
    as_member
        .log_in(&member.email, "correct horse battery")
        .await;
    for path in [
        format!("{base}/connect"),
        format!("{base}/connect/aws"),
        format!("{base}/{id}/select"),
        format!("{base}/{id}/confirm?under={}", e.prod),
    ] {
        assert_eq!(
            as_member.get(&path).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let stranger = app.sign_up("Stranger").await;
    let elsewhere = app.create_org_on(&stranger, "Elsewhere", "pro").await;
    let their_slug = app.slug_of(&elsewhere, &stranger.token).await;
    let theirs = Visitor::new(&app);
    theirs
        .log_in(&stranger.email, "correct horse battery")
        .await;
    let foreign = theirs
        .get(&format!(
            "/org/{their_slug}/cloud-organizations/{id}/select"
        ))
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);

    // The plan check, then the connect of Production's twelve and its progress.
    let check = visitor
        .get(&format!("{base}/{id}/confirm?under={}", e.prod))
        .await;
    check.expect(StatusCode::OK);
    assert!(check.body.contains("Connect 12 accounts"), "{}", check.body);
    assert!(check.body.contains("All 12 fit"), "{}", check.body);
    let connected = visitor
        .post(
            &format!("{base}/{id}/connect"),
            &[("under", e.prod.as_str())],
        )
        .await;
    connected.expect(StatusCode::SEE_OTHER);
    let job = connected.location().unwrap().to_string();
    job_page_until(&visitor, &job, "See the organization").await;
    let accounts = app
        .get(
            &format!("/v1/organizations/{org}/cloud-accounts?limit=100"),
            &owner.token,
        )
        .await;
    let keys: Vec<&str> = accounts.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["accountId"].as_str())
        .collect();
    for account in &e.web[..12] {
        assert!(
            keys.contains(&account.as_str()),
            "{account} not connected: {keys:?}"
        );
    }
    assert!(
        !keys.contains(&e.web[12].as_str()),
        "Development was not chosen"
    );
    // Connected ones cannot be chosen again.
    let after = visitor.get(&format!("{base}/{id}/select")).await;
    assert_eq!(
        after.body.matches(">connected</span>").count(),
        12,
        "{}",
        after.body
    );
    // Members and changes: exclude the one left, include it again; a member may not.
    let members = visitor.get(&format!("{base}/{id}/members")).await;
    members.expect(StatusCode::OK);
    assert_eq!(
        members
            .body
            .matches("<td><span class=\"badge status-active\">connected</span>")
            .count(),
        12
    );
    let dev = e.web[12].as_str();
    let exclude = format!("{base}/{id}/members/{dev}/exclude");
    as_member
        .get(&format!("{base}/{id}/members"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        as_member.post(&exclude, &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let excluded = visitor.post(&exclude, &[]).await;
    excluded.expect(StatusCode::SEE_OTHER);
    let shown = visitor.follow(&excluded).await;
    assert!(shown.body.contains(">excluded</span>"), "{}", shown.body);
    let check = visitor
        .get(&format!("{base}/{id}/confirm?account={dev}"))
        .await;
    assert!(
        check
            .body
            .contains("None of the chosen accounts can be connected")
    );
    visitor
        .post(&format!("{base}/{id}/members/{dev}/include"), &[])
        .await
        .expect(StatusCode::SEE_OTHER);

    // Sync now: a discovery job whose page follows it to the end.
    let synced = visitor.post(&format!("{base}/{id}/sync"), &[]).await;
    synced.expect(StatusCode::SEE_OTHER);
    job_page_until(
        &visitor,
        synced.location().unwrap(),
        "Choose the accounts to connect",
    )
    .await;

    // Disconnect: the typed id must match; then the accounts stay, standalone.
    let root = app
        .get(
            &format!("/v1/organizations/{org}/cloud-organizations/{id}"),
            &owner.token,
        )
        .await
        .body["cloudOrgId"]
        .as_str()
        .unwrap()
        .to_string();
    let wrong = visitor
        .post(
            &format!("{base}/{id}/disconnect"),
            &[("confirm", "o-nottheone")],
        )
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        wrong.body
    );
    assert!(wrong.body.contains("role=\"alert\""));
    let gone = visitor
        .post(
            &format!("{base}/{id}/disconnect"),
            &[("confirm", root.as_str())],
        )
        .await;
    gone.expect(StatusCode::SEE_OTHER);
    let list = visitor.follow(&gone).await;
    assert!(
        list.body.contains("12 connected account(s) stay connected"),
        "{}",
        list.body
    );
    assert_eq!(
        visitor.get(&format!("{base}/{id}/members")).await.status,
        StatusCode::NOT_FOUND
    );
    let still = app
        .get(
            &format!("/v1/organizations/{org}/cloud-accounts?limit=100"),
            &owner.token,
        )
        .await;
    assert_eq!(still.body["items"].as_array().unwrap().len(), 12);
}
