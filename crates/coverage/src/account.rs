//! One account's coverage: which catalog techniques its effective detections (its own plus the
//! organization's that reach it) cover, how well, by category and by tactic, and how much of
//! it comes from the account, from the organization, and from both.
//!
//! The rules (docs/ARCHITECTURE.md, "Coverage"):
//! - The denominator is every entry of the IaaS catalog, techniques and sub-techniques alike,
//!   each counted on its own: a detection mapped to `T1562.008` covers `T1562.008`, not its
//!   parent `T1562`; one mapped to the parent covers the parent only. Sub-techniques are
//!   reported under their parent. Every IaaS entry applies to AWS and GCP alike, so none is
//!   excluded per provider.
//! - A technique is covered when at least one `active` effective detection maps to it; its
//!   quality is the best value among those. Otherwise it is `degraded` when a degraded one maps
//!   to it, else `unknown` when only detections that could not be checked do, else uncovered.
//!   `absent` detections count for nothing.
//! - The breakdown counts covered techniques from own and from inherited detections; the
//!   overlap is covered by both; own + inherited - overlap = covered, always.

use std::collections::{BTreeMap, BTreeSet};

use canopy_detection::catalog::Catalog;
use canopy_detection::detection::{AppliesBecause, DetectionId, Status};
use canopy_detection::mapping::{Category, Value};
use canopy_detection::service::{AccountDetection, Origin};
use serde::Serialize;

use crate::layout::Layout;

/// Where a technique stands for one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TechniqueStatus {
    /// An active detection maps to it.
    Covered,
    /// Only degraded detections map to it.
    Degraded,
    /// Only detections that could not be checked map to it.
    Unknown,
    /// Nothing maps to it.
    Uncovered,
}

/// A detection that maps to a technique, as the account sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contributor {
    /// The detection.
    pub detection_id: DetectionId,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: Status,
    /// What it does about the technique.
    pub category: Category,
    /// How well.
    pub value: Value,
    /// From the cloud organization rather than the account.
    pub inherited: bool,
    /// Inherited under this OU / folder.
    pub node: Option<String>,
}

/// One technique's coverage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TechniqueCoverage {
    /// `T1562.008`.
    pub technique: String,
    /// Its parent, for a sub-technique.
    pub parent: Option<String>,
    /// Covered, degraded, unknown or uncovered.
    pub status: TechniqueStatus,
    /// The best value among active detections, when covered.
    pub quality: Option<Value>,
    /// The categories active detections cover it in.
    pub categories: BTreeSet<Category>,
    /// Covered by an active detection of the account's own.
    pub by_own: bool,
    /// Covered by an active inherited detection.
    pub by_inherited: bool,
    /// Every non-absent detection that maps to it.
    pub contributors: Vec<Contributor>,
}

/// Covered out of total, and the percentage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratio {
    /// Covered.
    pub covered: u32,
    /// Out of.
    pub total: u32,
    /// `covered / total` in percent, one decimal.
    pub percent: f64,
}

impl Ratio {
    /// A ratio; 0 % of nothing.
    pub fn new(covered: u32, total: u32) -> Self {
        let percent = if total == 0 {
            0.0
        } else {
            (f64::from(covered) * 1000.0 / f64::from(total)).round() / 10.0
        };
        Self {
            covered,
            total,
            percent,
        }
    }
}

/// The spec's `coverage_breakdown`, with the technique lists.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Breakdown {
    /// The account's own detections (not absent).
    pub account_detections: u32,
    /// Inherited detections that reach it (not absent).
    pub org_detections: u32,
    /// Techniques covered by own detections.
    pub account_techniques: BTreeSet<String>,
    /// Techniques covered by inherited detections.
    pub org_techniques: BTreeSet<String>,
    /// Techniques covered by both.
    pub overlap_techniques: BTreeSet<String>,
}

impl Breakdown {
    /// Techniques covered at all: account + org - overlap.
    pub fn total_techniques(&self) -> usize {
        self.account_techniques.len() + self.org_techniques.len() - self.overlap_techniques.len()
    }
}

/// One account's coverage.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountCoverage {
    /// The catalog version it was measured against.
    pub attack_version: String,
    /// Every IaaS catalog entry, in catalog order.
    pub techniques: Vec<TechniqueCoverage>,
    /// Covered entries out of all.
    pub overall: Ratio,
    /// Degraded (not covered) entries.
    pub degraded: u32,
    /// Unknown entries.
    pub unknown: u32,
    /// Per category: entries an active detection covers in that category.
    pub by_category: BTreeMap<Category, Ratio>,
    /// Per tactic, in kill-chain order: entries under it covered.
    pub by_tactic: Vec<(String, Ratio)>,
    /// Own versus inherited.
    pub breakdown: Breakdown,
}

impl AccountCoverage {
    /// The tactic with the lowest coverage (the first in kill-chain order on ties).
    pub fn weakest_tactic(&self) -> Option<&(String, Ratio)> {
        self.by_tactic
            .iter()
            .filter(|(_, r)| r.total > 0)
            .min_by(|a, b| a.1.percent.total_cmp(&b.1.percent))
    }

    /// The covered techniques.
    pub fn covered(&self) -> impl Iterator<Item = &TechniqueCoverage> {
        self.techniques
            .iter()
            .filter(|t| t.status == TechniqueStatus::Covered)
    }
}

fn contributor(d: &AccountDetection, category: Category, value: Value) -> Contributor {
    let (inherited, node) = match &d.origin {
        Origin::Own => (false, None),
        Origin::Inherited { because, .. } => (
            true,
            match because {
                AppliesBecause::UnderNode(node) => Some(node.clone()),
                _ => None,
            },
        ),
    };
    Contributor {
        detection_id: d.detection.id,
        name: d.detection.name.clone(),
        status: d.detection.status,
        category,
        value,
        inherited,
        node,
    }
}

/// Computes one account's coverage from its effective detections.
pub fn account_coverage(catalog: &Catalog, effective: &[AccountDetection]) -> AccountCoverage {
    Layout::with(catalog, |layout| compute(catalog, layout, effective))
}

fn compute(catalog: &Catalog, layout: &Layout, effective: &[AccountDetection]) -> AccountCoverage {
    let entries: Vec<_> = catalog.iaas().collect();
    let mut slots: Vec<Vec<Contributor>> = vec![Vec::new(); entries.len()];
    let mut breakdown = Breakdown::default();
    for d in effective {
        if d.detection.status == Status::Absent {
            continue;
        }
        match d.origin {
            Origin::Own => breakdown.account_detections += 1,
            Origin::Inherited { .. } => breakdown.org_detections += 1,
        }
        for t in &d.detection.techniques {
            if let Some(&i) = layout.positions.get(t.technique.as_str()) {
                slots[i].push(contributor(d, t.category, t.value));
            }
        }
    }
    let mut tactics = vec![(0u32, 0u32); catalog.tactics().len()];
    let mut techniques = Vec::with_capacity(entries.len());
    for ((entry, contributors), tactics_of) in entries.iter().zip(slots).zip(&layout.tactics_of) {
        let active = || contributors.iter().filter(|c| c.status == Status::Active);
        let status = if active().next().is_some() {
            TechniqueStatus::Covered
        } else if contributors.iter().any(|c| c.status == Status::Degraded) {
            TechniqueStatus::Degraded
        } else if contributors.iter().any(|c| c.status == Status::Unknown) {
            TechniqueStatus::Unknown
        } else {
            TechniqueStatus::Uncovered
        };
        for &t in tactics_of {
            tactics[t].1 += 1;
            if status == TechniqueStatus::Covered {
                tactics[t].0 += 1;
            }
        }
        let by_own = active().any(|c| !c.inherited);
        let by_inherited = active().any(|c| c.inherited);
        if by_own {
            breakdown.account_techniques.insert(entry.id.clone());
        }
        if by_inherited {
            breakdown.org_techniques.insert(entry.id.clone());
        }
        if by_own && by_inherited {
            breakdown.overlap_techniques.insert(entry.id.clone());
        }
        techniques.push(TechniqueCoverage {
            technique: entry.id.clone(),
            parent: entry.parent.clone(),
            status,
            quality: active().map(|c| c.value).max(),
            categories: active().map(|c| c.category).collect(),
            by_own,
            by_inherited,
            contributors,
        });
    }
    let total = techniques.len() as u32;
    let count =
        |f: &dyn Fn(&TechniqueCoverage) -> bool| techniques.iter().filter(|t| f(t)).count() as u32;
    let by_category = [Category::Detect, Category::Protect, Category::Respond]
        .into_iter()
        .map(|c| (c, Ratio::new(count(&|t| t.categories.contains(&c)), total)))
        .collect();
    let by_tactic = catalog
        .tactics()
        .iter()
        .zip(tactics)
        .map(|(tactic, (covered, under))| (tactic.shortname.clone(), Ratio::new(covered, under)))
        .collect();
    AccountCoverage {
        attack_version: catalog.version().to_string(),
        overall: Ratio::new(count(&|t| t.status == TechniqueStatus::Covered), total),
        degraded: count(&|t| t.status == TechniqueStatus::Degraded),
        unknown: count(&|t| t.status == TechniqueStatus::Unknown),
        techniques,
        by_category,
        by_tactic,
        breakdown,
    }
}
