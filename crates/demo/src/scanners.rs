//! The demo cloud behind the detection scanner ports: the demo organizations and their
//! accounts report the controls `estate.rs` gives them (one report per source, in the
//! domain's order, as the real scanners do); any other organization or account is the real
//! scanner's.

use std::sync::Arc;

use async_trait::async_trait;
use canopy_cloud_org::Provider;
use canopy_detection::detection::{ScopeKind, Source};
use canopy_detection::ports::{
    AccountScanRequest, AccountScanner, Finding, OrganizationScanRequest, OrganizationScanner,
    ReadFailure, SourceReport,
};

use crate::controls::{
    account_findings, delegated_guardduty, denied, org_policies, org_sink, org_trail, prod_scp,
    production_sink, role_refused, scc,
};
use crate::estate::{
    AWS_ORGANIZATION_ID, Control, GCP_ORGANIZATION, Member, aws_member, gcp_project,
};

/// One report per source of `provider` at `scope`, from what `read` says of each.
fn reports(
    provider: Provider,
    scope: ScopeKind,
    read: impl Fn(Source) -> Result<Vec<Finding>, ReadFailure>,
) -> Vec<SourceReport> {
    Source::scanners(provider, scope)
        .into_iter()
        .map(|source| SourceReport {
            source,
            outcome: read(source),
            // Nothing was called: the demo cloud is in process.
            calls: 0,
        })
        .collect()
}

/// The demo AWS Organization's own controls. It has no Security Hub administrator and no
/// Config aggregator: those sources find nothing.
fn aws_organization(source: Source) -> Result<Vec<Finding>, ReadFailure> {
    match source {
        Source::AwsCloudTrailOrgTrail => Ok(vec![org_trail()]),
        Source::AwsGuardDutyDelegatedAdmin => Ok(vec![delegated_guardduty()]),
        Source::AwsOrganizationsScp => prod_scp(),
        _ => Ok(Vec::new()),
    }
}

/// The demo GCP Organization's own controls. It has no asset feed.
fn gcp_organization(source: Source) -> Result<Vec<Finding>, ReadFailure> {
    match source {
        Source::GcpLoggingOrgSink => Ok(vec![org_sink()]),
        Source::GcpLoggingFolderSink => Ok(vec![production_sink()]),
        Source::GcpSccOrg => Ok(vec![scc()]),
        Source::GcpOrgPolicyConstraint => Ok(org_policies()),
        _ => Ok(Vec::new()),
    }
}

/// The source an account-level control is found by (none for a refused role, which every
/// source meets).
fn source_of(control: &Control) -> Option<Source> {
    Some(match control {
        Control::GuardDuty { .. } => Source::AwsGuardDutyDetector,
        Control::Trail { .. } => Source::AwsCloudTrailTrail,
        Control::ConfigRecorder { .. } => Source::AwsConfigRecorder,
        Control::ConfigRules(_) => Source::AwsConfigRules,
        Control::SecurityHub => Source::AwsSecurityHubAccount,
        Control::Alarms(_) => Source::AwsCloudWatchAlarm,
        Control::ConfigDenied => Source::AwsConfigRecorder,
        Control::ProjectSink { .. } => Source::GcpLoggingProjectSink,
        Control::RoleRefused => return None,
    })
}

/// What one source finds in a demo account: its controls of that source, or the denial
/// its role meets.
fn account(member: &Member, source: Source) -> Result<Vec<Finding>, ReadFailure> {
    if member.controls.contains(&Control::RoleRefused) {
        return Err(role_refused(member.key));
    }
    let config = matches!(source, Source::AwsConfigRecorder | Source::AwsConfigRules);
    if config && member.controls.contains(&Control::ConfigDenied) {
        let action = match source {
            Source::AwsConfigRules => "config:DescribeConfigRules",
            _ => "config:DescribeConfigurationRecorders",
        };
        return Err(denied(member.key, action));
    }
    Ok(member
        .controls
        .iter()
        .filter(|c| source_of(c) == Some(source))
        .flat_map(|c| account_findings(member.key, c))
        .collect())
}

/// [`OrganizationScanner`] of the demo cloud, over a real one for other organizations.
pub struct DemoOrganizationScanner {
    real: Arc<dyn OrganizationScanner>,
}

impl DemoOrganizationScanner {
    /// Answers for the demo organizations and asks `real` about the rest.
    pub fn new(real: Arc<dyn OrganizationScanner>) -> Self {
        Self { real }
    }
}

#[async_trait]
impl OrganizationScanner for DemoOrganizationScanner {
    async fn scan_organization(&self, request: &OrganizationScanRequest) -> Vec<SourceReport> {
        let organization = &request.cloud_organization;
        match (
            organization.provider,
            organization.identity.cloud_org_id.as_str(),
        ) {
            (Provider::Aws, AWS_ORGANIZATION_ID) => {
                reports(Provider::Aws, ScopeKind::Organization, aws_organization)
            }
            (Provider::Gcp, GCP_ORGANIZATION) => {
                reports(Provider::Gcp, ScopeKind::Organization, gcp_organization)
            }
            _ => self.real.scan_organization(request).await,
        }
    }
}

/// [`AccountScanner`] of the demo cloud, over a real one for other accounts.
pub struct DemoAccountScanner {
    real: Arc<dyn AccountScanner>,
}

impl DemoAccountScanner {
    /// Answers for the demo accounts and projects and asks `real` about the rest.
    pub fn new(real: Arc<dyn AccountScanner>) -> Self {
        Self { real }
    }
}

#[async_trait]
impl AccountScanner for DemoAccountScanner {
    async fn scan_account(&self, request: &AccountScanRequest) -> Vec<SourceReport> {
        let provider = request.account.identity.provider();
        let key = request.account.identity.account_key();
        let member = match provider {
            Provider::Aws => aws_member(key),
            Provider::Gcp => gcp_project(key),
        };
        match member {
            Some(member) => reports(provider, ScopeKind::Account, |source| {
                account(member, source)
            }),
            None => self.real.scan_account(request).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use canopy_detection::detection::Status;
    use canopy_detection::ports::ReadFailureKind;

    use super::*;
    use crate::estate::{AWS_MEMBERS, GCP_PROJECTS};

    fn found(member: &Member, provider: Provider) -> Vec<SourceReport> {
        reports(provider, ScopeKind::Account, |s| account(member, s))
    }

    #[test]
    fn every_source_reports_once_in_the_domains_order() {
        for (provider, scope) in [
            (Provider::Aws, ScopeKind::Organization),
            (Provider::Gcp, ScopeKind::Organization),
        ] {
            let got = reports(provider, scope, |s| match provider {
                Provider::Aws => aws_organization(s),
                Provider::Gcp => gcp_organization(s),
            });
            let sources: Vec<Source> = got.iter().map(|r| r.source).collect();
            assert_eq!(sources, Source::scanners(provider, scope));
            assert!(got.iter().all(|r| r.outcome.is_ok()));
        }
        for member in &AWS_MEMBERS {
            let sources: Vec<Source> = found(member, Provider::Aws)
                .iter()
                .map(|r| r.source)
                .collect();
            assert_eq!(sources, Source::scanners(Provider::Aws, ScopeKind::Account));
        }
    }

    #[test]
    fn accounts_differ_one_is_degraded_one_unreadable_one_empty() {
        let of = |key: &str| found(aws_member(key).unwrap(), Provider::Aws);
        let count = |reports: &[SourceReport]| -> usize {
            reports
                .iter()
                .filter_map(|r| r.outcome.as_ref().ok())
                .map(Vec::len)
                .sum()
        };
        assert!(
            count(&of("310987654103")) >= 7,
            "payments-prod holds the most"
        );
        assert_eq!(count(&of("310987654106")), 0, "web-staging holds nothing");
        let web_prod = of("310987654104");
        let trail = web_prod
            .iter()
            .find(|r| r.source == Source::AwsCloudTrailTrail)
            .and_then(|r| r.outcome.as_ref().ok())
            .and_then(|f| f.first())
            .unwrap();
        assert_eq!(trail.status, Status::Degraded);
        let alice = of("310987654107");
        let config = alice
            .iter()
            .find(|r| r.source == Source::AwsConfigRecorder)
            .unwrap();
        assert_eq!(
            config.outcome.as_ref().unwrap_err().kind,
            ReadFailureKind::AccessDenied
        );
        let sinks: usize = GCP_PROJECTS
            .iter()
            .map(|p| count(&found(p, Provider::Gcp)))
            .sum();
        assert_eq!(sinks, 2);
    }

    #[test]
    fn standalone_accounts_differ_and_the_refused_role_fails_every_source() {
        let count = |key: &str| -> usize {
            found(aws_member(key).unwrap(), Provider::Aws)
                .iter()
                .filter_map(|r| r.outcome.as_ref().ok())
                .map(Vec::len)
                .sum()
        };
        assert!(count("210987654001") > count("210987654002"));
        assert_eq!(count("210987654005"), 0);
        let refused = found(aws_member("210987654006").unwrap(), Provider::Aws);
        assert_eq!(
            refused.len(),
            Source::scanners(Provider::Aws, ScopeKind::Account).len()
        );
        for report in &refused {
            let failure = report.outcome.as_ref().unwrap_err();
            assert_eq!(failure.kind, ReadFailureKind::AccessDenied);
            assert!(failure.message.contains("sts:AssumeRole"), "{failure:?}");
        }
    }
}
