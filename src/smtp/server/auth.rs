//! SMTP AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN against the tenants'
//! argon2 hashes, with a per-IP failure throttle against brute force.

use std::sync::LazyLock;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::runtime::VerifiedCache;

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
}
