//! The series caches: time to live, single flight, failures not kept; Redis shared between
//! two replicas (needs the Redis `.ci/run` starts).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use canopy_cache::{InProcessCache, RedisCache};
use canopy_cloud_org::health::FailureKind;
use canopy_cloud_org::{AccessFailure, CloudAccountId};
use canopy_metrics::ports::{CacheKey, Fetch, SeriesCache};
use canopy_metrics::{AccountSeries, Window};
use chrono::{DateTime, Utc};

fn window() -> Window {
    Window {
        start: DateTime::<Utc>::from_timestamp(1_790_000_100, 0).unwrap(),
        period: 300,
        buckets: 4,
    }
}

/// A fetch that counts itself, waits a little (so concurrent callers overlap) and answers a
/// series whose first value says which call it was.
fn counted(calls: &Arc<AtomicUsize>, fail: bool) -> Fetch {
    let calls = calls.clone();
    Box::pin(async move {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
        if fail {
            return Err(AccessFailure {
                kind: FailureKind::AccessDenied,
                message: "no".into(),
            });
        }
        let mut s = AccountSeries::zeros(window());
        s.values[0][0] = n as f64;
        Ok(Arc::new(s))
    })
}

fn key() -> CacheKey {
    CacheKey::new(CloudAccountId::new(), &window())
}

#[tokio::test]
async fn a_second_read_within_the_ttl_does_not_fetch_and_one_after_it_does() {
    let cache = InProcessCache::new(Duration::from_millis(300));
    let calls = Arc::new(AtomicUsize::new(0));
    let k = key();
    let first = cache
        .get_or_fetch(k.clone(), counted(&calls, false))
        .await
        .unwrap();
    let again = cache
        .get_or_fetch(k.clone(), counted(&calls, false))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(first, again);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let later = cache.get_or_fetch(k, counted(&calls, false)).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(later.values[0][0], 2.0);
}

#[tokio::test]
async fn fifty_concurrent_misses_share_one_fetch() {
    let cache = Arc::new(InProcessCache::new(Duration::from_secs(60)));
    let calls = Arc::new(AtomicUsize::new(0));
    let k = key();
    let readers: Vec<_> = (0..50)
        .map(|_| {
            let (cache, calls, k) = (cache.clone(), calls.clone(), k.clone());
            tokio::spawn(async move { cache.get_or_fetch(k, counted(&calls, false)).await })
        })
        .collect();
    for r in readers {
        assert_eq!(r.await.unwrap().unwrap().values[0][0], 1.0);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn failures_reach_every_waiter_and_are_not_kept() {
    let cache = Arc::new(InProcessCache::new(Duration::from_secs(60)));
    let calls = Arc::new(AtomicUsize::new(0));
    let k = key();
    let readers: Vec<_> = (0..5)
        .map(|_| {
            let (cache, calls, k) = (cache.clone(), calls.clone(), k.clone());
            tokio::spawn(async move { cache.get_or_fetch(k, counted(&calls, true)).await })
        })
        .collect();
    for r in readers {
        assert_eq!(
            r.await.unwrap().unwrap_err().kind,
            FailureKind::AccessDenied
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    cache.get_or_fetch(k, counted(&calls, false)).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the failure was not cached"
    );
}

fn redis_url() -> String {
    std::env::var("CANOPY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test]
#[ignore = "needs redis"]
async fn replicas_share_series_through_redis_for_the_ttl() {
    let ttl = Duration::from_millis(1_500);
    let one = RedisCache::connect(&redis_url(), ttl).await.unwrap();
    let two = RedisCache::connect(&redis_url(), ttl).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let k = key();
    let fetched = one
        .get_or_fetch(k.clone(), counted(&calls, false))
        .await
        .unwrap();
    let shared = two
        .get_or_fetch(k.clone(), counted(&calls, false))
        .await
        .unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the second replica read Redis"
    );
    assert_eq!(fetched, shared);
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    let third = RedisCache::connect(&redis_url(), ttl).await.unwrap();
    third.get_or_fetch(k, counted(&calls, false)).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "expired in Redis after the ttl"
    );
}

#[tokio::test]
#[ignore = "needs redis"]
async fn failures_are_not_stored_in_redis() {
    let one = RedisCache::connect(&redis_url(), Duration::from_secs(30))
        .await
        .unwrap();
    let two = RedisCache::connect(&redis_url(), Duration::from_secs(30))
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let k = key();
    assert!(
        one.get_or_fetch(k.clone(), counted(&calls, true))
            .await
            .is_err()
    );
    two.get_or_fetch(k, counted(&calls, false)).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
