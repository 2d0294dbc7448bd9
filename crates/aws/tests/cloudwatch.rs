//! The CloudWatch source through the real aws-sdk-sts and aws-sdk-cloudwatch against the
//! local AWS of `canopy-aws-testkit` (RPC v2 CBOR, which moto does not speak).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use canopy_aws::{CloudWatchSettings, CloudWatchSource};
use canopy_aws_testkit::{FakeAws, Fault};
use canopy_cloud_org::CloudAccountId;
use canopy_cloud_org::health::FailureKind;
use canopy_cloud_org::identifiers::{AwsAccountId, AwsRegion, RoleArn};
use canopy_metrics::ports::{MetricSource, MetricTarget};
use canopy_metrics::{AccountSeries, SesMetric, Window};
use chrono::{DateTime, Duration as Span, Utc};

fn base() -> SdkConfig {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDCANOPY",
            "secret",
            None,
            None,
            "test",
        )))
        .build()
}

fn source(aws: &FakeAws, settings: CloudWatchSettings) -> CloudWatchSource {
    CloudWatchSource::new(
        base(),
        CloudWatchSettings {
            endpoint_url: Some(aws.url()),
            ..settings
        },
    )
}

fn target(account: &str) -> MetricTarget {
    MetricTarget {
        account: CloudAccountId::new(),
        aws_account_id: AwsAccountId::parse(account, "accountId").unwrap(),
        role_arn: RoleArn::parse(
            &format!("arn:aws:iam::{account}:role/CanopyAccess"),
            "roleArn",
        )
        .unwrap(),
        region: AwsRegion::parse("eu-west-1", "region").unwrap(),
        external_id: "cnp-ext-1".into(),
        session_name: "canopy-test".into(),
    }
}

fn hour_window() -> Window {
    let end = DateTime::<Utc>::from_timestamp(Utc::now().timestamp() / 300 * 300, 0).unwrap();
    Window {
        start: end - Span::hours(1),
        period: 300,
        buckets: 12,
    }
}

#[tokio::test]
async fn sums_come_back_per_bucket_through_the_assumed_role_across_pages() {
    let aws = FakeAws::start().await.unwrap();
    let w = hour_window();
    for i in 0..12 {
        let t = w.start + Span::minutes(5 * i) + Span::seconds(30);
        aws.put_metric("111111111111", "Send", t, 100.0);
        aws.put_metric("111111111111", "Send", t + Span::seconds(60), 1.0);
        aws.put_metric("111111111111", "Bounce", t, 2.0);
    }
    // Someone else's data must not leak into this account.
    aws.put_metric("222222222222", "Send", w.start, 9_999.0);
    aws.set_page_size(5);
    let src = source(&aws, CloudWatchSettings::default());
    let data = src.fetch(&target("111111111111"), &w).await.unwrap();
    let series = AccountSeries::from_datapoints(w, &data);
    assert_eq!(series.values[SesMetric::Send.index()], vec![101.0; 12]);
    assert_eq!(series.values[SesMetric::Bounce.index()], vec![2.0; 12]);
    assert_eq!(series.values[SesMetric::Delivery.index()], vec![0.0; 12]);
    let calls = aws.calls();
    assert_eq!(calls.assume_role, 1);
    assert_eq!(calls.get_metric_data, 5, "24 datapoints at 5 per page");
}

#[tokio::test]
async fn credentials_are_reused_until_shortly_before_they_expire() {
    let aws = FakeAws::start().await.unwrap();
    let w = hour_window();
    let src = source(&aws, CloudWatchSettings::default());
    let t = target("333333333333");
    for _ in 0..3 {
        src.fetch(&t, &w).await.unwrap();
    }
    assert_eq!(aws.calls_for("333333333333").assume_role, 1);
    assert_eq!(aws.calls_for("333333333333").get_metric_data, 3);

    // Credentials that expire within the renewal margin are renewed on every use.
    aws.set_credential_ttl(Duration::from_secs(120));
    let short = target("444444444444");
    for _ in 0..3 {
        src.fetch(&short, &w).await.unwrap();
    }
    assert_eq!(aws.calls_for("444444444444").assume_role, 3);
}

#[tokio::test]
async fn concurrent_reads_of_one_role_share_one_assume_role() {
    let aws = FakeAws::start().await.unwrap();
    aws.set_latency(Duration::from_millis(50));
    let src = Arc::new(source(&aws, CloudWatchSettings::default()));
    let t = target("555555555555");
    let w = hour_window();
    let reads: Vec<_> = (0..10)
        .map(|_| {
            let (src, t) = (src.clone(), t.clone());
            tokio::spawn(async move { src.fetch(&t, &w).await })
        })
        .collect();
    for r in reads {
        r.await.unwrap().unwrap();
    }
    assert_eq!(aws.calls_for("555555555555").assume_role, 1);
    assert_eq!(aws.calls_for("555555555555").get_metric_data, 10);
}

#[tokio::test]
async fn failures_are_classified() {
    let aws = FakeAws::start().await.unwrap();
    let src = source(
        &aws,
        CloudWatchSettings {
            account_timeout: Duration::from_millis(400),
            ..CloudWatchSettings::default()
        },
    );
    let w = hour_window();
    let kind = |account: &str| {
        let (src, t) = (&src, target(account));
        async move { src.fetch(&t, &w).await.unwrap_err().kind }
    };
    aws.fail_assume_role("600000000001", Some(Fault::AccessDenied));
    assert_eq!(kind("600000000001").await, FailureKind::AccessDenied);
    aws.fail_metrics("600000000002", Some(Fault::Throttling));
    assert_eq!(kind("600000000002").await, FailureKind::Throttled);
    aws.set_account_latency("600000000003", Duration::from_secs(2));
    assert_eq!(kind("600000000003").await, FailureKind::Timeout);
    // The role trusts only its own External ID.
    aws.require_external_id("600000000004", "cnp-other");
    assert_eq!(kind("600000000004").await, FailureKind::AccessDenied);
    // A refused role is not cached: once fixed, the next read works.
    aws.fail_assume_role("600000000001", None);
    assert!(src.fetch(&target("600000000001"), &w).await.is_ok());
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_network_failure() {
    let src = CloudWatchSource::new(
        base(),
        CloudWatchSettings {
            endpoint_url: Some("http://127.0.0.1:9".into()),
            account_timeout: Duration::from_secs(5),
            ..CloudWatchSettings::default()
        },
    );
    let err = src
        .fetch(&target("700000000001"), &hour_window())
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Network, "{err:?}");
}
