//! The storage port of cloud organizations.

use async_trait::async_trait;
use canopy_jobs::{Job, JobId, NewJob};
use canopy_kernel::id::OrganizationId;
use canopy_kernel::{Page, PageRequest, StoreError};
use canopy_tenancy::audit::NewAuditEvent;
use chrono::{DateTime, Utc};

use super::hierarchy::Hierarchy;
use super::member::{DiscoveredMember, MemberStatus};
use super::sync::Change;
use super::{CloudOrganization, CloudOrganizationId, ConnectionStatus, OrganizationIdentity};
use crate::sealing::SealedSecret;

/// A member as stored: what discovery said and what Canopy did with it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMember {
    /// What discovery last said.
    pub found: DiscoveredMember,
    /// `Root/Production/Web`.
    pub hierarchy_path: String,
    /// Depth of its parent node.
    pub hierarchy_level: u8,
    /// What Canopy did with it.
    pub status: MemberStatus,
    /// The cloud account it is linked to.
    pub linked_cloud_account_id: Option<uuid::Uuid>,
    /// Why connecting it failed.
    pub failure: Option<String>,
    /// When it left the organization (kept, flagged).
    pub left_at: Option<DateTime<Utc>>,
    /// First seen.
    pub discovered_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A connected member: the cloud account it is linked to and where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedPlacement {
    /// The cloud account it is linked to.
    pub cloud_account_id: uuid::Uuid,
    /// AWS account id or GCP project id.
    pub key: String,
    /// The OU / folder it sits under.
    pub parent_id: String,
}

/// Which members a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberFilter {
    /// Only this Canopy status.
    pub status: Option<MemberStatus>,
    /// Only members under this OU / folder (its subtree).
    pub under: Option<String>,
    /// Only members directly in this OU / folder (not in the nodes below it).
    pub parent: Option<String>,
    /// Name, id or e-mail containing this text (case-insensitive).
    pub text: Option<String>,
    /// Include members that left (flagged); off by default.
    pub include_left: bool,
}

/// A node with how many members sit directly in it and in its whole subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCount {
    /// The node's id.
    pub node_id: String,
    /// Members whose parent is this node.
    pub direct: u32,
    /// Members anywhere under it.
    pub total: u32,
}

/// What one discovery writes, when it changed anything.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveryWrite {
    /// The organization as the provider describes it now.
    pub identity: OrganizationIdentity,
    /// The tree, when it changed (or was never stored).
    pub hierarchy: Option<Hierarchy>,
    /// Members to insert or update (new, moved, changed).
    pub upsert: Vec<DiscoveredMember>,
    /// Members that left.
    pub left: Vec<String>,
    /// What changed, for `GET .../changes`.
    pub changes: Vec<Change>,
    /// The job that found it.
    pub job_id: Option<uuid::Uuid>,
}

/// Why a cloud organization could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// This tenant already connected it.
    #[error("already connected to this organization")]
    AlreadyConnected,
    /// Another tenant connected it.
    #[error("connected to another organization")]
    ConnectedElsewhere,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Cloud organizations, their trees, members and change log. Implemented by `canopy-store`.
/// Every method may fail with [`StoreError`].
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CloudOrganizationRepository: Send + Sync {
    /// Records a new cloud organization with its audit event and queues `job` (its first
    /// discovery), all in one transaction: a crash leaves either all three or none, never an
    /// organization `discovering` with no job. One `(provider, cloud org id)` belongs to one
    /// tenant: `AlreadyConnected` / `ConnectedElsewhere`, also under concurrent requests.
    /// Returns the queued job. (`None` records one as a finished discovery left it, with no
    /// job: fixtures and imports, never a request.)
    async fn create(
        &self,
        cloud_org: CloudOrganization,
        audit: NewAuditEvent,
        job: Option<NewJob>,
    ) -> Result<Option<Job>, RecordError>;

    /// One cloud organization of `org`.
    async fn get(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
    ) -> Result<Option<CloudOrganization>, StoreError>;

    /// `org`'s cloud organizations, oldest first.
    async fn list(
        &self,
        org: OrganizationId,
        page: PageRequest,
    ) -> Result<Page<CloudOrganization>, StoreError>;

    /// The stored tree alone (for reads that need no member).
    async fn hierarchy(&self, id: CloudOrganizationId) -> Result<Hierarchy, StoreError>;

    /// Where each connected member still in the organization sits, by account id, in one
    /// narrow read (the coverage view over thousands of members needs nothing else); empty
    /// when `org` does not own `id`.
    async fn connected_placements(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
    ) -> Result<Vec<ConnectedPlacement>, StoreError>;

    /// The stored tree and the members still in the organization.
    async fn snapshot(
        &self,
        id: CloudOrganizationId,
    ) -> Result<(Hierarchy, Vec<DiscoveredMember>), StoreError>;

    /// Writes what a discovery changed, in one transaction, and the counts it implies.
    async fn apply(
        &self,
        id: CloudOrganizationId,
        write: DiscoveryWrite,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Sets the connection status (with the error and the unreadable nodes); when
    /// `discovered` the last discovery time too.
    async fn set_status(
        &self,
        id: CloudOrganizationId,
        status: ConnectionStatus,
        error: Option<String>,
        unreadable: Vec<String>,
        discovered: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The members of a cloud organization of `org`, by account id.
    async fn members(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
        filter: &MemberFilter,
        page: PageRequest,
    ) -> Result<Page<StoredMember>, StoreError>;

    /// Member counts per node (direct and subtree).
    async fn node_counts(&self, id: CloudOrganizationId) -> Result<Vec<NodeCount>, StoreError>;

    /// Members a connect may take: still in the organization, not excluded, not connected
    /// or connecting, matching `selection`; by account id.
    async fn connectable(
        &self,
        id: CloudOrganizationId,
        selection: &Selection,
    ) -> Result<Vec<StoredMember>, StoreError>;

    /// Takes members for a connect and queues `job` to connect them, in one transaction with
    /// the job's audit event: each of `keys` still connectable becomes `connecting`, and the
    /// job's payload gets `accounts`, the keys taken. When a job of `job`'s kind on this cloud
    /// organization is already queued or running nothing is written and that job is returned
    /// ([`ConnectClaim::AlreadyRunning`]); when none of `keys` can be taken any more nothing
    /// is written either ([`ConnectClaim::NoneTaken`]). Holds under concurrent calls: one
    /// connect runs at a time, and no member is taken twice.
    async fn claim_for_connect(
        &self,
        id: CloudOrganizationId,
        keys: &[String],
        now: DateTime<Utc>,
        job: NewJob,
    ) -> Result<ConnectClaim, StoreError>;

    /// Records how connecting one member ended: linked to `account` (whose organization,
    /// path, OU and admin roles are copied from the member) and/or failed with a reason.
    /// Only a member still `connecting` is settled.
    async fn settle(
        &self,
        id: CloudOrganizationId,
        key: &str,
        account: Option<uuid::Uuid>,
        failure: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Excludes a member from bulk connects, or includes it again, with `audit` in the same
    /// transaction; `None` when `org` has no such member. A connected member cannot be
    /// excluded (its status is kept).
    async fn set_excluded(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
        key: &str,
        excluded: bool,
        audit: NewAuditEvent,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredMember>, StoreError>;

    /// Deletes a cloud organization of `org` with its tree, members and change log and
    /// cancels its queued or running jobs, in one transaction with `audit`. The cloud accounts
    /// connected from it stay connected, detached from it; their ids are returned. `None` when
    /// `org` has no such cloud organization.
    async fn delete(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
        audit: NewAuditEvent,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<uuid::Uuid>>, StoreError>;

    /// Cloud organizations of every tenant whose last discovery attempt is older than
    /// `before` (connected, partial or error; never a disconnected or a discovering one).
    async fn due_for_sync(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<(OrganizationId, CloudOrganizationId)>, StoreError>;

    /// Every cloud organization whose sealed key was sealed with a key other than
    /// `current_key_id` (what a rotation leaves to re-seal).
    async fn sealed_with_other_keys(
        &self,
        current_key_id: &str,
    ) -> Result<Vec<(CloudOrganizationId, SealedSecret)>, StoreError>;

    /// Replaces a sealed key if it is still `expected`; `false` when it changed meanwhile.
    async fn replace_sealed(
        &self,
        id: CloudOrganizationId,
        expected: &SealedSecret,
        sealed: SealedSecret,
    ) -> Result<bool, StoreError>;

    /// What syncs changed, newest first.
    async fn changes(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
        page: PageRequest,
    ) -> Result<Page<RecordedChange>, StoreError>;
}

/// What [`CloudOrganizationRepository::claim_for_connect`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectClaim {
    /// These members are `connecting` and this job connects them.
    Queued {
        /// The keys taken.
        keys: Vec<String>,
        /// The job queued (boxed: the other outcomes are an id or nothing).
        job: Box<Job>,
    },
    /// Another connect of this cloud organization (this job) is queued or running; nothing
    /// was written.
    AlreadyRunning(JobId),
    /// None of the members could be taken (connected or taken meanwhile); nothing was written.
    NoneTaken,
}

/// Which members a connect request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every member that can be connected.
    All,
    /// These account / project ids.
    Keys(Vec<String>),
    /// Every member under these OUs / folders (their subtrees).
    Under(Vec<String>),
}

/// A change as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedChange {
    /// Id (time-ordered).
    pub id: uuid::Uuid,
    /// `joined`, `moved`, ...
    pub kind: String,
    /// The member (account or project id) it is about, if any.
    pub subject: Option<String>,
    /// The facts (from, to, counts).
    pub details: serde_json::Value,
    /// The job that found it.
    pub job_id: Option<uuid::Uuid>,
    /// When.
    pub occurred_at: DateTime<Utc>,
}
