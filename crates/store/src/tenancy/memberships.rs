//! Memberships. Every change runs under the organization lock, so the owner count read inside
//! it is current and concurrent demotions cannot both take the last owner away.

use async_trait::async_trait;
use canopy_kernel::id::{OrganizationId, UserId};
use canopy_kernel::page::Page;
use canopy_kernel::{PageRequest, StoreError};
use canopy_tenancy::audit::NewAuditEvent;
use canopy_tenancy::membership::{Member, Role};
use canopy_tenancy::ports::{MembershipChangeError, MembershipRepository};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::{insert_audit, member_from};
use crate::entity::{memberships, users};
use crate::error::db_err;
use crate::txn::{Abort, Locked};

crate::repository!(
    /// Memberships and roles.
    MembershipStore,
    memberships
);

/// `user`'s membership row in `org`, on any connection.
pub(crate) async fn membership_of(
    conn: &impl ConnectionTrait,
    org: OrganizationId,
    user: UserId,
) -> Result<Option<memberships::Model>, DbErr> {
    memberships::Entity::find()
        .filter(memberships::Column::OrganizationId.eq(org.as_uuid()))
        .filter(memberships::Column::UserId.eq(user.as_uuid()))
        .one(conn)
        .await
}

/// The membership row a change is about, or `NotFound`.
async fn member_row(
    locked: Locked<'_>,
    org: OrganizationId,
    user: UserId,
) -> Result<memberships::Model, Abort<MembershipChangeError>> {
    membership_of(locked.txn(), org, user)
        .await?
        .ok_or(Abort::Refuse(MembershipChangeError::NotFound))
}

/// Refuses a change that takes `row` out of the owner role when it is the last owner.
async fn ensure_not_last_owner(
    locked: Locked<'_>,
    org: OrganizationId,
    row: &memberships::Model,
) -> Result<(), Abort<MembershipChangeError>> {
    if row.role != Role::Owner.as_str() {
        return Ok(());
    }
    let owners = memberships::Entity::find()
        .filter(memberships::Column::OrganizationId.eq(org.as_uuid()))
        .filter(memberships::Column::Role.eq(Role::Owner.as_str()))
        .count(locked.txn())
        .await?;
    if owners <= 1 {
        return Err(Abort::Refuse(MembershipChangeError::LastOwner));
    }
    Ok(())
}

async fn set_role(locked: Locked<'_>, row: memberships::Model, role: Role) -> Result<(), DbErr> {
    let mut active: memberships::ActiveModel = row.into();
    active.role = Set(role.as_str().to_string());
    active.update(locked.txn()).await.map(|_| ())
}

#[async_trait]
impl MembershipRepository for MembershipStore {
    async fn list(
        &self,
        org: OrganizationId,
        page: PageRequest,
    ) -> Result<Page<Member>, StoreError> {
        let mut query = memberships::Entity::find()
            .filter(memberships::Column::OrganizationId.eq(org.as_uuid()))
            .find_also_related(users::Entity)
            .order_by_asc(memberships::Column::Id)
            .limit(u64::from(page.limit) + 1);
        if let Some(after) = page.after {
            query = query.filter(memberships::Column::Id.gt(after.0));
        }
        let rows = query.all(self.db()).await.map_err(db_err)?;
        let page = Page::from_overfetch(rows, page.limit, |(m, _)| m.id);
        let mut items = Vec::with_capacity(page.items.len());
        for (m, u) in page.items {
            if let Some(u) = u {
                items.push(member_from(m, u)?);
            }
        }
        Ok(Page {
            items,
            next: page.next,
        })
    }

    async fn get(&self, org: OrganizationId, user: UserId) -> Result<Option<Member>, StoreError> {
        let row = memberships::Entity::find()
            .filter(memberships::Column::OrganizationId.eq(org.as_uuid()))
            .filter(memberships::Column::UserId.eq(user.as_uuid()))
            .find_also_related(users::Entity)
            .one(self.db())
            .await
            .map_err(db_err)?;
        match row {
            Some((m, Some(u))) => Ok(Some(member_from(m, u)?)),
            _ => Ok(None),
        }
    }

    async fn change_role(
        &self,
        org: OrganizationId,
        user: UserId,
        role: Role,
        audit: NewAuditEvent,
    ) -> Result<Member, MembershipChangeError> {
        self.store()
            .write_locked(&[org], move |locked| {
                Box::pin(async move {
                    let row = member_row(locked, org, user).await?;
                    if role != Role::Owner {
                        ensure_not_last_owner(locked, org, &row).await?;
                    }
                    set_role(locked, row, role).await?;
                    insert_audit(locked, audit).await?;
                    Ok(())
                })
            })
            .await?
            .ok_or(MembershipChangeError::NotFound)?;
        self.get(org, user)
            .await?
            .ok_or(MembershipChangeError::NotFound)
    }

    async fn remove(
        &self,
        org: OrganizationId,
        user: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), MembershipChangeError> {
        self.store()
            .write_locked(&[org], move |locked| {
                Box::pin(async move {
                    let row = member_row(locked, org, user).await?;
                    ensure_not_last_owner(locked, org, &row).await?;
                    memberships::Entity::delete_by_id(row.id)
                        .exec(locked.txn())
                        .await?;
                    insert_audit(locked, audit).await?;
                    Ok(())
                })
            })
            .await?
            .ok_or(MembershipChangeError::NotFound)
    }

    async fn transfer_ownership(
        &self,
        org: OrganizationId,
        from: UserId,
        to: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), MembershipChangeError> {
        self.store()
            .write_locked(&[org], move |locked| {
                Box::pin(async move {
                    let target = member_row(locked, org, to).await?;
                    let source = member_row(locked, org, from).await?;
                    set_role(locked, target, Role::Owner).await?;
                    set_role(locked, source, Role::Admin).await?;
                    insert_audit(locked, audit).await?;
                    Ok(())
                })
            })
            .await?
            .ok_or(MembershipChangeError::NotFound)
    }
}
