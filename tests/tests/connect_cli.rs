//! `canopy connect` against a running server: redeems a connect token with flags, and (needs
//! moto) detects the account from the local credentials through STS GetCallerIdentity.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use canopy_app::connect_cli::{ConnectArgs, connect};
use canopy_aws::{AwsSettings, StsRoleVerifier};
use canopy_e2e::{TestApp, moto_url, random_aws_account};
use serde_json::json;

async fn issue_token(app: &TestApp) -> (String, String, canopy_e2e::Session) {
    let ada = app.sign_up("Ada").await;
    let org = app.create_org(&ada, "Cli").await;
    let issued = app
        .post(
            &format!("/v1/organizations/{org}/connect-tokens"),
            &ada.token,
            json!({}),
        )
        .await;
    (org, issued.body["token"].as_str().unwrap().to_string(), ada)
}

#[tokio::test]
async fn the_cli_redeems_a_connect_token_with_flags() {
    let app = TestApp::start("sqlite").await;
    let (org, token, ada) = issue_token(&app).await;
    let account = random_aws_account();
    let args = ConnectArgs {
        api_url: app.server.url(),
        token: token.clone(),
        account_id: Some(account.clone()),
        role: "CanopyAccess".into(),
        region: "eu-west-1".into(),
        alias: Some("Production".into()),
        environment: Some("production".into()),
        tags: [("team".to_string(), "email".to_string())]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let connected = connect(&args, None).await.unwrap();
    assert_eq!(connected.account_id, account);
    assert_eq!(
        connected.role_arn.as_deref(),
        Some(format!("arn:aws:iam::{account}:role/CanopyAccess").as_str())
    );
    assert_eq!(connected.status.to_string(), "pending");
    let listed = app
        .get(
            &format!("/v1/organizations/{org}/cloud-accounts"),
            &ada.token,
        )
        .await;
    assert_eq!(listed.body["items"][0]["tags"]["team"], "email");
    let again = connect(&args, None).await.unwrap_err().to_string();
    assert!(again.contains("already used"), "{again}");
    let bad = ConnectArgs {
        token: issue_token(&app).await.1,
        account_id: Some("123".into()),
        ..args
    };
    // The flag is named, with the API's own rule, before anything is sent.
    let err = connect(&bad, None).await.unwrap_err().to_string();
    assert!(err.contains("--account-id '123'"), "{err}");
    assert!(err.contains("[0-9]{12}"), "{err}");
}

#[tokio::test]
#[ignore = "needs moto"]
async fn the_cli_detects_the_account_from_local_credentials() {
    let app = TestApp::start("sqlite").await;
    let (org, token, ada) = issue_token(&app).await;
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDCANOPYCLI",
            "secret",
            None,
            None,
            "tests",
        )))
        .build();
    let sts = StsRoleVerifier::new(
        sdk,
        AwsSettings {
            endpoint_url: Some(moto_url()),
            timeout: Duration::from_secs(10),
        },
    );
    let expected = sts.caller_account_id("us-east-1").await.unwrap();
    assert_eq!(expected.len(), 12);
    let args = ConnectArgs {
        api_url: app.server.url(),
        token,
        role: "CanopyAccess".into(),
        region: "us-east-1".into(),
        ..Default::default()
    };
    // moto's default account may already be connected by a parallel run of this test on the
    // same moto; each run has its own database, so it is free here.
    let connected = connect(&args, Some(&sts)).await.unwrap();
    assert_eq!(connected.account_id, expected);
    let listed = app
        .get(
            &format!("/v1/organizations/{org}/cloud-accounts"),
            &ada.token,
        )
        .await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn without_local_aws_credentials_the_cli_says_so_and_suggests_the_account_id() {
    let app = TestApp::start("sqlite").await;
    let (_, token, _) = issue_token(&app).await;
    let sts = StsRoleVerifier::new(
        canopy_aws::testing::without_credentials(),
        AwsSettings {
            endpoint_url: Some("http://127.0.0.1:9".into()),
            timeout: Duration::from_secs(5),
        },
    );
    let args = ConnectArgs {
        api_url: app.server.url(),
        token,
        role: "CanopyAccess".into(),
        region: "us-east-1".into(),
        ..Default::default()
    };
    let said = connect(&args, Some(&sts)).await.unwrap_err().to_string();
    assert!(said.contains("No AWS credentials were found"), "{said}");
    assert!(said.contains("--account-id"), "{said}");
    // A sentence, not the SDK's debug dump.
    assert!(
        !said.contains('{') && !said.contains("DispatchFailure"),
        "{said}"
    );
}
