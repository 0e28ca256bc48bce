//! A tenant's runtime state in the spool: suspension and counters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Config, TenantConfig};
use crate::store::{Cf, Store, StoreError};

/// How often the daemon writes the [`PendingCounts`] into the tenants' records.
pub const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantState {
    /// The reason, when the tenant is suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<String>,
    #[serde(default)]
    pub submitted: u64,
    #[serde(default)]
    pub policy_rejected: u64,
    #[serde(default)]
    pub delivered: u64,
    #[serde(default)]
    pub bounced: u64,
    /// The `max_contacts` in force at the last start, to notice changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_contacts: Option<u64>,
    #[serde(default)]
    pub deferred: u64,
    #[serde(default)]
    pub hard_bounces: u64,
    #[serde(default)]
    pub soft_bounces: u64,
    #[serde(default)]
    pub complaints: u64,
    #[serde(default)]
    pub unsubscribes: u64,
    /// Policy rejections by rule code.
    #[serde(default)]
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Counts per UTC day for the rolling window of automatic suspension,
    /// oldest first; days older than the window are dropped.
    #[serde(default)]
    pub days: Vec<DayCount>,
    /// The same counts per UTC day for the history (the dashboard's charts),
    /// oldest first: kept through a resume, trimmed by retention
    /// (`[retention] tenant_history_days`).
    #[serde(default)]
    pub history: Vec<DayCount>,
}

/// One UTC day's counts of a tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCount {
    /// Days since the Unix epoch.
    pub day: u64,
    pub delivered: u64,
    pub complaints: u64,
    pub policy_rejected: u64,
}

/// Totals over the rolling window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Window {
    pub days: u64,
    pub delivered: u64,
    pub complaints: u64,
    pub policy_rejected: u64,
}

impl TenantState {
    /// Counts into today's bucket and forgets days before the window.
    /// Counts into the history's row of the day too.
    pub fn today(&mut self, now: u64, window_days: u64, mut change: impl FnMut(&mut DayCount)) {
        let day = now / 86400;
        // Days before the window go; a later day's row stays (the counts of
        // an earlier day can come in after it, pending deliveries).
        self.days.retain(|d| d.day + window_days.max(1) > day);
        for rows in [&mut self.days, &mut self.history] {
            // The row of `day`: the last one, except for counts that come
            // in late for an earlier day (pending deliveries of yesterday).
            let at = match rows.iter().rposition(|d| d.day <= day) {
                Some(i) if rows[i].day == day => i,
                found => {
                    let at = found.map_or(0, |i| i + 1);
                    rows.insert(
                        at,
                        DayCount {
                            day,
                            ..DayCount::default()
                        },
                    );
                    at
                }
            };
            change(&mut rows[at]);
        }
    }

    /// Forgets the history's days before `first_day`; returns how many.
    pub fn trim_history(&mut self, first_day: u64) -> usize {
        let before = self.history.len();
        self.history.retain(|d| d.day >= first_day);
        before - self.history.len()
    }

    pub fn window(&self, now: u64, window_days: u64) -> Window {
        let day = now / 86400;
        let mut w = Window {
            days: window_days,
            ..Window::default()
        };
        for d in self
            .days
            .iter()
            .filter(|d| d.day + window_days.max(1) > day && d.day <= day)
        {
            w.delivered += d.delivered;
            w.complaints += d.complaints;
            w.policy_rejected += d.policy_rejected;
        }
        w
    }

    /// Lifts a suspension and starts the rolling window afresh, so that the
    /// counts that caused it do not suspend the tenant again at once.
    pub fn resume(&mut self) {
        self.suspended = None;
        self.days.clear();
    }

    /// Complaints per delivery over all time (the stats figure).
    pub fn complaint_rate(&self) -> f64 {
        if self.delivered == 0 {
            0.0
        } else {
            self.complaints as f64 / self.delivered as f64
        }
    }
}

/// Why the tenant must be suspended now, if it must: a complaint rate over
/// the window at or above the limit (with enough deliveries to judge), or
/// too many policy rejections in the window.
pub fn suspension_reason(state: &TenantState, config: &TenantConfig, now: u64) -> Option<String> {
    if state.suspended.is_some() {
        return None;
    }
    let w = state.window(now, config.suspension_window_days);
    if w.delivered >= config.complaint_min_deliveries && w.delivered > 0 {
        let rate = w.complaints as f64 / w.delivered as f64;
        if rate >= config.complaint_rate_limit {
            return Some(format!(
                "complaint rate {:.2}% ({} complaints in {} deliveries over {} days) reached the limit of {:.2}%",
                rate * 100.0,
                w.complaints,
                w.delivered,
                w.days,
                config.complaint_rate_limit * 100.0
            ));
        }
    }
    match config.max_policy_rejections {
        Some(max) if w.policy_rejected >= max => Some(format!(
            "{} policy rejections over {} days reached the limit of {max}",
            w.policy_rejected, w.days
        )),
        _ => None,
    }
}

pub use crate::store::counts::{Counts, PendingCounts};

/// Adds pending counts into the tenant's record.
fn apply(counts: &Counts, s: &mut TenantState, window_days: u64) {
    s.submitted += counts.submitted;
    s.delivered += counts.delivered;
    s.bounced += counts.bounced;
    s.hard_bounces += counts.hard_bounces;
    s.soft_bounces += counts.soft_bounces;
    s.deferred += counts.deferred;
    // Oldest first: a record is never updated without these counts
    // first, so its days are no later than theirs.
    for (day, n) in &counts.delivered_by_day {
        s.today(day * 86400, window_days, |d| d.delivered += n);
    }
}

/// Writes every tenant's pending counts into its record, checking its
/// limits as any update does (so a tenant can be suspended here).
pub fn flush(store: &Store, config: &Config) {
    if store.write_failed() {
        // The spool refuses every write until it is reopened (the daemon
        // says so once); the counts wait in memory rather than a warning
        // every tenth of a second.
        return;
    }
    for tenant in store.pending_counts().tenants() {
        if let Err(e) = record_checked(store, &tenant, config.tenant(&tenant), None, |_| {}) {
            tracing::warn!("tenant {tenant}: cannot write its counts: {e}");
        }
    }
}

/// The tenant's record as written (what the hot paths read for suspension).
pub fn state(store: &Store, tenant: &str) -> Result<TenantState, StoreError> {
    Ok(store.tenant_state(tenant)?.unwrap_or_default())
}

/// The tenant's record with the counts not yet written (the stats).
pub fn state_with_pending(
    store: &Store,
    tenant: &str,
    window_days: u64,
) -> Result<TenantState, StoreError> {
    let mut s = state(store, tenant)?;
    if let Some(counts) = store.pending_counts().peek(tenant) {
        apply(&counts, &mut s, window_days);
    }
    Ok(s)
}

/// Updates a tenant's state with `change` and, if given, appends `event`,
/// in one write (not synced: these are counters and state that the next
/// synced write covers; losing the last one in a crash costs a count).
pub fn record(
    store: &Store,
    tenant: &str,
    event: Option<serde_json::Value>,
    change: impl FnOnce(&mut TenantState),
) -> Result<TenantState, StoreError> {
    record_checked(store, tenant, None, event, change)
}

/// Counts an unsubscribe for the tenant's stats (a lost count costs a
/// statistic, never the unsubscribe itself, which is written first).
pub fn count_unsubscribe(store: &Store, tenant: &str) {
    if let Err(e) = record(store, tenant, None, |s| s.unsubscribes += 1) {
        tracing::warn!("tenant {tenant}: cannot count an unsubscribe: {e}");
    }
}

/// Like [`record`], then suspends the tenant in the same write when its
/// limits are reached (see [`suspension_reason`]); the event and a log line
/// say why. Returns the new state. The read and the write are one atomic
/// update of the tenant's record (on every node of a fleet), so counts made
/// at the same time on two nodes both count.
pub fn record_checked(
    store: &Store,
    tenant: &str,
    config: Option<&TenantConfig>,
    event: Option<serde_json::Value>,
    change: impl FnOnce(&mut TenantState),
) -> Result<TenantState, StoreError> {
    let mut change = Some(change);
    let mut event = event;
    let mut result = None;
    let mut corrupt = None;
    let mut suspended = None;
    let mut pending = None;
    let window = TenantConfig::suspension_window_of(config);
    let updated = store.update(Cf::Tenants, tenant.as_bytes(), |current| {
        // Taken under the update's lock, so that two updates at once (the
        // flusher's and a complaint's) each judge every count made before.
        // Kept if the update runs again: applied to the fresh record.
        if pending.is_none() {
            pending = store.pending_counts().take(tenant);
        }
        let mut s: TenantState = match current.as_deref().map(serde_json::from_slice) {
            None => TenantState::default(),
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                corrupt = Some(e.to_string());
                return Vec::new();
            }
        };
        if let Some(counts) = &pending {
            apply(counts, &mut s, window);
        }
        if let Some(change) = change.take() {
            change(&mut s);
        }
        let mut ops = vec![Store::put_tenant_state_op(tenant, &s)];
        if let Some(e) = event.take() {
            ops.push(Store::event_op(&e));
        }
        suspended = None;
        if let Some(reason) = config.and_then(|c| suspension_reason(&s, c, crate::values::now())) {
            suspended = Some(reason.clone());
            ops.push(Store::event_op(&serde_json::json!({
                "type": "tenant_suspended", "at": crate::values::now(), "tenant": tenant,
                "reason": reason, "source": "automatic",
            })));
            s.suspended = Some(reason);
            ops[0] = Store::put_tenant_state_op(tenant, &s);
        }
        result = Some(s);
        ops
    });
    if updated.is_err() || corrupt.is_some() {
        if let Some(counts) = pending {
            store.pending_counts().restore(tenant, counts);
        }
    }
    updated?;
    if let Some(reason) = suspended {
        // Logged once written, so that what the log says holds.
        tracing::warn!("tenant {tenant}: suspended: {reason}");
    }
    if let Some(reason) = corrupt {
        return Err(StoreError::Corrupt {
            key: format!("tenants/{tenant}"),
            reason,
        });
    }
    result.ok_or_else(|| StoreError::Write(format!("tenant {tenant}: update did not run")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TenantConfig {
        TenantConfig {
            complaint_min_deliveries: 1000,
            complaint_rate_limit: 0.003,
            suspension_window_days: 7,
            max_policy_rejections: Some(50),
            ..TenantConfig::default()
        }
    }

    #[test]
    fn a_complaint_rate_at_the_limit_suspends_with_enough_deliveries() {
        let now = 100 * 86400;
        let mut s = TenantState::default();
        s.today(now, 7, |d| {
            d.delivered = 999;
            d.complaints = 3;
        });
        // 0.3% of 999 deliveries, but fewer than 1000: not yet judged.
        assert_eq!(suspension_reason(&s, &config(), now), None);
        s.today(now, 7, |d| d.delivered += 1);
        let why = suspension_reason(&s, &config(), now).expect("suspended");
        assert!(why.contains("0.30%"), "{why}");
        // Eight days later the window has forgotten them.
        let later = now + 8 * 86400;
        s.today(later, 7, |_| {});
        assert_eq!(s.days.len(), 1);
        assert_eq!(suspension_reason(&s, &config(), later), None);
    }

    #[test]
    fn pending_counts_reach_the_record_by_a_flush_or_the_next_update() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("store");
        // The suspension check reads the clock.
        let now = crate::values::now();
        let pending = store.pending_counts();
        pending.add("acme", |c| c.submitted += 2);
        pending.add("acme", |c| {
            c.deliveries(now - 86400, 3);
            c.deliveries(now, 4);
            c.hard_bounces += 1;
        });
        // Not written yet, but the stats see them.
        assert_eq!(state(&store, "acme").expect("state").submitted, 0);
        let s = state_with_pending(&store, "acme", 7).expect("state");
        assert_eq!((s.submitted, s.delivered, s.hard_bounces), (2, 7, 1));
        // Any update of the tenant writes them first, in the same write:
        // the window judges every delivery counted so far.
        let config = TenantConfig {
            complaint_min_deliveries: 7,
            complaint_rate_limit: 0.1,
            suspension_window_days: 7,
            ..TenantConfig::default()
        };
        let s = record_checked(&store, "acme", Some(&config), None, |s| {
            s.complaints += 1;
            s.today(now, 7, |d| d.complaints += 1);
        })
        .expect("update");
        assert_eq!((s.submitted, s.delivered), (2, 7));
        assert_eq!(
            s.days.iter().map(|d| d.delivered).collect::<Vec<_>>(),
            [3, 4]
        );
        assert!(
            s.suspended
                .as_deref()
                .is_some_and(|r| r.contains("7 deliveries")),
            "{s:?}"
        );
        // Counted once: nothing is left pending.
        let s = state_with_pending(&store, "acme", 7).expect("state");
        assert_eq!(s.delivered, 7);
        // A flush writes what came since, for every tenant.
        pending.add("acme", |c| c.submitted += 1);
        pending.add("other", |c| c.deferred += 1);
        let config = Config::embedded_default(dir.path()).expect("the embedded config");
        flush(&store, &config);
        assert_eq!(state(&store, "acme").expect("state").submitted, 3);
        assert_eq!(state(&store, "other").expect("state").deferred, 1);
        assert!(pending.tenants().is_empty());
    }

    #[test]
    fn too_many_policy_rejections_suspend() {
        let now = 100 * 86400;
        let mut s = TenantState::default();
        s.today(now - 86400, 7, |d| d.policy_rejected = 30);
        s.today(now, 7, |d| d.policy_rejected = 19);
        assert_eq!(suspension_reason(&s, &config(), now), None);
        s.today(now, 7, |d| d.policy_rejected += 1);
        assert!(suspension_reason(&s, &config(), now).is_some());
        s.suspended = Some("already".into());
        assert_eq!(suspension_reason(&s, &config(), now), None);
    }
}
