//! One pass of the pipeline over a directory: scan, read, parse, merge.
//!
//! A [`Collector`] lives as long as the process that serves the directory and keeps
//! the incremental state: per file its index (which entries exist and where their values
//! are) and the shared key table. A pass re-lists the directory, re-reads each file's
//! used bytes, frames only what is new, and merges. A file is identified by device,
//! inode and birth time, so a file replaced under the same name (or an inode number
//! reused by a new file) is indexed afresh.
//!
//! Bad input: problems with single files are returned as [`FileIssue`]s and the rest is
//! merged; a file that cannot be read this time keeps its last good values, so a
//! transient error cannot make counters drop. Only an unlistable directory fails a pass.

use crate::error::FileIssue;
use crate::merge::{self, Family, FileView};
use crate::model::FileKind;
use crate::parse::index::{FileIndex, KeyTable};
use crate::read::mmap::MappedFile;
use crate::read::{self, FileId};
use crate::scan::{self, DbFile, ScanError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default bound on the bytes read from one file (prometheus_client's own limit is
/// 2 GiB, the range of `used`); protects memory from a hostile or broken file.
pub const DEFAULT_FILE_LIMIT: u64 = 1 << 30;

#[derive(Debug)]
struct Tracked {
    file: DbFile,
    pid_label: Arc<str>,
    /// The open, mapped file (kept between passes).
    mapped: Option<MappedFile>,
    index: FileIndex,
    values: Vec<(f64, f64)>,
    /// Changes when the index starts over; keys cached merge plans.
    generation: u64,
}

/// Source of generation numbers; only uniqueness matters.
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// What one pass produced.
#[derive(Debug, Default)]
pub struct Pass {
    /// Merged families, sorted by name.
    pub families: Vec<Family>,
    /// Problems with single files, sorted by file name.
    pub issues: Vec<FileIssue>,
    /// Files merged in this pass.
    pub files: usize,
    /// Entries merged in this pass.
    pub entries: usize,
    /// Files merged in this pass, by kind (`counter`, `gauge`, ...).
    pub files_by_kind: BTreeMap<&'static str, usize>,
    /// Distinct process identifiers among the merged files.
    pub pids: usize,
}

/// Incremental reader of one directory.
#[derive(Debug)]
pub struct Collector {
    dir: PathBuf,
    /// Pids proven dead: their live-mode gauges are not merged ("live" means not
    /// proven dead), even before or without compaction.
    dead: std::collections::BTreeSet<String>,
    limit: u64,
    keys: KeyTable,
    files: BTreeMap<String, Tracked>,
    merger: merge::Merger,
}

impl Collector {
    /// A collector for `dir`; nothing is read until [`Collector::collect`].
    pub fn new(dir: impl Into<PathBuf>) -> Collector {
        Collector {
            dir: dir.into(),
            dead: std::collections::BTreeSet::new(),
            limit: DEFAULT_FILE_LIMIT,
            keys: KeyTable::default(),
            files: BTreeMap::new(),
            merger: merge::Merger::default(),
        }
    }

    /// Bounds the bytes read from any one file.
    pub fn with_file_limit(mut self, limit: u64) -> Collector {
        self.limit = limit.max(read::HEADER_LEN as u64);
        self
    }

    /// Sets the pids proven dead, whose live-mode gauges are left out of the merge.
    pub fn set_dead_pids(&mut self, dead: &std::collections::BTreeSet<String>) {
        self.dead.clone_from(dead);
    }

    /// The directory being read.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs one pass.
    ///
    /// # Errors
    /// Only when the directory cannot be listed.
    pub fn collect(&mut self) -> Result<Pass, ScanError> {
        let listing = scan::scan(&self.dir)?;
        let mut issues = listing.skipped;
        // Files that vanished since the last pass are dropped.
        let present: std::collections::BTreeSet<&str> =
            listing.files.iter().map(|f| f.name.as_str()).collect();
        self.files.retain(|name, _| present.contains(name.as_str()));

        for file in listing.files {
            let path = self.dir.join(&file.name);
            let tracked = self
                .files
                .entry(file.name.clone())
                .or_insert_with(|| Tracked {
                    pid_label: Arc::from(file.pid_label.as_str()),
                    file: file.clone(),
                    mapped: None,
                    index: FileIndex::new(),
                    values: Vec::new(),
                    generation: next_generation(),
                });
            // The name may now refer to another file (replaced, or a reused inode with a
            // new birth time): then the old index means nothing.
            let current = std::fs::symlink_metadata(&path).map(|m| FileId::of(&m));
            let same = matches!((&tracked.mapped, &current), (Some(m), Ok(id)) if m.id() == *id);
            if !same || tracked.file.kind != file.kind {
                match MappedFile::open(&path) {
                    Ok(m) => {
                        tracked.index = FileIndex::new();
                        tracked.generation = next_generation();
                        tracked.values.clear();
                        tracked.mapped = Some(m);
                        tracked.file = file;
                    }
                    Err(err) => {
                        issues.push(FileIssue {
                            file: file.name,
                            reason: err.reason(),
                            detail: err.to_string(),
                        });
                        continue;
                    }
                }
            }
            refresh(tracked, self.limit, &mut self.keys, &mut issues);
        }

        // Live-mode gauges of proven-dead pids are left out ("live" = not proven dead).
        let dead = &self.dead;
        let merged: Vec<&Tracked> = self
            .files
            .values()
            .filter(|t| {
                !(matches!(&t.file.kind, FileKind::Gauge(m) if m.is_live())
                    && dead.contains(&t.file.pid))
            })
            .collect();
        let views: Vec<FileView<'_>> = merged
            .iter()
            .map(|t| FileView {
                kind: &t.file.kind,
                pid_label: &t.pid_label,
                entries: &t.index.entries,
                values: &t.values,
                generation: t.generation,
            })
            .collect();
        let entries = views.iter().map(|v| v.values.len()).sum();
        let mut files_by_kind = BTreeMap::new();
        for t in self.files.values() {
            *files_by_kind.entry(t.file.kind.label()).or_insert(0) += 1;
        }
        let pids = self
            .files
            .values()
            .map(|t| t.file.pid.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let (families, merge_issues) = self.merger.merge(&views, &self.keys);
        for m in merge_issues {
            issues.push(FileIssue {
                file: merged[m.file].file.name.clone(),
                reason: m.reason,
                detail: m.detail,
            });
        }
        issues.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(Pass {
            families,
            issues,
            files: views.len(),
            entries,
            files_by_kind,
            pids,
        })
    }
}

/// Checks the file, indexes what is new, and reloads the values of all its entries.
fn refresh(tracked: &mut Tracked, limit: u64, keys: &mut KeyTable, issues: &mut Vec<FileIssue>) {
    let Tracked {
        file,
        mapped,
        index,
        values,
        generation,
        ..
    } = tracked;
    let Some(mapped) = mapped.as_mut() else {
        return;
    };
    let view = match mapped.refresh(limit) {
        Ok(view) => view,
        Err(err) => {
            // Keep the last good values: a transient error must not drop counters.
            issues.push(FileIssue {
                file: file.name.clone(),
                reason: err.reason(),
                detail: err.to_string(),
            });
            return;
        }
    };
    if view.len < index.parsed_to() && !index.entries.is_empty() {
        // Shorter than what was indexed: the file was rewritten; start over.
        *index = FileIndex::new();
        *generation = next_generation();
        values.clear();
    }
    // Only the header and the part not indexed yet are copied out and parsed; the rest
    // of the buffer stays untouched zero pages.
    let from = index.parsed_to();
    let bytes = view.copy_out(from);
    let mut found = Vec::new();
    index.update(&bytes, view.used, view.size, keys, &mut found);
    for (reason, detail) in found {
        issues.push(FileIssue {
            file: file.name.clone(),
            reason,
            detail,
        });
    }
    // Values in place: entries this read cannot reach keep their last good values. A
    // full copy was just made for a fresh index: read its values from the copy, and
    // leave the mapping's pages to be faulted in by the next pass.
    let fresh = from <= crate::read::HEADER_LEN;
    for (i, e) in index.entries.iter().enumerate() {
        let off = e.value_offset as usize;
        let loaded = if fresh {
            crate::parse::value_at(&bytes, off)
        } else {
            view.value_at(off)
        };
        let Some(v) = loaded else {
            break;
        };
        match values.get_mut(i) {
            Some(slot) => *slot = v,
            None => values.push(v),
        }
    }
}
