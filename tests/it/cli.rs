//! Flags, environment fallbacks and exit codes of `render`.

use crate::util::{BIN, harness, value};
use std::process::Command;

fn run(args: &[&str], env: &[(&str, &str)]) -> (String, String, i32) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("PROMETHEUS_MULTIPROC_DIR")
        .env_remove("prometheus_multiproc_dir");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn counter_dir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    harness(&["case", tmp.path().to_str().unwrap(), "test_counter_adds"]);
    tmp
}

#[test]
fn dir_from_the_environment() {
    let tmp = counter_dir();
    let dir = tmp.path().to_str().unwrap();
    let (out, err, code) = run(&["render"], &[("PROMETHEUS_MULTIPROC_DIR", dir)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(value(&out, "c_total"), Some(3.0));
}

#[test]
fn test_deprecation_warning() {
    // Only the legacy lowercase variable: still honoured, as prometheus_client does.
    let tmp = counter_dir();
    let dir = tmp.path().to_str().unwrap();
    let (out, err, code) = run(&["render"], &[("prometheus_multiproc_dir", dir)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(value(&out, "c_total"), Some(3.0));
}

#[test]
fn flag_wins_over_environment() {
    let tmp = counter_dir();
    let empty = tempfile::tempdir().unwrap();
    let (out, _, code) = run(
        &["render", "--dir", tmp.path().to_str().unwrap()],
        &[("PROMETHEUS_MULTIPROC_DIR", empty.path().to_str().unwrap())],
    );
    assert_eq!(code, 0);
    assert_eq!(value(&out, "c_total"), Some(3.0));
}

#[test]
fn test_unset_syncdir_env() {
    let (out, err, code) = run(&["render"], &[]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("--dir") && err.contains("PROMETHEUS_MULTIPROC_DIR"),
        "{err}"
    );
}

#[test]
fn test_file_syncpath() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("plain-file");
    std::fs::write(&f, b"x").unwrap();
    let (out, err, code) = run(&["render", "--dir", f.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("is not a directory") && err.contains("plain-file"),
        "{err}"
    );
}

#[test]
fn missing_directory_exits_1_naming_it() {
    let (_, err, code) = run(&["render", "--dir", "/nonexistent/mp-dir"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/nonexistent/mp-dir") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn empty_directory_renders_nothing_and_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let (out, _, code) = run(&["render", "--dir", d], &[]);
    assert_eq!((out.as_str(), code), ("", 0));
    let (out, _, code) = run(&["render", "--dir", d, "--format", "openmetrics"], &[]);
    assert_eq!((out.as_str(), code), ("# EOF\n", 0));
}

#[test]
fn usage_errors_exit_2_with_one_message() {
    for args in [
        &["render", "--format", "xml"][..],
        &["render", "--no-such-flag"],
        &["frobnicate"],
    ] {
        let (out, err, code) = run(args, &[]);
        assert_eq!(code, 2, "{args:?}");
        assert!(out.is_empty());
        assert!(err.starts_with("error:"), "{err}");
    }
}

#[test]
fn help_documents_flags_and_environment() {
    let (out, _, code) = run(&["render", "--help"], &[]);
    assert_eq!(code, 0);
    for needle in [
        "--dir",
        "PROMETHEUS_MULTIPROC_DIR",
        "--format",
        "openmetrics",
        "--log.level",
    ] {
        assert!(out.contains(needle), "{needle} in\n{out}");
    }
}
