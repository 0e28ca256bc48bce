//! Signed tokens for VERP return paths, unsubscribe and confirmation links:
//! HMAC-SHA256 over the payload with the site secret, so that nobody can make
//! a token for an address or a message we did not send to.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], purpose: &str, payload: &str) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(purpose.as_bytes());
    m.update(b"\0");
    m.update(payload.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// A short lower-case hex MAC, for tokens inside local parts (VERP), which
/// must survive case-folding and fit in 64 octets.
pub fn short_mac(secret: &[u8], purpose: &str, payload: &str) -> String {
    hex(&mac(secret, purpose, payload)[..6])
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The bytes of a hex string (either case); None unless it is all hex
/// digit pairs.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Lower-case hex SHA-256 of `text`: how API, metrics and admin tokens are
/// kept, and the key of an erased address.
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex(&Sha256::digest(text.as_bytes()))
}

/// Whether `hash` (from [`sha256_hex`]) is the stored hex hash `stored`,
/// whatever its case, compared in constant time.
pub fn hash_matches(stored: &str, hash: &str) -> bool {
    constant_time_eq(stored.to_ascii_lowercase().as_bytes(), hash.as_bytes())
}

/// A fresh random token of `n` bytes, in hex.
pub fn random_hex(n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    hex(&bytes)
}

/// `NAME.MAC`: the egress source that sent recipient `index` of `qid`,
/// signed, as the tracking header carries it after the token.
pub fn source_mark(secret: &[u8], qid: &str, index: usize, source: &str) -> String {
    let mac = short_mac(secret, "source", &format!("{qid}.{index}.{source}"));
    format!("{source}.{mac}")
}

/// The source a [`source_mark`] names, if its MAC is right for the copy.
pub fn verify_source_mark(secret: &[u8], qid: &str, index: usize, mark: &str) -> Option<String> {
    let (source, mac) = mark.rsplit_once('.')?;
    verify_short_mac(secret, "source", &format!("{qid}.{index}.{source}"), mac)
        .then(|| source.to_string())
}

pub fn verify_short_mac(secret: &[u8], purpose: &str, payload: &str, given: &str) -> bool {
    let expected = short_mac(secret, purpose, payload);
    constant_time_eq(expected.as_bytes(), given.to_ascii_lowercase().as_bytes())
}

/// A URL-safe token `payload.mac` for links (payload base64url-encoded).
pub fn sign(secret: &[u8], purpose: &str, payload: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}",
        b64.encode(payload.as_bytes()),
        b64.encode(&mac(secret, purpose, payload)[..16])
    )
}

/// The payload of a token made by [`sign`], if its MAC verifies.
pub fn verify(secret: &[u8], purpose: &str, token: &str) -> Option<String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (payload, given) = token.split_once('.')?;
    let payload = String::from_utf8(b64.decode(payload).ok()?).ok()?;
    let given = b64.decode(given).ok()?;
    let expected = mac(secret, purpose, &payload);
    constant_time_eq(&expected[..16], &given).then_some(payload)
}

/// Compares secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A short token `QID-INDEX-MAC` naming recipient `index` of queue id `qid`,
/// for `purpose` ("verp" for return paths and the tracking header,
/// "unsubscribe" for managed unsubscribe links).
pub fn recipient_token(secret: &[u8], purpose: &str, qid: &str, index: usize) -> String {
    let payload = format!("{qid}-{index}");
    format!("{payload}-{}", short_mac(secret, purpose, &payload))
}

/// Verifies a [`recipient_token`]: (queue id, index).
pub fn verify_recipient_token(
    secret: &[u8],
    purpose: &str,
    token: &str,
) -> Option<(String, usize)> {
    let mut parts = token.rsplitn(3, '-');
    let mac = parts.next()?;
    let index = parts.next()?;
    let qid = parts.next()?.to_ascii_uppercase();
    let payload = format!("{qid}-{index}");
    if !verify_short_mac(secret, purpose, &payload, mac) {
        return None;
    }
    Some((qid, index.parse().ok()?))
}

/// The VERP local part for recipient `index` of queue id `qid`: `b-QID-INDEX-MAC`.
pub fn verp_local_part(secret: &[u8], qid: &str, index: usize) -> String {
    format!("b-{}", recipient_token(secret, "verp", qid, index))
}

/// Parses and verifies a VERP token (the part after `b-`): (queue id, index).
pub fn verify_verp(secret: &[u8], token: &str) -> Option<(String, usize)> {
    verify_recipient_token(secret, "verp", token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_forgeries_do_not() {
        let t = sign(b"k", "unsubscribe", "acme\0a@b.test");
        assert_eq!(
            verify(b"k", "unsubscribe", &t).as_deref(),
            Some("acme\0a@b.test")
        );
        assert_eq!(verify(b"other", "unsubscribe", &t), None);
        assert_eq!(verify(b"k", "confirm", &t), None);
        let (p, m) = t.split_once('.').unwrap();
        let forged = format!("{}x.{m}", p);
        assert_eq!(verify(b"k", "unsubscribe", &forged), None);
    }

    #[test]
    fn verp_tokens_survive_case_folding() {
        let local = verp_local_part(b"k", "0ABC123XYZ9", 3);
        let token = local.strip_prefix("b-").unwrap();
        assert_eq!(verify_verp(b"k", token), Some(("0ABC123XYZ9".into(), 3)));
        assert_eq!(
            verify_verp(b"k", &token.to_lowercase()),
            Some(("0ABC123XYZ9".into(), 3))
        );
        assert_eq!(verify_verp(b"k", &token.replace("-3-", "-4-")), None);
        assert!(local.len() <= 64);
    }
}
