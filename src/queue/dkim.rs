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

/// A new DKIM key: its private key as PKCS#8 PEM and the value of the DNS
/// TXT record that publishes its public key (RFC 6376 §3.6.1).
pub struct NewKey {
    pub pem: String,
    pub record: String,
}

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("unknown algorithm {0:?} (rsa-sha256 or ed25519-sha256)")]
    Algorithm(String),
    #[error("RSA keys of {0} bits are refused: 2048 to 4096 (ring, which signs, takes no smaller key; RFC 8301 asks for 2048)")]
    Bits(usize),
    #[error("cannot make the key: {0}")]
    Crypto(String),
}

/// Makes a key for `algorithm` (`rsa-sha256` with `bits`, or
/// `ed25519-sha256`, RFC 8463): ring makes Ed25519 keys (through rcgen, as
/// for the self-signed TLS certificate) but no RSA keys, which the `rsa`
/// crate makes.
pub fn generate(algorithm: &str, bits: usize) -> Result<NewKey, KeygenError> {
    let crypto = |e: String| KeygenError::Crypto(e);
    let pem = match algorithm {
        "ed25519-sha256" => rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map_err(|e| crypto(e.to_string()))?
            .serialize_pem(),
        "rsa-sha256" => {
            use rsa::pkcs8::{EncodePrivateKey, LineEnding};
            if !(2048..=4096).contains(&bits) {
                return Err(KeygenError::Bits(bits));
            }
            rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
                .map_err(|e| crypto(e.to_string()))?
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| crypto(e.to_string()))?
                .to_string()
        }
        other => return Err(KeygenError::Algorithm(other.to_string())),
    };
    // The record from the PEM just written, as `domains check` reads it.
    let record = record_of(&pem, algorithm).map_err(crypto)?;
    Ok(NewKey { pem, record })
}

/// The key record that publishes the public half of the private key in
/// `path` (PKCS#8 PEM, or PKCS#1 for RSA): what `domains check` expects
/// to find in DNS.
pub fn public_record(path: &std::path::Path, algorithm: &str) -> Result<String, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    record_of(&pem, algorithm).map_err(|e| format!("{}: {e}", path.display()))
}

/// The key record of the private key `pem`: for Ed25519 the raw 32-byte
/// public key (RFC 8463 §4.2), for RSA the SubjectPublicKeyInfo (RFC 6376
/// §3.6.1), base64.
fn record_of(pem: &str, algorithm: &str) -> Result<String, String> {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match algorithm {
        "ed25519-sha256" => {
            let key =
                rcgen::KeyPair::from_pem(pem).map_err(|e| format!("not an Ed25519 key: {e}"))?;
            Ok(format!(
                "v=DKIM1; k=ed25519; p={}",
                b64(key.public_key_raw())
            ))
        }
        _ => {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
            let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
                .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
                .map_err(|e| format!("not an RSA key: {e}"))?;
            let public = key
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| e.to_string())?;
            Ok(format!("v=DKIM1; k=rsa; p={}", b64(public.as_bytes())))
        }
    }
}

/// The record as a zone file line, `NAME IN TXT ( "..." "..." )`: split
/// into strings of at most 255 bytes (RFC 1035 §3.3.14; RFC 6376 §3.6.2.2
/// has receivers join them).
pub fn zone_line(selector: &str, domain: &str, record: &str) -> String {
    let strings: Vec<String> = record
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!(
        "{selector}._domainkey.{domain}. IN TXT ( {} )",
        strings.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_load_as_the_signer_loads_them_and_records_split_at_255() {
        for (algorithm, bits) in [("ed25519-sha256", 0), ("rsa-sha256", 2048)] {
            let key = generate(algorithm, bits).expect("a key");
            let der = rustls_pemfile::private_key(&mut key.pem.as_bytes())
                .ok()
                .flatten()
                .expect("PKCS#8 PEM");
            match algorithm {
                "ed25519-sha256" => {
                    Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_der()).expect("loads");
                }
                _ => {
                    RsaKey::<Sha256>::from_key_der(der).expect("loads");
                }
            }
            let line = zone_line("s1", "acme.example", &key.record);
            let inner = line
                .split_once("( ")
                .and_then(|(_, r)| r.strip_suffix(" )"))
                .expect("strings");
            let parts: Vec<&str> = inner.split("\" \"").collect();
            assert!(
                parts.iter().all(|p| p.trim_matches('"').len() <= 255),
                "{line}"
            );
            assert_eq!(parts.concat().replace('"', ""), key.record);
        }
        assert!(matches!(
            generate("rsa-sha256", 512),
            Err(KeygenError::Bits(512))
        ));
        assert!(generate("dsa", 0).is_err());
    }
}
