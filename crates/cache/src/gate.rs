//! What the caches that writes invalidate share ([`grants`](crate::grants) and
//! [`org_reads`](crate::org_reads)): whether they may serve at all (the change channel is up),
//! a change counter a fill checks so that a fill which raced a change is not kept, and the
//! hit and miss counts.

use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use moka::sync::Cache;

/// Serving, filling and forgetting, for caches dropped on every change they are told of.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// Bumped by every change told, so a fill that read before it can tell.
    changes: AtomicU64,
    /// Whether every change made elsewhere will be told.
    listening: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// A bounded cache whose entries live `ttl` at most and can be dropped by predicate.
pub(crate) fn cache<K, V>(max_entries: u64, ttl: Duration) -> Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(max_entries)
        .time_to_live(ttl)
        .support_invalidation_closures()
        .build()
}

impl Gate {
    /// Whether entries may be served.
    pub(crate) fn listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    /// Lookups answered from the cache and lookups that read the store, since start.
    pub(crate) fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Notes a change, before what it names is dropped: a fill running now will not keep
    /// what it read.
    pub(crate) fn changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// The channel went down or came back: either way what was said meanwhile is lost, so
    /// `drop_all` runs, and entries are served again only once it is up.
    pub(crate) fn set_listening(&self, up: bool, drop_all: impl FnOnce()) {
        if !up {
            self.listening.store(false, Ordering::SeqCst);
        }
        self.changed();
        drop_all();
        if up {
            self.listening.store(true, Ordering::SeqCst);
        }
    }

    /// A mark taken before a read whose result is to be kept: [`Gate::unchanged_since`]
    /// tells later whether a change was told meanwhile.
    pub(crate) fn mark(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// Whether serving is allowed and no change was told since `mark`.
    pub(crate) fn unchanged_since(&self, mark: u64) -> bool {
        self.listening() && self.changes.load(Ordering::SeqCst) == mark
    }

    /// The entry under `key`, while serving is allowed.
    pub(crate) fn served<K, Q, V>(&self, cache: &Cache<K, V>, key: &Q) -> Option<V>
    where
        K: Hash + Eq + Send + Sync + 'static + std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone + Send + Sync + 'static,
    {
        if !self.listening() {
            return None;
        }
        let found = cache.get(key);
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// `load`'s answer; what `kept` makes of it is kept under `key` unless a change raced it.
    pub(crate) async fn filled<K, V, T, E, F>(
        &self,
        cache: &Cache<K, V>,
        key: K,
        load: F,
        kept: impl FnOnce(&T) -> Option<V>,
    ) -> Result<T, E>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        F: Future<Output = Result<T, E>>,
    {
        self.misses.fetch_add(1, Ordering::Relaxed);
        let before = self.mark();
        let value = load.await?;
        if self.listening()
            && let Some(entry) = kept(&value)
        {
            cache.insert(key.clone(), entry);
            // A change told after the read began may have been about this very entry, and
            // may already have swept the cache before the insert: take the entry back out.
            if !self.unchanged_since(before) {
                cache.invalidate(&key);
            }
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up() -> Gate {
        let gate = Gate::default();
        gate.set_listening(true, || {});
        gate
    }

    #[tokio::test]
    async fn nothing_is_served_or_kept_while_the_channel_is_down() {
        let (gate, cache) = (
            Gate::default(),
            cache::<u8, u8>(10, Duration::from_secs(60)),
        );
        let read: Result<u8, ()> = gate.filled(&cache, 1, async { Ok(7) }, |v| Some(*v)).await;
        assert_eq!(read, Ok(7));
        assert_eq!(cache.get(&1), None, "kept while down");
        cache.insert(1, 7);
        assert_eq!(gate.served(&cache, &1), None, "served while down");
    }

    #[tokio::test]
    async fn a_fill_that_raced_a_change_is_not_kept() {
        let (gate, cache) = (up(), cache::<u8, u8>(10, Duration::from_secs(60)));
        let read: Result<u8, ()> = gate
            .filled(
                &cache,
                1,
                async {
                    gate.changed();
                    Ok(7)
                },
                |v| Some(*v),
            )
            .await;
        assert_eq!(read, Ok(7));
        assert_eq!(cache.get(&1), None);
        let again: Result<u8, ()> = gate.filled(&cache, 1, async { Ok(8) }, |v| Some(*v)).await;
        assert_eq!(again, Ok(8));
        assert_eq!(gate.served(&cache, &1), Some(8));
        assert_eq!(gate.hits_and_misses(), (1, 2));
    }
}
