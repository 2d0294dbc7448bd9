//! The table of security-relevant organization policy constraints (`constraints.json`, each
//! row with its reason), as typed data checked against the ATT&CK catalog.

use std::sync::OnceLock;

use canopy_detection::detection::TechniqueScore;
use canopy_detection::mapping::{Category, Value};
use serde::Deserialize;

/// The table, as shipped.
const DATA: &str = include_str!("constraints.json");

/// How a constraint's enforcement is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConstraintKind {
    /// On or off: a rule with `enforce: true`.
    Boolean,
    /// A list of values: `denyAll`, or allowed / denied values, restrict it.
    List,
}

/// One technique a constraint protects against, and how well.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ConstraintTechnique {
    /// `T1098.001`.
    pub technique: String,
    /// How well.
    pub value: Value,
}

/// A row of the table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ConstraintRule {
    /// `iam.disableServiceAccountKeyCreation` (as in a policy's name, no `constraints/`).
    pub constraint: String,
    /// How enforcement is read.
    pub kind: ConstraintKind,
    /// What an enforced policy protects against.
    pub techniques: Vec<ConstraintTechnique>,
    /// Why.
    pub reason: String,
}

impl ConstraintRule {
    /// Its techniques as protect scores.
    pub fn scores(&self) -> Vec<TechniqueScore> {
        self.techniques
            .iter()
            .map(|t| TechniqueScore::new(&t.technique, Category::Protect, t.value))
            .collect()
    }
}

#[derive(Deserialize)]
struct Table {
    constraints: Vec<ConstraintRule>,
}

/// Every row of the table.
pub fn constraint_rules() -> &'static [ConstraintRule] {
    static TABLE: OnceLock<Vec<ConstraintRule>> = OnceLock::new();
    // Compiled-in data checked by this module's tests.
    TABLE.get_or_init(|| {
        serde_json::from_str::<Table>(DATA)
            .map(|t| t.constraints)
            .unwrap_or_else(|e| panic!("shipped constraint table: {e}"))
    })
}

/// The row of `constraint` (with or without the `constraints/` prefix), if it matters.
pub(crate) fn rule(constraint: &str) -> Option<&'static ConstraintRule> {
    let bare = constraint
        .strip_prefix("constraints/")
        .unwrap_or(constraint);
    constraint_rules().iter().find(|r| r.constraint == bare)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use canopy_detection::catalog::Catalog;

    use super::*;

    #[test]
    fn every_row_names_catalog_techniques_once_with_a_reason() {
        let catalog = Catalog::embedded();
        let mut seen = HashSet::new();
        for row in constraint_rules() {
            assert!(
                seen.insert(row.constraint.as_str()),
                "{} twice",
                row.constraint
            );
            assert!(!row.reason.trim().is_empty(), "{}", row.constraint);
            assert!(!row.techniques.is_empty(), "{}", row.constraint);
            for t in &row.techniques {
                let found = catalog.technique(&t.technique);
                assert!(found.is_some(), "{} names {}", row.constraint, t.technique);
                assert!(found.is_some_and(|f| f.iaas), "{} is not IaaS", t.technique);
            }
        }
        assert!(constraint_rules().len() >= 10);
    }

    #[test]
    fn rules_are_found_with_or_without_the_prefix() {
        assert!(rule("constraints/iam.disableServiceAccountKeyCreation").is_some());
        assert!(rule("iam.disableServiceAccountKeyCreation").is_some());
        assert!(rule("compute.disableNestedVirtualization").is_none());
    }
}
