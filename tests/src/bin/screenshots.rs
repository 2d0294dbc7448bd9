//! Screenshots of the console for docs/console/: a Canopy with the demo estate (in-process,
//! SQLite), a teammate and an invitation added through the API, then every main page in
//! headless Chromium at desktop and phone width. `just screenshots` runs it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use canopy_e2e::browser::{Browser, Window};
use canopy_e2e::{Options, TestApp};
use clap::Parser;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Screenshots of the Canopy console")]
struct Args {
    /// Where the PNGs go.
    #[arg(long, default_value = "docs/console")]
    out: PathBuf,
}

/// Pages to capture: file stem, path under the demo organization (or absolute), phone too.
const PAGES: &[(&str, &str, bool)] = &[
    ("dashboard", "dashboard", true),
    ("accounts", "settings/accounts", true),
    ("connect", "settings/accounts/connect", false),
    ("members", "settings/members", true),
    ("organization", "settings/organization", false),
    ("billing", "billing", false),
    ("audit", "settings/audit", false),
    ("api-keys", "/settings/api-keys", false),
    ("pricing", "/pricing", false),
    ("account", "/account", true),
    ("cloud-organizations", "cloud-organizations", false),
    (
        "cloud-organization-coverage",
        "cloud-organizations/{aws}",
        true,
    ),
    (
        "cloud-organization-matrix",
        "cloud-organizations/{aws}/matrix",
        false,
    ),
    (
        "account-coverage",
        "settings/accounts/{account}/coverage",
        false,
    ),
    ("connect-organization", "cloud-organizations/connect", false),
    (
        "connect-organization-aws",
        "cloud-organizations/connect/aws",
        false,
    ),
    (
        "connect-organization-tree",
        "cloud-organizations/{aws}/select",
        true,
    ),
    (
        "cloud-organization-members",
        "cloud-organizations/{aws}/members",
        false,
    ),
    (
        "cloud-organization-detections",
        "cloud-organizations/{aws}/detections",
        false,
    ),
    (
        "cloud-organization-scans",
        "cloud-organizations/{aws}/scans",
        false,
    ),
    (
        "custom-detection",
        "cloud-organizations/{aws}/detections/new",
        false,
    ),
    (
        "account-matrix",
        "settings/accounts/{account}/matrix",
        false,
    ),
];

/// The demo account whose coverage page is shown: payments-prod, under OU Prod.
const SHOWN_ACCOUNT: &str = "310987654103";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)?;
    let app = TestApp::start_with(
        "sqlite",
        Options {
            demo: true,
            ..Options::default()
        },
    )
    .await;
    let base = app.server.url();
    let slug = canopy_app::demo::SLUG;
    // The demo's AWS and GCP Organizations discovered, connected and scanned, so the cloud
    // organization pages show their coverage.
    let (_workers, estate) = canopy_e2e::cloud_org::scanned_demo(&app).await?;
    let aws = estate
        .cloud_organizations
        .first()
        .context("the demo AWS Organization")?
        .to_string();
    // A teammate and a pending invitation, so the members page shows what it manages.
    let owner = app
        .call(
            reqwest::Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": canopy_app::demo::EMAIL, "password": canopy_app::demo::PASSWORD})),
        )
        .await;
    let owner_token = owner.body["token"]
        .as_str()
        .context("demo log-in")?
        .to_string();
    let listed = app
        .get(
            &format!("/v1/organizations/{slug}/cloud-accounts?limit=200"),
            &owner_token,
        )
        .await;
    let account = listed.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|a| a["accountId"] == SHOWN_ACCOUNT))
        .and_then(|a| a["id"].as_str())
        .context("the demo's payments-prod account")?
        .to_string();
    let ana = app.sign_up("Ana").await;
    let org_path = format!("/v1/organizations/{slug}");
    let invited = app
        .post(
            &format!("{org_path}/invitations"),
            &owner_token,
            json!({"email": ana.email, "role": "admin"}),
        )
        .await;
    let id = invited.body["id"].as_str().context("invitation id")?;
    app.post(
        &format!("/v1/invitations/{id}/accept"),
        &ana.token,
        json!({}),
    )
    .await;
    app.post(
        &format!("{org_path}/invitations"),
        &owner_token,
        json!({"email": "sam@example.com", "role": "member"}),
    )
    .await;

    for (window, suffix) in [(Window::DESKTOP, "desktop"), (Window::PHONE, "phone")] {
        let browser = Browser::start(window).await?;
        if suffix == "desktop" {
            browser.goto(&format!("{base}/login")).await?;
            save(&browser, &args.out, "login", suffix).await?;
            browser.goto(&format!("{base}/forgot-password")).await?;
            save(&browser, &args.out, "forgot-password", suffix).await?;
        }
        browser
            .log_in(&base, canopy_app::demo::EMAIL, canopy_app::demo::PASSWORD)
            .await?;
        for (name, path, phone) in PAGES {
            if suffix == "phone" && !phone {
                continue;
            }
            let url = if path.starts_with('/') {
                format!("{base}{path}")
            } else {
                format!(
                    "{base}/org/{slug}/{}",
                    path.replace("{aws}", &aws).replace("{account}", &account)
                )
            };
            browser.goto(&url).await?;
            if *name == "dashboard" {
                browser
                    .wait_until(
                        "return !!document.querySelector('[data-chart][data-drawn]');",
                        Duration::from_secs(20),
                    )
                    .await?;
            }
            save(&browser, &args.out, name, suffix).await?;
        }
        browser.close().await?;
    }
    Ok(())
}

async fn save(
    browser: &Browser,
    out: &std::path::Path,
    name: &str,
    suffix: &str,
) -> anyhow::Result<()> {
    let png = browser.screenshot_page().await?;
    let path = out.join(format!("{name}-{suffix}.png"));
    std::fs::write(&path, png)?;
    println!("{}", path.display());
    Ok(())
}
