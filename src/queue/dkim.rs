//! DKIM signing (RFC 6376) with mail-auth, per tenant: rsa-sha256 or
//! ed25519-sha256 (RFC 8463) keys from PEM files named in the config.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use tracing::warn;

use crate::config::Config;

/// The fields signed: RFC 8058 §4 requires List-Unsubscribe and
/// List-Unsubscribe-Post to be covered; Feedback-ID lets providers trust it.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
    "MIME-Version",
    "Content-Type",
];

enum Key {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

static KEYS: Mutex<Option<HashMap<PathBuf, Arc<Key>>>> = Mutex::new(None);

fn load(path: &PathBuf, algorithm: &str) -> Result<Arc<Key>, String> {
    let mut guard = KEYS.lock().unwrap_or_else(|p| p.into_inner());
    let cache = guard.get_or_insert_with(HashMap::new);
    if let Some(k) = cache.get(path) {
        return Ok(k.clone());
    }
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key = match algorithm {
        "ed25519-sha256" => {
            let der = rustls_pemfile::private_key(&mut pem.as_bytes())
                .ok()
                .flatten()
                .ok_or_else(|| format!("{}: no PKCS#8 key", path.display()))?;
            Key::Ed25519(
                Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_der())
                    .map_err(|e| format!("{}: {e}", path.display()))?,
            )
        }
        _ => Key::Rsa(
            RsaKey::<Sha256>::from_pkcs8_pem(&pem)
                .or_else(|_| RsaKey::<Sha256>::from_rsa_pem(&pem))
                .map_err(|e| format!("{}: {e}", path.display()))?,
        ),
    };
    let key = Arc::new(key);
    cache.insert(path.clone(), key.clone());
    Ok(key)
}

/// The DKIM-Signature header (with CRLF) for `extra_headers` + `message`, or
/// None when the tenant has no key (or signing failed, which is logged).
pub fn sign(config: &Config, tenant: &str, extra_headers: &str, message: &[u8]) -> Option<String> {
    let t = config.tenant(tenant)?;
    let key_path = config.resolve(t.dkim_key.as_ref()?);
    let selector = t.dkim_selector.as_deref()?;
    let domain = t
        .dkim_domain
        .clone()
        .or_else(|| t.sender_domains.first().cloned())?;
    let key = match load(&key_path, &t.dkim_algorithm) {
        Ok(k) => k,
        Err(e) => {
            warn!("DKIM key for {tenant} not usable: {e}");
            return None;
        }
    };
    let chunks = [extra_headers.as_bytes(), message];
    let result = match &*key {
        Key::Rsa(k) => DkimSigner::from_key(k.clone())
            .domain(domain)
            .selector(selector)
            .headers(SIGNED_HEADERS.iter().copied())
            .sign_chained(chunks.iter().copied()),
        Key::Ed25519(k) => DkimSigner::from_key(k.clone())
            .domain(domain)
            .selector(selector)
            .headers(SIGNED_HEADERS.iter().copied())
            .sign_chained(chunks.iter().copied()),
    };
    match result {
        Ok(sig) => Some(sig.to_header()),
        Err(e) => {
            warn!("DKIM signing for {tenant} failed: {e}");
            None
        }
    }
}
