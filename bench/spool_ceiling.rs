//! The spool's durable-write ceiling on this disk, for `bench/run`: how many
//! synced 10 KB writes per second RocksDB gets one at a time and in batches of
//! 100 (the physical limit), and what postwarden's own group committer
//! (`Store::commit` from many concurrent sessions, one queued message each)
//! reaches. Each figure runs for `--seconds`; prints one JSON line.
//!
//!     spool_ceiling --dir bench/work/ceiling [--seconds 3]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use postwarden::store::queue::{QueueEntry, Recipient};
use postwarden::store::Store;

#[derive(Parser)]
struct Args {
    /// A folder on the disk to measure (emptied first).
    #[arg(long)]
    dir: std::path::PathBuf,
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Concurrent writers for the group-commit figure.
    #[arg(long, default_value_t = 100)]
    writers: usize,
}

const VALUE: usize = 10 * 1024;

fn raw(dir: &std::path::Path, batch: usize, seconds: f64) -> Result<f64> {
    let _ = std::fs::remove_dir_all(dir);
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let db = rocksdb::DB::open(&opts, dir)?;
    let mut sync = rocksdb::WriteOptions::default();
    sync.set_sync(true);
    let value = vec![0x5au8; VALUE];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        let mut wb = rocksdb::WriteBatch::default();
        for _ in 0..batch {
            wb.put(n.to_be_bytes(), &value);
            n += 1;
        }
        db.write_opt(wb, &sync)?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

async fn group_commit(dir: &std::path::Path, writers: usize, seconds: f64) -> Result<(f64, f64)> {
    let _ = std::fs::remove_dir_all(dir);
    let store = Store::open(dir)?;
    let before = store.commit_stats();
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, done) = (store.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let message = vec![b'x'; VALUE];
            let mut i = 0u64;
            while Instant::now() < deadline {
                let mut entry = QueueEntry::new(
                    format!("W{w:04}N{i:010}"),
                    "bench",
                    "news@bench.example",
                    vec![Recipient::new(format!("{i}bench@example.test"))],
                    0,
                );
                entry.size = message.len();
                if store.enqueue(&entry, &message).await.is_err() {
                    return;
                }
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = store.commit_stats();
    let n = done.load(Ordering::Relaxed) as f64;
    let per_sync = n / (after.syncs - before.syncs).max(1) as f64;
    Ok((n / elapsed, per_sync))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let one = raw(&args.dir.join("one"), 1, args.seconds)?;
    let batched = raw(&args.dir.join("batched"), 100, args.seconds)?;
    let (store, per_sync) =
        group_commit(&args.dir.join("store"), args.writers, args.seconds).await?;
    let _ = std::fs::remove_dir_all(&args.dir);
    println!(
        "{}",
        serde_json::json!({
            "synced_writes_per_second_one_at_a_time": one,
            "synced_writes_per_second_batches_of_100": batched,
            "store_commits_per_second": store,
            "store_writers": args.writers,
            "store_messages_per_sync": per_sync,
        })
    );
    Ok(())
}
