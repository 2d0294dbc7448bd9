//! Deleting an account: one transaction under the locks of every organization the person
//! belongs to, so a member who joins (or an owner who leaves) meanwhile is either seen by the
//! last-owner check or waits for it.

use std::collections::BTreeSet;

use canopy_kernel::StoreError;
use canopy_kernel::id::{OrganizationId, UserId};
use canopy_tenancy::account::{DeletedAccount, HeldOrganization, TOMBSTONE, scrub_email};
use canopy_tenancy::audit::{AuditAction, AuditTarget, NewAuditEvent, TargetKind};
use canopy_tenancy::invitation::InvitationStatus;
use canopy_tenancy::membership::Role;
use canopy_tenancy::organization::Slug;
use canopy_tenancy::ports::DeleteAccountError;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, Set,
};
use serde_json::json;

use super::insert_audit;
use crate::Store;
use crate::entity::{
    audit_events, invitations, memberships, organizations, outbox_messages, users,
};
use crate::txn::{Abort, Locked};

/// How often the membership set may change between reading it and locking it before the
/// deletion gives up (each retry means someone joined or left an organization meanwhile).
const ATTEMPTS: usize = 3;

/// The organizations `user` belongs to, on any connection.
async fn organizations_of(
    conn: &impl ConnectionTrait,
    user: UserId,
) -> Result<BTreeSet<OrganizationId>, DbErr> {
    Ok(memberships::Entity::find()
        .filter(memberships::Column::UserId.eq(user.as_uuid()))
        .all(conn)
        .await?
        .into_iter()
        .map(|m| OrganizationId(m.organization_id))
        .collect())
}

/// Where the person stands in one organization.
enum Standing {
    /// The only member: the organization goes.
    Alone(HeldOrganization),
    /// The only owner, with others: the deletion is refused.
    LastOwner(HeldOrganization),
    /// Anyone else: the membership ends.
    Leaves(HeldOrganization, Role),
}

async fn standing(
    locked: Locked<'_>,
    org: OrganizationId,
    user: UserId,
) -> Result<Option<Standing>, DbErr> {
    let Some(row) = organizations::Entity::find_by_id(org.as_uuid())
        .one(locked.txn())
        .await?
    else {
        return Ok(None);
    };
    let in_org = || {
        memberships::Entity::find().filter(memberships::Column::OrganizationId.eq(org.as_uuid()))
    };
    let Some(mine) = in_org()
        .filter(memberships::Column::UserId.eq(user.as_uuid()))
        .one(locked.txn())
        .await?
    else {
        return Ok(None);
    };
    let others = in_org()
        .filter(memberships::Column::UserId.ne(user.as_uuid()))
        .count(locked.txn())
        .await?;
    let other_owners = in_org()
        .filter(memberships::Column::UserId.ne(user.as_uuid()))
        .filter(memberships::Column::Role.eq(Role::Owner.as_str()))
        .count(locked.txn())
        .await?;
    let held = HeldOrganization {
        id: org,
        slug: Slug::from_trusted(row.slug),
        name: row.name,
        other_members: others,
    };
    let role = super::role_from(&mine.role).map_err(|e| DbErr::Custom(e.to_string()))?;
    Ok(Some(if others == 0 {
        Standing::Alone(held)
    } else if role == Role::Owner && other_owners == 0 {
        Standing::LastOwner(held)
    } else {
        Standing::Leaves(held, role)
    }))
}

/// Puts the tombstone in place of `email` in the audit details of `org`.
async fn scrub_audit(locked: Locked<'_>, org: OrganizationId, email: &str) -> Result<(), DbErr> {
    let events = audit_events::Entity::find()
        .filter(audit_events::Column::OrganizationId.eq(org.as_uuid()))
        .all(locked.txn())
        .await?;
    for event in events {
        let mut details = event.details.clone();
        if scrub_email(&mut details, email) {
            let mut active: audit_events::ActiveModel = event.into();
            active.details = Set(details);
            active.update(locked.txn()).await?;
        }
    }
    Ok(())
}

/// The deletion itself, under the locks of `orgs`; `Ok(None)` when the membership set is no
/// longer `orgs` (the caller reads it again and retries).
async fn delete_locked(
    locked: Locked<'_>,
    user: UserId,
    orgs: &BTreeSet<OrganizationId>,
    now: DateTime<Utc>,
) -> Result<Option<Option<DeletedAccount>>, Abort<DeleteAccountError>> {
    let Some(person) = users::Entity::find_by_id(user.as_uuid())
        .one(locked.txn())
        .await?
    else {
        return Ok(Some(None));
    };
    if organizations_of(locked.txn(), user).await? != *orgs {
        return Ok(None);
    }
    let mut standings = Vec::with_capacity(orgs.len());
    for org in orgs {
        match standing(locked, *org, user).await? {
            Some(s) => standings.push(s),
            None => return Ok(None),
        }
    }
    let blocking: Vec<HeldOrganization> = standings
        .iter()
        .filter_map(|s| match s {
            Standing::LastOwner(held) => Some(held.clone()),
            _ => None,
        })
        .collect();
    if !blocking.is_empty() {
        return Err(Abort::Refuse(DeleteAccountError::LastOwner(blocking)));
    }

    let mut deleted = DeletedAccount::default();
    for s in standings {
        match s {
            Standing::Alone(held) => {
                organizations::Entity::delete_by_id(held.id.as_uuid())
                    .exec(locked.txn())
                    .await?;
                deleted.organizations_deleted.push(held);
            }
            Standing::Leaves(held, role) => {
                scrub_audit(locked, held.id, &person.email).await?;
                insert_audit(
                    locked,
                    NewAuditEvent::new(
                        held.id,
                        Some(user),
                        AuditAction::MemberAccountDeleted,
                        AuditTarget::new(TargetKind::Member, user),
                        json!({"member": TOMBSTONE, "role": role.as_str()}),
                        now,
                    ),
                )
                .await?;
                deleted.memberships_ended.push(held);
            }
            Standing::LastOwner(_) => unreachable!("refused above"),
        }
    }
    // Decided invitations are history the audit log already tells (now without the
    // address); pending ones belong to the inviting organization, which can cancel them.
    invitations::Entity::delete_many()
        .filter(invitations::Column::Email.eq(person.email.as_str()))
        .filter(invitations::Column::Status.ne(InvitationStatus::Pending.as_str()))
        .exec(locked.txn())
        .await?;
    outbox_messages::Entity::delete_many()
        .filter(outbox_messages::Column::Recipient.eq(person.email.as_str()))
        .exec(locked.txn())
        .await?;
    // Sessions, API keys, memberships, links and the security log go with the row.
    users::Entity::delete_by_id(user.as_uuid())
        .exec(locked.txn())
        .await?;
    Ok(Some(Some(deleted)))
}

impl Store {
    /// See [`UserRepository::delete_account`](canopy_tenancy::ports::UserRepository).
    pub(crate) async fn delete_account(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Option<DeletedAccount>, DeleteAccountError> {
        for _ in 0..ATTEMPTS {
            let orgs = organizations_of(self.db(), user)
                .await
                .map_err(crate::error::db_err)?;
            let locking: Vec<OrganizationId> = orgs.iter().copied().collect();
            let outcome = self
                .write_locked(&locking, move |locked| {
                    Box::pin(async move { delete_locked(locked, user, &orgs, now).await })
                })
                .await?;
            // `None` twice over: an organization vanished, or the set changed; read again.
            if let Some(Some(done)) = outcome {
                return Ok(done);
            }
        }
        Err(DeleteAccountError::Store(StoreError::Unavailable(
            "memberships kept changing while the account was being deleted".into(),
        )))
    }
}
