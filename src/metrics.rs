//! Prometheus metrics (prometheus-client), served at `GET /metrics` on the
//! http listener to the daemon's admin token or a `metrics_token`.
//!
//! One process-wide set, like Prometheus' default registry: the SMTP
//! sessions, the scheduler and the feedback processor count into it without
//! carrying a handle. Queue sizes and webhook backlogs are read from the
//! spool when scraped.

use std::sync::LazyLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    connections: Family<Labels, Counter>,
    accepted: Family<Labels, Counter>,
    rejected: Family<Labels, Counter>,
    deliveries: Family<Labels, Counter>,
    bounces: Family<Labels, Counter>,
    complaints: Counter,
    queue: Family<Labels, Gauge>,
    webhook_backlog: Family<Labels, Gauge>,
    consent_cache: Family<Labels, Gauge>,
    spool_writes: Family<Labels, Gauge>,
    store_up: Family<Labels, Gauge>,
    pruned: Family<Labels, Counter>,
    events_expired: Family<Labels, Counter>,
    subscribe_refused: Family<Labels, Counter>,
    retained_records: Family<Labels, Gauge>,
    retained_bytes: Family<Labels, Gauge>,
    retained_oldest: Family<Labels, Gauge>,
    spool_disk: Gauge,
    lane_parked: Gauge,
    lane_delayed: Counter,
    threads: Gauge,
    memory: Family<Labels, Gauge>,
    shaping_activations: Family<Labels, Counter>,
    shaping_waits: Family<Labels, Counter>,
    warmup_capped: Family<Labels, Counter>,
    shaping_suspended: Family<Labels, Gauge>,
    shaping_throttled: Family<Labels, Gauge>,
    sender_authentication: Family<Labels, Gauge>,
    acceptance: Histogram,
    delivery: Histogram,
}

fn label(k: &str, v: &str) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("postwarden");
    let m = Metrics {
        connections: Family::default(),
        accepted: Family::default(),
        rejected: Family::default(),
        deliveries: Family::default(),
        bounces: Family::default(),
        complaints: Counter::default(),
        queue: Family::default(),
        webhook_backlog: Family::default(),
        consent_cache: Family::default(),
        spool_writes: Family::default(),
        store_up: Family::default(),
        pruned: Family::default(),
        events_expired: Family::default(),
        subscribe_refused: Family::default(),
        retained_records: Family::default(),
        retained_bytes: Family::default(),
        retained_oldest: Family::default(),
        spool_disk: Gauge::default(),
        lane_parked: Gauge::default(),
        lane_delayed: Counter::default(),
        threads: Gauge::default(),
        memory: Family::default(),
        shaping_activations: Family::default(),
        shaping_waits: Family::default(),
        warmup_capped: Family::default(),
        sender_authentication: Family::default(),
        shaping_suspended: Family::default(),
        shaping_throttled: Family::default(),
        // 0.5 ms to about 16 s.
        acceptance: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
        // 1 ms to about 65 s.
        delivery: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
        registry: Registry::default(),
    };
    registry.register(
        "connections",
        "SMTP connections by listener",
        m.connections.clone(),
    );
    registry.register(
        "messages_accepted",
        "Messages accepted (250) by listener",
        m.accepted.clone(),
    );
    registry.register(
        "messages_rejected",
        "Messages and recipients refused by reason code",
        m.rejected.clone(),
    );
    registry.register(
        "deliveries",
        "Delivery attempts per recipient by status (sent, deferred, bounced)",
        m.deliveries.clone(),
    );
    registry.register("bounces", "Bounces by class", m.bounces.clone());
    registry.register(
        "complaints",
        "Complaints (ARF, abuse forwards)",
        m.complaints.clone(),
    );
    registry.register(
        "queue_messages",
        "Queued messages by state",
        m.queue.clone(),
    );
    registry.register(
        "webhook_backlog",
        "Events waiting for a tenant's webhook",
        m.webhook_backlog.clone(),
    );
    registry.register(
        "consent_cache_lookups",
        "Look-ups of the node-local consent cache since start, by result (hit, miss)",
        m.consent_cache.clone(),
    );
    registry.register(
        "spool_writes",
        "Spool writes since start: batches submitted (commits) and the WAL syncs that group commit made of them (syncs; delivery results wait for the next sync instead of asking for one)",
        m.spool_writes.clone(),
    );
    registry.register(
        "store_up",
        "1 when the spool and the shared state (by backend) answer, else 0",
        m.store_up.clone(),
    );
    registry.register(
        "retention_pruned",
        "Records deleted by retention, by kind (tracking, feedback_marks, events, abuse_cases)",
        m.pruned.clone(),
    );
    registry.register(
        "events_expired",
        "Events deleted at [retention] events_max before the tenant's webhook took them, by tenant",
        m.events_expired.clone(),
    );
    registry.register(
        "subscribe_refused",
        "Sign-ups refused before any mail, by tenant and reason (consent_missing, honeypot, too_fast, …)",
        m.subscribe_refused.clone(),
    );
    registry.register(
        "retained_records",
        "Records kept, by kind, as counted by the last retention pass",
        m.retained_records.clone(),
    );
    registry.register(
        "retained_bytes",
        "Bytes of keys and values kept (before compression), by kind, as of the last retention pass",
        m.retained_bytes.clone(),
    );
    registry.register(
        "retained_oldest_timestamp_seconds",
        "When the oldest record of each kind was made (Unix time), as of the last retention pass",
        m.retained_oldest.clone(),
    );
    registry.register(
        "spool_disk_bytes",
        "Bytes of the spool's files on disk",
        m.spool_disk.clone(),
    );
    registry.register(
        "memory_bytes",
        "Memory by part: the process's resident set now (rss), at its peak (peak_rss), its anonymous part (rss_anon) and its pages mapped from files (rss_file: the program and libraries), and what the spool's RocksDB counts for its memtables, block cache (pinned: in use), and index and filter blocks (table_readers)",
        m.memory.clone(),
    );
    registry.register(
        "threads",
        "Threads of the process (the async runtime's, the blocking pool's, RocksDB's)",
        m.threads.clone(),
    );
    registry.register(
        "delivery_parked",
        "Messages waiting in memory for a place in their destination's lane (a destination has at most a sixteenth of the delivery slots, or twice its connections)",
        m.lane_parked.clone(),
    );
    registry.register(
        "delivery_lane_delayed",
        "Messages put back in the schedule for up to a minute because their destination's lane and the parking were full; no attempt is counted",
        m.lane_delayed.clone(),
    );
    registry.register(
        "shaping_activations",
        "Shaping rules that took action on an egress path, by provider, rule and action (suspend, throttle, defer)",
        m.shaping_activations.clone(),
    );
    registry.register(
        "shaping_waits",
        "Recipients put back in the queue to wait for their egress path (a rate, a suspension, a reply rule), by provider; no attempt is counted",
        m.shaping_waits.clone(),
    );
    registry.register(
        "warmup_capped",
        "Recipients that a warm-up's daily cap sent to wait for the next day, by provider",
        m.warmup_capped.clone(),
    );
    registry.register(
        "shaping_suspended_paths",
        "Egress paths suspended right now, by provider",
        m.shaping_suspended.clone(),
    );
    registry.register(
        "shaping_throttled_paths",
        "Egress paths under a throttle rule right now, by provider",
        m.shaping_throttled.clone(),
    );
    registry.register(
        "sender_authentication",
        "Whether a tenant's sender domain authenticates at the daemon's last look-up (1: DMARC record, matching DKIM key record, aligned; 0: not, see the log), by tenant and domain",
        m.sender_authentication.clone(),
    );
    registry.register(
        "acceptance_seconds",
        "From the end of DATA to the 250 reply",
        m.acceptance.clone(),
    );
    registry.register(
        "delivery_seconds",
        "One delivery transaction to a remote server",
        m.delivery.clone(),
    );
    Metrics { registry, ..m }
});

pub fn connection(listener: &str) {
    METRICS
        .connections
        .get_or_create(&label("listener", listener))
        .inc();
}

pub fn accepted(listener: &str, seconds: f64) {
    METRICS
        .accepted
        .get_or_create(&label("listener", listener))
        .inc();
    METRICS.acceptance.observe(seconds);
}

pub fn rejected(reason: &str) {
    METRICS
        .rejected
        .get_or_create(&label("reason", reason))
        .inc();
}

pub fn delivery(status: &str, seconds: f64) {
    METRICS
        .deliveries
        .get_or_create(&label("status", status))
        .inc();
    METRICS.delivery.observe(seconds);
}

pub fn bounce(class: &str) {
    METRICS.bounces.get_or_create(&label("class", class)).inc();
}

/// A sign-up refused before any mail (no consent, a bot's post, …).
pub fn subscribe_refused(tenant: &str, reason: &str) {
    METRICS
        .subscribe_refused
        .get_or_create(&vec![
            ("tenant".to_string(), tenant.to_string()),
            ("reason".to_string(), reason.to_string()),
        ])
        .inc();
}

/// A shaping rule took action on a path of `provider`.
pub fn shaping_activation(provider: &str, rule: &str, action: &str) {
    METRICS
        .shaping_activations
        .get_or_create(&vec![
            ("provider".to_string(), provider.to_string()),
            ("rule".to_string(), rule.to_string()),
            ("action".to_string(), action.to_string()),
        ])
        .inc();
}

/// Messages parked for their destinations' lanes now.
pub fn lane_parked(n: usize) {
    METRICS.lane_parked.set(gauge_value(n as u64));
}

/// A message delayed because its lanes and the parking were full.
pub fn lane_delayed() {
    METRICS.lane_delayed.inc();
}

/// A recipient waits for its path of `provider`.
pub fn shaping_wait(provider: &str) {
    METRICS
        .shaping_waits
        .get_or_create(&label("provider", provider))
        .inc();
}

/// `n` recipients wait for the next day: a warm-up cap for `provider`.
pub fn shaping_warmup_wait(provider: &str, n: u64) {
    METRICS
        .warmup_capped
        .get_or_create(&label("provider", provider))
        .inc_by(n);
}

/// How many paths of each provider are suspended and throttled now.
pub fn shaping_paths(
    suspended: &std::collections::BTreeMap<String, u64>,
    throttled: &std::collections::BTreeMap<String, u64>,
) {
    for (family, counts) in [
        (&METRICS.shaping_suspended, suspended),
        (&METRICS.shaping_throttled, throttled),
    ] {
        for (provider, n) in counts {
            family
                .get_or_create(&label("provider", provider))
                .set(gauge_value(*n));
        }
    }
}

/// The standing of `domain` of `tenant` at the last look-up; None: no
/// longer configured (the series goes).
pub fn sender_authentication(tenant: &str, domain: &str, clean: Option<bool>) {
    let labels = vec![
        ("tenant".to_string(), tenant.to_string()),
        ("domain".to_string(), domain.to_string()),
    ];
    match clean {
        Some(ok) => {
            METRICS
                .sender_authentication
                .get_or_create(&labels)
                .set(i64::from(ok));
        }
        None => {
            METRICS.sender_authentication.remove(&labels);
        }
    }
}

pub fn complaint() {
    METRICS.complaints.inc();
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What a retention pass deleted, and what is kept after it.
pub fn retention(
    pruned: &std::collections::BTreeMap<&'static str, u64>,
    expired: &std::collections::BTreeMap<String, u64>,
    kept: &std::collections::BTreeMap<&'static str, crate::store::retention::KindStats>,
) {
    for (kind, n) in pruned {
        METRICS
            .pruned
            .get_or_create(&label("kind", kind))
            .inc_by(*n);
    }
    for (tenant, n) in expired {
        METRICS
            .events_expired
            .get_or_create(&label("tenant", tenant))
            .inc_by(*n);
    }
    for (kind, s) in kept {
        let l = label("kind", kind);
        METRICS
            .retained_records
            .get_or_create(&l)
            .set(gauge_value(s.records));
        METRICS
            .retained_bytes
            .get_or_create(&l)
            .set(gauge_value(s.bytes));
        METRICS
            .retained_oldest
            .get_or_create(&l)
            .set(gauge_value(s.oldest.unwrap_or(0)));
    }
}

/// Queues up to this many messages are counted afresh at every scrape.
const QUEUE_RECOUNT_BELOW: u64 = 50_000;
/// A longer queue's count is used for this long, then counted again in the
/// background while scrapes go on with the last one.
const QUEUE_COUNT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30);

/// The last count of the queue, and whether a count runs now.
static QUEUE_COUNT: std::sync::Mutex<
    Option<(std::time::Instant, crate::store::queue::QueueCounts)>,
> = std::sync::Mutex::new(None);
static QUEUE_COUNTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The queue's counts by state for a scrape. Counting reads every entry
/// (`Store::queue_counts`): with a million queued that takes seconds
/// (6.2 s in a dev build), longer than a scrape should. So a long queue's
/// count may be up to QUEUE_COUNT_MAX_AGE old: a scrape that finds it older
/// starts a new count on a thread of its own and answers with the last one.
/// Only the first scrape after start waits for a count.
fn queue_counts(store: &crate::store::Store) -> Option<crate::store::queue::QueueCounts> {
    use std::sync::atomic::Ordering;
    let last = *QUEUE_COUNT.lock().unwrap_or_else(|p| p.into_inner());
    let count_now = |store: &crate::store::Store| {
        let c = store.queue_counts().ok()?;
        *QUEUE_COUNT.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), c));
        Some(c)
    };
    match last {
        Some((_, c)) if c.total() < QUEUE_RECOUNT_BELOW => count_now(store),
        Some((at, c)) if at.elapsed() < QUEUE_COUNT_MAX_AGE => Some(c),
        Some((_, c)) => {
            if !QUEUE_COUNTING.swap(true, Ordering::AcqRel) {
                let store = store.clone();
                std::thread::spawn(move || {
                    count_now(&store);
                    QUEUE_COUNTING.store(false, Ordering::Release);
                });
            }
            Some(c)
        }
        None => count_now(store),
    }
}

/// The text exposition, with the gauges read from the spool first;
/// `webhooks` are the outboxes' status rows (`webhooks::status`), which the
/// caller reads, since webhooks sit on a floor above this one.
pub fn render(store: &crate::store::Store, webhooks: &[serde_json::Value]) -> String {
    if let Some(c) = queue_counts(store) {
        for (state, n) in [
            ("queued", c.queued),
            ("deferred", c.deferred),
            ("held", c.held),
        ] {
            METRICS
                .queue
                .get_or_create(&label("state", state))
                .set(gauge_value(n));
        }
    }
    for r in webhooks {
        let tenant = r["tenant"].as_str().unwrap_or("").to_string();
        let backlog = r["backlog"].as_i64().unwrap_or(0);
        METRICS
            .webhook_backlog
            .get_or_create(&label("tenant", &tenant))
            .set(backlog);
    }
    if let Some((hits, misses)) = store.cache_stats() {
        for (result, n) in [("hit", hits), ("miss", misses)] {
            METRICS
                .consent_cache
                .get_or_create(&label("result", result))
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    let writes = store.commit_stats();
    for (kind, n) in [("commits", writes.commits), ("syncs", writes.syncs)] {
        METRICS
            .spool_writes
            .get_or_create(&label("kind", kind))
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    METRICS
        .store_up
        .get_or_create(&label("backend", store.shared_backend_name()))
        .set(i64::from(store.healthy().is_ok()));
    METRICS.spool_disk.set(gauge_value(store.disk_bytes()));
    let spool = store.memory();
    let process = process_memory();
    for (part, bytes) in [
        ("rss", process.rss),
        ("peak_rss", process.peak_rss),
        ("rss_anon", process.rss_anon),
        ("rss_file", process.rss_file),
        ("memtables", spool.memtables),
        ("memtables_pinned", spool.memtables_pinned),
        ("block_cache", spool.block_cache),
        ("block_cache_pinned", spool.block_cache_pinned),
        ("table_readers", spool.table_readers),
    ] {
        METRICS
            .memory
            .get_or_create(&label("part", part))
            .set(gauge_value(bytes));
    }
    METRICS.threads.set(gauge_value(process.threads));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &METRICS.registry);
    out
}

/// The process's resident set, now and at its peak, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessMemory {
    pub rss: u64,
    pub peak_rss: u64,
    /// The part of `rss` that is anonymous memory (heaps, stacks, caches);
    /// the rest is mostly the program's own file mapped in (`rss_file`).
    pub rss_anon: u64,
    pub rss_file: u64,
    /// Threads of the process now (the runtime's, the blocking pool's,
    /// RocksDB's).
    pub threads: u64,
}

/// Reads `VmRSS`, `VmHWM`, `RssAnon`, `RssFile` and `Threads` from
/// `/proc/self/status` (Linux; zero where the file is not there). No crate
/// reads these few lines more simply.
pub fn process_memory() -> ProcessMemory {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| parse_status(&s))
        .unwrap_or_default()
}

fn parse_status(status: &str) -> ProcessMemory {
    let number = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let kib = |name: &str| number(name) * 1024;
    ProcessMemory {
        rss: kib("VmRSS:"),
        peak_rss: kib("VmHWM:"),
        rss_anon: kib("RssAnon:"),
        rss_file: kib("RssFile:"),
        threads: number("Threads:"),
    }
}

#[cfg(test)]
mod memory_tests {
    #[test]
    fn the_resident_set_is_read_from_proc_status() {
        let m =
            super::parse_status("Name:\tpostwarden\nVmHWM:\t  213000 kB\nVmRSS:\t  181000 kB\nRssAnon:\t  150000 kB\nRssFile:\t   31000 kB\nThreads:\t17\n");
        assert_eq!((m.rss, m.peak_rss), (181_000 * 1024, 213_000 * 1024));
        assert_eq!((m.rss_anon, m.rss_file), (150_000 * 1024, 31_000 * 1024));
        assert_eq!(m.threads, 17);
        assert_eq!(
            super::parse_status("garbage"),
            super::ProcessMemory::default()
        );
        let own = super::process_memory();
        assert!(own.rss > 0 && own.peak_rss >= own.rss, "{own:?}");
    }
}
