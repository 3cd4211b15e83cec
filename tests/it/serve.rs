//! The HTTP sidecar: negotiation as real scrapers ask, endpoints, single flight,
//! readiness, graceful shutdown and slow clients.

use crate::util::{BIN, Server, app_lines, env_prefix, harness, render, request, value};
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
    assert!(s.wait_log("SIGTERM received"));
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
    assert!(s.wait_log("waiting for the directory"), "{}", s.log_text());
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

/// Issue 9 replaces the old contract (an idle client holding the only slot delayed
/// `/healthz`): idle and slow clients hold no slot, health checks never wait.
#[test]
fn test_issue_9_health_checks_never_wait_behind_idle_connections() {
    let tmp = app_dir();
    let s = serve(tmp.path(), &["--web.max-connections", "1"]);
    let idle: Vec<std::net::TcpStream> = (0..500)
        .map(|_| std::net::TcpStream::connect(s.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for path in ["/healthz", "/readyz", "/metrics"] {
        let start = Instant::now();
        let r = s.get(path, &[]);
        let waited = start.elapsed();
        assert_eq!(r.status, 200, "{path}");
        assert!(
            waited < Duration::from_secs(1),
            "{path} waited {waited:?} behind {} idle sockets",
            idle.len()
        );
    }
    drop(idle);
}

/// A client that asked for `/metrics` and never read used to keep its connection and the
/// rendered body (the unsent part in the socket buffers) for as long as it stayed
/// connected. Now the response must be written within `--web.write-timeout`: past it the
/// connection is reset and counted, and its scrape slot is free again.
#[test]
fn test_issue_9_a_client_that_never_reads_is_reset_after_the_write_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    crate::util::wide_directory(tmp.path(), 20_000);
    let timeout = Duration::from_secs(2);
    let s = serve(
        tmp.path(),
        &[
            "--liveness",
            "none",
            "--web.max-connections",
            "2",
            "--web.write-timeout",
            "2s",
        ],
    );
    let size = s.get("/metrics", &[]).body.len();
    assert!(
        size > 6 << 20,
        "a body of {size} bytes fits in socket buffers"
    );
    // Whole: the last series is there (the self-metrics change the size a little).
    let whole = |r: &crate::util::Http| {
        r.status == 200 && r.body.len() > size - 4096 && r.text().contains("i=\"019999\"")
    };
    let first = crate::util::stalled_get(s.addr, "/metrics");
    let first_sent = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    // A normal scrape beside it takes the other slot and is unaffected; so is /healthz.
    let start = Instant::now();
    let r = s.get("/metrics", &[]);
    let concurrent = start.elapsed();
    assert!(whole(&r), "{} with {} bytes", r.status, r.body.len());
    let start = Instant::now();
    assert_eq!(s.get("/healthz", &[]).status, 200);
    let health = start.elapsed();
    assert!(health < Duration::from_secs(1), "/healthz took {health:?}");
    // Both slots held by clients that do not read: the next scrape gets the first one's
    // slot once its write deadline has passed.
    let second = crate::util::stalled_get(s.addr, "/metrics");
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let r = s.get("/metrics", &[]);
    let waited = start.elapsed();
    let freed = first_sent.elapsed();
    assert!(whole(&r), "{} with {} bytes", r.status, r.body.len());
    assert!(
        freed < timeout + Duration::from_secs(3),
        "the slot was freed {freed:?} after the request"
    );
    // The first client reads at last: its response stops short, the connection was reset.
    let got = crate::util::drain(&first);
    assert!(got < size, "the stalled client still got all {got} bytes");
    let body = s.get("/metrics", &[]).text();
    let timeouts = value(&body, "multiproc_exporter_write_timeouts_total").unwrap_or(0.0);
    assert!(timeouts >= 1.0, "{timeouts} write timeouts");
    let peer = format!("peer={}", first.local_addr().unwrap());
    assert!(
        s.wait_log(&peer) && s.wait_log("--web.write-timeout"),
        "{}",
        s.log_text()
    );
    eprintln!(
        "body {size} bytes; concurrent scrape {concurrent:?}, /healthz {health:?}; \
         with both slots stalled the next scrape waited {waited:?} (slot freed {freed:?} \
         after the stalled request); the stalled client got {got} bytes"
    );
    drop(second);
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

/// `X-Prometheus-Scrape-Timeout-Seconds: 1e20` used to panic the handler
/// (`Duration::from_secs_f64`): no response, a backtrace in the log. Every odd value of
/// the header is now a normal scrape without a budget.
#[test]
fn test_issue_9_odd_scrape_timeout_headers_are_normal_scrapes() {
    let dir = app_dir();
    let s = serve(dir.path(), &[]);
    for v in [
        "1e20",
        "-1",
        "NaN",
        "inf",
        "",
        "0",
        "1e-300",
        "9".repeat(400).as_str(),
    ] {
        let r = s.get("/metrics", &[("X-Prometheus-Scrape-Timeout-Seconds", v)]);
        assert_eq!(r.status, 200, "{v:?}");
        assert!(r.text().contains("multiproc_exporter_ready 1"), "{v:?}");
    }
    assert!(!s.log_text().contains("panicked"), "{}", s.log_text());
}

/// A body above the two-thread threshold, compressed as one member in two halves
/// (`serve::gzip`), reaches every client whole: curl's own decoder (which silently stops
/// after a first member: two members would lose the second half), `gzip -dc`, and
/// Python's zlib reading exactly one member with nothing after it. The values are static,
/// so every decoding has the app samples of the plain body.
#[test]
fn test_issue_11_large_gzip_body_is_one_member_for_curl_gzip_and_python() {
    use multiproc_exporter::serve::gzip::TWO_THREADS_FROM;
    use std::process::Command;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    std::fs::create_dir(&dir).unwrap();
    big_directory(&dir, 2, 60_000);
    let s = serve(&dir, &["--compaction", "off", "--liveness", "none"]);
    let url = s.url("/metrics");
    let curl = |args: &[&str]| {
        let out = crate::util::run_ok(Command::new("curl").args(["-sSf"]).args(args), "curl");
        String::from_utf8(out.stdout).expect("UTF-8 body")
    };
    let plain = curl(&[&url]);
    assert!(
        plain.len() >= TWO_THREADS_FROM,
        "{} bytes: too small for two threads",
        plain.len()
    );
    let want = app_lines(&plain);
    assert_eq!(want.len(), 2 + 60_000);

    let by_curl = curl(&["--compressed", &url]);
    assert_eq!(app_lines(&by_curl), want, "curl --compressed");

    let raw = tmp.path().join("body.gz");
    let headers = curl(&[
        "-H",
        "Accept-Encoding: gzip",
        "-D",
        "-",
        "-o",
        raw.to_str().unwrap(),
        &url,
    ]);
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-encoding: gzip"),
        "{headers}"
    );
    let by_gzip = crate::util::run_ok(Command::new("gzip").arg("-dc").arg(&raw), "gzip -dc");
    let by_gzip = String::from_utf8(by_gzip.stdout).unwrap();
    assert_eq!(app_lines(&by_gzip), want, "gzip -dc");

    let script = "import sys, zlib\n\
        d = zlib.decompressobj(wbits=31)\n\
        out = d.decompress(open(sys.argv[1], 'rb').read())\n\
        assert d.eof and not d.unused_data, 'not exactly one gzip member'\n\
        sys.stdout.buffer.write(out)\n";
    let by_python = crate::util::run_ok(
        Command::new(crate::util::python())
            .args(["-c", script])
            .arg(&raw),
        "decode with Python's zlib",
    );
    let by_python = String::from_utf8(by_python.stdout).unwrap();
    // The same bytes decode to the same text everywhere, down to the self-metrics.
    assert_eq!(by_python, by_gzip, "Python vs gzip -dc");

    // flate2's single- and multi-member decoders agree on the raw bytes too.
    let bytes = std::fs::read(&raw).unwrap();
    let (mut one, mut multi) = (String::new(), String::new());
    use std::io::Read;
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut one)
        .unwrap();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_string(&mut multi)
        .unwrap();
    assert_eq!(one, multi, "more than one member");
    assert_eq!(one, by_gzip);
}
