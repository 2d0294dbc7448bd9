//! Organization policies set at the organization and at every folder of the stored tree
//! (Org Policy v2 `policies.list`), kept when their constraint is in Canopy's table and they
//! enforce it.
//!
//! Decisions:
//! - An enforced policy is a finding keyed by its name: at the organization it reaches every
//!   account, at a folder the folder's subtree. A constraint not in the table is no finding.
//! - Enforcement is read from the live spec (a dry-run spec enforces nothing): `reset`, an
//!   unconditional `enforce: false` or `allowAll` turn it off; rules with a condition (tags)
//!   enforce only where it holds, so such a policy is degraded with the condition as reason.
//!   A policy that only inherits is nothing of its own.
//! - Overrides carve out: a policy that turns a constraint off at a folder beneath an
//!   enforcing one is no finding, and the enforcing policy above it reaches its subtree except
//!   the overriding folders' subtrees (`AppliesTo::NodesExcept`), active where it holds and
//!   not applying where it is off; the overriding folders are named in the evidence. One
//!   folder's override no longer costs the projects under every other folder their credit. A
//!   folder that enforces again below an override has its own finding. Project-level policies
//!   are not read.

use std::collections::BTreeSet;

use canopy_cloud_org::organization::hierarchy::Hierarchy;
use canopy_detection::detection::{AppliesTo, Status, normalize};
use canopy_detection::ports::Finding;
use futures::FutureExt;
use futures::future::BoxFuture;
use google_orgpolicy2::OrgPolicyAPI;
use google_orgpolicy2::api::{
    GoogleCloudOrgpolicyV2ListPoliciesResponse, GoogleCloudOrgpolicyV2Policy,
    GoogleCloudOrgpolicyV2PolicySpec, GoogleCloudOrgpolicyV2PolicySpecPolicyRule,
};
use google_orgpolicy2::common;
use serde_json::json;

use super::constraints::{ConstraintKind, ConstraintRule, rule};
use super::{Failed, Permission, Scan, gone_is_empty, per_folder, reach};
use crate::Connector;
use crate::calls::{CallError, Calls};
use crate::discovery::{Next, next_token};

/// What listing policies needs.
pub(crate) const POLICIES_LIST: Permission = Permission {
    name: "orgpolicy.policies.list",
    role: "roles/orgpolicy.policyViewer",
    api: "Organization Policy",
};

/// Google's Org Policy endpoint.
const ORG_POLICY_URL: &str = "https://orgpolicy.googleapis.com/";

type Hub = OrgPolicyAPI<Connector>;
type Policy = GoogleCloudOrgpolicyV2Policy;
type Rule = GoogleCloudOrgpolicyV2PolicySpecPolicyRule;

fn hub(scan: &Scan<'_>) -> Hub {
    let mut hub = OrgPolicyAPI::new(scan.api(), scan.auth());
    hub.base_url(scan.base_url(ORG_POLICY_URL));
    hub.user_agent(crate::client::Google::user_agent());
    hub
}

fn page<'a>(
    hub: &'a Hub,
    scope: &'static str,
    parent: &str,
    token: Option<&str>,
) -> BoxFuture<'a, common::Result<(common::Response, GoogleCloudOrgpolicyV2ListPoliciesResponse)>> {
    macro_rules! list {
        ($methods:expr) => {{
            let mut call = $methods.policies_list(parent).add_scope(scope);
            if let Some(t) = token {
                call = call.page_token(t);
            }
            call.doit().boxed()
        }};
    }
    if parent.starts_with("organizations/") {
        list!(hub.organizations())
    } else {
        list!(hub.folders())
    }
}

/// Every policy set directly on `parent`, every page.
async fn list(
    calls: &Calls<Hub>,
    scope: &'static str,
    parent: &str,
) -> Result<Vec<Policy>, Failed> {
    let mut policies = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let answer = calls
            .run(|| page(&calls.hub, scope, parent, token.as_deref()))
            .await
            .map_err(|e| Failed::new(POLICIES_LIST, parent, e))?;
        policies.extend(answer.policies.unwrap_or_default());
        match next_token(answer.next_page_token, &token) {
            Next::Page(t) => token = Some(t),
            Next::Done => return Ok(policies),
            Next::Repeated => {
                return Err(Failed::new(
                    POLICIES_LIST,
                    parent,
                    CallError::Other("the same page token came back twice".into()),
                ));
            }
        }
    }
}

/// What a policy does to its constraint where it is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Enforcement {
    /// Enforced everywhere beneath.
    Enforced,
    /// Enforced only where (or except where) a condition holds; the text says which.
    Conditional(String),
    /// Turned off; the text says how.
    Off(String),
    /// Nothing of its own: it inherits.
    Inherited,
}

fn restricts(kind: ConstraintKind, rule: &Rule) -> bool {
    match kind {
        ConstraintKind::Boolean => rule.enforce == Some(true),
        ConstraintKind::List => {
            rule.deny_all == Some(true)
                || rule.values.as_ref().is_some_and(|v| {
                    v.allowed_values.as_ref().is_some_and(|a| !a.is_empty())
                        || v.denied_values.as_ref().is_some_and(|d| !d.is_empty())
                })
        }
    }
}

fn opens(kind: ConstraintKind, rule: &Rule) -> bool {
    match kind {
        ConstraintKind::Boolean => rule.enforce == Some(false),
        ConstraintKind::List => rule.allow_all == Some(true),
    }
}

/// How the live `spec` of a policy on a constraint of `kind` enforces it.
pub(crate) fn enforcement(
    kind: ConstraintKind,
    spec: Option<&GoogleCloudOrgpolicyV2PolicySpec>,
) -> Enforcement {
    let Some(spec) = spec else {
        return Enforcement::Inherited;
    };
    if spec.reset == Some(true) {
        return Enforcement::Off("reset to Google's default".into());
    }
    let rules = spec.rules.as_deref().unwrap_or_default();
    let (conditional, plain): (Vec<&Rule>, Vec<&Rule>) =
        rules.iter().partition(|r| r.condition.is_some());
    let conditions = |on: bool| {
        conditional
            .iter()
            .filter(|r| {
                if on {
                    restricts(kind, r)
                } else {
                    opens(kind, r)
                }
            })
            .filter_map(|r| r.condition.as_ref().and_then(|c| c.expression.clone()))
            .collect::<Vec<_>>()
            .join(" or ")
    };
    if plain.iter().any(|r| restricts(kind, r)) {
        if conditional.iter().any(|r| opens(kind, r)) {
            Enforcement::Conditional(format!("not enforced where {}", conditions(false)))
        } else {
            Enforcement::Enforced
        }
    } else if conditional.iter().any(|r| restricts(kind, r)) {
        Enforcement::Conditional(format!("enforced only where {}", conditions(true)))
    } else if plain.iter().any(|r| opens(kind, r)) {
        Enforcement::Off(match kind {
            ConstraintKind::Boolean => "enforcement is turned off".into(),
            ConstraintKind::List => "every value is allowed".into(),
        })
    } else {
        Enforcement::Inherited
    }
}

/// A policy of a constraint in the table, where it is set.
pub(crate) struct Placed {
    pub(crate) node: String,
    pub(crate) name: String,
    pub(crate) rule: &'static ConstraintRule,
    pub(crate) enforcement: Enforcement,
    pub(crate) dry_run: bool,
}

/// The policy as placed at `node`, when its constraint matters.
pub(crate) fn place(node: &str, policy: &Policy) -> Option<Placed> {
    let name = policy.name.clone()?;
    let (set_on, constraint) = name.split_once("/policies/")?;
    let rule = rule(constraint)?;
    Some(Placed {
        node: if set_on.is_empty() { node } else { set_on }.to_string(),
        enforcement: enforcement(rule.kind, policy.spec.as_ref()),
        dry_run: policy.dry_run_spec.is_some(),
        name,
        rule,
    })
}

/// The findings of the placed policies of one organization.
pub(crate) fn findings(org: &str, hierarchy: &Hierarchy, placed: &[Placed]) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in placed {
        let condition = match &p.enforcement {
            Enforcement::Enforced => None,
            Enforcement::Conditional(c) => Some(c.clone()),
            Enforcement::Off(_) | Enforcement::Inherited => continue,
        };
        let overrides: Vec<&Placed> = placed
            .iter()
            .filter(|o| {
                o.rule.constraint == p.rule.constraint
                    && o.node != p.node
                    && hierarchy.is_under(&o.node, &p.node)
                    && matches!(o.enforcement, Enforcement::Off(_))
            })
            .collect();
        let reasons: Vec<String> = condition.iter().cloned().collect();
        let below: BTreeSet<String> = overrides.iter().map(|o| o.node.clone()).collect();
        let applies_to = if below.is_empty() {
            reach(&p.node, org)
        } else {
            AppliesTo::NodesExcept {
                nodes: BTreeSet::from([p.node.clone()]),
                except: below,
            }
        };
        out.push(Finding {
            resource_key: p.name.clone(),
            name: p.rule.constraint.clone(),
            description: Some(p.rule.reason.clone()),
            status: if reasons.is_empty() {
                Status::Active
            } else {
                Status::Degraded
            },
            reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
            applies_to,
            techniques: normalize(p.rule.scores()),
            evidence: json!({
                "policy": p.name,
                "constraint": p.rule.constraint,
                "setOn": p.node,
                "enforcement": if condition.is_some() { "conditional" } else { "enforced" },
                "condition": condition,
                "dryRunSpec": p.dry_run,
                "overriddenBelow": overrides.iter().map(|o| json!({
                    "policy": o.name,
                    "setOn": o.node,
                    "why": match &o.enforcement { Enforcement::Off(why) => why.as_str(), _ => "" },
                })).collect::<Vec<_>>(),
            }),
        });
    }
    out
}

/// The organization's and every folder's policies.
pub(crate) async fn policies(
    scan: &Scan<'_>,
    org: &str,
    folders: &[String],
    hierarchy: &Hierarchy,
) -> (Result<Vec<Finding>, Vec<Failed>>, u64) {
    let calls = scan.calls(hub(scan));
    let at_org = list(&calls, scan.scope, org);
    let at_folders = per_folder(folders, scan.fan_out(), |folder| {
        gone_is_empty(list(&calls, scan.scope, folder))
    });
    let (at_org, at_folders) = futures::join!(at_org, at_folders);
    let outcome =
        match (at_org, at_folders) {
            (Ok(mine), Ok(theirs)) => {
                let placed: Vec<Placed> =
                    mine.iter()
                        .filter_map(|p| place(org, p))
                        .chain(theirs.iter().flat_map(|(folder, list)| {
                            list.iter().filter_map(|p| place(folder, p))
                        }))
                        .collect();
                Ok(findings(org, hierarchy, &placed))
            }
            (Err(org_failed), Ok(_)) => Err(vec![org_failed]),
            (Ok(_), Err(failed)) => Err(failed),
            (Err(org_failed), Err(mut failed)) => {
                failed.insert(0, org_failed);
                Err(failed)
            }
        };
    (outcome, calls.attempts())
}

#[cfg(test)]
mod tests {
    use google_orgpolicy2::api::{
        GoogleCloudOrgpolicyV2PolicySpecPolicyRuleStringValues, GoogleTypeExpr,
    };

    use super::*;

    fn spec(rules: Vec<Rule>) -> GoogleCloudOrgpolicyV2PolicySpec {
        GoogleCloudOrgpolicyV2PolicySpec {
            rules: Some(rules),
            ..Default::default()
        }
    }

    fn enforce(on: bool, condition: Option<&str>) -> Rule {
        Rule {
            enforce: Some(on),
            condition: condition.map(|c| GoogleTypeExpr {
                expression: Some(c.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn boolean_policies_are_read_from_their_rules() {
        let b = ConstraintKind::Boolean;
        assert_eq!(enforcement(b, None), Enforcement::Inherited);
        assert_eq!(
            enforcement(b, Some(&spec(vec![enforce(true, None)]))),
            Enforcement::Enforced
        );
        assert!(matches!(
            enforcement(b, Some(&spec(vec![enforce(false, None)]))),
            Enforcement::Off(_)
        ));
        assert_eq!(
            enforcement(
                b,
                Some(&spec(vec![enforce(
                    true,
                    Some("resource.matchTag('env', 'prod')")
                )]))
            ),
            Enforcement::Conditional("enforced only where resource.matchTag('env', 'prod')".into())
        );
        assert!(matches!(
            enforcement(b, Some(&spec(vec![enforce(true, None), enforce(false, Some("x"))]))),
            Enforcement::Conditional(c) if c == "not enforced where x"
        ));
        let reset = GoogleCloudOrgpolicyV2PolicySpec {
            reset: Some(true),
            ..Default::default()
        };
        assert!(matches!(enforcement(b, Some(&reset)), Enforcement::Off(_)));
    }

    #[test]
    fn list_policies_restrict_with_deny_all_or_values() {
        let l = ConstraintKind::List;
        let allowed = Rule {
            values: Some(GoogleCloudOrgpolicyV2PolicySpecPolicyRuleStringValues {
                allowed_values: Some(vec!["in:eu-locations".into()]),
                denied_values: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            enforcement(l, Some(&spec(vec![allowed]))),
            Enforcement::Enforced
        );
        let deny_all = Rule {
            deny_all: Some(true),
            ..Default::default()
        };
        assert_eq!(
            enforcement(l, Some(&spec(vec![deny_all]))),
            Enforcement::Enforced
        );
        let allow_all = Rule {
            allow_all: Some(true),
            ..Default::default()
        };
        assert!(matches!(
            enforcement(l, Some(&spec(vec![allow_all]))),
            Enforcement::Off(_)
        ));
    }
}
