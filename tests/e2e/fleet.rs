//! Fleet mode (issue 11): the shared state behind one trait, with the same
//! behaviour on both backends, and several nodes sharing one PostgreSQL.
//!
//! The PostgreSQL tests use the private cluster that `.ci/run` starts
//! (`.ci/postgres`), one fresh database per test.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use postwarden::consent::{ConsentLookup, ConsentState, Suppression};
use postwarden::store::{Op, Store};

use crate::delivery::{send_arf, submit};
use crate::harness::*;

fn contact(state: &str) -> serde_json::Value {
    serde_json::json!({ "state": state, "evidence": [] })
}

fn suppression(reason: &str) -> Suppression {
    Suppression {
        reason: reason.into(),
        at: 1,
        source: "test".into(),
        detail: None,
    }
}

/// What every backend must do alike.
fn shared_state_behaviour(store: &Store) {
    // Contacts: lists, counts and pages in byte order, tenants kept apart
    // (acme2 starts like acme), UTF-8 addresses after ASCII ones.
    let mut ops = Vec::new();
    for (list, addr) in [
        ("news", "b@x.test"),
        ("news", "a@x.test"),
        ("news", "é@x.test"),
        ("news2", "a@x.test"),
        ("offers", "c@x.test"),
    ] {
        ops.push(Store::put_contact_op(
            "acme",
            list,
            addr,
            &contact("double_opt_in_confirmed"),
        ));
    }
    ops.push(Store::put_contact_op(
        "acme2",
        "news",
        "z@x.test",
        &contact("single_opt_in"),
    ));
    store.commit_blocking(ops).unwrap();
    assert_eq!(store.lists("acme").unwrap(), ["news", "news2", "offers"]);
    assert_eq!(store.count_contacts("acme").unwrap(), 5);
    assert_eq!(store.count_contacts("acme2").unwrap(), 1);
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = store
            .contacts_page::<serde_json::Value>("acme", None, cursor.as_deref(), 2)
            .unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.into_iter().map(|(l, a, _)| format!("{l}/{a}")));
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "news/a@x.test",
            "news/b@x.test",
            "news/é@x.test",
            "news2/a@x.test",
            "offers/c@x.test"
        ]
    );
    let (one_list, _) = store
        .contacts_page::<serde_json::Value>("acme", Some("news"), None, 10)
        .unwrap();
    assert_eq!(one_list.len(), 3);

    // The RCPT look-ups (through the cache) see every change at once.
    assert_eq!(
        store.state("acme", "news", "a@x.test").unwrap(),
        ConsentState::DoubleOptInConfirmed
    );
    // Twice: a miss that fills the cache, then a hit.
    for _ in 0..2 {
        assert_eq!(
            ConsentLookup::suppression(store, "acme", "a@x.test").unwrap(),
            None
        );
    }
    store
        .commit_blocking(vec![Store::put_suppression_op(
            "acme",
            "a@x.test",
            &suppression("complaint"),
        )])
        .unwrap();
    assert_eq!(
        ConsentLookup::suppression(store, "acme", "a@x.test").unwrap(),
        Some(suppression("complaint"))
    );
    store
        .write_relaxed(vec![
            Store::put_contact_op("acme", "news", "a@x.test", &contact("unsubscribed")),
            Store::delete_suppression_op("acme", "a@x.test"),
        ])
        .unwrap();
    assert_eq!(
        store.state("acme", "news", "a@x.test").unwrap(),
        ConsentState::Unsubscribed
    );
    assert_eq!(
        ConsentLookup::suppression(store, "acme", "a@x.test").unwrap(),
        None
    );
    let all = store.suppressions::<Suppression>("acme").unwrap();
    assert!(all.is_empty(), "{all:?}");

    // Tenant counters: concurrent updates all count.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..25 {
                    postwarden::tenant::record(store, "acme", None, |t| t.submitted += 1).unwrap();
                }
            });
        }
    });
    assert_eq!(
        postwarden::tenant::state(store, "acme").unwrap().submitted,
        100
    );

    // The token secret is made once.
    let secret = store.secret().unwrap();
    assert_eq!(secret.len(), 32);
    assert_eq!(store.secret().unwrap(), secret);

    // A bounce or complaint is marked counted.
    assert!(!store.feedback_seen("complaint", "Q1", 0).unwrap());
    store
        .commit_blocking(vec![Store::feedback_seen_op("complaint", "Q1", 0)])
        .unwrap();
    assert!(store.feedback_seen("complaint", "Q1", 0).unwrap());
    assert!(!store.feedback_seen("complaint", "Q1", 1).unwrap());

    // A batch of spool and shared records: tracking (shared), event (spool).
    let tracking = serde_json::json!({ "tenant": "acme", "rcpts": ["a@x.test"] });
    let event = serde_json::json!({ "type": "test_event", "n": 7 });
    store
        .commit_blocking(vec![
            Store::tracking_op("Q9", &tracking),
            Store::event_op(&event),
        ])
        .unwrap();
    assert_eq!(
        store.tracking::<serde_json::Value>("Q9").unwrap(),
        Some(tracking)
    );
    assert_eq!(store.recent_events(1).unwrap(), vec![event]);
    assert!(store.healthy().is_ok());
}

#[test]
fn the_shared_state_behaves_alike_on_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.shared_backend_name(), "rocksdb");
    shared_state_behaviour(&store);
    // Served from the cache after the first look-ups.
    let (hits, _) = store.cache_stats().expect("a cache");
    assert!(hits > 0);
}

#[test]
fn the_shared_state_behaves_alike_on_postgres() {
    let url = postgres_db();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), &postgres_settings(&url)).unwrap();
    assert_eq!(store.shared_backend_name(), "postgres");
    shared_state_behaviour(&store);
    // The records are in PostgreSQL, not in this node's spool: another node
    // with an empty spool of its own sees them.
    drop(store);
    let other = tempfile::tempdir().unwrap();
    let store = Store::open_with(other.path(), &postgres_settings(&url)).unwrap();
    assert_eq!(store.count_contacts("acme").unwrap(), 5);
    assert_eq!(
        store.recent_events(1).unwrap(),
        vec![serde_json::json!({ "type": "test_event", "n": 7 })]
    );
}

/// Polls `check` until it is true; panics with `what` after 10 s. Returns
/// how long it took (printed by the callers: the issue asks for under a
/// second, which this run shows but does not assert).
fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

/// Two nodes on one database: a change on one reaches the other's cache,
/// updates from both count, the token secret is the same, and the
/// fleet-wide lock holds across them.
#[test]
fn two_nodes_share_changes_counts_secret_and_lock() {
    let url = postgres_db();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Store::open_with(da.path(), &postgres_settings(&url)).unwrap();
    let b = Store::open_with(db.path(), &postgres_settings(&url)).unwrap();
    assert_eq!(a.secret().unwrap(), b.secret().unwrap());

    // B answers "not suppressed" from its cache, once its feed listens.
    eventually("B's consent cache comes on", || {
        let before = b.cache_stats().unwrap().0;
        assert_eq!(
            ConsentLookup::suppression(&b, "acme", "jane@x.test").unwrap(),
            None
        );
        b.cache_stats().unwrap().0 > before
    });
    // A suppresses jane; B refuses her once A's NOTIFY arrives.
    a.commit_blocking(vec![Store::put_suppression_op(
        "acme",
        "jane@x.test",
        &suppression("unsubscribed"),
    )])
    .unwrap();
    let took = eventually("B sees A's suppression", || {
        ConsentLookup::suppression(&b, "acme", "jane@x.test")
            .unwrap()
            .is_some()
    });
    println!("fleet: a suppression on node A reached node B's cache in {took:?}");

    // Counts made at once on both nodes all count.
    std::thread::scope(|s| {
        for node in [&a, &b, &a, &b] {
            s.spawn(move || {
                for _ in 0..50 {
                    postwarden::tenant::record(node, "acme", None, |t| t.delivered += 1).unwrap();
                }
            });
        }
    });
    assert_eq!(
        postwarden::tenant::state(&b, "acme").unwrap().delivered,
        200
    );

    // The fleet-wide lock: while A holds it, B waits.
    let held = a.shared_lock(42).unwrap();
    let released = AtomicBool::new(false);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let _g = b.shared_lock(42).unwrap();
            released.load(Ordering::SeqCst)
        });
        std::thread::sleep(Duration::from_millis(300));
        released.store(true, Ordering::SeqCst);
        drop(held);
        assert!(waiter.join().unwrap(), "B took the lock while A held it");
    });

    // Events made on either node are in one log, in time order.
    a.commit_blocking(vec![Store::event_op(&serde_json::json!({"n": 1}))])
        .unwrap();
    b.commit_blocking(vec![Store::event_op(&serde_json::json!({"n": 2}))])
        .unwrap();
    let log = a.recent_events(2).unwrap();
    assert_eq!(log, b.recent_events(2).unwrap());
    assert_eq!(
        log,
        vec![serde_json::json!({"n": 1}), serde_json::json!({"n": 2})]
    );
    // One webhook dispatcher at a time: while A holds the lock, B cannot
    // take it; once A lets go (or dies), B can.
    let dispatcher = a.try_shared_lock(2).unwrap().expect("free at first");
    assert!(dispatcher.alive());
    assert!(b.try_shared_lock(2).unwrap().is_none());
    drop(dispatcher);
    assert!(b.try_shared_lock(2).unwrap().is_some());

    // A write through B's spool-and-shared batch, read on A.
    b.commit_blocking(vec![Op::Put(
        postwarden::store::Cf::Tracking,
        b"Q1".to_vec(),
        b"{\"tenant\":\"acme\"}".to_vec(),
    )])
    .unwrap();
    assert!(a.tracking::<serde_json::Value>("Q1").unwrap().is_some());
}

fn fleet_options(sink: &Sink, url: &str) -> Options {
    Options {
        routes: format!("\"example.test\" = \"127.0.0.1:{}\"\n", sink.addr.port()),
        tenant:
            "unsubscribe = \"managed\"\ncomplaint_min_deliveries = 2\ncomplaint_rate_limit = 0.3\n"
                .into(),
        extra: format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"),
        ..Options::default()
    }
}

/// Panics if the receiver got one event id twice.
fn assert_no_event_twice(events: &[(String, serde_json::Value)]) {
    let mut seen: Vec<&String> = events.iter().map(|(id, _)| id).collect();
    let n = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), n, "an event was posted twice: {events:?}");
}

/// The two-node test: two daemons, one PostgreSQL. A one-click
/// unsubscribe on node A's HTTP listener makes node B refuse the recipient
/// at RCPT; a complaint that node B processes suspends the tenant on node A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_unsubscribes_and_suspensions() {
    let sink = Sink::start(Script::new()).await;
    let url = postgres_db();
    let mut a = Daemon::new(fleet_options(&sink, &url));
    let mut b = Daemon::new(fleet_options(&sink, &url));
    // Opted in through A's configuration: both nodes know it.
    opt_in(&a.config_path, "jane@example.test");
    opt_in(&a.config_path, "john@example.test");
    a.spawn();
    b.spawn();
    assert!(a.log().contains("shared state in postgres"), "{}", a.log());

    // B accepts jane (and may cache that).
    let r = rcpt_answer(&b, "jane@example.test").await;
    assert!(r.starts_with("250"), "{r}");

    // A sends the newsletter (managed one-click link) to jane and john.
    let msg = |rcpt: &str| {
        newsletter(rcpt, "Autumn")
            .replace("List-Unsubscribe: <https://acme.example/u/abc>\r\n", "")
            .replace("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", "")
            .replace("\r\n.", "\r\n..")
    };
    for rcpt in ["jane@example.test", "john@example.test"] {
        let r = Raw::login(a.submission)
            .await
            .transaction("news@acme.example", rcpt, &msg(rcpt))
            .await;
        assert!(r.starts_with("250"), "{r}");
    }
    let got = sink.wait_for(2).await;
    let to_jane = got
        .iter()
        .find(|r| r.rcpt == "jane@example.test")
        .expect("jane's copy");
    let text = String::from_utf8_lossy(&to_jane.data).to_string();
    // One click on A (the managed link points at node A) ...
    assert_eq!(one_click_unsubscribe(a.http, &text).await, 200);
    // ... and B refuses jane at RCPT.
    let start = Instant::now();
    let r = loop {
        let r = rcpt_answer(&b, "jane@example.test").await;
        if !r.starts_with("250") || start.elapsed() > Duration::from_secs(10) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        r.starts_with("550 5.7.1 policy: recipient.suppressed"),
        "{r}"
    );
    println!(
        "fleet: node B refused the recipient {:?} after the click on node A",
        start.elapsed()
    );

    // Both deliveries are counted (by A) before the complaint arrives at B.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = b.cli(&["tenant", "stats", "acme", "--json"]);
        let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats");
        if stats["delivered"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{stats}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // John's provider reports a complaint to node B's feedback address.
    let to_john = got
        .iter()
        .find(|r| r.rcpt == "john@example.test")
        .expect("john's copy");
    send_arf(&b, &String::from_utf8_lossy(&to_john.data)).await;
    b.wait_for_log("tenant acme: suspended: complaint rate 50.00%");
    // Node A refuses the suspended tenant at once.
    let mut c = Raw::login(a.submission).await;
    let r = c.cmd("MAIL FROM:<news@acme.example>").await;
    assert!(r.starts_with("550 5.7.1"), "{r}");
    assert!(r.contains("suspended"), "{r}");
    // And john is suppressed for the tenant, as node A's CLI shows (the
    // complaint's own write follows the tenant's).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = a.cli(&["contacts", "show", "--tenant", "acme", "john@example.test"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains("suppressed: complaint") {
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A shared store that stops answering: mail is refused with 451 4.3.0
/// (try later), never accepted for an address whose state is unknown, and
/// /healthz says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_store_that_does_not_answer_gets_451_never_250() {
    let sink = Sink::start(Script::new()).await;
    let url = postgres_db();
    let mut d = Daemon::new(fleet_options(&sink, &url));
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    // Jane's state is read (and cached) while the database answers.
    let r = rcpt_answer(&d, "jane@example.test").await;
    assert!(r.starts_with("250"), "{r}");
    // A transaction under way when the database goes away.
    let mut c = Raw::login(d.submission).await;
    assert!(c
        .cmd("MAIL FROM:<news@acme.example>")
        .await
        .starts_with("250"));
    postgres_drop(&url);
    // Once the invalidation feed is down, the cache is off, so jane's
    // cached "may receive" is not used either.
    d.wait_for_log("invalidation feed down, consent cache off");
    for rcpt in ["jane@example.test", "john@example.test"] {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        assert!(r.starts_with("451 4.3.0"), "{rcpt}: {r}");
    }
    // A new transaction is refused at MAIL FROM (the tenant's state).
    let r = rcpt_answer(&d, "jane@example.test").await;
    assert!(r.starts_with("451 4.3.0"), "{r}");
    let (status, body) = http(d.http, "GET", "/healthz", &[], "").await;
    assert_eq!(status, 503, "{body}");
    // The daemon is still there and says why.
    assert!(d.log().contains("shared store"), "{}", d.log());
}

/// A [store] section that cannot work is named with its key and line.
#[test]
fn a_postgres_backend_without_url_is_named_in_config_check() {
    let d = Daemon::new(Options {
        extra: "[store]\nbackend = \"postgres\"\n".into(),
        ..Options::default()
    });
    let out = d.cli(&["config", "check"]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("store.backend"), "{text}");
    assert!(text.contains("line"), "{text}");
}

/// Runs `.ci/postgres ACTION DIR [MORE...]`; its output.
fn pg_cluster(action: &str, dir: &std::path::Path, more: &[&str]) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/postgres");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(action)
        .arg(dir)
        .args(more)
        .output()
        .expect("bash .ci/postgres");
    assert!(
        out.status.success(),
        "postgres {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Stops a PostgreSQL cluster when dropped (also when the test fails).
struct Cluster(std::path::PathBuf);

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/postgres"))
            .arg("stop")
            .arg(&self.0)
            .output();
    }
}

/// PostgreSQL restarts under a running node (a cluster of this test's own):
/// 451 while it is away, mail again once it is back, and the invalidation
/// feed back too: a suppression written afterwards by another node reaches
/// this node's cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_recovers_when_postgres_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster(dir.path().join("pg"));
    let url = pg_cluster("start", &cluster.0, &[]);
    let sink = Sink::start(Script::new()).await;
    let mut d = Daemon::new(fleet_options(&sink, &url));
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    d.wait_for_log("invalidation feed listening");
    let r = rcpt_answer(&d, "jane@example.test").await;
    assert!(r.starts_with("250"), "{r}");

    pg_cluster("pause", &cluster.0, &[]);
    d.wait_for_log("invalidation feed down");
    let r = rcpt_answer(&d, "jane@example.test").await;
    assert!(r.starts_with("451 4.3.0"), "{r}");

    pg_cluster("resume", &cluster.0, &[]);
    let r = rcpt_until(&d, "jane@example.test", "250").await;
    assert!(r.starts_with("250"), "{r}");
    // The feed listens again, so the cache is back on (and holds jane's
    // "may receive" after the next look-up)...
    let deadline = Instant::now() + Duration::from_secs(30);
    while d.log().matches("invalidation feed listening").count() < 2 {
        assert!(Instant::now() < deadline, "{}", d.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = rcpt_answer(&d, "jane@example.test").await;
    assert!(r.starts_with("250"), "{r}");
    // ... and when another node suppresses jane, the cache hears of it.
    let other = tempfile::tempdir().unwrap();
    let url2 = url.clone();
    let other_path = other.path().to_path_buf();
    std::thread::spawn(move || {
        let b = Store::open_with(&other_path, &postgres_settings(&url2)).unwrap();
        b.commit_blocking(vec![Store::put_suppression_op(
            "acme",
            "jane@example.test",
            &suppression("unsubscribed"),
        )])
        .unwrap();
    })
    .join()
    .unwrap();
    let r = rcpt_until(&d, "jane@example.test", "550").await;
    assert!(
        r.starts_with("550 5.7.1 policy: recipient.suppressed"),
        "{r}"
    );
    drop(d);
}

/// Both nodes' events reach the tenant's webhook, each once: the event log
/// is shared and one node at a time posts it; when that node dies, the
/// other takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_posts_every_nodes_events_to_the_webhook_once() {
    let sink = Sink::start(Script::new()).await;
    let (port, got) = crate::webhooks::receiver(0).await;
    let url = postgres_db();
    let mut opts = fleet_options(&sink, &url);
    opts.tenant.push_str(&format!(
        "webhook_url = \"http://127.0.0.1:{port}/hooks/postwarden\"\nwebhook_secret = \"{}\"\nwebhook_retry_base = 1\n",
        crate::webhooks::SECRET
    ));
    let mut a = Daemon::new(opts.clone());
    let mut b = Daemon::new(opts);
    opt_in(&a.config_path, "jane@example.test");
    a.spawn();
    b.spawn();
    let mut ids = Vec::new();
    for node in [&a, &b] {
        ids.push(submit(node, &["jane@example.test"], "Autumn").await);
    }
    sink.wait_for(2).await;
    // Each node's "queued" and "delivered" events arrive, each once.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = got.lock().unwrap().clone();
        let count = |kind: &str, id: &str| {
            events
                .iter()
                .filter(|(_, e)| e["type"] == kind && e["queue_id"] == id)
                .count()
        };
        if ids
            .iter()
            .all(|id| count("queued", id) >= 1 && count("delivered", id) >= 1)
        {
            for id in &ids {
                assert_eq!(count("queued", id), 1, "{events:?}");
                assert_eq!(count("delivered", id), 1, "{events:?}");
            }
            assert_no_event_twice(&events);
            break;
        }
        assert!(Instant::now() < deadline, "{events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One of the two nodes posted them all.
    let posters = [&a, &b]
        .iter()
        .filter(|d| d.log().contains("this node posts the fleet's webhooks"))
        .count();
    assert_eq!(posters, 1);

    // The posting node is killed; the other takes over and posts what
    // comes next (with the shared cursor: nothing twice).
    let (mut gone, survivor) = if a.log().contains("this node posts the fleet's webhooks") {
        (a, b)
    } else {
        (b, a)
    };
    gone.kill();
    survivor.wait_for_log("this node posts the fleet's webhooks");
    let id = submit(&survivor, &["jane@example.test"], "Winter").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = got.lock().unwrap().clone();
        if events
            .iter()
            .any(|(_, e)| e["type"] == "queued" && e["queue_id"] == id.as_str())
        {
            assert_no_event_twice(&events);
            break;
        }
        assert!(Instant::now() < deadline, "{events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A look-up that waits for PostgreSQL does not hold one of the daemon's
/// runtime workers: while more RCPTs than the daemon has workers wait behind a
/// lock on the shared table, a new client is still greeted and answered, and
/// the waiting RCPTs are answered once the lock goes (before the 5 s deadline
/// of the shared store, which would make them 451).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_waiting_on_postgres_do_not_stop_other_sessions() {
    let sink = Sink::start(Script::new()).await;
    let url = postgres_db();
    let mut d = Daemon::new(fleet_options(&sink, &url));
    d.spawn();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut waiting = Vec::new();
    for _ in 0..=workers {
        let mut c = Raw::login(d.submission).await;
        let r = c.cmd("MAIL FROM:<news@acme.example>").await;
        assert!(r.starts_with("250"), "{r}");
        waiting.push(c);
    }
    let (locker, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    locker
        .batch_execute("BEGIN; LOCK TABLE postwarden_kv IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    // Each RCPT reads the suppression list from PostgreSQL (a new address,
    // not in the cache) and waits for the lock.
    for (i, c) in waiting.iter_mut().enumerate() {
        c.send(&format!("RCPT TO:<waiting{i}@example.test>\r\n"))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut other = Raw::greeted(d.submission).await;
    assert!(other.cmd("NOOP").await.starts_with("250"));
    locker.batch_execute("COMMIT").await.expect("unlock");
    for c in &mut waiting {
        let r = c.reply().await;
        assert!(r.starts_with("250"), "{r}");
    }
    d.kill();
}

/// TLS to PostgreSQL (a cluster of this test's own, on 127.0.0.1 with a
/// certificate signed by a CA made here): with `sslmode=require` and
/// `[store] ca`, the node's connections to PostgreSQL are encrypted, as the
/// server's `pg_stat_ssl` shows, and mail flows; with a CA that did not sign
/// the server's certificate, nothing connects and the error says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_talks_tls_to_postgres_and_checks_its_certificate() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let pg = dir.path().join("pg");
    std::fs::create_dir_all(&pg).unwrap();
    let make_ca = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        (cert, key)
    };
    let (ca, ca_key) = make_ca("postwarden test CA");
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    std::fs::write(pg.join("server.crt"), server.pem()).unwrap();
    std::fs::write(pg.join("server.key"), server_key.serialize_pem()).unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let (other_ca, _) = make_ca("some other CA");
    let other_ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, other_ca.pem()).unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cluster = Cluster(pg.clone());
    let url = pg_cluster("start-tls", &pg, &[&port.to_string()]);
    assert!(url.contains("sslmode=require"), "{url}");

    let sink = Sink::start(Script::new()).await;
    let options = |ca: &std::path::Path| Options {
        extra: format!(
            "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nca = \"{}\"\n",
            ca.display()
        ),
        ..fleet_options(&sink, &url)
    };
    let mut d = Daemon::new(options(&ca_file));
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    let r = rcpt_answer(&d, "jane@example.test").await;
    assert!(r.starts_with("250"), "{r}");
    // The server's view (over its unix socket): every TCP connection is TLS.
    let (client, conn) = tokio_postgres::connect(
        &format!(
            "host={} port={port} user=postwarden dbname=postgres",
            pg.display()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect over the socket");
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.client_addr IS NOT NULL",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    let (tls, plain): (i64, i64) = (row.get(0), row.get(1));
    assert!(
        tls >= 1 && plain == 0,
        "{tls} TLS, {plain} plain connections"
    );
    d.kill();

    // A CA that did not sign the server's certificate: the CLI, which opens
    // the store itself while no daemon runs, cannot connect, and says why.
    let wrong = Daemon::new(options(&other_ca_file));
    let out = wrong.cli(&["tenant", "stats", "acme"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("certificate"), "{err}");
    // Nor does the daemon start: it exits and says why.
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_postwarden"))
        .args(["serve", "--config"])
        .arg(&wrong.config_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("postwarden serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    while serve.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = serve.kill();
            panic!("the daemon started with a CA that did not sign the server's certificate");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = serve.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("UnknownIssuer"), "{text}");
    drop(cluster);
}

/// Retention on the shared tables: the same periods, batched deletes by the
/// primary key's order, and the fleet lock that lets one node prune.
#[test]
fn retention_prunes_the_shared_tables_one_node_at_a_time() {
    use postwarden::store::queue::Tracking;
    use postwarden::values::queue_id;
    let url = postgres_db();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), &postgres_settings(&url)).unwrap();
    let text = format!(
        "[server]\nhostname = \"mta.test\"\n[feedback]\ndomain = \"bounces.test\"\n\
         [store]\nbackend = \"postgres\"\nurl = \"{url}\"\n[retention]\nbatch = 7\n"
    );
    let config = postwarden::config::Config::parse(&text, dir.path()).unwrap();
    let now = postwarden::values::now();
    let record = |t: u64| Tracking {
        tenant: "acme".into(),
        list: None,
        recipients: vec!["jo@example.test".into()],
        message_id: None,
        at: t,
        sender_domain: None,
    };
    let mut ops = Vec::new();
    for i in 0..50u64 {
        // 50 past the 90 days, 50 within them; a mark and an event for each.
        for t in [now - 91 * 86_400 - i, now - i] {
            let id = queue_id::first_at(t);
            ops.push(Store::tracking_op(&id, &record(t)));
            ops.push(Store::feedback_seen_op("bounce", &id, 0));
        }
    }
    store.commit_blocking(ops).unwrap();
    let pass = postwarden::retention::prune(&store, &config, now, &mut || {}).unwrap();
    assert_eq!(pass.pruned["tracking"], 50, "{pass:?}");
    assert_eq!(pass.pruned["feedback_marks"], 50, "{pass:?}");
    let stats = postwarden::retention::stats(&store).unwrap();
    assert_eq!(stats["tracking"].records, 50);
    assert!(stats["tracking"].oldest >= Some(now - 91 * 86_400));
    // While one node holds the pruning lock, another does not prune.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Store::open_with(other_dir.path(), &postgres_settings(&url)).unwrap();
    let held = store
        .try_shared_lock(postwarden::retention::PRUNE_LOCK_ID)
        .unwrap()
        .expect("free");
    assert!(other
        .try_shared_lock(postwarden::retention::PRUNE_LOCK_ID)
        .unwrap()
        .is_none());
    drop(held);
    let pass =
        postwarden::retention::prune(&other, &config, now + 92 * 86_400, &mut || {}).unwrap();
    assert_eq!(pass.pruned["tracking"], 50);
    drop((store, other));
    postgres_drop(&url);
}

/// A warm-up's daily cap holds for the fleet: two nodes on one database,
/// taking at once, send no more than the cap between them, and both see
/// the day move on.
#[test]
fn a_warm_up_cap_holds_across_two_nodes() {
    use postwarden::shaping::warmup::{Subject, Warmups};
    let url = postgres_db();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Store::open_with(da.path(), &postgres_settings(&url)).unwrap();
    let b = Store::open_with(db.path(), &postgres_settings(&url)).unwrap();
    let shaping =
        postwarden::config::shaping::load_text("site.toml", "[warmup]\nschedule = [40, 100]\n")
            .unwrap();
    let source = Subject::Source("mta2".into());
    // 10:00 UTC of some day, and the next day.
    let day = 20_000 * 86_400_000u64;
    let t0 = day + 10 * 3_600_000;
    let granted: u64 = std::thread::scope(|s| {
        let takers: Vec<_> = [&a, &b, &a, &b]
            .into_iter()
            .map(|node| {
                let (shaping, source) = (&shaping, &source);
                s.spawn(move || {
                    let w = Warmups::default();
                    (0..25)
                        .map(|_| w.take(node, shaping, source, "google", 1, t0).unwrap().n)
                        .sum::<u64>()
                })
            })
            .collect();
        takers.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert_eq!(granted, 40, "100 asked on two nodes, the day's cap is 40");
    let next = Warmups::default()
        .take(&b, &shaping, &source, "google", 500, t0 + 86_400_000)
        .unwrap();
    assert_eq!((next.n, next.capped.map(|c| c.day)), (100, Some(2)));
    let seen = Warmups::default()
        .take(&a, &shaping, &source, "google", 1, t0 + 86_400_000)
        .unwrap();
    assert_eq!(seen.n, 0, "node A sees node B's day 2 used up");
    drop((a, b));
    postgres_drop(&url);
}
