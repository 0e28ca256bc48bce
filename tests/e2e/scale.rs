//! Delivery at scale, as behaviours (issue 27; bench/run measures the
//! figures): a slow destination never holds back the mail to the others,
//! and MX answers are asked once per time-to-live, not once per message.

use std::net::Ipv4Addr;

use hickory_proto::rr::RecordType;

use crate::delivery::submit;
use crate::dns::{a, dns_daemon, mx, TestDns};
use crate::harness::*;

/// The number after `name` on its line of a /metrics text, if any.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// More messages to a slow receiver than the daemon has delivery slots
/// (1 024), then a few to a fast one: the fast ones arrive while every one
/// of the slow ones is still waiting for its first reply. Before lanes, the
/// slow destination took every slot and the fast mail waited behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_destination_does_not_hold_back_a_fast_one() {
    // Each RCPT is answered after ten minutes, and delivery waits that
    // long for a reply: nothing to the slow receiver ends during the test.
    let mut script = Script::new();
    script.insert("DELAY_MS".into(), vec!["600000".into()]);
    let slow = Sink::start(script).await;
    let fast = Sink::start(Script::new()).await;
    let mut d = Daemon::new(Options {
        delivery: "command_timeout = 900\n".into(),
        routes: format!(
            "\"slow.test\" = \"127.0.0.1:{}\"\n\"fast.test\" = \"127.0.0.1:{}\"\n",
            slow.addr.port(),
            fast.addr.port()
        ),
        ..Options::default()
    });
    opt_in(&d.config_path, "reader@slow.test");
    let fast_rcpts: Vec<String> = (0..5).map(|i| format!("r{i}@fast.test")).collect();
    for r in &fast_rcpts {
        opt_in(&d.config_path, r);
    }
    d.spawn();
    let mut last_slow = String::new();
    for _ in 0..1100 {
        last_slow = submit(&d, &["reader@slow.test"], "Slow").await;
    }
    for r in &fast_rcpts {
        submit(&d, &[r.as_str()], "Fast").await;
    }
    let got = fast.wait_for(fast_rcpts.len()).await;
    assert_eq!(got.len(), fast_rcpts.len());
    assert!(slow.received().is_empty());
    assert!(
        !d.log().contains("to=<reader@slow.test>"),
        "a slow delivery ended: {}",
        d.log()
    );
    // The slow destination holds its lane (a sixteenth of the 1 024 slots,
    // its 10 connections among them); the other 1 036 wait in memory, parked.
    let token = std::fs::read_to_string(d.spool().join("admin.token")).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let (_, text) = http(d.http, "GET", "/metrics", &[("Authorization", &auth)], "").await;
    assert_eq!(
        metric(&text, "postwarden_delivery_parked"),
        Some(1036.0),
        "{text}"
    );
    assert_eq!(slow.concurrent.lock().unwrap().1, 10);
    // A parked message is not being delivered: the postmaster holds it at
    // once (the admin API takes it out of the parking), not after waiting
    // for a delivery to end.
    let out = d.cli(&["queue", "hold", &last_slow]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{last_slow}: held")
    );
    let (_, text) = http(d.http, "GET", "/metrics", &[("Authorization", &auth)], "").await;
    assert_eq!(
        metric(&text, "postwarden_delivery_parked"),
        Some(1035.0),
        "{text}"
    );
}

/// MX answers come from the resolver's cache for their time-to-live: three
/// messages one after another to a domain whose records live five minutes
/// ask for its MX once; to a domain whose records live 0 seconds, once per
/// message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mx_answers_are_cached_for_their_ttl() {
    let sink = Sink::start(Script::new()).await;
    let local = Ipv4Addr::LOCALHOST;
    let zone = || {
        vec![
            ("cached.test.", mx(10, "mx.cached.test.")),
            ("mx.cached.test.", a(local)),
        ]
    };
    let long = TestDns::start_with_ttl(zone(), 300).await;
    let short = TestDns::start_with_ttl(zone(), 0).await;
    let rcpts = ["r0@cached.test", "r1@cached.test", "r2@cached.test"];
    for (dns, expected) in [(&long, 1), (&short, 3)] {
        let before = sink.received().len();
        let d = dns_daemon(&sink, dns, &rcpts).await;
        for (i, r) in rcpts.iter().enumerate() {
            submit(&d, &[r], "Cached").await;
            sink.wait_for(before + i + 1).await;
        }
        let mx_queries = dns
            .queries
            .lock()
            .unwrap()
            .iter()
            .filter(|(name, t)| name == "cached.test." && *t == RecordType::MX)
            .count();
        assert_eq!(mx_queries, expected, "ttl of {:?}", dns.addr);
    }
}
