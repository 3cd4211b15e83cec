//! The Python shim: its pytest suite, and `pip install ./shim/python` in a fresh
//! virtualenv.

use crate::util::python;
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn shim_pytest_suite_passes() {
    let out = Command::new(python())
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "shim/python/tests",
        ])
        .current_dir(REPO)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    // Every test of the file ran and passed: counted from the file itself, so a new
    // test needs no edit here and a test pytest did not collect is noticed.
    let suite = std::fs::read_to_string(format!("{REPO}/shim/python/tests/test_shim.py")).unwrap();
    let defined = suite.lines().filter(|l| l.starts_with("def test_")).count();
    let counts = pytest_counts(&text);
    assert_eq!(counts.get("passed"), Some(&defined), "{text}");
    for bad in ["failed", "error", "errors"] {
        assert_eq!(counts.get(bad), None, "{text}");
    }
}

/// The counts of pytest's summary line (`1 failed, 7 passed, 2 warnings in 0.61s`), by
/// outcome.
fn pytest_counts(text: &str) -> std::collections::BTreeMap<String, usize> {
    let summary = text
        .lines()
        .map(|l| l.trim_matches(|c: char| c == '=' || c.is_whitespace()))
        .rfind(|l| {
            l.contains(" in ")
                && (l.contains(" passed") || l.contains(" failed") || l.contains(" error"))
        })
        .unwrap_or_else(|| panic!("no pytest summary line in:\n{text}"));
    let counts = summary.rsplit_once(" in ").map_or(summary, |(c, _)| c);
    counts
        .split(", ")
        .filter_map(|part| {
            let (n, outcome) = part.trim().split_once(' ')?;
            Some((outcome.to_owned(), n.parse().ok()?))
        })
        .collect()
}

/// Issue 8: the shim's wipe took `gauge_1.db` for one of its files while the sidecar
/// rejects the name. Both sides now state the protocol (lock names, hidden prefixes,
/// live modes, what a stale wipe may delete) and must state it alike.
#[test]
fn test_issue_8_shim_and_sidecar_share_the_protocol() {
    use multiproc_exporter::compact::{self, Deletable, archive};
    use multiproc_exporter::liveness;
    use multiproc_exporter::model::GaugeMode;
    let names = [
        "counter_1.db",
        "histogram_22.db",
        "summary_3.db",
        "unknown_4.db",
        "untyped_5.db",
        "gauge_all_1.db",
        "gauge_liveall_1.db",
        "gauge_livesum_1.db",
        "gauge_mostrecent_1.db",
        "gauge_weird_1.db",
        "gauge_x_y_1.db",
        "gauge_1.db",
        "gauge_.db",
        "counter_.db",
        "counter.db",
        "counter_archive.db",
        "gauge_max_archive.db",
        "counter_host_a_1.db",
        "info_1.db",
        "stateset_1.db",
        "gaugehistogram_1.db",
        "foo.db",
        "sqlite_x.db",
        "notes.txt",
        "counter_1.db.bak",
        ".counter_1.db",
        ".mpe-tmp.x",
        ".mpe-tmp.counter_archive.db",
        ".mpe-absorbing.counter_1.db",
        ".mpe-other.counter_1.db",
        ".multiproc-exporter.lock",
        ".multiproc-exporter.wiped",
        ".multiproc-exporter.wiped.tmp.7",
        ".multiproc-exporter-7.lock",
        ".multiproc-exporter-w1.lock",
        ".multiproc-exporter-.lock",
        ".multiproc-exporter-1.2.lock",
        ".multiproc-exporter-7.lock.tmp.7",
        ".multiproc-exporter-7.lock.tmp.",
        ".multiproc-exporter-7.lock.tmp.x",
        ".multiproc-exporter-7.lockx",
        "gauge_all_\u{e9}.db",
    ];
    let script = r#"
import json, sys
import multiproc_exporter as m
print(json.dumps({
    "DIR_LOCK": m.DIR_LOCK,
    "WIPE_MARKER": m.WIPE_MARKER,
    "LOCK_PREFIX": m.LOCK_PREFIX,
    "LOCK_SUFFIX": m.LOCK_SUFFIX,
    "LOCK_TMP_INFIX": m.LOCK_TMP_INFIX,
    "OUR_HIDDEN": sorted(m.OUR_HIDDEN),
    "LIVE_MODES": sorted(m.LIVE_MODES),
    "deletable": {n: m._deletable(n) for n in json.loads(sys.argv[1])},
}))
"#;
    let out = crate::util::run_ok(
        Command::new(python()).args(["-c", script, &serde_json::to_string(&names[..]).unwrap()]),
        "read the shim's protocol constants",
    );
    let shim: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut hidden = vec![archive::ABSORBING_PREFIX, archive::TEMP_PREFIX];
    hidden.sort_unstable();
    let mut live: Vec<&str> = GaugeMode::KNOWN
        .iter()
        .filter(|m| m.is_live())
        .map(GaugeMode::token)
        .collect();
    live.sort_unstable();
    let deletable: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .map(|&n| {
            let d = match compact::deletable(n) {
                Deletable::No => "no",
                Deletable::Yes => "yes",
                Deletable::IfLockReleased => "if_lock_released",
            };
            (n.to_owned(), d.into())
        })
        .collect();
    let sidecar = serde_json::json!({
        "DIR_LOCK": compact::DIR_LOCK,
        "WIPE_MARKER": compact::WIPE_MARKER,
        "LOCK_PREFIX": liveness::LOCK_PREFIX,
        "LOCK_SUFFIX": liveness::LOCK_SUFFIX,
        "LOCK_TMP_INFIX": liveness::LOCK_TMP_INFIX,
        "OUR_HIDDEN": hidden,
        "LIVE_MODES": live,
        "deletable": deletable,
    });
    for key in [
        "DIR_LOCK",
        "WIPE_MARKER",
        "LOCK_PREFIX",
        "LOCK_SUFFIX",
        "LOCK_TMP_INFIX",
        "OUR_HIDDEN",
        "LIVE_MODES",
    ] {
        assert_eq!(shim[key], sidecar[key], "{key} differs");
    }
    let differ: Vec<String> = names
        .iter()
        .filter(|&&n| shim["deletable"][n] != sidecar["deletable"][n])
        .map(|n| {
            format!(
                "{n}: shim {}, sidecar {}",
                shim["deletable"][n], sidecar["deletable"][n]
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "the stale-wipe rule differs:\n{}",
        differ.join("\n")
    );
    // The names were chosen to exercise every answer.
    for answer in ["no", "yes", "if_lock_released"] {
        assert!(deletable.values().any(|v| v == answer), "{answer}");
    }
}

#[test]
fn shim_installs_with_pip_in_a_fresh_virtualenv() {
    let tmp = tempfile::tempdir().unwrap();
    let venv = tmp.path().join("venv");
    let base = std::env::var("MPE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    assert!(
        Command::new(base)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success()
    );
    // What a user does from a clone, `pip install ./shim/python`, on a copy: setuptools
    // writes build/ next to the sources and must not leave it in the repository.
    let src = tmp.path().join("src");
    let copied = Command::new("cp")
        .args(["-r", &format!("{REPO}/shim/python"), src.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copied.success());
    let _ = std::fs::remove_dir_all(src.join("build"));
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "./src"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        pip.status.success(),
        "{}",
        String::from_utf8_lossy(&pip.stderr)
    );
    let import = Command::new(venv.join("bin/python"))
        .args(["-c", "import multiproc_exporter, multiproc_exporter.gunicorn, multiproc_exporter.uwsgi, prometheus_client; print('ok')"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&import.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
}
