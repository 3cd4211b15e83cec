//! A merge plan: what every entry of every file contributes to, decided once.
//!
//! Deciding where an entry goes (its family's type and mode, its output series, its
//! histogram bucket) needs hash lookups and, for the output, a sort. None of that changes
//! while the files and their entries stay the same, which is the steady state of a pool:
//! keys are append-only and only values change. So the decisions are made once into a
//! plan (a slot per output value with its fold rule, a slot index per entry, the sorted
//! output layout), and each pass only walks the values into the slots. A plan is rebuilt
//! when a file appears, vanishes, is replaced, or gains entries.

use super::{FileView, Merged, NO_PID, Slot, compare_samples};
use crate::fold::{Acc, Fold};
use crate::model::{Family, FileKind, FileProblem, MetricType, Reason, Sample};
use crate::parse::{KeyInfo, KeyTable, Le};
use rustc_hash::FxHashMap;
use std::cmp::Ordering;
use std::sync::Arc;

/// Marks an entry that contributes nothing (a bucket with a bad `le`).
const SKIP: u32 = u32::MAX;

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

/// One family of the output layout.
#[derive(Debug)]
struct OutFamily {
    name: Arc<str>,
    help: Arc<str>,
    typ: MetricType,
    /// Sample templates in output order; their values are filled per pass.
    samples: Vec<(Sample, Source)>,
}

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
    problems: Vec<(usize, FileProblem)>,
}

/// What the files decide for one family: type and help from its first sighting, the
/// gauge rule from the last gauge file that mentions it.
struct FamilyRule {
    typ: MetricType,
    help: Arc<str>,
    /// `(per process, fold)` of the last gauge file's mode.
    gauge: Option<(bool, Fold)>,
    /// Output series of this family → slot.
    slots: FxHashMap<Slot, u32>,
    /// (labels without `le`, pid file) → bucket group.
    groups: FxHashMap<(u32, u32), u32>,
}

/// A histogram bucket group while planning.
struct BucketGroup {
    family: u32,
    labels: u32,
    pid_file: u32,
    /// `(bound, slot)` in first-seen order.
    bounds: Vec<(f64, u32)>,
}

/// The slots being allocated: one fold each, and what output each one feeds.
#[derive(Default)]
struct Slots {
    folds: Vec<Fold>,
    /// Per series slot: its family and output identity.
    series: Vec<(u32, u32, Slot)>,
    groups: Vec<BucketGroup>,
}

/// The signature of `files` (see [`Signature`]).
pub fn signature(files: &[FileView<'_>]) -> Signature {
    files
        .iter()
        .map(|f| (f.generation, f.entries.len().min(f.values.len())))
        .collect()
}

/// The file index used for the `pid` label of a file's series, or [`NO_PID`].
fn pid_file(fi: usize, f: &FileView<'_>) -> u32 {
    if matches!(f.kind, FileKind::Gauge(_)) {
        fi as u32
    } else {
        NO_PID
    }
}

impl Plan {
    /// The signature this plan was built for.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Decides everything for `files` (in merge order).
    pub fn build(files: &[FileView<'_>], keys: &KeyTable) -> Plan {
        let mut rules = family_rules(files, keys);
        let mut slots = Slots::default();
        let mut entry_slots = Vec::with_capacity(files.len());
        let mut problems = Vec::new();
        for (fi, f) in files.iter().enumerate() {
            let (here, bad_buckets) = slots.assign_file(fi, f, keys, &mut rules);
            if bad_buckets > 0 {
                let detail = format!(
                    "skipped {bad_buckets} histogram bucket samples whose le label is not a number"
                );
                problems.push((fi, FileProblem::new(Reason::BadBucket, detail)));
            }
            entry_slots.push(here);
        }
        let (families, groups) = slots.layout(files, keys, rules);
        Plan {
            signature: signature(files),
            folds: slots.folds,
            entry_slots,
            groups,
            families,
            problems,
        }
    }

    /// Folds the current values of `files` (the files the plan was built for).
    pub fn execute(&self, files: &[FileView<'_>]) -> Merged {
        let mut accs: Vec<Acc> = self.folds.iter().map(|f| f.start()).collect();
        for (f, slots) in files.iter().zip(&self.entry_slots) {
            for (&slot, &(value, ts)) in slots.iter().zip(f.values) {
                if let Some(acc) = accs.get_mut(slot as usize) {
                    acc.add(value, ts);
                }
            }
        }
        let slot_value = |s: u32| accs[s as usize].value();
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
        let value_of = |source: Source| match source {
            Source::Slot(s) => slot_value(s),
            Source::Bucket { group, upto } => Some(cumulative[group as usize][upto as usize]),
            Source::Count { group } => cumulative[group as usize].last().copied(),
        };
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
                        let value = value_of(*source)?;
                        Some(Sample {
                            value,
                            ..template.clone()
                        })
                    })
                    .collect(),
            })
            .collect();
        Merged {
            families,
            problems: self.problems.clone(),
        }
    }
}

/// Type and help from the first sighting, gauge rule from the last gauge file.
fn family_rules(files: &[FileView<'_>], keys: &KeyTable) -> FxHashMap<u32, FamilyRule> {
    let mut rules: FxHashMap<u32, FamilyRule> = FxHashMap::default();
    for f in files {
        for e in f.entries.iter().take(f.values.len()) {
            let info = keys.info(e.key);
            let rule = rules.entry(info.family).or_insert_with(|| FamilyRule {
                typ: f.kind.metric_type(),
                help: info.help.clone(),
                gauge: None,
                slots: FxHashMap::default(),
                groups: FxHashMap::default(),
            });
            if let FileKind::Gauge(mode) = f.kind {
                rule.gauge = Some((mode.is_per_pid(), Fold::for_gauge(mode)));
            }
        }
    }
    rules
}

impl Slots {
    /// The slots of every merged entry of file `fi`, and how many buckets were skipped.
    fn assign_file(
        &mut self,
        fi: usize,
        f: &FileView<'_>,
        keys: &KeyTable,
        rules: &mut FxHashMap<u32, FamilyRule>,
    ) -> (Vec<u32>, usize) {
        let pid_file = pid_file(fi, f);
        let mut here = Vec::with_capacity(f.entries.len().min(f.values.len()));
        let mut bad_buckets = 0usize;
        for e in f.entries.iter().take(f.values.len()) {
            let info = keys.info(e.key);
            // Every family of these entries has a rule (`family_rules` saw them all).
            let slot = match rules.get_mut(&info.family) {
                Some(rule) => self.slot_of(info, pid_file, rule),
                None => Some(SKIP),
            };
            bad_buckets += usize::from(slot.is_none());
            here.push(slot.unwrap_or(SKIP));
        }
        (here, bad_buckets)
    }

    /// The slot an entry folds into; `None` for a bucket whose `le` is not a number.
    fn slot_of(&mut self, info: &KeyInfo, pid_file: u32, rule: &mut FamilyRule) -> Option<u32> {
        let per_file = Slot {
            name: info.name,
            labels: info.labels,
            pid_file,
        };
        if rule.typ == MetricType::Gauge {
            let (per_pid, fold) = rule.gauge.unwrap_or((true, Fold::Last));
            let slot = if per_pid {
                per_file
            } else {
                Slot {
                    name: info.name,
                    labels: info.labels_no_pid,
                    pid_file: NO_PID,
                }
            };
            return Some(self.series_slot(info.family, slot, fold, rule));
        }
        if rule.typ == MetricType::Histogram && info.le != Le::Absent {
            let Le::Bound(bound) = info.le else {
                return None;
            };
            return Some(self.bucket_slot(info, pid_file, bound, rule));
        }
        Some(self.series_slot(info.family, per_file, Fold::Sum, rule))
    }

    fn new_slot(&mut self, fold: Fold) -> u32 {
        self.folds.push(fold);
        (self.folds.len() - 1) as u32
    }

    fn series_slot(&mut self, family: u32, slot: Slot, fold: Fold, rule: &mut FamilyRule) -> u32 {
        if let Some(&id) = rule.slots.get(&slot) {
            return id;
        }
        let id = self.new_slot(fold);
        self.series.push((id, family, slot));
        rule.slots.insert(slot, id);
        id
    }

    fn bucket_slot(
        &mut self,
        info: &KeyInfo,
        pid_file: u32,
        bound: f64,
        rule: &mut FamilyRule,
    ) -> u32 {
        let groups = &mut self.groups;
        let g = *rule
            .groups
            .entry((info.labels_no_le, pid_file))
            .or_insert_with(|| {
                groups.push(BucketGroup {
                    family: info.family,
                    labels: info.labels_no_le,
                    pid_file,
                    bounds: Vec::new(),
                });
                (groups.len() - 1) as u32
            });
        // `==` as in a Python dict keyed by float: 0.0 and -0.0 merge, NaN never.
        let found = self.groups[g as usize]
            .bounds
            .iter()
            .find(|(b, _)| *b == bound)
            .map(|&(_, s)| s);
        found.unwrap_or_else(|| {
            let s = self.new_slot(Fold::Sum);
            self.groups[g as usize].bounds.push((bound, s));
            s
        })
    }

    /// The sorted output layout, and each bucket group's slots in bound order.
    fn layout(
        &mut self,
        files: &[FileView<'_>],
        keys: &KeyTable,
        rules: FxHashMap<u32, FamilyRule>,
    ) -> (Vec<OutFamily>, Vec<Vec<u32>>) {
        let pid_of = |pid_file: u32| -> Option<Arc<str>> {
            (pid_file != NO_PID).then(|| files[pid_file as usize].pid_label.clone())
        };
        let mut templates: FxHashMap<u32, Vec<(Sample, Source)>> = FxHashMap::default();
        for &(s, family, slot) in &self.series {
            let sample = template(
                keys.names.get(slot.name).clone(),
                keys,
                slot.labels,
                pid_of(slot.pid_file),
                None,
            );
            templates
                .entry(family)
                .or_default()
                .push((sample, Source::Slot(s)));
        }
        let mut groups = Vec::with_capacity(self.groups.len());
        for (g, group) in std::mem::take(&mut self.groups).into_iter().enumerate() {
            let out = templates.entry(group.family).or_default();
            groups.push(bucket_templates(g as u32, group, keys, pid_of, out));
        }
        let mut families: Vec<OutFamily> = rules
            .into_iter()
            .map(|(family, rule)| {
                let mut samples = templates.remove(&family).unwrap_or_default();
                samples.sort_by(|a, b| compare_samples(&a.0, &b.0));
                for (template, _) in &mut samples {
                    template.prefix = Some(crate::render::underscores_prefix(template));
                }
                OutFamily {
                    name: keys.families.get(family).clone(),
                    help: rule.help,
                    typ: rule.typ,
                    samples,
                }
            })
            .collect();
        families.sort_by(|a, b| a.name.cmp(&b.name));
        (families, groups)
    }
}

/// A sample template whose value is filled per pass.
fn template(
    name: Arc<str>,
    keys: &KeyTable,
    labels: u32,
    pid: Option<Arc<str>>,
    le: Option<f64>,
) -> Sample {
    Sample {
        name,
        labels: keys.labelsets.get(labels).clone(),
        pid,
        le,
        value: 0.0,
        prefix: None,
    }
}

/// Appends the `_bucket` samples (ascending bounds) and the `_count` of group `g` to
/// `out`; returns the group's slots in bound order.
fn bucket_templates(
    g: u32,
    mut group: BucketGroup,
    keys: &KeyTable,
    pid_of: impl Fn(u32) -> Option<Arc<str>>,
    out: &mut Vec<(Sample, Source)>,
) -> Vec<u32> {
    group
        .bounds
        .sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
    let fname = keys.families.get(group.family);
    let bucket_name: Arc<str> = Arc::from(format!("{fname}_bucket"));
    let pid = pid_of(group.pid_file);
    for (i, (bound, _)) in group.bounds.iter().enumerate() {
        let sample = template(
            bucket_name.clone(),
            keys,
            group.labels,
            pid.clone(),
            Some(*bound),
        );
        out.push((
            sample,
            Source::Bucket {
                group: g,
                upto: i as u32,
            },
        ));
    }
    let count = template(
        Arc::from(format!("{fname}_count")),
        keys,
        group.labels,
        pid,
        None,
    );
    out.push((count, Source::Count { group: g }));
    group.bounds.into_iter().map(|(_, s)| s).collect()
}
