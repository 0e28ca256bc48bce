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
        if class == e["class"] {
            class_ok += 1;
        }
        if r.reason == e["reason"] {
            reason_ok += 1;
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
    assert!(c >= MIN_CLASS, "hard/soft agreement fell to {c:.1}%");
    assert!(r >= MIN_REASON, "reason agreement fell to {r:.1}%");
    assert!(
        t >= MIN_FEEDBACK_TYPE,
        "feedback type agreement fell to {t:.1}%"
    );
}
