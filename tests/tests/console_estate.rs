//! The console's cloud-organization pages past the overview, on the demo estate the job
//! workers discovered, connected and scanned: the scans tab (history, "scan now" followed to
//! its end, one scan per scanner and per account), the coverage trend beside the API's
//! history, one account's matrix by quality, the breakdown narrowed to an OU, the sidebar and
//! switcher carrying the cloud organizations, and custom detections made, changed and deleted
//! through the form with its technique picker. Roles and tenants are refused as the API
//! refuses them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use canopy_e2e::cloud_org::{DemoConsole, demo_console};
use canopy_e2e::console::Visitor;
use canopy_e2e::{Session, TestApp, on_both_backends};
use reqwest::StatusCode;
use serde_json::Value;

on_both_backends!(
    by_name;
    the_estate_pages_agree_with_the_api,
);

/// The text between `start` and the next `end` after it.
fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    s.split_once(start)?.1.split(end).next()
}

/// Rows of the first `<tbody>` after `marker`.
fn rows_after<'a>(html: &'a str, marker: &str) -> Vec<&'a str> {
    between(html, marker, "</tbody>")
        .and_then(|s| s.split_once("<tbody>"))
        .map(|(_, body)| body.split("<tr").skip(1).collect())
        .unwrap_or_default()
}

/// The breakdown's account ids, in page order.
fn breakdown_accounts(html: &str) -> Vec<String> {
    rows_after(html, "<table class=\"table breakdown\">")
        .iter()
        .filter_map(|r| between(r, "<code>", "</code>").map(str::to_string))
        .collect()
}

/// Polls a scan's page until its job reached `succeeded`.
async fn scan_done(visitor: &Visitor, path: &str) -> String {
    for _ in 0..240 {
        let page = visitor.get(path).await;
        page.expect(StatusCode::OK);
        if page.body.contains("status-active\">succeeded") {
            return page.body;
        }
        assert!(!page.body.contains(">failed<"), "{}", page.body);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{path} did not finish within a minute");
}

async fn the_estate_pages_agree_with_the_api(backend: &str) {
    let DemoConsole {
        app,
        workers: _workers,
        done,
        owner,
        token,
    } = demo_console(backend).await;
    let slug = canopy_app::demo::SLUG;
    let aws = done.cloud_organizations[0];
    let base = format!("/org/{slug}/cloud-organizations/{aws}");
    let api = format!("/v1/organizations/{slug}/cloud-organizations/{aws}");

    // The sidebar and the switcher carry the cloud organizations, the one in view marked.
    let overview = owner.get(&base).await;
    overview.expect(StatusCode::OK);
    let subnav = between(&overview.body, "<ul class=\"plain subnav\"", "</ul>").unwrap();
    for id in &done.cloud_organizations {
        assert!(
            subnav.contains(&format!("/cloud-organizations/{id}\"")),
            "{subnav}"
        );
    }
    assert!(
        subnav.contains(&format!("{aws}\" aria-current=\"page\"")),
        "{subnav}"
    );
    let name = app.get(&api, &token).await.body["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        between(&overview.body, "cloud-switcher", "</summary>")
            .unwrap()
            .contains(&name),
        "the switcher names the cloud organization in view"
    );

    // By category: the accounts' average, as their own pages' figures average.
    let view = app.get(&format!("{api}/coverage"), &token).await.body;
    let mut sums = [0.0_f64; 3];
    let members = view["accounts"].as_array().unwrap();
    for a in members {
        let id = a["cloudAccountId"].as_str().unwrap();
        let c = app
            .get(
                &format!("/v1/organizations/{slug}/cloud-accounts/{id}/coverage"),
                &token,
            )
            .await
            .body;
        for (i, k) in ["detect", "protect", "respond"].iter().enumerate() {
            sums[i] += c["byCategory"][k]["percent"].as_f64().unwrap();
        }
    }
    let categories = rows_after(&overview.body, "id=\"category-title\"");
    assert_eq!(categories.len(), 3);
    for (i, row) in categories.iter().enumerate() {
        let shown: f64 = between(row, "</progress>", "%").unwrap().parse().unwrap();
        let expected = sums[i] / members.len() as f64;
        assert!(
            (shown - expected).abs() < 0.1,
            "category {i}: {shown} vs {expected}"
        );
    }
    assert!(rows_after(&overview.body, "id=\"tactic-title\"").len() > 5);

    // The breakdown narrowed to an OU: exactly the connected members the API finds under it.
    let tree = app.get(&format!("{api}/hierarchy"), &token).await.body;
    let ou = tree["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| !n["parentId"].is_null() && n["totalMembers"].as_u64().unwrap() > 0)
        .min_by_key(|n| n["totalMembers"].as_u64().unwrap())
        .expect("an OU with members")
        .clone();
    let ou_id = ou["id"].as_str().unwrap();
    let under = app
        .get(
            &format!("{api}/members?under={ou_id}&status=connected&limit=200"),
            &token,
        )
        .await
        .body;
    let expected: BTreeSet<String> = under["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["accountId"].as_str().unwrap().to_string())
        .collect();
    let all = breakdown_accounts(&overview.body);
    let narrowed = owner
        .get(&format!("{base}?under={}", urlencoding(ou_id)))
        .await;
    narrowed.expect(StatusCode::OK);
    let shown: BTreeSet<String> = breakdown_accounts(&narrowed.body).into_iter().collect();
    assert_eq!(shown, expected, "accounts under {}", ou["path"]);
    assert!(
        shown.len() < all.len(),
        "the OU is a part of the organization"
    );
    assert!(narrowed.body.contains("data-narrowed"));
    let sorted = owner
        .get(&format!(
            "{base}?under={}&sort=account&dir=asc",
            urlencoding(ou_id)
        ))
        .await;
    let mut keys = breakdown_accounts(&sorted.body);
    assert_eq!(keys.len(), expected.len(), "sorting keeps the subtree");
    keys.sort();
    assert_eq!(keys, breakdown_accounts(&sorted.body));

    // The scans tab: what ran, and the trend beside the API's history.
    let scans = owner.get(&format!("{base}/scans")).await;
    scans.expect(StatusCode::OK);
    assert!(scans.body.contains("Organization controls scan"));
    assert!(scans.body.contains("Member accounts scan"));
    let history = app
        .get(&format!("{api}/coverage/history"), &token)
        .await
        .body;
    let snapshots = history["snapshots"].as_array().unwrap();
    assert!(!snapshots.is_empty(), "the demo scans took snapshots");
    let words = if snapshots.len() == 1 {
        "snapshot"
    } else {
        "snapshots"
    };
    assert!(
        scans
            .body
            .contains(&format!("{} {words}, ", snapshots.len())),
        "{}",
        scans.body
    );
    let newest = rows_after(&scans.body, "data-trend");
    assert_eq!(
        newest.len(),
        snapshots.len().min(10),
        "the latest snapshots listed"
    );
    let last = snapshots.last().unwrap();
    assert!(
        newest[0].contains(&format!("{:.2}%", last["percent"].as_f64().unwrap())),
        "{}",
        newest[0]
    );

    // Scan now: both scans queue, the page follows them, and each scan's page ends with the
    // results the API reports.
    let before = app.get(&format!("{api}/scan-status"), &token).await.body;
    let queued = owner.post(&format!("{base}/scans"), &[]).await;
    queued.expect(StatusCode::SEE_OTHER);
    assert_eq!(queued.location(), Some(format!("{base}/scans").as_str()));
    let status = app.get(&format!("{api}/scan-status"), &token).await.body;
    let (org_job, members_job) = (
        status["organization"]["id"].as_str().unwrap().to_string(),
        status["members"]["id"].as_str().unwrap().to_string(),
    );
    assert_ne!(org_job, before["organization"]["id"].as_str().unwrap());
    assert_ne!(members_job, before["members"]["id"].as_str().unwrap());
    let org_page = scan_done(&owner, &format!("{base}/scans/{org_job}")).await;
    let members_page = scan_done(&owner, &format!("{base}/scans/{members_job}")).await;
    let status = app.get(&format!("{api}/scan-status"), &token).await.body;
    assert_eq!(
        rows_after(&org_page, "By scanner").len(),
        status["scanners"].as_array().unwrap().len()
    );
    assert_eq!(
        rows_after(&members_page, "By account").len() as u64,
        status["accountsScanned"].as_u64().unwrap()
    );
    assert!(members_page.contains(&format!("{} accounts scanned", status["accountsScanned"])));
    let listed = owner.get(&format!("{base}/scans")).await;
    assert!(listed.body.contains(&format!("/scans/{members_job}\"")));
    // A discovery is not a scan: its id under /scans is a 404, and so is nonsense.
    let jobs = app
        .get(&format!("/v1/organizations/{slug}/jobs?limit=200"), &token)
        .await
        .body;
    let discovery = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "cloud_organization.discover" && j["subject"] == aws.to_string())
        .map(|j| j["id"].as_str().unwrap().to_string());
    if let Some(discovery) = discovery {
        owner
            .get(&format!("{base}/scans/{discovery}"))
            .await
            .expect(StatusCode::NOT_FOUND);
    }
    owner
        .get(&format!("{base}/scans/not-a-job"))
        .await
        .expect(StatusCode::NOT_FOUND);

    // One account: its matrix coloured by the quality the API reports, and its history.
    let view = app.get(&format!("{api}/coverage"), &token).await.body;
    let account = view["accounts"][0]["cloudAccountId"]
        .as_str()
        .unwrap()
        .to_string();
    let coverage = app
        .get(
            &format!("/v1/organizations/{slug}/cloud-accounts/{account}/coverage"),
            &token,
        )
        .await
        .body;
    let matrix = owner
        .get(&format!("/org/{slug}/settings/accounts/{account}/matrix"))
        .await;
    matrix.expect(StatusCode::OK);
    assert!(
        between(&matrix.body, "data-membership>", "</p>")
            .unwrap()
            .contains(&name),
        "the account's page names its cloud organization"
    );
    let mut checked = 0;
    for t in coverage["techniques"].as_array().unwrap() {
        let id = t["technique"].as_str().unwrap();
        let marker = format!("data-technique=\"{id}\"");
        let Some((before, _)) = matrix.body.split_once(&marker) else {
            continue;
        };
        let cell = before.rsplit("class=\"heat heat-").next().unwrap();
        let band = &cell[..1];
        let expected = match (t["status"].as_str().unwrap(), t["quality"].as_str()) {
            ("covered", Some("significant")) => "5",
            ("covered", Some("partial")) => "3",
            ("covered", _) => "2",
            ("degraded", _) => "1",
            _ => "0",
        };
        assert_eq!(band, expected, "{id}: {t}");
        assert_eq!(
            cell.contains("heat-unknown"),
            t["status"] == "unknown",
            "{id} hatched exactly when unknown"
        );
        checked += 1;
    }
    assert!(checked > 20, "only {checked} cells checked");
    let account_page = owner
        .get(&format!("/org/{slug}/settings/accounts/{account}/coverage"))
        .await;
    let account_history = app
        .get(
            &format!("/v1/organizations/{slug}/cloud-accounts/{account}/coverage/history"),
            &token,
        )
        .await
        .body;
    let n = account_history["snapshots"].as_array().unwrap().len();
    assert!(n > 0);
    assert_eq!(
        rows_after(&account_page.body, "data-trend").len(),
        n.min(10)
    );
    let chart: Value = serde_json::from_str(&html_unescape(
        between(&account_page.body, "data-chart=\"", "\"").unwrap(),
    ))
    .unwrap();
    assert_eq!(chart["x"].as_array().unwrap().len(), n);
    assert_eq!(
        chart["series"].as_array().unwrap().len(),
        4,
        "total and categories"
    );

    // A member follows the scans but cannot start one or manage detections.
    let mia = app.sign_up("mia").await;
    let demo_owner = Session {
        token: token.clone(),
        user_id: String::new(),
        email: canopy_app::demo::EMAIL.into(),
    };
    let demo_org = app
        .get(&format!("/v1/organizations/{slug}"), &token)
        .await
        .body["organization"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.add_member(&demo_org, &demo_owner, &mia, "member").await;
    let member = Visitor::new(&app);
    member.log_in(&mia.email, "correct horse battery").await;
    let seen = member.get(&format!("{base}/scans")).await;
    seen.expect(StatusCode::OK);
    assert!(
        !seen.body.contains(">Scan now<"),
        "no control the role lacks"
    );
    member
        .post(&format!("{base}/scans"), &[])
        .await
        .expect(StatusCode::FORBIDDEN);
    member
        .get(&format!("{base}/detections/new"))
        .await
        .expect(StatusCode::FORBIDDEN);
    assert!(
        !member
            .get(&format!("{base}/detections"))
            .await
            .body
            .contains("New custom detection")
    );

    // Another tenant: every page of this issue is a 404.
    let otto = app.sign_up("otto").await;
    app.create_org_on(&otto, "Otto Pro", "pro").await;
    let stranger = Visitor::new(&app);
    stranger.log_in(&otto.email, "correct horse battery").await;
    for path in [
        format!("{base}/scans"),
        format!("{base}/scans/{members_job}"),
        format!("{base}/detections/new"),
        format!("/org/{slug}/settings/accounts/{account}/matrix"),
    ] {
        stranger.get(&path).await.expect(StatusCode::NOT_FOUND);
    }

    custom_detections(&app, &owner, &token, &base, &api, ou_id).await;
}

/// A custom detection through the form: picked, refused where the domain refuses, saved,
/// changed and deleted, each step as the API then sees it.
async fn custom_detections(
    app: &TestApp,
    owner: &Visitor,
    token: &str,
    base: &str,
    api: &str,
    ou_id: &str,
) {
    let new = owner.get(&format!("{base}/detections/new")).await;
    new.expect(StatusCode::OK);
    assert!(
        new.body.contains("value=\"T1078\""),
        "the picker offers the catalog"
    );
    // Searching narrows the picker without losing what was typed.
    let searched = owner
        .post(
            &format!("{base}/detections/new"),
            &[("name", "SIEM rule"), ("q", "T1562"), ("action", "search")],
        )
        .await;
    searched.expect(StatusCode::OK);
    assert!(searched.body.contains("value=\"SIEM rule\""));
    assert!(searched.body.contains("value=\"T1562.008\""));
    assert!(!searched.body.contains("name=\"add\" value=\"T1078\""));
    // Adding checked techniques puts them among the chosen, with the defaults picked.
    let added = owner
        .post(
            &format!("{base}/detections/new"),
            &[
                ("name", "SIEM rule"),
                ("add", "T1562.008"),
                ("add", "T1078"),
                ("add_category", "respond"),
                ("add_value", "significant"),
                ("action", "add"),
            ],
        )
        .await;
    added.expect(StatusCode::OK);
    assert!(added.body.contains("name=\"t\" value=\"T1562.008\""));
    assert!(added.body.contains("name=\"t\" value=\"T1078\""));
    // Nothing chosen: refused beside the techniques, and nothing stored.
    let refused = owner
        .post(
            &format!("{base}/detections/new"),
            &[
                ("name", "Nothing"),
                ("scope", "organization"),
                ("action", "save"),
            ],
        )
        .await;
    refused.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("id=\"techniques-error\""),
        "{}",
        refused.body
    );
    // An account not in the organization: refused beside the accounts.
    let stranger_account = owner
        .post(
            &format!("{base}/detections/new"),
            &[
                ("name", "Listed"),
                ("scope", "accounts"),
                ("accounts", "999999999999"),
                ("t", "T1078"),
                ("action", "save"),
            ],
        )
        .await;
    stranger_account.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        between(&stranger_account.body, "id=\"accounts-error\">", "<")
            .unwrap()
            .contains("999999999999"),
        "{}",
        stranger_account.body
    );
    let customs = |body: &Value| -> Vec<Value> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["source"] == "custom")
            .cloned()
            .collect()
    };
    let listed = app
        .get(&format!("{api}/detections?source=custom&limit=200"), token)
        .await
        .body;
    assert!(customs(&listed).is_empty(), "refusals stored nothing");

    // Saved under an OU: the API has it, with the chosen scores.
    let saved = owner
        .post(
            &format!("{base}/detections/new"),
            &[
                ("name", "SIEM: <b>disabled</b> logging"),
                ("scope", "nodes"),
                ("node", ou_id),
                ("t", "T1562.008"),
                ("cat.T1562.008", "detect"),
                ("val.T1562.008", "significant"),
                ("t", "T1078"),
                ("cat.T1078", "respond"),
                ("val.T1078", "minimal"),
                ("action", "save"),
            ],
        )
        .await;
    saved.expect(StatusCode::SEE_OTHER);
    let listed = app
        .get(&format!("{api}/detections?source=custom&limit=200"), token)
        .await
        .body;
    let stored = customs(&listed);
    assert_eq!(stored.len(), 1, "{listed}");
    let d = &stored[0];
    assert_eq!(d["name"], "SIEM: <b>disabled</b> logging");
    assert_eq!(d["appliesTo"]["nodes"][0], ou_id, "{d}");
    let techniques: Vec<(String, String, String)> = d["techniques"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["technique"].as_str().unwrap().to_string(),
                t["category"].as_str().unwrap().to_string(),
                t["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(techniques.contains(&("T1078".into(), "respond".into(), "minimal".into())));
    assert!(techniques.contains(&("T1562.008".into(), "detect".into(), "significant".into())));
    let id = d["id"].as_str().unwrap();
    let list = owner.follow(&saved).await;
    assert!(list.body.contains("Custom detection created"));
    assert!(
        list.body
            .contains("SIEM: &#60;b&#62;disabled&#60;/b&#62; logging")
    );
    assert!(!list.body.contains("<b>disabled</b>"), "names are escaped");
    assert!(list.body.contains(&format!("/detections/{id}/edit\"")));

    // Edited: the form comes back filled, and the change lands.
    let edit = owner.get(&format!("{base}/detections/{id}/edit")).await;
    edit.expect(StatusCode::OK);
    assert!(edit.body.contains(&format!("value=\"{ou_id}\" checked")));
    assert!(edit.body.contains("name=\"t\" value=\"T1078\""));
    let changed = owner
        .post(
            &format!("{base}/detections/{id}/edit"),
            &[
                ("name", "SIEM: logging off"),
                ("scope", "organization"),
                ("t", "T1078"),
                ("cat.T1078", "detect"),
                ("val.T1078", "partial"),
                ("status", "degraded"),
                ("action", "save"),
            ],
        )
        .await;
    changed.expect(StatusCode::SEE_OTHER);
    let after = app
        .get(
            &format!("/v1/organizations/{}/detections/{id}", slug_of(base)),
            token,
        )
        .await
        .body;
    assert_eq!(after["name"], "SIEM: logging off", "{after}");
    assert_eq!(after["status"], "degraded");
    assert_eq!(after["techniques"].as_array().unwrap().len(), 1);

    // A scanner's detection is not editable here.
    let scanned = app
        .get(&format!("{api}/detections?limit=200"), token)
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["source"] != "custom")
        .map(|d| d["id"].as_str().unwrap().to_string())
        .unwrap();
    owner
        .get(&format!("{base}/detections/{scanned}/edit"))
        .await
        .expect(StatusCode::NOT_FOUND);

    // Deleted: gone from the API.
    let deleted = owner
        .post(&format!("{base}/detections/{id}/delete"), &[])
        .await;
    deleted.expect(StatusCode::SEE_OTHER);
    app.get(
        &format!("/v1/organizations/{}/detections/{id}", slug_of(base)),
        token,
    )
    .await;
    let listed = app
        .get(&format!("{api}/detections?source=custom&limit=200"), token)
        .await
        .body;
    assert!(customs(&listed).is_empty());
}

/// The slug in a console path `/org/{slug}/...`.
fn slug_of(base: &str) -> &str {
    base.split('/').nth(2).unwrap()
}

fn urlencoding(s: &str) -> String {
    s.replace('/', "%2F")
}

/// An attribute's value as askama escaped it, back to text.
fn html_unescape(s: &str) -> String {
    s.replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
}
