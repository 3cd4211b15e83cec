//! Stage 4: combine the entries of all files into metric families, with the rules of
//! prometheus_client's `MultiProcessCollector.merge(files, accumulate=True)`.
//!
//! Files are taken in sorted name order, and the rules that depend on order follow that
//! order exactly as the collector follows its directory order: a family's type and help
//! come from its first sighting, its gauge mode from the last gauge file that mentions
//! it, min/max keep the first value unless a later one is strictly smaller/larger, and
//! mostrecent keeps the first of equal timestamps. Sums are exact ([`sum::ExactSum`]), so
//! they do not depend on order at all. The output is sorted (families by name, samples
//! by labels), which the collector's is not.
//!
//! Bad input: an `le` label that is not a number (which crashes the collector) drops
//! that bucket sample and is reported for its file.

pub mod sum;

use crate::error::Reason;
use crate::model::{FileKind, GaugeRule, MetricType};
use crate::parse::index::{Indexed, KeyTable, LabelSet, Le};
use rustc_hash::FxHashMap;
use std::cmp::Ordering;
use std::sync::Arc;
use sum::ExactSum;

/// One file's contribution, in the form the merge needs.
#[derive(Clone, Copy, Debug)]
pub struct FileView<'a> {
    /// What the file name says it holds.
    pub kind: &'a FileKind,
    /// The `pid` label value of this file (gauges).
    pub pid_label: &'a Arc<str>,
    /// Indexed entries, in file order.
    pub entries: &'a [Indexed],
    /// `(value, timestamp)` of each entry; entries beyond its length are skipped.
    pub values: &'a [(f64, f64)],
}

/// A merged family, ready to render.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    /// The family name (a counter's without `_total`).
    pub name: Arc<str>,
    /// Help text.
    pub help: Arc<str>,
    /// Type.
    pub typ: MetricType,
    /// Samples, grouped by label set and sorted.
    pub samples: Vec<Sample>,
}

/// A merged sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample name, e.g. `lat_seconds_bucket`.
    pub name: Arc<str>,
    /// Labels from the key, sorted by name.
    pub labels: LabelSet,
    /// The `pid` label of a per-process gauge series; it replaces a `pid` in `labels`.
    pub pid: Option<Arc<str>>,
    /// The `le` bound of a histogram bucket.
    pub le: Option<f64>,
    /// The value.
    pub value: f64,
}

/// A problem met while merging, for the file at this position of the input.
#[derive(Clone, Debug, PartialEq)]
pub struct MergeIssue {
    /// Index into the input files.
    pub file: usize,
    /// Category.
    pub reason: Reason,
    /// What was wrong.
    pub detail: String,
}

/// The accumulation slot of one output sample.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Slot {
    name: u32,
    labels: u32,
    /// Index of the file whose pid label applies, or `u32::MAX`.
    pid_file: u32,
}

const NO_PID: u32 = u32::MAX;

enum Acc {
    Sum(ExactSum),
    Value(f64),
    Recent { value: f64, ts: f64 },
}

struct FamilyState {
    typ: MetricType,
    help: Arc<str>,
    rule: Option<GaugeRule>,
    slots: FxHashMap<Slot, Acc>,
    /// Bucket group (labels without `le`, pid file) → (bound, count) in first-seen order.
    buckets: FxHashMap<(u32, u32), Vec<(f64, ExactSum)>>,
}

/// Merges `files` (in the order given, which callers make sorted by name).
pub fn merge(files: &[FileView<'_>], keys: &KeyTable) -> (Vec<Family>, Vec<MergeIssue>) {
    let mut states: FxHashMap<u32, FamilyState> = FxHashMap::default();
    // Pass 1: type and help from the first sighting, gauge mode from the last gauge file.
    for f in files {
        for e in f.entries.iter().take(f.values.len()) {
            let info = keys.info(e.key);
            let st = states.entry(info.family).or_insert_with(|| FamilyState {
                typ: f.kind.metric_type(),
                help: info.help.clone(),
                rule: None,
                slots: FxHashMap::default(),
                buckets: FxHashMap::default(),
            });
            if let FileKind::Gauge(mode) = f.kind {
                st.rule = Some(mode.rule());
            }
        }
    }
    // Pass 2: accumulate under the family's final rule.
    let mut issues = Vec::new();
    for (fi, f) in files.iter().enumerate() {
        let is_gauge_file = matches!(f.kind, FileKind::Gauge(_));
        let pid_file = if is_gauge_file { fi as u32 } else { NO_PID };
        let mut bad_buckets = 0usize;
        for (e, &(value, ts)) in f.entries.iter().zip(f.values) {
            let info = keys.info(e.key);
            let Some(st) = states.get_mut(&info.family) else {
                continue;
            };
            let gauge_rule = if st.typ == MetricType::Gauge {
                Some(st.rule.unwrap_or(GaugeRule::PerPid))
            } else {
                None
            };
            match gauge_rule {
                Some(GaugeRule::PerPid) => {
                    let slot = Slot {
                        name: info.name,
                        labels: info.labels,
                        pid_file,
                    };
                    st.slots.insert(slot, Acc::Value(value));
                }
                Some(rule) => {
                    let slot = Slot {
                        name: info.name,
                        labels: info.labels_no_pid,
                        pid_file: NO_PID,
                    };
                    apply_gauge(&mut st.slots, slot, rule, value, ts);
                }
                None if st.typ == MetricType::Histogram && info.le != Le::Absent => {
                    let Le::Bound(bound) = info.le else {
                        bad_buckets += 1;
                        continue;
                    };
                    let group = st.buckets.entry((info.labels_no_le, pid_file)).or_default();
                    // `==` as in a Python dict keyed by float: 0.0 and -0.0 merge, NaN never.
                    match group.iter_mut().find(|(b, _)| *b == bound) {
                        Some((_, count)) => count.add(value),
                        None => {
                            let mut count = ExactSum::new();
                            count.add(value);
                            group.push((bound, count));
                        }
                    }
                }
                None => {
                    let slot = Slot {
                        name: info.name,
                        labels: info.labels,
                        pid_file,
                    };
                    match st
                        .slots
                        .entry(slot)
                        .or_insert_with(|| Acc::Sum(ExactSum::new()))
                    {
                        Acc::Sum(s) => s.add(value),
                        other => *other = Acc::Value(value),
                    }
                }
            }
        }
        if bad_buckets > 0 {
            issues.push(MergeIssue {
                file: fi,
                reason: Reason::BadBucket,
                detail: format!(
                    "skipped {bad_buckets} histogram bucket samples whose le label is not a number"
                ),
            });
        }
    }
    let mut families: Vec<Family> = states
        .into_iter()
        .map(|(family, st)| finish(keys.families.get(family).clone(), st, files, keys))
        .collect();
    families.sort_by(|a, b| a.name.cmp(&b.name));
    (families, issues)
}

fn apply_gauge(slots: &mut FxHashMap<Slot, Acc>, slot: Slot, rule: GaugeRule, value: f64, ts: f64) {
    match rule {
        GaugeRule::Min | GaugeRule::Max => {
            let current = slots.entry(slot).or_insert(Acc::Value(value));
            if let Acc::Value(cur) = current {
                let wins = if rule == GaugeRule::Min {
                    value < *cur
                } else {
                    value > *cur
                };
                if wins {
                    *cur = value;
                }
            }
        }
        GaugeRule::Sum => {
            if let Acc::Sum(s) = slots
                .entry(slot)
                .or_insert_with(|| Acc::Sum(ExactSum::new()))
            {
                s.add(value);
            }
        }
        GaugeRule::MostRecent => {
            // Timestamps start from 0.0 and must be strictly newer: a gauge that was
            // created but never set yields no sample.
            let best = match slots.get(&slot) {
                Some(Acc::Recent { ts, .. }) => *ts,
                _ => 0.0,
            };
            if best < ts {
                slots.insert(slot, Acc::Recent { value, ts });
            }
        }
        GaugeRule::PerPid => {
            slots.insert(slot, Acc::Value(value));
        }
    }
}

fn finish(name: Arc<str>, st: FamilyState, files: &[FileView<'_>], keys: &KeyTable) -> Family {
    let pid_of = |pid_file: u32| -> Option<Arc<str>> {
        (pid_file != NO_PID).then(|| files[pid_file as usize].pid_label.clone())
    };
    let mut samples: Vec<Sample> = Vec::with_capacity(st.slots.len());
    for (slot, acc) in st.slots {
        let value = match acc {
            Acc::Sum(s) => s.value(),
            Acc::Value(v) | Acc::Recent { value: v, .. } => v,
        };
        samples.push(Sample {
            name: keys.names.get(slot.name).clone(),
            labels: keys.labelsets.get(slot.labels).clone(),
            pid: pid_of(slot.pid_file),
            le: None,
            value,
        });
    }
    if !st.buckets.is_empty() {
        let bucket_name: Arc<str> = Arc::from(format!("{name}_bucket"));
        let count_name: Arc<str> = Arc::from(format!("{name}_count"));
        for ((labels, pid_file), mut bounds) in st.buckets {
            bounds.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
            let labels = keys.labelsets.get(labels);
            let pid = pid_of(pid_file);
            let mut acc = 0.0;
            for (bound, count) in bounds {
                acc += count.value();
                samples.push(Sample {
                    name: bucket_name.clone(),
                    labels: labels.clone(),
                    pid: pid.clone(),
                    le: Some(bound),
                    value: acc,
                });
            }
            samples.push(Sample {
                name: count_name.clone(),
                labels: labels.clone(),
                pid,
                le: None,
                value: acc,
            });
        }
    }
    samples.sort_by(compare_samples);
    Family {
        name,
        help: st.help,
        typ: st.typ,
        samples,
    }
}

/// Groups samples by label set (with the pid), then buckets by bound, then by name.
fn compare_samples(a: &Sample, b: &Sample) -> Ordering {
    compare_labels(&a.labels, &b.labels)
        .then_with(|| compare_pid(a.pid.as_deref(), b.pid.as_deref()))
        .then_with(|| b.le.is_some().cmp(&a.le.is_some()))
        .then_with(|| match (a.le, b.le) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => Ordering::Equal,
        })
        .then_with(|| a.name.cmp(&b.name))
}

fn compare_labels(a: &LabelSet, b: &LabelSet) -> Ordering {
    if Arc::ptr_eq(a, b) {
        return Ordering::Equal;
    }
    a.iter().cmp(b.iter())
}

/// Numeric pids in numeric order, so `pid="9"` comes before `pid="10"`.
fn compare_pid(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n).then_with(|| x.cmp(y)),
            _ => x.cmp(y),
        },
        _ => a.cmp(&b),
    }
}

#[cfg(test)]
mod tests;
