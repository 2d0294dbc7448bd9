//! Connect tokens and connection requests. Redemption claims the token with a status- and
//! expiry-guarded update in the same locked transaction that adds the account, so a token is
//! used at most once and a refused account leaves it usable.

use async_trait::async_trait;
use canopy_cloud_org::account::CloudAccount;
use canopy_cloud_org::connection::{ConnectionToken, TokenRefusal, TokenStatus};
use canopy_cloud_org::ports::{ConnectError, ConnectionTokenRepository, RedeemError};
use canopy_kernel::{LimitedResource, PlanLimitExceeded, StoreError};
use canopy_tenancy::NewAuditEvent;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use super::{connect_conflict, input_to_json, insert_account, token_from};
use crate::billing::ensure_room;
use crate::entity::connection_tokens;
use crate::error::db_err;
use crate::tenancy::insert_audit;
use crate::txn::Abort;

crate::repository!(
    /// Connect tokens and connection requests.
    ConnectionTokenStore,
    connection_tokens
);

/// How one redemption attempt ended when it did not connect.
enum Redemption {
    /// The token was not pending and unexpired when claimed.
    NotClaimed,
    /// The plan had no room.
    Full(PlanLimitExceeded),
    /// The account is connected already (to whom is worked out after the rollback).
    Conflict,
    /// The database failed.
    Store(StoreError),
}

impl From<StoreError> for Redemption {
    fn from(e: StoreError) -> Self {
        Redemption::Store(e)
    }
}

impl From<PlanLimitExceeded> for Redemption {
    fn from(e: PlanLimitExceeded) -> Self {
        Redemption::Full(e)
    }
}

#[async_trait]
impl ConnectionTokenRepository for ConnectionTokenStore {
    async fn insert(&self, token: ConnectionToken, audit: NewAuditEvent) -> Result<(), StoreError> {
        self.store()
            .write_locked(&[token.organization_id], move |locked| {
                Box::pin(async move {
                    connection_tokens::ActiveModel {
                        digest: Set(token.digest.clone()),
                        kind: Set(token.kind.as_str().to_string()),
                        organization_id: Set(token.organization_id.as_uuid()),
                        created_by: Set(token.created_by.as_uuid()),
                        input: Set(token.input.as_ref().map(input_to_json)),
                        status: Set(token.status.as_str().to_string()),
                        expires_at: Set(token.expires_at),
                        cloud_account_id: Set(None),
                        created_at: Set(token.created_at),
                        used_at: Set(None),
                    }
                    .insert(locked.txn())
                    .await?;
                    insert_audit(locked, audit).await?;
                    Ok::<_, Abort<StoreError>>(())
                })
            })
            .await?
            .ok_or_else(|| StoreError::internal("organization vanished"))
    }

    async fn find(&self, digest: &str) -> Result<Option<ConnectionToken>, StoreError> {
        connection_tokens::Entity::find_by_id(digest.to_string())
            .one(self.db())
            .await
            .map_err(db_err)?
            .map(token_from)
            .transpose()
    }

    async fn redeem(
        &self,
        digest: &str,
        now: DateTime<Utc>,
        account: CloudAccount,
        audit: NewAuditEvent,
    ) -> Result<(), RedeemError> {
        let org = account.organization_id;
        let stored = account.clone();
        let token = digest.to_string();
        let result = self
            .store()
            .write_locked(&[org], move |locked| {
                Box::pin(async move {
                    // The guarded UPDATE is the single-use check: a concurrent redemption waits
                    // on the organization lock and then matches nothing.
                    let claimed = connection_tokens::Entity::update_many()
                        .col_expr(
                            connection_tokens::Column::Status,
                            Expr::value(TokenStatus::Used.as_str()),
                        )
                        .col_expr(connection_tokens::Column::UsedAt, Expr::value(Some(now)))
                        .col_expr(
                            connection_tokens::Column::CloudAccountId,
                            Expr::value(Some(stored.id.as_uuid())),
                        )
                        .filter(connection_tokens::Column::Digest.eq(token.as_str()))
                        .filter(connection_tokens::Column::Status.eq(TokenStatus::Pending.as_str()))
                        .filter(connection_tokens::Column::ExpiresAt.gt(now))
                        .exec(locked.txn())
                        .await?;
                    if claimed.rows_affected != 1 {
                        return Err(Abort::Refuse(Redemption::NotClaimed));
                    }
                    ensure_room(locked, org, LimitedResource::CloudAccounts, now).await?;
                    insert_account(locked, &stored, audit, Redemption::Conflict).await
                })
            })
            .await;
        match result {
            Ok(Some(())) => Ok(()),
            Ok(None) => {
                Err(ConnectError::Store(StoreError::internal("organization vanished")).into())
            }
            Err(Redemption::NotClaimed) => {
                let current = self.find(digest).await.map_err(ConnectError::Store)?;
                Err(RedeemError::Refused(
                    current
                        .and_then(|t| t.refusal(now))
                        .unwrap_or(TokenRefusal::Unknown),
                ))
            }
            Err(Redemption::Full(limit)) => Err(ConnectError::PlanLimit(limit).into()),
            Err(Redemption::Conflict) => Err(connect_conflict(self.store(), &account).await.into()),
            Err(Redemption::Store(e)) => Err(ConnectError::Store(e).into()),
        }
    }

    async fn cancel(&self, digest: &str, audit: NewAuditEvent) -> Result<bool, StoreError> {
        let token = digest.to_string();
        let cancelled = self
            .store()
            .write_locked(&[audit.organization_id], move |locked| {
                Box::pin(async move {
                    let updated = connection_tokens::Entity::update_many()
                        .col_expr(
                            connection_tokens::Column::Status,
                            Expr::value(TokenStatus::Cancelled.as_str()),
                        )
                        .filter(connection_tokens::Column::Digest.eq(token.as_str()))
                        .filter(connection_tokens::Column::Status.eq(TokenStatus::Pending.as_str()))
                        .exec(locked.txn())
                        .await?;
                    if updated.rows_affected != 1 {
                        return Ok(false);
                    }
                    insert_audit(locked, audit).await?;
                    Ok::<_, Abort<StoreError>>(true)
                })
            })
            .await?;
        Ok(cancelled == Some(true))
    }
}
