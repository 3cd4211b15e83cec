//! A merge plan: what every entry of every file contributes to, decided once.
//!
//! Deciding where an entry goes (its family's type and mode, its output series, its
//! histogram bucket) needs hash lookups and, for the output, a sort. None of that changes
//! while the files and their entries stay the same, which is the steady state of a pool:
//! keys are append-only and only values change. So the decisions are made once into a
//! plan (a slot per output value with its fold rule, a slot index per entry, the sorted
//! output layout), and each pass only walks the values into the slots. A plan is rebuilt
//! when a file appears, vanishes or is replaced; when files only gained entries at their
//! ends it is extended ([`Plan::extended`], in `extend/`), which decides the new entries
//! alone and lays out again only the families that gained series.

use super::layout::{self, CUMULATIVE, OutFamily};
use super::rules::{FamilyRule, Rules, family_rules};
use super::slots::{Changes, SKIP, Slots};
use super::{FileView, Merged, NO_PID};
use crate::fold::Acc;
use crate::model::{Family, FileKind, FileProblem, Reason};
use crate::parse::KeyTable;

/// Identifies what a plan was built from: per file, its index generation and how many
/// entries were merged.
pub type Signature = Vec<(u64, usize)>;

/// Decisions for one set of files.
#[derive(Debug)]
pub struct Plan {
    pub(super) signature: Signature,
    /// The folds of the slots, and the bucket groups (placed, bounds ascending).
    pub(super) slots: Slots,
    /// Per file, per merged entry: the slot, or [`SKIP`].
    pub(super) entry_slots: Vec<Vec<u32>>,
    /// The length of the running bucket sums array (see [`layout`]).
    pub(super) cumulative_len: usize,
    /// How much of it groups left when they moved (an extended plan's waste).
    pub(super) holes: usize,
    pub(super) families: Vec<OutFamily>,
    pub(super) problems: Vec<(usize, FileProblem)>,
    /// Kept for extending the plan: the family rules with their series and groups.
    pub(super) rules: Rules,
    /// Whether the `pid` labels of the gauge files are all numbers or all not: only then
    /// is the output order a total order (numbers compare as numbers, the rest as text),
    /// so that sorting a family again gives a fresh build's order whatever the input.
    pub(super) orderly_pids: bool,
}

/// The signature of `files` (see [`Signature`]).
pub fn signature(files: &[FileView<'_>]) -> Signature {
    files
        .iter()
        .map(|f| (f.generation, merged_len(f)))
        .collect()
}

/// How many entries of `f` are merged (those with a value).
pub(super) fn merged_len(f: &FileView<'_>) -> usize {
    f.entries.len().min(f.values.len())
}

/// The file index used for the `pid` label of a file's series, or [`NO_PID`].
pub(super) fn pid_file(fi: usize, f: &FileView<'_>) -> u32 {
    if matches!(f.kind, FileKind::Gauge(_)) {
        fi as u32
    } else {
        NO_PID
    }
}

/// What entries of files without a `pid` of their own fold into, by key id: there the
/// slot depends on the key alone, and most keys are in every worker's file, so a key
/// seen in one file costs no lookup in the next (a first pass decides 628,000 entries
/// of 88,512 series at the L of DESIGN section 6).
struct KnownSlots(Vec<u32>);

/// Not decided yet, in [`KnownSlots`].
const UNKNOWN: u32 = u32::MAX;
/// A bucket whose `le` is not a number, in [`KnownSlots`].
const BAD: u32 = u32::MAX - 1;

impl KnownSlots {
    fn new(keys: usize) -> KnownSlots {
        KnownSlots(vec![UNKNOWN; keys])
    }

    /// The slot of key `key` in a file whose `pid` applies as `pid_file`, if decided
    /// (`Some(None)`: a bad bucket).
    fn get(&self, key: u32, pid_file: u32) -> Option<Option<u32>> {
        if pid_file != NO_PID {
            return None;
        }
        match self.0.get(key as usize).copied()? {
            UNKNOWN => None,
            BAD => Some(None),
            slot => Some(Some(slot)),
        }
    }

    fn set(&mut self, key: u32, pid_file: u32, slot: Option<u32>) {
        if let Some(known) = self.0.get_mut(key as usize).filter(|_| pid_file == NO_PID) {
            *known = slot.unwrap_or(BAD);
        }
    }
}

/// See [`Plan::orderly_pids`].
fn orderly_pids(files: &[FileView<'_>]) -> bool {
    let numeric = files
        .iter()
        .filter(|f| matches!(f.kind, FileKind::Gauge(_)))
        .map(|f| f.pid_label.parse::<u64>().is_ok());
    let (mut some, mut all) = (false, true);
    for n in numeric {
        some |= n;
        all &= n;
    }
    all || !some
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
        let mut changes = Changes::default();
        let mut entry_slots = Vec::with_capacity(files.len());
        let mut problems = Vec::new();
        let mut known = KnownSlots::new(keys.len());
        for (fi, f) in files.iter().enumerate() {
            let pid_file = pid_file(fi, f);
            let mut here = Vec::with_capacity(merged_len(f));
            let mut bad_buckets = 0usize;
            for e in f.entries.iter().take(f.values.len()) {
                let slot = known.get(e.key, pid_file).unwrap_or_else(|| {
                    let info = keys.info(e.key);
                    // Every family of these entries has a rule (`family_rules` saw them all).
                    let Some(rule) = rules.get_mut(&info.family) else {
                        return Some(SKIP);
                    };
                    let slot = slots.slot_of(&info, pid_file, rule, &mut changes);
                    known.set(e.key, pid_file, slot);
                    slot
                });
                bad_buckets += usize::from(slot.is_none());
                here.push(slot.unwrap_or(SKIP));
            }
            if bad_buckets > 0 {
                let detail = format!(
                    "skipped {bad_buckets} histogram bucket samples whose le label is not a number"
                );
                problems.push((fi, FileProblem::new(Reason::BadBucket, detail)));
            }
            entry_slots.push(here);
        }
        let mut cumulative_len = 0;
        for group in &mut slots.groups {
            layout::sort_bounds(group);
            cumulative_len = layout::place(group, cumulative_len);
        }
        let mut families = layout::all_families(&mut rules, &changes, &slots.groups, keys, files);
        // What only extensions need is made again when one needs it (see `extend/`).
        rules.values_mut().for_each(FamilyRule::forget_slots);
        families.iter_mut().for_each(OutFamily::forget_sorted);
        Plan {
            signature: signature(files),
            slots,
            entry_slots,
            cumulative_len,
            holes: 0,
            families,
            problems,
            rules,
            orderly_pids: orderly_pids(files),
        }
    }

    /// Folds the current values of `files` (the files the plan was built for).
    pub fn execute(&self, files: &[FileView<'_>]) -> Merged {
        let mut accs: Vec<Acc> = self.slots.folds.iter().map(|f| f.start()).collect();
        for (f, slots) in files.iter().zip(&self.entry_slots) {
            for (&slot, &(value, ts)) in slots.iter().zip(f.values) {
                if let Some(acc) = accs.get_mut(slot as usize) {
                    acc.add(value, ts);
                }
            }
        }
        let slot_value = |s: u32| accs.get(s as usize).and_then(Acc::value);
        // Running sums per bucket group, as the collector accumulates them.
        let mut cumulative = vec![0.0; self.cumulative_len];
        for group in &self.slots.groups {
            let start = group.offset as usize;
            let Some(sums) = cumulative.get_mut(start..start + group.bounds.len()) else {
                continue;
            };
            let mut acc = 0.0;
            for (sum, &(_, s)) in sums.iter_mut().zip(&group.bounds) {
                acc += slot_value(s).unwrap_or(0.0);
                *sum = acc;
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
