//! What a merged series costs the sidecar's memory, at the scale of issue 9.

use crate::util::{Server, rss_anon_kb};
use multiproc_exporter::format::{self, HEADER_LEN, VALUE_LEN, key};
use std::path::Path;
use std::time::{Duration, Instant};

const SERIES: usize = 1_000_000;

/// One counter file of `n` distinct series, `c_total{id="000000".., method, route}`.
///
/// A resource test needs the file's shape, not a Python writer (prometheus_client takes
/// about a minute for a million entries): the entries are laid out by the crate's own
/// encoder (`format::encode_entry`, what `DbWriter` and the archives use) and the key
/// texts by its `key::encode`, spelled once per method and then copied with the digits
/// of the id replaced, so a debug-built test writes the file in a second.
fn counter_file(path: &Path, n: usize) {
    let methods = ["GET", "POST", "PUT", "DELETE"];
    let templates: Vec<(Vec<u8>, usize)> = methods
        .iter()
        .map(|m| {
            let labels = [("id", "000000"), ("method", m), ("route", "/api/v1/items")];
            let text = key::encode("c", "c_total", &labels, "Requests handled.");
            let at = text.find("000000").expect("the id in the key");
            (text.into_bytes(), at)
        })
        .collect();
    let mut bytes = vec![0u8; HEADER_LEN];
    bytes.reserve(n * format::entry_len(templates[3].0.len(), VALUE_LEN));
    let mut text = Vec::new();
    for i in 0..n {
        let (template, at) = &templates[i % methods.len()];
        text.clear();
        text.extend_from_slice(template);
        text[*at..*at + 6].copy_from_slice(format!("{i:06}").as_bytes());
        format::encode_entry(&mut bytes, &text, (i % 1000) as f64, 0.0);
    }
    let used = i32::try_from(bytes.len()).unwrap();
    format::set_used(&mut bytes, used);
    std::fs::write(path, &bytes).unwrap();
}

/// `VmHWM` (peak resident set, file-backed pages included) of `pid`, in kB.
fn vm_hwm_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The sidecar's `RssAnon` in steady state, once its directory is read and it has served
/// a few scrapes; the largest `RssAnon` sampled (every 10 ms) until it was ready and
/// while it served them.
struct Footprint {
    steady_kb: u64,
    peak_ready_kb: u64,
    peak_kb: u64,
    hwm_kb: u64,
    ready_after: Duration,
    scrape: Duration,
}

fn footprint(dir: &Path, scrapes: usize, check: impl Fn(&str)) -> Footprint {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let s = Server::start(&["--dir", dir.to_str().unwrap(), "--liveness", "none"]);
    let pid = s.child.id();
    let peak = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_anon_kb(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let began = Instant::now();
    while s.get("/readyz", &[]).status != 200 {
        assert!(
            began.elapsed() < Duration::from_secs(180),
            "not ready: {}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ready_after = began.elapsed();
    let peak_ready_kb = peak.load(Ordering::Relaxed).max(rss_anon_kb(pid));
    let mut scrape = Duration::ZERO;
    for i in 0..scrapes {
        let start = Instant::now();
        let r = s.get("/metrics", &[]);
        scrape = start.elapsed();
        assert_eq!(r.status, 200);
        if i + 1 == scrapes {
            check(std::str::from_utf8(&r.body).unwrap());
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let steady_kb = rss_anon_kb(pid);
    Footprint {
        steady_kb,
        peak_ready_kb,
        peak_kb: peak.load(Ordering::Relaxed).max(steady_kb),
        hwm_kb: vm_hwm_kb(pid),
        ready_after,
        scrape,
    }
}

/// A million distinct series in one file used to cost ~1,150 bytes each in steady state
/// (issue 9 saw 700-800): every key kept twice as bytes, its labels as seven strings, a
/// sample template per series with its own rendered prefix, and a copy of every
/// template per pass. Now a key's own bytes are kept once, its labels spelled once
/// into a shared buffer, and a pass costs a value per series; the rendered body the
/// sidecar keeps for the scrapes of a pass (~63 bytes per series here) is counted too.
#[test]
fn test_issue_9_a_million_entries_cost_at_most_400_bytes_each() {
    let empty = tempfile::tempdir().unwrap();
    let base = footprint(empty.path(), 3, |_| {});
    let tmp = tempfile::tempdir().unwrap();
    counter_file(&tmp.path().join("counter_1000.db"), SERIES);
    let full = footprint(tmp.path(), 3, |body| {
        let some = r#"c_total{id="000041",method="POST",route="/api/v1/items"} 41.0"#;
        let last = r#"c_total{id="999999",method="DELETE",route="/api/v1/items"} 999.0"#;
        let (mut lines, mut found) = (0, 0);
        for l in body.lines().filter(|l| l.starts_with("c_total{")) {
            lines += 1;
            found += usize::from(l == some || l == last);
        }
        assert_eq!((lines, found), (SERIES, 2));
    });
    let per_entry = |kb: u64| kb.saturating_sub(base.steady_kb) as f64 * 1024.0 / SERIES as f64;
    eprintln!(
        "issue 9, {SERIES} series: RssAnon {} kB in steady state, {:.0} bytes per entry over \
         the {} kB of an empty directory; peak RssAnon {} kB until ready ({:.0} bytes per \
         entry), {} kB while scraped ({:.0}); VmHWM {} kB (the mapped file included); \
         ready after {:?}, last scrape {:?}",
        full.steady_kb,
        per_entry(full.steady_kb),
        base.steady_kb,
        full.peak_ready_kb,
        per_entry(full.peak_ready_kb),
        full.peak_kb,
        per_entry(full.peak_kb),
        full.hwm_kb,
        full.ready_after,
        full.scrape
    );
    assert!(
        per_entry(full.steady_kb) <= 400.0,
        "{:.0} bytes per entry",
        per_entry(full.steady_kb)
    );
}

/// Threads of `pid` whose names start with `prefix` (tokio's workers and blocking threads
/// share theirs).
///
/// A thread started from a tokio thread (the scrape's helper of `parallel::join`, which
/// the gzip of a large body uses) carries its parent's name until it first runs and names
/// itself, and lives a few milliseconds: only threads named so in two looks 50 ms apart
/// are counted.
fn threads_named(pid: u32, prefix: &str) -> usize {
    let named = || -> std::collections::BTreeSet<std::ffi::OsString> {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks
                    .filter_map(|t| {
                        let t = t.ok()?;
                        let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
                        comm.starts_with(prefix).then(|| t.file_name())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = named();
    std::thread::sleep(Duration::from_millis(50));
    named().intersection(&before).count()
}

/// `RssAnon` grew over hundreds of scrapes (issue 11: 64 -> 90 MB at L) because passes
/// and renders ran on whichever of tokio's blocking threads was free, and each thread's
/// glibc arena kept its own high-water mark. They run on one thread of their own now
/// (`scrape-worker`): however many scrapes of different bodies arrive at once, there is
/// that one thread, and tokio has its two workers and at most one blocking thread (the
/// lifecycle rounds, one at a time). (The flat `RssAnon` itself is a benchmark row:
/// `benches/targets.py --row memory`, docs/benchmarks.md.)
#[test]
fn test_issue_11_passes_and_renders_share_one_thread() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let d = tempfile::tempdir().unwrap();
    crate::util::wide_directory(d.path(), 5_000);
    let s = Arc::new(Server::start(&[
        "--dir",
        d.path().to_str().unwrap(),
        "--liveness",
        "none",
    ]));
    s.wait_ready();
    let pid = s.child.id();
    let (most, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let sampler = {
        let (most, stop) = (most.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                most.fetch_max(threads_named(pid, "tokio-"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let bodies: [(&str, &[(&str, &str)]); 4] = [
        ("/metrics", &[]),
        ("/metrics", &[("accept-encoding", "gzip")]),
        ("/metrics", &[("accept", "application/openmetrics-text")]),
        ("/metrics?name[]=wide_total", &[]),
    ];
    for _ in 0..5 {
        let clients: Vec<_> = (0..8)
            .map(|i| {
                let (s, (path, headers)) = (s.clone(), bodies[i % bodies.len()]);
                std::thread::spawn(move || assert_eq!(s.get(path, headers).status, 200))
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let most = most.load(Ordering::Relaxed);
    assert!((2..=3).contains(&most), "{most} tokio threads at once");
    assert_eq!(threads_named(pid, "scrape-worker"), 1);
}
