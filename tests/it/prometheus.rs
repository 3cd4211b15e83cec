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

#[test]
#[ignore = "needs prometheus (Debian package prometheus); run with cargo test -- --ignored"]
fn real_prometheus_scrapes_the_sidecar() {
    let (tmp, dir) = crate::util::temp_mp();
    let workers = 4;
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
    let _pool = Reaped(pool);

    let sidecar = Server::start(&["--dir", dir.to_str().unwrap()]);
    sidecar.wait_ready();
    let port = free_port();
    let config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: mpe\n    static_configs:\n      - targets: ['{}']\n",
            sidecar.addr
        ),
    )
    .unwrap();
    let prom = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            tmp.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus is installed (Debian package prometheus)");
    let _prom = Reaped(prom);

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
