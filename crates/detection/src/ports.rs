//! The ports of the detection domain: where detections are kept, and the scanners that find
//! them in AWS and GCP. Adapters: `canopy-store` (SQLite, PostgreSQL), `canopy-aws`,
//! `canopy-gcp`.

use canopy_kernel::Stop;
use std::collections::BTreeSet;

use async_trait::async_trait;
use canopy_cloud_org::CloudAccount;
use canopy_cloud_org::organization::hierarchy::Hierarchy;
use canopy_cloud_org::organization::{CloudOrganization, OrganizationAccess};
use canopy_kernel::id::OrganizationId;
use canopy_kernel::{Page, PageRequest, StoreError};
use canopy_tenancy::audit::NewAuditEvent;

use crate::detection::{
    AppliesTo, Detection, DetectionId, ScopeKind, Source, Status, TechniqueScore,
};

/// Whose detections a listing reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The detections scoped to this cloud account.
    Account(uuid::Uuid),
    /// The detections scoped to this cloud organization.
    CloudOrganization(uuid::Uuid),
}

/// Which detections a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectionFilter {
    /// Only this scope.
    pub scope: Option<ScopeKind>,
    /// Only this source.
    pub source: Option<Source>,
    /// Only this status.
    pub status: Option<Status>,
    /// Only detections addressing at least one of these techniques (a tactic or a parent
    /// technique is expanded into its techniques by the service).
    pub techniques: Option<BTreeSet<String>>,
}

/// What one scan of one target writes, in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanWrite {
    /// New detections.
    pub insert: Vec<Detection>,
    /// Detections found again or changed (matched by id).
    pub update: Vec<Detection>,
    /// Placeholders of sources that could be read after all.
    pub delete: Vec<DetectionId>,
}

/// Detections. Implemented by `canopy-store`. Every method may fail with [`StoreError`].
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait DetectionRepository: Send + Sync {
    /// Records a detection (a custom one) with its audit event.
    async fn create(&self, detection: Detection, audit: NewAuditEvent) -> Result<(), StoreError>;

    /// One detection of `org`.
    async fn get(
        &self,
        org: OrganizationId,
        id: DetectionId,
    ) -> Result<Option<Detection>, StoreError>;

    /// Replaces a detection of its organization (matched by id) with its audit event;
    /// `false` when it is gone.
    async fn update(&self, detection: Detection, audit: NewAuditEvent) -> Result<bool, StoreError>;

    /// Deletes a detection of `org` with its audit event; `false` when there was none.
    async fn delete(
        &self,
        org: OrganizationId,
        id: DetectionId,
        audit: NewAuditEvent,
    ) -> Result<bool, StoreError>;

    /// One page of a target's detections matching `filter`, by id.
    async fn list(
        &self,
        org: OrganizationId,
        target: Target,
        filter: &DetectionFilter,
        page: PageRequest,
    ) -> Result<Page<Detection>, StoreError>;

    /// Every detection of a target matching `filter`, by id (for an account's merged view
    /// and for a scan's reconciliation).
    async fn all(
        &self,
        org: OrganizationId,
        target: Target,
        filter: &DetectionFilter,
    ) -> Result<Vec<Detection>, StoreError>;

    /// Every account-scoped detection of these accounts of `org`, by id: a whole estate's own
    /// detections in one read instead of one per account.
    async fn all_of_accounts(
        &self,
        org: OrganizationId,
        accounts: &[uuid::Uuid],
    ) -> Result<Vec<Detection>, StoreError>;

    /// Writes what a scan found, in one transaction.
    async fn apply_scan(&self, write: ScanWrite) -> Result<(), StoreError>;
}

/// Why a source could not be read: never the same as "absent".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadFailureKind {
    /// The role or service account lacks a permission.
    AccessDenied,
    /// The provider kept throttling after every retry.
    ThrottledOut,
    /// The provider could not be reached or answered with an error.
    Failed,
}

impl ReadFailureKind {
    /// Stable spelling (shown, and stored in reasons).
    pub fn as_str(self) -> &'static str {
        match self {
            ReadFailureKind::AccessDenied => "access_denied",
            ReadFailureKind::ThrottledOut => "throttled",
            ReadFailureKind::Failed => "failed",
        }
    }
}

/// A source that could not be read, classified, with what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFailure {
    /// The class.
    pub kind: ReadFailureKind,
    /// What failed (the call and the provider's message, no secrets).
    pub message: String,
    /// What to do about it.
    pub advice: String,
}

/// A control a scanner found.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Its identity within the source (a trail ARN, a region, a policy id).
    pub resource_key: String,
    /// Name shown.
    pub name: String,
    /// What it is.
    pub description: Option<String>,
    /// `Active` or `Degraded`.
    pub status: Status,
    /// Why it is degraded.
    pub reason: Option<String>,
    /// Which accounts it reaches (organization scans only; ignored for accounts).
    pub applies_to: AppliesTo,
    /// What it addresses.
    pub techniques: Vec<TechniqueScore>,
    /// What was read.
    pub evidence: serde_json::Value,
}

/// What one scanner (one source) found, or why it could not tell.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceReport {
    /// The scanner.
    pub source: Source,
    /// The controls it found, or why it could not read them.
    pub outcome: Result<Vec<Finding>, ReadFailure>,
    /// Provider calls it made.
    pub calls: u32,
}

/// What an organization-level scan needs.
#[derive(Debug, Clone)]
pub struct OrganizationScanRequest {
    /// The cloud organization.
    pub cloud_organization: CloudOrganization,
    /// How to reach it (management / delegated-admin role, or the GCP service account).
    pub access: OrganizationAccess,
    /// Its OU / folder tree as last discovered.
    pub hierarchy: Hierarchy,
    /// Its members' provider ids, as last discovered.
    pub members: Vec<String>,
    /// Raised when the scan's job is cancelled: no call starts after it (the reports are
    /// then not recorded).
    pub stop: Stop,
}

/// Finds organization-level controls. One adapter per provider.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OrganizationScanner: Send + Sync {
    /// Runs every organization-level scanner of the provider; one report per source, in
    /// [`Source::scanners`] order. Never fails as a whole: a source that cannot be read
    /// reports why.
    async fn scan_organization(&self, request: &OrganizationScanRequest) -> Vec<SourceReport>;
}

/// What an account-level scan needs.
#[derive(Debug, Clone)]
pub struct AccountScanRequest {
    /// The account, with the role or project Canopy reaches it through.
    pub account: CloudAccount,
    /// AWS: the tenant's External ID for the account's role.
    pub external_id: String,
    /// Raised when the scan's job is cancelled: no call starts after it (the reports are
    /// then not recorded).
    pub stop: Stop,
}

/// Finds one account's own controls. One adapter per provider.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait AccountScanner: Send + Sync {
    /// Runs every account-level scanner of the provider; one report per source.
    async fn scan_account(&self, request: &AccountScanRequest) -> Vec<SourceReport>;
}
