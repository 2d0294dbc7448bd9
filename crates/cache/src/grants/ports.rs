//! [`CachedTenancy`]: the tenancy ports that decide who may do what, with [`GrantCache`] in
//! front. Reads that resolve a caller are served from it; every write goes to the store and
//! then drops what it may have changed, whatever its outcome (an error can follow a commit).

use std::sync::Arc;

use async_trait::async_trait;
use canopy_kernel::id::{ApiKeyId, InvitationId, OrganizationId, SessionId, UserId};
use canopy_kernel::page::Page;
use canopy_kernel::{PageRequest, StoreError};
use canopy_tenancy::account::{DeletedAccount, Redemption, SessionInfo, UserToken};
use canopy_tenancy::ports::{
    AnswerInvitationError, CreateUserError, CredentialAccess, CredentialRepository,
    DeleteAccountError, InvitationRepository, InviteError, MembershipChangeError,
    MembershipRepository, NewUser, OrganizationRepository, RedeemError, SlugConflict,
    UserRepository,
};
use canopy_tenancy::user::UserCredentials;
use canopy_tenancy::{
    ApiKey, Email, Grant, GrantChange, Invitation, InvitationView, Member, NewAuditEvent, OrgRef,
    Organization, OrganizationSummary, Role, Session, Slug, TenancyPorts, User,
};
use chrono::{DateTime, Utc};

use super::GrantCache;

/// The five grant-deciding ports of tenancy behind one [`GrantCache`].
pub struct CachedTenancy {
    cache: GrantCache,
    users: Arc<dyn UserRepository>,
    credentials: Arc<dyn CredentialRepository>,
    organizations: Arc<dyn OrganizationRepository>,
    members: Arc<dyn MembershipRepository>,
    invitations: Arc<dyn InvitationRepository>,
}

impl CachedTenancy {
    /// `ports` with users, credentials, organizations, members and invitations served
    /// through `cache`; the other ports as they were.
    pub fn wrap(cache: GrantCache, ports: TenancyPorts) -> TenancyPorts {
        let cached = Arc::new(Self {
            cache,
            users: ports.users.clone(),
            credentials: ports.credentials.clone(),
            organizations: ports.organizations.clone(),
            members: ports.members.clone(),
            invitations: ports.invitations.clone(),
        });
        TenancyPorts {
            users: cached.clone(),
            credentials: cached.clone(),
            organizations: cached.clone(),
            members: cached.clone(),
            invitations: cached,
            ..ports
        }
    }

    fn changed<T>(&self, outcome: T, change: GrantChange) -> T {
        self.cache.drop_changed(change);
        outcome
    }

    async fn grant(&self, digest: &str, now: DateTime<Utc>) -> Result<Option<Grant>, StoreError> {
        if let Some(grant) = self
            .cache
            .inner
            .gate
            .served(&self.cache.inner.credentials, digest)
        {
            return Ok(grant.live_at(now).then_some(grant));
        }
        self.cache
            .inner
            .gate
            .filled(
                &self.cache.inner.credentials,
                digest.to_string(),
                self.credentials.authenticate(digest, now),
                |g: &Option<Grant>| *g,
            )
            .await
    }

    async fn membership(
        &self,
        org: &OrgRef,
        user: UserId,
    ) -> Result<Option<(Organization, Role)>, StoreError> {
        let key = (user, org.clone());
        if let Some(found) = self
            .cache
            .inner
            .gate
            .served(&self.cache.inner.memberships, &key)
        {
            return Ok(found);
        }
        self.cache
            .inner
            .gate
            .filled(
                &self.cache.inner.memberships,
                key,
                self.organizations.find_for_member(org, user),
                |m: &Option<(Organization, Role)>| Some(m.clone()),
            )
            .await
    }
}

#[async_trait]
impl UserRepository for CachedTenancy {
    async fn create_with_organization(
        &self,
        user: NewUser,
        organization: Organization,
        audit: NewAuditEvent,
    ) -> Result<(), CreateUserError> {
        let change = GrantChange::User(user.user.id);
        let outcome = self
            .users
            .create_with_organization(user, organization, audit)
            .await;
        self.changed(outcome, change)
    }

    async fn find_credentials(&self, email: &Email) -> Result<Option<UserCredentials>, StoreError> {
        self.users.find_credentials(email).await
    }

    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        if let Some(user) = self.cache.inner.gate.served(&self.cache.inner.users, &id) {
            return Ok(Some(user));
        }
        self.cache
            .inner
            .gate
            .filled(
                &self.cache.inner.users,
                id,
                self.users.get(id),
                |u: &Option<User>| u.clone(),
            )
            .await
    }

    async fn set_active_organization(
        &self,
        id: UserId,
        organization: Option<OrganizationId>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let outcome = self
            .users
            .set_active_organization(id, organization, now)
            .await;
        self.changed(outcome, GrantChange::User(id))
    }

    async fn issue_token(&self, token: UserToken) -> Result<(), StoreError> {
        self.users.issue_token(token).await
    }

    async fn redeem_token(
        &self,
        digest: &str,
        redemption: Redemption,
        now: DateTime<Utc>,
    ) -> Result<(User, Email), RedeemError> {
        let outcome = self.users.redeem_token(digest, redemption, now).await;
        // The token names its user only once redeemed; a refusal changed nobody.
        let change = match &outcome {
            Ok((user, _)) => GrantChange::User(user.id),
            Err(RedeemError::Store(_)) => GrantChange::Everything,
            Err(_) => return outcome,
        };
        self.changed(outcome, change)
    }

    async fn set_password(
        &self,
        id: UserId,
        password_hash: String,
        keep: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let outcome = self.users.set_password(id, password_hash, keep, now).await;
        self.changed(outcome, GrantChange::User(id))
    }

    async fn mark_verified(&self, id: UserId, now: DateTime<Utc>) -> Result<(), StoreError> {
        let outcome = self.users.mark_verified(id, now).await;
        self.changed(outcome, GrantChange::User(id))
    }

    async fn delete_account(
        &self,
        id: UserId,
        now: DateTime<Utc>,
    ) -> Result<Option<DeletedAccount>, DeleteAccountError> {
        // Other members' lists and counts change with every organization it touches.
        let outcome = self.users.delete_account(id, now).await;
        self.changed(outcome, GrantChange::Everything)
    }
}

#[async_trait]
impl CredentialRepository for CachedTenancy {
    async fn insert_session(&self, session: Session) -> Result<(), StoreError> {
        self.credentials.insert_session(session).await
    }

    async fn authenticate(
        &self,
        digest: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>, StoreError> {
        self.grant(digest, now).await
    }

    async fn delete_session(&self, digest: &str) -> Result<(), StoreError> {
        let outcome = self.credentials.delete_session(digest).await;
        self.cache.drop_credential(digest);
        outcome
    }

    async fn list_sessions(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        self.credentials.list_sessions(user, now).await
    }

    async fn delete_user_session(&self, user: UserId, id: SessionId) -> Result<bool, StoreError> {
        let outcome = self.credentials.delete_user_session(user, id).await;
        self.changed(outcome, GrantChange::User(user))
    }

    async fn delete_other_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
    ) -> Result<u64, StoreError> {
        let outcome = self.credentials.delete_other_sessions(user, keep).await;
        self.changed(outcome, GrantChange::User(user))
    }

    async fn touch_session(&self, id: SessionId, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.credentials.touch_session(id, now).await
    }

    async fn insert_api_key(&self, key: ApiKey) -> Result<(), StoreError> {
        self.credentials.insert_api_key(key).await
    }

    async fn list_api_keys(&self, user: UserId) -> Result<Vec<ApiKey>, StoreError> {
        self.credentials.list_api_keys(user).await
    }

    async fn revoke_api_key(
        &self,
        user: UserId,
        id: ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let outcome = self.credentials.revoke_api_key(user, id, now).await;
        self.changed(outcome, GrantChange::User(user))
    }
}

#[async_trait]
impl OrganizationRepository for CachedTenancy {
    async fn create(
        &self,
        organization: Organization,
        owner: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), SlugConflict> {
        let id = organization.id;
        let outcome = self.organizations.create(organization, owner, audit).await;
        self.cache.drop_changed(GrantChange::Organization(id));
        self.changed(outcome, GrantChange::User(owner))
    }

    async fn find_for_member(
        &self,
        org: &OrgRef,
        user: UserId,
    ) -> Result<Option<(Organization, Role)>, StoreError> {
        self.membership(org, user).await
    }

    async fn find_for_credential(
        &self,
        digest: &str,
        now: DateTime<Utc>,
        org: &OrgRef,
    ) -> Result<Option<CredentialAccess>, StoreError> {
        if !self.cache.listening() {
            // One round trip for both, as without a cache.
            return self
                .organizations
                .find_for_credential(digest, now, org)
                .await;
        }
        let Some(grant) = self.grant(digest, now).await? else {
            return Ok(None);
        };
        let membership = self.membership(org, grant.principal.user_id).await?;
        Ok(Some((grant.principal, membership)))
    }

    async fn list_for_user(&self, user: UserId) -> Result<Vec<OrganizationSummary>, StoreError> {
        let lists = &self.cache.inner.organizations_of;
        if let Some(list) = self.cache.inner.gate.served(lists, &user) {
            return Ok(list.as_ref().clone());
        }
        self.cache
            .inner
            .gate
            .filled(
                lists,
                user,
                self.organizations.list_for_user(user),
                |list: &Vec<OrganizationSummary>| Some(Arc::new(list.clone())),
            )
            .await
    }

    async fn update(
        &self,
        id: OrganizationId,
        patch: canopy_tenancy::organization::OrganizationPatch,
        now: DateTime<Utc>,
        audit: NewAuditEvent,
    ) -> Result<Organization, SlugConflict> {
        let outcome = self.organizations.update(id, patch, now, audit).await;
        self.changed(outcome, GrantChange::Organization(id))
    }

    async fn delete(&self, id: OrganizationId) -> Result<bool, StoreError> {
        let outcome = self.organizations.delete(id).await;
        self.changed(outcome, GrantChange::Organization(id))
    }

    async fn slug_exists(&self, slug: &Slug) -> Result<bool, StoreError> {
        self.organizations.slug_exists(slug).await
    }
}

#[async_trait]
impl MembershipRepository for CachedTenancy {
    async fn list(
        &self,
        org: OrganizationId,
        page: PageRequest,
    ) -> Result<Page<Member>, StoreError> {
        self.members.list(org, page).await
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
        self.changed(outcome, GrantChange::Organization(org))
    }

    async fn remove(
        &self,
        org: OrganizationId,
        user: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), MembershipChangeError> {
        let outcome = self.members.remove(org, user, audit).await;
        self.cache.drop_changed(GrantChange::User(user));
        self.changed(outcome, GrantChange::Organization(org))
    }

    async fn transfer_ownership(
        &self,
        org: OrganizationId,
        from: UserId,
        to: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), MembershipChangeError> {
        let outcome = self.members.transfer_ownership(org, from, to, audit).await;
        self.changed(outcome, GrantChange::Organization(org))
    }
}

#[async_trait]
impl InvitationRepository for CachedTenancy {
    async fn create_replacing(
        &self,
        invitation: Invitation,
        audit: NewAuditEvent,
    ) -> Result<(), InviteError> {
        self.invitations.create_replacing(invitation, audit).await
    }

    async fn list_pending(
        &self,
        org: OrganizationId,
        now: DateTime<Utc>,
        page: PageRequest,
    ) -> Result<Page<Invitation>, StoreError> {
        self.invitations.list_pending(org, now, page).await
    }

    async fn cancel(
        &self,
        org: OrganizationId,
        id: InvitationId,
        audit: NewAuditEvent,
    ) -> Result<bool, StoreError> {
        self.invitations.cancel(org, id, audit).await
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
        // The other members' lists count one more member.
        if let Ok(member) = &outcome {
            self.cache
                .drop_changed(GrantChange::Organization(member.organization_id));
        }
        self.changed(outcome, GrantChange::User(user))
    }

    async fn reject(
        &self,
        id: InvitationId,
        audit: NewAuditEvent,
    ) -> Result<(), AnswerInvitationError> {
        self.invitations.reject(id, audit).await
    }
}
