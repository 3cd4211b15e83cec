//! The vocabulary every stage speaks: what a file holds ([`FileKind`], [`GaugeMode`],
//! [`MetricType`]), what the merge produces and render writes ([`Family`], its
//! [`Layout`] and [`Sample`]s, [`LabelSet`]s spelled once in [`labels`]), and what can be
//! wrong with one file ([`FileProblem`], [`FileIssue`], [`Reason`]).
//!
//! It depends on nothing else in the crate, so any stage may use it without creating a
//! cycle; the rules that act on these types live with their stage (the fold rules in
//! `fold`, the file grammar in `scan`, the on-disk layout in `format`).

mod family;
pub mod labels;
mod problem;

pub use family::{Family, Layout, LayoutBuilder, Sample, Samples};
pub use labels::{LabelSet, Labels};
pub use problem::{Escaped, FileIssue, FileProblem, Reason};

use std::fmt;

/// One entry's last good value as a reader holds it: key text, value, timestamp.
pub type LastGoodEntry = (Box<[u8]>, f64, f64);

/// The last good values a reader holds for one file. Compaction absorbs them with the
/// file, so a file that lost entries (truncated by someone else) does not take counts
/// with it.
pub type LastGood = Vec<LastGoodEntry>;

/// The type of a metric family, as prometheus_client's `Metric.type` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricType {
    /// `counter_<pid>.db`.
    Counter,
    /// `gauge_<mode>_<pid>.db`.
    Gauge,
    /// `histogram_<pid>.db`.
    Histogram,
    /// `summary_<pid>.db`.
    Summary,
    /// `unknown_<pid>.db` or `untyped_<pid>.db`: never written by prometheus_client,
    /// but its collector reads them, so we do too.
    Unknown,
}

impl MetricType {
    /// The OpenMetrics spelling (also prometheus_client's internal one).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Unknown => "unknown",
        }
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the per-process values of one gauge series are combined.
///
/// `Other` keeps a mode token that prometheus_client does not know: its collector
/// does not reject such files, it merges them like `all`, and so do we.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GaugeMode {
    /// One series per process, labelled `pid`.
    All,
    /// `all`, removed when the process dies.
    LiveAll,
    /// Minimum over processes.
    Min,
    /// `min` over live processes.
    LiveMin,
    /// Maximum over processes.
    Max,
    /// `max` over live processes.
    LiveMax,
    /// Sum over processes.
    Sum,
    /// `sum` over live processes.
    LiveSum,
    /// The value with the newest timestamp.
    MostRecent,
    /// `mostrecent` over live processes.
    LiveMostRecent,
    /// An unknown token from a file name; merged like `all`.
    Other(String),
}

impl GaugeMode {
    /// Every mode prometheus_client 0.26.0 defines, in its documentation order.
    pub const KNOWN: [GaugeMode; 10] = [
        GaugeMode::All,
        GaugeMode::LiveAll,
        GaugeMode::Min,
        GaugeMode::LiveMin,
        GaugeMode::Max,
        GaugeMode::LiveMax,
        GaugeMode::Sum,
        GaugeMode::LiveSum,
        GaugeMode::MostRecent,
        GaugeMode::LiveMostRecent,
    ];

    /// Reads the mode token of a gauge file name.
    pub fn from_token(token: &str) -> GaugeMode {
        match token {
            "all" => GaugeMode::All,
            "liveall" => GaugeMode::LiveAll,
            "min" => GaugeMode::Min,
            "livemin" => GaugeMode::LiveMin,
            "max" => GaugeMode::Max,
            "livemax" => GaugeMode::LiveMax,
            "sum" => GaugeMode::Sum,
            "livesum" => GaugeMode::LiveSum,
            "mostrecent" => GaugeMode::MostRecent,
            "livemostrecent" => GaugeMode::LiveMostRecent,
            other => GaugeMode::Other(other.to_owned()),
        }
    }

    /// The token as it appears in file names.
    pub fn token(&self) -> &str {
        match self {
            GaugeMode::All => "all",
            GaugeMode::LiveAll => "liveall",
            GaugeMode::Min => "min",
            GaugeMode::LiveMin => "livemin",
            GaugeMode::Max => "max",
            GaugeMode::LiveMax => "livemax",
            GaugeMode::Sum => "sum",
            GaugeMode::LiveSum => "livesum",
            GaugeMode::MostRecent => "mostrecent",
            GaugeMode::LiveMostRecent => "livemostrecent",
            GaugeMode::Other(token) => token,
        }
    }

    /// Whether `mark_process_dead` removes files of this mode.
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            GaugeMode::LiveAll
                | GaugeMode::LiveMin
                | GaugeMode::LiveMax
                | GaugeMode::LiveSum
                | GaugeMode::LiveMostRecent
        )
    }

    /// Whether each process keeps its own series, labelled `pid` (`all`, `liveall`, and
    /// unknown tokens, which prometheus_client merges like `all`).
    pub fn is_per_pid(&self) -> bool {
        matches!(
            self,
            GaugeMode::All | GaugeMode::LiveAll | GaugeMode::Other(_)
        )
    }
}

/// What a file holds, decided from its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// Counter samples (`<name>_total`).
    Counter,
    /// Gauge samples merged with the given mode.
    Gauge(GaugeMode),
    /// Histogram `_sum` and non-cumulative `_bucket` samples.
    Histogram,
    /// Summary `_count` and `_sum` samples.
    Summary,
    /// Untyped samples.
    Unknown,
}

impl FileKind {
    /// The family type a file of this kind gives a family it is first to mention.
    pub fn metric_type(&self) -> MetricType {
        match self {
            FileKind::Counter => MetricType::Counter,
            FileKind::Gauge(_) => MetricType::Gauge,
            FileKind::Histogram => MetricType::Histogram,
            FileKind::Summary => MetricType::Summary,
            FileKind::Unknown => MetricType::Unknown,
        }
    }

    /// Every value of [`FileKind::label`], for declaring metric label values up front.
    pub const LABELS: [&'static str; 5] = ["counter", "gauge", "histogram", "summary", "unknown"];

    /// The short name used in self-metrics and logs (one of [`FileKind::LABELS`]).
    pub fn label(&self) -> &'static str {
        match self {
            FileKind::Counter => "counter",
            FileKind::Gauge(_) => "gauge",
            FileKind::Histogram => "histogram",
            FileKind::Summary => "summary",
            FileKind::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_labels_are_every_label() {
        let kinds = [
            FileKind::Counter,
            FileKind::Gauge(GaugeMode::All),
            FileKind::Histogram,
            FileKind::Summary,
            FileKind::Unknown,
        ];
        let labels: Vec<&str> = kinds.iter().map(FileKind::label).collect();
        assert_eq!(labels, FileKind::LABELS);
    }
}
