//! Canopy tenancy: people, the organizations they belong to, their roles, invitations,
//! credentials (passwords, sessions, API keys), the authorization policy and the audit log.
//!
//! # What it offers
//!
//! [`TenancyService`], the use cases, by concept: sign-up, log-in and sessions
//! ([`SessionError`]); organizations ([`OrganizationError`]); members and roles
//! ([`MemberError`]); invitations ([`InvitationError`]); API keys ([`ApiKeyError`]); the audit
//! log ([`AuditLogError`]). Org-scoped calls take an [`OrgAccess`], which only
//! [`TenancyService::access`] and [`TenancyService::access_by_token`] build ([`AccessError`]):
//! a non-member never gets one, so another tenant's organization is "not found". Roles are
//! compared in one place, [`policy::authorize`]; audit actions are the closed set
//! [`AuditAction`].
//!
//! # What an embedder provides
//!
//! One adapter per port in [`ports`], handed over in [`TenancyPorts`]. Each port's doc says
//! which error it MUST return when; every method MAY fail with
//! [`canopy_kernel::StoreError`], which the service passes through.
//!
//! | port | for | refusals it must return |
//! |---|---|---|
//! | [`ports::UserRepository`] | users, password hashes, single-use links | `EmailTaken`, `SlugTaken`, [`ports::RedeemError`] |
//! | [`ports::CredentialRepository`] | sessions, API keys | (`false` for a key that is not revocable) |
//! | [`ports::OrganizationRepository`] | organizations, the credential + membership lookup | `SlugTaken`, `NotFound` |
//! | [`ports::MembershipRepository`] | roles; the last owner stays, also under concurrency | `NotFound`, `LastOwner` |
//! | [`ports::InvitationRepository`] | invitations; accepted once; within the plan | `NotPending`, `AlreadyMember`, `PlanLimit` |
//! | [`ports::AuditLog`] | reading the audit log | — |
//! | [`ports::SecurityLog`] | each person's security log | — |
//! | [`ports::MailRenderer`] | e-mail subjects and bodies from templates | — |
//! | [`ports::OutboxStore`] | the durable outbox; one relay per message, sent once | (`false` when the lease was lost) |
//! | [`ports::MailTransport`] | handing a message to a mail server (for [`mail::MailRelay`]) | [`mail::DeliveryError`] |
//! | [`ports::CredentialCrypto`] | password hashing, tokens | [`ports::CryptoError`] |
//! | [`ports::HistoryRetention`] | how far back history is served | — (`canopy-billing` answers) |
//! | [`ports::ApiKeyAccess`] | whether API keys may reach an organization | — (`canopy-billing` answers) |
//! | [`device::DeviceAuthorizationRepository`] | device log-in requests ([`device::DeviceLogins`]); one answer and one redemption win | (`false` when not pending / not approved any more) |
//!
//! `canopy-store` implements the storage ports on SQLite and PostgreSQL,
//! `canopy-credentials` the crypto; the `canopy-embedding-example` crate implements every
//! port in memory and runs a whole story over them.
//!
//! # Swapping adapters in tests
//!
//! The `mocks` feature exposes a mockall mock of every port (`MockUserRepository`, ...):
//!
//! ```text
//! let mut users = canopy_tenancy::ports::MockUserRepository::new();
//! users.expect_get().returning(|_| Ok(None));
//! ```
//!
//! Architecture invariant: no IO here. Storage, hashing and delivery are ports.

pub mod account;
pub mod audit;
pub mod credential;
pub mod device;
pub mod invitation;
pub mod mail;
pub mod membership;
pub mod organization;
pub mod policy;
pub mod ports;
pub mod service;
pub mod user;

pub use audit::{AuditAction, AuditEvent, AuditFilter, AuditTarget, NewAuditEvent, TargetKind};
pub use credential::{
    ApiKey, CredentialKind, Grant, GrantChange, GrantListener, NewSecret, Principal, Session,
};
pub use invitation::{Invitation, InvitationStatus, InvitationView};
pub use mail::{Mail, MailContent, MailRelay};
pub use membership::{Member, Role};
pub use organization::{OrgRef, Organization, OrganizationSummary, Slug};
pub use policy::{Action, Forbidden, authorize};
pub use service::{
    AccessError, AccountError, ApiKeyError, AuditLogError, InvitationError, IssuedApiKey, Me,
    MemberError, OrgAccess, OrganizationChanges, OrganizationError, SessionError, SignedIn,
    TenancyConfig, TenancyPorts, TenancyService,
};
pub use user::{Email, User};
