//! The records that every message or report leaves behind, by kind, and
//! the two things retention does with them: delete those made before a
//! time, in bounded steps, and tell how many there are.
//!
//! Each kind's keys sort by the time the record was made (queue ids and
//! event keys begin with it), so "made before T" is one key range per
//! kind, and deleting it is a range delete, not a scan of every record.

use serde::Serialize;

use super::{keys, Cf, Op, Record, Store, StoreError};
use crate::values::queue_id;

/// A kind of record with a retention period (`[retention]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kept {
    /// Queue id → tenant, list, recipients: attributes late feedback.
    Tracking,
    /// "This bounce or complaint was counted": makes a repeated report count
    /// nothing.
    FeedbackMarks,
    /// The event log: audit trail and the webhooks' outbox.
    Events,
    /// Complaints, abuse forwards and unparsable reports, as received.
    AbuseCases,
}

impl Kept {
    pub const ALL: [Kept; 4] = [
        Kept::Tracking,
        Kept::FeedbackMarks,
        Kept::Events,
        Kept::AbuseCases,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kept::Tracking => "tracking",
            Kept::FeedbackMarks => "feedback_marks",
            Kept::Events => "events",
            Kept::AbuseCases => "abuse_cases",
        }
    }

    fn cf(self) -> Cf {
        match self {
            Kept::Tracking => Cf::Tracking,
            Kept::Events => Cf::Events,
            Kept::FeedbackMarks | Kept::AbuseCases => Cf::Meta,
        }
    }

    /// The time part of a key made at `unix_secs`: the first key of that
    /// second, after the kind's prefix.
    pub fn time_key(self, unix_secs: u64) -> Vec<u8> {
        match self {
            Kept::Events => keys::event_at(unix_secs),
            _ => queue_id::first_at(unix_secs).into_bytes(),
        }
    }

    /// When the record under `rest` (the key after its prefix) was made.
    fn made_at(self, rest: &[u8]) -> Option<u64> {
        match self {
            Kept::Events => keys::event_time(rest),
            _ => rest
                .get(..11)
                .and_then(|id| std::str::from_utf8(id).ok())
                .and_then(queue_id::made_at),
        }
    }
}

/// How many records of a kind there are, their bytes (keys and values as
/// stored, before compression) and when the oldest was made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KindStats {
    pub records: u64,
    pub bytes: u64,
    pub oldest: Option<u64>,
}

impl Store {
    /// The key prefixes a kind lives under: one, except the feedback marks,
    /// which have one per feedback kind ("seen NUL bounce NUL", "seen NUL
    /// complaint NUL", ...), found in the store rather than listed here so
    /// that a kind added later is pruned too.
    fn prefixes(&self, kind: Kept) -> Result<Vec<Vec<u8>>, StoreError> {
        match kind {
            Kept::Tracking | Kept::Events => Ok(vec![Vec::new()]),
            Kept::AbuseCases => Ok(vec![keys::abuse("")]),
            Kept::FeedbackMarks => {
                let base = keys::SEEN_PREFIX;
                let mut out = Vec::new();
                let mut start = base.to_vec();
                while let Some((k, _)) = self
                    .shared
                    .scan(Cf::Meta, &start, base, 1)?
                    .into_iter()
                    .next()
                {
                    let rest = &k[base.len()..];
                    let Some(nul) = rest.iter().position(|&b| b == 0) else {
                        break;
                    };
                    let mut prefix = k[..base.len() + nul + 1].to_vec();
                    out.push(prefix.clone());
                    // The next feedback kind: past every key of this one.
                    if let Some(last) = prefix.last_mut() {
                        *last = 1;
                    }
                    start = prefix;
                }
                Ok(out)
            }
        }
    }

    /// Deletes at most `limit` records of `kind` whose keys (after the
    /// kind's prefix) sort before `until`, such as `kind.time_key(T)` for
    /// those made before T; returns how many. Fewer than `limit`: none is
    /// left.
    pub fn prune_step(&self, kind: Kept, until: &[u8], limit: usize) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for prefix in self.prefixes(kind)? {
            if deleted as usize >= limit {
                break;
            }
            let mut to = prefix.clone();
            to.extend_from_slice(until);
            deleted +=
                self.shared
                    .delete_range(kind.cf(), &prefix, &to, limit - deleted as usize)?;
        }
        Ok(deleted)
    }

    /// Gives the space of `kind`'s records before `until` back to the file
    /// system, once they are deleted.
    pub fn reclaim(&self, kind: Kept, until: &[u8]) -> Result<(), StoreError> {
        let mut ranges = Vec::new();
        for prefix in self.prefixes(kind)? {
            let mut to = prefix.clone();
            to.extend_from_slice(until);
            ranges.push((prefix, to));
        }
        self.shared.reclaim(kind.cf(), &ranges)?;
        Ok(())
    }

    /// Calls `each` with `kind`'s records in key order, a page of `page`
    /// at a time, from the key `from` on (after the kind's prefix,
    /// inclusive), until `each` returns false or the records end.
    pub fn scan_kept(
        &self,
        kind: Kept,
        from: &[u8],
        page: usize,
        each: &mut dyn FnMut(&[Record]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        for prefix in self.prefixes(kind)? {
            let mut start = prefix.clone();
            start.extend_from_slice(from);
            loop {
                let records = self.shared.scan(kind.cf(), &start, &prefix, page)?;
                if !each(&records)? {
                    return Ok(());
                }
                match records.last() {
                    Some((k, _)) if records.len() == page => {
                        start = k.clone();
                        start.push(0);
                    }
                    _ => break,
                }
            }
        }
        Ok(())
    }

    /// Counts `kind`'s records and bytes: a scan of all of them, in pages
    /// (for `postwarden spool stats`, not for every metrics scrape).
    pub fn kind_stats(&self, kind: Kept) -> Result<KindStats, StoreError> {
        let mut stats = KindStats::default();
        let prefixes = self.prefixes(kind)?;
        self.scan_kept(kind, b"", 5_000, &mut |records| {
            for (k, v) in records {
                stats.records += 1;
                stats.bytes += (k.len() + v.len()) as u64;
            }
            // Keys sort by time within a prefix: the least made-at of the
            // pages' first records is the oldest.
            if let Some((k, _)) = records.first() {
                let rest = prefixes
                    .iter()
                    .find(|p| k.starts_with(p))
                    .map_or(&k[..], |p| &k[p.len()..]);
                if let Some(t) = kind.made_at(rest) {
                    stats.oldest = Some(stats.oldest.map_or(t, |o| o.min(t)));
                }
            }
            Ok(true)
        })?;
        Ok(stats)
    }
}

impl Store {
    /// Rewrites every record of `kind` for which `change` returns a new
    /// value, page by page; returns how many it rewrote. For erasure, which
    /// must find an address in whatever is not yet pruned.
    pub fn rewrite_kept(
        &self,
        kind: Kept,
        change: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<u64, StoreError> {
        let mut rewritten = 0;
        self.scan_kept(kind, b"", 2_000, &mut |records| {
            let ops: Vec<Op> = records
                .iter()
                .filter_map(|(k, v)| Some(Op::Put(kind.cf(), k.clone(), change(v)?)))
                .collect();
            rewritten += ops.len() as u64;
            self.commit_blocking(ops)?;
            Ok(true)
        })?;
        Ok(rewritten)
    }
}
