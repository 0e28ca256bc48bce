//! `cargo fuzz run policy_check`: see fuzz/README.md.
#![no_main]

use std::sync::LazyLock;

use postwarden::fuzzing::Harness;

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!(
        "postwarden-fuzz-policy_check-{}",
        std::process::id()
    ));
    Harness::new(&dir)
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    HARNESS.policy_check(data);
});
