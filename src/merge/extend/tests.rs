//! Issue 11 (target 5): a plan extended to entries appended to its files merges exactly
//! as a plan built afresh over the same files. Every expectation runs through both paths.

use crate::collect::Collector;
use crate::format::key::encode;
use crate::merge::plan::Plan;
use crate::merge::{FileView, Merger};
use crate::model::{Family, FileKind, GaugeMode};
use crate::parse::{Indexed, KeyTable};
use crate::write::DbWriter;
use proptest::prelude::*;
use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;

/// One file of the model: what its name says and its entries so far.
struct File {
    kind: FileKind,
    pid: Arc<str>,
    entries: Vec<Indexed>,
    texts: HashSet<String>,
    values: Vec<(f64, f64)>,
    generation: u64,
}

/// An entry to append: file, family, labels, `le` or sample, help (small choices).
type Op = (usize, u8, u8, u8, u8);

const BOUNDS: [&str; 12] = [
    "0.5", "1.0", "+Inf", "2.5", "5.0", "0.0", "0.5", "+Inf", "1.0", "-0.0", "NaN", "x",
];

/// The key text `op` spells for a file of `kind` (families shared across kinds too).
fn key_of(kind: &FileKind, (_, family, labels, le, help): Op) -> String {
    let base = match kind {
        FileKind::Counter => "c",
        FileKind::Gauge(_) => "g",
        FileKind::Histogram => "h",
        FileKind::Summary => "s",
        FileKind::Unknown => "u",
    };
    let metric = if family % 5 == 4 {
        "x".to_owned()
    } else {
        format!("{base}{}", family % 2)
    };
    let value = (labels % 4).to_string();
    let mut pairs = vec![("a", value.as_str())];
    if labels % 8 >= 6 {
        pairs.push(("pid", "7"));
    }
    let help = if help % 6 == 0 { "other" } else { "help" };
    let (name, le) = match kind {
        FileKind::Counter => (format!("{metric}_total"), None),
        FileKind::Histogram if le % 16 < 12 => (format!("{metric}_bucket"), Some(le % 16)),
        FileKind::Histogram | FileKind::Summary if le % 2 == 0 => (format!("{metric}_sum"), None),
        FileKind::Summary => (format!("{metric}_count"), None),
        _ => (metric.clone(), None),
    };
    if let Some(i) = le {
        pairs.push(("le", BOUNDS[i as usize]));
    }
    encode(&metric, &name, &pairs, help)
}

/// A value pair that changes with every pass (`salt`), timestamps often tied.
fn value(salt: u64, i: usize) -> (f64, f64) {
    let h = (salt ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xff51_afd7);
    ((h % 1000) as f64 / 8.0 - 20.0, ((h >> 20) % 3) as f64)
}

fn append(files: &mut [File], keys: &mut KeyTable, op: Op) {
    let Some(f) = files.get_mut(op.0 % files.len().max(1)) else {
        return;
    };
    let text = key_of(&f.kind, op);
    if f.texts.insert(text.clone()) {
        let key = keys.intern(text.as_bytes()).unwrap();
        f.entries.push(Indexed {
            key,
            value_offset: 0,
        });
    }
}

fn views(files: &[File]) -> Vec<FileView<'_>> {
    files
        .iter()
        .map(|f| FileView {
            kind: &f.kind,
            pid_label: &f.pid,
            entries: &f.entries,
            values: &f.values,
            generation: f.generation,
        })
        .collect()
}

fn kind(choice: u8) -> FileKind {
    match choice % 8 {
        0 => FileKind::Counter,
        1 => FileKind::Histogram,
        2 => FileKind::Summary,
        n => FileKind::Gauge(
            GaugeMode::KNOWN[(usize::from(n) * 3 + usize::from(choice)) % 10].clone(),
        ),
    }
}

/// `pid` labels: repeated (two files of one process), numeric and not (`5x` sorts
/// after `10` as text, before `9`, and `9` before `10` as numbers).
const PIDS: [&str; 7] = ["1", "2", "1", "10", "9", "w", "5x"];

/// Runs `steps` of appended entries to `files` (kind, `pid` label) through a [`Merger`]
/// and, at every step, compares its output with a plan built afresh; returns how many
/// times it extended its plan.
fn run(files: &[(FileKind, &str)], steps: &[Vec<Op>]) -> Result<u64, TestCaseError> {
    let mut files: Vec<File> = files
        .iter()
        .enumerate()
        .map(|(i, (kind, pid))| File {
            kind: kind.clone(),
            pid: Arc::from(*pid),
            entries: Vec::new(),
            texts: HashSet::new(),
            values: Vec::new(),
            generation: i as u64 + 1,
        })
        .collect();
    let mut keys = KeyTable::default();
    let mut merger = Merger::default();
    for (step, ops) in steps.iter().enumerate() {
        for &op in ops {
            append(&mut files, &mut keys, op);
        }
        keys.seal();
        for (fi, f) in files.iter_mut().enumerate() {
            let salt = (step * 31 + fi) as u64;
            f.values = (0..f.entries.len()).map(|i| value(salt, i)).collect();
        }
        let views = views(&files);
        let merged = merger.merge(&views, &keys);
        let fresh = Plan::build(&views, &keys).execute(&views);
        prop_assert_eq!(&merged.families, &fresh.families, "step {}", step);
        prop_assert_eq!(&merged.problems, &fresh.problems, "step {}", step);
    }
    Ok(merger.plans_extended())
}

fn op() -> impl Strategy<Value = Op> {
    (
        0usize..8,
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn test_issue_11_extended_plan_merges_as_a_fresh_one(
        file_kinds in prop::collection::vec((any::<u8>(), any::<u8>()), 1..7),
        steps in prop::collection::vec(prop::collection::vec(op(), 0..5), 1..12),
    ) {
        let files: Vec<(FileKind, &str)> = file_kinds
            .iter()
            .map(|&(k, pid)| (kind(k), PIDS[usize::from(pid) % PIDS.len()]))
            .collect();
        run(&files, &steps)?;
    }
}

/// Entries that change no rule (one family per kind, numeric bounds, numeric pids):
/// almost every step extends the plan, and the output still equals a fresh build's.
#[test]
fn test_issue_11_benign_appends_extend_and_match_fresh_builds() {
    let files: Vec<(FileKind, &str)> = (0..8)
        .map(|i| (kind(i), PIDS[usize::from(i % 2)]))
        .collect();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let steps: Vec<Vec<Op>> = (0..60)
        .map(|_| {
            (0..(next() % 4))
                .map(|_| {
                    let r = next();
                    // Family 0 or 1 of the file's kind, help "help", `le` numeric.
                    (
                        r as usize % 8,
                        (r >> 8) as u8 % 2,
                        (r >> 16) as u8 % 6,
                        (r >> 24) as u8 % 9,
                        1,
                    )
                })
                .collect()
        })
        .collect();
    let extended = run(&files, &steps).unwrap();
    assert!(
        extended >= 20,
        "only {extended} of 60 steps extended the plan"
    );
}

/// Two files of one process (`all` and `liveall`) with the same series: the one of the
/// earlier file goes first, also when that file gains it last.
#[test]
fn test_issue_11_equal_series_of_two_files_keep_file_order() {
    let files = [
        (FileKind::Gauge(GaugeMode::All), "1"),
        (FileKind::Gauge(GaugeMode::LiveAll), "1"),
    ];
    let g = |file| (file, 0, 0, 0, 1);
    let steps = [vec![g(1)], vec![g(0)], vec![(0, 0, 1, 0, 1)]];
    assert_eq!(run(&files, &steps).unwrap(), 2);
}

/// A bound equal to one already seen but spelled otherwise (`-0.0`, `0.0`): the first
/// sighting's spelling is shown, also when an earlier file gains it later.
#[test]
fn test_issue_11_a_bound_keeps_its_first_spelling() {
    let files = [(FileKind::Histogram, "1"), (FileKind::Histogram, "2")];
    let steps = [vec![(1, 0, 0, 5, 1)], vec![(0, 0, 0, 9, 1)]];
    run(&files, &steps).unwrap();
}

/// `pid` labels that are not all numbers and not all text: their order is not a total
/// one, so only a fresh build's input order gives a fresh build's output.
#[test]
fn test_issue_11_mixed_pid_labels_build_afresh() {
    let files: Vec<(FileKind, &str)> = ["10", "9", "5x", "w"]
        .into_iter()
        .map(|pid| (FileKind::Gauge(GaugeMode::All), pid))
        .collect();
    let g = |file| (file, 0, 0, 0, 1);
    let steps = [vec![g(3)], vec![g(2)], vec![g(1)], vec![g(0)]];
    assert_eq!(run(&files, &steps).unwrap(), 0);
}

const NONE_DEAD: &BTreeSet<String> = &BTreeSet::new();

fn set(w: &mut DbWriter, metric: &str, name: &str, labels: &[(&str, &str)], v: f64) {
    w.set_sample(metric, name, labels, "help", v, 0.0).unwrap();
}

/// The families of `dir` as a collector that has never seen it merges them.
fn fresh(dir: &Path) -> Vec<Family> {
    Collector::new(dir).collect(NONE_DEAD).unwrap().families
}

fn family<'a>(merged: &'a [Family], name: &str) -> &'a Family {
    merged.iter().find(|f| &*f.name == name).unwrap()
}

/// The incremental path is taken (not just correct): new label sets that other files
/// already have grow only the entry slots, new series re-lay only their family, and
/// what a fresh build alone can decide (a new family) still builds afresh.
#[test]
fn test_issue_11_new_label_sets_extend_the_plan() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let mut c1 = DbWriter::open(&p.join("counter_1.db")).unwrap();
    let mut c2 = DbWriter::open(&p.join("counter_2.db")).unwrap();
    let mut g = DbWriter::open(&p.join("gauge_all_1.db")).unwrap();
    let mut h = DbWriter::open(&p.join("histogram_2.db")).unwrap();
    set(&mut c1, "c", "c_total", &[("a", "1")], 1.0);
    set(&mut c1, "c", "c_total", &[("a", "2")], 2.0);
    set(&mut c2, "c", "c_total", &[("a", "1")], 3.0);
    set(&mut g, "g", "g", &[], 4.0);
    set(&mut h, "h", "h_bucket", &[("le", "1.0")], 1.0);
    set(&mut h, "h", "h_bucket", &[("le", "+Inf")], 1.0);
    set(&mut h, "h", "h_sum", &[], 0.5);
    let mut c = Collector::new(p);
    let first = c.collect(NONE_DEAD).unwrap().families;
    assert_eq!(first, fresh(p));
    assert_eq!((c.plans_built(), c.plans_extended()), (1, 0));
    let check = |c: &mut Collector, extended: u64| -> Vec<Family> {
        let got = c.collect(NONE_DEAD).unwrap().families;
        assert_eq!(got, fresh(p));
        assert_eq!((c.plans_built(), c.plans_extended()), (1, extended));
        got
    };
    // A label set another file has: no new series, every layout shared.
    set(&mut c2, "c", "c_total", &[("a", "2")], 5.0);
    let second = check(&mut c, 1);
    for (a, b) in first.iter().zip(&second) {
        assert!(
            Arc::ptr_eq(&a.layout, &b.layout),
            "{} was laid out again",
            a.name
        );
    }
    // A new series of `c` and a new bucket of `h`: only those two are laid out again.
    set(&mut c2, "c", "c_total", &[("a", "0")], 6.0);
    set(&mut h, "h", "h_bucket", &[("le", "0.5")], 2.0);
    let third = check(&mut c, 2);
    let shared =
        |name: &str| Arc::ptr_eq(&family(&second, name).layout, &family(&third, name).layout);
    assert!(!shared("c") && !shared("h") && shared("g"));
    assert_eq!(family(&third, "c").len(), 3);
    // A new histogram label set (a new bucket group) and a new gauge series.
    set(&mut h, "h", "h_bucket", &[("b", "1"), ("le", "+Inf")], 1.0);
    set(&mut g, "g", "g", &[("a", "1")], 1.0);
    check(&mut c, 3);
    // A new family: only a fresh build decides its type and help.
    set(&mut c1, "n", "n_total", &[], 1.0);
    let got = c.collect(NONE_DEAD).unwrap().families;
    assert_eq!(got, fresh(p));
    assert_eq!((c.plans_built(), c.plans_extended()), (2, 3));
}

/// A new entry that would change a family rule (an earlier first sighting with another
/// type, a later gauge file with another mode) is decided by a fresh build.
#[test]
fn test_issue_11_rule_changes_build_afresh() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let mut c1 = DbWriter::open(&p.join("counter_1.db")).unwrap();
    let mut g1 = DbWriter::open(&p.join("gauge_max_1.db")).unwrap();
    let mut g2 = DbWriter::open(&p.join("gauge_sum_2.db")).unwrap();
    set(&mut c1, "c", "c_total", &[], 1.0);
    set(&mut g1, "x", "x", &[], 2.0);
    set(&mut g2, "g", "g", &[], 3.0);
    let mut c = Collector::new(p);
    c.collect(NONE_DEAD).unwrap();
    let steps: [(&mut DbWriter, &str, &str); 2] = [
        // `x` first seen in a gauge file; now in the counter file before it.
        (&mut c1, "x", "x_total"),
        // `g` last mentioned by a sum file; the max file before it changes nothing...
        (&mut g1, "g", "g"),
    ];
    let mut built = 1;
    for (w, metric, name) in steps {
        set(w, metric, name, &[("k", "v")], 1.0);
        let got = c.collect(NONE_DEAD).unwrap().families;
        assert_eq!(got, fresh(p));
        built += u64::from(metric == "x");
        assert_eq!(c.plans_built(), built, "after {name}");
    }
    // ...but a later file of another mode does.
    let mut g3 = DbWriter::open(&p.join("gauge_sum_3.db")).unwrap();
    set(&mut g3, "g", "g", &[], 1.0);
    c.collect(NONE_DEAD).unwrap();
    set(&mut g3, "x", "x", &[], 1.0);
    let got = c.collect(NONE_DEAD).unwrap().families;
    assert_eq!(got, fresh(p));
    assert_eq!(c.plans_built(), built + 2);
}
