//! What connecting an AWS Organization answers when the role is not the right one, checked
//! before anything is stored: a member account's role (which may describe its organization,
//! but read nothing else) is `not_management_account` naming both accounts, and the right
//! role then connects; a management role whose policy lacks `DescribeOrganization` is
//! `permission_missing` naming it; a refused role carries AWS's advice only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_aws_testkit::{FakeAws, Fault};
use canopy_e2e::{Options, TestApp, on_both_backends};
use reqwest::StatusCode;
use serde_json::{Value, json};

const MANAGEMENT: &str = "111111111111";
const MEMBER: &str = "222222222222";

fn role(account: &str) -> Value {
    json!({"managementRoleArn": format!("arn:aws:iam::{account}:role/CanopyManagement")})
}

async fn a_wrong_role_is_refused_with_what_to_fix_and_nothing_is_stored(backend: &str) {
    let aws = FakeAws::start().await.unwrap();
    let root = aws.create_organization("o-answers0001", MANAGEMENT, "mgmt@example.com");
    aws.add_org_account(&root, MANAGEMENT, "management", "ACTIVE");
    aws.add_org_account(&root, MEMBER, "member", "ACTIVE");
    let app = TestApp::start_with(
        backend,
        Options {
            aws_endpoint_url: aws.url(),
            ..Options::default()
        },
    )
    .await;
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Answers", "pro").await;
    let discover = format!("/v1/organizations/{org}/cloud-organizations/aws/discover");
    let listed = || async {
        app.get(
            &format!("/v1/organizations/{org}/cloud-organizations"),
            &owner.token,
        )
        .await
        .body["items"]
            .as_array()
            .unwrap()
            .len()
    };

    // A member account's role: DescribeOrganization answers, and is not enough.
    let member = app.post(&discover, &owner.token, role(MEMBER)).await;
    member.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let error = &member.body["errors"][0];
    assert_eq!(error["field"], "managementRoleArn", "{}", member.body);
    assert_eq!(error["rule"], "not_management_account");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(MEMBER) && message.contains(MANAGEMENT),
        "{message}"
    );
    assert!(message.contains("o-answers0001"), "{message}");
    assert_eq!(listed().await, 0, "nothing recorded for a member's role");
    let jobs = app
        .get(&format!("/v1/organizations/{org}/jobs"), &owner.token)
        .await;
    assert_eq!(jobs.body["items"], json!([]), "and no job queued");

    // The right role is not blocked by the refused attempt.
    let right = app.post(&discover, &owner.token, role(MANAGEMENT)).await;
    assert_eq!(right.status, StatusCode::ACCEPTED, "{}", right.body);
    assert_eq!(listed().await, 1);

    // DescribeOrganization denied to the management role: the permission is named.
    let other = app.sign_up("Other").await;
    let org2 = app.create_org_on(&other, "Denied", "pro").await;
    aws.deny_operation("DescribeOrganization");
    let denied = app
        .post(
            &format!("/v1/organizations/{org2}/cloud-organizations/aws/discover"),
            &other.token,
            role(MANAGEMENT),
        )
        .await;
    denied.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let error = &denied.body["errors"][0];
    assert_eq!(error["field"], "managementRoleArn", "{}", denied.body);
    assert_eq!(error["rule"], "permission_missing");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("organizations:DescribeOrganization"),
        "{}",
        denied.body
    );

    // A role that refuses Canopy: AWS's advice, none of another provider's.
    aws.fail_assume_role(MANAGEMENT, Some(Fault::AccessDenied));
    let refused = app
        .post(
            &format!("/v1/organizations/{org2}/cloud-organizations/aws/discover"),
            &other.token,
            role(MANAGEMENT),
        )
        .await;
    refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let message = refused.body["errors"][0]["message"].as_str().unwrap();
    assert_eq!(refused.body["errors"][0]["rule"], "role_refused");
    assert!(message.contains("External ID"), "{message}");
    assert!(
        !message.contains("GCP") && !message.contains("roles/browser"),
        "{message}"
    );
}

on_both_backends!(by_name; a_wrong_role_is_refused_with_what_to_fix_and_nothing_is_stored);
