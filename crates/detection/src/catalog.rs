//! The ATT&CK catalog: MITRE ATT&CK Enterprise techniques and sub-techniques of the IaaS
//! platform, compiled in from `data/attack-iaas.json`, read once and checked (every
//! sub-technique's parent and every tactic a technique names are in the catalog).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

/// The generated catalog, as shipped.
const DATA: &str = include_str!("../data/attack-iaas.json");

/// MITRE's license and copyright designation, which must go with every copy.
pub const LICENSE: &str = include_str!("../data/LICENSE-ATTACK.txt");

/// MITRE's copyright designation, as the ATT&CK terms require it to be reproduced.
pub const COPYRIGHT: &str = "© 2025 The MITRE Corporation. This work is reproduced and \
                             distributed with the permission of The MITRE Corporation.";

/// An ATT&CK tactic (a kill-chain column).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Tactic {
    /// `TA0001`.
    pub id: String,
    /// `initial-access`.
    pub shortname: String,
    /// `Initial Access`.
    pub name: String,
}

/// An ATT&CK technique or sub-technique.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Technique {
    /// `T1078` or `T1078.004`.
    pub id: String,
    /// `Valid Accounts` / `Cloud Accounts`.
    pub name: String,
    /// Whether it lists the IaaS platform itself (two parents are kept only for their IaaS
    /// sub-techniques).
    pub iaas: bool,
    /// The parent of a sub-technique.
    pub parent: Option<String>,
    /// Tactic shortnames, in kill-chain order.
    pub tactics: Vec<String>,
    /// ATT&CK platforms.
    pub platforms: Vec<String>,
    /// `https://attack.mitre.org/techniques/T1078/004`.
    pub url: String,
}

impl Technique {
    /// True for a sub-technique (`T1078.004`).
    pub fn is_sub_technique(&self) -> bool {
        self.parent.is_some()
    }
}

/// Where the catalog came from and under what terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    /// MITRE's copyright designation.
    pub copyright: &'static str,
    /// The generator's summary of the terms.
    pub notice: String,
    /// The full license text.
    pub license: &'static str,
    /// The exact source (repository, commit, paths).
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    attack_version: String,
    domain: String,
    source: String,
    notice: String,
    tactics: Vec<Tactic>,
    techniques: Vec<Technique>,
}

/// Why the shipped data is not a usable catalog (a bad regeneration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// Not the generator's shape.
    #[error("the catalog data is not readable: {0}")]
    Unreadable(String),
    /// A reference to something the catalog does not hold.
    #[error("the catalog is inconsistent: {0}")]
    Inconsistent(String),
}

/// The ATT&CK IaaS catalog of one ATT&CK version.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    version: String,
    domain: String,
    attribution: Attribution,
    tactics: Vec<Tactic>,
    techniques: Vec<Technique>,
    by_id: BTreeMap<String, usize>,
}

impl Catalog {
    /// The catalog shipped in this build, read once.
    pub fn embedded() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            // The data is compiled in and checked by this crate's tests: failing here means
            // a broken regeneration reached a build, which no request can work around.
            Catalog::parse(DATA).unwrap_or_else(|e| panic!("shipped ATT&CK catalog: {e}"))
        })
    }

    /// Reads and checks catalog data in the generator's shape.
    pub fn parse(json: &str) -> Result<Self, CatalogError> {
        let raw: Raw =
            serde_json::from_str(json).map_err(|e| CatalogError::Unreadable(e.to_string()))?;
        let by_id: BTreeMap<String, usize> = raw
            .techniques
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        if by_id.len() != raw.techniques.len() {
            return Err(CatalogError::Inconsistent("a technique id repeats".into()));
        }
        for t in &raw.techniques {
            if let Some(parent) = &t.parent
                && (!by_id.contains_key(parent) || !t.id.starts_with(&format!("{parent}.")))
            {
                return Err(CatalogError::Inconsistent(format!(
                    "{} names parent {parent}, which is not its parent in the catalog",
                    t.id
                )));
            }
            if let Some(missing) = t
                .tactics
                .iter()
                .find(|s| !raw.tactics.iter().any(|tactic| &tactic.shortname == *s))
            {
                return Err(CatalogError::Inconsistent(format!(
                    "{} names tactic {missing}, which is not in the catalog",
                    t.id
                )));
            }
        }
        Ok(Self {
            version: raw.attack_version,
            domain: raw.domain,
            attribution: Attribution {
                copyright: COPYRIGHT,
                notice: raw.notice,
                license: LICENSE,
                source: raw.source,
            },
            tactics: raw.tactics,
            techniques: raw.techniques,
            by_id,
        })
    }

    /// The ATT&CK version (`18.1`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The ATT&CK domain (`enterprise-attack`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// MITRE's copyright designation, the terms and the source.
    pub fn attribution(&self) -> &Attribution {
        &self.attribution
    }

    /// Tactics in kill-chain order.
    pub fn tactics(&self) -> &[Tactic] {
        &self.tactics
    }

    /// Every technique and sub-technique, by id.
    pub fn techniques(&self) -> &[Technique] {
        &self.techniques
    }

    /// One technique or sub-technique.
    pub fn technique(&self, id: &str) -> Option<&Technique> {
        self.by_id.get(id).map(|&i| &self.techniques[i])
    }

    /// The sub-techniques of `parent`, by id.
    pub fn sub_techniques<'a>(&'a self, parent: &'a str) -> impl Iterator<Item = &'a Technique> {
        self.techniques
            .iter()
            .filter(move |t| t.parent.as_deref() == Some(parent))
    }

    /// Techniques (not sub-techniques) under `tactic` (a shortname), by id.
    pub fn under_tactic<'a>(&'a self, tactic: &'a str) -> impl Iterator<Item = &'a Technique> {
        self.techniques
            .iter()
            .filter(move |t| t.parent.is_none() && t.tactics.iter().any(|s| s == tactic))
    }

    /// The IaaS entries: what coverage is measured against.
    pub fn iaas(&self) -> impl Iterator<Item = &Technique> {
        self.techniques.iter().filter(|t| t.iaas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_is_attack_18_1_iaas_with_its_counts() {
        let c = Catalog::embedded();
        assert_eq!(c.version(), "18.1");
        assert_eq!(c.domain(), "enterprise-attack");
        let iaas: Vec<_> = c.iaas().collect();
        assert_eq!(iaas.iter().filter(|t| !t.is_sub_technique()).count(), 56);
        assert_eq!(iaas.iter().filter(|t| t.is_sub_technique()).count(), 48);
        assert_eq!(c.techniques().len(), 106);
        // The two parents kept only for their IaaS sub-techniques.
        let kept: Vec<_> = c
            .techniques()
            .iter()
            .filter(|t| !t.iaas)
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(kept, ["T1020", "T1036"]);
    }

    #[test]
    fn tactics_come_in_kill_chain_order() {
        let order: Vec<_> = Catalog::embedded()
            .tactics()
            .iter()
            .map(|t| t.shortname.as_str())
            .collect();
        assert_eq!(
            order,
            [
                "initial-access",
                "execution",
                "persistence",
                "privilege-escalation",
                "defense-evasion",
                "credential-access",
                "discovery",
                "lateral-movement",
                "collection",
                "exfiltration",
                "impact"
            ]
        );
    }

    #[test]
    fn lookups_find_techniques_their_subs_and_their_tactics() {
        let c = Catalog::embedded();
        let cloud = c.technique("T1078.004").unwrap();
        assert_eq!(cloud.name, "Cloud Accounts");
        assert_eq!(cloud.parent.as_deref(), Some("T1078"));
        assert_eq!(cloud.url, "https://attack.mitre.org/techniques/T1078/004");
        assert!(c.sub_techniques("T1078").any(|t| t.id == "T1078.004"));
        assert!(c.technique("T9999").is_none());
        let logs = c.technique("T1562.008").unwrap();
        assert!(logs.tactics.contains(&"defense-evasion".to_string()));
        assert!(c.under_tactic("impact").all(|t| t.parent.is_none()));
        assert!(c.attribution().license.contains("MITRE"));
    }

    #[test]
    fn broken_data_is_refused_with_what_is_wrong() {
        let orphan = r#"{"attackVersion":"1","domain":"d","source":"s","notice":"n",
            "tactics":[{"id":"TA1","shortname":"a","name":"A"}],
            "techniques":[{"id":"T1.001","name":"x","iaas":true,"parent":"T1",
                "tactics":["a"],"platforms":[],"url":"u"}]}"#;
        assert!(matches!(
            Catalog::parse(orphan),
            Err(CatalogError::Inconsistent(m)) if m.contains("T1.001")
        ));
        let bad_tactic = r#"{"attackVersion":"1","domain":"d","source":"s","notice":"n",
            "tactics":[],"techniques":[{"id":"T1","name":"x","iaas":true,"parent":null,
                "tactics":["nowhere"],"platforms":[],"url":"u"}]}"#;
        assert!(matches!(
            Catalog::parse(bad_tactic),
            Err(CatalogError::Inconsistent(m)) if m.contains("nowhere")
        ));
        assert!(matches!(
            Catalog::parse("[]"),
            Err(CatalogError::Unreadable(_))
        ));
    }
}
