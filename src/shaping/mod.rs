//! Egress paths and their state: how many connections are open on each,
//! when the next message may go (GCRA per rate, with slots reserved in
//! order so that waiting messages come back one by one, not all at once),
//! and what the reply rules of `[delivery] shaping` have set on them
//! (suspensions, throttles).
//!
//! An egress path is (egress source, provider); a node with no
//! `[delivery.sources]` has one source, `default`. A domain of no provider
//! is a path of its own. Rates and rule hit counts are in memory; the
//! suspensions and throttles are also saved in the spool and put back at
//! start ([`SavedHold`]), and the warm-up's daily caps are kept in the
//! store ([`warmup`]). Every function takes the time (`now_ms`) so that
//! its tests need no clock.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub mod warmup;

use crate::config::shaping::{
    Action, PathLimits, Provider, Rule, Shaping, Throttle, DEFAULT_PROVIDER,
};

/// The egress source of a node with no `[delivery.sources]`.
pub use crate::config::DEFAULT_SOURCE as SOURCE;

/// Which path a recipient domain's mail takes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathId {
    pub source: String,
    pub provider: String,
    /// The domain, on a path of the default provider; None on a provider's.
    pub domain: Option<String>,
}

impl PathId {
    /// The path of `domain` and its limits: the provider that lists it,
    /// else the one all of `mx_hosts` belong to (None: the mail does not go
    /// by MX look-up), else a default path of its own.
    pub fn of<'a>(
        shaping: &'a Shaping,
        source: &str,
        domain: &str,
        mx_hosts: Option<&[String]>,
    ) -> (PathId, &'a PathLimits) {
        let provider: Option<&Provider> = shaping
            .provider_by_domain(domain)
            .or_else(|| mx_hosts.and_then(|h| shaping.provider_by_mx(h)));
        match provider {
            Some(p) => (
                PathId {
                    source: source.to_string(),
                    provider: p.name.clone(),
                    domain: None,
                },
                &p.limits,
            ),
            None => (
                PathId {
                    source: source.to_string(),
                    provider: DEFAULT_PROVIDER.into(),
                    domain: Some(domain.to_ascii_lowercase()),
                },
                &shaping.default,
            ),
        }
    }

    /// Parses what `Display` writes: `google`, `default:example.org`,
    /// `mta2/google`; without a source, of `source`.
    pub fn parse(text: &str, source: &str) -> PathId {
        let (source, text) = text.split_once('/').unwrap_or((source, text));
        match text.split_once(':') {
            Some((p, d)) if p == DEFAULT_PROVIDER => PathId {
                source: source.into(),
                provider: p.into(),
                domain: Some(d.to_ascii_lowercase()),
            },
            _ => PathId {
                source: source.into(),
                provider: text.to_string(),
                domain: None,
            },
        }
    }

    /// Whether `self` is `other` or, being a whole provider's, covers it.
    fn covers(&self, other: &PathId) -> bool {
        self == other
            || (self.domain.is_none()
                && self.source == other.source
                && self.provider == other.provider)
    }
}

impl std::fmt::Display for PathId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.source != SOURCE {
            write!(f, "{}/", self.source)?;
        }
        match &self.domain {
            Some(d) => write!(f, "{}:{d}", self.provider),
            None => f.write_str(&self.provider),
        }
    }
}

/// May a recipient go now?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    Go,
    /// Not before `until_ms`: `why` says which limit or hold.
    Wait {
        until_ms: u64,
        why: String,
    },
}

/// What a reply that a rule matched does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    pub rule: String,
    /// Set when this reply activated the rule.
    pub activated: Option<Activation>,
    /// When the message may try again; None: after `[delivery] retry_base`.
    pub retry_at_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    pub action: &'static str,
    pub until_ms: u64,
}

/// A hold on a path: a suspension or a throttle, by a rule or the postmaster.
#[derive(Debug, Clone)]
struct Hold {
    until_ms: u64,
    rule: String,
    reply: String,
}

/// One rate as GCRA keeps it: the theoretical arrival time, in
/// microseconds, so that a rate of more than one message a millisecond
/// (60 000 a minute) keeps its exact spacing.
#[derive(Debug, Clone, Default)]
struct Gcra {
    tat_us: u64,
}

impl Gcra {
    /// The earliest time (µs) a message conforms, for `rate` per
    /// `period_ms` and `burst` allowed at once; None: no limit.
    fn earliest(&self, rate: u32, period_ms: u64, burst: u32, now_ms: u64) -> Option<u64> {
        let interval = interval_us(rate, period_ms)?;
        let tolerance = interval.saturating_mul(u64::from(burst));
        Some(
            now_ms
                .saturating_mul(1000)
                .max(self.tat_us.saturating_sub(tolerance)),
        )
    }

    /// Counts one message sent at `at_us`.
    fn take(&mut self, rate: u32, period_ms: u64, at_us: u64) {
        if let Some(interval) = interval_us(rate, period_ms) {
            self.tat_us = self.tat_us.max(at_us) + interval;
        }
    }
}

fn interval_us(rate: u32, period_ms: u64) -> Option<u64> {
    (rate > 0).then(|| (period_ms.saturating_mul(1000) / u64::from(rate)).max(1))
}

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;
/// A reserved slot not taken this long after its time is dropped (its
/// message was deleted, or went another way).
const STALE_RESERVATION_MS: u64 = 600_000;

#[derive(Debug)]
struct PathState {
    suspended: Option<Hold>,
    throttle: Option<(Hold, Throttle)>,
    /// Per rule, when it matched within its period.
    hits: HashMap<String, VecDeque<u64>>,
    per_minute: Gcra,
    per_hour: Gcra,
    connects: Gcra,
    open: u32,
    notify: Arc<Notify>,
    /// (queue id, recipient index) → the slot reserved for it.
    reserved: HashMap<(String, usize), u64>,
    last_used_ms: u64,
    /// Messages sent, per second (Unix), over the last hour.
    sent: VecDeque<(u64, u32)>,
}

impl PathState {
    fn new(now_ms: u64) -> PathState {
        PathState {
            suspended: None,
            throttle: None,
            hits: HashMap::new(),
            per_minute: Gcra::default(),
            per_hour: Gcra::default(),
            connects: Gcra::default(),
            open: 0,
            notify: Arc::new(Notify::new()),
            reserved: HashMap::new(),
            last_used_ms: now_ms,
            sent: VecDeque::new(),
        }
    }

    /// Forgets sends older than an hour.
    fn trim_sent(&mut self, now_ms: u64) {
        let since = (now_ms / 1000).saturating_sub(HOUR_MS / 1000);
        while self.sent.front().is_some_and(|&(t, _)| t <= since) {
            self.sent.pop_front();
        }
    }

    /// Sent within the last `secs` seconds.
    fn sent_within(&self, secs: u64, now_ms: u64) -> u64 {
        let since = (now_ms / 1000).saturating_sub(secs);
        self.sent
            .iter()
            .rev()
            .take_while(|&&(t, _)| t > since)
            .map(|&(_, n)| u64::from(n))
            .sum()
    }

    /// Ends holds whose time is over.
    fn expire(&mut self, now_ms: u64) {
        if self
            .suspended
            .as_ref()
            .is_some_and(|h| h.until_ms <= now_ms)
        {
            self.suspended = None;
        }
        if self
            .throttle
            .as_ref()
            .is_some_and(|(h, _)| h.until_ms <= now_ms)
        {
            self.throttle = None;
        }
    }

    /// The limits in force: `base`, or as a throttle changes them.
    fn limits(&self, base: &PathLimits, connections: u32) -> PathLimits {
        match &self.throttle {
            Some((_, t)) => t.apply(base, connections),
            None => base.clone(),
        }
    }

    fn suspend(&mut self, hold: Hold) {
        // Slots reserved before the suspension are given again after it.
        self.reserved.clear();
        self.per_minute = Gcra::default();
        self.per_hour = Gcra::default();
        self.suspended = Some(hold);
    }
}

type Paths = Arc<Mutex<HashMap<PathId, PathState>>>;

fn lock(paths: &Paths) -> std::sync::MutexGuard<'_, HashMap<PathId, PathState>> {
    paths.lock().unwrap_or_else(|p| p.into_inner())
}

/// The state of `path` (made on first use), with the holds whose time is
/// over ended.
fn path_state<'a>(
    paths: &'a mut HashMap<PathId, PathState>,
    path: &PathId,
    now_ms: u64,
) -> &'a mut PathState {
    let state = paths
        .entry(path.clone())
        .or_insert_with(|| PathState::new(now_ms));
    state.expire(now_ms);
    state
}

/// The egress paths of this node.
#[derive(Default)]
pub struct Shaper {
    paths: Paths,
    /// Providers whose gauges were ever set, so that they go back to 0.
    reported: Mutex<BTreeSet<String>>,
    /// The warm-ups known to be over.
    pub warmups: warmup::Warmups,
    /// Held while the suspensions are written (see [`Shaper::save_holds`]).
    saving: Mutex<()>,
}

/// A hold as the spool keeps it across a restart: a provider that said
/// "stop" (or "slower") for an hour, or a postmaster's hold, is not
/// forgotten by a restart, which would send into the block at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedHold {
    pub source: String,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub until_ms: u64,
    pub rule: String,
    pub reply: String,
    /// A throttle's changes; absent: a suspension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
}

impl Shaper {
    /// The suspensions and throttles in force now.
    pub fn saved_holds(&self, now_ms: u64) -> Vec<SavedHold> {
        let mut paths = lock(&self.paths);
        let mut out = Vec::new();
        for (id, state) in paths.iter_mut() {
            state.expire(now_ms);
            let held = state
                .suspended
                .iter()
                .map(|h| (h, None))
                .chain(state.throttle.iter().map(|(h, t)| (h, Some(t.clone()))));
            for (h, throttle) in held {
                out.push(SavedHold {
                    source: id.source.clone(),
                    provider: id.provider.clone(),
                    domain: id.domain.clone(),
                    until_ms: h.until_ms,
                    rule: h.rule.clone(),
                    reply: h.reply.clone(),
                    throttle,
                });
            }
        }
        out.sort_by(|a, b| {
            (&a.source, &a.provider, &a.domain, a.throttle.is_some()).cmp(&(
                &b.source,
                &b.provider,
                &b.domain,
                b.throttle.is_some(),
            ))
        });
        out
    }

    /// Puts back the holds saved before a restart; those whose time is
    /// over are dropped. How many were put back.
    pub fn restore(&self, holds: Vec<SavedHold>, now_ms: u64) -> usize {
        let mut paths = lock(&self.paths);
        let mut n = 0;
        for h in holds.into_iter().filter(|h| h.until_ms > now_ms) {
            let id = PathId {
                source: h.source,
                provider: h.provider,
                domain: h.domain,
            };
            let hold = Hold {
                until_ms: h.until_ms,
                rule: h.rule,
                reply: h.reply,
            };
            let state = path_state(&mut paths, &id, now_ms);
            match h.throttle {
                Some(t) => state.throttle = Some((hold, t)),
                None => state.suspend(hold),
            }
            n += 1;
        }
        n
    }

    /// Writes the holds in force to the spool, after one began or ended.
    /// One at a time, so that an older picture never lands last.
    pub fn save_holds(
        &self,
        store: &crate::store::Store,
        now_ms: u64,
    ) -> Result<(), crate::store::StoreError> {
        let _one = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let holds = self.saved_holds(now_ms);
        store.commit_blocking(vec![crate::store::Store::put_shaping_holds_op(&holds)])
    }

    /// At start: the holds saved by the last run.
    pub fn load_holds(
        &self,
        store: &crate::store::Store,
        now_ms: u64,
    ) -> Result<usize, crate::store::StoreError> {
        let holds: Vec<SavedHold> = store.shaping_holds()?.unwrap_or_default();
        Ok(self.restore(holds, now_ms))
    }
}

/// One open connection's place on its path; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    paths: Paths,
    pub path: PathId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut paths = lock(&self.paths);
        if let Some(state) = paths.get_mut(&self.path) {
            state.open = state.open.saturating_sub(1);
            state.notify.notify_one();
        }
    }
}

/// A path as `shaping status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PathStatus {
    pub source: String,
    pub path: String,
    pub provider: String,
    /// The limits in force: the shaping file's, as a throttle changes them.
    pub limits: PathLimits,
    pub open_connections: u32,
    pub sent_last_minute: u64,
    pub sent_last_hour: u64,
    pub waiting: usize,
    pub next_slot: Option<u64>,
    pub suspended_until: Option<u64>,
    pub suspended_by: Option<String>,
    pub throttled_until: Option<u64>,
    pub throttled_by: Option<String>,
    pub last_reply: Option<String>,
}

impl Shaper {
    /// Whether recipient `index` of message `id` may go on `path` now;
    /// a wait reserves its slot, which the message takes when it comes back.
    pub fn admit(
        &self,
        path: &PathId,
        key: (&str, usize),
        base: &PathLimits,
        connections: u32,
        now_ms: u64,
    ) -> Admit {
        let mut paths = lock(&self.paths);
        let state = path_state(&mut paths, path, now_ms);
        state.last_used_ms = now_ms;
        if let Some(h) = &state.suspended {
            return Admit::Wait {
                until_ms: h.until_ms,
                why: format!("path {path} suspended by {}", h.rule),
            };
        }
        let id = (key.0.to_string(), key.1);
        if let Some(&slot) = state.reserved.get(&id) {
            // A second early is on time: the queue counts in seconds.
            if slot <= now_ms + 1000 {
                state.reserved.remove(&id);
                return Admit::Go;
            }
            return Admit::Wait {
                until_ms: slot,
                why: format!("path {path}: slot reserved"),
            };
        }
        let limits = state.limits(base, connections);
        let minute =
            state
                .per_minute
                .earliest(limits.messages_per_minute, MINUTE_MS, limits.burst, now_ms);
        let hour = state
            .per_hour
            .earliest(limits.messages_per_hour, HOUR_MS, limits.burst, now_ms);
        let now_us = now_ms.saturating_mul(1000);
        let slot_us = minute.unwrap_or(now_us).max(hour.unwrap_or(now_us));
        state
            .per_minute
            .take(limits.messages_per_minute, MINUTE_MS, slot_us);
        state
            .per_hour
            .take(limits.messages_per_hour, HOUR_MS, slot_us);
        let slot = slot_us.div_ceil(1000);
        if slot <= now_ms {
            return Admit::Go;
        }
        state.reserved.insert(id, slot);
        let which = if hour.is_some_and(|h| h >= minute.unwrap_or(0)) {
            format!("messages_per_hour {}", limits.messages_per_hour)
        } else {
            format!("messages_per_minute {}", limits.messages_per_minute)
        };
        Admit::Wait {
            until_ms: slot,
            why: format!("path {path}: {which}"),
        }
    }

    /// Until when `path` is suspended, if it is.
    pub fn suspended_until(&self, path: &PathId, now_ms: u64) -> Option<u64> {
        let mut paths = lock(&self.paths);
        let state = paths.get_mut(path)?;
        state.expire(now_ms);
        state.suspended.as_ref().map(|h| h.until_ms)
    }

    /// A connection's place on `path`, if one is free now.
    pub fn try_connection(
        &self,
        path: &PathId,
        base: &PathLimits,
        connections: u32,
        now_ms: u64,
    ) -> Result<Slot, Arc<Notify>> {
        let mut paths = lock(&self.paths);
        let state = path_state(&mut paths, path, now_ms);
        let limit = state.limits(base, connections).connections;
        if limit > 0 && state.open >= limit {
            return Err(state.notify.clone());
        }
        state.open += 1;
        state.last_used_ms = now_ms;
        Ok(Slot {
            paths: self.paths.clone(),
            path: path.clone(),
        })
    }

    /// Counts a message sent on `path` (for `shaping status`).
    pub fn sent(&self, path: &PathId, now_ms: u64) {
        let mut paths = lock(&self.paths);
        let state = path_state(&mut paths, path, now_ms);
        let sec = now_ms / 1000;
        match state.sent.back_mut() {
            Some((t, n)) if *t == sec => *n += 1,
            _ => state.sent.push_back((sec, 1)),
        }
        state.trim_sent(now_ms);
    }

    /// Wakes one delivery waiting for a place on `path` (a connection of
    /// the path was given back to the pool, for reuse).
    pub fn wake(&self, path: &PathId) {
        if let Some(state) = lock(&self.paths).get(path) {
            state.notify.notify_one();
        }
    }

    /// How long to wait before opening a connection on `path`, by its
    /// `connections_per_minute`; the time is reserved.
    pub fn connect_delay(
        &self,
        path: &PathId,
        base: &PathLimits,
        connections: u32,
        now_ms: u64,
    ) -> Duration {
        let mut paths = lock(&self.paths);
        let state = path_state(&mut paths, path, now_ms);
        let rate = state.limits(base, connections).connections_per_minute;
        let Some(at) = state.connects.earliest(rate, MINUTE_MS, 0, now_ms) else {
            return Duration::ZERO;
        };
        state.connects.take(rate, MINUTE_MS, at);
        Duration::from_micros(at.saturating_sub(now_ms.saturating_mul(1000)))
    }

    /// Looks at a reply that was not 2xx on `path` against the rules: the
    /// first that matches counts it, and acts when it reaches its threshold.
    /// None: no rule speaks of the reply, which is the recipient's.
    pub fn observe(
        &self,
        path: &PathId,
        rules: &[Rule],
        status: &str,
        line: &str,
        now_ms: u64,
    ) -> Option<Reaction> {
        let rule = rules
            .iter()
            .find(|r| r.matches(&path.provider, status, line))?;
        let mut paths = lock(&self.paths);
        let state = path_state(&mut paths, path, now_ms);
        let until_ms = now_ms + rule.duration.saturating_mul(1000);
        // Already acting on this rule's word: the reply changes nothing.
        let active_until = match &rule.action {
            Action::Suspend => state
                .suspended
                .as_ref()
                .filter(|h| h.rule == rule.name)
                .map(|h| h.until_ms),
            Action::Throttle(_) => state
                .throttle
                .as_ref()
                .filter(|(h, _)| h.rule == rule.name)
                .map(|(h, _)| h.until_ms),
            Action::Defer => None,
        };
        if let Some(until) = active_until {
            return Some(Reaction {
                rule: rule.name.clone(),
                activated: None,
                retry_at_ms: matches!(rule.action, Action::Suspend).then_some(until),
            });
        }
        let hits = state.hits.entry(rule.name.clone()).or_default();
        let since = now_ms.saturating_sub(rule.period.saturating_mul(1000));
        while hits.front().is_some_and(|&t| t <= since) {
            hits.pop_front();
        }
        hits.push_back(now_ms);
        if (hits.len() as u64) < u64::from(rule.threshold) {
            return Some(Reaction {
                rule: rule.name.clone(),
                activated: None,
                retry_at_ms: None,
            });
        }
        hits.clear();
        let hold = Hold {
            until_ms,
            rule: rule.name.clone(),
            reply: line.to_string(),
        };
        let retry_at_ms = match &rule.action {
            Action::Suspend => {
                // A longer suspension already in force (the postmaster's,
                // another rule's) is not shortened.
                let until = state
                    .suspended
                    .as_ref()
                    .map_or(until_ms, |h| h.until_ms.max(until_ms));
                state.suspend(Hold {
                    until_ms: until,
                    ..hold
                });
                Some(until)
            }
            Action::Throttle(t) => {
                state.throttle = Some((hold, t.clone()));
                None
            }
            Action::Defer => Some(until_ms),
        };
        Some(Reaction {
            rule: rule.name.clone(),
            activated: Some(Activation {
                action: rule.action.name(),
                until_ms,
            }),
            retry_at_ms,
        })
    }

    /// The postmaster suspends `path` until `until_ms`.
    pub fn suspend(&self, path: &PathId, until_ms: u64, reason: &str, now_ms: u64) {
        let mut paths = lock(&self.paths);
        let state = path_state(&mut paths, path, now_ms);
        state.last_used_ms = now_ms;
        state.suspend(Hold {
            until_ms,
            rule: "postmaster".into(),
            reply: reason.to_string(),
        });
    }

    /// Ends the suspension and the throttle of every path of `provider` on
    /// the source (or the one path `default:domain`); how many were held.
    pub fn resume(&self, path: &PathId, now_ms: u64) -> usize {
        let mut paths = lock(&self.paths);
        let mut n = 0;
        for (id, state) in paths.iter_mut() {
            if path.covers(id) {
                state.expire(now_ms);
                if state.suspended.take().is_some() | state.throttle.take().is_some() {
                    n += 1;
                }
                state.hits.clear();
                state.notify.notify_waiters();
            }
        }
        n
    }

    /// Every path with something to show, in name order, with its limits
    /// from `shaping` (`connections`: the `[delivery]` one a throttle halves).
    pub fn status(&self, shaping: &Shaping, connections: u32, now_ms: u64) -> Vec<PathStatus> {
        let mut paths = lock(&self.paths);
        let mut out: Vec<PathStatus> = paths
            .iter_mut()
            .map(|(id, s)| {
                s.expire(now_ms);
                let last = s
                    .suspended
                    .as_ref()
                    .or(s.throttle.as_ref().map(|(h, _)| h))
                    .map(|h| h.reply.clone());
                let base = match id.domain {
                    Some(_) => &shaping.default,
                    None => shaping
                        .provider(&id.provider)
                        .map_or(&shaping.default, |p| &p.limits),
                };
                s.trim_sent(now_ms);
                PathStatus {
                    limits: s.limits(base, connections),
                    source: id.source.clone(),
                    sent_last_minute: s.sent_within(60, now_ms),
                    sent_last_hour: s.sent_within(HOUR_MS / 1000, now_ms),
                    path: id.to_string(),
                    provider: id.provider.clone(),
                    open_connections: s.open,
                    waiting: s.reserved.len(),
                    next_slot: s.reserved.values().min().copied(),
                    suspended_until: s.suspended.as_ref().map(|h| h.until_ms / 1000),
                    suspended_by: s.suspended.as_ref().map(|h| h.rule.clone()),
                    throttled_until: s.throttle.as_ref().map(|(h, _)| h.until_ms / 1000),
                    throttled_by: s.throttle.as_ref().map(|(h, _)| h.rule.clone()),
                    last_reply: last,
                }
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Forgets paths with nothing open, held or reserved that were not
    /// used for `idle_ms`, and drops stale reservations.
    pub fn prune(&self, idle_ms: u64, now_ms: u64) {
        let mut paths = lock(&self.paths);
        for state in paths.values_mut() {
            state.expire(now_ms);
            state
                .reserved
                .retain(|_, &mut slot| slot + STALE_RESERVATION_MS > now_ms);
        }
        paths.retain(|_, s| {
            s.open > 0
                || s.suspended.is_some()
                || s.throttle.is_some()
                || !s.reserved.is_empty()
                || s.hits.values().any(|h| !h.is_empty())
                || s.last_used_ms + idle_ms > now_ms
        });
    }

    /// Sets the gauges of held paths per provider (at each scrape).
    pub fn report(&self, now_ms: u64) {
        let mut suspended: BTreeMap<String, u64> = BTreeMap::new();
        let mut throttled: BTreeMap<String, u64> = BTreeMap::new();
        {
            let mut paths = lock(&self.paths);
            for s in paths.values_mut() {
                s.expire(now_ms);
            }
            for (id, s) in paths.iter() {
                *suspended.entry(id.provider.clone()).or_default() +=
                    u64::from(s.suspended.is_some());
                *throttled.entry(id.provider.clone()).or_default() +=
                    u64::from(s.throttle.is_some());
            }
        }
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        for provider in reported.iter() {
            suspended.entry(provider.clone()).or_default();
            throttled.entry(provider.clone()).or_default();
        }
        reported.extend(suspended.keys().cloned());
        crate::metrics::shaping_paths(&suspended, &throttled);
    }
}

#[cfg(test)]
mod tests;
