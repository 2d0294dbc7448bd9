//! What a service control policy protects against, from what it actually denies: Canopy's own
//! rule table (`data/scp-rules.json`, each rule with its reason), since CTID scores AWS
//! Organizations as a whole and an SCP's worth is in its content. An SCP that denies nothing
//! a rule names maps to nothing.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value as Json;

use crate::catalog::Catalog;
use crate::mapping::{Category, Value};

/// The rule table, as shipped.
const RULES: &str = include_str!("../data/scp-rules.json");

#[derive(Debug, Clone, Deserialize)]
struct Rule {
    technique: String,
    actions: Vec<String>,
    all: Value,
    some: Option<Value>,
    reason: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegionRule {
    technique: String,
    condition_key: String,
    value: Value,
    reason: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Rules {
    rules: Vec<Rule>,
    regions: RegionRule,
}

/// A technique an SCP protects against, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScpScore {
    /// `T1562.008`.
    pub technique: String,
    /// Always `protect`: an SCP prevents, it does not detect.
    pub category: Category,
    /// How well.
    pub value: Value,
    /// The rule's reason.
    pub reason: String,
    /// The actions the policy denies that earned it (for the evidence).
    pub denied: Vec<String>,
}

/// Why a policy document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the policy is not an IAM policy document: {0}")]
pub struct PolicyError(String);

fn rules() -> &'static Rules {
    static PARSED: OnceLock<Rules> = OnceLock::new();
    PARSED.get_or_init(|| {
        // Compiled-in and checked by this module's tests.
        serde_json::from_str(RULES).unwrap_or_else(|e| panic!("shipped SCP rules: {e}"))
    })
}

/// IAM's action globbing: `*` any run, `?` one character, case-insensitive.
fn glob(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        match (p.first(), a.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], a) || (!a.is_empty() && go(p, &a[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &a[1..]),
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => go(&p[1..], &a[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), action.as_bytes())
}

fn strings(value: Option<&Json>) -> Vec<String> {
    match value {
        Some(Json::String(s)) => vec![s.clone()],
        Some(Json::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// One Deny statement: what it denies, and whether it is limited to some regions.
struct Deny {
    actions: Vec<String>,
    not_actions: Option<Vec<String>>,
    region_scoped: bool,
}

impl Deny {
    fn denies(&self, action: &str) -> bool {
        match &self.not_actions {
            Some(except) => !except.iter().any(|p| glob(p, action)),
            None => self.actions.iter().any(|p| glob(p, action)),
        }
    }
}

fn denies(document: &Json, region_key: &str) -> Result<Vec<Deny>, PolicyError> {
    let statements = match document.get("Statement") {
        Some(Json::Array(s)) => s.clone(),
        Some(single @ Json::Object(_)) => vec![single.clone()],
        _ => return Err(PolicyError("no Statement".into())),
    };
    Ok(statements
        .iter()
        .filter(|s| s.get("Effect").and_then(Json::as_str) == Some("Deny"))
        .map(|s| {
            let region_scoped = s
                .get("Condition")
                .and_then(Json::as_object)
                .is_some_and(|c| {
                    c.values().any(|keys| {
                        keys.as_object().is_some_and(|k| {
                            k.keys().any(|key| key.eq_ignore_ascii_case(region_key))
                        })
                    })
                });
            Deny {
                actions: strings(s.get("Action")),
                not_actions: s.get("NotAction").map(|n| strings(Some(n))),
                region_scoped,
            }
        })
        .collect())
}

/// The techniques an SCP document protects against, by technique id.
pub fn score(document: &str) -> Result<Vec<ScpScore>, PolicyError> {
    let document: Json = serde_json::from_str(document).map_err(|e| PolicyError(e.to_string()))?;
    let table = rules();
    let statements = denies(&document, &table.regions.condition_key)?;
    let everywhere: Vec<&Deny> = statements.iter().filter(|d| !d.region_scoped).collect();
    let mut scores = Vec::new();
    for rule in &table.rules {
        let denied: Vec<String> = rule
            .actions
            .iter()
            .filter(|a| everywhere.iter().any(|d| d.denies(a)))
            .cloned()
            .collect();
        let value = if denied.len() == rule.actions.len() {
            Some(rule.all)
        } else if denied.is_empty() {
            None
        } else {
            rule.some
        };
        if let Some(value) = value {
            scores.push(ScpScore {
                technique: rule.technique.clone(),
                category: Category::Protect,
                value,
                reason: rule.reason.clone(),
                denied,
            });
        }
    }
    if statements.iter().any(|d| d.region_scoped) {
        let r = &table.regions;
        scores.push(ScpScore {
            technique: r.technique.clone(),
            category: Category::Protect,
            value: r.value,
            reason: r.reason.clone(),
            denied: vec![format!(
                "requests outside the regions allowed by {}",
                r.condition_key
            )],
        });
    }
    scores.sort_by(|a, b| a.technique.cmp(&b.technique));
    Ok(scores)
}

/// Every technique the rule table can award, for checking it against a catalog.
pub fn techniques() -> Vec<&'static str> {
    let table = rules();
    table
        .rules
        .iter()
        .map(|r| r.technique.as_str())
        .chain(std::iter::once(table.regions.technique.as_str()))
        .collect()
}

/// True when every technique the table awards is in `catalog`.
pub fn fits(catalog: &Catalog) -> bool {
    techniques().iter().all(|t| catalog.technique(t).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(doc: serde_json::Value) -> Vec<(String, Value)> {
        score(&doc.to_string())
            .unwrap()
            .into_iter()
            .map(|s| (s.technique, s.value))
            .collect()
    }

    #[test]
    fn every_rule_names_a_technique_of_the_catalog() {
        assert!(fits(Catalog::embedded()), "{:?}", techniques());
    }

    #[test]
    fn protecting_trails_earns_cloud_logs_and_half_of_it_earns_less() {
        let all = serde_json::json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Resource": "*",
            "Action": ["cloudtrail:StopLogging", "cloudtrail:DeleteTrail",
                       "cloudtrail:UpdateTrail", "cloudtrail:PutEventSelectors"]}]});
        assert_eq!(scored(all), [("T1562.008".to_string(), Value::Significant)]);
        let some = serde_json::json!({"Statement": {"Effect": "Deny", "Action": "cloudtrail:StopLogging", "Resource": "*"}});
        assert_eq!(scored(some), [("T1562.008".to_string(), Value::Partial)]);
        // A service wildcard denies every action of it.
        let wildcard = serde_json::json!({"Statement": [{"Effect": "Deny", "Action": "CloudTrail:*", "Resource": "*"}]});
        assert_eq!(
            scored(wildcard),
            [("T1562.008".to_string(), Value::Significant)]
        );
    }

    #[test]
    fn leaving_the_organization_denied_protects_the_hierarchy() {
        let doc = serde_json::json!({"Statement": [{"Effect": "Deny", "Action": "organizations:LeaveOrganization", "Resource": "*"}]});
        let s = score(&doc.to_string()).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].technique, "T1666");
        assert_eq!(s[0].category, Category::Protect);
        assert_eq!(s[0].denied, ["organizations:LeaveOrganization"]);
    }

    #[test]
    fn a_region_deny_earns_the_region_rule_and_nothing_it_denies_only_elsewhere() {
        // AWS's example: deny everything but global services outside two regions.
        let doc = serde_json::json!({"Statement": [{
            "Effect": "Deny",
            "NotAction": ["iam:*", "organizations:*", "sts:*", "support:*"],
            "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:RequestedRegion": ["eu-west-1", "eu-central-1"]}}}]});
        assert_eq!(scored(doc), [("T1535".to_string(), Value::Significant)]);
    }

    #[test]
    fn allowing_and_denying_unrelated_actions_maps_to_nothing() {
        let full_access =
            serde_json::json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
        assert!(scored(full_access).is_empty());
        let unrelated = serde_json::json!({"Statement": [{"Effect": "Deny", "Action": ["ec2:RunInstances"], "Resource": "*"}]});
        assert!(scored(unrelated).is_empty());
        assert!(score("not json").is_err());
        assert!(score("{}").is_err());
    }

    #[test]
    fn a_deny_everything_but_reads_policy_protects_across_the_table() {
        // NotAction with no region condition: everything outside the list is denied.
        let doc = serde_json::json!({"Statement": [{"Effect": "Deny", "NotAction": ["s3:Get*", "s3:List*"], "Resource": "*"}]});
        let got = scored(doc);
        assert!(got.contains(&("T1562.008".to_string(), Value::Significant)));
        assert!(got.contains(&("T1666".to_string(), Value::Significant)));
        assert!(!got.iter().any(|(t, _)| t == "T1535"));
    }

    #[test]
    fn globs_follow_iam() {
        assert!(glob("cloudtrail:*", "cloudtrail:StopLogging"));
        assert!(glob("cloudtrail:Stop?ogging", "CLOUDTRAIL:stoplogging"));
        assert!(!glob("cloudtrail:Stop", "cloudtrail:StopLogging"));
        assert!(glob("*", "anything:At"));
    }
}
