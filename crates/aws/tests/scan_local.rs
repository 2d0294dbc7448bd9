//! The AWS detection scanners through the real SDK against the local AWS of
//! `canopy-aws-testkit`, for what moto lacks or cannot be made to do: Security Hub's
//! organization calls, CloudWatch alarms (RPC v2 CBOR) on CloudTrail metric filters, denied and
//! throttled calls (a source that cannot be read is unknown, never empty), a role that cannot
//! be assumed, another provider's access, and the bound on calls in flight.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use canopy_aws::{AwsAccountScanner, AwsOrganizationScanner, ScanSettings};
use canopy_aws_testkit::{
    AlarmSpec, FakeAws, Fault, GuardDutySetup, MetricFilterSpec, SecurityHubSetup,
};
use canopy_cloud_org::account::{AccountSettings, AccountStatus, CloudIdentity};
use canopy_cloud_org::identifiers::{AwsAccountId, AwsRegion, GcpProjectId, RoleArn};
use canopy_cloud_org::organization::hierarchy::{DiscoveredNode, Hierarchy, NodeKind};
use canopy_cloud_org::organization::{
    CloudOrganization, CloudOrganizationId, GcpAccess, OrganizationAccess, OrganizationIdentity,
};
use canopy_cloud_org::{CloudAccount, CloudAccountId, Provider};
use canopy_detection::detection::{AppliesTo, Source, Status};
use canopy_detection::mapping::Category;
use canopy_detection::ports::{
    AccountScanRequest, AccountScanner, Finding, OrganizationScanRequest, OrganizationScanner,
    ReadFailure, ReadFailureKind, SourceReport,
};
use canopy_kernel::id::{OrganizationId, UserId};

const MANAGEMENT: &str = "111111111111";
const ADMIN: &str = "222222222222";
const MEMBER: &str = "333333333333";
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

fn settings(aws: &FakeAws) -> ScanSettings {
    ScanSettings {
        endpoint_url: Some(aws.url()),
        regions: REGIONS.iter().map(|r| r.to_string()).collect(),
        max_retries: 3,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        call_timeout: Duration::from_secs(5),
        ..ScanSettings::default()
    }
}

fn org_scanner(aws: &FakeAws) -> AwsOrganizationScanner {
    AwsOrganizationScanner::new(canopy_aws::testing::with_test_credentials(), settings(aws))
}

fn account_scanner(_aws: &FakeAws, settings: ScanSettings) -> AwsAccountScanner {
    AwsAccountScanner::new(canopy_aws::testing::with_test_credentials(), settings)
}

fn role(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

fn org_request(access: OrganizationAccess) -> OrganizationScanRequest {
    let mut org = CloudOrganization::discovering(
        CloudOrganizationId::new(),
        OrganizationId::new(),
        Provider::Aws,
        OrganizationIdentity {
            cloud_org_id: "o-scan000001".into(),
            arn: None,
            management_account_id: Some(MANAGEMENT.into()),
            management_account_email: None,
            display_name: None,
            directory_customer_id: None,
            lifecycle_state: None,
        },
        "Scanned".into(),
        UserId::new(),
        chrono::Utc::now(),
    );
    org.management_role_arn = Some(role(MANAGEMENT, "CanopyManagement"));
    org.member_role_name = "CanopyAccess".into();
    let root = DiscoveredNode {
        id: "r-scan".into(),
        parent_id: None,
        name: "Root".into(),
        kind: NodeKind::Root,
    };
    OrganizationScanRequest {
        cloud_organization: org,
        access,
        hierarchy: Hierarchy::build(vec![root], 5).unwrap(),
        members: vec![MANAGEMENT.into(), ADMIN.into(), MEMBER.into()],
        stop: canopy_kernel::Stop::never(),
    }
}

fn management_access() -> OrganizationAccess {
    OrganizationAccess::Aws {
        role_arn: role(MANAGEMENT, "CanopyManagement"),
        external_id: "cnp-ext".into(),
    }
}

fn account(identity: CloudIdentity) -> CloudAccount {
    let now = chrono::Utc::now();
    CloudAccount {
        id: CloudAccountId::new(),
        organization_id: OrganizationId::new(),
        identity,
        settings: AccountSettings::default(),
        status: AccountStatus::Active,
        last_synced_at: None,
        last_error: None,
        placement: None,
        created_by: UserId::new(),
        created_at: now,
        updated_at: now,
    }
}

fn account_request(id: &str) -> AccountScanRequest {
    AccountScanRequest {
        account: account(CloudIdentity::Aws {
            account_id: AwsAccountId::parse(id, "account_id").unwrap(),
            role_arn: RoleArn::parse(&role(id, "CanopyAccess"), "role_arn").unwrap(),
            region: AwsRegion::parse("us-east-1", "region").unwrap(),
        }),
        external_id: "cnp-ext".into(),
        stop: canopy_kernel::Stop::never(),
    }
}

fn report(reports: &[SourceReport], source: Source) -> &SourceReport {
    reports.iter().find(|r| r.source == source).unwrap()
}

fn found(reports: &[SourceReport], source: Source) -> &[Finding] {
    match &report(reports, source).outcome {
        Ok(findings) => findings,
        Err(f) => panic!("{source} could not be read: {f:?}"),
    }
}

fn failure(reports: &[SourceReport], source: Source) -> &ReadFailure {
    match &report(reports, source).outcome {
        Err(f) => f,
        Ok(findings) => panic!("{source} should be unknown, found {findings:?}"),
    }
}

fn trail_filter() -> MetricFilterSpec {
    MetricFilterSpec {
        name: "cloudtrail-changes".into(),
        log_group: "aws-cloudtrail-logs".into(),
        pattern: "{ ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || ($.eventName = DeleteTrail) || ($.eventName = StartLogging) || ($.eventName = StopLogging) }".into(),
        namespace: "CISBenchmark".into(),
        metric: "CloudTrailChanges".into(),
    }
}

fn root_filter() -> MetricFilterSpec {
    MetricFilterSpec {
        name: "root-usage".into(),
        log_group: "aws-cloudtrail-logs".into(),
        pattern: r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }"#.into(),
        namespace: "CISBenchmark".into(),
        metric: "RootUsage".into(),
    }
}

fn alarm(name: &str, metric: &str, actions: &[&str]) -> AlarmSpec {
    AlarmSpec {
        name: name.into(),
        namespace: "CISBenchmark".into(),
        metric: metric.into(),
        actions: actions.iter().map(|a| a.to_string()).collect(),
    }
}

/// The organization of `MANAGEMENT`, with `ADMIN` administering Security Hub in us-east-1.
async fn organization_with_security_hub(setup: SecurityHubSetup) -> FakeAws {
    let aws = FakeAws::start().await.unwrap();
    aws.create_organization("o-scan000001", MANAGEMENT, "mgmt@example.com");
    aws.set_security_hub_admin(MANAGEMENT, "us-east-1", ADMIN);
    aws.enable_security_hub(ADMIN, "us-east-1", setup);
    aws
}

fn local_hub() -> SecurityHubSetup {
    SecurityHubSetup {
        standards: vec![
            "arn:aws:securityhub:us-east-1::standards/cis-aws-foundations-benchmark/v/3.0.0".into(),
        ],
        configuration_type: Some("LOCAL".into()),
        auto_enable: true,
        aggregators: vec![format!(
            "arn:aws:securityhub:us-east-1:{ADMIN}:finding-aggregator/1"
        )],
        members: vec![MEMBER.into()],
    }
}

#[tokio::test]
async fn security_hub_is_read_through_its_delegated_administrator() {
    let aws = organization_with_security_hub(local_hub()).await;
    let reports = org_scanner(&aws)
        .scan_organization(&org_request(management_access()))
        .await;
    let order: Vec<Source> = reports.iter().map(|r| r.source).collect();
    assert_eq!(
        order,
        Source::scanners(
            Provider::Aws,
            canopy_detection::detection::ScopeKind::Organization
        )
    );
    let hub = found(&reports, Source::AwsSecurityHubOrg);
    assert_eq!(hub.len(), 1, "{hub:?}");
    let hub = &hub[0];
    assert_eq!(hub.resource_key, "us-east-1");
    assert_eq!(hub.status, Status::Active, "{:?}", hub.reason);
    assert_eq!(
        hub.applies_to,
        AppliesTo::Accounts(BTreeSet::from([ADMIN.to_string(), MEMBER.to_string()]))
    );
    assert!(
        hub.techniques
            .iter()
            .any(|t| t.category == Category::Detect)
    );
    assert_eq!(hub.evidence["adminAccountId"], ADMIN);
    assert_eq!(hub.evidence["configurationType"], "LOCAL");
    assert_eq!(
        hub.evidence["findingAggregators"].as_array().unwrap().len(),
        1
    );
    // The administrator read its own configuration: Canopy assumed the member role there.
    assert!(aws.calls_for(ADMIN).assume_role >= 1);
    assert!(report(&reports, Source::AwsSecurityHubOrg).calls >= 6);
    // The rest of this organization has nothing, and says so (read, not unknown).
    for source in [
        Source::AwsCloudTrailOrgTrail,
        Source::AwsGuardDutyDelegatedAdmin,
        Source::AwsConfigOrgAggregator,
        Source::AwsOrganizationsScp,
    ] {
        assert!(found(&reports, source).is_empty(), "{source}");
    }
}

#[tokio::test]
async fn central_configuration_reaches_every_account_and_no_standard_degrades() {
    let aws = organization_with_security_hub(SecurityHubSetup {
        standards: vec![],
        configuration_type: Some("CENTRAL".into()),
        ..local_hub()
    })
    .await;
    let reports = org_scanner(&aws)
        .scan_organization(&org_request(management_access()))
        .await;
    let hub = &found(&reports, Source::AwsSecurityHubOrg)[0];
    assert_eq!(hub.applies_to, AppliesTo::AllAccounts);
    assert_eq!(hub.status, Status::Degraded);
    assert!(
        hub.reason
            .as_deref()
            .unwrap()
            .contains("no security standard")
    );
}

#[tokio::test]
async fn an_administrator_that_refuses_its_configuration_leaves_its_reach_unknown() {
    let aws = organization_with_security_hub(local_hub()).await;
    aws.fail_call(
        ADMIN,
        "securityhub:DescribeOrganizationConfiguration",
        Some(Fault::AccessDenied),
    );
    let reports = org_scanner(&aws)
        .scan_organization(&org_request(management_access()))
        .await;
    let hub = found(&reports, Source::AwsSecurityHubOrg);
    assert_eq!(hub.len(), 1, "{hub:?}");
    let hub = &hub[0];
    // Not read is not absent: unknown for every account it may reach, never narrowed to
    // the administrator (which would leave every member uncovered).
    assert_eq!(hub.status, Status::Unknown);
    assert_eq!(hub.applies_to, AppliesTo::AllAccounts);
    let reason = hub.reason.as_deref().unwrap();
    assert!(
        reason.contains("grant securityhub:DescribeOrganizationConfiguration"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_denied_listing_is_unknown_with_the_action_to_grant() {
    let aws = organization_with_security_hub(local_hub()).await;
    aws.fail_call(
        MANAGEMENT,
        "securityhub:ListOrganizationAdminAccounts",
        Some(Fault::AccessDenied),
    );
    let reports = org_scanner(&aws)
        .scan_organization(&org_request(management_access()))
        .await;
    let f = failure(&reports, Source::AwsSecurityHubOrg);
    assert_eq!(f.kind, ReadFailureKind::AccessDenied);
    assert!(
        f.message
            .contains("securityhub:ListOrganizationAdminAccounts")
    );
    assert!(
        f.advice.contains(&format!(
            "grant securityhub:ListOrganizationAdminAccounts to {}",
            role(MANAGEMENT, "CanopyManagement")
        )),
        "{}",
        f.advice
    );
    assert!(!f.message.contains("secret") && !f.advice.contains("ASIA"));
    // One source denied leaves the others readable.
    assert!(found(&reports, Source::AwsOrganizationsScp).is_empty());
}

#[tokio::test]
async fn throttling_past_every_retry_is_throttled_out_not_empty() {
    let aws = organization_with_security_hub(local_hub()).await;
    aws.fail_call(
        MANAGEMENT,
        "securityhub:ListOrganizationAdminAccounts",
        Some(Fault::Throttling),
    );
    let reports = org_scanner(&aws)
        .scan_organization(&org_request(management_access()))
        .await;
    let f = failure(&reports, Source::AwsSecurityHubOrg);
    assert_eq!(f.kind, ReadFailureKind::ThrottledOut);
    assert!(f.advice.contains("throttling"), "{}", f.advice);
    // Each region's call was tried once and retried three times.
    assert_eq!(
        aws.scan_calls("securityhub:ListOrganizationAdminAccounts"),
        8
    );
    assert_eq!(report(&reports, Source::AwsSecurityHubOrg).calls, 8);
}

async fn account_with_alarms() -> FakeAws {
    let aws = FakeAws::start().await.unwrap();
    aws.put_metric_filter(MEMBER, "eu-west-1", trail_filter());
    aws.put_metric_filter(MEMBER, "eu-west-1", root_filter());
    aws.put_alarm(
        MEMBER,
        "eu-west-1",
        alarm(
            "cis-cloudtrail-changes",
            "CloudTrailChanges",
            &["arn:aws:sns:eu-west-1:333333333333:security"],
        ),
    );
    aws.put_alarm(
        MEMBER,
        "eu-west-1",
        alarm("cis-root-usage", "RootUsage", &[]),
    );
    // An alarm on a metric no CIS filter publishes is no detection.
    aws.put_alarm(
        MEMBER,
        "eu-west-1",
        alarm("cpu", "CPUUtilization", &["arn:x"]),
    );
    aws
}

#[tokio::test]
async fn alarms_on_cis_metric_filters_are_found_and_one_that_notifies_nobody_is_degraded() {
    let aws = account_with_alarms().await;
    let reports = account_scanner(&aws, settings(&aws))
        .scan_account(&account_request(MEMBER))
        .await;
    let order: Vec<Source> = reports.iter().map(|r| r.source).collect();
    assert_eq!(
        order,
        Source::scanners(
            Provider::Aws,
            canopy_detection::detection::ScopeKind::Account
        )
    );
    let mut alarms = found(&reports, Source::AwsCloudWatchAlarm).to_vec();
    alarms.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(alarms.len(), 2, "{alarms:?}");
    let trail = &alarms[0];
    assert_eq!(trail.name, "cis-cloudtrail-changes");
    assert_eq!(
        trail.resource_key,
        "arn:aws:cloudwatch:eu-west-1:333333333333:alarm:cis-cloudtrail-changes"
    );
    assert_eq!(trail.status, Status::Active);
    assert!(
        trail
            .techniques
            .iter()
            .any(|t| t.technique == "T1562.008" && t.category == Category::Detect)
    );
    assert_eq!(trail.evidence["rules"][0], "cloudtrail_changes");
    let root = &alarms[1];
    assert_eq!(root.status, Status::Degraded);
    assert!(root.reason.as_deref().unwrap().contains("no action"));
    assert!(root.techniques.iter().any(|t| t.technique == "T1078.004"));
    // A region without CIS filters never asks for its alarms.
    assert_eq!(aws.scan_calls("cloudwatch:DescribeAlarms"), 1);
    // Nothing else is configured in this account: read, and empty.
    for source in [
        Source::AwsGuardDutyDetector,
        Source::AwsCloudTrailTrail,
        Source::AwsConfigRecorder,
        Source::AwsConfigRules,
        Source::AwsSecurityHubAccount,
    ] {
        assert!(found(&reports, source).is_empty(), "{source}");
    }
}

#[tokio::test]
async fn a_denied_or_throttled_alarm_read_is_unknown_and_a_passing_throttle_is_retried() {
    let aws = account_with_alarms().await;
    let scanner = account_scanner(&aws, settings(&aws));
    aws.fail_call(
        MEMBER,
        "cloudwatch:DescribeAlarms",
        Some(Fault::AccessDenied),
    );
    let reports = scanner.scan_account(&account_request(MEMBER)).await;
    let f = failure(&reports, Source::AwsCloudWatchAlarm);
    assert_eq!(f.kind, ReadFailureKind::AccessDenied);
    assert!(f.advice.starts_with(
        "grant cloudwatch:DescribeAlarms to arn:aws:iam::333333333333:role/CanopyAccess"
    ));

    aws.fail_call(MEMBER, "cloudwatch:DescribeAlarms", None);
    aws.fail_call(
        MEMBER,
        "logs:DescribeMetricFilters",
        Some(Fault::Throttling),
    );
    let reports = scanner.scan_account(&account_request(MEMBER)).await;
    assert_eq!(
        failure(&reports, Source::AwsCloudWatchAlarm).kind,
        ReadFailureKind::ThrottledOut
    );

    aws.fail_call(MEMBER, "logs:DescribeMetricFilters", None);
    aws.fail_call_times(MEMBER, "cloudwatch:DescribeAlarms", Fault::Throttling, 2);
    let before = aws.scan_calls("cloudwatch:DescribeAlarms");
    let reports = scanner.scan_account(&account_request(MEMBER)).await;
    assert_eq!(found(&reports, Source::AwsCloudWatchAlarm).len(), 2);
    assert_eq!(aws.scan_calls("cloudwatch:DescribeAlarms") - before, 3);
}

#[tokio::test]
async fn security_hub_in_an_account_is_found_where_enabled() {
    let aws = FakeAws::start().await.unwrap();
    aws.enable_security_hub(
        MEMBER,
        "eu-west-1",
        SecurityHubSetup {
            standards: vec![
                "arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0".into(),
            ],
            ..SecurityHubSetup::default()
        },
    );
    let reports = account_scanner(&aws, settings(&aws))
        .scan_account(&account_request(MEMBER))
        .await;
    let hubs = found(&reports, Source::AwsSecurityHubAccount);
    assert_eq!(hubs.len(), 1);
    assert_eq!(hubs[0].resource_key, "eu-west-1");
    assert_eq!(hubs[0].status, Status::Active);
    assert_eq!(hubs[0].evidence["standards"][0]["status"], "READY");
}

#[tokio::test]
async fn a_role_that_cannot_be_assumed_leaves_every_source_unknown() {
    let aws = FakeAws::start().await.unwrap();
    aws.fail_assume_role(MEMBER, Some(Fault::AccessDenied));
    let reports = account_scanner(&aws, settings(&aws))
        .scan_account(&account_request(MEMBER))
        .await;
    assert_eq!(reports.len(), 6);
    for r in &reports {
        let Err(f) = &r.outcome else {
            panic!("{} read without a role", r.source)
        };
        assert_eq!(f.kind, ReadFailureKind::AccessDenied);
        assert!(f.advice.contains("External ID"), "{}", f.advice);
    }
}

#[tokio::test]
async fn a_gcp_organization_or_project_is_not_for_the_aws_scanners() {
    let aws = FakeAws::start().await.unwrap();
    let reports = org_scanner(&aws)
        .scan_organization(&org_request(OrganizationAccess::Gcp {
            organization: "organizations/1".into(),
            credentials: GcpAccess::Impersonate("x@y.iam.gserviceaccount.com".into()),
        }))
        .await;
    assert_eq!(reports.len(), 5);
    let project = AccountScanRequest {
        account: account(CloudIdentity::Gcp {
            project_id: GcpProjectId::parse("my-project-1", "project_id").unwrap(),
            project_number: None,
        }),
        external_id: String::new(),
        stop: canopy_kernel::Stop::never(),
    };
    let accounts = account_scanner(&aws, settings(&aws))
        .scan_account(&project)
        .await;
    for r in reports.iter().chain(&accounts) {
        let Err(f) = &r.outcome else {
            panic!("{} read a GCP target", r.source)
        };
        assert_eq!(f.kind, ReadFailureKind::Failed);
        assert!(f.message.starts_with("not an AWS"), "{}", f.message);
    }
    assert_eq!(aws.calls().assume_role, 0);
}

#[tokio::test]
async fn calls_in_flight_stay_within_the_bound_across_concurrent_scans() {
    let aws = FakeAws::start().await.unwrap();
    aws.set_latency(Duration::from_millis(20));
    let scanner = account_scanner(
        &aws,
        ScanSettings {
            max_in_flight: 3,
            max_in_flight_total: 5,
            ..settings(&aws)
        },
    );
    let accounts: Vec<String> = (0..8).map(|i| format!("4000000000{i:02}")).collect();
    let scans = accounts.iter().map(|a| {
        let scanner = scanner.clone();
        let request = account_request(a);
        async move { scanner.scan_account(&request).await }
    });
    let all = futures::future::join_all(scans).await;
    for reports in &all {
        assert!(reports.iter().all(|r| r.outcome.is_ok()), "{reports:?}");
    }
    let peak = aws.max_in_flight();
    assert!((3..=5).contains(&peak), "peak {peak}");
    // Per account and region: DescribeTrails, ListDetectors, two recorder reads, the rules,
    // DescribeHub and the metric filters; plus one AssumeRole per account.
    assert_eq!(aws.scan_calls_total(), 8 * 2 * 7);
    assert_eq!(aws.calls().assume_role, 8);
}

#[tokio::test]
async fn guardduty_administrators_reach_all_accounts_or_their_members() {
    let aws = FakeAws::start().await.unwrap();
    aws.create_organization("o-scan000001", MANAGEMENT, "mgmt@example.com");
    // us-east-1: a delegated administrator enrolling every account.
    aws.set_guardduty_admin(MANAGEMENT, "us-east-1", ADMIN);
    aws.enable_guardduty(
        ADMIN,
        "us-east-1",
        GuardDutySetup {
            enabled: true,
            auto_enable: Some("ALL".into()),
            members: vec![MEMBER.into()],
        },
    );
    // eu-west-1: the management account administers itself and enrolls nobody new.
    aws.set_guardduty_admin(MANAGEMENT, "eu-west-1", MANAGEMENT);
    aws.enable_guardduty(
        MANAGEMENT,
        "eu-west-1",
        GuardDutySetup {
            enabled: true,
            auto_enable: Some("NONE".into()),
            members: vec![MEMBER.into()],
        },
    );
    let reports = org_scanner(&aws)
        .scan_organization(&org_request(management_access()))
        .await;
    let mut found = found(&reports, Source::AwsGuardDutyDelegatedAdmin).to_vec();
    found.sort_by(|a, b| a.resource_key.cmp(&b.resource_key));
    assert_eq!(found.len(), 2, "{found:#?}");
    let (eu, us) = (&found[0], &found[1]);
    assert_eq!(us.resource_key, "us-east-1");
    assert_eq!(us.status, Status::Active, "{:?}", us.reason);
    assert_eq!(us.applies_to, AppliesTo::AllAccounts);
    assert_eq!(us.evidence["autoEnableOrganizationMembers"], "ALL");
    assert_eq!(eu.resource_key, "eu-west-1");
    assert_eq!(eu.status, Status::Degraded);
    assert!(
        eu.reason
            .as_deref()
            .unwrap()
            .contains("not enrolled automatically")
    );
    assert_eq!(
        eu.applies_to,
        AppliesTo::Accounts(BTreeSet::from([MANAGEMENT.to_string(), MEMBER.to_string()]))
    );
    // The administrator's role was assumed once; the management account needed no other.
    assert_eq!(aws.calls_for(ADMIN).assume_role, 1);
    assert_eq!(aws.calls_for(MANAGEMENT).assume_role, 1);
}

#[tokio::test]
async fn an_administrator_whose_role_cannot_be_assumed_is_unknown_everywhere_not_hidden() {
    let aws = FakeAws::start().await.unwrap();
    aws.create_organization("o-scan000001", MANAGEMENT, "mgmt@example.com");
    aws.set_guardduty_admin(MANAGEMENT, "us-east-1", ADMIN);
    aws.fail_assume_role(ADMIN, Some(Fault::AccessDenied));
    let reports = org_scanner(&aws)
        .scan_organization(&org_request(management_access()))
        .await;
    let gd = found(&reports, Source::AwsGuardDutyDelegatedAdmin);
    assert_eq!(gd.len(), 1, "{gd:?}");
    let gd = &gd[0];
    // Nothing of it read: unknown for every account it may reach, not uncovered.
    assert_eq!(gd.status, Status::Unknown);
    assert_eq!(gd.applies_to, AppliesTo::AllAccounts);
    let reason = gd.reason.as_deref().unwrap();
    assert!(reason.contains("could not assume"), "{reason}");
    // The refusal reported is the member role's, the one customers deploy.
    assert!(reason.contains(&role(ADMIN, "CanopyAccess")), "{reason}");
    // The member role and the management role's name were both tried.
    assert_eq!(aws.calls_for(ADMIN).assume_role, 2);
}

#[tokio::test]
async fn an_administrator_whose_reach_is_unreadable_covers_itself_and_is_unknown_elsewhere() {
    let aws = FakeAws::start().await.unwrap();
    aws.create_organization("o-scan000001", MANAGEMENT, "mgmt@example.com");
    aws.set_guardduty_admin(MANAGEMENT, "us-east-1", ADMIN);
    aws.enable_guardduty(
        ADMIN,
        "us-east-1",
        GuardDutySetup {
            enabled: true,
            auto_enable: Some("ALL".into()),
            members: vec![MEMBER.into()],
        },
    );
    aws.fail_call(
        ADMIN,
        "guardduty:DescribeOrganizationConfiguration",
        Some(Fault::AccessDenied),
    );
    let reports = org_scanner(&aws)
        .scan_organization(&org_request(management_access()))
        .await;
    let mut gd = found(&reports, Source::AwsGuardDutyDelegatedAdmin).to_vec();
    gd.sort_by(|a, b| a.resource_key.cmp(&b.resource_key));
    assert_eq!(gd.len(), 2, "{gd:#?}");
    let (own, reach) = (&gd[0], &gd[1]);
    // The administrator's own detector was read: it covers the administrator.
    assert_eq!(own.resource_key, "us-east-1");
    assert_eq!(own.status, Status::Active, "{:?}", own.reason);
    assert_eq!(
        own.applies_to,
        AppliesTo::Accounts(BTreeSet::from([ADMIN.to_string()]))
    );
    // How far it reaches was not: every account it may reach has it as unknown, with why.
    assert_eq!(reach.resource_key, "us-east-1:reach");
    assert_eq!(reach.status, Status::Unknown);
    assert_eq!(reach.applies_to, AppliesTo::AllAccounts);
    assert!(
        reach
            .reason
            .as_deref()
            .unwrap()
            .contains("guardduty:DescribeOrganizationConfiguration"),
        "{:?}",
        reach.reason
    );
    assert_eq!(reach.techniques, own.techniques);
}

#[tokio::test]
async fn a_disabled_detector_is_degraded() {
    let aws = FakeAws::start().await.unwrap();
    aws.enable_guardduty(
        MEMBER,
        "us-east-1",
        GuardDutySetup {
            enabled: false,
            auto_enable: None,
            members: vec![],
        },
    );
    let reports = account_scanner(&aws, settings(&aws))
        .scan_account(&account_request(MEMBER))
        .await;
    let detectors = found(&reports, Source::AwsGuardDutyDetector);
    assert_eq!(detectors.len(), 1);
    assert_eq!(detectors[0].status, Status::Degraded);
    assert_eq!(
        detectors[0].reason.as_deref(),
        Some("the detector is DISABLED")
    );
}
