//! What the demo cloud's controls look like to a scanner: findings shaped like the real
//! scanners' (same resource keys, reasons and evidence), scored with the detection domain's
//! own tables (CTID's capability scores, the log-source table, the CIS alarm rules, the SCP
//! rules), so the reconciliation, inheritance and coverage that follow are the real ones.

use std::collections::BTreeSet;

use canopy_detection::detection::{AppliesTo, Status, TechniqueScore, normalize};
use canopy_detection::log_sources::{alarms_matching, capability_scores, log_scores};
use canopy_detection::mapping::{Category, Value};
use canopy_detection::ports::{Finding, ReadFailure, ReadFailureKind};
use canopy_detection::scp::score;
use serde_json::{Value as Json, json};

use crate::estate::{
    AWS_MANAGEMENT_ACCOUNT, AWS_MEMBERS, AWS_SECURITY_ACCOUNT, Control, FOLDER_PRODUCTION,
    GCP_ORGANIZATION, OU_PROD, OU_SANDBOX,
};

/// Where the demo's regional controls live.
const REGION: &str = "us-east-1";

/// The SCP attached to OU Prod: trails, GuardDuty and membership of the organization cannot
/// be switched off from inside.
pub(crate) const PROD_SCP: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "KeepTrailsOn", "Effect": "Deny", "Resource": "*",
     "Action": ["cloudtrail:StopLogging", "cloudtrail:DeleteTrail",
                "cloudtrail:UpdateTrail", "cloudtrail:PutEventSelectors"]},
    {"Sid": "KeepGuardDutyOn", "Effect": "Deny", "Resource": "*",
     "Action": ["guardduty:DeleteDetector", "guardduty:UpdateDetector",
                "guardduty:DisassociateFromAdministratorAccount"]},
    {"Sid": "StayInTheOrganization", "Effect": "Deny", "Resource": "*",
     "Action": "organizations:LeaveOrganization"}
  ]
}"#;

/// The CIS CloudWatch metric-filter patterns of the alarms the demo accounts hold, by the id
/// of the rule they implement.
pub(crate) const CIS_PATTERNS: [(&str, &str); 6] = [
    (
        "root_usage",
        r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }"#,
    ),
    (
        "cloudtrail_changes",
        "{ ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || ($.eventName = DeleteTrail) || ($.eventName = StartLogging) || ($.eventName = StopLogging) }",
    ),
    (
        "organizations_changes",
        r#"{ ($.eventSource = organizations.amazonaws.com) && (($.eventName = "AcceptHandshake") || ($.eventName = "AttachPolicy") || ($.eventName = "CreateAccount") || ($.eventName = "DetachPolicy") || ($.eventName = "LeaveOrganization") || ($.eventName = "MoveAccount") || ($.eventName = "RemoveAccountFromOrganization")) }"#,
    ),
    (
        "iam_policy_changes",
        "{ ($.eventName = DeleteRolePolicy) || ($.eventName = DeleteUserPolicy) || ($.eventName = PutRolePolicy) || ($.eventName = PutUserPolicy) || ($.eventName = CreatePolicy) || ($.eventName = DeletePolicy) || ($.eventName = AttachRolePolicy) || ($.eventName = DetachRolePolicy) || ($.eventName = AttachUserPolicy) || ($.eventName = DetachUserPolicy) }",
    ),
    (
        "console_signin_failures",
        r#"{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }"#,
    ),
    (
        "security_group_changes",
        "{ ($.eventName = AuthorizeSecurityGroupIngress) || ($.eventName = AuthorizeSecurityGroupEgress) || ($.eventName = RevokeSecurityGroupIngress) || ($.eventName = RevokeSecurityGroupEgress) || ($.eventName = CreateSecurityGroup) || ($.eventName = DeleteSecurityGroup) }",
    ),
];

/// `Active` with no reason, or `Degraded` with every reason, as the real scanners say it.
fn status(reasons: Vec<String>) -> (Status, Option<String>) {
    if reasons.is_empty() {
        (Status::Active, None)
    } else {
        (Status::Degraded, Some(reasons.join("; ")))
    }
}

fn finding(
    resource_key: String,
    name: String,
    description: String,
    reasons: Vec<String>,
    applies_to: AppliesTo,
    techniques: Vec<TechniqueScore>,
    evidence: Json,
) -> Finding {
    let (status, reason) = status(reasons);
    Finding {
        resource_key,
        name,
        description: Some(description),
        status,
        reason,
        applies_to,
        techniques: normalize(techniques),
        evidence,
    }
}

/// The organization trail in the management account: every account, every region.
pub(crate) fn org_trail() -> Finding {
    let arn = format!("arn:aws:cloudtrail:{REGION}:{AWS_MANAGEMENT_ACCOUNT}:trail/org-trail");
    finding(
        arn.clone(),
        "org-trail".into(),
        "CloudTrail organization trail org-trail, recording every account".into(),
        Vec::new(),
        AppliesTo::AllAccounts,
        log_scores(true, false),
        json!({
            "arn": arn, "homeRegion": REGION, "multiRegion": true, "isLogging": true,
            "managementEvents": true, "readWriteType": "All", "dataEvents": false,
            "s3Bucket": "d3mo-org-trail-logs", "organizationTrail": true,
        }),
    )
}

/// GuardDuty run for the organization by the security account, enrolling every account but
/// the sandboxes.
pub(crate) fn delegated_guardduty() -> Finding {
    let enrolled: BTreeSet<String> = AWS_MEMBERS
        .iter()
        .filter(|m| m.parent != OU_SANDBOX)
        .map(|m| m.key.to_string())
        .collect();
    finding(
        REGION.into(),
        format!("GuardDuty delegated administrator ({REGION})"),
        format!(
            "GuardDuty administered for the organization by {AWS_SECURITY_ACCOUNT} in {REGION}"
        ),
        Vec::new(),
        AppliesTo::Accounts(enrolled.clone()),
        capability_scores("amazon_guardduty"),
        json!({
            "region": REGION, "adminAccountId": AWS_SECURITY_ACCOUNT,
            "detectorId": detector_id(AWS_SECURITY_ACCOUNT), "detectorStatus": "ENABLED",
            "autoEnableOrganizationMembers": "NEW", "enabledMembers": enrolled.len().saturating_sub(1),
        }),
    )
}

/// The SCP on OU Prod, reaching Prod's subtree, scored from what it denies.
pub(crate) fn prod_scp() -> Result<Vec<Finding>, ReadFailure> {
    let scores = score(PROD_SCP).map_err(|e| ReadFailure {
        kind: ReadFailureKind::Failed,
        message: format!("the demo SCP prod-guardrails: {e}"),
        advice: "This is the demo cloud's mistake; report it.".into(),
    })?;
    let techniques = scores
        .iter()
        .map(|s| TechniqueScore::new(&s.technique, s.category, s.value))
        .collect::<Vec<_>>();
    let denied: Vec<Json> = scores
        .iter()
        .map(|s| json!({"technique": s.technique, "actions": s.denied, "reason": s.reason}))
        .collect();
    let id = "p-d3mo0prod";
    Ok(vec![finding(
        id.into(),
        "prod-guardrails".into(),
        format!(
            "Service control policy prod-guardrails, protecting against {} technique(s)",
            techniques.len()
        ),
        Vec::new(),
        AppliesTo::Nodes(BTreeSet::from([OU_PROD.to_string()])),
        techniques,
        json!({
            "policyId": id, "name": "prod-guardrails",
            "arn": format!("arn:aws:organizations::{AWS_MANAGEMENT_ACCOUNT}:policy/o-d3mocanopy1/service_control_policy/{id}"),
            "targets": [{"id": OU_PROD, "name": "Prod", "type": "ORGANIZATIONAL_UNIT"}],
            "denied": denied,
        }),
    )])
}

fn sink(
    parent: &str,
    name: &str,
    filter: &str,
    data_access: bool,
    disabled: bool,
    applies_to: AppliesTo,
) -> Finding {
    let key = format!("{parent}/sinks/{name}");
    let destination = format!(
        "bigquery.googleapis.com/projects/shared-logging/datasets/{}",
        name.replace('-', "_")
    );
    let mut reasons = Vec::new();
    if disabled {
        reasons.push("the sink is disabled: it exports nothing".to_string());
    }
    finding(
        key.clone(),
        name.into(),
        format!("Log sink of {parent} to {destination}"),
        reasons,
        applies_to,
        log_scores(true, data_access),
        json!({
            "sink": key, "parent": parent, "destination": destination, "filter": filter,
            "exclusions": [], "includeChildren": !parent.starts_with("projects/"),
            "disabled": disabled,
            "routes": {"adminActivity": true, "dataAccess": data_access},
        }),
    )
}

/// The organization sink: Admin Activity logs of every project.
pub(crate) fn org_sink() -> Finding {
    sink(
        GCP_ORGANIZATION,
        "audit-to-bigquery",
        r#"logName:"cloudaudit.googleapis.com%2Factivity""#,
        false,
        false,
        AppliesTo::AllAccounts,
    )
}

/// The sink on folder Production: Admin Activity and Data Access logs of its projects only.
pub(crate) fn production_sink() -> Finding {
    sink(
        FOLDER_PRODUCTION,
        "prod-audit-and-data-access",
        r#"logName:("cloudaudit.googleapis.com%2Factivity" OR "cloudaudit.googleapis.com%2Fdata_access")"#,
        true,
        false,
        AppliesTo::Nodes(BTreeSet::from([FOLDER_PRODUCTION.to_string()])),
    )
}

/// Security Command Center for the whole organization.
pub(crate) fn scc() -> Finding {
    finding(
        format!("{GCP_ORGANIZATION}/organizationSettings"),
        "Security Command Center".into(),
        format!(
            "Security Command Center activated for {GCP_ORGANIZATION}, with 2 finding source(s)"
        ),
        Vec::new(),
        AppliesTo::AllAccounts,
        capability_scores("security_command_center"),
        json!({
            "organizationSettings": format!("{GCP_ORGANIZATION}/organizationSettings"),
            "enableAssetDiscovery": true,
            "sources": ["Event Threat Detection", "Security Health Analytics"],
            "detectionServices": ["Event Threat Detection", "Security Health Analytics"],
        }),
    )
}

/// Enforced organization policies: no service-account keys anywhere, no public buckets in
/// Production. Their techniques are the rows of the GCP adapter's constraint table.
pub(crate) fn org_policies() -> Vec<Finding> {
    let policy = |node: &str, constraint: &str, technique: &str, reason: &str, reach| {
        let name = format!("{node}/policies/{constraint}");
        finding(
            name.clone(),
            constraint.into(),
            reason.into(),
            Vec::new(),
            reach,
            vec![TechniqueScore::new(
                technique,
                Category::Protect,
                Value::Partial,
            )],
            json!({
                "policy": name, "constraint": constraint, "setOn": node,
                "enforcement": "enforced", "condition": null, "dryRunSpec": false,
                "overriddenBelow": [],
            }),
        )
    };
    vec![
        policy(
            GCP_ORGANIZATION,
            "iam.disableServiceAccountKeyCreation",
            "T1098.001",
            "No new service-account keys: a foothold cannot mint long-lived credentials for a \
             service account.",
            AppliesTo::AllAccounts,
        ),
        policy(
            FOLDER_PRODUCTION,
            "storage.publicAccessPrevention",
            "T1530",
            "Buckets and objects cannot be shared with allUsers or allAuthenticatedUsers.",
            AppliesTo::Nodes(BTreeSet::from([FOLDER_PRODUCTION.to_string()])),
        ),
    ]
}

fn detector_id(account: &str) -> String {
    format!("d3m0c4n0py{account}")
}

/// The member role a denied call names in its advice.
fn role(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/CanopyAccess")
}

/// What an account whose role does not trust Canopy reads like: the real scanner fails every
/// source with the `sts:AssumeRole` denial.
pub(crate) fn role_refused(account: &str) -> ReadFailure {
    ReadFailure {
        kind: ReadFailureKind::AccessDenied,
        message: format!(
            "sts:AssumeRole on {} was refused (AccessDenied: the role does not trust Canopy \
             with this External ID)",
            role(account)
        ),
        advice: format!(
            "update the trust policy of {} to trust Canopy's principal with the organization's \
             External ID",
            role(account)
        ),
    }
}

/// What a denied AWS call reads like, as the real scanners classify it.
pub(crate) fn denied(account: &str, action: &str) -> ReadFailure {
    ReadFailure {
        kind: ReadFailureKind::AccessDenied,
        message: format!(
            "{action} in {REGION} was refused (AccessDeniedException: User: {} is not \
             authorized to perform: {action})",
            role(account)
        ),
        advice: format!(
            "grant {action} to {} (AWS's SecurityAudit managed policy includes it), and check \
             that no service control policy denies it",
            role(account)
        ),
    }
}

/// The findings of one account-level control (an account's own or a project's own).
pub(crate) fn account_findings(account: &str, control: &Control) -> Vec<Finding> {
    match *control {
        Control::GuardDuty { enabled } => {
            let state = if enabled { "ENABLED" } else { "SUSPENDED" };
            vec![finding(
                REGION.into(),
                format!("GuardDuty ({REGION})"),
                format!("GuardDuty detector {} in {REGION}", detector_id(account)),
                if enabled {
                    Vec::new()
                } else {
                    vec![format!("the detector is {state}")]
                },
                AppliesTo::AllAccounts,
                capability_scores("amazon_guardduty"),
                json!({"region": REGION, "detectorId": detector_id(account), "status": state,
                       "findingPublishingFrequency": "FIFTEEN_MINUTES"}),
            )]
        }
        Control::Trail {
            multi_region,
            data_events,
        } => {
            let arn = format!("arn:aws:cloudtrail:{REGION}:{account}:trail/account-trail");
            let reasons = if multi_region {
                Vec::new()
            } else {
                vec![format!(
                    "the trail records only {REGION}; activity in other regions goes unrecorded"
                )]
            };
            vec![finding(
                arn.clone(),
                "account-trail".into(),
                "CloudTrail trail account-trail".into(),
                reasons,
                AppliesTo::AllAccounts,
                log_scores(true, data_events),
                json!({"arn": arn, "homeRegion": REGION, "multiRegion": multi_region,
                       "isLogging": true, "managementEvents": true, "readWriteType": "All",
                       "dataEvents": data_events, "organizationTrail": false}),
            )]
        }
        Control::ConfigRecorder { recording } => vec![finding(
            REGION.into(),
            format!("AWS Config recorder ({REGION})"),
            format!("AWS Config recorder default in {REGION}"),
            if recording {
                Vec::new()
            } else {
                vec!["the recorder is not recording".to_string()]
            },
            AppliesTo::AllAccounts,
            capability_scores("aws_config")
                .into_iter()
                .filter(|s| s.category == Category::Detect)
                .collect(),
            json!({"region": REGION, "name": "default", "recording": recording,
                   "lastStatus": if recording { "SUCCESS" } else { "PENDING" },
                   "allSupported": true, "includeGlobalResourceTypes": true}),
        )],
        Control::ConfigRules(count) => vec![finding(
            REGION.into(),
            format!("AWS Config rules ({REGION})"),
            format!("{count} AWS Config rules in {REGION}"),
            Vec::new(),
            AppliesTo::AllAccounts,
            capability_scores("aws_config"),
            json!({"region": REGION, "count": count, "active": count}),
        )],
        Control::SecurityHub => vec![finding(
            REGION.into(),
            format!("Security Hub ({REGION})"),
            format!("Security Hub enabled in {REGION}"),
            Vec::new(),
            AppliesTo::AllAccounts,
            capability_scores("aws_security_hub"),
            json!({"region": REGION,
                   "hubArn": format!("arn:aws:securityhub:{REGION}:{account}:hub/default"),
                   "standards": ["aws-foundational-security-best-practices/v/1.0.0",
                                 "cis-aws-foundations-benchmark/v/3.0.0"]}),
        )],
        Control::Alarms(ids) => ids
            .iter()
            .filter_map(|id| CIS_PATTERNS.iter().find(|(rule, _)| rule == id))
            .map(|(id, pattern)| alarm(account, id, pattern))
            .collect(),
        Control::ProjectSink {
            name,
            disabled,
            data_access,
        } => {
            let filter = if data_access {
                r#"logName:("cloudaudit.googleapis.com%2Factivity" OR "cloudaudit.googleapis.com%2Fdata_access")"#
            } else {
                r#"logName:"cloudaudit.googleapis.com%2Factivity""#
            };
            vec![sink(
                &format!("projects/{account}"),
                name,
                filter,
                data_access,
                disabled,
                AppliesTo::AllAccounts,
            )]
        }
        // Not controls: reads that fail (`scanners.rs` reports them).
        Control::ConfigDenied | Control::RoleRefused => Vec::new(),
    }
}

/// A CIS alarm on a CloudTrail metric filter, with an SNS action, mapped by the real rules.
fn alarm(account: &str, id: &str, pattern: &str) -> Finding {
    let name = format!("cis-{}", id.replace('_', "-"));
    let arn = format!("arn:aws:cloudwatch:{REGION}:{account}:alarm:{name}");
    let rules = alarms_matching(pattern);
    let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    finding(
        arn.clone(),
        name.clone(),
        format!(
            "CloudWatch alarm {name} in {REGION} on a CloudTrail metric filter ({})",
            ids.join(", ")
        ),
        Vec::new(),
        AppliesTo::AllAccounts,
        rules
            .iter()
            .map(|r| TechniqueScore::new(&r.technique, Category::Detect, r.value))
            .collect(),
        json!({
            "arn": arn, "name": name, "region": REGION, "namespace": "CISBenchmark",
            "metricName": name, "rules": ids,
            "filters": [{"name": name, "logGroup": "aws-cloudtrail-logs", "pattern": pattern}],
            "actions": [format!("arn:aws:sns:{REGION}:{account}:security-alerts")],
            "actionsEnabled": true, "state": "OK",
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cis_pattern_implements_exactly_its_rule() {
        for (id, pattern) in CIS_PATTERNS {
            let found: Vec<&str> = alarms_matching(pattern)
                .iter()
                .map(|r| r.id.as_str())
                .collect();
            assert_eq!(found, [id], "{pattern}");
        }
    }

    #[test]
    fn the_prod_scp_protects_trails_guardduty_and_membership() {
        let scp = prod_scp().unwrap();
        let techniques: Vec<&str> = scp[0]
            .techniques
            .iter()
            .map(|t| t.technique.as_str())
            .collect();
        assert_eq!(techniques, ["T1562.001", "T1562.008", "T1666"]);
        assert!(
            scp[0]
                .techniques
                .iter()
                .all(|t| t.category == Category::Protect)
        );
    }

    #[test]
    fn the_sandboxes_are_left_out_of_delegated_guardduty() {
        let AppliesTo::Accounts(enrolled) = delegated_guardduty().applies_to else {
            panic!("GuardDuty enrols listed accounts");
        };
        assert_eq!(enrolled.len(), 7);
        assert!(!enrolled.contains("310987654107"));
    }
}
