//! The detection scanners of GCP: what a GCP Organization (and each connected project) has that
//! detects or prevents adversary techniques, read through Cloud Logging, Security Command
//! Center, Org Policy and Cloud Asset Inventory with the same client, token and in-flight budget
//! as discovery.
//!
//! [`GcpOrganizationScanner`] is the domain's `OrganizationScanner`: it acts as the cloud
//! organization's service account (its key, or impersonated) and reads, concurrently,
//! organization and folder log sinks, Security Command Center, organization policies at the
//! organization and every folder of the stored tree, and asset feeds. [`GcpAccountScanner`] is
//! the domain's `AccountScanner`: a project's own log sinks, read with the credentials project
//! verification uses (its cloud organization's service account, or Canopy's own identity for a
//! project connected on its own).
//!
//! A source that cannot be read reports why, never an empty list: a 403 is `access_denied` with
//! the permission and the role to grant, throttling past every retry is `throttled`, anything
//! else `failed`. A source that spans folders is all or nothing: one unreadable folder makes
//! the whole source unreadable (listing the folders), because a partial list would let the
//! reconciliation take the unreadable folders' controls for gone.

mod constraints;
mod feeds;
mod policies;
mod project;
mod scc;
mod sinks;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use canopy_cloud_org::Provider;
use canopy_cloud_org::organization::hierarchy::{Hierarchy, NodeKind};
use canopy_cloud_org::organization::{GcpAccess, OrganizationAccess};
use canopy_detection::detection::{AppliesTo, ScopeKind, Source};
use canopy_detection::ports::{
    Finding, OrganizationScanRequest, OrganizationScanner, ReadFailure, ReadFailureKind,
    SourceReport,
};
use futures::stream::{self, StreamExt};
use tokio::sync::Semaphore;

use crate::calls::{CallError, Calls};
use crate::client::{Auth, CLOUD_PLATFORM, Google};
use crate::discovery::organization_name;
use crate::{Connector, GcpCredentials, ResourceManagerDiscoverer, ServiceAccountKey};

pub use constraints::{ConstraintKind, ConstraintRule, ConstraintTechnique, constraint_rules};
pub use project::GcpAccountScanner;

/// A permission a scanner's call needs, with the predefined role that grants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Permission {
    /// `logging.sinks.list`.
    pub(crate) name: &'static str,
    /// `roles/logging.viewer`.
    pub(crate) role: &'static str,
    /// The API, as people know it.
    pub(crate) api: &'static str,
}

/// Why one call of a source failed, with what it needed and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failed {
    pub(crate) permission: Permission,
    pub(crate) resource: String,
    pub(crate) error: CallError,
}

impl Failed {
    pub(crate) fn new(permission: Permission, resource: &str, error: CallError) -> Self {
        Self {
            permission,
            resource: resource.to_string(),
            error,
        }
    }
}

/// Everything one scan's sources share: the client, the token, the in-flight budget, and who
/// the calls act as (named in advice).
pub(crate) struct Scan<'a> {
    google: &'a Google,
    auth: Auth,
    permits: Arc<Semaphore>,
    /// The token scope every call asks for (one token per scan).
    pub(crate) scope: &'static str,
    /// The service account the calls act as.
    pub(crate) who: String,
    /// Raised when the scan's job is cancelled: no call starts after it.
    pub(crate) stop: canopy_kernel::Stop,
}

impl Scan<'_> {
    /// A call budget over `hub`, sharing the scan's permits.
    pub(crate) fn calls<H>(&self, hub: H) -> Calls<H> {
        let settings = self.google.settings();
        Calls::sharing(hub, settings, settings.max_retries, self.permits.clone())
            .stopping(self.stop.clone())
    }

    /// The in-flight bound for fanning out over folders.
    pub(crate) fn fan_out(&self) -> usize {
        self.google.settings().max_in_flight.max(1)
    }

    /// The pool hubs are built on.
    pub(crate) fn api(&self) -> google_cloudresourcemanager3::common::Client<Connector> {
        self.google.api()
    }

    /// The scan's token source.
    pub(crate) fn auth(&self) -> Auth {
        self.auth.clone()
    }

    /// An API's base URL: `production` unless the settings point every API elsewhere.
    pub(crate) fn base_url(&self, production: &str) -> String {
        self.google.base_url(production)
    }
}

/// Runs `read` for every folder, at most `limit` at once, and keeps every folder's answer.
/// One unreadable folder fails the whole source, naming every folder that failed.
pub(crate) async fn per_folder<'f, T, F, Fut>(
    folders: &'f [String],
    limit: usize,
    read: F,
) -> Result<Vec<(String, T)>, Vec<Failed>>
where
    F: Fn(&'f str) -> Fut,
    Fut: Future<Output = Result<T, Failed>>,
{
    // The futures are made before the stream is: a closure kept inside the stream would make
    // the scan's future not Send for every lifetime, which async_trait requires.
    let pending: Vec<_> = folders
        .iter()
        .map(|folder| {
            let answer = read(folder.as_str());
            async move { (folder.clone(), answer.await) }
        })
        .collect();
    let answers: Vec<(String, Result<T, Failed>)> = stream::iter(pending)
        .buffer_unordered(limit)
        .collect()
        .await;
    let mut read_ok = Vec::new();
    let mut failed = Vec::new();
    for (folder, answer) in answers {
        match answer {
            Ok(value) => read_ok.push((folder, value)),
            Err(f) => failed.push(f),
        }
    }
    if failed.is_empty() {
        read_ok.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(read_ok)
    } else {
        failed.sort_by(|a, b| a.resource.cmp(&b.resource));
        Err(failed)
    }
}

/// A folder's read, where a folder deleted since the last discovery holds nothing: what it
/// held is gone with it, which is not the same as unreadable.
pub(crate) async fn gone_is_empty<T: Default>(
    read: impl Future<Output = Result<T, Failed>>,
) -> Result<T, Failed> {
    match read.await {
        Err(f) if matches!(f.error, CallError::NotFound(_)) => Ok(T::default()),
        other => other,
    }
}

/// The folders of the stored tree (`folders/N` only: the names go into URL paths). `None`
/// when the tree was never discovered: then nothing is known about folders.
pub(crate) fn folders_of(hierarchy: &Hierarchy) -> Option<Vec<String>> {
    if hierarchy.is_empty() {
        return None;
    }
    let mut folders: Vec<String> = hierarchy
        .nodes()
        .filter(|n| n.kind == NodeKind::Folder)
        .map(|n| n.id.clone())
        .filter(|id| {
            id.strip_prefix("folders/").is_some_and(|n| {
                !n.is_empty() && n.len() <= 32 && n.bytes().all(|b| b.is_ascii_digit())
            })
        })
        .collect();
    folders.sort();
    Some(folders)
}

/// Where a control at `node` reaches: the whole organization from its root, else the subtree.
pub(crate) fn reach(node: &str, organization: &str) -> AppliesTo {
    if node == organization {
        AppliesTo::AllAccounts
    } else {
        AppliesTo::Nodes(BTreeSet::from([node.to_string()]))
    }
}

/// A source's outcome as the domain wants it.
fn failure_of(who: &str, failed: &[Failed]) -> ReadFailure {
    let Some(first) = failed.first() else {
        return ReadFailure {
            kind: ReadFailureKind::Failed,
            message: "nothing was read".into(),
            advice: "Scan again.".into(),
        };
    };
    let one: Vec<ReadFailure> = failed.iter().map(|f| one_failure(who, f)).collect();
    if one.len() == 1 {
        return one
            .into_iter()
            .next()
            .unwrap_or_else(|| one_failure(who, first));
    }
    // Several folders failed: one kind when they agree, and every folder named.
    let kind = if one.iter().all(|f| f.kind == one[0].kind) {
        one[0].kind
    } else {
        ReadFailureKind::Failed
    };
    let resources: Vec<&str> = failed.iter().map(|f| f.resource.as_str()).collect();
    let shown = resources
        .iter()
        .take(10)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let more = resources.len().saturating_sub(10);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    ReadFailure {
        kind,
        message: format!(
            "{} could not be read on {} resources ({shown}{more}): {}",
            first.permission.name,
            resources.len(),
            one[0].message
        ),
        advice: if kind == ReadFailureKind::AccessDenied {
            format!(
                "Grant {who} {} (it holds {}) on the organization, which every folder \
                 inherits, or on each folder named.",
                first.permission.role, first.permission.name
            )
        } else {
            one[0].advice.clone()
        },
    }
}

/// One failed call, classified, with the permission or the step that fixes it.
fn one_failure(who: &str, f: &Failed) -> ReadFailure {
    let p = f.permission;
    let on = &f.resource;
    let (kind, message, advice) = match &f.error {
        CallError::Denied(m) if m.contains("has not been used") || m.contains("is disabled") => (
            ReadFailureKind::AccessDenied,
            format!(
                "{} is not enabled for the service account's project: {m}",
                p.api
            ),
            format!(
                "Enable the {} API in the project of {who} (Google checks quota there).",
                p.api
            ),
        ),
        CallError::Denied(m) => (
            ReadFailureKind::AccessDenied,
            format!("{} on {on} was denied: {m}", p.name),
            format!("Grant {who} {} (it holds {}) on {on}.", p.role, p.name),
        ),
        CallError::KeyRefused(code) => (
            ReadFailureKind::AccessDenied,
            format!("the service account key was refused by Google's token endpoint ({code})"),
            "Upload a current key of the service account (it may have been deleted or \
             disabled), or connect the organization by impersonation."
                .into(),
        ),
        CallError::ImpersonationRefused(m) => (
            ReadFailureKind::AccessDenied,
            m.clone(),
            format!(
                "Grant Canopy's service account roles/iam.serviceAccountTokenCreator on {who}."
            ),
        ),
        CallError::ThrottledOut => (
            ReadFailureKind::ThrottledOut,
            format!(
                "{} kept answering RESOURCE_EXHAUSTED to {} on {on} after every retry",
                p.api, p.name
            ),
            format!(
                "The next scan tries again; if it keeps happening, raise the {} read quota of \
                 the service account's project.",
                p.api
            ),
        ),
        CallError::NotFound(m) => (
            ReadFailureKind::Failed,
            format!("{on} was not found by {}: {m}", p.api),
            "Run a discovery: the organization or folder may have been deleted or moved.".into(),
        ),
        CallError::Network(_) => (
            ReadFailureKind::Failed,
            format!("{} could not be reached", p.api),
            "The next scan tries again.".into(),
        ),
        CallError::Timeout => (
            ReadFailureKind::Failed,
            format!("{} did not answer {} on {on} in time", p.api, p.name),
            "The next scan tries again.".into(),
        ),
        CallError::Other(m) => (
            ReadFailureKind::Failed,
            format!("{} on {on}: {m}", p.name),
            "The next scan tries again; if it keeps failing, check the API's status.".into(),
        ),
        // Never recorded: a stopped scan writes nothing.
        CallError::Stopped => (
            ReadFailureKind::Failed,
            format!("{} on {on} was not read: the scan was stopped", p.name),
            "The next scan reads it.".into(),
        ),
    };
    ReadFailure {
        kind,
        message,
        advice,
    }
}

/// The report of one source from what it read and the calls it made.
pub(crate) fn report(
    source: Source,
    who: &str,
    outcome: Result<Vec<Finding>, Vec<Failed>>,
    calls: u64,
) -> SourceReport {
    SourceReport {
        source,
        outcome: outcome.map_err(|failed| failure_of(who, &failed)),
        calls: u32::try_from(calls).unwrap_or(u32::MAX),
    }
}

/// The same failure for every source (credentials unusable before any call).
fn all_failed(sources: &[Source], failure: &ReadFailure) -> Vec<SourceReport> {
    sources
        .iter()
        .map(|s| SourceReport {
            source: *s,
            outcome: Err(failure.clone()),
            calls: 0,
        })
        .collect()
}

/// Who a GCP organization access acts as, and its organization's name.
fn organization_credentials(
    access: &OrganizationAccess,
) -> Result<(String, GcpCredentials), ReadFailure> {
    let OrganizationAccess::Gcp {
        organization,
        credentials,
    } = access
    else {
        return Err(ReadFailure {
            kind: ReadFailureKind::Failed,
            message: "the GCP scanner was given an AWS organization".into(),
            advice: "This is Canopy's mistake; report it.".into(),
        });
    };
    let name = organization_name(organization).map_err(|e| ReadFailure {
        kind: ReadFailureKind::Failed,
        message: e.to_string(),
        advice: "Reconnect the organization with its id (organizations/123).".into(),
    })?;
    let who = match credentials {
        GcpAccess::Key(key) => {
            GcpCredentials::Key(ServiceAccountKey::parse(key.expose()).map_err(|e| {
                ReadFailure {
                    kind: ReadFailureKind::AccessDenied,
                    message: format!("the stored service-account key is unusable: {e}"),
                    advice: "Upload a new key of the service account.".into(),
                }
            })?)
        }
        GcpAccess::Impersonate(email) => GcpCredentials::Impersonate(email.clone()),
    };
    Ok((name, who))
}

pub(crate) fn email_of(who: &GcpCredentials) -> String {
    match who {
        GcpCredentials::Key(key) => key.client_email().to_string(),
        GcpCredentials::Impersonate(email) => email.clone(),
    }
}

/// The failure of getting a token at all, for every source.
pub(crate) fn credentials_failure(who: &str, error: CallError) -> ReadFailure {
    const TOKEN: Permission = Permission {
        name: "iam.serviceAccounts.getAccessToken",
        role: "roles/iam.serviceAccountTokenCreator",
        api: "IAM Credentials",
    };
    one_failure(who, &Failed::new(TOKEN, who, error))
}

/// [`OrganizationScanner`] of GCP Organizations.
#[derive(Clone)]
pub struct GcpOrganizationScanner {
    google: Google,
}

impl std::fmt::Debug for GcpOrganizationScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpOrganizationScanner")
            .field("settings", self.google.settings())
            .finish_non_exhaustive()
    }
}

impl GcpOrganizationScanner {
    /// A scanner sharing `rm`'s connection pools, settings (the endpoint override points every
    /// API at it) and Canopy's own identity (for impersonation).
    pub fn new(rm: &ResourceManagerDiscoverer) -> Self {
        Self {
            google: rm.google().clone(),
        }
    }

    /// One source's report.
    async fn source(
        &self,
        source: Source,
        scan: &Scan<'_>,
        org: &str,
        folders: Option<&[String]>,
        hierarchy: &Hierarchy,
    ) -> SourceReport {
        let (outcome, calls) = match (source, folders) {
            (Source::GcpLoggingOrgSink, _) => sinks::org_sinks(scan, org).await,
            (Source::GcpLoggingFolderSink, Some(folders)) => {
                sinks::folder_sinks(scan, folders).await
            }
            (Source::GcpSccOrg, _) => scc::scc(scan, org).await,
            (Source::GcpOrgPolicyConstraint, Some(folders)) => {
                policies::policies(scan, org, folders, hierarchy).await
            }
            (Source::GcpCloudAssetOrgFeed, _) => feeds::feeds(scan, org).await,
            // Without the tree, what the folders hold is unknown, not absent.
            (Source::GcpLoggingFolderSink | Source::GcpOrgPolicyConstraint, None) => {
                return unreadable(
                    source,
                    ReadFailureKind::Failed,
                    "the organization's folders have not been discovered yet",
                    "Run a discovery of the organization, then scan again.",
                );
            }
            (other, _) => return not_scanned(other),
        };
        report(source, &scan.who, outcome, calls)
    }
}

/// A source that could not be read before any call.
pub(crate) fn unreadable(
    source: Source,
    kind: ReadFailureKind,
    message: &str,
    advice: &str,
) -> SourceReport {
    SourceReport {
        source,
        outcome: Err(ReadFailure {
            kind,
            message: message.to_string(),
            advice: advice.to_string(),
        }),
        calls: 0,
    }
}

/// A source the domain lists that this adapter does not know (a newer domain).
pub(crate) fn not_scanned(source: Source) -> SourceReport {
    unreadable(
        source,
        ReadFailureKind::Failed,
        &format!("{source} has no scanner in this version of Canopy's GCP adapter"),
        "Upgrade Canopy.",
    )
}

#[async_trait]
impl OrganizationScanner for GcpOrganizationScanner {
    async fn scan_organization(&self, request: &OrganizationScanRequest) -> Vec<SourceReport> {
        let sources = Source::scanners(Provider::Gcp, ScopeKind::Organization);
        let (org, who) = match organization_credentials(&request.access) {
            Ok(found) => found,
            Err(failure) => return all_failed(&sources, &failure),
        };
        let email = email_of(&who);
        // One token for the whole scan: three of the four APIs take only this scope.
        let auth = match self.google.auth(&who, CLOUD_PLATFORM).await {
            Ok(auth) => auth,
            Err(e) => return all_failed(&sources, &credentials_failure(&email, e)),
        };
        let scan = Scan {
            google: &self.google,
            auth,
            permits: Arc::new(Semaphore::new(self.google.settings().max_in_flight.max(1))),
            scope: CLOUD_PLATFORM,
            who: email,
            stop: request.stop.clone(),
        };
        let folders = folders_of(&request.hierarchy);
        let reports = sources
            .iter()
            .map(|s| self.source(*s, &scan, &org, folders.as_deref(), &request.hierarchy));
        futures::future::join_all(reports).await
    }
}
