//! Test support: databases (an in-memory SQLite, or a fresh PostgreSQL database per call so
//! test runs never see each other's rows), the contract-test macro, and the fixtures every
//! contract suite builds on (a user with an organization, a tier, an AWS account, a pending
//! invitation).

use std::collections::BTreeMap;

use canopy_billing::ports::{ChangeSubscriptionError, SubscriptionRepository};
use canopy_billing::{SubscribedTier, Subscription, Tier};
use canopy_cloud_org::account::{AccountInput, AccountStatus, CloudAccount, CloudAccountId};
use canopy_kernel::StoreError;
use canopy_kernel::id::{InvitationId, OrganizationId, UserId};
use canopy_tenancy::invitation::{Invitation, InvitationStatus};
use canopy_tenancy::membership::Role;
use canopy_tenancy::ports::{CreateUserError, NewUser, UserRepository};
use canopy_tenancy::{
    AuditAction, AuditTarget, Email, NewAuditEvent, OrgRef, Organization, Slug, TargetKind, User,
};
use chrono::{DateTime, Duration, DurationRound, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use crate::entity::subscriptions;
use crate::error::db_err;
use crate::{Store, StoreConfig};

/// Environment variable naming the PostgreSQL server for tests (any database on it; a new
/// one is created per call).
pub const POSTGRES_URL_ENV: &str = "CANOPY_TEST_POSTGRES_URL";

/// Used when [`POSTGRES_URL_ENV`] is unset; what `.ci/run` provisions.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/postgres";

/// A private in-memory SQLite database URL.
pub fn sqlite_memory_url() -> String {
    "sqlite::memory:".to_string()
}

fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.rfind('/') {
        Some(slash) if slash > base.find("://").map_or(0, |s| s + 2) => &base[..slash],
        _ => base,
    };
    match query {
        Some(q) => format!("{prefix}/{database}?{q}"),
        None => format!("{prefix}/{database}"),
    }
}

/// Creates an empty database named `canopy_test_<random>` on the server named by
/// [`POSTGRES_URL_ENV`] and returns its URL.
pub async fn fresh_postgres_url() -> Result<String, StoreError> {
    let server =
        std::env::var(POSTGRES_URL_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
    fresh_postgres_url_on(&server).await
}

/// Creates an empty database named `canopy_test_<random>` on `server` and returns its URL.
pub async fn fresh_postgres_url_on(server: &str) -> Result<String, StoreError> {
    let admin = Store::connect(&StoreConfig {
        max_connections: 2,
        ..StoreConfig::new(server)
    })
    .await?;
    let name = format!("canopy_test_{}", Uuid::now_v7().simple());
    execute_raw(&admin, &format!("CREATE DATABASE {name}")).await?;
    admin.close().await?;
    Ok(with_database(server, &name))
}

/// A table locked by an open transaction of the test's own (PostgreSQL), so a process's
/// write to it blocks until [`TableLock::release`]: for killing a process mid-transaction.
pub struct TableLock(sea_orm::DatabaseTransaction);

impl TableLock {
    /// Ends the transaction; the blocked writers go on (or find their process gone).
    pub async fn release(self) -> Result<(), StoreError> {
        self.0.rollback().await.map_err(db_err)
    }
}

/// Locks `table` against every other access until the returned lock is released.
pub async fn lock_table(store: &Store, table: &str) -> Result<TableLock, StoreError> {
    use sea_orm::TransactionTrait;
    let txn = store.db().begin().await.map_err(db_err)?;
    txn.execute_unprepared(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .await
        .map_err(db_err)?;
    Ok(TableLock(txn))
}

/// How many sessions of this database are waiting for a lock (PostgreSQL).
pub async fn sessions_waiting_on_locks(store: &Store) -> Result<i64, StoreError> {
    let row = store
        .db()
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT COUNT(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        ))
        .await
        .map_err(db_err)?;
    row.map_or(Ok(0), |r| r.try_get::<i64>("", "n").map_err(db_err))
}

/// Runs a raw statement, bypassing every rule (fixtures, fault injection); returns the rows
/// affected.
pub async fn execute_raw(store: &Store, sql: &str) -> Result<u64, StoreError> {
    store
        .db()
        .execute_unprepared(sql)
        .await
        .map(|r| r.rows_affected())
        .map_err(db_err)
}

/// Inserts a detection row with exactly the given scope columns, past every repository and
/// domain rule, so a test can show the database's own CHECK refusing it; returns the rows
/// inserted.
pub async fn insert_detection_row(
    store: &Store,
    org: OrganizationId,
    scope: &str,
    cloud_account: Option<Uuid>,
    cloud_organization: Option<Uuid>,
    key: &str,
) -> Result<u64, StoreError> {
    use crate::entity::detections;
    use sea_orm::ActiveValue::Set;
    let at = now();
    let row = detections::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(org.as_uuid()),
        detection_scope: Set(scope.to_string()),
        cloud_account_id: Set(cloud_account),
        cloud_organization_id: Set(cloud_organization),
        applies_to_all_accounts: Set(false),
        applies_to_account_ids: Set(None),
        applies_to_node_ids: Set(None),
        applies_to_excluded_node_ids: Set(None),
        target_id: Set(cloud_account
            .or(cloud_organization)
            .unwrap_or_else(Uuid::now_v7)),
        source: Set("custom".into()),
        resource_key: Set(key.into()),
        name: Set("raw".into()),
        description: Set(None),
        status: Set("active".into()),
        reason: Set(None),
        advice: Set(None),
        evidence: Set(json!({})),
        first_seen_at: Set(at),
        last_seen_at: Set(None),
        last_scan_job_id: Set(None),
        created_by: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    };
    detections::Entity::insert(row)
        .exec_without_returning(store.db())
        .await
        .map_err(db_err)
}

/// Takes migration `name` and every later one down, then up again, so a test can show
/// their `down` leaves a schema their `up` applies to again.
pub async fn redo_migrations_from(store: &Store, name: &str) -> Result<(), StoreError> {
    undo_migrations_from(store, name).await?;
    store.migrate().await
}

/// Takes migration `name` and every later one down (for a test that writes rows as the
/// schema before it had them, then migrates).
pub async fn undo_migrations_from(store: &Store, name: &str) -> Result<(), StoreError> {
    use canopy_migrations::{Migrator, MigratorTrait};
    let all = Migrator::migrations();
    let at = all
        .iter()
        .position(|m| m.name() == name)
        .ok_or_else(|| StoreError::internal(format!("no migration named {name}")))?;
    let count = u32::try_from(all.len() - at).unwrap_or(u32::MAX);
    Migrator::down(store.db(), Some(count))
        .await
        .map_err(db_err)
}

/// Writes `job` with the columns migration 5 created and nothing later, for a test that
/// undid later migrations (see [`undo_migrations_from`]) to write rows as they were.
pub async fn insert_job_as_created(
    store: &Store,
    job: &canopy_jobs::Job,
) -> Result<(), StoreError> {
    use crate::entity::jobs::Column as C;
    use sea_orm::sea_query::Query;
    let mut insert = Query::insert();
    insert
        .into_table(crate::entity::jobs::Entity)
        .columns([
            C::Id,
            C::OrganizationId,
            C::Kind,
            C::Subject,
            C::Payload,
            C::Status,
            C::Progress,
            C::Attempts,
            C::MaxAttempts,
            C::CancelRequested,
            C::LeaseOwner,
            C::LeaseExpiresAt,
            C::RunAfter,
            C::CreatedAt,
        ])
        .values_panic([
            job.id.as_uuid().into(),
            job.organization_id.as_uuid().into(),
            job.kind.as_str().into(),
            job.subject.into(),
            job.payload.clone().into(),
            job.status.as_str().into(),
            json!({"phase": job.progress.phase, "done": job.progress.done}).into(),
            i32::try_from(job.attempts).unwrap_or(0).into(),
            i32::try_from(job.max_attempts).unwrap_or(1).into(),
            job.cancel_requested.into(),
            job.lease_owner.as_ref().map(|w| w.0.clone()).into(),
            job.lease_expires_at.into(),
            job.run_after.into(),
            job.created_at.into(),
        ]);
    store.db().execute(&insert).await.map_err(db_err)?;
    Ok(())
}

/// A migrated store on a fresh database of the named backend (`sqlite` or `postgres`).
pub async fn migrated(backend: &str) -> Result<Store, StoreError> {
    let url = match backend {
        "postgres" => fresh_postgres_url().await?,
        _ => sqlite_memory_url(),
    };
    let store = Store::connect(&StoreConfig::new(url)).await?;
    store.migrate().await?;
    Ok(store)
}

/// Writes a subscription's stored tier as is, bypassing every rule (the schema's CHECK still
/// applies): for fixtures of a plan that shrank underneath, and of legacy subscriptions
/// imported from the per-account pricing.
pub async fn set_stored_tier(
    store: &Store,
    org: OrganizationId,
    tier: &str,
) -> Result<(), StoreError> {
    subscriptions::Entity::update_many()
        .col_expr(subscriptions::Column::Tier, Expr::value(tier))
        .filter(subscriptions::Column::OrganizationId.eq(org.as_uuid()))
        .exec(store.db())
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Now, at the microsecond precision PostgreSQL keeps, so values read back compare equal.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    t.duration_trunc(Duration::microseconds(1)).unwrap_or(t)
}

/// `prefix` with a random suffix, for slugs and emails that never collide between tests.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::now_v7().simple().to_string()[20..])
}

/// An audit event for a change of `org`.
pub fn audit(org: OrganizationId, action: AuditAction) -> NewAuditEvent {
    NewAuditEvent::new(
        org,
        None,
        action,
        AuditTarget::new(TargetKind::Organization, org),
        json!({}),
        now(),
    )
}

/// An organization with this slug (not stored).
pub fn organization(slug: &str) -> Organization {
    let at = now();
    Organization {
        id: OrganizationId::new(),
        name: format!("Org {slug}"),
        slug: Slug::parse(&slug.to_lowercase(), "slug")
            .unwrap_or_else(|e| panic!("fixture slug {slug}: {e:?}")),
        logo: None,
        metadata: json!({"defaultRegion": "eu-west-1"}),
        created_at: at,
        updated_at: at,
    }
}

/// Registers a user named `name` with a personal organization (on Free), as sign-up does.
pub async fn user_with_organization(
    store: &Store,
    name: &str,
) -> Result<(User, Organization), CreateUserError> {
    let org = organization(&unique(name));
    let at = now();
    let user = User {
        id: UserId::new(),
        email: Email::from_trusted(format!("{}@example.com", unique(name).to_lowercase())),
        name: name.to_string(),
        active_organization_id: Some(org.id),
        email_verified_at: Some(at),
        created_at: at,
        updated_at: at,
    };
    store
        .users()
        .create_with_organization(
            NewUser {
                user: user.clone(),
                password_hash: "$argon2id$fake".into(),
            },
            org.clone(),
            audit(org.id, AuditAction::OrganizationCreated),
        )
        .await?;
    Ok((user, org))
}

/// Puts `org` on `tier` (nothing happens when it is on it already).
pub async fn put_on_tier(
    store: &Store,
    org: OrganizationId,
    tier: Tier,
) -> Result<Subscription, ChangeSubscriptionError> {
    let current = store
        .subscriptions()
        .get(&OrgRef::Id(org))
        .await?
        .ok_or(ChangeSubscriptionError::NotFound)?;
    if current.tier == SubscribedTier::Current(tier) && current.grace.is_none() {
        return Ok(current);
    }
    let expected = current.tier;
    let next = Subscription {
        tier: SubscribedTier::Current(tier),
        grace: None,
        ..current
    };
    store
        .subscriptions()
        .change(
            next,
            expected,
            now(),
            audit(org, AuditAction::SubscriptionChanged),
        )
        .await
}

/// A stored organization on Enterprise (no account or member limit), for contracts about
/// something other than plan limits (billing_contract.rs has those).
pub async fn unlimited_organization(store: &Store) -> Result<Organization, StoreError> {
    let (_, org) = user_with_organization(store, "owner")
        .await
        .map_err(|e| StoreError::internal(format!("{e:?}")))?;
    put_on_tier(store, org.id, Tier::Enterprise)
        .await
        .map_err(|e| StoreError::internal(format!("{e:?}")))?;
    Ok(org)
}

/// A stored production AWS account of `org` with a random id, as connecting writes it.
pub async fn stored_aws_account(
    store: &Store,
    org: OrganizationId,
) -> Result<CloudAccount, StoreError> {
    use canopy_cloud_org::ports::CloudAccountRepository;
    let account = aws_account(org, &random_aws_account_id(), "production", &[]);
    store
        .cloud_accounts()
        .create(
            account.clone(),
            audit(org, AuditAction::CloudAccountConnected),
        )
        .await
        .map_err(|e| StoreError::internal(format!("{e:?}")))?;
    Ok(account)
}

/// A random 12-digit AWS account id.
pub fn random_aws_account_id() -> String {
    let bytes = Uuid::now_v7().into_bytes();
    let n = bytes[8..16]
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    format!("{:012}", n % 1_000_000_000_000)
}

/// A validated AWS account of `org` (not stored): role `CanopyAccess`, eu-west-1.
pub fn aws_account(
    org: OrganizationId,
    account_id: &str,
    environment: &str,
    tags: &[(&str, &str)],
) -> CloudAccount {
    let input = AccountInput {
        provider: "aws".into(),
        account_id: Some(account_id.into()),
        role_arn: Some(format!("arn:aws:iam::{account_id}:role/CanopyAccess")),
        region: Some("eu-west-1".into()),
        environment: Some(environment.into()),
        alias: Some(format!("acct {account_id}")),
        ses_domains: vec!["mail.example.com".into()],
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    };
    let (identity, settings) = match canopy_cloud_org::account::validate_new(&input) {
        Ok(valid) => valid,
        Err(e) => panic!("fixture account {account_id} is invalid: {e}"),
    };
    CloudAccount {
        id: CloudAccountId::new(),
        organization_id: org,
        identity,
        settings,
        status: AccountStatus::Pending,
        last_synced_at: None,
        last_error: None,
        placement: None,
        created_by: UserId::new(),
        created_at: now(),
        updated_at: now(),
    }
}

/// A pending invitation of `email` into `org` with `role`, expiring in 48 hours (not stored).
pub fn pending_invitation(
    org: OrganizationId,
    invited_by: UserId,
    email: &Email,
    role: Role,
) -> Invitation {
    Invitation {
        id: InvitationId::new(),
        organization_id: org,
        email: email.clone(),
        role,
        status: InvitationStatus::Pending,
        invited_by,
        expires_at: now() + Duration::hours(48),
        created_at: now(),
    }
}

/// Declares repository contract tests: each named `async fn(Store)` runs on a fresh SQLite
/// database, and (ignored unless `.ci/run` provides PostgreSQL) on a fresh PostgreSQL one.
#[macro_export]
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::testing::migrated("sqlite").await.unwrap()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[ignore = "needs postgres"]
                async fn $name() {
                    super::$name($crate::testing::migrated("postgres").await.unwrap()).await;
                }
            )*
        }
    };
}

/// The cloud-organization tables a sync writes to: what "an unchanged re-sync writes
/// nothing" is counted over.
pub const CLOUD_ORG_DATA_TABLES: [&str; 5] = [
    "cloud_org_nodes",
    "cloud_org_closure",
    "cloud_organization_members",
    "cloud_org_changes",
    "cloud_accounts",
];

/// Counts every row inserted, updated (even to the same values) or deleted in `tables` from
/// now on, with row triggers on either backend; read the count with [`writes_counted`]. For
/// tests and benchmarks that must show that doing nothing writes nothing.
pub async fn count_writes(store: &Store, tables: &[&str]) -> Result<(), StoreError> {
    let postgres = store.is_postgres();
    execute_raw(
        store,
        if postgres {
            "CREATE TABLE IF NOT EXISTS test_write_count (n BIGINT NOT NULL)"
        } else {
            "CREATE TABLE IF NOT EXISTS test_write_count (n INTEGER NOT NULL)"
        },
    )
    .await?;
    execute_raw(
        store,
        "INSERT INTO test_write_count SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM test_write_count)",
    )
    .await?;
    if postgres {
        execute_raw(
            store,
            "CREATE OR REPLACE FUNCTION test_count_write() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN UPDATE test_write_count SET n = n + 1; RETURN NULL; END $$",
        )
        .await?;
    }
    for table in tables {
        if postgres {
            execute_raw(
                store,
                &format!(
                    "CREATE TRIGGER test_count_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} \
                     FOR EACH ROW EXECUTE FUNCTION test_count_write()"
                ),
            )
            .await?;
        } else {
            for (suffix, event) in [("i", "INSERT"), ("u", "UPDATE"), ("d", "DELETE")] {
                execute_raw(
                    store,
                    &format!(
                        "CREATE TRIGGER test_count_{table}_{suffix} AFTER {event} ON {table} \
                         BEGIN UPDATE test_write_count SET n = n + 1; END"
                    ),
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Rows written to the tables [`count_writes`] watches since it was called.
pub async fn writes_counted(store: &Store) -> Result<u64, StoreError> {
    let backend = store.db().get_database_backend();
    let row = store
        .db()
        .query_one_raw(sea_orm::Statement::from_string(
            backend,
            "SELECT n FROM test_write_count",
        ))
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::internal("count_writes was not called"))?;
    let n: i64 = row.try_get("", "n").map_err(db_err)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_swapped_keeping_query() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u:p@h:5432", "x"),
            "postgres://u:p@h:5432/x"
        );
    }
}
