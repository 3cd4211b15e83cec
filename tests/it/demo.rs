//! The built-in demo pool: what a newcomer sees with `--demo`, and that it never touches
//! a real pool's directory.

use crate::util::{BIN, Server, env_prefix, value};
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn demo_pool_serves_live_metrics_and_cleans_up() {
    let mut s = Server::start(&["--demo", "--demo.workers", "3"]);
    s.wait_ready();
    let mut body = String::new();
    // Up to 30 s: three Python workers start slowly on a loaded machine.
    for _ in 0..300 {
        body = s.get("/metrics", &[]).text();
        if value(&body, "demo_http_requests_in_progress").is_some()
            && body.contains("demo_http_requests_total{")
            && value(&body, "multiproc_exporter_writer_pids").unwrap_or(0.0) >= 3.0
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        body.contains("demo_http_request_duration_seconds_bucket{le=\"+Inf\""),
        "{body}"
    );
    assert!(value(&body, "multiproc_exporter_writer_pids").unwrap() >= 3.0);
    let dir = demo_dir(&s);
    assert!(Path::new(&dir).is_dir());
    s.signal("TERM");
    assert_eq!(s.child.wait().unwrap().code(), Some(0));
    assert!(
        !Path::new(&dir).exists(),
        "demo directory {dir} left behind"
    );
}

/// The demo directory, from the `demo pool started` log line.
fn demo_dir(s: &Server) -> String {
    s.log_text()
        .split("dir=")
        .nth(1)
        .expect("the demo logs its directory")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Issue 8: the demo showed `writers{state="unknown"}`, no compaction and a growing
/// directory, because its workers took no liveness lock. Now they hold one as the shim
/// does, so a newcomer sees the real lifecycle: dead workers proven and compacted, the
/// file count flat, live series of dead workers gone, counters monotonic, and an
/// in-progress gauge that moves.
#[test]
fn test_issue_8_demo_proves_dead_workers_and_keeps_the_file_count_flat() {
    const WORKERS: usize = 3;
    // Files of one demo worker: counter, histogram and four gauges.
    const PER_WORKER: usize = 6;
    // The archives its kinds fold into: counter, histogram, gauge max and mostrecent.
    const ARCHIVES: usize = 4;
    // Workers that died and are not compacted yet (a round may come late on a busy
    // machine); the old demo left five files per dead worker, so ~90 after 12 s.
    const DYING: usize = 3;
    const BOUND: usize = WORKERS * PER_WORKER + ARCHIVES + DYING * PER_WORKER;
    let mut s = Server::start(&[
        "--demo",
        "--demo.workers",
        &WORKERS.to_string(),
        "--demo.worker-lifetime",
        "1s",
        "--lifecycle.interval",
        "200ms",
    ]);
    s.wait_ready();
    let dir = demo_dir(&s);
    let start = Instant::now();
    let mut saw_dead = false;
    let mut body = String::new();
    // (seconds since start, `.db` files in the directory)
    let mut counts: Vec<(f64, usize)> = Vec::new();
    let mut max_memory_series = 0;
    let mut requests = std::collections::BTreeMap::<String, f64>::new();
    let mut decreases = Vec::new();
    let mut in_progress = Vec::new();
    while start.elapsed() < Duration::from_secs(12) {
        body = s.get("/metrics", &[]).text();
        let t = start.elapsed().as_secs_f64();
        counts.push((t, crate::util::db_files(Path::new(&dir)).len()));
        saw_dead |=
            value(&body, r#"multiproc_exporter_writers{state="dead"}"#).unwrap_or(0.0) > 0.0;
        let memory = body
            .lines()
            .filter(|l| l.starts_with("demo_worker_resident_memory_bytes{"))
            .count();
        max_memory_series = max_memory_series.max(memory);
        for (head, v) in crate::util::samples(&body) {
            if head.starts_with("demo_http_requests_total{") {
                let before = requests.insert(head.clone(), v).unwrap_or(0.0);
                if v < before {
                    decreases.push(format!("{head}: {before} -> {v} at {t:.1}s"));
                }
            }
        }
        if let Some(v) = value(&body, "demo_http_requests_in_progress") {
            in_progress.push(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let absorbed = value(&body, "multiproc_exporter_files_absorbed_total").unwrap_or(0.0);
    let compactions = value(&body, "multiproc_exporter_compactions_total").unwrap_or(0.0);
    let settled: Vec<&(f64, usize)> = counts.iter().filter(|(t, _)| *t >= 3.0).collect();
    let most = |from: f64, to: f64| {
        settled
            .iter()
            .filter(|(t, _)| (from..to).contains(t))
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
    };
    let mut distinct = in_progress.clone();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    let idle = in_progress.iter().filter(|&&v| v < WORKERS as f64).count();
    eprintln!(
        "demo: {absorbed} files absorbed in {compactions} compactions; files after 3 s: \
         {}..{}; at most {max_memory_series} memory series; in progress took {distinct:?}, \
         below {WORKERS} in {idle} of {} scrapes",
        settled.iter().map(|(_, n)| *n).min().unwrap_or(0),
        most(0.0, 13.0),
        in_progress.len()
    );
    assert!(
        saw_dead || absorbed > 0.0,
        "no dead writer proven:\n{}",
        s.log_text()
    );
    assert!(
        compactions > 0.0 && absorbed > 0.0,
        "nothing compacted:\n{body}"
    );
    // Why each worker was declared dead reaches the self-metric and the log.
    let proven = value(
        &body,
        "multiproc_exporter_writers_proven_dead_total{evidence=\"lock_released\"}",
    )
    .unwrap_or(0.0);
    assert!(proven > 0.0, "no death counted by its evidence:\n{body}");
    let log = s.log_text();
    assert!(
        log.lines().any(|l| l.contains("writer proven dead")
            && l.contains("evidence=\"lock_released\"")
            || l.contains("writer proven dead") && l.contains("evidence=lock_released")),
        "no death logged with its evidence:\n{log}"
    );
    assert!(
        settled.iter().all(|(_, n)| *n <= BOUND),
        "more than {BOUND} files in the demo directory: {counts:?}"
    );
    assert!(
        most(8.0, 13.0) <= most(3.0, 7.0) + DYING * PER_WORKER,
        "the file count grows: {counts:?}"
    );
    assert!(
        max_memory_series <= WORKERS + 2,
        "{max_memory_series} memory series for {WORKERS} workers: dead pids pile up"
    );
    assert!(decreases.is_empty(), "counters went down: {decreases:?}");
    // Workers now idle between requests: the sum is below the worker count most of the
    // time (the old demo's workers were busy all the time but for microseconds).
    assert!(
        distinct.len() >= 2 && idle * 4 >= in_progress.len(),
        "the in-progress gauge does not move: {in_progress:?}"
    );
    s.signal("TERM");
    assert_eq!(s.child.wait().unwrap().code(), Some(0));
}

#[test]
fn test_issue_8_demo_ignores_the_directory_variables() {
    // A real pool's directory: the demo must neither serve nor remove it.
    let real = tempfile::tempdir().unwrap();
    let db = real.path().join("counter_4242.db");
    multiproc_exporter::write::DbWriter::open(&db)
        .unwrap()
        .set_sample("real", "real_total", &[], "the real pool", 1.0, 0.0)
        .unwrap();
    let path = real.path().to_str().unwrap();
    let prefix = env_prefix(&[
        ("PROMETHEUS_MULTIPROC_DIR", path),
        ("prometheus_multiproc_dir", path),
    ]);
    let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
    let mut s = Server::start_with(&prefix, &["--demo", "--demo.workers", "1"]);
    s.wait_ready();
    let body = s.get("/metrics", &[]).text();
    assert!(!body.contains("real_total"), "{body}");
    let log = s.log_text();
    let demo_dir = log
        .split("dir=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no demo dir in the log:\n{log}"))
        .to_owned();
    assert_ne!(Path::new(&demo_dir), real.path());
    s.signal("TERM");
    assert_eq!(s.child.wait().unwrap().code(), Some(0));
    assert!(
        !Path::new(&demo_dir).exists(),
        "demo directory {demo_dir} left behind"
    );
    assert!(db.is_file(), "the real pool's file was removed");
}

#[test]
fn test_issue_8_demo_with_an_explicit_dir_is_a_usage_error() {
    let real = tempfile::tempdir().unwrap();
    let path = real.path().to_str().unwrap();
    for (args, env) in [
        (&["--demo", "--dir", path][..], None),
        (&["serve", "--dir", path, "--demo"], None),
        // The variable does not make an explicit --dir acceptable.
        (&["--demo", "--dir", path], Some(path)),
    ] {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(args)
            .args(["--web.listen-address", "127.0.0.1:0"])
            .env_remove("PROMETHEUS_MULTIPROC_DIR")
            .env_remove("prometheus_multiproc_dir");
        if let Some(dir) = env {
            cmd.env("PROMETHEUS_MULTIPROC_DIR", dir);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("--demo") && err.contains("--dir"),
            "{args:?}: {err}"
        );
        assert_eq!(err.matches("error:").count(), 1, "{args:?}: {err}");
    }
    assert!(real.path().is_dir());
}
