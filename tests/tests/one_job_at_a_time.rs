//! At most one queued-or-running job of a kind per subject, held by the database: sixteen
//! identical requests sent at once start one job, and every other answer is a 409 naming that
//! job, for scans of a cloud organization, of its members, of one account, and for a sync;
//! the schedules that queue the same work obey the same rule, whichever comes first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::cloud_org::stored_cloud_org;
use canopy_e2e::{Response, Session, TestApp, on_both_backends};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// How many identical requests race.
const RACERS: usize = 16;

/// Sends `RACERS` POSTs to `path` at once; the answers.
async fn race(app: &TestApp, owner: &Session, path: &str) -> Vec<Response> {
    let sends = (0..RACERS).map(|_| app.call(Method::POST, path, Some(&owner.token), None));
    futures::future::join_all(sends).await
}

/// Exactly one 202 and `RACERS - 1` 409s with `code`, each naming the accepted job; its id.
fn one_accepted(answers: &[Response], code: &str) -> String {
    let accepted: Vec<&Response> = answers
        .iter()
        .filter(|a| a.status == StatusCode::ACCEPTED)
        .collect();
    assert_eq!(
        accepted.len(),
        1,
        "{:?}",
        answers
            .iter()
            .map(|a| (a.status, &a.body))
            .collect::<Vec<_>>()
    );
    let body = &accepted[0].body;
    let job = body["id"]
        .as_str()
        .or_else(|| body["job"]["id"].as_str())
        .unwrap()
        .to_string();
    for refused in answers.iter().filter(|a| a.status != StatusCode::ACCEPTED) {
        refused.assert_problem(StatusCode::CONFLICT, code);
        assert_eq!(refused.body["jobId"], job.as_str(), "{}", refused.body);
        assert!(
            refused.body["detail"].as_str().unwrap().contains(&job),
            "{}",
            refused.body
        );
    }
    job
}

/// The jobs of `kind` on `subject` that are queued or running.
async fn active(
    app: &TestApp,
    owner: &Session,
    org: &str,
    kind: &str,
    subject: &str,
) -> Vec<Value> {
    let listed = app
        .get(
            &format!("/v1/organizations/{org}/jobs?kind={kind}&subject={subject}"),
            &owner.token,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["status"] == "queued" || j["status"] == "running")
        .cloned()
        .collect()
}

async fn sixteen_scans_or_syncs_asked_at_once_start_one_job_each(app: TestApp) {
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Racing", "enterprise").await;
    let cloud_org = stored_cloud_org(&app, &org, &owner).await;
    let account = app.connect_random_aws_account(&owner.token, &org).await;
    let base = format!("/v1/organizations/{org}");
    for (path, kind, subject, code) in [
        (
            format!("{base}/cloud-organizations/{cloud_org}/scan"),
            "detection.scan_organization",
            &cloud_org,
            "scan_in_progress",
        ),
        (
            format!("{base}/cloud-organizations/{cloud_org}/scan/members"),
            "detection.scan_members",
            &cloud_org,
            "scan_in_progress",
        ),
        (
            format!("{base}/cloud-accounts/{account}/scan"),
            "detection.scan_account",
            &account,
            "scan_in_progress",
        ),
        (
            format!("{base}/cloud-organizations/{cloud_org}/sync"),
            "cloud_organization.discover",
            &cloud_org,
            "sync_in_progress",
        ),
    ] {
        let job = one_accepted(&race(&app, &owner, &path).await, code);
        let running = active(&app, &owner, &org, kind, subject).await;
        assert_eq!(running.len(), 1, "{kind}: {running:?}");
        assert_eq!(running[0]["id"], job.as_str());
    }

    // The schedules meet the same rule: the sync asked for above is the one that runs, and a
    // daily scan finds both scans already queued.
    app.clock.advance(chrono::Duration::seconds(1));
    assert_eq!(
        app.state
            .cloud_orgs
            .queue_due_syncs(chrono::Duration::zero())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        app.state
            .detections
            .queue_due_scans(chrono::Duration::zero())
            .await
            .unwrap(),
        0
    );
    let syncs = active(
        &app,
        &owner,
        &org,
        "cloud_organization.discover",
        &cloud_org,
    )
    .await;
    assert_eq!(syncs.len(), 1, "{syncs:?}");
}

async fn a_scheduled_sync_racing_requests_still_runs_once(app: TestApp) {
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Scheduled", "pro").await;
    let cloud_org = stored_cloud_org(&app, &org, &owner).await;
    app.clock.advance(chrono::Duration::seconds(1));
    let path = format!("/v1/organizations/{org}/cloud-organizations/{cloud_org}/sync");
    let schedule = app
        .state
        .cloud_orgs
        .queue_due_syncs(chrono::Duration::zero());
    let (scheduled, answers) = tokio::join!(schedule, race(&app, &owner, &path));
    let scheduled = scheduled.unwrap();
    let accepted = answers
        .iter()
        .filter(|a| a.status == StatusCode::ACCEPTED)
        .count();
    assert_eq!(scheduled + accepted, 1, "one sync, whoever came first");
    let syncs = active(
        &app,
        &owner,
        &org,
        "cloud_organization.discover",
        &cloud_org,
    )
    .await;
    assert_eq!(syncs.len(), 1, "{syncs:?}");
    for refused in answers.iter().filter(|a| a.status != StatusCode::ACCEPTED) {
        refused.assert_problem(StatusCode::CONFLICT, "sync_in_progress");
        assert_eq!(refused.body["jobId"], syncs[0]["id"]);
    }
}

on_both_backends!(
    sixteen_scans_or_syncs_asked_at_once_start_one_job_each,
    a_scheduled_sync_racing_requests_still_runs_once,
);
