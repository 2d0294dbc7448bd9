//! The organization-wide view: every member account's coverage side by side, the spread,
//! which techniques are covered everywhere, somewhere or nowhere (gaps ranked by how many
//! accounts lack them), which are unknown where (a source that could not be read), and what
//! the organization's own controls contribute across members.
//!
//! Unknown is never uncovered: an account whose source could not be read counts for a
//! technique neither as covered nor as lacking it, so a denied GuardDuty makes no gap and no
//! "covered nowhere"; it shows in [`OrganizationCoverage::unknown`] instead.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use canopy_detection::catalog::Catalog;

use crate::account::TechniqueStatus;
use crate::summary::AccountSummary;

/// One account's line in the organization table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountRow {
    /// The cloud account.
    pub cloud_account_id: uuid::Uuid,
    /// Its provider id.
    pub account: String,
    /// Techniques covered by its own detections.
    pub own_techniques: u32,
    /// Techniques covered by inherited detections.
    pub inherited_techniques: u32,
    /// Techniques covered at all.
    pub total_techniques: u32,
    /// Coverage percent.
    pub percent: f64,
    /// Techniques whose coverage is unknown here (a source that could not be read).
    pub unknown_techniques: u32,
    /// The tactic it covers worst.
    pub weakest_tactic: Option<String>,
}

/// A technique and in how many accounts its coverage is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownTechnique {
    /// `T1530`.
    pub technique: String,
    /// Accounts where it is unknown.
    pub accounts: u32,
}

/// A technique and how many accounts lack it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// `T1530`.
    pub technique: String,
    /// Accounts known not to be covered (uncovered, or only degraded); unknown ones are not
    /// counted.
    pub accounts_lacking: u32,
}

/// What the organization's own controls add across its members.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct OrganizationContribution {
    /// Techniques inherited detections cover in at least one account.
    pub techniques: BTreeSet<String>,
    /// Accounts that inherit at least one covering detection.
    pub accounts_reached: u32,
    /// Per account on average: techniques covered only because of inherited detections.
    pub average_only_inherited: f64,
}

/// The organization-wide view.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct OrganizationCoverage {
    /// Per account, by provider id.
    pub accounts: Vec<AccountRow>,
    /// Mean coverage percent (0 with no account).
    pub average: f64,
    /// Lowest.
    pub min: f64,
    /// Highest.
    pub max: f64,
    /// Techniques covered in every account.
    pub in_every: BTreeSet<String>,
    /// Covered in some but not all.
    pub in_some: BTreeSet<String>,
    /// Covered in none, and known so in every account (none of them unknown).
    pub in_none: BTreeSet<String>,
    /// Techniques known to be lacking somewhere, most lacking first.
    pub gaps: Vec<Gap>,
    /// Techniques unknown in some accounts, most accounts first: neither covered nor gaps.
    pub unknown: Vec<UnknownTechnique>,
    /// What the organization's own controls contribute.
    pub organization: OrganizationContribution,
}

/// Combines the accounts' coverage: `(cloud account id, provider id, summary)`. Build the
/// summaries with [`crate::summary::estate_summaries`], or from full coverage with
/// `AccountSummary::from`; the two agree.
pub fn organization_coverage(
    catalog: &Catalog,
    accounts: &[(uuid::Uuid, String, AccountSummary)],
) -> OrganizationCoverage {
    if accounts.is_empty() {
        return OrganizationCoverage::default();
    }
    let ids: Vec<&str> = catalog.iaas().map(|t| t.id.as_str()).collect();
    let mut covered_in = vec![0u32; ids.len()];
    let mut unknown_in = vec![0u32; ids.len()];
    let mut inherited_somewhere = vec![false; ids.len()];
    let mut rows = Vec::with_capacity(accounts.len());
    let mut contribution = OrganizationContribution::default();
    let mut only_inherited = 0u64;
    for (id, key, s) in accounts {
        let mut unknown_here = 0;
        for (i, cell) in s.cells.iter().enumerate().take(ids.len()) {
            match cell.status {
                TechniqueStatus::Covered => covered_in[i] += 1,
                TechniqueStatus::Unknown => {
                    unknown_in[i] += 1;
                    unknown_here += 1;
                }
                TechniqueStatus::Degraded | TechniqueStatus::Uncovered => {}
            }
            inherited_somewhere[i] |= cell.by_inherited;
        }
        if s.org_techniques > 0 {
            contribution.accounts_reached += 1;
        }
        only_inherited += u64::from(s.org_techniques - s.overlap_techniques);
        rows.push(AccountRow {
            cloud_account_id: *id,
            account: key.clone(),
            own_techniques: s.account_techniques,
            inherited_techniques: s.org_techniques,
            total_techniques: s.account_techniques + s.org_techniques - s.overlap_techniques,
            percent: s.overall.percent,
            unknown_techniques: unknown_here,
            weakest_tactic: s.weakest_tactic(catalog).map(str::to_string),
        });
    }
    contribution.techniques = ids
        .iter()
        .zip(&inherited_somewhere)
        .filter(|(_, reached)| **reached)
        .map(|(t, _)| (*t).to_string())
        .collect();
    rows.sort_by(|a, b| a.account.cmp(&b.account));
    let n = u32::try_from(accounts.len()).unwrap_or(u32::MAX);
    contribution.average_only_inherited =
        (only_inherited as f64 / f64::from(n) * 10.0).round() / 10.0;
    let percents: Vec<f64> = rows.iter().map(|r| r.percent).collect();
    let mut view = OrganizationCoverage {
        average: (percents.iter().sum::<f64>() / f64::from(n) * 10.0).round() / 10.0,
        min: percents.iter().copied().fold(f64::INFINITY, f64::min),
        max: percents.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        accounts: rows,
        organization: contribution,
        ..OrganizationCoverage::default()
    };
    let by_id: BTreeMap<&str, (u32, u32)> = ids
        .iter()
        .copied()
        .zip(covered_in.into_iter().zip(unknown_in))
        .collect();
    for (technique, (covered, unknown)) in by_id {
        let set = match (covered, unknown) {
            (c, _) if c == n => Some(&mut view.in_every),
            (0, 0) => Some(&mut view.in_none),
            // Covered nowhere it is known: unknown, not "covered nowhere".
            (0, _) => None,
            _ => Some(&mut view.in_some),
        };
        if let Some(set) = set {
            set.insert(technique.to_string());
        }
        let lacking = n - covered - unknown;
        if lacking > 0 {
            view.gaps.push(Gap {
                technique: technique.to_string(),
                accounts_lacking: lacking,
            });
        }
        if unknown > 0 {
            view.unknown.push(UnknownTechnique {
                technique: technique.to_string(),
                accounts: unknown,
            });
        }
    }
    view.gaps.sort_by(|a, b| {
        b.accounts_lacking
            .cmp(&a.accounts_lacking)
            .then_with(|| a.technique.cmp(&b.technique))
    });
    view.unknown.sort_by(|a, b| {
        b.accounts
            .cmp(&a.accounts)
            .then_with(|| a.technique.cmp(&b.technique))
    });
    view
}
