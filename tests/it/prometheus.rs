//! A real Prometheus server (Debian package `prometheus`) scrapes the sidecar serving a
//! directory that live prometheus_client workers write, and its query API sees the
//! merged values. Ignored by a plain `cargo test`; `.ci/run` installs the package and
//! runs `cargo test -- --ignored`.

use crate::util::{Reaped, Server, free_port, python, try_request};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn query(port: u16, q: &str) -> Option<f64> {
    let enc: String = q
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let r = try_request(
        "GET",
        &format!("http://127.0.0.1:{port}/api/v1/query?query={enc}"),
        &[],
    )
    .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// Live prometheus_client workers writing `dir`; answers once they have written.
fn live_pool(dir: &std::path::Path, workers: u32) -> Reaped {
    let mut pool = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/harness.py"))
        .args(["live-workers", dir.to_str().unwrap(), &workers.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(pool.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    Reaped(pool)
}

/// A Prometheus scraping `target` every second as job `mpe`, with `job_extra` (more
/// keys of the scrape config, indented for it); its port.
fn start_prometheus(tmp: &std::path::Path, target: &str, job_extra: &str) -> (u16, Reaped) {
    let port = free_port();
    let config = tmp.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: mpe\n    static_configs:\n      - targets: ['{target}']\n{job_extra}"
        ),
    )
    .unwrap();
    let prom = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            tmp.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus is installed (Debian package prometheus)");
    (port, Reaped(prom))
}

/// Waits until Prometheus on `port` holds the merged values of [`live_pool`].
fn wait_for_merged_values(port: u16, workers: u32, sidecar: &Server) {
    let want_requests = f64::from(workers * (workers + 1) / 2);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = query(port, r#"up{job="mpe"}"#);
        let requests = query(port, r#"sum(app_requests_total{job="mpe"})"#);
        let count = query(port, r#"app_latency_seconds_count{job="mpe"}"#);
        let le1 = query(port, r#"app_latency_seconds_bucket{job="mpe",le="1.0"}"#);
        let in_progress = query(port, r#"app_in_progress{job="mpe"}"#);
        if up == Some(1.0)
            && requests == Some(want_requests)
            && count == Some(f64::from(3 * workers))
            && le1 == Some(f64::from(2 * workers))
            && in_progress == Some(f64::from(workers))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not see the merged values: up={up:?} requests={requests:?} (want {want_requests}) count={count:?} le1={le1:?} in_progress={in_progress:?}\n{}",
            sidecar.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
#[ignore = "needs prometheus (Debian package prometheus); run with cargo test -- --ignored"]
fn real_prometheus_scrapes_the_sidecar() {
    let (tmp, dir) = crate::util::temp_mp();
    let workers = 4;
    let _pool = live_pool(&dir, workers);
    let sidecar = Server::start(&["--dir", dir.to_str().unwrap()]);
    sidecar.wait_ready();
    let (port, _prom) = start_prometheus(tmp.path(), &sidecar.addr.to_string(), "");
    wait_for_merged_values(port, workers, &sidecar);
}

/// Issue 12, acceptance 4: Prometheus scrapes the sidecar with `scheme: https`,
/// `tls_config` (the test's CA) and `basic_auth`.
#[test]
#[ignore = "needs prometheus (Debian package prometheus); run with cargo test -- --ignored"]
fn test_issue_12_real_prometheus_scrapes_over_tls_with_basic_auth() {
    let (tmp, dir) = crate::util::temp_mp();
    let workers = 4;
    let _pool = live_pool(&dir, workers);
    let web = tmp.path().join("web");
    std::fs::create_dir_all(&web).unwrap();
    let pki = crate::web::certificates();
    pki.copy_to(&web, &["server.crt", "server.key", "ca.crt"]);
    let hash = bcrypt::hash("scrape-pass", 4).unwrap();
    let config = web.join("web.yml");
    std::fs::write(
        &config,
        format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: {hash}\n"),
    )
    .unwrap();
    let sidecar = Server::start(&[
        "--dir",
        dir.to_str().unwrap(),
        "--web.config.file",
        config.to_str().unwrap(),
    ]);
    let job = format!(
        "    scheme: https\n    tls_config:\n      ca_file: {}\n    basic_auth:\n      username: prometheus\n      password: scrape-pass\n",
        web.join("ca.crt").display()
    );
    let (port, _prom) = start_prometheus(tmp.path(), &sidecar.addr.to_string(), &job);
    wait_for_merged_values(port, workers, &sidecar);
}
