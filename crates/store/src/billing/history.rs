//! The retention sweep's deletions: history older than a cutoff, for a set of organizations.

use async_trait::async_trait;
use canopy_billing::ports::{HistoryStore, Purged};
use canopy_kernel::StoreError;
use canopy_kernel::id::OrganizationId;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::entity::{audit_events, cloud_account_checks, cloud_accounts, coverage_snapshots};
use crate::error::db_err;

crate::repository!(
    /// History the plans' retention bounds (audit events, health checks, coverage snapshots).
    HistoryPurge,
    history
);

#[async_trait]
impl HistoryStore for HistoryPurge {
    async fn purge(
        &self,
        orgs: &[OrganizationId],
        before: DateTime<Utc>,
    ) -> Result<Purged, StoreError> {
        if orgs.is_empty() {
            return Ok(Purged::default());
        }
        let ids: Vec<Uuid> = orgs.iter().map(OrganizationId::as_uuid).collect();
        let audit = audit_events::Entity::delete_many()
            .filter(audit_events::Column::OrganizationId.is_in(ids.clone()))
            .filter(audit_events::Column::OccurredAt.lt(before))
            .exec(self.db())
            .await
            .map_err(db_err)?;
        let accounts = Query::select()
            .column(cloud_accounts::Column::Id)
            .from(cloud_accounts::Entity)
            .and_where(Expr::col(cloud_accounts::Column::OrganizationId).is_in(ids))
            .to_owned();
        let checks = cloud_account_checks::Entity::delete_many()
            .filter(cloud_account_checks::Column::CloudAccountId.in_subquery(accounts))
            .filter(cloud_account_checks::Column::CheckedAt.lt(before))
            .exec(self.db())
            .await
            .map_err(db_err)?;
        let snapshots = coverage_snapshots::Entity::delete_many()
            .filter(
                coverage_snapshots::Column::OrganizationId
                    .is_in(orgs.iter().map(OrganizationId::as_uuid)),
            )
            .filter(coverage_snapshots::Column::TakenAt.lt(before))
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(Purged {
            audit_events: audit.rows_affected,
            health_checks: checks.rows_affected,
            coverage_snapshots: snapshots.rows_affected,
        })
    }
}
