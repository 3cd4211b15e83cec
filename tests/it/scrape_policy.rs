//! What a scrape answers when the directory is unusable, a file is too new to judge, or
//! producing the answer fails (issue 8): never a hang, never an empty 200, always the
//! reason, and the sidecar keeps serving.

use crate::util::{BIN, Server, env_prefix, harness, value};
use std::time::Duration;

fn counter_dir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    harness(&["case", tmp.path().to_str().unwrap(), "test_counter_adds"]);
    tmp
}

fn with_env(var: &str, value: &str, args: &[&str]) -> Server {
    let prefix = env_prefix(&[(var, value)]);
    let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
    Server::start_with(&prefix, args)
}

fn lines_with(s: &Server, needle: &str) -> usize {
    s.log_text().lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn test_issue_8_dir_that_is_a_regular_file_is_named_once() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let s = Server::start(&[
        "--dir",
        file.to_str().unwrap(),
        "--lifecycle.interval",
        "100ms",
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    let ready = s.get("/readyz", &[]);
    assert_eq!(ready.status, 503);
    let why = ready.text();
    assert!(
        why.contains("is not a directory") && why.contains("not-a-dir"),
        "{why}"
    );
    let m = s.get("/metrics", &[]);
    assert_eq!(m.status, 200);
    assert_eq!(value(&m.text(), "multiproc_exporter_ready"), Some(0.0));
    assert_eq!(
        lines_with(&s, "is not a directory"),
        1,
        "said once: {}",
        s.log_text()
    );
    // Once it is a directory, it is served.
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    harness(&["case", file.to_str().unwrap(), "test_counter_adds"]);
    s.wait_ready();
    assert_eq!(value(&s.get("/metrics", &[]).text(), "c_total"), Some(3.0));
}

#[test]
fn test_issue_8_a_failing_render_answers_500_and_the_next_scrape_works() {
    let tmp = counter_dir();
    let s = with_env(
        "MPE_TEST_PANIC_AT",
        "render:1",
        &["--dir", tmp.path().to_str().unwrap()],
    );
    s.wait_ready();
    let failed = s.get("/metrics", &[]);
    assert_eq!(failed.status, 500);
    assert!(failed.text().contains("rendering"), "{}", failed.text());
    let ok = s.get("/metrics", &[]);
    assert_eq!(ok.status, 200);
    let body = ok.text();
    assert_eq!(value(&body, "c_total"), Some(3.0));
    assert_eq!(
        value(
            &body,
            "multiproc_exporter_scrape_failures_total{stage=\"render\"}"
        ),
        Some(1.0)
    );
    assert_eq!(s.get("/healthz", &[]).status, 200);
}

#[test]
fn test_issue_8_a_failing_pass_answers_500_and_the_collector_starts_over() {
    let tmp = counter_dir();
    // Pass 1 is the readiness pass at start; pass 2 is the first scrape's.
    let s = with_env(
        "MPE_TEST_PANIC_AT",
        "collect:2",
        &["--dir", tmp.path().to_str().unwrap()],
    );
    s.wait_ready();
    let failed = s.get("/metrics", &[]);
    assert_eq!(failed.status, 500);
    assert!(failed.text().contains("merging"), "{}", failed.text());
    let body = s.get("/metrics", &[]).text();
    assert_eq!(value(&body, "c_total"), Some(3.0));
    assert_eq!(
        value(
            &body,
            "multiproc_exporter_scrape_failures_total{stage=\"collect\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &body,
            "multiproc_exporter_scrape_failures_total{stage=\"render\"}"
        ),
        Some(0.0)
    );
    // The panic hit the pass halfway (files tracked, not merged): the collector was
    // started over, not reused half updated.
    assert_eq!(
        lines_with(&s, "reading the directory afresh"),
        1,
        "{}",
        s.log_text()
    );
    assert_eq!(s.get("/healthz", &[]).status, 200);
}

/// What prometheus_client leaves for a moment: a file created, not sized yet.
fn create_empty(dir: &std::path::Path) {
    std::fs::File::create(dir.join("counter_999.db")).unwrap();
}

#[test]
fn test_issue_8_young_empty_files_are_not_errors() {
    let tmp = counter_dir();
    create_empty(tmp.path());
    let out = std::process::Command::new(BIN)
        .args(["render", "--dir", tmp.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    assert!(!stderr.contains("counter_999"), "{stderr}");
    assert!(!stderr.contains("WARN"), "{stderr}");

    let tmp = counter_dir();
    let s = Server::start(&["--dir", tmp.path().to_str().unwrap()]);
    s.wait_ready();
    create_empty(tmp.path());
    let body = s.get("/metrics", &[]).text();
    assert_eq!(
        value(&body, "multiproc_exporter_files_skipped{reason=\"young\"}"),
        Some(1.0)
    );
    assert_eq!(
        value(
            &body,
            "multiproc_exporter_file_errors_total{reason=\"empty\"}"
        ),
        Some(0.0)
    );
    assert_eq!(value(&body, "c_total"), Some(3.0));
    assert!(!s.log_text().contains("counter_999"), "{}", s.log_text());
    // Past the grace, a file still empty is a problem after all.
    std::thread::sleep(multiproc_exporter::collect::YOUNG_GRACE);
    let body = s.get("/metrics", &[]).text();
    assert_eq!(
        value(&body, "multiproc_exporter_bad_files{reason=\"empty\"}"),
        Some(1.0)
    );
}
