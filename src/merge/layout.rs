//! The output side of a plan: each family's series sorted into a [`Layout`], and where
//! each series' value comes from.
//!
//! Histogram buckets are output cumulative: each bucket group's running sums are laid
//! end to end in one array that a pass fills (`Plan::execute`), and a bucket series
//! reads its sum from there. A group is placed in that array once; a group that gains
//! bounds later moves to the end (its old place becomes a hole), so no other family's
//! sources change.
//!
//! A family that gains series in an extended plan keeps its sorted series from then on,
//! so that later extensions merge the few new ones in ([`relaid`]) instead of sorting
//! the family again: sorting compares label texts, and the largest family of the
//! benchmark's L has 13,000 series. A built plan keeps none (48 bytes a series): the
//! first extension of a family sorts it once ([`OutFamily::keep_sorted`]).

use super::rules::Rules;
use super::slots::{BucketGroup, Changes, Series};
use super::{FileView, NO_PID, Name, SortKey};
use crate::model::{Labels, Layout, LayoutBuilder, MetricType};
use crate::parse::KeyTable;
use rustc_hash::FxHashMap;
use std::cmp::Ordering;
use std::sync::Arc;

/// Where an output sample's value comes from: slot `n`, or with this bit set, entry `n`
/// of the running bucket sums (a bucket group's cumulative counts end to end, each
/// group's last being its `_count`).
pub(super) const CUMULATIVE: u32 = 1 << 31;

/// A series in output order: what decides the order, and where its value comes from.
pub(super) type Sorted = Vec<(SortKey, u32)>;

/// One family of the output layout.
#[derive(Debug)]
pub(super) struct OutFamily {
    pub(super) name: Arc<str>,
    pub(super) help: Arc<str>,
    pub(super) typ: MetricType,
    /// The series in output order, shared with every pass's family.
    pub(super) layout: Arc<Layout>,
    /// Per series, where its value comes from (see [`CUMULATIVE`]).
    pub(super) sources: Vec<u32>,
    /// The series in output order with their sort keys, once an extension needed them.
    sorted: Option<Sorted>,
}

impl OutFamily {
    /// Drops the sorted series (see the module docs).
    pub(super) fn forget_sorted(&mut self) {
        self.sorted = None;
    }

    /// Keeps `series` (this family's, in any order) sorted, for [`relaid`].
    pub(super) fn keep_sorted(
        &mut self,
        mut series: Sorted,
        keys: &KeyTable,
        files: &[FileView<'_>],
    ) {
        let name = self.name.clone();
        series.sort_by(|a, b| a.0.compare(&b.0, &name, keys, files));
        self.sorted = Some(series);
    }
}

/// Sorts a group's bounds ascending, as a fresh build does: stable, from first-seen
/// order (which decides only where a NaN bound goes).
pub(super) fn sort_bounds(group: &mut BucketGroup) {
    group
        .bounds
        .sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
}

/// Places `group`'s running sums at the end of the cumulative array of length `len`;
/// returns the new length.
pub(super) fn place(group: &mut BucketGroup, len: usize) -> usize {
    group.offset = len as u32;
    group.placed = group.bounds.len() as u32;
    len + group.bounds.len()
}

/// The sort key of a series that is not a bucket or count.
pub(super) fn series_key(s: &Series) -> (SortKey, u32) {
    let key = SortKey {
        labels: s.key.labels,
        shown: s.shown,
        pid_file: s.key.pid_file,
        le: None,
        name: Name::Key(s.key.name),
    };
    (key, s.slot)
}

/// Every family's output, sorted by name, from a fresh build's `changes` (every series
/// in allocation order) and its placed `groups`; notes each family's index in its rule.
///
/// A family's series are given to the stable sort as the old single-pass build gave
/// them: series in allocation order, then each bucket group's in group order.
pub(super) fn all_families(
    rules: &mut Rules,
    changes: &Changes,
    groups: &[BucketGroup],
    keys: &KeyTable,
    files: &[FileView<'_>],
) -> Vec<OutFamily> {
    let mut series: FxHashMap<u32, Sorted> = FxHashMap::default();
    series.reserve(rules.len());
    for (family, s) in &changes.series {
        series.entry(*family).or_default().push(series_key(s));
    }
    for group in groups {
        bucket_series(group, series.entry(group.family).or_default());
    }
    let mut ids: Vec<(Arc<str>, u32)> = rules
        .keys()
        .map(|&f| (keys.families.get(f).clone(), f))
        .collect();
    ids.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(ids.len());
    let mut ranks = vec![0u32; keys.labelsets.len()];
    for (i, (name, family)) in ids.into_iter().enumerate() {
        let Some(rule) = rules.get_mut(&family) else {
            continue;
        };
        rule.out = i;
        let mut sorted = series.remove(&family).unwrap_or_default();
        rank_labels(&sorted, keys, &mut ranks);
        let rank = |id: u32| ranks.get(id as usize).copied().unwrap_or(u32::MAX);
        sorted.sort_by(|(a, _), (b, _)| {
            rank(a.labels)
                .cmp(&rank(b.labels))
                .then_with(|| a.compare_within(b, &name, keys, files))
        });
        let (help, typ) = (rule.help.clone(), rule.typ);
        out.push(laid_out(name, help, typ, sorted, keys, files));
    }
    out
}

/// Notes in `ranks` (by label set id) where each label set of `series` comes in their
/// output order: sorting the distinct sets once and the series by rank compares label
/// texts once per set, not once per comparison of series (a histogram's label set has
/// 17 series). Ranks order exactly as [`SortKey::compare`] orders label sets.
fn rank_labels(series: &Sorted, keys: &KeyTable, ranks: &mut [u32]) {
    let mut ids: Vec<u32> = series.iter().map(|(k, _)| k.labels).collect();
    ids.sort_unstable();
    ids.dedup();
    let text = |id: u32| Labels::from_spelled(keys.labelsets.text(id), false);
    // Distinct sets have distinct texts: no two compare equal, so unstable is exact.
    ids.sort_unstable_by(|&a, &b| text(a).cmp_pairs(&text(b)));
    for (rank, id) in ids.into_iter().enumerate() {
        if let Some(r) = ranks.get_mut(id as usize) {
            *r = rank as u32;
        }
    }
}

/// `family` with the series of `new` (any order) merged in and those whose sources
/// `gone` says are no longer theirs taken out, laid out again; `None` when it keeps no
/// sorted series ([`OutFamily::keep_sorted`]).
///
/// The output order is a total order here (see `extend/`), so merging gives what
/// sorting everything would.
pub(super) fn relaid(
    family: &mut OutFamily,
    mut new: Sorted,
    gone: impl Fn(u32) -> bool,
    keys: &KeyTable,
    files: &[FileView<'_>],
) -> Option<()> {
    let name = family.name.clone();
    let cmp = |a: &SortKey, b: &SortKey| a.compare(b, &name, keys, files);
    new.sort_by(|a, b| cmp(&a.0, &b.0));
    let mut old = family.sorted.take()?;
    old.retain(|&(_, source)| !gone(source));
    let mut sorted = Vec::with_capacity(old.len() + new.len());
    let mut rest = &old[..];
    for item in new {
        let at = rest.partition_point(|x| cmp(&x.0, &item.0) == Ordering::Less);
        sorted.extend_from_slice(&rest[..at]);
        sorted.push(item);
        rest = &rest[at..];
    }
    sorted.extend_from_slice(rest);
    let (help, typ) = (family.help.clone(), family.typ);
    *family = laid_out(name, help, typ, sorted, keys, files);
    Some(())
}

/// The new series of `family` among `changes`, and the buckets and counts of its
/// groups among `grown` (placed).
pub(super) fn new_series(
    family: u32,
    changes: &Changes,
    grown: &[u32],
    groups: &[BucketGroup],
) -> Sorted {
    let mut out: Sorted = changes
        .series
        .iter()
        .filter(|(f, _)| *f == family)
        .map(|(_, s)| series_key(s))
        .collect();
    for group in grown.iter().filter_map(|&g| groups.get(g as usize)) {
        if group.family == family {
            bucket_series(group, &mut out);
        }
    }
    out
}

/// A family whose `sorted` series are laid out.
fn laid_out(
    name: Arc<str>,
    help: Arc<str>,
    typ: MetricType,
    sorted: Sorted,
    keys: &KeyTable,
    files: &[FileView<'_>],
) -> OutFamily {
    let (layout, sources) = build_layout(&name, &sorted, keys, files);
    OutFamily {
        name,
        help,
        typ,
        layout: Arc::new(layout),
        sources,
        sorted: Some(sorted),
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
        let pid = (key.pid_file != NO_PID)
            .then(|| files.get(key.pid_file as usize))
            .flatten()
            .map(|f| f.pid_label);
        b.push(name, &keys.labelsets.get(key.shown), pid, key.le);
        sources.push(*source);
    }
    (b.finish(), sources)
}

/// Appends the `_bucket` series (in the group's ascending bound order) and the `_count`
/// of a placed `group` to `out`, their values taken from its running sums.
pub(super) fn bucket_series(group: &BucketGroup, out: &mut Sorted) {
    let key = |le: Option<f64>, name: Name| SortKey {
        labels: group.labels,
        shown: group.labels,
        pid_file: group.pid_file,
        le,
        name,
    };
    for (i, (bound, _)) in group.bounds.iter().enumerate() {
        let sum = (group.offset + i as u32) | CUMULATIVE;
        out.push((key(Some(*bound), Name::Bucket), sum));
    }
    if let Some(last) = group.bounds.len().checked_sub(1) {
        let sum = (group.offset + last as u32) | CUMULATIVE;
        out.push((key(None, Name::Count), sum));
    }
}
