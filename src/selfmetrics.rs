//! The sidecar's own metrics, all declared here; each family's HELP is written next to it.
//!
//! They are rendered through the same merge output types and renderer as the workers'
//! metrics, so they follow the negotiated format. Values that belong to a merge pass
//! (files, series, errors) are taken from that pass; counters are process-wide atomics.

use crate::collect::Pass;
use crate::compact::Report;
use crate::merge::{Family, Sample};
use crate::model::MetricType;
use crate::parse::index::LabelSet;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Prefix of every family we own.
pub const PREFIX: &str = "multiproc_exporter_";

/// Upper bounds of the merge duration histogram, in seconds.
const DURATION_BOUNDS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Process-wide counters of the sidecar.
#[derive(Debug, Default)]
pub struct SelfMetrics {
    merges: AtomicU64,
    merge_failures: AtomicU64,
    requests: AtomicU64,
    timeouts: AtomicU64,
    response_bytes: AtomicU64,
    durations: Mutex<DurationHistogram>,
    file_errors: Mutex<BTreeMap<&'static str, u64>>,
    lifecycle: Mutex<LifecycleState>,
}

#[derive(Debug, Default)]
struct LifecycleState {
    mode: &'static str,
    evidence: &'static str,
    last: Report,
    compactions: u64,
    absorbed: u64,
    removed: u64,
    wipes: u64,
    skipped: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Default)]
struct DurationHistogram {
    buckets: [u64; DURATION_BOUNDS.len()],
    count: u64,
    sum: f64,
}

impl SelfMetrics {
    /// Records a finished merge pass.
    pub fn merged(&self, took: Duration, pass: &Pass) {
        self.merges.fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        if let Ok(mut h) = self.durations.lock() {
            if let Some(i) = DURATION_BOUNDS.iter().position(|&b| secs <= b) {
                h.buckets[i] += 1;
            }
            h.count += 1;
            h.sum += secs;
        }
        if let Ok(mut errors) = self.file_errors.lock() {
            for issue in &pass.issues {
                *errors.entry(issue.reason.as_str()).or_default() += 1;
            }
        }
    }

    /// Records a lifecycle tick.
    pub fn lifecycle(&self, report: &Report, mode: &'static str, evidence: &'static str) {
        if let Ok(mut l) = self.lifecycle.lock() {
            l.mode = mode;
            l.evidence = evidence;
            l.compactions += u64::from(report.absorbed > 0);
            l.absorbed += report.absorbed as u64;
            l.removed += report.removed as u64;
            l.wipes += u64::from(report.wiped);
            if let Some((reason, _)) = &report.skipped {
                *l.skipped.entry(reason).or_default() += 1;
            }
            l.last = report.clone();
        }
    }

    /// Records a pass that could not list the directory.
    pub fn merge_failed(&self) {
        self.merge_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a request to the telemetry path.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a scrape that ran out of its `X-Prometheus-Scrape-Timeout-Seconds`.
    pub fn timed_out(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a response body sent.
    pub fn served(&self, bytes: usize) {
        self.response_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Merge passes so far.
    pub fn merges(&self) -> u64 {
        self.merges.load(Ordering::Relaxed)
    }

    /// The families describing the sidecar and `pass`.
    pub fn families(&self, pass: &Pass, ready: bool) -> Vec<Family> {
        let mut out = Vec::new();
        let mut fam = |name: &str, typ, help: &str, samples: Vec<Sample>| {
            out.push(Family {
                name: name.into(),
                help: help.into(),
                typ,
                samples,
            })
        };
        let c = |n: &str, v: u64| sample(n, &[], v as f64);
        fam(
            "multiproc_exporter_build_info",
            MetricType::Gauge,
            "Version of multiproc-exporter; always 1.",
            vec![sample(
                "multiproc_exporter_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))],
                1.0,
            )],
        );
        fam(
            "multiproc_exporter_ready",
            MetricType::Gauge,
            "1 when the directory is readable and has been read in full.",
            vec![sample(
                "multiproc_exporter_ready",
                &[],
                f64::from(u8::from(ready)),
            )],
        );
        fam(
            "multiproc_exporter_merges",
            MetricType::Counter,
            "Merge passes over the directory. Concurrent scrapes share a pass.",
            vec![c("multiproc_exporter_merges_total", self.merges())],
        );
        fam(
            "multiproc_exporter_merge_failures",
            MetricType::Counter,
            "Merge passes that failed because the directory could not be listed.",
            vec![c(
                "multiproc_exporter_merge_failures_total",
                self.merge_failures.load(Ordering::Relaxed),
            )],
        );
        fam(
            "multiproc_exporter_scrapes",
            MetricType::Counter,
            "Requests to the telemetry path.",
            vec![c(
                "multiproc_exporter_scrapes_total",
                self.requests.load(Ordering::Relaxed),
            )],
        );
        fam(
            "multiproc_exporter_scrape_timeouts",
            MetricType::Counter,
            "Scrapes whose X-Prometheus-Scrape-Timeout-Seconds ran out before a fresh merge.",
            vec![c(
                "multiproc_exporter_scrape_timeouts_total",
                self.timeouts.load(Ordering::Relaxed),
            )],
        );
        fam(
            "multiproc_exporter_response_bytes",
            MetricType::Counter,
            "Bytes of response bodies sent on the telemetry path (after compression).",
            vec![c(
                "multiproc_exporter_response_bytes_total",
                self.response_bytes.load(Ordering::Relaxed),
            )],
        );
        if let Ok(h) = self.durations.lock() {
            let mut samples = Vec::new();
            let mut acc = 0u64;
            for (i, &bound) in DURATION_BOUNDS.iter().chain(&[f64::INFINITY]).enumerate() {
                acc += h.buckets.get(i).copied().unwrap_or(0);
                let mut s = c("multiproc_exporter_merge_duration_seconds_bucket", acc);
                s.le = Some(bound);
                samples.push(s);
            }
            samples.push(c(
                "multiproc_exporter_merge_duration_seconds_count",
                h.count,
            ));
            samples.push(sample(
                "multiproc_exporter_merge_duration_seconds_sum",
                &[],
                h.sum,
            ));
            fam(
                "multiproc_exporter_merge_duration_seconds",
                MetricType::Histogram,
                "Time to list, read and merge the directory.",
                samples,
            );
        }
        if let Ok(errors) = self.file_errors.lock() {
            let samples = errors
                .iter()
                .map(|(reason, n)| {
                    sample(
                        "multiproc_exporter_file_errors_total",
                        &[("reason", reason)],
                        *n as f64,
                    )
                })
                .collect();
            fam(
                "multiproc_exporter_file_errors",
                MetricType::Counter,
                "Problems met with single files, by reason, counted once per merge pass.",
                samples,
            );
        }
        let mut bad: BTreeMap<&str, usize> = BTreeMap::new();
        for issue in &pass.issues {
            *bad.entry(issue.reason.as_str()).or_default() += 1;
        }
        fam(
            "multiproc_exporter_bad_files",
            MetricType::Gauge,
            "Files with a problem in the latest merge pass, by reason.",
            bad.iter()
                .map(|(r, n)| sample("multiproc_exporter_bad_files", &[("reason", r)], *n as f64))
                .collect(),
        );
        fam(
            "multiproc_exporter_files",
            MetricType::Gauge,
            "Files merged in the latest pass, by kind.",
            pass.files_by_kind
                .iter()
                .map(|(k, n)| sample("multiproc_exporter_files", &[("kind", k)], *n as f64))
                .collect(),
        );
        fam(
            "multiproc_exporter_writer_pids",
            MetricType::Gauge,
            "Distinct process identifiers in the file names of the latest pass.",
            vec![sample(
                "multiproc_exporter_writer_pids",
                &[],
                pass.pids as f64,
            )],
        );
        fam(
            "multiproc_exporter_entries",
            MetricType::Gauge,
            "Entries (per-process samples) read in the latest pass.",
            vec![sample(
                "multiproc_exporter_entries",
                &[],
                pass.entries as f64,
            )],
        );
        let series: usize = pass.families.iter().map(|f| f.samples.len()).sum();
        fam(
            "multiproc_exporter_series",
            MetricType::Gauge,
            "Merged series exposed from the directory.",
            vec![sample("multiproc_exporter_series", &[], series as f64)],
        );
        fam(
            "multiproc_exporter_family_series",
            MetricType::Gauge,
            "Merged series exposed per metric family: cardinality is what hurts Prometheus.",
            pass.families
                .iter()
                .map(|f| {
                    sample(
                        "multiproc_exporter_family_series",
                        &[("family", &f.name)],
                        f.samples.len() as f64,
                    )
                })
                .collect(),
        );
        if let Ok(l) = self.lifecycle.lock() {
            if !l.mode.is_empty() {
                fam(
                    "multiproc_exporter_liveness_info",
                    MetricType::Gauge,
                    "The --liveness mode and the evidence in use (lock, proc, lock+proc, none).",
                    vec![sample(
                        "multiproc_exporter_liveness_info",
                        &[("evidence", l.evidence), ("mode", l.mode)],
                        1.0,
                    )],
                );
            }
            fam(
                "multiproc_exporter_writers",
                MetricType::Gauge,
                "Writer pids at the last lifecycle round, by state (unknown counts as alive).",
                [
                    ("alive", l.last.alive),
                    ("dead", l.last.dead),
                    ("unknown", l.last.unknown),
                ]
                .iter()
                .map(|(st, n)| sample("multiproc_exporter_writers", &[("state", st)], *n as f64))
                .collect(),
            );
            fam(
                "multiproc_exporter_compactions",
                MetricType::Counter,
                "Lifecycle rounds that folded dead writers' files into archives.",
                vec![c("multiproc_exporter_compactions_total", l.compactions)],
            );
            fam(
                "multiproc_exporter_files_absorbed",
                MetricType::Counter,
                "Dead writers' files folded into archives.",
                vec![c("multiproc_exporter_files_absorbed_total", l.absorbed)],
            );
            fam(
                "multiproc_exporter_files_removed",
                MetricType::Counter,
                "Files removed: absorbed files, live gauges of dead writers, stale files.",
                vec![c("multiproc_exporter_files_removed_total", l.removed)],
            );
            fam(
                "multiproc_exporter_stale_wipes",
                MetricType::Counter,
                "Directories cleaned at start because every writer in them was dead.",
                vec![c("multiproc_exporter_stale_wipes_total", l.wipes)],
            );
            fam(
                "multiproc_exporter_compaction_skipped",
                MetricType::Counter,
                "Lifecycle rounds that could not compact, by reason (no_space, no_write_permission, error).",
                l.skipped
                    .iter()
                    .map(|(r, n)| {
                        sample(
                            "multiproc_exporter_compaction_skipped_total",
                            &[("reason", r)],
                            *n as f64,
                        )
                    })
                    .collect(),
            );
        }
        out.extend(process_families());
        out
    }
}

/// A sample without `pid` or `le`; labels must be given sorted by name.
pub fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
    let labels: LabelSet = labels
        .iter()
        .map(|(k, v)| (Box::from(*k), Box::from(*v)))
        .collect();
    Sample {
        name: name.into(),
        labels,
        pid: None,
        le: None,
        value,
        prefix: None,
    }
}

/// The standard `process_*` metrics of this process, read from `/proc/self`.
pub fn process_families() -> Vec<Family> {
    let mut out = Vec::new();
    let mut gauge = |name: &str, typ, help: &str, value: f64| {
        let sample_name = if typ == MetricType::Counter {
            format!("{name}_total")
        } else {
            name.to_owned()
        };
        out.push(Family {
            name: name.into(),
            help: help.into(),
            typ,
            samples: vec![sample(&sample_name, &[], value)],
        });
    };
    let ticks = 100.0; // USER_HZ on Linux.
    let page = 4096.0;
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name, which may contain spaces.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
        if let (Some(utime), Some(stime)) = (num(11), num(12)) {
            gauge(
                "process_cpu_seconds",
                MetricType::Counter,
                "Total user and system CPU time spent in seconds.",
                (utime + stime) / ticks,
            );
        }
        if let Some(vsize) = num(20) {
            gauge(
                "process_virtual_memory_bytes",
                MetricType::Gauge,
                "Virtual memory size in bytes.",
                vsize,
            );
        }
        if let Some(rss) = num(21) {
            gauge(
                "process_resident_memory_bytes",
                MetricType::Gauge,
                "Resident memory size in bytes.",
                rss * page,
            );
        }
        if let (Some(start), Some(boot)) = (num(19), boot_time()) {
            gauge(
                "process_start_time_seconds",
                MetricType::Gauge,
                "Start time of the process since unix epoch in seconds.",
                boot + start / ticks,
            );
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            "process_open_fds",
            MetricType::Gauge,
            "Number of open file descriptors.",
            fds.count() as f64,
        );
    }
    if let Some(max) = max_fds() {
        gauge(
            "process_max_fds",
            MetricType::Gauge,
            "Maximum number of open file descriptors.",
            max,
        );
    }
    out
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("btime "))?;
    line[6..].trim().parse().ok()
}

fn max_fds() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Seconds since the epoch, for logs and landing pages.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_metrics_are_present_and_sane() {
        let fams = process_families();
        let get = |n: &str| {
            fams.iter()
                .find(|f| &*f.name == n)
                .map(|f| f.samples[0].value)
        };
        assert!(get("process_resident_memory_bytes").unwrap() > 0.0);
        assert!(get("process_open_fds").unwrap() >= 3.0);
        let start = get("process_start_time_seconds").unwrap();
        assert!(start > 1.6e9 && start <= unix_now() + 1.0);
        assert_eq!(
            fams.iter()
                .find(|f| &*f.name == "process_cpu_seconds")
                .unwrap()
                .samples[0]
                .name
                .as_ref(),
            "process_cpu_seconds_total"
        );
    }
}
