//! Device log-in requests (`DeviceAuthorizationRepository`): each answered once and redeemed
//! once, by conditional updates, the redemption in one transaction with the key it hands out.

use async_trait::async_trait;
use canopy_kernel::StoreError;
use canopy_kernel::id::UserId;
use canopy_tenancy::credential::ApiKey;
use canopy_tenancy::device::{DeviceAuthorization, DeviceAuthorizationRepository, DeviceStatus};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};
use uuid::Uuid;

use crate::entity::device_authorizations as rows;
use crate::error::{corrupt, db_err};

crate::repository!(
    /// Device log-in requests.
    DeviceAuthorizationStore,
    device_authorizations
);

fn from_row(m: rows::Model) -> Result<DeviceAuthorization, StoreError> {
    Ok(DeviceAuthorization {
        id: m.id,
        device_code_digest: m.device_code_digest,
        user_code: m.user_code,
        client_name: m.client_name,
        status: DeviceStatus::from_stored(&m.status)
            .ok_or_else(|| corrupt("device status", &m.status))?,
        user_id: m.user_id.map(UserId),
        interval_seconds: u32::try_from(m.interval_seconds).unwrap_or(5),
        created_at: m.created_at,
        expires_at: m.expires_at,
        decided_at: m.decided_at,
        last_polled_at: m.last_polled_at,
    })
}

#[async_trait]
impl DeviceAuthorizationRepository for DeviceAuthorizationStore {
    async fn insert(&self, d: DeviceAuthorization) -> Result<(), StoreError> {
        rows::ActiveModel {
            id: Set(d.id),
            device_code_digest: Set(d.device_code_digest),
            user_code: Set(d.user_code),
            client_name: Set(d.client_name),
            status: Set(d.status.as_str().to_string()),
            user_id: Set(d.user_id.map(|u| u.as_uuid())),
            interval_seconds: Set(i32::try_from(d.interval_seconds).unwrap_or(i32::MAX)),
            created_at: Set(d.created_at),
            expires_at: Set(d.expires_at),
            decided_at: Set(d.decided_at),
            last_polled_at: Set(d.last_polled_at),
        }
        .insert(self.db())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn by_user_code(&self, code: &str) -> Result<Option<DeviceAuthorization>, StoreError> {
        rows::Entity::find()
            .filter(rows::Column::UserCode.eq(code))
            .one(self.db())
            .await
            .map_err(db_err)?
            .map(from_row)
            .transpose()
    }

    async fn by_device_code(
        &self,
        digest: &str,
    ) -> Result<Option<DeviceAuthorization>, StoreError> {
        rows::Entity::find()
            .filter(rows::Column::DeviceCodeDigest.eq(digest))
            .one(self.db())
            .await
            .map_err(db_err)?
            .map(from_row)
            .transpose()
    }

    async fn decide(
        &self,
        id: Uuid,
        user: UserId,
        approve: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let status = if approve {
            DeviceStatus::Approved
        } else {
            DeviceStatus::Denied
        };
        let done = rows::Entity::update_many()
            .col_expr(rows::Column::Status, Expr::value(status.as_str()))
            .col_expr(rows::Column::UserId, Expr::value(Some(user.as_uuid())))
            .col_expr(rows::Column::DecidedAt, Expr::value(Some(now)))
            .filter(rows::Column::Id.eq(id))
            .filter(rows::Column::Status.eq(DeviceStatus::Pending.as_str()))
            .filter(rows::Column::ExpiresAt.gt(now))
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected == 1)
    }

    async fn polled(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        interval_seconds: u32,
    ) -> Result<(), StoreError> {
        rows::Entity::update_many()
            .col_expr(rows::Column::LastPolledAt, Expr::value(Some(now)))
            .col_expr(
                rows::Column::IntervalSeconds,
                Expr::value(i32::try_from(interval_seconds).unwrap_or(i32::MAX)),
            )
            .filter(rows::Column::Id.eq(id))
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn redeem(&self, id: Uuid, key: ApiKey, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        let taken = rows::Entity::update_many()
            .col_expr(
                rows::Column::Status,
                Expr::value(DeviceStatus::Redeemed.as_str()),
            )
            .filter(rows::Column::Id.eq(id))
            .filter(rows::Column::Status.eq(DeviceStatus::Approved.as_str()))
            .filter(rows::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        if taken.rows_affected != 1 {
            txn.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        super::credentials::api_key_row(key)
            .insert(&txn)
            .await
            .map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(true)
    }
}
