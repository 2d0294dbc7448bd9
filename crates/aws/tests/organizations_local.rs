//! AWS Organizations discovery through the real aws-sdk-organizations against the local
//! Organizations server of `canopy-aws-testkit`, for what moto cannot be made to answer: a
//! subtree denied to the caller, a caller that is not the management account, throttling, and
//! how many calls run at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_kernel::Stop;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use canopy_aws::{OrganizationsDiscoverer, OrganizationsSettings};
use canopy_aws_testkit::FakeAws;
use canopy_cloud_org::organization::member::MemberState;
use canopy_cloud_org::organization::{
    DiscoveryFailure, DiscoveryProgress, OrganizationAccess, OrganizationDiscoverer,
};

const MANAGEMENT: &str = "111111111111";

#[derive(Default)]
struct Seen {
    retries: AtomicU64,
}

#[async_trait]
impl DiscoveryProgress for Seen {
    async fn read(&self, _nodes: u64, _members: u64, retries: u64, _waited_ms: u64) {
        self.retries.store(retries, Ordering::Relaxed);
    }
}

fn discoverer(aws: &FakeAws, settings: OrganizationsSettings) -> OrganizationsDiscoverer {
    OrganizationsDiscoverer::new(
        canopy_aws::testing::with_test_credentials(),
        OrganizationsSettings {
            endpoint_url: Some(aws.url()),
            ..settings
        },
    )
}

fn fast() -> OrganizationsSettings {
    OrganizationsSettings {
        base_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(20),
        ..OrganizationsSettings::default()
    }
}

/// Root -> Prod (-> Web), Sandbox; 3 accounts in Prod, 2 in Web, 2 in Sandbox, the management
/// account at the root. Returns (root, prod, web, sandbox).
async fn organization() -> (FakeAws, [String; 4]) {
    let aws = FakeAws::start().await.unwrap();
    let root = aws.create_organization("o-abcd123456", MANAGEMENT, "mgmt@example.com");
    let prod = aws.add_ou(&root, "Prod");
    let web = aws.add_ou(&prod, "Web");
    let sandbox = aws.add_ou(&root, "Sandbox");
    aws.add_org_account(&root, MANAGEMENT, "management", "ACTIVE");
    for i in 0..3 {
        aws.add_org_account(&prod, &format!("2000000000{i:02}"), "prod", "ACTIVE");
    }
    for i in 0..2 {
        aws.add_org_account(&web, &format!("3000000000{i:02}"), "web", "ACTIVE");
        aws.add_org_account(&sandbox, &format!("4000000000{i:02}"), "sb", "SUSPENDED");
    }
    aws.delegate_admin("200000000000", "guardduty.amazonaws.com");
    (aws, [root, prod, web, sandbox])
}

fn role(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/CanopyManagement")
}

fn access(role: &str) -> OrganizationAccess {
    OrganizationAccess::Aws {
        role_arn: role.to_string(),
        external_id: "ext".into(),
    }
}

#[tokio::test]
async fn a_denied_subtree_is_listed_and_the_rest_is_read() {
    let (aws, [_, prod, web, sandbox]) = organization().await;
    aws.deny_parent(&prod);
    let found = discoverer(&aws, fast())
        .discover(
            &access(&role(MANAGEMENT)),
            Arc::new(Seen::default()),
            Stop::never(),
        )
        .await
        .unwrap();
    assert_eq!(found.unreadable.len(), 1, "{:?}", found.unreadable);
    assert_eq!(found.unreadable[0].0, prod);
    assert!(found.unreadable[0].1.contains("access denied"));
    // Prod's accounts and everything under it are unknown, not reported as gone.
    assert!(!found.nodes.iter().any(|n| n.id == web));
    let parents: Vec<_> = found.members.iter().map(|m| m.parent_id.clone()).collect();
    assert!(!parents.contains(&prod));
    assert_eq!(parents.iter().filter(|p| **p == sandbox).count(), 2);
    assert_eq!(found.members.len(), 3);
    let suspended = found
        .members
        .iter()
        .filter(|m| m.state == MemberState::Suspended)
        .count();
    assert_eq!(suspended, 2);
}

#[tokio::test]
async fn a_member_account_is_told_it_is_not_the_management_account() {
    let (aws, _) = organization().await;
    let err = discoverer(&aws, fast())
        .discover(
            &access(&role("200000000000")),
            Arc::new(Seen::default()),
            Stop::never(),
        )
        .await
        .unwrap_err();
    let DiscoveryFailure::MemberAccountRole {
        role_account,
        management_account,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(role_account, "200000000000");
    assert_eq!(management_account, MANAGEMENT);
    assert!(err.to_string().contains("management account"));
    // Refused before the tree: nothing past DescribeOrganization was called.
    assert_eq!(aws.organizations_calls().total, 1);
}

#[tokio::test]
async fn an_account_outside_any_organization_is_told_organizations_is_not_enabled() {
    let aws = FakeAws::start().await.unwrap();
    let err = discoverer(&aws, fast())
        .identify(&access(&role(MANAGEMENT)))
        .await
        .unwrap_err();
    assert_eq!(err, DiscoveryFailure::OrganizationsNotEnabled);
}

#[tokio::test]
async fn throttled_calls_are_retried_and_reported() {
    let (aws, _) = organization().await;
    aws.set_org_page_size(1);
    aws.throttle_every(Some(3));
    let seen = Arc::new(Seen::default());
    let found = discoverer(&aws, fast())
        .discover(&access(&role(MANAGEMENT)), seen.clone(), Stop::never())
        .await
        .unwrap();
    let calls = aws.organizations_calls();
    assert!(calls.throttled >= 5, "{calls:?}");
    // Every throttled answer was retried: the discovery counted each one, nothing was lost.
    assert_eq!(found.throttled_retries, calls.throttled);
    assert_eq!(found.members.len(), 8);
    assert!(found.unreadable.is_empty());
    assert!(seen.retries.load(Ordering::Relaxed) > 0);
}

#[tokio::test]
async fn throttling_past_the_retry_budget_fails_with_the_retries_spent() {
    let (aws, _) = organization().await;
    aws.throttle_every(Some(1));
    let err = discoverer(
        &aws,
        OrganizationsSettings {
            max_retries: 3,
            ..fast()
        },
    )
    .discover(
        &access(&role(MANAGEMENT)),
        Arc::new(Seen::default()),
        Stop::never(),
    )
    .await
    .unwrap_err();
    assert_eq!(err, DiscoveryFailure::ThrottledOut(3));
    assert_eq!(aws.organizations_calls().total, 4);
}

#[tokio::test]
async fn calls_in_flight_stay_within_the_bound_and_do_overlap() {
    let aws = FakeAws::start().await.unwrap();
    let root = aws.create_organization("o-wide000000", MANAGEMENT, "mgmt@example.com");
    for i in 0..24 {
        let ou = aws.add_ou(&root, &format!("team-{i}"));
        aws.add_org_account(&ou, &format!("5000000000{i:02}"), "t", "ACTIVE");
    }
    aws.set_latency(Duration::from_millis(20));
    let found = discoverer(
        &aws,
        OrganizationsSettings {
            max_in_flight: 4,
            ..fast()
        },
    )
    .discover(
        &access(&role(MANAGEMENT)),
        Arc::new(Seen::default()),
        Stop::never(),
    )
    .await
    .unwrap();
    assert_eq!(found.members.len(), 24);
    let calls = aws.organizations_calls();
    assert!(calls.max_in_flight <= 4, "{calls:?}");
    assert!(
        calls.max_in_flight >= 3,
        "calls never overlapped: {calls:?}"
    );
}

#[tokio::test]
async fn delegated_administrators_and_the_management_account_are_marked() {
    let (aws, _) = organization().await;
    let found = discoverer(&aws, fast())
        .discover(
            &access(&role(MANAGEMENT)),
            Arc::new(Seen::default()),
            Stop::never(),
        )
        .await
        .unwrap();
    let by_key = |k: &str| found.members.iter().find(|m| m.key == k).unwrap();
    assert!(by_key(MANAGEMENT).is_management);
    assert!(!by_key("200000000000").is_management);
    assert_eq!(
        by_key("200000000000").delegated_admin_services,
        vec!["guardduty.amazonaws.com".to_string()]
    );
    assert!(by_key("200000000001").delegated_admin_services.is_empty());
    assert_eq!(found.members.len(), 8);
    assert_eq!(found.nodes.len(), 4);
}

#[tokio::test]
async fn suspended_closing_and_closed_accounts_are_read_from_their_state() {
    let (aws, _) = organization().await;
    aws.set_org_account_state("200000000001", "PENDING_CLOSURE");
    aws.set_org_account_state("200000000002", "CLOSED");
    let found = discoverer(&aws, fast())
        .discover(
            &access(&role(MANAGEMENT)),
            Arc::new(Seen::default()),
            Stop::never(),
        )
        .await
        .unwrap();
    let state = |k: &str| found.members.iter().find(|m| m.key == k).unwrap().state;
    assert_eq!(state("200000000000"), MemberState::Active);
    assert_eq!(state("200000000001"), MemberState::PendingClosure);
    assert_eq!(state("200000000002"), MemberState::Closed);
    assert_eq!(state("400000000000"), MemberState::Suspended);
}
