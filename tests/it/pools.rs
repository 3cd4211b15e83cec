//! End to end: real Gunicorn and uWSGI pools with the shim, recycling their workers
//! under load, and the sidecar beside them (loopback only, ports chosen at run time).

use crate::util::{Reaped, Server, db_files, free_port, python, try_request, value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn venv_bin(name: &str) -> PathBuf {
    python().parent().unwrap().join(name)
}

enum Kind {
    Gunicorn,
    Uwsgi,
}

/// Starts the pool with its example configuration; returns it and the number of probe
/// requests it answered while starting.
fn start_pool(kind: &Kind, dir: &Path, port: u16) -> (Reaped, u64) {
    let examples = Path::new(REPO).join("shim/examples");
    let mut cmd = match kind {
        Kind::Gunicorn => {
            let mut c = Command::new(venv_bin("gunicorn"));
            c.args([
                "-c",
                "gunicorn.conf.py",
                "--workers",
                "3",
                "--max-requests",
                "20",
                "--max-requests-jitter",
                "5",
            ])
            .args(["--bind", &format!("127.0.0.1:{port}"), "app:app"]);
            c
        }
        Kind::Uwsgi => {
            let mut c = Command::new(venv_bin("uwsgi"));
            c.args([
                "--ini",
                "uwsgi.ini",
                "--http-socket",
                &format!("127.0.0.1:{port}"),
            ]);
            c
        }
    };
    cmd.current_dir(&examples)
        .env("PROMETHEUS_MULTIPROC_DIR", dir)
        .env(
            "PATH",
            format!(
                "{}:{}",
                venv_bin("").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.with_extension("pool.log")).unwrap());
    let pool = Reaped(cmd.spawn().unwrap());
    let url = format!("http://127.0.0.1:{port}/probe");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut probes = 0;
    loop {
        if try_request("GET", &url, &[]).is_ok_and(|r| r.status == 200) {
            probes += 1;
            break;
        }
        assert!(Instant::now() < deadline, "the pool did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (pool, probes)
}

/// Sends `n` requests, `pace` apart; returns how many were answered with 200, and the
/// first failure.
fn load(port: u16, n: usize, pace: Duration) -> (u64, Option<String>) {
    let url = format!("http://127.0.0.1:{port}/load");
    let mut answered = 0;
    let mut first_failure = None;
    for _ in 0..n {
        std::thread::sleep(pace);
        match try_request("GET", &url, &[]) {
            Ok(r) if r.status == 200 => answered += 1,
            Ok(r) => {
                first_failure.get_or_insert(format!("status {}", r.status));
            }
            Err(e) => {
                first_failure.get_or_insert(e.to_string());
            }
        }
    }
    (answered, first_failure)
}

/// Scrapes the sidecar in the background, recording the request counter each time.
struct Scraper {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<f64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scraper {
    fn start(sidecar: &Server) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let url = sidecar.url("/metrics");
        let (s, v) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(r) = try_request("GET", &url, &[]) {
                    let text = r.text();
                    v.lock()
                        .unwrap()
                        .push(value(&text, r#"app_requests_total{path="/load"}"#).unwrap_or(0.0));
                }
                std::thread::sleep(Duration::from_millis(30));
            }
        });
        Scraper {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<f64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.seen.lock().unwrap().clone()
    }
}

fn decreases(seen: &[f64]) -> usize {
    seen.windows(2).filter(|w| w[1] < w[0]).count()
}

fn label_values(text: &str, name: &str, label: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| {
            l.split(&format!("{label}=\""))
                .nth(1)?
                .split('"')
                .next()
                .map(str::to_owned)
        })
        .collect()
}

fn children(pid: u32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The whole scenario: a pool recycling its workers under load, the sidecar beside it.
fn recycling_pool_under_load(kind: Kind, sidecar: Server, dir: &Path, requests: usize) -> String {
    sidecar.wait_ready();
    let port = free_port();
    let (pool, probes) = start_pool(&kind, dir, port);
    let scraper = Scraper::start(&sidecar);
    // uWSGI recycles a worker only once it has lived min-worker-lifetime (1 s in the
    // example): spread its load over several seconds.
    let pace = match kind {
        Kind::Gunicorn => Duration::ZERO,
        Kind::Uwsgi => Duration::from_millis(15),
    };
    let (answered, failure) = load(port, requests, pace);
    let seen = scraper.finish();
    let pool_log = std::fs::read_to_string(dir.with_extension("pool.log")).unwrap_or_default();
    let tail: Vec<&str> = pool_log.lines().rev().take(25).collect();
    assert!(
        answered as usize >= requests * 9 / 10,
        "only {answered} of {requests} answered; first failure: {failure:?}\npool log (last lines first):\n{}",
        tail.join("\n")
    );
    assert_eq!(
        decreases(&seen),
        0,
        "the request counter went backwards: {seen:?}"
    );
    assert!(
        seen.len() >= 10,
        "only {} scrapes during the load",
        seen.len()
    );
    // Once the dust settles: exact counts, no leftovers of dead workers.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = sidecar.get("/metrics", &[]).text();
        // The pool's processes: the master (uWSGI's imports the app and writes too) and
        // its workers.
        let mut live: Vec<String> = children(pool.0.id());
        live.push(pool.0.id().to_string());
        let worker_pids = label_values(&text, "app_worker_requests", "pid");
        let files: Vec<String> = db_files(dir)
            .into_iter()
            .filter(|f| !f.starts_with("gauge_all_"))
            .collect();
        let ok = value(&text, r#"app_requests_total{path="/load"}"#) == Some(answered as f64)
            && value(&text, "app_request_duration_seconds_count")
                == Some((answered + probes) as f64)
            && value(&text, "app_requests_in_progress") == Some(0.0)
            && worker_pids.iter().all(|p| live.contains(p))
            && files.len() <= live.len() * 4 + 2 + 4;
        if ok {
            let recycled = db_files(dir)
                .iter()
                .filter(|f| f.starts_with("gauge_all_"))
                .count();
            eprintln!(
                "{answered} requests answered, {} scrapes, {recycled} worker pids over the run, {} files now: {files:?}",
                seen.len(),
                db_files(dir).len()
            );
            assert!(recycled >= 6, "workers were not recycled ({recycled} pids)");
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: requests={:?} (answered {answered}) count={:?} in_progress={:?} worker pids {worker_pids:?} live {live:?} files {files:?}\n{}",
            value(&text, r#"app_requests_total{path="/load"}"#),
            value(&text, "app_request_duration_seconds_count"),
            value(&text, "app_requests_in_progress"),
            sidecar.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sidecar_args(dir: &Path) -> Vec<String> {
    vec![
        "--dir".into(),
        dir.to_str().unwrap().into(),
        "--lifecycle.interval".into(),
        "250ms".into(),
    ]
}

#[test]
fn gunicorn_recycling_workers_counts_exactly() {
    let (_tmp, dir) = crate::util::temp_mp();
    let args = sidecar_args(&dir);
    let sidecar = Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let text = recycling_pool_under_load(Kind::Gunicorn, sidecar, &dir, 400);
    assert!(
        text.contains(r#"evidence="lock+proc""#),
        "same namespace: both kinds of evidence"
    );
}

#[test]
fn gunicorn_with_the_sidecar_in_a_separate_pid_namespace() {
    let (_tmp, dir) = crate::util::temp_mp();
    let args = sidecar_args(&dir);
    let sidecar = Server::start_with(
        crate::util::BIN_IN_OWN_PID_NAMESPACE,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let text = recycling_pool_under_load(Kind::Gunicorn, sidecar, &dir, 400);
    // It cannot see the workers: liveness comes from the shim's locks alone.
    assert!(
        text.contains(r#"multiproc_exporter_liveness_info{evidence="lock",mode="auto"} 1.0"#),
        "{text}"
    );
}

#[test]
fn uwsgi_recycling_workers_counts_exactly() {
    let (_tmp, dir) = crate::util::temp_mp();
    let args = sidecar_args(&dir);
    let sidecar = Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    recycling_pool_under_load(Kind::Uwsgi, sidecar, &dir, 300);
}

#[test]
fn gunicorn_master_restart_leaves_no_phantoms_and_resets_once() {
    let (_tmp, dir) = crate::util::temp_mp();
    let args = sidecar_args(&dir);
    let sidecar = Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    sidecar.wait_ready();
    let scraper = Scraper::start(&sidecar);
    let port = free_port();
    let (first, _) = start_pool(&Kind::Gunicorn, &dir, port);
    let (run1, _) = load(port, 120, Duration::ZERO);
    let old_pids = label_values(
        &sidecar.get("/metrics", &[]).text(),
        "app_worker_start_time_seconds",
        "pid",
    );
    assert!(!old_pids.is_empty());
    // The app container restarts: graceful stop, then a new master on the same directory.
    Command::new("kill")
        .args(["-TERM", &first.0.id().to_string()])
        .status()
        .unwrap();
    let mut first = first;
    first.0.wait().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let port = free_port();
    let (_second, _) = start_pool(&Kind::Gunicorn, &dir, port);
    let (run2, _) = load(port, 120, Duration::ZERO);
    std::thread::sleep(Duration::from_millis(700));
    let seen = scraper.finish();
    let text = sidecar.get("/metrics", &[]).text();
    assert!(decreases(&seen) <= 1, "more than one reset: {seen:?}");
    // The wipe at the new master's start is the one reset: the counter restarts at zero
    // and counts the second run exactly; it never jumps back to the old total.
    assert_eq!(
        value(&text, r#"app_requests_total{path="/load"}"#),
        Some(run2 as f64),
        "run1={run1} run2={run2} seen={seen:?}"
    );
    let max_after_drop = seen
        .windows(2)
        .position(|w| w[1] < w[0])
        .map(|i| seen[i + 1..].iter().cloned().fold(0.0, f64::max));
    if let Some(m) = max_after_drop {
        assert!(m <= run2 as f64, "a jump after the reset: {seen:?}");
    }
    let now_pids = label_values(&text, "app_worker_start_time_seconds", "pid");
    assert!(
        now_pids.iter().all(|p| !old_pids.contains(p)),
        "phantom series of old workers: {now_pids:?} vs {old_pids:?}"
    );
    let live_pids = label_values(&text, "app_worker_requests", "pid");
    assert!(
        live_pids.iter().all(|p| !old_pids.contains(p)),
        "live-mode leftovers: {live_pids:?}"
    );
}
