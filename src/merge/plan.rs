//! A merge plan: what every entry of every file contributes to, decided once.
//!
//! Deciding where an entry goes (its family's type and mode, its output series, its
//! histogram bucket) needs hash lookups and, for the output, a sort. None of that changes
//! while the files and their entries stay the same, which is the steady state of a pool:
//! keys are append-only and only values change. So the decisions are made once into a
//! plan (a slot per output value with its fold rule, a slot index per entry, the sorted
//! output layout), and each pass only walks the values into the slots. A plan is rebuilt
//! when a file appears, vanishes, is replaced, or gains entries.

use super::sum::ExactSum;
use super::{Family, FileView, MergeIssue, NO_PID, Sample, Slot, compare_samples};
use crate::error::Reason;
use crate::model::{FileKind, GaugeRule, MetricType};
use crate::parse::index::{KeyTable, Le};
use rustc_hash::FxHashMap;
use std::cmp::Ordering;
use std::sync::Arc;

/// Marks an entry that contributes nothing (a bucket with a bad `le`).
const SKIP: u32 = u32::MAX;

/// How the values of one slot combine, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fold {
    /// Exact sum.
    Sum,
    /// First value seeds; a strictly smaller one replaces it.
    Min,
    /// First value seeds; a strictly larger one replaces it.
    Max,
    /// The last value read wins.
    Last,
    /// The value with the strictly newest timestamp (from 0.0) wins.
    Recent,
}

/// Where an output sample's value comes from.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// One slot.
    Slot(u32),
    /// The cumulative count of bucket group `group` up to its bound number `upto`.
    Bucket { group: u32, upto: u32 },
    /// The total of bucket group `group` (`_count`).
    Count { group: u32 },
}

#[derive(Debug)]
struct OutFamily {
    name: Arc<str>,
    help: Arc<str>,
    typ: MetricType,
    /// Sample templates in output order; their values are filled per pass.
    samples: Vec<(Sample, Source)>,
}

/// A histogram bucket group while planning: family, labels without `le`, pid file, and
/// its (bound, slot) pairs in first-seen order.
type GroupMeta = (u32, u32, u32, Vec<(f64, u32)>);

/// Identifies what a plan was built from: per file, its index generation and how many
/// entries were merged.
pub type Signature = Vec<(u64, usize)>;

/// Decisions for one set of files.
#[derive(Debug)]
pub struct Plan {
    signature: Signature,
    folds: Vec<Fold>,
    /// Per file, per merged entry: the slot, or [`SKIP`].
    entry_slots: Vec<Vec<u32>>,
    /// Per bucket group, its slots in ascending bound order.
    groups: Vec<Vec<u32>>,
    families: Vec<OutFamily>,
    issues: Vec<MergeIssue>,
}

enum Acc {
    Sum(ExactSum),
    Value(Option<f64>),
    Recent(Option<(f64, f64)>),
}

struct Building {
    typ: MetricType,
    help: Arc<str>,
    rule: Option<GaugeRule>,
    slots: FxHashMap<Slot, u32>,
    /// (labels without `le`, pid file) → group index.
    groups: FxHashMap<(u32, u32), u32>,
}

/// The signature of `files` (see [`Signature`]).
pub fn signature(files: &[FileView<'_>]) -> Signature {
    files
        .iter()
        .map(|f| (f.generation, f.entries.len().min(f.values.len())))
        .collect()
}

impl Plan {
    /// The signature this plan was built for.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Decides everything for `files` (in merge order).
    pub fn build(files: &[FileView<'_>], keys: &KeyTable) -> Plan {
        let mut states: FxHashMap<u32, Building> = FxHashMap::default();
        // Type and help from the first sighting, gauge mode from the last gauge file.
        for f in files {
            for e in f.entries.iter().take(f.values.len()) {
                let info = keys.info(e.key);
                let st = states.entry(info.family).or_insert_with(|| Building {
                    typ: f.kind.metric_type(),
                    help: info.help.clone(),
                    rule: None,
                    slots: FxHashMap::default(),
                    groups: FxHashMap::default(),
                });
                if let FileKind::Gauge(mode) = f.kind {
                    st.rule = Some(mode.rule());
                }
            }
        }
        let mut folds: Vec<Fold> = Vec::new();
        // Per slot: its family and output identity; per group: family, identity, bounds.
        let mut slot_meta: Vec<(u32, u32, Slot)> = Vec::new();
        let mut group_meta: Vec<GroupMeta> = Vec::new();
        let mut entry_slots = Vec::with_capacity(files.len());
        let mut issues = Vec::new();
        for (fi, f) in files.iter().enumerate() {
            let pid_file = if matches!(f.kind, FileKind::Gauge(_)) {
                fi as u32
            } else {
                NO_PID
            };
            let mut slots_here = Vec::with_capacity(f.entries.len().min(f.values.len()));
            let mut bad_buckets = 0usize;
            for e in f.entries.iter().take(f.values.len()) {
                let info = keys.info(e.key);
                let Some(st) = states.get_mut(&info.family) else {
                    slots_here.push(SKIP);
                    continue;
                };
                let mut new_slot = |slot: Slot, fold: Fold, st: &mut Building| -> u32 {
                    *st.slots.entry(slot).or_insert_with(|| {
                        folds.push(fold);
                        let id = (folds.len() - 1) as u32;
                        slot_meta.push((id, info.family, slot));
                        id
                    })
                };
                let gauge_rule =
                    (st.typ == MetricType::Gauge).then(|| st.rule.unwrap_or(GaugeRule::PerPid));
                let id = match gauge_rule {
                    Some(GaugeRule::PerPid) => {
                        let slot = Slot {
                            name: info.name,
                            labels: info.labels,
                            pid_file,
                        };
                        new_slot(slot, Fold::Last, st)
                    }
                    Some(rule) => {
                        let slot = Slot {
                            name: info.name,
                            labels: info.labels_no_pid,
                            pid_file: NO_PID,
                        };
                        let fold = match rule {
                            GaugeRule::Min => Fold::Min,
                            GaugeRule::Max => Fold::Max,
                            GaugeRule::Sum => Fold::Sum,
                            GaugeRule::MostRecent => Fold::Recent,
                            GaugeRule::PerPid => Fold::Last,
                        };
                        new_slot(slot, fold, st)
                    }
                    None if st.typ == MetricType::Histogram && info.le != Le::Absent => {
                        let Le::Bound(bound) = info.le else {
                            bad_buckets += 1;
                            slots_here.push(SKIP);
                            continue;
                        };
                        let g = *st
                            .groups
                            .entry((info.labels_no_le, pid_file))
                            .or_insert_with(|| {
                                group_meta.push((
                                    info.family,
                                    info.labels_no_le,
                                    pid_file,
                                    Vec::new(),
                                ));
                                (group_meta.len() - 1) as u32
                            });
                        let bounds = &mut group_meta[g as usize].3;
                        // `==` as in a Python dict keyed by float: 0.0 and -0.0 merge, NaN never.
                        match bounds.iter().find(|(b, _)| *b == bound) {
                            Some(&(_, s)) => s,
                            None => {
                                folds.push(Fold::Sum);
                                let s = (folds.len() - 1) as u32;
                                bounds.push((bound, s));
                                s
                            }
                        }
                    }
                    None => {
                        let slot = Slot {
                            name: info.name,
                            labels: info.labels,
                            pid_file,
                        };
                        new_slot(slot, Fold::Sum, st)
                    }
                };
                slots_here.push(id);
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
            entry_slots.push(slots_here);
        }
        // The output layout: templates per family, sorted once.
        let pid_of = |pid_file: u32| -> Option<Arc<str>> {
            (pid_file != NO_PID).then(|| files[pid_file as usize].pid_label.clone())
        };
        let mut templates: FxHashMap<u32, Vec<(Sample, Source)>> = FxHashMap::default();
        for &(s, family, slot) in &slot_meta {
            let sample = Sample {
                name: keys.names.get(slot.name).clone(),
                labels: keys.labelsets.get(slot.labels).clone(),
                pid: pid_of(slot.pid_file),
                le: None,
                value: 0.0,
                prefix: None,
            };
            templates
                .entry(family)
                .or_default()
                .push((sample, Source::Slot(s)));
        }
        let mut groups = Vec::with_capacity(group_meta.len());
        for (g, (family, labels, pid_file, mut bounds)) in group_meta.into_iter().enumerate() {
            bounds.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
            let fname = keys.families.get(family);
            let bucket_name: Arc<str> = Arc::from(format!("{fname}_bucket"));
            let labels = keys.labelsets.get(labels);
            let pid = pid_of(pid_file);
            let out = templates.entry(family).or_default();
            for (i, (bound, _)) in bounds.iter().enumerate() {
                let sample = Sample {
                    name: bucket_name.clone(),
                    labels: labels.clone(),
                    pid: pid.clone(),
                    le: Some(*bound),
                    value: 0.0,
                    prefix: None,
                };
                out.push((
                    sample,
                    Source::Bucket {
                        group: g as u32,
                        upto: i as u32,
                    },
                ));
            }
            let count = Sample {
                name: Arc::from(format!("{fname}_count")),
                labels: labels.clone(),
                pid,
                le: None,
                value: 0.0,
                prefix: None,
            };
            out.push((count, Source::Count { group: g as u32 }));
            groups.push(bounds.into_iter().map(|(_, s)| s).collect());
        }
        let mut families: Vec<OutFamily> = states
            .into_iter()
            .map(|(family, st)| {
                let mut samples = templates.remove(&family).unwrap_or_default();
                samples.sort_by(|a, b| compare_samples(&a.0, &b.0));
                for (template, _) in &mut samples {
                    template.prefix = Some(crate::render::underscores_prefix(template));
                }
                OutFamily {
                    name: keys.families.get(family).clone(),
                    help: st.help,
                    typ: st.typ,
                    samples,
                }
            })
            .collect();
        families.sort_by(|a, b| a.name.cmp(&b.name));
        Plan {
            signature: signature(files),
            folds,
            entry_slots,
            groups,
            families,
            issues,
        }
    }

    /// Folds the current values of `files` (the files the plan was built for).
    pub fn execute(&self, files: &[FileView<'_>]) -> (Vec<Family>, Vec<MergeIssue>) {
        let mut accs: Vec<Acc> = self
            .folds
            .iter()
            .map(|f| match f {
                Fold::Sum => Acc::Sum(ExactSum::new()),
                Fold::Min | Fold::Max | Fold::Last => Acc::Value(None),
                Fold::Recent => Acc::Recent(None),
            })
            .collect();
        for (f, slots) in files.iter().zip(&self.entry_slots) {
            for (&slot, &(value, ts)) in slots.iter().zip(f.values) {
                let Some(acc) = accs.get_mut(slot as usize) else {
                    continue;
                };
                match (acc, self.folds[slot as usize]) {
                    (Acc::Sum(s), _) => s.add(value),
                    (Acc::Value(cur @ None), _) => *cur = Some(value),
                    (Acc::Value(Some(cur)), Fold::Min) if value < *cur => *cur = value,
                    (Acc::Value(Some(cur)), Fold::Max) if value > *cur => *cur = value,
                    (Acc::Value(Some(cur)), Fold::Last) => *cur = value,
                    (Acc::Value(_), _) => {}
                    (Acc::Recent(best), _) => {
                        if best.map_or(0.0, |(_, t)| t) < ts {
                            *best = Some((value, ts));
                        }
                    }
                }
            }
        }
        let slot_value = |s: u32| -> Option<f64> {
            match &accs[s as usize] {
                Acc::Sum(sum) => Some(sum.value()),
                Acc::Value(v) => *v,
                Acc::Recent(r) => r.map(|(v, _)| v),
            }
        };
        // Running sums per bucket group, as the collector accumulates them.
        let cumulative: Vec<Vec<f64>> = self
            .groups
            .iter()
            .map(|slots| {
                let mut acc = 0.0;
                slots
                    .iter()
                    .map(|&s| {
                        acc += slot_value(s).unwrap_or(0.0);
                        acc
                    })
                    .collect()
            })
            .collect();
        let families = self
            .families
            .iter()
            .map(|f| Family {
                name: f.name.clone(),
                help: f.help.clone(),
                typ: f.typ,
                samples: f
                    .samples
                    .iter()
                    .filter_map(|(template, source)| {
                        let value = match *source {
                            Source::Slot(s) => slot_value(s)?,
                            Source::Bucket { group, upto } => {
                                cumulative[group as usize][upto as usize]
                            }
                            Source::Count { group } => *cumulative[group as usize].last()?,
                        };
                        Some(Sample {
                            value,
                            ..template.clone()
                        })
                    })
                    .collect(),
            })
            .collect();
        (families, self.issues.clone())
    }
}
