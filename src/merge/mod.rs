//! Stage 4: combine the entries of all files into metric families, with the rules of
//! prometheus_client's `MultiProcessCollector.merge(files, accumulate=True)`.
//!
//! Files are taken in sorted name order, and the rules that depend on order follow that
//! order exactly as the collector follows its directory order: a family's type and help
//! come from its first sighting, its gauge mode from the last gauge file that mentions
//! it, min/max keep the first value unless a later one is strictly smaller/larger, and
//! mostrecent keeps the first of equal timestamps (the rules themselves live in
//! [`crate::fold`], shared with compaction). Sums are exact, so they do not depend on
//! order at all. The output is sorted (families by name, samples
//! by labels), which the collector's is not.
//!
//! Bad input: an `le` label that is not a number (which crashes the collector) drops
//! that bucket sample and is reported for its file.

mod extend;
mod layout;
pub mod plan;
mod rules;
mod slots;

use crate::model::{Family, FileKind, FileProblem, Labels};
use crate::parse::{Indexed, KeyTable};
use plan::Plan;
use std::cmp::Ordering;
use std::sync::Arc;

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
    /// Changes whenever the file's index starts over (a new or replaced file), so a
    /// cached merge plan can tell the same file from a different one.
    pub generation: u64,
}

/// What a merge produced.
#[derive(Debug, Default)]
pub struct Merged {
    /// Families sorted by name, samples grouped by label set and sorted.
    pub families: Vec<Family>,
    /// Problems met while merging, by position of the file in the input.
    pub problems: Vec<(usize, FileProblem)>,
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

/// A merger that keeps its plan between passes over the same files.
#[derive(Debug, Default)]
pub struct Merger {
    plan: Option<Plan>,
    builds: u64,
    extensions: u64,
}

impl Merger {
    /// Merges `files` (in the order given, which callers make sorted by name),
    /// extending the plan when files only gained entries, rebuilding it when they
    /// changed otherwise.
    pub fn merge(&mut self, files: &[FileView<'_>], keys: &KeyTable) -> Merged {
        let current = plan::signature(files);
        let extended = match self.plan.take() {
            Some(plan) if *plan.signature() == current => Some(plan),
            Some(plan) => plan.extended(files, keys).inspect(|_| self.extensions += 1),
            None => None,
        };
        let plan = extended.unwrap_or_else(|| {
            self.builds += 1;
            Plan::build(files, keys)
        });
        let merged = plan.execute(files);
        self.plan = Some(plan);
        merged
    }

    /// How many plans were built: a steady pass builds none, nor does one whose files
    /// only gained entries (mostly: see [`Merger::plans_extended`]).
    pub fn plans_built(&self) -> u64 {
        self.builds
    }

    /// How many times a plan was extended to entries appended to its files instead of
    /// being built afresh.
    pub fn plans_extended(&self) -> u64 {
        self.extensions
    }
}

/// The name of an output series: a key's sample name, or one the histogram rules make.
/// Declared in the order a fresh build meets them among otherwise equal series (a
/// family's series before its bucket groups'), which is how [`SortKey::compare`]
/// breaks such ties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Name {
    /// A sample name id of the key table.
    Key(u32),
    /// `<family>_bucket`.
    Bucket,
    /// `<family>_count`.
    Count,
}

/// What decides where an output series goes in its family.
#[derive(Clone, Copy, Debug)]
struct SortKey {
    /// Its label set id (the key's labels, `pid` included): decides the order.
    labels: u32,
    /// The label set its lines spell (without a `pid` that the file's replaces).
    shown: u32,
    /// Index of the file whose `pid` label applies, or [`NO_PID`].
    pid_file: u32,
    /// The bound of a bucket.
    le: Option<f64>,
    name: Name,
}

impl SortKey {
    /// Groups series by label set (with the pid), then buckets by bound, then by name.
    ///
    /// Series equal in all that (a `<family>_count` key beside a histogram's `_count`,
    /// or two files with the same `pid` label) are ordered as a fresh build allocates
    /// them: by kind of name, then by file (a per-file series is first seen in its own
    /// file). So the order does not depend on the order the series are given in, and an
    /// extended plan can sort a family again (see `extend/`).
    fn compare(
        &self,
        other: &SortKey,
        family: &str,
        keys: &KeyTable,
        files: &[FileView<'_>],
    ) -> Ordering {
        compare_labels(self.labels, other.labels, keys)
            .then_with(|| self.compare_within(other, family, keys, files))
    }

    /// [`SortKey::compare`] of keys whose label sets are equal.
    fn compare_within(
        &self,
        other: &SortKey,
        family: &str,
        keys: &KeyTable,
        files: &[FileView<'_>],
    ) -> Ordering {
        let pid = |k: &SortKey| {
            (k.pid_file != NO_PID)
                .then(|| files.get(k.pid_file as usize))
                .flatten()
                .map(|f| &**f.pid_label)
        };
        compare_pid(pid(self), pid(other))
            .then_with(|| other.le.is_some().cmp(&self.le.is_some()))
            .then_with(|| match (self.le, other.le) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => Ordering::Equal,
            })
            .then_with(|| compare_names(self.name, other.name, family, keys))
            .then_with(|| self.name.cmp(&other.name))
            .then_with(|| self.pid_file.cmp(&other.pid_file))
    }
}

fn compare_labels(a: u32, b: u32, keys: &KeyTable) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let text = |id| Labels::from_spelled(keys.labelsets.text(id), false);
    text(a).cmp_pairs(&text(b))
}

/// Orders names as strings, the histogram ones spelled `<family>_bucket` and `_count`.
fn compare_names(a: Name, b: Name, family: &str, keys: &KeyTable) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let spelled = |n: Name| -> (&str, &'static str) {
        match n {
            Name::Key(id) => (keys.names.get(id), ""),
            Name::Bucket => (family, "_bucket"),
            Name::Count => (family, "_count"),
        }
    };
    let ((a0, a1), (b0, b1)) = (spelled(a), spelled(b));
    a0.bytes()
        .chain(a1.bytes())
        .cmp(b0.bytes().chain(b1.bytes()))
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
