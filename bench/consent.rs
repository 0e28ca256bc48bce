//! Consent look-ups per second with one million contacts: what every RCPT
//! TO costs (the list state and the tenant-wide suppression), from the
//! spool's RocksDB without and with the node-local cache and, when
//! `POSTWARDEN_BENCH_POSTGRES` names a PostgreSQL database (bench/run makes
//! one with `.ci/postgres`), from PostgreSQL without and with the cache.
//!
//! `cargo bench --bench consent [-- CONTACTS LOOKUPS]`; prints one line per
//! measurement. Numbers, not assertions: see README "Benchmarks".

use std::time::Instant;

use postwarden::config::{StoreBackend, StoreSettings};
use postwarden::consent::{ConsentLookup, ConsentState, Contact, Evidence};
use postwarden::store::Store;

fn contact() -> Contact {
    let mut c = Contact::new();
    c.state = ConsentState::DoubleOptInConfirmed;
    c.evidence.push(Evidence {
        at: 1_700_000_000,
        state: ConsentState::DoubleOptInConfirmed,
        source: "import".into(),
        ip: Some("198.51.100.7".into()),
        user_agent: None,
        detail: Some("bench".into()),
        consent: None,
    });
    c
}

/// A cheap deterministic generator, so runs are comparable.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

const LIST: &str = "news.acme.example";

fn address(n: u64) -> String {
    format!("user{n}@example{}.test", n % 1000)
}

fn load(store: &Store, contacts: u64) -> Result<(), Box<dyn std::error::Error>> {
    let record = contact();
    let start = Instant::now();
    let mut ops = Vec::with_capacity(10_000);
    for i in 0..contacts {
        ops.push(Store::put_contact_op("acme", LIST, &address(i), &record));
        if ops.len() == 10_000 {
            store.write_relaxed(std::mem::take(&mut ops))?;
        }
    }
    store.write_relaxed(ops)?;
    let took = start.elapsed();
    println!(
        "consent: {}: loaded {contacts} contacts in {:.1} s ({:.0} contacts/s)",
        store.shared_backend_name(),
        took.as_secs_f64(),
        contacts as f64 / took.as_secs_f64()
    );
    Ok(())
}

/// `lookups` RCPT look-ups spread over `threads`; nine in ten find a
/// contact, one in ten is a stranger. Returns look-ups per second.
fn lookups_per_second(store: &Store, contacts: u64, lookups: u64, threads: u64) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t + 1);
                for _ in 0..lookups / threads {
                    let n = next(&mut x) % (contacts + contacts / 9).max(1);
                    let address = address(n);
                    let state = store
                        .state("acme", LIST, &address)
                        .unwrap_or(ConsentState::None);
                    let suppressed = ConsentLookup::suppression(store, "acme", &address)
                        .ok()
                        .flatten();
                    std::hint::black_box((state, suppressed));
                }
            });
        }
    });
    lookups as f64 / start.elapsed().as_secs_f64()
}

fn report(what: &str, store: &Store, contacts: u64, lookups: u64, threads: &[u64]) {
    for &t in threads {
        let before = store.cache_stats().unwrap_or_default();
        let rate = lookups_per_second(store, contacts, lookups, t);
        let after = store.cache_stats().unwrap_or_default();
        let (hits, misses) = (after.0 - before.0, after.1 - before.1);
        let hit_rate = if hits + misses > 0 {
            format!(
                ", cache hits {:.1}%",
                100.0 * hits as f64 / (hits + misses) as f64
            )
        } else {
            String::new()
        };
        println!(
            "consent: {what}: {lookups} RCPT look-ups (state + suppression), {t} thread(s): {rate:.0} look-ups/s, {:.2} us each{hit_rate}",
            1e6 / rate * t as f64
        );
    }
}

/// Fills the cache with every address the look-ups can ask for (contacts
/// and strangers), so that the measured runs show what a warm cache
/// serves; `threads` at once (PostgreSQL's round trips overlap).
fn warm(store: &Store, contacts: u64, threads: u64) {
    let start = Instant::now();
    let all = contacts + contacts / 9;
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for n in (t..all.max(1)).step_by(threads as usize) {
                    let address = address(n);
                    let _ = store.state("acme", LIST, &address);
                    let _ = ConsentLookup::suppression(store, "acme", &address);
                }
            });
        }
    });
    println!(
        "consent: {}: warming pass over {all} addresses, {:.0} look-ups/s",
        store.shared_backend_name(),
        all as f64 / start.elapsed().as_secs_f64()
    );
}

fn settings(backend: StoreBackend, url: Option<String>, cache_entries: usize) -> StoreSettings {
    StoreSettings {
        backend,
        url,
        cache_entries,
        pool_size: 16,
        ..StoreSettings::default()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let contacts = args.first().copied().unwrap_or(1_000_000);
    let lookups = args.get(1).copied().unwrap_or(1_000_000);
    // Room for every key the look-ups touch: the contact, its suppression
    // and its erased-address suppression, for contacts and strangers.
    // (With a tenth more, as the shards do not fill evenly.)
    let room = (contacts as usize + contacts as usize / 9) * 3 * 11 / 10 + 1000;

    let dir = tempfile::tempdir()?;
    {
        let store = Store::open_with(dir.path(), &settings(StoreBackend::Rocksdb, None, 0))?;
        load(&store, contacts)?;
        report("rocksdb, no cache", &store, contacts, lookups, &[1, 2]);
    }
    {
        let store = Store::open_with(dir.path(), &settings(StoreBackend::Rocksdb, None, room))?;
        warm(&store, contacts, 1);
        report("rocksdb, cached", &store, contacts, lookups, &[1, 2]);
    }

    let Ok(url) = std::env::var("POSTWARDEN_BENCH_POSTGRES") else {
        println!("consent: postgres: skipped (POSTWARDEN_BENCH_POSTGRES is not set)");
        return Ok(());
    };
    // Fewer contacts by default: warming the cache takes a round trip per key.
    let contacts: u64 = std::env::var("POSTWARDEN_BENCH_PG_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(contacts.min(100_000));
    let room = (contacts as usize + contacts as usize / 9) * 3 * 11 / 10 + 1000;
    let spool = tempfile::tempdir()?;
    let remote = lookups.min(50_000);
    {
        let store = Store::open_with(
            spool.path(),
            &settings(StoreBackend::Postgres, Some(url.clone()), 0),
        )?;
        load(&store, contacts)?;
        report("postgres, no cache", &store, contacts, remote, &[1, 2, 16]);
    }
    let store = Store::open_with(
        spool.path(),
        &settings(StoreBackend::Postgres, Some(url), room),
    )?;
    // The cache comes on once the LISTEN connection listens.
    let start = Instant::now();
    while store.cache_stats().unwrap_or_default().0 == 0 && start.elapsed().as_secs() < 10 {
        let _ = ConsentLookup::suppression(&store, "acme", "warm@example.test");
    }
    warm(&store, contacts, 16);
    report("postgres, cached", &store, contacts, lookups, &[1, 2]);
    Ok(())
}
