//! Refreshing one tracked file: check it, index what is new, reload its values, and keep
//! its last good values whenever what the file holds now cannot be trusted (shrunk,
//! overwritten, truncated while read).

use super::{Tracked, YOUNG_GRACE, next_generation};
use crate::format::{self, HEADER_LEN};
use crate::model::{FileProblem, Reason};
use crate::parse::{FileIndex, KeyTable};
use crate::read::mmap::View;
use std::time::SystemTime;

/// What a refresh of one file found.
pub(super) struct Refreshed {
    pub(super) problems: Vec<FileProblem>,
    /// The file is empty but too new for that to be a problem.
    pub(super) young: bool,
}

/// Whether a file last changed at `changed` is within [`YOUNG_GRACE`] of now.
/// A change time in the future (the clock stepped back) is not young: the grace must
/// not hide a file for longer than it says.
fn is_young(changed: Option<SystemTime>) -> bool {
    changed.is_some_and(|c| {
        SystemTime::now()
            .duration_since(c)
            .is_ok_and(|age| age < YOUNG_GRACE)
    })
}

/// Checks the file, indexes what is new, and reloads the values of all its entries. A
/// `cold` file (closed again after this pass) is read whole with `pread`, not mapped.
pub(super) fn refresh(
    tracked: &mut Tracked,
    limit: u64,
    keys: &mut KeyTable,
    cold: bool,
) -> Refreshed {
    let mut out = Refreshed {
        problems: Vec::new(),
        young: false,
    };
    let Tracked {
        mapped,
        index,
        values,
        generation,
        shrunk,
        ..
    } = tracked;
    let Some(mapped) = mapped.as_mut() else {
        return out;
    };
    // Any error keeps the last good values: a transient error must not drop counters.
    let view = match mapped.refresh(limit, !cold) {
        Ok(view) => view,
        Err(err) => {
            out.problems.push(err.into());
            return out;
        }
    };
    // Young only if nothing was ever read from it: a truncation also changes the time.
    if view.size == 0 && index.entries.is_empty() && is_young(view.changed) {
        out.young = true;
        return out;
    }
    if view.len < index.parsed_to() && !index.entries.is_empty() {
        // prometheus_client never shrinks a file, and a replaced file has a new identity:
        // someone truncated this one. Its last good values stay (a counter must not
        // drop) until it grows back or vanishes.
        *shrunk = true;
        out.problems.push(FileProblem::new(
            Reason::Shrunk,
            format!(
                "the file shrank to {} readable bytes, below the {} already read; kept its last good values",
                view.len,
                index.parsed_to()
            ),
        ));
        return out;
    }
    if !index.entries.is_empty()
        && let Some(problem) = overwritten(&view)
    {
        // Someone wrote over the file (prometheus_client grows a file before it writes
        // past its end, so its `used` never exceeds the size): the values at the indexed
        // offsets are not this file's. Its last good values stay, and once it is sane
        // again its content is checked before the index is trusted.
        *shrunk = true;
        out.problems.push(problem);
        return out;
    }
    if *shrunk {
        // Grown back: a truncation undone keeps the index; other content (rewritten in
        // place by someone else) is framed afresh, with values from what it holds now.
        let bytes = match view.copy_out(HEADER_LEN, view.len) {
            Ok(bytes) => bytes,
            Err(err) => {
                out.problems.push(err.into());
                return out;
            }
        };
        match index.agrees_with(&bytes, keys) {
            None => return out,
            Some(true) => {}
            Some(false) => {
                *index = FileIndex::new();
                values.clear();
                *generation = next_generation();
            }
        }
        *shrunk = false;
    }
    // Nothing new (a steady pass over an idle file): no copy, values through the mapping.
    if !cold && index.is_current(view.len) {
        if load_in_place(index, values, &view, shrunk, &mut out) {
            mapped.forget_mapping();
        }
        return out;
    }
    // Only the header and the part not indexed yet are copied out and parsed; the rest
    // of the buffer stays untouched zero pages.
    // A cold file has no mapping to load values from: copy all of it.
    let from = if cold { HEADER_LEN } else { index.parsed_to() };
    // Only new bytes need the hole check (one `lseek` per file that grew).
    let to = if view.len > from {
        view.data_end(from)
    } else {
        view.len
    };
    let sparse = to < view.len;
    if sparse {
        out.problems.push(FileProblem::new(
            Reason::Sparse,
            format!(
                "used={} but the file holds no data from byte {to} on (a hole); read up to it",
                view.len
            ),
        ));
    }
    let bytes = match view.copy_out(from, to) {
        Ok(bytes) => bytes,
        Err(err) => {
            out.problems.push(err.into());
            return out;
        }
    };
    let found = index.update(&bytes, view.used, view.size, keys);
    // The read stops at the hole, not at the per-file limit: say it once, as sparse.
    out.problems.extend(
        found
            .into_iter()
            .filter(|p| !(sparse && p.reason == Reason::TooLarge)),
    );
    let fresh = from <= HEADER_LEN;
    if load_checked(index, values, &view, &bytes, fresh, shrunk, &mut out) {
        mapped.forget_mapping();
    }
    out
}

/// The steady case of [`refresh`] alone: a file indexed, kept open and sane, with
/// nothing new to index, gets its values reloaded through the mapping. It touches only
/// the file's own state (no key table, no directory budget), so a pass runs it for many
/// files at once; `None` (nothing done but the size check) when the file needs
/// [`refresh`]: it grew, shrank, was written over, or was never read.
pub(super) fn refresh_steady(tracked: &mut Tracked, limit: u64) -> Option<Refreshed> {
    let Tracked {
        mapped,
        index,
        values,
        shrunk,
        ..
    } = tracked;
    let mapped = mapped
        .as_mut()
        .filter(|_| !*shrunk && !index.entries.is_empty())?;
    let mut out = Refreshed {
        problems: Vec::new(),
        young: false,
    };
    let view = match mapped.refresh(limit, true) {
        Ok(view) => view,
        // As in `refresh`: the last good values stay.
        Err(err) => {
            out.problems.push(err.into());
            return Some(out);
        }
    };
    if !holds_sane_header(&view) || view.len < index.parsed_to() || !index.is_current(view.len) {
        return None;
    }
    if load_in_place(index, values, &view, shrunk, &mut out) {
        mapped.forget_mapping();
    }
    Some(out)
}

/// Rechecks an index that is current and loads its values through `view`; returns
/// whether a load faulted (the mapping is then to be dropped).
fn load_in_place(
    index: &FileIndex,
    values: &mut Vec<(f64, f64)>,
    view: &View<'_>,
    shrunk: &mut bool,
    out: &mut Refreshed,
) -> bool {
    out.problems
        .extend(index.recheck(view.used, view.size, view.len));
    load_checked(index, values, view, &[], false, shrunk, out)
}

/// Loads the values of every indexed entry (from `bytes` for a `fresh` copy, else
/// through the view) and keeps the last good ones of a file truncated while read
/// (`shrunk` then, and a problem). Returns whether a load faulted: the mapping is then
/// to be dropped.
fn load_checked(
    index: &FileIndex,
    values: &mut Vec<(f64, f64)>,
    view: &View<'_>,
    bytes: &[u8],
    fresh: bool,
    shrunk: &mut bool,
    out: &mut Refreshed,
) -> bool {
    let zeroed = load_values(index, values, view, bytes, fresh);
    let undone = !zeroed.is_empty() && restore_zeroed(index, values, view, zeroed);
    let faulted = view.faulted();
    if undone || faulted {
        *shrunk = true;
        out.problems.push(FileProblem::new(
            Reason::Shrunk,
            "the file was truncated while being read; kept its last good values",
        ));
    }
    faulted
}

/// Why a file with entries indexed no longer reads as prometheus_client's: its header
/// lost, or `used` beyond the file's end; a SQLite database copied over it says so.
fn overwritten(view: &View<'_>) -> Option<FileProblem> {
    if holds_sane_header(view) {
        return None;
    }
    let head = view.copy_out(HEADER_LEN, format::SQLITE_MAGIC.len()).ok()?;
    Some(if head.starts_with(format::SQLITE_MAGIC) {
        FileProblem::new(
            Reason::Foreign,
            "a SQLite database was written over the file; kept its last good values",
        )
    } else {
        FileProblem::new(
            Reason::UsedBeyondEof,
            format!(
                "the header now says used={:?} for a file of {} bytes (written over by something other than prometheus_client); kept its last good values",
                view.used, view.size
            ),
        )
    })
}

/// Whether the header's `used` is one prometheus_client could have written: never past
/// the file's end (it grows a file before it writes past it).
fn holds_sane_header(view: &View<'_>) -> bool {
    view.used.is_some_and(|u| u >= 0 && u as u64 <= view.size)
}

/// Values in place: loading stops at the first entry this read cannot reach (past the
/// readable length, or a load that faulted), and that entry and the rest keep their last
/// good values. A full copy was just made for a fresh index (`fresh`): read its values
/// from the copy, and leave the mapping's pages to be faulted in by the next pass.
fn load_values(
    index: &FileIndex,
    values: &mut Vec<(f64, f64)>,
    view: &View<'_>,
    bytes: &[u8],
    fresh: bool,
) -> Vec<(usize, (f64, f64))> {
    // Entries that read as all zeros where they held something: what a truncation inside
    // a page looks like (no fault, zeros), kept to be undone if the file did shrink.
    let mut zeroed = Vec::new();
    let mut store = |i: usize, v: (f64, f64)| match values.get_mut(i) {
        Some(slot) => {
            if v == (0.0, 0.0) && *slot != v {
                zeroed.push((i, *slot));
            }
            *slot = v;
        }
        None => values.push(v),
    };
    let entries = &index.entries;
    let offset = |i: usize| entries[i].value_offset as usize;
    if fresh {
        for i in 0..entries.len() {
            let Some(v) = format::value_at(bytes, offset(i)) else {
                break;
            };
            store(i, v);
        }
    } else {
        view.load_each(entries.len(), offset, store);
    }
    zeroed
}

/// Undoes the zeros of `zeroed` that were not the file's: past its end now (it shrank
/// during the pass), or no longer zero when read again with `pread` (a truncation that
/// was undone before this check); returns whether any were undone.
fn restore_zeroed(
    index: &FileIndex,
    values: &mut [(f64, f64)],
    view: &View<'_>,
    zeroed: Vec<(usize, (f64, f64))>,
) -> bool {
    let Some(size) = view.size_now() else {
        return false;
    };
    let mut undone = false;
    for (i, previous) in zeroed {
        let offset = index.entries[i].value_offset as usize;
        if offset as u64 + 16 > size {
            values[i] = previous;
            undone = true;
        } else if let Some(now) = view.value_by_pread(offset).filter(|v| *v != (0.0, 0.0)) {
            values[i] = now;
            undone = true;
        }
    }
    undone
}
