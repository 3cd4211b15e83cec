//! Counterparts of the reading and merging cases of prometheus_client's
//! `tests/test_multiprocess.py` (0.26.0), named after them. Each replays the upstream
//! scenario with the same process identifiers through real prometheus_client writers,
//! checks the values the upstream test asserts, and compares the whole output with
//! `MultiProcessCollector` as well.
//!
//! Cases that are not about reading live elsewhere: `test_restrict` (the `name[]=`
//! filter) with the HTTP server, `test_merge_no_accumulate` (accumulate=False is for
//! writing merged data back) with compaction, and the writer-only cases
//! (`test_remove_clear_warning`, `test_child_preserves_parent_context_for_subclasses`,
//! `test_mark_process_dead_respects_lowercase`) have nothing to read.

use crate::util::{assert_no_diffs, differential, harness, render, value};
use std::path::{Path, PathBuf};

struct Scenario {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    text: String,
}

fn scenario(name: &str) -> Scenario {
    let (tmp, dir) = crate::util::temp_mp();
    harness(&["case", dir.to_str().unwrap(), name]);
    assert_no_diffs(&differential(std::slice::from_ref(&dir), tmp.path()));
    let out = render(&dir, "text");
    assert_eq!(out.code, 0, "{}", out.stderr);
    Scenario {
        _tmp: tmp,
        dir,
        text: out.stdout,
    }
}

fn expect(s: &Scenario, head: &str, want: f64) {
    assert_eq!(value(&s.text, head), Some(want), "{head} in\n{}", s.text);
}

fn absent(s: &Scenario, head: &str) {
    assert_eq!(
        value(&s.text, head),
        None,
        "{head} should be gone:\n{}",
        s.text
    );
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn test_counter_adds() {
    expect(&scenario("test_counter_adds"), "c_total", 3.0);
}

#[test]
fn test_summary_adds() {
    let s = scenario("test_summary_adds");
    expect(&s, "s_count", 2.0);
    expect(&s, "s_sum", 3.0);
}

#[test]
fn test_histogram_adds() {
    let s = scenario("test_histogram_adds");
    expect(&s, "h_count", 2.0);
    expect(&s, "h_sum", 3.0);
    expect(&s, r#"h_bucket{le="5.0"}"#, 2.0);
}

#[test]
fn test_gauge_all() {
    let s = scenario("test_gauge_all");
    expect(&s, r#"g{pid="123"}"#, 1.0);
    expect(&s, r#"g{pid="456"}"#, 2.0);
}

#[test]
fn test_gauge_liveall() {
    let s = scenario("test_gauge_liveall");
    absent(&s, r#"g{pid="123"}"#);
    expect(&s, r#"g{pid="456"}"#, 2.0);
}

#[test]
fn test_gauge_min() {
    expect(&scenario("test_gauge_min"), "g", 1.0);
}

#[test]
fn test_gauge_livemin() {
    expect(&scenario("test_gauge_livemin"), "g", 2.0);
}

#[test]
fn test_gauge_max() {
    expect(&scenario("test_gauge_max"), "g", 2.0);
}

#[test]
fn test_gauge_livemax() {
    expect(&scenario("test_gauge_livemax"), "g", 1.0);
}

#[test]
fn test_gauge_sum() {
    expect(&scenario("test_gauge_sum"), "g", 3.0);
}

#[test]
fn test_gauge_livesum() {
    expect(&scenario("test_gauge_livesum"), "g", 2.0);
}

#[test]
fn test_gauge_mostrecent() {
    expect(&scenario("test_gauge_mostrecent"), "g", 1.0);
}

#[test]
fn test_gauge_livemostrecent() {
    expect(&scenario("test_gauge_livemostrecent"), "g", 2.0);
}

#[test]
fn test_namespace_subsystem() {
    expect(&scenario("test_namespace_subsystem"), "ns_ss_c_total", 1.0);
}

#[test]
fn test_counter_across_forks() {
    let s = scenario("test_counter_across_forks");
    expect(&s, "c_total", 3.0);
    assert_eq!(files(&s.dir), ["counter_0.db", "counter_1.db"]);
}

#[test]
fn test_initialization_detects_pid_change() {
    let s = scenario("test_initialization_detects_pid_change");
    assert_eq!(files(&s.dir), ["gauge_all_0.db", "gauge_all_1.db"]);
    expect(&s, r#"g{pid="0"}"#, 0.0);
    expect(&s, r#"g1{pid="1"}"#, 0.0);
}

#[test]
fn test_collect() {
    let s = scenario("test_collect");
    let l = r#"a="a",b="b",c="c",d="d""#;
    expect(&s, &format!("c_total{{{l}}}"), 2.0);
    expect(&s, &format!(r#"g{{{l},pid="0"}}"#), 1.0);
    expect(&s, &format!(r#"g{{{l},pid="1"}}"#), 1.0);
    expect(&s, &format!("h_sum{{{l}}}"), 6.0);
    expect(&s, &format!("h_count{{{l}}}"), 2.0);
    expect(&s, &format!(r#"h_bucket{{{l},le="1.0"}}"#), 1.0);
    expect(&s, &format!(r#"h_bucket{{{l},le="5.0"}}"#), 2.0);
    expect(&s, &format!(r#"h_bucket{{{l},le="+Inf"}}"#), 2.0);
    let buckets = s.text.lines().filter(|l| l.starts_with("h_bucket")).count();
    assert_eq!(buckets, 15, "14 default bounds and +Inf");
}

#[test]
fn test_collect_histogram_ordering() {
    let s = scenario("test_collect_histogram_ordering");
    let lines: Vec<&str> = s.text.lines().filter(|l| !l.starts_with('#')).collect();
    // Each label set is one contiguous group: its buckets in ascending order, then
    // `_count` and `_sum`; view1 before view2.
    let views: Vec<&str> = lines
        .iter()
        .map(|l| {
            if l.contains("view1") {
                "view1"
            } else {
                "view2"
            }
        })
        .collect();
    let switch = views.iter().position(|v| *v == "view2").unwrap();
    assert!(views[switch..].iter().all(|v| *v == "view2"), "{}", s.text);
    for group in [&lines[..switch], &lines[switch..]] {
        let n = group.len();
        assert!(group[..n - 2].iter().all(|l| l.starts_with("h_bucket")));
        assert!(group[n - 2].starts_with("h_count"));
        assert!(group[n - 1].starts_with("h_sum"));
    }
    expect(&s, r#"h_bucket{le="5.0",view="view1"}"#, 2.0);
    expect(&s, r#"h_count{view="view2"}"#, 1.0);
}

#[test]
fn test_collect_preserves_help() {
    let s = scenario("test_collect_preserves_help");
    for line in [
        "# HELP c_total c help",
        "# HELP g g help",
        "# HELP h h help",
    ] {
        assert!(s.text.lines().any(|l| l == line), "{line} in\n{}", s.text);
    }
}

#[test]
fn test_child_name_is_built_once_with_namespace_subsystem_unit() {
    let s = scenario("test_child_name_is_built_once_with_namespace_subsystem_unit");
    assert!(s.text.contains("# TYPE ns_ss_m_seconds_total counter"));
    expect(&s, r#"ns_ss_m_seconds_total{l="x"}"#, 1.0);
}

#[test]
fn test_process_restart() {
    // Value and timestamp survive a close and reopen: the mostrecent gauge reads 123.
    expect(&scenario("test_process_restart"), "g", 123.0);
}

#[test]
fn test_expansion() {
    let s = scenario("test_expansion");
    let head = format!("c_total{{k=\"{}\"}}", "y".repeat(64 * 1024));
    expect(&s, &head, 4.0);
}

#[test]
fn test_multi_expansion() {
    let s = scenario("test_multi_expansion");
    expect(&s, r#"c_total{k="small1"}"#, 1.0);
    expect(&s, r#"c_total{k="small2"}"#, 3.0);
    expect(
        &s,
        &format!("c_total{{k=\"{}\"}}", "x".repeat(256 * 1024)),
        2.0,
    );
    let size = std::fs::metadata(s.dir.join("counter_123.db"))
        .unwrap()
        .len();
    assert!(size >= 512 * 1024, "grew through several doublings: {size}");
}

#[test]
fn test_missing_gauge_file_during_merge() {
    // A live gauge file deleted between listing and reading (mark_process_dead racing a
    // scrape) must not fail the render. Race it for real: a thread keeps creating and
    // deleting such files while renders run.
    let s = scenario("test_missing_gauge_file_during_merge");
    let dir = s.dir.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut rounds = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for mode in ["liveall", "livesum"] {
                    let path = dir.join(format!("gauge_{mode}_9999999.db"));
                    let mut w = multiproc_exporter::write::DbWriter::open(&path).unwrap();
                    w.set_sample("lg", "lg", &[], "h", 1.0, 0.0).unwrap();
                    drop(w);
                    std::fs::remove_file(&path).unwrap();
                }
                rounds += 1;
            }
            rounds
        })
    };
    for _ in 0..100 {
        let out = render(&s.dir, "text");
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(value(&out.stdout, "c_total"), Some(1.0));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(churn.join().unwrap() > 0);
}
