//! Users and their passwords.

use async_trait::async_trait;
use canopy_kernel::StoreError;
use canopy_kernel::id::{OrganizationId, SessionId, UserId};
use canopy_tenancy::account::{DeletedAccount, Redemption, UserToken};
use canopy_tenancy::audit::NewAuditEvent;
use canopy_tenancy::membership::Role;
use canopy_tenancy::organization::Organization;
use canopy_tenancy::ports::{
    CreateUserError, DeleteAccountError, NewUser, RedeemError, UserRepository,
};
use canopy_tenancy::user::{Email, User, UserCredentials};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, Set,
    TransactionTrait,
};

use super::{insert_audit, membership_row, organization_row, user_from};
use crate::billing::insert_free_subscription;
use crate::entity::{sessions, user_tokens, users};
use crate::error::{db_err, unique_violation};
use crate::txn::Abort;

crate::repository!(
    /// Users and their password hashes.
    UserStore,
    users
);

fn taken(e: &DbErr) -> Option<CreateUserError> {
    match unique_violation(e) {
        Some(m) if m.contains("email") => Some(CreateUserError::EmailTaken),
        Some(m) if m.contains("slug") => Some(CreateUserError::SlugTaken),
        _ => None,
    }
}

#[async_trait]
impl UserRepository for UserStore {
    async fn create_with_organization(
        &self,
        new: NewUser,
        organization: Organization,
        audit: NewAuditEvent,
    ) -> Result<(), CreateUserError> {
        let org = organization.id;
        self.store()
            .write_new_organization(organization_row(&organization), org, taken, move |locked| {
                Box::pin(async move {
                    insert_free_subscription(locked.txn(), org, organization.created_at).await?;
                    let u = &new.user;
                    users::ActiveModel {
                        id: Set(u.id.as_uuid()),
                        email: Set(u.email.as_str().to_string()),
                        name: Set(u.name.clone()),
                        password_hash: Set(new.password_hash.clone()),
                        active_organization_id: Set(u.active_organization_id.map(|o| o.as_uuid())),
                        email_verified_at: Set(u.email_verified_at),
                        created_at: Set(u.created_at),
                        updated_at: Set(u.updated_at),
                    }
                    .insert(locked.txn())
                    .await
                    .map_err(|e| match taken(&e) {
                        Some(refusal) => Abort::Refuse(refusal),
                        None => Abort::Db(e),
                    })?;
                    membership_row(org, u.id, Role::Owner, u.created_at)
                        .insert(locked.txn())
                        .await?;
                    insert_audit(locked, audit).await?;
                    Ok(())
                })
            })
            .await
    }

    async fn find_credentials(&self, email: &Email) -> Result<Option<UserCredentials>, StoreError> {
        let row = users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .one(self.db())
            .await
            .map_err(db_err)?;
        Ok(row.map(|m| {
            let password_hash = m.password_hash.clone();
            UserCredentials {
                user: user_from(m),
                password_hash,
            }
        }))
    }

    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(users::Entity::find_by_id(id.as_uuid())
            .one(self.db())
            .await
            .map_err(db_err)?
            .map(user_from))
    }

    async fn set_active_organization(
        &self,
        id: UserId,
        organization: Option<OrganizationId>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        users::Entity::update_many()
            .col_expr(
                users::Column::ActiveOrganizationId,
                Expr::value(organization.map(|o| o.as_uuid())),
            )
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(id.as_uuid()))
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn issue_token(&self, token: UserToken) -> Result<(), StoreError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        // Only the newest link of a purpose works: the earlier unused ones are used up now.
        user_tokens::Entity::update_many()
            .col_expr(user_tokens::Column::UsedAt, Expr::value(token.created_at))
            .filter(user_tokens::Column::UserId.eq(token.user_id.as_uuid()))
            .filter(user_tokens::Column::Purpose.eq(token.purpose.as_str()))
            .filter(user_tokens::Column::UsedAt.is_null())
            .exec(&txn)
            .await
            .map_err(db_err)?;
        user_tokens::ActiveModel {
            id: Set(token.id),
            user_id: Set(token.user_id.as_uuid()),
            purpose: Set(token.purpose.as_str().to_string()),
            token_digest: Set(token.token_digest),
            email: Set(token.email.as_str().to_string()),
            expires_at: Set(token.expires_at),
            used_at: Set(None),
            created_at: Set(token.created_at),
        }
        .insert(&txn)
        .await
        .map_err(db_err)?;
        txn.commit().await.map_err(db_err)
    }

    async fn redeem_token(
        &self,
        digest: &str,
        redemption: Redemption,
        now: DateTime<Utc>,
    ) -> Result<(User, Email), RedeemError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        let outcome = redeem(&txn, digest, redemption, now).await;
        match outcome {
            Ok(done) => {
                txn.commit().await.map_err(db_err)?;
                Ok(done)
            }
            Err(e) => {
                if let Err(rollback) = txn.rollback().await {
                    tracing::debug!(error = %rollback, "rollback after a refused redemption failed");
                }
                Err(e)
            }
        }
    }

    async fn set_password(
        &self,
        id: UserId,
        password_hash: String,
        keep: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(password_hash))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        let ended = end_sessions(&txn, id, keep).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(ended)
    }

    async fn mark_verified(&self, id: UserId, now: DateTime<Utc>) -> Result<(), StoreError> {
        users::Entity::update_many()
            .col_expr(users::Column::EmailVerifiedAt, Expr::value(now))
            .filter(users::Column::Id.eq(id.as_uuid()))
            .filter(users::Column::EmailVerifiedAt.is_null())
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn delete_account(
        &self,
        id: UserId,
        now: DateTime<Utc>,
    ) -> Result<Option<DeletedAccount>, DeleteAccountError> {
        self.store().delete_account(id, now).await
    }
}

/// Deletes the user's sessions but `keep`; how many.
async fn end_sessions(
    txn: &DatabaseTransaction,
    user: UserId,
    keep: Option<SessionId>,
) -> Result<u64, DbErr> {
    let mut query =
        sessions::Entity::delete_many().filter(sessions::Column::UserId.eq(user.as_uuid()));
    if let Some(keep) = keep {
        query = query.filter(sessions::Column::Id.ne(keep.as_uuid()));
    }
    Ok(query.exec(txn).await?.rows_affected)
}

/// The body of [`UserRepository::redeem_token`], inside its transaction.
async fn redeem(
    txn: &DatabaseTransaction,
    digest: &str,
    redemption: Redemption,
    now: DateTime<Utc>,
) -> Result<(User, Email), RedeemError> {
    let purpose = redemption.purpose();
    let Some(token) = user_tokens::Entity::find()
        .filter(user_tokens::Column::TokenDigest.eq(digest))
        .filter(user_tokens::Column::Purpose.eq(purpose.as_str()))
        .filter(user_tokens::Column::UsedAt.is_null())
        .one(txn)
        .await
        .map_err(db_err)?
    else {
        return Err(RedeemError::Invalid);
    };
    if token.expires_at <= now {
        return Err(RedeemError::Expired);
    }
    // The guard makes two concurrent redemptions of one link end with one winner.
    let used = user_tokens::Entity::update_many()
        .col_expr(user_tokens::Column::UsedAt, Expr::value(now))
        .filter(user_tokens::Column::Id.eq(token.id))
        .filter(user_tokens::Column::UsedAt.is_null())
        .exec(txn)
        .await
        .map_err(db_err)?;
    if used.rows_affected != 1 {
        return Err(RedeemError::Invalid);
    }
    let user = users::Entity::find_by_id(token.user_id)
        .one(txn)
        .await
        .map_err(db_err)?
        .ok_or(RedeemError::Invalid)?;
    let before = Email::from_trusted(user.email.clone());
    let id = UserId(user.id);
    let mut update = users::Entity::update_many()
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(user.id));
    match redemption {
        Redemption::VerifyEmail => {
            if token.email != user.email {
                return Err(RedeemError::Invalid);
            }
            if user.email_verified_at.is_none() {
                update = update.col_expr(users::Column::EmailVerifiedAt, Expr::value(now));
            }
        }
        Redemption::ChangeEmail => {
            update = update
                .col_expr(users::Column::Email, Expr::value(token.email.clone()))
                .col_expr(users::Column::EmailVerifiedAt, Expr::value(now));
        }
        Redemption::ResetPassword { password_hash } => {
            if token.email != user.email {
                return Err(RedeemError::Invalid);
            }
            update = update.col_expr(users::Column::PasswordHash, Expr::value(password_hash));
            if user.email_verified_at.is_none() {
                update = update.col_expr(users::Column::EmailVerifiedAt, Expr::value(now));
            }
            end_sessions(txn, id, None).await.map_err(db_err)?;
        }
    }
    update
        .exec(txn)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(_) => RedeemError::EmailTaken,
            None => RedeemError::Store(db_err(e)),
        })?;
    let after = users::Entity::find_by_id(user.id)
        .one(txn)
        .await
        .map_err(db_err)?
        .ok_or(RedeemError::Invalid)?;
    Ok((user_from(after), before))
}
