//! Subscriptions: read, change under the organization lock (usage counted in the same
//! transaction), and the legacy-tier migration as one all-or-nothing transaction.

use async_trait::async_trait;
use canopy_billing::ports::{ChangeSubscriptionError, SubscriptionRepository};
use canopy_billing::{LegacyCandidate, LegacyMove, SubscribedTier, Subscription, Usage};
use canopy_kernel::StoreError;
use canopy_kernel::id::OrganizationId;
use canopy_tenancy::{NewAuditEvent, OrgRef};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, Set,
    Statement,
};
use uuid::Uuid;

use super::{count, subscription_from, subscription_on, subscription_row, usage_on};
use crate::entity::{organizations, subscriptions};
use crate::error::db_err;
use crate::tenancy::insert_audit;
use crate::txn::Abort;

crate::repository!(
    /// Subscriptions, one per organization.
    SubscriptionStore,
    subscriptions
);

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

impl SubscriptionStore {
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
impl SubscriptionRepository for SubscriptionStore {
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
        let saved = self
            .store()
            .write_locked(&[org], move |locked| {
                Box::pin(async move {
                    let stored = subscription_on(locked.txn(), org).await?;
                    if stored
                        .as_ref()
                        .is_some_and(|row| row.tier != expected.as_str())
                    {
                        return Err(Abort::Refuse(ChangeSubscriptionError::Changed));
                    }
                    let usage = usage_on(locked.txn(), org, now).await?;
                    let exceeded = next.terms(now).exceeded_by(&usage);
                    if !exceeded.is_empty() {
                        return Err(Abort::Refuse(ChangeSubscriptionError::Exceeds(exceeded)));
                    }
                    let mut row = subscription_row(&next);
                    // The creation time is the organization's; only the terms change.
                    row.created_at = sea_orm::ActiveValue::NotSet;
                    let saved = match stored {
                        Some(_) => row.update(locked.txn()).await?,
                        None => {
                            row.created_at = Set(now);
                            row.insert(locked.txn()).await?
                        }
                    };
                    insert_audit(locked, audit).await?;
                    Ok(saved)
                })
            })
            .await?
            .ok_or(ChangeSubscriptionError::NotFound)?;
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
        // Every organization locked first (in id order, by the helper): no connect can slip in
        // between the check below and the update.
        let orgs: Vec<OrganizationId> = moves.iter().map(|m| m.organization_id).collect();
        let moves = moves.to_vec();
        self.store()
            .write_locked(&orgs, move |locked| {
                Box::pin(async move {
                    for m in &moves {
                        let stale = |why: &str| {
                            Abort::Refuse(StoreError::internal(format!(
                                "{} changed since the migration was planned ({why}); nothing was migrated, run it again",
                                m.organization_slug
                            )))
                        };
                        let accounts = usage_on(locked.txn(), m.organization_id, now)
                            .await?
                            .cloud_accounts;
                        if accounts != m.accounts {
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
                            .filter(
                                subscriptions::Column::OrganizationId
                                    .eq(m.organization_id.as_uuid()),
                            )
                            .filter(subscriptions::Column::Tier.eq(m.from.as_str()))
                            .exec(locked.txn())
                            .await?;
                        if updated.rows_affected != 1 {
                            return Err(stale("its tier"));
                        }
                    }
                    for audit in audits {
                        insert_audit(locked, audit).await?;
                    }
                    Ok(())
                })
            })
            .await?
            .ok_or_else(|| {
                StoreError::internal(
                    "an organization was deleted since the migration was planned; nothing was migrated, run it again",
                )
            })
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
