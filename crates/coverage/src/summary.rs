//! The compact path to the organization-wide view: each account's own detections folded into
//! one byte per catalog entry ([`Marks`], kept by the store with every detection write), the
//! organization's detections folded once per distinct set that reaches accounts, and each
//! account's [`AccountSummary`] computed from the two by array indexing.
//!
//! It answers what [`crate::account::account_coverage`] answers, without contributors: the
//! organization view over 1,000 accounts reads 1,000 small rows instead of 100,000
//! detections. The property tests hold the two paths to the same numbers.

use std::collections::HashMap;

use canopy_cloud_org::organization::hierarchy::Hierarchy;
use canopy_detection::catalog::Catalog;
use canopy_detection::detection::{Detection, Scope, Status};
use canopy_detection::mapping::{Category, Value};

use crate::account::{AccountCoverage, Breakdown, Ratio, TechniqueStatus};
use crate::layout::Layout;

/// The best active value, 0 when no active detection maps to the entry.
const VALUE: u8 = 0b11;
/// A degraded detection maps to the entry.
const DEGRADED: u8 = 1 << 2;
/// A detection that could not be checked maps to the entry.
const UNKNOWN: u8 = 1 << 3;
/// The first of three category bits (detect, protect, respond), set by active detections.
const CATEGORY: u8 = 4;

/// The categories in the order of their bits and of [`AccountSummary::by_category`].
pub const CATEGORIES: [Category; 3] = [Category::Detect, Category::Protect, Category::Respond];

fn value_bits(value: Value) -> u8 {
    match value {
        Value::Minimal => 1,
        Value::Partial => 2,
        Value::Significant => 3,
    }
}

fn category_bit(category: Category) -> u8 {
    match category {
        Category::Detect => 1 << CATEGORY,
        Category::Protect => 1 << (CATEGORY + 1),
        Category::Respond => 1 << (CATEGORY + 2),
    }
}

/// A set of detections folded per catalog entry: what coverage needs of them, one byte per
/// IaaS entry (best active value, degraded, unknown, active categories).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marks {
    /// The catalog version the positions refer to.
    pub attack_version: String,
    /// Detections folded in, absent ones excluded (they count for nothing).
    pub detections: u32,
    /// One byte per IaaS catalog entry, in catalog order.
    pub marks: Vec<u8>,
}

impl Marks {
    /// No detection yet.
    pub fn empty(catalog: &Catalog) -> Self {
        Self {
            attack_version: catalog.version().to_string(),
            detections: 0,
            marks: vec![0; catalog.iaas().count()],
        }
    }

    /// Folds `detections` (absent ones count for nothing).
    pub fn of<'a>(catalog: &Catalog, detections: impl IntoIterator<Item = &'a Detection>) -> Self {
        let mut marks = Self::empty(catalog);
        Layout::with(catalog, |layout| {
            for d in detections {
                marks.fold(layout, d);
            }
        });
        marks
    }

    fn fold(&mut self, layout: &Layout, d: &Detection) {
        let bits = |t: &canopy_detection::detection::TechniqueScore| match d.status {
            Status::Active => value_bits(t.value) | category_bit(t.category),
            Status::Degraded => DEGRADED,
            Status::Unknown => UNKNOWN,
            Status::Absent => 0,
        };
        if d.status == Status::Absent {
            return;
        }
        self.detections += 1;
        for t in &d.techniques {
            if let Some(&i) = layout.positions.get(t.technique.as_str()) {
                self.marks[i] = combine(self.marks[i], bits(t));
            }
        }
    }

    /// Adds another set's marks, as if its detections had been folded in too.
    pub fn merge(&mut self, other: &Marks) {
        self.detections += other.detections;
        for (mine, theirs) in self.marks.iter_mut().zip(&other.marks) {
            *mine = combine(*mine, *theirs);
        }
    }

    /// Whether these marks were folded against `catalog` (else fold them again).
    pub fn fits(&self, catalog: &Catalog) -> bool {
        self.attack_version == catalog.version() && self.marks.len() == catalog.iaas().count()
    }
}

/// Two marks of one entry together: the better value, every flag.
fn combine(a: u8, b: u8) -> u8 {
    ((a & !VALUE) | (b & !VALUE)) | (a & VALUE).max(b & VALUE)
}

fn status_of(mark: u8) -> TechniqueStatus {
    if mark & VALUE != 0 {
        TechniqueStatus::Covered
    } else if mark & DEGRADED != 0 {
        TechniqueStatus::Degraded
    } else if mark & UNKNOWN != 0 {
        TechniqueStatus::Unknown
    } else {
        TechniqueStatus::Uncovered
    }
}

/// One catalog entry for one account, without its contributors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// Covered, degraded, unknown or uncovered.
    pub status: TechniqueStatus,
    /// Covered by an active detection of the account's own.
    pub by_own: bool,
    /// Covered by an active inherited detection.
    pub by_inherited: bool,
}

/// One account's coverage as numbers: what the organization view and the snapshots need.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSummary {
    /// Covered entries out of all.
    pub overall: Ratio,
    /// Degraded (not covered) entries.
    pub degraded: u32,
    /// Unknown entries.
    pub unknown: u32,
    /// Detect, protect, respond ([`CATEGORIES`] order).
    pub by_category: [Ratio; 3],
    /// Per tactic, in the catalog's kill-chain order.
    pub by_tactic: Vec<Ratio>,
    /// The account's own detections (not absent).
    pub account_detections: u32,
    /// Inherited detections that reach it (not absent).
    pub org_detections: u32,
    /// Techniques covered by own detections.
    pub account_techniques: u32,
    /// Techniques covered by inherited detections.
    pub org_techniques: u32,
    /// Techniques covered by both.
    pub overlap_techniques: u32,
    /// Every IaaS entry, in catalog order.
    pub cells: Vec<Cell>,
}

impl AccountSummary {
    /// The tactic with the lowest coverage (the first in kill-chain order on ties).
    pub fn weakest_tactic<'c>(&self, catalog: &'c Catalog) -> Option<&'c str> {
        self.by_tactic
            .iter()
            .enumerate()
            .filter(|(_, r)| r.total > 0)
            .min_by(|a, b| a.1.percent.total_cmp(&b.1.percent))
            .and_then(|(i, _)| catalog.tactics().get(i))
            .map(|t| t.shortname.as_str())
    }
}

impl AccountSummary {
    /// The spec's breakdown with its technique lists, as the full path gives it.
    pub fn breakdown(&self, catalog: &Catalog) -> Breakdown {
        let mut b = Breakdown {
            account_detections: self.account_detections,
            org_detections: self.org_detections,
            ..Breakdown::default()
        };
        for (entry, cell) in catalog.iaas().zip(&self.cells) {
            if cell.by_own {
                b.account_techniques.insert(entry.id.clone());
            }
            if cell.by_inherited {
                b.org_techniques.insert(entry.id.clone());
            }
            if cell.by_own && cell.by_inherited {
                b.overlap_techniques.insert(entry.id.clone());
            }
        }
        b
    }
}

impl From<&AccountCoverage> for AccountSummary {
    fn from(c: &AccountCoverage) -> Self {
        let b = &c.breakdown;
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            overall: c.overall,
            degraded: c.degraded,
            unknown: c.unknown,
            by_category: CATEGORIES.map(|k| {
                c.by_category
                    .get(&k)
                    .copied()
                    .unwrap_or(Ratio::new(0, c.overall.total))
            }),
            by_tactic: c.by_tactic.iter().map(|(_, r)| *r).collect(),
            account_detections: b.account_detections,
            org_detections: b.org_detections,
            account_techniques: len(b.account_techniques.len()),
            org_techniques: len(b.org_techniques.len()),
            overlap_techniques: len(b.overlap_techniques.len()),
            cells: c
                .techniques
                .iter()
                .map(|t| Cell {
                    status: t.status,
                    by_own: t.by_own,
                    by_inherited: t.by_inherited,
                })
                .collect(),
        }
    }
}

/// One account's summary from its own marks and the marks of what it inherits.
pub fn account_summary(catalog: &Catalog, own: &Marks, inherited: &Marks) -> AccountSummary {
    Layout::with(catalog, |layout| summarize(catalog, layout, own, inherited))
}

fn summarize(catalog: &Catalog, layout: &Layout, own: &Marks, inherited: &Marks) -> AccountSummary {
    let total = own.marks.len();
    let mut tactics = vec![(0u32, 0u32); catalog.tactics().len()];
    let mut categories = [0u32; 3];
    let (mut covered, mut degraded, mut unknown) = (0u32, 0u32, 0u32);
    let (mut by_own_count, mut by_inherited_count, mut overlap) = (0u32, 0u32, 0u32);
    let mut cells = Vec::with_capacity(total);
    for (i, (&mine, &theirs)) in own.marks.iter().zip(&inherited.marks).enumerate() {
        let mark = combine(mine, theirs);
        let status = status_of(mark);
        let by_own = mine & VALUE != 0;
        let by_inherited = theirs & VALUE != 0;
        match status {
            TechniqueStatus::Covered => covered += 1,
            TechniqueStatus::Degraded => degraded += 1,
            TechniqueStatus::Unknown => unknown += 1,
            TechniqueStatus::Uncovered => {}
        }
        for (k, slot) in categories.iter_mut().enumerate() {
            if mark & (1 << (CATEGORY as usize + k)) != 0 {
                *slot += 1;
            }
        }
        for &t in layout.tactics_of.get(i).map_or(&[][..], Vec::as_slice) {
            tactics[t].1 += 1;
            if status == TechniqueStatus::Covered {
                tactics[t].0 += 1;
            }
        }
        by_own_count += u32::from(by_own);
        by_inherited_count += u32::from(by_inherited);
        overlap += u32::from(by_own && by_inherited);
        cells.push(Cell {
            status,
            by_own,
            by_inherited,
        });
    }
    let total = u32::try_from(total).unwrap_or(u32::MAX);
    AccountSummary {
        overall: Ratio::new(covered, total),
        degraded,
        unknown,
        by_category: categories.map(|n| Ratio::new(n, total)),
        by_tactic: tactics
            .into_iter()
            .map(|(covered, under)| Ratio::new(covered, under))
            .collect(),
        account_detections: own.detections,
        org_detections: inherited.detections,
        account_techniques: by_own_count,
        org_techniques: by_inherited_count,
        overlap_techniques: overlap,
        cells,
    }
}

/// One member of a cloud organization as the compact path sees it.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    /// Its provider id (listed-account detections name it).
    pub key: &'a str,
    /// The node it sits under.
    pub parent: Option<&'a str>,
    /// Its own detections, folded.
    pub own: &'a Marks,
}

/// Every member's summary: its own marks plus those of the organization detections that
/// reach it. The organization's detections are folded once per distinct set of them that
/// reaches some account (accounts under the same OU share theirs), not once per account.
pub fn estate_summaries(
    catalog: &Catalog,
    hierarchy: &Hierarchy,
    members: &[Member<'_>],
    organization: &[Detection],
) -> Vec<AccountSummary> {
    let reaching: Vec<(&Detection, Marks)> = organization
        .iter()
        .filter(|d| d.status != Status::Absent && matches!(d.scope, Scope::Organization { .. }))
        .map(|d| (d, Marks::of(catalog, [d])))
        .collect();
    let mut folded: HashMap<Vec<usize>, Marks> = HashMap::new();
    members
        .iter()
        .map(|m| {
            let reach: Vec<usize> = reaching
                .iter()
                .enumerate()
                .filter(|(_, (d, _))| match &d.scope {
                    Scope::Organization { applies_to, .. } => {
                        applies_to.reaches(m.key, m.parent, hierarchy).is_some()
                    }
                    Scope::Account(_) => false,
                })
                .map(|(i, _)| i)
                .collect();
            let inherited = folded.entry(reach).or_insert_with_key(|reach| {
                let mut marks = Marks::empty(catalog);
                for &i in reach {
                    marks.merge(&reaching[i].1);
                }
                marks
            });
            account_summary(catalog, m.own, inherited)
        })
        .collect()
}
