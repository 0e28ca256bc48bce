//! The fuzz targets' seed corpora (`fuzz/corpus/TARGET/`) as regression tests
//! on stable Rust: every input goes through the same entry point `cargo fuzz`
//! drives (`postwarden::fuzzing`), and must come back without a panic. A crash
//! input found by fuzzing is added to its target's folder and stays a test.

use std::path::Path;

use postwarden::fuzzing::{self, Harness};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| {
            let bytes = std::fs::read(e.path()).expect("corpus file");
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no inputs for {target}");
    out
}

fn queued(replies: &[u8]) -> usize {
    String::from_utf8_lossy(replies)
        .matches("250 2.0.0 Ok: queued as")
        .count()
}

#[test]
fn the_fuzz_corpora_run_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let harness = Harness::new(dir.path());
    for (name, input) in inputs("smtp_session") {
        let replies = harness.smtp_session(&input);
        assert!(
            replies.starts_with(b"220 "),
            "smtp_session/{name}: {}",
            String::from_utf8_lossy(&replies)
        );
    }
    for (name, input) in inputs("smtp_data") {
        let replies = harness.smtp_data(&input);
        assert!(replies.starts_with(b"220 "), "smtp_data/{name}");
    }
    for (_, input) in inputs("policy_check") {
        harness.policy_check(&input);
    }
    for (_, input) in inputs("feedback_report") {
        fuzzing::feedback_report(&input);
    }

    // The harness is the real server: a whole session queues its message,
    // and the smuggling seed's `\n.\n` and `\r.\r\n` end no message.
    let full = inputs("smtp_session")
        .into_iter()
        .find(|(n, _)| n == "full-session")
        .expect("full-session seed");
    let replies = harness.smtp_session(&full.1);
    assert_eq!(queued(&replies), 1, "{}", String::from_utf8_lossy(&replies));
    let smuggling = inputs("smtp_session")
        .into_iter()
        .find(|(n, _)| n == "smuggling")
        .expect("smuggling seed");
    let replies = harness.smtp_session(&smuggling.1);
    assert_eq!(queued(&replies), 1, "{}", String::from_utf8_lossy(&replies));
}
