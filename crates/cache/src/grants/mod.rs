//! Who may do what, in process: sessions and API keys by digest, users, their organization
//! lists and their memberships, so an authenticated request resolves its caller without a
//! database round trip ([`CachedTenancy`] puts the cache in front of the tenancy ports).
//!
//! Revocation stays immediate:
//! - every write through the ports drops what it changed, on this process, before it returns;
//! - every other process is told through [`GrantListener`] (PostgreSQL `LISTEN/NOTIFY`, fed by
//!   triggers on the tables, so a write from anywhere is told), and drops it on arrival;
//! - while that channel is down nothing is served from or put into the cache, and when it
//!   comes back everything kept before is dropped (what was said meanwhile is lost);
//! - a fill that raced a change is not kept: each fill checks, after putting its entry in, that
//!   no change was told since it started reading, and takes the entry out again if one was.
//!
//! Entries also expire after [`TTL`], a bound on any staleness nothing above foresaw. On
//! SQLite the cache is [`GrantCache::off`]: another process (an operator's `canopy admin`)
//! writes the same file with no channel to tell this one.

mod ports;

use std::sync::Arc;
use std::time::Duration;

use canopy_kernel::id::UserId;
use canopy_tenancy::{
    Grant, GrantChange, GrantListener, OrgRef, Organization, OrganizationSummary, Role, User,
};
use moka::sync::Cache;

use crate::gate::{Gate, cache};

pub use ports::CachedTenancy;

/// How long an entry may be served at most, told of a change or not.
pub const TTL: Duration = Duration::from_secs(60);

/// Entries kept per cache at most (a credential, a user, a list or a membership each).
const MAX_ENTRIES: u64 = 100_000;

type Membership = Option<(Organization, Role)>;

/// The caches and what decides whether they may be used.
#[derive(Clone)]
pub struct GrantCache {
    inner: Arc<Inner>,
}

struct Inner {
    gate: Gate,
    credentials: Cache<String, Grant>,
    users: Cache<UserId, User>,
    organizations_of: Cache<UserId, Arc<Vec<OrganizationSummary>>>,
    memberships: Cache<(UserId, OrgRef), Membership>,
}

impl std::fmt::Debug for GrantCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantCache")
            .field("credentials", &self.inner.credentials.entry_count())
            .field("listening", &self.listening())
            .finish()
    }
}

impl GrantCache {
    /// A cache that serves nothing: for a database other processes write without telling
    /// (SQLite, where `canopy admin` or a worker change it from another process), so every
    /// lookup reads the store.
    pub fn off() -> Self {
        Self::new()
    }

    /// A cache for one of several processes on one database: it serves nothing until its
    /// [`GrantListener`] side is told the notification channel is up.
    pub fn shared() -> Self {
        Self::new()
    }

    fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                gate: Gate::default(),
                credentials: cache(MAX_ENTRIES, TTL),
                users: cache(MAX_ENTRIES, TTL),
                organizations_of: cache(MAX_ENTRIES, TTL),
                memberships: cache(MAX_ENTRIES, TTL),
            }),
        }
    }

    /// Whether entries may be served.
    pub fn listening(&self) -> bool {
        self.inner.gate.listening()
    }

    /// Lookups answered from the cache and lookups that read the store, since start.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        self.inner.gate.hits_and_misses()
    }

    /// Drops everything `change` names.
    pub fn drop_changed(&self, change: GrantChange) {
        let inner = &self.inner;
        if matches!(change, GrantChange::Data(_)) {
            // An organization's records decide nobody's grant.
            return;
        }
        inner.gate.changed();
        let dropped = match change {
            GrantChange::User(user) => {
                inner.users.invalidate(&user);
                inner.organizations_of.invalidate(&user);
                inner
                    .credentials
                    .invalidate_entries_if(move |_, g| g.principal.user_id == user)
                    .and(
                        inner
                            .memberships
                            .invalidate_entries_if(move |k, _| k.0 == user),
                    )
                    .is_ok()
            }
            GrantChange::Organization(org) => {
                // A negative answer may be about a slug this organization has now.
                let memberships = inner
                    .memberships
                    .invalidate_entries_if(move |_, m| m.as_ref().is_none_or(|(o, _)| o.id == org));
                let lists = inner
                    .organizations_of
                    .invalidate_entries_if(move |_, list| {
                        list.iter().any(|s| s.organization.id == org)
                    });
                memberships.and(lists).is_ok()
            }
            GrantChange::Data(_) | GrantChange::Everything => false,
        };
        if !dropped {
            inner.drop_all();
        }
    }

    /// Drops one credential: a log-out names its own token.
    fn drop_credential(&self, digest: &str) {
        self.inner.gate.changed();
        self.inner.credentials.invalidate(digest);
    }
}

impl Inner {
    fn drop_all(&self) {
        self.credentials.invalidate_all();
        self.users.invalidate_all();
        self.organizations_of.invalidate_all();
        self.memberships.invalidate_all();
    }
}

impl GrantListener for GrantCache {
    fn changed(&self, change: GrantChange) {
        self.drop_changed(change);
    }

    fn listening(&self, up: bool) {
        self.inner.gate.set_listening(up, || self.inner.drop_all());
    }
}
