//! Dead workers: proving death, compacting without losing or doubling a count, pid
//! reuse, stale directories, and files coming and going. Real processes.

use crate::pool::*;
use crate::util::{BIN, Server, assert_no_diffs, differential, harness, python, render, value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn compaction_keeps_the_output_except_dead_live_gauges() {
    let (tmp, dir) = crate::util::temp_mp();
    let pool = Running::start(&["pool", dir.to_str().unwrap(), "6", "3"]);
    let (alive, dead) = pool.pids();
    // The reference: the original directory after mark_process_dead of the same pids.
    let reference = tmp.path().join("reference");
    copy_dir(&dir, &reference);
    let dead_args: Vec<String> = dead.iter().map(u32::to_string).collect();
    let mut args = vec!["mark-dead", reference.to_str().unwrap()];
    args.extend(dead_args.iter().map(String::as_str));
    harness(&args);

    let (status, out) = compact(&dir, "proc", &[]);
    assert!(status.success(), "{out}");
    assert!(
        out.contains(&format!("dead={}", dead.len()))
            && out.contains(&format!("alive={}", alive.len())),
        "{out}"
    );
    let files = db_files(&dir);
    for pid in &dead {
        assert!(
            files
                .iter()
                .all(|f| !f.ends_with(&format!("_{pid}.db")) || f.starts_with("gauge_all_")),
            "{files:?}"
        );
    }
    assert!(
        files.contains(&"counter_archive.db".to_owned())
            && files.contains(&"gauge_mostrecent_archive.db".to_owned())
    );
    // Our output equals the reference's, and prometheus_client agrees on both.
    assert_same_samples(
        &render(&dir, "text").stdout,
        &render(&reference, "text").stdout,
        "after compaction",
    );
    let diffs: Vec<String> = serde_json::from_str(&harness(&[
        "compare-dirs",
        reference.to_str().unwrap(),
        dir.to_str().unwrap(),
    ]))
    .unwrap();
    assert!(diffs.is_empty(), "{diffs:?}");
    assert_no_diffs(&differential(std::slice::from_ref(&dir), tmp.path()));
    // A second round finds nothing more to do and changes nothing.
    let before = all_names(&dir);
    let (_, again) = compact(&dir, "proc", &[]);
    assert!(again.contains("absorbed=0"), "{again}");
    assert_eq!(all_names(&dir), before);
    drop(pool);
}

#[test]
fn churn_of_2000_workers_keeps_counts_exact_and_monotonic() {
    let tmp = shm_tempdir();
    let dir = tmp.path().to_path_buf();
    let s = Server::compacting(&dir);
    s.wait_ready();
    let mut churn = Command::new(python())
        .arg(HARNESS)
        .args(["churn", dir.to_str().unwrap(), "2000", "8"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let heads = [
        r#"churn_requests_total{path="/a"}"#,
        r#"churn_requests_total{path="/b"}"#,
        "churn_latency_seconds_count",
        r#"churn_latency_seconds_bucket{le="0.1"}"#,
        r#"churn_latency_seconds_bucket{le="1.0"}"#,
    ];
    let mut last = [0.0f64; 5];
    let mut scrapes = 0;
    let mut max_files = 0;
    let mut decreases = Vec::new();
    while churn.try_wait().unwrap().is_none() {
        let body = s.get("/metrics", &[]).text();
        scrapes += 1;
        for (i, h) in heads.iter().enumerate() {
            let v = value(&body, h).unwrap_or(0.0);
            if v < last[i] {
                decreases.push(format!("{h}: {} -> {v}", last[i]));
            }
            last[i] = v;
        }
        max_files = max_files.max(db_files(&dir).len());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut line = String::new();
    BufReader::new(churn.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let expected: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(
        decreases.is_empty(),
        "counters went backwards: {decreases:?}"
    );
    // Every worker is dead now: the directory shrinks to the archives.
    let deadline = Instant::now() + Duration::from_secs(20);
    while db_files(&dir).len() > 2 {
        assert!(
            Instant::now() < deadline,
            "not compacted: {:?}",
            db_files(&dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        db_files(&dir),
        ["counter_archive.db", "histogram_archive.db"]
    );
    let body = s.get("/metrics", &[]).text();
    let a = expected["requests"]["/a"].as_f64().unwrap();
    let b = expected["requests"]["/b"].as_f64().unwrap();
    assert_eq!(value(&body, heads[0]), Some(a));
    assert_eq!(value(&body, heads[1]), Some(b));
    assert_eq!(
        value(&body, heads[2]),
        Some(expected["observations"].as_f64().unwrap())
    );
    assert!(
        value(&body, "churn_in_progress").is_none(),
        "live gauges of dead workers are gone"
    );
    let absorbed = value(&body, "multiproc_exporter_files_absorbed_total").unwrap();
    eprintln!(
        "churn: 2000 workers, {scrapes} scrapes, at most {max_files} .db files at once, {absorbed} files absorbed"
    );
    assert!(scrapes >= 20, "only {scrapes} scrapes");
    // A worker whose pid a later worker reuses before compaction shares its file with it
    // (prometheus_client reopens `counter_<pid>.db`): each distinct pid leaves at least
    // its counter and histogram files to absorb.
    let pids = expected["distinct_pids"].as_f64().unwrap();
    assert!(
        absorbed >= 2.0 * pids,
        "{absorbed} absorbed for {pids} pids"
    );
}

#[test]
fn pid_reuse_is_not_mistaken_for_the_dead_writer() {
    // Every fresh pid namespace starts at pid 1: the writer of counter_1.db in one
    // namespace and the process in the next one share a pid, as after a container restart.
    let (_tmp, dir) = crate::util::temp_mp();
    let in_new_namespace = |cmd: &str| {
        let out = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc"])
            .arg(python())
            .args([HARNESS, cmd, dir.to_str().unwrap(), BIN])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "unshare (needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = in_new_namespace("reuse-writer");
    assert!(
        first.contains("alive=1") && first.contains("absorbed=0"),
        "{first}"
    );
    std::thread::sleep(Duration::from_millis(100));
    // A new process under pid 1 resumes the old file: it maps it, so it is alive.
    let second = in_new_namespace("reuse-writer");
    assert!(
        second.contains("alive=1") && second.contains("absorbed=0"),
        "{second}"
    );
    assert_eq!(
        value(&render(&dir, "text").stdout, "reused_total"),
        Some(10.0)
    );
    std::thread::sleep(Duration::from_millis(100));
    // A process under pid 1 that started later and does not map the file: the writer
    // of the file is dead, so it is compacted, and nothing is lost.
    let third = in_new_namespace("reuse-idle");
    assert!(
        third.contains("dead=1") && third.contains("absorbed=1"),
        "{third}"
    );
    assert_eq!(db_files(&dir), ["counter_archive.db"]);
    assert_eq!(
        value(&render(&dir, "text").stdout, "reused_total"),
        Some(10.0)
    );
}

fn sigkilled_worker_is_detected(liveness: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let s = Server::start(&[
        "--dir",
        dir.to_str().unwrap(),
        "--liveness",
        liveness,
        "--lifecycle.interval",
        "250ms",
    ]);
    s.wait_ready();
    let keep = Running::start(&["locked-worker", dir.to_str().unwrap()]);
    let victim = Running::start(&["locked-worker", dir.to_str().unwrap()]);
    let pid: u32 = victim
        .first_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let live = format!(r#"mix_g_liveall{{pid="{pid}"}}"#);
    let body = s.get("/metrics", &[]).text();
    assert!(value(&body, &live).is_some(), "{body}");
    let total = value(&body, r#"mix_requests_total{path="/a"}"#).unwrap();
    drop(victim); // SIGKILL
    let killed = Instant::now();
    loop {
        let body = s.get("/metrics", &[]).text();
        if value(&body, &live).is_none()
            && !db_files(&dir)
                .iter()
                .any(|f| f.contains(&format!("_{pid}.db")) && !f.starts_with("gauge_all_"))
        {
            assert_eq!(
                value(&body, r#"mix_requests_total{path="/a"}"#),
                Some(total)
            );
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "{liveness}: SIGKILLed worker not detected: {:?}",
            db_files(&dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "{liveness}: SIGKILLed worker detected and compacted in {:?}",
        killed.elapsed()
    );
    drop(keep);
}

#[test]
fn sigkilled_worker_detected_with_proc_evidence() {
    sigkilled_worker_is_detected("proc");
}

#[test]
fn sigkilled_worker_detected_with_lock_evidence() {
    sigkilled_worker_is_detected("lock");
}

#[test]
fn liveness_none_never_deletes_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let s = Server::start(&[
        "--dir",
        dir.to_str().unwrap(),
        "--liveness",
        "none",
        "--lifecycle.interval",
        "100ms",
    ]);
    s.wait_ready();
    let victim = Running::start(&["locked-worker", dir.to_str().unwrap()]);
    let pid = victim
        .first_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    drop(victim);
    let before = all_names(&dir);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(all_names(&dir), before);
    let body = s.get("/metrics", &[]).text();
    assert!(value(&body, &format!(r#"mix_g_liveall{{pid="{pid}"}}"#)).is_some());
}

#[test]
fn stale_directory_is_cleaned_at_start_and_files_come_and_go() {
    let tmp = shm_tempdir();
    let (pristine, _) = crash_fixture(tmp.path());
    let dir = tmp.path().join("stale");
    copy_dir(&pristine, &dir);
    std::fs::write(dir.join("notes.txt"), b"not ours").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/counter_5.db"), b"").unwrap();
    let s = Server::start(&["--dir", dir.to_str().unwrap(), "--liveness", "lock"]);
    s.wait_ready();
    // Every writer was dead: no phantom series, only what is not ours is left.
    assert_eq!(all_names(&dir), ["notes.txt", "sub"]);
    assert!(dir.join("sub/counter_5.db").exists());
    let body = s.get("/metrics", &[]).text();
    assert!(!body.contains("mix_"), "{body}");
    assert_eq!(
        value(&body, "multiproc_exporter_stale_wipes_total"),
        Some(1.0)
    );
    // A new worker's files appear in the next scrape, removed ones disappear.
    let mut w = multiproc_exporter::write::DbWriter::open(&dir.join("counter_77.db")).unwrap();
    w.set_sample("fresh", "fresh_total", &[], "h", 3.0, 0.0)
        .unwrap();
    assert_eq!(
        value(&s.get("/metrics", &[]).text(), "fresh_total"),
        Some(3.0)
    );
    std::fs::remove_file(dir.join("counter_77.db")).unwrap();
    assert_eq!(value(&s.get("/metrics", &[]).text(), "fresh_total"), None);
}

/// Issue 10, found by running the Kubernetes manifests under `podman kube play`: in a
/// pid namespace of its own the sidecar's thread ids are small, and so are the writers'
/// pids in theirs; `/proc/<tid>` shows the sidecar's own mappings of the writers'
/// files. That is no proof of a shared namespace: without one, writers without a shim
/// lock (a `--preload` master, an app without the shim) are never judged from `/proc`,
/// so none is taken for dead and compacted while it writes.
#[test]
fn test_issue_10_own_threads_are_no_proof_of_a_shared_pid_namespace() {
    let (_tmp, dir) = crate::util::temp_mp();
    for pid in 1..=32 {
        let path = dir.join(format!("counter_{pid}.db"));
        let mut w = multiproc_exporter::write::DbWriter::open(&path).unwrap();
        w.set_sample("c", "c_total", &[], "h", 1.0, 0.0).unwrap();
    }
    let d = dir.to_str().unwrap();
    let s = Server::start_with(
        crate::util::BIN_IN_OWN_PID_NAMESPACE,
        &[
            "--dir",
            d,
            "--liveness",
            "auto",
            "--lifecycle.interval",
            "100ms",
        ],
    );
    s.wait_ready();
    // Many lifecycle rounds, each with the files mapped by the sidecar.
    std::thread::sleep(Duration::from_millis(1500));
    let body = s.get("/metrics", &[]).text();
    assert_eq!(
        value(
            &body,
            r#"multiproc_exporter_liveness_info{evidence="lock",mode="auto"}"#
        ),
        Some(1.0),
        "{}",
        s.log_text()
    );
    assert_eq!(value(&body, "c_total"), Some(32.0));
    assert_eq!(
        value(&body, "multiproc_exporter_files_absorbed_total"),
        Some(0.0)
    );
    assert_eq!(crate::util::db_files(&dir).len(), 32);
    assert!(
        !s.log_text().contains("pid namespace shared"),
        "{}",
        s.log_text()
    );
}

#[test]
fn auto_uses_proc_only_after_proving_a_shared_pid_namespace() {
    let (_tmp, dir) = crate::util::temp_mp();
    let pool = Running::start(&["pool", dir.to_str().unwrap(), "4", "2"]);
    let (_, dead) = pool.pids();
    let before = all_names(&dir);
    // In its own pid namespace every writer pid looks missing: no proof, no deletion.
    let out = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            BIN,
            "compact",
            "--liveness",
            "auto",
            "--dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "unshare (needs root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("evidence=lock") && text.contains("dead=0") && text.contains("absorbed=0"),
        "{text}"
    );
    assert_eq!(all_names(&dir), before);
    // In the writers' namespace, a live worker maps its own file: proven, proc in use.
    let (status, text) = compact(&dir, "auto", &[]);
    assert!(status.success());
    assert!(
        text.contains("evidence=lock+proc") && text.contains(&format!("dead={}", dead.len())),
        "{text}"
    );
    drop(pool);
}
