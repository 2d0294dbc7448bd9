//! Sessions and API keys, looked up by token digest.

use async_trait::async_trait;
use canopy_kernel::StoreError;
use canopy_kernel::id::{ApiKeyId, SessionId, UserId};
use canopy_tenancy::account::SessionInfo;
use canopy_tenancy::credential::{ApiKey, CredentialKind, Grant, Principal, Session};
use canopy_tenancy::ports::CredentialRepository;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use crate::entity::{api_keys, sessions};
use crate::error::db_err;

crate::repository!(
    /// Sessions and API keys.
    CredentialStore,
    credentials
);

fn api_key_from(m: api_keys::Model) -> ApiKey {
    ApiKey {
        id: ApiKeyId(m.id),
        user_id: UserId(m.user_id),
        name: m.name,
        prefix: m.prefix,
        token_digest: m.token_digest,
        expires_at: m.expires_at,
        revoked_at: m.revoked_at,
        created_at: m.created_at,
    }
}

#[async_trait]
impl CredentialRepository for CredentialStore {
    async fn insert_session(&self, session: Session) -> Result<(), StoreError> {
        sessions::ActiveModel {
            id: Set(session.id.as_uuid()),
            user_id: Set(session.user_id.as_uuid()),
            token_digest: Set(session.token_digest),
            expires_at: Set(session.expires_at),
            created_at: Set(session.created_at),
            user_agent: Set(session.client.user_agent),
            ip: Set(session.client.ip),
            last_used_at: Set(Some(session.created_at)),
        }
        .insert(self.db())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn authenticate(
        &self,
        digest: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>, StoreError> {
        let session = sessions::Entity::find()
            .filter(sessions::Column::TokenDigest.eq(digest))
            .filter(sessions::Column::ExpiresAt.gt(now))
            .one(self.db())
            .await
            .map_err(db_err)?;
        if let Some(s) = session {
            return Ok(Some(Grant {
                principal: Principal {
                    user_id: UserId(s.user_id),
                    credential: CredentialKind::Session(SessionId(s.id)),
                },
                expires_at: Some(s.expires_at),
            }));
        }
        let key = api_keys::Entity::find()
            .filter(api_keys::Column::TokenDigest.eq(digest))
            .filter(api_keys::Column::RevokedAt.is_null())
            .filter(
                api_keys::Column::ExpiresAt
                    .is_null()
                    .or(api_keys::Column::ExpiresAt.gt(now)),
            )
            .one(self.db())
            .await
            .map_err(db_err)?;
        Ok(key.map(|k| Grant {
            principal: Principal {
                user_id: UserId(k.user_id),
                credential: CredentialKind::ApiKey(ApiKeyId(k.id)),
            },
            expires_at: k.expires_at,
        }))
    }

    async fn delete_session(&self, digest: &str) -> Result<(), StoreError> {
        sessions::Entity::delete_many()
            .filter(sessions::Column::TokenDigest.eq(digest))
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn list_sessions(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        Ok(sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user.as_uuid()))
            .filter(sessions::Column::ExpiresAt.gt(now))
            .order_by_desc(sessions::Column::CreatedAt)
            .order_by_desc(sessions::Column::Id)
            .all(self.db())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|s| SessionInfo {
                id: SessionId(s.id),
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
                user_agent: s.user_agent,
                ip: s.ip,
            })
            .collect())
    }

    async fn delete_user_session(&self, user: UserId, id: SessionId) -> Result<bool, StoreError> {
        let done = sessions::Entity::delete_many()
            .filter(sessions::Column::Id.eq(id.as_uuid()))
            .filter(sessions::Column::UserId.eq(user.as_uuid()))
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected == 1)
    }

    async fn delete_other_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
    ) -> Result<u64, StoreError> {
        let mut query =
            sessions::Entity::delete_many().filter(sessions::Column::UserId.eq(user.as_uuid()));
        if let Some(keep) = keep {
            query = query.filter(sessions::Column::Id.ne(keep.as_uuid()));
        }
        Ok(query.exec(self.db()).await.map_err(db_err)?.rows_affected)
    }

    async fn touch_session(&self, id: SessionId, now: DateTime<Utc>) -> Result<(), StoreError> {
        // Guarded so a busy session writes about once a minute, not once a request.
        sessions::Entity::update_many()
            .col_expr(sessions::Column::LastUsedAt, Expr::value(now))
            .filter(sessions::Column::Id.eq(id.as_uuid()))
            .filter(
                sessions::Column::LastUsedAt
                    .is_null()
                    .or(sessions::Column::LastUsedAt.lt(now - chrono::Duration::minutes(1))),
            )
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn insert_api_key(&self, key: ApiKey) -> Result<(), StoreError> {
        api_key_row(key).insert(self.db()).await.map_err(db_err)?;
        Ok(())
    }

    async fn list_api_keys(&self, user: UserId) -> Result<Vec<ApiKey>, StoreError> {
        Ok(api_keys::Entity::find()
            .filter(api_keys::Column::UserId.eq(user.as_uuid()))
            .order_by_desc(api_keys::Column::Id)
            .all(self.db())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(api_key_from)
            .collect())
    }

    async fn revoke_api_key(
        &self,
        user: UserId,
        id: ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = api_keys::Entity::update_many()
            .col_expr(api_keys::Column::RevokedAt, Expr::value(Some(now)))
            .filter(api_keys::Column::Id.eq(id.as_uuid()))
            .filter(api_keys::Column::UserId.eq(user.as_uuid()))
            .filter(api_keys::Column::RevokedAt.is_null())
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected == 1)
    }
}

/// The row of a new API key (made by hand, or handed to an approved device).
pub(crate) fn api_key_row(key: ApiKey) -> api_keys::ActiveModel {
    api_keys::ActiveModel {
        id: Set(key.id.as_uuid()),
        user_id: Set(key.user_id.as_uuid()),
        name: Set(key.name),
        prefix: Set(key.prefix),
        token_digest: Set(key.token_digest),
        expires_at: Set(key.expires_at),
        revoked_at: Set(key.revoked_at),
        created_at: Set(key.created_at),
    }
}
