//! Tenancy repository ports on sea-orm.

use async_trait::async_trait;
use canopy_kernel::LimitedResource;
use canopy_kernel::PageRequest;
use canopy_kernel::id::{ApiKeyId, InvitationId, OrganizationId, SessionId, UserId};
use canopy_kernel::page::Page;
use canopy_tenancy::StoreError;
use canopy_tenancy::audit::{AuditEvent, NewAuditEvent};
use canopy_tenancy::credential::{ApiKey, CredentialKind, Principal, Session};
use canopy_tenancy::invitation::{Invitation, InvitationStatus, InvitationView};
use canopy_tenancy::membership::{Member, Role};
use canopy_tenancy::organization::{OrgRef, Organization, OrganizationPatch, OrganizationSummary};
use canopy_tenancy::ports::{
    AnswerInvitationError, AuditLog, CreateUserError, CredentialAccess, CredentialRepository,
    InvitationRepository, InviteError, MembershipChangeError, MembershipRepository, NewUser,
    OrganizationRepository, SlugConflict, UserRepository,
};
use canopy_tenancy::user::{User, UserCredentials};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr, TransactionTrait,
};
use sea_orm::{DbBackend, FromQueryResult, Statement, Value};
use uuid::Uuid;

use crate::billing::{RoomError, ensure_room, insert_free_subscription};
use crate::entity::{
    api_keys, audit_events, invitations, memberships, organizations, sessions, users,
};
use crate::{Store, db_err};

// ----- mappings ---------------------------------------------------------------------------

fn role_from(raw: &str) -> Result<Role, StoreError> {
    match raw {
        "owner" => Ok(Role::Owner),
        "admin" => Ok(Role::Admin),
        "member" => Ok(Role::Member),
        other => Err(StoreError(format!("unknown role in storage: {other}"))),
    }
}

fn user_from(m: users::Model) -> User {
    User {
        id: UserId(m.id),
        email: m.email,
        name: m.name,
        active_organization_id: m.active_organization_id.map(OrganizationId),
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

fn organization_from(m: organizations::Model) -> Organization {
    Organization {
        id: OrganizationId(m.id),
        name: m.name,
        slug: m.slug,
        logo: m.logo,
        metadata: m.metadata,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

fn member_from(m: memberships::Model, u: users::Model) -> Result<Member, StoreError> {
    Ok(Member {
        organization_id: OrganizationId(m.organization_id),
        user_id: UserId(m.user_id),
        name: u.name,
        email: u.email,
        role: role_from(&m.role)?,
        joined_at: m.created_at,
    })
}

fn invitation_from(m: invitations::Model) -> Result<Invitation, StoreError> {
    Ok(Invitation {
        id: InvitationId(m.id),
        organization_id: OrganizationId(m.organization_id),
        email: m.email,
        role: role_from(&m.role)?,
        status: InvitationStatus::from_stored(&m.status)
            .ok_or_else(|| StoreError(format!("unknown invitation status: {}", m.status)))?,
        invited_by: UserId(m.invited_by),
        expires_at: m.expires_at,
        created_at: m.created_at,
    })
}

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

fn audit_from(m: audit_events::Model) -> AuditEvent {
    AuditEvent {
        id: m.id.into(),
        organization_id: OrganizationId(m.organization_id),
        actor_id: m.actor_id.map(UserId),
        action: m.action,
        target_type: m.target_type,
        target_id: m.target_id,
        details: m.details,
        occurred_at: m.occurred_at,
    }
}

/// Which unique constraint a violation hit, by the column name the backend reports.
pub(crate) fn unique_violation(e: &DbErr) -> Option<String> {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(message)) => Some(message),
        _ => None,
    }
}

pub(crate) async fn insert_audit(
    txn: &DatabaseTransaction,
    audit: NewAuditEvent,
) -> Result<(), DbErr> {
    audit_events::ActiveModel {
        id: Set(audit.id.as_uuid()),
        organization_id: Set(audit.organization_id.as_uuid()),
        actor_id: Set(audit.actor_id.map(|a| a.as_uuid())),
        action: Set(audit.action),
        target_type: Set(audit.target_type),
        target_id: Set(audit.target_id),
        details: Set(audit.details),
        occurred_at: Set(audit.occurred_at),
    }
    .insert(txn)
    .await
    .map(|_| ())
}

fn organization_row(o: &Organization) -> organizations::ActiveModel {
    organizations::ActiveModel {
        id: Set(o.id.as_uuid()),
        name: Set(o.name.clone()),
        slug: Set(o.slug.clone()),
        logo: Set(o.logo.clone()),
        metadata: Set(o.metadata.clone()),
        created_at: Set(o.created_at),
        updated_at: Set(o.updated_at),
    }
}

fn membership_row(
    org: OrganizationId,
    user: UserId,
    role: Role,
    at: DateTime<Utc>,
) -> memberships::ActiveModel {
    memberships::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(org.as_uuid()),
        user_id: Set(user.as_uuid()),
        role: Set(role.as_str().to_string()),
        created_at: Set(at),
    }
}

/// Writes `{pN}` placeholders in the backend's syntax (`$N` or SQLite's `?N`).
pub(crate) fn placeholders(backend: DbBackend, sql: &str, count: usize) -> String {
    let mut out = sql.to_string();
    for n in 1..=count {
        let marker = match backend {
            DbBackend::Postgres => format!("${n}"),
            _ => format!("?{n}"),
        };
        out = out.replace(&format!("{{p{n}}}"), &marker);
    }
    out
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

impl Store {
    /// Serializes changes of one organization: on PostgreSQL by locking its row
    /// (`SELECT ... FOR UPDATE`); SQLite has a single connection, so transactions are serial.
    /// Every transaction that takes it takes it first, before any other row lock: the audit
    /// insert's foreign-key check share-locks the same row, so another order could deadlock.
    pub(crate) async fn lock_organization(
        &self,
        txn: &DatabaseTransaction,
        org: OrganizationId,
    ) -> Result<bool, DbErr> {
        let mut query = organizations::Entity::find_by_id(org.as_uuid());
        if self.is_postgres() {
            query = query.lock_exclusive();
        }
        Ok(query.one(txn).await?.is_some())
    }

    async fn owner_count(txn: &DatabaseTransaction, org: OrganizationId) -> Result<u64, DbErr> {
        memberships::Entity::find()
            .filter(memberships::Column::OrganizationId.eq(org.as_uuid()))
            .filter(memberships::Column::Role.eq(Role::Owner.as_str()))
            .count(txn)
            .await
    }

    async fn membership_row(
        txn: &impl ConnectionTrait,
        org: OrganizationId,
        user: UserId,
    ) -> Result<Option<memberships::Model>, DbErr> {
        memberships::Entity::find()
            .filter(memberships::Column::OrganizationId.eq(org.as_uuid()))
            .filter(memberships::Column::UserId.eq(user.as_uuid()))
            .one(txn)
            .await
    }

    /// Checks the last-owner rule for a change that takes `row` out of the owner role.
    async fn ensure_not_last_owner(
        txn: &DatabaseTransaction,
        org: OrganizationId,
        row: &memberships::Model,
    ) -> Result<(), MembershipChangeError> {
        if row.role == Role::Owner.as_str()
            && Self::owner_count(txn, org).await.map_err(db_err)? <= 1
        {
            return Err(MembershipChangeError::LastOwner);
        }
        Ok(())
    }

    async fn invitation_view(&self, m: invitations::Model) -> Result<InvitationView, StoreError> {
        let org = organizations::Entity::find_by_id(m.organization_id)
            .one(self.db())
            .await
            .map_err(db_err)?
            .ok_or_else(|| StoreError("invitation without organization".into()))?;
        let inviter = users::Entity::find_by_id(m.invited_by)
            .one(self.db())
            .await
            .map_err(db_err)?;
        Ok(InvitationView {
            invitation: invitation_from(m)?,
            organization_name: org.name,
            organization_slug: org.slug,
            invited_by_name: inviter.map(|u| u.name).unwrap_or_default(),
        })
    }
}

#[async_trait]
impl UserRepository for Store {
    async fn create_with_organization(
        &self,
        new: NewUser,
        organization: Organization,
        audit: NewAuditEvent,
    ) -> Result<(), CreateUserError> {
        let result: Result<(), DbErr> = async {
            let txn = self.db().begin().await?;
            organization_row(&organization).insert(&txn).await?;
            insert_free_subscription(&txn, organization.id, organization.created_at).await?;
            let u = &new.user;
            users::ActiveModel {
                id: Set(u.id.as_uuid()),
                email: Set(u.email.clone()),
                name: Set(u.name.clone()),
                password_hash: Set(new.password_hash.clone()),
                active_organization_id: Set(u.active_organization_id.map(|o| o.as_uuid())),
                created_at: Set(u.created_at),
                updated_at: Set(u.updated_at),
            }
            .insert(&txn)
            .await?;
            membership_row(organization.id, u.id, Role::Owner, u.created_at)
                .insert(&txn)
                .await?;
            insert_audit(&txn, audit).await?;
            txn.commit().await
        }
        .await;
        result.map_err(|e| match unique_violation(&e) {
            Some(m) if m.contains("email") => CreateUserError::EmailTaken,
            Some(m) if m.contains("slug") => CreateUserError::SlugTaken,
            _ => CreateUserError::Store(db_err(e)),
        })
    }

    async fn find_credentials(&self, email: &str) -> Result<Option<UserCredentials>, StoreError> {
        let row = users::Entity::find()
            .filter(users::Column::Email.eq(email))
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

#[async_trait]
impl CredentialRepository for Store {
    async fn insert_session(&self, session: Session) -> Result<(), StoreError> {
        sessions::ActiveModel {
            id: Set(session.id.as_uuid()),
            user_id: Set(session.user_id.as_uuid()),
            token_digest: Set(session.token_digest),
            expires_at: Set(session.expires_at),
            created_at: Set(session.created_at),
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
    ) -> Result<Option<Principal>, StoreError> {
        let session = sessions::Entity::find()
            .filter(sessions::Column::TokenDigest.eq(digest))
            .filter(sessions::Column::ExpiresAt.gt(now))
            .one(self.db())
            .await
            .map_err(db_err)?;
        if let Some(s) = session {
            return Ok(Some(Principal {
                user_id: UserId(s.user_id),
                credential: CredentialKind::Session(SessionId(s.id)),
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
        Ok(key.map(|k| Principal {
            user_id: UserId(k.user_id),
            credential: CredentialKind::ApiKey(ApiKeyId(k.id)),
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

    async fn insert_api_key(&self, key: ApiKey) -> Result<(), StoreError> {
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
        .insert(self.db())
        .await
        .map_err(db_err)?;
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

#[async_trait]
impl OrganizationRepository for Store {
    async fn create(
        &self,
        organization: Organization,
        owner: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), SlugConflict> {
        let result: Result<(), DbErr> = async {
            let txn = self.db().begin().await?;
            organization_row(&organization).insert(&txn).await?;
            insert_free_subscription(&txn, organization.id, organization.created_at).await?;
            membership_row(organization.id, owner, Role::Owner, organization.created_at)
                .insert(&txn)
                .await?;
            insert_audit(&txn, audit).await?;
            txn.commit().await
        }
        .await;
        result.map_err(|e| match unique_violation(&e) {
            Some(m) if m.contains("slug") => SlugConflict::SlugTaken,
            _ => SlugConflict::Store(db_err(e)),
        })
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
                    slug,
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
                        slug: row.slug,
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
        let result: Result<Option<organizations::Model>, DbErr> = async {
            let txn = self.db().begin().await?;
            let Some(row) = organizations::Entity::find_by_id(id.as_uuid())
                .one(&txn)
                .await?
            else {
                return Ok(None);
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
            let updated = active.update(&txn).await?;
            insert_audit(&txn, audit).await?;
            txn.commit().await?;
            Ok(Some(updated))
        }
        .await;
        match result {
            Ok(Some(model)) => Ok(organization_from(model)),
            Ok(None) => Err(SlugConflict::NotFound),
            Err(e) => Err(match unique_violation(&e) {
                Some(m) if m.contains("slug") => SlugConflict::SlugTaken,
                _ => SlugConflict::Store(db_err(e)),
            }),
        }
    }

    async fn delete(&self, id: OrganizationId) -> Result<bool, StoreError> {
        let result = organizations::Entity::delete_by_id(id.as_uuid())
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected == 1)
    }

    async fn slug_exists(&self, slug: &str) -> Result<bool, StoreError> {
        Ok(organizations::Entity::find()
            .filter(organizations::Column::Slug.eq(slug))
            .count(self.db())
            .await
            .map_err(db_err)?
            > 0)
    }
}

#[async_trait]
impl MembershipRepository for Store {
    async fn list(
        &self,
        org: OrganizationId,
        page: PageRequest,
    ) -> Result<Page<Member>, StoreError> {
        let mut query = memberships::Entity::find()
            .filter(memberships::Column::OrganizationId.eq(org.as_uuid()))
            .find_also_related(users::Entity)
            .order_by_asc(memberships::Column::Id)
            .limit(u64::from(page.limit) + 1);
        if let Some(after) = page.after {
            query = query.filter(memberships::Column::Id.gt(after.0));
        }
        let rows = query.all(self.db()).await.map_err(db_err)?;
        let page = Page::from_overfetch(rows, page.limit, |(m, _)| m.id);
        let mut items = Vec::with_capacity(page.items.len());
        for (m, u) in page.items {
            if let Some(u) = u {
                items.push(member_from(m, u)?);
            }
        }
        Ok(Page {
            items,
            next: page.next,
        })
    }

    async fn get(&self, org: OrganizationId, user: UserId) -> Result<Option<Member>, StoreError> {
        let row = memberships::Entity::find()
            .filter(memberships::Column::OrganizationId.eq(org.as_uuid()))
            .filter(memberships::Column::UserId.eq(user.as_uuid()))
            .find_also_related(users::Entity)
            .one(self.db())
            .await
            .map_err(db_err)?;
        match row {
            Some((m, Some(u))) => Ok(Some(member_from(m, u)?)),
            _ => Ok(None),
        }
    }

    async fn change_role(
        &self,
        org: OrganizationId,
        user: UserId,
        role: Role,
        audit: NewAuditEvent,
    ) -> Result<Member, MembershipChangeError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        if !self.lock_organization(&txn, org).await.map_err(db_err)? {
            return Err(MembershipChangeError::NotFound);
        }
        let row = Self::membership_row(&txn, org, user)
            .await
            .map_err(db_err)?
            .ok_or(MembershipChangeError::NotFound)?;
        if role != Role::Owner {
            Self::ensure_not_last_owner(&txn, org, &row).await?;
        }
        let mut active: memberships::ActiveModel = row.into();
        active.role = Set(role.as_str().to_string());
        active.update(&txn).await.map_err(db_err)?;
        insert_audit(&txn, audit).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        MembershipRepository::get(self, org, user)
            .await?
            .ok_or(MembershipChangeError::NotFound)
    }

    async fn remove(
        &self,
        org: OrganizationId,
        user: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), MembershipChangeError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        if !self.lock_organization(&txn, org).await.map_err(db_err)? {
            return Err(MembershipChangeError::NotFound);
        }
        let row = Self::membership_row(&txn, org, user)
            .await
            .map_err(db_err)?
            .ok_or(MembershipChangeError::NotFound)?;
        Self::ensure_not_last_owner(&txn, org, &row).await?;
        memberships::Entity::delete_by_id(row.id)
            .exec(&txn)
            .await
            .map_err(db_err)?;
        insert_audit(&txn, audit).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn transfer_ownership(
        &self,
        org: OrganizationId,
        from: UserId,
        to: UserId,
        audit: NewAuditEvent,
    ) -> Result<(), MembershipChangeError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        if !self.lock_organization(&txn, org).await.map_err(db_err)? {
            return Err(MembershipChangeError::NotFound);
        }
        let target = Self::membership_row(&txn, org, to)
            .await
            .map_err(db_err)?
            .ok_or(MembershipChangeError::NotFound)?;
        let source = Self::membership_row(&txn, org, from)
            .await
            .map_err(db_err)?
            .ok_or(MembershipChangeError::NotFound)?;
        let mut target: memberships::ActiveModel = target.into();
        target.role = Set(Role::Owner.as_str().to_string());
        target.update(&txn).await.map_err(db_err)?;
        let mut source: memberships::ActiveModel = source.into();
        source.role = Set(Role::Admin.as_str().to_string());
        source.update(&txn).await.map_err(db_err)?;
        insert_audit(&txn, audit).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl InvitationRepository for Store {
    async fn create_replacing(
        &self,
        invitation: Invitation,
        audit: NewAuditEvent,
    ) -> Result<(), InviteError> {
        // Two concurrent invites of one email can both find no pending row and race to insert;
        // the partial unique index turns the loser into a violation, and a retry replaces the
        // winner's invitation, as a sequential second invite would.
        let org = invitation.organization_id;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result: Result<(), RoomError> = async {
                let txn = self.db().begin().await?;
                self.lock_organization(&txn, org).await?;
                invitations::Entity::update_many()
                    .col_expr(
                        invitations::Column::Status,
                        Expr::value(InvitationStatus::Replaced.as_str()),
                    )
                    .filter(invitations::Column::OrganizationId.eq(org.as_uuid()))
                    .filter(invitations::Column::Email.eq(invitation.email.as_str()))
                    .filter(invitations::Column::Status.eq(InvitationStatus::Pending.as_str()))
                    .exec(&txn)
                    .await?;
                // Counted after the replacement: re-inviting someone takes no extra seat.
                ensure_room(
                    &txn,
                    org,
                    LimitedResource::TeamMembers,
                    invitation.created_at,
                )
                .await?;
                invitations::ActiveModel {
                    id: Set(invitation.id.as_uuid()),
                    organization_id: Set(org.as_uuid()),
                    email: Set(invitation.email.clone()),
                    role: Set(invitation.role.as_str().to_string()),
                    status: Set(invitation.status.as_str().to_string()),
                    invited_by: Set(invitation.invited_by.as_uuid()),
                    expires_at: Set(invitation.expires_at),
                    answered_at: Set(None),
                    created_at: Set(invitation.created_at),
                }
                .insert(&txn)
                .await?;
                insert_audit(&txn, audit.clone()).await?;
                Ok(txn.commit().await?)
            }
            .await;
            match result {
                Ok(()) => return Ok(()),
                Err(RoomError::Full(limit)) => return Err(InviteError::PlanLimit(limit)),
                Err(RoomError::Db(e)) if attempt < 3 && unique_violation(&e).is_some() => continue,
                Err(RoomError::Db(e)) => return Err(InviteError::Store(db_err(e))),
            }
        }
    }

    async fn list_pending(
        &self,
        org: OrganizationId,
        now: DateTime<Utc>,
        page: PageRequest,
    ) -> Result<Page<Invitation>, StoreError> {
        let mut query = invitations::Entity::find()
            .filter(invitations::Column::OrganizationId.eq(org.as_uuid()))
            .filter(invitations::Column::Status.eq(InvitationStatus::Pending.as_str()))
            .filter(invitations::Column::ExpiresAt.gt(now))
            .order_by_desc(invitations::Column::Id)
            .limit(u64::from(page.limit) + 1);
        if let Some(after) = page.after {
            query = query.filter(invitations::Column::Id.lt(after.0));
        }
        let rows = query.all(self.db()).await.map_err(db_err)?;
        let page = Page::from_overfetch(rows, page.limit, |m| m.id);
        let items = page
            .items
            .into_iter()
            .map(invitation_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            next: page.next,
        })
    }

    async fn cancel(
        &self,
        org: OrganizationId,
        id: InvitationId,
        audit: NewAuditEvent,
    ) -> Result<bool, StoreError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        // Organization first, like invite and accept: the audit insert's foreign-key check
        // takes a share lock on the organization row, so the other order could deadlock.
        self.lock_organization(&txn, org).await.map_err(db_err)?;
        let result = invitations::Entity::update_many()
            .col_expr(
                invitations::Column::Status,
                Expr::value(InvitationStatus::Cancelled.as_str()),
            )
            .filter(invitations::Column::Id.eq(id.as_uuid()))
            .filter(invitations::Column::OrganizationId.eq(org.as_uuid()))
            .filter(invitations::Column::Status.eq(InvitationStatus::Pending.as_str()))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        if result.rows_affected != 1 {
            txn.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        insert_audit(&txn, audit).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn list_for_email(
        &self,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<InvitationView>, StoreError> {
        let rows = invitations::Entity::find()
            .filter(invitations::Column::Email.eq(email))
            .filter(invitations::Column::Status.eq(InvitationStatus::Pending.as_str()))
            .filter(invitations::Column::ExpiresAt.gt(now))
            .order_by_desc(invitations::Column::Id)
            .limit(200)
            .all(self.db())
            .await
            .map_err(db_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.invitation_view(row).await?);
        }
        Ok(out)
    }

    async fn get(&self, id: InvitationId) -> Result<Option<InvitationView>, StoreError> {
        match invitations::Entity::find_by_id(id.as_uuid())
            .one(self.db())
            .await
            .map_err(db_err)?
        {
            Some(row) => Ok(Some(self.invitation_view(row).await?)),
            None => Ok(None),
        }
    }

    async fn accept(
        &self,
        id: InvitationId,
        user: UserId,
        now: DateTime<Utc>,
        audit: NewAuditEvent,
    ) -> Result<Member, AnswerInvitationError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        let Some(row) = invitations::Entity::find_by_id(id.as_uuid())
            .one(&txn)
            .await
            .map_err(db_err)?
        else {
            return Err(AnswerInvitationError::NotFound);
        };
        let org = OrganizationId(row.organization_id);
        // Serializes with invites and other accepts of the organization, for the seat count.
        self.lock_organization(&txn, org).await.map_err(db_err)?;
        // The status guard in the UPDATE is what makes acceptance single-use: a concurrent
        // accept waits on the row lock and then matches nothing.
        let updated = invitations::Entity::update_many()
            .col_expr(
                invitations::Column::Status,
                Expr::value(InvitationStatus::Accepted.as_str()),
            )
            .col_expr(invitations::Column::AnsweredAt, Expr::value(Some(now)))
            .filter(invitations::Column::Id.eq(id.as_uuid()))
            .filter(invitations::Column::Status.eq(InvitationStatus::Pending.as_str()))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        if updated.rows_affected != 1 {
            return Err(AnswerInvitationError::NotPending);
        }
        if Self::membership_row(&txn, org, user)
            .await
            .map_err(db_err)?
            .is_some()
        {
            return Err(AnswerInvitationError::AlreadyMember);
        }
        // This invitation no longer counts as pending inside the transaction, so the check is
        // "members and the other pending invitations leave a seat".
        match ensure_room(&txn, org, LimitedResource::TeamMembers, now).await {
            Ok(()) => {}
            Err(RoomError::Full(limit)) => {
                txn.rollback().await.map_err(db_err)?;
                return Err(AnswerInvitationError::PlanLimit(limit));
            }
            Err(RoomError::Db(e)) => return Err(AnswerInvitationError::Store(db_err(e))),
        }
        let role = role_from(&row.role)?;
        membership_row(org, user, role, now)
            .insert(&txn)
            .await
            .map_err(|e| {
                if unique_violation(&e).is_some() {
                    AnswerInvitationError::AlreadyMember
                } else {
                    AnswerInvitationError::Store(db_err(e))
                }
            })?;
        insert_audit(&txn, audit).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        MembershipRepository::get(self, org, user)
            .await?
            .ok_or(AnswerInvitationError::NotFound)
    }

    async fn reject(
        &self,
        id: InvitationId,
        audit: NewAuditEvent,
    ) -> Result<(), AnswerInvitationError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        // Organization first, in the same order as accept (see `cancel`).
        self.lock_organization(&txn, audit.organization_id)
            .await
            .map_err(db_err)?;
        let updated = invitations::Entity::update_many()
            .col_expr(
                invitations::Column::Status,
                Expr::value(InvitationStatus::Rejected.as_str()),
            )
            .col_expr(
                invitations::Column::AnsweredAt,
                Expr::value(Some(audit.occurred_at)),
            )
            .filter(invitations::Column::Id.eq(id.as_uuid()))
            .filter(invitations::Column::Status.eq(InvitationStatus::Pending.as_str()))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        if updated.rows_affected != 1 {
            return Err(AnswerInvitationError::NotPending);
        }
        insert_audit(&txn, audit).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl AuditLog for Store {
    async fn list(
        &self,
        org: OrganizationId,
        since: Option<DateTime<Utc>>,
        page: PageRequest,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let mut query = audit_events::Entity::find()
            .filter(audit_events::Column::OrganizationId.eq(org.as_uuid()))
            .order_by_desc(audit_events::Column::Id)
            .limit(u64::from(page.limit) + 1);
        if let Some(after) = page.after {
            query = query.filter(audit_events::Column::Id.lt(after.0));
        }
        if let Some(since) = since {
            query = query.filter(audit_events::Column::OccurredAt.gte(since));
        }
        let rows = query.all(self.db()).await.map_err(db_err)?;
        Ok(Page::from_overfetch(rows, page.limit, |m| m.id).map(audit_from))
    }
}
