//! The two benchmark generators: `benches/support` (our writer, for criterion) and
//! `benches/shape.py` (real prometheus_client writers, for `benches/compare.py`) write
//! the same directory, so a figure of one is a figure of the other (issue 11).

use crate::util::{python, render};
use multiproc_exporter::format::{self, HEADER_LEN, VALUE_LEN};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

#[path = "../../benches/support/mod.rs"]
#[allow(dead_code)]
mod support;

/// File name -> (`used`, the key texts in file order).
fn files(dir: &Path) -> BTreeMap<String, (usize, Vec<String>)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let bytes = std::fs::read(e.path()).unwrap();
        let used = format::used(&bytes).unwrap() as usize;
        let keys = format::walk(&bytes, HEADER_LEN, used, VALUE_LEN)
            .map(|entry| String::from_utf8(entry.unwrap().key.to_vec()).unwrap())
            .collect();
        out.insert(name, (used, keys));
    }
    out
}

/// The sample lines of `render`, sorted (file order, hence output order, may differ).
fn rendered(dir: &Path) -> Vec<String> {
    let out = render(dir, "text");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut lines: Vec<String> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// At M (the shape of L with a tenth of the label sets: L itself takes a minute of
/// Python), file for file, key for key, and the merged series and values.
#[test]
fn test_issue_11_both_benchmark_generators_write_the_same_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("support");
    std::fs::create_dir(&ours).unwrap();
    support::generate(&ours, support::M);
    let theirs = tmp.path().join("python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/compare.py");
    crate::util::run_ok(
        Command::new(python())
            .args([script, "--scale", "M", "--write"])
            .arg(&theirs),
        "write the M directory with benches/compare.py",
    );

    let (a, b) = (files(&ours), files(&theirs));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "file names"
    );
    for (name, (used, keys)) in &a {
        let (their_used, their_keys) = &b[name];
        assert_eq!(keys, their_keys, "keys of {name}");
        assert_eq!(used, their_used, "used of {name}");
    }
    // The shape of DESIGN section 6 at a tenth: 48 live writers with 13 files, 16 dead
    // with 8; 1,000 entries per live writer but for rounding.
    assert_eq!(a.len(), 48 * 13 + 16 * 8);
    let entries: usize = a.values().map(|(_, k)| k.len()).sum();
    assert_eq!(entries, 62_544);

    let (ra, rb) = (rendered(&ours), rendered(&theirs));
    assert_eq!(ra.len(), 7_399, "output samples at M");
    assert!(ra == rb, "the merged series or values differ");
}
