//! The GCP organization scanner through the real google-logging2, google-securitycenter1,
//! google-orgpolicy2 and google-cloudasset1 against the local GCP of `canopy-gcp-testkit`:
//! sinks at the organization and folders and where they reach, organization policies and their
//! overrides, Security Command Center, asset feeds, and every way a source can fail to be read
//! (denied, throttled for ever, a denied folder, a refused key) reported as such, never as an
//! empty list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use canopy_cloud_org::Provider;
use canopy_cloud_org::organization::hierarchy::{
    DiscoveredNode, GCP_MAX_DEPTH, Hierarchy, NodeKind,
};
use canopy_cloud_org::organization::{
    CloudOrganization, CloudOrganizationId, GcpAccess, OrganizationAccess, OrganizationIdentity,
};
use canopy_cloud_org::sealing::ServiceAccountKeyJson;
use canopy_detection::detection::{AppliesBecause, AppliesTo, ScopeKind, Source, Status};
use canopy_detection::mapping::Category;
use canopy_detection::ports::{
    Finding, OrganizationScanRequest, OrganizationScanner, ReadFailureKind, SourceReport,
};
use canopy_gcp::{GcpOrganizationScanner, GcpSettings, ResourceManagerDiscoverer};
use canopy_gcp_testkit::{FakeGcp, LOGGING_SINKS_LIST, ORG_POLICIES_LIST, SCC_SETTINGS_GET};
use canopy_kernel::id::{OrganizationId, UserId};
use serde_json::json;

const ORG: &str = "organizations/2001";
const SA: &str = "canopy-scanner@customer-admin.iam.gserviceaccount.com";

fn settings(fake: &FakeGcp) -> GcpSettings {
    GcpSettings {
        endpoint_url: Some(fake.url()),
        max_in_flight: 3,
        call_timeout: Duration::from_secs(10),
        max_retries: 4,
        base_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(20),
    }
}

/// `organizations/2001` with Prod (folders/1) holding Web (folders/2), and Sandbox
/// (folders/3); project `web-prod` under Web and `sandbox-one` under Sandbox.
struct Org {
    fake: FakeGcp,
    scanner: GcpOrganizationScanner,
    request: OrganizationScanRequest,
}

fn node(id: &str, parent: Option<&str>, name: &str) -> DiscoveredNode {
    DiscoveredNode {
        id: id.into(),
        parent_id: parent.map(str::to_string),
        name: name.into(),
        kind: if parent.is_none() {
            NodeKind::Root
        } else {
            NodeKind::Folder
        },
    }
}

async fn organization() -> Org {
    let fake = FakeGcp::start().await.unwrap();
    fake.add_organization(2001, "example.com", "C02");
    fake.add_folder("folders/1", ORG, "Prod");
    fake.add_folder("folders/2", "folders/1", "Web");
    fake.add_folder("folders/3", ORG, "Sandbox");
    fake.add_project("web-prod", 701, "folders/2", "Web prod", "ACTIVE");
    fake.add_project("sandbox-one", 702, "folders/3", "Sandbox", "ACTIVE");
    let key = fake.service_account_key_json(SA);
    let hierarchy = Hierarchy::build(
        vec![
            node(ORG, None, "example.com"),
            node("folders/1", Some(ORG), "Prod"),
            node("folders/2", Some("folders/1"), "Web"),
            node("folders/3", Some(ORG), "Sandbox"),
        ],
        GCP_MAX_DEPTH,
    )
    .unwrap();
    let rm = ResourceManagerDiscoverer::new(settings(&fake)).unwrap();
    let cloud_organization = CloudOrganization::discovering(
        CloudOrganizationId::new(),
        OrganizationId::new(),
        Provider::Gcp,
        OrganizationIdentity {
            cloud_org_id: ORG.into(),
            arn: None,
            management_account_id: None,
            management_account_email: None,
            display_name: Some("example.com".into()),
            directory_customer_id: Some("C02".into()),
            lifecycle_state: Some("ACTIVE".into()),
        },
        "example.com".into(),
        UserId::new(),
        chrono::Utc::now(),
    );
    Org {
        scanner: GcpOrganizationScanner::new(&rm),
        request: OrganizationScanRequest {
            cloud_organization,
            access: OrganizationAccess::Gcp {
                organization: ORG.into(),
                credentials: GcpAccess::Key(ServiceAccountKeyJson::new(key)),
            },
            hierarchy,
            members: vec!["web-prod".into(), "sandbox-one".into()],
            stop: canopy_kernel::Stop::never(),
        },
        fake,
    }
}

async fn scan(org: &Org) -> Vec<SourceReport> {
    org.scanner.scan_organization(&org.request).await
}

fn found(reports: &[SourceReport], source: Source) -> Vec<Finding> {
    let report = reports.iter().find(|r| r.source == source).unwrap();
    match &report.outcome {
        Ok(findings) => findings.clone(),
        Err(e) => panic!("{source}: {e:?}"),
    }
}

fn with_key<'a>(findings: &'a [Finding], key: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.resource_key == key)
        .unwrap_or_else(|| panic!("no {key} in {findings:#?}"))
}

fn techniques(finding: &Finding) -> Vec<&str> {
    finding
        .techniques
        .iter()
        .map(|t| t.technique.as_str())
        .collect()
}

#[tokio::test]
async fn every_source_reports_in_order_and_an_organization_sink_reaches_every_account() {
    let org = organization().await;
    org.fake.add_sink(
        ORG,
        json!({"name": "_Required", "filter": "", "includeChildren": false}),
    );
    org.fake.add_sink(
        ORG,
        json!({"name": "audit-to-siem", "destination": "pubsub.googleapis.com/projects/sec/topics/audit",
               "filter": "logName:\"cloudaudit.googleapis.com\"", "includeChildren": true}),
    );
    org.fake.add_sink(
        ORG,
        json!({"name": "org-only", "destination": "storage.googleapis.com/org-logs", "filter": ""}),
    );
    let reports = scan(&org).await;

    let order: Vec<Source> = reports.iter().map(|r| r.source).collect();
    assert_eq!(
        order,
        Source::scanners(Provider::Gcp, ScopeKind::Organization)
    );
    assert!(reports.iter().all(|r| r.outcome.is_ok()), "{reports:#?}");

    let sinks = found(&reports, Source::GcpLoggingOrgSink);
    assert_eq!(
        sinks.len(),
        2,
        "the built-in _Required sink is not a finding"
    );
    let siem = with_key(&sinks, "organizations/2001/sinks/audit-to-siem");
    assert_eq!(siem.status, Status::Active);
    assert_eq!(siem.applies_to, AppliesTo::AllAccounts);
    assert!(techniques(siem).contains(&"T1562.008"));
    assert!(
        !techniques(siem).contains(&"T1530"),
        "Data Access logs are not named"
    );
    assert!(
        siem.techniques
            .iter()
            .all(|t| t.category == Category::Detect)
    );

    let org_only = with_key(&sinks, "organizations/2001/sinks/org-only");
    assert_eq!(org_only.status, Status::Degraded);
    assert!(
        org_only
            .reason
            .as_deref()
            .unwrap()
            .contains("includeChildren is off")
    );
    assert_eq!(
        org_only.applies_to,
        AppliesTo::Nodes([ORG.to_string()].into())
    );
    assert!(
        techniques(org_only).contains(&"T1530"),
        "an empty filter routes everything"
    );

    // Not activated is a known answer: absent, not unknown.
    assert!(found(&reports, Source::GcpSccOrg).is_empty());
    // One token for the whole scan, whatever the API.
    assert_eq!(org.fake.calls().token, 1);
    let calls: u32 = reports.iter().map(|r| r.calls).sum();
    assert_eq!(u64::from(calls), org.fake.calls().scan());
}

#[tokio::test]
async fn a_folder_sink_reaches_its_subtree_and_not_a_sibling() {
    let org = organization().await;
    org.fake.add_sink(
        "folders/1",
        json!({"name": "prod-all", "destination": "logging.googleapis.com/projects/sec/locations/global/buckets/prod",
               "includeChildren": true}),
    );
    org.fake.add_sink(
        "folders/3",
        json!({"name": "sandbox-errors", "filter": "severity>=ERROR", "includeChildren": true}),
    );
    org.fake.set_page_size(1);
    let reports = scan(&org).await;
    let sinks = found(&reports, Source::GcpLoggingFolderSink);
    assert_eq!(sinks.len(), 2);

    let prod = with_key(&sinks, "folders/1/sinks/prod-all");
    assert_eq!(prod.status, Status::Active);
    assert_eq!(
        prod.applies_to,
        AppliesTo::Nodes(["folders/1".to_string()].into())
    );
    assert!(techniques(prod).contains(&"T1562.008"));
    let tree = &org.request.hierarchy;
    assert_eq!(
        prod.applies_to.reaches("web-prod", Some("folders/2"), tree),
        Some(AppliesBecause::UnderNode("folders/1".into()))
    );
    assert_eq!(
        prod.applies_to
            .reaches("sandbox-one", Some("folders/3"), tree),
        None
    );

    let errors = with_key(&sinks, "folders/3/sinks/sandbox-errors");
    assert_eq!(errors.status, Status::Degraded);
    assert!(errors.techniques.is_empty(), "no audit log, no evidence");
}

#[tokio::test]
async fn policies_map_to_their_techniques_and_a_folder_turning_one_off_is_named() {
    let org = organization().await;
    let enforce = json!({"spec": {"rules": [{"enforce": true}]}});
    org.fake.add_policy(
        "folders/3",
        "iam.disableServiceAccountKeyCreation",
        enforce.clone(),
    );
    org.fake.add_policy(
        "folders/3",
        "compute.disableNestedVirtualization",
        enforce.clone(),
    );
    org.fake.add_policy(
        ORG,
        "gcp.resourceLocations",
        json!({"spec": {"rules": [{"values": {"allowedValues": ["in:eu-locations"]}}]}}),
    );
    org.fake.add_policy(
        "folders/1",
        "gcp.resourceLocations",
        json!({"spec": {"rules": [{"allowAll": true}]}}),
    );
    org.fake.add_policy(
        "folders/2",
        "storage.publicAccessPrevention",
        json!({"dryRunSpec": {"rules": [{"enforce": true}]}}),
    );
    let reports = scan(&org).await;
    let policies = found(&reports, Source::GcpOrgPolicyConstraint);
    assert_eq!(policies.len(), 2, "{policies:#?}");

    let keys = with_key(
        &policies,
        "folders/3/policies/iam.disableServiceAccountKeyCreation",
    );
    assert_eq!(keys.status, Status::Active);
    assert_eq!(
        keys.applies_to,
        AppliesTo::Nodes(["folders/3".to_string()].into())
    );
    assert_eq!(techniques(keys), ["T1098.001"]);
    assert_eq!(keys.techniques[0].category, Category::Protect);

    let locations = with_key(
        &policies,
        "organizations/2001/policies/gcp.resourceLocations",
    );
    // Turned off at folders/1 only: it holds, and is active, everywhere else; folders/1's
    // subtree is carved out rather than the whole organization degraded.
    assert_eq!(
        locations.applies_to,
        AppliesTo::NodesExcept {
            nodes: [ORG.to_string()].into(),
            except: ["folders/1".to_string()].into(),
        }
    );
    assert_eq!(techniques(locations), ["T1535"]);
    assert_eq!(locations.status, Status::Active, "{:?}", locations.reason);
    assert_eq!(
        locations.evidence["overriddenBelow"][0]["setOn"],
        "folders/1"
    );
}

#[tokio::test]
async fn security_command_center_and_asset_feeds_are_found() {
    let org = organization().await;
    org.fake.activate_scc(
        ORG,
        &["Event Threat Detection", "Security Health Analytics"],
    );
    org.fake.add_feed(
        ORG,
        "iam-changes",
        json!({"contentType": "IAM_POLICY", "assetTypes": [".*"],
               "feedOutputConfig": {"pubsubDestination": {"topic": "projects/sec/topics/assets"}}}),
    );
    let reports = scan(&org).await;
    let scc = found(&reports, Source::GcpSccOrg);
    assert_eq!(scc.len(), 1);
    assert_eq!(scc[0].status, Status::Active);
    assert_eq!(scc[0].applies_to, AppliesTo::AllAccounts);
    assert!(scc[0].techniques.len() > 5);

    let feeds = found(&reports, Source::GcpCloudAssetOrgFeed);
    let feed = with_key(&feeds, "organizations/2001/feeds/iam-changes");
    assert_eq!(feed.applies_to, AppliesTo::AllAccounts);
    assert!(techniques(feed).contains(&"T1098.001"));
    assert_eq!(feed.evidence["topic"], "projects/sec/topics/assets");

    // Activated with no Google detection service reporting: still there, degraded.
    org.fake.activate_scc(ORG, &["Acme Scanner"]);
    let scc = found(&scan(&org).await, Source::GcpSccOrg);
    assert_eq!(scc[0].status, Status::Degraded);
}

#[tokio::test]
async fn a_denied_scc_is_access_denied_never_an_empty_list() {
    let org = organization().await;
    org.fake.deny_all(SCC_SETTINGS_GET);
    let reports = scan(&org).await;
    let scc = reports
        .iter()
        .find(|r| r.source == Source::GcpSccOrg)
        .unwrap();
    let failure = scc.outcome.clone().unwrap_err();
    assert_eq!(failure.kind, ReadFailureKind::AccessDenied);
    assert!(
        failure
            .advice
            .contains("securitycenter.organizationsettings.get"),
        "{failure:?}"
    );
    assert!(failure.advice.contains(SA));
    assert!(
        failure
            .advice
            .contains("roles/securitycenter.settingsViewer")
    );
    // The other sources are read as usual.
    assert!(found(&reports, Source::GcpLoggingOrgSink).is_empty());
}

#[tokio::test]
async fn throttling_for_ever_is_throttled_out_after_the_retries() {
    let org = organization().await;
    org.fake.throttle_permission(SCC_SETTINGS_GET);
    let reports = scan(&org).await;
    let scc = reports
        .iter()
        .find(|r| r.source == Source::GcpSccOrg)
        .unwrap();
    let failure = scc.outcome.clone().unwrap_err();
    assert_eq!(failure.kind, ReadFailureKind::ThrottledOut, "{failure:?}");
    assert_eq!(scc.calls, 5, "one call and four retries");
    assert_eq!(org.fake.calls().get_scc_settings, 5);
    assert!(
        reports
            .iter()
            .filter(|r| r.source != Source::GcpSccOrg)
            .all(|r| r.outcome.is_ok())
    );
}

#[tokio::test]
async fn one_denied_folder_makes_the_folder_sources_unknown_and_names_it() {
    let org = organization().await;
    org.fake.add_sink(
        "folders/1",
        json!({"name": "prod-all", "includeChildren": true}),
    );
    org.fake.deny_folder("folders/3");
    let reports = scan(&org).await;
    for source in [Source::GcpLoggingFolderSink, Source::GcpOrgPolicyConstraint] {
        let report = reports.iter().find(|r| r.source == source).unwrap();
        let failure = report.outcome.clone().unwrap_err();
        assert_eq!(failure.kind, ReadFailureKind::AccessDenied, "{source}");
        assert!(failure.message.contains("folders/3"), "{failure:?}");
        assert!(!failure.message.contains("folders/1"), "{failure:?}");
    }
    let sinks = reports
        .iter()
        .find(|r| r.source == Source::GcpLoggingFolderSink)
        .unwrap();
    assert!(
        sinks
            .outcome
            .clone()
            .unwrap_err()
            .advice
            .contains(LOGGING_SINKS_LIST)
    );
    let policies = reports
        .iter()
        .find(|r| r.source == Source::GcpOrgPolicyConstraint)
        .unwrap();
    assert!(
        policies
            .outcome
            .clone()
            .unwrap_err()
            .advice
            .contains(ORG_POLICIES_LIST)
    );
    assert!(found(&reports, Source::GcpLoggingOrgSink).is_empty());
}

#[tokio::test]
async fn a_refused_key_fails_every_source_and_an_undiscovered_tree_fails_the_folder_ones() {
    let org = organization().await;
    org.fake.revoke(SA);
    let reports = scan(&org).await;
    assert_eq!(reports.len(), 5);
    for report in &reports {
        let failure = report.outcome.clone().unwrap_err();
        assert_eq!(failure.kind, ReadFailureKind::AccessDenied, "{report:?}");
        assert!(failure.message.contains("invalid_grant"), "{failure:?}");
    }
    let tokens = org.fake.issued_tokens();
    assert!(reports.iter().all(|r| {
        let f = r.outcome.clone().unwrap_err();
        tokens.iter().all(|t| !f.message.contains(t.as_str()))
    }));

    let mut fresh = organization().await;
    fresh.request.hierarchy = Hierarchy::default();
    let reports = scan(&fresh).await;
    for report in &reports {
        let folder_scoped = matches!(
            report.source,
            Source::GcpLoggingFolderSink | Source::GcpOrgPolicyConstraint
        );
        assert_eq!(report.outcome.is_err(), folder_scoped, "{report:?}");
    }
}

#[tokio::test]
async fn many_folders_are_read_within_the_in_flight_bound() {
    let org = organization().await;
    let mut nodes = vec![node(ORG, None, "example.com")];
    for n in 100..112 {
        let id = format!("folders/{n}");
        org.fake.add_folder(&id, ORG, &format!("Team {n}"));
        org.fake.add_sink(
            &id,
            json!({"name": format!("team-{n}"), "includeChildren": true}),
        );
        nodes.push(node(&id, Some(ORG), &format!("Team {n}")));
    }
    let mut request = org.request.clone();
    request.hierarchy = Hierarchy::build(nodes, GCP_MAX_DEPTH).unwrap();
    org.fake.set_latency(Duration::from_millis(15));
    let reports = org.scanner.scan_organization(&request).await;
    assert_eq!(found(&reports, Source::GcpLoggingFolderSink).len(), 12);
    assert!(
        org.fake.max_in_flight() <= 3,
        "{}",
        org.fake.max_in_flight()
    );
    assert!(org.fake.max_in_flight() >= 2, "calls overlap");
}

#[tokio::test]
async fn a_folder_deleted_since_the_discovery_holds_nothing_rather_than_failing() {
    let org = organization().await;
    org.fake.add_sink(
        "folders/3",
        json!({"name": "sandbox-all", "includeChildren": true}),
    );
    let mut request = org.request.clone();
    request.hierarchy = Hierarchy::build(
        vec![
            node(ORG, None, "example.com"),
            node("folders/3", Some(ORG), "Sandbox"),
            node("folders/99", Some(ORG), "Deleted since"),
        ],
        GCP_MAX_DEPTH,
    )
    .unwrap();
    let reports = org.scanner.scan_organization(&request).await;
    assert_eq!(found(&reports, Source::GcpLoggingFolderSink).len(), 1);
    assert!(found(&reports, Source::GcpOrgPolicyConstraint).is_empty());
}
