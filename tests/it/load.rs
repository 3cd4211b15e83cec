//! Load (issue 9): concurrent scrapes in every format, with and without gzip, while the
//! demo pool's workers update their files, die every second and are compacted, the
//! files of dead workers are truncated and replaced by someone else (a live writer's
//! file is left alone: truncating it would kill the writer with SIGBUS), and idle and
//! slow clients hold connections. Zero failed scrapes, counters monotonic in every
//! scrape, `/healthz` within a second, memory bounded.

use crate::util::{Server, request, rss_anon_kb, samples};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const RUN: Duration = Duration::from_secs(15);

/// The gzip body decoded as exactly one member with nothing after it (a second member
/// is what some decoders silently drop).
fn gunzip_one_member(body: &[u8]) -> String {
    let mut cursor = std::io::Cursor::new(body);
    let mut out = String::new();
    flate2::read::GzDecoder::new(&mut cursor)
        .read_to_string(&mut out)
        .expect("valid gzip");
    assert_eq!(
        cursor.position() as usize,
        body.len(),
        "data after the first gzip member"
    );
    out
}

/// The counter-like series of a body: request counters and histogram counts.
fn counters(text: &str) -> BTreeMap<String, f64> {
    samples(text)
        .into_iter()
        .filter(|(h, _)| {
            h.starts_with("demo_http_requests_total")
                || h.starts_with("demo_http_request_duration_seconds_count")
                || h.starts_with("demo_http_request_duration_seconds_bucket")
        })
        .collect()
}

struct Scraper {
    scrapes: usize,
    latencies: Vec<Duration>,
}

fn scrape_loop(url: String, accept: &'static str, gzip: bool, stop: Arc<AtomicBool>) -> Scraper {
    let mut last: BTreeMap<String, f64> = BTreeMap::new();
    let mut out = Scraper {
        scrapes: 0,
        latencies: Vec::new(),
    };
    let mut headers = vec![("Accept", accept)];
    if gzip {
        headers.push(("Accept-Encoding", "gzip"));
    }
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        let r = request("GET", &url, &headers);
        out.latencies.push(start.elapsed());
        assert_eq!(r.status, 200, "scrape failed ({accept}, gzip {gzip})");
        let text = if gzip {
            assert_eq!(r.header("content-encoding"), Some("gzip"));
            gunzip_one_member(&r.body)
        } else {
            String::from_utf8(r.body.clone()).unwrap()
        };
        if accept.contains("openmetrics") {
            assert!(text.ends_with("# EOF\n"), "OpenMetrics body without # EOF");
        }
        let now = counters(&text);
        for (series, before) in &last {
            let after = now.get(series).copied().unwrap_or(f64::NAN);
            assert!(
                after >= *before,
                "{series} went from {before} to {after} ({accept}, gzip {gzip})"
            );
        }
        last = now;
        out.scrapes += 1;
    }
    out
}

/// Someone else's hands in the directory: every 150 ms, one file of counts of a dead
/// worker is truncated to half, or replaced by a copy of itself (a new inode under the
/// same name). Returns how many files it touched.
fn vandal(dir: std::path::PathBuf, stop: Arc<AtomicBool>) -> usize {
    let mut touched = 0;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(150));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = ["counter_", "histogram_"]
                .iter()
                .find_map(|p| name.strip_prefix(p)?.strip_suffix(".db"))
            else {
                continue;
            };
            if pid.parse::<u32>().is_err() || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let path = e.path();
            let done = if touched % 2 == 0 {
                std::fs::metadata(&path)
                    .and_then(|m| {
                        let f = std::fs::OpenOptions::new().write(true).open(&path)?;
                        f.set_len(m.len() / 2)
                    })
                    .is_ok()
            } else {
                let copy = dir.join(".vandal.tmp");
                std::fs::copy(&path, &copy).is_ok() && std::fs::rename(&copy, &path).is_ok()
            };
            touched += usize::from(done);
            break;
        }
    }
    touched
}

/// The demo pool's directory, from the sidecar's log line.
fn demo_dir(s: &Server) -> std::path::PathBuf {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = s.log_text();
        if let Some(rest) = log.split("demo pool started").nth(1)
            && let Some(dir) = rest.split("dir=").nth(1)
        {
            return dir.split_whitespace().next().unwrap().into();
        }
        assert!(Instant::now() < deadline, "no demo directory in {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn test_issue_9_load_with_churn_and_idle_and_slow_clients() {
    let mut s = Server::start(&[
        "--demo",
        "--demo.workers",
        "4",
        "--demo.worker-lifetime",
        "1s",
        "--lifecycle.interval",
        "200ms",
        "--web.header-timeout",
        "2s",
    ]);
    s.wait_ready();
    let stop = Arc::new(AtomicBool::new(false));
    let url = s.url("/metrics");
    let kinds: [(&'static str, bool); 4] = [
        ("text/plain;version=0.0.4", false),
        ("text/plain;version=0.0.4", true),
        ("application/openmetrics-text;version=1.0.0", false),
        ("application/openmetrics-text;version=1.0.0", true),
    ];
    let scrapers: Vec<_> = kinds
        .iter()
        .map(|&(accept, gzip)| {
            let (url, stop) = (url.clone(), stop.clone());
            std::thread::spawn(move || scrape_loop(url, accept, gzip, stop))
        })
        .collect();
    let vandal = {
        let (dir, stop) = (demo_dir(&s), stop.clone());
        std::thread::spawn(move || vandal(dir, stop))
    };
    // Idle clients: connected, never sending a byte (dropped at the header timeout and
    // reconnected).
    let addr = s.addr;
    let idle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut held: Vec<std::net::TcpStream> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                while held.len() < 100 {
                    match std::net::TcpStream::connect(addr) {
                        Ok(c) => held.push(c),
                        Err(_) => break,
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
                held.clear();
            }
        })
    };
    // A slow client: one byte of a request head every 100 ms.
    let slow = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let head = b"GET /metrics HTTP/1.1\r\nHost: x\r\n";
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut c) = std::net::TcpStream::connect(addr) else {
                    continue;
                };
                for b in head {
                    if stop.load(Ordering::Relaxed) || c.write_all(&[*b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
    };
    let began = Instant::now();
    let mut health = Vec::new();
    let mut rss_max = 0;
    while began.elapsed() < RUN {
        let start = Instant::now();
        assert_eq!(s.get("/healthz", &[]).status, 200);
        health.push(start.elapsed());
        rss_max = rss_max.max(rss_anon_kb(s.child.id()));
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let mut scrapes = 0;
    let mut latencies = Vec::new();
    for t in scrapers {
        let r = t.join().expect("a scraper failed");
        scrapes += r.scrapes;
        latencies.extend(r.latencies);
    }
    idle.join().unwrap();
    slow.join().unwrap();
    let touched = vandal.join().unwrap();
    latencies.sort();
    health.sort();
    let p = |v: &[Duration], q: f64| v[((v.len() - 1) as f64 * q) as usize];
    let body = s.get("/metrics", &[]).text();
    let absorbed = crate::util::value(&body, "multiproc_exporter_files_absorbed_total").unwrap();
    eprintln!(
        "load: {scrapes} scrapes in {RUN:?}, p50 {:?} p99 {:?}; /healthz max {:?}; \
         RssAnon max {rss_max} kB; {absorbed} files absorbed; {touched} files of dead \
         workers truncated or replaced",
        p(&latencies, 0.5),
        p(&latencies, 0.99),
        health.last().unwrap()
    );
    assert!(scrapes >= 40, "only {scrapes} scrapes");
    assert!(absorbed > 0.0, "no churn: nothing compacted");
    assert!(
        touched > 0,
        "no dead worker's file was truncated or replaced"
    );
    assert!(
        *health.last().unwrap() < Duration::from_secs(1),
        "/healthz took {:?}",
        health.last().unwrap()
    );
    assert!(rss_max < 64 * 1024, "RssAnon {rss_max} kB");
    assert!(s.child.try_wait().unwrap().is_none());
}
