//! `deploy/` checked without a server (issue 10): every alert has a runbook paragraph and
//! a promtool test that fires it and one that must not; the rules, the Prometheus and
//! the Alertmanager configurations pass promtool and amtool (those need the Debian
//! packages, so they are ignored by a plain `cargo test`); the dashboard is what its
//! generator makes, and so are the Kubernetes PrometheusRules; the example app pins
//! what the tests run.

use crate::util::python;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn path(rel: &str) -> PathBuf {
    Path::new(REPO).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// The rule files of `deploy/prometheus`.
pub const RULE_FILES: [&str; 2] = [
    "deploy/prometheus/multiproc-exporter.rules.yml",
    "deploy/prometheus/app.rules.yml",
];

/// Every alert of the rule files, with its `runbook_url` (`None` if it has none). The
/// files are written one key per line, as `- alert: NAME` and `runbook_url: "..."`.
pub fn alerts() -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for file in RULE_FILES {
        let mut current: Option<String> = None;
        for line in read(file).lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix("- alert: ") {
                let name = name.trim().to_owned();
                assert!(out.insert(name.clone(), None).is_none(), "{name} twice");
                current = Some(name);
            } else if let Some(url) = line.strip_prefix("runbook_url: ") {
                let name = current.clone().expect("runbook_url inside an alert");
                let url = url.trim().trim_matches('"').to_owned();
                assert!(
                    out.insert(name.clone(), Some(url)).unwrap().is_none(),
                    "{name}: two runbook_url"
                );
            }
        }
    }
    out
}

/// The `### ` headings of the "## Alerts" section of docs/operations.md, with the number
/// of paragraphs under each.
fn runbook_headings() -> BTreeMap<String, usize> {
    let doc = read("docs/operations.md");
    let section = doc
        .split("\n## Alerts\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("an Alerts section in docs/operations.md");
    let mut out = BTreeMap::new();
    for part in section.split("\n### ").skip(1) {
        let (heading, body) = part.split_once('\n').unwrap();
        let paragraphs = body.split("\n\n").filter(|p| !p.trim().is_empty()).count();
        out.insert(heading.trim().to_owned(), paragraphs);
    }
    out
}

/// Issue 10: each alert links the one paragraph of docs/operations.md that is its
/// runbook, and every runbook paragraph belongs to an alert.
#[test]
fn test_issue_10_every_alert_has_a_runbook_paragraph() {
    let alerts = alerts();
    assert!(alerts.len() >= 9, "{alerts:?}");
    let headings = runbook_headings();
    for (name, url) in &alerts {
        let url = url
            .as_deref()
            .unwrap_or_else(|| panic!("{name} has no runbook_url"));
        // GitHub's anchor of a heading that is one word: the word in lower case.
        assert_eq!(
            url,
            format!("docs/operations.md#{}", name.to_lowercase()),
            "{name}"
        );
        assert_eq!(
            headings.get(name),
            Some(&1),
            "docs/operations.md needs one paragraph under `### {name}`"
        );
    }
    let extra: Vec<&String> = headings
        .keys()
        .filter(|h| !alerts.contains_key(*h))
        .collect();
    assert!(extra.is_empty(), "runbooks without an alert: {extra:?}");
}

/// For each `alertname:` of a promtool test file: whether that case expects alerts.
fn promtool_cases(rel: &str) -> Vec<(String, bool)> {
    let text = read(rel);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = line.strip_prefix("alertname: ") {
            let next = lines.get(i + 1).copied().unwrap_or("");
            let silent = next == "exp_alerts: []";
            assert!(
                silent || next == "exp_alerts:",
                "{rel}: `exp_alerts` must follow `alertname: {name}`"
            );
            out.push((name.trim().to_owned(), !silent));
        }
    }
    out
}

/// Issue 10: the promtool tests give each alert a case that fires it and one that must
/// not fire it.
#[test]
fn test_issue_10_every_alert_has_a_firing_and_a_silent_promtool_case() {
    let mut cases = promtool_cases("deploy/prometheus/tests/multiproc-exporter.test.yml");
    cases.extend(promtool_cases("deploy/prometheus/tests/app.test.yml"));
    for name in alerts().keys() {
        for fires in [true, false] {
            assert!(
                cases.iter().any(|(n, f)| n == name && *f == fires),
                "{name}: no promtool case where it {}",
                if fires { "fires" } else { "stays silent" }
            );
        }
    }
}

/// Runs a tool from `deploy/prometheus`; panics with its output unless it succeeds.
fn tool_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(path("deploy/prometheus"))
        .output()
        .unwrap_or_else(|e| panic!("{program} is installed: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?}:\n{text}");
    text
}

/// Issue 10 (acceptance 4): the rules, their unit tests, the Prometheus and the
/// Alertmanager configurations, as promtool and amtool see them.
#[test]
#[ignore = "needs promtool and amtool (Debian packages prometheus, prometheus-alertmanager); run with cargo test -- --ignored"]
fn test_issue_10_promtool_and_amtool_accept_the_deploy_files() {
    let rules = tool_ok(
        "promtool",
        &[
            "check",
            "rules",
            "multiproc-exporter.rules.yml",
            "app.rules.yml",
        ],
    );
    assert!(rules.contains("SUCCESS: 9 rules found"), "{rules}");
    let tests = tool_ok(
        "promtool",
        &[
            "test",
            "rules",
            "tests/multiproc-exporter.test.yml",
            "tests/app.test.yml",
        ],
    );
    assert_eq!(tests.matches("SUCCESS").count(), 2, "{tests}");
    let config = tool_ok("promtool", &["check", "config", "prometheus.yml"]);
    assert!(config.contains("2 rule files found"), "{config}");
    tool_ok("amtool", &["check-config", "alertmanager.yml"]);
}

/// Issue 10: the committed dashboard is exactly what its generator makes (with the
/// pinned grafana-foundation-sdk, which also reads it back).
#[test]
fn test_issue_10_dashboard_regenerates_identically() {
    let out = Command::new(python())
        .arg(path("deploy/grafana/generate.py"))
        .output()
        .expect("run deploy/grafana/generate.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).unwrap();
    let committed = read("deploy/grafana/multiproc-exporter.json");
    assert!(
        generated == committed,
        "deploy/grafana/multiproc-exporter.json is stale: run `python deploy/grafana/generate.py > deploy/grafana/multiproc-exporter.json`"
    );
    let dash: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert!(dashboard_queries(&dash).len() >= 30);
}

/// Issue 10: the PrometheusRules of deploy/kubernetes are what their generator makes of
/// the rule files (deploy/ci/kubernetes.sh checks it too, with the rest of the
/// manifests; this fails early, in `cargo test`).
#[test]
fn test_issue_10_prometheusrules_regenerate_identically() {
    let out = Command::new("bash")
        .arg(path("deploy/kubernetes/generate"))
        .arg("--check")
        .output()
        .expect("run deploy/kubernetes/generate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every query of a dashboard: the panels' targets (rows' nested panels included), as
/// `(panel title, expression)`, then the query variables' queries as `(variable, query)`.
pub fn dashboard_queries(dash: &serde_json::Value) -> Vec<(String, String)> {
    fn panels(list: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in list.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push((
                        p["title"].as_str().unwrap_or("").to_owned(),
                        expr.to_owned(),
                    ));
                }
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dash["panels"], &mut out);
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = v["query"]
                .as_str()
                .or_else(|| v["query"]["query"].as_str())
                .expect("a query variable's query");
            out.push((format!("${}", v["name"].as_str().unwrap()), q.to_owned()));
        }
    }
    out
}

/// Issue 10: the example app pins the prometheus_client and Gunicorn the tests run.
#[test]
fn test_issue_10_example_app_pins_the_tested_versions() {
    let pins = |rel: &str| -> BTreeMap<String, String> {
        read(rel)
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("=="))
            .map(|l| {
                let (k, v) = l.split_once("==").unwrap();
                (k.trim().to_lowercase(), v.trim().to_owned())
            })
            .collect()
    };
    let app = pins("deploy/app/requirements.txt");
    let tests = pins("tests/py/requirements.txt");
    assert_eq!(
        app.keys().collect::<Vec<_>>(),
        ["gunicorn", "prometheus_client"]
    );
    for (k, v) in &app {
        assert_eq!(tests.get(k), Some(v), "{k}");
    }
}
