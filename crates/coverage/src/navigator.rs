//! ATT&CK Navigator layers (layer format 4.5) of an account's or a cloud organization's
//! coverage, to open in the Navigator: the quality as the score, the contributing detections
//! (and whether inherited) in the comment and metadata.

use serde::Serialize;

use crate::account::{AccountCoverage, TechniqueStatus};
use canopy_detection::catalog::Catalog;
use canopy_detection::mapping::Value;

/// The layer format version written.
pub const LAYER_VERSION: &str = "4.5";

/// The Navigator version the layers were checked with.
pub const NAVIGATOR_VERSION: &str = "5.1.0";

/// Versions a layer names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Versions {
    /// ATT&CK major version (`18`).
    pub attack: String,
    /// Navigator version.
    pub navigator: String,
    /// Layer format.
    pub layer: String,
}

/// A name / value pair shown with a technique.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metadata {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// One technique cell (per tactic).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerTechnique {
    /// `T1562.008`.
    #[serde(rename = "techniqueID")]
    pub technique_id: String,
    /// The tactic column (`defense-evasion`).
    pub tactic: String,
    /// Account layers: 0 uncovered, 1 minimal, 2 partial, 3 significant. Organization layers:
    /// percent of accounts covered.
    pub score: f64,
    /// `#rrggbb` for states the score does not show (degraded, unknown); empty otherwise.
    pub color: String,
    /// The contributing detections, for people.
    pub comment: String,
    /// Shown.
    pub enabled: bool,
    /// Status, quality, detections and where they come from.
    pub metadata: Vec<Metadata>,
    /// Expand a parent's sub-techniques when any is scored.
    pub show_subtechniques: bool,
}

/// The score colour scale.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gradient {
    /// From low to high.
    pub colors: Vec<String>,
    /// Lowest score.
    pub min_value: f64,
    /// Highest score.
    pub max_value: f64,
}

/// A legend entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegendItem {
    /// What it means.
    pub label: String,
    /// `#rrggbb`.
    pub color: String,
}

/// A Navigator layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    /// Name.
    pub name: String,
    /// Versions.
    pub versions: Versions,
    /// Always `enterprise-attack`.
    pub domain: String,
    /// What it shows.
    pub description: String,
    /// The cells.
    pub techniques: Vec<LayerTechnique>,
    /// The score scale.
    pub gradient: Gradient,
    /// The legend.
    pub legend_items: Vec<LegendItem>,
    /// Hide cells that are not enabled.
    pub hide_disabled: bool,
}

const DEGRADED: &str = "#f6b26b";
const UNKNOWN: &str = "#b7b7b7";

fn cells(
    catalog: &Catalog,
    technique: &str,
    score: f64,
    color: &str,
    comment: String,
    metadata: Vec<Metadata>,
) -> Vec<LayerTechnique> {
    let Some(entry) = catalog.technique(technique) else {
        return Vec::new();
    };
    entry
        .tactics
        .iter()
        .map(|tactic| LayerTechnique {
            technique_id: technique.to_string(),
            tactic: tactic.clone(),
            score,
            color: color.to_string(),
            comment: comment.clone(),
            enabled: true,
            metadata: metadata.clone(),
            show_subtechniques: entry.parent.is_none() && score > 0.0,
        })
        .collect()
}

fn major(version: &str) -> String {
    version.split('.').next().unwrap_or(version).to_string()
}

fn layer(name: String, description: String, techniques: Vec<LayerTechnique>, max: f64) -> Layer {
    let catalog = Catalog::embedded();
    Layer {
        name,
        versions: Versions {
            attack: major(catalog.version()),
            navigator: NAVIGATOR_VERSION.into(),
            layer: LAYER_VERSION.into(),
        },
        domain: "enterprise-attack".into(),
        description,
        techniques,
        gradient: Gradient {
            colors: vec!["#ffffff".into(), "#a1d99b".into(), "#31a354".into()],
            min_value: 0.0,
            max_value: max,
        },
        legend_items: vec![
            LegendItem {
                label: "degraded: found but weakened".into(),
                color: DEGRADED.into(),
            },
            LegendItem {
                label: "unknown: could not be checked".into(),
                color: UNKNOWN.into(),
            },
        ],
        hide_disabled: false,
    }
}

fn score(value: Option<Value>) -> f64 {
    match value {
        None => 0.0,
        Some(Value::Minimal) => 1.0,
        Some(Value::Partial) => 2.0,
        Some(Value::Significant) => 3.0,
    }
}

/// One account's layer: score = quality (0-3), degraded and unknown coloured.
pub fn account_layer(name: &str, coverage: &AccountCoverage) -> Layer {
    let catalog = Catalog::embedded();
    let techniques = coverage
        .techniques
        .iter()
        .flat_map(|t| {
            let color = match t.status {
                TechniqueStatus::Degraded => DEGRADED,
                TechniqueStatus::Unknown => UNKNOWN,
                _ => "",
            };
            let comment = t
                .contributors
                .iter()
                .map(|c| {
                    let from = match (&c.inherited, &c.node) {
                        (false, _) => "own".to_string(),
                        (true, Some(node)) => format!("inherited from {node}"),
                        (true, None) => "inherited".to_string(),
                    };
                    format!(
                        "{} ({}, {}, {from})",
                        c.name,
                        c.status.as_str(),
                        c.value.as_str()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            let mut metadata = vec![Metadata {
                name: "status".into(),
                value: format!("{:?}", t.status).to_lowercase(),
            }];
            metadata.extend(t.contributors.iter().map(|c| Metadata {
                name: if c.inherited { "inherited" } else { "own" }.into(),
                value: c.name.clone(),
            }));
            cells(
                catalog,
                &t.technique,
                score(t.quality),
                color,
                comment,
                metadata,
            )
        })
        .collect();
    layer(
        format!("Canopy coverage: {name}"),
        format!(
            "ATT&CK {} IaaS coverage of {name}, own and inherited detections; score = best \
             quality (1 minimal, 2 partial, 3 significant). {:.1} % covered.",
            catalog.version(),
            coverage.overall.percent
        ),
        techniques,
        3.0,
    )
}

/// A cloud organization's layer: score = percent of member accounts where the technique is
/// covered.
pub fn organization_layer(name: &str, accounts: &[AccountCoverage]) -> Layer {
    let catalog = Catalog::embedded();
    let n = accounts.len().max(1) as f64;
    let techniques = catalog
        .iaas()
        .flat_map(|entry| {
            let covered = accounts
                .iter()
                .filter(|a| a.covered().any(|t| t.technique == entry.id))
                .count();
            let percent = (covered as f64 * 1000.0 / n).round() / 10.0;
            cells(
                catalog,
                &entry.id,
                percent,
                "",
                format!("covered in {covered} of {} accounts", accounts.len()),
                vec![Metadata {
                    name: "accounts covered".into(),
                    value: covered.to_string(),
                }],
            )
        })
        .collect();
    layer(
        format!("Canopy coverage: {name}"),
        format!(
            "ATT&CK {} IaaS coverage across the {} member accounts of {name}; score = percent of \
             accounts covered.",
            catalog.version(),
            accounts.len()
        ),
        techniques,
        100.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::account_coverage;

    /// The layer format's required fields and their types (layer format 4.5).
    fn assert_layer_shape(layer: &serde_json::Value) {
        assert!(layer["name"].is_string());
        assert_eq!(layer["domain"], "enterprise-attack");
        assert_eq!(layer["versions"]["layer"], "4.5");
        assert!(
            layer["versions"]["attack"]
                .as_str()
                .unwrap()
                .parse::<u32>()
                .is_ok()
        );
        assert!(layer["versions"]["navigator"].is_string());
        assert!(layer["description"].is_string());
        let gradient = &layer["gradient"];
        assert!(
            gradient["colors"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c.as_str().unwrap().starts_with('#'))
        );
        assert!(gradient["minValue"].is_number() && gradient["maxValue"].is_number());
        for item in layer["legendItems"].as_array().unwrap() {
            assert!(item["label"].is_string() && item["color"].is_string());
        }
        let techniques = layer["techniques"].as_array().unwrap();
        assert!(!techniques.is_empty());
        for t in techniques {
            let id = t["techniqueID"].as_str().unwrap();
            assert!(id.starts_with('T') && id.len() >= 5, "{id}");
            assert!(
                t["tactic"]
                    .as_str()
                    .unwrap()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-')
            );
            assert!(t["score"].is_number());
            assert!(t["color"].is_string() && t["comment"].is_string());
            assert!(t["enabled"].is_boolean() && t["showSubtechniques"].is_boolean());
            for m in t["metadata"].as_array().unwrap() {
                assert!(m["name"].is_string() && m["value"].is_string());
            }
        }
    }

    #[test]
    fn an_empty_account_layer_has_every_cell_at_zero_and_the_required_fields() {
        let coverage = account_coverage(Catalog::embedded(), &[]);
        let layer = serde_json::to_value(account_layer("prod", &coverage)).unwrap();
        assert_layer_shape(&layer);
        let cells = layer["techniques"].as_array().unwrap();
        assert!(cells.iter().all(|t| t["score"] == 0.0));
        // One cell per (technique, tactic): T1078 sits in four tactics.
        assert_eq!(
            cells.iter().filter(|t| t["techniqueID"] == "T1078").count(),
            4
        );
        let org = serde_json::to_value(organization_layer("estate", &[coverage])).unwrap();
        assert_layer_shape(&org);
        assert_eq!(org["gradient"]["maxValue"], 100.0);
    }
}
