//! Ports of the metrics domain: where an account's metrics come from, and the cache that sits
//! in front of it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use canopy_cloud_org::identifiers::{AwsAccountId, AwsRegion, RoleArn};
use canopy_cloud_org::{AccessFailure, CloudAccountId};

use crate::series::{AccountSeries, Datapoints};
use crate::window::Window;

/// Everything needed to read one AWS account's metrics: its role and Canopy's session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricTarget {
    /// Canopy's id of the account.
    pub account: CloudAccountId,
    /// The AWS account.
    pub aws_account_id: AwsAccountId,
    /// The role Canopy assumes.
    pub role_arn: RoleArn,
    /// The region whose CloudWatch holds the SES metrics.
    pub region: AwsRegion,
    /// The organization's External ID.
    pub external_id: String,
    /// The STS session name.
    pub session_name: String,
}

/// A source of SES metrics (CloudWatch through an assumed role; the demo's synthetic data).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MetricSource: Send + Sync {
    /// The sums of every [`crate::SesMetric`] of `target` per `window` bucket. MUST classify
    /// failures (AccessDenied for a refused role, Throttled, Network, Timeout, Other) and
    /// MUST give up with `Timeout` after the adapter's per-account timeout, so one slow
    /// account cannot hold a whole dashboard.
    async fn fetch(
        &self,
        target: &MetricTarget,
        window: &Window,
    ) -> Result<Datapoints, AccessFailure>;
}

/// What a cache runs on a miss.
pub type Fetch =
    Pin<Box<dyn Future<Output = Result<Arc<AccountSeries>, AccessFailure>> + Send + 'static>>;

/// Identifies one account's series over one window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(pub String);

impl CacheKey {
    /// The key of `account` over `window`.
    pub fn new(account: CloudAccountId, window: &Window) -> Self {
        Self(format!(
            "ses:{account}:{}:{}:{}",
            window.start.timestamp(),
            window.period,
            window.buckets
        ))
    }
}

/// The cache in front of the source.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SeriesCache: Send + Sync {
    /// The fresh series under `key`, or the result of `fetch`. Concurrent callers of one key
    /// MUST share a single `fetch`; a success MUST be kept for the cache's time to live; a
    /// failure MUST NOT be kept (the next request tries again).
    async fn get_or_fetch(
        &self,
        key: CacheKey,
        fetch: Fetch,
    ) -> Result<Arc<AccountSeries>, AccessFailure>;
}

/// No cache: every request fetches (for measuring the source alone).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCache;

#[async_trait]
impl SeriesCache for NoCache {
    async fn get_or_fetch(
        &self,
        _key: CacheKey,
        fetch: Fetch,
    ) -> Result<Arc<AccountSeries>, AccessFailure> {
        fetch.await
    }
}
