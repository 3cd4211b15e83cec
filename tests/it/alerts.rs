//! The alerts and the dashboard, live (issue 10, acceptance 4 and 5): the example app
//! (`deploy/app`) under a real Gunicorn with the shim, the sidecar, Debian's Prometheus
//! with `deploy/prometheus` (the example `prometheus.yml` with 1 s intervals, the rule
//! files with every `for:` set to `0s` and nothing else changed) and a real Alertmanager
//! with `deploy/prometheus/alertmanager.yml` as it is. Loopback only, ports chosen at run
//! time, every wait bounded.
//!
//! Traffic with errors and slow requests fires the application's example alerts; then
//! every expression of the rules and of the dashboard is run against that Prometheus: it
//! parses, it names only metrics the sidecar's scrape holds or Prometheus' own (`up`,
//! `scrape_*`, `ALERTS`), and each panel query returns data. Then faults, each alert read
//! back from Alertmanager's API: a bad file, the directory removed, the sidecar stopped.
//!
//! Needs the Debian packages `prometheus` and `prometheus-alertmanager`, so it is ignored
//! by a plain `cargo test`; `.ci/run` installs them and runs `cargo test -- --ignored`.

use crate::deploy::{RULE_FILES, alerts, dashboard_queries};
use crate::util::{Reaped, Server, free_port, try_request};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// How long an alert may take to reach Alertmanager after its fault (measured: ~7 s
/// after Prometheus starts, then one evaluation and one notification cycle).
const ALERT_DEADLINE: Duration = Duration::from_secs(60);

/// `s` with every byte but ASCII letters and digits percent-encoded.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn get_json(url: &str) -> Option<Value> {
    let r = try_request("GET", url, &[]).ok()?;
    serde_json::from_slice(&r.body).ok()
}

/// An instant query: `Ok(result vector)` or `Err(what Prometheus said)`.
fn query(prom: u16, expr: &str) -> Result<Vec<Value>, String> {
    let url = format!(
        "http://127.0.0.1:{prom}/api/v1/query?query={}",
        encode(expr)
    );
    let v = get_json(&url).ok_or_else(|| format!("no answer to {expr}"))?;
    if v["status"] != "success" {
        return Err(format!("{}: {}", v["errorType"], v["error"]));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

thread_local! {
    /// The log files of the processes this test started, shown when a wait times out.
    static LOGS: std::cell::RefCell<Vec<PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A log file for a process, remembered for [`wait_for`]'s report.
fn log_file(path: PathBuf) -> std::fs::File {
    LOGS.with(|l| l.borrow_mut().push(path.clone()));
    std::fs::File::create(path).unwrap()
}

/// The last lines of every log file.
fn log_tails() -> String {
    LOGS.with(|l| {
        l.borrow()
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                format!("--- {}:\n{tail}", p.display())
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// Polls `check` every 250 ms until it returns `Some`, at most `within`.
fn wait_for<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(t) = check() {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            log_tails()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The alerts Alertmanager holds (`/api/v2/alerts`), as `(alertname, labels)`.
fn alertmanager_alerts(am: u16) -> Vec<(String, Value)> {
    get_json(&format!("http://127.0.0.1:{am}/api/v2/alerts"))
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            let name = a["labels"]["alertname"].as_str().unwrap_or("").to_owned();
            (name, a["labels"].clone())
        })
        .collect()
}

/// Waits until Alertmanager holds alert `name`; returns its labels.
fn wait_alert(am: u16, name: &str) -> Value {
    let began = Instant::now();
    let labels = wait_for(ALERT_DEADLINE, &format!("{name} in Alertmanager"), || {
        alertmanager_alerts(am)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, l)| l)
    });
    eprintln!("{name} reached Alertmanager after {:?}", began.elapsed());
    labels
}

/// Alert `name` is not in Alertmanager now (so the fault that follows is what fires it).
fn assert_absent(am: u16, name: &str) {
    let held = alertmanager_alerts(am);
    assert!(
        held.iter().all(|(n, _)| n != name),
        "{name} fires before its fault: {held:?}"
    );
}

/// Copies `from` to `to` changing only the lines `edit` returns `Some` for; asserts that
/// `expected` lines changed.
fn copy_editing(from: &Path, to: &Path, expected: usize, edit: impl Fn(&str) -> Option<String>) {
    let text = std::fs::read_to_string(from).unwrap();
    let mut changed = 0;
    let mut out = String::new();
    for line in text.lines() {
        match edit(line) {
            Some(new) => {
                changed += 1;
                out.push_str(&new);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    assert_eq!(changed, expected, "lines changed in {}", from.display());
    std::fs::write(to, out).unwrap();
}

/// The rule file with every `for:` set to `0s`.
fn rules_firing_at_once(from: &Path, to: &Path) {
    let fors = std::fs::read_to_string(from)
        .unwrap()
        .lines()
        .filter(|l| l.trim_start().starts_with("for: "))
        .count();
    assert!(fors > 0);
    copy_editing(from, to, fors, |line| {
        let indent = &line[..line.len() - line.trim_start().len()];
        line.trim_start()
            .starts_with("for: ")
            .then(|| format!("{indent}for: 0s"))
    });
}

/// Prometheus' configuration directory: the example `prometheus.yml` with 1 s intervals,
/// the rule files firing at once, and target files for this run.
fn prometheus_config(dir: &Path, sidecar: &str, alertmanager: &str) -> PathBuf {
    let deploy = Path::new(REPO).join("deploy/prometheus");
    std::fs::create_dir_all(dir.join("targets")).unwrap();
    let config = dir.join("prometheus.yml");
    copy_editing(&deploy.join("prometheus.yml"), &config, 2, |line| {
        ["scrape_interval: 15s", "evaluation_interval: 15s"]
            .contains(&line.trim())
            .then(|| line.replace("15s", "1s"))
    });
    for file in RULE_FILES {
        let from = Path::new(REPO).join(file);
        rules_firing_at_once(&from, &dir.join(from.file_name().unwrap()));
    }
    for (name, target) in [
        ("multiproc-exporter.yml", sidecar),
        ("alertmanager.yml", alertmanager),
    ] {
        std::fs::write(
            dir.join("targets").join(name),
            format!("- targets: ['{target}']\n"),
        )
        .unwrap();
    }
    config
}

fn start_alertmanager(data: &Path, port: u16) -> Reaped {
    let config = Path::new(REPO).join("deploy/prometheus/alertmanager.yml");
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(log_file(data.with_extension("log")))
        .spawn()
        .expect("prometheus-alertmanager is installed (Debian package prometheus-alertmanager)");
    Reaped(child)
}

fn start_prometheus(config: &Path, data: &Path, port: u16) -> Reaped {
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log_file(data.with_extension("log")))
        .spawn()
        .expect("prometheus is installed (Debian package prometheus)");
    Reaped(child)
}

/// The example app under Gunicorn with the shim, on `port`, writing `dir`.
fn start_app(dir: &Path, port: u16) -> Reaped {
    let child = crate::util::gunicorn(dir)
        .args(["-c", "gunicorn.conf.py"])
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .current_dir(Path::new(REPO).join("deploy/app"))
        .stdout(Stdio::null())
        .stderr(log_file(dir.with_extension("app.log")))
        .spawn()
        .unwrap();
    let app = Reaped(child);
    wait_for(Duration::from_secs(30), "the app to answer", || {
        try_request("GET", &format!("http://127.0.0.1:{port}/healthz"), &[])
            .ok()
            .filter(|r| r.status == 200)
    });
    app
}

/// `n` requests to `path`; asserts each gets `status`.
fn requests(port: u16, path: &str, n: usize, status: u16) {
    for _ in 0..n {
        let r = try_request("GET", &format!("http://127.0.0.1:{port}{path}"), &[]).unwrap();
        assert_eq!(r.status, status, "{path}");
    }
}

/// The metric names a PromQL expression selects: identifiers outside label matchers,
/// strings, ranges and grouping lists, that are neither functions, aggregations nor
/// keywords (enough for the expressions of `deploy/`; `quantile` as an aggregation is
/// not used there).
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Keywords, and the aggregations (they may take `by (...)` before their argument).
    const KEYWORDS: [&str; 18] = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
    ];
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let b = expr.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Skips from an opening byte to its closing one, over strings.
    let skip = |mut i: usize, close: u8| -> usize {
        while i < b.len() && b[i] != close {
            if matches!(b[i], b'"' | b'\'' | b'`') {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1 + usize::from(b[i] == b'\\');
                }
            }
            i += 1;
        }
        i + 1
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => i = skip(i + 1, c),
            b'{' => i = skip(i + 1, b'}'),
            b'[' => i = skip(i + 1, b']'),
            b'0'..=b'9' | b'.' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &expr[start..i];
                let mut j = i;
                while j < b.len() && b[j] == b' ' {
                    j += 1;
                }
                let called = j < b.len() && b[j] == b'(';
                if GROUPING.contains(&word) {
                    if called {
                        i = skip(j + 1, b')');
                    }
                } else if !called && !KEYWORDS.contains(&word.to_lowercase().as_str()) {
                    names.insert(word.to_owned());
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn metric_names_of_promql() {
    let got = metric_names(
        r#"sum by (le, route) (rate(a_bucket{job=~"x|y", b="}"}[5m])) > 0.5 or on(instance) label_replace(b_total offset 5m, "l", "v", "", "") unless bool c"#,
    );
    assert_eq!(
        got.into_iter().collect::<Vec<_>>(),
        ["a_bucket", "b_total", "c"]
    );
}

/// Names a query may use: what the sidecar's scrape holds, and Prometheus' own series
/// (`up`, `scrape_*`, `ALERTS*`) that this Prometheus really has.
fn allowed_names(scrape: &str, prom: u16) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    let theirs = get_json(&format!(
        "http://127.0.0.1:{prom}/api/v1/label/__name__/values"
    ))
    .expect("the label values of __name__");
    for n in theirs["data"].as_array().unwrap() {
        let n = n.as_str().unwrap();
        if n == "up" || n.starts_with("scrape_") || n.starts_with("ALERTS") {
            names.insert(n.to_owned());
        }
    }
    names
}

/// A dashboard query as Prometheus gets it from Grafana: the variables replaced
/// (`$job` by the example job, `$instance` by "any", `$__rate_interval` by 1m) and
/// `label_values(SELECTOR, LABEL)` by its selector.
fn as_grafana_sends(q: &str) -> String {
    let q = q
        .replace("$__rate_interval", "1m")
        .replace("$job", "multiproc-exporter")
        .replace("$instance", ".+");
    assert!(!q.contains('$'), "a variable the test does not know: {q}");
    match q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        Some(args) => args.rsplit_once(',').unwrap().0.trim().to_owned(),
        None => q,
    }
}

/// Acceptance 5: every rule and dashboard expression parses, names only known metrics,
/// and every panel query returns data.
fn check_expressions(prom: u16, sidecar: &Server) {
    let scrape = sidecar.get("/metrics", &[]).text();
    let allowed = allowed_names(&scrape, prom);
    let rules = get_json(&format!("http://127.0.0.1:{prom}/api/v1/rules")).unwrap();
    let mut loaded = BTreeSet::new();
    let mut checked = 0;
    for group in rules["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["name"].as_str().unwrap().to_owned();
            let expr = rule["query"].as_str().unwrap();
            assert_eq!(rule["duration"], 0, "{name}: the copy fires at once");
            query(prom, expr).unwrap_or_else(|e| panic!("rule {name}: {expr}: {e}"));
            let unknown: Vec<String> = metric_names(expr).difference(&allowed).cloned().collect();
            assert!(unknown.is_empty(), "rule {name} names {unknown:?}: {expr}");
            loaded.insert(name);
            checked += 1;
        }
    }
    let committed: BTreeSet<String> = alerts().into_keys().collect();
    assert_eq!(loaded, committed, "the rules Prometheus loaded");
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(REPO).join("deploy/grafana/multiproc-exporter.json"))
            .unwrap(),
    )
    .unwrap();
    let mut empty = Vec::new();
    for (panel, q) in dashboard_queries(&dash) {
        let expr = as_grafana_sends(&q);
        let result = query(prom, &expr).unwrap_or_else(|e| panic!("panel {panel}: {expr}: {e}"));
        let unknown: Vec<String> = metric_names(&expr).difference(&allowed).cloned().collect();
        assert!(
            unknown.is_empty(),
            "panel {panel} names {unknown:?}: {expr}"
        );
        if result.is_empty() {
            empty.push(format!("{panel}: {expr}"));
        }
        checked += 1;
    }
    assert!(
        empty.is_empty(),
        "panel queries without data:\n{}",
        empty.join("\n")
    );
    eprintln!("{checked} expressions checked against the live Prometheus");
}

#[test]
#[ignore = "needs prometheus and prometheus-alertmanager (Debian packages); run with cargo test -- --ignored"]
fn test_issue_10_alerts_reach_alertmanager_from_a_live_pool() {
    let began = Instant::now();
    let (tmp, dir) = crate::util::temp_mp();
    let app_port = free_port();
    let _app = start_app(&dir, app_port);
    let mut sidecar = Server::start(&[
        "--dir",
        dir.to_str().unwrap(),
        "--lifecycle.interval",
        "250ms",
    ]);
    sidecar.wait_ready();
    let am_port = free_port();
    let _am = start_alertmanager(&tmp.path().join("am"), am_port);
    let prom_port = free_port();
    let config = prometheus_config(
        &tmp.path().join("prom"),
        &sidecar.addr.to_string(),
        &format!("127.0.0.1:{am_port}"),
    );
    let _prom = start_prometheus(&config, &tmp.path().join("tsdb"), prom_port);

    // Every route once, so each series exists before Prometheus' first scrapes (a
    // counter first seen at its final value has no rate).
    requests(app_port, "/", 1, 200);
    requests(app_port, "/error", 1, 500);
    requests(app_port, "/slow?seconds=0", 1, 200);
    wait_for(
        Duration::from_secs(30),
        "Prometheus to scrape the app's series",
        || {
            let n = query(
                prom_port,
                r#"count(http_requests_total{job="multiproc-exporter", route=~"/|/error|/slow"})"#,
            )
            .ok()?;
            (n.first()?["value"][1] == "3").then_some(())
        },
    );
    // The golden signals go bad: of 55 requests, 10 fail and 5 take longer than 1 s.
    requests(app_port, "/", 40, 200);
    requests(app_port, "/error", 10, 500);
    let slow: Vec<_> = (0..5)
        .map(|_| std::thread::spawn(move || requests(app_port, "/slow?seconds=1.2", 1, 200)))
        .collect();
    for t in slow {
        t.join().unwrap();
    }
    wait_alert(am_port, "AppHighErrorRatio");
    wait_alert(am_port, "AppHighLatencyP95");
    // Healthy sidecar: none of its own alerts fires, even with `for: 0s` (but those on
    // timing, which a loaded machine may trip for a moment).
    let own: Vec<String> = alertmanager_alerts(am_port)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("MultiprocExporter"))
        .filter(|n| {
            ![
                "MultiprocExporterMergeSlow",
                "MultiprocExporterScrapeTimeouts",
            ]
            .contains(&n.as_str())
        })
        .collect();
    assert!(own.is_empty(), "alerts on a healthy sidecar: {own:?}");
    check_expressions(prom_port, &sidecar);

    // A bad file: garbage under a writer's name (our own pid: alive, never compacted).
    let bad = dir.join(format!("counter_{}.db", std::process::id()));
    std::fs::write(&bad, b"\xff\xff\xff\x7fnot a prometheus_client file").unwrap();
    let labels = wait_alert(am_port, "MultiprocExporterBadFiles");
    assert_eq!(labels["instance"], sidecar.addr.to_string());
    assert_eq!(labels["job"], "multiproc-exporter");
    std::fs::remove_file(&bad).unwrap();

    // The directory removed (moved away: the workers keep their files open).
    assert_absent(am_port, "MultiprocExporterDirectoryNotReady");
    let away = dir.with_extension("away");
    std::fs::rename(&dir, &away).unwrap();
    wait_alert(am_port, "MultiprocExporterDirectoryNotReady");
    std::fs::rename(&away, &dir).unwrap();

    // The sidecar stopped.
    assert_absent(am_port, "MultiprocExporterDown");
    sidecar.signal("TERM");
    sidecar.child.wait().unwrap();
    let labels = wait_alert(am_port, "MultiprocExporterDown");
    assert_eq!(labels["severity"], "critical");
    eprintln!("live alert test: {:?}", began.elapsed());
}
