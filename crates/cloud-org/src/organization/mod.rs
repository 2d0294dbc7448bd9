//! Cloud organizations: a whole AWS Organization or GCP Organization connected at once, its OU /
//! folder tree ([`hierarchy`]), the accounts and projects found in it ([`member`]) and what each
//! re-discovery changed ([`sync`]). Discovery itself goes through the
//! [`OrganizationDiscoverer`] port, one adapter per provider.

mod connect;
pub mod connect_job;
pub mod discovery_job;
pub mod gcp;
pub mod hierarchy;
pub mod member;
pub mod ports;
pub mod service;
pub mod sync;

use std::sync::Arc;

use async_trait::async_trait;
use canopy_kernel::Stop;
use canopy_kernel::id::{OrganizationId, UserId};
use chrono::{DateTime, Utc};

use crate::account::Provider;
use crate::sealing::{SealedSecret, ServiceAccountKeyJson};
use hierarchy::DiscoveredNode;
use member::DiscoveredMember;

canopy_kernel::define_id!(
    /// A connected AWS Organization or GCP Organization.
    CloudOrganizationId
);

/// The role name member accounts are reached through unless the organization sets another.
pub const DEFAULT_MEMBER_ROLE: &str = "CanopyAccess";

/// Where a cloud organization's connection stands (the spec's machine:
/// `pending -> discovering -> connected | partial | error -> disconnected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionStatus {
    /// Created; discovery not started.
    Pending,
    /// A discovery or sync job is running.
    Discovering,
    /// The whole organization was read.
    Connected,
    /// Read, but some OUs or folders could not be (listed on the organization).
    Partial,
    /// Discovery failed; the error says why and what to do.
    Error,
    /// Disconnected by an admin.
    Disconnected,
}

impl ConnectionStatus {
    /// Stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Pending => "pending",
            ConnectionStatus::Discovering => "discovering",
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Partial => "partial",
            ConnectionStatus::Error => "error",
            ConnectionStatus::Disconnected => "disconnected",
        }
    }

    /// Reads a stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Discovering,
            Self::Connected,
            Self::Partial,
            Self::Error,
            Self::Disconnected,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// The organization as its provider describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationIdentity {
    /// `o-xxxxxxxxxx` or `organizations/123`.
    pub cloud_org_id: String,
    /// AWS: `arn:aws:organizations::<mgmt>:organization/o-...`.
    pub arn: Option<String>,
    /// AWS: the management account id.
    pub management_account_id: Option<String>,
    /// AWS: the management account's e-mail.
    pub management_account_email: Option<String>,
    /// GCP: display name (usually the domain).
    pub display_name: Option<String>,
    /// GCP: the Workspace / Cloud Identity customer id.
    pub directory_customer_id: Option<String>,
    /// GCP: lifecycle state.
    pub lifecycle_state: Option<String>,
}

/// A connected cloud organization.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudOrganization {
    /// Id.
    pub id: CloudOrganizationId,
    /// The tenant organization it belongs to.
    pub organization_id: OrganizationId,
    /// AWS or GCP.
    pub provider: Provider,
    /// The provider's identity of it.
    pub identity: OrganizationIdentity,
    /// Name shown in Canopy.
    pub name: String,
    /// AWS: the role in the management (or delegated admin) account Canopy assumes.
    pub management_role_arn: Option<String>,
    /// AWS: the role name in every member account (`CanopyAccess` by default).
    pub member_role_name: String,
    /// GCP: the service account Canopy acts as (its e-mail), shown; its key is sealed.
    pub gcp_service_account: Option<String>,
    /// GCP: the customer's key, sealed with the operator's key; never returned.
    pub gcp_credentials: Option<SealedSecret>,
    /// Connection status.
    pub status: ConnectionStatus,
    /// Why the last discovery failed, with advice.
    pub error: Option<String>,
    /// OUs or folders the last discovery could not read (status `partial`).
    pub unreadable: Vec<String>,
    /// Last discovery or sync attempt.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Last successful discovery.
    pub last_discovered_at: Option<DateTime<Utc>>,
    /// Members found.
    pub discovered_count: u32,
    /// Members linked to a cloud account.
    pub connected_count: u32,
    /// Who connected it.
    pub created_by: UserId,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl CloudOrganization {
    /// A cloud organization just connected by `created_by`, described by `identity`, about to
    /// be discovered for the first time (status `discovering`, nothing counted yet). The
    /// provider's credentials are set by the caller.
    pub fn discovering(
        id: CloudOrganizationId,
        organization_id: OrganizationId,
        provider: Provider,
        identity: OrganizationIdentity,
        name: String,
        created_by: UserId,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            organization_id,
            provider,
            identity,
            name,
            management_role_arn: None,
            member_role_name: String::new(),
            gcp_service_account: None,
            gcp_credentials: None,
            status: ConnectionStatus::Discovering,
            error: None,
            unreadable: Vec::new(),
            last_attempt_at: Some(now),
            last_discovered_at: None,
            discovered_count: 0,
            connected_count: 0,
            created_by,
            created_at: now,
            updated_at: now,
        }
    }
}

/// What one discovery read: the organization, its tree and its members, and the parts it
/// could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The organization.
    pub identity: OrganizationIdentity,
    /// Every node read, the root included.
    pub nodes: Vec<DiscoveredNode>,
    /// Every member read.
    pub members: Vec<DiscoveredMember>,
    /// Nodes whose children could not be read, with the reason.
    pub unreadable: Vec<(String, String)>,
    /// Provider calls retried after throttling.
    pub throttled_retries: u64,
    /// Milliseconds spent waiting out throttling.
    pub throttled_ms: u64,
}

/// Why a discovery could not run at all, classified with advice as for cloud accounts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryFailure {
    /// The management role refused to be assumed.
    #[error("Canopy could not assume the management role: {0}")]
    RoleRefused(String),
    /// AWS: the role lives in a member account, not in the organization's management account
    /// (any member may describe its organization, but not read its tree).
    #[error(
        "the role is in account {role_account}, a member of {organization}; connect a role in \
         the organization's management account, {management_account}"
    )]
    MemberAccountRole {
        /// The account the role ARN names.
        role_account: String,
        /// The organization's management account.
        management_account: String,
        /// `o-...`.
        organization: String,
    },
    /// AWS Organizations is not enabled for the account.
    #[error("AWS Organizations is not enabled for this account")]
    OrganizationsNotEnabled,
    /// GCP: the service-account key was refused (revoked, deleted, or not a usable key).
    #[error("the service-account key was refused: {0}")]
    KeyRefused(String),
    /// GCP: Canopy may not impersonate the service account (or has no identity to).
    #[error("the service account cannot be impersonated: {0}")]
    ImpersonationRefused(String),
    /// A permission is missing (GCP: of the service account, AWS: of the management role);
    /// names it.
    #[error("the {} lacks {permission}", match provider {
        Provider::Aws => "management role",
        Provider::Gcp => "service account",
    })]
    PermissionMissing {
        /// Whose permission.
        provider: Provider,
        /// `organizations:DescribeOrganization`, `resourcemanager.folders.list on ...`.
        permission: String,
    },
    /// Throttled past the retry budget.
    #[error("the provider kept throttling after {0} retries; try again later")]
    ThrottledOut(u64),
    /// The provider could not be reached.
    #[error("the provider could not be reached: {0}")]
    Network(String),
    /// Anything else the provider answered.
    #[error("the provider answered unexpectedly: {0}")]
    Other(String),
    /// The discovery was asked to stop (its job was cancelled) and stopped reading.
    #[error("the discovery was stopped before it finished")]
    Stopped,
}

impl DiscoveryFailure {
    /// True when trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::ThrottledOut(_) | Self::Network(_))
    }
}

/// How Canopy reaches a cloud organization's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrganizationAccess {
    /// AWS: the management (or delegated admin) role, assumed with the tenant's External ID.
    Aws {
        /// The role's ARN.
        role_arn: String,
        /// The tenant's External ID.
        external_id: String,
    },
    /// GCP: the customer's service account.
    Gcp {
        /// `organizations/123`.
        organization: String,
        /// How Canopy acts as it.
        credentials: GcpAccess,
    },
}

/// How Canopy acts as a customer's GCP service account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcpAccess {
    /// With its key (sealed at rest, opened for the call only).
    Key(ServiceAccountKeyJson),
    /// By its e-mail, impersonated by Canopy's own Google identity (the customer grants it
    /// `roles/iam.serviceAccountTokenCreator`); nothing of the customer's is stored.
    Impersonate(String),
}

/// How far a running discovery is, for the job's progress.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait DiscoveryProgress: Send + Sync {
    /// Nodes and members read so far, and throttling met.
    async fn read(&self, nodes: u64, members: u64, throttled_retries: u64, throttled_ms: u64);
}

/// Reads a whole cloud organization. Implemented per provider (`canopy-aws` for AWS
/// Organizations, `canopy-gcp` for Resource Manager); tests use local servers speaking the
/// provider's protocol. An adapter given the other provider's [`OrganizationAccess`] answers
/// `Other`.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OrganizationDiscoverer: Send + Sync {
    /// Who the organization reachable through `access` is, with one call: checked before a
    /// cloud organization is recorded, so a wrong role or key is refused at once, with advice.
    async fn identify(
        &self,
        access: &OrganizationAccess,
    ) -> Result<OrganizationIdentity, DiscoveryFailure>;

    /// Reads the organization reachable through `access`. Errors: a classified
    /// [`DiscoveryFailure`]; a subtree that could not be read is not an error but an entry of
    /// [`Discovery::unreadable`]. `stop` is checked before every call (and every retry): once
    /// it is raised no call starts, and the discovery MUST end with
    /// [`DiscoveryFailure::Stopped`].
    async fn discover(
        &self,
        access: &OrganizationAccess,
        progress: Arc<dyn DiscoveryProgress>,
        stop: Stop,
    ) -> Result<Discovery, DiscoveryFailure>;
}
