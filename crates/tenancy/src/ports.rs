//! Ports: what the tenancy domain needs from the outside world. Adapters implement them
//! (`canopy-store` for storage, `canopy-credentials` for hashing and tokens, `canopy-billing`
//! for what a plan allows); tests swap them (the `mocks` feature has a mockall mock of each).
//!
//! Every storage method that changes an organization takes the [`NewAuditEvent`] describing the
//! change and MUST write it in the same transaction. Every method MAY fail with
//! [`StoreError`]: `Unavailable` when the store cannot be reached (the edge answers 503 and the
//! client retries), `Internal` for anything else; the domain passes both through untouched.

use async_trait::async_trait;
use canopy_kernel::id::{ApiKeyId, InvitationId, OrganizationId, SessionId, UserId};
use canopy_kernel::page::Page;
use canopy_kernel::{FeatureNotInPlan, PageRequest, PlanLimitExceeded, StoreError};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::account::{
    DeletedAccount, HeldOrganization, Redemption, SecurityEvent, SessionInfo, UserToken,
};
use crate::audit::{AuditEvent, AuditFilter, NewAuditEvent};
use crate::credential::{ApiKey, Grant, NewSecret, Principal, Session};
use crate::invitation::{Invitation, InvitationView};
use crate::mail::{ClaimedMail, Delivery, DeliveryError, Mail, OutgoingMail, RenderedMail};
use crate::membership::{Member, Role};
use crate::organization::{OrgRef, Organization, OrganizationPatch, OrganizationSummary, Slug};
use crate::user::{Email, User, UserCredentials};

/// Conflicts when registering a user.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// Another user has this email.
    #[error("email taken")]
    EmailTaken,
    /// The personal organization's slug clashed.
    #[error("slug taken")]
    SlugTaken,
    /// Anything else.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Conflicts when creating or renaming an organization.
#[derive(Debug, thiserror::Error)]
pub enum SlugConflict {
    /// Another organization has this slug.
    #[error("slug taken")]
    SlugTaken,
    /// The organization does not exist (update only).
    #[error("not found")]
    NotFound,
    /// Anything else.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refusals when redeeming a single-use link.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    /// No unused token with this digest and purpose, or it no longer matches the account
    /// (a verification link for an address the account no longer has).
    #[error("invalid link")]
    Invalid,
    /// The token exists, unused, but its time ran out.
    #[error("expired link")]
    Expired,
    /// A new address another account took meanwhile.
    #[error("email taken")]
    EmailTaken,
    /// Anything else.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refusals when deleting an account.
#[derive(Debug, thiserror::Error)]
pub enum DeleteAccountError {
    /// The user is the only owner of these organizations, which have other members.
    #[error("the last owner of organizations with other members")]
    LastOwner(Vec<HeldOrganization>),
    /// Anything else.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refusals when changing memberships.
#[derive(Debug, thiserror::Error)]
pub enum MembershipChangeError {
    /// The user is not a member of the organization.
    #[error("not a member")]
    NotFound,
    /// The change would leave the organization without an owner.
    #[error("last owner")]
    LastOwner,
    /// Anything else.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refusals when answering an invitation.
#[derive(Debug, thiserror::Error)]
pub enum AnswerInvitationError {
    /// No such invitation.
    #[error("not found")]
    NotFound,
    /// It is no longer pending (answered, cancelled, replaced, or a concurrent answer won).
    #[error("not pending")]
    NotPending,
    /// The invitee already belongs to the organization.
    #[error("already a member")]
    AlreadyMember,
    /// The organization's plan has no room for another member.
    #[error(transparent)]
    PlanLimit(#[from] PlanLimitExceeded),
    /// Anything else.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refusals when inviting.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    /// The organization's plan has no room for another team member.
    #[error(transparent)]
    PlanLimit(#[from] PlanLimitExceeded),
    /// Anything else.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A resolved credential: the caller, and the organization with their role when they are a
/// member of the one asked about.
pub type CredentialAccess = (Principal, Option<(Organization, Role)>);

/// A new user with the personal organization sign-up creates.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The user (its `active_organization_id` is the personal organization).
    pub user: User,
    /// PHC password hash.
    pub password_hash: String,
}

/// Users and their passwords.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Stores the user, their personal organization with them as owner, and the audit event.
    /// MUST return `EmailTaken` when the email exists and `SlugTaken` when the slug does, and
    /// store nothing in either case.
    async fn create_with_organization(
        &self,
        user: NewUser,
        organization: Organization,
        audit: NewAuditEvent,
    ) -> Result<(), CreateUserError>;

    /// The user with this email and their hash, or `None`.
    async fn find_credentials(&self, email: &Email) -> Result<Option<UserCredentials>, StoreError>;

    /// The user, or `None`.
    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// Persists the active organization. The caller has checked membership.
    async fn set_active_organization(
        &self,
        id: UserId,
        organization: Option<OrganizationId>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Stores a single-use token, voiding the user's unused tokens of the same purpose in the
    /// same transaction: only the newest link works.
    async fn issue_token(&self, token: UserToken) -> Result<(), StoreError>;

    /// Uses up the token with this digest and applies `redemption`, atomically: of two
    /// concurrent redemptions one wins. MUST return `Invalid` for an unknown, used, voided or
    /// wrong-purpose token and for a verification of an address the account no longer has,
    /// `Expired` once its time ran out, and `EmailTaken` when a new address was taken
    /// meanwhile (the token then stays unused). Returns the user as changed and the address
    /// it had before.
    async fn redeem_token(
        &self,
        digest: &str,
        redemption: Redemption,
        now: DateTime<Utc>,
    ) -> Result<(User, Email), RedeemError>;

    /// Sets the password hash and ends every session of the user but `keep`, atomically;
    /// how many sessions ended.
    async fn set_password(
        &self,
        id: UserId,
        password_hash: String,
        keep: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Marks the address verified now (operators, the demo); a verified one stays as it was.
    async fn mark_verified(&self, id: UserId, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Deletes the user in one transaction, under the locks of every organization they
    /// belong to: an organization they are the only member of goes with all it owns; their
    /// other memberships end, each with a `member.account_deleted` audit event; their address
    /// becomes [`TOMBSTONE`](crate::account::TOMBSTONE) in audit details, and their decided
    /// invitations, sessions, keys, links, security log and outbox messages go. MUST refuse
    /// with `LastOwner`, changing nothing, while they are the only owner of an organization
    /// with other members, even when a member joins concurrently. `Ok(None)`: no such user.
    async fn delete_account(
        &self,
        id: UserId,
        now: DateTime<Utc>,
    ) -> Result<Option<DeletedAccount>, DeleteAccountError>;
}

/// Sessions and API keys.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CredentialRepository: Send + Sync {
    /// Stores a session.
    async fn insert_session(&self, session: Session) -> Result<(), StoreError>;

    /// The caller owning this token digest, with the credential's expiry, if it is an
    /// unexpired session or an unrevoked, unexpired API key at `now`; `None` otherwise.
    async fn authenticate(
        &self,
        digest: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>, StoreError>;

    /// Deletes the session with this digest; deleting an unknown one is not an error.
    async fn delete_session(&self, digest: &str) -> Result<(), StoreError>;

    /// The user's unexpired sessions at `now`, newest first.
    async fn list_sessions(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionInfo>, StoreError>;

    /// Deletes the user's session `id`. MUST return `false` when it is not theirs or is gone.
    async fn delete_user_session(&self, user: UserId, id: SessionId) -> Result<bool, StoreError>;

    /// Deletes every session of the user but `keep`; how many.
    async fn delete_other_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
    ) -> Result<u64, StoreError>;

    /// Records that session `id` was used at `now`. MAY skip the write when the last
    /// recorded use is less than a minute old (it is shown to the minute).
    async fn touch_session(&self, id: SessionId, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Stores an API key.
    async fn insert_api_key(&self, key: ApiKey) -> Result<(), StoreError>;

    /// The user's API keys, newest first, revoked ones included.
    async fn list_api_keys(&self, user: UserId) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes the user's key. MUST return `false` when the key does not exist, belongs to
    /// another user or is already revoked.
    async fn revoke_api_key(
        &self,
        user: UserId,
        id: ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// Organizations and who may see them.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OrganizationRepository: Send + Sync {
    /// Stores the organization with `owner` as its first owner. MUST return `SlugTaken` when
    /// the slug exists, also under concurrent creation.
    async fn create(
        &self,
        organization: Organization,
        owner: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), SlugConflict>;

    /// The organization by id or slug together with `user`'s role in it; `None` when it does not
    /// exist or `user` is not a member (the two are indistinguishable by design).
    async fn find_for_member(
        &self,
        org: &OrgRef,
        user: UserId,
    ) -> Result<Option<(Organization, Role)>, StoreError>;

    /// Resolves a credential digest and an organization together, in one round trip: `None`
    /// when no unexpired session or unrevoked, unexpired API key has this digest at `now`;
    /// otherwise the caller and, only when they are a member, the organization and their role.
    async fn find_for_credential(
        &self,
        digest: &str,
        now: DateTime<Utc>,
        org: &OrgRef,
    ) -> Result<Option<CredentialAccess>, StoreError>;

    /// Every organization `user` belongs to, with role and member count, oldest membership first.
    async fn list_for_user(&self, user: UserId) -> Result<Vec<OrganizationSummary>, StoreError>;

    /// Applies the patch. MUST return `SlugTaken` on a slug clash and `NotFound` when missing.
    async fn update(
        &self,
        id: OrganizationId,
        patch: OrganizationPatch,
        now: DateTime<Utc>,
        audit: NewAuditEvent,
    ) -> Result<Organization, SlugConflict>;

    /// Deletes the organization and everything it owns. Returns `false` when it did not exist.
    async fn delete(&self, id: OrganizationId) -> Result<bool, StoreError>;

    /// True when some organization has this slug.
    async fn slug_exists(&self, slug: &Slug) -> Result<bool, StoreError>;
}

/// Memberships. Changes MUST keep at least one owner per organization under concurrency.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MembershipRepository: Send + Sync {
    /// Members ordered by join time, paginated.
    async fn list(
        &self,
        org: OrganizationId,
        page: PageRequest,
    ) -> Result<Page<Member>, StoreError>;

    /// One member, or `None`.
    async fn get(&self, org: OrganizationId, user: UserId) -> Result<Option<Member>, StoreError>;

    /// Sets the member's role. MUST return `NotFound` for a non-member and `LastOwner` when it
    /// would demote the only owner; concurrent demotions MUST NOT both succeed if together they
    /// would leave no owner.
    async fn change_role(
        &self,
        org: OrganizationId,
        user: UserId,
        role: Role,
        audit: NewAuditEvent,
    ) -> Result<Member, MembershipChangeError>;

    /// Removes the member (also used for leaving). Same errors and guarantee as `change_role`.
    async fn remove(
        &self,
        org: OrganizationId,
        user: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), MembershipChangeError>;

    /// Makes `to` an owner and `from` an admin, atomically. `NotFound` when `to` is not a member.
    async fn transfer_ownership(
        &self,
        org: OrganizationId,
        from: UserId,
        to: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), MembershipChangeError>;
}

/// Invitations.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait InvitationRepository: Send + Sync {
    /// Stores a pending invitation, marking any pending one for the same (organization, email)
    /// as replaced in the same transaction, so at most one is ever pending. MUST return
    /// `PlanLimit` when members plus the other pending, unexpired invitations already fill the
    /// organization's plan, decided in the same transaction so concurrent invites cannot
    /// overshoot it; nothing is stored then.
    async fn create_replacing(
        &self,
        invitation: Invitation,
        audit: NewAuditEvent,
    ) -> Result<(), InviteError>;

    /// Pending, unexpired invitations of the organization, newest first.
    async fn list_pending(
        &self,
        org: OrganizationId,
        now: DateTime<Utc>,
        page: PageRequest,
    ) -> Result<Page<Invitation>, StoreError>;

    /// Cancels a pending invitation of this organization. `false` when there is none.
    async fn cancel(
        &self,
        org: OrganizationId,
        id: InvitationId,
        audit: NewAuditEvent,
    ) -> Result<bool, StoreError>;

    /// Pending, unexpired invitations addressed to this email, newest first.
    async fn list_for_email(
        &self,
        email: &Email,
        now: DateTime<Utc>,
    ) -> Result<Vec<InvitationView>, StoreError>;

    /// The invitation with its organization and inviter names, whatever its status.
    async fn get(&self, id: InvitationId) -> Result<Option<InvitationView>, StoreError>;

    /// Marks the invitation accepted and adds `user` with its role, atomically. MUST return
    /// `NotPending` if it is not pending at commit time (so two accepts cannot both win),
    /// `AlreadyMember` when `user` already belongs to the organization, and `PlanLimit` when
    /// the members plus the other pending invitations already fill the organization's plan
    /// (the invitation then stays pending).
    async fn accept(
        &self,
        id: InvitationId,
        user: UserId,
        now: DateTime<Utc>,
        audit: NewAuditEvent,
    ) -> Result<Member, AnswerInvitationError>;

    /// Marks the invitation rejected. MUST return `NotPending` if it is not pending.
    async fn reject(
        &self,
        id: InvitationId,
        audit: NewAuditEvent,
    ) -> Result<(), AnswerInvitationError>;
}

/// Each person's own security log (password, e-mail and session changes).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SecurityLog: Send + Sync {
    /// Appends an entry.
    async fn record(&self, event: SecurityEvent) -> Result<(), StoreError>;

    /// The user's entries, newest first, paginated.
    async fn list(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<SecurityEvent>, StoreError>;
}

/// The audit log, read side.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Events of the organization that occurred at or after `since` (all when `None`) and
    /// match `filter`, newest first, paginated.
    async fn list(
        &self,
        org: OrganizationId,
        since: Option<DateTime<Utc>>,
        filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEvent>, StoreError>;
}

/// How far back an organization's history (audit events, health checks, metrics, coverage)
/// is served. The billing domain answers from the organization's plan; older history is not
/// served and is purged.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait HistoryRetention: Send + Sync {
    /// The oldest instant served at `now`; `None` when the plan keeps history forever.
    async fn served_since(
        &self,
        org: OrganizationId,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;
}

/// Whether API keys may reach an organization. The billing domain answers from the plan
/// (API access is a paid feature); log-in sessions always reach their organizations.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ApiKeyAccess: Send + Sync {
    /// `None` when API keys may reach `org`; otherwise the refusal naming the feature, the plan
    /// and the tier that includes it.
    async fn refusal(&self, org: OrganizationId) -> Result<Option<FeatureNotInPlan>, StoreError>;
}

/// Renders a message into its subject and bodies (templates in the real adapter). Pure: the
/// same mail renders the same way.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait MailRenderer: Send + Sync {
    /// The subject, plain-text and HTML bodies of `mail`.
    fn render(&self, mail: &Mail) -> RenderedMail;
}

/// The durable outbox: messages wait here until a relay delivers them, and stay readable by an
/// operator when no mail server is configured.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Queues a message, due at once.
    async fn queue(&self, mail: OutgoingMail) -> Result<(), StoreError>;

    /// Takes the oldest due message (queued, `next attempt` reached, no live lease) for
    /// `worker` until `lease_until`. MUST hand a message to one worker only, also when several
    /// claim at once; a message whose lease lapsed is due again.
    async fn claim(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<ClaimedMail>, StoreError>;

    /// Marks the message sent and drops its bodies (their links are single-use secrets).
    /// MUST return `false`, changing nothing, unless `worker` still holds it: a message is
    /// marked sent once.
    async fn sent(&self, id: Uuid, worker: &str, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Releases the message for another attempt at `at`, counting this one and recording why.
    /// Changes nothing unless `worker` holds it.
    async fn retry(
        &self,
        id: Uuid,
        worker: &str,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Marks the message failed for good with the server's reason. Changes nothing unless
    /// `worker` holds it.
    async fn failed(
        &self,
        id: Uuid,
        worker: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The latest delivery of the message about `reference` (an invitation's id), if any.
    async fn delivery_of(&self, reference: &str) -> Result<Option<Delivery>, StoreError>;
}

/// Hands a message to a mail server.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MailTransport: Send + Sync {
    /// Sends the message; a 5xx refusal is `Permanent`, anything that may pass `Transient`.
    async fn send(&self, mail: &ClaimedMail) -> Result<(), DeliveryError>;
}

/// Errors of the hashing and token port.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Every hashing slot is taken and the queue is full: retry in a moment. Password hashing
    /// is bounded so that a burst of log-ins cannot take the process's memory.
    #[error("password hashing is saturated")]
    Busy,
    /// Hashing failed.
    #[error("credential crypto failure: {0}")]
    Failed(String),
}

/// Password hashing and token generation.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CredentialCrypto: Send + Sync {
    /// Hashes a password (argon2id in the real adapter). MUST return `Busy` rather than wait
    /// without bound when hashing is saturated.
    async fn hash_password(&self, password: String) -> Result<String, CryptoError>;

    /// Checks a password against a stored hash; a malformed hash is `Ok(false)`. `Busy` as
    /// for hashing.
    async fn verify_password(&self, password: String, hash: String) -> Result<bool, CryptoError>;

    /// Spends as long as a real verification on a missing user, so log-in timing does not
    /// reveal which emails are registered; `Busy` exactly when a real one would be, so
    /// saturation does not reveal them either.
    async fn verify_dummy(&self, password: String) -> Result<(), CryptoError>;

    /// A new random token of at least 256 bits with a visible `kind` prefix.
    fn new_token(&self, kind: &'static str) -> NewSecret;

    /// The digest under which a presented token is stored.
    fn digest(&self, token: &str) -> String;

    /// A short random lower-case suffix for generated slugs.
    fn slug_suffix(&self) -> String;
}
