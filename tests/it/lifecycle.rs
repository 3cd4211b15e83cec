//! Dead workers: proving death, compacting without losing or doubling a count, crash
//! safety, pid reuse, stale directories, and files coming and going. Real processes.

use crate::util::{
    BIN, Server, assert_no_diffs, differential, harness, python, render, samples, value,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/harness.py");

/// A harness process that keeps running until dropped; its first stdout line is kept.
struct Running {
    child: Child,
    first_line: String,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(python())
            .arg(HARNESS)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        Running { child, first_line }
    }

    fn pids(&self) -> (Vec<u32>, Vec<u32>) {
        let v: serde_json::Value = serde_json::from_str(&self.first_line).unwrap();
        let list = |k: &str| {
            v[k].as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_u64().unwrap() as u32)
                .collect()
        };
        (list("alive"), list("dead"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn compact(dir: &Path, liveness: &str, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "compact",
        "--dir",
        dir.to_str().unwrap(),
        "--liveness",
        liveness,
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn db_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".db") && !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// Every name in the directory except the directory lock (created by the first round).
fn all_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != ".multiproc-exporter.lock")
        .collect();
    v.sort();
    v
}

/// Copies the used part of every regular file (fast, and enough for every reader).
fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

/// Sample values by `name{labels}`, to compare outputs whose sums may differ in the last bit.
fn sample_map(text: &str) -> BTreeMap<String, f64> {
    samples(text).into_iter().collect()
}

fn assert_same_samples(got: &str, want: &str, what: &str) {
    let (g, w) = (sample_map(got), sample_map(want));
    let gk: Vec<_> = g.keys().collect();
    let wk: Vec<_> = w.keys().collect();
    assert_eq!(gk, wk, "{what}: different series");
    for (k, wv) in &w {
        let gv = g[k];
        let close = gv == *wv
            || (gv - wv).abs() <= 1e-9 * gv.abs().max(wv.abs())
            || (gv.is_nan() && wv.is_nan());
        assert!(close, "{what}: {k} is {gv}, expected {wv}");
    }
}

/// Lock files as the shim leaves them after its worker died: present, not held.
fn released_locks(dir: &Path, pids: &[u32]) {
    for pid in pids {
        std::fs::write(
            dir.join(format!(".multiproc-exporter-{pid}.lock")),
            format!("{{\"pid\": {pid}}}"),
        )
        .unwrap();
    }
}

fn shm_tempdir() -> tempfile::TempDir {
    let base = Path::new("/dev/shm");
    if base.is_dir() {
        tempfile::tempdir_in(base).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

#[test]
fn compaction_keeps_the_output_except_dead_live_gauges() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mp");
    std::fs::create_dir(&dir).unwrap();
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
    let s = Server::start(&[
        "--dir",
        dir.to_str().unwrap(),
        "--liveness",
        "proc",
        "--lifecycle.interval",
        "200ms",
    ]);
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
    assert!(absorbed >= 4000.0);
}

/// Builds the pristine directory of the crash trials: 10 dead workers with every file
/// kind, and their released lock files (lock evidence, independent of pid reuse).
fn crash_fixture(tmp: &Path) -> (PathBuf, String) {
    let pristine = tmp.join("pristine");
    std::fs::create_dir(&pristine).unwrap();
    let pool = Running::start(&["pool", pristine.to_str().unwrap(), "10", "10"]);
    let (_, dead) = pool.pids();
    drop(pool);
    released_locks(&pristine, &dead);
    let expected = Command::new(BIN)
        .args([
            "render",
            "--liveness",
            "lock",
            "--dir",
            pristine.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    (pristine, String::from_utf8(expected.stdout).unwrap())
}

fn check_trial(dir: &Path, expected: &str, what: &str) {
    let (status, out) = compact(dir, "lock", &[]);
    assert!(status.success(), "{what}: recovery run failed: {out}");
    let names = all_names(dir);
    assert!(
        !names.iter().any(|n| n.starts_with(".mpe-")),
        "{what}: leftovers {names:?}"
    );
    assert_same_samples(&render(dir, "text").stdout, expected, what);
}

#[test]
fn crash_at_every_point_of_a_compaction_loses_and_doubles_nothing() {
    let tmp = shm_tempdir();
    let (pristine, expected) = crash_fixture(tmp.path());
    let points = [
        "live_removed",
        "renamed_hidden",
        "temp_written",
        "temp_synced",
        "archive_renamed",
        "hidden_removed",
    ];
    let mut trials = 0;
    for point in points {
        for n in 1.. {
            let dir = tmp.path().join(format!("trial-{point}-{n}"));
            copy_dir(&pristine, &dir);
            let (status, _) = compact(
                &dir,
                "lock",
                &[("MPE_TEST_CRASH_AT", &format!("{point}:{n}"))],
            );
            if status.success() {
                // Past the last time this point is reached.
                assert!(n > 1, "crash point {point} was never reached");
                break;
            }
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(libc::SIGABRT), "{point}:{n}");
            check_trial(&dir, &expected, &format!("crash at {point}:{n}"));
            std::fs::remove_dir_all(&dir).unwrap();
            trials += 1;
        }
    }
    eprintln!("crash trials: {trials}");
    assert!(trials >= 200, "only {trials} crash trials");
}

#[test]
fn sigkill_at_random_times_loses_and_doubles_nothing() {
    let tmp = shm_tempdir();
    let (pristine, expected) = crash_fixture(tmp.path());
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for trial in 0..20 {
        let dir = tmp.path().join(format!("kill-{trial}"));
        copy_dir(&pristine, &dir);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % 20_000);
        let mut child = Command::new(BIN)
            .args([
                "compact",
                "--liveness",
                "lock",
                "--dir",
                dir.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();
        check_trial(&dir, &expected, &format!("SIGKILL after {delay:?}"));
    }
}

#[test]
fn no_space_or_failed_write_leaves_the_directory_correct() {
    let tmp = shm_tempdir();
    let (pristine, expected) = crash_fixture(tmp.path());
    // Not enough free space (the reserve cannot be met): skipped, reported, untouched.
    let dir = tmp.path().join("full");
    copy_dir(&pristine, &dir);
    let before = all_names(&dir);
    let out = Command::new(BIN)
        .args([
            "compact",
            "--liveness",
            "lock",
            "--compaction.min-free-bytes",
            "1000000000000000",
            "--dir",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("skipped=no_space"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("compaction skipped"));
    assert_eq!(all_names(&dir), before);
    // The archive cannot be written (its temporary name is taken by a directory): the
    // dead files go back under their names, nothing is lost, the next round succeeds.
    let dir = tmp.path().join("blocked");
    copy_dir(&pristine, &dir);
    let blocker = dir.join(".mpe-tmp.counter_archive.db");
    std::fs::create_dir(&blocker).unwrap();
    let (status, out) = compact(&dir, "lock", &[]);
    assert!(status.success() && out.contains("skipped=error"), "{out}");
    assert_same_samples(
        &render(&dir, "text").stdout,
        &expected,
        "after a failed write",
    );
    std::fs::remove_dir(&blocker).unwrap();
    check_trial(&dir, &expected, "retry after a failed write");
}

#[test]
fn full_memory_volume_is_reported_by_the_server() {
    // A real, small tmpfs filled to the brim (needs root to mount; CI runs as root).
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("vol");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .status();
    if !mounted.is_ok_and(|s| s.success()) {
        panic!("cannot mount a tmpfs (this test needs root)");
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let src = shm_tempdir();
    let (pristine, _) = crash_fixture(src.path());
    for e in std::fs::read_dir(&pristine).unwrap() {
        let e = e.unwrap();
        let bytes = std::fs::read(e.path()).unwrap();
        let used = i32::from_ne_bytes(bytes[..4].try_into().unwrap_or([0; 4])).max(8) as usize;
        std::fs::write(mnt.join(e.file_name()), &bytes[..used.min(bytes.len())]).unwrap();
    }
    // Fill what is left.
    let filler = std::fs::File::create(mnt.join("filler")).unwrap();
    let mut w = std::io::BufWriter::new(filler);
    let chunk = vec![1u8; 4096];
    while std::io::Write::write_all(&mut w, &chunk)
        .and_then(|()| std::io::Write::flush(&mut w))
        .is_ok()
    {}
    drop(w);
    // One writer is alive (its lock is held), so the directory is not stale.
    let lock = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(".multiproc-exporter-")
        })
        .unwrap();
    let held = std::fs::File::open(&lock).unwrap();
    held.lock().unwrap();
    let expected = String::from_utf8(
        Command::new(BIN)
            .args([
                "render",
                "--liveness",
                "lock",
                "--dir",
                mnt.to_str().unwrap(),
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let before = all_names(&mnt);
    let s = Server::start(&[
        "--dir",
        mnt.to_str().unwrap(),
        "--liveness",
        "lock",
        "--compaction.min-free-bytes",
        "0",
    ]);
    s.wait_ready();
    let body = s.get("/metrics", &[]).text();
    assert_eq!(
        value(
            &body,
            r#"multiproc_exporter_compaction_skipped_total{reason="no_space"}"#
        )
        .map(|v| v >= 1.0),
        Some(true),
        "{body}"
    );
    assert!(
        s.log_text().contains("compaction skipped"),
        "{}",
        s.log_text()
    );
    assert_eq!(all_names(&mnt), before);
    let want: Vec<(String, f64)> = samples(&expected);
    for (head, v) in want {
        assert_eq!(value(&body, &head), Some(v), "{head}");
    }
}

#[test]
fn pid_reuse_is_not_mistaken_for_the_dead_writer() {
    // Every fresh pid namespace starts at pid 1: the writer of counter_1.db in one
    // namespace and the process in the next one share a pid, as after a container restart.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mp");
    std::fs::create_dir(&dir).unwrap();
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

#[test]
fn auto_uses_proc_only_after_proving_a_shared_pid_namespace() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mp");
    std::fs::create_dir(&dir).unwrap();
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
