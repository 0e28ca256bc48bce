//! Warm-up: a new egress source, or a tenant's new sender domain, may send
//! each provider only so much a day, growing day by day along the shaping
//! file's `[warmup] schedule`.
//!
//! The counters are records of the shared store (`meta`, `warmup\0…`),
//! changed atomically on every node of a fleet, so a day's cap holds for
//! the fleet and survives a restart. A day counts toward the schedule only
//! if the subject sent on it and its bounce and complaint rates stayed at
//! or below the file's maxima; the day is moved on by the first send of a
//! later day (UTC). Every function takes the time, for tests with a clock
//! of their own.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tracing::info;

use crate::config::shaping::Shaping;
use crate::config::Config;
use crate::store::{Store, StoreError};

const DAY: u64 = 86_400;

/// The key of the mark that the tenants' domains of the first start were
/// recorded as warm.
const SEEDED: &str = "seeded";

/// What warms up: an egress source, or a tenant's sender domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Source(String),
    Domain { tenant: String, domain: String },
}

impl Subject {
    /// Its record's key under `warmup\0`.
    pub fn key(&self) -> String {
        match self {
            Subject::Source(name) => format!("source\0{name}"),
            Subject::Domain { tenant, domain } => format!("domain\0{tenant}\0{domain}"),
        }
    }

    pub fn parse(key: &str) -> Option<Subject> {
        let mut parts = key.split('\0');
        match (parts.next()?, parts.next()?, parts.next()) {
            ("source", name, None) => Some(Subject::Source(name.into())),
            ("domain", tenant, Some(domain)) => Some(Subject::Domain {
                tenant: tenant.into(),
                domain: domain.into(),
            }),
            _ => None,
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Source(name) => write!(f, "source {name}"),
            Subject::Domain { tenant, domain } => write!(f, "sender domain {domain} of {tenant}"),
        }
    }
}

/// One subject's warm-up, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The warm-up day, 1 on the first.
    pub day: u32,
    /// The UTC day (days since 1970) the counts below are of.
    pub date: u64,
    /// Sent on `date`, per provider.
    #[serde(default)]
    pub sent: BTreeMap<String, u64>,
    #[serde(default)]
    pub bounced: u64,
    #[serde(default)]
    pub complained: u64,
    /// Days that sent but did not count: their rates were too high.
    #[serde(default)]
    pub held_days: u32,
    /// Unix seconds of the first send.
    #[serde(default)]
    pub started: u64,
    /// Over: the schedule ended, or the subject was warm when first seen.
    #[serde(default)]
    pub done: bool,
}

impl State {
    fn new(now: u64) -> State {
        State {
            day: 1,
            date: now / DAY,
            started: now,
            ..State::default()
        }
    }

    fn warm() -> State {
        State {
            done: true,
            ..State::default()
        }
    }

    /// Moves the counts on to `today`; a log line when a day was counted or
    /// held back.
    fn roll(&mut self, today: u64, shaping: &Shaping) -> Option<String> {
        if self.done || self.date >= today {
            return None;
        }
        let total: u64 = self.sent.values().sum();
        let mut said = None;
        if total > 0 {
            let bounce = self.bounced as f64 / total as f64;
            let complaint = self.complained as f64 / total as f64;
            let w = &shaping.warmup;
            if bounce > w.max_bounce_rate || complaint > w.max_complaint_rate {
                self.held_days += 1;
                said = Some(format!(
                    "day {} held back: {total} sent, bounce rate {:.1} % (max {:.1} %), complaint rate {:.2} % (max {:.2} %)",
                    self.day,
                    bounce * 100.0,
                    w.max_bounce_rate * 100.0,
                    complaint * 100.0,
                    w.max_complaint_rate * 100.0
                ));
            } else {
                self.day += 1;
                said = Some(format!(
                    "day {} begins ({total} sent the day before)",
                    self.day
                ));
            }
        }
        self.date = today;
        self.sent.clear();
        self.bounced = 0;
        self.complained = 0;
        if self.day as usize > longest_schedule(shaping) {
            self.done = true;
            said = Some("over: the schedule has ended".into());
        }
        said
    }
}

/// The days of the longest schedule (the file's or a provider's).
fn longest_schedule(shaping: &Shaping) -> usize {
    shaping
        .providers
        .iter()
        .filter_map(|p| p.warmup.as_ref().map(Vec::len))
        .chain([shaping.warmup.schedule.len()])
        .max()
        .unwrap_or(0)
}

/// How many of the recipients asked for may go today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub n: u64,
    /// Set when fewer than asked were granted: the cap reached.
    pub capped: Option<Capped>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capped {
    pub day: u32,
    pub cap: u64,
    /// The next UTC midnight, in Unix milliseconds.
    pub until_ms: u64,
}

/// The warm-ups known to be over, so that a warm subject costs no read.
#[derive(Default)]
pub struct Warmups {
    over: Mutex<HashSet<Subject>>,
}

impl Warmups {
    /// Whether `subject`'s warm-up is known to be over (a cached answer:
    /// false also when it was never read).
    pub fn is_over(&self, subject: &Subject) -> bool {
        self.over
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(subject)
    }

    fn set_over(&self, subject: &Subject) {
        self.over
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(subject.clone());
    }

    /// Takes up to `wanted` of `subject`'s cap for `provider` today: all of
    /// them when the subject is not (or no longer) warming up. A subject
    /// sending for the first time starts on day 1.
    pub fn take(
        &self,
        store: &Store,
        shaping: &Shaping,
        subject: &Subject,
        provider: &str,
        wanted: u64,
        now_ms: u64,
    ) -> Result<Granted, StoreError> {
        let all = Granted {
            n: wanted,
            capped: None,
        };
        if wanted == 0 || self.is_over(subject) {
            return Ok(all);
        }
        let now = now_ms / 1000;
        let today = now / DAY;
        let mut granted = all.clone();
        let mut over = false;
        let mut said = None;
        store.update_warmup::<State>(&subject.key(), |current| {
            let mut state = current.unwrap_or_else(|| State::new(now));
            said = state.roll(today, shaping);
            granted = all.clone();
            if state.done {
                over = true;
                return Ok(said.is_some().then_some(state));
            }
            let schedule = shaping.warmup_schedule(provider);
            let Some(&cap) = schedule.get(state.day.saturating_sub(1) as usize) else {
                // Past this provider's schedule (another's is longer).
                return Ok(Some(state));
            };
            let used = state.sent.entry(provider.to_string()).or_default();
            let n = wanted.min(cap.saturating_sub(*used));
            *used += n;
            granted = Granted {
                n,
                capped: (n < wanted).then(|| Capped {
                    day: state.day,
                    cap,
                    until_ms: (today + 1) * DAY * 1000,
                }),
            };
            Ok(Some(state))
        })?;
        if let Some(line) = said {
            info!(service = "shaping", "warm-up of {subject}: {line}");
        }
        if over {
            self.set_over(subject);
        }
        Ok(granted)
    }

    /// Gives back `n` taken today for `provider` that were not sent after
    /// all (another subject's cap stopped them).
    pub fn give_back(
        &self,
        store: &Store,
        subject: &Subject,
        provider: &str,
        n: u64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        if n == 0 || self.is_over(subject) {
            return Ok(());
        }
        let today = now_ms / 1000 / DAY;
        store.update_warmup::<State>(&subject.key(), |current| {
            Ok(current.filter(|s| !s.done && s.date == today).map(|mut s| {
                if let Some(used) = s.sent.get_mut(provider) {
                    *used = used.saturating_sub(n);
                }
                s
            }))
        })
    }

    /// Counts bounces and complaints of today against `subject`, for the
    /// rates that decide whether the day counts. A report about an earlier
    /// day is not counted (its day has been decided).
    pub fn record(
        &self,
        store: &Store,
        subject: &Subject,
        bounced: u64,
        complained: u64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        if (bounced == 0 && complained == 0) || self.is_over(subject) {
            return Ok(());
        }
        let today = now_ms / 1000 / DAY;
        store.update_warmup::<State>(&subject.key(), |current| {
            Ok(current.filter(|s| !s.done && s.date == today).map(|mut s| {
                s.bounced += bounced;
                s.complained += complained;
                s
            }))
        })
    }
}

/// At the very first start of a store, records the tenants' sender domains
/// as warm: they sent before postwarden came. A domain added later (or a
/// new tenant's) is new, and warms up unless its tenant says
/// `warmup = false`.
pub fn seed(store: &Store, config: &Config, now: u64) -> Result<(), StoreError> {
    if store.warmup::<State>(SEEDED)?.is_some() {
        return Ok(());
    }
    for (tenant, t) in &config.tenants {
        for domain in &t.sender_domains {
            let subject = Subject::Domain {
                tenant: tenant.clone(),
                domain: domain.to_ascii_lowercase(),
            };
            store.update_warmup::<State>(&subject.key(), |current| {
                Ok(current.is_none().then(State::warm))
            })?;
        }
    }
    store.update_warmup::<State>(SEEDED, |_| {
        Ok(Some(State {
            started: now,
            ..State::warm()
        }))
    })
}

/// A warm-up as `shaping status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub subject: String,
    pub kind: &'static str,
    pub name: String,
    pub day: u32,
    pub days: usize,
    pub held_days: u32,
    pub started: u64,
    /// Per provider sent today, with today's cap.
    pub today: BTreeMap<String, (u64, u64)>,
    /// Today's bounces and complaints, for its rates.
    pub bounced: u64,
    pub complained: u64,
}

/// The warm-ups under way, with today's counts (a day not yet moved on
/// shows as it was).
pub fn status(store: &Store, shaping: &Shaping, now_ms: u64) -> Result<Vec<Status>, StoreError> {
    let today = now_ms / 1000 / DAY;
    let mut out = Vec::new();
    for (key, state) in store.warmups::<State>()? {
        let Some(subject) = Subject::parse(&key) else {
            continue;
        };
        if state.done {
            continue;
        }
        let (kind, name) = match &subject {
            Subject::Source(n) => ("source", n.clone()),
            Subject::Domain { tenant, domain } => ("domain", format!("{tenant}/{domain}")),
        };
        let mut shown = state.clone();
        shown.roll(today, shaping);
        let mut providers: Vec<String> = shaping.providers.iter().map(|p| p.name.clone()).collect();
        providers.push(crate::config::shaping::DEFAULT_PROVIDER.into());
        let todays = providers
            .into_iter()
            .filter_map(|p| {
                let cap = *shaping
                    .warmup_schedule(&p)
                    .get(shown.day.saturating_sub(1) as usize)?;
                Some((p.clone(), (shown.sent.get(&p).copied().unwrap_or(0), cap)))
            })
            .collect();
        out.push(Status {
            subject: subject.to_string(),
            kind,
            name,
            day: shown.day,
            days: longest_schedule(shaping),
            held_days: shown.held_days,
            started: state.started,
            today: todays,
            bounced: shown.bounced,
            complained: shown.complained,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
