//! External IDs: one current per organization (a partial unique index), with history.

use async_trait::async_trait;
use canopy_cloud_org::external_id::ExternalId;
use canopy_cloud_org::ports::ExternalIdRepository;
use canopy_kernel::StoreError;
use canopy_kernel::id::OrganizationId;
use canopy_tenancy::NewAuditEvent;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use super::external_id_from;
use crate::entity::external_ids;
use crate::error::{db_err, unique_violation};
use crate::tenancy::insert_audit;
use crate::txn::Abort;

crate::repository!(
    /// External IDs.
    ExternalIdStore,
    external_ids
);

#[async_trait]
impl ExternalIdRepository for ExternalIdStore {
    async fn current_or_create(&self, candidate: ExternalId) -> Result<ExternalId, StoreError> {
        let current = || async {
            external_ids::Entity::find()
                .filter(
                    external_ids::Column::OrganizationId.eq(candidate.organization_id.as_uuid()),
                )
                .filter(external_ids::Column::RetiredAt.is_null())
                .one(self.db())
                .await
                .map_err(db_err)
        };
        if let Some(found) = current().await? {
            return Ok(external_id_from(found));
        }
        let inserted = external_ids::ActiveModel {
            id: Set(Uuid::now_v7()),
            organization_id: Set(candidate.organization_id.as_uuid()),
            value: Set(candidate.value.clone()),
            created_at: Set(candidate.created_at),
            retired_at: Set(None),
        }
        .insert(self.db())
        .await;
        match inserted {
            Ok(row) => Ok(external_id_from(row)),
            // A concurrent first request won the partial unique index: use its value.
            Err(e) if unique_violation(&e).is_some() => current()
                .await?
                .map(external_id_from)
                .ok_or_else(|| StoreError::internal("external id vanished after a conflict")),
            Err(e) => Err(db_err(e)),
        }
    }

    async fn rotate(
        &self,
        next: ExternalId,
        audit: NewAuditEvent,
    ) -> Result<ExternalId, StoreError> {
        let org = next.organization_id;
        let row = self
            .store()
            .write_locked(&[org], move |locked| {
                Box::pin(async move {
                    external_ids::Entity::update_many()
                        .col_expr(
                            external_ids::Column::RetiredAt,
                            Expr::value(Some(next.created_at)),
                        )
                        .filter(external_ids::Column::OrganizationId.eq(org.as_uuid()))
                        .filter(external_ids::Column::RetiredAt.is_null())
                        .exec(locked.txn())
                        .await?;
                    let row = external_ids::ActiveModel {
                        id: Set(Uuid::now_v7()),
                        organization_id: Set(org.as_uuid()),
                        value: Set(next.value.clone()),
                        created_at: Set(next.created_at),
                        retired_at: Set(None),
                    }
                    .insert(locked.txn())
                    .await?;
                    insert_audit(locked, audit).await?;
                    Ok::<_, Abort<StoreError>>(row)
                })
            })
            .await?
            .ok_or_else(|| StoreError::internal("organization vanished"))?;
        Ok(external_id_from(row))
    }

    async fn history(&self, org: OrganizationId) -> Result<Vec<ExternalId>, StoreError> {
        Ok(external_ids::Entity::find()
            .filter(external_ids::Column::OrganizationId.eq(org.as_uuid()))
            .order_by_desc(external_ids::Column::Id)
            .all(self.db())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(external_id_from)
            .collect())
    }
}
