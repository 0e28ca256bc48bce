//! The scheduler: takes due messages from the spool's `schedule` index,
//! delivers one copy per recipient (each with its VERP return path), keeps
//! connections per destination for reuse, and writes each outcome back.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::client::{Client, Reply};
use super::route::Router;
use crate::config::shaping::{PathLimits, TlsMode};
use crate::config::EgressSource as Egress;
use crate::feedback::classify::{classify, BounceClass};
use crate::runtime::lanes::{Take, PARKED_MAX};
use crate::runtime::Context;
use crate::shaping::warmup::Subject;
use crate::shaping::{Admit, PathId, Slot};
use crate::store::queue::{QueueEntry, RecipientStatus};
use crate::store::Store;

/// Messages delivered at once, over all destinations. A delivery that
/// waits for a slow receiver costs a socket and a task, not a core: many
/// slow destinations together must not fill the slots the fast ones need
/// (with 100 slow domains of 5 messages each, 256 slots were not enough).
/// What the deliveries hold in memory is bounded by CONTENT_BUDGET_KIB.
const MAX_IN_FLIGHT: usize = 1024;
/// Bytes of message content the deliveries in flight may hold at once
/// (counted in KiB); a delivery waits for its message's share before
/// reading it from the spool.
const CONTENT_BUDGET_KIB: usize = 64 * 1024;
/// Idle connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(15);
/// The schedule index is read at least this often while sessions hand over
/// new messages directly.
const SCAN_INTERVAL: Duration = Duration::from_millis(500);
/// A scan from the very start of the index, at least this often.
const FULL_SCAN: Duration = Duration::from_secs(10);
/// The index's tombstones are compacted away this often.
const COMPACTION_INTERVAL: Duration = Duration::from_secs(60);
/// Egress paths with nothing open, held or waiting are forgotten after this.
const PATH_IDLE_MS: u64 = 600_000;
/// A message put back for a full lane comes again within this many seconds.
const LANE_DELAY_MAX: u64 = 60;

/// How many messages one destination may have in delivery at once: a
/// sixteenth of all the slots (64), so that fifteen slow destinations still
/// leave room for the rest, or twice its connections where more are
/// allowed (the ones beyond its connections wait for the next free one,
/// ready to go).
fn lane_cap(config: &crate::config::Config) -> usize {
    (MAX_IN_FLIGHT / 16)
        .max(2 * config.delivery.max_connections_per_domain)
        .min(MAX_IN_FLIGHT)
}

/// Where a delivery task left its message.
enum Lane {
    /// Parked for a place in its destination's lane: still claimed.
    Parked,
    /// Done with (delivered, deferred, put back, …), holding places in
    /// these lanes until released.
    Left(Vec<String>),
}

/// The sources `tenant`'s mail may leave from now: its pool in its order
/// (every source when it names none) less those out of rotation.
fn egress_pool(config: &crate::config::Config, tenant: &str) -> Vec<Egress> {
    let sources = config.egress_sources();
    let pool: Vec<Egress> = match config.tenant(tenant) {
        Some(t) if !t.sources.is_empty() => t
            .sources
            .iter()
            .filter_map(|name| sources.iter().find(|s| s.name == *name).cloned())
            .collect(),
        _ => sources,
    };
    pool.into_iter().filter(|s| s.enabled).collect()
}

/// Which of `n` sources a message's recipients at `domain` try first: the
/// same each time, spread evenly over messages.
fn rotation(id: &str, domain: &str, n: usize) -> usize {
    use std::hash::{Hash, Hasher};
    // DefaultHasher::new() has fixed keys: the same answer in every run.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (id, domain).hash(&mut h);
    (h.finish() % n.max(1) as u64) as usize
}

/// What the warm-ups let go: `granted` of the recipients asked for; the
/// rest waits until `until_ms` because of `why`. `subjects`: the warm-ups
/// the recipients count for.
struct WarmUp {
    granted: u64,
    until_ms: u64,
    why: String,
    subjects: Vec<Subject>,
}

/// An idle connection kept for reuse, with its place on its egress path.
struct Pooled {
    client: Client,
    slot: Slot,
}

struct Scheduler {
    ctx: Arc<Context>,
    /// The router of the configuration in force, rebuilt after a reload.
    router: Mutex<(Arc<crate::config::Config>, Arc<Router>)>,
    secret: Vec<u8>,
    pools: Mutex<HashMap<String, Vec<Pooled>>>,
    destinations: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// CONTENT_BUDGET_KIB permits: the message content deliveries hold.
    content: Semaphore,
}

/// Runs delivery until the task is aborted.
pub async fn run(ctx: Arc<Context>) {
    let settings = ctx.settings();
    let secret = ctx.secret.clone();
    let scheduler = Arc::new(Scheduler {
        router: Mutex::new((
            settings.config.clone(),
            Arc::new(Router::new(&settings.config.delivery)),
        )),
        ctx: ctx.clone(),
        secret,
        pools: Mutex::new(HashMap::new()),
        destinations: Mutex::new(HashMap::new()),
        content: Semaphore::new(CONTENT_BUDGET_KIB),
    });
    // Where the next scan of the schedule index starts: the first key the
    // last scan found (everything before it has been delivered and deleted).
    // Started from the beginning again every FULL_SCAN, for entries written
    // behind it (a clock set back, a result that could not be recorded).
    let mut from: Option<Vec<u8>> = None;
    let mut last_full = Instant::now();
    let mut last_compaction = Instant::now();
    let mut next_later: Option<u64> = None;
    let mut last_scan: Option<Instant> = None;
    let mut backlog = false;
    let mut last_idle_check = Instant::now();
    loop {
        let now = crate::values::now();
        // Messages just accepted come straight from the sessions.
        let mut ready_empty = false;
        while scheduler.busy() < MAX_IN_FLIGHT {
            let next = lock(&scheduler.ctx.ready).pop_front();
            let Some((when, id)) = next else {
                ready_empty = true;
                break;
            };
            scheduler.start(when, id);
        }
        // The index: for retries, restarts and mail queued elsewhere. Read
        // at least every SCAN_INTERVAL, and sooner when it was asked for, a
        // retry is due, or the last scan found more due than could start
        // (then again as soon as the hand-over is drained). Not after every
        // delivery: each scan steps over the tombstones of the messages
        // delivered since the last one, which cost a sixth of the daemon's
        // CPU when done per delivery.
        let busy = scheduler.busy();
        let requested = scheduler
            .ctx
            .scan_requested
            .load(std::sync::atomic::Ordering::Acquire);
        let periodic = last_scan.is_none_or(|t| t.elapsed() >= SCAN_INTERVAL);
        let retry_due = next_later.is_some_and(|t| t <= now);
        let scan_due = periodic || (ready_empty && (requested || retry_due || backlog));
        // A scan hands out at most twice MAX_IN_FLIGHT messages; it waits
        // until the parking has room for all of them. Otherwise a long line
        // due for one destination (a million after an outage) would be
        // read, parked to the brim, and the rest put back one write each,
        // again and again, while the destination takes what it can. Mail
        // for other destinations handed over by the sessions still goes.
        let parking_room = lock(&scheduler.ctx.lanes).parked() + 2 * MAX_IN_FLIGHT <= PARKED_MAX;
        if !parking_room {
            backlog = true;
        }
        if busy < MAX_IN_FLIGHT && scan_due && parking_room {
            if last_full.elapsed() >= FULL_SCAN {
                from = None;
                last_full = Instant::now();
            }
            last_scan = Some(Instant::now());
            // Cleared before the read, so that a request made during it is
            // kept for the next turn.
            scheduler
                .ctx
                .scan_requested
                .store(false, std::sync::atomic::Ordering::Release);
            let limit = busy + MAX_IN_FLIGHT;
            // Messages in delivery or parked are stepped over, not counted.
            let claimed = |id: &str| scheduler.ctx.in_flight.contains(id);
            match ctx
                .store
                .scan_schedule_skipping(from.as_deref(), now, limit, claimed)
            {
                Ok(scan) => {
                    from = scan.first;
                    next_later = scan.next_later;
                    backlog = scan.due.len() >= limit;
                    for (when, id) in scan.due {
                        if scheduler.busy() >= MAX_IN_FLIGHT {
                            backlog = true;
                            break;
                        }
                        scheduler.start(when, id);
                    }
                }
                Err(e) => warn!("cannot read the schedule: {e}"),
            }
        }
        if last_compaction.elapsed() >= COMPACTION_INTERVAL {
            last_compaction = Instant::now();
            let store = ctx.store.clone();
            tokio::task::spawn_blocking(move || store.compact_schedule());
        }
        // Idle connections are looked for once a second, not at every turn
        // (a turn per delivery under load).
        if last_idle_check.elapsed() >= Duration::from_secs(1) {
            last_idle_check = Instant::now();
            scheduler.close_idle_connections();
            scheduler
                .ctx
                .shaper
                .prune(PATH_IDLE_MS, crate::values::clock::now_millis());
        }
        let wait = match next_later {
            Some(t) if t > now => Duration::from_secs((t - now).min(5)),
            _ => Duration::from_secs(1),
        };
        tokio::select! {
            _ = ctx.queued.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Says QUIT on an idle connection, then frees its place on its path.
async fn close(pooled: Pooled) {
    pooled.client.quit().await;
    drop(pooled.slot);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The result of one attempt for one recipient.
struct Attempt {
    index: usize,
    reply: Reply,
    relay: String,
    /// Set when the recipient waits for its egress path instead: a rate,
    /// a suspension, or a reply that a shaping rule says is the path's.
    wait: Option<Wait>,
}

/// A recipient waits, without an attempt counted, until `until` (Unix
/// seconds).
struct Wait {
    until: u64,
    why: String,
    provider: String,
    /// The wait is the remote server's reply (a rule matched it), not a
    /// limit of ours.
    replied: bool,
}

impl Attempt {
    fn reply(index: usize, reply: Reply, relay: String) -> Attempt {
        Attempt {
            index,
            reply,
            relay,
            wait: None,
        }
    }

    /// A wait before anything was sent: no reply of the remote server.
    fn wait(index: usize, until_ms: u64, why: String, path: &PathId) -> Attempt {
        Attempt {
            index,
            reply: Reply {
                code: 451,
                status: "4.7.0".into(),
                text: why.clone(),
            },
            relay: "none".into(),
            wait: Some(Wait {
                until: until_ms.div_ceil(1000),
                why,
                provider: path.provider.clone(),
                replied: false,
            }),
        }
    }
}

impl Scheduler {
    /// Delivers `id` in a task of its own, unless it is being delivered or
    /// changed by the postmaster already.
    fn start(self: &Arc<Self>, when: u64, id: String) {
        if !self.ctx.in_flight.claim(&id) {
            return;
        }
        self.spawn_delivery(when, id, None);
    }

    /// The task of one claimed message (`turn`: the lane it was parked in,
    /// whose place it now has); when it is done, the parked messages whose
    /// turn its places give go next.
    fn spawn_delivery(self: &Arc<Self>, when: u64, id: String, turn: Option<String>) {
        let s = self.clone();
        tokio::spawn(async move {
            let Lane::Left(keys) = s.deliver(when, &id, turn.is_some()).await else {
                return;
            };
            s.ctx.in_flight.release(&id);
            let next = {
                let mut lanes = lock(&s.ctx.lanes);
                let mut next = lanes.leave(&keys);
                if keys.is_empty() {
                    // Its turn came and it did not go (deleted, held,
                    // rescheduled meanwhile): the next one in its lane goes.
                    next.extend(turn.and_then(|lane| lanes.next(&lane)));
                }
                next
            };
            for t in next {
                s.spawn_delivery(t.when, t.id, Some(t.lane));
            }
            s.ctx.queued.notify_one();
        });
    }

    /// Delivery slots in use: the messages claimed, less those parked.
    fn busy(&self) -> usize {
        let parked = lock(&self.ctx.lanes).parked();
        self.ctx.in_flight.len().saturating_sub(parked)
    }

    fn close_idle_connections(&self) {
        let mut stale = Vec::new();
        {
            let mut pools = lock(&self.pools);
            for clients in pools.values_mut() {
                let (keep, old): (Vec<Pooled>, Vec<Pooled>) = clients
                    .drain(..)
                    .partition(|c| c.client.last_used.elapsed() < POOL_IDLE);
                *clients = keep;
                stale.extend(old);
            }
            pools.retain(|_, clients| !clients.is_empty());
        }
        for c in stale {
            tokio::spawn(close(c));
        }
    }

    /// Closes one idle connection of `path`, for a delivery that waits for
    /// a place on it; whether there was one.
    fn evict_idle(&self, path: &PathId) -> bool {
        let mut pools = lock(&self.pools);
        for clients in pools.values_mut() {
            if let Some(i) = clients.iter().position(|c| c.slot.path == *path) {
                tokio::spawn(close(clients.swap_remove(i)));
                return true;
            }
        }
        false
    }

    /// The router for `config`: the cached one unless the configuration was
    /// reloaded since (routes, relay host, nameservers may have changed).
    fn router(&self, config: &Arc<crate::config::Config>) -> Arc<Router> {
        let mut cached = lock(&self.router);
        if !Arc::ptr_eq(&cached.0, config) {
            *cached = (config.clone(), Arc::new(Router::new(&config.delivery)));
        }
        cached.1.clone()
    }

    fn destination_permit(&self, key: &str, limit: usize) -> Arc<Semaphore> {
        lock(&self.destinations)
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(limit.max(1))))
            .clone()
    }

    /// Delivers `id` if its destinations' lanes have room (`forced`: its
    /// parked turn came), else parks it or puts it back in the schedule;
    /// the lanes it holds a place in when done.
    async fn deliver(&self, scheduled: u64, id: &str, forced: bool) -> Lane {
        let store = &self.ctx.store;
        let entry = match store.queue_entry(id) {
            Ok(Some(e)) => e,
            Ok(None) => {
                // Deleted by an admin: drop the stale schedule slot.
                let ghost = QueueEntry::new(id.into(), "", "", Vec::new(), scheduled);
                let _ = store.write_relaxed(Store::delete_entry_ops(&ghost));
                return Lane::Left(Vec::new());
            }
            Err(e) => {
                warn!("{id}: cannot read queue entry: {e}");
                return Lane::Left(Vec::new());
            }
        };
        if entry.next_attempt != scheduled {
            // A stale slot (handed over twice, or the entry was rescheduled
            // meanwhile): the entry's own slot will come.
            return Lane::Left(Vec::new());
        }
        let settings = self.ctx.settings();
        let config = &settings.config;
        let tenant_state = crate::tenant::state(store, &entry.tenant).unwrap_or_default();
        let mut entry = entry;
        if entry.held || tenant_state.suspended.is_some() {
            // Held mail waits for `queue release` (or the tenant's resume).
            entry.held = true;
            let _ = store
                .commit(Store::update_entry_ops(&entry, Some(scheduled)))
                .await;
            info!("{id}: held");
            return Lane::Left(Vec::new());
        }
        let mut by_domain: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, r) in entry.recipients.iter().enumerate() {
            if !r.status.is_final() {
                let domain = r
                    .address
                    .rsplit_once('@')
                    .map(|(_, d)| d.to_ascii_lowercase())
                    .unwrap_or_default();
                by_domain.entry(domain).or_default().push(i);
            }
        }
        let router = self.router(config);
        let mut keys: Vec<String> = by_domain
            .keys()
            .map(|d| router.destination_key(d))
            .collect();
        keys.sort();
        keys.dedup();
        let took = lock(&self.ctx.lanes).take(&keys, lane_cap(config), scheduled, id, forced);
        match took {
            Take::Go => {}
            Take::Parked => return Lane::Parked,
            Take::Full => {
                self.delay_for_lane(entry, scheduled, &keys).await;
                return Lane::Left(Vec::new());
            }
        }
        // Read only now: a parked message holds no content in memory; and
        // only within the budget (a message larger than all of it takes
        // all of it).
        let kib = u32::try_from(entry.size.div_ceil(1024).clamp(1, CONTENT_BUDGET_KIB))
            .unwrap_or(u32::MAX);
        let Ok(_content) = self.content.acquire_many(kib).await else {
            return Lane::Left(keys);
        };
        match store.message(id) {
            Ok(Some(message)) => {
                self.attempt(scheduled, entry, &message, by_domain, config)
                    .await;
            }
            Ok(None) => {
                warn!("{id}: queue entry without message; removing");
                let _ = store.commit(Store::delete_entry_ops(&entry)).await;
            }
            Err(e) => warn!("{id}: cannot read message: {e}"),
        }
        Lane::Left(keys)
    }

    /// Puts a message whose lanes and the parking are full back in the
    /// schedule, a random part of a minute later (so that the ones put
    /// back together do not all come back at once); no attempt is counted.
    async fn delay_for_lane(&self, mut entry: QueueEntry, scheduled: u64, keys: &[String]) {
        use rand::Rng;
        let delay = rand::thread_rng().gen_range(1..=LANE_DELAY_MAX);
        entry.next_attempt = crate::values::now() + delay;
        crate::metrics::lane_delayed();
        if let Err(e) = self
            .ctx
            .store
            .commit_unsynced(Store::update_entry_ops(&entry, Some(scheduled)))
            .await
        {
            warn!("{}: cannot put back in the schedule: {e}", entry.id);
            return;
        }
        info!(
            "{}: delayed {delay}s: the lane of {} and the parking ({} messages) are full",
            entry.id,
            keys.join(", "),
            PARKED_MAX
        );
    }

    /// One attempt for every recipient of `entry` not yet final, grouped by
    /// domain, and its results written back; `config`: the one in force
    /// when the delivery began.
    async fn attempt(
        &self,
        scheduled: u64,
        mut entry: QueueEntry,
        message: &[u8],
        by_domain: BTreeMap<String, Vec<usize>>,
        config: &crate::config::Config,
    ) {
        let store = &self.ctx.store;
        let id = entry.id.clone();
        let id = id.as_str();
        let started = Instant::now();
        let mut attempts = Vec::new();
        let mut events = Vec::new();
        for (domain, indices) in by_domain {
            attempts.extend(
                self.deliver_domain(&entry, message, &domain, &indices, &mut events)
                    .await,
            );
        }
        let now = crate::values::now();
        let expired = now.saturating_sub(entry.received_at) >= config.delivery.expiry;
        let mut deferred_any = 0u64;
        let mut wait_until: Option<u64> = None;
        let mut bounces = Vec::new();
        let mut delivered_to = Vec::new();
        let mut failed_now = Vec::new();
        for a in &attempts {
            let r = &mut entry.recipients[a.index];
            if let Some(wait) = &a.wait {
                // Waiting for the path is not an attempt: no back-off, no
                // bounce, nothing counted against the recipient, until the
                // message's expiry, which is told to the sender as ever.
                if wait.replied {
                    r.dsn = Some(a.reply.status.clone());
                }
                if wait.replied || r.last_reply.is_none() {
                    r.last_reply = Some(a.reply.line());
                }
                if expired {
                    r.last_reply = Some(format!(
                        "message expired after {} days waiting for its egress path: {}",
                        config.delivery.expiry / 86400,
                        wait.why
                    ));
                    r.dsn = Some("4.4.7".into());
                    r.status = RecipientStatus::Failed;
                    failed_now.push((a.index, a.relay.as_str()));
                    events.push(serde_json::json!({
                        "type": "bounced", "at": now, "tenant": entry.tenant, "queue_id": id,
                        "recipient": r.address, "status": r.dsn, "reply": r.last_reply,
                        "message_id": entry.message_id,
                    }));
                } else {
                    wait_until = Some(wait_until.map_or(wait.until, |w| w.min(wait.until)));
                    crate::metrics::shaping_wait(&wait.provider);
                }
                info!(
                    service = "smtp",
                    "{id}: to=<{}>, relay={}, delay={}, dsn={}, status={} ({})",
                    r.address,
                    a.relay,
                    now.saturating_sub(entry.received_at),
                    r.dsn.as_deref().unwrap_or(""),
                    if expired { "expired" } else { "waiting" },
                    if expired {
                        r.last_reply.as_deref().unwrap_or("")
                    } else {
                        wait.why.as_str()
                    },
                );
                continue;
            }
            r.attempts += 1;
            r.dsn = Some(a.reply.status.clone());
            r.last_reply = Some(a.reply.line());
            let (status, word) = if a.reply.is_positive() {
                (RecipientStatus::Delivered, "sent")
            } else if a.reply.is_permanent() {
                (RecipientStatus::Failed, "bounced")
            } else if expired {
                r.last_reply = Some(format!(
                    "message expired after {} days: {}",
                    config.delivery.expiry / 86400,
                    a.reply.line()
                ));
                r.dsn = Some("4.4.7".into());
                (RecipientStatus::Failed, "expired")
            } else {
                deferred_any += 1;
                (RecipientStatus::Deferred, "deferred")
            };
            r.status = status;
            crate::metrics::delivery(word, started.elapsed().as_secs_f64());
            let delay = now.saturating_sub(entry.received_at);
            info!(
                service = "smtp",
                "{id}: to=<{}>, relay={}, delay={delay}, delays=0/0/{:.2}/0, dsn={}, status={word} ({})",
                r.address,
                a.relay,
                started.elapsed().as_secs_f64(),
                r.dsn.as_deref().unwrap_or(""),
                r.last_reply.as_deref().unwrap_or("")
            );
            events.push(serde_json::json!({
                "type": match status { RecipientStatus::Delivered => "delivered", RecipientStatus::Failed => "bounced", _ => "deferred" },
                "at": now, "tenant": entry.tenant, "queue_id": id, "recipient": r.address,
                "status": r.dsn, "reply": r.last_reply, "message_id": entry.message_id,
            }));
            if status == RecipientStatus::Delivered {
                delivered_to.push(r.address.clone());
            }
            if status == RecipientStatus::Failed {
                failed_now.push((a.index, a.relay.as_str()));
                let reply = r.last_reply.clone().unwrap_or_default();
                let class = classify(r.dsn.as_deref(), &reply);
                bounces.push((r.address.clone(), class, reply));
            }
        }
        let old_next = scheduled;
        let retry = (deferred_any > 0).then(|| {
            let tries = entry
                .recipients
                .iter()
                .filter(|r| !r.status.is_final())
                .map(|r| r.attempts)
                .max()
                .unwrap_or(1);
            now + backoff(config.delivery.retry_base, config.delivery.retry_max, tries)
        });
        // The earlier of the two: a recipient that waits for its path's
        // slot comes back at the slot, and one that was deferred with it
        // is tried again then too.
        if let Some(next) = [retry, wait_until].into_iter().flatten().min() {
            entry.next_attempt = next.max(now);
        }
        let mut ops = Store::update_entry_ops(&entry, Some(old_next));
        ops.extend(events.iter().map(Store::event_op));
        // The failure notice is queued in the same write as the failure, so a
        // crash neither loses it nor sends it twice.
        let notice = self
            .failure_notice(&entry, message, &failed_now, config, now)
            .map(|(notice, bytes)| crate::accept::Ready::notice(notice, bytes));
        if let Some(notice) = &notice {
            ops.extend(notice.ops());
        }
        // Unsynced: a result lost to a power cut only sends the message again.
        if let Err(e) = store.commit_unsynced(ops).await {
            warn!("{id}: cannot record delivery results: {e}");
            return;
        }
        if let Some(notice) = &notice {
            info!(
                service = "bounce",
                "{}: sender non-delivery notification: {id} to=<{}>",
                notice.entry.id,
                notice.entry.recipients[0].address
            );
            notice.hand_over(&self.ctx);
        }
        if entry.notice {
            // Our own notices count for no tenant and are never answered.
            if entry.is_done() {
                info!("{id}: removed");
            }
            return;
        }
        let delivered = attempts.iter().filter(|a| a.reply.is_positive()).count() as u64;
        let deferred = deferred_any;
        if delivered > 0 || !bounces.is_empty() || deferred > 0 {
            let n = bounces.len() as u64;
            let hard = bounces
                .iter()
                .filter(|(_, c, _)| c.class == BounceClass::Hard)
                .count() as u64;
            for _ in 0..hard {
                crate::metrics::bounce("hard");
            }
            for _ in hard..n {
                crate::metrics::bounce("soft");
            }
            store.pending_counts().add(&entry.tenant, |c| {
                c.deliveries(now, delivered);
                c.bounced += n;
                c.hard_bounces += hard;
                c.soft_bounces += n - hard;
                c.deferred += deferred;
            });
        }
        if entry.is_done() {
            info!("{id}: removed");
        }
        let list = entry.list.as_deref().unwrap_or_default();
        for address in delivered_to {
            // Almost always a cached "no soft bounces": no read, no write.
            // Otherwise off the worker (the store may be PostgreSQL).
            if crate::consent::cached_soft_bounces(store, &entry.tenant, list, &address)
                == Some(false)
            {
                continue;
            }
            let list = list.to_string();
            let store = store.clone();
            let tenant = entry.tenant.clone();
            let result = tokio::task::spawn_blocking(move || {
                crate::feedback::bounce::record_delivery(&store, &tenant, Some(&list), &address)
                    .map(|cleared| (cleared, address))
            })
            .await;
            match result {
                Ok(Ok((true, address))) => {
                    info!("{id}: <{address}>: soft bounces cleared by the delivery")
                }
                Ok(Ok((false, _))) => {}
                Ok(Err(e)) => warn!("{id}: cannot clear soft bounces: {e}"),
                Err(e) => warn!("{id}: cannot clear soft bounces: {e}"),
            }
        }
        if let Some(tenant_config) = config.tenant(&entry.tenant).cloned() {
            for (address, c, reply) in bounces {
                if c.class == BounceClass::Unknown {
                    continue;
                }
                let store = store.clone();
                let tenant_config = tenant_config.clone();
                let tenant = entry.tenant.clone();
                let list = entry.list.clone();
                let result = tokio::task::spawn_blocking(move || {
                    crate::feedback::bounce::record_bounce(
                        &store,
                        &tenant,
                        &tenant_config,
                        list.as_deref(),
                        &address,
                        c,
                        "smtp",
                        &reply,
                    )
                    .map(|s| (s, address))
                })
                .await;
                match result {
                    Ok(Ok((true, address))) => {
                        info!(
                            "{id}: <{address}> suppressed for {}: {} bounce ({})",
                            entry.tenant,
                            if c.class == BounceClass::Hard {
                                "hard"
                            } else {
                                "soft"
                            },
                            c.reason
                        )
                    }
                    Ok(Err(e)) => warn!("{id}: cannot record bounce: {e}"),
                    _ => {}
                }
            }
        }
    }

    /// Delivers the given recipients of one domain, one transaction each,
    /// within the limits of the domain's egress paths: the tenant's sources
    /// in rotation, each within its rates and its warm-up. The activations
    /// of shaping rules go to `events`.
    async fn deliver_domain(
        &self,
        entry: &QueueEntry,
        message: &[u8],
        domain: &str,
        indices: &[usize],
        events: &mut Vec<serde_json::Value>,
    ) -> Vec<Attempt> {
        let settings = self.ctx.settings();
        let config = &settings.config;
        let router = self.router(config);
        let key = router.destination_key(domain);
        let targets = match router.resolve(domain).await {
            Ok(t) => t,
            Err(e) => {
                let (status, permanent) = e.status();
                let code = if permanent { 550 } else { 451 };
                return indices
                    .iter()
                    .map(|&index| {
                        let reply = Reply {
                            code,
                            status: status.into(),
                            text: e.to_string(),
                        };
                        Attempt::reply(index, reply, "none".into())
                    })
                    .collect();
            }
        };
        // Providers by MX rollup only where the MX hosts are the provider's:
        // through relay_host or a route, only by the domains they list.
        let by_mx = key.starts_with("mx:");
        let hosts: Vec<String> = targets.iter().map(|t| t.host.clone()).collect();
        let mx_hosts = by_mx.then_some(&hosts[..]);
        let per_domain =
            u32::try_from(config.delivery.max_connections_per_domain).unwrap_or(u32::MAX);
        let shaper = &self.ctx.shaper;
        let pool = egress_pool(config, &entry.tenant);
        let mut out = Vec::new();
        if pool.is_empty() {
            // Every source of the tenant's pool is out of rotation: the mail
            // waits for one to come back, as for any limit of ours.
            let (path, _) = PathId::of(&config.shaping, "none", domain, mx_hosts);
            let why = format!(
                "no egress source of tenant {} is in rotation ([delivery.sources] enabled)",
                entry.tenant
            );
            warn!("{}: {why}", entry.id);
            let until_ms = crate::values::clock::now_millis()
                + config.delivery.retry_base.saturating_mul(1000);
            return indices
                .iter()
                .map(|&i| Attempt::wait(i, until_ms, why.clone(), &path))
                .collect();
        }
        // The same first source for the same message and domain each time,
        // so that a recipient comes back to the slot it reserved; the next
        // ones take what the first's warm-up cap leaves.
        let start = rotation(&entry.id, domain, pool.len());
        let mut left: Vec<usize> = indices.to_vec();
        let mut capped: Vec<Attempt> = Vec::new();
        let mut groups = Vec::new();
        for k in 0..pool.len() {
            if left.is_empty() {
                break;
            }
            let source = &pool[(start + k) % pool.len()];
            let (path, limits) = PathId::of(&config.shaping, &source.name, domain, mx_hosts);
            let limits = limits.clone();
            let now_ms = crate::values::clock::now_millis();
            let mut go = Vec::new();
            for &index in &left {
                match shaper.admit(&path, (&entry.id, index), &limits, per_domain, now_ms) {
                    Admit::Go => go.push(index),
                    Admit::Wait { until_ms, why } => {
                        out.push(Attempt::wait(index, until_ms, why, &path))
                    }
                }
            }
            let warm = self.warm_up(entry, source, &path, go.len() as u64).await;
            let rest = go.split_off((warm.granted as usize).min(go.len()));
            capped = rest
                .iter()
                .map(|&i| Attempt::wait(i, warm.until_ms, warm.why.clone(), &path))
                .collect();
            left = rest;
            if !go.is_empty() {
                groups.push((source.clone(), path, limits, go, warm.subjects));
            }
        }
        // What no source's warm-up had room for waits for the next day.
        out.extend(capped);
        for (source, path, limits, go, subjects) in groups {
            let sent = self
                .deliver_on_path(
                    entry, message, domain, &key, &targets, &source, &path, &limits, &go, events,
                )
                .await;
            if !subjects.is_empty() {
                let bounced = sent
                    .iter()
                    .filter(|a| a.wait.is_none() && a.reply.is_permanent())
                    .count() as u64;
                self.record_warm_up(subjects, bounced).await;
            }
            out.extend(sent);
        }
        out
    }

    /// How many of `wanted` recipients the warm-ups of `source` and of the
    /// message's sender domain let go to `path`'s provider today.
    async fn warm_up(
        &self,
        entry: &QueueEntry,
        source: &Egress,
        path: &PathId,
        wanted: u64,
    ) -> WarmUp {
        let settings = self.ctx.settings();
        let config = &settings.config;
        let mut subjects = Vec::new();
        if let (Some(domain), Some(tenant)) = (&entry.sender_domain, config.tenant(&entry.tenant)) {
            if tenant.warmup {
                subjects.push(Subject::Domain {
                    tenant: entry.tenant.clone(),
                    domain: domain.clone(),
                });
            }
        }
        if source.warmup {
            subjects.push(Subject::Source(source.name.clone()));
        }
        // A warm-up known to be over needs no trip to the store: most
        // messages, once their domain and source are warm, make none.
        subjects.retain(|s| !self.ctx.shaper.warmups.is_over(s));
        if subjects.is_empty() || wanted == 0 {
            return WarmUp {
                granted: wanted,
                until_ms: 0,
                why: String::new(),
                subjects,
            };
        }
        let ctx = self.ctx.clone();
        let shaping = config.shaping.clone();
        let provider = path.provider.clone();
        let asked = subjects.clone();
        let now_ms = crate::values::clock::now_millis();
        let result = tokio::task::spawn_blocking(move || {
            // Each subject in turn gives at most what the one before gave;
            // what an earlier one gave beyond that is given back.
            let warmups = &ctx.shaper.warmups;
            let mut granted = wanted;
            let mut taken: Vec<(&Subject, u64)> = Vec::new();
            let mut why = None;
            for subject in &asked {
                let g = warmups.take(&ctx.store, &shaping, subject, &provider, granted, now_ms)?;
                granted = g.n;
                taken.push((subject, g.n));
                if let Some(c) = g.capped {
                    why = Some((
                        c.until_ms,
                        format!(
                            "warm-up of {subject}: day {} cap of {} to {provider} reached",
                            c.day, c.cap
                        ),
                    ));
                }
            }
            for (subject, n) in taken {
                warmups.give_back(&ctx.store, subject, &provider, n - granted, now_ms)?;
            }
            Ok::<_, crate::store::StoreError>((granted, why))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
        match result {
            Ok((granted, why)) => {
                let (until_ms, why) = why.unwrap_or_default();
                if granted < wanted {
                    crate::metrics::shaping_warmup_wait(&path.provider, wanted - granted);
                }
                WarmUp {
                    granted,
                    until_ms,
                    why,
                    subjects,
                }
            }
            // The counters cannot be read: nothing goes beyond what they
            // would allow, so nothing goes; it is tried again in a minute.
            Err(e) => WarmUp {
                granted: 0,
                until_ms: now_ms + 60_000,
                why: format!("warm-up counters unavailable: {e}"),
                subjects,
            },
        }
    }

    /// Counts refusals for the warm-ups' daily bounce rates.
    async fn record_warm_up(&self, subjects: Vec<Subject>, bounced: u64) {
        if bounced == 0 {
            return;
        }
        let ctx = self.ctx.clone();
        let now_ms = crate::values::clock::now_millis();
        let result = tokio::task::spawn_blocking(move || {
            for s in &subjects {
                ctx.shaper
                    .warmups
                    .record(&ctx.store, s, bounced, 0, now_ms)?;
            }
            Ok::<_, crate::store::StoreError>(())
        })
        .await;
        if let Ok(Err(e)) = result {
            warn!("cannot count bounces for the warm-up: {e}");
        }
    }

    /// Sends to `indices` over connections of `source` on `path`.
    #[allow(clippy::too_many_arguments)]
    async fn deliver_on_path(
        &self,
        entry: &QueueEntry,
        message: &[u8],
        domain: &str,
        key: &str,
        targets: &[super::route::Target],
        source: &Egress,
        path: &PathId,
        limits: &PathLimits,
        indices: &[usize],
        events: &mut Vec<serde_json::Value>,
    ) -> Vec<Attempt> {
        let settings = self.ctx.settings();
        let config = &settings.config;
        let shaper = &self.ctx.shaper;
        let per_domain =
            u32::try_from(config.delivery.max_connections_per_domain).unwrap_or(u32::MAX);
        let mut out = Vec::new();
        let by_mx = key.starts_with("mx:");
        // Connections are bound to their source: pooled per source.
        let pool_key = format!("{}\0{key}", source.name);
        let permit_pool = self.destination_permit(key, config.delivery.max_connections_per_domain);
        let Ok(_permit) = permit_pool.acquire_owned().await else {
            return out;
        };
        // A provider's TLS requirement is about its own servers, not a relay.
        let require_tls = config
            .delivery
            .require_tls
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
            || (by_mx && limits.tls == TlsMode::Required);
        let max_per_connection = match limits.messages_per_connection as usize {
            0 => config.delivery.max_messages_per_connection,
            n => n.min(config.delivery.max_messages_per_connection.max(1)),
        };
        let (mut client, mut slot) = (None, None);
        for &index in indices {
            if let Some(until_ms) = shaper.suspended_until(path, crate::values::clock::now_millis())
            {
                // Suspended by a reply to an earlier recipient.
                let why = format!("path {path} suspended");
                out.push(Attempt::wait(index, until_ms, why, path));
                continue;
            }
            if slot.is_none() {
                let (reused, place) = self.connection(&pool_key, path, limits, per_domain).await;
                client = reused;
                slot = Some(place);
            }
            if client.is_none() {
                let delay = shaper.connect_delay(
                    path,
                    limits,
                    per_domain,
                    crate::values::clock::now_millis(),
                );
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                match self.connect(targets, require_tls, source).await {
                    Ok(c) => client = Some(c),
                    Err(reply) => {
                        let attempt = self.shaped(entry, index, reply, "none".into(), path, events);
                        out.push(attempt);
                        continue;
                    }
                }
            }
            let Some(c) = client.as_mut() else { continue };
            let recipient = &entry.recipients[index];
            let copy = if entry.notice {
                message.to_vec()
            } else {
                self.personalise(entry, index, message, config, &source.name)
            };
            let sender = if entry.sender.is_empty() {
                String::new()
            } else {
                format!(
                    "{}@{}",
                    crate::token::verp_local_part(&self.secret, &entry.id, index),
                    config.feedback.domain
                )
            };
            let relay = format!("{}[{}]:{}", c.host, c.addr.ip(), c.addr.port());
            match c
                .send_message(&sender, &recipient.address, &copy, entry.smtputf8)
                .await
            {
                Ok(outcome) => {
                    if outcome.reply.is_positive() {
                        shaper.sent(path, crate::values::clock::now_millis());
                    }
                    out.push(self.shaped(entry, index, outcome.reply, relay, path, events));
                    if !outcome.reusable {
                        if let Some(c) = client.take() {
                            tokio::spawn(c.quit());
                        }
                    }
                }
                Err(e) => {
                    out.push(self.shaped(entry, index, e.as_reply(), relay, path, events));
                    client = None;
                }
            }
            if client
                .as_ref()
                .is_some_and(|c| c.transactions >= max_per_connection)
            {
                if let Some(c) = client.take() {
                    tokio::spawn(c.quit());
                }
            }
        }
        match (client, slot) {
            (Some(client), Some(slot)) if !client.broken => {
                lock(&self.pools)
                    .entry(pool_key)
                    .or_default()
                    .push(Pooled { client, slot });
                // A delivery waiting for a place on the path may reuse it.
                shaper.wake(path);
            }
            (Some(client), _) => {
                tokio::spawn(client.quit());
            }
            _ => {}
        }
        out
    }

    /// A connection for `key` on `path`: an idle one of the pool with its
    /// place, else a place for a new one (None: connect), closing an idle
    /// connection of the path to another destination to make room, else
    /// waiting until one is freed or given back to the pool.
    async fn connection(
        &self,
        key: &str,
        path: &PathId,
        limits: &PathLimits,
        per_domain: u32,
    ) -> (Option<Client>, Slot) {
        let shaper = &self.ctx.shaper;
        loop {
            if let Some(p) = lock(&self.pools).get_mut(key).and_then(|v| v.pop()) {
                return (Some(p.client), p.slot);
            }
            match shaper.try_connection(
                path,
                limits,
                per_domain,
                crate::values::clock::now_millis(),
            ) {
                Ok(slot) => return (None, slot),
                Err(notify) => {
                    if !self.evict_idle(path) {
                        // Looked at again twice a second as well, for a
                        // throttle that ended.
                        let _ = tokio::time::timeout(Duration::from_millis(500), notify.notified())
                            .await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
    }

    /// The attempt a reply makes: the recipient's, or, when a shaping rule
    /// says the reply is about the path, a wait (whatever its code) and,
    /// when it activated the rule, an event, a log line and a count.
    fn shaped(
        &self,
        entry: &QueueEntry,
        index: usize,
        reply: Reply,
        relay: String,
        path: &PathId,
        events: &mut Vec<serde_json::Value>,
    ) -> Attempt {
        if reply.is_positive() {
            return Attempt::reply(index, reply, relay);
        }
        let settings = self.ctx.settings();
        let config = &settings.config;
        let line = reply.line();
        let now_ms = crate::values::clock::now_millis();
        let Some(reaction) =
            self.ctx
                .shaper
                .observe(path, &config.shaping.rules, &reply.status, &line, now_ms)
        else {
            return Attempt::reply(index, reply, relay);
        };
        if let Some(a) = &reaction.activated {
            let until = a.until_ms / 1000;
            info!(
                service = "shaping",
                "{}: path {path}: rule {} activated: {} until {until} ({line})",
                entry.id,
                reaction.rule,
                a.action,
            );
            crate::metrics::shaping_activation(&path.provider, &reaction.rule, a.action);
            if a.action != "defer" {
                // Kept across a restart; written beside this attempt.
                let ctx = self.ctx.clone();
                tokio::spawn(async move { ctx.save_shaping_holds().await });
            }
            events.push(serde_json::json!({
                "type": "provider_throttled", "at": now_ms / 1000, "tenant": entry.tenant,
                "queue_id": entry.id, "source": path.source,
                "provider": path.provider, "path": path.to_string(), "rule": reaction.rule,
                "action": a.action, "until": until, "reply": line,
            }));
        }
        let until_ms = reaction
            .retry_at_ms
            .unwrap_or(now_ms + config.delivery.retry_base.saturating_mul(1000));
        let why = format!("shaping rule {}: {line}", reaction.rule);
        Attempt {
            index,
            wait: Some(Wait {
                until: until_ms.div_ceil(1000),
                why,
                provider: path.provider.clone(),
                replied: true,
            }),
            reply,
            relay,
        }
    }

    async fn connect(
        &self,
        targets: &[super::route::Target],
        require_tls: bool,
        source: &Egress,
    ) -> Result<Client, Reply> {
        let settings = self.ctx.settings();
        let d = &settings.config.delivery;
        let mut last = Reply {
            code: 451,
            status: "4.4.1".into(),
            text: "no address to connect to".into(),
        };
        for t in targets {
            // A source sends to addresses of its own family only.
            for addr in t
                .addrs
                .iter()
                .filter(|a| source.address.is_none_or(|b| b.is_ipv4() == a.is_ipv4()))
            {
                match Client::connect(
                    &t.host,
                    *addr,
                    source.address,
                    &source.ehlo,
                    require_tls,
                    Duration::from_secs(d.connect_timeout),
                    Duration::from_secs(d.command_timeout),
                )
                .await
                {
                    Ok(c) => return Ok(c),
                    Err(e) => {
                        warn!(
                            "connect to {}[{}]:{} from source {}: {e}",
                            t.host,
                            addr.ip(),
                            addr.port(),
                            source.name
                        );
                        last = e.as_reply();
                    }
                }
            }
        }
        Err(last)
    }

    /// The RFC 3464 notice to the tenant's `bounce_notify` about the recipients
    /// that failed for good in this attempt and asked for one (NOTIFY).
    fn failure_notice(
        &self,
        entry: &QueueEntry,
        message: &[u8],
        failed: &[(usize, &str)],
        config: &crate::config::Config,
        now: u64,
    ) -> Option<(QueueEntry, Vec<u8>)> {
        if entry.notice {
            return None;
        }
        let to = config.tenant(&entry.tenant)?.bounce_notify.as_deref()?;
        let failures: Vec<_> = failed
            .iter()
            .filter(|(i, _)| super::dsn::wanted(&entry.recipients[*i]))
            .map(|&(i, relay)| super::dsn::Failure {
                recipient: &entry.recipients[i],
                relay,
            })
            .collect();
        if failures.is_empty() {
            return None;
        }
        Some(super::dsn::failure_notice(
            &config.server.hostname,
            entry,
            &failures,
            message,
            to,
            now,
        ))
    }

    /// The copy for one recipient: tracking headers that let bounces and
    /// complaints be mapped back even when a provider redacts the recipient.
    fn personalise(
        &self,
        entry: &QueueEntry,
        index: usize,
        message: &[u8],
        config: &crate::config::Config,
        source: &str,
    ) -> Vec<u8> {
        let token = crate::token::verp_local_part(&self.secret, &entry.id, index);
        let token = token.trim_start_matches("b-");
        let list = entry.list.as_deref().unwrap_or("none");
        // A named source goes after the token, signed, so that a complaint
        // about the copy counts for that source's warm-up.
        let source = if source == crate::shaping::SOURCE {
            String::new()
        } else {
            format!(
                " source={}",
                crate::token::source_mark(&self.secret, &entry.id, index, source)
            )
        };
        let mut headers = format!(
            "Feedback-ID: {}:{}:bulk:{}\r\nX-Postwarden-Tracking: {token}{source}\r\n",
            sanitize(list),
            sanitize(&entry.tenant),
            sanitize(&config.server.hostname),
        );
        let managed;
        let message = if entry.per_recipient_copies {
            // Managed unsubscribe (policy issue): our own signed one-click link
            // replaces whatever the sender wrote.
            let token =
                crate::token::recipient_token(&self.secret, "unsubscribe", &entry.id, index);
            let base = config.public_base_url();
            headers.push_str(&format!(
                "List-Unsubscribe: <{}/u/{token}>, <mailto:unsubscribe+{token}@{}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
                base,
                config.feedback.domain
            ));
            let stripped = crate::message::strip_headers(
                message,
                &["list-unsubscribe", "list-unsubscribe-post"],
            );
            let template = config
                .tenant(&entry.tenant)
                .and_then(|t| t.unsubscribe_footer.as_deref())
                .unwrap_or(crate::message::footer::DEFAULT_FOOTER);
            let url = format!("{base}/u/{token}");
            managed = crate::message::footer::append(&stripped, template, &url).unwrap_or(stripped);
            &managed[..]
        } else {
            message
        };
        if let Some(sig) = crate::queue::dkim::sign(config, &entry.tenant, &headers, message) {
            headers.insert_str(0, &sig);
        }
        crate::message::prepend_headers(&headers, message)
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect()
}

/// Seconds until the next attempt after `tries` attempts: doubling from `base`, capped at `max`.
pub fn backoff(base: u64, max: u64, tries: u32) -> u64 {
    let factor = 1u64 << tries.saturating_sub(1).min(20);
    base.saturating_mul(factor).min(max).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(300, 3600, 1), 300);
        assert_eq!(backoff(300, 3600, 2), 600);
        assert_eq!(backoff(300, 3600, 3), 1200);
        assert_eq!(backoff(300, 3600, 5), 3600);
        assert_eq!(backoff(300, 3600, 60), 3600);
    }
}
