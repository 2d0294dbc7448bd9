//! Invitations. Inviting and accepting count team members against the plan under the
//! organization lock; answering is single-use through a status-guarded update.

use async_trait::async_trait;
use canopy_kernel::id::{InvitationId, OrganizationId, UserId};
use canopy_kernel::page::Page;
use canopy_kernel::{LimitedResource, PageRequest, StoreError};
use canopy_tenancy::audit::NewAuditEvent;
use canopy_tenancy::invitation::{Invitation, InvitationStatus, InvitationView};
use canopy_tenancy::membership::Member;
use canopy_tenancy::organization::Slug;
use canopy_tenancy::ports::{
    AnswerInvitationError, InvitationRepository, InviteError, MembershipRepository,
};
use canopy_tenancy::user::Email;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::memberships::membership_of;
use super::{insert_audit, invitation_from, membership_row, role_from};
use crate::billing::ensure_room;
use crate::entity::{invitations, organizations, users};
use crate::error::{db_err, unique_violation};
use crate::txn::{Abort, Locked};

crate::repository!(
    /// Invitations.
    InvitationStore,
    invitations
);

/// Marks the pending invitation `id` as `to`, at `at` when answered; `false` when it was not
/// pending (answered, cancelled, or a concurrent answer won).
async fn leave_pending(
    locked: Locked<'_>,
    id: InvitationId,
    org: Option<OrganizationId>,
    to: InvitationStatus,
    answered_at: Option<DateTime<Utc>>,
) -> Result<bool, sea_orm::DbErr> {
    let mut update = invitations::Entity::update_many()
        .col_expr(invitations::Column::Status, Expr::value(to.as_str()))
        .filter(invitations::Column::Id.eq(id.as_uuid()))
        .filter(invitations::Column::Status.eq(InvitationStatus::Pending.as_str()));
    if let Some(at) = answered_at {
        update = update.col_expr(invitations::Column::AnsweredAt, Expr::value(Some(at)));
    }
    if let Some(org) = org {
        update = update.filter(invitations::Column::OrganizationId.eq(org.as_uuid()));
    }
    Ok(update.exec(locked.txn()).await?.rows_affected == 1)
}

impl InvitationStore {
    /// The invitation with its organization's names; `None` when the organization was
    /// deleted after the invitation was read (the invitation went with it).
    async fn view(&self, m: invitations::Model) -> Result<Option<InvitationView>, StoreError> {
        let Some(org) = organizations::Entity::find_by_id(m.organization_id)
            .one(self.db())
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let inviter = users::Entity::find_by_id(m.invited_by)
            .one(self.db())
            .await
            .map_err(db_err)?;
        Ok(Some(InvitationView {
            invitation: invitation_from(m)?,
            organization_name: org.name,
            organization_slug: Slug::from_trusted(org.slug),
            invited_by_name: inviter.map(|u| u.name).unwrap_or_default(),
        }))
    }
}

#[async_trait]
impl InvitationRepository for InvitationStore {
    async fn create_replacing(
        &self,
        invitation: Invitation,
        audit: NewAuditEvent,
    ) -> Result<(), InviteError> {
        // Two concurrent invites of one email can both find no pending row and race to insert;
        // the partial unique index turns the loser into a violation, and a retry replaces the
        // winner's invitation, as a sequential second invite would.
        let org = invitation.organization_id;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let invitation = invitation.clone();
            let audit = audit.clone();
            let result = self
                .store()
                .write_locked(&[org], move |locked| {
                    Box::pin(async move {
                        invitations::Entity::update_many()
                            .col_expr(
                                invitations::Column::Status,
                                Expr::value(InvitationStatus::Replaced.as_str()),
                            )
                            .filter(invitations::Column::OrganizationId.eq(org.as_uuid()))
                            .filter(invitations::Column::Email.eq(invitation.email.as_str()))
                            .filter(
                                invitations::Column::Status.eq(InvitationStatus::Pending.as_str()),
                            )
                            .exec(locked.txn())
                            .await?;
                        // Counted after the replacement: re-inviting someone takes no extra seat.
                        ensure_room(
                            locked,
                            org,
                            LimitedResource::TeamMembers,
                            invitation.created_at,
                        )
                        .await?;
                        let inserted = invitations::ActiveModel {
                            id: Set(invitation.id.as_uuid()),
                            organization_id: Set(org.as_uuid()),
                            email: Set(invitation.email.as_str().to_string()),
                            role: Set(invitation.role.as_str().to_string()),
                            status: Set(invitation.status.as_str().to_string()),
                            invited_by: Set(invitation.invited_by.as_uuid()),
                            expires_at: Set(invitation.expires_at),
                            answered_at: Set(None),
                            created_at: Set(invitation.created_at),
                        }
                        .insert(locked.txn())
                        .await;
                        match inserted {
                            Ok(_) => {}
                            Err(e) if unique_violation(&e).is_some() => {
                                return Err(Abort::Refuse(Retry::Again));
                            }
                            Err(e) => return Err(e.into()),
                        }
                        insert_audit(locked, audit).await?;
                        Ok(())
                    })
                })
                .await;
            match result {
                Ok(Some(())) => return Ok(()),
                Ok(None) => return Err(StoreError::internal("organization vanished").into()),
                Err(Retry::Again) if attempt < 3 => continue,
                Err(Retry::Again) => {
                    return Err(StoreError::internal("invitation kept colliding").into());
                }
                Err(Retry::Refused(e)) => return Err(e),
            }
        }
    }

    async fn list_pending(
        &self,
        org: OrganizationId,
        now: DateTime<Utc>,
        page: PageRequest,
    ) -> Result<Page<Invitation>, StoreError> {
        let mut query = invitations::Entity::find()
            .filter(invitations::Column::OrganizationId.eq(org.as_uuid()))
            .filter(invitations::Column::Status.eq(InvitationStatus::Pending.as_str()))
            .filter(invitations::Column::ExpiresAt.gt(now))
            .order_by_desc(invitations::Column::Id)
            .limit(u64::from(page.limit) + 1);
        if let Some(after) = page.after {
            query = query.filter(invitations::Column::Id.lt(after.0));
        }
        let rows = query.all(self.db()).await.map_err(db_err)?;
        let page = Page::from_overfetch(rows, page.limit, |m| m.id);
        let items = page
            .items
            .into_iter()
            .map(invitation_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            next: page.next,
        })
    }

    async fn cancel(
        &self,
        org: OrganizationId,
        id: InvitationId,
        audit: NewAuditEvent,
    ) -> Result<bool, StoreError> {
        let cancelled = self
            .store()
            .write_locked(&[org], move |locked| {
                Box::pin(async move {
                    if !leave_pending(locked, id, Some(org), InvitationStatus::Cancelled, None)
                        .await?
                    {
                        return Err(Abort::Refuse(Cancel::NotPending));
                    }
                    insert_audit(locked, audit).await?;
                    Ok(())
                })
            })
            .await;
        match cancelled {
            Ok(Some(())) => Ok(true),
            Ok(None) | Err(Cancel::NotPending) => Ok(false),
            Err(Cancel::Store(e)) => Err(e),
        }
    }

    async fn list_for_email(
        &self,
        email: &Email,
        now: DateTime<Utc>,
    ) -> Result<Vec<InvitationView>, StoreError> {
        let rows = invitations::Entity::find()
            .filter(invitations::Column::Email.eq(email.as_str()))
            .filter(invitations::Column::Status.eq(InvitationStatus::Pending.as_str()))
            .filter(invitations::Column::ExpiresAt.gt(now))
            .order_by_desc(invitations::Column::Id)
            .limit(200)
            .all(self.db())
            .await
            .map_err(db_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.extend(self.view(row).await?);
        }
        Ok(out)
    }

    async fn get(&self, id: InvitationId) -> Result<Option<InvitationView>, StoreError> {
        match invitations::Entity::find_by_id(id.as_uuid())
            .one(self.db())
            .await
            .map_err(db_err)?
        {
            Some(row) => self.view(row).await,
            None => Ok(None),
        }
    }

    async fn accept(
        &self,
        id: InvitationId,
        user: UserId,
        now: DateTime<Utc>,
        audit: NewAuditEvent,
    ) -> Result<Member, AnswerInvitationError> {
        let row = invitations::Entity::find_by_id(id.as_uuid())
            .one(self.db())
            .await
            .map_err(db_err)?
            .ok_or(AnswerInvitationError::NotFound)?;
        let org = OrganizationId(row.organization_id);
        let role = role_from(&row.role)?;
        self.store()
            .write_locked(&[org], move |locked| {
                Box::pin(async move {
                    // The status guard is what makes acceptance single-use: a concurrent
                    // accept waits on the organization lock and then matches nothing.
                    if !leave_pending(locked, id, None, InvitationStatus::Accepted, Some(now))
                        .await?
                    {
                        return Err(Abort::Refuse(AnswerInvitationError::NotPending));
                    }
                    if membership_of(locked.txn(), org, user).await?.is_some() {
                        return Err(Abort::Refuse(AnswerInvitationError::AlreadyMember));
                    }
                    // This invitation no longer counts as pending inside the transaction, so
                    // the check is "members and the other pending invitations leave a seat".
                    ensure_room(locked, org, LimitedResource::TeamMembers, now).await?;
                    membership_row(org, user, role, now)
                        .insert(locked.txn())
                        .await
                        .map_err(|e| {
                            if unique_violation(&e).is_some() {
                                Abort::Refuse(AnswerInvitationError::AlreadyMember)
                            } else {
                                Abort::Db(e)
                            }
                        })?;
                    insert_audit(locked, audit).await?;
                    Ok(())
                })
            })
            .await?
            .ok_or(AnswerInvitationError::NotFound)?;
        self.store()
            .memberships()
            .get(org, user)
            .await?
            .ok_or(AnswerInvitationError::NotFound)
    }

    async fn reject(
        &self,
        id: InvitationId,
        audit: NewAuditEvent,
    ) -> Result<(), AnswerInvitationError> {
        let org = audit.organization_id;
        self.store()
            .write_locked(&[org], move |locked| {
                Box::pin(async move {
                    if !leave_pending(
                        locked,
                        id,
                        None,
                        InvitationStatus::Rejected,
                        Some(audit.occurred_at),
                    )
                    .await?
                    {
                        return Err(Abort::Refuse(AnswerInvitationError::NotPending));
                    }
                    insert_audit(locked, audit).await?;
                    Ok(())
                })
            })
            .await?
            .ok_or(AnswerInvitationError::NotFound)
    }
}

/// The outcomes of one invite attempt: a collision with a concurrent invite to retry, or the
/// refusal to return.
enum Retry {
    Again,
    Refused(InviteError),
}

impl From<StoreError> for Retry {
    fn from(e: StoreError) -> Self {
        Retry::Refused(e.into())
    }
}

impl From<canopy_kernel::PlanLimitExceeded> for Retry {
    fn from(e: canopy_kernel::PlanLimitExceeded) -> Self {
        Retry::Refused(e.into())
    }
}

/// A cancel that found nothing pending, or the database failing.
enum Cancel {
    NotPending,
    Store(StoreError),
}

impl From<StoreError> for Cancel {
    fn from(e: StoreError) -> Self {
        Cancel::Store(e)
    }
}
