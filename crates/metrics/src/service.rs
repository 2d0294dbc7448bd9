//! The metrics use cases: one organization's SES metrics across its AWS accounts, fetched
//! from every selected account in parallel (bounded), cached, aggregated once, with the
//! accounts that did not answer reported beside the data (spec: `Promise.allSettled`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use canopy_billing::BillingService;
use canopy_cloud_org::account::{AccountStatus, CloudIdentity};
use canopy_cloud_org::{
    AccessFailure, AccountFilter, CloudAccount, CloudAccountError, CloudAccountId,
    CloudAccountService, ExternalIdError,
};
use canopy_kernel::{Clock, PlanLimitExceeded, StoreError, ValidationErrors};
use canopy_tenancy::{Forbidden, OrgAccess, Organization};
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::aggregate::{Report, aggregate};
use crate::ports::{CacheKey, Fetch, MetricSource, MetricTarget, SeriesCache};
use crate::query::MetricsQuery;
use crate::series::AccountSeries;
use crate::window::{RangeSpec, Window};

/// Outcomes of a metrics request.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The range is invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The caller's role does not allow it.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The range reaches further back than the plan keeps history.
    #[error(transparent)]
    PlanLimit(#[from] PlanLimitExceeded),
    /// An account in the filter is not this organization's.
    #[error("cloud account not found")]
    AccountNotFound,
    /// The adapter failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CloudAccountError> for MetricsError {
    fn from(e: CloudAccountError) -> Self {
        match e {
            CloudAccountError::Forbidden(f) => Self::Forbidden(f),
            CloudAccountError::Store(s) => Self::Store(s),
            CloudAccountError::Invalid(v) => Self::Invalid(v),
            CloudAccountError::PlanLimit(l) => Self::PlanLimit(l),
            // Listing and reading never connect, edit or verify anything.
            CloudAccountError::NotFound
            | CloudAccountError::AlreadyConnected
            | CloudAccountError::ConnectedElsewhere => Self::AccountNotFound,
        }
    }
}

impl From<ExternalIdError> for MetricsError {
    fn from(e: ExternalIdError) -> Self {
        match e {
            ExternalIdError::Forbidden(f) => Self::Forbidden(f),
            ExternalIdError::Store(s) => Self::Store(s),
        }
    }
}

/// Tunables.
#[derive(Debug, Clone, Copy)]
pub struct MetricsConfig {
    /// Accounts fetched at once.
    pub concurrency: usize,
}

impl Default for MetricsConfig {
    /// One wave for the largest Pro estate (500 accounts).
    fn default() -> Self {
        Self { concurrency: 500 }
    }
}

/// The adapters and services the metrics use cases run on.
#[derive(Clone)]
pub struct MetricsPorts {
    /// Accounts, External ID and health recording.
    pub cloud: CloudAccountService,
    /// The plan's history retention.
    pub billing: BillingService,
    /// Where metrics come from.
    pub source: Arc<dyn MetricSource>,
    /// The cache in front of it.
    pub cache: Arc<dyn SeriesCache>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// An account that did not answer, and why.
#[derive(Debug, Clone)]
pub struct AccountFailure {
    /// The account, its status updated.
    pub account: CloudAccount,
    /// The classified failure.
    pub failure: AccessFailure,
}

/// Metrics of the selected accounts.
#[derive(Debug, Clone)]
pub struct MetricsView {
    /// The aggregate of the accounts that answered.
    pub report: Report,
    /// Every selected account (answered or not), statuses updated.
    pub accounts: Vec<CloudAccount>,
    /// The selected accounts that did not answer.
    pub failures: Vec<AccountFailure>,
    /// When this was computed.
    pub generated_at: DateTime<Utc>,
}

/// What the dashboard shows in one call.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// The organization.
    pub organization: Organization,
    /// Every cloud account of the organization, for the filter and its badges.
    pub accounts: Vec<CloudAccount>,
    /// The metrics of the selection.
    pub metrics: MetricsView,
}

/// One account's fetch outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The account.
    pub account: CloudAccountId,
    /// Its series, or why not.
    pub result: Result<Arc<AccountSeries>, AccessFailure>,
    /// True when this request's fetch reached the source (not the cache, not another
    /// request's fetch).
    pub fetched: bool,
    /// How long it took (near zero from the cache).
    pub duration_ms: u64,
}

/// The metrics use cases.
#[derive(Clone)]
pub struct MetricsService {
    ports: MetricsPorts,
    config: MetricsConfig,
}

impl MetricsService {
    /// Builds the service.
    pub fn new(ports: MetricsPorts, config: MetricsConfig) -> Self {
        Self { ports, config }
    }

    /// Fetches every target's series over `window` through the cache, at most
    /// `concurrency` at a time; results come back in the targets' order.
    pub async fn collect(&self, targets: &[MetricTarget], window: Window) -> Vec<Outcome> {
        let concurrency = self.config.concurrency.max(1);
        futures::stream::iter(targets.iter().cloned().map(|target| {
            let source = self.ports.source.clone();
            let cache = self.ports.cache.clone();
            async move {
                let started = Instant::now();
                let account = target.account;
                let key = CacheKey::new(account, &window);
                let fetched = Arc::new(AtomicBool::new(false));
                let mark = fetched.clone();
                let fetch: Fetch = Box::pin(async move {
                    mark.store(true, Ordering::Relaxed);
                    let data = source.fetch(&target, &window).await?;
                    Ok(Arc::new(AccountSeries::from_datapoints(window, &data)))
                });
                let result = cache.get_or_fetch(key, fetch).await;
                Outcome {
                    account,
                    result,
                    fetched: fetched.load(Ordering::Relaxed),
                    duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                }
            }
        }))
        .buffered(concurrency)
        .collect()
        .await
    }

    /// The selected accounts' metrics over the range (any member). A range reaching further
    /// back than the plan's history is refused; the previous period is compared only when
    /// the plan's history reaches it too.
    pub async fn metrics(
        &self,
        access: &OrgAccess,
        query: &MetricsQuery,
    ) -> Result<MetricsView, MetricsError> {
        let all = self
            .ports
            .cloud
            .all(access, &AccountFilter::default())
            .await?;
        self.metrics_of(access, query, &all).await
    }

    /// Organization, every account with its status and environment, and the metrics of the
    /// selection: the whole dashboard in one call (any member).
    pub async fn dashboard(
        &self,
        access: &OrgAccess,
        query: &MetricsQuery,
    ) -> Result<Dashboard, MetricsError> {
        let mut all = self
            .ports
            .cloud
            .all(access, &AccountFilter::default())
            .await?;
        let metrics = self.metrics_of(access, query, &all).await?;
        for updated in &metrics.accounts {
            if let Some(a) = all.iter_mut().find(|a| a.id == updated.id) {
                *a = updated.clone();
            }
        }
        Ok(Dashboard {
            organization: access.organization().clone(),
            accounts: all,
            metrics,
        })
    }

    async fn metrics_of(
        &self,
        access: &OrgAccess,
        query: &MetricsQuery,
        all: &[CloudAccount],
    ) -> Result<MetricsView, MetricsError> {
        let now = self.ports.clock.now();
        let window = Window::resolve(query.range, now)?;
        let terms = self.ports.billing.terms(access.org_id()).await?;
        // What was asked is judged, not the widening to whole buckets.
        let asked_from = match query.range {
            RangeSpec::Between { start, .. } => start,
            RangeSpec::Preset(_) => window.start,
        };
        terms.history_from(asked_from, now)?;
        let compare = terms.history_from(window.previous().start, now).is_ok();

        let wanted: HashSet<CloudAccountId> = query.accounts.iter().copied().collect();
        if wanted.iter().any(|id| all.iter().all(|a| a.id != *id)) {
            return Err(MetricsError::AccountNotFound);
        }
        let mut selected: Vec<CloudAccount> = all
            .iter()
            .filter(|a| matches!(a.identity, CloudIdentity::Aws { .. }))
            .filter(|a| wanted.is_empty() || wanted.contains(&a.id))
            .filter(|a| {
                query
                    .environment
                    .is_none_or(|e| a.settings.environment == Some(e))
            })
            .cloned()
            .collect();

        let session = self.ports.cloud.role_session(access).await?;
        let targets: Vec<MetricTarget> = selected
            .iter()
            .filter_map(|a| match &a.identity {
                CloudIdentity::Aws {
                    account_id,
                    role_arn,
                    region,
                } => Some(MetricTarget {
                    account: a.id,
                    aws_account_id: account_id.clone(),
                    role_arn: role_arn.clone(),
                    region: region.clone(),
                    external_id: session.external_id.clone(),
                    session_name: session.session_name.clone(),
                }),
                CloudIdentity::Gcp { .. } => None,
            })
            .collect();
        let fetch_window = if compare {
            window.with_previous()
        } else {
            window
        };
        let outcomes = self.collect(&targets, fetch_window).await;

        let mut answered = Vec::with_capacity(outcomes.len());
        let mut failures = vec![];
        for outcome in outcomes {
            let Some(account) = selected.iter_mut().find(|a| a.id == outcome.account) else {
                continue;
            };
            match outcome.result {
                Ok(series) => {
                    // Only a read that reached AWS proves the account works again; cached
                    // data may predate the failure.
                    if matches!(
                        account.status,
                        AccountStatus::Error | AccountStatus::Pending
                    ) && outcome.fetched
                    {
                        self.record(access, account, None, outcome.duration_ms)
                            .await;
                    }
                    answered.push((outcome.account, series));
                }
                Err(failure) => {
                    tracing::info!(
                        account = %outcome.account,
                        kind = failure.kind.as_str(),
                        "metrics fetch failed"
                    );
                    if changed(account, &failure) {
                        self.record(access, account, Some(failure.clone()), outcome.duration_ms)
                            .await;
                    }
                    failures.push(AccountFailure {
                        account: account.clone(),
                        failure,
                    });
                }
            }
        }
        Ok(MetricsView {
            report: aggregate(window, compare, &answered),
            accounts: selected,
            failures,
            generated_at: now,
        })
    }

    /// Records the outcome in the account's health and updates `account` from it. Bookkeeping
    /// never fails the dashboard: an account disconnected meanwhile, or a storage hiccup, is
    /// logged and the metrics are still answered.
    async fn record(
        &self,
        access: &OrgAccess,
        account: &mut CloudAccount,
        failure: Option<AccessFailure>,
        duration_ms: u64,
    ) {
        match self
            .ports
            .cloud
            .record_outcome(access, account.id, failure, duration_ms)
            .await
        {
            Ok((updated, _)) => *account = updated,
            Err(e) => {
                tracing::warn!(account = %account.id, error = %e, "could not record the account's health")
            }
        }
    }
}

/// A failure is recorded when it changes what the account's status says, so a dashboard
/// reloaded every minute does not flood the health timeline.
fn changed(account: &CloudAccount, failure: &AccessFailure) -> bool {
    account.status != AccountStatus::Error
        || !account
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with(failure.kind.as_str()))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use canopy_billing::ports::{MockHistoryStore, MockSubscriptionRepository};
    use canopy_cloud_org::health::FailureKind;
    use canopy_cloud_org::identifiers::{AwsAccountId, AwsRegion, RoleArn};
    use canopy_cloud_org::ports::{
        MockCloudAccountRepository, MockConnectionTokenRepository, MockExternalIdRepository,
        MockRoleVerifier, MockSecretSource,
    };
    use canopy_cloud_org::{CloudAccountConfig, CloudAccountPorts};
    use canopy_kernel::ManualClock;
    use canopy_tenancy::ports::MockApiKeyAccess;
    use canopy_tenancy::ports::{
        MockAuditLog, MockCredentialCrypto, MockCredentialRepository, MockHistoryRetention,
        MockInvitationRepository, MockMailRenderer, MockMembershipRepository,
        MockOrganizationRepository, MockOutboxStore, MockSecurityLog, MockUserRepository,
    };
    use canopy_tenancy::{TenancyConfig, TenancyPorts, TenancyService};

    use super::*;
    use crate::ports::NoCache;
    use crate::series::Datapoints;
    use crate::window::{RangePreset, SesMetric};

    /// Counts fetches in flight; account ids ending in 9 refuse.
    #[derive(Default)]
    struct Slow {
        in_flight: AtomicUsize,
        peak: AtomicUsize,
    }

    #[async_trait]
    impl MetricSource for Slow {
        async fn fetch(
            &self,
            target: &MetricTarget,
            window: &Window,
        ) -> Result<Datapoints, AccessFailure> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if target.aws_account_id.as_str().ends_with('9') {
                return Err(AccessFailure {
                    kind: FailureKind::AccessDenied,
                    message: "no".into(),
                });
            }
            let sends: f64 = target.aws_account_id.as_str()[11..].parse().unwrap_or(0.0);
            Ok(Datapoints {
                points: vec![(SesMetric::Send, window.start, sends)],
            })
        }
    }

    fn service(source: Arc<Slow>, concurrency: usize) -> MetricsService {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Utc::now()));
        let billing = BillingService::new(
            Arc::new(MockSubscriptionRepository::new()),
            Arc::new(MockHistoryStore::new()),
            clock.clone(),
        );
        let tenancy = TenancyService::new(
            TenancyPorts {
                users: Arc::new(MockUserRepository::new()),
                credentials: Arc::new(MockCredentialRepository::new()),
                organizations: Arc::new(MockOrganizationRepository::new()),
                members: Arc::new(MockMembershipRepository::new()),
                invitations: Arc::new(MockInvitationRepository::new()),
                audit: Arc::new(MockAuditLog::new()),
                retention: Arc::new(MockHistoryRetention::new()),
                api_keys: Arc::new(MockApiKeyAccess::new()),
                renderer: Arc::new(MockMailRenderer::new()),
                outbox: Arc::new(MockOutboxStore::new()),
                security_log: Arc::new(MockSecurityLog::new()),
                crypto: Arc::new(MockCredentialCrypto::new()),
                clock: clock.clone(),
            },
            TenancyConfig::default(),
        );
        let cloud = CloudAccountService::new(
            CloudAccountPorts {
                accounts: Arc::new(MockCloudAccountRepository::new()),
                external_ids: Arc::new(MockExternalIdRepository::new()),
                tokens: Arc::new(MockConnectionTokenRepository::new()),
                tenancy,
                billing: billing.clone(),
                aws: Arc::new(MockRoleVerifier::new()),
                gcp: Arc::new(canopy_cloud_org::ports::MockProjectVerifier::new()),
                secrets: Arc::new(MockSecretSource::new()),
                clock: clock.clone(),
            },
            CloudAccountConfig {
                trusted_principal: "arn:aws:iam::111122223333:root".into(),
                public_url: "http://localhost".into(),
            },
        );
        MetricsService::new(
            MetricsPorts {
                cloud,
                billing,
                source,
                cache: Arc::new(NoCache),
                clock,
            },
            MetricsConfig { concurrency },
        )
    }

    fn targets(n: usize) -> Vec<MetricTarget> {
        (0..n)
            .map(|i| MetricTarget {
                account: CloudAccountId::new(),
                aws_account_id: AwsAccountId::parse(&format!("{i:012}"), "id").unwrap(),
                role_arn: RoleArn::parse(&format!("arn:aws:iam::{i:012}:role/R"), "arn").unwrap(),
                region: AwsRegion::parse("us-east-1", "region").unwrap(),
                external_id: "x".into(),
                session_name: "s".into(),
            })
            .collect()
    }

    #[tokio::test]
    async fn the_fan_out_is_bounded_ordered_and_a_failure_stays_with_its_account() {
        let source = Arc::new(Slow::default());
        let svc = service(source.clone(), 3);
        let window =
            Window::resolve(RangeSpec::Preset(RangePreset::Hour), Utc::now()).unwrap_or(Window {
                start: Utc::now(),
                period: 300,
                buckets: 12,
            });
        let t = targets(10);
        let outcomes = svc.collect(&t, window).await;
        assert_eq!(
            source.peak.load(Ordering::SeqCst),
            3,
            "never more than 3 at once"
        );
        assert_eq!(
            outcomes.iter().map(|o| o.account).collect::<Vec<_>>(),
            t.iter().map(|t| t.account).collect::<Vec<_>>()
        );
        for (i, o) in outcomes.iter().enumerate() {
            match &o.result {
                Ok(series) => assert_eq!(series.values[0][0], i as f64),
                Err(f) => {
                    assert_eq!(i, 9);
                    assert_eq!(f.kind, FailureKind::AccessDenied);
                }
            }
        }
    }

    #[tokio::test]
    async fn with_enough_concurrency_every_account_is_fetched_at_once() {
        let source = Arc::new(Slow::default());
        let svc = service(source.clone(), 500);
        let window = Window {
            start: DateTime::<Utc>::from_timestamp(1_790_000_100, 0).unwrap_or_default(),
            period: 300,
            buckets: 1,
        };
        svc.collect(&targets(40), window).await;
        assert_eq!(source.peak.load(Ordering::SeqCst), 40);
    }
}
