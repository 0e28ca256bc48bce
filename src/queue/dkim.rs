//! DKIM signing (RFC 6376) with mail-auth, per tenant: rsa-sha256 or
//! ed25519-sha256 (RFC 8463) keys from PEM files named in the config.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
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

enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

type Cache = HashMap<(PathBuf, String, String, String), Arc<Signer>>;

static SIGNERS: Mutex<Option<Cache>> = Mutex::new(None);

fn signer(
    path: &PathBuf,
    algorithm: &str,
    domain: &str,
    selector: &str,
) -> Result<Arc<Signer>, String> {
    let mut guard = SIGNERS.lock().unwrap_or_else(|p| p.into_inner());
    let cache = guard.get_or_insert_with(HashMap::new);
    let key = (
        path.clone(),
        algorithm.to_string(),
        domain.to_string(),
        selector.to_string(),
    );
    if let Some(s) = cache.get(&key) {
        return Ok(s.clone());
    }
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let der = rustls_pemfile::private_key(&mut pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| format!("{}: no private key in PEM", path.display()))?;
    let headers = SIGNED_HEADERS.iter().copied();
    let signer = match algorithm {
        "ed25519-sha256" => Signer::Ed25519(
            DkimSigner::from_key(
                Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_der())
                    .map_err(|e| format!("{}: {e}", path.display()))?,
            )
            .domain(domain)
            .selector(selector)
            .headers(headers),
        ),
        _ => Signer::Rsa(
            DkimSigner::from_key(
                RsaKey::<Sha256>::from_key_der(der)
                    .map_err(|e| format!("{}: {e}", path.display()))?,
            )
            .domain(domain)
            .selector(selector)
            .headers(headers),
        ),
    };
    let signer = Arc::new(signer);
    cache.insert(key, signer.clone());
    Ok(signer)
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
    let signer = match signer(&key_path, &t.dkim_algorithm, &domain, selector) {
        Ok(s) => s,
        Err(e) => {
            warn!("DKIM key for {tenant} not usable: {e}");
            return None;
        }
    };
    let chunks = [extra_headers.as_bytes(), message];
    let result = match &*signer {
        Signer::Rsa(s) => s.sign_chained(chunks.iter().copied()),
        Signer::Ed25519(s) => s.sign_chained(chunks.iter().copied()),
    };
    match result {
        Ok(sig) => Some(sig.to_header()),
        Err(e) => {
            warn!("DKIM signing for {tenant} failed: {e}");
            None
        }
    }
}
