//! A merge plan: what every entry of every file contributes to, decided once.
//!
//! Deciding where an entry goes (its family's type and mode, its output series, its
//! histogram bucket) needs hash lookups and, for the output, a sort. None of that changes
//! while the files and their entries stay the same, which is the steady state of a pool:
//! keys are append-only and only values change. So the decisions are made once into a
//! plan (a slot per output value with its fold rule, a slot index per entry, the sorted
//! output layout), and each pass only walks the values into the slots. A plan is rebuilt
//! when a file appears, vanishes, is replaced, or gains entries.

use super::{FileView, Merged, NO_PID, Name, Slot, SortKey};
use crate::fold::{Acc, Fold};
use crate::model::{Family, FileKind, FileProblem, Layout, LayoutBuilder, MetricType, Reason};
use crate::parse::{KeyInfo, KeyTable, Le};
use rustc_hash::FxHashMap;
use std::cmp::Ordering;
use std::sync::Arc;

/// Marks an entry that contributes nothing (a bucket with a bad `le`).
const SKIP: u32 = u32::MAX;

/// Where an output sample's value comes from: slot `n`, or with this bit set, entry `n`
/// of the running bucket sums (a bucket group's cumulative counts end to end, each
/// group's last being its `_count`).
const CUMULATIVE: u32 = 1 << 31;

/// One family of the output layout.
#[derive(Debug)]
struct OutFamily {
    name: Arc<str>,
    help: Arc<str>,
    typ: MetricType,
    /// The series in output order, shared with every pass's [`Family`].
    layout: Arc<Layout>,
    /// Per series, where its value comes from (see [`CUMULATIVE`]).
    sources: Vec<u32>,
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
    /// How many running bucket sums there are (one per bucket, groups end to end).
    cumulative_len: usize,
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
    /// Per series slot: its family, output identity, and the label set its lines spell
    /// (without the `pid` that the file's replaces).
    series: Vec<(u32, u32, Slot, u32)>,
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
        let cumulative_len = groups.iter().map(Vec::len).sum();
        Plan {
            signature: signature(files),
            folds: slots.folds,
            entry_slots,
            groups,
            cumulative_len,
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
        let slot_value = |s: u32| accs.get(s as usize).and_then(Acc::value);
        // Running sums per bucket group, as the collector accumulates them.
        let mut cumulative = Vec::with_capacity(self.cumulative_len);
        for slots in &self.groups {
            let mut acc = 0.0;
            for &s in slots {
                acc += slot_value(s).unwrap_or(0.0);
                cumulative.push(acc);
            }
        }
        let value_of = |source: u32| {
            if source & CUMULATIVE != 0 {
                cumulative.get((source & !CUMULATIVE) as usize).copied()
            } else {
                slot_value(source)
            }
        };
        let families = self
            .families
            .iter()
            .map(|f| {
                Family::new(
                    f.name.clone(),
                    f.help.clone(),
                    f.typ,
                    f.layout.clone(),
                    f.sources.iter().map(|&s| value_of(s)),
                )
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
                help: keys.help(info.help).clone(),
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
                Some(rule) => self.slot_of(&info, pid_file, rule),
                None => Some(SKIP),
            };
            bad_buckets += usize::from(slot.is_none());
            here.push(slot.unwrap_or(SKIP));
        }
        (here, bad_buckets)
    }

    /// The slot an entry folds into; `None` for a bucket whose `le` is not a number.
    fn slot_of(&mut self, info: &KeyInfo, pid_file: u32, rule: &mut FamilyRule) -> Option<u32> {
        // A per-file series' lines carry the file's `pid`, which replaces the key's.
        let shown = if pid_file == NO_PID {
            info.labels
        } else {
            info.labels_no_pid
        };
        let per_file = Slot {
            name: info.name,
            labels: info.labels,
            pid_file,
        };
        if rule.typ == MetricType::Gauge {
            let (per_pid, fold) = rule.gauge.unwrap_or((true, Fold::Last));
            let (slot, shown) = if per_pid {
                (per_file, shown)
            } else {
                let slot = Slot {
                    name: info.name,
                    labels: info.labels_no_pid,
                    pid_file: NO_PID,
                };
                (slot, info.labels_no_pid)
            };
            return Some(self.series_slot(info.family, slot, shown, fold, rule));
        }
        if rule.typ == MetricType::Histogram && info.le != Le::Absent {
            let Le::Bound(bound) = info.le else {
                return None;
            };
            return Some(self.bucket_slot(info, pid_file, bound, rule));
        }
        Some(self.series_slot(info.family, per_file, shown, Fold::Sum, rule))
    }

    fn new_slot(&mut self, fold: Fold) -> u32 {
        self.folds.push(fold);
        (self.folds.len() - 1) as u32
    }

    fn series_slot(
        &mut self,
        family: u32,
        slot: Slot,
        shown: u32,
        fold: Fold,
        rule: &mut FamilyRule,
    ) -> u32 {
        if let Some(&id) = rule.slots.get(&slot) {
            return id;
        }
        let id = self.new_slot(fold);
        self.series.push((id, family, slot, shown));
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
        let mut series: FxHashMap<u32, Vec<(SortKey, u32)>> = FxHashMap::default();
        for &(s, family, slot, shown) in &std::mem::take(&mut self.series) {
            let key = SortKey {
                labels: slot.labels,
                shown,
                pid_file: slot.pid_file,
                le: None,
                name: Name::Key(slot.name),
            };
            series.entry(family).or_default().push((key, s));
        }
        let mut groups = Vec::with_capacity(self.groups.len());
        let mut cumulative = 0u32;
        for group in std::mem::take(&mut self.groups) {
            let out = series.entry(group.family).or_default();
            groups.push(bucket_series(group, &mut cumulative, out));
        }
        let mut families: Vec<OutFamily> = rules
            .into_iter()
            .map(|(family, rule)| {
                let mut samples = series.remove(&family).unwrap_or_default();
                let name = keys.families.get(family).clone();
                samples.sort_by(|a, b| a.0.compare(&b.0, &name, keys, files));
                let (layout, sources) = build_layout(&name, &samples, keys, files);
                OutFamily {
                    name,
                    help: rule.help,
                    typ: rule.typ,
                    layout: Arc::new(layout),
                    sources,
                }
            })
            .collect();
        families.sort_by(|a, b| a.name.cmp(&b.name));
        (families, groups)
    }
}

/// The layout of one family's sorted series, and where each one's value comes from.
fn build_layout(
    family: &str,
    samples: &[(SortKey, u32)],
    keys: &KeyTable,
    files: &[FileView<'_>],
) -> (Layout, Vec<u32>) {
    let bucket: Arc<str> = Arc::from(format!("{family}_bucket"));
    let count: Arc<str> = Arc::from(format!("{family}_count"));
    let mut b = LayoutBuilder::default();
    let mut sources = Vec::with_capacity(samples.len());
    for (key, source) in samples {
        let name = match key.name {
            Name::Key(id) => keys.names.get(id),
            Name::Bucket => &bucket,
            Name::Count => &count,
        };
        let pid = (key.pid_file != NO_PID).then(|| files[key.pid_file as usize].pid_label);
        b.push(name, &keys.labelsets.get(key.shown), pid, key.le);
        sources.push(*source);
    }
    (b.finish(), sources)
}

/// Appends the `_bucket` series (ascending bounds) and the `_count` of `group` to
/// `out`, their values taken from the running sums that start at `cumulative`; returns
/// the group's slots in bound order.
fn bucket_series(
    mut group: BucketGroup,
    cumulative: &mut u32,
    out: &mut Vec<(SortKey, u32)>,
) -> Vec<u32> {
    group
        .bounds
        .sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
    let key = |le: Option<f64>, name: Name| SortKey {
        labels: group.labels,
        shown: group.labels,
        pid_file: group.pid_file,
        le,
        name,
    };
    for (bound, _) in &group.bounds {
        out.push((key(Some(*bound), Name::Bucket), *cumulative | CUMULATIVE));
        *cumulative += 1;
    }
    if let Some(last) = cumulative
        .checked_sub(1)
        .filter(|_| !group.bounds.is_empty())
    {
        out.push((key(None, Name::Count), last | CUMULATIVE));
    }
    group.bounds.into_iter().map(|(_, s)| s).collect()
}
