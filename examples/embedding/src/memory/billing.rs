//! The billing ports over the in-memory database.

use async_trait::async_trait;
use canopy_billing::ports::{
    ChangeSubscriptionError, HistoryStore, Purged, SubscriptionRepository,
};
use canopy_billing::{LegacyCandidate, LegacyMove, SubscribedTier, Subscription, Usage};
use canopy_kernel::StoreError;
use canopy_kernel::id::OrganizationId;
use canopy_tenancy::{NewAuditEvent, OrgRef};
use chrono::{DateTime, Utc};

use super::Memory;

#[async_trait]
impl SubscriptionRepository for Memory {
    async fn get(&self, org: &OrgRef) -> Result<Option<Subscription>, StoreError> {
        let db = self.db();
        let Some(id) = db.org(org).map(|o| o.id) else {
            return Ok(None);
        };
        Ok(db
            .subscriptions
            .iter()
            .find(|s| s.organization_id == id)
            .cloned())
    }

    async fn usage(&self, org: OrganizationId, now: DateTime<Utc>) -> Result<Usage, StoreError> {
        Ok(self.db().usage(org, now))
    }

    async fn change(
        &self,
        next: Subscription,
        expected: SubscribedTier,
        now: DateTime<Utc>,
        audit: NewAuditEvent,
    ) -> Result<Subscription, ChangeSubscriptionError> {
        let mut db = self.db();
        let exceeded = next
            .terms(now)
            .exceeded_by(&db.usage(next.organization_id, now));
        let stored = db
            .subscriptions
            .iter_mut()
            .find(|s| s.organization_id == next.organization_id)
            .ok_or(ChangeSubscriptionError::NotFound)?;
        if stored.tier != expected {
            return Err(ChangeSubscriptionError::Changed);
        }
        if !exceeded.is_empty() {
            return Err(ChangeSubscriptionError::Exceeds(exceeded));
        }
        stored.tier = next.tier;
        stored.grace = next.grace;
        stored.updated_at = next.updated_at;
        let saved = stored.clone();
        db.audit.push(audit);
        Ok(saved)
    }

    async fn legacy_candidates(&self) -> Result<Vec<LegacyCandidate>, StoreError> {
        let db = self.db();
        Ok(db
            .subscriptions
            .iter()
            .filter(|s| matches!(s.tier, SubscribedTier::Legacy(_)))
            .filter_map(|s| {
                Some(LegacyCandidate {
                    organization_slug: db.org(&OrgRef::Id(s.organization_id))?.slug.to_string(),
                    subscription: s.clone(),
                    accounts: 0,
                })
            })
            .collect())
    }

    async fn apply_legacy_moves(
        &self,
        moves: &[LegacyMove],
        now: DateTime<Utc>,
        audits: Vec<NewAuditEvent>,
    ) -> Result<(), StoreError> {
        let mut db = self.db();
        // All or nothing: check every move before changing any.
        for m in moves {
            let current = db
                .subscriptions
                .iter()
                .find(|s| s.organization_id == m.organization_id);
            if current.map(|s| s.tier) != Some(SubscribedTier::Legacy(m.from)) {
                return Err(StoreError::internal(format!(
                    "{} changed since planning",
                    m.organization_slug
                )));
            }
        }
        for m in moves {
            if let Some(s) = db
                .subscriptions
                .iter_mut()
                .find(|s| s.organization_id == m.organization_id)
            {
                s.tier = SubscribedTier::Current(m.to);
                s.grace = m.grace;
                s.updated_at = now;
            }
        }
        db.audit.extend(audits);
        Ok(())
    }

    async fn all(&self) -> Result<Vec<Subscription>, StoreError> {
        Ok(self.db().subscriptions.clone())
    }
}

#[async_trait]
impl HistoryStore for Memory {
    async fn purge(
        &self,
        orgs: &[OrganizationId],
        before: DateTime<Utc>,
    ) -> Result<Purged, StoreError> {
        let mut db = self.db();
        let count = db.audit.len();
        db.audit
            .retain(|e| !(orgs.contains(&e.organization_id) && e.occurred_at < before));
        Ok(Purged {
            audit_events: (count - db.audit.len()) as u64,
            // This embedding keeps neither health checks nor coverage snapshots.
            health_checks: 0,
            coverage_snapshots: 0,
        })
    }
}
