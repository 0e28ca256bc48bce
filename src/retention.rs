//! Retention: the records each message and report leaves behind (tracking,
//! feedback marks, events, abuse cases, the tenants' day rows) are deleted
//! once their `[retention]` period is over, so that the spool (or the
//! shared PostgreSQL tables) levels off instead of growing with every
//! message, and no recipient address is kept longer than its purpose needs.
//!
//! A pass deletes, per kind, everything made before `now - period`, in
//! steps of `[retention] batch` records with a short pause between them, so
//! that mail flow keeps the disk and the database. In a fleet one node at a
//! time prunes (the shared lock [`PRUNE_LOCK_ID`]).
//!
//! Events are the one kind that waits for someone: a tenant's webhook must
//! have taken an event before it goes (its cursor is past it), up to
//! `events_max`, after which it goes anyway; that is counted, logged, and
//! told to the tenant with an `events_expired` event.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tracing::{info, warn};

use crate::config::{Config, Retention};
use crate::runtime::Context;
use crate::store::retention::{Kept, KindStats};
use crate::store::{keys, Store, StoreError, WebhookState};

/// The shared lock id of the pruner (1 is consent's, 2 the webhooks').
pub const PRUNE_LOCK_ID: i64 = 3;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pass {
    /// Records deleted, by kind.
    pub pruned: BTreeMap<&'static str, u64>,
    /// Events deleted before a tenant's webhook took them, by tenant.
    pub events_expired: BTreeMap<String, u64>,
    /// Day rows of tenant history deleted.
    pub tenant_days: u64,
}

/// How long records of `kind` are kept, in seconds (for events: once
/// every webhook took them).
pub fn period(r: &Retention, kind: Kept) -> u64 {
    match kind {
        Kept::Tracking => r.tracking,
        Kept::FeedbackMarks => r.feedback_marks,
        Kept::Events => r.events,
        Kept::AbuseCases => r.abuse_cases,
    }
}

/// The time before which records of `kind` go, at `now`: its period back.
fn cutoff(config: &Config, kind: Kept, now: u64) -> u64 {
    now.saturating_sub(period(&config.retention, kind))
}

/// A tenant whose webhook has not taken every event the cap deletes, with
/// the key of the last one it took.
type Behind = (String, Vec<u8>);

/// Where the events' pruning stops (the first key kept): `events` back,
/// but not past any tenant webhook's cursor (the last event it took), and
/// `events_max` back at the latest. With it, for each tenant whose webhook
/// has not yet taken what the cap deletes, its cursor.
fn events_cutoff(
    store: &Store,
    config: &Config,
    now: u64,
) -> Result<(Vec<u8>, Vec<Behind>), StoreError> {
    let usual = keys::event_at(cutoff(config, Kept::Events, now));
    let cap = keys::event_at(now.saturating_sub(config.retention.events_max));
    let mut cut = usual.clone();
    let mut behind = Vec::new();
    for (name, tenant) in &config.tenants {
        if tenant.webhook_url.is_none() {
            continue;
        }
        let state: WebhookState = store.webhook_state(name)?.unwrap_or_default();
        let cursor = state.cursor_key().unwrap_or_default();
        // Every event up to the cursor was taken: the first key after it.
        let mut taken_until = cursor.clone();
        taken_until.push(0);
        if taken_until < usual {
            cut = cut.min(taken_until.clone().max(cap.clone()));
            if taken_until < cap {
                behind.push((name.clone(), cursor));
            }
        }
    }
    Ok((cut, behind))
}

/// Counts, per tenant, the events the cap is about to delete that its
/// webhook has not taken (after its cursor, before `before`).
fn count_untaken(
    store: &Store,
    behind: &[Behind],
    end: &[u8],
) -> Result<BTreeMap<String, u64>, StoreError> {
    let mut out = BTreeMap::new();
    let Some(start) = behind.iter().map(|(_, c)| c.clone()).min() else {
        return Ok(out);
    };
    // From the first key after the oldest cursor (none: from the start).
    let mut from = start;
    if !from.is_empty() {
        from.push(0);
    }
    store.scan_kept(Kept::Events, &from, 5_000, &mut |records| {
        for (key, value) in records {
            if key.as_slice() >= end {
                return Ok(false);
            }
            let Ok(event) = serde_json::from_slice::<serde_json::Value>(value) else {
                continue;
            };
            let tenant = event.get("tenant").and_then(|t| t.as_str());
            for (name, cursor) in behind {
                if Some(name.as_str()) == tenant && key > cursor {
                    *out.entry(name.clone()).or_default() += 1;
                }
            }
        }
        Ok(true)
    })?;
    Ok(out)
}

/// Deletes `kind`'s records before `until` (see [`Store::prune_step`]),
/// step by step, calling `pause` between steps; returns how many.
fn prune_kind(
    store: &Store,
    kind: Kept,
    until: &[u8],
    batch: usize,
    pause: &mut dyn FnMut(),
) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = store.prune_step(kind, until, batch)?;
        total += n;
        if (n as usize) < batch {
            break;
        }
        pause();
    }
    if total > 0 {
        store.reclaim(kind, until)?;
    }
    Ok(total)
}

/// One pass at `now` (Unix seconds; tests pass a time of their own).
pub fn prune(
    store: &Store,
    config: &Config,
    now: u64,
    pause: &mut dyn FnMut(),
) -> Result<Pass, StoreError> {
    let batch = config.retention.batch.max(1);
    let mut pass = Pass::default();
    for kind in [Kept::Tracking, Kept::FeedbackMarks, Kept::AbuseCases] {
        let until = kind.time_key(cutoff(config, kind, now));
        let n = prune_kind(store, kind, &until, batch, pause)?;
        pass.pruned.insert(kind.name(), n);
    }
    let (until, behind) = events_cutoff(store, config, now)?;
    pass.events_expired = count_untaken(store, &behind, &until)?;
    let n = prune_kind(store, Kept::Events, &until, batch, pause)?;
    pass.pruned.insert(Kept::Events.name(), n);
    let mut told = Vec::new();
    for (tenant, count) in &pass.events_expired {
        warn!(
            "retention: {count} events of tenant {tenant} deleted after {} s although its webhook had not taken them",
            config.retention.events_max
        );
        told.push(Store::event_op(&serde_json::json!({
            "type": "events_expired", "at": now, "tenant": tenant, "count": count,
            "before": keys::event_time(&until),
        })));
    }
    store.commit_blocking(told)?;
    pass.tenant_days = trim_tenant_history(store, config, now)?;
    let before = now.saturating_sub(config.retention.unconfirmed);
    let mut unconfirmed = 0;
    for tenant in config.tenants.keys() {
        unconfirmed += crate::consent::ops::expire_unconfirmed(store, tenant, before, batch)
            .map_err(|e| StoreError::Write(format!("unconfirmed contacts of {tenant}: {e}")))?;
        pause();
    }
    pass.pruned.insert("unconfirmed_contacts", unconfirmed);
    Ok(pass)
}

/// Trims each tenant's day rows to `tenant_history_days`.
fn trim_tenant_history(store: &Store, config: &Config, now: u64) -> Result<u64, StoreError> {
    let first_day = (now / 86_400 + 1).saturating_sub(config.retention.tenant_history_days);
    let mut trimmed = 0;
    for name in config.tenants.keys() {
        let state = crate::tenant::state(store, name)?;
        if state.history.first().is_some_and(|d| d.day < first_day) {
            crate::tenant::record(store, name, None, |s| {
                trimmed += s.trim_history(first_day) as u64;
            })?;
        }
    }
    Ok(trimmed)
}

/// Every kept kind's counts (a scan of each; see [`Store::kind_stats`]).
pub fn stats(store: &Store) -> Result<BTreeMap<&'static str, KindStats>, StoreError> {
    let mut out = BTreeMap::new();
    for kind in Kept::ALL {
        out.insert(kind.name(), store.kind_stats(kind)?);
    }
    Ok(out)
}

/// The pause between two steps of a pass: the pruner yields the disk to
/// mail flow for a moment after each batch.
const STEP_PAUSE: Duration = Duration::from_millis(20);

/// Runs until aborted: a pass every `[retention] interval` seconds, the
/// first a minute after start (or sooner with a shorter interval).
pub async fn run(ctx: Arc<Context>) {
    let mut lease: Option<Box<dyn crate::store::shared::HeldLock>> = None;
    let mut wait = Duration::from_secs(ctx.settings().config.retention.interval.min(60));
    loop {
        tokio::time::sleep(wait).await;
        let config = ctx.settings().config.clone();
        wait = Duration::from_secs(config.retention.interval.max(1));
        let store = ctx.store.clone();
        let held = lease.take();
        let result = tokio::task::spawn_blocking(move || {
            let lease = match held {
                Some(l) if l.alive() => Some(l),
                _ => store.try_shared_lock(PRUNE_LOCK_ID)?,
            };
            let Some(lease) = lease else {
                return Ok((None, None));
            };
            let pass = prune(&store, &config, crate::values::now(), &mut || {
                std::thread::sleep(STEP_PAUSE)
            })?;
            let stats = stats(&store)?;
            Ok::<_, StoreError>((Some(lease), Some((pass, stats))))
        })
        .await;
        match result {
            Ok(Ok((held, done))) => {
                lease = held;
                if let Some((pass, stats)) = done {
                    let total: u64 = pass.pruned.values().sum();
                    if total > 0 || pass.tenant_days > 0 {
                        info!(
                            "retention: deleted {} (and {} tenant day rows)",
                            pass.pruned
                                .iter()
                                .map(|(k, n)| format!("{k}={n}"))
                                .collect::<Vec<_>>()
                                .join(", "),
                            pass.tenant_days
                        );
                    }
                    crate::metrics::retention(&pass.pruned, &pass.events_expired, &stats);
                }
            }
            Ok(Err(e)) => warn!("retention: the pass failed: {e}"),
            Err(e) => warn!("retention: the pass stopped: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::queue::Tracking;
    use crate::tenant::TenantState;
    use crate::values::queue_id::new_queue_id;

    const DAY: u64 = 86_400;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[server]\nhostname = \"mta.example.test\"\n[feedback]\ndomain = \"bounces.example.test\"\n\
             [retention]\ntracking = {}\nfeedback_marks = {}\nevents = {}\nevents_max = {}\nabuse_cases = {}\nbatch = 3\n{extra}",
            10 * DAY,
            20 * DAY,
            30 * DAY,
            40 * DAY,
            50 * DAY
        );
        Config::parse(&text, std::path::Path::new("/")).expect("config")
    }

    /// A message's records as the acceptance and the feedback processor
    /// leave them: tracking, a bounce and a complaint mark, an abuse case,
    /// an event.
    fn one_message(store: &Store, tenant: &str, to: &str) -> String {
        let qid = new_queue_id();
        let tracking = Tracking {
            tenant: tenant.into(),
            list: Some("news".into()),
            recipients: vec![to.into()],
            message_id: None,
            at: crate::values::now(),
            sender_domain: None,
        };
        store
            .commit_blocking(vec![
                Store::tracking_op(&qid, &tracking),
                Store::feedback_seen_op("bounce", &qid, 0),
                Store::feedback_seen_op("complaint", &qid, 0),
                Store::abuse_case_op(
                    &qid,
                    &serde_json::json!({"id": qid, "tenant": tenant, "message": format!("To: {to}")}),
                ),
                Store::event_op(&serde_json::json!({"type": "queued", "tenant": tenant, "to": to})),
            ])
            .expect("write");
        qid
    }

    fn counts(store: &Store) -> BTreeMap<&'static str, u64> {
        stats(store)
            .expect("stats")
            .into_iter()
            .map(|(k, s)| (k, s.records))
            .collect()
    }

    #[test]
    fn each_kind_goes_after_its_period_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config = config("");
        let now = crate::values::now();
        let qids: Vec<String> = (0..7)
            .map(|_| one_message(&store, "acme", "jo@example.test"))
            .collect();
        let all = BTreeMap::from([
            ("abuse_cases", 7),
            ("events", 7),
            ("feedback_marks", 14),
            ("tracking", 7),
        ]);
        assert_eq!(counts(&store), all);
        let mut steps = 0;
        let mut pause = || steps += 1;
        // A day short of the shortest period: nothing goes.
        let pass = prune(&store, &config, now + 9 * DAY, &mut pause).unwrap();
        assert!(pass.pruned.values().all(|&n| n == 0), "{pass:?}");
        assert_eq!(counts(&store), all);
        // Past the tracking period (10 days) the tracking records go, in
        // steps of three (the batch), the marks stay.
        let pass = prune(&store, &config, now + 11 * DAY, &mut pause).unwrap();
        assert_eq!(pass.pruned["tracking"], 7);
        assert_eq!(
            steps, 2,
            "7 records in steps of 3: a pause after each full step"
        );
        assert!(store.tracking::<Tracking>(&qids[3]).unwrap().is_none());
        assert!(store.feedback_seen("bounce", &qids[3], 0).unwrap());
        // The marks of both feedback kinds after 20 days, the events after
        // 30, the abuse cases after 50.
        let pass = prune(&store, &config, now + 19 * DAY, &mut || {}).unwrap();
        assert_eq!(pass.pruned["feedback_marks"], 0);
        let pass = prune(&store, &config, now + 21 * DAY, &mut || {}).unwrap();
        assert_eq!(pass.pruned["feedback_marks"], 14);
        assert!(!store.feedback_seen("complaint", &qids[6], 0).unwrap());
        let pass = prune(&store, &config, now + 31 * DAY, &mut || {}).unwrap();
        assert_eq!(pass.pruned["events"], 7);
        assert_eq!(pass.pruned["abuse_cases"], 0);
        let pass = prune(&store, &config, now + 49 * DAY, &mut || {}).unwrap();
        assert_eq!(pass.pruned["abuse_cases"], 0);
        let pass = prune(&store, &config, now + 51 * DAY, &mut || {}).unwrap();
        assert_eq!(pass.pruned["abuse_cases"], 7);
        assert!(counts(&store).values().all(|&n| n == 0));
        assert_eq!(store.kind_stats(Kept::Tracking).unwrap().oldest, None);
    }

    #[test]
    fn newer_records_stay_when_older_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config = config("");
        let old = one_message(&store, "acme", "old@example.test");
        let made = crate::values::queue_id::made_at(&old).unwrap();
        // A record made a second later than the cutoff stays.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let new = one_message(&store, "acme", "new@example.test");
        let now = made + 1 + 10 * DAY;
        let pass = prune(&store, &config, now, &mut || {}).unwrap();
        assert_eq!(pass.pruned["tracking"], 1);
        assert!(store.tracking::<Tracking>(&old).unwrap().is_none());
        assert!(store.tracking::<Tracking>(&new).unwrap().is_some());
        assert!(store.kind_stats(Kept::Tracking).unwrap().oldest > Some(made));
    }

    #[test]
    fn events_wait_for_the_webhook_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config = config(
            "[tenants.acme]\nsender_domains = [\"example.test\"]\nwebhook_url = \"https://crm.example.test/hook\"\nwebhook_secret = \"s\"\n",
        );
        let now = crate::values::now();
        for _ in 0..4 {
            one_message(&store, "acme", "jo@example.test");
            one_message(&store, "other", "jo@example.test");
        }
        // The webhook has taken nothing: the events stay past `events`...
        let pass = prune(&store, &config, now + 31 * DAY, &mut || {}).unwrap();
        assert_eq!(pass.pruned["events"], 0);
        // ... and go at `events_max`, counted as expired for acme (other
        // has no webhook), which is told with an event.
        let pass = prune(&store, &config, now + 41 * DAY, &mut || {}).unwrap();
        assert_eq!(pass.pruned["events"], 8);
        assert_eq!(
            pass.events_expired,
            BTreeMap::from([("acme".to_string(), 4)])
        );
        let left = store.events_after(None, 10).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1["type"], "events_expired");
        assert_eq!(left[0].1["count"], 4);

        // Once the webhook has taken an event, it goes after `events`.
        for _ in 0..3 {
            one_message(&store, "acme", "jo@example.test");
        }
        let events = store.events_after(None, 10).unwrap();
        let taken = &events[2].0;
        store
            .commit_blocking(vec![Store::put_webhook_state_op(
                "acme",
                &WebhookState {
                    cursor: Some(crate::token::hex(taken)),
                    ..WebhookState::default()
                },
            )])
            .unwrap();
        // The expiry notice and two more were taken; the last one was not.
        let pass = prune(&store, &config, now + 31 * DAY, &mut || {}).unwrap();
        assert_eq!(pass.pruned["events"], 3, "{pass:?}");
        assert!(pass.events_expired.is_empty());
        let left = store.events_after(None, 10).unwrap();
        assert_eq!(left.len(), 1);
        assert!(&left[0].0 > taken);
    }

    #[test]
    fn tenant_history_keeps_its_days_and_survives_a_resume() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config = config("[tenants.acme]\nsender_domains = [\"example.test\"]\n");
        let now = crate::values::now();
        crate::tenant::record(&store, "acme", None, |s: &mut TenantState| {
            for d in 0..500u64 {
                s.today(now - (500 - d) * DAY, 7, |c| c.delivered += 1);
            }
            s.resume();
        })
        .unwrap();
        let s = crate::tenant::state(&store, "acme").unwrap();
        assert_eq!(s.history.len(), 500);
        assert!(s.days.is_empty());
        let pass = prune(&store, &config, now, &mut || {}).unwrap();
        assert_eq!(pass.tenant_days, 101);
        let s = crate::tenant::state(&store, "acme").unwrap();
        assert_eq!(s.history.len(), 399);
        assert_eq!(s.history[0].day, now / DAY - 399);
    }

    #[test]
    fn erasure_then_pruning_leave_no_trace_of_the_address() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config = config("[tenants.acme]\nsender_domains = [\"example.test\"]\n");
        let tenant = config.tenant("acme").unwrap().clone();
        let change = crate::consent::ops::Change {
            list: "news".into(),
            state: "double_opt_in_confirmed".into(),
            source: Some("form".into()),
            ip: Some("192.0.2.7".into()),
            user_agent: None,
            detail: None,
            at: None,
        };
        crate::consent::ops::set_state(&store, "acme", &tenant, "Jo@Example.test", &change, "api")
            .unwrap();
        let qid = one_message(&store, "acme", "jo@example.test");
        one_message(&store, "acme", "kim@example.test");
        // Another tenant's records of the same address are not this
        // tenant's to erase.
        one_message(&store, "other", "jo@example.test");
        crate::consent::ops::erase(&store, "acme", "jo@example.test").unwrap();
        let t: Tracking = store.tracking(&qid).unwrap().unwrap();
        assert!(t.recipients[0].starts_with("sha256:"), "{t:?}");
        assert!(store.holds_anywhere(b"kim@example.test"));
        // What remains of jo is the other tenant's message; pruning takes it.
        let events = store.events_after(None, 100).unwrap();
        assert!(events
            .iter()
            .filter(|(_, e)| e["tenant"] == "acme")
            .all(|(_, e)| !e.to_string().to_lowercase().contains("jo@example.test")));
        prune(&store, &config, crate::values::now() + 51 * DAY, &mut || {}).unwrap();
        assert!(!store.holds_anywhere(b"jo@example.test"));
        assert!(!store.holds_anywhere(b"kim@example.test"));
    }

    #[test]
    fn sign_ups_never_confirmed_go_after_their_period_and_confirmed_ones_stay() {
        use crate::consent::{Contact, Evidence};
        use crate::values::ConsentState;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config =
            config("unconfirmed = 2592000\n[tenants.acme]\nsender_domains = [\"example.test\"]\n");
        let now = crate::values::now();
        let contact = |state: ConsentState, at: u64| {
            let mut c = Contact::new();
            c.state = state;
            c.evidence.push(Evidence {
                at,
                state,
                source: "form".into(),
                ip: Some("192.0.2.7".into()),
                user_agent: None,
                detail: None,
                consent: None,
            });
            c
        };
        let pending = ConsentState::DoubleOptInPending;
        store
            .commit_blocking(vec![
                Store::put_contact_op(
                    "acme",
                    "news",
                    "old@example.test",
                    &contact(pending, now - 31 * DAY),
                ),
                Store::put_contact_op(
                    "acme",
                    "news",
                    "new@example.test",
                    &contact(pending, now - 29 * DAY),
                ),
                Store::put_contact_op(
                    "acme",
                    "news",
                    "kept@example.test",
                    &contact(ConsentState::DoubleOptInConfirmed, now - 400 * DAY),
                ),
            ])
            .unwrap();
        // Four more on another list: with batch = 3, the deletions take two
        // steps.
        let more: Vec<_> = (0..4)
            .map(|i| {
                Store::put_contact_op(
                    "acme",
                    "offers",
                    &format!("old{i}@example.test"),
                    &contact(pending, now - 40 * DAY),
                )
            })
            .collect();
        store.commit_blocking(more).unwrap();
        let pass = prune(&store, &config, now, &mut || {}).unwrap();
        assert_eq!(pass.pruned["unconfirmed_contacts"], 5);
        let left: Vec<String> = store
            .contacts::<Contact>("acme")
            .unwrap()
            .into_iter()
            .map(|(_, a, _)| a)
            .collect();
        assert_eq!(left, ["kept@example.test", "new@example.test"]);
        // The record is gone; the event that tells the CRM names it, until
        // events go.
        let events = store.events_after(None, 100).unwrap();
        assert!(events
            .iter()
            .any(|(_, e)| e["type"] == "contact_expired" && e["address"] == "old@example.test"));
        let pass = prune(&store, &config, now + 2 * DAY, &mut || {}).unwrap();
        assert_eq!(
            pass.pruned["unconfirmed_contacts"], 1,
            "the second goes a day after its month"
        );
        // A link that still works must find its sign-up.
        let short = "[retention]\nunconfirmed = 86400\n[tenants.acme]\nsender_domains = [\"example.test\"]\n";
        let text = format!("[server]\nhostname = \"mta.example.test\"\n[feedback]\ndomain = \"bounces.example.test\"\n{short}");
        let Err(e) = Config::parse(&text, std::path::Path::new("/")) else {
            panic!("a retention shorter than the link's life is refused");
        };
        let e = format!("{e:?}");
        assert!(
            e.contains("unconfirmed") && e.contains("confirm_token_ttl"),
            "{e}"
        );
    }
}
