//! The STS adapter through the real aws-sdk-sts: against moto (role assumption with an
//! External ID) and against tiny local servers that answer the way AWS does when it refuses,
//! throttles, or is unreachable or silent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use canopy_aws::testing::{ACCESS_DENIED, THROTTLED};
use canopy_aws::{AwsSettings, StsRoleVerifier};
use canopy_cloud_org::health::FailureKind;
use canopy_cloud_org::identifiers::{AwsRegion, RoleArn};
use canopy_cloud_org::ports::RoleVerifier;
use tokio::net::TcpListener;

fn sdk_config() -> SdkConfig {
    canopy_aws::testing::with_test_credentials()
}

fn verifier(endpoint: String, timeout: Duration) -> StsRoleVerifier {
    StsRoleVerifier::new(
        sdk_config(),
        AwsSettings {
            endpoint_url: Some(endpoint),
            timeout,
        },
    )
}

async fn canned(status: u16, body: &'static str) -> String {
    canopy_aws::testing::canned_sts(status, body).await.unwrap()
}

const ROLE: &str = "arn:aws:iam::123456789012:role/CanopyAccess";

fn role(arn: &str) -> RoleArn {
    RoleArn::parse(arn, "roleArn").unwrap()
}

fn region(name: &str) -> AwsRegion {
    AwsRegion::parse(name, "region").unwrap()
}

#[tokio::test]
async fn a_refused_assumption_is_access_denied() {
    let v = verifier(canned(403, ACCESS_DENIED).await, Duration::from_secs(5));
    let err = v
        .assume_role(&role(ROLE), "ext", "canopy-test", &region("us-east-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::AccessDenied);
    assert!(
        err.message.starts_with("AccessDenied: User:"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn throttling_is_classified_as_throttled() {
    // The SDK retries throttling itself (standard retry mode) before giving up.
    let v = verifier(canned(400, THROTTLED).await, Duration::from_secs(20));
    let err = v
        .assume_role(&role(ROLE), "ext", "canopy-test", &region("us-east-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Throttled, "{}", err.message);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_network_failure() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let v = verifier(format!("http://127.0.0.1:{port}"), Duration::from_secs(20));
    let err = v
        .assume_role(&role(ROLE), "ext", "canopy-test", &region("us-east-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Network, "{}", err.message);
}

#[tokio::test]
async fn a_silent_endpoint_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let v = verifier(format!("http://{addr}"), Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = v
        .assume_role(&role(ROLE), "ext", "canopy-test", &region("us-east-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Timeout, "{}", err.message);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
#[ignore = "needs moto"]
async fn assumes_a_role_in_moto_with_the_external_id() {
    let v = verifier(canopy_aws::testing::moto_url(), Duration::from_secs(10));
    let account = format!(
        "{:012}",
        u64::from(std::process::id()) * 7919 % 1_000_000_000_000
    );
    let arn = format!("arn:aws:iam::{account}:role/CanopyAccess");
    let assumed = v
        .assume_role(
            &role(&arn),
            "cnp-ext-123",
            "canopy-0191abcd",
            &region("eu-west-1"),
        )
        .await
        .unwrap();
    assert!(
        assumed.assumed_role_arn.contains(&account)
            && assumed.assumed_role_arn.ends_with("/canopy-0191abcd"),
        "{}",
        assumed.assumed_role_arn
    );
    assert!(assumed.expires_at.unwrap() > chrono::Utc::now());
}

#[tokio::test]
async fn missing_canopy_credentials_are_named_as_such_not_other() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // No provider at all, and a provider chain that finds nothing (a machine without keys).
    let no_provider = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .build();
    for config in [no_provider, canopy_aws::testing::without_credentials()] {
        let v = StsRoleVerifier::new(
            config,
            AwsSettings {
                endpoint_url: Some(canned(403, ACCESS_DENIED).await),
                timeout: Duration::from_secs(5),
            },
        );
        let err = v
            .assume_role(&role(ROLE), "ext", "canopy-test", &region("us-east-1"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, FailureKind::CanopyCredentials, "{}", err.message);
        assert!(
            err.kind
                .advice_for(canopy_cloud_org::Provider::Aws)
                .contains("CANOPY_AWS_")
        );
        let caller = v.caller_account_id("us-east-1").await.unwrap_err();
        assert_eq!(
            caller.kind,
            FailureKind::CanopyCredentials,
            "{}",
            caller.message
        );
        assert!(!v.has_credentials().await);
    }
}
