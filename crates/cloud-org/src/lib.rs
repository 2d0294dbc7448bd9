//! Canopy cloud accounts: AWS accounts and GCP projects connected to an organization, the
//! External ID that guards role assumption, and the health timeline of each connection.
//!
//! API boundary: [`CloudAccountService`] and the traits in [`ports`].
//! Architecture invariant: no IO here; AWS calls go through [`ports::RoleVerifier`].

pub mod account;
pub mod account_changes;
pub mod connection;
pub mod external_id;
pub mod filter;
pub mod health;
pub mod identifiers;
pub mod ports;
pub mod service;

pub use account::{AccountInput, CloudAccount, CloudAccountId, Provider};
pub use account_changes::AccountChanges;
pub use filter::AccountFilter;
pub use health::{AccessFailure, FailureKind, HealthCheck};
pub use service::{
    CloudAccountConfig, CloudAccountError, CloudAccountPorts, CloudAccountService, ConnectionError,
    ExternalIdError, IssuedToken, RequestPreview, RoleSession,
};
