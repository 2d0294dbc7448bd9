//! GCP Organization discovery and project verification through the real
//! google-cloudresourcemanager3 and yup-oauth2 against the local GCP of `canopy-gcp-testkit`:
//! signed JWT assertions exchanged for access tokens, folders four deep, several pages per
//! parent, denied folders and organizations, refused keys, throttling and concurrency.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_kernel::Stop;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use canopy_cloud_org::health::FailureKind;
use canopy_cloud_org::organization::hierarchy::{GCP_MAX_DEPTH, Hierarchy, NodeKind};
use canopy_cloud_org::organization::member::MemberState;
use canopy_cloud_org::organization::{Discovery, DiscoveryFailure, DiscoveryProgress};
use canopy_gcp::{GcpSettings, KeyError, ResourceManagerDiscoverer, ServiceAccountKey};
use canopy_gcp_testkit::{FOLDERS_LIST, FakeGcp, ORGANIZATIONS_GET, PROJECTS_GET, PROJECTS_LIST};

const ORG: &str = "organizations/1001";
const SA: &str = "canopy-reader@customer-admin.iam.gserviceaccount.com";

#[derive(Default)]
struct Progress(Mutex<Vec<(u64, u64, u64, u64)>>);

#[async_trait]
impl DiscoveryProgress for Progress {
    async fn read(&self, nodes: u64, members: u64, retries: u64, waited_ms: u64) {
        self.0
            .lock()
            .unwrap()
            .push((nodes, members, retries, waited_ms));
    }
}

fn settings(fake: &FakeGcp) -> GcpSettings {
    GcpSettings {
        endpoint_url: Some(fake.url()),
        max_in_flight: 4,
        call_timeout: Duration::from_secs(10),
        max_retries: 4,
        base_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(20),
    }
}

/// An organization with folders four deep (Engineering/Platform/Prod/Web), six top-level
/// folders and three projects at the top (three and two pages at page size 2), and a project
/// awaiting deletion.
async fn organization() -> (FakeGcp, ResourceManagerDiscoverer, ServiceAccountKey) {
    let fake = FakeGcp::start().await.unwrap();
    fake.add_organization(1001, "example.com", "C01abcde");
    fake.add_folder("folders/1", ORG, "Engineering");
    fake.add_folder("folders/2", "folders/1", "Platform");
    fake.add_folder("folders/3", "folders/2", "Prod");
    fake.add_folder("folders/4", "folders/3", "Web");
    for n in 10..15 {
        fake.add_folder(&format!("folders/{n}"), ORG, &format!("Team {n}"));
    }
    fake.add_project("org-level-a", 501, ORG, "Org A", "ACTIVE");
    fake.add_project("org-level-b", 502, ORG, "", "ACTIVE");
    fake.add_project("org-level-c", 503, ORG, "Org C", "ACTIVE");
    fake.add_project(
        "platform-tools",
        504,
        "folders/2",
        "Platform tools",
        "ACTIVE",
    );
    fake.add_project(
        "old-thing",
        505,
        "folders/3",
        "Old thing",
        "DELETE_REQUESTED",
    );
    fake.add_project("web-prod-1", 506, "folders/4", "Web prod", "ACTIVE");
    fake.add_project("sandbox-1", 507, "folders/10", "Sandbox", "ACTIVE");
    fake.set_page_size(2);
    let key = ServiceAccountKey::parse(&fake.service_account_key_json(SA)).unwrap();
    let discoverer = ResourceManagerDiscoverer::new(settings(&fake)).unwrap();
    (fake, discoverer, key)
}

async fn discover(
    d: &ResourceManagerDiscoverer,
    key: &ServiceAccountKey,
) -> Result<Discovery, DiscoveryFailure> {
    d.discover(key, ORG, Arc::new(Progress::default()), Stop::never())
        .await
}

fn parent_of<'a>(discovery: &'a Discovery, id: &str) -> Option<&'a str> {
    discovery
        .nodes
        .iter()
        .find(|n| n.id == id)
        .and_then(|n| n.parent_id.as_deref())
}

fn keys(discovery: &Discovery) -> Vec<&str> {
    discovery.members.iter().map(|m| m.key.as_str()).collect()
}

#[tokio::test]
async fn the_whole_organization_is_read_every_page_at_every_depth() {
    let (fake, discoverer, key) = organization().await;
    let progress = Arc::new(Progress::default());
    let d = discoverer
        .discover(&key, ORG, progress.clone(), Stop::never())
        .await
        .unwrap();

    assert_eq!(d.identity.cloud_org_id, ORG);
    assert_eq!(d.identity.display_name.as_deref(), Some("example.com"));
    assert_eq!(
        d.identity.directory_customer_id.as_deref(),
        Some("C01abcde")
    );
    assert_eq!(d.identity.lifecycle_state.as_deref(), Some("ACTIVE"));
    assert_eq!(d.identity.arn, None);

    let root = &d.nodes[0];
    assert_eq!(
        (root.id.as_str(), root.kind, root.parent_id.as_deref()),
        (ORG, NodeKind::Root, None)
    );
    assert_eq!(root.name, "example.com");
    assert_eq!(d.nodes.len(), 1 + 4 + 5);
    assert!(d.nodes[1..].iter().all(|n| n.kind == NodeKind::Folder));
    assert_eq!(parent_of(&d, "folders/4"), Some("folders/3"));
    assert_eq!(parent_of(&d, "folders/1"), Some(ORG));
    assert_eq!(parent_of(&d, "folders/14"), Some(ORG));
    let tree = Hierarchy::build(d.nodes.clone(), GCP_MAX_DEPTH).unwrap();
    assert_eq!(
        tree.get("folders/4").unwrap().path,
        "example.com/Engineering/Platform/Prod/Web"
    );

    assert_eq!(
        keys(&d),
        [
            "old-thing",
            "org-level-a",
            "org-level-b",
            "org-level-c",
            "platform-tools",
            "sandbox-1",
            "web-prod-1"
        ]
    );
    let member = |k: &str| d.members.iter().find(|m| m.key == k).unwrap();
    assert_eq!(member("old-thing").state, MemberState::DeleteRequested);
    assert_eq!(member("web-prod-1").state, MemberState::Active);
    assert_eq!(member("web-prod-1").parent_id, "folders/4");
    assert_eq!(member("web-prod-1").number.as_deref(), Some("506"));
    assert_eq!(member("web-prod-1").name, "Web prod");
    assert_eq!(
        member("org-level-b").name,
        "org-level-b",
        "no display name: the project id"
    );
    assert_eq!(member("org-level-c").parent_id, ORG);
    assert!(
        d.members
            .iter()
            .all(|m| !m.is_management && m.email.is_none())
    );
    assert!(d.unreadable.is_empty());
    assert_eq!((d.throttled_retries, d.throttled_ms), (0, 0));

    let calls = fake.calls();
    assert_eq!(calls.token, 1, "one token serves every call of a discovery");
    assert_eq!(calls.get_organization, 1);
    // Six folders under the organization: three pages; one page under each of nine folders.
    assert_eq!(calls.list_folders, 3 + 9);
    // Three projects under the organization: two pages; one page under each folder.
    assert_eq!(calls.list_projects, 2 + 9);

    // One report per level: the organization, its six folders, then Platform, Prod, Web.
    let reports = progress.0.lock().unwrap().clone();
    assert_eq!(reports.len(), 5);
    assert_eq!(reports[0], (7, 3, 0, 0));
    assert_eq!(reports[4], (10, 7, 0, 0));
}

#[tokio::test]
async fn a_second_discovery_sees_moves_state_changes_and_removals() {
    let (fake, discoverer, key) = organization().await;
    let first = discover(&discoverer, &key).await.unwrap();
    assert_eq!(parent_of(&first, "folders/3"), Some("folders/2"));

    fake.move_folder("folders/3", "folders/10");
    fake.set_project_state("web-prod-1", "DELETE_REQUESTED");
    fake.remove_project("sandbox-1");
    let second = discover(&discoverer, &key).await.unwrap();

    assert_eq!(parent_of(&second, "folders/3"), Some("folders/10"));
    assert_eq!(
        parent_of(&second, "folders/4"),
        Some("folders/3"),
        "its subtree moved with it"
    );
    assert_eq!(second.nodes.len(), first.nodes.len());
    let web = second
        .members
        .iter()
        .find(|m| m.key == "web-prod-1")
        .unwrap();
    assert_eq!(web.state, MemberState::DeleteRequested);
    assert!(!keys(&second).contains(&"sandbox-1"));
    assert_eq!(second.members.len(), first.members.len() - 1);
    let tree = Hierarchy::build(second.nodes, GCP_MAX_DEPTH).unwrap();
    assert_eq!(
        tree.get("folders/4").unwrap().path,
        "example.com/Team 10/Prod/Web"
    );
}

#[tokio::test]
async fn a_denied_folder_is_recorded_and_its_siblings_are_still_read() {
    let (fake, discoverer, key) = organization().await;
    fake.deny_folder("folders/2");
    let d = discover(&discoverer, &key).await.unwrap();

    assert_eq!(d.unreadable.len(), 1);
    let (folder, reason) = &d.unreadable[0];
    assert_eq!(folder, "folders/2");
    assert!(
        reason.starts_with("permission denied: resourcemanager.folders.list"),
        "{reason}"
    );
    // Platform itself was listed by its parent; nothing below it was.
    assert_eq!(parent_of(&d, "folders/2"), Some("folders/1"));
    assert_eq!(parent_of(&d, "folders/3"), None);
    assert_eq!(parent_of(&d, "folders/4"), None);
    assert_eq!(
        keys(&d),
        ["org-level-a", "org-level-b", "org-level-c", "sandbox-1"],
        "projects under Platform are absent, siblings present"
    );
}

#[tokio::test]
async fn the_organization_denied_names_the_missing_permission() {
    let (fake, discoverer, key) = organization().await;
    for (permission, rm_calls) in [
        (ORGANIZATIONS_GET, 1),
        (FOLDERS_LIST, 2),
        (PROJECTS_LIST, 5),
    ] {
        fake.allow_everything();
        fake.deny_all(permission);
        fake.reset_calls();
        let expected = DiscoveryFailure::PermissionMissing {
            provider: canopy_cloud_org::Provider::Gcp,
            permission: format!("{permission} on {ORG}"),
        };
        assert_eq!(discover(&discoverer, &key).await.unwrap_err(), expected);
        // Nothing past the refusal is read: the organization, then the root's folder pages.
        assert_eq!(fake.calls().resource_manager(), rm_calls, "{permission}");
    }
    fake.allow_everything();
    fake.deny_all(ORGANIZATIONS_GET);
    assert_eq!(
        discoverer.identify(&key, ORG).await.unwrap_err(),
        DiscoveryFailure::PermissionMissing {
            provider: canopy_cloud_org::Provider::Gcp,
            permission: format!("{ORGANIZATIONS_GET} on {ORG}"),
        }
    );
    fake.allow_everything();
    let identity = discoverer.identify(&key, "1001").await.unwrap();
    assert_eq!(identity.cloud_org_id, ORG);
    let missing = discoverer
        .identify(&key, "organizations/999")
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, DiscoveryFailure::Other(m) if m.starts_with("organization not found: organizations/999")),
        "{missing:?}"
    );
    let malformed = discoverer
        .identify(&key, "organizations/1/../2")
        .await
        .unwrap_err();
    assert!(matches!(malformed, DiscoveryFailure::Other(_)));
}

#[tokio::test]
async fn revoked_and_foreign_keys_are_refused_before_any_call() {
    let (fake, discoverer, key) = organization().await;
    let refused = DiscoveryFailure::KeyRefused("invalid_grant".into());
    let foreign = ServiceAccountKey::parse(&fake.foreign_key_json(SA)).unwrap();
    assert_eq!(discover(&discoverer, &foreign).await.unwrap_err(), refused);
    fake.revoke(SA);
    assert_eq!(discover(&discoverer, &key).await.unwrap_err(), refused);
    assert_eq!(discoverer.identify(&key, ORG).await.unwrap_err(), refused);
    let check = discoverer
        .verify_project(&key, "web-prod-1")
        .await
        .unwrap_err();
    assert_eq!(check.kind, FailureKind::AccessDenied);
    assert_eq!(
        check.message,
        "the service account key was refused: invalid_grant"
    );
    assert_eq!(
        fake.calls().resource_manager(),
        0,
        "no Resource Manager call without a token"
    );
    assert_eq!(fake.calls().token, 4);
}

#[tokio::test]
async fn throttled_calls_are_retried_counted_and_eventually_given_up() {
    let (fake, discoverer, key) = organization().await;
    let calm = discover(&discoverer, &key).await.unwrap();
    let calm_calls = fake.calls().resource_manager();
    fake.reset_calls();

    fake.throttle_next(3);
    let progress = Arc::new(Progress::default());
    let d = discoverer
        .discover(&key, ORG, progress.clone(), Stop::never())
        .await
        .unwrap();
    assert_eq!(d.throttled_retries, 3);
    // Full jitter under a 2 ms base doubling to a 20 ms cap: at most 4 + 8 + 16 ms.
    assert!(d.throttled_ms <= 28, "{}", d.throttled_ms);
    assert_eq!(
        (d.nodes.clone(), d.members.clone()),
        (calm.nodes, calm.members)
    );
    assert_eq!(fake.calls().resource_manager(), calm_calls + 3);
    assert_eq!(progress.0.lock().unwrap().last().unwrap().2, 3);

    // max_retries is 4: the fifth throttled answer ends it.
    fake.reset_calls();
    fake.throttle_next(1_000);
    assert_eq!(
        discover(&discoverer, &key).await.unwrap_err(),
        DiscoveryFailure::ThrottledOut(4)
    );
    assert_eq!(fake.calls().resource_manager(), 5);

    // A project check is tried once and says it was throttled.
    let check = discoverer
        .verify_project(&key, "web-prod-1")
        .await
        .unwrap_err();
    assert_eq!(check.kind, FailureKind::Throttled);
}

#[tokio::test]
async fn calls_in_flight_never_exceed_the_budget() {
    let fake = FakeGcp::start().await.unwrap();
    fake.add_organization(1001, "example.com", "C01");
    for n in 0..24 {
        fake.add_folder(&format!("folders/{}", 100 + n), ORG, &format!("F{n}"));
        fake.add_project(
            &format!("project-{n:03}"),
            900 + n,
            &format!("folders/{}", 100 + n),
            "P",
            "ACTIVE",
        );
    }
    fake.set_latency(Duration::from_millis(40));
    let key = ServiceAccountKey::parse(&fake.service_account_key_json(SA)).unwrap();
    for budget in [3, 6] {
        fake.reset_calls();
        let discoverer = ResourceManagerDiscoverer::new(GcpSettings {
            max_in_flight: budget,
            ..settings(&fake)
        })
        .unwrap();
        let d = discover(&discoverer, &key).await.unwrap();
        assert_eq!(d.members.len(), 24);
        // Twenty-four folders wait at once: the budget is reached, never passed.
        assert_eq!(fake.max_in_flight(), budget);
    }
}

#[tokio::test]
async fn project_checks_are_classified() {
    let (fake, discoverer, key) = organization().await;
    let info = discoverer.verify_project(&key, "web-prod-1").await.unwrap();
    assert_eq!(info.project_id, "web-prod-1");
    assert_eq!(info.number.as_deref(), Some("506"));
    assert_eq!(info.display_name, "Web prod");
    assert_eq!(info.state, MemberState::Active);
    assert_eq!(info.parent.as_deref(), Some("folders/4"));
    let by_number = discoverer.verify_project(&key, "505").await.unwrap();
    assert_eq!(
        (by_number.project_id.as_str(), by_number.state),
        ("old-thing", MemberState::DeleteRequested)
    );

    let missing = discoverer
        .verify_project(&key, "no-such-project")
        .await
        .unwrap_err();
    assert_eq!(missing.kind, FailureKind::RoleNotFound);
    assert_eq!(missing.message, "project not found: no-such-project");

    fake.deny_folder("folders/3");
    let under_denied = discoverer
        .verify_project(&key, "web-prod-1")
        .await
        .unwrap_err();
    assert_eq!(under_denied.kind, FailureKind::AccessDenied);
    assert!(
        under_denied.message.contains(PROJECTS_GET),
        "{}",
        under_denied.message
    );
    fake.allow_everything();
    fake.deny_all(PROJECTS_GET);
    assert_eq!(
        discoverer
            .verify_project(&key, "sandbox-1")
            .await
            .unwrap_err()
            .kind,
        FailureKind::AccessDenied
    );
    fake.allow_everything();

    // The id is part of the URL path: anything but a project id never leaves.
    fake.reset_calls();
    let odd = discoverer
        .verify_project(&key, "../organizations/1001")
        .await
        .unwrap_err();
    assert_eq!(odd.kind, FailureKind::Other);
    assert_eq!(fake.calls().resource_manager(), 0);

    fake.set_latency(Duration::from_millis(400));
    let slow = ResourceManagerDiscoverer::new(GcpSettings {
        call_timeout: Duration::from_millis(100),
        ..settings(&fake)
    })
    .unwrap();
    assert_eq!(
        slow.verify_project(&key, "web-prod-1")
            .await
            .unwrap_err()
            .kind,
        FailureKind::Timeout
    );
    assert!(matches!(
        discover(&slow, &key).await.unwrap_err(),
        DiscoveryFailure::Network(_)
    ));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_network_failure() {
    let (fake, _, key) = organization().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let discoverer = ResourceManagerDiscoverer::new(GcpSettings {
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
        ..settings(&fake)
    })
    .unwrap();
    assert_eq!(
        discover(&discoverer, &key).await.unwrap_err(),
        DiscoveryFailure::Network("Resource Manager could not be reached".into())
    );
    let check = discoverer
        .verify_project(&key, "web-prod-1")
        .await
        .unwrap_err();
    assert_eq!(check.kind, FailureKind::Network);
    assert_eq!(
        fake.calls().token,
        2,
        "the token was had; Resource Manager was not"
    );
}

#[tokio::test]
async fn production_settings_refuse_a_key_naming_another_token_endpoint() {
    let (fake, _, key) = organization().await;
    let production = ResourceManagerDiscoverer::new(GcpSettings::default()).unwrap();
    let check = production
        .verify_project(&key, "web-prod-1")
        .await
        .unwrap_err();
    assert_eq!(check.kind, FailureKind::AccessDenied);
    assert!(check.message.contains("token_uri"), "{}", check.message);
    assert!(matches!(
        production.identify(&key, ORG).await.unwrap_err(),
        DiscoveryFailure::KeyRefused(_)
    ));
    assert_eq!(
        fake.calls().token,
        0,
        "the key's endpoint was never contacted"
    );
}

#[tokio::test]
async fn key_json_is_checked_and_defaults_to_googles_token_endpoint() {
    let fake = FakeGcp::start().await.unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&fake.service_account_key_json(SA)).unwrap();
    json.as_object_mut().unwrap().remove("token_uri");
    let key = ServiceAccountKey::parse(&json.to_string()).unwrap();
    assert_eq!(key.token_uri(), canopy_gcp::DEFAULT_TOKEN_URI);
    assert_eq!(
        key.private_key_id(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    json["type"] = "authorized_user".into();
    assert_eq!(
        ServiceAccountKey::parse(&json.to_string()).map(|_| ()),
        Err(KeyError::NotServiceAccount("authorized_user".into()))
    );
    json["type"] = "service_account".into();
    json["client_email"] = "".into();
    assert_eq!(
        ServiceAccountKey::parse(&json.to_string()).map(|_| ()),
        Err(KeyError::Missing("client_email"))
    );
}

#[tokio::test]
async fn no_token_or_private_key_shows_in_debug_output_or_errors() {
    let (fake, discoverer, key) = organization().await;
    let json = fake.service_account_key_json(SA);
    let pem: serde_json::Value = serde_json::from_str(&json).unwrap();
    let pem = pem["private_key"].as_str().unwrap().to_string();
    let secret_line = pem.lines().nth(5).unwrap().to_string();

    assert_eq!(key.client_email(), SA);
    assert_eq!(key.project_id(), Some("customer-admin"));
    assert_eq!(key.token_uri(), fake.token_uri());
    let debug = format!("{key:?} {discoverer:?}");
    assert!(
        debug.contains("<redacted>") && debug.contains(SA),
        "{debug}"
    );
    assert!(
        !debug.contains(&secret_line) && !debug.contains("PRIVATE KEY"),
        "{debug}"
    );

    let mut messages = vec![];
    discover(&discoverer, &key).await.unwrap();
    fake.deny_folder("folders/2");
    let partial = discover(&discoverer, &key).await.unwrap();
    messages.push(format!("{:?}", partial.unreadable));
    fake.throttle_next(1_000);
    let throttled = discover(&discoverer, &key).await.unwrap_err();
    messages.push(format!("{throttled} {throttled:?}"));
    fake.throttle_next(0);
    fake.deny_all(PROJECTS_GET);
    let denied = discoverer
        .verify_project(&key, "web-prod-1")
        .await
        .unwrap_err();
    messages.push(format!("{denied} {denied:?}"));
    fake.revoke(SA);
    let refused = discover(&discoverer, &key).await.unwrap_err();
    messages.push(format!("{refused} {refused:?}"));

    let tokens = fake.issued_tokens();
    assert!(!tokens.is_empty());
    for message in &messages {
        for token in &tokens {
            assert!(!message.contains(token.as_str()), "token leaked: {message}");
        }
        assert!(
            !message.contains(&secret_line) && !message.contains("PRIVATE KEY"),
            "{message}"
        );
        assert!(!message.contains("eyJ"), "an assertion leaked: {message}");
    }
}
