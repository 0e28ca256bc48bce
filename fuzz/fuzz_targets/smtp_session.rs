//! `cargo fuzz run smtp_session`: see fuzz/README.md.
#![no_main]

use std::sync::LazyLock;

use postwarden::fuzzing::Harness;

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!(
        "postwarden-fuzz-smtp_session-{}",
        std::process::id()
    ));
    Harness::new(&dir)
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = HARNESS.smtp_session(data);
});
