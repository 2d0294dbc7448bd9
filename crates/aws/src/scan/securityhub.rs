//! Security Hub: enabled in one account (`aws.securityhub.account`, per region) and
//! administered for the organization (`aws.securityhub.org`). As with GuardDuty, the
//! management account lists the administrator of each region and the administrator reads its
//! own organization configuration, standards, finding aggregators and members.

use std::collections::BTreeSet;

use aws_sdk_securityhub::types::{
    AdminStatus, OrganizationConfigurationConfigurationType, StandardsStatus,
};
use canopy_detection::detection::{AppliesTo, Status, normalize};
use canopy_detection::log_sources::capability_scores;
use canopy_detection::ports::{Finding, ReadFailure, ReadFailureKind};
use serde_json::{Value, json};

use super::calls::{CallFailure, Tally, all_pages};
use super::session::Session;
use super::{Admins, each_region, status};

const CTID: &str = "aws_security_hub";

/// Answers of `DescribeHub` in an account where Security Hub is not enabled.
const NOT_ENABLED: [&str; 2] = ["InvalidAccessException", "ResourceNotFoundException"];

/// The standards enabled in `region`: (ARN, status).
async fn standards(
    s: &Session,
    tally: &Tally,
    region: &str,
) -> Result<Vec<(String, String)>, CallFailure> {
    let client = s.securityhub(region);
    all_pages(|token| {
        let client = &client;
        async move {
            let out = s
                .call(tally, "securityhub:GetEnabledStandards", region, || {
                    client
                        .get_enabled_standards()
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            let found = out
                .standards_subscriptions()
                .iter()
                .map(|s| {
                    (
                        s.standards_arn().unwrap_or_default().to_string(),
                        s.standards_status()
                            .map_or("UNKNOWN", |x| x.as_str())
                            .to_string(),
                    )
                })
                .collect();
            Ok((found, out.next_token().map(str::to_string)))
        }
    })
    .await
}

fn ready(standards: &[(String, String)]) -> usize {
    standards
        .iter()
        .filter(|(_, status)| status == StandardsStatus::Ready.as_str())
        .count()
}

fn standards_json(standards: &[(String, String)]) -> Value {
    standards
        .iter()
        .map(|(arn, status)| json!({ "arn": arn, "status": status }))
        .collect()
}

/// Security Hub in each scanned region of one account.
pub(crate) async fn account(
    s: &Session,
    tally: &Tally,
    regions: &[String],
) -> Result<Vec<Finding>, CallFailure> {
    each_region(regions, |region| async move {
        let client = s.securityhub(region);
        let hub = match s
            .call(tally, "securityhub:DescribeHub", region, || {
                client.describe_hub().send()
            })
            .await
        {
            Ok(hub) => hub,
            Err(f) if NOT_ENABLED.iter().any(|code| f.is(code)) => return Ok(Vec::new()),
            Err(f) => return Err(f),
        };
        let enabled = standards(s, tally, region).await?;
        let (status, reason) = status(if ready(&enabled) == 0 {
            vec!["no security standard is enabled and ready".to_string()]
        } else {
            Vec::new()
        });
        Ok(vec![Finding {
            resource_key: region.to_string(),
            name: format!("Security Hub ({region})"),
            description: Some(format!("Security Hub enabled in {region}")),
            status,
            reason,
            applies_to: AppliesTo::AllAccounts,
            techniques: normalize(capability_scores(CTID)),
            evidence: json!({
                "region": region,
                "hubArn": hub.hub_arn(),
                "subscribedAt": hub.subscribed_at(),
                "autoEnableControls": hub.auto_enable_controls(),
                "standards": standards_json(&enabled),
            }),
        }])
    })
    .await
}

/// What the administrator reads of its own organization configuration in one region.
struct Reach {
    central: bool,
    configuration: Option<String>,
    auto_enable: bool,
    auto_enable_standards: Option<String>,
    standards: Vec<(String, String)>,
    aggregators: Vec<String>,
    members: BTreeSet<String>,
}

async fn reach(s: &Session, tally: &Tally, region: &str) -> Result<Reach, CallFailure> {
    let client = s.securityhub(region);
    let config = s
        .call(
            tally,
            "securityhub:DescribeOrganizationConfiguration",
            region,
            || client.describe_organization_configuration().send(),
        )
        .await?;
    let kind = config
        .organization_configuration()
        .and_then(|c| c.configuration_type());
    let enabled = standards(s, tally, region).await?;
    let aggregators = all_pages(|token| {
        let client = &client;
        async move {
            let out = s
                .call(tally, "securityhub:ListFindingAggregators", region, || {
                    client
                        .list_finding_aggregators()
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            let arns = out
                .finding_aggregators()
                .iter()
                .filter_map(|a| a.finding_aggregator_arn().map(str::to_string))
                .collect();
            Ok((arns, out.next_token().map(str::to_string)))
        }
    })
    .await?;
    let members = all_pages(|token| {
        let client = &client;
        async move {
            let out = s
                .call(tally, "securityhub:ListMembers", region, || {
                    client
                        .list_members()
                        .only_associated(true)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            let ids = out
                .members()
                .iter()
                .filter(|m| {
                    m.member_status()
                        .is_some_and(|st| st.eq_ignore_ascii_case("enabled"))
                })
                .filter_map(|m| m.account_id().map(str::to_string))
                .collect();
            Ok((ids, out.next_token().map(str::to_string)))
        }
    })
    .await?;
    Ok(Reach {
        central: kind == Some(&OrganizationConfigurationConfigurationType::Central),
        configuration: kind.map(|k| k.as_str().to_string()),
        auto_enable: config.auto_enable().unwrap_or(false),
        auto_enable_standards: config
            .auto_enable_standards()
            .map(|a| a.as_str().to_string()),
        standards: enabled,
        aggregators,
        members: members.into_iter().collect(),
    })
}

/// The administrator of each region, as the management account lists them.
async fn administrators(
    s: &Session,
    tally: &Tally,
    regions: &[String],
) -> Result<Vec<(String, String)>, CallFailure> {
    each_region(regions, |region| async move {
        let client = s.securityhub(region);
        let admins = all_pages(|token| {
            let client = &client;
            async move {
                let out = s
                    .call(
                        tally,
                        "securityhub:ListOrganizationAdminAccounts",
                        region,
                        || {
                            client
                                .list_organization_admin_accounts()
                                .set_next_token(token.clone())
                                .send()
                        },
                    )
                    .await?;
                let ids = out
                    .admin_accounts()
                    .iter()
                    .filter(|a| a.status() == Some(&AdminStatus::Enabled))
                    .filter_map(|a| a.account_id().map(str::to_string))
                    .collect();
                Ok((ids, out.next_token().map(str::to_string)))
            }
        })
        .await?;
        Ok(admins
            .into_iter()
            .map(|a| (region.to_string(), a))
            .collect())
    })
    .await
}

/// Security Hub administered for the organization, per region with an administrator.
pub(crate) async fn organization(
    s: &Session,
    admins: &Admins<'_>,
    tally: &Tally,
    regions: &[String],
) -> Result<Vec<Finding>, ReadFailure> {
    let listed = administrators(s, tally, regions)
        .await
        .map_err(CallFailure::into_read_failure)?;
    let reads = listed.into_iter().map(|(region, admin)| async move {
        let read = match admins.session(&admin).await {
            Ok(session) => reach(&session, tally, &region)
                .await
                .map_err(CallFailure::into_read_failure),
            Err(f) => Err(f),
        };
        finding(region, admin, read)
    });
    futures::future::try_join_all(reads).await
}

/// One region's administrator: reaching the enabled members (all accounts under central
/// configuration) when its configuration was read; `unknown` for every account it may reach
/// when it was not, since only a reach that was read can exclude an account.
fn finding(
    region: String,
    admin: String,
    read: Result<Reach, ReadFailure>,
) -> Result<Finding, ReadFailure> {
    let mut reasons = Vec::new();
    let mut applies = BTreeSet::from([admin.clone()]);
    let mut all = false;
    let mut evidence = json!({ "region": region, "adminAccountId": admin });
    let mut unknown = None;
    match read {
        Err(f) if f.kind == ReadFailureKind::ThrottledOut => return Err(f),
        Err(f) => {
            unknown = Some(format!(
                "the administrator's configuration could not be read: {} ({})",
                f.message, f.advice
            ))
        }
        Ok(r) => {
            if ready(&r.standards) == 0 {
                reasons.push("the administrator has no security standard enabled".into());
            }
            if !r.central && !r.auto_enable {
                reasons.push("new accounts are not enabled automatically".into());
            }
            // Central configuration applies the administrator's policies across the
            // organization; local configuration reaches the enabled members only.
            all = r.central;
            applies.extend(r.members.iter().cloned());
            evidence["configurationType"] = json!(r.configuration);
            evidence["autoEnable"] = json!(r.auto_enable);
            evidence["autoEnableStandards"] = json!(r.auto_enable_standards);
            evidence["standards"] = standards_json(&r.standards);
            evidence["findingAggregators"] = json!(r.aggregators);
            evidence["enabledMembers"] = json!(r.members.len());
        }
    }
    let (status, reason) = match unknown {
        Some(why) => (Status::Unknown, Some(why)),
        None => status(reasons),
    };
    Ok(Finding {
        resource_key: region.clone(),
        name: format!("Security Hub delegated administrator ({region})"),
        description: Some(format!(
            "Security Hub administered for the organization by {admin} in {region}"
        )),
        status,
        reason,
        applies_to: if all || status == Status::Unknown {
            AppliesTo::AllAccounts
        } else {
            AppliesTo::Accounts(applies)
        },
        techniques: normalize(capability_scores(CTID)),
        evidence,
    })
}
