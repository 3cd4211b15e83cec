//! The sidecar's own metrics, declared once, in [`TABLE`]: name, type, help, label names,
//! and where the values come from.
//!
//! They are rendered through the same model types and renderer as the workers' metrics,
//! so they follow the negotiated format. Values that belong to a merge pass (files,
//! series, errors) are taken from that pass; counters are process-wide. Every labelled
//! series whose label values are known in advance (reasons, kinds, states, evidence) is
//! exported from the start, at 0, so `increase()` and alerts see the first event. The
//! sidecar's own process metrics are `multiproc_exporter_process_*`: bare `process_*`
//! names on `/metrics` belong to the application the sidecar stands in for.
//!
//! To add a self-metric: one row in [`TABLE`] (and, if it needs a new input, a field in
//! [`SelfMetrics`] with a method to record it), and one row in the self-metrics table of
//! `docs/operations.md`, which a test keeps equal to what a scrape exposes.

use crate::collect::Pass;
use crate::compact::Report;
use crate::liveness::Evidence;
use crate::model::{Family, MetricType, Reason, Sample};
use crate::procfs;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Prefix of every family we own.
pub const PREFIX: &str = "multiproc_exporter_";

/// Upper bounds of the merge duration histogram, in seconds (`+Inf` is added).
const DURATION_BOUNDS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Why compaction can be skipped (the `reason` of `compaction_skipped_total`).
pub const SKIP_REASONS: [&str; 3] = ["no_space", "no_write_permission", "error"];

/// Where a scrape that could not be produced failed (the `stage` of
/// `scrape_failures_total`).
pub const FAILURE_STAGES: [&str; 2] = ["collect", "render"];

/// File kinds, as `FileKind::label` spells them.
const KINDS: [&str; 5] = ["counter", "gauge", "histogram", "summary", "unknown"];

/// One self-metric family.
pub struct Def {
    /// The family name without [`PREFIX`] (a counter's without `_total`).
    pub name: &'static str,
    /// The type; counters get `_total`, histograms `_bucket` (with `+Inf`), `_count`
    /// and `_sum`.
    pub typ: MetricType,
    /// Help text.
    pub help: &'static str,
    /// Label names, in the order `values` gives label values.
    pub labels: &'static [&'static str],
    values: fn(&Inputs<'_>, &mut Out),
}

/// Everything a self-metric may read, gathered once per scrape.
struct Inputs<'a> {
    pass: &'a Pass,
    ready: bool,
    m: &'a SelfMetrics,
    lifecycle: &'a LifecycleState,
    durations: &'a DurationHistogram,
    process: Option<procfs::Stat>,
}

/// Collects the samples of one family.
struct Out {
    name: String,
    typ: MetricType,
    labels: &'static [&'static str],
    samples: Vec<Sample>,
}

impl Out {
    /// One sample with these label values (in [`Def::labels`] order).
    fn set(&mut self, values: &[&str], value: f64) {
        let suffix = if self.typ == MetricType::Counter {
            "_total"
        } else {
            ""
        };
        let name = format!("{}{suffix}", self.name);
        self.push(&name, values, None, value);
    }

    fn count(&mut self, values: &[&str], n: u64) {
        self.set(values, n as f64);
    }

    fn push(&mut self, name: &str, values: &[&str], le: Option<f64>, value: f64) {
        let mut labels: Vec<(&str, &str)> = self
            .labels
            .iter()
            .copied()
            .zip(values.iter().copied())
            .collect();
        labels.sort_unstable();
        let mut s = Sample::new(name, &labels, value);
        s.le = le;
        self.samples.push(s);
    }

    /// A histogram: cumulative buckets up to `+Inf` (which always equals the count),
    /// then `_count` and `_sum`.
    fn histogram(&mut self, bounds: &[f64], buckets: &[u64], count: u64, sum: f64) {
        let bucket = format!("{}_bucket", self.name);
        let mut acc = 0u64;
        for (i, &bound) in bounds.iter().enumerate() {
            acc += buckets.get(i).copied().unwrap_or(0);
            self.push(&bucket, &[], Some(bound), acc as f64);
        }
        self.push(&bucket, &[], Some(f64::INFINITY), count as f64);
        self.push(&format!("{}_count", self.name), &[], None, count as f64);
        self.push(&format!("{}_sum", self.name), &[], None, sum);
    }
}

const fn def(
    name: &'static str,
    typ: MetricType,
    help: &'static str,
    labels: &'static [&'static str],
    values: fn(&Inputs<'_>, &mut Out),
) -> Def {
    Def {
        name,
        typ,
        help,
        labels,
        values,
    }
}

use MetricType::{Counter, Gauge, Histogram};

/// Every self-metric, in exposition order.
pub static TABLE: &[Def] = &[
    def(
        "build_info",
        Gauge,
        "Version of multiproc-exporter; always 1.",
        &["version"],
        |_, o| o.set(&[env!("CARGO_PKG_VERSION")], 1.0),
    ),
    def(
        "ready",
        Gauge,
        "1 when the directory is readable and has been read in full; 0 while it is missing or unusable.",
        &[],
        |i, o| o.set(&[], f64::from(u8::from(i.ready))),
    ),
    def(
        "merges",
        Counter,
        "Merge passes over the directory. Concurrent scrapes share a pass.",
        &[],
        |i, o| o.count(&[], i.m.merges.load(Ordering::Relaxed)),
    ),
    def(
        "merge_failures",
        Counter,
        "Merge passes that failed because the directory could not be listed.",
        &[],
        |i, o| o.count(&[], i.m.merge_failures.load(Ordering::Relaxed)),
    ),
    def(
        "merge_duration_seconds",
        Histogram,
        "Time to list, read and merge the directory.",
        &[],
        |i, o| {
            let d = i.durations;
            o.histogram(&DURATION_BOUNDS, &d.buckets, d.count, d.sum)
        },
    ),
    def(
        "scrapes",
        Counter,
        "Requests to the telemetry path.",
        &[],
        |i, o| o.count(&[], i.m.requests.load(Ordering::Relaxed)),
    ),
    def(
        "scrape_timeouts",
        Counter,
        "Scrapes whose X-Prometheus-Scrape-Timeout-Seconds ran out before a fresh merge.",
        &[],
        |i, o| o.count(&[], i.m.timeouts.load(Ordering::Relaxed)),
    ),
    def(
        "scrape_failures",
        Counter,
        "Scrapes answered 500 because producing them failed, by stage (collect, render).",
        &["stage"],
        |i, o| {
            for (stage, n) in FAILURE_STAGES.iter().zip(&i.m.failures) {
                o.count(&[stage], n.load(Ordering::Relaxed))
            }
        },
    ),
    def(
        "response_bytes",
        Counter,
        "Bytes of response bodies sent on the telemetry path (after compression).",
        &[],
        |i, o| o.count(&[], i.m.response_bytes.load(Ordering::Relaxed)),
    ),
    def(
        "file_errors",
        Counter,
        "Problems met with single files, by reason, counted once per merge pass.",
        &["reason"],
        |i, o| {
            let errors = i.m.file_errors.lock().unwrap_or_else(|e| e.into_inner());
            for r in Reason::ALL {
                o.count(&[r.as_str()], errors.get(&r).copied().unwrap_or(0))
            }
        },
    ),
    def(
        "bad_files",
        Gauge,
        "Files with a problem in the latest merge pass, by reason.",
        &["reason"],
        |i, o| {
            for r in Reason::ALL {
                let n = i.pass.issues.iter().filter(|x| x.reason() == r).count();
                o.set(&[r.as_str()], n as f64)
            }
        },
    ),
    def(
        "files_skipped",
        Gauge,
        "Files skipped in the latest pass without being a problem, by reason (young: created moments ago and not sized yet).",
        &["reason"],
        |i, o| o.set(&["young"], i.pass.young as f64),
    ),
    def(
        "files",
        Gauge,
        "Files merged in the latest pass, by kind.",
        &["kind"],
        |i, o| {
            for k in KINDS {
                o.set(
                    &[k],
                    i.pass.files_by_kind.get(k).copied().unwrap_or(0) as f64,
                )
            }
        },
    ),
    def(
        "writer_pids",
        Gauge,
        "Distinct process identifiers in the file names of the latest pass.",
        &[],
        |i, o| o.set(&[], i.pass.pids as f64),
    ),
    def(
        "entries",
        Gauge,
        "Entries (per-process samples) read in the latest pass.",
        &[],
        |i, o| o.set(&[], i.pass.entries as f64),
    ),
    def(
        "series",
        Gauge,
        "Merged series exposed from the directory.",
        &[],
        |i, o| {
            o.set(
                &[],
                i.pass
                    .families
                    .iter()
                    .map(|f| f.samples.len())
                    .sum::<usize>() as f64,
            )
        },
    ),
    def(
        "family_series",
        Gauge,
        "Merged series exposed per metric family: cardinality is what hurts Prometheus.",
        &["family"],
        |i, o| {
            for f in &i.pass.families {
                o.set(&[&f.name], f.samples.len() as f64)
            }
        },
    ),
    def(
        "liveness_info",
        Gauge,
        "The --liveness mode and the evidence in use (lock, proc, lock+proc, none).",
        &["evidence", "mode"],
        |i, o| {
            if !i.lifecycle.mode.is_empty() {
                o.set(&[i.lifecycle.evidence, i.lifecycle.mode], 1.0)
            }
        },
    ),
    def(
        "writers",
        Gauge,
        "Writer pids at the last lifecycle round, by state (unknown counts as alive).",
        &["state"],
        |i, o| {
            let l = &i.lifecycle.last;
            for (state, n) in [("alive", l.alive), ("dead", l.dead), ("unknown", l.unknown)] {
                o.set(&[state], n as f64)
            }
        },
    ),
    def(
        "writers_proven_dead",
        Counter,
        "Writer pids proven dead, by the evidence that proved it (lock_released, process_gone, pid_reused).",
        &["evidence"],
        |i, o| {
            for e in Evidence::ALL {
                o.count(
                    &[e.as_str()],
                    i.lifecycle.proven.get(&e).copied().unwrap_or(0),
                )
            }
        },
    ),
    def(
        "compactions",
        Counter,
        "Lifecycle rounds that folded dead writers' files into archives.",
        &[],
        |i, o| o.count(&[], i.lifecycle.compactions),
    ),
    def(
        "files_absorbed",
        Counter,
        "Dead writers' files folded into archives.",
        &[],
        |i, o| o.count(&[], i.lifecycle.absorbed),
    ),
    def(
        "files_removed",
        Counter,
        "Files removed: absorbed files, live gauges of dead writers, stale files.",
        &[],
        |i, o| o.count(&[], i.lifecycle.removed),
    ),
    def(
        "stale_wipes",
        Counter,
        "Directories cleaned at start because every writer in them was dead.",
        &[],
        |i, o| o.count(&[], i.lifecycle.wipes),
    ),
    def(
        "compaction_skipped",
        Counter,
        "Lifecycle rounds that could not compact, by reason (no_space, no_write_permission, error).",
        &["reason"],
        |i, o| {
            for r in SKIP_REASONS {
                o.count(&[r], i.lifecycle.skipped.get(r).copied().unwrap_or(0))
            }
        },
    ),
    def(
        "process_cpu_seconds",
        Counter,
        "User and system CPU time of the sidecar process, in seconds.",
        &[],
        |i, o| {
            if let Some(s) = &i.process {
                o.set(&[], s.cpu_seconds())
            }
        },
    ),
    def(
        "process_resident_memory_bytes",
        Gauge,
        "Resident memory of the sidecar process, in bytes.",
        &[],
        |i, o| {
            if let Some(s) = &i.process {
                o.set(&[], s.rss_bytes() as f64)
            }
        },
    ),
    def(
        "process_virtual_memory_bytes",
        Gauge,
        "Virtual memory of the sidecar process, in bytes.",
        &[],
        |i, o| {
            if let Some(s) = &i.process {
                o.set(&[], s.vsize as f64)
            }
        },
    ),
    def(
        "process_start_time_seconds",
        Gauge,
        "Start time of the sidecar process since the unix epoch, in seconds.",
        &[],
        |i, o| {
            if let Some(t) = i.process.and_then(|s| s.start_time()) {
                let secs = t
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                o.set(&[], (secs * 100.0).round() / 100.0)
            }
        },
    ),
    def(
        "process_open_fds",
        Gauge,
        "Open file descriptors of the sidecar process.",
        &[],
        |_, o| {
            if let Some(n) = procfs::open_fds() {
                o.set(&[], n as f64)
            }
        },
    ),
    def(
        "process_max_fds",
        Gauge,
        "The sidecar process's limit on open file descriptors.",
        &[],
        |_, o| {
            if let Some(n) = procfs::max_fds() {
                o.set(&[], n as f64)
            }
        },
    ),
];

/// Process-wide counters of the sidecar.
#[derive(Debug, Default)]
pub struct SelfMetrics {
    merges: AtomicU64,
    merge_failures: AtomicU64,
    requests: AtomicU64,
    timeouts: AtomicU64,
    failures: [AtomicU64; FAILURE_STAGES.len()],
    response_bytes: AtomicU64,
    durations: Mutex<DurationHistogram>,
    file_errors: Mutex<BTreeMap<Reason, u64>>,
    lifecycle: Mutex<LifecycleState>,
}

#[derive(Debug, Default)]
struct LifecycleState {
    mode: &'static str,
    evidence: &'static str,
    last: Report,
    proven: BTreeMap<Evidence, u64>,
    compactions: u64,
    absorbed: u64,
    removed: u64,
    wipes: u64,
    skipped: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Default)]
struct DurationHistogram {
    /// Per bound, then one for observations above the last bound.
    buckets: [u64; DURATION_BOUNDS.len() + 1],
    count: u64,
    sum: f64,
}

impl DurationHistogram {
    fn observe(&mut self, secs: f64) {
        let i = DURATION_BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(DURATION_BOUNDS.len());
        self.buckets[i] += 1;
        self.count += 1;
        self.sum += secs;
    }
}

impl SelfMetrics {
    /// Records a finished merge pass.
    pub fn merged(&self, took: Duration, pass: &Pass) {
        self.merges.fetch_add(1, Ordering::Relaxed);
        self.durations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(took.as_secs_f64());
        let mut errors = self.file_errors.lock().unwrap_or_else(|e| e.into_inner());
        for issue in &pass.issues {
            *errors.entry(issue.reason()).or_default() += 1;
        }
    }

    /// Records a lifecycle tick.
    pub fn lifecycle(&self, report: &Report, mode: &'static str, evidence: &'static str) {
        let mut l = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        l.mode = mode;
        l.evidence = evidence;
        l.compactions += u64::from(report.absorbed > 0);
        l.absorbed += report.absorbed as u64;
        l.removed += report.removed as u64;
        l.wipes += u64::from(report.wiped);
        for (_, e) in &report.proven {
            *l.proven.entry(*e).or_default() += 1;
        }
        if let Some((reason, _)) = &report.skipped {
            *l.skipped.entry(reason).or_default() += 1;
        }
        l.last = report.clone();
    }

    /// Records a pass that could not list the directory.
    pub fn merge_failed(&self) {
        self.merge_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a scrape that failed at `stage` (one of [`FAILURE_STAGES`]).
    pub fn scrape_failed(&self, stage: &str) {
        if let Some(i) = FAILURE_STAGES.iter().position(|s| *s == stage) {
            self.failures[i].fetch_add(1, Ordering::Relaxed);
        }
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

    /// The families describing the sidecar and `pass`; `ready` false means the
    /// directory could not be read (then `pass` is empty).
    pub fn families(&self, pass: &Pass, ready: bool) -> Vec<Family> {
        let lifecycle = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        let durations = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        let inputs = Inputs {
            pass,
            ready,
            m: self,
            lifecycle: &lifecycle,
            durations: &durations,
            process: procfs::stat(None).ok(),
        };
        TABLE
            .iter()
            .filter_map(|d| {
                let mut out = Out {
                    name: format!("{PREFIX}{}", d.name),
                    typ: d.typ,
                    labels: d.labels,
                    samples: Vec::new(),
                };
                (d.values)(&inputs, &mut out);
                (!out.samples.is_empty()).then(|| Family {
                    name: out.name.into(),
                    help: d.help.into(),
                    typ: d.typ,
                    samples: out.samples,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family<'a>(fams: &'a [Family], name: &str) -> &'a Family {
        fams.iter()
            .find(|f| &*f.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn process_metrics_are_present_and_sane() {
        let fams = SelfMetrics::default().families(&Pass::default(), true);
        let get = |n: &str| family(&fams, n).samples[0].value;
        assert!(get("multiproc_exporter_process_resident_memory_bytes") > 0.0);
        assert!(get("multiproc_exporter_process_open_fds") >= 3.0);
        let start = get("multiproc_exporter_process_start_time_seconds");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(start > 1.6e9 && start <= now + 1.0);
        assert_eq!(
            &*family(&fams, "multiproc_exporter_process_cpu_seconds").samples[0].name,
            "multiproc_exporter_process_cpu_seconds_total"
        );
        assert!(fams.iter().all(|f| f.name.starts_with(PREFIX)));
    }

    #[test]
    fn test_issue_8_slow_merges_are_in_the_inf_bucket() {
        let m = SelfMetrics::default();
        m.merged(Duration::from_millis(2), &Pass::default());
        m.merged(Duration::from_secs(6), &Pass::default());
        let fams = m.families(&Pass::default(), true);
        let h = family(&fams, "multiproc_exporter_merge_duration_seconds");
        let inf = h
            .samples
            .iter()
            .find(|s| s.le == Some(f64::INFINITY))
            .unwrap();
        let count = h
            .samples
            .iter()
            .find(|s| s.name.ends_with("_count"))
            .unwrap();
        let five = h.samples.iter().find(|s| s.le == Some(5.0)).unwrap();
        assert_eq!((inf.value, count.value, five.value), (2.0, 2.0, 1.0));
    }

    #[test]
    fn test_issue_8_labelled_counters_start_at_zero_for_every_label_value() {
        let fams = SelfMetrics::default().families(&Pass::default(), false);
        let errors = family(&fams, "multiproc_exporter_file_errors");
        assert_eq!(errors.samples.len(), Reason::ALL.len());
        assert!(errors.samples.iter().all(|s| s.value == 0.0));
        assert_eq!(
            family(&fams, "multiproc_exporter_compaction_skipped")
                .samples
                .len(),
            SKIP_REASONS.len()
        );
        assert_eq!(
            family(&fams, "multiproc_exporter_writers_proven_dead")
                .samples
                .len(),
            Evidence::ALL.len()
        );
        assert_eq!(
            family(&fams, "multiproc_exporter_ready").samples[0].value,
            0.0
        );
    }
}
