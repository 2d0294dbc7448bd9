//! What an organization holds, in process: its cloud-account lists and accounts, its member
//! and pending-invitation lists, its subscription and usage, so that a page or a list that
//! reads them (the console's settings pages, the API's lists, the dashboard's account filter)
//! costs no database round trip while nothing changed ([`OrgReadCache`]; the decorators in
//! [`ports`] put it in front of the ports).
//!
//! It is kept true the way the grant cache is (see [`crate::grants`]): the decorators drop
//! what a write through them changed before the write returns; every other write, from this
//! process or another, is told through [`GrantListener`] (PostgreSQL triggers on
//! `cloud_accounts`, `invitations`, `subscriptions` and `memberships`); nothing is served
//! while that channel is down; a fill that raced a change is not kept. Time also changes two
//! answers without any write: an invitation expires. A kept invitation page is served only
//! while every invitation on it is still unexpired, and a kept usage that counts pending
//! invitations only for [`USAGE_WITH_PENDING`].
//!
//! Beside the reads it keeps rendered fragments a caller builds from them (the dashboard's
//! figures), dropped with the organization's other entries and kept [`FRAGMENT_TTL`] at most,
//! since what they also show (metric series) has its own cache and time to live.

mod cloud_orgs;
pub mod ports;

use std::sync::Arc;
use std::time::Duration;

use canopy_billing::{Subscription, Usage};
use canopy_cloud_org::{AccountFilter, CloudAccount, CloudAccountId};
use canopy_kernel::PageRequest;
use canopy_kernel::id::OrganizationId;
use canopy_kernel::page::Page;
use canopy_tenancy::{GrantChange, GrantListener, Invitation, Member, OrgRef};
use chrono::{DateTime, Utc};
use moka::sync::Cache;

use crate::gate::{Gate, cache};

/// How long an entry may be served at most, told of a change or not.
pub const TTL: Duration = Duration::from_secs(60);

/// How long a usage that counts pending invitations is served: one of them may expire.
pub const USAGE_WITH_PENDING: chrono::Duration = chrono::Duration::seconds(5);

/// How long a rendered fragment is served at most.
pub const FRAGMENT_TTL: Duration = Duration::from_secs(10);

/// Entries kept per cache at most (a page, an account, a subscription or a usage each).
const MAX_ENTRIES: u64 = 50_000;

type AccountPage = (OrganizationId, AccountFilter, PageRequest);

/// The caches of organization reads and what decides whether they may be used.
#[derive(Clone)]
pub struct OrgReadCache {
    inner: Arc<Inner>,
}

struct Inner {
    gate: Gate,
    account_pages: Cache<AccountPage, Page<CloudAccount>>,
    accounts: Cache<(OrganizationId, CloudAccountId), CloudAccount>,
    members: Cache<(OrganizationId, PageRequest), Page<Member>>,
    invitations: Cache<(OrganizationId, PageRequest), Page<Invitation>>,
    subscriptions: Cache<OrgRef, Subscription>,
    usage: Cache<OrganizationId, (Usage, DateTime<Utc>)>,
    fragments: Cache<(OrganizationId, String), Arc<str>>,
}

impl std::fmt::Debug for OrgReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgReadCache")
            .field("account_pages", &self.inner.account_pages.entry_count())
            .field("listening", &self.listening())
            .finish()
    }
}

impl OrgReadCache {
    /// A cache that serves nothing, for a database other processes write without telling
    /// (SQLite).
    pub fn off() -> Self {
        Self::new()
    }

    /// A cache for one of several processes on one database: it serves once its
    /// [`GrantListener`] side is told the notification channel is up.
    pub fn shared() -> Self {
        Self::new()
    }

    fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                gate: Gate::default(),
                account_pages: cache(MAX_ENTRIES, TTL),
                accounts: cache(MAX_ENTRIES, TTL),
                members: cache(MAX_ENTRIES, TTL),
                invitations: cache(MAX_ENTRIES, TTL),
                subscriptions: cache(MAX_ENTRIES, TTL),
                usage: cache(MAX_ENTRIES, TTL),
                fragments: cache(MAX_ENTRIES, FRAGMENT_TTL),
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

    /// The fragment kept under `key` for `org`, while serving is allowed.
    pub fn fragment(&self, org: OrganizationId, key: &str) -> Option<Arc<str>> {
        let inner = &self.inner;
        inner.gate.served(&inner.fragments, &(org, key.to_string()))
    }

    /// A mark to take before reading what a fragment is made of.
    pub fn mark(&self) -> u64 {
        self.inner.gate.mark()
    }

    /// Keeps `html` under `key` for `org`, unless a change was told since `mark` (then what
    /// it was made of may already be stale).
    pub fn keep_fragment(&self, org: OrganizationId, key: String, html: Arc<str>, mark: u64) {
        let inner = &self.inner;
        if inner.gate.unchanged_since(mark) {
            inner.fragments.insert((org, key.clone()), html);
            if !inner.gate.unchanged_since(mark) {
                inner.fragments.invalidate(&(org, key));
            }
        }
    }

    /// `outcome`, once what `change` names is dropped.
    fn changed<T>(&self, outcome: T, change: GrantChange) -> T {
        self.drop_changed(change);
        outcome
    }

    /// Drops everything `change` names.
    pub fn drop_changed(&self, change: GrantChange) {
        let inner = &self.inner;
        inner.gate.changed();
        let dropped = match change {
            GrantChange::Organization(org) | GrantChange::Data(org) => inner.drop_organization(org),
            // A person's name or e-mail shows in the member lists they are on.
            GrantChange::User(user) => inner
                .members
                .invalidate_entries_if(move |_, page| page.items.iter().any(|m| m.user_id == user))
                .is_ok(),
            GrantChange::Everything => false,
        };
        if !dropped {
            inner.drop_all();
        }
    }
}

impl Inner {
    fn drop_organization(&self, org: OrganizationId) -> bool {
        self.usage.invalidate(&org);
        [
            self.account_pages
                .invalidate_entries_if(move |k, _| k.0 == org)
                .is_ok(),
            self.accounts
                .invalidate_entries_if(move |k, _| k.0 == org)
                .is_ok(),
            self.members
                .invalidate_entries_if(move |k, _| k.0 == org)
                .is_ok(),
            self.invitations
                .invalidate_entries_if(move |k, _| k.0 == org)
                .is_ok(),
            // Kept by id or by slug: the value says whose it is.
            self.subscriptions
                .invalidate_entries_if(move |_, s| s.organization_id == org)
                .is_ok(),
            self.fragments
                .invalidate_entries_if(move |k, _| k.0 == org)
                .is_ok(),
        ]
        .iter()
        .all(|ok| *ok)
    }

    fn drop_all(&self) {
        self.account_pages.invalidate_all();
        self.accounts.invalidate_all();
        self.members.invalidate_all();
        self.invitations.invalidate_all();
        self.subscriptions.invalidate_all();
        self.usage.invalidate_all();
        self.fragments.invalidate_all();
    }
}

impl GrantListener for OrgReadCache {
    fn changed(&self, change: GrantChange) {
        self.drop_changed(change);
    }

    fn listening(&self, up: bool) {
        self.inner.gate.set_listening(up, || self.inner.drop_all());
    }
}

/// Several listeners told of the same changes: one notification channel per process feeds
/// every cache that writes invalidate.
pub struct Listeners(pub Vec<Arc<dyn GrantListener>>);

impl GrantListener for Listeners {
    fn changed(&self, change: GrantChange) {
        for l in &self.0 {
            l.changed(change);
        }
    }

    fn listening(&self, up: bool) {
        for l in &self.0 {
            l.listening(up);
        }
    }
}

#[cfg(test)]
mod tests;
