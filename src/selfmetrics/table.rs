//! The table of self-metrics: one row per family, with where its values come from.

use super::{
    DURATION_BOUNDS, DurationHistogram, HandshakeFailure, LifecycleState, Refusal, ScrapeStage,
    SelfMetrics,
};
use crate::collect::Pass;
use crate::compact::SkipReason;
use crate::liveness::Evidence;
use crate::model::{FileKind, LabelSet, LayoutBuilder, MetricType, Reason};
use crate::procfs;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// One self-metric family.
pub struct Def {
    /// The family name without [`super::PREFIX`] (a counter's without `_total`).
    pub name: &'static str,
    /// The type; counters get `_total`, histograms `_bucket` (with `+Inf`), `_count`
    /// and `_sum`.
    pub typ: MetricType,
    /// Help text.
    pub help: &'static str,
    /// Label names, in the order `values` gives label values.
    pub labels: &'static [&'static str],
    pub(super) values: fn(&Inputs<'_>, &mut Out),
}

/// Everything a self-metric may read, gathered once per scrape.
pub(super) struct Inputs<'a> {
    pub(super) pass: &'a Pass,
    pub(super) ready: bool,
    pub(super) m: &'a SelfMetrics,
    pub(super) lifecycle: &'a LifecycleState,
    pub(super) durations: &'a DurationHistogram,
    pub(super) process: Option<procfs::Stat>,
}

/// Collects the samples of one family.
pub(super) struct Out {
    pub(super) name: String,
    pub(super) typ: MetricType,
    pub(super) labels: &'static [&'static str],
    /// The series so far, and their values.
    pub(super) layout: LayoutBuilder,
    pub(super) values: Vec<Option<f64>>,
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
        let name: Arc<str> = Arc::from(name);
        self.layout.push(&name, &LabelSet::new(labels), None, le);
        self.values.push(Some(value));
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
        "connections_rejected",
        Counter,
        "Connections closed at once because every connection slot (half the file descriptor limit) was taken by a connection with a request in hand.",
        &[],
        |i, o| o.count(&[], i.m.rejected.load(Ordering::Relaxed)),
    ),
    def(
        "connections_evicted",
        Counter,
        "Idle connections (no request in hand) closed, the longest idle first, to make room for a new connection when every connection slot was taken.",
        &[],
        |i, o| o.count(&[], i.m.evicted.load(Ordering::Relaxed)),
    ),
    def(
        "write_timeouts",
        Counter,
        "Connections reset because a response was not written within --web.write-timeout (a client that reads too slowly or not at all).",
        &[],
        |i, o| o.count(&[], i.m.write_timeouts.load(Ordering::Relaxed)),
    ),
    def(
        "scrape_failures",
        Counter,
        "Scrapes answered 500 because producing them failed, by stage.",
        &["stage"],
        |i, o| {
            for stage in ScrapeStage::ALL {
                let n = i.m.failures[stage as usize].load(Ordering::Relaxed);
                o.count(&[stage.as_str()], n)
            }
        },
    ),
    def(
        "tls_handshake_failures",
        Counter,
        "TLS handshakes that did not complete, by reason: refused (by rustls: no shared version or suite, a missing or bad client certificate), timeout (--web.header-timeout), plain_http (answered 400). Only with --web.config.file.",
        &["reason"],
        |i, o| {
            if i.m.web.get().is_some() {
                for why in HandshakeFailure::ALL {
                    let n = i.m.handshake_failures[why as usize].load(Ordering::Relaxed);
                    o.count(&[why.as_str()], n)
                }
            }
        },
    ),
    def(
        "http_requests_refused",
        Counter,
        "Requests answered without being served, by reason: unauthorized (401), auth_busy (429: too many password checks waiting), rate_limited (429). Only with --web.config.file.",
        &["reason"],
        |i, o| {
            if i.m.web.get().is_some() {
                for why in Refusal::ALL {
                    let n = i.m.refused[why as usize].load(Ordering::Relaxed);
                    o.count(&[why.as_str()], n)
                }
            }
        },
    ),
    def(
        "web_config_last_reload_successful",
        Gauge,
        "1 when the last load of --web.config.file (at start or after a change) succeeded; 0 while a changed file does not load and the last good configuration is served.",
        &[],
        |i, o| {
            if let Some(web) = i.m.web.get() {
                o.set(&[], f64::from(u8::from(web.status().last_reload_ok)));
            }
        },
    ),
    def(
        "web_config_reloads",
        Counter,
        "Loads of --web.config.file after a change, by result (success, failure).",
        &["result"],
        |i, o| {
            if let Some(web) = i.m.web.get() {
                let status = web.status();
                o.count(&["success"], status.reloads);
                o.count(&["failure"], status.reload_failures);
            }
        },
    ),
    def(
        "tls_certificate_not_after_timestamp_seconds",
        Gauge,
        "When the serving certificate expires (its notAfter), in Unix seconds. Only when serving TLS.",
        &[],
        |i, o| {
            if let Some(at) = i.m.web.get().and_then(|w| w.status().cert_not_after) {
                o.set(&[], at as f64);
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
            for k in FileKind::LABELS {
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
                i.pass.families.iter().map(|f| f.len()).sum::<usize>() as f64,
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
                o.set(&[&f.name], f.len() as f64)
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
        "Writer pids proven dead, by the evidence that proved it.",
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
        "compactable_files",
        Gauge,
        "Files of writers proven dead that compaction could still fold into archives, at the last lifecycle round: 0 after a successful compaction, above 0 while compaction is skipped or off. gauge_all files (kept by design) and live gauges (deleted instead) do not count.",
        &[],
        |i, o| o.set(&[], i.lifecycle.last.compactable as f64),
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
        "Lifecycle rounds that could not compact, by reason.",
        &["reason"],
        |i, o| {
            for r in SkipReason::ALL {
                o.count(
                    &[r.as_str()],
                    i.lifecycle.skipped.get(&r).copied().unwrap_or(0),
                )
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
