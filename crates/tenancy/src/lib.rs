//! Canopy tenancy: people, the organizations they belong to, their roles, invitations,
//! credentials (passwords, sessions, API keys), the authorization policy and the audit log.
//!
//! API boundary: [`TenancyService`] is what the HTTP layer and embedding services call; the
//! traits in [`ports`] are what adapters implement.
//!
//! Architecture invariant: no IO here. Storage, hashing and delivery are ports.

pub mod audit;
pub mod credential;
pub mod invitation;
pub mod membership;
pub mod organization;
pub mod policy;
pub mod ports;
pub mod service;
pub mod user;

pub use audit::{AuditAction, AuditEvent, AuditTarget, NewAuditEvent, TargetKind};
pub use credential::{ApiKey, CredentialKind, NewSecret, Principal, Session};
pub use invitation::{Invitation, InvitationStatus, InvitationView};
pub use membership::{Member, Role};
pub use organization::{OrgRef, Organization, OrganizationSummary, Slug};
pub use policy::{Action, Forbidden, authorize};
pub use service::{
    AccessError, ApiKeyError, AuditLogError, InvitationError, IssuedApiKey, Me, MemberError,
    OrgAccess, OrganizationChanges, OrganizationError, SessionError, SignedIn, TenancyConfig,
    TenancyPorts, TenancyService,
};
pub use user::{Email, User};
