//! Warm-up on the real store, with an injected clock.
use super::*;
use crate::config::shaping::load_text;

const T0: u64 = 1_780_000_000_000 - 1_780_000_000_000 % (DAY * 1000) + 8 * 3_600_000; // 08:00 UTC
const DAY_MS: u64 = DAY * 1000;

fn shaping(extra: &str) -> Shaping {
    load_text(
        "site.toml",
        &format!("[warmup]\nschedule = [3, 5, 8]\nmax_bounce_rate = 0.2\nmax_complaint_rate = 0.1\n{extra}"),
    )
    .unwrap()
}

fn source() -> Subject {
    Subject::Source("mta1".into())
}

/// Takes one at a time, as many as it will give: how many went.
fn send_all(w: &Warmups, store: &Store, s: &Shaping, provider: &str, n: u64, at: u64) -> u64 {
    (0..n)
        .map(|_| w.take(store, s, &source(), provider, 1, at).unwrap().n)
        .sum()
}

#[test]
fn a_cap_of_n_sends_n_on_day_one_and_the_rest_the_next_day() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = shaping("");
    let w = Warmups::default();
    let g = w.take(&store, &s, &source(), "google", 10, T0).unwrap();
    assert_eq!(g.n, 3);
    let capped = g.capped.unwrap();
    assert_eq!((capped.day, capped.cap), (1, 3));
    assert_eq!(capped.until_ms % DAY_MS, 0, "until the next midnight");
    assert!(capped.until_ms > T0 && capped.until_ms - T0 <= DAY_MS);
    // Later the same day: nothing more to google, while yahoo has its own cap.
    assert_eq!(send_all(&w, &store, &s, "google", 5, T0 + 3_600_000), 0);
    assert_eq!(send_all(&w, &store, &s, "yahoo", 5, T0 + 3_600_000), 3);
    // Day 2: the cap of day 2 (5) for the 7 left.
    assert_eq!(send_all(&w, &store, &s, "google", 7, T0 + DAY_MS), 5);
    assert_eq!(send_all(&w, &store, &s, "google", 2, T0 + 2 * DAY_MS), 2);
}

#[test]
fn the_schedule_advances_only_on_days_that_sent() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = shaping("");
    let w = Warmups::default();
    assert_eq!(send_all(&w, &store, &s, "google", 3, T0), 3);
    // A week of nothing: the next send is on day 2, not day 8 (or over).
    let g = w
        .take(&store, &s, &source(), "google", 10, T0 + 7 * DAY_MS)
        .unwrap();
    assert_eq!((g.n, g.capped.map(|c| c.day)), (5, Some(2)));
}

#[test]
fn a_day_with_too_many_bounces_or_complaints_does_not_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = shaping("");
    let w = Warmups::default();
    assert_eq!(send_all(&w, &store, &s, "google", 3, T0), 3);
    w.record(&store, &source(), 1, 0, T0 + 1000).unwrap(); // 1 of 3: 33 % > 20 %
    let g = w
        .take(&store, &s, &source(), "google", 10, T0 + DAY_MS)
        .unwrap();
    assert_eq!(
        (g.n, g.capped.map(|c| c.day)),
        (3, Some(1)),
        "held on day 1"
    );
    let state: State = store.warmup(&source().key()).unwrap().unwrap();
    assert_eq!(state.held_days, 1);
    // A clean day moves it on.
    let g = w
        .take(&store, &s, &source(), "google", 10, T0 + 2 * DAY_MS)
        .unwrap();
    assert_eq!(g.capped.map(|c| c.day), Some(2));
    // A complaint rate above the maximum holds it as well; a report about
    // an earlier day counts for nothing.
    w.record(&store, &source(), 0, 1, T0 + 2 * DAY_MS + 1000)
        .unwrap(); // 1 of 5: 20 % > 10 %
    w.record(&store, &source(), 5, 0, T0 + DAY_MS).unwrap();
    let g = w
        .take(&store, &s, &source(), "google", 10, T0 + 3 * DAY_MS)
        .unwrap();
    assert_eq!(g.capped.map(|c| c.day), Some(2));
}

#[test]
fn the_counts_survive_a_restart_and_the_warm_up_ends_after_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let s = shaping("");
    {
        let store = Store::open(dir.path()).unwrap();
        let w = Warmups::default();
        assert_eq!(send_all(&w, &store, &s, "google", 2, T0), 2);
    }
    let store = Store::open(dir.path()).unwrap();
    let w = Warmups::default();
    assert_eq!(send_all(&w, &store, &s, "google", 5, T0 + 60_000), 1);
    assert_eq!(send_all(&w, &store, &s, "google", 9, T0 + DAY_MS), 5);
    assert_eq!(send_all(&w, &store, &s, "google", 9, T0 + 2 * DAY_MS), 8);
    // Day 4 is past the schedule: no cap, and the record says it is over.
    assert_eq!(send_all(&w, &store, &s, "google", 50, T0 + 3 * DAY_MS), 50);
    let state: State = store.warmup(&source().key()).unwrap().unwrap();
    assert!(state.done);
    assert!(status(&store, &s, T0 + 3 * DAY_MS).unwrap().is_empty());
}

#[test]
fn a_provider_can_have_a_schedule_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = shaping("[providers.google]\nwarmup = [1, 2]\n");
    let w = Warmups::default();
    assert_eq!(send_all(&w, &store, &s, "google", 5, T0), 1);
    assert_eq!(send_all(&w, &store, &s, "microsoft", 5, T0), 3);
    let shown = status(&store, &s, T0).unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].today["google"], (1, 1));
    assert_eq!(shown[0].today["microsoft"], (3, 3));
    // Given back, a taken one may go again.
    w.give_back(&store, &source(), "google", 1, T0).unwrap();
    assert_eq!(send_all(&w, &store, &s, "google", 5, T0), 1);
}

#[test]
fn the_domains_of_the_first_start_are_warm_and_later_ones_are_new() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = shaping("");
    let mut config = Config::parse(
        "[server]\nhostname = \"mx.example.org\"\n[feedback]\ndomain = \"fb.example.org\"\n\
         [tenants.acme]\nsender_domains = [\"old.example\"]\n",
        dir.path(),
    )
    .unwrap();
    seed(&store, &config, T0 / 1000).unwrap();
    let domain = |d: &str| Subject::Domain {
        tenant: "acme".into(),
        domain: d.into(),
    };
    let w = Warmups::default();
    let g = w
        .take(&store, &s, &domain("old.example"), "google", 10, T0)
        .unwrap();
    assert_eq!(g.n, 10);
    // A domain added after the first start warms up; seeding again (a
    // restart) does not make it warm.
    config
        .tenants
        .get_mut("acme")
        .unwrap()
        .sender_domains
        .push("new.example".into());
    seed(&store, &config, T0 / 1000 + 60).unwrap();
    let g = w
        .take(&store, &s, &domain("new.example"), "google", 10, T0)
        .unwrap();
    assert_eq!(g.n, 3);
}

/// The day turns at UTC midnight to the millisecond: the last one of day 1
/// is still capped, until the midnight the cap names; at it, day 2's cap.
#[test]
fn the_day_turns_at_utc_midnight_to_the_millisecond() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = shaping("");
    let w = Warmups::default();
    let midnight = T0 - T0 % DAY_MS + DAY_MS;
    assert_eq!(send_all(&w, &store, &s, "google", 3, T0), 3);
    let g = w
        .take(&store, &s, &source(), "google", 1, midnight - 1)
        .unwrap();
    assert_eq!(g.n, 0);
    assert_eq!(g.capped.map(|c| c.until_ms), Some(midnight));
    assert_eq!(send_all(&w, &store, &s, "google", 9, midnight), 5);
}
