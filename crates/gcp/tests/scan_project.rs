//! The GCP project scanner against the local GCP of `canopy-gcp-testkit`: a project connected
//! on its own is read as Canopy's own identity, a project connected from its organization as
//! the organization's service account (here impersonated by Canopy's), and a project Canopy
//! may not read reports access denied with the permission to grant.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use canopy_cloud_org::account::{
    AccountSettings, AccountStatus, CloudIdentity, OrganizationPlacement,
};
use canopy_cloud_org::identifiers::GcpProjectId;
use canopy_cloud_org::organization::ports::MockCloudOrganizationRepository;
use canopy_cloud_org::organization::{
    CloudOrganization, CloudOrganizationId, OrganizationIdentity,
};
use canopy_cloud_org::sealing::MockSecretSealer;
use canopy_cloud_org::{CloudAccount, CloudAccountId, Provider};
use canopy_detection::detection::{Source, Status};
use canopy_detection::ports::{AccountScanRequest, AccountScanner, ReadFailureKind, SourceReport};
use canopy_gcp::{GcpAccountScanner, GcpSettings, ResourceManagerDiscoverer, ServiceAccountKey};
use canopy_gcp_testkit::{FakeGcp, LOGGING_SINKS_LIST};
use canopy_kernel::id::{OrganizationId, UserId};
use serde_json::json;

const CANOPY: &str = "canopy@canopy-prod.iam.gserviceaccount.com";
const CUSTOMER: &str = "canopy-reader@customer-admin.iam.gserviceaccount.com";

fn settings(fake: &FakeGcp) -> GcpSettings {
    GcpSettings {
        endpoint_url: Some(fake.url()),
        max_in_flight: 2,
        call_timeout: Duration::from_secs(10),
        max_retries: 2,
        base_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(10),
    }
}

fn account(project: &str, placement: Option<OrganizationPlacement>) -> CloudAccount {
    let now = chrono::Utc::now();
    CloudAccount {
        id: CloudAccountId::new(),
        organization_id: OrganizationId::new(),
        identity: CloudIdentity::Gcp {
            project_id: GcpProjectId::parse(project, "project_id").unwrap(),
            project_number: None,
        },
        settings: AccountSettings::default(),
        status: AccountStatus::Active,
        last_synced_at: None,
        last_error: None,
        placement,
        created_by: UserId::new(),
        created_at: now,
        updated_at: now,
    }
}

/// A store holding one cloud organization connected by impersonating `CUSTOMER`.
fn organizations(cloud_org: CloudOrganizationId) -> MockCloudOrganizationRepository {
    let mut store = MockCloudOrganizationRepository::new();
    store.expect_get().returning(move |org, id| {
        let mut found = CloudOrganization::discovering(
            id,
            org,
            Provider::Gcp,
            OrganizationIdentity {
                cloud_org_id: "organizations/3001".into(),
                arn: None,
                management_account_id: None,
                management_account_email: None,
                display_name: None,
                directory_customer_id: None,
                lifecycle_state: None,
            },
            "example.com".into(),
            UserId::new(),
            chrono::Utc::now(),
        );
        found.gcp_service_account = Some(CUSTOMER.into());
        Ok((id == cloud_org).then_some(found))
    });
    store
}

async fn setup() -> (FakeGcp, GcpAccountScanner, CloudOrganizationId) {
    let fake = FakeGcp::start().await.unwrap();
    fake.add_organization(3001, "example.com", "C03");
    fake.add_folder("folders/31", "organizations/3001", "Prod");
    fake.add_project("billing-prod", 801, "folders/31", "Billing", "ACTIVE");
    fake.add_project(
        "lonely-project",
        802,
        "organizations/3001",
        "Lonely",
        "ACTIVE",
    );
    let own = ServiceAccountKey::parse(&fake.service_account_key_json(CANOPY)).unwrap();
    let _ = fake.service_account_key_json(CUSTOMER);
    fake.allow_impersonation(CUSTOMER, CANOPY);
    let rm = ResourceManagerDiscoverer::new(settings(&fake))
        .unwrap()
        .with_own_identity(Some(own.clone()));
    let cloud_org = CloudOrganizationId::new();
    let scanner = GcpAccountScanner::new(
        &rm,
        Arc::new(organizations(cloud_org)),
        Arc::new(MockSecretSealer::new()),
        Some(own),
    );
    (fake, scanner, cloud_org)
}

async fn scan(scanner: &GcpAccountScanner, account: CloudAccount) -> SourceReport {
    let reports = scanner
        .scan_account(&AccountScanRequest {
            account,
            external_id: String::new(),
            stop: canopy_kernel::Stop::never(),
        })
        .await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].source, Source::GcpLoggingProjectSink);
    reports.into_iter().next().unwrap()
}

#[tokio::test]
async fn a_project_on_its_own_is_read_as_canopy_itself() {
    let (fake, scanner, _) = setup().await;
    fake.add_sink(
        "projects/lonely-project",
        json!({"name": "_Default", "filter": ""}),
    );
    fake.add_sink(
        "projects/lonely-project",
        json!({"name": "audit-to-bq",
               "destination": "bigquery.googleapis.com/projects/sec/datasets/audit",
               "filter": "logName:\"cloudaudit.googleapis.com%2Factivity\" OR logName:\"cloudaudit.googleapis.com%2Fdata_access\""}),
    );
    let report = scan(&scanner, account("lonely-project", None)).await;
    let findings = report.outcome.unwrap();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let sink = &findings[0];
    assert_eq!(
        sink.resource_key,
        "projects/lonely-project/sinks/audit-to-bq"
    );
    assert_eq!(
        sink.status,
        Status::Active,
        "includeChildren means nothing for a project"
    );
    let techniques: Vec<&str> = sink
        .techniques
        .iter()
        .map(|t| t.technique.as_str())
        .collect();
    assert!(techniques.contains(&"T1562.008") && techniques.contains(&"T1530"));
    assert_eq!(report.calls, 1);
    assert_eq!(
        fake.calls().generate_access_token,
        0,
        "Canopy's own key, no impersonation"
    );
}

#[tokio::test]
async fn a_project_of_a_cloud_organization_is_read_as_its_service_account() {
    let (fake, scanner, cloud_org) = setup().await;
    fake.add_sink(
        "projects/billing-prod",
        json!({"name": "to-siem", "filter": ""}),
    );
    let placed = OrganizationPlacement {
        cloud_organization_id: cloud_org.as_uuid(),
        hierarchy_path: Some("example.com/Prod".into()),
        parent_id: Some("folders/31".into()),
        is_management_account: false,
        is_delegated_admin: false,
        delegated_admin_services: vec![],
        left_at: None,
    };
    let report = scan(&scanner, account("billing-prod", Some(placed.clone()))).await;
    assert_eq!(report.outcome.unwrap().len(), 1);
    assert_eq!(
        fake.calls().generate_access_token,
        1,
        "the customer's account, impersonated"
    );

    // The customer's account may not list this project's sinks: denied, with what to grant.
    fake.deny_folder("folders/31");
    let report = scan(&scanner, account("billing-prod", Some(placed))).await;
    let failure = report.outcome.unwrap_err();
    assert_eq!(failure.kind, ReadFailureKind::AccessDenied);
    assert!(failure.advice.contains(LOGGING_SINKS_LIST), "{failure:?}");
    assert!(failure.advice.contains(CUSTOMER), "{failure:?}");
    assert!(
        failure.advice.contains("projects/billing-prod"),
        "{failure:?}"
    );
}

#[tokio::test]
async fn a_project_without_usable_credentials_or_throttled_for_ever_is_never_empty() {
    let (fake, scanner, _) = setup().await;
    let placed = OrganizationPlacement {
        cloud_organization_id: uuid_of_another(),
        hierarchy_path: None,
        parent_id: Some("folders/31".into()),
        is_management_account: false,
        is_delegated_admin: false,
        delegated_admin_services: vec![],
        left_at: None,
    };
    // The cloud organization is gone from the store: nothing to act as.
    let report = scan(&scanner, account("billing-prod", Some(placed))).await;
    assert!(report.outcome.is_err());
    assert_eq!(fake.calls().list_sinks, 0);

    fake.throttle_permission(LOGGING_SINKS_LIST);
    let report = scan(&scanner, account("lonely-project", None)).await;
    assert_eq!(
        report.outcome.unwrap_err().kind,
        ReadFailureKind::ThrottledOut
    );
    assert_eq!(report.calls, 3, "one call and two retries");
}

fn uuid_of_another() -> uuid::Uuid {
    CloudOrganizationId::new().as_uuid()
}
