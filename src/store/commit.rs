//! Group commit: one thread applies the batches of all writers that arrived
//! while the previous sync was running, as one RocksDB write with one WAL sync.
//!
//! This is what lets many SMTP sessions acknowledge mail durably without each
//! paying for its own fsync (the same idea as Postfix's cleanup + fsync, and
//! KumoMTA's spool batching). Written by hand because the rocksdb crate's own
//! write grouping gives no count of syncs to check, nor a guarantee to rely on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use rocksdb::{WriteBatch, WriteOptions, DB};
use tokio::sync::oneshot;

use super::{fill_batch, Op, StoreError};

type Reply = oneshot::Sender<Result<(), String>>;

struct Request {
    ops: Vec<Op>,
    reply: Reply,
    /// Whether the writer waits for the WAL sync. A group is synced when any
    /// of its writers needs it; a group of only unsynced writes is not.
    sync: bool,
}

/// Counters of the committer: batches submitted and WAL syncs done.
/// (Groups of unsynced batches only are not counted as syncs.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    pub commits: u64,
    pub syncs: u64,
}

pub struct Committer {
    tx: std::sync::Mutex<Option<mpsc::Sender<Request>>>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    commits: Arc<AtomicU64>,
    syncs: Arc<AtomicU64>,
    /// Set by the first failed write: RocksDB refuses every write after a
    /// WAL error (its C API has no Resume), until the spool is reopened.
    pub(super) failed: Arc<AtomicBool>,
}

/// Largest number of batches merged into one write, to bound latency and memory.
const MAX_GROUP: usize = 512;

impl Committer {
    pub fn start(db: Arc<DB>) -> Committer {
        let (tx, rx) = mpsc::channel::<Request>();
        let commits = Arc::new(AtomicU64::new(0));
        let syncs = Arc::new(AtomicU64::new(0));
        let sync_counter = syncs.clone();
        let failed = Arc::new(AtomicBool::new(false));
        let failed_flag = failed.clone();
        let thread = std::thread::Builder::new()
            .name("spool-commit".into())
            .spawn(move || run(db, rx, sync_counter, failed_flag))
            .ok();
        Committer {
            tx: std::sync::Mutex::new(Some(tx)),
            thread: std::sync::Mutex::new(thread),
            commits,
            syncs,
            failed,
        }
    }

    /// Stops the thread after the writes already submitted, so that the
    /// database can close (and its lock be released) when the store is dropped.
    pub fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    pub fn stats(&self) -> CommitStats {
        CommitStats {
            commits: self.commits.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
        }
    }

    fn submit(
        &self,
        ops: Vec<Op>,
        sync: bool,
    ) -> Result<oneshot::Receiver<Result<(), String>>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.commits.fetch_add(1, Ordering::Relaxed);
        let guard = self.tx.lock().map_err(|_| StoreError::CommitterGone)?;
        let tx = guard.as_ref().ok_or(StoreError::CommitterGone)?;
        tx.send(Request { ops, reply, sync })
            .map_err(|_| StoreError::CommitterGone)?;
        Ok(rx)
    }

    pub async fn commit(&self, ops: Vec<Op>, sync: bool) -> Result<(), StoreError> {
        let rx = self.submit(ops, sync)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Write(e)),
            Err(_) => Err(StoreError::CommitterGone),
        }
    }

    pub fn commit_blocking(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let rx = self.submit(ops, true)?;
        match rx.blocking_recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Write(e)),
            Err(_) => Err(StoreError::CommitterGone),
        }
    }
}

fn run(db: Arc<DB>, rx: mpsc::Receiver<Request>, syncs: Arc<AtomicU64>, failed: Arc<AtomicBool>) {
    let mut synced = WriteOptions::default();
    synced.set_sync(true);
    let unsynced = WriteOptions::default();
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(more) => group.push(more),
                Err(_) => break,
            }
        }
        let sync = group.iter().any(|req| req.sync);
        let mut batch = WriteBatch::default();
        let mut replies = Vec::with_capacity(group.len());
        for req in group {
            fill_batch(&db, &mut batch, req.ops);
            replies.push(req.reply);
        }
        let opts = if sync { &synced } else { &unsynced };
        let result = db.write_opt(batch, opts).map_err(|e| e.to_string());
        if sync {
            syncs.fetch_add(1, Ordering::Relaxed);
        }
        if result.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        for reply in replies {
            // A writer that gave up waiting is no reason to stop.
            let _ = reply.send(result.clone());
        }
    }
}
