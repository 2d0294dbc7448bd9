//! Operator commands (`canopy admin …`) and the background retention sweep. Reports are
//! returned as text so the binary prints them and tests read them.

use std::fmt::Write as _;
use std::time::Duration;

use canopy_billing::{BillingService, LegacyMigration};
use canopy_store::{Outbox, OutboxFilter};
use tokio::task::JoinHandle;

fn dollars(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

/// `canopy admin set-tier`: sets any tier, Enterprise included, and says what is in force.
pub async fn set_tier(billing: &BillingService, org: &str, tier: &str) -> anyhow::Result<String> {
    let view = billing.set_tier_as_operator(org, tier).await?;
    Ok(format!(
        "organization {} is now on {} ({})",
        view.subscription.organization_id,
        view.subscription.tier.as_str(),
        view.terms.display_name
    ))
}

/// `canopy admin outbox`: the unsent messages (with their links), oldest first, as the mail
/// relay will send them; with `failed`, only those the mail server refused for good, with its
/// reply.
pub async fn outbox(
    outbox: &Outbox,
    recipient: Option<&str>,
    limit: u64,
    failed: bool,
) -> anyhow::Result<String> {
    let filter = if failed {
        OutboxFilter::Failed
    } else {
        OutboxFilter::Unsent
    };
    let messages = outbox.list(filter, recipient, Some(limit)).await?;
    let mut out = String::new();
    if messages.is_empty() {
        out.push_str(if failed {
            "No message failed.\n"
        } else {
            "The outbox is empty.\n"
        });
        return Ok(out);
    }
    for m in &messages {
        let state = match (m.failed_at, &m.last_error) {
            (Some(at), error) => format!(
                "FAILED at {} after {} attempt(s): {}",
                at.to_rfc3339(),
                m.attempts,
                error.as_deref().unwrap_or("no reason recorded")
            ),
            (None, Some(error)) => format!("{} attempt(s), last: {error}", m.attempts),
            (None, None) => "queued".to_string(),
        };
        let _ = writeln!(
            out,
            "--- {} {} to {} at {} ({state})\nSubject: {}\n\n{}",
            m.kind,
            m.id,
            m.recipient,
            m.created_at.to_rfc3339(),
            m.subject,
            m.body.trim_end()
        );
    }
    let _ = writeln!(
        out,
        "--- {} {} message(s).",
        messages.len(),
        if failed { "failed" } else { "unsent" }
    );
    Ok(out)
}

/// Drains the outbox into the mail server for as long as the process lives: a pass every
/// `poll` when the last one found nothing, at once again when it sent something. A failed
/// pass (the database away) is logged and tried at the next tick.
pub fn spawn_mail_relay(relay: canopy_tenancy::MailRelay, poll: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match relay.drain().await {
                Ok(r) if r.sent + r.retried + r.failed > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the mail relay could not read the outbox"),
            }
            tokio::time::sleep(poll).await;
        }
    })
}

/// Formats what the legacy migration did or would do.
pub fn legacy_report(migration: &LegacyMigration) -> String {
    let mut out = String::new();
    if migration.moves.is_empty() {
        out.push_str("No subscription is on a legacy tier; nothing to migrate.\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<28} {:<11} {:<11} {:>8} {:>12} {:>12}  {:<26} note",
        "organization", "from", "to", "accounts", "before/mo", "after/mo", "grace until"
    );
    for m in &migration.moves {
        let _ = writeln!(
            out,
            "{:<28} {:<11} {:<11} {:>8} {:>12} {:>12}  {:<26} {}",
            m.organization_slug,
            m.from.as_str(),
            m.to.as_str(),
            m.accounts,
            dollars(m.old_monthly_cents),
            dollars(m.new_monthly_cents),
            m.grace.map(|g| g.until.to_rfc3339()).unwrap_or_default(),
            m.note.unwrap_or_default(),
        );
    }
    let n = migration.moves.len();
    if migration.applied {
        let _ = writeln!(
            out,
            "{n} subscription(s) migrated in one transaction; each has an audit event."
        );
    } else {
        let _ = writeln!(
            out,
            "{n} subscription(s) would move (dry run: nothing changed). Run without --dry-run to apply."
        );
    }
    out
}

/// `canopy admin migrate-legacy-tiers [--dry-run]`.
pub async fn migrate_legacy_tiers(
    billing: &BillingService,
    dry_run: bool,
) -> anyhow::Result<String> {
    Ok(legacy_report(&billing.migrate_legacy_tiers(dry_run).await?))
}

/// `canopy admin purge-history`: one retention sweep now.
pub async fn purge_history(billing: &BillingService) -> anyhow::Result<String> {
    let purged = billing.purge_expired_history().await?;
    Ok(format!(
        "purged {} audit event(s), {} health check(s) and {} coverage snapshot(s) older than \
         their plan's retention",
        purged.audit_events, purged.health_checks, purged.coverage_snapshots
    ))
}

/// `canopy admin reseal-secrets`: moves every customer secret to the current secret key.
pub async fn reseal_secrets(
    cloud_orgs: &canopy_cloud_org::organization::service::CloudOrganizationService,
) -> anyhow::Result<String> {
    let report = cloud_orgs
        .reseal_secrets()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = format!(
        "re-sealed {} secret(s) with the current key\n",
        report.resealed
    );
    for (id, why) in &report.failed {
        out.push_str(&format!(
            "cloud organization {id}: {why} (ask its owner to reconnect it with a new key)\n"
        ));
    }
    if report.failed.is_empty() {
        out.push_str(
            "nothing is sealed with a retired key any more: retired keys can be dropped\n",
        );
    }
    Ok(out)
}

/// Runs the retention sweep now and then every `every`, for as long as the process lives.
/// A failed sweep is logged and retried at the next tick.
pub fn spawn_retention_sweep(billing: BillingService, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match billing.purge_expired_history().await {
                Ok(p) => tracing::info!(
                    audit_events = p.audit_events,
                    health_checks = p.health_checks,
                    coverage_snapshots = p.coverage_snapshots,
                    "retention sweep"
                ),
                Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
            }
        }
    })
}

/// Queues due re-syncs of cloud organizations every few minutes (each organization is
/// re-discovered `every` after its last attempt).
pub fn spawn_resync_schedule(
    cloud_orgs: canopy_cloud_org::organization::service::CloudOrganizationService,
    every: chrono::Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let check = (every / 12).to_std().unwrap_or(Duration::from_secs(60));
        let mut ticks = tokio::time::interval(check.max(Duration::from_secs(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match cloud_orgs.queue_due_syncs(every).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(queued = n, "scheduled cloud-organization re-syncs"),
                Err(e) => tracing::warn!(error = %e, "scheduling re-syncs failed"),
            }
        }
    })
}

/// Queues due detection scans of cloud organizations and their members every few minutes
/// (each is scanned `every` after its last organization scan).
pub fn spawn_scan_schedule(
    detections: canopy_detection::service::DetectionService,
    every: chrono::Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let check = (every / 24).to_std().unwrap_or(Duration::from_secs(60));
        let mut ticks = tokio::time::interval(check.max(Duration::from_secs(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match detections.queue_due_scans(every).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(queued = n, "scheduled detection scans"),
                Err(e) => tracing::warn!(error = %e, "scheduling detection scans failed"),
            }
        }
    })
}
