//! The detection scanners of AWS: what an organization and each of its accounts run that
//! detects, prevents or responds to adversary techniques.
//!
//! [`AwsOrganizationScanner`] assumes the management role of an organization and reads its
//! organization trails, the GuardDuty and Security Hub delegated administrators (assuming the
//! member role in the administrator account to read how far they reach), Config
//! organization aggregators and service control policies. [`AwsAccountScanner`] assumes an
//! account's role and reads its own GuardDuty detectors, trails, Config recorders and rules,
//! Security Hub and the CloudWatch alarms on CloudTrail metric filters. Regional services are
//! read in every region of [`ScanSettings::regions`] (plus the account's primary region).
//!
//! Every call goes through one runner (`calls.rs`): bounded in flight per scan and across
//! scans, timed out, throttling retried with back-off, every attempt counted for its source.
//! A source that cannot be read reports why (with the IAM action to grant), never "nothing".

mod alarms;
mod calls;
mod cloudtrail;
mod config;
mod guardduty;
mod policies;
mod securityhub;
mod session;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use canopy_cloud_org::Provider;
use canopy_cloud_org::account::CloudIdentity;
use canopy_cloud_org::organization::{CloudOrganization, OrganizationAccess};
use canopy_detection::detection::{AppliesTo, ScopeKind, Source, Status};
use canopy_detection::ports::{
    AccountScanRequest, AccountScanner, Finding, OrganizationScanRequest, OrganizationScanner,
    ReadFailure, ReadFailureKind, SourceReport,
};

use calls::{CallFailure, Tally};
use session::{Core, Session};

/// The regions scanned by default: regions every account has enabled (opt-in regions answer
/// a disabled region's calls like a bad token, which would read as a denial).
pub const DEFAULT_REGIONS: [&str; 8] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-northeast-1",
    "ap-southeast-2",
];

/// Settings of the scanners.
#[derive(Debug, Clone)]
pub struct ScanSettings {
    /// Endpoint override for every service (moto or a local server in tests).
    pub endpoint_url: Option<String>,
    /// Regions read for regional services; an account's primary region is always added.
    pub regions: Vec<String>,
    /// Calls in flight for one scan.
    pub max_in_flight: usize,
    /// Calls in flight across every scan of one scanner (a fan-out over many accounts).
    pub max_in_flight_total: usize,
    /// Retries of one throttled call before its source gives up.
    pub max_retries: u32,
    /// First back-off; doubles per retry, with full jitter.
    pub base_backoff: Duration,
    /// Longest single back-off.
    pub max_backoff: Duration,
    /// Time allowed for one attempt of one call.
    pub call_timeout: Duration,
    /// Lifetime asked of STS for a scan's credentials.
    pub session_duration: Duration,
}

impl Default for ScanSettings {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            regions: DEFAULT_REGIONS.iter().map(|r| r.to_string()).collect(),
            max_in_flight: 8,
            max_in_flight_total: 64,
            max_retries: 6,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            call_timeout: Duration::from_secs(10),
            session_duration: Duration::from_secs(3_600),
        }
    }
}

/// Organizations, IAM and STS answer from one global endpoint, reached in this region.
const GLOBAL_REGION: &str = "us-east-1";

/// [`OrganizationScanner`] for AWS Organizations.
#[derive(Debug, Clone)]
pub struct AwsOrganizationScanner {
    core: Arc<Core>,
}

/// [`AccountScanner`] for AWS accounts.
#[derive(Debug, Clone)]
pub struct AwsAccountScanner {
    core: Arc<Core>,
}

impl AwsOrganizationScanner {
    /// A scanner acting as Canopy's identity in `base` (its credentials assume the customers'
    /// roles).
    pub fn new(base: SdkConfig, settings: ScanSettings) -> Self {
        Self {
            core: Arc::new(Core::new(base, settings)),
        }
    }
}

impl AwsAccountScanner {
    /// A scanner acting as Canopy's identity in `base` (its credentials assume the customers'
    /// roles).
    pub fn new(base: SdkConfig, settings: ScanSettings) -> Self {
        Self {
            core: Arc::new(Core::new(base, settings)),
        }
    }
}

/// Every source failing alike (no role, another provider's access).
fn all_failed(scope: ScopeKind, failure: ReadFailure) -> Vec<SourceReport> {
    Source::scanners(Provider::Aws, scope)
        .into_iter()
        .map(|source| SourceReport {
            source,
            outcome: Err(failure.clone()),
            calls: 0,
        })
        .collect()
}

fn not_aws(scope: ScopeKind, what: &str) -> Vec<SourceReport> {
    all_failed(
        scope,
        ReadFailure {
            kind: ReadFailureKind::Failed,
            message: format!("not an AWS {what}: the AWS scanner was given a GCP one"),
            advice: "scan it with the GCP scanner".into(),
        },
    )
}

/// Runs one source and counts its calls.
async fn measure<'a, F, Fut>(source: Source, tally: &'a Tally, read: F) -> SourceReport
where
    F: FnOnce(&'a Tally) -> Fut,
    Fut: Future<Output = Result<Vec<Finding>, ReadFailure>>,
{
    let outcome = read(tally).await;
    SourceReport {
        source,
        outcome,
        calls: tally.get(),
    }
}

/// The stand-in of an organization control for every account it may reach when its reach
/// could not be read: `unknown` with why, reaching all accounts (only a reach that was read
/// can exclude an account, so none is shown uncovered for want of a read), under its own key
/// beside `of`, which keeps what was read of the administrator itself.
pub(crate) fn unknown_reach(of: &Finding, reason: String) -> Finding {
    let mut evidence = of.evidence.clone();
    evidence["reach"] = serde_json::json!("unread");
    Finding {
        resource_key: format!("{}:reach", of.resource_key),
        name: format!("{}, reach unknown", of.name),
        description: of.description.clone(),
        status: Status::Unknown,
        reason: Some(reason),
        applies_to: AppliesTo::AllAccounts,
        techniques: of.techniques.clone(),
        evidence,
    }
}

/// `Active` with no reason, or `Degraded` with every reason.
pub(crate) fn status(reasons: Vec<String>) -> (Status, Option<String>) {
    if reasons.is_empty() {
        (Status::Active, None)
    } else {
        (Status::Degraded, Some(reasons.join("; ")))
    }
}

/// Runs `read` in every region at once and joins what they found. A region closed to the
/// account by a service control policy holds nothing to find and is skipped; any other
/// failure fails the whole source, since a region not read is unknown, not empty.
pub(crate) async fn each_region<'a, T, F, Fut>(
    regions: &'a [String],
    read: F,
) -> Result<Vec<T>, CallFailure>
where
    F: Fn(&'a str) -> Fut,
    Fut: Future<Output = Result<Vec<T>, CallFailure>>,
{
    let mut found = Vec::new();
    for result in futures::future::join_all(regions.iter().map(|r| read(r))).await {
        match result {
            Ok(mut items) => found.append(&mut items),
            Err(f) if f.denied_by_scp() => {
                tracing::debug!(region = %f.region, action = f.action, "region closed by an SCP");
            }
            Err(f) => return Err(f),
        }
    }
    Ok(found)
}

/// Sessions in delegated-administrator accounts, assumed at most once per account per scan.
pub(crate) struct Admins<'a> {
    core: &'a Core,
    management: Arc<Session>,
    external_id: &'a str,
    /// Role names tried in an administrator account, in order.
    role_names: Vec<String>,
    cache: tokio::sync::Mutex<HashMap<String, Result<Arc<Session>, ReadFailure>>>,
}

impl<'a> Admins<'a> {
    fn new(
        core: &'a Core,
        management: Arc<Session>,
        external_id: &'a str,
        organization: &CloudOrganization,
    ) -> Self {
        // The member role is the one Canopy's connect flow deploys to every member; the
        // management role's name is the fallback for estates that deploy that one everywhere.
        let mut role_names: Vec<String> = Vec::new();
        let management_role = session::role_parts(&management.role).map(|(_, name)| name);
        for name in [
            Some(organization.member_role_name.as_str()),
            management_role,
        ]
        .into_iter()
        .flatten()
        {
            if !name.is_empty() && !role_names.iter().any(|n| n == name) {
                role_names.push(name.to_string());
            }
        }
        Self {
            core,
            management,
            external_id,
            role_names,
            cache: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// A session in `account`: the management one when it is the administrator itself.
    pub async fn session(&self, account: &str) -> Result<Arc<Session>, ReadFailure> {
        if account == self.management.account {
            return Ok(self.management.clone());
        }
        let mut cache = self.cache.lock().await;
        if let Some(known) = cache.get(account) {
            return known.clone();
        }
        let mut first_failure = None;
        let mut outcome = None;
        for name in &self.role_names {
            let role = format!("arn:aws:iam::{account}:role/{name}");
            match self
                .core
                .session(
                    self.management.runner.clone(),
                    &role,
                    self.external_id,
                    GLOBAL_REGION,
                )
                .await
            {
                Ok(session) => {
                    outcome = Some(Ok(Arc::new(session)));
                    break;
                }
                // The first role's refusal is the one to report: it is the role Canopy asks
                // customers to deploy.
                Err(f) => {
                    first_failure.get_or_insert(f);
                }
            }
        }
        let outcome = match (outcome, first_failure) {
            (Some(found), _) => found,
            (None, Some(f)) => Err(f),
            (None, None) => Err(ReadFailure {
                kind: ReadFailureKind::Failed,
                message: format!("no role to assume in {account}"),
                advice: "set the organization's member role name".into(),
            }),
        };
        cache.insert(account.to_string(), outcome.clone());
        outcome
    }
}

#[async_trait]
impl OrganizationScanner for AwsOrganizationScanner {
    async fn scan_organization(&self, request: &OrganizationScanRequest) -> Vec<SourceReport> {
        let OrganizationAccess::Aws {
            role_arn,
            external_id,
        } = &request.access
        else {
            return not_aws(ScopeKind::Organization, "organization");
        };
        let core = &*self.core;
        let management = match core
            .session(
                core.runner(request.stop.clone()),
                role_arn,
                external_id,
                GLOBAL_REGION,
            )
            .await
        {
            Ok(s) => Arc::new(s),
            Err(f) => return all_failed(ScopeKind::Organization, f),
        };
        let admins = Admins::new(
            core,
            management.clone(),
            external_id,
            &request.cloud_organization,
        );
        let regions = &core.settings.regions;
        let s = &*management;
        let tallies: [Tally; 5] = Default::default();
        let [t0, t1, t2, t3, t4] = &tallies;
        let reports = futures::join!(
            measure(Source::AwsCloudTrailOrgTrail, t0, |t| async move {
                cloudtrail::trails(s, t, regions, true).await.map_err(into)
            }),
            measure(Source::AwsGuardDutyDelegatedAdmin, t1, |t| {
                guardduty::delegated_admin(s, &admins, t, regions)
            }),
            measure(Source::AwsSecurityHubOrg, t2, |t| {
                securityhub::organization(s, &admins, t, regions)
            }),
            measure(Source::AwsConfigOrgAggregator, t3, |t| async move {
                config::aggregators(s, t, regions).await.map_err(into)
            }),
            measure(Source::AwsOrganizationsScp, t4, |t| async move {
                policies::service_control_policies(s, t).await.map_err(into)
            }),
        );
        in_order(
            ScopeKind::Organization,
            vec![reports.0, reports.1, reports.2, reports.3, reports.4],
        )
    }
}

fn into(failure: CallFailure) -> ReadFailure {
    failure.into_read_failure()
}

/// The reports in [`Source::scanners`] order.
fn in_order(scope: ScopeKind, mut reports: Vec<SourceReport>) -> Vec<SourceReport> {
    let order = Source::scanners(Provider::Aws, scope);
    reports.sort_by_key(|r| order.iter().position(|s| *s == r.source));
    reports
}

#[async_trait]
impl AccountScanner for AwsAccountScanner {
    async fn scan_account(&self, request: &AccountScanRequest) -> Vec<SourceReport> {
        let CloudIdentity::Aws {
            role_arn, region, ..
        } = &request.account.identity
        else {
            return not_aws(ScopeKind::Account, "account");
        };
        let core = &*self.core;
        let session = match core
            .session(
                core.runner(request.stop.clone()),
                role_arn.as_str(),
                &request.external_id,
                region.as_str(),
            )
            .await
        {
            Ok(s) => s,
            Err(f) => return all_failed(ScopeKind::Account, f),
        };
        let mut regions = core.settings.regions.clone();
        if !regions.iter().any(|r| r == region.as_str()) {
            regions.push(region.as_str().to_string());
        }
        let (s, regions) = (&session, &regions[..]);
        let tallies: [Tally; 6] = Default::default();
        let [t0, t1, t2, t3, t4, t5] = &tallies;
        let reports = futures::join!(
            measure(Source::AwsGuardDutyDetector, t0, |t| async move {
                guardduty::detectors(s, t, regions).await.map_err(into)
            }),
            measure(Source::AwsCloudTrailTrail, t1, |t| async move {
                cloudtrail::trails(s, t, regions, false).await.map_err(into)
            }),
            measure(Source::AwsConfigRecorder, t2, |t| async move {
                config::recorders(s, t, regions).await.map_err(into)
            }),
            measure(Source::AwsConfigRules, t3, |t| async move {
                config::rules(s, t, regions).await.map_err(into)
            }),
            measure(Source::AwsSecurityHubAccount, t4, |t| async move {
                securityhub::account(s, t, regions).await.map_err(into)
            }),
            measure(Source::AwsCloudWatchAlarm, t5, |t| async move {
                alarms::alarms(s, t, regions).await.map_err(into)
            }),
        );
        in_order(
            ScopeKind::Account,
            vec![
                reports.0, reports.1, reports.2, reports.3, reports.4, reports.5,
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(region: &str, message: &str) -> CallFailure {
        CallFailure {
            kind: ReadFailureKind::AccessDenied,
            action: "guardduty:ListDetectors",
            region: region.into(),
            code: Some("AccessDeniedException".into()),
            message: message.into(),
            role: String::new(),
        }
    }

    #[tokio::test]
    async fn a_region_closed_by_an_scp_is_skipped_and_any_other_failure_fails_the_source() {
        let regions = vec!["us-east-1".to_string(), "ap-east-1".to_string()];
        let closed = each_region(&regions, |region| async move {
            match region {
                "ap-east-1" => Err(denied(
                    region,
                    "not authorized to perform: guardduty:ListDetectors with an explicit deny \
                     in a service control policy",
                )),
                _ => Ok(vec![region.to_string()]),
            }
        })
        .await;
        assert_eq!(closed, Ok(vec!["us-east-1".to_string()]));
        let refused = each_region(&regions, |region| async move {
            match region {
                "ap-east-1" => Err(denied(region, "not authorized")),
                _ => Ok(vec![region.to_string()]),
            }
        })
        .await;
        assert_eq!(refused.unwrap_err().region, "ap-east-1");
    }
}
