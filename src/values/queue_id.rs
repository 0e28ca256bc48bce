//! Queue ids: short, unique on this node, and sortable by time.
//!
//! Eleven characters of an ASCII-ordered base-32 alphabet encode the
//! microseconds since the Unix epoch (55 bits), kept strictly increasing within
//! the process, so that `ls`-order is arrival order, like Postfix's long queue ids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Crockford's base 32: digits and upper-case letters, so that ids survive
/// case-folding in VERP addresses, and ASCII order is numeric order.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const LEN: usize = 11;

static LAST: AtomicU64 = AtomicU64::new(0);

/// A new queue id, strictly greater than every id made before in this process.
pub fn new_queue_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    let value = loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(p) => prev = p,
        }
    };
    encode(value)
}

fn encode(mut value: u64) -> String {
    let mut out = [b'0'; LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    out.iter().map(|&b| b as char).collect()
}

/// The queue id of the microsecond `micros` since the epoch (a simulated
/// clock's ids, for the retention benchmark).
pub fn at_micros(micros: u64) -> String {
    encode(micros)
}

/// The smallest queue id made at `unix_secs` or later: every id made
/// before that second sorts before it (pruning deletes up to it).
pub fn first_at(unix_secs: u64) -> String {
    encode(unix_secs.saturating_mul(1_000_000))
}

/// The Unix second a queue id was made in.
pub fn made_at(id: &str) -> Option<u64> {
    if !is_queue_id(id) {
        return None;
    }
    let mut value: u64 = 0;
    for b in id.bytes() {
        let digit = ALPHABET.iter().position(|&a| a == b)? as u64;
        value = (value << 5) | digit;
    }
    Some(value / 1_000_000)
}

/// Whether `s` looks like a queue id (used to validate CLI and API input).
pub fn is_queue_id(s: &str) -> bool {
    s.len() == LEN && s.bytes().all(|b| ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_sort_by_time() {
        let ids: Vec<String> = (0..10_000).map(|_| new_queue_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids);
        assert!(ids.iter().all(|id| is_queue_id(id)));
    }

    #[test]
    fn an_id_tells_its_second_and_the_first_id_of_a_second_sorts_before_it() {
        let id = new_queue_id();
        let t = made_at(&id).unwrap();
        assert!(t.abs_diff(crate::values::now()) <= 1);
        assert!(first_at(t).as_str() <= id.as_str());
        assert!(first_at(t + 1).as_str() > id.as_str());
        assert_eq!(made_at(&first_at(1_700_000_000)), Some(1_700_000_000));
        assert_eq!(made_at("not an id"), None);
    }
}
