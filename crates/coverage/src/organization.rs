//! The organization-wide view: every member account's coverage side by side, the spread,
//! which techniques are covered everywhere, somewhere or nowhere (gaps ranked by how many
//! accounts lack them), and what the organization's own controls contribute across members.

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
    /// The tactic it covers worst.
    pub weakest_tactic: Option<String>,
}

/// A technique and how many accounts lack it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// `T1530`.
    pub technique: String,
    /// Accounts where it is not covered.
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
    /// Covered in none.
    pub in_none: BTreeSet<String>,
    /// Techniques not covered everywhere, most lacking first.
    pub gaps: Vec<Gap>,
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
    let mut inherited_somewhere = vec![false; ids.len()];
    let mut rows = Vec::with_capacity(accounts.len());
    let mut contribution = OrganizationContribution::default();
    let mut only_inherited = 0u64;
    for (id, key, s) in accounts {
        for (i, cell) in s.cells.iter().enumerate().take(ids.len()) {
            if cell.status == TechniqueStatus::Covered {
                covered_in[i] += 1;
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
    let by_id: BTreeMap<&str, u32> = ids.iter().copied().zip(covered_in).collect();
    for (technique, count) in by_id {
        let set = match count {
            c if c == n => &mut view.in_every,
            0 => &mut view.in_none,
            _ => &mut view.in_some,
        };
        set.insert(technique.to_string());
        if count < n {
            view.gaps.push(Gap {
                technique: technique.to_string(),
                accounts_lacking: n - count,
            });
        }
    }
    view.gaps.sort_by(|a, b| {
        b.accounts_lacking
            .cmp(&a.accounts_lacking)
            .then_with(|| a.technique.cmp(&b.technique))
    });
    view
}
