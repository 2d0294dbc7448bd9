//! Sign-up, log-in and sessions: who the caller is, and which organization they work in.

use canopy_kernel::id::{OrganizationId, SessionId, UserId};
use canopy_kernel::{StoreError, ValidationErrors};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{AccessError, OrgAccess, TenancyService};
use crate::account::ClientInfo;
use crate::audit::{AuditAction, AuditTarget, NewAuditEvent, TargetKind};
use crate::credential::{CredentialKind, Principal, Session};
use crate::organization::{Organization, OrganizationSummary, Slug};
use crate::ports::{CreateUserError, CryptoError, NewUser};
use crate::user::{Email, Password, User, parse_name};

/// Token prefixes make leaked tokens recognisable by secret scanners.
const SESSION_TOKEN_KIND: &str = "cnp_sess";

/// Longest bearer token worth looking up; anything longer was never issued.
const MAX_TOKEN_LEN: usize = 512;

/// Whether a presented token could be one we issued, before spending a lookup on it.
pub(super) fn plausible_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= MAX_TOKEN_LEN
}

/// Outcomes of signing up, logging in and reading who one is.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Input broke a rule; every field and rule is listed.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The email is already registered.
    #[error("email already registered")]
    EmailTaken,
    /// No free slug was found for the personal organization (vanishingly rare).
    #[error("no free slug for the personal organization")]
    SlugTaken,
    /// Log-in failed. Deliberately the same for an unknown email and a wrong password.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// No credential, or one that is unknown, expired or revoked.
    #[error("authentication required")]
    Unauthenticated,
    /// Hashing failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The adapter failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A successful sign-up or log-in: the session token is shown to the client once.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The user.
    pub user: User,
    /// The bearer token.
    pub token: String,
    /// When the session expires.
    pub expires_at: DateTime<Utc>,
}

/// What `GET /v1/me` shows.
#[derive(Debug, Clone)]
pub struct Me {
    /// The user.
    pub user: User,
    /// Every organization with the user's role.
    pub organizations: Vec<OrganizationSummary>,
    /// The active organization (the stored one, or the first membership when unset or stale).
    pub active_organization_id: Option<OrganizationId>,
}

impl TenancyService {
    /// Registers a user, creates their personal organization with them as owner, makes it
    /// active and signs them in.
    pub async fn sign_up(
        &self,
        email: &str,
        name: &str,
        password: String,
        client: &ClientInfo,
    ) -> Result<SignedIn, SessionError> {
        let mut errors = ValidationErrors::default();
        let email = errors.collect(Email::parse(email, "email"));
        let name = errors.collect(parse_name(name, "name"));
        let password = errors.collect(Password::parse(password, "password"));
        let (Some(email), Some(name), Some(password)) = (email, name, password) else {
            return Err(errors.into());
        };

        let password_hash = self
            .ports
            .crypto
            .hash_password(password.expose().to_string())
            .await?;
        let now = self.now();
        let user_id = UserId::new();
        let org_name = format!("{name}'s Organization");
        // A random suffix makes clashes rare; retry the rare one rather than fail a sign-up.
        for _ in 0..4 {
            let organization = Organization {
                id: OrganizationId::new(),
                name: org_name.clone(),
                slug: Slug::derive(&name, &self.ports.crypto.slug_suffix()),
                logo: None,
                metadata: json!({}),
                created_at: now,
                updated_at: now,
            };
            let user = User {
                id: user_id,
                email: email.clone(),
                name: name.clone(),
                active_organization_id: Some(organization.id),
                email_verified_at: None,
                created_at: now,
                updated_at: now,
            };
            let audit = NewAuditEvent::new(
                organization.id,
                Some(user_id),
                AuditAction::OrganizationCreated,
                AuditTarget::new(TargetKind::Organization, organization.id),
                json!({"name": organization.name, "slug": organization.slug.as_str(), "personal": true}),
                now,
            );
            let new = NewUser {
                user: user.clone(),
                password_hash: password_hash.clone(),
            };
            match self
                .ports
                .users
                .create_with_organization(new, organization, audit)
                .await
            {
                Ok(()) => {
                    // The account exists either way; a verification e-mail that could not be
                    // queued is sent again on request.
                    if let Err(e) = self.send_verification(&user).await {
                        tracing::warn!(error = %e, "the verification e-mail was not queued");
                    }
                    return self.start_session(user, client).await;
                }
                Err(CreateUserError::SlugTaken) => continue,
                Err(CreateUserError::EmailTaken) => return Err(SessionError::EmailTaken),
                Err(CreateUserError::Store(e)) => return Err(e.into()),
            }
        }
        Err(SessionError::SlugTaken)
    }

    /// Checks email and password and opens a session. Unknown email and wrong password fail
    /// identically, in message and in time.
    pub async fn log_in(
        &self,
        email: &str,
        password: String,
        client: &ClientInfo,
    ) -> Result<SignedIn, SessionError> {
        let Ok(email) = Email::parse(email, "email") else {
            self.ports.crypto.verify_dummy(password).await?;
            return Err(SessionError::InvalidCredentials);
        };
        let Some(found) = self.ports.users.find_credentials(&email).await? else {
            self.ports.crypto.verify_dummy(password).await?;
            return Err(SessionError::InvalidCredentials);
        };
        let ok = self
            .ports
            .crypto
            .verify_password(password, found.password_hash)
            .await?;
        if !ok {
            return Err(SessionError::InvalidCredentials);
        }
        self.start_session(found.user, client).await
    }

    async fn start_session(
        &self,
        user: User,
        client: &ClientInfo,
    ) -> Result<SignedIn, SessionError> {
        let secret = self.ports.crypto.new_token(SESSION_TOKEN_KIND);
        let now = self.now();
        let session = Session {
            id: SessionId::new(),
            user_id: user.id,
            token_digest: secret.digest,
            expires_at: now + self.config.session_ttl,
            created_at: now,
            client: client.clone(),
        };
        let expires_at = session.expires_at;
        self.ports.credentials.insert_session(session).await?;
        Ok(SignedIn {
            user,
            token: secret.plain,
            expires_at,
        })
    }

    /// Ends the session of this token. Only sessions end this way; API keys are revoked.
    pub async fn log_out(&self, principal: &Principal, token: &str) -> Result<(), StoreError> {
        if let CredentialKind::Session(_) = principal.credential {
            self.ports
                .credentials
                .delete_session(&self.ports.crypto.digest(token))
                .await?;
        }
        Ok(())
    }

    /// Resolves a bearer token (session or API key) to its caller.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, SessionError> {
        if !plausible_token(token) {
            return Err(SessionError::Unauthenticated);
        }
        let digest = self.ports.crypto.digest(token);
        self.ports
            .credentials
            .authenticate(&digest, self.now())
            .await?
            .map(|grant| grant.principal)
            .ok_or(SessionError::Unauthenticated)
    }

    /// The caller's user record; a user deleted under a live token is unauthenticated.
    pub(super) async fn current_user(&self, principal: &Principal) -> Result<User, SessionError> {
        self.ports
            .users
            .get(principal.user_id)
            .await?
            .ok_or(SessionError::Unauthenticated)
    }

    /// The caller, their organizations and the active one.
    pub async fn me(&self, principal: &Principal) -> Result<Me, SessionError> {
        let user = self.current_user(principal).await?;
        let organizations = self.ports.organizations.list_for_user(user.id).await?;
        let active_organization_id = user
            .active_organization_id
            .filter(|id| organizations.iter().any(|o| o.organization.id == *id))
            .or_else(|| organizations.first().map(|o| o.organization.id));
        Ok(Me {
            user,
            organizations,
            active_organization_id,
        })
    }

    /// Persists the active organization; the caller must be a member.
    pub async fn set_active_organization(
        &self,
        principal: &Principal,
        org: &str,
    ) -> Result<OrgAccess, AccessError> {
        let access = self.access(principal, org).await?;
        self.ports
            .users
            .set_active_organization(principal.user_id, Some(access.org_id()), self.now())
            .await?;
        Ok(access)
    }
}
