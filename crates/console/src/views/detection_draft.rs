//! The custom-detection form as data: what a post sends (repeated fields, a score per chosen
//! technique), what an existing detection fills it with, and what the domain is asked to
//! store, with the form's own refusals and the domain's moved to the form's fields.

use std::collections::BTreeSet;

use canopy_cloud_org::CloudAccountId;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_detection::detection::{AppliesTo, Detection, Scope, Status, TechniqueScore};
use canopy_detection::mapping::{Category, Value};
use canopy_detection::service::CustomInput;
use uuid::Uuid;

use super::FieldErrors;

/// The form as sent (or as an existing detection fills it).
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Draft {
    pub(super) name: String,
    pub(super) description: String,
    pub(super) status: String,
    /// `organization`, `nodes`, `accounts` or `account`.
    pub(super) scope: String,
    pub(super) nodes: Vec<String>,
    /// Subtrees carved out of `nodes`, kept through an edit (the API can set them).
    pub(super) except: Vec<String>,
    pub(super) accounts: String,
    pub(super) account: String,
    /// Technique, category, value: in the order chosen.
    pub(super) chosen: Vec<(String, String, String)>,
    pub(super) q: String,
    pub(super) tactic: String,
    pub(super) add_category: String,
    pub(super) add_value: String,
    pub(super) action: String,
    pub(super) csrf: String,
}

impl Draft {
    /// Reads a posted body: repeated fields (`node`, `t`, `add`, `drop`) and per-technique
    /// `cat.<id>` / `val.<id>`, which a derive cannot.
    pub(super) fn parse(body: &str) -> Self {
        let mut d = Draft::default();
        let (mut picked, mut added, mut dropped) = (Vec::new(), Vec::new(), BTreeSet::new());
        let mut scores: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(body.as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "name" => d.name = v,
                "description" => d.description = v,
                "status" => d.status = v,
                "scope" => d.scope = v,
                "node" => d.nodes.push(v),
                "except" => d.except.push(v),
                "accounts" => d.accounts = v,
                "account" => d.account = v,
                "t" => picked.push(v),
                "add" => added.push(v),
                "drop" => {
                    dropped.insert(v);
                }
                "q" => d.q = v,
                "tactic" => d.tactic = v,
                "add_category" => d.add_category = v,
                "add_value" => d.add_value = v,
                "action" => d.action = v,
                "csrf" => d.csrf = v,
                other => {
                    if other.starts_with("cat.") || other.starts_with("val.") {
                        scores.push((other.to_string(), v));
                    }
                }
            }
        }
        let score = |key: String, default: &str| {
            scores
                .iter()
                .find(|(k, _)| *k == key)
                .map_or_else(|| default.to_string(), |(_, v)| v.clone())
        };
        for t in picked {
            if dropped.contains(&t) || d.chosen.iter().any(|(c, _, _)| *c == t) {
                continue;
            }
            let (cat, val) = (
                score(format!("cat.{t}"), "detect"),
                score(format!("val.{t}"), "partial"),
            );
            d.chosen.push((t, cat, val));
        }
        for t in added {
            if !d.chosen.iter().any(|(c, _, _)| *c == t) {
                d.chosen
                    .push((t, d.add_category.clone(), d.add_value.clone()));
            }
        }
        d
    }

    /// The form filled from a detection, for editing it.
    pub(super) fn of(d: &Detection) -> Self {
        let (scope, nodes, except, accounts) = match &d.scope {
            Scope::Account(_) => ("account", vec![], vec![], String::new()),
            Scope::Organization { applies_to, .. } => match applies_to {
                AppliesTo::AllAccounts => ("organization", vec![], vec![], String::new()),
                AppliesTo::Accounts(keys) => (
                    "accounts",
                    vec![],
                    vec![],
                    keys.iter().cloned().collect::<Vec<_>>().join("\n"),
                ),
                AppliesTo::Nodes(nodes) => (
                    "nodes",
                    nodes.iter().cloned().collect(),
                    vec![],
                    String::new(),
                ),
                AppliesTo::NodesExcept { nodes, except } => (
                    "nodes",
                    nodes.iter().cloned().collect(),
                    except.iter().cloned().collect(),
                    String::new(),
                ),
            },
        };
        Draft {
            name: d.name.clone(),
            description: d.description.clone().unwrap_or_default(),
            status: d.status.as_str().to_string(),
            scope: scope.to_string(),
            nodes,
            except,
            accounts,
            chosen: d
                .techniques
                .iter()
                .map(|t| {
                    (
                        t.technique.clone(),
                        t.category.as_str().to_string(),
                        t.value.as_str().to_string(),
                    )
                })
                .collect(),
            ..Draft::default()
        }
    }

    /// What the domain is asked to store, or the fields the form itself refuses.
    pub(super) fn input(
        &self,
        cloud_org: CloudOrganizationId,
        account_of: impl Fn(&str) -> Option<Uuid>,
    ) -> Result<CustomInput, FieldErrors> {
        let set = |v: &[String]| -> BTreeSet<String> {
            v.iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let organization = |applies_to| Scope::Organization {
            cloud_organization_id: cloud_org,
            applies_to,
        };
        let scope = match self.scope.as_str() {
            "nodes" if self.except.is_empty() => organization(AppliesTo::Nodes(set(&self.nodes))),
            "nodes" => organization(AppliesTo::NodesExcept {
                nodes: set(&self.nodes),
                except: set(&self.except),
            }),
            "accounts" => organization(AppliesTo::Accounts(
                self.accounts
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            )),
            "account" => match account_of(self.account.trim()) {
                Some(id) => Scope::Account(CloudAccountId(id)),
                None => {
                    return Err(FieldErrors::one(
                        "account",
                        "no connected account of this organization has this id",
                    ));
                }
            },
            _ => organization(AppliesTo::AllAccounts),
        };
        let category = |raw: &str| match raw {
            "protect" => Category::Protect,
            "respond" => Category::Respond,
            _ => Category::Detect,
        };
        let value = |raw: &str| match raw {
            "minimal" => Value::Minimal,
            "significant" => Value::Significant,
            _ => Value::Partial,
        };
        Ok(CustomInput {
            name: self.name.trim().to_string(),
            description: Some(self.description.trim().to_string()).filter(|s| !s.is_empty()),
            scope,
            techniques: self
                .chosen
                .iter()
                .map(|(t, c, v)| TechniqueScore::new(t, category(c), value(v)))
                .collect(),
            status: Some(match self.status.as_str() {
                "degraded" => Status::Degraded,
                _ => Status::Active,
            }),
            evidence: None,
        })
    }
}

/// The domain's refusal by the form's fields.
pub(super) fn field_errors(e: &canopy_kernel::ValidationErrors) -> FieldErrors {
    let mut errors = FieldErrors::from_validation(
        e,
        &[
            ("appliesTo.accounts", "accounts"),
            ("appliesTo.nodes", "nodes"),
            ("appliesTo.except", "nodes"),
            ("scope.cloudAccountId", "account"),
            ("scope.cloudOrganizationId", "scope"),
        ],
    );
    // `techniques.3.technique` and `techniques` are one field on the form.
    errors.rename_prefix("techniques", "techniques");
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_detection::detection::{DetectionId, Source};

    #[test]
    fn the_form_keeps_chosen_techniques_adds_picked_ones_and_drops_removed_ones() {
        let body = "name=SIEM+rule&scope=nodes&node=ou-1&node=ou-2&t=T1078&cat.T1078=protect\
                    &val.T1078=significant&t=T1530&drop=T1530&add=T1562.008&add=T1078\
                    &add_category=respond&add_value=minimal&action=add&csrf=x";
        let d = Draft::parse(body);
        assert_eq!(d.nodes, ["ou-1", "ou-2"]);
        assert_eq!(
            d.chosen,
            [
                ("T1078".into(), "protect".into(), "significant".into()),
                ("T1562.008".into(), "respond".into(), "minimal".into()),
            ]
        );
        let org = CloudOrganizationId(Uuid::nil());
        let input = d.input(org, |_| None).unwrap();
        assert_eq!(
            input.scope,
            Scope::Organization {
                cloud_organization_id: org,
                applies_to: AppliesTo::Nodes(["ou-1".to_string(), "ou-2".into()].into()),
            }
        );
        assert_eq!(input.techniques[0].category, Category::Protect);
        assert_eq!(input.techniques[1].value, Value::Minimal);
    }

    #[test]
    fn one_account_is_named_by_its_provider_id_and_an_unknown_one_is_refused_on_its_field() {
        let d = Draft::parse("scope=account&account=111122223333&t=T1078");
        let id = Uuid::now_v7();
        let org = CloudOrganizationId(Uuid::nil());
        let input = d
            .input(org, |k| (k == "111122223333").then_some(id))
            .unwrap();
        assert_eq!(input.scope, Scope::Account(CloudAccountId(id)));
        let errors = d.input(org, |_| None).unwrap_err();
        assert!(errors.has("account"));
    }

    #[test]
    fn a_detection_fills_the_form_it_would_be_saved_from() {
        let d = Draft::parse(
            "name=n&scope=accounts&accounts=111+222&t=T1078&cat.T1078=detect&val.T1078=partial",
        );
        let org = CloudOrganizationId(Uuid::nil());
        let input = d.input(org, |_| None).unwrap();
        assert_eq!(
            input.scope,
            Scope::Organization {
                cloud_organization_id: org,
                applies_to: AppliesTo::Accounts(["111".to_string(), "222".into()].into()),
            }
        );
        let now = chrono::Utc::now();
        let stored = Detection {
            id: DetectionId::new(),
            organization_id: canopy_kernel::id::OrganizationId::new(),
            scope: input.scope.clone(),
            source: Source::Custom,
            resource_key: String::new(),
            name: input.name.clone(),
            description: None,
            techniques: input.techniques.clone(),
            status: Status::Active,
            reason: None,
            advice: None,
            evidence: serde_json::json!({}),
            first_seen_at: now,
            last_seen_at: None,
            last_scan_job_id: None,
            created_by: None,
            created_at: now,
            updated_at: now,
        };
        let again = Draft::of(&stored).input(org, |_| None).unwrap();
        assert_eq!(again.scope, input.scope);
        assert_eq!(again.techniques, input.techniques);
    }
}
