//! The organization-wide view: every member account's coverage side by side, the spread,
//! which techniques are covered everywhere, somewhere or nowhere (gaps ranked by how many
//! accounts lack them), and what the organization's own controls contribute across members.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::account::{AccountCoverage, TechniqueStatus};

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

/// Combines the accounts' coverage: `(cloud account id, provider id, coverage)`.
pub fn organization_coverage(
    accounts: &[(uuid::Uuid, String, AccountCoverage)],
) -> OrganizationCoverage {
    if accounts.is_empty() {
        return OrganizationCoverage::default();
    }
    let mut covered_in: BTreeMap<&str, u32> = BTreeMap::new();
    let mut rows = Vec::new();
    let mut contribution = OrganizationContribution::default();
    let mut only_inherited = 0usize;
    for (id, key, c) in accounts {
        for t in &c.techniques {
            let n = covered_in.entry(t.technique.as_str()).or_default();
            if t.status == TechniqueStatus::Covered {
                *n += 1;
            }
        }
        let b = &c.breakdown;
        contribution
            .techniques
            .extend(b.org_techniques.iter().cloned());
        if !b.org_techniques.is_empty() {
            contribution.accounts_reached += 1;
        }
        only_inherited += b.org_techniques.len() - b.overlap_techniques.len();
        rows.push(AccountRow {
            cloud_account_id: *id,
            account: key.clone(),
            own_techniques: b.account_techniques.len() as u32,
            inherited_techniques: b.org_techniques.len() as u32,
            total_techniques: b.total_techniques() as u32,
            percent: c.overall.percent,
            weakest_tactic: c.weakest_tactic().map(|(t, _)| t.clone()),
        });
    }
    rows.sort_by(|a, b| a.account.cmp(&b.account));
    let n = accounts.len() as u32;
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
    for (technique, count) in covered_in {
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
