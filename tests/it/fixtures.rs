//! The committed fixture renders byte for byte as recorded, and as prometheus_client does.

use crate::util::{assert_no_diffs, differential, render};
use std::path::Path;

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

#[test]
fn basic_fixture_renders_as_recorded() {
    let dir = fixtures().join("basic");
    for (format, file) in [
        ("text", "basic.expected.txt"),
        ("openmetrics", "basic.expected.om.txt"),
    ] {
        let out = render(&dir, format);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stderr.is_empty(), "{}", out.stderr);
        let want = std::fs::read_to_string(fixtures().join(file)).unwrap();
        assert_eq!(
            out.stdout, want,
            "{format} output of tests/fixtures/basic changed"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    assert_no_diffs(&differential(&[dir], tmp.path()));
}
