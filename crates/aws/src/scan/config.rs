//! AWS Config: organization aggregators (`aws.config.org_aggregator`), and an account's
//! recorder (`aws.config.recorder`) and rules (`aws.config.rules`), per region.
//!
//! CTID scores Config as a whole, and its scores rest on rules: most are `protect` (rules
//! with remediation) and the `detect` ones on evaluating recorded changes. So the rules of a
//! region earn Config's full scores, and a recorder alone earns only the `detect` ones: it
//! records the configuration history those detections read, but judges nothing by itself.
//! Each source stands on what it reads, so one failing does not blank the other.

use aws_sdk_config::types::ConfigRuleState;
use canopy_detection::detection::{AppliesTo, TechniqueScore, normalize};
use canopy_detection::log_sources::capability_scores;
use canopy_detection::mapping::Category;
use canopy_detection::ports::Finding;
use serde_json::json;

use super::calls::{CallFailure, Tally, all_pages};
use super::session::Session;
use super::{each_region, status};

const CTID: &str = "aws_config";

/// What a recorder alone earns: Config's `detect` scores.
fn recorder_scores() -> Vec<TechniqueScore> {
    capability_scores(CTID)
        .into_iter()
        .filter(|s| s.category == Category::Detect)
        .collect()
}

/// The organization aggregators of every scanned region.
pub(crate) async fn aggregators(
    s: &Session,
    tally: &Tally,
    regions: &[String],
) -> Result<Vec<Finding>, CallFailure> {
    each_region(regions, |region| async move {
        let client = s.config(region);
        let found = all_pages(|token| {
            let client = &client;
            async move {
                let out = s
                    .call(
                        tally,
                        "config:DescribeConfigurationAggregators",
                        region,
                        || {
                            client
                                .describe_configuration_aggregators()
                                .set_next_token(token.clone())
                                .send()
                        },
                    )
                    .await?;
                Ok((
                    out.configuration_aggregators().to_vec(),
                    out.next_token().map(str::to_string),
                ))
            }
        })
        .await?;
        Ok(found
            .into_iter()
            .filter_map(|a| {
                let source = a.organization_aggregation_source()?;
                let arn = a.configuration_aggregator_arn()?.to_string();
                let name = a
                    .configuration_aggregator_name()
                    .unwrap_or(&arn)
                    .to_string();
                let scope = if source.all_aws_regions() {
                    "every region".to_string()
                } else {
                    source.aws_regions().join(", ")
                };
                Some(Finding {
                    resource_key: arn.clone(),
                    name: name.clone(),
                    description: Some(format!(
                        "AWS Config aggregator {name} in {region}, over the organization's \
                         accounts in {scope}"
                    )),
                    status: canopy_detection::detection::Status::Active,
                    reason: None,
                    applies_to: AppliesTo::AllAccounts,
                    techniques: normalize(capability_scores(CTID)),
                    evidence: json!({
                        "arn": arn,
                        "name": name,
                        "region": region,
                        "allAwsRegions": source.all_aws_regions(),
                        "awsRegions": source.aws_regions(),
                        "roleArn": source.role_arn(),
                    }),
                })
            })
            .collect())
    })
    .await
}

/// The configuration recorder of each scanned region that has one.
pub(crate) async fn recorders(
    s: &Session,
    tally: &Tally,
    regions: &[String],
) -> Result<Vec<Finding>, CallFailure> {
    each_region(regions, |region| async move {
        let client = s.config(region);
        let (recorders, statuses) = futures::try_join!(
            s.call(
                tally,
                "config:DescribeConfigurationRecorders",
                region,
                || { client.describe_configuration_recorders().send() }
            ),
            s.call(
                tally,
                "config:DescribeConfigurationRecorderStatus",
                region,
                || client.describe_configuration_recorder_status().send()
            ),
        )?;
        // An account has one customer-managed recorder per region; service-linked ones
        // (another service's) are not the account's own controls.
        let Some(recorder) = recorders
            .configuration_recorders()
            .iter()
            .find(|r| r.service_principal().is_none())
        else {
            return Ok(Vec::new());
        };
        let name = recorder.name().unwrap_or("default").to_string();
        let state = statuses
            .configuration_recorders_status()
            .iter()
            .find(|st| st.name() == Some(name.as_str()));
        let recording = state.is_some_and(|st| st.recording());
        let group = recorder.recording_group();
        let all_supported = group.is_some_and(|g| g.all_supported());
        let mut reasons = Vec::new();
        if !recording {
            reasons.push("the recorder is not recording".to_string());
        }
        if !all_supported {
            reasons.push("the recorder records only some resource types".to_string());
        }
        let (status, reason) = status(reasons);
        Ok(vec![Finding {
            resource_key: region.to_string(),
            name: format!("AWS Config recorder ({region})"),
            description: Some(format!("AWS Config recorder {name} in {region}")),
            status,
            reason,
            applies_to: AppliesTo::AllAccounts,
            techniques: normalize(recorder_scores()),
            evidence: json!({
                "region": region,
                "name": name,
                "recording": recording,
                "lastStatus": state.and_then(|st| st.last_status()).map(|x| x.as_str()),
                "allSupported": all_supported,
                "includeGlobalResourceTypes":
                    group.is_some_and(|g| g.include_global_resource_types()),
                "resourceTypes": group.map_or(0, |g| g.resource_types().len()),
            }),
        }])
    })
    .await
}

/// The Config rules of each scanned region that has any, one finding per region.
pub(crate) async fn rules(
    s: &Session,
    tally: &Tally,
    regions: &[String],
) -> Result<Vec<Finding>, CallFailure> {
    each_region(regions, |region| async move {
        let client = s.config(region);
        let rules = all_pages(|token| {
            let client = &client;
            async move {
                let out = s
                    .call(tally, "config:DescribeConfigRules", region, || {
                        client
                            .describe_config_rules()
                            .set_next_token(token.clone())
                            .send()
                    })
                    .await?;
                Ok((
                    out.config_rules().to_vec(),
                    out.next_token().map(str::to_string),
                ))
            }
        })
        .await?;
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let active = rules
            .iter()
            .filter(|r| {
                r.config_rule_state()
                    .is_none_or(|st| *st == ConfigRuleState::Active)
            })
            .count();
        let (status, reason) = status(if active == 0 {
            vec!["no rule is active".to_string()]
        } else {
            Vec::new()
        });
        let listed: Vec<_> = rules
            .iter()
            .map(|r| {
                json!({
                    "name": r.config_rule_name(),
                    "source": r.source().and_then(|src| src.source_identifier()),
                    "state": r.config_rule_state().map(|st| st.as_str()),
                })
            })
            .collect();
        Ok(vec![Finding {
            resource_key: region.to_string(),
            name: format!("AWS Config rules ({region})"),
            description: Some(format!("{} AWS Config rules in {region}", rules.len())),
            status,
            reason,
            applies_to: AppliesTo::AllAccounts,
            techniques: normalize(capability_scores(CTID)),
            evidence: json!({
                "region": region,
                "count": rules.len(),
                "active": active,
                "rules": listed,
            }),
        }])
    })
    .await
}
