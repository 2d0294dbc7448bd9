//! Organizations: created with their owner and Free subscription, found for a member or a
//! credential in one round trip, renamed, deleted.

use async_trait::async_trait;
use canopy_kernel::StoreError;
use canopy_kernel::id::{ApiKeyId, OrganizationId, SessionId, UserId};
use canopy_tenancy::audit::NewAuditEvent;
use canopy_tenancy::credential::{CredentialKind, Principal};
use canopy_tenancy::membership::Role;
use canopy_tenancy::organization::{
    OrgRef, Organization, OrganizationPatch, OrganizationSummary, Slug,
};
use canopy_tenancy::ports::{CredentialAccess, OrganizationRepository, SlugConflict};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, FromQueryResult, PaginatorTrait,
    QueryFilter, Set, Statement, Value,
};
use uuid::Uuid;

use super::{insert_audit, membership_row, organization_from, organization_row, role_from};
use crate::billing::insert_free_subscription;
use crate::entity::{memberships, organizations};
use crate::error::{db_err, unique_violation};
use crate::sql::placeholders;
use crate::txn::Abort;

crate::repository!(
    /// Organizations.
    OrganizationStore,
    organizations
);

fn slug_taken(e: &DbErr) -> Option<SlugConflict> {
    match unique_violation(e) {
        Some(m) if m.contains("slug") => Some(SlugConflict::SlugTaken),
        _ => None,
    }
}

/// One round trip from a token digest to the caller and, if a member, the organization.
/// Sessions and API keys are tried together (UNION ALL) so either costs the same.
const CREDENTIAL_ACCESS_SQL: &str = "\
SELECT cred.kind AS kind, cred.user_id AS user_id, cred.credential_id AS credential_id, \
       o.id AS org_id, o.name AS org_name, o.slug AS org_slug, o.logo AS org_logo, \
       o.metadata AS org_metadata, o.created_at AS org_created_at, o.updated_at AS org_updated_at, \
       m.role AS role \
FROM ( \
    SELECT 'session' AS kind, s.user_id AS user_id, s.id AS credential_id \
    FROM sessions s WHERE s.token_digest = {p1} AND s.expires_at > {p2} \
    UNION ALL \
    SELECT 'api_key' AS kind, k.user_id AS user_id, k.id AS credential_id \
    FROM api_keys k WHERE k.token_digest = {p1} AND k.revoked_at IS NULL \
      AND (k.expires_at IS NULL OR k.expires_at > {p2}) \
) cred \
LEFT JOIN organizations o ON o.{org_column} = {p3} \
LEFT JOIN memberships m ON m.organization_id = o.id AND m.user_id = cred.user_id \
LIMIT 1";

#[derive(Debug, FromQueryResult)]
struct CredentialAccessRow {
    kind: String,
    user_id: Uuid,
    credential_id: Uuid,
    org_id: Option<Uuid>,
    org_name: Option<String>,
    org_slug: Option<String>,
    org_logo: Option<String>,
    org_metadata: Option<serde_json::Value>,
    org_created_at: Option<DateTime<Utc>>,
    org_updated_at: Option<DateTime<Utc>>,
    role: Option<String>,
}

/// Organizations of a user with their member counts, in one query.
const ORGANIZATIONS_OF_USER_SQL: &str = "\
SELECT o.id AS id, o.name AS name, o.slug AS slug, o.logo AS logo, o.metadata AS metadata, \
       o.created_at AS created_at, o.updated_at AS updated_at, m.role AS role, \
       (SELECT COUNT(*) FROM memberships c WHERE c.organization_id = o.id) AS member_count \
FROM memberships m JOIN organizations o ON o.id = m.organization_id \
WHERE m.user_id = {p1} \
ORDER BY m.id";

#[derive(Debug, FromQueryResult)]
struct OrganizationOfUserRow {
    id: Uuid,
    name: String,
    slug: String,
    logo: Option<String>,
    metadata: serde_json::Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    role: String,
    member_count: i64,
}

#[async_trait]
impl OrganizationRepository for OrganizationStore {
    async fn create(
        &self,
        organization: Organization,
        owner: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), SlugConflict> {
        let org = organization.id;
        let at = organization.created_at;
        self.store()
            .write_new_organization(
                organization_row(&organization),
                org,
                slug_taken,
                move |locked| {
                    Box::pin(async move {
                        insert_free_subscription(locked.txn(), org, at).await?;
                        membership_row(org, owner, Role::Owner, at)
                            .insert(locked.txn())
                            .await?;
                        insert_audit(locked, audit).await?;
                        Ok(())
                    })
                },
            )
            .await
    }

    async fn find_for_member(
        &self,
        org: &OrgRef,
        user: UserId,
    ) -> Result<Option<(Organization, Role)>, StoreError> {
        let mut query = memberships::Entity::find()
            .filter(memberships::Column::UserId.eq(user.as_uuid()))
            .find_also_related(organizations::Entity);
        query = match org {
            OrgRef::Id(id) => query.filter(memberships::Column::OrganizationId.eq(id.as_uuid())),
            OrgRef::Slug(slug) => query.filter(organizations::Column::Slug.eq(slug.as_str())),
        };
        match query.one(self.db()).await.map_err(db_err)? {
            Some((membership, Some(organization))) => Ok(Some((
                organization_from(organization),
                role_from(&membership.role)?,
            ))),
            _ => Ok(None),
        }
    }

    async fn find_for_credential(
        &self,
        digest: &str,
        now: DateTime<Utc>,
        org: &OrgRef,
    ) -> Result<Option<CredentialAccess>, StoreError> {
        let backend = self.db().get_database_backend();
        let (column, key): (&str, Value) = match org {
            OrgRef::Id(id) => ("id", id.as_uuid().into()),
            OrgRef::Slug(slug) => ("slug", slug.clone().into()),
        };
        let sql = placeholders(
            backend,
            &CREDENTIAL_ACCESS_SQL.replace("{org_column}", column),
            3,
        );
        let statement =
            Statement::from_sql_and_values(backend, sql, [digest.into(), now.into(), key]);
        let Some(row) = CredentialAccessRow::find_by_statement(statement)
            .one(self.db())
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let principal = Principal {
            user_id: UserId(row.user_id),
            credential: if row.kind == "session" {
                CredentialKind::Session(SessionId(row.credential_id))
            } else {
                CredentialKind::ApiKey(ApiKeyId(row.credential_id))
            },
        };
        let membership = match (
            row.role,
            row.org_id,
            row.org_name,
            row.org_slug,
            row.org_metadata,
            row.org_created_at,
            row.org_updated_at,
        ) {
            (
                Some(role),
                Some(id),
                Some(name),
                Some(slug),
                Some(metadata),
                Some(created_at),
                Some(updated_at),
            ) => Some((
                Organization {
                    id: OrganizationId(id),
                    name,
                    slug: Slug::from_trusted(slug),
                    logo: row.org_logo,
                    metadata,
                    created_at,
                    updated_at,
                },
                role_from(&role)?,
            )),
            _ => None,
        };
        Ok(Some((principal, membership)))
    }

    async fn list_for_user(&self, user: UserId) -> Result<Vec<OrganizationSummary>, StoreError> {
        let backend = self.db().get_database_backend();
        let statement = Statement::from_sql_and_values(
            backend,
            placeholders(backend, ORGANIZATIONS_OF_USER_SQL, 1),
            [user.as_uuid().into()],
        );
        OrganizationOfUserRow::find_by_statement(statement)
            .all(self.db())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|row| {
                Ok(OrganizationSummary {
                    role: role_from(&row.role)?,
                    member_count: u64::try_from(row.member_count).unwrap_or(0),
                    organization: Organization {
                        id: OrganizationId(row.id),
                        name: row.name,
                        slug: Slug::from_trusted(row.slug),
                        logo: row.logo,
                        metadata: row.metadata,
                        created_at: row.created_at,
                        updated_at: row.updated_at,
                    },
                })
            })
            .collect()
    }

    async fn update(
        &self,
        id: OrganizationId,
        patch: OrganizationPatch,
        now: DateTime<Utc>,
        audit: NewAuditEvent,
    ) -> Result<Organization, SlugConflict> {
        let updated =
            self.store()
                .write_locked(&[id], move |locked| {
                    Box::pin(async move {
                        let Some(row) = organizations::Entity::find_by_id(id.as_uuid())
                            .one(locked.txn())
                            .await?
                        else {
                            return Err(Abort::Refuse(SlugConflict::NotFound));
                        };
                        let mut active: organizations::ActiveModel = row.into();
                        if let Some(name) = patch.name {
                            active.name = Set(name);
                        }
                        if let Some(slug) = patch.slug {
                            active.slug = Set(slug.as_str().to_string());
                        }
                        if let Some(logo) = patch.logo {
                            active.logo = Set(logo);
                        }
                        if let Some(metadata) = patch.metadata {
                            active.metadata = Set(metadata);
                        }
                        active.updated_at = Set(now);
                        let updated = active.update(locked.txn()).await.map_err(|e| {
                            match slug_taken(&e) {
                                Some(refusal) => Abort::Refuse(refusal),
                                None => Abort::Db(e),
                            }
                        })?;
                        insert_audit(locked, audit).await?;
                        Ok(updated)
                    })
                })
                .await?
                .ok_or(SlugConflict::NotFound)?;
        Ok(organization_from(updated))
    }

    async fn delete(&self, id: OrganizationId) -> Result<bool, StoreError> {
        let result = organizations::Entity::delete_by_id(id.as_uuid())
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected == 1)
    }

    async fn slug_exists(&self, slug: &Slug) -> Result<bool, StoreError> {
        Ok(organizations::Entity::find()
            .filter(organizations::Column::Slug.eq(slug.as_str()))
            .count(self.db())
            .await
            .map_err(db_err)?
            > 0)
    }
}
