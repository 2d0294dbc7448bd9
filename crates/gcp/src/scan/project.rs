//! The project scanner: a connected project's own log sinks, read with the credentials project
//! verification uses. A project connected from its cloud organization is read as that
//! organization's service account (its key, or impersonated by Canopy's own); a project
//! connected on its own as Canopy's own Google identity, which its owner granted roles on it.
//! Either way the token is read-only: Logging is all this reads.

use std::sync::Arc;

use async_trait::async_trait;
use canopy_cloud_org::Provider;
use canopy_cloud_org::account::CloudIdentity;
use canopy_cloud_org::health::FailureKind;
use canopy_cloud_org::organization::ports::CloudOrganizationRepository;
use canopy_cloud_org::sealing::SecretSealer;
use canopy_detection::detection::{ScopeKind, Source};
use canopy_detection::ports::{AccountScanRequest, AccountScanner, ReadFailureKind, SourceReport};
use tokio::sync::Semaphore;

use super::{Scan, credentials_failure, email_of, not_scanned, report, sinks, unreadable};
use crate::client::{Google, READ_ONLY};
use crate::discovery::valid_project;
use crate::ports::ProjectAccess;
use crate::{ResourceManagerDiscoverer, ServiceAccountKey};

/// [`AccountScanner`] of GCP projects.
#[derive(Clone)]
pub struct GcpAccountScanner {
    google: Google,
    access: ProjectAccess,
}

impl std::fmt::Debug for GcpAccountScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpAccountScanner")
            .field("settings", self.google.settings())
            .finish_non_exhaustive()
    }
}

impl GcpAccountScanner {
    /// A scanner sharing `rm`'s pools and settings, reaching each project as verification
    /// does: as its cloud organization's service account (stored in `organizations`, a key
    /// opened with `sealer`, or impersonated), or for a project connected on its own as
    /// `own_key`, Canopy's own identity.
    pub fn new(
        rm: &ResourceManagerDiscoverer,
        organizations: Arc<dyn CloudOrganizationRepository>,
        sealer: Arc<dyn SecretSealer>,
        own_key: Option<ServiceAccountKey>,
    ) -> Self {
        Self {
            google: rm.google().clone(),
            access: ProjectAccess {
                organizations,
                sealer,
                own_key,
            },
        }
    }

    async fn project_sinks(&self, request: &AccountScanRequest) -> SourceReport {
        let source = Source::GcpLoggingProjectSink;
        let failed =
            |kind, message: String, advice: String| unreadable(source, kind, &message, &advice);
        let CloudIdentity::Gcp { project_id, .. } = &request.account.identity else {
            return failed(
                ReadFailureKind::Failed,
                "the GCP scanner was given an AWS account".into(),
                "This is Canopy's mistake; report it.".into(),
            );
        };
        let project = project_id.as_str();
        if !valid_project(project) {
            return failed(
                ReadFailureKind::Failed,
                format!("{project:?} is not a project id"),
                "Reconnect the project with its project id.".into(),
            );
        }
        let who = match self.access.credentials(&request.account).await {
            Ok(who) => who,
            Err(failure) => {
                let kind = match failure.kind {
                    FailureKind::AccessDenied | FailureKind::CanopyCredentials => {
                        ReadFailureKind::AccessDenied
                    }
                    _ => ReadFailureKind::Failed,
                };
                return failed(
                    kind,
                    failure.message,
                    "Check the project's connection (Verify on the account).".into(),
                );
            }
        };
        let email = email_of(&who);
        // Only Logging is read here, and it takes the read-only scope.
        let auth = match self.google.auth(&who, READ_ONLY).await {
            Ok(auth) => auth,
            Err(e) => {
                let f = credentials_failure(&email, e);
                return failed(f.kind, f.message, f.advice);
            }
        };
        let scan = Scan {
            google: &self.google,
            auth,
            permits: Arc::new(Semaphore::new(self.google.settings().max_in_flight.max(1))),
            scope: READ_ONLY,
            who: email,
            stop: request.stop.clone(),
        };
        let (outcome, calls) = sinks::project_sinks(&scan, project).await;
        report(source, &scan.who, outcome, calls)
    }
}

#[async_trait]
impl AccountScanner for GcpAccountScanner {
    async fn scan_account(&self, request: &AccountScanRequest) -> Vec<SourceReport> {
        let mut reports = Vec::new();
        for source in Source::scanners(Provider::Gcp, ScopeKind::Account) {
            reports.push(match source {
                Source::GcpLoggingProjectSink => self.project_sinks(request).await,
                other => not_scanned(other),
            });
        }
        reports
    }
}
