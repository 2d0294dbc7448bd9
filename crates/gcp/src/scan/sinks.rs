//! Log sinks at the organization, its folders and projects (`sinks.list`), and what each routes:
//! Admin Activity and Data Access audit logs are the evidence the log table scores
//! (`log_scores(management, data)`).
//!
//! Decisions:
//! - A sink's reach: at the organization with `includeChildren` every account; at a folder with
//!   it the folder's subtree; without it only the parent's own logs, so the finding keeps the
//!   parent's subtree as its reach (it stays visible on the projects it fails) but is degraded
//!   with the reason. A disabled sink is degraded too. A sink whose filter routes no audit log
//!   is degraded with no techniques: it is a sink, but carries no evidence of adversary activity.
//! - Filters are read by a heuristic over their terms, not a full parser: an empty filter
//!   routes everything; a term naming `cloudaudit`, the `AuditLog` type or a `protoPayload`
//!   field selects audit logs, one preceded by `NOT` or `-` excludes them; `activity` and
//!   `data_access` in a term say which audit log; a term naming no audit log type means Admin
//!   Activity only (Data Access logs are claimed only when named or when nothing is filtered).
//!   Active exclusions are read the same way and subtract.
//! - Google's built-in `_Required` and `_Default` sinks exist everywhere and route into the
//!   resource's own buckets; they are not reported, or every project would look covered.

use std::collections::BTreeSet;

use canopy_detection::detection::{AppliesTo, Status, normalize};
use canopy_detection::log_sources::log_scores;
use canopy_detection::ports::Finding;
use futures::FutureExt;
use futures::future::BoxFuture;
use google_logging2::Logging;
use google_logging2::api::{ListSinksResponse, LogSink};
use google_logging2::common;
use serde_json::json;

use super::{Failed, Permission, Scan, gone_is_empty, per_folder, reach};
use crate::Connector;
use crate::calls::{CallError, Calls};
use crate::discovery::{Next, next_token};

/// What listing sinks needs.
pub(crate) const SINKS_LIST: Permission = Permission {
    name: "logging.sinks.list",
    role: "roles/logging.viewer",
    api: "Cloud Logging",
};

/// Google's Cloud Logging endpoint.
const LOGGING_URL: &str = "https://logging.googleapis.com/";

type Hub = Logging<Connector>;

fn hub(scan: &Scan<'_>) -> Hub {
    let mut hub = Logging::new(scan.api(), scan.auth());
    hub.base_url(scan.base_url(LOGGING_URL));
    hub.user_agent(crate::client::Google::user_agent());
    hub
}

/// One page of `parent`'s sinks. The three `sinks.list` methods differ only in the parent
/// they carry; each is called for its own kind of parent.
fn page<'a>(
    hub: &'a Hub,
    scope: &'static str,
    parent: &str,
    token: Option<&str>,
) -> BoxFuture<'a, common::Result<(common::Response, ListSinksResponse)>> {
    macro_rules! list {
        ($methods:expr) => {{
            let mut call = $methods.sinks_list(parent).add_scope(scope);
            if let Some(t) = token {
                call = call.page_token(t);
            }
            call.doit().boxed()
        }};
    }
    if parent.starts_with("organizations/") {
        list!(hub.organizations())
    } else if parent.starts_with("folders/") {
        list!(hub.folders())
    } else {
        list!(hub.projects())
    }
}

/// Every sink of `parent`, every page.
async fn list(
    calls: &Calls<Hub>,
    scope: &'static str,
    parent: &str,
) -> Result<Vec<LogSink>, Failed> {
    let mut sinks = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let answer = calls
            .run(|| page(&calls.hub, scope, parent, token.as_deref()))
            .await
            .map_err(|e| Failed::new(SINKS_LIST, parent, e))?;
        sinks.extend(answer.sinks.unwrap_or_default());
        match next_token(answer.next_page_token, &token) {
            Next::Page(t) => token = Some(t),
            Next::Done => return Ok(sinks),
            Next::Repeated => {
                return Err(Failed::new(
                    SINKS_LIST,
                    parent,
                    CallError::Other("the same page token came back twice".into()),
                ));
            }
        }
    }
}

/// Which audit logs a sink routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Routes {
    /// Admin Activity audit logs.
    pub(crate) management: bool,
    /// Data Access audit logs.
    pub(crate) data: bool,
    /// The filter names audit logs only to exclude them.
    pub(crate) excludes_audit: bool,
}

/// What the audit terms of one filter say.
#[derive(Debug, Default)]
struct Terms {
    /// Positive terms: (names activity, names data_access, names no type).
    selected: Vec<(bool, bool, bool)>,
    /// Negated terms, the same.
    negated: Vec<(bool, bool, bool)>,
}

fn audit_terms(filter: &str) -> Terms {
    let lower = filter.to_ascii_lowercase();
    let tokens: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|t| !t.is_empty())
        .collect();
    let mut terms = Terms::default();
    for (i, token) in tokens.iter().enumerate() {
        let log_named =
            token.contains("cloudaudit") || token.contains("google.cloud.audit.auditlog");
        let payload = token.trim_start_matches('-').starts_with("protopayload.");
        if !(log_named || payload) {
            continue;
        }
        // Only a log name says which audit log; a payload field (`...SetIamPolicy`) does not.
        let activity = log_named && token.contains("activity");
        let data = log_named && token.contains("data_access");
        let typed = activity
            || data
            || (log_named
                && (token.contains("system_event")
                    || token.contains("policy")
                    || token.contains("access_transparency")));
        let negated = token.starts_with('-') || (i > 0 && tokens[i - 1] == "not");
        if negated {
            // Negating a payload field narrows audit logs, it does not drop them.
            if log_named {
                terms.negated.push((activity, data, !typed));
            }
        } else {
            terms.selected.push((activity, data, !typed));
        }
    }
    terms
}

/// Which audit logs `filter` routes, less what active `exclusions` drop.
pub(crate) fn routes(filter: &str, exclusions: &[&str]) -> Routes {
    let mut routes = if filter.trim().is_empty() {
        Routes {
            management: true,
            data: true,
            excludes_audit: false,
        }
    } else {
        let terms = audit_terms(filter);
        let any =
            |list: &[(bool, bool, bool)], f: fn(&(bool, bool, bool)) -> bool| list.iter().any(f);
        let management =
            any(&terms.selected, |t| t.0 || t.2) && !any(&terms.negated, |t| t.0 || t.2);
        let data = any(&terms.selected, |t| t.1) && !any(&terms.negated, |t| t.1 || t.2);
        Routes {
            management,
            data,
            excludes_audit: terms.selected.is_empty() && !terms.negated.is_empty(),
        }
    };
    for exclusion in exclusions.iter().filter(|e| !e.trim().is_empty()) {
        let dropped = audit_terms(exclusion);
        for (activity, data, untyped) in dropped.selected {
            if activity || untyped {
                routes.management = false;
            }
            if data || untyped {
                routes.data = false;
            }
        }
    }
    routes
}

/// The finding of one sink of `parent`; `None` for Google's built-in sinks.
pub(crate) fn finding(sink: &LogSink, parent: &str, applies_to: AppliesTo) -> Option<Finding> {
    let name = sink.name.clone().unwrap_or_default();
    if name.starts_with('_') {
        return None;
    }
    let key = sink
        .resource_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{parent}/sinks/{name}"));
    let filter = sink.filter.clone().unwrap_or_default();
    let exclusions: Vec<&str> = sink
        .exclusions
        .iter()
        .flatten()
        .filter(|e| e.disabled != Some(true))
        .filter_map(|e| e.filter.as_deref())
        .collect();
    let routes = routes(&filter, &exclusions);
    let include_children = sink.include_children == Some(true);
    let disabled = sink.disabled == Some(true);
    let mut reasons = Vec::new();
    if disabled {
        reasons.push("the sink is disabled: it exports nothing".to_string());
    }
    if !parent.starts_with("projects/") && !include_children {
        reasons.push("includeChildren is off: projects' logs are not routed".to_string());
    }
    if routes.excludes_audit {
        reasons.push("its filter excludes audit logs".to_string());
    } else if !routes.management && !routes.data {
        reasons.push("its filter routes no Admin Activity or Data Access audit log".to_string());
    }
    let destination = sink.destination.clone().unwrap_or_default();
    Some(Finding {
        resource_key: key.clone(),
        name: if name.is_empty() { key.clone() } else { name },
        description: Some(
            sink.description
                .clone()
                .filter(|d| !d.trim().is_empty())
                .unwrap_or_else(|| format!("Log sink of {parent} to {destination}")),
        ),
        status: if reasons.is_empty() {
            Status::Active
        } else {
            Status::Degraded
        },
        reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
        applies_to,
        techniques: normalize(log_scores(routes.management, routes.data)),
        evidence: json!({
            "sink": key,
            "parent": parent,
            "destination": destination,
            "filter": filter,
            "exclusions": exclusions,
            "includeChildren": include_children,
            "disabled": disabled,
            "writerIdentity": sink.writer_identity,
            "routes": {"adminActivity": routes.management, "dataAccess": routes.data},
        }),
    })
}

/// The organization's own sinks.
pub(crate) async fn org_sinks(
    scan: &Scan<'_>,
    org: &str,
) -> (Result<Vec<Finding>, Vec<Failed>>, u64) {
    let calls = scan.calls(hub(scan));
    let outcome = list(&calls, scan.scope, org)
        .await
        .map(|sinks| {
            sinks
                .iter()
                .filter_map(|s| {
                    // Without includeChildren the finding stays on the organization's subtree
                    // (degraded) rather than vanishing from the projects it does not cover.
                    let applies = if s.include_children == Some(true) {
                        reach(org, org)
                    } else {
                        AppliesTo::Nodes(BTreeSet::from([org.to_string()]))
                    };
                    finding(s, org, applies)
                })
                .collect()
        })
        .map_err(|f| vec![f]);
    (outcome, calls.attempts())
}

/// Every folder's sinks, a folder's reaching its own subtree only.
pub(crate) async fn folder_sinks(
    scan: &Scan<'_>,
    folders: &[String],
) -> (Result<Vec<Finding>, Vec<Failed>>, u64) {
    let calls = scan.calls(hub(scan));
    let read = per_folder(folders, scan.fan_out(), |folder| {
        gone_is_empty(list(&calls, scan.scope, folder))
    })
    .await;
    let outcome = read.map(|per| {
        per.iter()
            .flat_map(|(folder, sinks)| {
                sinks.iter().filter_map(move |s| {
                    finding(
                        s,
                        folder,
                        AppliesTo::Nodes(BTreeSet::from([folder.clone()])),
                    )
                })
            })
            .collect()
    });
    (outcome, calls.attempts())
}

/// One project's own sinks.
pub(crate) async fn project_sinks(
    scan: &Scan<'_>,
    project_id: &str,
) -> (Result<Vec<Finding>, Vec<Failed>>, u64) {
    let calls = scan.calls(hub(scan));
    let parent = format!("projects/{project_id}");
    let outcome = list(&calls, scan.scope, &parent)
        .await
        .map(|sinks| {
            sinks
                .iter()
                .filter_map(|s| {
                    // The reach of an account's own finding is ignored; it names the project.
                    let applies = AppliesTo::Accounts(BTreeSet::from([project_id.to_string()]));
                    finding(s, &parent, applies)
                })
                .collect()
        })
        .map_err(|f| vec![f]);
    (outcome, calls.attempts())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(filter: &str) -> (bool, bool, bool) {
        let routes = routes(filter, &[]);
        (routes.management, routes.data, routes.excludes_audit)
    }

    #[test]
    fn filters_are_read_for_the_audit_logs_they_route() {
        assert_eq!(r(""), (true, true, false));
        assert_eq!(
            r(r#"logName:"cloudaudit.googleapis.com""#),
            (true, false, false)
        );
        assert_eq!(
            r(r#"logName:"logs/cloudaudit.googleapis.com%2Factivity""#),
            (true, false, false)
        );
        assert_eq!(
            r(
                r#"logName:"logs/cloudaudit.googleapis.com%2Factivity" OR logName:"logs/cloudaudit.googleapis.com%2Fdata_access""#
            ),
            (true, true, false)
        );
        assert_eq!(
            r(r#"logName:"cloudaudit.googleapis.com%2Fdata_access""#),
            (false, true, false)
        );
        assert_eq!(
            r(r#"protoPayload.methodName="SetIamPolicy""#),
            (true, false, false)
        );
        assert_eq!(
            r(r#"resource.type="gce_instance" AND severity>=ERROR"#),
            (false, false, false)
        );
        assert_eq!(
            r(r#"NOT logName:"cloudaudit.googleapis.com""#),
            (false, false, true)
        );
        assert_eq!(
            r(r#"-logName:"cloudaudit.googleapis.com""#),
            (false, false, true)
        );
        assert_eq!(
            r(
                r#"logName:"cloudaudit.googleapis.com" AND NOT logName:"cloudaudit.googleapis.com%2Factivity""#
            ),
            (false, false, false)
        );
        assert_eq!(
            r(r#"logName:"cloudaudit.googleapis.com" AND NOT protoPayload.serviceName="k8s.io""#),
            (true, false, false)
        );
    }

    #[test]
    fn exclusions_subtract_what_they_name() {
        let everything = routes(
            "",
            &[r#"logName:"cloudaudit.googleapis.com%2Fdata_access""#],
        );
        assert_eq!((everything.management, everything.data), (true, false));
        let none = routes("", &[r#"logName:"cloudaudit.googleapis.com""#]);
        assert_eq!((none.management, none.data), (false, false));
    }

    #[test]
    fn built_in_sinks_are_not_findings_and_a_narrow_sink_is_degraded() {
        let builtin = LogSink {
            name: Some("_Required".into()),
            ..LogSink::default()
        };
        assert!(finding(&builtin, "projects/p", AppliesTo::AllAccounts).is_none());
        let narrow = LogSink {
            name: Some("errors".into()),
            filter: Some("severity>=ERROR".into()),
            include_children: Some(true),
            ..LogSink::default()
        };
        let f = finding(&narrow, "organizations/1", AppliesTo::AllAccounts).unwrap_or_else(|| {
            panic!("a finding");
        });
        assert_eq!(f.status, Status::Degraded);
        assert!(f.techniques.is_empty());
        assert_eq!(f.resource_key, "organizations/1/sinks/errors");
    }
}
