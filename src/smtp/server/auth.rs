//! SMTP AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN against the tenants'
//! argon2 hashes, with a per-IP failure throttle against brute force.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::config::Config;

/// Decodes a base64 SASL response; None if it is not base64.
pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

/// Splits a PLAIN response `authzid NUL authcid NUL password`.
pub fn parse_plain(decoded: &[u8]) -> Option<(String, String)> {
    let mut parts = decoded.split(|&b| b == 0);
    let _authzid = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let pass = std::str::from_utf8(parts.next()?).ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((user.to_string(), pass.to_string()))
}

/// Checks `password` for `tenant`; the argon2 work runs on the blocking pool.
/// Successful checks are remembered by digest, so that a CRM that opens a
/// connection per message does not pay for argon2 each time.
pub async fn verify(config: &Config, cache: &VerifiedCache, tenant: &str, password: &str) -> bool {
    let Some(hash) = config
        .tenant(tenant)
        .and_then(|t| t.smtp_password_hash.clone())
    else {
        return false;
    };
    let digest: [u8; 32] = Sha256::new()
        .chain_update(hash.as_bytes())
        .chain_update([0])
        .chain_update(password.as_bytes())
        .finalize()
        .into();
    if cache.contains(tenant, &digest) {
        return true;
    }
    // argon2 takes 19 MiB and tens of milliseconds of a core per check (that
    // is its point): without a bound, twenty CRM sessions logging in at once,
    // or a flood of bad AUTHs, cost hundreds of MiB. One check per core at a
    // time; a session that waited finds the others' successes in the cache.
    let Ok(_slot) = ARGON2_SLOTS.acquire().await else {
        return false;
    };
    if cache.contains(tenant, &digest) {
        return true;
    }
    let password = password.to_string();
    let ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    if ok {
        cache.insert(tenant, digest);
    }
    ok
}

static ARGON2_SLOTS: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

/// Digests of (hash, password) pairs that verified.
#[derive(Default)]
pub struct VerifiedCache {
    entries: Mutex<HashMap<String, [u8; 32]>>,
}

impl VerifiedCache {
    fn contains(&self, tenant: &str, digest: &[u8; 32]) -> bool {
        self.entries
            .lock()
            .map(|m| m.get(tenant) == Some(digest))
            .unwrap_or(false)
    }

    fn insert(&self, tenant: &str, digest: [u8; 32]) {
        if let Ok(mut m) = self.entries.lock() {
            m.insert(tenant.to_string(), digest);
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_responses_are_split() {
        assert_eq!(
            parse_plain(b"\0acme\0secret"),
            Some(("acme".into(), "secret".into()))
        );
        assert_eq!(parse_plain(b"acme"), None);
    }

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
