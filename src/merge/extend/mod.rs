//! Extending a plan when files gained entries at their ends, the common change of a pool
//! whose workers create new label sets (prometheus_client files are append-only: keys
//! never change, only values).
//!
//! A fresh build over the longer files would decide every old entry as before, unless a
//! new entry changes a family rule (a new family, a new first sighting with another type
//! or help, a later gauge file with another mode), is a bucket without a numeric `le`,
//! or meets a bound spelled another way (`-0.0` against `0.0`). In those cases the
//! extension gives up and the caller builds afresh. Otherwise the new entries get their
//! slots; when all of them land in existing series only the entry slots grow, and
//! otherwise only the families that gained series have them merged into their sorted
//! series and are laid out again. The others keep their shared layouts.
//!
//! Why the result is a fresh build's: the fold of a slot walks the files in order
//! whatever its number; bucket groups without a NaN bound sort to one order; and a
//! family's series have one sorted order whatever their input order, because the output
//! comparison is a total order (its ties broken as first sightings would) once `pid`
//! labels are all numbers or all not (`Plan::orderly_pids`); with NaN bounds in a changed
//! group, or mixed `pid` labels, only the order a fresh build feeds its stable sort is
//! exact, so those cases build afresh.

use super::FileView;
use super::layout::{self, CUMULATIVE};
use super::plan::{Plan, merged_len, pid_file};
use super::slots::{self, Changes, Series, Target};
use crate::parse::KeyTable;
use std::ops::Range;

impl Plan {
    /// This plan extended to `files`, which must be the files it was built for with
    /// entries appended at their ends; `None` when only a fresh build is exact (see the
    /// module docs), or when the files are not such.
    pub fn extended(mut self, files: &[FileView<'_>], keys: &KeyTable) -> Option<Plan> {
        if !self.only_appended(files) {
            return None;
        }
        let mut changes = Changes::default();
        for fi in 0..files.len() {
            let from = self.signature.get(fi)?.1;
            self.assign_appended(fi, files, from, keys, &mut changes)?;
        }
        if changes.respelled {
            return None;
        }
        let mut grown = std::mem::take(&mut changes.groups);
        grown.sort_unstable();
        grown.dedup();
        let moved = self.place_changed(&grown)?;
        let mut families: Vec<u32> = changes.series.iter().map(|(f, _)| *f).collect();
        families.extend(
            grown
                .iter()
                .filter_map(|&g| Some(self.slots.groups.get(g as usize)?.family)),
        );
        if !families.is_empty() && !self.orderly_pids {
            return None;
        }
        families.sort_unstable();
        families.dedup();
        // A moved group's old sums are nobody's now: its series come again, placed anew.
        let gone = |source: u32| {
            let at = source & !CUMULATIVE;
            source & CUMULATIVE != 0 && moved.iter().any(|r| r.contains(&at))
        };
        for family in families {
            let out = self.families.get_mut(self.rules.get(&family)?.out)?;
            let new = layout::new_series(family, &changes, &grown, &self.slots.groups);
            layout::relaid(out, new, gone, keys, files)?;
        }
        self.signature = super::plan::signature(files);
        Some(self)
    }

    /// Whether `files` are this plan's files, each with as many merged entries or more.
    fn only_appended(&self, files: &[FileView<'_>]) -> bool {
        files.len() == self.signature.len()
            && files
                .iter()
                .zip(&self.signature)
                .all(|(f, &(generation, n))| f.generation == generation && merged_len(f) >= n)
    }

    /// Assigns the entries of file `fi` of `files` from `from` on; `None` when one of
    /// them changes a rule or is a bad bucket.
    fn assign_appended(
        &mut self,
        fi: usize,
        files: &[FileView<'_>],
        from: usize,
        keys: &KeyTable,
        changes: &mut Changes,
    ) -> Option<()> {
        let f = files.get(fi)?;
        let appended = f.entries.get(from..merged_len(f))?;
        if appended.is_empty() {
            return Some(());
        }
        let pid_file = pid_file(fi, f);
        for e in appended {
            let info = keys.info(e.key);
            if !self.rules.get(&info.family)?.indexed {
                self.index_family(info.family, files, keys)?;
            }
            let rule = self.rules.get_mut(&info.family)?;
            if !rule.admits(fi, f.kind, &info) {
                return None;
            }
            let slot = self.slots.slot_of(&info, pid_file, rule, changes)?;
            self.entry_slots.get_mut(fi)?.push(slot);
        }
        Some(())
    }

    /// Makes again what a built plan dropped of `family` (its map of series to slots,
    /// its sorted series) from the entries merged so far, none of them this family's
    /// new ones: a series' slot is the slot of any entry of it.
    fn index_family(&mut self, family: u32, files: &[FileView<'_>], keys: &KeyTable) -> Option<()> {
        let rule = self.rules.get_mut(&family)?;
        let mut series = Vec::new();
        for (fi, f) in files.iter().enumerate() {
            let pid_file = pid_file(fi, f);
            let slots = self.entry_slots.get(fi)?;
            for (e, &slot) in f.entries.iter().zip(slots) {
                let info = keys.info(e.key);
                if info.family != family {
                    continue;
                }
                if let Target::Series(key, shown, _) = slots::target(&info, pid_file, rule)
                    && rule.slots.insert(key, slot).is_none()
                {
                    series.push(layout::series_key(&Series { slot, key, shown }));
                }
            }
        }
        let mut groups: Vec<u32> = rule.groups.values().copied().collect();
        groups.sort_unstable();
        for group in groups
            .iter()
            .filter_map(|&g| self.slots.groups.get(g as usize))
        {
            layout::bucket_series(group, &mut series);
        }
        rule.indexed = true;
        let out = self.families.get_mut(rule.out)?;
        out.keep_sorted(series, keys, files);
        Some(())
    }

    /// Sorts and places the bucket `groups` that are new or gained bounds; returns the
    /// places the moved ones left. `None` when one has a NaN bound (see the module docs)
    /// or the moves left too many holes.
    fn place_changed(&mut self, groups: &[u32]) -> Option<Vec<Range<u32>>> {
        let mut moved = Vec::new();
        for &g in groups {
            let group = self.slots.groups.get_mut(g as usize)?;
            if group.bounds.iter().any(|(b, _)| b.is_nan()) {
                return None;
            }
            layout::sort_bounds(group);
            if group.placed > 0 {
                moved.push(group.offset..group.offset + group.placed);
            }
            self.holes += group.placed as usize;
            self.cumulative_len = layout::place(group, self.cumulative_len);
        }
        // Waste is bounded: past this, a fresh build packs the sums again.
        let live = self.cumulative_len - self.holes;
        (self.holes <= live.max(1 << 12)).then_some(moved)
    }
}

#[cfg(test)]
mod tests;
