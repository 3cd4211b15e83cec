//! The fold rules: how the values of one series from several files combine.
//!
//! The merge plan folds every file's value into its output slot, and compaction folds
//! dead writers' files into archives. The invariant "the output is the same before and
//! after compaction" holds only if both fold alike, so both use this module: the rule a
//! family's type and gauge mode select ([`Fold::for_gauge`], [`Fold::for_archive`]) and
//! the accumulator that applies it ([`Acc`]).
//!
//! The rules are prometheus_client's `_accumulate_metrics`, taken in file order: sums for
//! counters, histogram buckets, summaries and `sum` gauges (exact, see [`sum`]); `min` and
//! `max` keep the first value unless a later one is strictly smaller or larger; `all`
//! gauges keep each file's own series (the last value read wins within one); `mostrecent`
//! keeps the value with the strictly newest timestamp, starting from 0.

pub mod sum;

use crate::model::{FileKind, GaugeMode};
use sum::ExactSum;

/// How the values of one output series combine, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fold {
    /// Exact sum.
    Sum,
    /// First value seeds; a strictly smaller one replaces it.
    Min,
    /// First value seeds; a strictly larger one replaces it.
    Max,
    /// The last value read wins (a per-process series, one file).
    Last,
    /// The value with the strictly newest timestamp (from 0.0) wins.
    MostRecent,
}

impl Fold {
    /// The rule of a gauge family in `mode`; per-process modes keep each file's series
    /// apart (see [`GaugeMode::is_per_pid`]), so within one series the last value wins.
    pub fn for_gauge(mode: &GaugeMode) -> Fold {
        match mode {
            GaugeMode::Min | GaugeMode::LiveMin => Fold::Min,
            GaugeMode::Max | GaugeMode::LiveMax => Fold::Max,
            GaugeMode::Sum | GaugeMode::LiveSum => Fold::Sum,
            GaugeMode::MostRecent | GaugeMode::LiveMostRecent => Fold::MostRecent,
            GaugeMode::All | GaugeMode::LiveAll | GaugeMode::Other(_) => Fold::Last,
        }
    }

    /// How a dead writer's file of `kind` folds into an archive, or `None` when such
    /// files are never folded: per-process gauges keep their `pid` series, and live
    /// gauges of a dead writer are deleted instead (what `mark_process_dead` does).
    pub fn for_archive(kind: &FileKind) -> Option<Fold> {
        match kind {
            FileKind::Counter | FileKind::Histogram | FileKind::Summary | FileKind::Unknown => {
                Some(Fold::Sum)
            }
            FileKind::Gauge(mode) if mode.is_live() || mode.is_per_pid() => None,
            FileKind::Gauge(mode) => Some(Fold::for_gauge(mode)),
        }
    }

    /// An empty accumulator for this rule.
    pub fn start(self) -> Acc {
        match self {
            Fold::Sum => Acc::Sum(ExactSum::new()),
            Fold::Min => Acc::Min(None),
            Fold::Max => Acc::Max(None),
            Fold::Last => Acc::Last(None),
            Fold::MostRecent => Acc::MostRecent(None),
        }
    }
}

/// The running fold of one series.
#[derive(Clone, Debug)]
pub enum Acc {
    /// See [`Fold::Sum`].
    Sum(ExactSum),
    /// See [`Fold::Min`].
    Min(Option<f64>),
    /// See [`Fold::Max`].
    Max(Option<f64>),
    /// See [`Fold::Last`].
    Last(Option<f64>),
    /// See [`Fold::MostRecent`]: `(value, timestamp)`.
    MostRecent(Option<(f64, f64)>),
}

impl Acc {
    /// Folds in the next value (with its timestamp) in file order.
    #[inline]
    pub fn add(&mut self, value: f64, timestamp: f64) {
        match self {
            Acc::Sum(s) => s.add(value),
            Acc::Min(cur @ None) | Acc::Max(cur @ None) | Acc::Last(cur) => *cur = Some(value),
            Acc::Min(Some(cur)) if value < *cur => *cur = value,
            Acc::Max(Some(cur)) if value > *cur => *cur = value,
            Acc::Min(_) | Acc::Max(_) => {}
            Acc::MostRecent(best) => {
                if best.map_or(0.0, |(_, t)| t) < timestamp {
                    *best = Some((value, timestamp));
                }
            }
        }
    }

    /// The folded value, or `None` when nothing counts (no value yet, or a `mostrecent`
    /// series never set): such a series is not exposed.
    pub fn value(&self) -> Option<f64> {
        match self {
            Acc::Sum(s) => Some(s.value()),
            Acc::Min(v) | Acc::Max(v) | Acc::Last(v) => *v,
            Acc::MostRecent(r) => r.map(|(v, _)| v),
        }
    }

    /// The `(value, timestamp)` pair an archive stores so that merging the archive gives
    /// what merging the folded files gave. Sums are rounded toward +inf (a counter can
    /// never come out lower after compaction); a `mostrecent` series never set is stored
    /// as never set (timestamp 0).
    pub fn archived(&self) -> (f64, f64) {
        match self {
            Acc::Sum(s) => (s.value_up(), 0.0),
            Acc::Min(v) | Acc::Max(v) | Acc::Last(v) => (v.unwrap_or(0.0), 0.0),
            Acc::MostRecent(r) => r.unwrap_or((0.0, 0.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(rule: Fold, values: &[(f64, f64)]) -> Option<f64> {
        let mut acc = rule.start();
        for &(v, t) in values {
            acc.add(v, t);
        }
        acc.value()
    }

    #[test]
    fn rules_follow_prometheus_client() {
        let vs = [(3.0, 5.0), (1.0, 9.0), (3.0, 9.0), (7.0, 2.0)];
        assert_eq!(fold(Fold::Sum, &vs), Some(14.0));
        assert_eq!(fold(Fold::Min, &vs), Some(1.0));
        assert_eq!(fold(Fold::Max, &vs), Some(7.0));
        assert_eq!(fold(Fold::Last, &vs), Some(7.0));
        // First of equal timestamps wins.
        assert_eq!(fold(Fold::MostRecent, &vs), Some(1.0));
        assert_eq!(fold(Fold::MostRecent, &[(4.0, 0.0)]), None);
        assert_eq!(fold(Fold::Min, &[]), None);
        assert_eq!(fold(Fold::Sum, &[]), Some(0.0));
        // NaN: the first value seeds, comparisons with NaN never replace.
        assert!(
            fold(Fold::Min, &[(f64::NAN, 0.0), (1.0, 0.0)])
                .unwrap()
                .is_nan()
        );
        assert_eq!(fold(Fold::Min, &[(1.0, 0.0), (f64::NAN, 0.0)]), Some(1.0));
    }

    /// Folding an archive and then more files gives what folding everything at once
    /// gives: the invariant compaction relies on.
    #[test]
    fn archived_values_fold_like_their_terms() {
        let vs = [(0.1, 3.0), (0.2, 1.0), (5.0, 4.0), (-2.0, 2.0)];
        for rule in [Fold::Sum, Fold::Min, Fold::Max, Fold::MostRecent] {
            let mut archive = rule.start();
            for &(v, t) in &vs[..2] {
                archive.add(v, t);
            }
            let (av, at) = archive.archived();
            let mut after = rule.start();
            after.add(av, at);
            for &(v, t) in &vs[2..] {
                after.add(v, t);
            }
            let once = fold(rule, &vs).unwrap();
            let got = after.value().unwrap();
            if rule == Fold::Sum {
                assert!(
                    got >= once && got - once <= f64::EPSILON * 8.0,
                    "{got} {once}"
                );
            } else {
                assert_eq!(got, once, "{rule:?}");
            }
        }
    }

    /// A `mostrecent` series never set (timestamp 0) stays never set through an archive.
    #[test]
    fn never_set_mostrecent_survives_an_archive() {
        let mut archive = Fold::MostRecent.start();
        archive.add(5.0, 0.0);
        assert_eq!(archive.value(), None);
        let (v, t) = archive.archived();
        let mut after = Fold::MostRecent.start();
        after.add(v, t);
        assert_eq!(after.value(), None);
        after.add(2.0, 3.0);
        assert_eq!(after.value(), Some(2.0));
    }

    #[test]
    fn archive_rules_by_kind() {
        assert_eq!(Fold::for_archive(&FileKind::Counter), Some(Fold::Sum));
        assert_eq!(
            Fold::for_archive(&FileKind::Gauge(GaugeMode::MostRecent)),
            Some(Fold::MostRecent)
        );
        assert_eq!(Fold::for_archive(&FileKind::Gauge(GaugeMode::All)), None);
        assert_eq!(
            Fold::for_archive(&FileKind::Gauge(GaugeMode::LiveSum)),
            None
        );
        assert_eq!(
            Fold::for_archive(&FileKind::Gauge(GaugeMode::Other("x".into()))),
            None
        );
    }
}
