//! Shared request state: the domain services and the edge's own machinery (rate limiter).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use canopy_billing::BillingService;
use canopy_cache::grants::GrantCache;
use canopy_cache::org_reads::OrgReadCache;
use canopy_cloud_org::CloudAccountService;
use canopy_cloud_org::organization::service::CloudOrganizationService;
use canopy_coverage::history::CoverageHistory;
use canopy_coverage::views::CoverageViews;
use canopy_detection::service::DetectionService;
use canopy_jobs::JobService;
use canopy_kernel::id::SessionId;
use canopy_metrics::MetricsService;
use canopy_store::Store;
use canopy_tenancy::TenancyService;
use canopy_tenancy::account::ClientInfo;
use canopy_tenancy::credential::{CredentialKind, Principal};
use canopy_tenancy::device::DeviceLogins;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use poem::Request;

use crate::api::problem::ApiError;

/// E-mail one address or account may be sent per hour by the self-service flows.
const MAILS_PER_HOUR: NonZeroU32 = NonZeroU32::new(5).unwrap();
/// Of which at once.
const MAIL_BURST: NonZeroU32 = NonZeroU32::new(3).unwrap();

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Tenancy use cases.
    pub tenancy: TenancyService,
    /// Billing use cases.
    pub billing: BillingService,
    /// Cloud-account use cases.
    pub cloud: CloudAccountService,
    /// SES metrics use cases.
    pub metrics: MetricsService,
    /// Jobs: read and cancel.
    pub jobs: JobService,
    /// Cloud organizations: discovery, sync, reads.
    pub cloud_orgs: CloudOrganizationService,
    /// Detections and scans.
    pub detections: DetectionService,
    /// Coverage snapshots and history.
    pub coverage: CoverageHistory,
    /// Coverage views over whole cloud organizations.
    pub views: CoverageViews,
    /// Who may do what, cached in process (read by operators' metrics and tests).
    pub grants: GrantCache,
    /// What organizations hold (accounts, members, invitations, plan), cached in process.
    pub reads: OrgReadCache,
    /// Device log-in for terminals.
    pub devices: DeviceLogins,
    /// The database, for readiness checks.
    pub store: Store,
    /// The public base URL, for links and instructions in pages.
    pub public_url: String,
    /// Whether the demo organization is seeded (the log-in page then shows its log-in).
    pub demo: bool,
    auth_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// E-mail a flow sends to one address or account (reset links, verification again):
    /// a few per hour, so nobody can fill someone's inbox through us.
    mail_limiter: Arc<DefaultKeyedRateLimiter<String>>,
    /// Sessions whose use was recorded in the last minute by this process.
    recently_used: moka::future::Cache<SessionId, ()>,
    trust_forwarded_for: bool,
}

/// The edge's own settings.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Sign-up and log-in attempts allowed per client address per minute.
    pub auth_per_minute: u32,
    /// Take the client address from `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// The public base URL.
    pub public_url: String,
    /// `canopy serve --demo`.
    pub demo: bool,
}

/// The domain services the composition root built.
pub struct Services {
    /// Tenancy.
    pub tenancy: TenancyService,
    /// Billing.
    pub billing: BillingService,
    /// Cloud accounts.
    pub cloud: CloudAccountService,
    /// SES metrics.
    pub metrics: MetricsService,
    /// Jobs.
    pub jobs: JobService,
    /// Cloud organizations.
    pub cloud_orgs: CloudOrganizationService,
    /// Detections and scans.
    pub detections: DetectionService,
    /// Coverage snapshots and history.
    pub coverage: CoverageHistory,
    /// Coverage views over whole cloud organizations.
    pub views: CoverageViews,
    /// The cache in front of tenancy's grant-deciding ports.
    pub grants: GrantCache,
    /// The cache in front of the organization reads.
    pub reads: OrgReadCache,
    /// Device log-in for terminals.
    pub devices: DeviceLogins,
}

impl AppState {
    /// Builds the state over the services, the store and the edge's settings.
    pub fn new(services: Services, store: Store, edge: Edge) -> Self {
        let per_minute = NonZeroU32::new(edge.auth_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let Services {
            tenancy,
            billing,
            cloud,
            metrics,
            jobs,
            cloud_orgs,
            detections,
            coverage,
            views,
            grants,
            reads,
            devices,
        } = services;
        Self {
            tenancy,
            billing,
            cloud,
            metrics,
            jobs,
            cloud_orgs,
            detections,
            coverage,
            views,
            grants,
            reads,
            devices,
            store,
            public_url: edge.public_url.trim_end_matches('/').to_string(),
            demo: edge.demo,
            auth_limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
            mail_limiter: Arc::new(RateLimiter::keyed(
                Quota::per_hour(MAILS_PER_HOUR).allow_burst(MAIL_BURST),
            )),
            recently_used: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
            trust_forwarded_for: edge.trust_forwarded_for,
        }
    }

    /// Where the request came from: its `User-Agent` and the client address (through the
    /// configured proxy trust), for sessions and the security log.
    pub fn client_info(&self, req: &Request) -> ClientInfo {
        ClientInfo::new(
            req.header("user-agent"),
            self.client_ip(req).map(|ip| ip.to_string()),
        )
    }

    /// `false` when `key` (an address or an account) was sent its share of e-mail this hour.
    pub fn mail_allowed(&self, key: &str) -> bool {
        self.mail_limiter
            .check_key(&key.trim().to_lowercase())
            .is_ok()
    }

    /// Records that the caller's session was used, at most once a minute per session and
    /// process, off the request's path.
    pub async fn note_use(&self, principal: &Principal) {
        let CredentialKind::Session(id) = principal.credential else {
            return;
        };
        if self.recently_used.contains_key(&id) {
            return;
        }
        self.recently_used.insert(id, ()).await;
        let tenancy = self.tenancy.clone();
        let principal = *principal;
        tokio::spawn(async move {
            if let Err(e) = tenancy.touch_session(&principal).await {
                tracing::debug!(error = %e, "recording a session's use failed");
            }
        });
    }

    fn client_ip(&self, req: &Request) -> Option<IpAddr> {
        if self.trust_forwarded_for
            && let Some(ip) = req
                .header("x-forwarded-for")
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse().ok())
        {
            return Some(ip);
        }
        req.remote_addr().as_socket_addr().map(|a| a.ip())
    }

    /// Refuses with 429 and `Retry-After` when the client's address used up its quota.
    pub fn check_auth_rate(&self, req: &Request) -> Result<(), ApiError> {
        self.auth_wait(req).map_err(ApiError::rate_limited)
    }

    /// `Err(seconds to wait)` when the client's address used up its sign-up and log-in quota;
    /// the API and the console's forms draw from this one quota.
    pub fn auth_wait(&self, req: &Request) -> Result<(), u64> {
        let Some(ip) = self.client_ip(req) else {
            return Ok(());
        };
        self.auth_limiter.check_key(&ip).map_err(|not_until| {
            whole_seconds_after(not_until.wait_time_from(DefaultClock::default().now()))
        })
    }
}

/// The whole seconds a client must wait so that waiting them is enough: rounded up (a client
/// told 1 when the quota frees in 1.5 s would be refused again), and at least 1.
pub fn whole_seconds_after(wait: std::time::Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::whole_seconds_after;

    #[test]
    fn retry_after_is_never_shorter_than_the_wait() {
        assert_eq!(whole_seconds_after(Duration::from_millis(1_500)), 2);
        assert_eq!(whole_seconds_after(Duration::from_millis(2_000)), 2);
        assert_eq!(whole_seconds_after(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_after(Duration::ZERO), 1);
    }
}
