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

mod table;

pub use table::{Def, TABLE};

use crate::collect::Pass;
use crate::compact::{Report, SkipReason};
use crate::liveness::Evidence;
use crate::model::{Family, LayoutBuilder, Reason};
use crate::procfs;
use crate::web::Reloader;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Prefix of every family we own.
pub const PREFIX: &str = "multiproc_exporter_";

/// Upper bounds of the merge duration histogram, in seconds (`+Inf` is added).
const DURATION_BOUNDS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Where a scrape that could not be produced failed: the `stage` of
/// `multiproc_exporter_scrape_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScrapeStage {
    /// Reading and merging the directory.
    Collect,
    /// Rendering the exposition.
    Render,
}

impl ScrapeStage {
    /// Every stage, for declaring metric label values up front.
    pub const ALL: [ScrapeStage; 2] = [ScrapeStage::Collect, ScrapeStage::Render];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ScrapeStage::Collect => "collect",
            ScrapeStage::Render => "render",
        }
    }
}

/// Why a TLS handshake did not complete: the `reason` of
/// `multiproc_exporter_tls_handshake_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// rustls refused it (no shared version or suite, a bad or missing client
    /// certificate, a protocol error).
    Refused,
    /// Not done within `--web.header-timeout`.
    Timeout,
    /// The client spoke plain HTTP (answered `400`).
    PlainHttp,
}

impl HandshakeFailure {
    /// Every reason, for declaring the label values up front.
    pub const ALL: [HandshakeFailure; 3] = [
        HandshakeFailure::Refused,
        HandshakeFailure::Timeout,
        HandshakeFailure::PlainHttp,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::Refused => "refused",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::PlainHttp => "plain_http",
        }
    }
}

/// Why a request was answered without being served: the `reason` of
/// `multiproc_exporter_http_requests_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials, or wrong ones (`401`).
    Unauthorized,
    /// Too many password checks waiting (`429`).
    AuthBusy,
    /// `rate_limit` ran out (`429`).
    RateLimited,
}

impl Refusal {
    /// Every reason, for declaring the label values up front.
    pub const ALL: [Refusal; 3] = [
        Refusal::Unauthorized,
        Refusal::AuthBusy,
        Refusal::RateLimited,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::AuthBusy => "auth_busy",
            Refusal::RateLimited => "rate_limited",
        }
    }
}

/// Process-wide counters of the sidecar.
#[derive(Debug, Default)]
pub struct SelfMetrics {
    merges: AtomicU64,
    merge_failures: AtomicU64,
    requests: AtomicU64,
    timeouts: AtomicU64,
    rejected: AtomicU64,
    evicted: AtomicU64,
    write_timeouts: AtomicU64,
    failures: [AtomicU64; ScrapeStage::ALL.len()],
    response_bytes: AtomicU64,
    durations: Mutex<DurationHistogram>,
    file_errors: Mutex<BTreeMap<Reason, u64>>,
    lifecycle: Mutex<LifecycleState>,
    handshake_failures: [AtomicU64; HandshakeFailure::ALL.len()],
    refused: [AtomicU64; Refusal::ALL.len()],
    /// The web configuration in use, for its reload state and certificate expiry.
    web: OnceLock<Arc<Reloader>>,
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
    skipped: BTreeMap<SkipReason, u64>,
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
        for death in &report.proven {
            *l.proven.entry(death.evidence).or_default() += 1;
        }
        if let Some(skip) = &report.skipped {
            *l.skipped.entry(skip.reason).or_default() += 1;
        }
        l.last = report.clone();
    }

    /// Dead writers' files compaction could still absorb, at the last recorded round.
    pub fn compactable(&self) -> usize {
        let l = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        l.last.compactable
    }

    /// Records a pass that could not list the directory.
    pub fn merge_failed(&self) {
        self.merge_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a scrape that failed at `stage`.
    pub fn scrape_failed(&self, stage: ScrapeStage) {
        self.failures[stage as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a request to the telemetry path.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a connection closed at once because every connection slot was taken.
    pub fn connection_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Records an idle connection closed to make room for a new one.
    pub fn connection_evicted(&self) {
        self.evicted.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a connection reset because its response was not written in time.
    pub fn write_timed_out(&self) {
        self.write_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a scrape that ran out of its `X-Prometheus-Scrape-Timeout-Seconds`.
    pub fn timed_out(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a TLS handshake that did not complete.
    pub fn handshake_failed(&self, why: HandshakeFailure) {
        self.handshake_failures[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a request refused before it was served.
    pub fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Reports on `web` (set once, at start).
    pub fn watch_web_config(&self, web: Arc<Reloader>) {
        let _ = self.web.set(web);
    }

    /// Records a response body sent.
    pub fn served(&self, bytes: usize) {
        self.response_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// The families describing the sidecar and `pass`; `ready` false means the
    /// directory could not be read (then `pass` is empty).
    pub fn families(&self, pass: &Pass, ready: bool) -> Vec<Family> {
        let lifecycle = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        let durations = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        let inputs = table::Inputs {
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
                let mut out = table::Out {
                    name: format!("{PREFIX}{}", d.name),
                    typ: d.typ,
                    labels: d.labels,
                    layout: LayoutBuilder::default(),
                    values: Vec::new(),
                };
                (d.values)(&inputs, &mut out);
                (!out.layout.is_empty()).then(|| {
                    Family::new(
                        out.name.into(),
                        d.help.into(),
                        d.typ,
                        Arc::new(out.layout.finish()),
                        out.values,
                    )
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
        let get = |n: &str| family(&fams, n).samples().next().unwrap().value;
        assert!(get("multiproc_exporter_process_resident_memory_bytes") > 0.0);
        assert!(get("multiproc_exporter_process_open_fds") >= 3.0);
        let start = get("multiproc_exporter_process_start_time_seconds");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(start > 1.6e9 && start <= now + 1.0);
        assert_eq!(
            family(&fams, "multiproc_exporter_process_cpu_seconds")
                .samples()
                .next()
                .unwrap()
                .name,
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
        let inf = h.samples().find(|s| s.le == Some(f64::INFINITY)).unwrap();
        let count = h.samples().find(|s| s.name.ends_with("_count")).unwrap();
        let five = h.samples().find(|s| s.le == Some(5.0)).unwrap();
        assert_eq!((inf.value, count.value, five.value), (2.0, 2.0, 1.0));
    }

    #[test]
    fn test_issue_8_labelled_counters_start_at_zero_for_every_label_value() {
        let fams = SelfMetrics::default().families(&Pass::default(), false);
        let errors = family(&fams, "multiproc_exporter_file_errors");
        assert_eq!(errors.len(), Reason::ALL.len());
        assert!(errors.samples().all(|s| s.value == 0.0));
        assert_eq!(
            family(&fams, "multiproc_exporter_compaction_skipped").len(),
            SkipReason::ALL.len()
        );
        assert_eq!(
            family(&fams, "multiproc_exporter_writers_proven_dead").len(),
            Evidence::ALL.len()
        );
        assert_eq!(
            family(&fams, "multiproc_exporter_ready")
                .samples()
                .next()
                .unwrap()
                .value,
            0.0
        );
    }
}
