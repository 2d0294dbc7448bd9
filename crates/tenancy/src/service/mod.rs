//! The tenancy use cases, one module per concept: sign-up and sessions, organizations,
//! members, invitations, API keys, the audit log. Each module has its own error enum whose
//! variants are the outcomes of its operations.
//!
//! Every org-scoped call takes an [`OrgAccess`]: proof, built only here, that the caller was
//! resolved and is a member of the organization named in the request path. A non-member never
//! gets one, so every org-scoped answer to a non-member is "not found", never "forbidden".

mod account;
mod api_keys;
mod audit_log;
mod invitations;
mod members;
mod organizations;
mod sessions;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use canopy_kernel::id::{OrganizationId, UserId};
use canopy_kernel::{Clock, FeatureNotInPlan, StoreError};
use chrono::{DateTime, Duration, Utc};

use crate::audit::{AuditAction, AuditTarget, NewAuditEvent};
use crate::credential::{CredentialKind, Principal};
use crate::mail::{Mail, OutgoingMail};
use crate::membership::Role;
use crate::organization::{OrgRef, Organization};
use crate::policy::{Action, Forbidden, authorize};
use crate::ports::{
    ApiKeyAccess, AuditLog, CredentialCrypto, CredentialRepository, HistoryRetention,
    InvitationRepository, MailRenderer, MembershipRepository, OrganizationRepository, OutboxStore,
    SecurityLog, UserRepository,
};

pub use account::{AccountError, CHANGE_EMAIL_TTL, RESET_TTL, Redeemed, VERIFY_TTL};
pub use api_keys::{ApiKeyError, IssuedApiKey};
pub use audit_log::AuditLogError;
pub use invitations::InvitationError;
pub use members::MemberError;
pub use organizations::{OrganizationChanges, OrganizationError};
pub use sessions::{Me, SessionError, SignedIn};

/// Tunables of the tenancy service.
#[derive(Debug, Clone)]
pub struct TenancyConfig {
    /// How long a log-in session lasts.
    pub session_ttl: Duration,
    /// How long an invitation stays acceptable (spec: 48 hours).
    pub invitation_ttl: Duration,
    /// Public base URL, for the links in invitations.
    pub public_url: String,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::days(7),
            invitation_ttl: Duration::hours(48),
            public_url: "http://localhost:8080".to_string(),
        }
    }
}

/// The adapters the service runs on: one per port.
#[derive(Clone)]
pub struct TenancyPorts {
    /// Users.
    pub users: Arc<dyn UserRepository>,
    /// Sessions and API keys.
    pub credentials: Arc<dyn CredentialRepository>,
    /// Organizations.
    pub organizations: Arc<dyn OrganizationRepository>,
    /// Memberships.
    pub members: Arc<dyn MembershipRepository>,
    /// Invitations.
    pub invitations: Arc<dyn InvitationRepository>,
    /// Audit log reader.
    pub audit: Arc<dyn AuditLog>,
    /// Each person's security log.
    pub security_log: Arc<dyn SecurityLog>,
    /// How far back history is served (the billing domain's answer).
    pub retention: Arc<dyn HistoryRetention>,
    /// Whether API keys may reach an organization (the billing domain's answer).
    pub api_keys: Arc<dyn ApiKeyAccess>,
    /// Renders e-mail from its content (templates).
    pub renderer: Arc<dyn MailRenderer>,
    /// The durable outbox e-mail waits in.
    pub outbox: Arc<dyn OutboxStore>,
    /// Hashing and tokens.
    pub crypto: Arc<dyn CredentialCrypto>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// Why the caller cannot act in the organization named in the path.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// No credential, or one that is unknown, expired or revoked.
    #[error("authentication required")]
    Unauthenticated,
    /// No such organization, or the caller is not a member (indistinguishable by design).
    #[error("organization not found")]
    NotFound,
    /// The caller used an API key and the organization's plan has no API access.
    #[error(transparent)]
    NotInPlan(#[from] FeatureNotInPlan),
    /// The adapter failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The caller's standing in one organization, established before any org-scoped action.
#[derive(Debug, Clone)]
pub struct OrgAccess {
    organization: Organization,
    role: Role,
    principal: Principal,
}

impl OrgAccess {
    /// Test support (the `mocks` feature): an access that no credential was resolved for.
    #[cfg(any(test, feature = "mocks"))]
    pub fn for_tests(organization: Organization, role: Role, principal: Principal) -> Self {
        Self {
            organization,
            role,
            principal,
        }
    }

    /// Refuses unless the caller's role allows `action`.
    pub fn require(&self, action: Action) -> Result<(), Forbidden> {
        authorize(self.role, action)
    }

    /// The organization id.
    pub fn org_id(&self) -> OrganizationId {
        self.organization.id
    }

    /// The organization named in the request path.
    pub fn organization(&self) -> &Organization {
        &self.organization
    }

    /// The caller's role in it.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The caller.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The calling user.
    pub fn user_id(&self) -> UserId {
        self.principal.user_id
    }
}

/// The tenancy use cases.
#[derive(Clone)]
pub struct TenancyService {
    ports: TenancyPorts,
    config: TenancyConfig,
}

impl TenancyService {
    /// Builds the service over its adapters.
    pub fn new(ports: TenancyPorts, config: TenancyConfig) -> Self {
        Self { ports, config }
    }

    /// The clock the service reads; other domains share it.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.ports.clock
    }

    /// The configuration in force.
    pub fn config(&self) -> &TenancyConfig {
        &self.config
    }

    fn now(&self) -> DateTime<Utc> {
        self.ports.clock.now()
    }

    /// The public URL of a console path, for the links in e-mail.
    fn link(&self, path: &str) -> String {
        format!("{}{path}", self.config.public_url.trim_end_matches('/'))
    }

    /// Renders `mail` and queues it in the outbox; a relay delivers it.
    async fn send_mail(&self, mail: Mail) -> Result<(), StoreError> {
        let rendered = self.ports.renderer.render(&mail);
        let outgoing = OutgoingMail {
            id: uuid::Uuid::now_v7(),
            to: mail.to.as_str().to_string(),
            kind: mail.content.kind().to_string(),
            reference: mail.content.reference(),
            link: mail.content.link().map(str::to_string),
            rendered,
            created_at: self.now(),
        };
        self.ports.outbox.queue(outgoing).await
    }

    /// An audit event of `access`'s caller in its organization, now.
    fn audit_by(
        &self,
        access: &OrgAccess,
        action: AuditAction,
        target: AuditTarget,
        details: serde_json::Value,
    ) -> NewAuditEvent {
        NewAuditEvent::new(
            access.org_id(),
            Some(access.user_id()),
            action,
            target,
            details,
            self.now(),
        )
    }

    /// Establishes the caller's membership in the organization named by the path segment `org`
    /// (id or slug). A non-member and a missing organization are both `NotFound`; an API key
    /// reaches only organizations whose plan includes API access.
    pub async fn access(&self, principal: &Principal, org: &str) -> Result<OrgAccess, AccessError> {
        let reference = OrgRef::parse(org).ok_or(AccessError::NotFound)?;
        let (organization, role) = self
            .ports
            .organizations
            .find_for_member(&reference, principal.user_id)
            .await?
            .ok_or(AccessError::NotFound)?;
        self.admit(organization, role, *principal).await
    }

    /// Resolves a bearer token and the caller's membership in `org` in one storage round
    /// trip: `Unauthenticated` for a bad token, `NotFound` for a non-member.
    pub async fn access_by_token(&self, token: &str, org: &str) -> Result<OrgAccess, AccessError> {
        if !sessions::plausible_token(token) {
            return Err(AccessError::Unauthenticated);
        }
        let digest = self.ports.crypto.digest(token);
        let Some(reference) = OrgRef::parse(org) else {
            // No organization can have this name; the credential still decides 401 or 404.
            return match self
                .ports
                .credentials
                .authenticate(&digest, self.now())
                .await?
            {
                Some(_) => Err(AccessError::NotFound),
                None => Err(AccessError::Unauthenticated),
            };
        };
        let (principal, membership) = self
            .ports
            .organizations
            .find_for_credential(&digest, self.now(), &reference)
            .await?
            .ok_or(AccessError::Unauthenticated)?;
        let (organization, role) = membership.ok_or(AccessError::NotFound)?;
        self.admit(organization, role, principal).await
    }

    async fn admit(
        &self,
        organization: Organization,
        role: Role,
        principal: Principal,
    ) -> Result<OrgAccess, AccessError> {
        if let CredentialKind::ApiKey(_) = principal.credential
            && let Some(refusal) = self.ports.api_keys.refusal(organization.id).await?
        {
            return Err(AccessError::NotInPlan(refusal));
        }
        Ok(OrgAccess {
            organization,
            role,
            principal,
        })
    }
}
