//! Cloud organizations over HTTP, with the discovery job running beside the server, against
//! moto through the real AWS SDK: connect an AWS Organization, follow the job, read the tree,
//! the members (by subtree, status and text), re-sync after a move and a departure and read
//! the changes; the plan gate and another tenant's ids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_cloud_org::organization::ports::CloudOrganizationRepository;
use canopy_cloud_org::organization::{
    CloudOrganization, CloudOrganizationId, ConnectionStatus, OrganizationIdentity,
};
use canopy_cloud_org::ports::CloudAccountRepository;
use canopy_e2e::cloud_org::{
    Story, app_with_worker, estate, job_done, job_of, move_one_and_remove_one, organizations_as,
    story, sync_done,
};
use canopy_e2e::{Options, Session, TestApp, moto_url};
use reqwest::{Method, StatusCode};
use serde_json::json;

fn random_account() -> String {
    canopy_e2e::random_aws_account()
}

async fn discovers_syncs_and_serves_an_aws_organization(backend: &str) {
    let (app, workers) = app_with_worker(
        backend,
        Options {
            aws_endpoint_url: moto_url(),
            ..Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Estate", "pro").await;
    let management = random_account();
    let aws = organizations_as(&management).await;
    let e = estate(&aws, &management).await;
    let role = format!("arn:aws:iam::{}:role/CanopyManagement", e.management);

    let started = app
        .post(
            &format!("/v1/organizations/{org}/cloud-organizations/aws/discover"),
            &owner.token,
            json!({"managementRoleArn": role, "name": "Acme estate"}),
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    assert_eq!(started.body["cloudOrganization"]["status"], "discovering");
    let id = started.body["cloudOrganization"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = started.body["job"]["id"].as_str().unwrap().to_string();
    let done = job_done(&app, &owner, &org, &job).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["members"], 14);

    let base = format!("/v1/organizations/{org}/cloud-organizations/{id}");
    let got = app.call(Method::GET, &base, Some(&owner.token), None).await;
    assert_eq!(got.body["status"], "connected", "{}", got.body);
    assert_eq!(got.body["discoveredCount"], 14);
    assert_eq!(got.body["managementAccountId"], e.management.as_str());
    assert!(got.body["cloudOrgId"].as_str().unwrap().starts_with("o-"));

    let tree = app
        .call(
            Method::GET,
            &format!("{base}/hierarchy"),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    let node = |nid: &str| {
        tree["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == nid)
            .unwrap()
            .clone()
    };
    assert_eq!(node(&e.root)["totalMembers"], 14);
    assert_eq!(node(&e.root)["directMembers"], 1, "the management account");
    assert_eq!(node(&e.prod)["directMembers"], 12);
    assert_eq!(node(&e.prod)["path"], "Root/Production");

    let under_prod = app
        .call(
            Method::GET,
            &format!("{base}/members?under={}&limit=5", e.prod),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    assert_eq!(under_prod["items"].as_array().unwrap().len(), 5);
    assert!(under_prod["nextCursor"].is_string());
    let found = app
        .call(
            Method::GET,
            &format!("{base}/members?q=WEB-12"),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    assert_eq!(
        found["items"][0]["accountId"],
        e.web[12].as_str(),
        "{found}"
    );
    assert_eq!(found["items"][0]["hierarchyPath"], "Root/Development");
    assert_eq!(found["items"][0]["status"], "discovered");

    // An unchanged organization re-synced: no change recorded.
    let again = app
        .post(&format!("{base}/sync"), &owner.token, json!({}))
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    let done = job_of(&app, &owner, &org, &again).await;
    assert_eq!(done["result"]["changes"], 0, "{done}");

    // One account moves to Development, one leaves.
    move_one_and_remove_one(&e).await;
    let done = sync_done(&app, &owner, &org, &base).await;
    assert_eq!(done["result"]["changes"], 2, "{done}");
    let changes = app
        .call(
            Method::GET,
            &format!("{base}/changes"),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    let kinds: Vec<_> = changes["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| Some((c["kind"].as_str()?, c["accountId"].as_str()?)))
        .collect();
    // The first discovery recorded every account as joined, and the tree.
    assert_eq!(kinds.iter().filter(|(k, _)| *k == "joined").count(), 14);
    assert!(kinds.contains(&("moved", e.web[0].as_str())), "{changes}");
    assert!(kinds.contains(&("left", e.web[1].as_str())), "{changes}");
    let got = app.call(Method::GET, &base, Some(&owner.token), None).await;
    assert_eq!(got.body["discoveredCount"], 13);

    // The same organization from another tenant: connected elsewhere, nothing revealed.
    let other = app.sign_up("Other").await;
    let other_org = app.create_org_on(&other, "Other", "pro").await;
    let again = app
        .post(
            &format!("/v1/organizations/{other_org}/cloud-organizations/aws/discover"),
            &other.token,
            json!({"managementRoleArn": role}),
        )
        .await;
    again.assert_problem(
        StatusCode::CONFLICT,
        "cloud_organization_connected_elsewhere",
    );
    // Its id under the other tenant's organization is not found.
    let peek = app
        .call(
            Method::GET,
            &format!("/v1/organizations/{other_org}/cloud-organizations/{id}/members"),
            Some(&other.token),
            None,
        )
        .await;
    peek.assert_problem(StatusCode::NOT_FOUND, "not_found");
    workers.stop().await;
}

async fn connects_members_through_the_member_role_and_skips_the_excluded(backend: &str) {
    let Story {
        app,
        workers,
        owner,
        org,
        e,
        id,
        ..
    } = story(backend, "Connect").await;
    let base = format!("/v1/organizations/{org}/cloud-organizations/{id}");

    // Neither all nor a list: the rule is named.
    app.post(&format!("{base}/members/connect"), &owner.token, json!({}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // Exclude one account of Production, then connect everything under Production.
    let excluded = app
        .post(
            &format!("{base}/members/{}/exclude", e.web[3]),
            &owner.token,
            json!({}),
        )
        .await;
    assert_eq!(excluded.status, StatusCode::OK, "{}", excluded.body);
    assert_eq!(excluded.body["status"], "excluded");
    let connect = app
        .post(
            &format!("{base}/members/connect"),
            &owner.token,
            json!({"under": [e.prod]}),
        )
        .await;
    assert_eq!(connect.status, StatusCode::ACCEPTED, "{}", connect.body);
    let queued: Vec<_> = connect.body["queued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(queued.len(), 11, "12 under Production, one excluded");
    assert!(!queued.contains(&e.web[3]));
    let done = job_of(&app, &owner, &org, &connect).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["connected"], 11, "{done}");

    // Each became a cloud account with the member role, verified, and the member links it.
    let accounts = app
        .call(
            Method::GET,
            &format!("/v1/organizations/{org}/cloud-accounts?limit=200"),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    let items = accounts["items"].as_array().unwrap();
    assert_eq!(items.len(), 11);
    let one = items
        .iter()
        .find(|a| a["accountId"] == e.web[0].as_str())
        .unwrap();
    assert_eq!(
        one["roleArn"],
        format!("arn:aws:iam::{}:role/CanopyAccess", e.web[0])
    );
    assert_eq!(one["status"], "active", "{one}");
    let connected = app
        .call(
            Method::GET,
            &format!("{base}/members?status=connected&limit=200"),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    assert_eq!(connected["items"].as_array().unwrap().len(), 11);
    assert!(connected["items"][0]["linkedCloudAccountId"].is_string());
    let got = app.call(Method::GET, &base, Some(&owner.token), None).await;
    assert_eq!(got.body["connectedCount"], 11);

    // Connecting them again: nothing left under Production but the excluded one.
    app.post(
        &format!("{base}/members/connect"),
        &owner.token,
        json!({"under": [e.prod]}),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    // Included again, it is connectable.
    let included = app
        .post(
            &format!("{base}/members/{}/include", e.web[3]),
            &owner.token,
            json!({}),
        )
        .await;
    assert_eq!(included.body["status"], "discovered");
    let again = app
        .post(
            &format!("{base}/members/connect"),
            &owner.token,
            json!({"accountIds": [e.web[3]]}),
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    assert_eq!(again.body["queued"], json!([e.web[3]]));
    workers.stop().await;
}

/// Near Pro's 500 accounts: a connect that does not fit is refused whole (402, nothing
/// marked); with `upToLimit` it queues what fits, reports the rest, and the job stops at the
/// limit exactly.
async fn a_connect_past_the_plan_is_refused_or_cut_to_what_fits(backend: &str) {
    let Story {
        app,
        workers,
        owner,
        org,
        e,
        id,
        ..
    } = story(backend, "Full").await;
    // 495 accounts already connected: room for 5.
    let org_id: canopy_kernel::id::OrganizationId = org.parse::<uuid::Uuid>().unwrap().into();
    for _ in 0..495 {
        let account = canopy_store::testing::aws_account(
            org_id,
            &canopy_store::testing::random_aws_account_id(),
            "production",
            &[],
        );
        app.store
            .cloud_accounts()
            .create(
                account,
                canopy_store::testing::audit(
                    org_id,
                    canopy_tenancy::AuditAction::CloudAccountConnected,
                ),
            )
            .await
            .unwrap();
    }
    let base = format!("/v1/organizations/{org}/cloud-organizations/{id}");
    let refused = app
        .post(
            &format!("{base}/members/connect"),
            &owner.token,
            json!({"under": [e.prod]}),
        )
        .await;
    refused.assert_problem(StatusCode::PAYMENT_REQUIRED, "plan_limit");
    assert_eq!(refused.body["allowed"], 500);
    let still = app
        .call(
            Method::GET,
            &format!(
                "{base}/members?status=discovered&under={}&limit=200",
                e.prod
            ),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    assert_eq!(
        still["items"].as_array().unwrap().len(),
        12,
        "nothing marked"
    );

    let cut = app
        .post(
            &format!("{base}/members/connect"),
            &owner.token,
            json!({"under": [e.prod], "upToLimit": true}),
        )
        .await;
    assert_eq!(cut.status, StatusCode::ACCEPTED, "{}", cut.body);
    assert_eq!(cut.body["queued"].as_array().unwrap().len(), 5);
    assert_eq!(cut.body["overLimit"].as_array().unwrap().len(), 7);
    let done = job_of(&app, &owner, &org, &cut).await;
    assert_eq!(done["result"]["connected"], 5, "{done}");
    let usage = app
        .call(
            Method::GET,
            &format!("/v1/organizations/{org}/usage"),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    assert_eq!(usage["cloudAccounts"]["used"], 500, "{usage}");
    workers.stop().await;
}

/// Twenty concurrent connects of everything, up to the plan's limit: one of them connects,
/// every other one is told which connect already runs (409 `connect_in_progress` naming its
/// job; once it finished, nothing is left to connect: 422 `none_connectable`), never a 422 on
/// a field nobody sent. Every member ends connected once, with one cloud account each.
async fn concurrent_connects_take_each_member_once(backend: &str) {
    let Story {
        app,
        workers,
        owner,
        org,
        e: _,
        id,
    } = story(backend, "Race").await;
    let base = format!("/v1/organizations/{org}/cloud-organizations/{id}");
    let members = app
        .call(
            Method::GET,
            &format!("{base}/members?limit=200"),
            Some(&owner.token),
            None,
        )
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .len();
    assert!(members >= 13, "the estate's accounts: {members}");
    let connect = format!("{base}/members/connect");
    let attempts = (0..20).map(|_| {
        app.post(
            &connect,
            &owner.token,
            json!({"all": true, "upToLimit": true}),
        )
    });
    let answers = futures::future::join_all(attempts).await;
    let accepted: Vec<_> = answers
        .iter()
        .filter(|a| a.status == StatusCode::ACCEPTED)
        .collect();
    assert_eq!(accepted.len(), 1, "exactly one connect starts");
    let job = accepted[0].body["job"]["id"].as_str().unwrap().to_string();
    let mut taken: Vec<String> = accepted[0].body["queued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    for a in answers.iter().filter(|a| a.status != StatusCode::ACCEPTED) {
        match a.status {
            StatusCode::CONFLICT => {
                a.assert_problem(StatusCode::CONFLICT, "connect_in_progress");
                assert_eq!(a.body["jobId"], job.as_str(), "{}", a.body);
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                assert_eq!(
                    a.body["errors"][0]["rule"], "none_connectable",
                    "{}",
                    a.body
                );
            }
            other => panic!("unexpected {other}: {}", a.body),
        }
    }
    taken.sort();
    taken.dedup();
    assert_eq!(taken.len(), members, "every member, once");
    let done = job_done(&app, &owner, &org, &job).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["failed"], json!([]), "{done}");
    assert_eq!(done["result"]["connected"], members, "{done}");
    let accounts = app
        .call(
            Method::GET,
            &format!("/v1/organizations/{org}/cloud-accounts?limit=200"),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    assert_eq!(accounts["items"].as_array().unwrap().len(), members);
    let connected = app
        .call(
            Method::GET,
            &format!("{base}/members?status=connected&limit=200"),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    assert_eq!(connected["items"].as_array().unwrap().len(), members);
    workers.stop().await;
}

/// A cloud organization as discovery records it, last attempted at `attempted`.
async fn recorded(
    app: &TestApp,
    org: &str,
    owner: &Session,
    attempted: chrono::DateTime<chrono::Utc>,
) -> CloudOrganizationId {
    let id = CloudOrganizationId::new();
    let org_id = canopy_kernel::id::OrganizationId(org.parse().unwrap());
    app.store
        .cloud_organizations()
        .create(
            CloudOrganization {
                id,
                organization_id: org_id,
                provider: canopy_cloud_org::account::Provider::Aws,
                identity: OrganizationIdentity {
                    cloud_org_id: format!("o-{}", &id.as_uuid().simple().to_string()[22..]),
                    arn: None,
                    management_account_id: Some(random_account()),
                    management_account_email: None,
                    display_name: None,
                    directory_customer_id: None,
                    lifecycle_state: None,
                },
                name: "Scheduled".into(),
                management_role_arn: Some("arn:aws:iam::123456789012:role/Mgmt".into()),
                member_role_name: "CanopyAccess".into(),
                gcp_service_account: None,
                gcp_credentials: None,
                status: ConnectionStatus::Connected,
                error: None,
                unreadable: vec![],
                last_attempt_at: Some(attempted),
                last_discovered_at: Some(attempted),
                discovered_count: 0,
                connected_count: 0,
                created_by: canopy_kernel::id::UserId(owner.user_id.parse().unwrap()),
                created_at: attempted,
                updated_at: attempted,
            },
            canopy_store::testing::audit(
                org_id,
                canopy_tenancy::AuditAction::CloudOrganizationConnected,
            ),
            None,
        )
        .await
        .unwrap();
    id
}

async fn due_cloud_organizations_are_resynced_once_on_schedule(backend: &str) {
    use canopy_kernel::Clock;
    let app = TestApp::start(backend).await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Schedule", "pro").await;
    let now = app.clock.now();
    let stale = recorded(&app, &org, &owner, now - chrono::Duration::hours(7)).await;
    let fresh = recorded(&app, &org, &owner, now - chrono::Duration::hours(1)).await;
    let every = chrono::Duration::hours(6);
    assert_eq!(
        app.state.cloud_orgs.queue_due_syncs(every).await.unwrap(),
        1
    );
    // Its discovery is still queued: not queued twice.
    assert_eq!(
        app.state.cloud_orgs.queue_due_syncs(every).await.unwrap(),
        0
    );
    let jobs = app
        .call(
            Method::GET,
            &format!("/v1/organizations/{org}/jobs?kind=cloud_organization.discover"),
            Some(&owner.token),
            None,
        )
        .await
        .body;
    let subjects: Vec<_> = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(subjects, vec![stale.to_string()]);
    assert!(!subjects.contains(&fresh.to_string()));
    assert!(
        jobs["items"][0].get("createdBy").is_none(),
        "scheduled, nobody asked"
    );
}

async fn free_and_individual_plans_are_refused_before_any_cloud_call(backend: &str) {
    // AWS points at a closed port: a cloud call would fail differently.
    let app = TestApp::start(backend).await;
    let owner = app.sign_up("Owner").await;
    for tier in ["free", "individual"] {
        let org = app
            .create_org_on(&owner, &format!("Gate {tier}"), tier)
            .await;
        let resp = app
            .post(
                &format!("/v1/organizations/{org}/cloud-organizations/aws/discover"),
                &owner.token,
                json!({"managementRoleArn": "arn:aws:iam::123456789012:role/CanopyManagement"}),
            )
            .await;
        resp.assert_problem(StatusCode::FORBIDDEN, "feature_not_in_plan");
        assert_eq!(resp.body["requiredTier"], "pro");
    }
}

canopy_e2e::on_both_backends!(by_name, needs moto;
    discovers_syncs_and_serves_an_aws_organization,
    connects_members_through_the_member_role_and_skips_the_excluded,
    concurrent_connects_take_each_member_once,
    a_connect_past_the_plan_is_refused_or_cut_to_what_fits,
);

canopy_e2e::on_both_backends!(by_name;
    free_and_individual_plans_are_refused_before_any_cloud_call,
    due_cloud_organizations_are_resynced_once_on_schedule,
);
