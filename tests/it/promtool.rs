//! `promtool check metrics` finds no error in our text output, and no lint remark that
//! prometheus_client's own output for the same directory does not draw as well (the
//! remarks are about the test data's names and empty help, not about the exposition).
//!
//! Needs `promtool` (Debian package `prometheus`), so it is ignored by a plain
//! `cargo test`; `.ci/run` installs the package and runs `cargo test -- --ignored`.

use crate::util::{harness, render};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn promtool(text: &str) -> (i32, BTreeSet<String>) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .map(str::to_owned)
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

fn check_dir(dir: &Path) -> usize {
    let ours = render(dir, "text");
    assert_eq!(ours.code, 0, "{}", ours.stderr);
    let reference = harness(&["reference-text", dir.to_str().unwrap()]);
    let (code, remarks) = promtool(&ours.stdout);
    let (_, reference_remarks) = promtool(&reference);
    assert!(
        code == 0 || code == 3,
        "promtool found errors (exit {code}) in {}:\n{remarks:?}",
        dir.display()
    );
    assert!(!remarks.iter().any(|r| r.contains("error")), "{remarks:?}");
    let extra: Vec<_> = remarks.difference(&reference_remarks).collect();
    assert!(
        extra.is_empty(),
        "remarks only our output draws in {}: {extra:?}",
        dir.display()
    );
    ours.stdout.lines().count()
}

#[test]
#[ignore = "needs promtool (Debian package prometheus); run with cargo test -- --ignored"]
fn promtool_accepts_the_differential_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let mut lines = 0;
    for case in [
        "types_and_modes",
        "labels_escapes",
        "histogram_bounds",
        "mostrecent_never_set",
        "help_disagree",
        "special_values",
        "big_files",
    ] {
        let dir = tmp.path().join(case);
        std::fs::create_dir(&dir).unwrap();
        harness(&["case", dir.to_str().unwrap(), case]);
        lines += check_dir(&dir);
    }
    let base = tmp.path().join("random");
    std::fs::create_dir(&base).unwrap();
    harness(&["random", base.to_str().unwrap(), "1000", "20"]);
    for seed in 1000..1020 {
        lines += check_dir(&base.join(seed.to_string()));
    }
    assert!(lines > 1000);
}
