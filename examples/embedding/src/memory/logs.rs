//! The two logs over the in-memory database: an organization's audit log and a person's
//! security log.

use async_trait::async_trait;
use canopy_kernel::id::{OrganizationId, UserId};
use canopy_kernel::page::Page;
use canopy_kernel::{PageRequest, StoreError};
use canopy_tenancy::account::SecurityEvent;
use canopy_tenancy::ports::{AuditLog, SecurityLog};
use canopy_tenancy::{AuditEvent, AuditFilter};
use chrono::{DateTime, Utc};

use super::{Memory, page_of};

#[async_trait]
impl AuditLog for Memory {
    async fn list(
        &self,
        org: OrganizationId,
        since: Option<DateTime<Utc>>,
        filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let rows: Vec<AuditEvent> = self
            .db()
            .audit
            .iter()
            .rev()
            .filter(|e| e.organization_id == org && since.is_none_or(|s| e.occurred_at >= s))
            .filter(|e| filter.action.is_none_or(|a| e.action == a))
            .filter(|e| filter.actor.is_none_or(|a| e.actor_id == Some(a)))
            .cloned()
            .collect();
        Ok(page_of(rows, page, |e| e.id.as_uuid()))
    }
}

#[async_trait]
impl SecurityLog for Memory {
    async fn record(&self, event: SecurityEvent) -> Result<(), StoreError> {
        self.db().security.push(event);
        Ok(())
    }

    async fn list(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<SecurityEvent>, StoreError> {
        let rows: Vec<SecurityEvent> = self
            .db()
            .security
            .iter()
            .rev()
            .filter(|e| e.user_id == user)
            .cloned()
            .collect();
        Ok(page_of(rows, page, |e| e.id))
    }
}
