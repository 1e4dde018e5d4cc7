//! The bounded cache of unwrapped object content.
//!
//! Every Get of an HSM-wrapped key would otherwise cost an HSM unwrap, and a
//! vSAN boot storm fetches the same few keys thousands of times. Entries are
//! `Zeroizing` buffers keyed by object id and revision (a changed object
//! never serves stale content), expire after a TTL, and are evicted on
//! change, destroy, revoke and master-key rotation. Sharded locks keep the
//! read path free of a global lock.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

const SHARDS: usize = 32;

struct Entry {
    revision: u64,
    master_version: u32,
    content: Arc<Zeroizing<Vec<u8>>>,
    inserted: Instant,
}

/// The cache.
pub struct KeyCache {
    shards: Vec<Mutex<HashMap<String, Entry>>>,
    per_shard: usize,
    ttl: Duration,
    enabled: bool,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyCache(enabled={}, ttl={:?})", self.enabled, self.ttl)
    }
}

impl KeyCache {
    /// A cache of at most `max_entries` entries living `ttl`.
    pub fn new(enabled: bool, max_entries: usize, ttl: Duration) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: max_entries.div_ceil(SHARDS).max(1),
            ttl,
            enabled: enabled && max_entries > 0,
        }
    }

    fn shard(&self, id: &str) -> &Mutex<HashMap<String, Entry>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        // SHARDS is non-zero, so the index is in bounds.
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// The content of `id` at `revision`, if cached and fresh.
    pub fn get(&self, id: &str, revision: u64) -> Option<Arc<Zeroizing<Vec<u8>>>> {
        if !self.enabled {
            return None;
        }
        let mut s = self.shard(id).lock().unwrap_or_else(|p| p.into_inner());
        match s.get(id) {
            Some(e) if e.revision == revision && e.inserted.elapsed() < self.ttl => {
                Some(e.content.clone())
            }
            Some(_) => {
                s.remove(id);
                None
            }
            None => None,
        }
    }

    /// Caches the content of `id` at `revision`.
    pub fn put(
        &self,
        id: &str,
        revision: u64,
        master_version: u32,
        content: Arc<Zeroizing<Vec<u8>>>,
    ) {
        if !self.enabled {
            return;
        }
        let mut s = self.shard(id).lock().unwrap_or_else(|p| p.into_inner());
        if s.len() >= self.per_shard && !s.contains_key(id) {
            // Evict the oldest entry of this shard.
            if let Some(k) = s
                .iter()
                .min_by_key(|(_, e)| e.inserted)
                .map(|(k, _)| k.clone())
            {
                s.remove(&k);
            }
        }
        s.insert(
            id.to_owned(),
            Entry {
                revision,
                master_version,
                content,
                inserted: Instant::now(),
            },
        );
    }

    /// Evicts `id` (on any change of the object).
    pub fn evict(&self, id: &str) {
        let mut s = self.shard(id).lock().unwrap_or_else(|p| p.into_inner());
        s.remove(id);
    }

    /// Evicts every entry unwrapped under `master_version` (rotation).
    pub fn evict_master_version(&self, master_version: u32) {
        for s in &self.shards {
            s.lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, e| e.master_version != master_version);
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_ttl_and_eviction() {
        let c = KeyCache::new(true, 64, Duration::from_secs(60));
        let v = Arc::new(Zeroizing::new(vec![1u8; 32]));
        c.put("a", 1, 1, v.clone());
        assert!(c.get("a", 1).is_some());
        assert!(c.get("a", 2).is_none(), "a newer revision must miss");
        assert!(c.get("a", 1).is_none(), "the stale entry was dropped");
        c.put("b", 1, 7, v.clone());
        c.evict_master_version(7);
        assert!(c.get("b", 1).is_none());
        let short = KeyCache::new(true, 64, Duration::from_millis(0));
        short.put("c", 1, 1, v.clone());
        assert!(short.get("c", 1).is_none(), "expired");
        let off = KeyCache::new(false, 64, Duration::from_secs(60));
        off.put("d", 1, 1, v);
        assert!(off.get("d", 1).is_none());
    }

    #[test]
    fn bounded() {
        let c = KeyCache::new(true, 64, Duration::from_secs(60));
        for i in 0..1000 {
            c.put(&i.to_string(), 1, 1, Arc::new(Zeroizing::new(vec![0; 8])));
        }
        assert!(c.len() <= 64, "{}", c.len());
    }
}
