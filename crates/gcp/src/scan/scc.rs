//! Security Command Center at the organization: its organization settings (readable only once
//! it is activated) and the finding sources reporting to it.
//!
//! Decisions:
//! - Activated with at least one of Google's detection services among its sources (Event
//!   Threat Detection, Container Threat Detection, Virtual Machine Threat Detection, Security
//!   Health Analytics): one active finding scored with CTID's `security_command_center`.
//!   Activated without any: the same finding, degraded (nothing of Google's reports to it).
//! - Not activated: no finding (the organization answered; absent is the truth). Google says so
//!   with NOT_FOUND on the settings, or FAILED_PRECONDITION / INVALID_ARGUMENT whose message
//!   speaks of activation (or of the retired legacy tier). Any other refusal is a read failure.
//! - The v1 API tells neither the tier (Standard, Premium, Enterprise) nor which services are
//!   enabled beyond the sources; the evidence keeps what it does tell.

use canopy_detection::detection::{AppliesTo, Status, normalize};
use canopy_detection::log_sources::capability_scores;
use canopy_detection::ports::Finding;
use google_securitycenter1::SecurityCommandCenter;
use serde_json::json;

use super::{Failed, Permission, Scan};
use crate::Connector;
use crate::calls::{CallError, Calls};
use crate::discovery::{Next, next_token};

/// What reading the organization settings needs.
pub(crate) const SETTINGS_GET: Permission = Permission {
    name: "securitycenter.organizationsettings.get",
    role: "roles/securitycenter.settingsViewer",
    api: "Security Command Center",
};

/// What listing the finding sources needs.
pub(crate) const SOURCES_LIST: Permission = Permission {
    name: "securitycenter.sources.list",
    role: "roles/securitycenter.sourcesViewer",
    api: "Security Command Center",
};

/// Google's Security Command Center endpoint.
const SCC_URL: &str = "https://securitycenter.googleapis.com/";

/// The sources of Google's own detection services, by display name.
const DETECTORS: [&str; 4] = [
    "Event Threat Detection",
    "Container Threat Detection",
    "Virtual Machine Threat Detection",
    "Security Health Analytics",
];

type Hub = SecurityCommandCenter<Connector>;

fn hub(scan: &Scan<'_>) -> Hub {
    let mut hub = SecurityCommandCenter::new(scan.api(), scan.auth());
    hub.base_url(scan.base_url(SCC_URL));
    hub.user_agent(crate::client::Google::user_agent());
    hub
}

/// True when Google's refusal says Security Command Center is not activated.
pub(crate) fn not_activated(error: &CallError) -> bool {
    match error {
        CallError::NotFound(_) => true,
        CallError::Other(m) => {
            let lower = m.to_ascii_lowercase();
            (lower.contains("failed_precondition") || lower.contains("invalid_argument"))
                && (lower.contains("activat")
                    || lower.contains("not enabled")
                    || lower.contains("legacy has been permanently disabled"))
        }
        _ => false,
    }
}

/// The display names of every source, every page.
async fn sources(
    calls: &Calls<Hub>,
    scope: &'static str,
    org: &str,
) -> Result<Vec<String>, Failed> {
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let answer = calls
            .run(|| {
                let mut call = calls.hub.organizations().sources_list(org).add_scope(scope);
                if let Some(t) = &token {
                    call = call.page_token(t);
                }
                call.doit()
            })
            .await
            .map_err(|e| Failed::new(SOURCES_LIST, org, e))?;
        names.extend(
            answer
                .sources
                .unwrap_or_default()
                .into_iter()
                .filter_map(|s| s.display_name.or(s.name)),
        );
        match next_token(answer.next_page_token, &token) {
            Next::Page(t) => token = Some(t),
            Next::Done => return Ok(names),
            Next::Repeated => {
                return Err(Failed::new(
                    SOURCES_LIST,
                    org,
                    CallError::Other("the same page token came back twice".into()),
                ));
            }
        }
    }
}

/// Security Command Center of `org`.
pub(crate) async fn scc(scan: &Scan<'_>, org: &str) -> (Result<Vec<Finding>, Vec<Failed>>, u64) {
    let calls = scan.calls(hub(scan));
    let outcome = read(scan, &calls, org).await.map_err(|f| vec![f]);
    (outcome, calls.attempts())
}

async fn read(scan: &Scan<'_>, calls: &Calls<Hub>, org: &str) -> Result<Vec<Finding>, Failed> {
    let name = format!("{org}/organizationSettings");
    let settings = match calls
        .run(|| {
            calls
                .hub
                .organizations()
                .get_organization_settings(&name)
                .add_scope(scan.scope)
                .doit()
        })
        .await
    {
        Ok(settings) => settings,
        Err(e) if not_activated(&e) => return Ok(Vec::new()),
        Err(e) => return Err(Failed::new(SETTINGS_GET, &name, e)),
    };
    let mut names = sources(calls, scan.scope, org).await?;
    names.sort();
    let detectors: Vec<&str> = DETECTORS
        .iter()
        .copied()
        .filter(|d| names.iter().any(|n| n == d))
        .collect();
    let degraded = detectors.is_empty();
    Ok(vec![Finding {
        resource_key: settings.name.clone().unwrap_or_else(|| name.clone()),
        name: "Security Command Center".into(),
        description: Some(format!(
            "Security Command Center activated for {org}, with {} finding source(s)",
            names.len()
        )),
        status: if degraded {
            Status::Degraded
        } else {
            Status::Active
        },
        reason: degraded.then(|| {
            format!(
                "none of Google's detection services reports to it ({})",
                DETECTORS.join(", ")
            )
        }),
        applies_to: AppliesTo::AllAccounts,
        techniques: normalize(capability_scores("security_command_center")),
        evidence: json!({
            "organizationSettings": name,
            "enableAssetDiscovery": settings.enable_asset_discovery,
            "sources": names,
            "detectionServices": detectors,
        }),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_answer_about_activation_means_not_activated() {
        assert!(not_activated(&CallError::NotFound("x".into())));
        assert!(not_activated(&CallError::Other(
            "400 FAILED_PRECONDITION: Security Command Center is not activated for organizations/1"
                .into()
        )));
        assert!(!not_activated(&CallError::Other(
            "500 INTERNAL: boom".into()
        )));
        assert!(!not_activated(&CallError::Denied("denied".into())));
        assert!(!not_activated(&CallError::ThrottledOut));
    }
}
