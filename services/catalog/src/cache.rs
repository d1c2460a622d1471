//! A small time-bounded cache with single-flight loading: however many
//! requests miss the same key at once, one of them loads it and the rest
//! wait for that answer. A failed load is not cached; the next caller
//! retries. Entries live at most `ttl` from the moment they were created;
//! stale ones are swept out at most once per `ttl` (on a miss) and whenever
//! the cache is full, so a cache of large values (seat maps) holds roughly
//! what was asked for in the last interval, not everything ever asked for.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

struct Slot<V> {
    born: Instant,
    cell: Arc<OnceCell<V>>,
}

struct Slots<K, V> {
    map: HashMap<K, Slot<V>>,
    swept: Instant,
}

pub(crate) struct TtlCache<K, V> {
    name: &'static str,
    ttl: Duration,
    capacity: usize,
    slots: Mutex<Slots<K, V>>,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(name: &'static str, ttl: Duration, capacity: usize) -> Self {
        Self { name, ttl, capacity, slots: Mutex::new(Slots { map: HashMap::new(), swept: Instant::now() }) }
    }

    /// The cached value of `key`, or the one `load` produces (shared with
    /// every concurrent caller of the same key).
    pub(crate) async fn get_or_load<F, Fut, E>(&self, key: K, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = self.cell(key);
        cell.get_or_try_init(load).await.cloned()
    }

    fn cell(&self, key: K) -> Arc<OnceCell<V>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.map.get(&key)
            && slot.born.elapsed() < self.ttl
        {
            metrics::counter!("catalog_cache_lookups_total", "cache" => self.name, "result" => "hit").increment(1);
            return slot.cell.clone();
        }
        metrics::counter!("catalog_cache_lookups_total", "cache" => self.name, "result" => "miss").increment(1);
        if slots.map.len() >= self.capacity || slots.swept.elapsed() >= self.ttl {
            let ttl = self.ttl;
            slots.map.retain(|_, s| s.born.elapsed() < ttl);
            slots.swept = Instant::now();
            if slots.map.len() >= self.capacity {
                slots.map.clear();
            }
        }
        let cell = Arc::new(OnceCell::new());
        slots.map.insert(key, Slot { born: Instant::now(), cell: cell.clone() });
        cell
    }

    pub(crate) fn invalidate(&self, key: &K) {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner).map.remove(key);
    }

    pub(crate) fn clear(&self) {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner).map.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn loads_once_expires_and_invalidates() {
        let cache: TtlCache<u32, usize> = TtlCache::new("t", Duration::from_millis(50), 100);
        let loads = AtomicUsize::new(0);
        let load = || async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, ()>(loads.fetch_add(1, Ordering::SeqCst) + 1)
        };
        let (a, b) = tokio::join!(cache.get_or_load(1, load), cache.get_or_load(1, load));
        assert_eq!((a, b), (Ok(1), Ok(1)), "concurrent misses share one load");
        assert_eq!(cache.get_or_load(1, load).await, Ok(1));
        cache.invalidate(&1);
        assert_eq!(cache.get_or_load(1, load).await, Ok(2));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(cache.get_or_load(1, load).await, Ok(3), "stale entries reload");
        assert_eq!(cache.get_or_load(2, || async { Err::<usize, _>("down") }).await, Err("down"));
        assert_eq!(cache.get_or_load(2, load).await, Ok(4), "failures are not cached");
    }

    #[tokio::test]
    async fn stays_bounded() {
        let cache: TtlCache<u32, u32> = TtlCache::new("t", Duration::from_secs(60), 10);
        for k in 0..100 {
            let _ = cache.get_or_load(k, || async move { Ok::<_, ()>(k) }).await;
        }
        assert!(cache.slots.lock().expect("lock").map.len() <= 10);
    }

    #[tokio::test]
    async fn sweeps_stale_entries_before_it_is_full() {
        let cache: TtlCache<u32, u32> = TtlCache::new("t", Duration::from_millis(20), 1000);
        for k in 0..50 {
            let _ = cache.get_or_load(k, || async move { Ok::<_, ()>(k) }).await;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        let _ = cache.get_or_load(1000, || async { Ok::<_, ()>(0) }).await;
        assert_eq!(cache.slots.lock().expect("lock").map.len(), 1, "only the fresh entry is kept");
    }
}
