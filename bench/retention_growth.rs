//! Spool growth with retention, for issue 24: drives `--messages` messages'
//! worth of records through a spool (or, with `--postgres URL`, the shared
//! tables) on a simulated clock, `--per-day` messages a simulated day, with
//! the shipped `[retention]` periods and a pruning pass each simulated day,
//! and prints the disk bytes every `--every` messages as JSON lines (with
//! `--postgres`, also the shared tables' size on disk).
//!
//! Each message leaves what a delivered newsletter leaves in the daemon:
//! queued (message, queue entry, schedule) and then removed on delivery, a
//! tracking record, a `queued` and a `delivered` event, and for one in fifty
//! a bounce mark and its event; one in a thousand a complaint mark and an
//! abuse case with the report. The records are written with the store's own
//! operations and pruned by `retention::prune`, the daemon's pass.
//!
//!     retention_growth --dir bench/work/retention [--messages 1000000]

use anyhow::Result;
use clap::Parser;
use postwarden::config::{Config, StoreBackend, StoreSettings};
use postwarden::store::queue::{QueueEntry, Recipient, Tracking};
use postwarden::store::{Op, Store};
use postwarden::values::queue_id;

#[derive(Parser)]
struct Args {
    /// The spool folder (emptied first).
    #[arg(long)]
    dir: std::path::PathBuf,
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Messages per simulated day.
    #[arg(long, default_value_t = 5_000)]
    per_day: u64,
    /// Print a row every this many messages.
    #[arg(long, default_value_t = 50_000)]
    every: u64,
    /// The shared state in PostgreSQL (fleet mode): its size is the tables'.
    #[arg(long)]
    postgres: Option<String>,
    /// No pruning (the spool before retention existed).
    #[arg(long)]
    no_retention: bool,
}

const DAY: u64 = 86_400;

fn main() -> Result<()> {
    let args = Args::parse();
    let _ = std::fs::remove_dir_all(&args.dir);
    let settings = match &args.postgres {
        Some(url) => StoreSettings {
            backend: StoreBackend::Postgres,
            url: Some(url.clone()),
            ..StoreSettings::default()
        },
        None => StoreSettings::default(),
    };
    let store = Store::open_with(&args.dir, &settings)?;
    let tables = match &args.postgres {
        Some(url) => Some(TableSize::connect(url)?),
        None => None,
    };
    let config = Config::embedded_default(&args.dir)
        .map_err(|p| anyhow::anyhow!("embedded config: {p:?}"))?;
    let start = postwarden::values::now() - 400 * DAY;
    let gap = DAY * 1_000_000 / args.per_day.max(1);
    let body = vec![b'x'; 4096];
    let report = "Feedback-Type: abuse\r\n".repeat(200);
    let mut ops: Vec<Op> = Vec::new();
    let mut delivered: Vec<Op> = Vec::new();
    for i in 0..args.messages {
        let micros = start * 1_000_000 + i * gap;
        let id = queue_id::at_micros(micros);
        let to = format!("r{}@example.test", i % 200_000);
        let entry = QueueEntry::new(
            id.clone(),
            "acme",
            "news@acme.example",
            vec![Recipient::new(to.clone())],
            micros / 1_000_000,
        );
        ops.extend(Store::enqueue_ops(&entry, &body));
        ops.push(Store::tracking_op(
            &id,
            &Tracking {
                tenant: "acme".into(),
                list: Some("news".into()),
                recipients: vec![to.clone()],
                message_id: Some(format!("<{id}@acme.example>")),
                at: micros / 1_000_000,
                sender_domain: None,
            },
        ));
        let event = |kind: &str| serde_json::json!({"type": kind, "tenant": "acme", "queue_id": id, "to": to});
        ops.push(Store::event_op_at(micros, &event("queued")));
        ops.push(Store::event_op_at(micros + 1, &event("delivered")));
        if i % 50 == 0 {
            ops.push(Store::feedback_seen_op("bounce", &id, 0));
            ops.push(Store::event_op_at(micros + 2, &event("bounced")));
        }
        if i % 1000 == 0 {
            ops.push(Store::feedback_seen_op("complaint", &id, 0));
            ops.push(Store::abuse_case_op(
                &id,
                &serde_json::json!({"id": id, "tenant": "acme", "recipient": to, "message": report}),
            ));
        }
        delivered.extend(Store::delete_entry_ops(&entry));
        if ops.len() >= 1000 {
            store.commit_blocking(std::mem::take(&mut ops))?;
            store.commit_blocking(std::mem::take(&mut delivered))?;
        }
        let now = micros / 1_000_000;
        if !args.no_retention && (i + 1) % args.per_day == 0 {
            store.commit_blocking(std::mem::take(&mut ops))?;
            store.commit_blocking(std::mem::take(&mut delivered))?;
            postwarden::retention::prune(&store, &config, now, &mut || {})?;
        }
        if (i + 1) % args.every == 0 {
            store.commit_blocking(std::mem::take(&mut ops))?;
            store.commit_blocking(std::mem::take(&mut delivered))?;
            let stats = postwarden::retention::stats(&store)?;
            println!(
                "{}",
                serde_json::json!({
                    "messages": i + 1,
                    "simulated_days": (now - start) / DAY,
                    "spool_disk_bytes": store.disk_bytes(),
                    "postgres_table_bytes": tables.as_ref().map(|t| t.bytes()).transpose()?,
                    "shared_bytes": stats.values().map(|s| s.bytes).sum::<u64>(),
                    "records": stats.iter().map(|(k, s)| (k.to_string(), serde_json::json!(s.records))).collect::<serde_json::Map<_, _>>(),
                })
            );
        }
    }
    Ok(())
}

/// The shared tables' size on disk in PostgreSQL (fleet mode): what the
/// database's files take, dead rows and indexes included, not the records'
/// bytes.
struct TableSize {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl TableSize {
    fn connect(url: &str) -> Result<TableSize> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            Ok::<_, tokio_postgres::Error>(client)
        })?;
        Ok(TableSize { runtime, client })
    }

    fn bytes(&self) -> Result<u64> {
        let row = self.runtime.block_on(self.client.query_one(
            "SELECT COALESCE(SUM(pg_total_relation_size(relid)), 0)::bigint FROM pg_stat_user_tables",
            &[],
        ))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }
}
