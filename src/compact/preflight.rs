//! Whether compaction may run now: write permission and free space, and why not.
//!
//! A full memory-backed volume makes the writers crash with SIGBUS, so compaction never
//! writes an archive that could fill it; it is skipped and reported instead.

use super::Writer;
use crate::dir::Dir;
use std::collections::{BTreeMap, BTreeSet};

/// Why a lifecycle round could not compact: the `reason` of
/// `multiproc_exporter_compaction_skipped_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// The volume lacks the space the new archives need plus the reserve.
    NoSpace,
    /// The directory is not writable.
    NoWritePermission,
    /// A step failed (an I/O error); what was done before it is consistent.
    Error,
}

impl SkipReason {
    /// Every reason, for declaring metric label values up front.
    pub const ALL: [SkipReason; 3] = [
        SkipReason::NoSpace,
        SkipReason::NoWritePermission,
        SkipReason::Error,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoSpace => "no_space",
            SkipReason::NoWritePermission => "no_write_permission",
            SkipReason::Error => "error",
        }
    }
}

/// A round that could not compact: why, and the details for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    /// The category.
    pub reason: SkipReason,
    /// What exactly (paths, sizes, the error).
    pub detail: String,
}

impl Skip {
    /// A skip of category `reason`.
    pub fn new(reason: SkipReason, detail: impl Into<String>) -> Skip {
        Skip {
            reason,
            detail: detail.into(),
        }
    }
}

/// Checks write permission and free space; returns why not, if compaction cannot run.
pub(super) fn preflight(
    dir: &Dir,
    by_pid: &BTreeMap<String, Writer>,
    dead: &BTreeSet<String>,
    min_free: u64,
) -> Option<Skip> {
    let shown = crate::model::Escaped::path(dir.path());
    if !dir.writable() {
        return Some(Skip::new(
            SkipReason::NoWritePermission,
            format!("cannot write to {shown}"),
        ));
    }
    // A new archive is at most the old one plus the absorbed files' used bytes.
    let mut need: u64 = 0;
    for pid in dead {
        for f in &by_pid[pid].files {
            need += dir.stat(&f.name).map_or(0, |s| s.size.min(1 << 31));
        }
    }
    for f in dir.entries().ok()? {
        if f.name.as_encoded_bytes().ends_with(b"_archive.db") {
            need += dir.stat(&f.name).map_or(0, |s| s.size);
        }
    }
    match dir.free_bytes() {
        Ok(free) => {
            if free < need + min_free {
                return Some(Skip::new(
                    SkipReason::NoSpace,
                    format!(
                        "{shown} has {free} bytes free; compaction needs {need} plus a reserve of {min_free}"
                    ),
                ));
            }
            None
        }
        Err(e) => Some(Skip::new(
            SkipReason::NoSpace,
            format!("cannot read free space of {shown}: {e}"),
        )),
    }
}
