//! Credentials: sessions and API keys. Both are opaque random bearer tokens, stored only as a
//! digest, and authenticate the same way.

use canopy_kernel::id::{ApiKeyId, OrganizationId, SessionId, UserId};
use chrono::{DateTime, Utc};

use crate::account::ClientInfo;

/// Which kind of token a caller presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A log-in session.
    Session(SessionId),
    /// An API key.
    ApiKey(ApiKeyId),
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// Who.
    pub user_id: UserId,
    /// With which credential.
    pub credential: CredentialKind,
}

/// A credential that authenticated, with when it stops doing so: what a cache of credentials
/// keeps, so an expired session is refused even while it is still cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The caller.
    pub principal: Principal,
    /// When the session or key expires; `None` for a key that never does.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Grant {
    /// Whether the credential still authenticates at `now`.
    pub fn live_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// What a write changed about who may do what, or about what an organization holds, for
/// caches of sessions, keys, memberships and organization reads to drop: a cache MUST NOT
/// serve an entry a change names once it has been told of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantChange {
    /// One person: their record, sessions, keys or memberships.
    User(UserId),
    /// One organization: its name or slug, its members or roles, or its deletion.
    Organization(OrganizationId),
    /// One organization's own records (cloud accounts, invitations, subscription): nobody's
    /// grant, only what the organization's pages and lists read.
    Data(OrganizationId),
    /// Anything (a lost notification channel, an account deletion spanning organizations).
    Everything,
}

/// Told of grant changes other processes made (PostgreSQL `LISTEN/NOTIFY`), and of whether
/// it is being told at all: while the channel is down, nothing may be served from a cache.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait GrantListener: Send + Sync {
    /// Another process changed `change`.
    fn changed(&self, change: GrantChange);
    /// The channel is up (`true`: every later change will be told) or was lost (`false`).
    fn listening(&self, up: bool);
}

/// A freshly issued secret: the plain token goes to the client once, the digest to storage.
pub struct NewSecret {
    /// The token the client presents. Never stored, never logged.
    pub plain: String,
    /// The digest stored and looked up.
    pub digest: String,
    /// A short, non-secret prefix shown in listings.
    pub display_prefix: String,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret")
            .field("display_prefix", &self.display_prefix)
            .finish_non_exhaustive()
    }
}

/// A log-in session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Id.
    pub id: SessionId,
    /// Owner.
    pub user_id: UserId,
    /// Digest of the bearer token.
    pub token_digest: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// The browser or tool and the address that opened it.
    pub client: ClientInfo,
}

/// An API key as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Id.
    pub id: ApiKeyId,
    /// Owner.
    pub user_id: UserId,
    /// Name the user gave it.
    pub name: String,
    /// First characters of the token, to recognise it.
    pub prefix: String,
    /// Digest of the token.
    pub token_digest: String,
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time; a revoked key no longer authenticates.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}
