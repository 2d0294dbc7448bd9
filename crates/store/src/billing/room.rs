//! The plan-limit check the writers that add accounts or members run inside their locked
//! transaction, after the lock and before the insert: so concurrent requests see each other's
//! rows and a limit cannot be overshot.

use canopy_billing::Subscription;
use canopy_kernel::id::OrganizationId;
use canopy_kernel::{LimitedResource, PlanLimitExceeded};
use chrono::{DateTime, Utc};
use sea_orm::DbErr;

use super::{subscription_from, subscription_on, usage_on};
use crate::txn::{Abort, Locked};

/// Refuses one more `resource` when the subscription's terms at `now` leave no room.
pub(crate) async fn ensure_room<E: From<PlanLimitExceeded>>(
    locked: Locked<'_>,
    org: OrganizationId,
    resource: LimitedResource,
    now: DateTime<Utc>,
) -> Result<(), Abort<E>> {
    if !locked.holds(org) {
        return Err(Abort::Db(DbErr::Custom(format!(
            "plan room for {org} counted without its lock"
        ))));
    }
    let subscription = match subscription_on(locked.txn(), org).await? {
        Some(row) => subscription_from(row).map_err(|e| Abort::Db(DbErr::Custom(e.to_string())))?,
        // Every organization gets its row at creation; a missing one is treated as Free.
        None => Subscription::free(org, now),
    };
    let usage = usage_on(locked.txn(), org, now).await?;
    subscription
        .terms(now)
        .room_for_one(resource, usage.count(resource))
        .map_err(|limit| Abort::Refuse(E::from(limit)))
}
