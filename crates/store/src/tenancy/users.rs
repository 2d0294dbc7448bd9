//! Users and their passwords.

use async_trait::async_trait;
use canopy_kernel::StoreError;
use canopy_kernel::id::{OrganizationId, UserId};
use canopy_tenancy::audit::NewAuditEvent;
use canopy_tenancy::membership::Role;
use canopy_tenancy::organization::Organization;
use canopy_tenancy::ports::{CreateUserError, NewUser, UserRepository};
use canopy_tenancy::user::{Email, User, UserCredentials};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, Set};

use super::{insert_audit, membership_row, organization_row, user_from};
use crate::billing::insert_free_subscription;
use crate::entity::users;
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
}
