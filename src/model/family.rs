//! The merged output: families of samples, as the merge fills them and render reads them.
//!
//! What a family's series are (names, label sets, `pid` and `le`) changes only when the
//! files gain keys; their values change at every pass. So a family holds its series in
//! a [`Layout`], built once by the merge plan and shared (`Arc`) by every pass made with
//! that plan, and only a value per series of its own. A series costs a fixed-size row
//! of the layout (its label text lives in the key table's shared buffers) and a pass
//! costs one `f64` per series: nothing is allocated per sample.

use super::MetricType;
use super::labels::{LabelSet, Labels};
use rustc_hash::FxHashMap;
use std::cmp::Ordering;
use std::sync::Arc;

/// No index (no `pid`, no `le`, no insertion point).
const NONE: u32 = u32::MAX;

/// One series of a layout.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Row {
    /// The label text: `Layout::buffers[buffer][start..start + len]`.
    buffer: u32,
    start: u32,
    len: u32,
    /// Some label name is quoted.
    quoted: bool,
    /// Index in `Layout::names`.
    name: u32,
    /// Index in `Layout::pids`, or [`NONE`].
    pid: u32,
    /// Index in `Layout::bounds`, or [`NONE`].
    le: u32,
    /// With exactly one of `pid` and `le`: the offset in the label text where that label
    /// goes (labels are in name order); [`NONE`] when the sample must be spelled label
    /// by label (both, or the labels hold a label of that name that it replaces).
    at: u32,
}

/// The series of one family in output order: what every sample line says before its
/// value. Built with [`LayoutBuilder`].
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// Sample names.
    names: Vec<Arc<str>>,
    /// `pid` label values of per-process series.
    pids: Vec<Arc<str>>,
    /// `le` bounds of histogram buckets.
    bounds: Vec<f64>,
    /// The buffers the label texts are in.
    buffers: Vec<Arc<str>>,
    rows: Vec<Row>,
}

impl Layout {
    /// How many series.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no series.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The distinct sample names ([`Sample::name_index`] indexes them).
    pub fn names(&self) -> &[Arc<str>] {
        &self.names
    }

    /// The distinct `pid` label values ([`Sample::pid_index`] indexes them).
    pub fn pids(&self) -> &[Arc<str>] {
        &self.pids
    }

    /// The distinct `le` bounds ([`Sample::bound_index`] indexes them).
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// The sample of `row` with `value`.
    #[inline]
    fn sample(&self, row: &Row, value: f64) -> Sample<'_> {
        let text = self
            .buffers
            .get(row.buffer as usize)
            .and_then(|b| {
                b.get(row.start as usize..(row.start as usize).saturating_add(row.len as usize))
            })
            .unwrap_or("");
        let name = self.names.get(row.name as usize).map_or("", |n| &**n);
        Sample {
            name,
            labels: Labels::from_spelled(text, row.quoted),
            pid: self.pids.get(row.pid as usize).map(|p| &**p),
            le: self.bounds.get(row.le as usize).copied(),
            value,
            name_index: row.name,
            pid_index: (row.pid != NONE).then_some(row.pid),
            bound_index: (row.le != NONE).then_some(row.le),
            extra_at: (row.at != NONE).then_some(row.at),
        }
    }
}

/// Builds a [`Layout`] series by series, in output order.
#[derive(Debug, Default)]
pub struct LayoutBuilder {
    layout: Layout,
    names: FxHashMap<Arc<str>, u32>,
    pids: FxHashMap<Arc<str>, u32>,
    bounds: FxHashMap<u64, u32>,
    /// Buffer address → index, and the last buffer used.
    buffers: FxHashMap<usize, u32>,
    last_buffer: Option<(usize, u32)>,
    /// The last name and pid used (consecutive series mostly share them).
    last_name: u32,
    last_pid: u32,
}

fn index_of(
    map: &mut FxHashMap<Arc<str>, u32>,
    items: &mut Vec<Arc<str>>,
    last: &mut u32,
    s: &Arc<str>,
) -> u32 {
    if items
        .get(*last as usize)
        .is_some_and(|l| Arc::ptr_eq(l, s) || l == s)
    {
        return *last;
    }
    let i = match map.get(s) {
        Some(&i) => i,
        None => {
            let i = items.len() as u32;
            items.push(s.clone());
            map.insert(s.clone(), i);
            i
        }
    };
    *last = i;
    i
}

impl LayoutBuilder {
    /// Appends a series; `labels` must not hold `pid` when `pid` is given, nor `le`
    /// when `le` is (such labels are skipped when spelled: the series' own replace them).
    pub fn push(
        &mut self,
        name: &Arc<str>,
        labels: &LabelSet,
        pid: Option<&Arc<str>>,
        le: Option<f64>,
    ) {
        let (buffer, start, len) = labels.parts();
        let address = Arc::as_ptr(buffer) as *const u8 as usize;
        let buffer_index = match self.last_buffer {
            Some((a, i)) if a == address => i,
            _ => {
                let next = self.layout.buffers.len() as u32;
                let i = *self.buffers.entry(address).or_insert(next);
                if i == next {
                    self.layout.buffers.push(buffer.clone());
                }
                self.last_buffer = Some((address, i));
                i
            }
        };
        let name = index_of(
            &mut self.names,
            &mut self.layout.names,
            &mut self.last_name,
            name,
        );
        let pid = pid.map_or(NONE, |p| {
            index_of(&mut self.pids, &mut self.layout.pids, &mut self.last_pid, p)
        });
        let le = le.map_or(NONE, |b| {
            let next = self.layout.bounds.len() as u32;
            let i = *self.bounds.entry(b.to_bits()).or_insert(next);
            if i == next {
                self.layout.bounds.push(b);
            }
            i
        });
        let extra = match (pid != NONE, le != NONE) {
            (true, false) => Some("pid"),
            (false, true) => Some("le"),
            _ => None,
        };
        let at = match extra {
            Some(extra) => insertion_point(labels.labels(), extra),
            None => NONE,
        };
        self.layout.rows.push(Row {
            buffer: buffer_index,
            start,
            len,
            quoted: labels.has_quoted_names(),
            name,
            pid,
            le,
            at,
        });
    }

    /// How many series so far.
    pub fn len(&self) -> usize {
        self.layout.rows.len()
    }

    /// Whether no series was pushed.
    pub fn is_empty(&self) -> bool {
        self.layout.rows.is_empty()
    }

    /// The layout.
    pub fn finish(mut self) -> Layout {
        self.layout.rows.shrink_to_fit();
        self.layout
    }
}

/// Where a label named `extra` goes in `labels` (before the first greater name), or
/// [`NONE`] when `labels` has a label of that name (it must be skipped when spelled).
fn insertion_point(labels: Labels<'_>, extra: &str) -> u32 {
    for (name, _, offset) in labels.spelled_pairs() {
        match (*name).cmp(extra) {
            Ordering::Less => {}
            Ordering::Equal => return NONE,
            Ordering::Greater => return u32::try_from(offset).unwrap_or(NONE),
        }
    }
    u32::try_from(labels.text().len()).unwrap_or(NONE)
}

/// A merged family, ready to render.
#[derive(Clone, Debug)]
pub struct Family {
    /// The family name (a counter's without `_total`).
    pub name: Arc<str>,
    /// Help text.
    pub help: Arc<str>,
    /// Type.
    pub typ: MetricType,
    /// The series, grouped by label set and sorted; shared by every pass made with the
    /// same merge plan.
    pub layout: Arc<Layout>,
    /// This pass's value of each series of `layout`.
    values: Vec<f64>,
    /// The series without a value in this pass (a `mostrecent` gauge never set), in
    /// ascending order: they are not exposed.
    absent: Vec<u32>,
}

impl Family {
    /// A family with a value (or none) for each series of `layout`.
    pub fn new(
        name: Arc<str>,
        help: Arc<str>,
        typ: MetricType,
        layout: Arc<Layout>,
        values: impl IntoIterator<Item = Option<f64>>,
    ) -> Family {
        let mut absent = Vec::new();
        let mut all = Vec::with_capacity(layout.len());
        for (i, v) in values.into_iter().take(layout.len()).enumerate() {
            if v.is_none() {
                absent.push(i as u32);
            }
            all.push(v.unwrap_or(0.0));
        }
        while all.len() < layout.len() {
            absent.push(all.len() as u32);
            all.push(0.0);
        }
        Family {
            name,
            help,
            typ,
            layout,
            values: all,
            absent,
        }
    }

    /// The samples (the series that have a value), in output order.
    pub fn samples(&self) -> Samples<'_> {
        Samples {
            layout: &self.layout,
            rows: self.layout.rows.iter(),
            values: self.values.iter(),
            next: 0,
            absent: &self.absent,
        }
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.values.len() - self.absent.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The family with only the samples whose name satisfies `keep`, or `None` when
    /// no sample does.
    pub fn filtered(&self, keep: impl Fn(&str) -> bool) -> Option<Family> {
        let kept: Vec<bool> = self.layout.names.iter().map(|n| keep(n)).collect();
        if !kept.iter().any(|&k| k) {
            return None;
        }
        let mut layout = Layout {
            rows: Vec::new(),
            ..(*self.layout).clone()
        };
        let mut values = Vec::new();
        let mut absent = self.absent.iter().peekable();
        for (i, (row, &v)) in self.layout.rows.iter().zip(&self.values).enumerate() {
            let gone = absent.peek().is_some_and(|&&a| a as usize == i);
            if gone {
                absent.next();
            }
            if !gone && kept.get(row.name as usize).copied().unwrap_or(false) {
                layout.rows.push(*row);
                values.push(Some(v));
            }
        }
        (!layout.rows.is_empty()).then(|| {
            Family::new(
                self.name.clone(),
                self.help.clone(),
                self.typ,
                Arc::new(layout),
                values,
            )
        })
    }
}

/// The samples of a family ([`Family::samples`]).
#[derive(Clone, Debug)]
pub struct Samples<'a> {
    layout: &'a Layout,
    rows: std::slice::Iter<'a, Row>,
    values: std::slice::Iter<'a, f64>,
    /// The index of the next row.
    next: u32,
    /// The absent rows not passed yet.
    absent: &'a [u32],
}

impl<'a> Iterator for Samples<'a> {
    type Item = Sample<'a>;

    #[inline]
    fn next(&mut self) -> Option<Sample<'a>> {
        loop {
            let row = self.rows.next()?;
            let value = *self.values.next()?;
            let i = self.next;
            self.next += 1;
            match self.absent.split_first() {
                Some((&a, rest)) if a == i => self.absent = rest,
                _ => return Some(self.layout.sample(row, value)),
            }
        }
    }
}

impl PartialEq for Family {
    fn eq(&self, other: &Family) -> bool {
        self.name == other.name
            && self.help == other.help
            && self.typ == other.typ
            && self.samples().eq(other.samples())
    }
}

/// A merged sample, as a family yields it.
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    /// The sample name, e.g. `lat_seconds_bucket`.
    pub name: &'a str,
    /// Labels from the key, sorted by name (without the `pid` or `le` below).
    pub labels: Labels<'a>,
    /// The `pid` label of a per-process gauge series; it replaces a `pid` in `labels`.
    pub pid: Option<&'a str>,
    /// The `le` bound of a histogram bucket.
    pub le: Option<f64>,
    /// The value.
    pub value: f64,
    /// Index of `name` in [`Layout::names`] (for renderers that work a name out once
    /// per family).
    pub name_index: u32,
    /// Index of `pid` in [`Layout::pids`].
    pub pid_index: Option<u32>,
    /// Index of `le` in [`Layout::bounds`].
    pub bound_index: Option<u32>,
    /// With exactly one of `pid` and `le`, the offset in `labels.text()` where that label
    /// goes; `None` means spell the labels one by one.
    pub extra_at: Option<u32>,
}

impl PartialEq for Sample<'_> {
    fn eq(&self, other: &Sample<'_>) -> bool {
        self.name == other.name
            && self.labels.text() == other.labels.text()
            && self.pid == other.pid
            && self.le.map(f64::to_bits) == other.le.map(f64::to_bits)
            && self.value.to_bits() == other.value.to_bits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_shares_names_and_places_extras() {
        let mut b = LayoutBuilder::default();
        let name: Arc<str> = Arc::from("h_bucket");
        let labels = LabelSet::new([("a", "1"), ("z", "2")]);
        b.push(&name, &labels, None, Some(0.5));
        b.push(&name, &labels, None, Some(f64::INFINITY));
        let pid: Arc<str> = Arc::from("7");
        b.push(&Arc::from("g"), &labels, Some(&pid), None);
        let with_pid = LabelSet::new([("pid", "1")]);
        b.push(&Arc::from("g"), &with_pid, Some(&pid), None);
        let layout = Arc::new(b.finish());
        assert_eq!(layout.names().len(), 2);
        assert_eq!(layout.bounds(), &[0.5, f64::INFINITY]);
        let f = Family::new(
            "h".into(),
            "".into(),
            MetricType::Histogram,
            layout,
            [Some(1.0), None, Some(3.0), Some(4.0)],
        );
        let got: Vec<_> = f
            .samples()
            .map(|s| (s.name, s.le, s.extra_at, s.value))
            .collect();
        assert_eq!(
            got,
            vec![
                ("h_bucket", Some(0.5), Some(6), 1.0),
                ("g", None, Some(6), 3.0),
                ("g", None, None, 4.0),
            ]
        );
        assert_eq!(f.len(), 3);
        let only_g = f.filtered(|n| n == "g").unwrap();
        assert_eq!(only_g.len(), 2);
        assert!(f.filtered(|n| n == "x").is_none());
    }
}
