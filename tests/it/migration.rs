//! docs/migration.md tried as a new user would (issue 10): its files are read from the
//! page, a real Gunicorn pool serves the app's own multiprocess `/metrics`, the sidecar
//! runs beside it with the page's command line, and serves the same samples; then the
//! shim replaces the in-app endpoint and the sidecar compacts.

use crate::util::{Reaped, Server, free_port, request, samples, try_request};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GUIDE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/migration.md");

/// The page's fenced blocks: `(info string, body)`.
fn blocks(page: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        out.push((info.to_owned(), body.join("\n") + "\n"));
    }
    out
}

/// Writes the page's `file=` blocks under `root`; returns the sidecar command lines.
fn follow(root: &Path) -> Vec<Vec<String>> {
    let page = std::fs::read_to_string(GUIDE).unwrap();
    let mut commands = Vec::new();
    for (info, body) in blocks(&page) {
        if let Some(file) = info.strip_prefix("python file=") {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        } else if info == "sh" {
            let words: Vec<String> = body.split_whitespace().map(str::to_owned).collect();
            assert_eq!(words[0], "multiproc-exporter", "{body}");
            commands.push(words[1..].to_vec());
        }
    }
    assert_eq!(commands.len(), 2, "the page has two sidecar command lines");
    commands
}

/// A command line of the page for the test: the directory filled in, and the listen
/// address left to the test harness (a port chosen at run time).
fn sidecar(words: &[String], dir: &Path) -> Server {
    let mut args: Vec<String> = Vec::new();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            "--web.listen-address" => {
                it.next();
            }
            "\"$PROMETHEUS_MULTIPROC_DIR\"" => args.push(dir.to_str().unwrap().to_owned()),
            _ => args.push(w.clone()),
        }
    }
    let s = Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    s.wait_ready();
    s
}

fn gunicorn(app: &Path, dir: &Path, port: u16) -> Reaped {
    let pool = crate::util::gunicorn(dir)
        .args([
            "-c",
            "gunicorn.conf.py",
            "--workers",
            "3",
            "--max-requests",
            "15",
        ])
        .args(["--bind", &format!("127.0.0.1:{port}"), "app:app"])
        .current_dir(app)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pool = Reaped(pool);
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://127.0.0.1:{port}/warmup");
    while !try_request("GET", &url, &[]).is_ok_and(|r| r.status == 200) {
        assert!(Instant::now() < deadline, "the pool did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    pool
}

/// Requests to two routes; Gunicorn recycles workers as they go (`--max-requests`).
fn traffic(port: u16, n: usize) {
    for i in 0..n {
        let route = if i % 3 == 0 { "/b" } else { "/a" };
        let r = request("GET", &format!("http://127.0.0.1:{port}{route}"), &[]);
        assert_eq!(r.status, 200);
    }
}

/// The application's samples of an exposition (the sidecar's own left out).
fn app_samples(text: &str) -> BTreeMap<String, f64> {
    samples(text)
        .into_iter()
        .filter(|(h, _)| !h.starts_with("multiproc_exporter_"))
        .collect()
}

fn stop(mut pool: Reaped) {
    Command::new("kill")
        .args(["-TERM", &pool.0.id().to_string()])
        .status()
        .unwrap();
    pool.0.wait().unwrap();
}

#[test]
fn test_issue_10_the_migration_guide_ends_with_the_same_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let root: PathBuf = tmp.path().join("app");
    let dir = tmp.path().join("mp");
    std::fs::create_dir(&dir).unwrap();
    let commands = follow(&root);
    // Where you start: the app's own endpoint, workers recycling under load.
    let port = free_port();
    let before = gunicorn(&root.join("before"), &dir, port);
    traffic(port, 90);
    // Step 1: the sidecar beside it, compaction off; the same samples, value for value.
    let s = sidecar(&commands[0], &dir);
    let own = request("GET", &format!("http://127.0.0.1:{port}/metrics"), &[]).text();
    let ours = s.get("/metrics", &[]).text();
    let (own, ours) = (app_samples(&own), app_samples(&ours));
    assert!(
        own.contains_key(r#"http_requests_total{method="GET",route="/a",status="200"}"#),
        "{own:?}"
    );
    assert_eq!(ours, own, "the sidecar differs from the app's own /metrics");
    assert!(s.wait_log("compaction=false"), "{}", s.log_text());
    drop(s);
    // Steps 3 and 4: the shim instead of mark_process_dead, no in-app endpoint, and the
    // sidecar with compaction on.
    stop(before);
    let port = free_port();
    let _after = gunicorn(&root.join("after"), &dir, port);
    let s = sidecar(&commands[1], &dir);
    traffic(port, 60);
    assert_eq!(
        request("GET", &format!("http://127.0.0.1:{port}/metrics"), &[]).status,
        200,
        "after the move the app's route is an ordinary one"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = s.get("/metrics", &[]).text();
        let got = app_samples(&text);
        let a = got.get(r#"http_requests_total{method="GET",route="/a",status="200"}"#);
        let b = got.get(r#"http_requests_total{method="GET",route="/b",status="200"}"#);
        // The shim's wipe at the new master's start is the one reset: 60 requests, plus
        // the warm-up and the request to the old endpoint's path.
        if a == Some(&40.0) && b == Some(&20.0) {
            let absorbed = crate::util::value(&text, "multiproc_exporter_files_absorbed_total");
            assert!(
                absorbed.is_some_and(|n| n > 0.0),
                "nothing compacted: {text}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{got:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
