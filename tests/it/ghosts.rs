//! Files of counts that vanish without our compaction (issue 9): their last good values
//! keep contributing (DESIGN section 3) until compaction absorbs them or a wipe.

use crate::util::{Server, harness, python, samples, value};
use multiproc_exporter::write::DbWriter;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Writes `counter_<pid>.db` with `n` series of `c_total`, each at `v`.
fn counter(dir: &Path, pid: &str, n: usize, v: f64) {
    let mut w = DbWriter::open(&dir.join(format!("counter_{pid}.db"))).unwrap();
    for i in 0..n {
        w.set_sample("c", "c_total", &[("id", &i.to_string())], "h", v, 0.0)
            .unwrap();
    }
}

fn total(body: &str) -> f64 {
    samples(body)
        .into_iter()
        .filter(|(h, _)| h.starts_with("c_total{"))
        .map(|(_, v)| v)
        .sum()
}

fn vanished(body: &str) -> f64 {
    value(
        body,
        r#"multiproc_exporter_file_errors_total{reason="vanished"}"#,
    )
    .unwrap_or(0.0)
}

/// The shim's wipe at a pool's start, as a supervisor runs it.
fn shim_wipe(dir: &Path) {
    let script = "import sys, multiproc_exporter as m; m.prepare_directory(sys.argv[1])";
    crate::util::run_ok(
        Command::new(python()).args(["-c", script]).arg(dir),
        "wipe the directory with the shim",
    );
}

/// A counter file deleted by someone else used to take its counts with it; now they stay
/// (in memory, as `--liveness none` never writes) until a wipe, which is the one reset.
#[test]
fn test_issue_9_a_deleted_counter_file_keeps_its_counts_until_a_wipe() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    counter(dir, "1", 50, 2.0);
    counter(dir, "2", 10, 1.0);
    let mut g = DbWriter::open(&dir.join("gauge_livesum_1.db")).unwrap();
    g.set_sample("g", "g", &[], "h", 7.0, 0.0).unwrap();
    drop(g);
    let s = Server::start(&["--dir", dir.to_str().unwrap(), "--liveness", "none"]);
    s.wait_ready();
    assert_eq!(total(&s.get("/metrics", &[]).text()), 110.0);
    std::fs::remove_file(dir.join("counter_1.db")).unwrap();
    std::fs::remove_file(dir.join("gauge_livesum_1.db")).unwrap();
    for _ in 0..3 {
        let body = s.get("/metrics", &[]).text();
        assert_eq!(total(&body), 110.0, "the deleted file's counts were lost");
        // A gauge file that vanishes drops out: that is what mark_process_dead means.
        assert_eq!(value(&body, "g"), None, "{body}");
        assert!(vanished(&body) >= 1.0, "{body}");
    }
    assert!(
        s.wait_log("vanished without our compaction"),
        "{}",
        s.log_text()
    );
    // A file renamed, not deleted, is read under its new name and not counted twice.
    std::fs::rename(dir.join("counter_2.db"), dir.join("counter_3.db")).unwrap();
    assert_eq!(total(&s.get("/metrics", &[]).text()), 110.0);
    // The shim's wipe is a reset, even when new workers' files follow it before the
    // sidecar lists the directory again.
    shim_wipe(dir);
    counter(dir, "4", 1, 1.0);
    assert_eq!(total(&s.get("/metrics", &[]).text()), 1.0);
    // So is a directory emptied of writer files.
    counter(dir, "5", 5, 1.0);
    assert_eq!(total(&s.get("/metrics", &[]).text()), 6.0);
    std::fs::remove_file(dir.join("counter_5.db")).unwrap();
    assert_eq!(total(&s.get("/metrics", &[]).text()), 6.0);
    std::fs::remove_file(dir.join("counter_4.db")).unwrap();
    assert_eq!(total(&s.get("/metrics", &[]).text()), 0.0);
}

/// With compaction on, a ghost is folded into the archive: durable across a restart of
/// the sidecar, and what prometheus_client's own collector reads from the directory.
#[test]
fn test_issue_9_a_deleted_counter_file_is_absorbed_into_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A live writer (its pid exists), so only the deletion can retire its file.
    let mut writer = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = writer.id().to_string();
    counter(dir, &pid, 50, 2.0);
    // Another writer's file: a directory emptied of writer files would be a wipe.
    counter(dir, "1", 10, 1.0);
    let args = [
        "--dir",
        dir.to_str().unwrap(),
        "--liveness",
        "proc",
        "--lifecycle.interval",
        "200ms",
    ];
    let s = Server::start(&args);
    s.wait_ready();
    assert_eq!(total(&s.get("/metrics", &[]).text()), 110.0);
    std::fs::remove_file(dir.join(format!("counter_{pid}.db"))).unwrap();
    assert_eq!(total(&s.get("/metrics", &[]).text()), 110.0);
    let archive = dir.join("counter_archive.db");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !archive.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(archive.exists(), "the ghost was not absorbed");
    for _ in 0..3 {
        let body = s.get("/metrics", &[]).text();
        assert_eq!(total(&body), 110.0, "counted twice or lost: {body}");
    }
    drop(s);
    let reference = harness(&["reference-text", dir.to_str().unwrap()]);
    assert_eq!(total(&reference), 110.0, "{reference}");
    let s = Server::start(&args);
    s.wait_ready();
    assert_eq!(total(&s.get("/metrics", &[]).text()), 110.0);
    writer.kill().unwrap();
    writer.wait().unwrap();
}

/// A file name that is not UTF-8 used to be skipped (no log line, no metric), while
/// prometheus_client reads `counter_\xff\xfe.db` like any other; now it is read, merged
/// as the reference merges it, and escaped wherever it is written.
#[test]
fn test_issue_9_a_file_name_that_is_not_utf8_is_read_like_any_other() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    counter(dir, "1", 3, 1.0);
    counter(dir, "2", 3, 2.0);
    let odd = std::ffi::OsStr::from_bytes(b"counter_\xff\xfe.db");
    std::fs::rename(dir.join("counter_2.db"), dir.join(odd)).unwrap();
    let reference = harness(&["reference-text", dir.to_str().unwrap()]);
    // prometheus_client's exposition cannot encode this one's `pid` label: after the
    // reference.
    let mut g =
        DbWriter::open(&dir.join(std::ffi::OsStr::from_bytes(b"gauge_all_\xe9abc.db"))).unwrap();
    g.set_sample("g", "g", &[], "h", 5.0, 0.0).unwrap();
    drop(g);
    let s = Server::start(&["--dir", dir.to_str().unwrap(), "--liveness", "none"]);
    s.wait_ready();
    let body = s.get("/metrics", &[]).text();
    assert_eq!(total(&body), 9.0, "{body}");
    assert_eq!(total(&body), total(&reference), "{reference}");
    // Python's `pid` label is `\udce9abc` (one surrogate per byte that is not UTF-8),
    // which it cannot encode; ours spells that byte U+FFFD, as valid UTF-8 output must.
    assert_eq!(value(&body, "g{pid=\"\u{fffd}abc\"}"), Some(5.0), "{body}");
    // Touch the file so it is read again with a problem the log names.
    std::fs::write(dir.join(odd), b"garbage!").unwrap();
    s.get("/metrics", &[]);
    assert!(s.wait_log("counter_\\xff\\xfe.db"), "{}", s.log_text());
}

/// The directory deleted (or moved away) and created again is another directory: read
/// afresh, and a wipe, so what vanished with the old one is not kept.
#[test]
fn test_issue_9_a_directory_replaced_by_another_is_read_afresh() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mp");
    std::fs::create_dir(&dir).unwrap();
    counter(&dir, "1", 4, 1.0);
    counter(&dir, "2", 4, 1.0);
    let s = Server::start(&["--dir", dir.to_str().unwrap(), "--liveness", "none"]);
    s.wait_ready();
    assert_eq!(total(&s.get("/metrics", &[]).text()), 8.0);
    std::fs::remove_file(dir.join("counter_1.db")).unwrap();
    assert_eq!(total(&s.get("/metrics", &[]).text()), 8.0, "the ghost");
    std::fs::rename(&dir, tmp.path().join("old")).unwrap();
    std::fs::create_dir(&dir).unwrap();
    counter(&dir, "3", 1, 1.0);
    let body = s.get("/metrics", &[]).text();
    assert_eq!(total(&body), 1.0, "{body}");
    assert!(s.wait_log("names another directory"), "{}", s.log_text());
    // Deleted and not there: not ready (once a pass saw it), and ready again when back.
    std::fs::remove_dir_all(&dir).unwrap();
    let body = s.get("/metrics", &[]).text();
    assert_eq!(
        value(&body, "multiproc_exporter_ready"),
        Some(0.0),
        "{body}"
    );
    assert_eq!(s.get("/readyz", &[]).status, 503);
    std::fs::create_dir(&dir).unwrap();
    counter(&dir, "4", 2, 1.0);
    assert_eq!(total(&s.get("/metrics", &[]).text()), 2.0);
}

/// A dead writer's counter file, compacted once its writer is gone.
fn dead_writer(dir: &Path, n: usize, v: f64) -> std::path::PathBuf {
    let mut writer = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = writer.id().to_string();
    counter(dir, &pid, n, v);
    writer.kill().unwrap();
    writer.wait().unwrap();
    dir.join(format!("counter_{pid}.db"))
}

fn wait_gone(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while path.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!path.exists(), "{} was not compacted", path.display());
}

/// The archive is a file of counts like any other: truncated by someone else, it keeps
/// its last good values, and the next compaction writes them back instead of losing them.
#[test]
fn test_issue_9_a_truncated_archive_keeps_its_counts_through_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    counter(dir, "1", 10, 1.0);
    let s = Server::compacting(dir);
    s.wait_ready();
    wait_gone(&dead_writer(dir, 50, 2.0));
    assert_eq!(total(&s.get("/metrics", &[]).text()), 110.0);
    let archive = dir.join("counter_archive.db");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&archive)
        .unwrap()
        .set_len(0)
        .unwrap();
    assert_eq!(
        total(&s.get("/metrics", &[]).text()),
        110.0,
        "the archive's counts"
    );
    wait_gone(&dead_writer(dir, 5, 1.0));
    for _ in 0..2 {
        assert_eq!(total(&s.get("/metrics", &[]).text()), 115.0);
    }
    let reference = harness(&["reference-text", dir.to_str().unwrap()]);
    assert_eq!(
        total(&reference),
        115.0,
        "the rewritten archive: {reference}"
    );
}

/// A file truncated and then rewritten in place with other content used to be read at
/// the old offsets (values of one series under another's key); now a file that grows back
/// after a shrink is framed afresh, and reads as prometheus_client reads it.
#[test]
fn test_issue_9_a_file_rewritten_after_a_shrink_is_framed_afresh() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    counter(dir, "1", 20, 1.0);
    let other = tempfile::tempdir().unwrap();
    let mut w = DbWriter::open(&other.path().join("counter_1.db")).unwrap();
    for i in 0..40 {
        let id = format!("a-longer-label-value-{i}");
        w.set_sample("c", "c_total", &[("id", &id)], "h", 3.0, 0.0)
            .unwrap();
    }
    drop(w);
    let rewritten = std::fs::read(other.path().join("counter_1.db")).unwrap();
    let s = Server::start(&["--dir", dir.to_str().unwrap(), "--liveness", "none"]);
    s.wait_ready();
    assert_eq!(total(&s.get("/metrics", &[]).text()), 20.0);
    let path = dir.join("counter_1.db");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(0).unwrap();
    assert_eq!(
        total(&s.get("/metrics", &[]).text()),
        20.0,
        "last good values"
    );
    std::os::unix::fs::FileExt::write_all_at(&f, &rewritten, 0).unwrap();
    let body = s.get("/metrics", &[]).text();
    let reference = harness(&["reference-text", dir.to_str().unwrap()]);
    let series = |text: &str| {
        let mut s: Vec<_> = samples(text)
            .into_iter()
            .filter(|(h, _)| h.starts_with("c_total"))
            .collect();
        s.sort_by(|a, b| a.0.cmp(&b.0));
        s
    };
    assert_eq!(series(&body), series(&reference));
    assert_eq!(total(&body), 120.0);
}
