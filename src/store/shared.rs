//! The state several nodes of a fleet must share, behind one trait: contacts
//! (consent, evidence, bounce counters), suppression, tenant state, tracking
//! records (so that feedback reaching any node finds the message), the marks
//! that count each bounce or complaint once, abuse cases and the token secret.
//!
//! The event log (the audit trail and the webhooks' outbox) and the webhook
//! cursors are shared too: one node at a time, the holder of the webhook
//! lock, posts every node's events.
//!
//! Two implementations: [`RocksShared`], the spool's own RocksDB (the default,
//! one node), and `postgres::PgShared` for a fleet. The queue, the messages,
//! the schedule and inbound feedback waiting to be processed stay in each
//! node's spool, as every MTA keeps its own queue.
//!
//! Both implementations keep the same bytes under the same keys, so every
//! typed method of [`super::Store`] works unchanged on either.

use std::sync::{Arc, Mutex, MutexGuard};

use rocksdb::{IteratorMode, WriteBatch, DB};

use super::{
    cf_handle, keys, scan_db, write_unsynced, Cf, CommitterHandle, Op, Record, StoreError,
};

/// What a read-modify-write returns: the writes to make, in one transaction.
pub type Change<'a> = &'a mut dyn FnMut(Option<Vec<u8>>) -> Vec<Op>;

pub trait SharedBackend: Send + Sync {
    /// "rocksdb" or "postgres", for logs and health.
    fn name(&self) -> &'static str;

    /// Whether this is the spool's own database: then a batch that mixes
    /// spool and shared writes is written as one, atomically.
    fn is_spool(&self) -> bool;

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// At most `limit` records of `cf` from `start` on (inclusive) whose keys
    /// begin with `prefix`, in key (byte) order.
    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Record>, StoreError>;

    /// How many keys of `cf` begin with `prefix`.
    fn count(&self, cf: Cf, prefix: &[u8]) -> Result<u64, StoreError>;

    /// Applies `ops` (all on shared keys) atomically and durably.
    fn write(&self, ops: Vec<Op>) -> Result<(), StoreError>;

    /// Reads `key` and writes what `change` makes of it, atomically against
    /// every other update of the same key on every node.
    fn update(&self, cf: Cf, key: &[u8], change: Change<'_>) -> Result<(), StoreError>;

    /// Deletes the first `limit` records of `cf` whose keys lie in
    /// `[from, to)`; returns how many it deleted (fewer than `limit`: the
    /// range is empty now). Not synced: a delete lost in a crash is made
    /// again by the next pruning pass.
    fn delete_range(&self, cf: Cf, from: &[u8], to: &[u8], limit: usize)
        -> Result<u64, StoreError>;

    /// Gives the space of pruned ranges (each `[from, to)`) back: to the
    /// file system, or to the rows written next.
    fn reclaim(&self, cf: Cf, ranges: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError>;

    /// The last `limit` records of `cf`, newest first.
    fn scan_back(&self, cf: Cf, limit: usize) -> Result<Vec<Record>, StoreError>;

    /// Takes the fleet-wide lock `id`; it is held until the guard drops.
    fn lock(&self, id: i64) -> Result<Box<dyn Send>, StoreError>;

    /// Takes the fleet-wide lock `id` if no one holds it (None otherwise).
    fn try_lock(&self, id: i64) -> Result<Option<Box<dyn HeldLock>>, StoreError>;

    /// Whether the backend answers.
    fn healthy(&self) -> Result<(), StoreError>;
}

/// A lock held with [`SharedBackend::try_lock`].
pub trait HeldLock: Send {
    /// Whether it is still held (a PostgreSQL session lock goes with its
    /// connection).
    fn alive(&self) -> bool;
}

/// The lock of a process that is the only writer anyway.
struct Always;

impl HeldLock for Always {
    fn alive(&self) -> bool {
        true
    }
}

/// Whether a record of `cf` under `key` is shared state (see the module
/// documentation) rather than this node's spool.
pub fn is_shared(cf: Cf, key: &[u8]) -> bool {
    match cf {
        Cf::Contacts | Cf::Suppression | Cf::Tenants | Cf::Tracking | Cf::Events => true,
        Cf::Meta => {
            key == keys::SECRET
                || key.starts_with(b"seen\0")
                || key.starts_with(b"abuse\0")
                || key.starts_with(b"webhook\0")
                || key.starts_with(keys::WARMUP_PREFIX)
                || key.starts_with(keys::CONSENT_TEXT_PREFIX)
        }
        Cf::Messages | Cf::Queue | Cf::Schedule | Cf::Inbound => false,
    }
}

/// The shared state in the spool itself (one node).
pub struct RocksShared {
    pub(super) db: Arc<DB>,
    pub(super) committer: Arc<CommitterHandle>,
}

/// One process writes the spool, so a process-wide lock makes updates atomic.
static UPDATE_LOCK: Mutex<()> = Mutex::new(());

fn hold(m: &'static Mutex<()>) -> MutexGuard<'static, ()> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RocksShared {
    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        cf_handle(&self.db, cf)
    }
}

impl SharedBackend for RocksShared {
    fn name(&self) -> &'static str {
        "rocksdb"
    }

    fn is_spool(&self) -> bool {
        true
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        scan_db(&self.db, cf, start, prefix, limit)
    }

    fn count(&self, cf: Cf, prefix: &[u8]) -> Result<u64, StoreError> {
        let mut iter = self.db.raw_iterator_cf(self.cf(cf));
        iter.seek(prefix);
        let mut n = 0;
        while iter.valid() {
            match iter.key() {
                Some(k) if k.starts_with(prefix) => n += 1,
                _ => break,
            }
            iter.next();
        }
        iter.status()?;
        Ok(n)
    }

    fn write(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.committer.commit_blocking(ops)
    }

    fn update(&self, cf: Cf, key: &[u8], change: Change<'_>) -> Result<(), StoreError> {
        let _guard = hold(&UPDATE_LOCK);
        let current = self.get(cf, key)?;
        // Not synced: updates are counters and state that the next synced
        // write covers (see `tenant::record`).
        write_unsynced(&self.db, &self.committer, change(current))
    }

    fn delete_range(
        &self,
        cf: Cf,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<u64, StoreError> {
        // Counted first, so that a step deletes a bounded
        // number and says how many: one range tombstone then takes them all,
        // whatever their number, instead of one tombstone per key.
        let mut iter = self.db.raw_iterator_cf(self.cf(cf));
        iter.seek(from);
        let mut n = 0u64;
        let mut last = None;
        while iter.valid() && (n as usize) < limit {
            match iter.key() {
                Some(k) if k < to => {
                    n += 1;
                    last = Some(k.to_vec());
                }
                _ => break,
            }
            iter.next();
        }
        iter.status()?;
        let end = match last {
            None => return Ok(0),
            Some(mut last) if n as usize == limit => {
                last.push(0);
                last
            }
            Some(_) => to.to_vec(),
        };
        let mut wb = WriteBatch::default();
        wb.delete_range_cf(self.cf(cf), from, &end);
        self.db.write(wb).inspect_err(|_| {
            self.committer
                .failed
                .store(true, std::sync::atomic::Ordering::Relaxed)
        })?;
        Ok(n)
    }

    fn reclaim(&self, cf: Cf, ranges: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        // The range tombstones hide the records at once; compaction drops
        // them and their files, which is what gives the disk space back.
        for (from, to) in ranges {
            self.db.compact_range_cf(self.cf(cf), Some(from), Some(to));
        }
        Ok(())
    }

    fn scan_back(&self, cf: Cf, limit: usize) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(cf), IteratorMode::End)
            .take(limit)
        {
            let (k, v) = item?;
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    fn try_lock(&self, _id: i64) -> Result<Option<Box<dyn HeldLock>>, StoreError> {
        Ok(Some(Box::new(Always)))
    }

    fn lock(&self, _id: i64) -> Result<Box<dyn Send>, StoreError> {
        // The caller holds a process-wide lock already; one process writes
        // the spool, so there is nothing more to hold.
        Ok(Box::new(()))
    }

    fn healthy(&self) -> Result<(), StoreError> {
        self.db.get_cf(self.cf(Cf::Meta), keys::SCHEMA_VERSION)?;
        Ok(())
    }
}
