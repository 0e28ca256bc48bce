//! `cargo fuzz run feedback_report`: see fuzz/README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    postwarden::fuzzing::feedback_report(data);
});
