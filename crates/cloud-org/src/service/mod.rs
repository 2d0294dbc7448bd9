//! Cloud-account use cases, by concept: accounts (connect, list, edit, disconnect, verify,
//! health), External IDs (the trust the customer's role requires), and the token flows
//! (connect tokens and connection requests). Every call takes the caller's `OrgAccess`
//! (membership already established from the request path) and asks the tenancy policy.

mod accounts;
mod connections;
mod external_ids;
mod for_jobs;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use canopy_billing::BillingService;
use canopy_kernel::Clock;
use canopy_tenancy::TenancyService;

use crate::ports::{
    CloudAccountRepository, ConnectError, ConnectionTokenRepository, ExternalIdRepository,
    ProjectVerifier, RoleVerifier, SecretSource,
};

pub use accounts::CloudAccountError;
pub use connections::{ConnectionError, IssuedToken, RequestPreview};
pub use external_ids::{ExternalIdError, RoleSession};

/// Settings of the service.
#[derive(Debug, Clone)]
pub struct CloudAccountConfig {
    /// The AWS principal customers trust (Canopy's account root or role ARN).
    pub trusted_principal: String,
    /// Public base URL, for confirmation links.
    pub public_url: String,
}

/// The adapters the service runs on.
#[derive(Clone)]
pub struct CloudAccountPorts {
    /// Accounts.
    pub accounts: Arc<dyn CloudAccountRepository>,
    /// External IDs.
    pub external_ids: Arc<dyn ExternalIdRepository>,
    /// Connect tokens and connection requests.
    pub tokens: Arc<dyn ConnectionTokenRepository>,
    /// Tenancy, to resolve who may preview and confirm a connection request, and how far back
    /// history is served.
    pub tenancy: TenancyService,
    /// Billing, to refuse issuing a token that the plan's account limit would make useless.
    pub billing: BillingService,
    /// AWS role verification.
    pub aws: Arc<dyn RoleVerifier>,
    /// GCP project verification.
    pub gcp: Arc<dyn ProjectVerifier>,
    /// Randomness.
    pub secrets: Arc<dyn SecretSource>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// The cloud-account use cases.
#[derive(Clone)]
pub struct CloudAccountService {
    ports: CloudAccountPorts,
    config: CloudAccountConfig,
}

impl CloudAccountService {
    /// Builds the service.
    pub fn new(ports: CloudAccountPorts, config: CloudAccountConfig) -> Self {
        Self { ports, config }
    }
}

impl From<ConnectError> for CloudAccountError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::AlreadyConnected => Self::AlreadyConnected,
            ConnectError::ConnectedElsewhere => Self::ConnectedElsewhere,
            ConnectError::PlanLimit(limit) => Self::PlanLimit(limit),
            ConnectError::Store(e) => Self::Store(e),
        }
    }
}

impl From<ConnectError> for ConnectionError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::AlreadyConnected => Self::AlreadyConnected,
            ConnectError::ConnectedElsewhere => Self::ConnectedElsewhere,
            ConnectError::PlanLimit(limit) => Self::PlanLimit(limit),
            ConnectError::Store(e) => Self::Store(e),
        }
    }
}
