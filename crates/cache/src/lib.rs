//! Caches for metric series ([`SeriesCache`]): in process with moka (time to live, bounded
//! size, concurrent misses of one key share one fetch), and the same in front of Redis so
//! several replicas share what any of them fetched. Computed coverage views ([`views`]) are
//! kept in process, and so are who may do what ([`grants`]) and what an organization holds
//! ([`org_reads`]), both dropped on every change.
//!
//! API boundary: [`InProcessCache`], [`RedisCache`], [`views::InProcessViews`],
//! [`grants::GrantCache`], [`grants::CachedTenancy`], [`org_reads::OrgReadCache`],
//! [`org_reads::Listeners`].

mod gate;
pub mod grants;
pub mod org_reads;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use canopy_cloud_org::AccessFailure;
use canopy_metrics::AccountSeries;
use canopy_metrics::ports::{CacheKey, Fetch, SeriesCache};
use moka::future::Cache;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

/// Series kept at most, whatever their size: an entry is one account over one window.
const MAX_ENTRIES: u64 = 100_000;

/// In-process cache: a success is kept for the time to live; concurrent misses of one key
/// run one fetch and all get its result; a failure is handed to every waiter and not kept.
#[derive(Clone)]
pub struct InProcessCache {
    cache: Cache<CacheKey, Arc<AccountSeries>>,
}

impl std::fmt::Debug for InProcessCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessCache")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl InProcessCache {
    /// A cache keeping series for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(ttl)
                .build(),
        }
    }
}

#[async_trait]
impl SeriesCache for InProcessCache {
    async fn get_or_fetch(
        &self,
        key: CacheKey,
        fetch: Fetch,
    ) -> Result<Arc<AccountSeries>, AccessFailure> {
        self.cache
            .try_get_with(key, fetch)
            .await
            .map_err(|e| (*e).clone())
    }
}

/// Shared cache: Redis holds each series for the time to live, so a replica finds what
/// another fetched. An in-process layer in front (a quarter of the time to live) keeps the hot
/// path off the network and lets concurrent misses on one replica share one Redis lookup and
/// one fetch. When Redis is unreachable the cache degrades to fetching, never to failing.
#[derive(Clone)]
pub struct RedisCache {
    local: InProcessCache,
    redis: ConnectionManager,
    ttl: Duration,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Connects to `url` (`redis://host:port/db`); series live there for `ttl`.
    pub async fn connect(url: &str, ttl: Duration) -> Result<Self, redis::RedisError> {
        let redis = redis::Client::open(url)?.get_connection_manager().await?;
        Ok(Self {
            local: InProcessCache::new((ttl / 4).max(Duration::from_secs(1))),
            redis,
            ttl,
        })
    }

    async fn lookup(mut redis: ConnectionManager, key: &str) -> Option<Arc<AccountSeries>> {
        match redis.get::<_, Option<Vec<u8>>>(key).await {
            Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(series) => Some(Arc::new(series)),
                Err(e) => {
                    tracing::warn!(key, error = %e, "unreadable cached series; fetching");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "redis unavailable; fetching");
                None
            }
        }
    }

    async fn store(mut redis: ConnectionManager, key: &str, series: &AccountSeries, ttl: Duration) {
        let Ok(bytes) = serde_json::to_vec(series) else {
            return;
        };
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        if let Err(e) = redis.pset_ex::<_, _, ()>(key, bytes, millis).await {
            tracing::warn!(error = %e, "could not store a series in redis");
        }
    }
}

#[async_trait]
impl SeriesCache for RedisCache {
    async fn get_or_fetch(
        &self,
        key: CacheKey,
        fetch: Fetch,
    ) -> Result<Arc<AccountSeries>, AccessFailure> {
        let (redis, ttl, name) = (self.redis.clone(), self.ttl, key.0.clone());
        let shared: Fetch = Box::pin(async move {
            if let Some(found) = Self::lookup(redis.clone(), &name).await {
                return Ok(found);
            }
            let series = fetch.await?;
            Self::store(redis, &name, &series, ttl).await;
            Ok(series)
        });
        self.local.get_or_fetch(key, shared).await
    }
}
