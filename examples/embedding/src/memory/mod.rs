//! One in-memory database behind every tenancy and billing port (the port implementations are
//! in `tenancy.rs`, `logs.rs`, `mail.rs` and `billing.rs`): what an embedder writes in
//! place of `canopy-store`. A single mutex makes each method atomic, which is what the ports'
//! contracts ask of a transaction (the last owner stays, plan limits hold, an invitation is
//! accepted once).

use std::sync::{Arc, Mutex, MutexGuard};

use canopy_billing::{Subscription, Usage};
use canopy_kernel::id::{OrganizationId, UserId};
use canopy_kernel::page::Page;
use canopy_kernel::{LimitedResource, PageRequest, PlanLimitExceeded};
use canopy_tenancy::mail::OutgoingMail;
use canopy_tenancy::{
    ApiKey, AuditEvent, CredentialKind, Grant, Invitation, InvitationStatus, InvitationView,
    Member, OrgRef, Organization, Principal, Role, Session, Slug, User,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A membership row: the port's `Member` is this joined with the user.
#[derive(Debug, Clone)]
struct Membership {
    /// Time-ordered id, the pagination key.
    id: Uuid,
    org: OrganizationId,
    user: UserId,
    role: Role,
    joined_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Db {
    users: Vec<(User, String)>,
    sessions: Vec<Session>,
    api_keys: Vec<ApiKey>,
    organizations: Vec<Organization>,
    memberships: Vec<Membership>,
    invitations: Vec<Invitation>,
    audit: Vec<AuditEvent>,
    subscriptions: Vec<Subscription>,
    outbox: Vec<Queued>,
    /// Single-use tokens with when they were used (or voided).
    tokens: Vec<(
        canopy_tenancy::account::UserToken,
        Option<chrono::DateTime<chrono::Utc>>,
    )>,
    security: Vec<canopy_tenancy::account::SecurityEvent>,
}

/// A message in the in-memory outbox with its delivery state.
#[derive(Debug, Clone)]
struct Queued {
    mail: OutgoingMail,
    attempts: u32,
    next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    lease: Option<(String, chrono::DateTime<chrono::Utc>)>,
    sent_at: Option<chrono::DateTime<chrono::Utc>>,
    failed_at: Option<chrono::DateTime<chrono::Utc>>,
    last_error: Option<String>,
}

/// The in-memory database; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Memory(Arc<Mutex<Db>>);

impl Memory {
    fn db(&self) -> MutexGuard<'_, Db> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every message queued in the outbox, oldest first.
    pub fn outbox(&self) -> Vec<OutgoingMail> {
        self.db().outbox.iter().map(|q| q.mail.clone()).collect()
    }
}

/// One page of `rows` (already in the listing's order) after the cursor.
pub(crate) fn page_of<T>(rows: Vec<T>, page: PageRequest, key: impl Fn(&T) -> Uuid) -> Page<T> {
    let start = match page.after {
        Some(after) => rows
            .iter()
            .position(|r| key(r) == after.0)
            .map_or(rows.len(), |i| i + 1),
        None => 0,
    };
    let rows: Vec<T> = rows
        .into_iter()
        .skip(start)
        .take(page.limit as usize + 1)
        .collect();
    Page::from_overfetch(rows, page.limit, key)
}

impl Db {
    fn org(&self, reference: &OrgRef) -> Option<&Organization> {
        self.organizations.iter().find(|o| match reference {
            OrgRef::Id(id) => o.id == *id,
            OrgRef::Slug(slug) => o.slug.as_str() == slug,
        })
    }

    fn slug_taken(&self, slug: &Slug, except: Option<OrganizationId>) -> bool {
        self.organizations
            .iter()
            .any(|o| o.slug == *slug && Some(o.id) != except)
    }

    fn member(&self, org: OrganizationId, user: UserId) -> Option<Member> {
        let m = self
            .memberships
            .iter()
            .find(|m| m.org == org && m.user == user)?;
        self.member_of(m)
    }

    fn member_of(&self, m: &Membership) -> Option<Member> {
        let (user, _) = self.users.iter().find(|(u, _)| u.id == m.user)?;
        Some(Member {
            organization_id: m.org,
            user_id: m.user,
            name: user.name.clone(),
            email: user.email.clone(),
            role: m.role,
            joined_at: m.joined_at,
        })
    }

    fn owners(&self, org: OrganizationId) -> usize {
        self.memberships
            .iter()
            .filter(|m| m.org == org && m.role == Role::Owner)
            .count()
    }

    fn add_organization(&mut self, organization: Organization, owner: UserId) {
        self.subscriptions
            .push(Subscription::free(organization.id, organization.created_at));
        self.memberships.push(Membership {
            id: Uuid::now_v7(),
            org: organization.id,
            user: owner,
            role: Role::Owner,
            joined_at: organization.created_at,
        });
        self.organizations.push(organization);
    }

    fn usage(&self, org: OrganizationId, now: DateTime<Utc>) -> Usage {
        Usage {
            // This embedder connects no cloud accounts.
            cloud_accounts: 0,
            members: self.memberships.iter().filter(|m| m.org == org).count() as u64,
            pending_invitations: self
                .invitations
                .iter()
                .filter(|i| {
                    i.organization_id == org
                        && i.status == InvitationStatus::Pending
                        && !i.is_expired(now)
                })
                .count() as u64,
        }
    }

    /// The plan's room for one more team member, counted now.
    fn room_for_member(
        &self,
        org: OrganizationId,
        now: DateTime<Utc>,
    ) -> Result<(), PlanLimitExceeded> {
        let terms = self
            .subscriptions
            .iter()
            .find(|s| s.organization_id == org)
            .cloned()
            .unwrap_or_else(|| Subscription::free(org, now))
            .terms(now);
        let used = self.usage(org, now).count(LimitedResource::TeamMembers);
        terms.room_for_one(LimitedResource::TeamMembers, used)
    }

    fn view(&self, invitation: &Invitation) -> Option<InvitationView> {
        let org = self.org(&OrgRef::Id(invitation.organization_id))?;
        Some(InvitationView {
            invitation: invitation.clone(),
            organization_name: org.name.clone(),
            organization_slug: org.slug.clone(),
            invited_by_name: self
                .users
                .iter()
                .find(|(u, _)| u.id == invitation.invited_by)
                .map(|(u, _)| u.name.clone())
                .unwrap_or_default(),
        })
    }

    fn grant(&self, digest: &str, now: DateTime<Utc>) -> Option<Grant> {
        if let Some(s) = self
            .sessions
            .iter()
            .find(|s| s.token_digest == digest && s.expires_at > now)
        {
            return Some(Grant {
                principal: Principal {
                    user_id: s.user_id,
                    credential: CredentialKind::Session(s.id),
                },
                expires_at: Some(s.expires_at),
            });
        }
        self.api_keys
            .iter()
            .find(|k| {
                k.token_digest == digest
                    && k.revoked_at.is_none()
                    && k.expires_at.is_none_or(|e| e > now)
            })
            .map(|k| Grant {
                principal: Principal {
                    user_id: k.user_id,
                    credential: CredentialKind::ApiKey(k.id),
                },
                expires_at: k.expires_at,
            })
    }

    fn membership_of(&self, reference: &OrgRef, user: UserId) -> Option<(Organization, Role)> {
        let org = self.org(reference)?;
        let m = self
            .memberships
            .iter()
            .find(|m| m.org == org.id && m.user == user)?;
        Some((org.clone(), m.role))
    }
}

mod billing;
mod deletion;
mod logs;
mod mail;
mod tenancy;
