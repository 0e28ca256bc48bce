//! The man pages render without warnings (`groff -man -ww`).

use std::process::Command;

#[test]
fn the_man_pages_lint_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let mut pages: Vec<_> = std::fs::read_dir(&dir)
        .expect("man/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    pages.sort();
    assert!(pages.len() >= 2, "{pages:?}");
    for page in pages {
        let out = Command::new("groff")
            .args(["-man", "-ww", "-z"])
            .arg(&page)
            .output()
            .expect("groff (Debian package groff-base, installed by .ci/setup)");
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.trim().is_empty(),
            "{}: {warnings}",
            page.display()
        );
    }
}
