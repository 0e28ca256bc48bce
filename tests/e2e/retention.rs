//! Retention in a running daemon and in `postwarden spool prune`: records
//! past their period go, feedback about a message whose tracking record
//! went is kept for the abuse desk without effect, and a kill in the middle
//! of a pass loses nothing that should stay.

use std::time::{Duration, Instant};

use postwarden::store::queue::Tracking;
use postwarden::store::Store;
use postwarden::values::queue_id;

use crate::delivery::{send_arf, submit};
use crate::harness::*;

fn spool_stats(d: &Daemon) -> serde_json::Value {
    let out = d.cli(&["spool", "stats", "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("spool stats JSON")
}

/// Retention scaled down to seconds (the periods' order kept: tracking not
/// shorter than the queue's expiry, marks not shorter than tracking); abuse
/// cases stay for the test to read.
const SECONDS: &str = "[retention]\ntracking = 2\nfeedback_marks = 2\nevents = 2\nevents_max = 3\nabuse_cases = 86400\ninterval = 1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_prunes_and_late_feedback_is_kept_without_effect() {
    let sink = Sink::start(Script::new()).await;
    let mut d = Daemon::new(Options {
        routes: format!("\"example.test\" = \"127.0.0.1:{}\"\n", sink.addr.port()),
        delivery: "expiry = 2".into(),
        extra: SECONDS.into(),
        ..Options::default()
    });
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    submit(&d, &["jane@example.test"], "Autumn").await;
    let got = sink.wait_for(1).await;
    let original = String::from_utf8_lossy(&got[0].data).into_owned();
    let stats = spool_stats(&d);
    assert_eq!(stats["kinds"]["tracking"]["records"], 1, "{stats}");
    assert!(
        stats["kinds"]["events"]["records"].as_u64() >= Some(1),
        "{stats}"
    );
    assert_eq!(stats["kinds"]["tracking"]["retention_seconds"], 2);

    // The daemon's pass deletes the tracking record and the events.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = spool_stats(&d);
        let kinds = &stats["kinds"];
        if kinds["tracking"]["records"] == 0 && kinds["events"]["records"] == 0 {
            assert_eq!(kinds["tracking"]["oldest"], serde_json::Value::Null);
            break;
        }
        assert!(Instant::now() < deadline, "not pruned: {stats}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.wait_for_log("retention: deleted");

    // A complaint about the message now finds no tracking record: the abuse
    // desk keeps it, nobody is suppressed.
    send_arf(&d, &original).await;
    d.wait_for_log("which is no longer tracked: kept for the abuse desk");
    assert!(rcpt_answer(&d, "jane@example.test")
        .await
        .starts_with("250"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = d.cli(&["abuse", "list", "--json"]);
        let cases: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cases");
        if cases.as_array().map(Vec::len) == Some(1) {
            assert!(cases[0].get("tenant").is_none(), "{cases}");
            break;
        }
        assert!(Instant::now() < deadline, "{cases}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = d.cli(&["spool", "stats"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("abuse_cases") && text.contains("free:"),
        "{text}"
    );
}

fn tracking(n: usize) -> Tracking {
    Tracking {
        tenant: "acme".into(),
        list: None,
        recipients: vec![format!("r{n}@example.test")],
        message_id: None,
        at: 0,
        sender_domain: None,
    }
}

#[test]
fn a_kill_during_pruning_loses_nothing_that_should_stay() {
    const OLD: usize = 40_000;
    const NEW: usize = 1_000;
    let d = Daemon::new(Options {
        extra: "[retention]\nbatch = 20\n".into(),
        ..Options::default()
    });
    let now = postwarden::values::now();
    let expired = now - 100 * 86_400;
    let old: Vec<String> = (0..OLD)
        .map(|i| queue_id::first_at(expired - i as u64))
        .collect();
    let new: Vec<String> = (1..=NEW)
        .map(|i| queue_id::first_at(now - i as u64))
        .collect();
    {
        let store = Store::open(&d.spool()).expect("spool");
        let all: Vec<&String> = old.iter().chain(&new).collect();
        for chunk in all.chunks(1000) {
            let ops = chunk
                .iter()
                .enumerate()
                .map(|(i, id)| Store::tracking_op(id, &tracking(i)))
                .collect();
            store.commit_blocking(ops).expect("write");
        }
    }
    let bin = env!("CARGO_BIN_EXE_postwarden");
    let mut child = std::process::Command::new(bin)
        .args(["spool", "prune", "--config"])
        .arg(&d.config_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spool prune");
    std::thread::sleep(Duration::from_millis(300));
    let finished = child.try_wait().expect("wait").is_some();
    let _ = child.kill();
    let _ = child.wait();

    let count = |store: &Store, ids: &[String]| {
        ids.iter()
            .filter(|id| store.tracking::<Tracking>(id).expect("read").is_some())
            .count()
    };
    {
        let store = Store::open(&d.spool()).expect("spool after the kill");
        assert_eq!(count(&store, &new), NEW, "a record that should stay went");
        let left = count(&store, &old);
        println!(
            "retention kill: {} when killed, {left} of {OLD} expired records left",
            if finished { "finished" } else { "mid-pass" }
        );
    }
    let out = cli(&d.config_path, &["spool", "prune", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let store = Store::open(&d.spool()).expect("spool");
    assert_eq!(count(&store, &new), NEW);
    assert_eq!(count(&store, &old), 0);
}

/// Double opt-in sign-ups never confirmed go `[retention] unconfirmed` after
/// they were made, on both backends: as a postmaster meets it (an import,
/// then `postwarden spool prune`) on the spool, and on a fleet's PostgreSQL
/// (where a tracking record past its period goes too, and the pass's VACUUM
/// runs).
#[test]
fn sign_ups_never_confirmed_expire_on_the_spool_and_on_postgres() {
    let day = 86_400;
    let now = postwarden::values::now();
    // The importer takes a time as Unix seconds too.
    let stamp = |secs_ago: u64| (now - secs_ago).to_string();
    let d = Daemon::new(Options::default());
    let csv = d.dir.path().join("pending.csv");
    std::fs::write(
        &csv,
        format!(
            "email,state,opted_in_at,opted_in_ip,confirmed_at\n\
             old@example.test,double_opt_in_pending,{},198.51.100.7,\n\
             new@example.test,double_opt_in_pending,{},198.51.100.8,\n\
             kept@example.test,double_opt_in_confirmed,{},,{}\n",
            stamp(31 * day),
            stamp(2 * day),
            stamp(400 * day),
            stamp(399 * day)
        ),
    )
    .unwrap();
    let out = d.cli(&[
        "contacts",
        "import",
        "--tenant",
        "acme",
        "--list",
        "news",
        "--source",
        "old shop",
        "--attest",
        csv.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = d.cli(&["spool", "prune", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let pass: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pass["pruned"]["unconfirmed_contacts"], 1, "{pass}");
    let shown = |address: &str| {
        let out = d.cli(&["contacts", "show", "--tenant", "acme", address, "--json"]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(
        !shown("old@example.test").contains("news"),
        "{}",
        shown("old@example.test")
    );
    assert!(shown("new@example.test").contains("double_opt_in_pending"));
    assert!(shown("kept@example.test").contains("double_opt_in_confirmed"));

    // The same on PostgreSQL, the shared state of a fleet.
    let url = postgres_db();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), &postgres_settings(&url)).unwrap();
    let pending = serde_json::json!({
        "state": "double_opt_in_pending",
        "evidence": [{"at": now - 31 * day, "state": "double_opt_in_pending", "source": "form"}],
    });
    let fresh = serde_json::json!({
        "state": "double_opt_in_pending",
        "evidence": [{"at": now - day, "state": "double_opt_in_pending", "source": "form"}],
    });
    // And a tracking record past its period with one inside it: the pass
    // deletes the one and ends with a VACUUM of the shared table.
    let (gone, kept) = (
        queue_id::first_at(now - 100 * day),
        queue_id::first_at(now - day),
    );
    store
        .commit_blocking(vec![
            Store::put_contact_op("acme", "news", "old@example.test", &pending),
            Store::put_contact_op("acme", "news", "new@example.test", &fresh),
            Store::tracking_op(&gone, &tracking(1)),
            Store::tracking_op(&kept, &tracking(2)),
        ])
        .unwrap();
    let config = postwarden::config::Config::parse(
        "[server]\nhostname = \"mta.example.test\"\n[feedback]\ndomain = \"bounces.example.test\"\n\
         [tenants.acme]\nsender_domains = [\"example.test\"]\n",
        std::path::Path::new("/"),
    )
    .unwrap();
    let pass = postwarden::retention::prune(&store, &config, now, &mut || {}).unwrap();
    assert_eq!(pass.pruned["unconfirmed_contacts"], 1);
    assert_eq!(pass.pruned["tracking"], 1, "{pass:?}");
    assert!(store.tracking::<Tracking>(&gone).unwrap().is_none());
    assert!(store.tracking::<Tracking>(&kept).unwrap().is_some());
    let left: Vec<String> = store
        .contacts::<serde_json::Value>("acme")
        .unwrap()
        .into_iter()
        .map(|(_, a, _)| a)
        .collect();
    assert_eq!(left, ["new@example.test"]);
    drop(store);
    postgres_drop(&url);
}
