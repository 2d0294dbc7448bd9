//! The ports whose reads [`OrgReadCache`] keeps, with the cache in front: cloud accounts,
//! subscriptions, memberships and invitations. Reads are served from it; every write goes to
//! the store and then drops what it may have changed, whatever its outcome (an error can
//! follow a commit).

use std::sync::Arc;

use async_trait::async_trait;
use canopy_billing::ports::{ChangeSubscriptionError, SubscriptionRepository};
use canopy_billing::{LegacyCandidate, LegacyMove, SubscribedTier, Subscription, Usage};
use canopy_cloud_org::ports::{CloudAccountRepository, ConnectError};
use canopy_cloud_org::{AccountFilter, CloudAccount, CloudAccountId, HealthCheck, Provider};
use canopy_kernel::id::{InvitationId, OrganizationId, UserId};
use canopy_kernel::page::Page;
use canopy_kernel::{PageRequest, StoreError};
use canopy_tenancy::ports::{
    AnswerInvitationError, InvitationRepository, InviteError, MembershipChangeError,
    MembershipRepository,
};
use canopy_tenancy::{
    Email, GrantChange, Invitation, InvitationView, Member, NewAuditEvent, OrgRef, Role,
    TenancyPorts,
};
use chrono::{DateTime, Utc};

use super::{OrgReadCache, USAGE_WITH_PENDING};

impl OrgReadCache {
    /// `ports` with the member and invitation lists served through this cache.
    pub fn wrap_tenancy(&self, ports: TenancyPorts) -> TenancyPorts {
        let team = Arc::new(CachedTeam {
            cache: self.clone(),
            members: ports.members.clone(),
            invitations: ports.invitations.clone(),
        });
        TenancyPorts {
            members: team.clone(),
            invitations: team,
            ..ports
        }
    }

    /// `accounts` with its lists and accounts served through this cache.
    pub fn wrap_accounts(
        &self,
        accounts: Arc<dyn CloudAccountRepository>,
    ) -> Arc<dyn CloudAccountRepository> {
        Arc::new(CachedAccounts {
            cache: self.clone(),
            accounts,
        })
    }

    /// `subscriptions` with subscriptions and usage served through this cache.
    pub fn wrap_subscriptions(
        &self,
        subscriptions: Arc<dyn SubscriptionRepository>,
    ) -> Arc<dyn SubscriptionRepository> {
        Arc::new(CachedSubscriptions {
            cache: self.clone(),
            subscriptions,
        })
    }
}

/// Cloud accounts through the cache.
struct CachedAccounts {
    cache: OrgReadCache,
    accounts: Arc<dyn CloudAccountRepository>,
}

#[async_trait]
impl CloudAccountRepository for CachedAccounts {
    async fn create(
        &self,
        account: CloudAccount,
        audit: NewAuditEvent,
    ) -> Result<(), ConnectError> {
        let change = GrantChange::Data(account.organization_id);
        let outcome = self.accounts.create(account, audit).await;
        self.cache.changed(outcome, change)
    }

    async fn list(
        &self,
        org: OrganizationId,
        filter: &AccountFilter,
        page: PageRequest,
    ) -> Result<Page<CloudAccount>, StoreError> {
        let inner = &self.cache.inner;
        let key = (org, filter.clone(), page);
        if let Some(found) = inner.gate.served(&inner.account_pages, &key) {
            return Ok(found);
        }
        inner
            .gate
            .filled(
                &inner.account_pages,
                key,
                self.accounts.list(org, filter, page),
                |p: &Page<CloudAccount>| Some(p.clone()),
            )
            .await
    }

    async fn get(
        &self,
        org: OrganizationId,
        id: CloudAccountId,
    ) -> Result<Option<CloudAccount>, StoreError> {
        let inner = &self.cache.inner;
        if let Some(found) = inner.gate.served(&inner.accounts, &(org, id)) {
            return Ok(Some(found));
        }
        inner
            .gate
            .filled(
                &inner.accounts,
                (org, id),
                self.accounts.get(org, id),
                Option::clone,
            )
            .await
    }

    async fn find_by_key(
        &self,
        org: OrganizationId,
        provider: Provider,
        key: &str,
    ) -> Result<Option<CloudAccount>, StoreError> {
        self.accounts.find_by_key(org, provider, key).await
    }

    async fn update(
        &self,
        account: CloudAccount,
        audit: NewAuditEvent,
    ) -> Result<Option<CloudAccount>, StoreError> {
        let change = GrantChange::Data(account.organization_id);
        let outcome = self.accounts.update(account, audit).await;
        self.cache.changed(outcome, change)
    }

    async fn delete(
        &self,
        org: OrganizationId,
        id: CloudAccountId,
        audit: NewAuditEvent,
    ) -> Result<bool, StoreError> {
        let outcome = self.accounts.delete(org, id, audit).await;
        self.cache.changed(outcome, GrantChange::Data(org))
    }

    async fn record_check(
        &self,
        org: OrganizationId,
        check: HealthCheck,
    ) -> Result<Option<CloudAccount>, StoreError> {
        let outcome = self.accounts.record_check(org, check).await;
        self.cache.changed(outcome, GrantChange::Data(org))
    }

    async fn health(
        &self,
        org: OrganizationId,
        id: CloudAccountId,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<HealthCheck>, StoreError> {
        self.accounts.health(org, id, since, limit).await
    }
}

/// Subscriptions and usage through the cache.
struct CachedSubscriptions {
    cache: OrgReadCache,
    subscriptions: Arc<dyn SubscriptionRepository>,
}

#[async_trait]
impl SubscriptionRepository for CachedSubscriptions {
    async fn get(&self, org: &OrgRef) -> Result<Option<Subscription>, StoreError> {
        let inner = &self.cache.inner;
        if let Some(found) = inner.gate.served(&inner.subscriptions, org) {
            return Ok(Some(found));
        }
        inner
            .gate
            .filled(
                &inner.subscriptions,
                org.clone(),
                self.subscriptions.get(org),
                Option::clone,
            )
            .await
    }

    async fn usage(&self, org: OrganizationId, now: DateTime<Utc>) -> Result<Usage, StoreError> {
        let inner = &self.cache.inner;
        if let Some((usage, at)) = inner.gate.served(&inner.usage, &org)
            && (usage.pending_invitations == 0 || (at <= now && now - at < USAGE_WITH_PENDING))
        {
            return Ok(usage);
        }
        inner
            .gate
            .filled(
                &inner.usage,
                org,
                self.subscriptions.usage(org, now),
                |u: &Usage| Some((*u, now)),
            )
            .await
    }

    async fn change(
        &self,
        next: Subscription,
        expected: SubscribedTier,
        now: DateTime<Utc>,
        audit: NewAuditEvent,
    ) -> Result<Subscription, ChangeSubscriptionError> {
        let change = GrantChange::Data(next.organization_id);
        let outcome = self.subscriptions.change(next, expected, now, audit).await;
        self.cache.changed(outcome, change)
    }

    async fn legacy_candidates(&self) -> Result<Vec<LegacyCandidate>, StoreError> {
        self.subscriptions.legacy_candidates().await
    }

    async fn apply_legacy_moves(
        &self,
        moves: &[LegacyMove],
        now: DateTime<Utc>,
        audits: Vec<NewAuditEvent>,
    ) -> Result<(), StoreError> {
        let outcome = self
            .subscriptions
            .apply_legacy_moves(moves, now, audits)
            .await;
        for m in moves {
            self.cache
                .drop_changed(GrantChange::Data(m.organization_id));
        }
        outcome
    }

    async fn all(&self) -> Result<Vec<Subscription>, StoreError> {
        self.subscriptions.all().await
    }
}

/// Member and invitation lists through the cache.
pub(super) struct CachedTeam {
    pub(super) cache: OrgReadCache,
    pub(super) members: Arc<dyn MembershipRepository>,
    pub(super) invitations: Arc<dyn InvitationRepository>,
}

#[async_trait]
impl MembershipRepository for CachedTeam {
    async fn list(
        &self,
        org: OrganizationId,
        page: PageRequest,
    ) -> Result<Page<Member>, StoreError> {
        let inner = &self.cache.inner;
        if let Some(found) = inner.gate.served(&inner.members, &(org, page)) {
            return Ok(found);
        }
        inner
            .gate
            .filled(
                &inner.members,
                (org, page),
                self.members.list(org, page),
                |p: &Page<Member>| Some(p.clone()),
            )
            .await
    }

    async fn get(&self, org: OrganizationId, user: UserId) -> Result<Option<Member>, StoreError> {
        self.members.get(org, user).await
    }

    async fn change_role(
        &self,
        org: OrganizationId,
        user: UserId,
        role: Role,
        audit: NewAuditEvent,
    ) -> Result<Member, MembershipChangeError> {
        let outcome = self.members.change_role(org, user, role, audit).await;
        self.cache.changed(outcome, GrantChange::Organization(org))
    }

    async fn remove(
        &self,
        org: OrganizationId,
        user: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), MembershipChangeError> {
        let outcome = self.members.remove(org, user, audit).await;
        self.cache.changed(outcome, GrantChange::Organization(org))
    }

    async fn transfer_ownership(
        &self,
        org: OrganizationId,
        from: UserId,
        to: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), MembershipChangeError> {
        let outcome = self.members.transfer_ownership(org, from, to, audit).await;
        self.cache.changed(outcome, GrantChange::Organization(org))
    }
}

#[async_trait]
impl InvitationRepository for CachedTeam {
    async fn create_replacing(
        &self,
        invitation: Invitation,
        audit: NewAuditEvent,
    ) -> Result<(), InviteError> {
        let change = GrantChange::Data(invitation.organization_id);
        let outcome = self.invitations.create_replacing(invitation, audit).await;
        self.cache.changed(outcome, change)
    }

    async fn list_pending(
        &self,
        org: OrganizationId,
        now: DateTime<Utc>,
        page: PageRequest,
    ) -> Result<Page<Invitation>, StoreError> {
        let inner = &self.cache.inner;
        if let Some(found) = inner.gate.served(&inner.invitations, &(org, page))
            && found.items.iter().all(|i| i.expires_at > now)
        {
            return Ok(found);
        }
        inner
            .gate
            .filled(
                &inner.invitations,
                (org, page),
                self.invitations.list_pending(org, now, page),
                |p: &Page<Invitation>| Some(p.clone()),
            )
            .await
    }

    async fn cancel(
        &self,
        org: OrganizationId,
        id: InvitationId,
        audit: NewAuditEvent,
    ) -> Result<bool, StoreError> {
        let outcome = self.invitations.cancel(org, id, audit).await;
        self.cache.changed(outcome, GrantChange::Data(org))
    }

    async fn list_for_email(
        &self,
        email: &Email,
        now: DateTime<Utc>,
    ) -> Result<Vec<InvitationView>, StoreError> {
        self.invitations.list_for_email(email, now).await
    }

    async fn get(&self, id: InvitationId) -> Result<Option<InvitationView>, StoreError> {
        self.invitations.get(id).await
    }

    async fn accept(
        &self,
        id: InvitationId,
        user: UserId,
        now: DateTime<Utc>,
        audit: NewAuditEvent,
    ) -> Result<Member, AnswerInvitationError> {
        let outcome = self.invitations.accept(id, user, now, audit).await;
        // Refused, it names no organization: which one's lists it touched is unknown.
        let change = outcome.as_ref().map_or(GrantChange::Everything, |m| {
            GrantChange::Organization(m.organization_id)
        });
        self.cache.changed(outcome, change)
    }

    async fn reject(
        &self,
        id: InvitationId,
        audit: NewAuditEvent,
    ) -> Result<(), AnswerInvitationError> {
        let outcome = self.invitations.reject(id, audit).await;
        self.cache.changed(outcome, GrantChange::Everything)
    }
}
