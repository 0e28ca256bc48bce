//! Slows down and then locks out a client IP after failed AUTH attempts, and
//! remembers passwords that verified (argon2 is slow on purpose).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed AUTH attempts per client IP: each failure slows the next answer,
/// and `max_failures` lock the IP out for `lockout`.
pub struct AuthThrottle {
    max_failures: u32,
    lockout: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    pub verified: VerifiedCache,
}

impl AuthThrottle {
    pub fn new(max_failures: u32, lockout_secs: u64) -> Self {
        AuthThrottle {
            max_failures,
            lockout: Duration::from_secs(lockout_secs),
            failures: Mutex::new(HashMap::new()),
            verified: VerifiedCache::default(),
        }
    }

    /// Whether `ip` is locked out now.
    pub fn locked(&self, ip: IpAddr) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&ip) {
            Some((n, last)) if *n >= self.max_failures => {
                if last.elapsed() < self.lockout {
                    true
                } else {
                    map.remove(&ip);
                    false
                }
            }
            _ => false,
        }
    }

    /// Records a failure; returns how long to wait before answering.
    pub fn fail(&self, ip: IpAddr) -> Duration {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() > self.lockout {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = Instant::now();
        Duration::from_millis(200 * u64::from(entry.0.min(10)))
    }

    pub fn succeed(&self, ip: IpAddr) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&ip);
        }
    }
}

/// Digests of (hash, password) pairs that verified.
#[derive(Default)]
pub struct VerifiedCache {
    entries: Mutex<HashMap<String, [u8; 32]>>,
}

impl VerifiedCache {
    pub fn contains(&self, tenant: &str, digest: &[u8; 32]) -> bool {
        self.entries
            .lock()
            .map(|m| m.get(tenant) == Some(digest))
            .unwrap_or(false)
    }

    pub fn insert(&self, tenant: &str, digest: [u8; 32]) {
        if let Ok(mut m) = self.entries.lock() {
            m.insert(tenant.to_string(), digest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_locks_out_after_the_limit() {
        let t = AuthThrottle::new(3, 60);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(!t.locked(ip));
        t.fail(ip);
        t.fail(ip);
        assert!(!t.locked(ip));
        t.fail(ip);
        assert!(t.locked(ip));
        assert!(!t.locked("192.0.2.2".parse().unwrap()));
    }
}
