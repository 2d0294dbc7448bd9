//! What each source's controls address: CTID's scores for the native capabilities it scores,
//! and Canopy's own table (`data/log-sources.json`, each row with a one-line reason) for what
//! CTID treats as data sources: CloudTrail trails, log sinks, and CloudWatch alarms on
//! CloudTrail metric filters (the CIS monitoring set).

use std::sync::OnceLock;

use serde::Deserialize;

use crate::catalog::Catalog;
use crate::detection::{Source, TechniqueScore, normalize};
use crate::mapping::{Category, ControlMappings, Value};

/// The table, as shipped.
const DATA: &str = include_str!("../data/log-sources.json");

/// Which part of a log the evidence is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Needs {
    /// Management / Admin Activity events.
    Management,
    /// Data events / Data Access logs.
    Data,
}

/// A row of the log table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LogRow {
    /// `T1562.008`.
    pub technique: String,
    /// Which events carry it.
    pub needs: Needs,
    /// How well (always `detect`).
    pub value: Value,
    /// Why.
    pub reason: String,
}

/// A CIS monitoring alarm: a metric filter pattern containing every `match` string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AlarmRule {
    /// `root_usage`.
    pub id: String,
    /// Strings the filter pattern must all contain.
    #[serde(rename = "match")]
    pub matches: Vec<String>,
    /// `T1078.004`.
    pub technique: String,
    /// How well (always `detect`).
    pub value: Value,
    /// Why.
    pub reason: String,
}

#[derive(Debug, Deserialize)]
struct Table {
    logs: Vec<LogRow>,
    alarms: Vec<AlarmRule>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    // Compiled-in data checked by this module's tests.
    TABLE.get_or_init(|| {
        serde_json::from_str(DATA).unwrap_or_else(|e| panic!("shipped log-source table: {e}"))
    })
}

/// The log table's rows.
pub fn log_rows() -> &'static [LogRow] {
    &table().logs
}

/// The CIS alarm rules.
pub fn alarm_rules() -> &'static [AlarmRule] {
    &table().alarms
}

/// What a trail or sink detects, given which events it carries.
pub fn log_scores(management: bool, data: bool) -> Vec<TechniqueScore> {
    log_rows()
        .iter()
        .filter(|r| match r.needs {
            Needs::Management => management,
            Needs::Data => data,
        })
        .map(|r| TechniqueScore::new(&r.technique, Category::Detect, r.value))
        .collect()
}

/// The CIS alarms a metric filter pattern implements (usually one).
pub fn alarms_matching(pattern: &str) -> Vec<&'static AlarmRule> {
    alarm_rules()
        .iter()
        .filter(|a| a.matches.iter().all(|m| pattern.contains(m.as_str())))
        .collect()
}

/// CTID's IaaS scores of one capability (`amazon_guardduty`).
pub fn capability_scores(ctid_id: &str) -> Vec<TechniqueScore> {
    let catalog = Catalog::embedded();
    ControlMappings::embedded()
        .capability(ctid_id)
        .map(|c| {
            c.mappings
                .iter()
                .filter(|s| catalog.technique(&s.technique).is_some_and(|t| t.iaas))
                .map(|s| TechniqueScore::new(&s.technique, s.category, s.value))
                .collect()
        })
        .unwrap_or_default()
}

/// What a working control of `source` addresses in its usual configuration: CTID's scores
/// for scored capabilities, the management-event rows for log sources, nothing for content-
/// dependent sources (SCPs, org policies, alarms, custom). Used for a source that could not
/// be read, so its techniques show as unknown rather than uncovered.
pub fn default_scores(source: Source) -> Vec<TechniqueScore> {
    let scores = match source {
        Source::AwsGuardDutyDelegatedAdmin | Source::AwsGuardDutyDetector => {
            capability_scores("amazon_guardduty")
        }
        Source::AwsSecurityHubOrg | Source::AwsSecurityHubAccount => {
            capability_scores("aws_security_hub")
        }
        Source::AwsConfigOrgAggregator | Source::AwsConfigRecorder | Source::AwsConfigRules => {
            capability_scores("aws_config")
        }
        Source::GcpSccOrg => capability_scores("security_command_center"),
        Source::GcpCloudAssetOrgFeed => capability_scores("cloud_asset_inventory"),
        Source::AwsCloudTrailOrgTrail
        | Source::AwsCloudTrailTrail
        | Source::GcpLoggingOrgSink
        | Source::GcpLoggingFolderSink
        | Source::GcpLoggingProjectSink => log_scores(true, false),
        Source::AwsOrganizationsScp
        | Source::GcpOrgPolicyConstraint
        | Source::AwsCloudWatchAlarm
        | Source::Custom => Vec::new(),
    };
    normalize(scores)
}

/// True when every technique the table awards is in `catalog`.
pub fn fits(catalog: &Catalog) -> bool {
    log_rows()
        .iter()
        .map(|r| &r.technique)
        .chain(alarm_rules().iter().map(|a| &a.technique))
        .all(|t| catalog.technique(t).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_only_catalog_techniques_and_gives_every_row_a_reason() {
        assert!(fits(Catalog::embedded()));
        assert!(log_rows().iter().all(|r| !r.reason.trim().is_empty()));
        assert!(alarm_rules().iter().all(|a| !a.reason.trim().is_empty()));
        // A log source only records: it never scores better than minimal.
        assert!(log_rows().iter().all(|r| r.value == Value::Minimal));
    }

    #[test]
    fn data_events_add_storage_techniques_only_when_recorded() {
        let management = log_scores(true, false);
        let both = log_scores(true, true);
        assert!(!management.iter().any(|s| s.technique == "T1530"));
        assert!(both.iter().any(|s| s.technique == "T1530"));
        assert!(both.len() > management.len());
        assert!(log_scores(false, false).is_empty());
    }

    #[test]
    fn cis_filter_patterns_map_to_their_alarm() {
        let root = r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }"#;
        let ids: Vec<&str> = alarms_matching(root)
            .iter()
            .map(|a| a.id.as_str())
            .collect();
        assert_eq!(ids, ["root_usage"]);
        let trail = r#"{ ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || ($.eventName = DeleteTrail) || ($.eventName = StartLogging) || ($.eventName = StopLogging) }"#;
        assert_eq!(alarms_matching(trail)[0].technique, "T1562.008");
        assert!(alarms_matching(r#"{ $.eventName = "GetObject" }"#).is_empty());
    }

    #[test]
    fn an_unreadable_source_still_knows_what_it_would_address() {
        let guardduty = default_scores(Source::AwsGuardDutyDetector);
        assert!(guardduty.len() > 20);
        assert!(
            default_scores(Source::AwsCloudTrailOrgTrail)
                .iter()
                .any(|s| s.technique == "T1562.008")
        );
        assert!(default_scores(Source::AwsOrganizationsScp).is_empty());
    }
}
