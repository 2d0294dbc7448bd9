//! The operator's work: the legacy-tier migration and the retention sweep.

use std::collections::BTreeMap;

use canopy_kernel::StoreError;
use canopy_kernel::id::OrganizationId;
use canopy_tenancy::{AuditAction, AuditTarget, NewAuditEvent, TargetKind};
use chrono::Duration;
use serde_json::json;

use super::BillingService;
use crate::legacy::{LegacyMove, plan_moves};
use crate::ports::Purged;

/// Organizations per purge statement, so one statement's parameter list stays small.
const PURGE_CHUNK: usize = 500;

/// What the legacy migration did or would do.
#[derive(Debug, Clone)]
pub struct LegacyMigration {
    /// The moves, one per legacy subscription.
    pub moves: Vec<LegacyMove>,
    /// False for a dry run.
    pub applied: bool,
}

impl BillingService {
    /// Plans the legacy-tier migration and, unless `dry_run`, applies it in one transaction
    /// with an audit event per organization.
    pub async fn migrate_legacy_tiers(&self, dry_run: bool) -> Result<LegacyMigration, StoreError> {
        let now = self.clock.now();
        let candidates = self.subscriptions.legacy_candidates().await?;
        let moves = plan_moves(&candidates, now);
        if dry_run || moves.is_empty() {
            return Ok(LegacyMigration {
                moves,
                applied: false,
            });
        }
        let audits = moves
            .iter()
            .map(|m| {
                NewAuditEvent::new(
                    m.organization_id,
                    None,
                    AuditAction::SubscriptionMigrated,
                    AuditTarget::new(TargetKind::Subscription, m.organization_id),
                    json!({
                        "from": m.from.as_str(),
                        "to": m.to.as_str(),
                        "accounts": m.accounts,
                        "oldMonthlyCents": m.old_monthly_cents,
                        "newMonthlyCents": m.new_monthly_cents,
                        "graceUntil": m.grace.map(|g| g.until.to_rfc3339()),
                    }),
                    now,
                )
            })
            .collect();
        self.subscriptions
            .apply_legacy_moves(&moves, now, audits)
            .await?;
        Ok(LegacyMigration {
            moves,
            applied: true,
        })
    }

    /// Deletes every organization's history older than its plan's retention.
    pub async fn purge_expired_history(&self) -> Result<Purged, StoreError> {
        let now = self.clock.now();
        let mut by_days: BTreeMap<u32, Vec<OrganizationId>> = BTreeMap::new();
        for sub in self.subscriptions.all().await? {
            if let Some(days) = sub.terms(now).limits.history_retention_days {
                by_days.entry(days).or_default().push(sub.organization_id);
            }
        }
        let mut purged = Purged::default();
        for (days, orgs) in by_days {
            let before = now - Duration::days(i64::from(days));
            for chunk in orgs.chunks(PURGE_CHUNK) {
                purged += self.history.purge(chunk, before).await?;
            }
        }
        Ok(purged)
    }
}
