//! How a scan's reports become writes: a control found again is updated in place, a new one
//! is inserted, one that disappeared becomes `absent` (keeping when it was last seen), and a
//! source that could not be read leaves its detections `unknown` with the reason and advice,
//! never `absent`. Pure: the scan job reads what is stored and hands the result to the store.

use std::collections::{BTreeMap, BTreeSet};

use canopy_kernel::id::OrganizationId;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::detection::{Detection, DetectionId, Scope, Source, Status, normalize};
use crate::log_sources::default_scores;
use crate::ports::{Finding, ScanWrite, SourceReport};

/// The resource key of the stand-in for a source that could not be read and had nothing
/// stored: its techniques show as unknown instead of uncovered.
pub const UNREADABLE_KEY: &str = "*";

/// What a scan found per source, kept as the job's result and served by `scan-status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceSummary {
    /// The scanner.
    pub source: String,
    /// Controls found present (active or degraded).
    pub found: u32,
    /// Of which degraded.
    pub degraded: u32,
    /// Controls that disappeared since the last scan.
    pub gone: u32,
    /// Why the source could not be read (`access_denied: ...`), if it could not.
    pub error: Option<String>,
    /// What to do about it.
    pub advice: Option<String>,
    /// Provider calls made.
    pub calls: u32,
}

/// Where a scan's findings go.
#[derive(Debug, Clone)]
pub struct ScanScope {
    /// The tenant.
    pub organization_id: OrganizationId,
    /// Builds the scope of a finding (an account's, or the cloud organization's with the
    /// finding's reach).
    pub scope: fn(uuid::Uuid, &Finding) -> Scope,
    /// The account or cloud organization scanned.
    pub target: uuid::Uuid,
    /// The job that scanned.
    pub job_id: Option<uuid::Uuid>,
}

/// The scope of an account's own finding.
pub fn account_scope(target: uuid::Uuid, _: &Finding) -> Scope {
    Scope::Account(canopy_cloud_org::CloudAccountId(target))
}

/// The scope of an organization finding, reaching what the finding says.
pub fn organization_scope(target: uuid::Uuid, finding: &Finding) -> Scope {
    Scope::Organization {
        cloud_organization_id: canopy_cloud_org::organization::CloudOrganizationId(target),
        applies_to: finding.applies_to.clone(),
    }
}

/// Turns reports into writes against `existing` (the target's stored detections of the
/// reported sources), and summarizes them.
pub fn reconcile(
    scope: &ScanScope,
    existing: Vec<Detection>,
    reports: &[SourceReport],
    now: DateTime<Utc>,
) -> (ScanWrite, Vec<SourceSummary>) {
    let mut stored: BTreeMap<(Source, String), Detection> = existing
        .into_iter()
        .map(|d| ((d.source, d.resource_key.clone()), d))
        .collect();
    let mut write = ScanWrite::default();
    let mut summaries = Vec::new();
    for report in reports {
        let mut summary = SourceSummary {
            source: report.source.as_str().to_string(),
            calls: report.calls,
            ..SourceSummary::default()
        };
        let mine: Vec<(Source, String)> = stored
            .keys()
            .filter(|(s, _)| *s == report.source)
            .cloned()
            .collect();
        match &report.outcome {
            Ok(findings) => {
                let mut seen = BTreeSet::new();
                for finding in findings {
                    if !seen.insert(finding.resource_key.clone()) {
                        continue;
                    }
                    summary.found += 1;
                    if finding.status == Status::Degraded {
                        summary.degraded += 1;
                    }
                    let key = (report.source, finding.resource_key.clone());
                    match stored.remove(&key) {
                        Some(old) => {
                            let new = found_again(scope, &old, finding, now);
                            if new != old {
                                write.update.push(new);
                            }
                        }
                        None => write
                            .insert
                            .push(first_found(scope, report.source, finding, now)),
                    }
                }
                for key in mine.into_iter().filter(|k| !seen.contains(&k.1)) {
                    let Some(old) = stored.remove(&key) else {
                        continue;
                    };
                    if old.resource_key == UNREADABLE_KEY {
                        write.delete.push(old.id);
                    } else if old.status != Status::Absent {
                        summary.gone += 1;
                        write.update.push(Detection {
                            status: Status::Absent,
                            reason: Some("not found by the latest scan".into()),
                            advice: None,
                            last_scan_job_id: scope.job_id,
                            updated_at: now,
                            ..old
                        });
                    }
                }
            }
            Err(failure) => {
                let reason = format!("{}: {}", failure.kind.as_str(), failure.message);
                summary.error = Some(reason.clone());
                summary.advice = Some(failure.advice.clone());
                if mine.is_empty() {
                    write.insert.push(Detection {
                        id: DetectionId::new(),
                        organization_id: scope.organization_id,
                        scope: (scope.scope)(scope.target, &placeholder()),
                        source: report.source,
                        resource_key: UNREADABLE_KEY.into(),
                        name: format!("{} (could not be checked)", report.source),
                        description: None,
                        techniques: default_scores(report.source),
                        status: Status::Unknown,
                        reason: Some(reason.clone()),
                        advice: Some(failure.advice.clone()),
                        evidence: serde_json::json!({}),
                        first_seen_at: now,
                        last_seen_at: None,
                        last_scan_job_id: scope.job_id,
                        created_by: None,
                        created_at: now,
                        updated_at: now,
                    });
                }
                for key in mine {
                    let Some(old) = stored.remove(&key) else {
                        continue;
                    };
                    write.update.push(Detection {
                        status: Status::Unknown,
                        reason: Some(reason.clone()),
                        advice: Some(failure.advice.clone()),
                        last_scan_job_id: scope.job_id,
                        updated_at: now,
                        ..old
                    });
                }
            }
        }
        summaries.push(summary);
    }
    (write, summaries)
}

/// A finding that reaches every account, for the stand-in of an unreadable source.
fn placeholder() -> Finding {
    Finding {
        resource_key: UNREADABLE_KEY.into(),
        name: String::new(),
        description: None,
        status: Status::Unknown,
        reason: None,
        applies_to: crate::detection::AppliesTo::AllAccounts,
        techniques: Vec::new(),
        evidence: serde_json::json!({}),
    }
}

fn first_found(scope: &ScanScope, source: Source, f: &Finding, now: DateTime<Utc>) -> Detection {
    Detection {
        id: DetectionId::new(),
        organization_id: scope.organization_id,
        scope: (scope.scope)(scope.target, f),
        source,
        resource_key: f.resource_key.clone(),
        name: f.name.clone(),
        description: f.description.clone(),
        techniques: normalize(f.techniques.clone()),
        status: f.status,
        reason: f.reason.clone(),
        advice: None,
        evidence: f.evidence.clone(),
        first_seen_at: now,
        last_seen_at: Some(now),
        last_scan_job_id: scope.job_id,
        created_by: None,
        created_at: now,
        updated_at: now,
    }
}

fn found_again(scope: &ScanScope, old: &Detection, f: &Finding, now: DateTime<Utc>) -> Detection {
    Detection {
        scope: (scope.scope)(scope.target, f),
        name: f.name.clone(),
        description: f.description.clone(),
        techniques: normalize(f.techniques.clone()),
        status: f.status,
        reason: f.reason.clone(),
        advice: None,
        evidence: f.evidence.clone(),
        last_seen_at: Some(now),
        last_scan_job_id: scope.job_id,
        updated_at: now,
        ..old.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::{AppliesTo, TechniqueScore};
    use crate::mapping::{Category, Value};
    use crate::ports::{ReadFailure, ReadFailureKind};

    fn scope() -> ScanScope {
        ScanScope {
            organization_id: OrganizationId::new(),
            scope: organization_scope,
            target: uuid::Uuid::now_v7(),
            job_id: None,
        }
    }

    fn trail(key: &str, status: Status) -> Finding {
        Finding {
            resource_key: key.into(),
            name: key.into(),
            description: None,
            status,
            reason: None,
            applies_to: AppliesTo::AllAccounts,
            techniques: vec![TechniqueScore::new(
                "T1562.008",
                Category::Detect,
                Value::Minimal,
            )],
            evidence: serde_json::json!({"arn": key}),
        }
    }

    fn report(outcome: Result<Vec<Finding>, ReadFailure>) -> SourceReport {
        SourceReport {
            source: Source::AwsCloudTrailOrgTrail,
            outcome,
            calls: 3,
        }
    }

    fn denied() -> ReadFailure {
        ReadFailure {
            kind: ReadFailureKind::AccessDenied,
            message: "DescribeTrails: not authorized".into(),
            advice: "grant cloudtrail:DescribeTrails".into(),
        }
    }

    fn applied(existing: Vec<Detection>, write: ScanWrite) -> Vec<Detection> {
        let mut rows: BTreeMap<DetectionId, Detection> =
            existing.into_iter().map(|d| (d.id, d)).collect();
        for d in write.insert.into_iter().chain(write.update) {
            rows.insert(d.id, d);
        }
        for id in write.delete {
            rows.remove(&id);
        }
        rows.into_values().collect()
    }

    #[test]
    fn a_rescan_updates_in_place_and_marks_what_disappeared_absent() {
        let s = scope();
        let t0 = Utc::now();
        let (w, _) = reconcile(
            &s,
            vec![],
            &[report(Ok(vec![
                trail("a", Status::Active),
                trail("b", Status::Active),
            ]))],
            t0,
        );
        let stored = applied(vec![], w);
        assert_eq!(stored.len(), 2);

        let t1 = t0 + chrono::Duration::hours(24);
        let (w, summary) = reconcile(
            &s,
            stored.clone(),
            &[report(Ok(vec![trail("a", Status::Degraded)]))],
            t1,
        );
        assert!(w.insert.is_empty());
        let after = applied(stored, w);
        assert_eq!(after.len(), 2, "no duplicates");
        let a = after.iter().find(|d| d.resource_key == "a").unwrap();
        let b = after.iter().find(|d| d.resource_key == "b").unwrap();
        assert_eq!(
            (a.status, a.first_seen_at, a.last_seen_at),
            (Status::Degraded, t0, Some(t1))
        );
        assert_eq!((b.status, b.last_seen_at), (Status::Absent, Some(t0)));
        assert_eq!(
            (summary[0].found, summary[0].degraded, summary[0].gone),
            (1, 1, 1)
        );
    }

    #[test]
    fn an_unchanged_rescan_writes_only_the_seen_time() {
        let s = scope();
        let t0 = Utc::now();
        let (w, _) = reconcile(
            &s,
            vec![],
            &[report(Ok(vec![trail("a", Status::Active)]))],
            t0,
        );
        let stored = applied(vec![], w);
        let (w, _) = reconcile(
            &s,
            stored.clone(),
            &[report(Ok(vec![trail("a", Status::Active)]))],
            t0,
        );
        assert_eq!(w, ScanWrite::default());
    }

    #[test]
    fn a_denied_source_is_unknown_never_absent() {
        let s = scope();
        let t0 = Utc::now();
        // Nothing stored yet: a stand-in keeps the techniques unknown.
        let (w, summary) = reconcile(&s, vec![], &[report(Err(denied()))], t0);
        assert_eq!(w.insert.len(), 1);
        let standin = &w.insert[0];
        assert_eq!(standin.status, Status::Unknown);
        assert_eq!(standin.resource_key, UNREADABLE_KEY);
        assert!(
            standin
                .techniques
                .iter()
                .any(|t| t.technique == "T1562.008")
        );
        assert!(
            summary[0]
                .error
                .as_deref()
                .unwrap()
                .starts_with("access_denied")
        );
        // Found before: it turns unknown with the reason, keeping when it was last seen.
        let (w, _) = reconcile(
            &s,
            vec![],
            &[report(Ok(vec![trail("a", Status::Active)]))],
            t0,
        );
        let stored = applied(vec![], w);
        let (w, _) = reconcile(
            &s,
            stored.clone(),
            &[report(Err(denied()))],
            t0 + chrono::Duration::hours(1),
        );
        let after = applied(stored, w);
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].status, Status::Unknown);
        assert_eq!(after[0].last_seen_at, Some(t0));
        assert_eq!(
            after[0].advice.as_deref(),
            Some("grant cloudtrail:DescribeTrails")
        );
    }

    #[test]
    fn a_source_readable_again_drops_its_stand_in() {
        let s = scope();
        let t0 = Utc::now();
        let (w, _) = reconcile(&s, vec![], &[report(Err(denied()))], t0);
        let stored = applied(vec![], w);
        let (w, _) = reconcile(&s, stored.clone(), &[report(Ok(vec![]))], t0);
        assert_eq!(w.delete.len(), 1);
        assert!(applied(stored, w).is_empty());
    }
}
