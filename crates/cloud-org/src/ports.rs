//! Ports of the cloud-account domain. Storage methods that change an organization take the
//! audit event and MUST write it in the same transaction. Every storage method MAY fail with
//! [`StoreError`] (`Unavailable` when the store cannot be reached); the domain passes it on.

use async_trait::async_trait;
use canopy_kernel::StoreError;
use canopy_kernel::id::OrganizationId;
use canopy_kernel::page::Page;
use canopy_kernel::{PageRequest, PlanLimitExceeded};
use canopy_tenancy::NewAuditEvent;
use chrono::{DateTime, Utc};

use crate::account::{CloudAccount, CloudAccountId, Provider};
use crate::connection::{ConnectionToken, TokenRefusal};
use crate::external_id::ExternalId;
pub use crate::filter::AccountFilter;
use crate::health::{AccessFailure, HealthCheck};
use crate::identifiers::{AwsRegion, RoleArn};

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// This organization already has this account.
    #[error("already connected to this organization")]
    AlreadyConnected,
    /// Another organization has it (nothing else about it may be revealed).
    #[error("connected to another organization")]
    ConnectedElsewhere,
    /// The organization's plan has no room for another account.
    #[error(transparent)]
    PlanLimit(#[from] PlanLimitExceeded),
    /// Anything else.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Cloud accounts.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CloudAccountRepository: Send + Sync {
    /// Stores a new account. MUST return `AlreadyConnected` when this organization has the same
    /// (provider, account) and `ConnectedElsewhere` when another does, decided by a unique
    /// constraint so that concurrent connects create exactly one row; and `PlanLimit` when the
    /// organization's accounts already fill its plan, counted in the same transaction and
    /// serialized per organization so concurrent connects never overshoot the limit.
    async fn create(&self, account: CloudAccount, audit: NewAuditEvent)
    -> Result<(), ConnectError>;

    /// The organization's accounts, oldest first, filtered and paginated.
    async fn list(
        &self,
        org: OrganizationId,
        filter: &AccountFilter,
        page: PageRequest,
    ) -> Result<Page<CloudAccount>, StoreError>;

    /// One account of the organization; `None` when missing or another organization's.
    async fn get(
        &self,
        org: OrganizationId,
        id: CloudAccountId,
    ) -> Result<Option<CloudAccount>, StoreError>;

    /// The organization's account with this provider key (AWS account id, GCP project id);
    /// `None` when it has none. For a connect that must link an account a crashed run
    /// already created instead of failing on it.
    async fn find_by_key(
        &self,
        org: OrganizationId,
        provider: Provider,
        key: &str,
    ) -> Result<Option<CloudAccount>, StoreError>;

    /// Replaces the account's settings and role/region (identity keys never change).
    /// `None` when missing.
    async fn update(
        &self,
        account: CloudAccount,
        audit: NewAuditEvent,
    ) -> Result<Option<CloudAccount>, StoreError>;

    /// Deletes the account with its health history. `false` when missing.
    async fn delete(
        &self,
        org: OrganizationId,
        id: CloudAccountId,
        audit: NewAuditEvent,
    ) -> Result<bool, StoreError>;

    /// Records a check and sets status, last-synced time and last error from it, atomically.
    async fn record_check(
        &self,
        org: OrganizationId,
        check: HealthCheck,
    ) -> Result<Option<CloudAccount>, StoreError>;

    /// The account's latest checks at or after `since` (all when `None`), newest first.
    async fn health(
        &self,
        org: OrganizationId,
        id: CloudAccountId,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<HealthCheck>, StoreError>;
}

/// External IDs, one current per organization, with history.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ExternalIdRepository: Send + Sync {
    /// The current External ID, creating `candidate` as the first one if there is none. Two
    /// concurrent first calls MUST return the same value.
    async fn current_or_create(&self, candidate: ExternalId) -> Result<ExternalId, StoreError>;

    /// Retires the current one and makes `next` current, atomically.
    async fn rotate(
        &self,
        next: ExternalId,
        audit: NewAuditEvent,
    ) -> Result<ExternalId, StoreError>;

    /// Every External ID of the organization, newest first.
    async fn history(&self, org: OrganizationId) -> Result<Vec<ExternalId>, StoreError>;
}

/// What a role assumption proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumedRole {
    /// The assumed role's ARN as AWS reports it.
    pub assumed_role_arn: String,
    /// When the temporary credentials expire.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Assumes a customer's role to prove access.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RoleVerifier: Send + Sync {
    /// Assumes `role_arn` with `external_id` under `session_name`. MUST classify failures:
    /// AccessDenied for refusals (including a wrong External ID), RoleNotFound, Throttled,
    /// Network, Timeout, Other.
    async fn assume_role(
        &self,
        role_arn: &RoleArn,
        external_id: &str,
        session_name: &str,
        region: &AwsRegion,
    ) -> Result<AssumedRole, AccessFailure>;
}

/// Proves access to a GCP project (Resource Manager `projects.get`). The adapter picks the
/// credentials: the service account of the cloud organization the project was connected
/// from, or Canopy's own Google identity for a project connected on its own.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ProjectVerifier: Send + Sync {
    /// Reads `account`'s project. MUST classify failures as [`RoleVerifier`] does
    /// (AccessDenied, RoleNotFound for a missing project, Throttled, Network, Timeout,
    /// CanopyCredentials when no credentials apply, Other).
    async fn verify_project(&self, account: &CloudAccount) -> Result<(), AccessFailure>;
}

/// Why a token could not be redeemed.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    /// The token is unknown, expired, used or cancelled.
    #[error(transparent)]
    Refused(#[from] TokenRefusal),
    /// The account could not be connected; the token stays usable.
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

/// Connect tokens and connection requests.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ConnectionTokenRepository: Send + Sync {
    /// Stores a new token.
    async fn insert(&self, token: ConnectionToken, audit: NewAuditEvent) -> Result<(), StoreError>;

    /// The token with this digest, whatever its status.
    async fn find(&self, digest: &str) -> Result<Option<ConnectionToken>, StoreError>;

    /// Marks the token used and creates `account`, atomically. MUST refuse a token that is not
    /// pending or has expired at `now`, and MUST let exactly one of concurrent redemptions
    /// succeed. When the account cannot be created (a conflict, or the plan's limit as in
    /// [`CloudAccountRepository::create`]) the token stays pending.
    async fn redeem(
        &self,
        digest: &str,
        now: DateTime<Utc>,
        account: CloudAccount,
        audit: NewAuditEvent,
    ) -> Result<(), RedeemError>;

    /// Cancels a pending token. `false` when it is not pending.
    async fn cancel(&self, digest: &str, audit: NewAuditEvent) -> Result<bool, StoreError>;
}

/// Sources of random secrets.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SecretSource: Send + Sync {
    /// A new External ID value (random, at least 128 bits).
    fn external_id(&self) -> String;

    /// A new connection token (at least 256 random bits).
    fn connection_token(&self) -> String;

    /// The digest under which a token is stored and looked up.
    fn token_digest(&self, token: &str) -> String;
}
