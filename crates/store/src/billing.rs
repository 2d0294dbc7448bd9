//! Billing repository ports on sea-orm, and the plan-limit check the tenancy and cloud-account
//! repositories run inside their own transactions.
//!
//! Every change that adds an account or a team member, and every tier change, first locks the
//! organization's row (PostgreSQL `SELECT … FOR UPDATE`; SQLite runs one transaction at a
//! time), then counts, then writes: so concurrent requests see each other's rows and a limit
//! cannot be overshot.

use async_trait::async_trait;
use canopy_billing::ports::{
    ChangeSubscriptionError, HistoryStore, Purged, SubscriptionRepository,
};
use canopy_billing::{
    Grace, LegacyCandidate, LegacyMove, LegacyTier, SubscribedTier, Subscription, Usage,
};
use canopy_kernel::id::OrganizationId;
use canopy_kernel::{LimitedResource, PlanLimitExceeded};
use canopy_tenancy::{NewAuditEvent, OrgRef, StoreError};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, Set, Statement, TransactionTrait,
};
use uuid::Uuid;

use crate::entity::{
    audit_events, cloud_account_checks, cloud_accounts, organizations, subscriptions,
};
use crate::tenancy::{insert_audit, placeholders};
use crate::{Store, db_err};

fn subscription_from(m: subscriptions::Model) -> Result<Subscription, StoreError> {
    let tier = SubscribedTier::from_stored(&m.tier)
        .ok_or_else(|| StoreError(format!("unknown tier in storage: {}", m.tier)))?;
    let grace = match (m.grace_until, m.grace_legacy_tier.as_deref()) {
        (Some(until), Some(legacy)) => Some(Grace {
            until,
            legacy_tier: LegacyTier::from_stored(legacy)
                .ok_or_else(|| StoreError(format!("unknown legacy tier in storage: {legacy}")))?,
        }),
        _ => None,
    };
    Ok(Subscription {
        organization_id: OrganizationId(m.organization_id),
        tier,
        grace,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

fn subscription_row(s: &Subscription) -> subscriptions::ActiveModel {
    subscriptions::ActiveModel {
        organization_id: Set(s.organization_id.as_uuid()),
        tier: Set(s.tier.as_str().to_string()),
        grace_until: Set(s.grace.map(|g| g.until)),
        grace_legacy_tier: Set(s.grace.map(|g| g.legacy_tier.as_str().to_string())),
        created_at: Set(s.created_at),
        updated_at: Set(s.updated_at),
    }
}

/// Stores the Free subscription every new organization starts on.
pub(crate) async fn insert_free_subscription(
    txn: &DatabaseTransaction,
    org: OrganizationId,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    subscription_row(&Subscription::free(org, at))
        .insert(txn)
        .await
        .map(|_| ())
}

/// What the limits count, in one round trip.
const USAGE_SQL: &str = "\
SELECT (SELECT COUNT(*) FROM cloud_accounts a WHERE a.organization_id = {p1}) AS cloud_accounts, \
       (SELECT COUNT(*) FROM memberships m WHERE m.organization_id = {p1}) AS members, \
       (SELECT COUNT(*) FROM invitations i WHERE i.organization_id = {p1} \
          AND i.status = 'pending' AND i.expires_at > {p2}) AS pending_invitations";

#[derive(Debug, FromQueryResult)]
struct UsageRow {
    cloud_accounts: i64,
    members: i64,
    pending_invitations: i64,
}

/// Legacy subscriptions with their organization's slug and account count.
const LEGACY_SQL: &str = "\
SELECT s.organization_id AS organization_id, o.slug AS slug, \
       (SELECT COUNT(*) FROM cloud_accounts a WHERE a.organization_id = s.organization_id) AS accounts \
FROM subscriptions s JOIN organizations o ON o.id = s.organization_id \
WHERE s.tier IN ('free_scan', 'subscriber') \
ORDER BY o.id";

#[derive(Debug, FromQueryResult)]
struct LegacyRow {
    organization_id: Uuid,
    slug: String,
    accounts: i64,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Counts what the limits apply to, on any connection (a transaction holding the
/// organization's lock, for the enforcing checks).
pub(crate) async fn usage_on(
    conn: &impl ConnectionTrait,
    org: OrganizationId,
    now: DateTime<Utc>,
) -> Result<Usage, DbErr> {
    let backend = conn.get_database_backend();
    let statement = Statement::from_sql_and_values(
        backend,
        placeholders(backend, USAGE_SQL, 2),
        [org.as_uuid().into(), now.into()],
    );
    let row = UsageRow::find_by_statement(statement)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("usage".into()))?;
    Ok(Usage {
        cloud_accounts: count(row.cloud_accounts),
        members: count(row.members),
        pending_invitations: count(row.pending_invitations),
    })
}

async fn subscription_on(
    conn: &impl ConnectionTrait,
    org: OrganizationId,
) -> Result<Option<subscriptions::Model>, DbErr> {
    subscriptions::Entity::find_by_id(org.as_uuid())
        .one(conn)
        .await
}

/// A refusal of the plan-limit check, or the database failing under it.
pub(crate) enum RoomError {
    /// The plan has no room.
    Full(PlanLimitExceeded),
    /// The database failed.
    Db(DbErr),
}

impl From<DbErr> for RoomError {
    fn from(e: DbErr) -> Self {
        RoomError::Db(e)
    }
}

/// Inside a transaction that holds the organization's lock: refuses one more `resource` when
/// the subscription's terms at `now` leave no room.
pub(crate) async fn ensure_room(
    txn: &DatabaseTransaction,
    org: OrganizationId,
    resource: LimitedResource,
    now: DateTime<Utc>,
) -> Result<(), RoomError> {
    let subscription = match subscription_on(txn, org).await? {
        Some(row) => subscription_from(row).map_err(|e| RoomError::Db(DbErr::Custom(e.0)))?,
        // Every organization gets its row at creation; a missing one is treated as Free.
        None => Subscription::free(org, now),
    };
    let usage = usage_on(txn, org, now).await?;
    subscription
        .terms(now)
        .room_for_one(resource, usage.count(resource))
        .map_err(RoomError::Full)
}

impl Store {
    async fn organization_id(&self, org: &OrgRef) -> Result<Option<OrganizationId>, StoreError> {
        match org {
            OrgRef::Id(id) => Ok(Some(*id)),
            OrgRef::Slug(slug) => Ok(organizations::Entity::find()
                .filter(organizations::Column::Slug.eq(slug.as_str()))
                .one(self.db())
                .await
                .map_err(db_err)?
                .map(|o| OrganizationId(o.id))),
        }
    }
}

#[async_trait]
impl SubscriptionRepository for Store {
    async fn get(&self, org: &OrgRef) -> Result<Option<Subscription>, StoreError> {
        let Some(id) = self.organization_id(org).await? else {
            return Ok(None);
        };
        subscription_on(self.db(), id)
            .await
            .map_err(db_err)?
            .map(subscription_from)
            .transpose()
    }

    async fn usage(&self, org: OrganizationId, now: DateTime<Utc>) -> Result<Usage, StoreError> {
        usage_on(self.db(), org, now).await.map_err(db_err)
    }

    async fn change(
        &self,
        next: Subscription,
        expected: SubscribedTier,
        now: DateTime<Utc>,
        audit: NewAuditEvent,
    ) -> Result<Subscription, ChangeSubscriptionError> {
        let org = next.organization_id;
        let txn = self.db().begin().await.map_err(db_err)?;
        if !self.lock_organization(&txn, org).await.map_err(db_err)? {
            return Err(ChangeSubscriptionError::NotFound);
        }
        let stored = subscription_on(&txn, org).await.map_err(db_err)?;
        if stored
            .as_ref()
            .is_some_and(|row| row.tier != expected.as_str())
        {
            return Err(ChangeSubscriptionError::Changed);
        }
        let usage = usage_on(&txn, org, now).await.map_err(db_err)?;
        let exceeded = next.terms(now).exceeded_by(&usage);
        if !exceeded.is_empty() {
            txn.rollback().await.map_err(db_err)?;
            return Err(ChangeSubscriptionError::Exceeds(exceeded));
        }
        let mut row = subscription_row(&next);
        // The creation time is the organization's; only the terms change.
        row.created_at = sea_orm::ActiveValue::NotSet;
        let saved = match stored {
            Some(_) => row.update(&txn).await.map_err(db_err)?,
            None => {
                row.created_at = Set(now);
                row.insert(&txn).await.map_err(db_err)?
            }
        };
        insert_audit(&txn, audit).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(subscription_from(saved)?)
    }

    async fn legacy_candidates(&self) -> Result<Vec<LegacyCandidate>, StoreError> {
        let backend = self.db().get_database_backend();
        let rows = LegacyRow::find_by_statement(Statement::from_string(backend, LEGACY_SQL))
            .all(self.db())
            .await
            .map_err(db_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(sub) = subscription_on(self.db(), OrganizationId(row.organization_id))
                .await
                .map_err(db_err)?
            else {
                continue;
            };
            out.push(LegacyCandidate {
                subscription: subscription_from(sub)?,
                organization_slug: row.slug,
                accounts: count(row.accounts),
            });
        }
        Ok(out)
    }

    async fn apply_legacy_moves(
        &self,
        moves: &[LegacyMove],
        now: DateTime<Utc>,
        audits: Vec<NewAuditEvent>,
    ) -> Result<(), StoreError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        // Organizations locked first and in id order, as every writer locks them first: no
        // connect can slip in between the check below and the update.
        let mut order: Vec<&LegacyMove> = moves.iter().collect();
        order.sort_by_key(|m| m.organization_id);
        for m in &order {
            self.lock_organization(&txn, m.organization_id)
                .await
                .map_err(db_err)?;
        }
        for m in order {
            let accounts = usage_on(&txn, m.organization_id, now)
                .await
                .map_err(db_err)?
                .cloud_accounts;
            let stale = |why: &str| {
                StoreError(format!(
                    "{} changed since the migration was planned ({why}); nothing was migrated, run it again",
                    m.organization_slug
                ))
            };
            if accounts != m.accounts {
                txn.rollback().await.map_err(db_err)?;
                return Err(stale("its account count"));
            }
            let updated = subscriptions::Entity::update_many()
                .col_expr(subscriptions::Column::Tier, Expr::value(m.to.as_str()))
                .col_expr(
                    subscriptions::Column::GraceUntil,
                    Expr::value(m.grace.map(|g| g.until)),
                )
                .col_expr(
                    subscriptions::Column::GraceLegacyTier,
                    Expr::value(m.grace.map(|g| g.legacy_tier.as_str().to_string())),
                )
                .col_expr(subscriptions::Column::UpdatedAt, Expr::value(now))
                .filter(subscriptions::Column::OrganizationId.eq(m.organization_id.as_uuid()))
                .filter(subscriptions::Column::Tier.eq(m.from.as_str()))
                .exec(&txn)
                .await
                .map_err(db_err)?;
            if updated.rows_affected != 1 {
                txn.rollback().await.map_err(db_err)?;
                return Err(stale("its tier"));
            }
        }
        for audit in audits {
            insert_audit(&txn, audit).await.map_err(db_err)?;
        }
        txn.commit().await.map_err(db_err)
    }

    async fn all(&self) -> Result<Vec<Subscription>, StoreError> {
        subscriptions::Entity::find()
            .order_by_asc(subscriptions::Column::OrganizationId)
            .all(self.db())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(subscription_from)
            .collect()
    }
}

#[async_trait]
impl HistoryStore for Store {
    async fn purge(
        &self,
        orgs: &[OrganizationId],
        before: DateTime<Utc>,
    ) -> Result<Purged, StoreError> {
        if orgs.is_empty() {
            return Ok(Purged::default());
        }
        let ids: Vec<Uuid> = orgs.iter().map(OrganizationId::as_uuid).collect();
        let audit = audit_events::Entity::delete_many()
            .filter(audit_events::Column::OrganizationId.is_in(ids.clone()))
            .filter(audit_events::Column::OccurredAt.lt(before))
            .exec(self.db())
            .await
            .map_err(db_err)?;
        let accounts = Query::select()
            .column(cloud_accounts::Column::Id)
            .from(cloud_accounts::Entity)
            .and_where(Expr::col(cloud_accounts::Column::OrganizationId).is_in(ids))
            .to_owned();
        let checks = cloud_account_checks::Entity::delete_many()
            .filter(cloud_account_checks::Column::CloudAccountId.in_subquery(accounts))
            .filter(cloud_account_checks::Column::CheckedAt.lt(before))
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(Purged {
            audit_events: audit.rows_affected,
            health_checks: checks.rows_affected,
        })
    }
}
