//! Reading the audit log and the history window the plan serves.

use canopy_kernel::id::OrganizationId;
use canopy_kernel::page::Page;
use canopy_kernel::{PageRequest, StoreError};
use chrono::{DateTime, Utc};

use super::{OrgAccess, TenancyService};
use crate::audit::{AuditEvent, AuditFilter};
use crate::policy::{Action, Forbidden};

/// Outcomes of reading the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    /// The caller's role may not read it.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The adapter failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TenancyService {
    /// The organization's audit log within its plan's history retention, narrowed by
    /// `filter`, newest first (admin or owner).
    pub async fn audit_events(
        &self,
        access: &OrgAccess,
        filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEvent>, AuditLogError> {
        access.require(Action::ReadAuditLog)?;
        let since = self.history_served_since(access.org_id()).await?;
        Ok(self
            .ports
            .audit
            .list(access.org_id(), since, filter, page)
            .await?)
    }

    /// The oldest instant of the organization's history its plan serves now (`None`: all).
    pub async fn history_served_since(
        &self,
        org: OrganizationId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.ports.retention.served_since(org, self.now()).await
    }
}
