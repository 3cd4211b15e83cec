//! Slot allocation: which accumulation slot each entry folds into.
//!
//! A slot is one output value with its fold rule: a series (name, labels, and the file
//! whose `pid` applies) or one histogram bucket of a bucket group. Entries are assigned
//! in file order, so slots, series and groups are allocated in the order of their first
//! sightings; each assignment says what it allocated ([`Changes`]): a fresh build lays
//! all of it out, an extended plan only what is new.

use super::rules::FamilyRule;
use super::{NO_PID, Slot};
use crate::fold::Fold;
use crate::model::MetricType;
use crate::parse::{KeyInfo, Le};

/// Marks an entry that contributes nothing (a bucket with a bad `le`).
pub(super) const SKIP: u32 = u32::MAX;

/// An output series that is not a histogram bucket or `_count`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Series {
    /// Where its value accumulates.
    pub(super) slot: u32,
    /// Its identity.
    pub(super) key: Slot,
    /// The label set its lines spell (without the `pid` that the file's replaces).
    pub(super) shown: u32,
}

/// A histogram bucket group: the buckets of one label set (and pid file).
#[derive(Debug)]
pub(super) struct BucketGroup {
    pub(super) family: u32,
    pub(super) labels: u32,
    pub(super) pid_file: u32,
    /// `(bound, slot)`: in first-seen order while entries are assigned, in ascending
    /// bound order once the group is placed.
    pub(super) bounds: Vec<(f64, u32)>,
    /// Where the group's running sums start in the plan's cumulative array.
    pub(super) offset: u32,
    /// How many running sums are reserved there (0: not placed yet).
    pub(super) placed: u32,
}

/// What an assignment allocated beyond what existed.
#[derive(Debug, Default)]
pub(super) struct Changes {
    /// New series with their families, in allocation order.
    pub(super) series: Vec<(u32, Series)>,
    /// Bucket groups that are new or gained bounds (with repeats).
    pub(super) groups: Vec<u32>,
    /// An entry met a bound equal to its own but spelled with other bits (`0.0` and
    /// `-0.0`): the first sighting's spelling is kept, so only a fresh build knows it.
    pub(super) respelled: bool,
}

/// The slots allocated so far: one fold each, and the bucket groups.
#[derive(Debug, Default)]
pub(super) struct Slots {
    pub(super) folds: Vec<Fold>,
    pub(super) groups: Vec<BucketGroup>,
}

/// What an entry folds into.
pub(super) enum Target {
    /// A series: its identity, the label set its lines spell, and its fold.
    Series(Slot, u32, Fold),
    /// A histogram bucket with this bound.
    Bucket(f64),
    /// A histogram bucket whose `le` is not a number: nothing.
    Bad,
}

/// What an entry of the file whose `pid` applies (`pid_file`) folds into under `rule`.
pub(super) fn target(info: &KeyInfo, pid_file: u32, rule: &FamilyRule) -> Target {
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
        if per_pid {
            return Target::Series(per_file, shown, fold);
        }
        let slot = Slot {
            name: info.name,
            labels: info.labels_no_pid,
            pid_file: NO_PID,
        };
        return Target::Series(slot, info.labels_no_pid, fold);
    }
    if rule.typ == MetricType::Histogram && info.le != Le::Absent {
        return match info.le {
            Le::Bound(bound) => Target::Bucket(bound),
            _ => Target::Bad,
        };
    }
    Target::Series(per_file, shown, Fold::Sum)
}

impl Slots {
    /// The slot an entry folds into; `None` for a bucket whose `le` is not a number.
    pub(super) fn slot_of(
        &mut self,
        info: &KeyInfo,
        pid_file: u32,
        rule: &mut FamilyRule,
        changes: &mut Changes,
    ) -> Option<u32> {
        match target(info, pid_file, rule) {
            Target::Series(slot, shown, fold) => {
                Some(self.series_slot(info.family, slot, shown, fold, rule, changes))
            }
            Target::Bucket(bound) => Some(self.bucket_slot(info, pid_file, bound, rule, changes)),
            Target::Bad => None,
        }
    }

    fn new_slot(&mut self, fold: Fold) -> u32 {
        self.folds.push(fold);
        (self.folds.len() - 1) as u32
    }

    fn series_slot(
        &mut self,
        family: u32,
        key: Slot,
        shown: u32,
        fold: Fold,
        rule: &mut FamilyRule,
        changes: &mut Changes,
    ) -> u32 {
        if let Some(&id) = rule.slots.get(&key) {
            return id;
        }
        let slot = self.new_slot(fold);
        rule.slots.insert(key, slot);
        changes.series.push((family, Series { slot, key, shown }));
        slot
    }

    fn bucket_slot(
        &mut self,
        info: &KeyInfo,
        pid_file: u32,
        bound: f64,
        rule: &mut FamilyRule,
        changes: &mut Changes,
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
                    offset: 0,
                    placed: 0,
                });
                (groups.len() - 1) as u32
            });
        // `==` as in a Python dict keyed by float: 0.0 and -0.0 merge, NaN never.
        let found = self.groups[g as usize]
            .bounds
            .iter()
            .find(|(b, _)| *b == bound)
            .copied();
        if let Some((b, s)) = found {
            changes.respelled |= b.to_bits() != bound.to_bits();
            return s;
        }
        let s = self.new_slot(Fold::Sum);
        self.groups[g as usize].bounds.push((bound, s));
        changes.groups.push(g);
        s
    }
}
