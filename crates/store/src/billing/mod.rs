//! The billing ports on sea-orm (subscriptions, the history purge), and what the other
//! writers need from billing inside their own locked transactions: the Free subscription of a
//! new organization and the plan-limit check.

mod history;
mod room;
mod subscriptions;

use canopy_billing::{Grace, LegacyTier, SubscribedTier, Subscription, Usage};
use canopy_kernel::StoreError;
use canopy_kernel::id::OrganizationId;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, FromQueryResult,
    Set, Statement,
};

pub use history::HistoryPurge;
pub(crate) use room::ensure_room;
pub use subscriptions::SubscriptionStore;

use crate::entity;
use crate::error::corrupt;
use crate::sql::{count, placeholders};

fn subscription_from(m: entity::subscriptions::Model) -> Result<Subscription, StoreError> {
    let tier = SubscribedTier::from_stored(&m.tier).ok_or_else(|| corrupt("tier", &m.tier))?;
    let grace = match (m.grace_until, m.grace_legacy_tier.as_deref()) {
        (Some(until), Some(legacy)) => Some(Grace {
            until,
            legacy_tier: LegacyTier::from_stored(legacy)
                .ok_or_else(|| corrupt("legacy tier", legacy))?,
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

fn subscription_row(s: &Subscription) -> entity::subscriptions::ActiveModel {
    entity::subscriptions::ActiveModel {
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

pub(crate) async fn subscription_on(
    conn: &impl ConnectionTrait,
    org: OrganizationId,
) -> Result<Option<entity::subscriptions::Model>, DbErr> {
    entity::subscriptions::Entity::find_by_id(org.as_uuid())
        .one(conn)
        .await
}
