//! A long queue for bench/run's million-queued run (issue 27): writes
//! `--messages` queued messages into a spool with the store's own
//! operations (the entry, the message, its schedule slot: what acceptance
//! writes), each to one of the bench's contacts, deferred once towards an
//! unreachable destination, the next attempts spread evenly over the
//! `--spread` seconds from `--due-in` seconds from now. Then the daemon
//! started on the spool finds a queue as a long outage leaves it, without
//! the hours of SMTP it would take to build one.
//!
//!     queue_fill --dir bench/work/million/spool --messages 1000000 \
//!         --message bench/work/msg-5k.eml [--due-in 600] [--spread 600]

use anyhow::{Context, Result};
use clap::Parser;
use postwarden::config::StoreSettings;
use postwarden::store::queue::{QueueEntry, Recipient, RecipientStatus};
use postwarden::store::{Op, Store};
use postwarden::values::queue_id;

#[derive(Parser)]
struct Args {
    /// The spool folder (made if missing; what it holds is kept).
    #[arg(long)]
    dir: std::path::PathBuf,
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// The message every entry carries.
    #[arg(long)]
    message: std::path::PathBuf,
    #[arg(long, default_value = "bench")]
    tenant: String,
    #[arg(long, default_value = "news@bench.example")]
    from: String,
    /// Recipient n is `{n}{to}`, n from 1 (the bench's contacts).
    #[arg(long, default_value = "bench@example.test")]
    to: String,
    #[arg(long, default_value_t = 600)]
    due_in: u64,
    #[arg(long, default_value_t = 600)]
    spread: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let message = std::fs::read(&args.message)
        .with_context(|| format!("cannot read {}", args.message.display()))?
        .split(|&b| b == b'\n')
        .flat_map(|l| l.strip_suffix(b"\r").unwrap_or(l).iter().chain(b"\r\n"))
        .copied()
        .collect::<Vec<u8>>();
    let store = Store::open_with(&args.dir, &StoreSettings::default())?;
    let now = postwarden::values::now();
    let started = std::time::Instant::now();
    let mut ops: Vec<Op> = Vec::new();
    for i in 0..args.messages {
        // Accepted in the last hour, in order, a microsecond apart at least.
        let micros = (now - 3600) * 1_000_000 + i * (3_600_000_000 / args.messages.max(1)).max(1);
        let id = queue_id::at_micros(micros);
        let mut rcpt = Recipient::new(format!("{}{}", i + 1, args.to));
        rcpt.status = RecipientStatus::Deferred;
        rcpt.attempts = 1;
        rcpt.last_reply = Some("connect to 127.0.0.1: Connection refused".into());
        rcpt.dsn = Some("4.4.1".into());
        let mut entry = QueueEntry::new(
            id.clone(),
            &args.tenant,
            &args.from,
            vec![rcpt],
            micros / 1_000_000,
        );
        entry.size = message.len();
        entry.list = Some(format!(
            "news.{}",
            args.from.rsplit('@').next().unwrap_or("")
        ));
        entry.message_id = Some(format!("<{id}@bench.example>"));
        entry.client_ip = "127.0.0.1".into();
        entry.next_attempt = now + args.due_in + i * args.spread / args.messages.max(1);
        ops.extend(Store::enqueue_ops(&entry, &message));
        if ops.len() >= 3000 {
            store.commit_blocking(std::mem::take(&mut ops))?;
        }
    }
    store.commit_blocking(ops)?;
    println!(
        "{}",
        serde_json::json!({
            "queued": args.messages,
            "seconds": started.elapsed().as_secs_f64(),
            "spool_disk_bytes": store.disk_bytes(),
        })
    );
    Ok(())
}
