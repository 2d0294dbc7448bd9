//! The Center for Threat-Informed Defense's scores of native cloud capabilities against ATT&CK
//! techniques (Security Stack Mappings, via Mappings Explorer), compiled in from
//! `data/control-mappings.json`: which techniques GuardDuty, Config, SCC, Resource Manager
//! and the rest detect, protect against or respond to, and how well. Canopy uses them as
//! published; where CTID scores nothing (CloudTrail trails and log sinks are log sources to
//! CTID; SCPs and organization policies depend on their content) Canopy's own table decides.

use std::sync::OnceLock;

use serde::Deserialize;

use crate::catalog::Catalog;

/// The generated scores, as shipped.
const DATA: &str = include_str!("../data/control-mappings.json");

/// The Apache-2.0 text the scores are licensed under, which goes with them.
pub const LICENSE: &str = include_str!("../data/LICENSE-Apache-2.0.txt");

/// What a control does about a technique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Notices it.
    Detect,
    /// Prevents it.
    Protect,
    /// Acts on it.
    Respond,
}

impl Category {
    /// Stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Detect => "detect",
            Category::Protect => "protect",
            Category::Respond => "respond",
        }
    }
}

/// How well, as CTID judges coverage of the technique's procedures, accuracy and
/// timeliness. Ordered: `Minimal < Partial < Significant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Value {
    /// Covers few procedures, or late.
    Minimal,
    /// Covers some.
    Partial,
    /// Covers most, accurately and in time.
    Significant,
}

impl Value {
    /// Stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Value::Minimal => "minimal",
            Value::Partial => "partial",
            Value::Significant => "significant",
        }
    }
}

/// One score: a technique, what the control does about it, and how well.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Score {
    /// `T1078.004`.
    pub technique: String,
    /// Detect, protect or respond.
    pub category: Category,
    /// Minimal, partial or significant.
    pub value: Value,
}

/// A native capability as CTID scored it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capability {
    /// `aws` or `gcp`.
    pub provider: String,
    /// `GuardDuty`.
    pub capability: String,
    /// CTID's id (`amazon_guardduty`).
    pub ctid_capability_id: String,
    /// The Canopy controls it stands for (`delegated GuardDuty administrator`).
    pub canopy_controls: Vec<String>,
    /// False when CTID does not score it (a log source such as CloudTrail).
    pub mappable: bool,
    /// Why, where the data says more.
    #[serde(default)]
    pub note: Option<String>,
    /// Scores of techniques in the IaaS catalog.
    pub mappings: Vec<Score>,
    /// Scores of techniques outside it (kept, not counted in IaaS coverage).
    pub outside_iaas: Vec<Score>,
}

#[derive(Debug, Deserialize)]
struct Raw {
    notice: String,
    capabilities: Vec<Capability>,
}

/// Why the shipped scores are not usable with the shipped catalog (a bad regeneration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// Not the generator's shape.
    #[error("the control mappings are not readable: {0}")]
    Unreadable(String),
    /// A score names a technique the catalog does not hold.
    #[error("{capability} scores {technique}, which is not in the ATT&CK catalog")]
    UnknownTechnique {
        /// CTID's capability id.
        capability: String,
        /// The technique.
        technique: String,
    },
}

/// Every capability's scores.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlMappings {
    notice: String,
    capabilities: Vec<Capability>,
}

impl ControlMappings {
    /// The scores shipped in this build, read once and checked against the shipped catalog.
    pub fn embedded() -> &'static ControlMappings {
        static MAPPINGS: OnceLock<ControlMappings> = OnceLock::new();
        MAPPINGS.get_or_init(|| {
            // Compiled-in data checked by this crate's tests; see `Catalog::embedded`.
            ControlMappings::parse(DATA, Catalog::embedded())
                .unwrap_or_else(|e| panic!("shipped control mappings: {e}"))
        })
    }

    /// Reads scores in the generator's shape; every IaaS score must name a technique of
    /// `catalog`.
    pub fn parse(json: &str, catalog: &Catalog) -> Result<Self, MappingError> {
        let raw: Raw =
            serde_json::from_str(json).map_err(|e| MappingError::Unreadable(e.to_string()))?;
        for c in &raw.capabilities {
            if let Some(s) = c
                .mappings
                .iter()
                .find(|s| catalog.technique(&s.technique).is_none())
            {
                return Err(MappingError::UnknownTechnique {
                    capability: c.ctid_capability_id.clone(),
                    technique: s.technique.clone(),
                });
            }
        }
        Ok(Self {
            notice: raw.notice,
            capabilities: raw.capabilities,
        })
    }

    /// CTID's copyright notice for the scores.
    pub fn notice(&self) -> &str {
        &self.notice
    }

    /// Every capability, AWS first, as shipped.
    pub fn capabilities(&self) -> &[Capability] {
        &self.capabilities
    }

    /// One capability by CTID id (`amazon_guardduty`).
    pub fn capability(&self, ctid_id: &str) -> Option<&Capability> {
        self.capabilities
            .iter()
            .find(|c| c.ctid_capability_id == ctid_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_scores_line_up_with_the_shipped_catalog() {
        let m = ControlMappings::embedded();
        let count = |provider: &str| {
            m.capabilities()
                .iter()
                .filter(|c| c.provider == provider)
                .map(|c| c.mappings.len())
                .sum::<usize>()
        };
        assert_eq!(count("aws"), 139);
        assert_eq!(count("gcp"), 70);
        assert!(m.notice().contains("Apache License"));
        assert!(LICENSE.contains("Apache License"));
    }

    #[test]
    fn capabilities_carry_ctid_scores_as_published() {
        let m = ControlMappings::embedded();
        let guardduty = m.capability("amazon_guardduty").unwrap();
        // 35 scores in the catalog, one of them of T1020, a parent kept only for its IaaS
        // sub-technique: 34 of IaaS techniques, as the generator counted.
        assert_eq!(guardduty.mappings.len(), 35);
        let catalog = Catalog::embedded();
        let iaas = guardduty
            .mappings
            .iter()
            .filter(|s| catalog.technique(&s.technique).is_some_and(|t| t.iaas))
            .count();
        assert_eq!(iaas, 34);
        assert_eq!(
            guardduty.canopy_controls,
            ["delegated GuardDuty administrator"]
        );
        assert!(
            guardduty
                .mappings
                .iter()
                .any(|s| s.technique == "T1020" && s.category == Category::Detect)
        );
        // A log source scores nothing: Canopy's own table has to.
        let trail = m.capability("aws_cloudtrail").unwrap();
        assert!(!trail.mappable && trail.mappings.is_empty());
        // No respond scores among the selected capabilities (the data's README says so).
        assert!(
            m.capabilities()
                .iter()
                .flat_map(|c| &c.mappings)
                .all(|s| s.category != Category::Respond)
        );
        assert!(Value::Minimal < Value::Partial && Value::Partial < Value::Significant);
    }

    #[test]
    fn a_score_of_a_technique_outside_the_catalog_is_refused() {
        let data = r#"{"notice":"n","capabilities":[{"provider":"aws","capability":"X",
            "ctidCapabilityId":"x","canopyControls":[],"mappable":true,
            "mappings":[{"technique":"T9999","category":"detect","value":"minimal"}],
            "outsideIaas":[]}]}"#;
        assert_eq!(
            ControlMappings::parse(data, Catalog::embedded()),
            Err(MappingError::UnknownTechnique {
                capability: "x".into(),
                technique: "T9999".into()
            })
        );
    }
}
