//! A node-local cache of the records the RCPT path reads (contacts and
//! suppression), invalidated on every change.
//!
//! The danger of any such cache is a stale "may receive mail" for an address
//! that has just unsubscribed. Two rules keep it out:
//! - Every change removes its key *after* the change is visible in the store
//!   (RocksDB: after the write; PostgreSQL: when its NOTIFY arrives, and at
//!   once for this node's own writes).
//! - A look-up that missed fills the cache only if no change reached its
//!   shard between its read of the store and the fill: each shard counts its
//!   invalidations (an epoch), and a fill carries the epoch it started at.
//!   Otherwise a read that raced a change could put the old value back after
//!   the change removed it.
//!
//! While the invalidation feed is down (PostgreSQL's LISTEN connection lost),
//! the cache is switched off and emptied; it comes back only once the feed
//! is listening again, so a change missed meanwhile cannot be served.
//!
//! Hand-written rather than a cache crate: the epoch check on fill is the
//! point of it, and the well-kept crates (moka, quick_cache) do not offer it.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Cf;

const SHARDS: usize = 64;

/// A cached value: the record as its reader decoded it (so that a hit
/// costs no decoding), or None for "no such record" (most suppression
/// look-ups find nothing, so absence is worth caching too).
pub type Cached = Option<Arc<dyn std::any::Any + Send + Sync>>;

pub struct KeyCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    enabled: AtomicBool,
    hasher: std::collections::hash_map::RandomState,
}

#[derive(Default)]
struct Shard {
    epoch: u64,
    /// Counted under the shard's lock, not in a counter all threads share.
    hits: u64,
    misses: u64,
    /// One map per cached column family (see [`KeyCache::holds`]), keyed by
    /// the raw key, so that a look-up by `&[u8]` allocates nothing.
    maps: [HashMap<Vec<u8>, Cached>; 2],
}

impl Shard {
    fn len(&self) -> usize {
        self.maps.iter().map(|m| m.len()).sum()
    }
}

fn slot(cf: Cf) -> usize {
    match cf {
        Cf::Suppression => 1,
        _ => 0,
    }
}

/// What a miss carries from its look-up to its fill.
pub struct Ticket {
    shard: usize,
    epoch: u64,
}

impl KeyCache {
    /// A cache of at most about `capacity` entries, enabled or not.
    pub fn new(capacity: usize, enabled: bool) -> KeyCache {
        KeyCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            enabled: AtomicBool::new(enabled),
            hasher: Default::default(),
        }
    }

    /// Whether `cf` is one this cache holds.
    pub fn holds(cf: Cf) -> bool {
        matches!(cf, Cf::Contacts | Cf::Suppression)
    }

    fn shard_of(&self, cf: Cf, key: &[u8]) -> usize {
        let mut h = self.hasher.build_hasher();
        slot(cf).hash(&mut h);
        key.hash(&mut h);
        (h.finish() as usize) % SHARDS
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Shard> {
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value, or a ticket to fill it with after reading the store.
    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Cached, Ticket> {
        let shard = self.shard_of(cf, key);
        let mut s = self.lock(shard);
        if self.enabled.load(Ordering::Acquire) {
            if let Some(v) = s.maps[slot(cf)].get(key) {
                let v = v.clone();
                s.hits += 1;
                return Ok(v);
            }
        }
        s.misses += 1;
        Err(Ticket {
            shard,
            epoch: s.epoch,
        })
    }

    /// Keeps what a missed look-up read, unless a change reached the shard
    /// since the look-up began (then the value may be old) or the cache is off.
    pub fn fill(&self, ticket: Ticket, cf: Cf, key: &[u8], value: Cached) {
        let mut s = self.lock(ticket.shard);
        if s.epoch != ticket.epoch || !self.enabled.load(Ordering::Acquire) {
            return;
        }
        if s.len() >= self.per_shard {
            // Full: start the shard afresh (cheap, and correct: a miss only
            // costs a store read).
            s.maps.iter_mut().for_each(|m| m.clear());
        }
        s.maps[slot(cf)].insert(key.to_vec(), value);
    }

    /// Forgets `key` after a change to it is visible in the store.
    pub fn invalidate(&self, cf: Cf, key: &[u8]) {
        let mut s = self.lock(self.shard_of(cf, key));
        s.epoch += 1;
        s.maps[slot(cf)].remove(key);
    }

    /// Forgets everything (a change whose keys are unknown).
    pub fn clear(&self) {
        for i in 0..SHARDS {
            let mut s = self.lock(i);
            s.epoch += 1;
            s.maps.iter_mut().for_each(|m| m.clear());
        }
    }

    /// Switches the cache on or off; either way it starts empty.
    pub fn set_enabled(&self, on: bool) {
        if !on {
            self.enabled.store(false, Ordering::Release);
        }
        self.clear();
        if on {
            self.enabled.store(true, Ordering::Release);
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// (hits, misses) since start.
    pub fn stats(&self) -> (u64, u64) {
        (0..SHARDS).fold((0, 0), |(h, m), i| {
            let s = self.lock(i);
            (h + s.hits, m + s.misses)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Cached {
        Some(Arc::new(s.to_string()))
    }

    fn text(c: Option<Cached>) -> Option<Option<String>> {
        c.map(|v| v.map(|a| a.downcast_ref::<String>().cloned().unwrap_or_default()))
    }

    #[test]
    fn a_fill_that_raced_a_change_is_dropped() {
        let c = KeyCache::new(100, true);
        // A look-up misses and reads the old value from the store...
        let ticket = c.get(Cf::Suppression, b"k").expect_err("miss");
        // ...meanwhile the address is suppressed and the key invalidated...
        c.invalidate(Cf::Suppression, b"k");
        // ...so the old "not suppressed" must not be kept.
        c.fill(ticket, Cf::Suppression, b"k", None);
        assert!(c.get(Cf::Suppression, b"k").is_err());
        // Without a race the fill is kept, absence included.
        let ticket = c.get(Cf::Suppression, b"k").expect_err("miss");
        c.fill(ticket, Cf::Suppression, b"k", None);
        assert_eq!(text(c.get(Cf::Suppression, b"k").ok()), Some(None));
        let ticket = c.get(Cf::Contacts, b"k").expect_err("miss");
        c.fill(ticket, Cf::Contacts, b"k", v("x"));
        assert_eq!(text(c.get(Cf::Contacts, b"k").ok()), Some(Some("x".into())));
        assert_eq!(text(c.get(Cf::Suppression, b"k").ok()), Some(None));
    }

    #[test]
    fn a_disabled_cache_serves_nothing_and_keeps_nothing() {
        let c = KeyCache::new(100, true);
        let ticket = c.get(Cf::Contacts, b"k").expect_err("miss");
        c.fill(ticket, Cf::Contacts, b"k", v("old"));
        c.set_enabled(false);
        assert!(c.get(Cf::Contacts, b"k").is_err());
        let ticket = c.get(Cf::Contacts, b"k").expect_err("miss");
        c.fill(ticket, Cf::Contacts, b"k", v("x"));
        c.set_enabled(true);
        // Re-enabled empty: the value kept before the outage is gone.
        assert!(c.get(Cf::Contacts, b"k").is_err());
    }

    #[test]
    fn a_full_shard_starts_afresh_and_stays_bounded() {
        let c = KeyCache::new(SHARDS * 2, true);
        for i in 0..10_000u32 {
            let key = i.to_be_bytes();
            if let Err(t) = c.get(Cf::Contacts, &key) {
                c.fill(t, Cf::Contacts, &key, None);
            }
        }
        let total: usize = (0..SHARDS).map(|i| c.lock(i).len()).sum();
        assert!(total <= SHARDS * 2, "{total}");
    }
}
