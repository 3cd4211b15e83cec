//! A built-in demo: a small simulated pre-fork pool, so a newcomer sees a live merged
//! `/metrics` without writing any Python.
//!
//! The pool is made of child processes of our own binary (`multiproc-exporter
//! demo-worker`, hidden), started and reaped by a supervisor task the way Gunicorn's
//! master does: each worker holds its liveness lock for its lifetime (what the shim's
//! `post_fork` hook does), serves simulated requests for a while and exits (as with
//! `max_requests`), the supervisor removes its live-gauge files (what
//! `mark_process_dead` does) and starts a replacement. Workers write prometheus_client's
//! file format through [`crate::write`], so the directory is exactly what a real pool
//! with the shim would leave, and the sidecar's whole lifecycle shows: dead workers are
//! proven dead by their released locks, their files compacted, the file count stays flat.

use crate::liveness;
use crate::model::GaugeMode;
use crate::render::float;
use crate::write::DbWriter;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::task::{JoinHandle, JoinSet};

/// Histogram bounds of the simulated request latency.
const BOUNDS: [f64; 9] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, f64::INFINITY];
const PATHS: [&str; 4] = ["/", "/api/items", "/api/orders", "/login"];

/// A running demo pool; dropping it kills the workers and removes the directory.
#[derive(Debug)]
pub struct DemoPool {
    dir: tempfile::TempDir,
    supervisor: JoinHandle<()>,
}

impl DemoPool {
    /// The directory the workers write to.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for DemoPool {
    fn drop(&mut self) {
        // Aborting drops the children, which are killed on drop.
        self.supervisor.abort();
    }
}

/// Starts `workers` demo workers running `exe demo-worker` in a new temporary directory.
/// Each lives between `lifetime` and 2.5 times it, so the workers do not all die at
/// once, as in a pool recycling them after a number of requests.
///
/// # Errors
/// When the directory cannot be created.
pub fn start(exe: PathBuf, workers: usize, lifetime: Duration) -> io::Result<DemoPool> {
    let dir = tempfile::Builder::new()
        .prefix("multiproc-exporter-demo-")
        .tempdir()?;
    let path = dir.path().to_owned();
    let supervisor = tokio::spawn(supervise(exe, path, workers.max(1), lifetime));
    Ok(DemoPool { dir, supervisor })
}

async fn supervise(exe: PathBuf, dir: PathBuf, workers: usize, lifetime: Duration) {
    // The set owns the children: aborting this task drops it, which kills them.
    let mut children = JoinSet::new();
    let mut seed = seed_from_time();
    for _ in 0..workers {
        seed = seed.wrapping_add(1);
        spawn_worker(&mut children, &exe, &dir, seed, lifetime);
    }
    while let Some(exited) = children.join_next().await {
        if let Ok(pid) = exited {
            mark_dead(&dir, pid);
        }
        seed = seed.wrapping_add(1);
        spawn_worker(&mut children, &exe, &dir, seed, lifetime);
    }
}

/// A worker's lifetime in milliseconds: between `base` and 2.5 times `base`, spread by
/// `seed`.
fn lifetime_ms(base: Duration, seed: u64) -> u64 {
    let base = u64::try_from(base.as_millis())
        .unwrap_or(u64::MAX / 4)
        .max(1);
    let spread = base.saturating_mul(3) / 2 + 1;
    base.saturating_add(seed.wrapping_mul(2_654_435_761) % spread)
}

fn spawn_worker(
    children: &mut JoinSet<u32>,
    exe: &Path,
    dir: &Path,
    seed: u64,
    lifetime: Duration,
) {
    let lifetime_ms = lifetime_ms(lifetime, seed);
    let child = tokio::process::Command::new(exe)
        .arg("demo-worker")
        .arg("--dir")
        .arg(dir)
        .args([
            "--seed",
            &seed.to_string(),
            "--lifetime-ms",
            &lifetime_ms.to_string(),
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(err) => {
            tracing::error!(error = %err, "cannot start a demo worker");
            return;
        }
    };
    let pid = child.id().unwrap_or(0);
    tracing::debug!(pid, "demo worker started");
    children.spawn(async move {
        let _ = child.wait().await;
        pid
    });
}

/// What prometheus_client's `mark_process_dead` does: remove the live-gauge files. The
/// sidecar would remove them too once the released lock proves the death; a supervisor
/// doing it at once makes the worker's live series vanish without waiting for a round.
fn mark_dead(dir: &Path, pid: u32) {
    for mode in GaugeMode::KNOWN.iter().filter(|m| m.is_live()) {
        let _ = std::fs::remove_file(dir.join(format!("gauge_{}_{pid}.db", mode.token())));
    }
    tracing::debug!(pid, "demo worker exited; marked dead");
}

fn seed_from_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// A small deterministic generator (xorshift64*), enough for simulated traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The body of one demo worker process: serve simulated requests until `lifetime`.
///
/// # Errors
/// When its files cannot be written. A directory that is gone is not an error: the pool
/// was stopped and removed its directory while this worker was being killed.
pub fn worker_main(dir: &Path, seed: u64, lifetime: Duration) -> io::Result<()> {
    match serve_requests(dir, seed, lifetime) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && !dir.exists() => Ok(()),
        other => other,
    }
}

fn serve_requests(dir: &Path, seed: u64, lifetime: Duration) -> io::Result<()> {
    let pid = std::process::id();
    // Taken before the first file exists and held until the process ends: the released
    // lock is what proves this worker dead to the sidecar.
    let _lock = liveness::hold_worker_lock(dir, pid)?;
    let open = |prefix: &str| DbWriter::open(&dir.join(format!("{prefix}_{pid}.db")));
    let mut counter = open("counter")?;
    let mut histogram = open("histogram")?;
    let mut in_progress = open("gauge_livesum")?;
    // `liveall`: one series per live worker, gone with the worker (with `all` the
    // series of every dead pid would stay, as upstream keeps them by design).
    let mut memory = open("gauge_liveall")?;
    let mut started = open("gauge_max")?;
    let mut last_request = open("gauge_mostrecent")?;
    let mut rng = Rng(seed | 1);
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    started.set_sample(
        "demo_worker_last_start_time_seconds",
        "demo_worker_last_start_time_seconds",
        &[],
        "Start time of the newest demo worker.",
        now(),
        0.0,
    )?;
    let latency_help = "Simulated request latency.";
    let mut counts = [[0.0f64; BOUNDS.len()]; PATHS.len()];
    let mut sums = [0.0f64; PATHS.len()];
    let mut requests = std::collections::HashMap::<(usize, &str), f64>::new();
    let begin = Instant::now();
    while begin.elapsed() < lifetime {
        let p = (rng.next() % PATHS.len() as u64) as usize;
        let path = PATHS[p];
        in_progress.set_sample(
            "demo_http_requests_in_progress",
            "demo_http_requests_in_progress",
            &[],
            "Requests being served now.",
            1.0,
            0.0,
        )?;
        let latency = -0.05 * (1.0 - rng.unit()).ln();
        std::thread::sleep(Duration::from_secs_f64(latency.min(0.2)));
        let status = if rng.unit() < 0.05 { "500" } else { "200" };
        let n = requests.entry((p, status)).or_insert(0.0);
        *n += 1.0;
        counter.set_sample(
            "demo_http_requests",
            "demo_http_requests_total",
            &[("path", path), ("status", status)],
            "Requests served by the demo pool.",
            *n,
            0.0,
        )?;
        let b = BOUNDS
            .iter()
            .position(|&x| latency <= x)
            .unwrap_or(BOUNDS.len() - 1);
        counts[p][b] += 1.0;
        sums[p] += latency;
        histogram.set_sample(
            "demo_http_request_duration_seconds",
            "demo_http_request_duration_seconds_sum",
            &[("path", path)],
            latency_help,
            sums[p],
            0.0,
        )?;
        for (i, bound) in BOUNDS.iter().enumerate() {
            let le = float::go(*bound);
            histogram.set_sample(
                "demo_http_request_duration_seconds",
                "demo_http_request_duration_seconds_bucket",
                &[("le", &le), ("path", path)],
                latency_help,
                counts[p][i],
                0.0,
            )?;
        }
        in_progress.set_sample(
            "demo_http_requests_in_progress",
            "demo_http_requests_in_progress",
            &[],
            "Requests being served now.",
            0.0,
            0.0,
        )?;
        let t = now();
        last_request.set_sample(
            "demo_last_request_timestamp_seconds",
            "demo_last_request_timestamp_seconds",
            &[],
            "When the pool last served a request.",
            t,
            t,
        )?;
        memory.set_sample(
            "demo_worker_resident_memory_bytes",
            "demo_worker_resident_memory_bytes",
            &[],
            "Simulated resident memory of each worker.",
            (40.0 + 20.0 * rng.unit()).round() * 1_048_576.0,
            0.0,
        )?;
        // Idle time until the next simulated request, so that workers are not always
        // busy and the in-progress sum moves between 0 and the number of workers.
        let think = -0.08 * (1.0 - rng.unit()).ln();
        std::thread::sleep(Duration::from_secs_f64(think.min(0.4)));
    }
    Ok(())
}
