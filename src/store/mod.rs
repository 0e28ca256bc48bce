//! The spool: the one RocksDB database under `spool_dir`.
//!
//! Nothing else in postwarden builds RocksDB keys; every other module goes
//! through the typed methods here. Writes that acknowledge mail go through the
//! group committer (`commit.rs`): concurrent sessions share one WAL sync.

mod cache;
mod commit;
mod contacts;
pub mod counts;
pub(crate) mod keys;
pub mod postgres;
pub mod queue;
mod records;
pub mod retention;
pub mod shared;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch,
    DB,
};
use serde::{de::DeserializeOwned, Serialize};

use crate::config::{StoreBackend, StoreSettings};
pub use cache::{CacheValue, Cached, KeyCache};
use shared::{is_shared, RocksShared, SharedBackend};

/// One raw key/value record of a column family.
type Record = (Vec<u8>, Vec<u8>);

/// A page of contacts, (list, address, record), and the next page's cursor.
pub type ContactPage<T> = (Vec<(String, String, T)>, Option<String>);

pub use commit::CommitStats;
pub use records::WebhookState;

/// The layout version of the spool. Bump it when keys or values change in a
/// way older code cannot read.
pub const SCHEMA_VERSION: u32 = 1;

/// The column families (DESIGN.md "Storage"), plus `inbound` (feedback
/// messages waiting to be processed), `tracking` (queue id to tenant and
/// recipients, so that bounces and complaints are attributed after the queue
/// entry is gone) and `meta` (schema version, secrets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cf {
    Messages,
    Queue,
    Schedule,
    Contacts,
    Suppression,
    Tenants,
    Events,
    Inbound,
    Tracking,
    Meta,
}

impl Cf {
    pub const ALL: [Cf; 10] = [
        Cf::Messages,
        Cf::Queue,
        Cf::Schedule,
        Cf::Contacts,
        Cf::Suppression,
        Cf::Tenants,
        Cf::Events,
        Cf::Inbound,
        Cf::Tracking,
        Cf::Meta,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Messages => "messages",
            Cf::Queue => "queue",
            Cf::Schedule => "schedule",
            Cf::Contacts => "contacts",
            Cf::Suppression => "suppression",
            Cf::Tenants => "tenants",
            Cf::Events => "events",
            Cf::Inbound => "inbound",
            Cf::Tracking => "tracking",
            Cf::Meta => "meta",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the spool {path} is in use by another process (is `postwarden serve` running?)")]
    Locked { path: PathBuf },
    #[error("the spool {path} has schema version {found}, this postwarden reads version {expected}: use the postwarden version that wrote it, or move the spool aside")]
    SchemaVersion {
        path: PathBuf,
        found: String,
        expected: u32,
    },
    #[error("spool database error: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("cannot create the spool folder {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the free space of {path}: {source}")]
    FreeSpace {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("spool write failed: {0}")]
    Write(String),
    #[error("spool record {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("the spool's commit thread has stopped")]
    CommitterGone,
    #[error("shared store (PostgreSQL): {0}")]
    Shared(String),
}

/// One write in a batch; the committer applies a whole batch atomically.
#[derive(Debug, Clone)]
pub enum Op {
    Put(Cf, Vec<u8>, Vec<u8>),
    Delete(Cf, Vec<u8>),
}

/// The spool. Clones share one database and one commit thread; the
/// database closes when the last clone is dropped.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
    committer: Arc<CommitterHandle>,
    /// Consent, suppression, tenant state and the rest that a fleet shares
    /// (see `shared.rs`): the spool itself, or PostgreSQL.
    shared: Arc<dyn SharedBackend>,
    /// Contacts and suppression as the RCPT path reads them (None: no cache,
    /// as in a read-only CLI instance, which sees no invalidations).
    cache: Option<Arc<KeyCache>>,
    /// Tenant counts not yet written (see `tenant::PendingCounts`).
    pending: Arc<counts::PendingCounts>,
    path: PathBuf,
    /// A read-only instance's own folder (RocksDB's secondary path), removed
    /// when the last clone of the store goes. Declared last, so that it goes
    /// after the database it serves.
    _secondary: Option<Arc<SecondaryDir>>,
}

/// Removes a secondary instance's folder when dropped: otherwise every CLI
/// command run beside the daemon would leave one in the temp folder.
struct SecondaryDir(PathBuf);

impl Drop for SecondaryDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// RocksDB's memory by part, in bytes (see [`Store::memory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemoryUse {
    /// Memtables: writes not yet flushed to files (at most
    /// `db_write_buffer_size` together).
    pub memtables: u64,
    /// Memtables already flushed but still held in memory, by an iterator
    /// or a snapshot reading them (not counted in `memtables`).
    pub memtables_pinned: u64,
    /// Decompressed blocks in the shared block cache.
    pub block_cache: u64,
    /// The part of the block cache in use by readers now.
    pub block_cache_pinned: u64,
    /// Index and filter blocks of the open files, outside the cache.
    pub table_readers: u64,
}

/// What [`Store::scan_schedule`] found.
#[derive(Debug, Default)]
pub struct ScheduleScan {
    pub due: Vec<(u64, String)>,
    /// Keys of the index read, tombstones aside: what the scan cost.
    pub read: usize,
    pub first: Option<Vec<u8>>,
    pub next_later: Option<u64>,
}

/// Closes the commit thread when the last store clone goes.
struct CommitterHandle(commit::Committer);

impl Drop for CommitterHandle {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl std::ops::Deref for CommitterHandle {
    type Target = commit::Committer;
    fn deref(&self) -> &commit::Committer {
        &self.0
    }
}

impl Store {
    /// The tenant counts this process has not yet written.
    pub fn pending_counts(&self) -> &counts::PendingCounts {
        &self.pending
    }

    /// Opens (or creates) the spool at `path`, checking its schema version,
    /// with the shared state in the spool too and the default cache.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, &StoreSettings::default())
    }

    /// Opens the spool at `path` and the shared state that `settings` name.
    pub fn open_with(path: &Path, settings: &StoreSettings) -> Result<Store, StoreError> {
        let db = Store::open_db(path, settings.memory_budget)?;
        let committer = Arc::new(CommitterHandle(commit::Committer::start(db.clone())));
        let spool_backend = settings.backend == StoreBackend::Rocksdb;
        let cache = (settings.cache_entries > 0)
            .then(|| Arc::new(KeyCache::new(settings.cache_entries, spool_backend)));
        let shared = Store::shared_backend(&db, &committer, settings, cache.clone())?;
        let store = Store {
            committer,
            db,
            shared,
            cache,
            pending: Arc::default(),
            path: path.to_path_buf(),
            _secondary: None,
        };
        store.check_schema()?;
        Ok(store)
    }

    fn shared_backend(
        db: &Arc<DB>,
        committer: &Arc<CommitterHandle>,
        settings: &StoreSettings,
        cache: Option<Arc<KeyCache>>,
    ) -> Result<Arc<dyn SharedBackend>, StoreError> {
        Ok(match settings.backend {
            StoreBackend::Rocksdb => Arc::new(RocksShared {
                db: db.clone(),
                committer: committer.clone(),
            }),
            StoreBackend::Postgres => Arc::new(postgres::PgShared::connect(settings, cache)?),
        })
    }

    /// Opens RocksDB with `memory_budget` bytes for its memtables (eight
    /// ninths) and its block cache (one ninth).
    fn open_db(path: &Path, memory_budget: u64) -> Result<Arc<DB>, StoreError> {
        let block_cache_bytes = usize::try_from(memory_budget / 9).unwrap_or(usize::MAX);
        let write_buffer_bytes =
            usize::try_from(memory_budget - memory_budget / 9).unwrap_or(usize::MAX);
        std::fs::create_dir_all(path).map_err(|e| StoreError::Create {
            path: path.to_path_buf(),
            source: e,
        })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_max_background_jobs(2);
        // All memtables together (each column family's may grow to 64 MiB)
        // stay within the budget's share: the messages' bytes would
        // otherwise sit in memory twice over under load.
        opts.set_db_write_buffer_size(write_buffer_bytes);
        // Open every column family on disk too, so that a spool written by a
        // newer version opens far enough to read its schema version.
        let mut names: Vec<String> = Cf::ALL.iter().map(|c| c.name().to_string()).collect();
        if let Ok(existing) = DB::list_cf(&opts, path) {
            for name in existing {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        // One small block cache for every column family. RocksDB's default
        // is a cache of 32 MiB for each, which the messages, queue and
        // contacts fill under load (ten column families could hold 320 MiB).
        // The OS page cache holds the files anyway; consent look-ups have
        // their own cache in front. With 100 000 messages queued, RSS fell by
        // about 24 MB, and uncached consent look-ups kept their speed.
        let block_cache = Cache::new_lru_cache(block_cache_bytes);
        let descriptors = names
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(n, cf_options(&block_cache)));
        let db = DB::open_cf_descriptors(&opts, path, descriptors).map_err(|e| {
            if e.to_string().contains("lock") {
                StoreError::Locked {
                    path: path.to_path_buf(),
                }
            } else {
                StoreError::Db(e)
            }
        })?;
        Ok(Arc::new(db))
    }

    /// Opens the spool for reading, also while the daemon holds it: then as a
    /// RocksDB secondary instance, which sees everything the daemon wrote.
    pub fn open_for_read(path: &Path) -> Result<Store, StoreError> {
        Store::open_for_read_with(path, &StoreSettings::default())
    }

    /// [`Store::open_for_read`] with the shared state that `settings` name.
    pub fn open_for_read_with(path: &Path, settings: &StoreSettings) -> Result<Store, StoreError> {
        match Store::open_with(path, settings) {
            Err(StoreError::Locked { .. }) => {}
            other => return other,
        }
        let opts = Options::default();
        let names = DB::list_cf(&opts, path)?;
        // Removed on every way out, the early errors below included.
        let secondary = SecondaryDir(std::env::temp_dir().join(format!(
            "postwarden-secondary-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        )));
        let mut opts = Options::default();
        opts.set_max_open_files(-1);
        let db = DB::open_cf_as_secondary(&opts, path, &secondary.0, names)?;
        db.try_catch_up_with_primary()?;
        let db = Arc::new(db);
        let committer = Arc::new(CommitterHandle(commit::Committer::start(db.clone())));
        let store = Store {
            shared: Store::shared_backend(&db, &committer, settings, None)?,
            committer,
            db,
            cache: None,
            pending: Arc::default(),
            path: path.to_path_buf(),
            _secondary: Some(Arc::new(secondary)),
        };
        store.check_schema()?;
        Ok(store)
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let cf = self.cf(Cf::Meta);
        match self.db.get_cf(cf, keys::SCHEMA_VERSION)? {
            None => {
                let mut wb = WriteBatch::default();
                wb.put_cf(cf, keys::SCHEMA_VERSION, SCHEMA_VERSION.to_string());
                self.db.write(wb)?;
                self.db.flush_wal(true)?;
                Ok(())
            }
            Some(v) if v == SCHEMA_VERSION.to_string().as_bytes() => Ok(()),
            Some(v) => Err(StoreError::SchemaVersion {
                path: self.path.clone(),
                found: String::from_utf8_lossy(&v).into_owned(),
                expected: SCHEMA_VERSION,
            }),
        }
    }

    /// Whether the spool answers reads and its writes have not failed.
    pub fn healthy(&self) -> Result<(), StoreError> {
        self.db.get_cf(self.cf(Cf::Meta), keys::SCHEMA_VERSION)?;
        if !self.shared.is_spool() {
            self.shared.healthy()?;
        }
        if self.write_failed() {
            return Err(StoreError::Write(
                "a write failed; mail is refused until the spool has room and is reopened".into(),
            ));
        }
        Ok(())
    }

    /// Overwrites the schema version (for tests of the version check and for migrations).
    pub fn set_schema_version_for_test(&self, version: &str) -> Result<(), StoreError> {
        self.db
            .put_cf(self.cf(Cf::Meta), keys::SCHEMA_VERSION, version)?;
        self.db.flush_wal(true)?;
        Ok(())
    }

    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        cf_handle(&self.db, cf)
    }

    /// Bytes an unprivileged writer may still use on the spool's file system.
    pub fn free_space(&self) -> Result<u64, StoreError> {
        let st = rustix::fs::statvfs(&self.path).map_err(|e| StoreError::FreeSpace {
            path: self.path.clone(),
            source: e.into(),
        })?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether any record of any column family holds `needle` in its key or
    /// value (tests of erasure and retention: no trace left).
    #[cfg(test)]
    pub(crate) fn holds_anywhere(&self, needle: &[u8]) -> bool {
        let has = |b: &[u8]| {
            b.windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle))
        };
        Cf::ALL.iter().any(|&cf| {
            self.db
                .iterator_cf(self.cf(cf), IteratorMode::Start)
                .flatten()
                .any(|(k, v)| has(&k) || has(&v))
        })
    }

    /// Bytes of the spool's files on disk (RocksDB keeps them in one folder).
    pub fn disk_bytes(&self) -> u64 {
        std::fs::read_dir(&self.path)
            .map(|dir| {
                dir.filter_map(|e| e.ok()?.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    pub fn commit_stats(&self) -> CommitStats {
        self.committer.stats()
    }

    /// The name of the shared state's backend ("rocksdb" or "postgres").
    pub fn shared_backend_name(&self) -> &'static str {
        self.shared.name()
    }

    /// Whether the shared state lives outside this node's spool (fleet mode).
    pub fn in_fleet(&self) -> bool {
        !self.shared.is_spool()
    }

    /// (hits, misses) of the consent cache, if there is one.
    pub fn cache_stats(&self) -> Option<(u64, u64)> {
        self.cache.as_ref().map(|c| c.stats())
    }

    /// What the spool's RocksDB holds in memory, by part, as its own
    /// counters give it (summed over the column families; the block cache
    /// is one for all of them).
    pub fn memory(&self) -> MemoryUse {
        let mut m = MemoryUse::default();
        for cf in Cf::ALL {
            let handle = self.cf(cf);
            let get = |property: &str| {
                self.db
                    .property_int_value_cf(handle, property)
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            };
            let unflushed = get("rocksdb.cur-size-all-mem-tables");
            m.memtables += unflushed;
            m.memtables_pinned += get("rocksdb.size-all-mem-tables").saturating_sub(unflushed);
            m.table_readers += get("rocksdb.estimate-table-readers-mem");
            m.block_cache = m.block_cache.max(get("rocksdb.block-cache-usage"));
            m.block_cache_pinned = m
                .block_cache_pinned
                .max(get("rocksdb.block-cache-pinned-usage"));
        }
        m
    }

    /// Splits `ops` into those on shared state and those on this node's
    /// spool; with the shared state in the spool, all are the spool's, so a
    /// batch stays one atomic write.
    fn split(&self, ops: Vec<Op>) -> (Vec<Op>, Vec<Op>) {
        if self.shared.is_spool() {
            return (Vec::new(), ops);
        }
        ops.into_iter().partition(|op| match op {
            Op::Put(cf, k, _) | Op::Delete(cf, k) => is_shared(*cf, k),
        })
    }

    /// The cached keys that `ops` change, to forget once the change is visible.
    fn cached_keys(&self, ops: &[Op]) -> Vec<(Cf, Vec<u8>)> {
        if self.cache.is_none() {
            return Vec::new();
        }
        ops.iter()
            .filter_map(|op| match op {
                Op::Put(cf, k, _) | Op::Delete(cf, k) if KeyCache::holds(*cf) => {
                    Some((*cf, k.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn invalidate(&self, keys: &[(Cf, Vec<u8>)]) {
        if let Some(cache) = &self.cache {
            for (cf, k) in keys {
                cache.invalidate(*cf, k);
            }
        }
    }

    /// Applies `ops` atomically and returns once they are on disk (WAL synced).
    /// Concurrent callers share syncs. With shared state elsewhere, its part
    /// is written first, then the spool's: a crash between them leaves the
    /// shared change made and the spool's undone, which callers allow for
    /// (feedback is reprocessed and counts once; mail not acknowledged is
    /// sent again by its client).
    pub async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.commit_with(ops, true).await
    }

    /// Applies `ops` atomically, in order with every other write, without
    /// waiting for a WAL sync of its own: for delivery results. The write is in
    /// the operating system's hands when this returns, so it survives a crash
    /// or kill of the daemon, and the next synced write (any acceptance) makes
    /// it durable; only a power loss before that can undo it, which sends the
    /// message again, as a crash between the remote's 250 and any write would.
    pub async fn commit_unsynced(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.commit_with(ops, false).await
    }

    async fn commit_with(&self, ops: Vec<Op>, sync: bool) -> Result<(), StoreError> {
        let touched = self.cached_keys(&ops);
        let (shared, local) = self.split(ops);
        if !shared.is_empty() {
            let backend = self.shared.clone();
            tokio::task::spawn_blocking(move || backend.write(shared))
                .await
                .map_err(|e| StoreError::Shared(e.to_string()))??;
        }
        if !local.is_empty() {
            self.committer.commit(local, sync).await?;
        }
        self.invalidate(&touched);
        Ok(())
    }

    /// The same as [`Store::commit`], for callers outside the async runtime.
    pub fn commit_blocking(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let touched = self.cached_keys(&ops);
        let (shared, local) = self.split(ops);
        if !shared.is_empty() {
            self.shared.write(shared)?;
        }
        if !local.is_empty() {
            self.committer.commit_blocking(local)?;
        }
        self.invalidate(&touched);
        Ok(())
    }

    /// Applies `ops` atomically without waiting for a sync: for state that can
    /// be rebuilt or repeated (delivery progress; the next synced write covers it).
    pub fn write_relaxed(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let touched = self.cached_keys(&ops);
        let (shared, local) = self.split(ops);
        if !shared.is_empty() {
            self.shared.write(shared)?;
        }
        self.write_local_relaxed(local)?;
        self.invalidate(&touched);
        Ok(())
    }

    fn write_local_relaxed(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        write_unsynced(&self.db, &self.committer, ops)
    }

    /// Reads the shared record `cf`/`key` and writes what `change` makes of
    /// it, atomically against every other update of that record on every
    /// node (a row lock in PostgreSQL). `change` may return spool writes too
    /// (events): they follow the shared ones.
    pub fn update(
        &self,
        cf: Cf,
        key: &[u8],
        mut change: impl FnMut(Option<Vec<u8>>) -> Vec<Op>,
    ) -> Result<(), StoreError> {
        let mut touched = Vec::new();
        let mut local = Vec::new();
        self.shared.update(cf, key, &mut |current| {
            let ops = change(current);
            touched = self.cached_keys(&ops);
            if self.shared.is_spool() {
                // One database: everything is written under the update's lock.
                return ops;
            }
            let (shared, spool) = self.split(ops);
            local = spool;
            shared
        })?;
        self.write_local_relaxed(local)?;
        self.invalidate(&touched);
        Ok(())
    }

    /// Takes the fleet-wide lock `id` if it is free: None when another
    /// node (or process) holds it.
    pub fn try_shared_lock(
        &self,
        id: i64,
    ) -> Result<Option<Box<dyn shared::HeldLock>>, StoreError> {
        self.shared.try_lock(id)
    }

    /// Holds the fleet-wide lock `id` (a PostgreSQL advisory lock; nothing
    /// more than the caller's own process lock with the spool backend).
    pub fn shared_lock(&self, id: i64) -> Result<Box<dyn Send>, StoreError> {
        self.shared.lock(id)
    }

    /// Whether a write has failed since the spool was opened. RocksDB then
    /// refuses all writes until it is opened again (see `daemon`).
    pub fn write_failed(&self) -> bool {
        self.committer
            .failed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn get_raw(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if is_shared(cf, key) {
            self.shared.get(cf, key)
        } else {
            Ok(self.db.get_cf(self.cf(cf), key)?)
        }
    }

    fn get_json<T: DeserializeOwned>(&self, cf: Cf, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.get_raw(cf, key)? {
            None => Ok(None),
            Some(bytes) => decode(cf, key, &bytes).map(Some),
        }
    }

    /// Like `get_json`, through the cache when there is one. The cache keeps
    /// the decoded value; each cached column family is read as one type.
    fn get_json_cached<T>(&self, cf: Cf, key: &[u8]) -> Result<Option<T>, StoreError>
    where
        T: DeserializeOwned + CacheValue,
    {
        self.get_cached_with(cf, key, || self.get_json(cf, key))
    }

    /// What `read` answers for `key`, through the cache when there is one:
    /// `read` may consult more than `key` itself, when the cache knows to
    /// forget the answer on a change to the other records (see
    /// [`KeyCache::invalidate`]).
    fn get_cached_with<T: CacheValue>(
        &self,
        cf: Cf,
        key: &[u8],
        read: impl FnOnce() -> Result<Option<T>, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let Some(cache) = &self.cache else {
            return read();
        };
        let ticket = match cache.get(cf, key) {
            Ok(cache::Cached::Absent) => return Ok(None),
            Ok(hit) => match T::from_cached(&hit) {
                Some(value) => return Ok(Some(value)),
                // Kept as another type: read it afresh, without keeping it.
                None => return read(),
            },
            Err(ticket) => ticket,
        };
        let value: Option<T> = read()?;
        let cached = match &value {
            Some(v) => v.to_cached(),
            None => cache::Cached::Absent,
        };
        cache.fill(ticket, cf, cached);
        Ok(value)
    }

    /// All records of `cf` whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<Record>, StoreError> {
        if is_shared(cf, prefix) {
            return self.shared.scan(cf, prefix, prefix, usize::MAX);
        }
        scan_db(&self.db, cf, prefix, prefix, usize::MAX)
    }

    // ---- meta --------------------------------------------------------------

    /// The token secret kept with the shared state, made on first use (by
    /// whichever node of a fleet comes first; the others read it).
    pub fn secret(&self) -> Result<Vec<u8>, StoreError> {
        if let Some(v) = self.get_raw(Cf::Meta, keys::SECRET)? {
            return Ok(v);
        }
        let fresh: [u8; 32] = rand::random();
        self.update(Cf::Meta, keys::SECRET, |current| match current {
            Some(_) => Vec::new(),
            None => vec![Op::Put(Cf::Meta, keys::SECRET.to_vec(), fresh.to_vec())],
        })?;
        if self.shared.is_spool() {
            self.db.flush_wal(true)?;
        }
        self.get_raw(Cf::Meta, keys::SECRET)?
            .ok_or_else(|| StoreError::Write("the token secret was not kept".into()))
    }
}

/// The handle of `cf`: every Cf was created or opened with the spool.
fn cf_handle(db: &DB, cf: Cf) -> &rocksdb::ColumnFamily {
    db.cf_handle(cf.name())
        .expect("column family opened at start")
}

/// At most `limit` records of `cf` from `start` on (inclusive) whose keys
/// begin with `prefix`, in key order.
fn scan_db(
    db: &DB,
    cf: Cf,
    start: &[u8],
    prefix: &[u8],
    limit: usize,
) -> Result<Vec<Record>, StoreError> {
    let from = if start < prefix { prefix } else { start };
    let iter = db.iterator_cf(
        cf_handle(db, cf),
        IteratorMode::From(from, Direction::Forward),
    );
    let mut out = Vec::new();
    for item in iter {
        if out.len() >= limit {
            break;
        }
        let (k, v) = item?;
        if !k.starts_with(prefix) {
            break;
        }
        out.push((k.into_vec(), v.into_vec()));
    }
    Ok(out)
}

/// Applies `ops` in one write without waiting for a sync. A failure marks
/// the spool failed, as the committer's own do (RocksDB then refuses every
/// write until it is reopened).
fn write_unsynced(db: &DB, committer: &CommitterHandle, ops: Vec<Op>) -> Result<(), StoreError> {
    if ops.is_empty() {
        return Ok(());
    }
    let mut wb = WriteBatch::default();
    fill_batch(db, &mut wb, ops);
    db.write(wb).inspect_err(|_| {
        committer
            .failed
            .store(true, std::sync::atomic::Ordering::Relaxed)
    })?;
    Ok(())
}

fn fill_batch(db: &DB, wb: &mut WriteBatch, ops: Vec<Op>) {
    for op in ops {
        match op {
            Op::Put(cf, k, v) => {
                if let Some(h) = db.cf_handle(cf.name()) {
                    wb.put_cf(h, k, v)
                }
            }
            Op::Delete(cf, k) => {
                if let Some(h) = db.cf_handle(cf.name()) {
                    wb.delete_cf(h, k)
                }
            }
        }
    }
}

fn decode<T: DeserializeOwned>(cf: Cf, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: format!("{}/{}", cf.name(), String::from_utf8_lossy(key)),
        reason: e.to_string(),
    })
}

fn cf_options(block_cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(block_cache);
    let mut o = Options::default();
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    o.set_block_based_table_factory(&table);
    o
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own plain structs to JSON cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests;
