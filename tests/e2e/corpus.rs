//! The shared corpus of real bounces and feedback reports (../shared/corpus):
//! prints agreement with the expected results and fails if it drops below
//! what has been reached, so that it can only go up.

use std::path::PathBuf;

use postwarden::feedback::classify::BounceClass;
use postwarden::feedback::report::{parse, ReportKind};

/// Agreement reached so far, in per cent; raise these as the rules improve.
const MIN_CLASS: f64 = 95.3;
const MIN_REASON: f64 = 88.3;
const MIN_FEEDBACK_TYPE: f64 = 100.0;
/// The leave-one-source-out estimate (see [`leave_one_source_out`]).
const MIN_LOSO_CLASS: f64 = 95.3;
const MIN_LOSO_REASON: f64 = 85.4;
/// The same estimate leaving out single-source text rules only.
const MIN_LOSO_TEXT_CLASS: f64 = 95.3;
const MIN_LOSO_TEXT_REASON: f64 = 86.0;

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
    // (file, source, expected class, expected reason, deciding rule, reason right)
    let mut decided: Vec<(String, String, String, String, &'static str, bool)> = Vec::new();
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
        decided.push((
            file.to_string(),
            source_of(file),
            e["class"].as_str().unwrap_or_default().to_string(),
            e["reason"].as_str().unwrap_or_default().to_string(),
            r.recipients.first().map_or("", |x| x.rule),
            r.reason == e["reason"],
        ));
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
    let (loso_c, loso_r) = leave_one_source_out(&dir, &decided, "table rules");
    // The same leaving out text rules only: each status rule gives the
    // meaning RFC 3463's registry or a provider's reference gives its code,
    // and none was written from a corpus message.
    let (text_c, text_r) = leave_one_source_out(&dir, &decided, "text rules");
    assert!(
        text_c >= MIN_LOSO_TEXT_CLASS && text_r >= MIN_LOSO_TEXT_REASON,
        "leave-one-source-out (text rules) fell to {text_c:.1}% / {text_r:.1}%"
    );
    assert!(
        loso_c >= MIN_LOSO_CLASS,
        "leave-one-source-out hard/soft fell to {loso_c:.1}%"
    );
    assert!(
        loso_r >= MIN_LOSO_REASON,
        "leave-one-source-out reason fell to {loso_r:.1}%"
    );
    assert!(c >= MIN_CLASS, "hard/soft agreement fell to {c:.1}%");
    assert!(r >= MIN_REASON, "reason agreement fell to {r:.1}%");
    assert!(
        t >= MIN_FEEDBACK_TYPE,
        "feedback type agreement fell to {t:.1}%"
    );
}

/// The generalisation estimate: each source measured with the table rules
/// that decide rightly for that source only left out, as if they had never
/// been written from it. A rule that serves one source is the one most
/// likely tuned on it. Prints the figure and the single-source rules.
fn leave_one_source_out(
    dir: &std::path::Path,
    decided: &[(String, String, String, String, &'static str, bool)],
    which: &str,
) -> (f64, f64) {
    use std::collections::{BTreeMap, BTreeSet};
    let mut sources_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (_, source, _, _, rule, right) in decided {
        let table_rule =
            rule.starts_with("text ") || (which == "table rules" && rule.starts_with("status "));
        if *right && table_rule {
            sources_of.entry(rule).or_default().insert(source);
        }
    }
    let only: BTreeMap<&str, &str> = sources_of
        .iter()
        .filter(|(_, s)| s.len() == 1)
        .filter_map(|(rule, s)| Some((*rule, *s.iter().next()?)))
        .collect();
    let (mut class_ok, mut reason_ok) = (0usize, 0usize);
    for (file, source, class, reason, _, _) in decided {
        let left_out: Vec<&str> = only
            .iter()
            .filter(|(_, s)| **s == source.as_str())
            .map(|(rule, _)| *rule)
            .collect();
        let raw = std::fs::read(dir.join(file)).expect("corpus file");
        let r = postwarden::feedback::classify::without_rules(&left_out, || parse(&raw));
        let got = match r.class {
            BounceClass::Hard => "hard",
            BounceClass::Soft => "soft",
            BounceClass::Complaint => "complaint",
            BounceClass::Unknown => "unknown",
        };
        class_ok += usize::from(got == class);
        reason_ok += usize::from(r.reason == reason);
        let show = std::env::var_os("CORPUS_MISSES").is_some() && which == "table rules";
        if show && (got != class || r.reason != reason) {
            eprintln!(
                "left out {left_out:?}: {file}: expected {class} {reason}, got {got} {} ({})",
                r.reason,
                r.recipients.first().map_or("", |x| x.rule)
            );
        }
    }
    let n = decided.len().max(1) as f64;
    let (c, r) = (100.0 * class_ok as f64 / n, 100.0 * reason_ok as f64 / n);
    let line = format!(
        "corpus: leave-one-source-out (each source without the {} {which} that serve it alone): hard/soft {c:.1}% ({class_ok}), reason {r:.1}% ({reason_ok}); single-source rules: {}",
        only.len(),
        only.iter()
            .map(|(rule, s)| format!("{rule} ({s})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{line}");
    eprintln!("{line}");
    (c, r)
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

/// The bounces written for the tests (tests/bounces, made by its make.py):
/// replies that Google, Microsoft and Yahoo document for senders, and the
/// common phrasing in German, French, Spanish, Portuguese, Italian and
/// Japanese, each as an RFC 3464 report and as a prose notice. Not a
/// generalisation estimate (the rules cite the same documents), but a check
/// that what providers say they answer is read as they mean it.
#[test]
fn documented_replies_and_other_languages_are_read_as_meant() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bounces");
    let expect =
        std::fs::read_to_string(dir.join("expect.jsonl")).expect("tests/bounces/expect.jsonl");
    let (mut n, mut class_ok, mut reason_ok) = (0usize, 0usize, 0usize);
    let mut misses = Vec::new();
    for line in expect.lines() {
        let e: serde_json::Value = serde_json::from_str(line).expect("json line");
        let file = e["file"].as_str().unwrap_or_default();
        let r = parse(&std::fs::read(dir.join(file)).expect("sample"));
        n += 1;
        let class = match r.class {
            BounceClass::Hard => "hard",
            BounceClass::Soft => "soft",
            BounceClass::Complaint => "complaint",
            BounceClass::Unknown => "unknown",
        };
        class_ok += usize::from(class == e["class"]);
        reason_ok += usize::from(r.reason == e["reason"]);
        if class != e["class"] || r.reason != e["reason"] {
            misses.push(format!(
                "{file}: expected {} {}, got {class} {} ({})",
                e["class"],
                e["reason"],
                r.reason,
                r.recipients.first().map_or("", |x| x.rule)
            ));
        }
    }
    let pct = |a: usize| 100.0 * a as f64 / n.max(1) as f64;
    let line = format!(
        "corpus: own samples (tests/bounces: provider-documented replies, other languages): {n}: hard/soft {:.1}% ({class_ok}), reason {:.1}% ({reason_ok})",
        pct(class_ok),
        pct(reason_ok)
    );
    println!("{line}");
    eprintln!("{line}");
    assert!(n >= 100, "{n} samples");
    assert!(misses.is_empty(), "{}", misses.join("\n"));
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

/// `feedback parse --explain` names the rule that decided; a site rules
/// file (`--rules`, as the daemon's `[feedback] bounce_rules`) is tried
/// before the shipped rules, and a bad one is refused naming file and rule.
#[test]
fn explain_names_the_rule_and_a_site_file_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    let bounce = dir.path().join("bounce.eml");
    std::fs::write(
        &bounce,
        "From: MAILER-DAEMON@mx.example.net\r\nTo: bounce@acme.example\r\n\
Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
Final-Recipient: rfc822; jane@example.test\r\nAction: failed\r\nStatus: 5.0.0\r\n\
Diagnostic-Code: smtp; 550 relay queue for this mailbox is full\r\n\r\n--b--\r\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_postwarden"))
            .args(["feedback", "parse", "--explain"])
            .args(args)
            .arg(&bounce)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = run(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("recipient <jane@example.test>: 5.0.0 Soft mailbox_full (decided by: text mailbox-full)"),
        "{out}"
    );
    let site = dir.path().join("site-rules.toml");
    std::fs::write(
        &site,
        "[[text]]\nname = \"relay-queue\"\nclass = \"soft\"\nreason = \"rate_limited\"\n\
pattern = '''(?i)relay queue .* full'''\n",
    )
    .unwrap();
    let (code, out) = run(&["--rules", site.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("Soft rate_limited (decided by: text relay-queue)"),
        "{out}"
    );
    std::fs::write(
        &site,
        "[[text]]\nname = \"broken\"\nclass = \"soft\"\nreason = \"full\"\npattern = 'x'\n",
    )
    .unwrap();
    let (code, out) = run(&["--rules", site.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("rule broken: reason \"full\""), "{out}");
}
