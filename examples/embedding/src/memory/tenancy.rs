//! The tenancy ports over the in-memory database.

use async_trait::async_trait;
use canopy_kernel::id::{ApiKeyId, InvitationId, OrganizationId, SessionId, UserId};
use canopy_kernel::page::Page;
use canopy_kernel::{PageRequest, StoreError};
use canopy_tenancy::account::{DeletedAccount, Redemption, SessionInfo, UserToken};
use canopy_tenancy::organization::OrganizationPatch;
use canopy_tenancy::ports::{
    AnswerInvitationError, CreateUserError, CredentialAccess, CredentialRepository,
    DeleteAccountError, InvitationRepository, InviteError, MembershipChangeError,
    MembershipRepository, NewUser, OrganizationRepository, RedeemError, SlugConflict,
    UserRepository,
};
use canopy_tenancy::user::UserCredentials;
use canopy_tenancy::{
    ApiKey, Email, Grant, Invitation, InvitationStatus, InvitationView, Member, NewAuditEvent,
    OrgRef, Organization, OrganizationSummary, Role, Session, Slug, User,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Db, Membership, Memory, page_of};

#[async_trait]
impl UserRepository for Memory {
    async fn create_with_organization(
        &self,
        new: NewUser,
        organization: Organization,
        audit: NewAuditEvent,
    ) -> Result<(), CreateUserError> {
        let mut db = self.db();
        if db.users.iter().any(|(u, _)| u.email == new.user.email) {
            return Err(CreateUserError::EmailTaken);
        }
        if db.slug_taken(&organization.slug, None) {
            return Err(CreateUserError::SlugTaken);
        }
        let owner = new.user.id;
        db.users.push((new.user, new.password_hash));
        db.add_organization(organization, owner);
        db.audit.push(audit);
        Ok(())
    }

    async fn find_credentials(&self, email: &Email) -> Result<Option<UserCredentials>, StoreError> {
        Ok(self
            .db()
            .users
            .iter()
            .find(|(u, _)| u.email == *email)
            .map(|(user, hash)| UserCredentials {
                user: user.clone(),
                password_hash: hash.clone(),
            }))
    }

    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self
            .db()
            .users
            .iter()
            .find(|(u, _)| u.id == id)
            .map(|(u, _)| u.clone()))
    }

    async fn set_active_organization(
        &self,
        id: UserId,
        organization: Option<OrganizationId>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if let Some((user, _)) = self.db().users.iter_mut().find(|(u, _)| u.id == id) {
            user.active_organization_id = organization;
            user.updated_at = now;
        }
        Ok(())
    }

    async fn issue_token(&self, token: UserToken) -> Result<(), StoreError> {
        let mut db = self.db();
        for (t, used) in db.tokens.iter_mut() {
            if t.user_id == token.user_id && t.purpose == token.purpose && used.is_none() {
                *used = Some(token.created_at);
            }
        }
        db.tokens.push((token, None));
        Ok(())
    }

    async fn redeem_token(
        &self,
        digest: &str,
        redemption: Redemption,
        now: DateTime<Utc>,
    ) -> Result<(User, Email), RedeemError> {
        // One lock over the check and the change: the in-memory transaction.
        let mut db = self.db();
        let purpose = redemption.purpose();
        let Some(index) = db.tokens.iter().position(|(t, used)| {
            t.token_digest == digest && t.purpose == purpose && used.is_none()
        }) else {
            return Err(RedeemError::Invalid);
        };
        let token = db.tokens[index].0.clone();
        if token.expires_at <= now {
            return Err(RedeemError::Expired);
        }
        let taken = db
            .users
            .iter()
            .any(|(u, _)| u.email == token.email && u.id != token.user_id);
        let Some(at) = db.users.iter().position(|(u, _)| u.id == token.user_id) else {
            return Err(RedeemError::Invalid);
        };
        let before = db.users[at].0.email.clone();
        match redemption {
            Redemption::VerifyEmail => {
                if before != token.email {
                    return Err(RedeemError::Invalid);
                }
                let user = &mut db.users[at].0;
                user.email_verified_at.get_or_insert(now);
            }
            Redemption::ChangeEmail => {
                if taken {
                    return Err(RedeemError::EmailTaken);
                }
                let user = &mut db.users[at].0;
                user.email = token.email.clone();
                user.email_verified_at = Some(now);
            }
            Redemption::ResetPassword { password_hash } => {
                if before != token.email {
                    return Err(RedeemError::Invalid);
                }
                let (user, hash) = &mut db.users[at];
                *hash = password_hash;
                user.email_verified_at.get_or_insert(now);
                db.sessions.retain(|s| s.user_id != token.user_id);
            }
        }
        db.tokens[index].1 = Some(now);
        Ok((db.users[at].0.clone(), before))
    }

    async fn set_password(
        &self,
        id: UserId,
        password_hash: String,
        keep: Option<SessionId>,
        _now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut db = self.db();
        if let Some((_, hash)) = db.users.iter_mut().find(|(u, _)| u.id == id) {
            *hash = password_hash;
        }
        let before = db.sessions.len();
        db.sessions
            .retain(|s| s.user_id != id || Some(s.id) == keep);
        Ok((before - db.sessions.len()) as u64)
    }

    async fn mark_verified(&self, id: UserId, now: DateTime<Utc>) -> Result<(), StoreError> {
        if let Some((u, _)) = self.db().users.iter_mut().find(|(u, _)| u.id == id) {
            u.email_verified_at.get_or_insert(now);
        }
        Ok(())
    }

    async fn delete_account(
        &self,
        id: UserId,
        now: DateTime<Utc>,
    ) -> Result<Option<DeletedAccount>, DeleteAccountError> {
        self.db().delete_account(id, now)
    }
}

#[async_trait]
impl CredentialRepository for Memory {
    async fn insert_session(&self, session: Session) -> Result<(), StoreError> {
        self.db().sessions.push(session);
        Ok(())
    }

    async fn authenticate(
        &self,
        digest: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>, StoreError> {
        Ok(self.db().grant(digest, now))
    }

    async fn delete_session(&self, digest: &str) -> Result<(), StoreError> {
        self.db().sessions.retain(|s| s.token_digest != digest);
        Ok(())
    }

    async fn list_sessions(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let mut out: Vec<SessionInfo> = self
            .db()
            .sessions
            .iter()
            .filter(|s| s.user_id == user && s.expires_at > now)
            .map(|s| SessionInfo {
                id: s.id,
                created_at: s.created_at,
                last_used_at: None,
                expires_at: s.expires_at,
                user_agent: s.client.user_agent.clone(),
                ip: s.client.ip.clone(),
            })
            .collect();
        out.reverse();
        Ok(out)
    }

    async fn delete_user_session(&self, user: UserId, id: SessionId) -> Result<bool, StoreError> {
        let mut db = self.db();
        let before = db.sessions.len();
        db.sessions.retain(|s| !(s.user_id == user && s.id == id));
        Ok(db.sessions.len() < before)
    }

    async fn delete_other_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
    ) -> Result<u64, StoreError> {
        let mut db = self.db();
        let before = db.sessions.len();
        db.sessions
            .retain(|s| s.user_id != user || Some(s.id) == keep);
        Ok((before - db.sessions.len()) as u64)
    }

    async fn touch_session(&self, _id: SessionId, _now: DateTime<Utc>) -> Result<(), StoreError> {
        // This example does not show when a session was last used.
        Ok(())
    }

    async fn insert_api_key(&self, key: ApiKey) -> Result<(), StoreError> {
        self.db().api_keys.push(key);
        Ok(())
    }

    async fn list_api_keys(&self, user: UserId) -> Result<Vec<ApiKey>, StoreError> {
        let mut keys: Vec<ApiKey> = self
            .db()
            .api_keys
            .iter()
            .filter(|k| k.user_id == user)
            .cloned()
            .collect();
        keys.reverse();
        Ok(keys)
    }

    async fn revoke_api_key(
        &self,
        user: UserId,
        id: ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut db = self.db();
        match db
            .api_keys
            .iter_mut()
            .find(|k| k.id == id && k.user_id == user && k.revoked_at.is_none())
        {
            Some(key) => {
                key.revoked_at = Some(now);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[async_trait]
impl OrganizationRepository for Memory {
    async fn create(
        &self,
        organization: Organization,
        owner: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), SlugConflict> {
        let mut db = self.db();
        if db.slug_taken(&organization.slug, None) {
            return Err(SlugConflict::SlugTaken);
        }
        db.add_organization(organization, owner);
        db.audit.push(audit);
        Ok(())
    }

    async fn find_for_member(
        &self,
        org: &OrgRef,
        user: UserId,
    ) -> Result<Option<(Organization, Role)>, StoreError> {
        Ok(self.db().membership_of(org, user))
    }

    async fn find_for_credential(
        &self,
        digest: &str,
        now: DateTime<Utc>,
        org: &OrgRef,
    ) -> Result<Option<CredentialAccess>, StoreError> {
        let db = self.db();
        Ok(db
            .grant(digest, now)
            .map(|g| (g.principal, db.membership_of(org, g.principal.user_id))))
    }

    async fn list_for_user(&self, user: UserId) -> Result<Vec<OrganizationSummary>, StoreError> {
        let db = self.db();
        Ok(db
            .memberships
            .iter()
            .filter(|m| m.user == user)
            .filter_map(|m| {
                let organization = db.org(&OrgRef::Id(m.org))?.clone();
                let member_count = db.memberships.iter().filter(|x| x.org == m.org).count();
                Some(OrganizationSummary {
                    organization,
                    role: m.role,
                    member_count: member_count as u64,
                })
            })
            .collect())
    }

    async fn update(
        &self,
        id: OrganizationId,
        patch: OrganizationPatch,
        now: DateTime<Utc>,
        audit: NewAuditEvent,
    ) -> Result<Organization, SlugConflict> {
        let mut db = self.db();
        if let Some(slug) = &patch.slug
            && db.slug_taken(slug, Some(id))
        {
            return Err(SlugConflict::SlugTaken);
        }
        let org = db
            .organizations
            .iter_mut()
            .find(|o| o.id == id)
            .ok_or(SlugConflict::NotFound)?;
        if let Some(name) = patch.name {
            org.name = name;
        }
        if let Some(slug) = patch.slug {
            org.slug = slug;
        }
        if let Some(logo) = patch.logo {
            org.logo = logo;
        }
        if let Some(metadata) = patch.metadata {
            org.metadata = metadata;
        }
        org.updated_at = now;
        let updated = org.clone();
        db.audit.push(audit);
        Ok(updated)
    }

    async fn delete(&self, id: OrganizationId) -> Result<bool, StoreError> {
        Ok(self.db().delete_organization(id))
    }

    async fn slug_exists(&self, slug: &Slug) -> Result<bool, StoreError> {
        Ok(self.db().slug_taken(slug, None))
    }
}

#[async_trait]
impl MembershipRepository for Memory {
    async fn list(
        &self,
        org: OrganizationId,
        page: PageRequest,
    ) -> Result<Page<Member>, StoreError> {
        let db = self.db();
        let rows: Vec<&Membership> = db.memberships.iter().filter(|m| m.org == org).collect();
        let page = page_of(rows, page, |m| m.id);
        Ok(Page {
            items: page
                .items
                .into_iter()
                .filter_map(|m| db.member_of(m))
                .collect(),
            next: page.next,
        })
    }

    async fn get(&self, org: OrganizationId, user: UserId) -> Result<Option<Member>, StoreError> {
        Ok(self.db().member(org, user))
    }

    async fn change_role(
        &self,
        org: OrganizationId,
        user: UserId,
        role: Role,
        audit: NewAuditEvent,
    ) -> Result<Member, MembershipChangeError> {
        let mut db = self.db();
        let owners = db.owners(org);
        let m = db
            .memberships
            .iter_mut()
            .find(|m| m.org == org && m.user == user)
            .ok_or(MembershipChangeError::NotFound)?;
        if m.role == Role::Owner && role != Role::Owner && owners <= 1 {
            return Err(MembershipChangeError::LastOwner);
        }
        m.role = role;
        db.audit.push(audit);
        db.member(org, user).ok_or(MembershipChangeError::NotFound)
    }

    async fn remove(
        &self,
        org: OrganizationId,
        user: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), MembershipChangeError> {
        let mut db = self.db();
        let m = db
            .member(org, user)
            .ok_or(MembershipChangeError::NotFound)?;
        if m.role == Role::Owner && db.owners(org) <= 1 {
            return Err(MembershipChangeError::LastOwner);
        }
        db.memberships.retain(|x| !(x.org == org && x.user == user));
        db.audit.push(audit);
        Ok(())
    }

    async fn transfer_ownership(
        &self,
        org: OrganizationId,
        from: UserId,
        to: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), MembershipChangeError> {
        let mut db = self.db();
        if db.member(org, to).is_none() || db.member(org, from).is_none() {
            return Err(MembershipChangeError::NotFound);
        }
        for m in db.memberships.iter_mut().filter(|m| m.org == org) {
            if m.user == to {
                m.role = Role::Owner;
            } else if m.user == from {
                m.role = Role::Admin;
            }
        }
        db.audit.push(audit);
        Ok(())
    }
}

#[async_trait]
impl InvitationRepository for Memory {
    async fn create_replacing(
        &self,
        invitation: Invitation,
        audit: NewAuditEvent,
    ) -> Result<(), InviteError> {
        let mut db = self.db();
        let org = invitation.organization_id;
        // Replace first: re-inviting someone takes no extra seat.
        let mut replaced = vec![];
        for i in db.invitations.iter_mut().filter(|i| {
            i.organization_id == org
                && i.email == invitation.email
                && i.status == InvitationStatus::Pending
        }) {
            i.status = InvitationStatus::Replaced;
            replaced.push(i.id);
        }
        if let Err(limit) = db.room_for_member(org, invitation.created_at) {
            for i in db
                .invitations
                .iter_mut()
                .filter(|i| replaced.contains(&i.id))
            {
                i.status = InvitationStatus::Pending;
            }
            return Err(InviteError::PlanLimit(limit));
        }
        db.invitations.push(invitation);
        db.audit.push(audit);
        Ok(())
    }

    async fn list_pending(
        &self,
        org: OrganizationId,
        now: DateTime<Utc>,
        page: PageRequest,
    ) -> Result<Page<Invitation>, StoreError> {
        let rows: Vec<Invitation> = self
            .db()
            .invitations
            .iter()
            .rev()
            .filter(|i| {
                i.organization_id == org
                    && i.status == InvitationStatus::Pending
                    && !i.is_expired(now)
            })
            .cloned()
            .collect();
        Ok(page_of(rows, page, |i| i.id.as_uuid()))
    }

    async fn cancel(
        &self,
        org: OrganizationId,
        id: InvitationId,
        audit: NewAuditEvent,
    ) -> Result<bool, StoreError> {
        let mut db = self.db();
        match db.invitations.iter_mut().find(|i| {
            i.id == id && i.organization_id == org && i.status == InvitationStatus::Pending
        }) {
            Some(i) => {
                i.status = InvitationStatus::Cancelled;
                db.audit.push(audit);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn list_for_email(
        &self,
        email: &Email,
        now: DateTime<Utc>,
    ) -> Result<Vec<InvitationView>, StoreError> {
        let db = self.db();
        Ok(db
            .invitations
            .iter()
            .rev()
            .filter(|i| {
                i.email == *email && i.status == InvitationStatus::Pending && !i.is_expired(now)
            })
            .filter_map(|i| db.view(i))
            .collect())
    }

    async fn get(&self, id: InvitationId) -> Result<Option<InvitationView>, StoreError> {
        let db = self.db();
        Ok(db
            .invitations
            .iter()
            .find(|i| i.id == id)
            .and_then(|i| db.view(i)))
    }

    async fn accept(
        &self,
        id: InvitationId,
        user: UserId,
        now: DateTime<Utc>,
        audit: NewAuditEvent,
    ) -> Result<Member, AnswerInvitationError> {
        let mut db = self.db();
        let invitation = db
            .invitations
            .iter()
            .find(|i| i.id == id)
            .cloned()
            .ok_or(AnswerInvitationError::NotFound)?;
        if invitation.status != InvitationStatus::Pending {
            return Err(AnswerInvitationError::NotPending);
        }
        let org = invitation.organization_id;
        if db.member(org, user).is_some() {
            return Err(AnswerInvitationError::AlreadyMember);
        }
        let set = |db: &mut Db, status| {
            if let Some(i) = db.invitations.iter_mut().find(|i| i.id == id) {
                i.status = status;
            }
        };
        // This invitation stops counting as pending before the seat count, as it accepts.
        set(&mut db, InvitationStatus::Accepted);
        if let Err(limit) = db.room_for_member(org, now) {
            set(&mut db, InvitationStatus::Pending);
            return Err(AnswerInvitationError::PlanLimit(limit));
        }
        db.memberships.push(Membership {
            id: Uuid::now_v7(),
            org,
            user,
            role: invitation.role,
            joined_at: now,
        });
        db.audit.push(audit);
        db.member(org, user).ok_or(AnswerInvitationError::NotFound)
    }

    async fn reject(
        &self,
        id: InvitationId,
        audit: NewAuditEvent,
    ) -> Result<(), AnswerInvitationError> {
        let mut db = self.db();
        let invitation = db
            .invitations
            .iter_mut()
            .find(|i| i.id == id)
            .ok_or(AnswerInvitationError::NotFound)?;
        if invitation.status != InvitationStatus::Pending {
            return Err(AnswerInvitationError::NotPending);
        }
        invitation.status = InvitationStatus::Rejected;
        db.audit.push(audit);
        Ok(())
    }
}
