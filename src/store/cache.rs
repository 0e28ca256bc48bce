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
//!
//! Entries are found by a 128-bit keyed hash of their key (SipHash-1-3 with
//! a 128-bit output and a random key), not by the key itself: at a million
//! contacts a look-up is bound by cache misses, and comparing the stored key
//! was one more miss per look-up (measured: a third of a cached RCPT). Two keys of
//! the 10^7 an instance might hold share a hash with a probability near
//! 10^-25, and the random keys keep a sender from making them collide.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Cf;

const SHARDS: usize = 64;

/// A cached value, as its reader decoded it, so that a hit costs no
/// decoding. For the suppression of an address, the answer covers its
/// erased form too (see [`KeyCache::invalidate`]).
#[derive(Clone)]
pub enum Cached {
    /// No such record: most suppression look-ups find nothing, so absence
    /// is worth keeping too.
    Absent,
    /// A value small enough to keep in the map itself (a contact's consent
    /// state): a hit follows no pointer, which is one cache miss less.
    Word(u64),
    /// Any other record.
    Shared(Arc<dyn std::any::Any + Send + Sync>),
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cached::Absent => f.write_str("Absent"),
            Cached::Word(n) => write!(f, "Word({n})"),
            Cached::Shared(_) => f.write_str("Shared(..)"),
        }
    }
}

/// How a record the RCPT path reads is kept in the consent cache: by
/// default shared behind an `Arc`; a small value may keep itself in the
/// cache's map as a word instead (see [`Cached::Word`]).
pub trait CacheValue: Sized + Clone + Send + Sync + 'static {
    fn to_cached(&self) -> Cached {
        Cached::Shared(Arc::new(self.clone()))
    }

    fn from_cached(cached: &Cached) -> Option<Self> {
        match cached {
            Cached::Shared(any) => any.downcast_ref::<Self>().cloned(),
            _ => None,
        }
    }
}

pub struct KeyCache {
    shards: Vec<Padded>,
    per_shard: usize,
    enabled: AtomicBool,
    /// The random key of the 128-bit SipHash of cache keys.
    sip_key: (u64, u64),
}

/// A shard on cache lines of its own: the two threads' look-ups count hits
/// in their shards and must not bounce a line between cores.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// An entry's key in its shard: the 128-bit hash of (column family, key).
type Fingerprint = u128;

/// The maps' hasher: the key is a keyed hash already, so its low half is
/// the map's hash as it is.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u128 fingerprints are hashed; anything else still spreads.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

#[derive(Default)]
struct Shard {
    epoch: u64,
    /// Counted under the shard's lock, not in a counter all threads share.
    hits: u64,
    misses: u64,
    /// One map per cached column family (see [`KeyCache::holds`]), keyed by
    /// the key's fingerprint.
    maps: [HashMap<Fingerprint, Cached, BuildHasherDefault<PassThrough>>; 2],
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
    fingerprint: Fingerprint,
    epoch: u64,
}

impl KeyCache {
    /// A cache of at most about `capacity` entries, enabled or not.
    pub fn new(capacity: usize, enabled: bool) -> KeyCache {
        KeyCache {
            shards: (0..SHARDS)
                .map(|_| Padded(Mutex::new(Shard::default())))
                .collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            enabled: AtomicBool::new(enabled),
            sip_key: (rand::random(), rand::random()),
        }
    }

    /// Whether `cf` is one this cache holds.
    pub fn holds(cf: Cf) -> bool {
        matches!(cf, Cf::Contacts | Cf::Suppression)
    }

    /// The shard and the fingerprint of `key` in `cf`.
    fn locate(&self, cf: Cf, key: &[u8]) -> (usize, Fingerprint) {
        // One pass of SipHash-1-3 with a 128-bit output (the `siphasher`
        // crate; std's SipHash gives 64 bits, and two passes cost twice).
        let mut h = siphasher::sip128::SipHasher13::new_with_keys(self.sip_key.0, self.sip_key.1);
        h.write_u8(slot(cf) as u8);
        h.write(key);
        let fingerprint = siphasher::sip128::Hasher128::finish128(&h).as_u128();
        // The shard from the half the maps do not use.
        (((fingerprint >> 64) as usize) % SHARDS, fingerprint)
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Shard> {
        self.shards[i].0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value, or a ticket to fill it with after reading the store.
    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Cached, Ticket> {
        let (shard, fingerprint) = self.locate(cf, key);
        let mut s = self.lock(shard);
        if self.enabled.load(Ordering::Acquire) {
            if let Some(v) = s.maps[slot(cf)].get(&fingerprint) {
                let v = v.clone();
                s.hits += 1;
                return Ok(v);
            }
        }
        s.misses += 1;
        Err(Ticket {
            shard,
            fingerprint,
            epoch: s.epoch,
        })
    }

    /// Keeps what a missed look-up read, unless a change reached the shard
    /// since the look-up began (then the value may be old) or the cache is off.
    pub fn fill(&self, ticket: Ticket, cf: Cf, value: Cached) {
        let mut s = self.lock(ticket.shard);
        if s.epoch != ticket.epoch || !self.enabled.load(Ordering::Acquire) {
            return;
        }
        if s.len() >= self.per_shard {
            // Full: start the shard afresh (cheap, and correct: a miss only
            // costs a store read).
            s.maps.iter_mut().for_each(|m| m.clear());
        }
        s.maps[slot(cf)].insert(ticket.fingerprint, value);
    }

    /// Forgets `key` after a change to it is visible in the store.
    ///
    /// A suppression entry holds the RCPT path's answer for an address,
    /// which also reads the suppression of the address's erased form (see
    /// `Store::rcpt_suppression`). That key names no address, so a change to
    /// it forgets every suppression entry; the epochs move on in every
    /// shard, so a fill that raced it is dropped too.
    pub fn invalidate(&self, cf: Cf, key: &[u8]) {
        if cf == Cf::Suppression && super::keys::is_erased_suppression(key) {
            self.forget(Some(slot(cf)));
            return;
        }
        let (shard, fingerprint) = self.locate(cf, key);
        let mut s = self.lock(shard);
        s.epoch += 1;
        s.maps[slot(cf)].remove(&fingerprint);
    }

    /// Forgets everything (a change whose keys are unknown).
    pub fn clear(&self) {
        self.forget(None);
    }

    /// Empties one slot's maps (or all) in every shard; every shard's epoch
    /// moves on, so that no fill under way puts an old value back.
    fn forget(&self, only: Option<usize>) {
        for i in 0..SHARDS {
            let mut s = self.lock(i);
            s.epoch += 1;
            match only {
                Some(slot) => s.maps[slot].clear(),
                None => s.maps.iter_mut().for_each(|m| m.clear()),
            }
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
        Cached::Shared(Arc::new(s.to_string()))
    }

    fn text(c: Option<Cached>) -> Option<Option<String>> {
        c.map(|v| match v {
            Cached::Shared(a) => Some(a.downcast_ref::<String>().cloned().unwrap_or_default()),
            Cached::Word(n) => Some(n.to_string()),
            Cached::Absent => None,
        })
    }

    #[test]
    fn an_erased_address_change_forgets_every_suppression_answer() {
        let c = KeyCache::new(100, true);
        for key in [&b"t\0a@x.test"[..], b"t\0b@y.test", b"u\0a@x.test"] {
            let ticket = c.get(Cf::Suppression, key).expect_err("miss");
            c.fill(ticket, Cf::Suppression, Cached::Absent);
        }
        let ticket = c.get(Cf::Contacts, b"t\0l\0a@x.test").expect_err("miss");
        c.fill(ticket, Cf::Contacts, v("c"));
        // A look-up under way while an address is erased...
        let racing = c.get(Cf::Suppression, b"t\0c@z.test").expect_err("miss");
        c.invalidate(Cf::Suppression, b"t\0sha256:00ff");
        c.fill(racing, Cf::Suppression, Cached::Absent);
        for key in [
            &b"t\0a@x.test"[..],
            b"t\0b@y.test",
            b"u\0a@x.test",
            b"t\0c@z.test",
        ] {
            assert!(c.get(Cf::Suppression, key).is_err(), "{key:?} still cached");
        }
        // Contacts are not suppression answers.
        assert!(c.get(Cf::Contacts, b"t\0l\0a@x.test").is_ok());
    }

    #[test]
    fn a_fill_that_raced_a_change_is_dropped() {
        let c = KeyCache::new(100, true);
        // A look-up misses and reads the old value from the store...
        let ticket = c.get(Cf::Suppression, b"k").expect_err("miss");
        // ...meanwhile the address is suppressed and the key invalidated...
        c.invalidate(Cf::Suppression, b"k");
        // ...so the old "not suppressed" must not be kept.
        c.fill(ticket, Cf::Suppression, Cached::Absent);
        assert!(c.get(Cf::Suppression, b"k").is_err());
        // Without a race the fill is kept, absence included.
        let ticket = c.get(Cf::Suppression, b"k").expect_err("miss");
        c.fill(ticket, Cf::Suppression, Cached::Absent);
        assert_eq!(text(c.get(Cf::Suppression, b"k").ok()), Some(None));
        let ticket = c.get(Cf::Contacts, b"k").expect_err("miss");
        c.fill(ticket, Cf::Contacts, v("x"));
        assert_eq!(text(c.get(Cf::Contacts, b"k").ok()), Some(Some("x".into())));
        assert_eq!(text(c.get(Cf::Suppression, b"k").ok()), Some(None));
    }

    #[test]
    fn a_disabled_cache_serves_nothing_and_keeps_nothing() {
        let c = KeyCache::new(100, true);
        let ticket = c.get(Cf::Contacts, b"k").expect_err("miss");
        c.fill(ticket, Cf::Contacts, v("old"));
        c.set_enabled(false);
        assert!(c.get(Cf::Contacts, b"k").is_err());
        let ticket = c.get(Cf::Contacts, b"k").expect_err("miss");
        c.fill(ticket, Cf::Contacts, v("x"));
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
                c.fill(t, Cf::Contacts, Cached::Absent);
            }
        }
        let total: usize = (0..SHARDS).map(|i| c.lock(i).len()).sum();
        assert!(total <= SHARDS * 2, "{total}");
    }
}
