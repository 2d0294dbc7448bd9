//! Canopy cloud accounts: AWS accounts and GCP projects connected to an organization, the
//! External ID that guards role assumption, and the health timeline of each connection.
//!
//! # What it offers
//!
//! [`CloudAccountService`], by concept: connected accounts ([`CloudAccountError`]), External
//! IDs and the role session ([`ExternalIdError`]), and the token flows: connect tokens and
//! connection requests ([`ConnectionError`]); and whole cloud organizations
//! ([`organization::service::CloudOrganizationService`]: discovery, sync, members, connect,
//! disconnect, on durable jobs). Validated identifiers (`AwsAccountId`,
//! `RoleArn`, `AwsRegion`, `GcpProjectId`) are in [`identifiers`]; account edits and list
//! filters are parsed here ([`AccountChanges`], [`AccountFilter`]).
//!
//! # What an embedder provides
//!
//! | port | for | refusals it must return |
//! |---|---|---|
//! | [`ports::CloudAccountRepository`] | accounts, health checks; one organization per account | `AlreadyConnected`, `ConnectedElsewhere`, `PlanLimit` |
//! | [`ports::ExternalIdRepository`] | one current External ID per organization, with history | — |
//! | [`ports::ConnectionTokenRepository`] | single-use tokens, redeemed with the account atomically | `Refused(TokenRefusal)`, `Connect(..)` |
//! | [`ports::RoleVerifier`] | assuming a customer's role (AWS STS) | a classified [`AccessFailure`] |
//! | [`ports::ProjectVerifier`] | reading a GCP project with the right credentials | a classified [`AccessFailure`] |
//! | [`ports::SecretSource`] | External IDs and tokens | — |
//! | [`organization::ports::CloudOrganizationRepository`] | cloud organizations, their tree (closure table), members, change log | `AlreadyConnected`, `ConnectedElsewhere` |
//! | [`organization::OrganizationDiscoverer`] | reading a whole AWS / GCP organization (one adapter each) | a classified [`organization::DiscoveryFailure`] |
//! | [`sealing::SecretSealer`] | sealing customer secrets (GCP keys) with the operator's key | `NotConfigured`, `UnknownKey`, `Corrupt` |
//!
//! Storage methods MAY fail with [`canopy_kernel::StoreError`]. The service also needs the
//! tenancy and billing services (membership of a connection request's organization, plan
//! room before issuing a token).
//!
//! # Swapping adapters in tests
//!
//! The `mocks` feature exposes a mockall mock of every port:
//!
//! ```text
//! let mut aws = canopy_cloud_org::ports::MockRoleVerifier::new();
//! aws.expect_assume_role().returning(|_, _, _, _| Err(denied()));
//! ```
//!
//! Architecture invariant: no IO here; AWS calls go through [`ports::RoleVerifier`].

pub mod account;
pub mod account_changes;
pub mod connection;
pub mod external_id;
pub mod filter;
pub mod health;
pub mod identifiers;
pub mod organization;
pub mod ports;
pub mod sealing;
pub mod service;

pub use account::{AccountInput, CloudAccount, CloudAccountId, Provider};
pub use account_changes::AccountChanges;
pub use filter::AccountFilter;
pub use health::{AccessFailure, FailureKind, HealthCheck};
pub use service::{
    CloudAccountConfig, CloudAccountError, CloudAccountPorts, CloudAccountService, ConnectionError,
    ExternalIdError, IssuedToken, RequestPreview, RoleSession,
};
