//! Helpers of the lifecycle tests: worker pools, directory listings and copies.

pub use crate::util::db_files;
use crate::util::{BIN, python, render, samples};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/harness.py");

/// A harness process that keeps running until dropped; its first stdout line is kept.
pub struct Running {
    pub child: Child,
    pub first_line: String,
}

impl Running {
    pub fn start(args: &[&str]) -> Running {
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

    pub fn pids(&self) -> (Vec<u32>, Vec<u32>) {
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

pub fn compact(
    dir: &Path,
    liveness: &str,
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, String) {
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

/// Every name in the directory except the directory lock (created by the first round).
pub fn all_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != ".multiproc-exporter.lock")
        .collect();
    v.sort();
    v
}

/// Copies the used part of every regular file (fast, and enough for every reader).
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

/// Sample values by `name{labels}`, to compare outputs whose sums may differ in the last bit.
pub fn sample_map(text: &str) -> BTreeMap<String, f64> {
    samples(text).into_iter().collect()
}

pub fn assert_same_samples(got: &str, want: &str, what: &str) {
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
pub fn released_locks(dir: &Path, pids: &[u32]) {
    for pid in pids {
        std::fs::write(
            dir.join(format!(".multiproc-exporter-{pid}.lock")),
            format!("{{\"pid\": {pid}}}"),
        )
        .unwrap();
    }
}

pub fn shm_tempdir() -> tempfile::TempDir {
    let base = Path::new("/dev/shm");
    if base.is_dir() {
        tempfile::tempdir_in(base).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

/// Builds the pristine directory of the crash trials: 10 dead workers with every file
/// kind, and their released lock files (lock evidence, independent of pid reuse).
pub fn crash_fixture(tmp: &Path) -> (PathBuf, String) {
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

pub fn check_trial(dir: &Path, expected: &str, what: &str) {
    let (status, out) = compact(dir, "lock", &[]);
    assert!(status.success(), "{what}: recovery run failed: {out}");
    let names = all_names(dir);
    assert!(
        !names.iter().any(|n| n.starts_with(".mpe-")),
        "{what}: leftovers {names:?}"
    );
    assert_same_samples(&render(dir, "text").stdout, expected, what);
}
