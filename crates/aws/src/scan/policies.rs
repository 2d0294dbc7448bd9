//! Service control policies (`aws.organizations.scp`), scored from what they deny with the
//! detection domain's rule table. A policy that denies nothing the table names (AWS's
//! `FullAWSAccess`, say) is no control and yields no finding; neither does one attached to
//! nothing.
//!
//! A finding reaches either nodes or listed accounts, never both, so a policy attached to
//! the root or OUs and also directly to accounts yields two findings: `<policy id>` reaching
//! the nodes (subtrees included) and `<policy id>:accounts` reaching those accounts.

use std::collections::BTreeSet;

use aws_sdk_organizations::types::{PolicyType, TargetType};
use canopy_detection::detection::{AppliesTo, Status, TechniqueScore, normalize};
use canopy_detection::ports::Finding;
use canopy_detection::scp::{ScpScore, score};
use serde_json::{Value, json};

use super::GLOBAL_REGION;
use super::calls::{CallFailure, Tally, all_pages};
use super::session::Session;

/// One attachment of a policy.
#[derive(Debug, Clone)]
struct Target {
    id: String,
    name: String,
    kind: TargetType,
}

/// Every SCP of the organization that protects against something, with where it applies.
pub(crate) async fn service_control_policies(
    s: &Session,
    tally: &Tally,
) -> Result<Vec<Finding>, CallFailure> {
    let client = s.organizations(GLOBAL_REGION);
    let summaries = all_pages(|token| {
        let client = &client;
        async move {
            let out = s
                .call(tally, "organizations:ListPolicies", GLOBAL_REGION, || {
                    client
                        .list_policies()
                        .filter(PolicyType::ServiceControlPolicy)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            Ok((
                out.policies().to_vec(),
                out.next_token().map(str::to_string),
            ))
        }
    })
    .await?;
    let reads = summaries.into_iter().filter_map(|p| {
        let id = p.id()?.to_string();
        let client = &client;
        Some(async move { read(s, tally, client, id).await })
    });
    let found = futures::future::try_join_all(reads).await?;
    Ok(found.into_iter().flatten().collect())
}

async fn read(
    s: &Session,
    tally: &Tally,
    client: &aws_sdk_organizations::Client,
    id: String,
) -> Result<Vec<Finding>, CallFailure> {
    let out = s
        .call(tally, "organizations:DescribePolicy", GLOBAL_REGION, || {
            client.describe_policy().policy_id(&id).send()
        })
        .await?;
    let Some(policy) = out.policy() else {
        return Ok(Vec::new());
    };
    let scores = match score(policy.content().unwrap_or_default()) {
        Ok(scores) => scores,
        Err(e) => {
            // AWS validates SCPs on write, so this is a document the rule table cannot read:
            // it protects against nothing Canopy can vouch for.
            tracing::warn!(policy = %id, error = %e, "unreadable service control policy");
            return Ok(Vec::new());
        }
    };
    // Only a policy that protects against something is worth reading the targets of.
    if scores.is_empty() {
        return Ok(Vec::new());
    }
    let targets = all_pages(|token| {
        let id = &id;
        async move {
            let out = s
                .call(
                    tally,
                    "organizations:ListTargetsForPolicy",
                    GLOBAL_REGION,
                    || {
                        client
                            .list_targets_for_policy()
                            .policy_id(id)
                            .set_next_token(token.clone())
                            .send()
                    },
                )
                .await?;
            let targets = out
                .targets()
                .iter()
                .filter_map(|t| {
                    Some(Target {
                        id: t.target_id()?.to_string(),
                        name: t.name().unwrap_or_default().to_string(),
                        kind: t.r#type()?.clone(),
                    })
                })
                .collect();
            Ok((targets, out.next_token().map(str::to_string)))
        }
    })
    .await?;
    let summary = policy.policy_summary();
    let name = summary.and_then(|p| p.name()).unwrap_or(&id).to_string();
    let arn = summary.and_then(|p| p.arn()).map(str::to_string);
    Ok(findings(&id, &name, arn.as_deref(), &scores, &targets))
}

fn findings(
    id: &str,
    name: &str,
    arn: Option<&str>,
    scores: &[ScpScore],
    targets: &[Target],
) -> Vec<Finding> {
    let (accounts, nodes): (Vec<&Target>, Vec<&Target>) =
        targets.iter().partition(|t| t.kind == TargetType::Account);
    let techniques: Vec<TechniqueScore> = normalize(
        scores
            .iter()
            .map(|s| TechniqueScore::new(&s.technique, s.category, s.value))
            .collect(),
    );
    let denied: Vec<Value> = scores
        .iter()
        .map(|s| json!({ "technique": s.technique, "actions": s.denied, "reason": s.reason }))
        .collect();
    let finding = |key: String, reach: AppliesTo, on: &[&Target]| Finding {
        resource_key: key,
        name: name.to_string(),
        description: Some(format!(
            "Service control policy {name}, protecting against {} technique(s)",
            techniques.len()
        )),
        status: Status::Active,
        reason: None,
        applies_to: reach,
        techniques: techniques.clone(),
        evidence: json!({
            "policyId": id,
            "name": name,
            "arn": arn,
            "targets": on.iter().map(|t| json!({
                "id": t.id, "name": t.name, "type": t.kind.as_str(),
            })).collect::<Vec<_>>(),
            "denied": denied,
        }),
    };
    let ids = |on: &[&Target]| on.iter().map(|t| t.id.clone()).collect::<BTreeSet<_>>();
    let mut out = Vec::new();
    if !nodes.is_empty() {
        out.push(finding(
            id.to_string(),
            AppliesTo::Nodes(ids(&nodes)),
            &nodes,
        ));
    }
    if !accounts.is_empty() {
        out.push(finding(
            format!("{id}:accounts"),
            AppliesTo::Accounts(ids(&accounts)),
            &accounts,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(id: &str, kind: TargetType) -> Target {
        Target {
            id: id.into(),
            name: id.into(),
            kind,
        }
    }

    #[test]
    fn nodes_and_accounts_become_two_findings_and_nothing_attached_none() {
        let doc =
            r#"{"Statement":[{"Effect":"Deny","Action":"cloudtrail:StopLogging","Resource":"*"}]}"#;
        let scores = score(doc).unwrap_or_else(|e| panic!("{e}"));
        let targets = [
            target("ou-ab12-11111111", TargetType::OrganizationalUnit),
            target("r-ab12", TargetType::Root),
            target("123456789012", TargetType::Account),
        ];
        let found = findings("p-1", "keep-trails", None, &scores, &targets);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].resource_key, "p-1");
        assert_eq!(
            found[0].applies_to,
            AppliesTo::Nodes(BTreeSet::from([
                "ou-ab12-11111111".to_string(),
                "r-ab12".to_string()
            ]))
        );
        assert_eq!(found[1].resource_key, "p-1:accounts");
        assert_eq!(
            found[1].applies_to,
            AppliesTo::Accounts(BTreeSet::from(["123456789012".to_string()]))
        );
        assert_eq!(found[0].techniques[0].technique, "T1562.008");
        assert!(findings("p-1", "keep-trails", None, &scores, &[]).is_empty());
    }
}
