//! Key layouts of the column families. Keys sort so that scans are prefix
//! scans: big-endian numbers first, NUL between text parts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub const SCHEMA_VERSION: &[u8] = b"schema_version";
pub const SECRET: &[u8] = b"token_secret";

/// `schedule`: next-attempt time (unix seconds, BE) then queue id.
pub fn schedule(when: u64, id: &str) -> Vec<u8> {
    let mut k = when.to_be_bytes().to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

pub fn parse_schedule(key: &[u8]) -> Option<(u64, String)> {
    let (when, id) = key.split_at_checked(8)?;
    let when = u64::from_be_bytes(when.try_into().ok()?);
    Some((when, String::from_utf8(id.to_vec()).ok()?))
}

pub fn tenant_prefix(tenant: &str) -> Vec<u8> {
    under_tenant(tenant, 0)
}

/// The tenant prefix, with room for `more` bytes after it: the keys made on
/// every RCPT are sized at once (growing the prefix reallocated twice).
fn under_tenant(tenant: &str, more: usize) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.len() + 1 + more);
    k.extend_from_slice(tenant.as_bytes());
    k.push(0);
    k
}

/// `contacts`: tenant NUL list NUL address.
pub fn contact(tenant: &str, list: &str, address: &str) -> Vec<u8> {
    let mut k = under_tenant(tenant, list.len() + 1 + address.len());
    k.extend_from_slice(list.as_bytes());
    k.push(0);
    k.extend_from_slice(address.as_bytes());
    k
}

/// Splits the part after the tenant prefix into (list, address).
pub fn parse_contact(rest: &[u8]) -> Option<(String, String)> {
    let pos = rest.iter().position(|&b| b == 0)?;
    Some((
        String::from_utf8(rest[..pos].to_vec()).ok()?,
        String::from_utf8(rest[pos + 1..].to_vec()).ok()?,
    ))
}

/// `meta`: an abuse desk case by its inbound id.
pub fn abuse(id: &str) -> Vec<u8> {
    let mut k = b"abuse\0".to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// `meta`: where the warm-up records begin (see [`warmup`]).
pub const WARMUP_PREFIX: &[u8] = b"warmup\0";

/// This node's path suspensions (`crate::shaping::SavedHold`), one record:
/// they are about this node's addresses, so they stay in its spool.
pub const SHAPING_HOLDS: &[u8] = b"shaping_holds";

/// `meta`: the warm-up record of a subject, `source\0NAME` or
/// `domain\0TENANT\0DOMAIN`.
pub fn warmup(subject: &str) -> Vec<u8> {
    let mut k = WARMUP_PREFIX.to_vec();
    k.extend_from_slice(subject.as_bytes());
    k
}

/// `meta`: where the feedback marks begin (then the kind and a NUL).
pub const SEEN_PREFIX: &[u8] = b"seen\0";

/// `meta`: marks a bounce or complaint (`kind`) about recipient `index` of
/// queue id `qid` as counted, so that a repeated report counts nothing.
pub fn feedback_seen(kind: &str, qid: &str, index: usize) -> Vec<u8> {
    format!("seen\0{kind}\0{qid}\0{index}").into_bytes()
}

/// `meta`: where the consent wordings begin (see [`consent_text`]).
pub const CONSENT_TEXT_PREFIX: &[u8] = b"consent_text\0";

/// `meta`: a consent wording a sign-up agreed to, by tenant, list and the
/// SHA-256 of its text; `hash` empty gives the prefix of the list's wordings.
pub fn consent_text(tenant: &str, list: &str, hash: &str) -> Vec<u8> {
    let mut k = CONSENT_TEXT_PREFIX.to_vec();
    for part in [tenant, list] {
        k.extend_from_slice(part.as_bytes());
        k.push(0);
    }
    k.extend_from_slice(hash.as_bytes());
    k
}

/// `meta`: a tenant's webhook delivery state.
pub fn webhook(tenant: &str) -> Vec<u8> {
    let mut k = b"webhook\0".to_vec();
    k.extend_from_slice(tenant.as_bytes());
    k
}

/// A key as an opaque, URL-safe paging cursor.
pub fn encode_cursor(key: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

pub fn decode_cursor(cursor: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
}

/// How the address of an erased contact's suppression starts (then the
/// SHA-256 of the address in hex), so that the suppression outlives the
/// address (see `consent::ops::erased_key`).
pub const ERASED_PREFIX: &str = "sha256:";

/// Whether a `suppression` key is that of an erased address.
pub fn is_erased_suppression(key: &[u8]) -> bool {
    key.iter()
        .position(|&b| b == 0)
        .is_some_and(|nul| key[nul + 1..].starts_with(ERASED_PREFIX.as_bytes()))
}

/// `suppression`: tenant NUL address.
pub fn suppression(tenant: &str, address: &str) -> Vec<u8> {
    let mut k = under_tenant(tenant, address.len());
    k.extend_from_slice(address.as_bytes());
    k
}

static EVENT_SEQ: AtomicU64 = AtomicU64::new(0);

/// Tells this process's events from those of the other nodes of a fleet
/// made in the same microsecond with the same sequence number.
static EVENT_NODE: std::sync::LazyLock<[u8; 4]> = std::sync::LazyLock::new(rand::random);

/// `events`: unix microseconds, a per-process random tag and a
/// per-process sequence, all BE, so that keys sort by time and no two
/// nodes make the same key.
pub fn event() -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut k = now.to_be_bytes().to_vec();
    k.extend_from_slice(&*EVENT_NODE);
    k.extend_from_slice(&EVENT_SEQ.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    k
}

/// The first `events` key of the second `unix_secs`.
pub fn event_at(unix_secs: u64) -> Vec<u8> {
    unix_secs.saturating_mul(1_000_000).to_be_bytes().to_vec()
}

/// The Unix second an `events` key was made in.
pub fn event_time(key: &[u8]) -> Option<u64> {
    let micros: [u8; 8] = key.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(micros) / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_and_suppression_keys_sit_under_their_tenant_prefix() {
        let k = contact("acme", "news", "jo@example.test");
        assert_eq!(k, b"acme\0news\0jo@example.test".to_vec());
        assert_eq!(k.len(), k.capacity());
        assert!(k.starts_with(&tenant_prefix("acme")));
        assert_eq!(
            parse_contact(&k[5..]),
            Some(("news".into(), "jo@example.test".into()))
        );
        let s = suppression("acme", "jo@example.test");
        assert_eq!(s, b"acme\0jo@example.test".to_vec());
        assert!(s.starts_with(&tenant_prefix("acme")));
    }
}
