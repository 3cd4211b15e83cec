//! Our `render` against `MultiProcessCollector.merge(files)` over the same files in our
//! read order, in text and OpenMetrics, through prometheus_client's own parsers and line
//! by line.

use crate::util::{assert_no_diffs, differential, harness};
use std::time::{SystemTime, UNIX_EPOCH};

fn case(name: &str) {
    let (tmp, dir) = crate::util::temp_mp();
    harness(&["case", dir.to_str().unwrap(), name]);
    let reports = differential(&[dir], tmp.path());
    assert!(reports[0].samples > 0 || name == "mostrecent_never_set");
    eprintln!("{name}: compared {} samples", reports[0].samples);
    assert_no_diffs(&reports);
}

#[test]
fn every_type_and_gauge_mode() {
    case("types_and_modes");
}

#[test]
fn label_values_and_help_with_escapes_and_unicode() {
    case("labels_escapes");
}

#[test]
fn default_custom_negative_and_huge_bucket_bounds() {
    case("histogram_bounds");
}

#[test]
fn mostrecent_gauge_never_set() {
    case("mostrecent_never_set");
}

#[test]
fn workers_disagreeing_on_help() {
    case("help_disagree");
}

#[test]
fn special_values() {
    case("special_values");
}

#[test]
fn files_grown_through_several_doublings() {
    case("big_files");
}

/// At least 50 random directories per run, from a seed printed for reproduction
/// (`MPE_SEED=<seed> cargo test random_directories`).
#[test]
fn random_directories() {
    let count = 50;
    let seed: u64 = std::env::var("MPE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs()
                % 1_000_000
        });
    eprintln!("random_directories: MPE_SEED={seed}");
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("dirs");
    std::fs::create_dir(&base).unwrap();
    harness(&[
        "random",
        base.to_str().unwrap(),
        &seed.to_string(),
        &count.to_string(),
    ]);
    let dirs: Vec<_> = (seed..seed + count)
        .map(|s| base.join(s.to_string()))
        .collect();
    let reports = differential(&dirs, tmp.path());
    let samples: u64 = reports.iter().map(|r| r.samples).sum();
    eprintln!(
        "random_directories: compared {} directories, {samples} samples",
        reports.len()
    );
    assert_eq!(reports.len(), count as usize);
    assert!(samples > 0);
    assert_no_diffs(&reports);
}
