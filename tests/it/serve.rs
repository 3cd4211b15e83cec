//! The HTTP sidecar: negotiation as real scrapers ask, endpoints, single flight,
//! readiness, graceful shutdown and slow clients.

use crate::util::{BIN, Server, app_lines, harness, render, request, value};
use std::path::Path;
use std::time::{Duration, Instant};

const OM: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores";
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

fn app_dir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    harness(&["case", tmp.path().to_str().unwrap(), "types_and_modes"]);
    tmp
}

fn serve(dir: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let s = Server::start(&args);
    s.wait_ready();
    s
}

/// The Accept headers real scrapers send (see docs/operations.md), and what they get.
#[test]
fn accept_headers_of_real_scrapers() {
    let tmp = app_dir();
    let s = serve(tmp.path(), &[]);
    let text = render(tmp.path(), "text").stdout;
    let om = render(tmp.path(), "openmetrics").stdout;
    let prom3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    let cases: Vec<(&str, String, &str)> = vec![
        ("prometheus < 2.49", "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1".into(), OM),
        ("prometheus 2.49-2.55", "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2".into(), OM),
        ("prometheus 2.x proto first", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1".into(), OM),
        ("prometheus 3 allow-utf-8", prom3.into(), "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"),
        ("prometheus 3 underscores", prom3.replace("allow-utf-8", "underscores"), OM),
        ("prometheus 3 proto first", format!("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,{prom3}"), "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"),
        ("text 1.0.0 first", "text/plain;version=1.0.0;escaping=underscores,*/*;q=0.1".into(), "text/plain; version=1.0.0; charset=utf-8; escaping=underscores"),
        ("curl", "*/*".into(), TEXT),
        ("browser", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8".into(), TEXT),
        ("unknown type", "application/json".into(), TEXT),
    ];
    for (who, accept, content_type) in cases {
        for gzip in [false, true] {
            let mut headers = vec![("Accept", accept.as_str())];
            if gzip {
                headers.push(("Accept-Encoding", "gzip"));
            }
            let r = s.get("/metrics", &headers);
            assert_eq!(r.status, 200, "{who}");
            assert_eq!(r.header("content-type"), Some(content_type), "{who}");
            assert_eq!(
                r.header("content-encoding"),
                gzip.then_some("gzip"),
                "{who}"
            );
            assert!(
                r.header("vary").unwrap_or("").contains("Accept-Encoding"),
                "{who}"
            );
            let body = r.text();
            let is_om = content_type.starts_with("application/openmetrics-text");
            assert_eq!(body.ends_with("# EOF\n"), is_om, "{who}");
            assert_eq!(body.matches("# EOF").count(), usize::from(is_om), "{who}");
            // Exactly the samples of `render`, plus the self-metrics.
            let want = if is_om { &om } else { &text };
            assert_eq!(app_lines(&body), app_lines(want), "{who}");
            assert!(body.contains("multiproc_exporter_merges_total"), "{who}");
            assert!(body.contains("process_resident_memory_bytes"), "{who}");
        }
    }
    // No Accept header at all, and gzip refused explicitly.
    let r = s.get("/metrics", &[("Accept-Encoding", "gzip;q=0, identity")]);
    assert_eq!(r.header("content-type"), Some(TEXT));
    assert_eq!(r.header("content-encoding"), None);
}

#[test]
fn endpoints_methods_and_filters() {
    let tmp = app_dir();
    let s = serve(tmp.path(), &[]);
    assert_eq!(s.get("/healthz", &[]).status, 200);
    assert_eq!(s.get("/readyz", &[]).status, 200);
    let landing = s.get("/", &[]);
    assert_eq!(landing.status, 200);
    assert!(
        landing
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let page = landing.text();
    assert!(page.contains("href=\"/metrics\"") && page.contains(tmp.path().to_str().unwrap()));
    assert_eq!(s.get("/nope", &[]).status, 404);
    let post = request("POST", &s.url("/metrics"), &[]);
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let head = request("HEAD", &s.url("/metrics"), &[]);
    let full = s.get("/metrics", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-type"), full.header("content-type"));
    // prometheus_client's name[] filter: exact sample names, empty families dropped.
    let f = s
        .get(
            "/metrics?name[]=req_total&name%5B%5D=lat_seconds_count",
            &[],
        )
        .text();
    let lines: Vec<&str> = f.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(!lines.is_empty());
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("req_total") || l.starts_with("lat_seconds_count")),
        "{f}"
    );
    assert!(f.contains("# TYPE req_total counter") && !f.contains("# TYPE g_all gauge"));
}

#[test]
fn fifty_concurrent_scrapes_share_merges() {
    let tmp = tempfile::tempdir().unwrap();
    big_directory(tmp.path(), 16, 4_000);
    let s = serve(tmp.path(), &[]);
    let merges = |s: &Server| {
        value(
            &s.get("/metrics", &[]).text(),
            "multiproc_exporter_merges_total",
        )
        .unwrap()
    };
    let before = merges(&s);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let url = s.url("/metrics");
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let r = request("GET", &url, &[("Accept-Encoding", "gzip")]);
                assert_eq!(r.status, 200);
                r.text().len()
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap() > 1000);
    }
    // The reading scrape itself runs one more pass.
    let used = merges(&s) - before - 1.0;
    eprintln!("50 concurrent scrapes used {used} merge passes");
    assert!((1.0..=10.0).contains(&used), "{used} passes for 50 scrapes");
}

/// Writes `workers` counter files of `entries` entries each with our writer.
fn big_directory(dir: &Path, workers: usize, entries: usize) {
    for w in 0..workers {
        let mut f = multiproc_exporter::write::DbWriter::open(
            &dir.join(format!("counter_{}.db", 1000 + w)),
        )
        .unwrap();
        for i in 0..entries {
            f.set_sample(
                "big",
                "big_total",
                &[("i", &i.to_string())],
                "many series",
                1.0,
                0.0,
            )
            .unwrap();
        }
    }
}

#[test]
fn sigterm_lets_the_scrape_in_flight_finish_and_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    big_directory(tmp.path(), 48, 6_000);
    let mut s = serve(tmp.path(), &["--web.shutdown-timeout", "20s"]);
    let url = s.url("/metrics");
    let start = Instant::now();
    let scrape = std::thread::spawn(move || {
        let r = request("GET", &url, &[]);
        (r.status, r.text(), start.elapsed())
    });
    // Let the request reach the server and start its merge, then stop the server.
    std::thread::sleep(Duration::from_millis(50));
    let merging = !scrape.is_finished();
    s.signal("TERM");
    let signalled = Instant::now();
    let (status, body, took) = scrape.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(value(&body, r#"big_total{i="5999"}"#), Some(48.0));
    let exit = loop {
        if let Some(code) = s.child.try_wait().unwrap() {
            break code;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(20),
            "no exit within the deadline"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(0));
    assert!(s.log_text().contains("SIGTERM received"));
    eprintln!("scrape took {took:?}; in flight at SIGTERM: {merging}");
    assert!(
        merging,
        "the scrape finished before SIGTERM; the directory is too small to test this"
    );
}

#[test]
fn empty_directory_is_ready_with_self_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let s = serve(tmp.path(), &[]);
    let r = s.get("/metrics", &[]);
    assert_eq!(r.status, 200);
    let body = r.text();
    assert_eq!(value(&body, "multiproc_exporter_ready"), Some(1.0));
    assert_eq!(value(&body, "multiproc_exporter_series"), Some(0.0));
}

#[test]
fn missing_directory_is_waited_for() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("later");
    let s = Server::start(&["--dir", dir.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.get("/healthz", &[]).status, 200);
    let not_ready = s.get("/readyz", &[]);
    assert_eq!(not_ready.status, 503);
    assert!(not_ready.text().contains("later"));
    // Issue 8: a missing directory does not fail the scrape; the self-metrics say why.
    let m = s.get("/metrics", &[]);
    assert_eq!(m.status, 200);
    assert_eq!(value(&m.text(), "multiproc_exporter_ready"), Some(0.0));
    assert!(
        s.log_text().contains("waiting for the directory"),
        "{}",
        s.log_text()
    );
    std::fs::create_dir(&dir).unwrap();
    harness(&["case", dir.to_str().unwrap(), "test_counter_adds"]);
    s.wait_ready();
    assert_eq!(value(&s.get("/metrics", &[]).text(), "c_total"), Some(3.0));
}

#[test]
fn idle_clients_are_disconnected() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let s = serve(tmp.path(), &["--web.header-timeout", "500ms"]);
    let mut idle = std::net::TcpStream::connect(s.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let n = idle.read(&mut buf).unwrap_or(0);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "idle connection kept {:?}",
        start.elapsed()
    );
    // hyper may answer 408 before closing; either way the connection ends.
    assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).contains("408"));
    assert_eq!(s.get("/healthz", &[]).status, 200);
}

#[test]
fn help_documents_every_flag_and_its_environment_variable() {
    let out = std::process::Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--dir",
        "PROMETHEUS_MULTIPROC_DIR",
        "--demo",
        "--web.listen-address",
        "MULTIPROC_EXPORTER_WEB_LISTEN_ADDRESS",
        "--web.telemetry-path",
        "MULTIPROC_EXPORTER_WEB_TELEMETRY_PATH",
        "--web.max-connections",
        "MULTIPROC_EXPORTER_WEB_MAX_CONNECTIONS",
        "--web.header-timeout",
        "MULTIPROC_EXPORTER_WEB_HEADER_TIMEOUT",
        "--web.shutdown-timeout",
        "MULTIPROC_EXPORTER_WEB_SHUTDOWN_TIMEOUT",
        "--log.level",
        "MULTIPROC_EXPORTER_LOG_LEVEL",
        "--log.format",
        "MULTIPROC_EXPORTER_LOG_FORMAT",
        "9867",
    ] {
        assert!(
            help.contains(needle),
            "{needle} missing from serve --help:\n{help}"
        );
    }
}

#[test]
fn bad_flags_give_one_clear_message() {
    for (args, needle) in [
        (
            &["--web.listen-address", "nonsense", "--dir", "/tmp"][..],
            "--web.listen-address",
        ),
        (
            &["--web.telemetry-path", "metrics", "--dir", "/tmp"],
            "--web.telemetry-path",
        ),
        (
            &["--web.header-timeout", "soon", "--dir", "/tmp"],
            "--web.header-timeout",
        ),
        (&["--no-such-flag"], "--no-such-flag"),
        (&[], "PROMETHEUS_MULTIPROC_DIR"),
    ] {
        let out = std::process::Command::new(BIN)
            .args(args)
            .env_remove("PROMETHEUS_MULTIPROC_DIR")
            .env_remove("prometheus_multiproc_dir")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.matches("error:").count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn port_in_use_is_a_clear_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(BIN)
        .args(["--dir", "/tmp", "--web.listen-address", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen on --web.listen-address") && err.contains(&addr),
        "{err}"
    );
}

#[test]
fn demo_pool_serves_live_metrics_and_cleans_up() {
    let mut s = Server::start(&["--demo", "--demo.workers", "3"]);
    s.wait_ready();
    let mut body = String::new();
    for _ in 0..100 {
        body = s.get("/metrics", &[]).text();
        if value(&body, "demo_http_requests_in_progress").is_some()
            && body.contains("demo_http_requests_total{")
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
fn connection_cap_queues_clients_until_a_slot_frees() {
    let tmp = tempfile::tempdir().unwrap();
    let s = serve(
        tmp.path(),
        &[
            "--web.max-connections",
            "1",
            "--web.header-timeout",
            "700ms",
        ],
    );
    // Wait until the readiness probe's connection is gone, then hold the only slot.
    std::thread::sleep(Duration::from_millis(900));
    let _idle = std::net::TcpStream::connect(s.addr).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    let r = s.get("/healthz", &[]);
    let waited = start.elapsed();
    assert_eq!(r.status, 200);
    assert!(
        waited >= Duration::from_millis(300),
        "served at once ({waited:?}) despite the cap"
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

/// `env VAR=VALUE ... BIN`: [`Server::start_with`] with variables set for the server
/// (the wrapper gets the cleaned environment, the server these on top).
fn env_prefix(env: &[(&str, &str)]) -> Vec<String> {
    let mut prefix = vec!["env".to_owned()];
    prefix.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    prefix.push(BIN.to_owned());
    prefix
}

#[test]
fn test_issue_8_empty_environment_counts_as_unset() {
    let tmp = tempfile::tempdir().unwrap();
    let vars = crate::cli::every_env_var();
    let env: Vec<(&str, &str)> = vars.iter().map(|v| (v.as_str(), "")).collect();
    let prefix = env_prefix(&env);
    let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
    let s = Server::start_with(&prefix, &["serve", "--dir", tmp.path().to_str().unwrap()]);
    assert_eq!(s.get("/healthz", &[]).status, 200);
    s.wait_ready();
    assert_eq!(s.get("/metrics", &[]).status, 200);
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

#[test]
fn test_issue_8_unresolvable_listen_host_is_named() {
    let out = std::process::Command::new(BIN)
        .args([
            "--dir",
            "/tmp",
            "--web.listen-address",
            "no-such-host.invalid:9867",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(
        err.contains("--web.listen-address")
            && err.contains("no-such-host.invalid")
            && err.contains("cannot be resolved")
            && !err.contains("HOST:PORT"),
        "{err}"
    );
}
