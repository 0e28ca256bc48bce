//! The spool's own tests: paging, schema versions, a second open, readers.
use super::*;
use crate::store::queue::{QueueEntry, Recipient};

fn entry(id: &str) -> QueueEntry {
    let mut e = QueueEntry::new(
        id.into(),
        "acme",
        "news@acme.example",
        vec![Recipient::new("a@example.test".into())],
        100,
    );
    e.size = 5;
    e.client_ip = "127.0.0.1".into();
    e
}

#[test]
fn contacts_page_through_lists_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut ops = Vec::new();
    for (list, addr) in [
        ("news", "a@x.test"),
        ("news", "b@x.test"),
        ("news2", "a@x.test"),
        ("offers", "c@x.test"),
    ] {
        ops.push(Store::put_contact_op("acme", list, addr, &1u32));
    }
    // Another tenant whose name starts like the first must not leak in.
    ops.push(Store::put_contact_op("acme2", "news", "z@x.test", &1u32));
    store.commit_blocking(ops).unwrap();
    assert_eq!(
        store.lists("acme").unwrap(),
        vec!["news", "news2", "offers"]
    );
    assert_eq!(store.count_contacts("acme").unwrap(), 4);
    let (page, next) = store.contacts_page::<u32>("acme", None, None, 3).unwrap();
    let names: Vec<_> = page.iter().map(|(l, a, _)| format!("{l}/{a}")).collect();
    assert_eq!(
        names,
        vec!["news/a@x.test", "news/b@x.test", "news2/a@x.test"]
    );
    let (page, next) = store
        .contacts_page::<u32>("acme", None, next.as_deref(), 3)
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].2, 1);
    assert_eq!(next, None);
    // One list only: "news" does not take in "news2".
    let (page, _) = store
        .contacts_page::<u32>("acme", Some("news"), None, 10)
        .unwrap();
    assert_eq!(page.len(), 2);
}

#[tokio::test]
async fn a_restart_reopens_the_same_spool() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.enqueue(&entry("Q1"), b"hello").await.unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.queue_entry("Q1").unwrap(), Some(entry("Q1")));
    assert_eq!(store.message("Q1").unwrap().as_deref(), Some(&b"hello"[..]));
    let scan = store.scan_schedule(None, 100, 10).unwrap();
    assert_eq!(scan.due, vec![(100, "Q1".to_string())]);
    let scan = store.scan_schedule(None, 99, 10).unwrap();
    assert!(scan.due.is_empty());
    assert_eq!(scan.next_later, Some(100));
}

/// A scan may start at the first key the previous one found: the
/// tombstones of delivered entries before it are not read again, and
/// nothing live is skipped.
#[tokio::test]
async fn a_schedule_scan_resumes_at_the_first_live_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut e = entry("Q1");
    store.enqueue(&e, b"1").await.unwrap();
    let mut later = entry("Q2");
    later.next_attempt = 150;
    store.enqueue(&later, b"2").await.unwrap();
    let first = store.scan_schedule(None, 200, 10).unwrap();
    assert_eq!(first.due.len(), 2);
    assert_eq!(first.first, Some(keys::schedule(100, "Q1")));
    // Q1 is delivered: its slot goes; the next scan starts where the last began.
    e.recipients[0].status = crate::store::queue::RecipientStatus::Delivered;
    store
        .commit(Store::update_entry_ops(&e, Some(100)))
        .await
        .unwrap();
    let next = store
        .scan_schedule(first.first.as_deref(), 200, 10)
        .unwrap();
    assert_eq!(next.due, vec![(150, "Q2".to_string())]);
    assert_eq!(next.first, Some(keys::schedule(150, "Q2")));
    // A first key in the future: the next scan starts at `now`, so that
    // an entry scheduled meanwhile (at `now` or later) is not skipped.
    let early = store.scan_schedule(None, 120, 10).unwrap();
    assert!(early.due.is_empty());
    assert_eq!(early.first, Some(keys::schedule(120, "")));
    let mut soon = entry("Q0");
    soon.next_attempt = 130;
    store.enqueue(&soon, b"0").await.unwrap();
    let again = store
        .scan_schedule(early.first.as_deref(), 200, 10)
        .unwrap();
    assert_eq!(again.due.len(), 2, "{:?}", again.due);
    store.compact_schedule();
    assert_eq!(store.scan_schedule(None, 200, 10).unwrap().due.len(), 2);
}

/// The scheduler's scan is bounded by what is due, not by the queue: with
/// ten thousand messages waiting for later it reads one key; with them all
/// due it reads one past its limit; the messages it is told to step over
/// (parked, in delivery) are read but neither returned nor counted.
#[test]
fn a_schedule_scan_reads_what_is_due_and_not_the_whole_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut ops = Vec::new();
    for i in 0..10_000 {
        let mut e = entry(&format!("Q{i:05}"));
        e.next_attempt = 1_000 + i;
        ops.extend(Store::enqueue_ops(&e, b"m"));
    }
    store.commit_blocking(ops).unwrap();
    let waiting = store.scan_schedule(None, 999, 100).unwrap();
    assert_eq!((waiting.due.len(), waiting.read), (0, 1));
    assert_eq!(waiting.next_later, Some(1_000));
    let due = store.scan_schedule(None, 20_000, 100).unwrap();
    assert_eq!((due.due.len(), due.read), (100, 101));
    let skipping = store
        .scan_schedule_skipping(None, 20_000, 100, |id| id < "Q00050")
        .unwrap();
    assert_eq!(skipping.due.len(), 100);
    assert_eq!(skipping.due[0].1, "Q00050");
    assert_eq!(skipping.read, 151);
}

/// The queue's counts by state, read entry by entry.
#[test]
fn queue_counts_go_by_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut ops = Vec::new();
    for (i, state) in ["queued", "queued", "deferred", "held"].iter().enumerate() {
        let mut e = entry(&format!("Q{i}"));
        match *state {
            "deferred" => e.recipients[0].status = crate::store::queue::RecipientStatus::Deferred,
            "held" => e.held = true,
            _ => {}
        }
        ops.extend(Store::enqueue_ops(&e, b"m"));
    }
    store.commit_blocking(ops).unwrap();
    let c = store.queue_counts().unwrap();
    assert_eq!((c.queued, c.deferred, c.held), (2, 1, 1));
}

#[test]
fn a_spool_of_another_schema_version_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.set_schema_version_for_test("99").unwrap();
    }
    let err = Store::open(dir.path()).err().expect("must fail");
    let text = err.to_string();
    assert!(text.contains("schema version 99"), "{text}");
    assert!(!text.contains('\n'));
}

#[test]
fn a_second_open_of_a_spool_in_use_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).err().expect("must fail");
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_durable_writes_share_far_fewer_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let before = store.commit_stats();
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let e = entry(&format!("Q{i:03}"));
            store.enqueue(&e, &[b'x'; 10_000]).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let after = store.commit_stats();
    let writes = after.commits - before.commits;
    let syncs = after.syncs - before.syncs;
    assert_eq!(writes, 50);
    assert!(syncs < 25, "{syncs} syncs for {writes} writes");
    assert_eq!(store.queue_entries().unwrap().len(), 50);
}

#[test]
fn a_reader_beside_the_daemon_removes_its_own_folder_when_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let _daemon = Store::open(dir.path()).unwrap();
    let reader = Store::open_for_read(dir.path()).unwrap();
    let folder = reader._secondary.as_ref().expect("a secondary").0.clone();
    assert!(folder.is_dir());
    let clone = reader.clone();
    drop(reader);
    assert!(folder.is_dir(), "a clone still reads through it");
    assert!(clone.queue_entries().unwrap().is_empty());
    drop(clone);
    assert!(!folder.exists(), "{} left behind", folder.display());
}

#[tokio::test]
async fn an_unsynced_commit_is_applied_without_a_sync_and_kept_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let e = entry("Q001");
    store.enqueue(&e, b"message").await.unwrap();
    let before = store.commit_stats();
    store
        .commit_unsynced(Store::delete_entry_ops(&e))
        .await
        .unwrap();
    let after = store.commit_stats();
    assert_eq!(after.commits - before.commits, 1);
    assert_eq!(after.syncs, before.syncs, "a group of unsynced writes only");
    assert!(store.queue_entry("Q001").unwrap().is_none());
    store
        .commit(Store::update_entry_ops(&entry("Q002"), None))
        .await
        .unwrap();
    assert_eq!(store.commit_stats().syncs, before.syncs + 1);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.queue_entry("Q001").unwrap().is_none());
    assert!(store.queue_entry("Q002").unwrap().is_some());
}

/// Messages a warm-up cap held until midnight all wait for the same second:
/// they come due in received order (queue ids sort by the time they were
/// made), whatever order their attempts rescheduled them in.
#[test]
fn messages_waiting_for_the_same_second_come_due_in_received_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let midnight = 1_780_012_800;
    let received: Vec<String> = (0..5)
        .map(|i| crate::values::queue_id::at_micros((midnight - 50_000 + i * 600) * 1_000_000))
        .collect();
    // Rescheduled newest first (as the attempts that were capped ended).
    for id in received.iter().rev() {
        let mut e = entry(id);
        e.next_attempt = midnight;
        store
            .commit_blocking(Store::update_entry_ops(&e, None))
            .unwrap();
    }
    // One received earlier still whose retry falls a second later.
    let mut late = entry(&crate::values::queue_id::at_micros(
        (midnight - 90_000) * 1_000_000,
    ));
    late.next_attempt = midnight + 1;
    store
        .commit_blocking(Store::update_entry_ops(&late, None))
        .unwrap();
    let scan = store.scan_schedule(None, midnight - 1, 10).unwrap();
    assert!(scan.due.is_empty(), "nothing before midnight");
    assert_eq!(scan.next_later, Some(midnight));
    let scan = store.scan_schedule(None, midnight, 10).unwrap();
    let due: Vec<&String> = scan.due.iter().map(|(_, id)| id).collect();
    assert_eq!(due, received.iter().collect::<Vec<_>>());
}

/// `[store] memory_budget` bounds the memtables: 40 MB of messages written
/// through a 9 MiB budget leave at most its eight ninths in memory, the
/// rest flushed to files.
#[test]
fn the_memory_budget_bounds_the_memtables() {
    let dir = tempfile::tempdir().unwrap();
    let settings = StoreSettings {
        memory_budget: 9 << 20,
        ..StoreSettings::default()
    };
    let store = Store::open_with(dir.path(), &settings).unwrap();
    let body = vec![b'x'; 100_000];
    for i in 0..400 {
        let id = format!("Q{i:05}");
        store
            .commit_blocking(Store::enqueue_ops(&entry(&id), &body))
            .unwrap();
    }
    let m = store.memory();
    assert!(m.memtables <= 8 << 20, "{m:?}");
    assert!(m.block_cache <= 1 << 20, "{m:?}");
    assert_eq!(
        store.message("Q00000").unwrap().map(|b| b.len()),
        Some(100_000)
    );
}
