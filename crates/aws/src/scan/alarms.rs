//! CloudWatch alarms on CloudTrail metric filters (`aws.cloudwatch.alarm`): the CIS
//! monitoring set. A region's metric filters are read first (CloudWatch Logs), and only the
//! ones whose pattern implements a CIS alarm rule matter; the region's metric alarms are then
//! matched to those filters by metric name and namespace. A region with no such filter costs
//! one call. An alarm that notifies nobody is degraded: it fires into the void.

use std::collections::HashMap;

use aws_sdk_cloudwatch::types::AlarmType;
use canopy_detection::detection::{AppliesTo, TechniqueScore, normalize};
use canopy_detection::log_sources::{AlarmRule, alarms_matching};
use canopy_detection::mapping::Category;
use canopy_detection::ports::Finding;
use serde_json::{Value, json};

use super::calls::{CallFailure, Tally, all_pages};
use super::session::Session;
use super::{each_region, status};

/// A metric filter implementing at least one CIS alarm rule.
struct Filter {
    name: String,
    log_group: String,
    pattern: String,
    rules: Vec<&'static AlarmRule>,
}

/// (namespace, metric name) -> the filters that publish it.
type Metrics = HashMap<(String, String), Vec<Filter>>;

async fn filters(s: &Session, tally: &Tally, region: &str) -> Result<Metrics, CallFailure> {
    let client = s.logs(region);
    let all = all_pages(|token| {
        let client = &client;
        async move {
            let out = s
                .call(tally, "logs:DescribeMetricFilters", region, || {
                    client
                        .describe_metric_filters()
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            Ok((
                out.metric_filters().to_vec(),
                out.next_token().map(str::to_string),
            ))
        }
    })
    .await?;
    let mut metrics = Metrics::new();
    for f in all {
        let pattern = f.filter_pattern().unwrap_or_default();
        let rules = alarms_matching(pattern);
        if rules.is_empty() {
            continue;
        }
        for t in f.metric_transformations() {
            metrics
                .entry((
                    t.metric_namespace().to_string(),
                    t.metric_name().to_string(),
                ))
                .or_default()
                .push(Filter {
                    name: f.filter_name().unwrap_or_default().to_string(),
                    log_group: f.log_group_name().unwrap_or_default().to_string(),
                    pattern: pattern.to_string(),
                    rules: rules.clone(),
                });
        }
    }
    Ok(metrics)
}

/// The CIS alarms of each scanned region.
pub(crate) async fn alarms(
    s: &Session,
    tally: &Tally,
    regions: &[String],
) -> Result<Vec<Finding>, CallFailure> {
    each_region(regions, |region| async move {
        let metrics = filters(s, tally, region).await?;
        if metrics.is_empty() {
            return Ok(Vec::new());
        }
        let client = s.cloudwatch(region);
        let alarms = all_pages(|token| {
            let client = &client;
            async move {
                let out = s
                    .call(tally, "cloudwatch:DescribeAlarms", region, || {
                        client
                            .describe_alarms()
                            .alarm_types(AlarmType::MetricAlarm)
                            .set_next_token(token.clone())
                            .send()
                    })
                    .await?;
                Ok((
                    out.metric_alarms().to_vec(),
                    out.next_token().map(str::to_string),
                ))
            }
        })
        .await?;
        Ok(alarms
            .iter()
            .filter_map(|alarm| {
                let key = (
                    alarm.namespace()?.to_string(),
                    alarm.metric_name()?.to_string(),
                );
                let filters = metrics.get(&key)?;
                Some(finding(region, alarm, &key, filters))
            })
            .collect())
    })
    .await
}

fn finding(
    region: &str,
    alarm: &aws_sdk_cloudwatch::types::MetricAlarm,
    (namespace, metric): &(String, String),
    filters: &[Filter],
) -> Finding {
    let name = alarm.alarm_name().unwrap_or(metric).to_string();
    let arn = alarm
        .alarm_arn()
        .map_or_else(|| name.clone(), str::to_string);
    let mut rules: Vec<&AlarmRule> = filters.iter().flat_map(|f| f.rules.clone()).collect();
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    rules.dedup_by(|a, b| a.id == b.id);
    let actions = alarm.alarm_actions();
    let enabled = alarm.actions_enabled().unwrap_or(true);
    let mut reasons = Vec::new();
    if actions.is_empty() {
        reasons.push("the alarm has no action: nobody is notified".to_string());
    } else if !enabled {
        reasons.push("the alarm's actions are disabled".to_string());
    }
    let (status, reason) = status(reasons);
    let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    Finding {
        resource_key: arn.clone(),
        name: name.clone(),
        description: Some(format!(
            "CloudWatch alarm {name} in {region} on a CloudTrail metric filter ({})",
            ids.join(", ")
        )),
        status,
        reason,
        applies_to: AppliesTo::AllAccounts,
        techniques: normalize(
            rules
                .iter()
                .map(|r| TechniqueScore::new(&r.technique, Category::Detect, r.value))
                .collect(),
        ),
        evidence: json!({
            "arn": arn,
            "name": name,
            "region": region,
            "namespace": namespace,
            "metricName": metric,
            "rules": ids,
            "filters": filters.iter().map(|f| json!({
                "name": f.name, "logGroup": f.log_group, "pattern": f.pattern,
            })).collect::<Vec<Value>>(),
            "actions": actions,
            "actionsEnabled": enabled,
            "state": alarm.state_value().map(|st| st.as_str()),
        }),
    }
}
