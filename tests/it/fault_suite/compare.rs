//! The sidecar's output against `MultiProcessCollector`'s, and counts over time.

use crate::util::{app_lines, harness};
use std::collections::BTreeMap;
use std::path::Path;

/// `MultiProcessCollector`'s text exposition of `dir`.
pub fn reference_text(dir: &Path) -> String {
    harness(&["reference-text", dir.to_str().unwrap()])
}

/// The application part of an exposition: HELP/TYPE lines and samples by `name{labels}`.
fn app(text: &str) -> (Vec<String>, BTreeMap<String, String>) {
    let mut meta = Vec::new();
    let mut samples = BTreeMap::new();
    for line in app_lines(text) {
        if line.starts_with('#') {
            meta.push(line);
        } else if let Some((head, v)) = line.rsplit_once(' ') {
            samples.insert(head.to_owned(), v.to_owned());
        }
    }
    (meta, samples)
}

fn parse(v: &str) -> f64 {
    match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().unwrap_or(f64::NAN),
    }
}

/// Whether a sample is a count (must never fall, must match exactly).
fn is_count(head: &str) -> bool {
    let name = head.split('{').next().unwrap_or(head);
    name.ends_with("_total") || name.ends_with("_bucket") || name.ends_with("_count")
}

/// Differences of `got`'s application output from the reference text `want`: HELP and
/// TYPE lines exact, counts exact, other values within 1e-9 relative (NaN equals NaN).
pub fn diffs(got: &str, want: &str) -> Vec<String> {
    let (gm, gs) = app(got);
    let (wm, ws) = app(want);
    let mut out = Vec::new();
    for m in wm.iter().filter(|m| !gm.contains(m)) {
        out.push(format!("missing {m}"));
    }
    for m in gm.iter().filter(|m| !wm.contains(m)) {
        out.push(format!("extra {m}"));
    }
    for (head, w) in &ws {
        match gs.get(head) {
            None => out.push(format!("missing sample {head} {w}")),
            Some(g) => {
                let (gv, wv) = (parse(g), parse(w));
                let close = gv == wv
                    || (gv.is_nan() && wv.is_nan())
                    || (!is_count(head) && (gv - wv).abs() <= 1e-9 * gv.abs().max(wv.abs()));
                if !close {
                    out.push(format!("{head} is {g}, MultiProcessCollector says {w}"));
                }
            }
        }
    }
    for (head, g) in gs.iter().filter(|(h, _)| !ws.contains_key(*h)) {
        out.push(format!("extra sample {head} {g}"));
    }
    out
}

/// The counts of an exposition (application and self-metrics alike).
pub fn counts(text: &str) -> BTreeMap<String, f64> {
    crate::util::samples(text)
        .into_iter()
        .filter(|(h, _)| is_count(h))
        .collect()
}

/// Counts that fell or vanished from `before` to `now`.
pub fn backwards(before: &BTreeMap<String, f64>, now: &BTreeMap<String, f64>) -> Vec<String> {
    before
        .iter()
        .filter_map(|(h, b)| match now.get(h) {
            Some(n) if n >= b => None,
            n => Some(format!("{h}: {b} -> {n:?}")),
        })
        .collect()
}
