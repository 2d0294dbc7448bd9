//! Cloud accounts: connected under the organization lock with the plan's room counted in the
//! same transaction; one account (provider, account key) belongs to one organization by a
//! unique index.

use async_trait::async_trait;
use canopy_cloud_org::account::{AccountStatus, CloudAccount, CloudAccountId, Provider};
use canopy_cloud_org::health::HealthCheck;
use canopy_cloud_org::ports::{AccountFilter, CloudAccountRepository, ConnectError};
use canopy_kernel::id::OrganizationId;
use canopy_kernel::page::Page;
use canopy_kernel::{LimitedResource, PageRequest, StoreError};
use canopy_tenancy::NewAuditEvent;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use uuid::Uuid;

use super::{account_from, account_row, check_from, connect_conflict, insert_account, write_tags};
use crate::billing::ensure_room;
use crate::entity::{cloud_account_checks, cloud_account_tags, cloud_accounts};
use crate::error::db_err;
use crate::tenancy::insert_audit;
use crate::txn::Abort;

crate::repository!(
    /// Cloud accounts and their health checks.
    CloudAccountStore,
    cloud_accounts
);

#[async_trait]
impl CloudAccountRepository for CloudAccountStore {
    async fn create(
        &self,
        account: CloudAccount,
        audit: NewAuditEvent,
    ) -> Result<(), ConnectError> {
        let org = account.organization_id;
        let stored = account.clone();
        let result = self
            .store()
            .write_locked(&[org], move |locked| {
                Box::pin(async move {
                    ensure_room(
                        locked,
                        org,
                        LimitedResource::CloudAccounts,
                        stored.created_at,
                    )
                    .await?;
                    insert_account(locked, &stored, audit, ConnectError::AlreadyConnected).await
                })
            })
            .await;
        match result {
            Ok(Some(())) => Ok(()),
            Ok(None) => Err(StoreError::internal("organization vanished").into()),
            Err(ConnectError::AlreadyConnected) => {
                Err(connect_conflict(self.store(), &account).await)
            }
            Err(other) => Err(other),
        }
    }

    async fn list(
        &self,
        org: OrganizationId,
        filter: &AccountFilter,
        page: PageRequest,
    ) -> Result<Page<CloudAccount>, StoreError> {
        let mut query = cloud_accounts::Entity::find()
            .filter(cloud_accounts::Column::OrganizationId.eq(org.as_uuid()))
            .order_by_asc(cloud_accounts::Column::Id)
            .limit(u64::from(page.limit) + 1);
        if let Some(after) = page.after {
            query = query.filter(cloud_accounts::Column::Id.gt(after.0));
        }
        if let Some(p) = filter.provider {
            query = query.filter(cloud_accounts::Column::Provider.eq(p.as_str()));
        }
        if let Some(e) = filter.environment {
            query = query.filter(cloud_accounts::Column::Environment.eq(e.as_str()));
        }
        query = match filter.status {
            None => query,
            Some(AccountStatus::Pending) => query
                .filter(cloud_accounts::Column::Status.eq(AccountStatus::Active.as_str()))
                .filter(cloud_accounts::Column::LastSyncedAt.is_null())
                .filter(cloud_accounts::Column::LastError.is_null()),
            Some(AccountStatus::Active) => query
                .filter(cloud_accounts::Column::Status.eq(AccountStatus::Active.as_str()))
                .filter(
                    cloud_accounts::Column::LastSyncedAt
                        .is_not_null()
                        .or(cloud_accounts::Column::LastError.is_not_null()),
                ),
            Some(s) => query.filter(cloud_accounts::Column::Status.eq(s.as_str())),
        };
        if let Some((key, value)) = &filter.tag {
            let mut tagged = Query::select();
            tagged
                .column(cloud_account_tags::Column::CloudAccountId)
                .from(cloud_account_tags::Entity)
                .and_where(Expr::col(cloud_account_tags::Column::Key).eq(key.as_str()));
            if let Some(v) = value {
                tagged.and_where(Expr::col(cloud_account_tags::Column::Value).eq(v.as_str()));
            }
            query = query.filter(cloud_accounts::Column::Id.in_subquery(tagged.to_owned()));
        }
        let rows = query.all(self.db()).await.map_err(db_err)?;
        let page = Page::from_overfetch(rows, page.limit, |m| m.id);
        let items = page
            .items
            .into_iter()
            .map(account_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            next: page.next,
        })
    }

    async fn get(
        &self,
        org: OrganizationId,
        id: CloudAccountId,
    ) -> Result<Option<CloudAccount>, StoreError> {
        cloud_accounts::Entity::find_by_id(id.as_uuid())
            .filter(cloud_accounts::Column::OrganizationId.eq(org.as_uuid()))
            .one(self.db())
            .await
            .map_err(db_err)?
            .map(account_from)
            .transpose()
    }

    async fn find_by_key(
        &self,
        org: OrganizationId,
        provider: Provider,
        key: &str,
    ) -> Result<Option<CloudAccount>, StoreError> {
        cloud_accounts::Entity::find()
            .filter(cloud_accounts::Column::OrganizationId.eq(org.as_uuid()))
            .filter(cloud_accounts::Column::Provider.eq(provider.as_str()))
            .filter(cloud_accounts::Column::AccountKey.eq(key))
            .one(self.db())
            .await
            .map_err(db_err)?
            .map(account_from)
            .transpose()
    }

    async fn update(
        &self,
        account: CloudAccount,
        audit: NewAuditEvent,
    ) -> Result<Option<CloudAccount>, StoreError> {
        let org = account.organization_id;
        let updated = self
            .store()
            .write_locked(&[org], move |locked| {
                Box::pin(async move {
                    let Some(current) = cloud_accounts::Entity::find_by_id(account.id.as_uuid())
                        .filter(cloud_accounts::Column::OrganizationId.eq(org.as_uuid()))
                        .one(locked.txn())
                        .await?
                    else {
                        return Ok(None);
                    };
                    let mut row = account_row(&account);
                    // Identity, health and authorship are not edited through settings.
                    row.provider = Set(current.provider);
                    row.account_key = Set(current.account_key);
                    row.status = Set(current.status);
                    row.last_synced_at = Set(current.last_synced_at);
                    row.last_error = Set(current.last_error);
                    row.created_by = Set(current.created_by);
                    row.created_at = Set(current.created_at);
                    let updated = row.update(locked.txn()).await?;
                    write_tags(locked.txn(), account.id.as_uuid(), &account.settings.tags).await?;
                    insert_audit(locked, audit).await?;
                    Ok::<_, Abort<StoreError>>(Some(updated))
                })
            })
            .await?
            .flatten();
        updated.map(account_from).transpose()
    }

    async fn delete(
        &self,
        org: OrganizationId,
        id: CloudAccountId,
        audit: NewAuditEvent,
    ) -> Result<bool, StoreError> {
        let deleted = self
            .store()
            .write_locked(&[org], move |locked| {
                Box::pin(async move {
                    let deleted = cloud_accounts::Entity::delete_many()
                        .filter(cloud_accounts::Column::Id.eq(id.as_uuid()))
                        .filter(cloud_accounts::Column::OrganizationId.eq(org.as_uuid()))
                        .exec(locked.txn())
                        .await?;
                    if deleted.rows_affected != 1 {
                        return Ok(false);
                    }
                    insert_audit(locked, audit).await?;
                    Ok::<_, Abort<StoreError>>(true)
                })
            })
            .await?;
        Ok(deleted == Some(true))
    }

    async fn record_check(
        &self,
        org: OrganizationId,
        check: HealthCheck,
    ) -> Result<Option<CloudAccount>, StoreError> {
        // No audit event and no count against the plan: the account's own row is the only one
        // changed, so its row lock is enough.
        let txn = self.db().begin().await.map_err(db_err)?;
        let Some(row) = cloud_accounts::Entity::find_by_id(check.account_id.as_uuid())
            .filter(cloud_accounts::Column::OrganizationId.eq(org.as_uuid()))
            .one(&txn)
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        cloud_account_checks::ActiveModel {
            id: Set(Uuid::now_v7()),
            cloud_account_id: Set(row.id),
            checked_at: Set(check.checked_at),
            failure_kind: Set(check.failure.as_ref().map(|f| f.kind.as_str().to_string())),
            message: Set(check.failure.as_ref().map(|f| f.message.clone())),
            duration_ms: Set(i64::try_from(check.duration_ms).unwrap_or(i64::MAX)),
        }
        .insert(&txn)
        .await
        .map_err(db_err)?;
        let provider = canopy_cloud_org::Provider::from_stored(&row.provider)
            .ok_or_else(|| crate::error::corrupt("provider", &row.provider))?;
        let mut active: cloud_accounts::ActiveModel = row.into();
        match &check.failure {
            None => {
                active.status = Set(AccountStatus::Active.as_str().to_string());
                active.last_synced_at = Set(Some(check.checked_at));
                active.last_error = Set(None);
            }
            Some(f) => {
                active.status = Set(AccountStatus::Error.as_str().to_string());
                active.last_error = Set(Some(format!(
                    "{}: {}",
                    f.kind.as_str(),
                    f.kind.advice_for(provider)
                )));
            }
        }
        let updated = active.update(&txn).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        account_from(updated).map(Some)
    }

    async fn health(
        &self,
        org: OrganizationId,
        id: CloudAccountId,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<HealthCheck>, StoreError> {
        if self.get(org, id).await?.is_none() {
            return Ok(vec![]);
        }
        let mut query = cloud_account_checks::Entity::find()
            .filter(cloud_account_checks::Column::CloudAccountId.eq(id.as_uuid()));
        if let Some(since) = since {
            query = query.filter(cloud_account_checks::Column::CheckedAt.gte(since));
        }
        Ok(query
            .order_by_desc(cloud_account_checks::Column::Id)
            .limit(u64::from(limit))
            .all(self.db())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(check_from)
            .collect())
    }
}
