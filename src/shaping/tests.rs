//! The paths' arithmetic, on an injected clock.
use super::*;
use crate::config::shaping::load_text;

fn path(p: &str) -> PathId {
    PathId {
        source: SOURCE.into(),
        provider: p.into(),
        domain: None,
    }
}

fn limits(per_minute: u32, burst: u32) -> PathLimits {
    PathLimits {
        messages_per_minute: per_minute,
        burst,
        ..PathLimits::default()
    }
}

#[test]
fn a_rate_paces_messages_evenly_with_a_burst_first() {
    let shaper = Shaper::default();
    let p = path("google");
    let l = limits(60, 2); // one a second, two more at once
    let t0 = 1_000_000;
    let admits: Vec<Admit> = (0..6)
        .map(|i| shaper.admit(&p, ("q1", i), &l, 10, t0))
        .collect();
    assert_eq!(&admits[..3], &[Admit::Go, Admit::Go, Admit::Go]);
    let until: Vec<u64> = admits[3..]
        .iter()
        .map(|a| match a {
            Admit::Wait { until_ms, .. } => *until_ms,
            Admit::Go => panic!("{admits:?}"),
        })
        .collect();
    // Reserved one second apart, in the order they asked.
    assert_eq!(until, vec![t0 + 1000, t0 + 2000, t0 + 3000]);
    // Coming back early: the same slot, nothing new reserved.
    assert_eq!(
        shaper.admit(&p, ("q1", 4), &l, 10, t0 + 500),
        Admit::Wait {
            until_ms: t0 + 2000,
            why: "path google: slot reserved".into()
        }
    );
    // At its slot it goes, without taking another.
    assert_eq!(shaper.admit(&p, ("q1", 3), &l, 10, t0 + 1000), Admit::Go);
    assert_eq!(shaper.admit(&p, ("q1", 4), &l, 10, t0 + 2000), Admit::Go);
    // A newcomer queues behind the reserved ones.
    match shaper.admit(&p, ("q2", 0), &l, 10, t0 + 2000) {
        Admit::Wait { until_ms, .. } => assert_eq!(until_ms, t0 + 4000),
        Admit::Go => panic!("jumped the queue"),
    }
    // Another path is not held back.
    assert_eq!(
        shaper.admit(&path("yahoo"), ("q3", 0), &l, 10, t0),
        Admit::Go
    );
}

#[test]
fn an_hourly_rate_holds_when_the_minute_one_would_not() {
    let shaper = Shaper::default();
    let p = path("t-online");
    let l = PathLimits {
        messages_per_minute: 600,
        messages_per_hour: 60,
        ..PathLimits::default()
    };
    assert_eq!(shaper.admit(&p, ("a", 0), &l, 3, 0), Admit::Go);
    match shaper.admit(&p, ("a", 1), &l, 3, 0) {
        Admit::Wait { until_ms, why } => {
            assert_eq!(until_ms, 60_000);
            assert!(why.contains("messages_per_hour 60"), "{why}");
        }
        Admit::Go => panic!("the hourly rate did not hold"),
    }
}

#[test]
fn connections_are_limited_and_freed() {
    let shaper = Shaper::default();
    let p = path("orange");
    let l = PathLimits {
        connections: 2,
        ..PathLimits::default()
    };
    let a = shaper.try_connection(&p, &l, 10, 0).expect("first");
    let _b = shaper.try_connection(&p, &l, 10, 0).expect("second");
    assert!(shaper.try_connection(&p, &l, 10, 0).is_err());
    drop(a);
    assert!(shaper.try_connection(&p, &l, 10, 0).is_ok());
    // No limit of its own: the path does not limit.
    let free = PathLimits::default();
    let slots: Vec<_> = (0..50)
        .map(|_| shaper.try_connection(&path("x"), &free, 10, 0))
        .collect();
    assert!(slots.iter().all(|s| s.is_ok()));
}

#[test]
fn new_connections_per_minute_are_spaced() {
    let shaper = Shaper::default();
    let p = path("comcast");
    let l = PathLimits {
        connections_per_minute: 30,
        ..PathLimits::default()
    };
    let delays: Vec<u64> = (0..3)
        .map(|_| shaper.connect_delay(&p, &l, 3, 10_000).as_millis() as u64)
        .collect();
    assert_eq!(delays, vec![0, 2000, 4000]);
}

#[test]
fn a_suspension_rule_holds_the_path_and_only_the_path() {
    let shaping = load_text("site.toml", "").expect("shipped");
    let shaper = Shaper::default();
    let g = path("google");
    let l = limits(0, 0);
    let line = "421 4.7.28 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail";
    let r = shaper
        .observe(&g, &shaping.rules, "4.7.28", line, 5_000)
        .expect("matched");
    assert_eq!(r.rule, "google-rate-limited");
    let until = 5_000 + 1800 * 1000;
    assert_eq!(
        r.activated,
        Some(Activation {
            action: "suspend",
            until_ms: until
        })
    );
    assert_eq!(r.retry_at_ms, Some(until));
    match shaper.admit(&g, ("m", 0), &l, 10, 6_000) {
        Admit::Wait { until_ms, why } => {
            assert_eq!(until_ms, until);
            assert!(why.contains("google-rate-limited"), "{why}");
        }
        Admit::Go => panic!("suspended path let mail go"),
    }
    // A second reply from another connection: no second activation.
    let again = shaper
        .observe(&g, &shaping.rules, "4.7.28", line, 7_000)
        .expect("matched");
    assert_eq!(again.activated, None);
    assert_eq!(again.retry_at_ms, Some(until));
    // Microsoft's path is not Google's.
    assert_eq!(
        shaper.admit(&path("microsoft"), ("m", 1), &l, 10, 6_000),
        Admit::Go
    );
    // It ends by itself.
    assert_eq!(shaper.admit(&g, ("m", 0), &l, 10, until), Admit::Go);
    // A user unknown is no rule's business.
    assert!(shaper
        .observe(&g, &shaping.rules, "5.1.1", "550 5.1.1 No such user", 9_000)
        .is_none());
}

#[test]
fn a_threshold_counts_within_its_period_only() {
    let shaping = load_text("site.toml", "").expect("shipped");
    let shaper = Shaper::default();
    let p = PathId::parse("default:example.org", SOURCE);
    assert_eq!(p.domain.as_deref(), Some("example.org"));
    let line = "451 4.7.1 Rate limit exceeded, slow down";
    let hit = |t: u64| {
        shaper
            .observe(&p, &shaping.rules, "4.7.1", line, t)
            .expect("rate-limited matches")
    };
    // rate-limited: 3 in 300 s. Two, then the period passes: no action.
    assert!(hit(0).activated.is_none());
    assert!(hit(1_000).activated.is_none());
    assert!(hit(400_000).activated.is_none());
    assert!(hit(401_000).activated.is_none());
    let third = hit(402_000);
    assert_eq!(third.activated.map(|a| a.action), Some("throttle"));
    // Throttled: the [delivery] connections (10) are halved.
    let free = PathLimits::default();
    let slots: Vec<_> = (0..6)
        .map(|_| shaper.try_connection(&p, &free, 10, 403_000))
        .collect();
    assert_eq!(slots.iter().filter(|s| s.is_ok()).count(), 5);
    // Until the throttle ends (900 s).
    drop(slots);
    let later: Vec<_> = (0..6)
        .map(|_| shaper.try_connection(&p, &free, 10, 402_000 + 900_000))
        .collect();
    assert!(later.iter().all(|s| s.is_ok()));
}

#[test]
fn a_throttle_halves_the_rate_of_the_path() {
    let shaping = load_text("site.toml", "").expect("shipped");
    let shaper = Shaper::default();
    let y = path("yahoo");
    let l = limits(60, 0);
    let r = shaper
        .observe(
            &y,
            &shaping.rules,
            "4.0.0",
            "421 Message from (192.0.2.1) temporarily deferred - [TS01]",
            0,
        )
        .expect("ts0x");
    assert_eq!(r.activated.map(|a| a.action), Some("throttle"));
    assert_eq!(r.retry_at_ms, None, "the scheduler's retry_base");
    assert_eq!(shaper.admit(&y, ("a", 0), &l, 10, 0), Admit::Go);
    match shaper.admit(&y, ("a", 1), &l, 10, 0) {
        Admit::Wait { until_ms, .. } => assert_eq!(until_ms, 2000, "30 a minute"),
        Admit::Go => panic!("not throttled"),
    }
}

#[test]
fn the_postmaster_suspends_and_resumes() {
    let shaper = Shaper::default();
    let g = path("google");
    shaper.suspend(&g, 100_000, "warming a new IP by hand", 0);
    let status = shaper.status(&Shaping::default(), 10, 1);
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].suspended_by.as_deref(), Some("postmaster"));
    assert_eq!(status[0].suspended_until, Some(100));
    assert!(matches!(
        shaper.admit(&g, ("q", 0), &PathLimits::default(), 10, 50),
        Admit::Wait { .. }
    ));
    assert_eq!(shaper.resume(&g, 60), 1);
    assert_eq!(
        shaper.admit(&g, ("q", 0), &PathLimits::default(), 10, 61),
        Admit::Go
    );
    // Idle paths are forgotten; held ones are kept.
    shaper.suspend(&path("apple"), 10_000_000, "x", 0);
    shaper.prune(60_000, 5_000_000);
    shaper.report(5_000_000);
    let left: Vec<String> = shaper
        .status(&Shaping::default(), 10, 5_000_000)
        .into_iter()
        .map(|s| s.path)
        .collect();
    assert_eq!(left, vec!["apple"]);
}

#[test]
fn a_domain_finds_its_path_by_name_then_by_mx() {
    let shaping = load_text("site.toml", "").expect("shipped");
    let hosts = vec!["aspmx.l.google.com".to_string()];
    let (p, l) = PathId::of(&shaping, SOURCE, "customer.example", Some(&hosts));
    assert_eq!(p.to_string(), "google");
    assert_eq!(l.connections, 20);
    // Through a relay (no MX look-up) only a listed domain is Google's.
    let (p, _) = PathId::of(&shaping, SOURCE, "customer.example", None);
    assert_eq!(p.to_string(), "default:customer.example");
    let (p, _) = PathId::of(&shaping, SOURCE, "Gmail.com", None);
    assert_eq!(p.to_string(), "google");
}

#[test]
fn each_source_has_paths_of_its_own() {
    let shaper = Shaper::default();
    let a = PathId::parse("google", SOURCE);
    let b = PathId::parse("mta2/google", SOURCE);
    assert_eq!((b.source.as_str(), b.provider.as_str()), ("mta2", "google"));
    assert_eq!(b.to_string(), "mta2/google");
    assert_eq!(a.to_string(), "google");
    assert_eq!(
        PathId::parse("mta2/default:x.example", SOURCE).to_string(),
        "mta2/default:x.example"
    );
    let l = PathLimits {
        connections: 1,
        ..PathLimits::default()
    };
    let held = shaper.try_connection(&a, &l, 10, 0).expect("a place");
    assert!(shaper.try_connection(&a, &l, 10, 0).is_err());
    assert!(
        shaper.try_connection(&b, &l, 10, 0).is_ok(),
        "another source's place"
    );
    drop(held);
    // A suspension of one source's path leaves the other's alone, and a
    // resume of the provider on a source ends only that source's.
    shaper.suspend(&b, 60_000, "asked", 0);
    assert!(shaper.suspended_until(&a, 1).is_none());
    assert_eq!(shaper.suspended_until(&b, 1), Some(60_000));
    assert_eq!(shaper.resume(&a, 2), 0);
    assert_eq!(shaper.resume(&b, 2), 1);
}

#[test]
fn status_counts_what_was_sent_in_the_last_minute_and_hour() {
    let shaping = load_text("site.toml", "").expect("shipped");
    let shaper = Shaper::default();
    let p = path("google");
    let t0 = 10_000_000;
    for i in 0..5 {
        shaper.sent(&p, t0 + i * 30_000); // 0, 30, 60, 90, 120 s
    }
    let now = t0 + 125_000;
    let s = &shaper.status(&shaping, 10, now)[0];
    assert_eq!((s.sent_last_minute, s.sent_last_hour), (2, 5));
    let s = &shaper.status(&shaping, 10, t0 + 3_700_000)[0];
    assert_eq!((s.sent_last_minute, s.sent_last_hour), (0, 1));
}

#[test]
fn a_rate_above_one_a_millisecond_keeps_its_spacing() {
    let shaper = Shaper::default();
    let p = path("google");
    // 120 000 a minute: two a millisecond. Within one minute, not more.
    let l = limits(120_000, 0);
    let t0 = 5_000_000;
    let mut last = 0;
    for i in 0..240_000 {
        match shaper.admit(&p, ("q", i), &l, 10, t0) {
            Admit::Go => {}
            Admit::Wait { until_ms, .. } => last = last.max(until_ms),
        }
    }
    // 240 000 at two a millisecond: the last slot two minutes on, not four.
    assert!(
        last >= t0 + 119_000 && last <= t0 + 120_000,
        "{}",
        last - t0
    );
}

/// Suspensions survive a restart as saved records; one that is over by
/// then is not put back, and throttles are not saved.
#[test]
fn suspensions_are_saved_and_put_back_unless_over() {
    let shaper = Shaper::default();
    shaper.suspend(&path("google"), 100_000, "asked by its desk", 0);
    shaper.suspend(&path("apple"), 5_000, "short", 0);
    let saved = shaper.saved_holds(1_000);
    assert_eq!(saved.len(), 2);
    assert_eq!(saved[1].provider, "google");
    assert_eq!(saved[1].rule, "postmaster");
    let text = serde_json::to_string(&saved).unwrap();
    let back: Vec<SavedHold> = serde_json::from_str(&text).unwrap();
    let restarted = Shaper::default();
    assert_eq!(restarted.restore(back, 10_000), 1, "apple's ended at 5 s");
    let status = restarted.status(&Shaping::default(), 10, 10_000);
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].suspended_by.as_deref(), Some("postmaster"));
    assert_eq!(status[0].suspended_until, Some(100));
    assert!(matches!(
        restarted.admit(
            &path("google"),
            ("q", 0),
            &PathLimits::default(),
            10,
            50_000
        ),
        Admit::Wait { .. }
    ));
    // A throttle comes back with its changes.
    let throttled = SavedHold {
        source: SOURCE.into(),
        provider: "yahoo".into(),
        domain: None,
        until_ms: 200_000,
        rule: "yahoo-tss04".into(),
        reply: "421 4.7.0 [TSS04]".into(),
        throttle: Some(Throttle {
            factor: Some(0.5),
            ..Default::default()
        }),
    };
    let text = serde_json::to_string(&[throttled]).unwrap();
    let again = Shaper::default();
    assert_eq!(
        again.restore(serde_json::from_str(&text).unwrap(), 10_000),
        1
    );
    let saved = again.saved_holds(10_000);
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].throttle.as_ref().and_then(|t| t.factor), Some(0.5));
    let status = again.status(&Shaping::default(), 10, 10_000);
    assert!(status[0].suspended_by.is_none(), "{status:?}");
}
