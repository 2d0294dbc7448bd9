//! The move from the per-account legacy tiers to the current ones (spec "Migration
//! Strategy"), decided here as pure data so a dry run and the real run agree.

use canopy_kernel::id::OrganizationId;
use chrono::{DateTime, Months, Utc};

use crate::plan::{Tier, plan};
use crate::subscription::{
    Grace, LEGACY_SUBSCRIBER_CENTS_PER_ACCOUNT, LegacyTier, SubscribedTier, Subscription,
};

/// How long legacy subscribers moved to Pro keep their old rate and limits.
pub const GRACE_MONTHS: u32 = 3;

/// Subscribers with more accounts than this move to Pro (spec: "7+ accounts").
const INDIVIDUAL_MAX_ACCOUNTS: u64 = 6;

/// A legacy subscription with what the migration decides by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyCandidate {
    /// The subscription (its tier is a legacy one).
    pub subscription: Subscription,
    /// The organization's slug, for the operator's report.
    pub organization_slug: String,
    /// Connected cloud accounts.
    pub accounts: u64,
}

/// What the migration does to one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyMove {
    /// The organization.
    pub organization_id: OrganizationId,
    /// Its slug.
    pub organization_slug: String,
    /// The legacy tier it leaves.
    pub from: LegacyTier,
    /// The tier it lands on.
    pub to: Tier,
    /// Connected accounts, which decided `to`.
    pub accounts: u64,
    /// Monthly amount before, in US cents.
    pub old_monthly_cents: u64,
    /// Monthly amount after, in US cents, for the current accounts (during a grace period:
    /// the old per-account rate).
    pub new_monthly_cents: u64,
    /// The grace period granted, if any.
    pub grace: Option<Grace>,
    /// Something an operator should know (over a limit, contact the customer).
    pub note: Option<&'static str>,
}

fn old_monthly_cents(from: LegacyTier, accounts: u64) -> u64 {
    match from {
        LegacyTier::FreeScan => 0,
        LegacyTier::Subscriber => u64::from(LEGACY_SUBSCRIBER_CENTS_PER_ACCOUNT) * accounts,
    }
}

fn list_price(tier: Tier) -> u64 {
    plan(tier).price_monthly_cents.map_or(0, u64::from)
}

/// The move for one legacy subscription at `now`, per the spec's table: `free_scan` to Free,
/// `subscriber` with up to six accounts to Individual, with seven or more to Pro. The
/// three-month grace period at the old rate is for those whom Pro costs more (7-27 accounts at
/// $9 are under $250); from 28 accounts Pro is the cheaper price, so they move at once.
/// `None` for a subscription on a current tier.
pub fn plan_move(candidate: &LegacyCandidate, now: DateTime<Utc>) -> Option<LegacyMove> {
    let SubscribedTier::Legacy(from) = candidate.subscription.tier else {
        return None;
    };
    let accounts = candidate.accounts;
    let old = old_monthly_cents(from, accounts);
    let pro = list_price(Tier::Pro);
    let (to, grace, note) = match from {
        LegacyTier::FreeScan if accounts > 1 => (
            Tier::Free,
            None,
            Some("more accounts than Free allows: none is removed, new ones need an upgrade"),
        ),
        LegacyTier::FreeScan => (Tier::Free, None, None),
        LegacyTier::Subscriber if accounts <= 3 => (
            Tier::Individual,
            None,
            Some("more value: up to 6 accounts for a flat $29"),
        ),
        LegacyTier::Subscriber if accounts <= INDIVIDUAL_MAX_ACCOUNTS => {
            (Tier::Individual, None, Some("saves money: a flat $29"))
        }
        LegacyTier::Subscriber if old >= pro => {
            let note = if accounts > 500 {
                "more accounts than Pro allows: contact the customer about Enterprise"
            } else {
                "saves money: Pro's flat $250 is below the old per-account rate"
            };
            (Tier::Pro, None, Some(note))
        }
        LegacyTier::Subscriber => {
            let until = now
                .checked_add_months(Months::new(GRACE_MONTHS))
                .unwrap_or(now);
            (
                Tier::Pro,
                Some(Grace {
                    until,
                    legacy_tier: from,
                }),
                Some("contact the customer: Pro ($250) after three months at the old rate"),
            )
        }
    };
    Some(LegacyMove {
        organization_id: candidate.subscription.organization_id,
        organization_slug: candidate.organization_slug.clone(),
        from,
        to,
        accounts,
        old_monthly_cents: old,
        new_monthly_cents: if grace.is_some() { old } else { list_price(to) },
        grace,
        note,
    })
}

/// The moves for every candidate, in the order given.
pub fn plan_moves(candidates: &[LegacyCandidate], now: DateTime<Utc>) -> Vec<LegacyMove> {
    candidates
        .iter()
        .filter_map(|c| plan_move(c, now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn candidate(tier: &str, accounts: u64) -> LegacyCandidate {
        LegacyCandidate {
            subscription: Subscription {
                tier: SubscribedTier::from_stored(tier)
                    .unwrap_or(SubscribedTier::Current(Tier::Free)),
                ..Subscription::free(OrganizationId::new(), now())
            },
            organization_slug: format!("{tier}-{accounts}"),
            accounts,
        }
    }

    fn moved(tier: &str, accounts: u64) -> Option<LegacyMove> {
        plan_move(&candidate(tier, accounts), now())
    }

    #[test]
    fn the_spec_table_by_account_count() {
        let to = |tier, n| moved(tier, n).map(|m| (m.to, m.grace.is_some()));
        assert_eq!(to("free_scan", 1), Some((Tier::Free, false)));
        assert_eq!(to("subscriber", 1), Some((Tier::Individual, false)));
        assert_eq!(to("subscriber", 6), Some((Tier::Individual, false)));
        assert_eq!(to("subscriber", 7), Some((Tier::Pro, true)));
        assert_eq!(to("subscriber", 27), Some((Tier::Pro, true)));
        assert_eq!(to("subscriber", 28), Some((Tier::Pro, false)));
        assert_eq!(to("enterprise", 900), None);
        assert_eq!(to("pro", 9), None);
    }

    #[test]
    fn seven_or_more_keep_the_old_rate_for_three_calendar_months() {
        let m = moved("subscriber", 8).unwrap();
        let grace = m.grace.unwrap();
        assert_eq!(grace.legacy_tier, LegacyTier::Subscriber);
        assert_eq!(grace.until.to_rfc3339(), "2027-02-28T09:00:00+00:00");
        assert_eq!((m.old_monthly_cents, m.new_monthly_cents), (7_200, 7_200));
    }

    #[test]
    fn from_28_accounts_pro_is_cheaper_so_they_move_at_once_without_grace() {
        let m = moved("subscriber", 30).unwrap();
        assert_eq!(m.old_monthly_cents, 27_000);
        assert_eq!(
            (m.to, m.grace, m.new_monthly_cents),
            (Tier::Pro, None, 25_000)
        );
        assert!(
            m.note.is_some_and(|n| n.contains("saves money")),
            "{:?}",
            m.note
        );
        let m = moved("subscriber", 28).unwrap();
        assert_eq!((m.old_monthly_cents, m.new_monthly_cents), (25_200, 25_000));
        assert!(m.grace.is_none());
        // Up to 27 accounts the old rate is below Pro's: three months at it.
        let m = moved("subscriber", 27).unwrap();
        assert_eq!((m.old_monthly_cents, m.new_monthly_cents), (24_300, 24_300));
        assert!(m.grace.is_some());
        assert!(m.note.is_some_and(|n| n.contains("after three months")));
        let m = moved("subscriber", 600).unwrap();
        assert!(
            m.note.is_some_and(|n| n.contains("Enterprise")),
            "{:?}",
            m.note
        );
    }

    #[test]
    fn small_subscribers_pay_the_flat_individual_price() {
        let m = moved("subscriber", 3).unwrap();
        assert_eq!((m.old_monthly_cents, m.new_monthly_cents), (2_700, 2_900));
        assert!(m.note.is_some());
    }

    #[test]
    fn a_free_scan_over_the_limit_is_flagged_not_upgraded() {
        let m = moved("free_scan", 2).unwrap();
        assert_eq!(m.to, Tier::Free);
        assert!(m.note.is_some_and(|n| n.contains("upgrade")));
    }
}
