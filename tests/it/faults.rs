//! Faults a hostile or broken process can cause in the directory while the sidecar serves
//! it (issue 9): each ends with the sidecar serving and nothing it already served lost.

use crate::util::{Server, rss_anon_kb, samples};
use multiproc_exporter::write::DbWriter;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SERIES: usize = 4000;

/// A counter file of `SERIES` series, each at 1, big enough to span many pages.
fn big_counter(dir: &Path) -> Vec<u8> {
    let path = dir.join("counter_4242.db");
    let mut w = DbWriter::open(&path).unwrap();
    for i in 0..SERIES {
        let id = format!("{i:05}");
        w.set_sample("c", "c_total", &[("id", &id)], "h", 1.0, 0.0)
            .unwrap();
    }
    drop(w);
    std::fs::read(&path).unwrap()
}

fn counter_sum(body: &str) -> f64 {
    samples(body)
        .into_iter()
        .filter(|(h, _)| h.starts_with("c_total{"))
        .map(|(_, v)| v)
        .sum()
}

/// Truncating a file the sidecar has mapped, over and over while it is scraped, used to
/// end the process with SIGBUS within seconds; now the fault is recovered, the file keeps
/// its last good values and every scrape is whole.
#[test]
fn test_issue_9_truncating_a_mapped_file_never_kills_the_sidecar() {
    let tmp = tempfile::tempdir().unwrap();
    let original = big_counter(tmp.path());
    let path = tmp.path().join("counter_4242.db");
    let mut s = Server::start(&["--dir", tmp.path().to_str().unwrap(), "--liveness", "none"]);
    s.wait_ready();
    // Two passes: the second reads values through the mapping.
    for _ in 0..2 {
        assert_eq!(counter_sum(&s.get("/metrics", &[]).text()), SERIES as f64);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let truncator = {
        let stop = stop.clone();
        let path = path.clone();
        std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            let mut rounds = 0u32;
            while !stop.load(Ordering::Relaxed) {
                // Page-aligned (a load past it faults) and inside a page (the rest of
                // the page reads as zeros, without a fault).
                f.set_len(if rounds.is_multiple_of(2) { 4096 } else { 4196 })
                    .unwrap();
                std::thread::sleep(Duration::from_micros(300));
                f.write_all_at(&original, 0).unwrap();
                std::thread::sleep(Duration::from_micros(300));
                rounds += 1;
            }
            rounds
        })
    };
    let began = Instant::now();
    let mut scrapes = 0;
    while began.elapsed() < Duration::from_secs(6) {
        let r = s.get("/metrics", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            counter_sum(&r.text()),
            SERIES as f64,
            "a scrape lost counts of the truncated file"
        );
        scrapes += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = truncator.join().unwrap();
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "the sidecar died: {}",
        s.log_text()
    );
    let body = s.get("/metrics", &[]).text();
    let shrunk = crate::util::value(
        &body,
        "multiproc_exporter_file_errors_total{reason=\"shrunk\"}",
    )
    .unwrap_or(0.0);
    eprintln!("{scrapes} scrapes during {rounds} truncations; {shrunk} times seen shrunk");
    assert!(shrunk > 0.0, "the truncations went unseen");
    assert!(s.wait_log("reason=\"shrunk\""), "{}", s.log_text());
}

/// A header that claims 64 MiB over a file of holes used to cost ~8x that in memory (the
/// whole claim read, every zero "entry" reported); now the read stops at the first hole.
#[test]
fn test_issue_9_a_header_over_holes_costs_no_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("counter_7.db");
    let mut w = DbWriter::open(&path).unwrap();
    w.set_sample("c", "c_total", &[("id", "real")], "h", 5.0, 0.0)
        .unwrap();
    drop(w);
    let claim: u64 = 64 << 20;
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(claim).unwrap();
    f.write_all_at(&(claim as i32).to_ne_bytes(), 0).unwrap();
    drop(f);
    let s = Server::start(&["--dir", tmp.path().to_str().unwrap()]);
    s.wait_ready();
    let body = s.get("/metrics", &[]).text();
    assert_eq!(crate::util::value(&body, "c_total{id=\"real\"}"), Some(5.0));
    assert_eq!(
        crate::util::value(&body, "multiproc_exporter_bad_files{reason=\"sparse\"}"),
        Some(1.0),
        "{body}"
    );
    let rss = rss_anon_kb(s.child.id());
    assert!(rss < 40 * 1024, "RssAnon {rss} kB for a file of holes");
}

/// A file name with a newline used to forge a line of the text log; names are escaped.
#[test]
fn test_issue_9_a_file_name_cannot_forge_a_log_line() {
    let tmp = tempfile::tempdir().unwrap();
    let forged = "counter_6\n2030-01-01T00:00:00.000000Z ERROR forged\x1b[2J.db";
    std::fs::write(tmp.path().join(forged), b"garbage!garbage!").unwrap();
    let out = std::process::Command::new(crate::util::BIN)
        .args(["render", "--dir", tmp.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.lines().any(|l| l.starts_with("2030-01-01")),
        "forged line:\n{stderr}"
    );
    assert!(!stderr.contains('\x1b'), "raw escape in:\n{stderr}");
    assert!(stderr.contains("counter_6\\n2030-01-01"), "{stderr}");
}

/// `--dir` swapped for a symbolic link while serving used to be followed: the sidecar
/// compacted the dead writers' files of the link's target and created its lock there.
#[test]
fn test_issue_9_a_dir_swapped_for_a_symlink_is_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mp");
    let victim = tmp.path().join("victim");
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(&victim).unwrap();
    // A dead writer's counter in the target (no process has this pid).
    let mut w = DbWriter::open(&victim.join("counter_4194303.db")).unwrap();
    w.set_sample("v", "v_total", &[], "h", 1.0, 0.0).unwrap();
    drop(w);
    let listing = crate::pool::all_names;
    let before = listing(&victim);
    let s = Server::start(&[
        "--dir",
        dir.to_str().unwrap(),
        "--liveness",
        "proc",
        "--lifecycle.interval",
        "100ms",
    ]);
    s.wait_ready();
    std::fs::rename(&dir, tmp.path().join("mp.old")).unwrap();
    std::os::unix::fs::symlink(&victim, &dir).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        listing(&victim),
        before,
        "the sidecar acted in the link's target"
    );
    let m = s.get("/metrics", &[]);
    assert_eq!(m.status, 200);
    let body = m.text();
    assert!(
        !body.contains("v_total"),
        "served the link's target:\n{body}"
    );
    assert_eq!(
        crate::util::value(&body, "multiproc_exporter_ready"),
        Some(0.0)
    );
    let why = s.get("/readyz", &[]).text();
    assert!(why.contains("symbolic link"), "{why}");
}

/// The soft limit on open files (1,024 under systemd) used to be kept, so a few hundred
/// workers' files exhausted it; it is raised to the hard limit at start.
#[test]
fn test_issue_9_the_soft_fd_limit_is_raised_to_the_hard_one() {
    let tmp = tempfile::tempdir().unwrap();
    let hard = std::process::Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .unwrap();
    let hard = String::from_utf8_lossy(&hard.stdout).trim().to_owned();
    if hard == "unlimited" {
        eprintln!("hard limit unlimited: nothing to check");
        return;
    }
    let soft = "256";
    let nofile = format!("--nofile={soft}:{hard}");
    let s = Server::start_with(
        &["prlimit", &nofile, crate::util::BIN],
        &["--dir", tmp.path().to_str().unwrap()],
    );
    s.wait_ready();
    let body = s.get("/metrics", &[]).text();
    assert_eq!(
        crate::util::value(&body, "multiproc_exporter_process_max_fds"),
        Some(hard.parse::<f64>().unwrap())
    );
}

/// One descriptor and one mapping were kept per file: 1,500 files under a limit of 256
/// made files "unreadable" and then failed every scrape. Files beyond the descriptor
/// budget are now opened, read and closed each pass.
#[test]
fn test_issue_9_more_files_than_descriptors_are_all_served() {
    const FILES: usize = 1500;
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..FILES {
        let mut w =
            DbWriter::open(&tmp.path().join(format!("counter_{}.db", 100_000 + i))).unwrap();
        w.set_sample("c", "c_total", &[("f", &i.to_string())], "h", 1.0, 0.0)
            .unwrap();
    }
    let s = Server::start_with(
        &["prlimit", "--nofile=256:256", crate::util::BIN],
        &["--dir", tmp.path().to_str().unwrap(), "--liveness", "none"],
    );
    s.wait_ready();
    for _ in 0..3 {
        let r = s.get("/metrics", &[]);
        assert_eq!(r.status, 200);
        let body = r.text();
        assert_eq!(counter_sum(&body), FILES as f64, "files went unread");
        assert_eq!(
            crate::util::value(&body, "multiproc_exporter_bad_files{reason=\"unreadable\"}"),
            Some(0.0)
        );
    }
    assert_eq!(s.get("/healthz", &[]).status, 200);
}

/// Open connections are bounded by half the descriptor limit. A new connection beyond it
/// used to be closed at once, so a flood of idle sockets locked Prometheus and the
/// kubelet out until the header timeout. Now it takes the place of the connection idle
/// longest (counted), and the newest idle ones stay open.
#[test]
fn test_issue_9_idle_connections_make_room_for_new_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        &["prlimit", "--nofile=64:64", crate::util::BIN],
        &[
            "--dir",
            tmp.path().to_str().unwrap(),
            "--web.header-timeout",
            "60s",
        ],
    );
    s.wait_ready();
    // The cap is 32; open more idle connections than that, none of which sends a byte.
    let idle: Vec<std::net::TcpStream> = (0..40)
        .map(|_| std::net::TcpStream::connect(s.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut took = Vec::new();
    for path in ["/healthz", "/metrics"] {
        let start = Instant::now();
        let r = crate::util::try_request("GET", &s.url(path), &[])
            .unwrap_or_else(|e| panic!("{path} behind 40 idle connections: {e}"));
        took.push(start.elapsed());
        assert_eq!(r.status, 200, "{path}");
        assert!(
            took[took.len() - 1] < Duration::from_secs(1),
            "{path}: {took:?}"
        );
    }
    let body = s.get("/metrics", &[]).text();
    let counter = |name: &str| crate::util::value(&body, name).unwrap();
    let evicted = counter("multiproc_exporter_connections_evicted_total");
    // 8 for the flood, one for /healthz (whose slot /metrics then found free).
    assert!(evicted >= 9.0, "{evicted} evicted: {body}");
    assert_eq!(
        counter("multiproc_exporter_connections_rejected_total"),
        0.0
    );
    // The oldest were closed, the newest are still open.
    use std::io::Read;
    let mut buf = [0u8; 16];
    idle[0]
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert_eq!(
        (&idle[0]).read(&mut buf).ok(),
        Some(0),
        "the oldest is open"
    );
    idle[39]
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let newest = (&idle[39]).read(&mut buf);
    assert!(newest.is_err(), "the newest was closed: {newest:?}");
    eprintln!(
        "behind 40 idle connections (cap 32): /healthz {:?}, /metrics {:?}; {evicted} evicted",
        took[0], took[1]
    );
}

/// Only when no connection is idle (every one has a request in hand) is a newcomer
/// beyond the cap closed at once, and counted.
#[test]
fn test_issue_9_connections_beyond_the_cap_are_closed_and_counted() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    crate::util::wide_directory(tmp.path(), 20_000);
    let s = Server::start_with(
        &["prlimit", "--nofile=64:64", crate::util::BIN],
        &[
            "--dir",
            tmp.path().to_str().unwrap(),
            "--liveness",
            "none",
            "--web.max-connections",
            "1",
        ],
    );
    s.wait_ready();
    // One scrape whose client does not read holds the only scrape slot; 31 more wait
    // for it with their requests read: all 32 connection slots busy.
    let mut busy = vec![crate::util::stalled_get(s.addr, "/metrics")];
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..31 {
        busy.push(crate::util::stalled_get(s.addr, "/metrics"));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut newcomer = std::net::TcpStream::connect(s.addr).unwrap();
    newcomer
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = newcomer.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = [0u8; 64];
    let n = newcomer.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf[..n]));
    // Gone clients free their slots.
    drop(busy);
    std::thread::sleep(Duration::from_millis(500));
    let body = s.get("/metrics", &[]).text();
    let counter = |name: &str| crate::util::value(&body, name).unwrap();
    assert!(
        counter("multiproc_exporter_connections_rejected_total") >= 1.0,
        "{body}"
    );
    assert_eq!(counter("multiproc_exporter_connections_evicted_total"), 0.0);
    assert_eq!(s.get("/healthz", &[]).status, 200);
}

/// A counter file truncated by someone else, whose writer then dies: its counts stay
/// through the shrink (last good values) and through compaction (absorbed from what the
/// sidecar last read, since the file no longer holds them).
#[test]
fn test_issue_9_a_truncated_file_keeps_its_counts_through_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let mut writer = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let path = tmp.path().join(format!("counter_{}.db", writer.id()));
    let mut w = DbWriter::open(&path).unwrap();
    for i in 0..50 {
        w.set_sample("c", "c_total", &[("id", &i.to_string())], "h", 2.0, 0.0)
            .unwrap();
    }
    drop(w);
    let s = Server::compacting(tmp.path());
    s.wait_ready();
    assert_eq!(counter_sum(&s.get("/metrics", &[]).text()), 100.0);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    assert_eq!(
        counter_sum(&s.get("/metrics", &[]).text()),
        100.0,
        "the shrunk file lost its counts"
    );
    writer.kill().unwrap();
    writer.wait().unwrap();
    // The file is renamed out of the way before the archive is written: wait for both.
    let archive = tmp.path().join("counter_archive.db");
    let deadline = Instant::now() + Duration::from_secs(10);
    while (path.exists() || !archive.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!path.exists(), "the dead writer's file was not compacted");
    assert!(archive.exists());
    assert_eq!(
        counter_sum(&s.get("/metrics", &[]).text()),
        100.0,
        "compaction lost the counts the file no longer held"
    );
}
