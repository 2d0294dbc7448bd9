//! The audit log: written inside the locked transactions that make the changes, read by
//! `AuditLog`.

use async_trait::async_trait;
use canopy_kernel::id::{OrganizationId, UserId};
use canopy_kernel::page::Page;
use canopy_kernel::{PageRequest, StoreError};
use canopy_tenancy::audit::{
    AuditAction, AuditEvent, AuditFilter, AuditTarget, NewAuditEvent, TargetKind,
};
use canopy_tenancy::ports::AuditLog;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::entity::audit_events;
use crate::error::{corrupt, db_err};
use crate::txn::Locked;

fn audit_from(m: audit_events::Model) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        id: m.id.into(),
        organization_id: OrganizationId(m.organization_id),
        actor_id: m.actor_id.map(UserId),
        action: AuditAction::from_stored(&m.action)
            .ok_or_else(|| corrupt("audit action", &m.action))?,
        target: AuditTarget {
            kind: TargetKind::from_stored(&m.target_type)
                .ok_or_else(|| corrupt("audit target", &m.target_type))?,
            id: m.target_id,
        },
        details: m.details,
        occurred_at: m.occurred_at,
    })
}

/// Writes `audit` in the transaction that makes the change it describes. Only a transaction
/// holding the organization's lock can: see [`crate::txn`].
pub(crate) async fn insert_audit(locked: Locked<'_>, audit: NewAuditEvent) -> Result<(), DbErr> {
    if !locked.holds(audit.organization_id) {
        return Err(DbErr::Custom(format!(
            "audit event {} for organization {} written without its lock",
            audit.action, audit.organization_id
        )));
    }
    audit_events::ActiveModel {
        id: Set(audit.id.as_uuid()),
        organization_id: Set(audit.organization_id.as_uuid()),
        actor_id: Set(audit.actor_id.map(|a| a.as_uuid())),
        action: Set(audit.action.as_str().to_string()),
        target_type: Set(audit.target.kind.as_str().to_string()),
        target_id: Set(audit.target.id),
        details: Set(audit.details),
        occurred_at: Set(audit.occurred_at),
    }
    .insert(locked.txn())
    .await
    .map(|_| ())
}

crate::repository!(
    /// The audit log reader.
    AuditStore,
    audit_log
);

#[async_trait]
impl AuditLog for AuditStore {
    async fn list(
        &self,
        org: OrganizationId,
        since: Option<DateTime<Utc>>,
        filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let mut query = audit_events::Entity::find()
            .filter(audit_events::Column::OrganizationId.eq(org.as_uuid()))
            .order_by_desc(audit_events::Column::Id)
            .limit(u64::from(page.limit) + 1);
        if let Some(after) = page.after {
            query = query.filter(audit_events::Column::Id.lt(after.0));
        }
        if let Some(since) = since {
            query = query.filter(audit_events::Column::OccurredAt.gte(since));
        }
        if let Some(action) = filter.action {
            query = query.filter(audit_events::Column::Action.eq(action.as_str()));
        }
        if let Some(actor) = filter.actor {
            query = query.filter(audit_events::Column::ActorId.eq(actor.as_uuid()));
        }
        let rows = query.all(self.db()).await.map_err(db_err)?;
        let page = Page::from_overfetch(rows, page.limit, |m| m.id);
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(audit_from)
                .collect::<Result<_, _>>()?,
            next: page.next,
        })
    }
}
