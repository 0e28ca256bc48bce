//! Consent look-ups per second with one million contacts in the spool: what
//! every RCPT TO costs (the list state and the tenant-wide suppression).
//!
//! `cargo bench --bench consent [-- CONTACTS LOOKUPS]`; prints one line per
//! measurement. Numbers, not assertions: see README "Benchmarks".

use std::time::Instant;

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let contacts = args.first().copied().unwrap_or(1_000_000);
    let lookups = args.get(1).copied().unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let record = contact();
    let start = Instant::now();
    let mut ops = Vec::with_capacity(10_000);
    for i in 0..contacts {
        ops.push(Store::put_contact_op(
            "acme",
            "news.acme.example",
            &format!("user{i}@example{}.test", i % 1000),
            &record,
        ));
        if ops.len() == 10_000 {
            store.write_relaxed(std::mem::take(&mut ops))?;
        }
    }
    store.write_relaxed(ops)?;
    let load = start.elapsed();
    println!(
        "consent: loaded {contacts} contacts in {:.1} s ({:.0} contacts/s)",
        load.as_secs_f64(),
        contacts as f64 / load.as_secs_f64()
    );
    for threads in [1u64, 2] {
        let start = Instant::now();
        std::thread::scope(|s| {
            for t in 0..threads {
                let store = &store;
                s.spawn(move || {
                    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t + 1);
                    for _ in 0..lookups / threads {
                        // Nine in ten look-ups find a contact; one in ten is a stranger.
                        let n = next(&mut x) % (contacts + contacts / 9).max(1);
                        let address = format!("user{n}@example{}.test", n % 1000);
                        let state = store
                            .state("acme", "news.acme.example", &address)
                            .unwrap_or(ConsentState::None);
                        let suppressed = ConsentLookup::suppression(store, "acme", &address)
                            .ok()
                            .flatten();
                        std::hint::black_box((state, suppressed));
                    }
                });
            }
        });
        let took = start.elapsed();
        println!(
            "consent: {lookups} RCPT look-ups (state + suppression), {threads} thread(s): {:.0} look-ups/s, {:.2} us each",
            lookups as f64 / took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / lookups as f64 * threads as f64
        );
    }
    Ok(())
}
