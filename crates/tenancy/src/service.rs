//! The tenancy service: every use case of users, organizations, members and invitations.
//! Each org-scoped call takes the organization from the caller's path, checks membership,
//! then asks the policy; a non-member gets `NotFound`, never `Forbidden`.

use std::sync::Arc;

use canopy_kernel::id::{ApiKeyId, InvitationId, OrganizationId, SessionId, UserId};
use canopy_kernel::page::Page;
use canopy_kernel::{Clock, FieldError, PageRequest, ValidationErrors};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::audit::{AuditEvent, NewAuditEvent};
use crate::credential::{ApiKey, CredentialKind, Principal, Session};
use crate::error::{StoreError, TenancyError};
use crate::invitation::{Invitation, InvitationMessage, InvitationStatus, InvitationView};
use crate::membership::{Member, Role};
use crate::organization::{
    OrgRef, Organization, OrganizationPatch, OrganizationSummary, Slug, check_metadata, parse_logo,
};
use crate::policy::{Action, authorize};
use crate::ports::{
    AnswerInvitationError, AuditLog, CreateUserError, CredentialCrypto, CredentialRepository,
    HistoryRetention, InvitationRepository, InvitationSender, InviteError, MembershipChangeError,
    MembershipRepository, NewUser, OrganizationRepository, SlugConflict, UserRepository,
};
use crate::user::{Email, Password, User, parse_name};

/// Token prefixes make leaked tokens recognisable by secret scanners.
const SESSION_TOKEN_KIND: &str = "cnp_sess";
const API_KEY_TOKEN_KIND: &str = "cnp_key";

/// Tunables of the tenancy service.
#[derive(Debug, Clone)]
pub struct TenancyConfig {
    /// How long a log-in session lasts.
    pub session_ttl: Duration,
    /// How long an invitation stays acceptable (spec: 48 hours).
    pub invitation_ttl: Duration,
    /// Public base URL of the console, for accept links.
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

/// The adapters the service runs on.
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
    /// How far back history is served (the billing domain's answer).
    pub retention: Arc<dyn HistoryRetention>,
    /// Invitation delivery.
    pub sender: Arc<dyn InvitationSender>,
    /// Hashing and tokens.
    pub crypto: Arc<dyn CredentialCrypto>,
    /// Time.
    pub clock: Arc<dyn Clock>,
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

    /// Refuses with `Forbidden` unless the caller's role allows `action`.
    pub fn require(&self, action: Action) -> Result<(), TenancyError> {
        authorize(self.role, action).map_err(TenancyError::Forbidden)
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

/// A new API key with its secret, shown once.
#[derive(Debug, Clone)]
pub struct IssuedApiKey {
    /// The stored key.
    pub key: ApiKey,
    /// The token; never retrievable again.
    pub token: String,
}

/// Raw organization changes from a client, validated by [`TenancyService::update_organization`].
#[derive(Debug, Clone, Default)]
pub struct OrganizationChanges {
    /// New name.
    pub name: Option<String>,
    /// New slug.
    pub slug: Option<String>,
    /// New logo; `Some(None)` clears it.
    pub logo: Option<Option<String>>,
    /// Replacement metadata.
    pub metadata: Option<serde_json::Value>,
}

/// The tenancy use cases.
#[derive(Clone)]
pub struct TenancyService {
    ports: TenancyPorts,
    config: TenancyConfig,
}

fn store(e: impl Into<StoreError>) -> TenancyError {
    TenancyError::Store(e.into())
}

fn membership_error(e: MembershipChangeError) -> TenancyError {
    match e {
        MembershipChangeError::NotFound => TenancyError::NotFound("member"),
        MembershipChangeError::LastOwner => TenancyError::LastOwner,
        MembershipChangeError::Store(e) => store(e),
    }
}

fn answer_error(e: AnswerInvitationError) -> TenancyError {
    match e {
        AnswerInvitationError::NotFound => TenancyError::NotFound("invitation"),
        AnswerInvitationError::NotPending => TenancyError::InvitationNotPending,
        AnswerInvitationError::AlreadyMember => TenancyError::AlreadyMember,
        AnswerInvitationError::PlanLimit(limit) => TenancyError::PlanLimit(limit),
        AnswerInvitationError::Store(e) => store(e),
    }
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

    fn audit(
        &self,
        org: OrganizationId,
        actor: Option<UserId>,
        action: &str,
        target: (&str, String),
        details: serde_json::Value,
    ) -> NewAuditEvent {
        NewAuditEvent::new(org, actor, action, target, details, self.now())
    }

    // ----- accounts and credentials -------------------------------------------------------

    /// Registers a user, creates their personal organization with them as owner, makes it
    /// active and signs them in.
    pub async fn sign_up(
        &self,
        email: &str,
        name: &str,
        password: String,
    ) -> Result<SignedIn, TenancyError> {
        let mut errors = ValidationErrors::default();
        let email = errors.collect(Email::parse(email, "email"));
        let name = errors.collect(parse_name(name, "name"));
        let password = errors.collect(Password::parse(password, "password"));
        errors.clone().into_result()?;
        let (Some(email), Some(name), Some(password)) = (email, name, password) else {
            return Err(errors.into());
        };

        let password_hash = self
            .ports
            .crypto
            .hash_password(password.expose().to_string())
            .await
            .map_err(|e| store(StoreError(e.0)))?;
        let now = self.now();
        let user_id = UserId::new();
        let org_name = format!("{name}'s Organization");
        // A random suffix makes clashes rare; retry the rare one rather than fail a sign-up.
        for _ in 0..4 {
            let organization = Organization {
                id: OrganizationId::new(),
                name: org_name.clone(),
                slug: Slug::derive(&name, &self.ports.crypto.slug_suffix())
                    .as_str()
                    .to_string(),
                logo: None,
                metadata: json!({}),
                created_at: now,
                updated_at: now,
            };
            let user = User {
                id: user_id,
                email: email.as_str().to_string(),
                name: name.clone(),
                active_organization_id: Some(organization.id),
                created_at: now,
                updated_at: now,
            };
            let audit = self.audit(
                organization.id,
                Some(user_id),
                "organization.created",
                ("organization", organization.id.to_string()),
                json!({"name": organization.name, "slug": organization.slug, "personal": true}),
            );
            match self
                .ports
                .users
                .create_with_organization(
                    NewUser {
                        user: user.clone(),
                        password_hash: password_hash.clone(),
                    },
                    organization,
                    audit,
                )
                .await
            {
                Ok(()) => return self.start_session(user).await,
                Err(CreateUserError::SlugTaken) => continue,
                Err(CreateUserError::EmailTaken) => return Err(TenancyError::EmailTaken),
                Err(CreateUserError::Store(e)) => return Err(store(e)),
            }
        }
        Err(TenancyError::SlugTaken)
    }

    /// Checks email and password and opens a session. Unknown email and wrong password fail
    /// identically, in message and in time.
    pub async fn log_in(&self, email: &str, password: String) -> Result<SignedIn, TenancyError> {
        let Ok(email) = Email::parse(email, "email") else {
            self.ports.crypto.verify_dummy(password).await;
            return Err(TenancyError::InvalidCredentials);
        };
        let Some(found) = self.ports.users.find_credentials(email.as_str()).await? else {
            self.ports.crypto.verify_dummy(password).await;
            return Err(TenancyError::InvalidCredentials);
        };
        let ok = self
            .ports
            .crypto
            .verify_password(password, found.password_hash)
            .await
            .map_err(|e| store(StoreError(e.0)))?;
        if !ok {
            return Err(TenancyError::InvalidCredentials);
        }
        self.start_session(found.user).await
    }

    async fn start_session(&self, user: User) -> Result<SignedIn, TenancyError> {
        let secret = self.ports.crypto.new_token(SESSION_TOKEN_KIND);
        let now = self.now();
        let session = Session {
            id: SessionId::new(),
            user_id: user.id,
            token_digest: secret.digest,
            expires_at: now + self.config.session_ttl,
            created_at: now,
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
    pub async fn log_out(&self, principal: &Principal, token: &str) -> Result<(), TenancyError> {
        if let CredentialKind::Session(_) = principal.credential {
            self.ports
                .credentials
                .delete_session(&self.ports.crypto.digest(token))
                .await?;
        }
        Ok(())
    }

    /// Resolves a bearer token (session or API key) to its caller.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, TenancyError> {
        if token.is_empty() || token.len() > 512 {
            return Err(TenancyError::Unauthenticated);
        }
        let digest = self.ports.crypto.digest(token);
        self.ports
            .credentials
            .authenticate(&digest, self.now())
            .await?
            .ok_or(TenancyError::Unauthenticated)
    }

    /// The caller, their organizations and the active one.
    pub async fn me(&self, principal: &Principal) -> Result<Me, TenancyError> {
        let user = self
            .ports
            .users
            .get(principal.user_id)
            .await?
            .ok_or(TenancyError::Unauthenticated)?;
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
    ) -> Result<OrgAccess, TenancyError> {
        let access = self.access(principal, org).await?;
        self.ports
            .users
            .set_active_organization(principal.user_id, Some(access.org_id()), self.now())
            .await?;
        Ok(access)
    }

    /// Creates an API key; the token is in the result and nowhere else.
    pub async fn create_api_key(
        &self,
        principal: &Principal,
        name: &str,
        expires_in_days: Option<u32>,
    ) -> Result<IssuedApiKey, TenancyError> {
        let mut errors = ValidationErrors::default();
        let name = errors.collect(parse_name(name, "name"));
        if let Some(days) = expires_in_days
            && !(1..=3650).contains(&days)
        {
            errors.push(FieldError::new(
                "expiresInDays",
                "range",
                "must be between 1 and 3650",
            ));
        }
        errors.clone().into_result()?;
        let Some(name) = name else {
            return Err(errors.into());
        };
        let secret = self.ports.crypto.new_token(API_KEY_TOKEN_KIND);
        let now = self.now();
        let key = ApiKey {
            id: ApiKeyId::new(),
            user_id: principal.user_id,
            name,
            prefix: secret.display_prefix,
            token_digest: secret.digest,
            expires_at: expires_in_days.map(|d| now + Duration::days(i64::from(d))),
            revoked_at: None,
            created_at: now,
        };
        self.ports.credentials.insert_api_key(key.clone()).await?;
        Ok(IssuedApiKey {
            key,
            token: secret.plain,
        })
    }

    /// The caller's API keys, newest first.
    pub async fn list_api_keys(&self, principal: &Principal) -> Result<Vec<ApiKey>, TenancyError> {
        Ok(self
            .ports
            .credentials
            .list_api_keys(principal.user_id)
            .await?)
    }

    /// Revokes one of the caller's API keys.
    pub async fn revoke_api_key(
        &self,
        principal: &Principal,
        id: ApiKeyId,
    ) -> Result<(), TenancyError> {
        if self
            .ports
            .credentials
            .revoke_api_key(principal.user_id, id, self.now())
            .await?
        {
            Ok(())
        } else {
            Err(TenancyError::NotFound("api key"))
        }
    }

    // ----- organizations --------------------------------------------------------------------

    /// Establishes the caller's membership in the organization named by the path segment `org`
    /// (id or slug). A non-member and a missing organization are both `NotFound`.
    pub async fn access(
        &self,
        principal: &Principal,
        org: &str,
    ) -> Result<OrgAccess, TenancyError> {
        let reference = OrgRef::parse(org);
        let (organization, role) = self
            .ports
            .organizations
            .find_for_member(&reference, principal.user_id)
            .await?
            .ok_or(TenancyError::NotFound("organization"))?;
        Ok(OrgAccess {
            organization,
            role,
            principal: *principal,
        })
    }

    /// Resolves a bearer token and the caller's membership in `org` in one storage round
    /// trip: `Unauthenticated` for a bad token, `NotFound` for a non-member.
    pub async fn access_by_token(&self, token: &str, org: &str) -> Result<OrgAccess, TenancyError> {
        if token.is_empty() || token.len() > 512 {
            return Err(TenancyError::Unauthenticated);
        }
        let digest = self.ports.crypto.digest(token);
        let (principal, membership) = self
            .ports
            .organizations
            .find_for_credential(&digest, self.now(), &OrgRef::parse(org))
            .await?
            .ok_or(TenancyError::Unauthenticated)?;
        let (organization, role) = membership.ok_or(TenancyError::NotFound("organization"))?;
        Ok(OrgAccess {
            organization,
            role,
            principal,
        })
    }

    /// Creates an organization; the caller becomes its owner. Without a slug one is derived.
    pub async fn create_organization(
        &self,
        principal: &Principal,
        name: &str,
        slug: Option<&str>,
    ) -> Result<Organization, TenancyError> {
        let mut errors = ValidationErrors::default();
        let name = errors.collect(parse_name(name, "name"));
        let slug = slug.map(|s| errors.collect(Slug::parse(s, "slug")));
        errors.clone().into_result()?;
        let Some(name) = name else {
            return Err(errors.into());
        };
        let chosen = slug.flatten();
        let attempts = if chosen.is_some() { 1 } else { 4 };
        for _ in 0..attempts {
            let slug = chosen
                .clone()
                .unwrap_or_else(|| Slug::derive(&name, &self.ports.crypto.slug_suffix()));
            let now = self.now();
            let organization = Organization {
                id: OrganizationId::new(),
                name: name.clone(),
                slug: slug.as_str().to_string(),
                logo: None,
                metadata: json!({}),
                created_at: now,
                updated_at: now,
            };
            let audit = self.audit(
                organization.id,
                Some(principal.user_id),
                "organization.created",
                ("organization", organization.id.to_string()),
                json!({"name": organization.name, "slug": organization.slug}),
            );
            match self
                .ports
                .organizations
                .create(organization.clone(), principal.user_id, audit)
                .await
            {
                Ok(()) => return Ok(organization),
                Err(SlugConflict::SlugTaken) => continue,
                Err(SlugConflict::NotFound) => return Err(TenancyError::NotFound("organization")),
                Err(SlugConflict::Store(e)) => return Err(store(e)),
            }
        }
        Err(TenancyError::SlugTaken)
    }

    /// The caller's organizations with role and member count.
    pub async fn list_organizations(
        &self,
        principal: &Principal,
    ) -> Result<Vec<OrganizationSummary>, TenancyError> {
        Ok(self
            .ports
            .organizations
            .list_for_user(principal.user_id)
            .await?)
    }

    /// Changes name, slug, logo or metadata (admin or owner).
    pub async fn update_organization(
        &self,
        access: &OrgAccess,
        changes: OrganizationChanges,
    ) -> Result<Organization, TenancyError> {
        access.require(Action::UpdateOrganization)?;
        let mut errors = ValidationErrors::default();
        let mut patch = OrganizationPatch::default();
        if let Some(name) = changes.name.as_deref() {
            patch.name = errors.collect(parse_name(name, "name"));
        }
        if let Some(slug) = changes.slug.as_deref() {
            patch.slug = errors.collect(Slug::parse(slug, "slug"));
        }
        if let Some(logo) = changes.logo {
            patch.logo = match logo {
                None => Some(None),
                Some(raw) => errors.collect(parse_logo(&raw, "logo")).map(Some),
            };
        }
        if let Some(metadata) = changes.metadata
            && errors
                .collect(check_metadata(&metadata, "metadata"))
                .is_some()
        {
            patch.metadata = Some(metadata);
        }
        errors.into_result()?;
        if patch == OrganizationPatch::default() {
            return Ok(access.organization.clone());
        }
        let mut changed = vec![];
        if patch.name.is_some() {
            changed.push("name");
        }
        if patch.slug.is_some() {
            changed.push("slug");
        }
        if patch.logo.is_some() {
            changed.push("logo");
        }
        if patch.metadata.is_some() {
            changed.push("metadata");
        }
        let audit = self.audit(
            access.org_id(),
            Some(access.principal.user_id),
            "organization.updated",
            ("organization", access.org_id().to_string()),
            json!({"changed": changed, "name": patch.name, "slug": patch.slug.as_ref().map(Slug::as_str)}),
        );
        self.ports
            .organizations
            .update(access.org_id(), patch, self.now(), audit)
            .await
            .map_err(|e| match e {
                SlugConflict::SlugTaken => TenancyError::SlugTaken,
                SlugConflict::NotFound => TenancyError::NotFound("organization"),
                SlugConflict::Store(e) => store(e),
            })
    }

    /// Deletes the organization and everything it owns (owner only).
    pub async fn delete_organization(&self, access: &OrgAccess) -> Result<(), TenancyError> {
        access.require(Action::DeleteOrganization)?;
        if !self.ports.organizations.delete(access.org_id()).await? {
            return Err(TenancyError::NotFound("organization"));
        }
        tracing::info!(organization = %access.org_id(), actor = %access.principal.user_id, "organization deleted");
        Ok(())
    }

    /// Whether a slug is valid and free. Invalid slugs are a validation error, not "taken".
    pub async fn slug_available(&self, slug: &str) -> Result<bool, TenancyError> {
        let slug = Slug::parse(slug, "slug").map_err(ValidationErrors::single)?;
        Ok(!self.ports.organizations.slug_exists(slug.as_str()).await?)
    }

    // ----- members --------------------------------------------------------------------------

    /// Members of the organization (any member may look).
    pub async fn list_members(
        &self,
        access: &OrgAccess,
        page: PageRequest,
    ) -> Result<Page<Member>, TenancyError> {
        access.require(Action::View)?;
        Ok(self.ports.members.list(access.org_id(), page).await?)
    }

    async fn member(&self, org: OrganizationId, user: UserId) -> Result<Member, TenancyError> {
        self.ports
            .members
            .get(org, user)
            .await?
            .ok_or(TenancyError::NotFound("member"))
    }

    /// Changes a member's role (owner only). The last owner cannot be demoted.
    pub async fn change_role(
        &self,
        access: &OrgAccess,
        user: UserId,
        role: Role,
    ) -> Result<Member, TenancyError> {
        access.require(Action::ChangeRole)?;
        let current = self.member(access.org_id(), user).await?;
        if current.role == role {
            return Ok(current);
        }
        let audit = self.audit(
            access.org_id(),
            Some(access.principal.user_id),
            "member.role_changed",
            ("member", user.to_string()),
            json!({"email": current.email, "from": current.role.as_str(), "to": role.as_str()}),
        );
        self.ports
            .members
            .change_role(access.org_id(), user, role, audit)
            .await
            .map_err(membership_error)
    }

    /// Removes a member (admin or owner; an admin cannot remove an owner).
    pub async fn remove_member(
        &self,
        access: &OrgAccess,
        user: UserId,
    ) -> Result<(), TenancyError> {
        access.require(Action::RemoveMember)?;
        let target = self.member(access.org_id(), user).await?;
        if target.role == Role::Owner && access.role != Role::Owner {
            return Err(TenancyError::OwnerProtected);
        }
        let audit = self.audit(
            access.org_id(),
            Some(access.principal.user_id),
            "member.removed",
            ("member", user.to_string()),
            json!({"email": target.email, "role": target.role.as_str()}),
        );
        self.ports
            .members
            .remove(access.org_id(), user, audit)
            .await
            .map_err(membership_error)
    }

    /// Leaves the organization. The last owner must hand over ownership first.
    pub async fn leave(&self, access: &OrgAccess) -> Result<(), TenancyError> {
        let audit = self.audit(
            access.org_id(),
            Some(access.principal.user_id),
            "member.left",
            ("member", access.principal.user_id.to_string()),
            json!({"role": access.role.as_str()}),
        );
        self.ports
            .members
            .remove(access.org_id(), access.principal.user_id, audit)
            .await
            .map_err(membership_error)
    }

    /// Gives ownership to another member; the caller becomes an admin.
    pub async fn transfer_ownership(
        &self,
        access: &OrgAccess,
        to: UserId,
    ) -> Result<(), TenancyError> {
        access.require(Action::TransferOwnership)?;
        if to == access.principal.user_id {
            return Err(ValidationErrors::single(FieldError::new(
                "userId",
                "different",
                "must be another member than yourself",
            ))
            .into());
        }
        let target = self.member(access.org_id(), to).await?;
        let audit = self.audit(
            access.org_id(),
            Some(access.principal.user_id),
            "organization.ownership_transferred",
            ("member", to.to_string()),
            json!({"to": target.email, "fromRole": target.role.as_str()}),
        );
        self.ports
            .members
            .transfer_ownership(access.org_id(), access.principal.user_id, to, audit)
            .await
            .map_err(membership_error)
    }

    // ----- invitations ----------------------------------------------------------------------

    /// Invites an email with a role (admin or owner; only an owner invites an owner). A pending
    /// invitation for the same email is replaced.
    pub async fn invite(
        &self,
        access: &OrgAccess,
        email: &str,
        role: Role,
    ) -> Result<Invitation, TenancyError> {
        access.require(Action::Invite)?;
        let email = Email::parse(email, "email").map_err(ValidationErrors::single)?;
        if role == Role::Owner && access.role != Role::Owner {
            return Err(TenancyError::OwnerInviteRequiresOwner);
        }
        if let Some(existing) = self.ports.users.find_credentials(email.as_str()).await?
            && self
                .ports
                .members
                .get(access.org_id(), existing.user.id)
                .await?
                .is_some()
        {
            return Err(TenancyError::AlreadyMember);
        }
        let now = self.now();
        let invitation = Invitation {
            id: InvitationId::new(),
            organization_id: access.org_id(),
            email: email.as_str().to_string(),
            role,
            status: InvitationStatus::Pending,
            invited_by: access.principal.user_id,
            expires_at: now + self.config.invitation_ttl,
            created_at: now,
        };
        let audit = self.audit(
            access.org_id(),
            Some(access.principal.user_id),
            "invitation.created",
            ("invitation", invitation.id.to_string()),
            json!({"email": invitation.email, "role": role.as_str()}),
        );
        self.ports
            .invitations
            .create_replacing(invitation.clone(), audit)
            .await
            .map_err(|e| match e {
                InviteError::PlanLimit(limit) => TenancyError::PlanLimit(limit),
                InviteError::Store(e) => store(e),
            })?;
        let inviter = self.ports.users.get(access.principal.user_id).await?;
        let message = InvitationMessage {
            accept_url: format!(
                "{}/invitations/{}",
                self.config.public_url.trim_end_matches('/'),
                invitation.id
            ),
            organization_name: access.organization.name.clone(),
            invited_by_name: inviter.map(|u| u.name).unwrap_or_default(),
            invitation: invitation.clone(),
        };
        self.ports.sender.send(message).await?;
        Ok(invitation)
    }

    /// Pending invitations of the organization (admin or owner).
    pub async fn list_invitations(
        &self,
        access: &OrgAccess,
        page: PageRequest,
    ) -> Result<Page<Invitation>, TenancyError> {
        access.require(Action::Invite)?;
        Ok(self
            .ports
            .invitations
            .list_pending(access.org_id(), self.now(), page)
            .await?)
    }

    /// Cancels a pending invitation (admin or owner).
    pub async fn cancel_invitation(
        &self,
        access: &OrgAccess,
        id: InvitationId,
    ) -> Result<(), TenancyError> {
        access.require(Action::Invite)?;
        let audit = self.audit(
            access.org_id(),
            Some(access.principal.user_id),
            "invitation.cancelled",
            ("invitation", id.to_string()),
            json!({}),
        );
        if self
            .ports
            .invitations
            .cancel(access.org_id(), id, audit)
            .await?
        {
            Ok(())
        } else {
            Err(TenancyError::NotFound("invitation"))
        }
    }

    /// Invitations addressed to the caller's email.
    pub async fn my_invitations(
        &self,
        principal: &Principal,
    ) -> Result<Vec<InvitationView>, TenancyError> {
        let user = self.current_user(principal).await?;
        Ok(self
            .ports
            .invitations
            .list_for_email(&user.email, self.now())
            .await?)
    }

    async fn current_user(&self, principal: &Principal) -> Result<User, TenancyError> {
        self.ports
            .users
            .get(principal.user_id)
            .await?
            .ok_or(TenancyError::Unauthenticated)
    }

    /// Loads an invitation the caller may answer: theirs, pending and unexpired.
    async fn answerable(
        &self,
        principal: &Principal,
        id: InvitationId,
    ) -> Result<(User, InvitationView), TenancyError> {
        let user = self.current_user(principal).await?;
        let view = self
            .ports
            .invitations
            .get(id)
            .await?
            .ok_or(TenancyError::NotFound("invitation"))?;
        if view.invitation.email != user.email {
            return Err(TenancyError::InvitationEmailMismatch);
        }
        if view.invitation.status != InvitationStatus::Pending {
            return Err(TenancyError::InvitationNotPending);
        }
        if view.invitation.is_expired(self.now()) {
            return Err(TenancyError::InvitationExpired);
        }
        Ok((user, view))
    }

    /// Accepts an invitation addressed to the caller: they join with its role.
    pub async fn accept_invitation(
        &self,
        principal: &Principal,
        id: InvitationId,
    ) -> Result<Member, TenancyError> {
        let (user, view) = self.answerable(principal, id).await?;
        let audit = self.audit(
            view.invitation.organization_id,
            Some(user.id),
            "invitation.accepted",
            ("invitation", id.to_string()),
            json!({"email": user.email, "role": view.invitation.role.as_str()}),
        );
        self.ports
            .invitations
            .accept(id, user.id, self.now(), audit)
            .await
            .map_err(answer_error)
    }

    /// Declines an invitation addressed to the caller.
    pub async fn reject_invitation(
        &self,
        principal: &Principal,
        id: InvitationId,
    ) -> Result<(), TenancyError> {
        let (user, view) = self.answerable(principal, id).await?;
        let audit = self.audit(
            view.invitation.organization_id,
            Some(user.id),
            "invitation.rejected",
            ("invitation", id.to_string()),
            json!({"email": user.email}),
        );
        self.ports
            .invitations
            .reject(id, audit)
            .await
            .map_err(answer_error)
    }

    // ----- audit ----------------------------------------------------------------------------

    /// The organization's audit log within its plan's history retention, newest first
    /// (admin or owner).
    pub async fn audit_events(
        &self,
        access: &OrgAccess,
        page: PageRequest,
    ) -> Result<Page<AuditEvent>, TenancyError> {
        access.require(Action::ReadAuditLog)?;
        let since = self.history_served_since(access.org_id()).await?;
        Ok(self.ports.audit.list(access.org_id(), since, page).await?)
    }

    /// The oldest instant of the organization's history its plan serves now (`None`: all).
    pub async fn history_served_since(
        &self,
        org: OrganizationId,
    ) -> Result<Option<DateTime<Utc>>, TenancyError> {
        Ok(self.ports.retention.served_since(org, self.now()).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use canopy_kernel::ManualClock;
    use chrono::Utc;

    use super::*;
    use crate::credential::NewSecret;
    use crate::ports::{
        MockAuditLog, MockCredentialCrypto, MockCredentialRepository, MockHistoryRetention,
        MockInvitationRepository, MockInvitationSender, MockMembershipRepository,
        MockOrganizationRepository, MockUserRepository,
    };
    use crate::user::UserCredentials;

    #[derive(Default)]
    struct Mocks {
        users: MockUserRepository,
        credentials: MockCredentialRepository,
        organizations: MockOrganizationRepository,
        members: MockMembershipRepository,
        invitations: MockInvitationRepository,
        crypto: MockCredentialCrypto,
    }

    impl Mocks {
        fn service(self) -> TenancyService {
            let mut crypto = self.crypto;
            crypto.expect_digest().returning(|t| format!("digest:{t}"));
            TenancyService::new(
                TenancyPorts {
                    users: Arc::new(self.users),
                    credentials: Arc::new(self.credentials),
                    organizations: Arc::new(self.organizations),
                    members: Arc::new(self.members),
                    invitations: Arc::new(self.invitations),
                    audit: Arc::new(MockAuditLog::new()),
                    retention: Arc::new(MockHistoryRetention::new()),
                    sender: Arc::new(MockInvitationSender::new()),
                    crypto: Arc::new(crypto),
                    clock: Arc::new(ManualClock::new(Utc::now())),
                },
                TenancyConfig::default(),
            )
        }
    }

    fn org() -> Organization {
        Organization {
            id: OrganizationId::new(),
            name: "Acme".into(),
            slug: "acme".into(),
            logo: None,
            metadata: json!({}),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn principal() -> Principal {
        Principal {
            user_id: UserId::new(),
            credential: CredentialKind::Session(SessionId::new()),
        }
    }

    fn member_as(role: Role, org: &Organization, mocks: &mut Mocks) {
        let org = org.clone();
        mocks
            .organizations
            .expect_find_for_credential()
            .returning(move |_, _, _| Ok(Some((principal(), Some((org.clone(), role))))));
    }

    #[tokio::test]
    async fn unknown_email_spends_a_dummy_verification_and_says_the_same_as_a_wrong_password() {
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_find_credentials()
            .returning(|_| Ok(None));
        mocks
            .crypto
            .expect_verify_dummy()
            .times(1)
            .returning(|_| ());
        mocks.crypto.expect_verify_password().never();
        let err = mocks
            .service()
            .log_in("nobody@example.com", "whatever".into())
            .await
            .unwrap_err();
        assert!(matches!(err, TenancyError::InvalidCredentials), "{err:?}");

        let mut mocks = Mocks::default();
        mocks.users.expect_find_credentials().returning(|_| {
            Ok(Some(UserCredentials {
                user: User {
                    id: UserId::new(),
                    email: "ada@example.com".into(),
                    name: "Ada".into(),
                    active_organization_id: None,
                    created_at: Utc::now(),
                    updated_at: Utc::now(),
                },
                password_hash: "hash".into(),
            }))
        });
        mocks
            .crypto
            .expect_verify_password()
            .returning(|_, _| Ok(false));
        mocks.credentials.expect_insert_session().never();
        let wrong = mocks
            .service()
            .log_in("ada@example.com", "nope".into())
            .await
            .unwrap_err();
        assert_eq!(wrong.to_string(), err.to_string());
    }

    #[tokio::test]
    async fn non_member_is_told_not_found_never_forbidden() {
        let mut mocks = Mocks::default();
        mocks
            .organizations
            .expect_find_for_credential()
            .returning(|_, _, _| Ok(Some((principal(), None))));
        let err = mocks
            .service()
            .access_by_token("tok", "acme")
            .await
            .unwrap_err();
        assert!(
            matches!(err, TenancyError::NotFound("organization")),
            "{err:?}"
        );

        let mut mocks = Mocks::default();
        mocks
            .organizations
            .expect_find_for_credential()
            .returning(|_, _, _| Ok(None));
        let err = mocks
            .service()
            .access_by_token("tok", "acme")
            .await
            .unwrap_err();
        assert!(matches!(err, TenancyError::Unauthenticated), "{err:?}");
    }

    #[tokio::test]
    async fn admin_cannot_remove_an_owner_and_storage_is_never_asked() {
        let organization = org();
        let mut mocks = Mocks::default();
        member_as(Role::Admin, &organization, &mut mocks);
        let owner = UserId::new();
        let org_id = organization.id;
        mocks.members.expect_get().returning(move |_, user| {
            Ok(Some(Member {
                organization_id: org_id,
                user_id: user,
                name: "Root".into(),
                email: "root@example.com".into(),
                role: Role::Owner,
                joined_at: Utc::now(),
            }))
        });
        mocks.members.expect_remove().never();
        let service = mocks.service();
        let access = service.access_by_token("tok", "acme").await.unwrap();
        let err = service.remove_member(&access, owner).await.unwrap_err();
        assert!(matches!(err, TenancyError::OwnerProtected), "{err:?}");
    }

    #[tokio::test]
    async fn member_cannot_invite_and_admin_cannot_invite_an_owner() {
        let organization = org();
        let mut mocks = Mocks::default();
        member_as(Role::Member, &organization, &mut mocks);
        mocks.invitations.expect_create_replacing().never();
        let service = mocks.service();
        let access = service.access_by_token("tok", "acme").await.unwrap();
        let err = service
            .invite(&access, "x@example.com", Role::Member)
            .await
            .unwrap_err();
        assert!(
            matches!(err, TenancyError::Forbidden(Action::Invite)),
            "{err:?}"
        );

        let mut mocks = Mocks::default();
        member_as(Role::Admin, &organization, &mut mocks);
        mocks.invitations.expect_create_replacing().never();
        let service = mocks.service();
        let access = service.access_by_token("tok", "acme").await.unwrap();
        let err = service
            .invite(&access, "x@example.com", Role::Owner)
            .await
            .unwrap_err();
        assert!(
            matches!(err, TenancyError::OwnerInviteRequiresOwner),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn sign_up_retries_a_slug_clash_with_a_new_suffix() {
        let mut mocks = Mocks::default();
        mocks
            .crypto
            .expect_hash_password()
            .returning(|_| Ok("hash".into()));
        let mut suffixes = vec!["bbbbbb".to_string(), "aaaaaa".to_string()];
        mocks
            .crypto
            .expect_slug_suffix()
            .times(2)
            .returning(move || suffixes.pop().unwrap());
        mocks.crypto.expect_new_token().returning(|kind| NewSecret {
            plain: format!("{kind}_secret"),
            digest: "d".into(),
            display_prefix: kind.into(),
        });
        let mut seen = vec![];
        mocks
            .users
            .expect_create_with_organization()
            .times(2)
            .returning(move |_, org, _| {
                seen.push(org.slug.clone());
                if seen.len() == 1 {
                    assert_eq!(org.slug, "ada-aaaaaa");
                    Err(CreateUserError::SlugTaken)
                } else {
                    assert_eq!(org.slug, "ada-bbbbbb");
                    Ok(())
                }
            });
        mocks
            .credentials
            .expect_insert_session()
            .times(1)
            .returning(|_| Ok(()));
        let signed_in = mocks
            .service()
            .sign_up("Ada@Example.com", "Ada", "long enough password".into())
            .await
            .unwrap();
        assert_eq!(signed_in.user.email, "ada@example.com");
        assert_eq!(signed_in.token, "cnp_sess_secret");
    }
}
