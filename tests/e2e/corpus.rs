//! The shared corpus of real bounces and feedback reports (../shared/corpus):
//! prints agreement with the expected results and fails if it drops below
//! what has been reached, so that it can only go up.

use std::path::PathBuf;

use postwarden::feedback::classify::BounceClass;
use postwarden::feedback::report::{parse, ReportKind};

/// Agreement reached so far, in per cent; raise these as the rules improve.
const MIN_CLASS: f64 = 95.0;
const MIN_REASON: f64 = 85.7;
const MIN_FEEDBACK_TYPE: f64 = 100.0;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/bounces")
}

#[test]
fn the_corpus_agrees_with_the_expected_results() {
    let dir = corpus_dir();
    let expect = std::fs::read_to_string(dir.join("expect.jsonl"))
        .expect("../shared/corpus/bounces/expect.jsonl");
    let (mut bounces, mut class_ok, mut reason_ok, mut arfs, mut type_ok) = (0, 0, 0, 0, 0);
    let mut misses = Vec::new();
    // Per reporting MTA or provider: Sisimai's file prefixes name it
    // (`lhost-postfix-07.eml`, `rhost-google-02.eml`).
    let mut by_source: std::collections::BTreeMap<String, Agreement> = Default::default();
    for line in expect.lines() {
        let e: serde_json::Value = serde_json::from_str(line).expect("json line");
        let file = e["file"].as_str().unwrap_or_default();
        let raw = std::fs::read(dir.join(file)).expect("corpus file");
        let r = parse(&raw);
        if e["kind"] == "arf" {
            arfs += 1;
            if r.kind == ReportKind::Arf
                && r.feedback_type.as_deref() == e["feedback_type"].as_str()
            {
                type_ok += 1;
            } else {
                misses.push(format!("{file}: arf {:?} {:?}", r.kind, r.feedback_type));
            }
            continue;
        }
        bounces += 1;
        let class = match r.class {
            BounceClass::Hard => "hard",
            BounceClass::Soft => "soft",
            BounceClass::Complaint => "complaint",
            BounceClass::Unknown => "unknown",
        };
        let group = by_source.entry(source_of(file)).or_default();
        group.messages += 1;
        if class == e["class"] {
            class_ok += 1;
            group.class_ok += 1;
        }
        if r.reason == e["reason"] {
            reason_ok += 1;
            group.reason_ok += 1;
        } else {
            misses.push(format!(
                "{file}: expected {} {}, got {class} {} ({})",
                e["class"], e["reason"], r.reason, r.status
            ));
        }
    }
    let pct = |a: usize, b: usize| {
        if b == 0 {
            100.0
        } else {
            100.0 * a as f64 / b as f64
        }
    };
    let (c, r, t) = (
        pct(class_ok, bounces),
        pct(reason_ok, bounces),
        pct(type_ok, arfs),
    );
    if std::env::var_os("CORPUS_MISSES").is_some() {
        for m in &misses {
            eprintln!("{m}");
        }
    }
    println!("corpus: {bounces} bounces: hard/soft {c:.1}% ({class_ok}), reason {r:.1}% ({reason_ok}); {arfs} ARF: feedback type {t:.1}% ({type_ok})");
    eprintln!("corpus: {bounces} bounces: hard/soft {c:.1}% ({class_ok}), reason {r:.1}% ({reason_ok}); {arfs} ARF: feedback type {t:.1}% ({type_ok})");
    print_by_source(&by_source);
    assert!(c >= MIN_CLASS, "hard/soft agreement fell to {c:.1}%");
    assert!(r >= MIN_REASON, "reason agreement fell to {r:.1}%");
    assert!(
        t >= MIN_FEEDBACK_TYPE,
        "feedback type agreement fell to {t:.1}%"
    );
}

/// Agreement within one group of the corpus.
#[derive(Default)]
struct Agreement {
    messages: usize,
    class_ok: usize,
    reason_ok: usize,
}

/// The reporting MTA or provider of a corpus file: its name without the
/// number (`lhost-postfix-07.eml` → `lhost-postfix`).
fn source_of(file: &str) -> String {
    let stem = file.trim_end_matches(".eml");
    match stem.rsplit_once('-') {
        Some((source, n)) if n.bytes().all(|b| b.is_ascii_digit()) => source.to_string(),
        _ => stem.to_string(),
    }
}

/// Prints each source's agreement, the lowest first, and the mean over
/// sources (each source counts once, however many messages it has), which a
/// rule tuned on the large groups does not lift: the figure the issue on
/// generalisation asks for beside the overall one.
fn print_by_source(by_source: &std::collections::BTreeMap<String, Agreement>) {
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    let mut rows: Vec<(&String, &Agreement)> = by_source.iter().collect();
    rows.sort_by(|a, b| {
        let key = |g: &Agreement| (pct(g.reason_ok, g.messages), pct(g.class_ok, g.messages));
        key(a.1)
            .partial_cmp(&key(b.1))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.1.messages.cmp(&a.1.messages))
    });
    let n = rows.len().max(1) as f64;
    let mean_class: f64 = rows
        .iter()
        .map(|(_, g)| pct(g.class_ok, g.messages))
        .sum::<f64>()
        / n;
    let mean_reason: f64 = rows
        .iter()
        .map(|(_, g)| pct(g.reason_ok, g.messages))
        .sum::<f64>()
        / n;
    println!(
        "corpus: {} sources, mean over sources: hard/soft {mean_class:.1}%, reason {mean_reason:.1}%",
        rows.len()
    );
    eprintln!(
        "corpus: {} sources, mean over sources: hard/soft {mean_class:.1}%, reason {mean_reason:.1}%",
        rows.len()
    );
    let lowest: Vec<String> = rows
        .iter()
        .filter(|(_, g)| g.messages >= 3)
        .take(8)
        .map(|(source, g)| {
            format!(
                "{source} {}/{} reason, {}/{} hard/soft",
                g.reason_ok, g.messages, g.class_ok, g.messages
            )
        })
        .collect();
    println!(
        "corpus: lowest sources (3+ messages): {}",
        lowest.join("; ")
    );
    eprintln!(
        "corpus: lowest sources (3+ messages): {}",
        lowest.join("; ")
    );
}

/// Vacation replies and challenge-response requests (tests/autoreplies,
/// written for this; several use bounce-like words) are auto-replies, never
/// bounces; and no bounce of the shared corpus is taken for one.
#[test]
fn auto_replies_are_never_bounces_and_bounces_never_auto_replies() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/autoreplies");
    let mut samples = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/autoreplies") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        samples += 1;
        let r = parse(&std::fs::read(&path).expect("sample"));
        assert_eq!(r.kind, ReportKind::Autoreply, "{}", path.display());
        assert_eq!(r.class, BounceClass::Unknown, "{}", path.display());
    }
    assert!(samples >= 8, "{samples} samples");
    let corpus = corpus_dir();
    let expect = std::fs::read_to_string(corpus.join("expect.jsonl")).expect("expect.jsonl");
    let taken: Vec<String> = expect
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| e["file"].as_str().map(str::to_string))
        .filter(|f| {
            let raw = std::fs::read(corpus.join(f)).expect("corpus file");
            parse(&raw).kind == ReportKind::Autoreply
        })
        .collect();
    assert!(taken.is_empty(), "bounces read as auto-replies: {taken:?}");
}
