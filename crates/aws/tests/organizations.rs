//! AWS Organizations discovery through the real aws-sdk-organizations against moto: an
//! organization three OU levels deep, 45 accounts in one OU (several pages of
//! ListAccountsForParent), a delegated administrator; then an account moved and one removed,
//! and the re-discovery's diff says so. A member account's role sees no organization it manages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_kernel::Stop;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use canopy_aws::{OrganizationsDiscoverer, OrganizationsSettings};
use canopy_cloud_org::organization::hierarchy::{AWS_MAX_DEPTH, Hierarchy};
use canopy_cloud_org::organization::member::MemberState;
use canopy_cloud_org::organization::sync::{Change, diff};
use canopy_cloud_org::organization::{
    DiscoveryProgress, OrganizationAccess, OrganizationDiscoverer,
};

fn access(role: &str) -> OrganizationAccess {
    OrganizationAccess::Aws {
        role_arn: role.to_string(),
        external_id: "cnp-ext".into(),
    }
}

fn sdk_config() -> SdkConfig {
    canopy_aws::testing::with_test_credentials()
}

/// A random 12-digit account id of its own per test run: moto scopes data by account.
fn random_account() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:012}",
        (nanos ^ u128::from(std::process::id())) % 900_000_000_000 + 100_000_000_000
    )
}

/// An Organizations client acting as `account` (moto scopes assumed credentials to it).
async fn organizations_as(account: &str) -> aws_sdk_organizations::Client {
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&sdk_config())
            .endpoint_url(canopy_aws::testing::moto_url())
            .build(),
    );
    let c = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/Setup"))
        .role_session_name("setup")
        .send()
        .await
        .unwrap();
    let c = c.credentials().unwrap();
    let creds = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "setup",
    );
    aws_sdk_organizations::Client::from_conf(
        aws_sdk_organizations::config::Builder::from(&sdk_config())
            .endpoint_url(canopy_aws::testing::moto_url())
            .credentials_provider(creds)
            .build(),
    )
}

#[derive(Default)]
struct Seen {
    reports: AtomicU64,
    members: AtomicU64,
}

#[async_trait]
impl DiscoveryProgress for Seen {
    async fn read(&self, _nodes: u64, members: u64, _retries: u64, _waited_ms: u64) {
        self.reports.fetch_add(1, Ordering::Relaxed);
        self.members.store(members, Ordering::Relaxed);
    }
}

fn discoverer() -> OrganizationsDiscoverer {
    OrganizationsDiscoverer::new(
        sdk_config(),
        OrganizationsSettings {
            endpoint_url: Some(canopy_aws::testing::moto_url()),
            ..OrganizationsSettings::default()
        },
    )
}

async fn create_account(org: &aws_sdk_organizations::Client, name: &str) -> String {
    let out = org
        .create_account()
        .account_name(name)
        .email(format!("{name}@example.com"))
        .send()
        .await
        .unwrap();
    out.create_account_status()
        .unwrap()
        .account_id()
        .unwrap()
        .to_string()
}

async fn ou(org: &aws_sdk_organizations::Client, parent: &str, name: &str) -> String {
    org.create_organizational_unit()
        .parent_id(parent)
        .name(name)
        .send()
        .await
        .unwrap()
        .organizational_unit()
        .unwrap()
        .id()
        .unwrap()
        .to_string()
}

async fn move_to(org: &aws_sdk_organizations::Client, account: &str, from: &str, to: &str) {
    org.move_account()
        .account_id(account)
        .source_parent_id(from)
        .destination_parent_id(to)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs moto"]
async fn discovers_the_tree_every_page_and_the_delegated_admins_then_diffs_a_resync() {
    let management = random_account();
    let org = organizations_as(&management).await;
    org.create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .unwrap();
    let root = org.list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_string();
    let prod = ou(&org, &root, "Production").await;
    let web = ou(&org, &prod, "Web").await;
    let frontend = ou(&org, &web, "Frontend").await;
    let dev = ou(&org, &root, "Development").await;
    let mut many = Vec::new();
    for i in 0..45 {
        let id = create_account(&org, &format!("web-{i}-{management}")).await;
        move_to(&org, &id, &root, &web).await;
        many.push(id);
    }
    let deep = create_account(&org, &format!("deep-{management}")).await;
    move_to(&org, &deep, &root, &frontend).await;
    let security = create_account(&org, &format!("security-{management}")).await;
    move_to(&org, &security, &root, &dev).await;
    org.register_delegated_administrator()
        .account_id(&security)
        .service_principal("guardduty.amazonaws.com")
        .send()
        .await
        .unwrap();

    let seen = Arc::new(Seen::default());
    let role = format!("arn:aws:iam::{management}:role/CanopyManagement");
    let found = discoverer()
        .discover(&access(&role), seen.clone(), Stop::never())
        .await
        .unwrap();

    assert_eq!(
        found.identity.management_account_id.as_deref(),
        Some(management.as_str())
    );
    assert!(found.identity.cloud_org_id.starts_with("o-"));
    assert!(found.unreadable.is_empty(), "{:?}", found.unreadable);
    // Root + 4 OUs; 45 + deep + security + the management account.
    assert_eq!(found.nodes.len(), 5);
    assert_eq!(found.members.len(), 48);
    let tree = Hierarchy::build(found.nodes.clone(), AWS_MAX_DEPTH).unwrap();
    assert_eq!(
        tree.get(&frontend).unwrap().path,
        "Root/Production/Web/Frontend"
    );
    assert_eq!(tree.get(&frontend).unwrap().depth, 3);
    let by_key = |k: &str| found.members.iter().find(|m| m.key == k).unwrap();
    assert!(by_key(&management).is_management);
    assert_eq!(by_key(&deep).parent_id, frontend);
    assert_eq!(by_key(&many[44]).parent_id, web);
    assert_eq!(by_key(&many[0]).state, MemberState::Active);
    assert_eq!(
        by_key(&security).delegated_admin_services,
        vec!["guardduty.amazonaws.com".to_string()]
    );
    // Under Production: Web's 45 and Frontend's one, not Development's.
    let under_prod = found
        .members
        .iter()
        .filter(|m| tree.is_under(&m.parent_id, &prod))
        .count();
    assert_eq!(under_prod, 46);
    assert!(
        seen.reports.load(Ordering::Relaxed) >= 4,
        "one report per level"
    );
    assert_eq!(seen.members.load(Ordering::Relaxed), 48);

    // An unchanged organization re-discovered: no change.
    let again = discoverer()
        .discover(&access(&role), seen.clone(), Stop::never())
        .await
        .unwrap();
    assert!(diff(&tree, &found.members, &again.nodes, &again.members).is_empty());

    // One account moves, one leaves.
    move_to(&org, &many[0], &web, &dev).await;
    org.remove_account_from_organization()
        .account_id(&many[1])
        .send()
        .await
        .unwrap();
    let after = discoverer()
        .discover(&access(&role), seen.clone(), Stop::never())
        .await
        .unwrap();
    let changes = diff(&tree, &found.members, &after.nodes, &after.members);
    assert!(changes.contains(&Change::Moved {
        key: many[0].clone(),
        from: web.clone(),
        to: dev.clone()
    }));
    assert!(changes.contains(&Change::Left {
        key: many[1].clone()
    }));
    assert_eq!(changes.len(), 2, "{changes:?}");
}

#[tokio::test]
#[ignore = "needs moto"]
async fn an_account_outside_any_organization_is_told_organizations_is_not_enabled() {
    let lone = random_account();
    let role = format!("arn:aws:iam::{lone}:role/CanopyManagement");
    let err = discoverer()
        .discover(&access(&role), Arc::new(Seen::default()), Stop::never())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            canopy_cloud_org::organization::DiscoveryFailure::OrganizationsNotEnabled
        ),
        "{err:?}"
    );
}
