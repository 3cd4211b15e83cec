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
use crate::parse::value_at;
use crate::read::{self, FileId, Snapshot};
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
    identity: Option<FileId>,
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
            let snapshot = read::read_file(&path, self.limit);
            let tracked = self
                .files
                .entry(file.name.clone())
                .or_insert_with(|| Tracked {
                    pid_label: Arc::from(file.pid_label.as_str()),
                    file: file.clone(),
                    identity: None,
                    index: FileIndex::new(),
                    values: Vec::new(),
                    generation: next_generation(),
                });
            match snapshot {
                Ok(snap) => {
                    if tracked.identity != Some(snap.id) || tracked.file.kind != file.kind {
                        tracked.index = FileIndex::new();
                        tracked.generation = next_generation();
                        tracked.values.clear();
                        tracked.identity = Some(snap.id);
                        tracked.file = file;
                    }
                    refresh(tracked, &snap, &mut self.keys, &mut issues);
                }
                Err(err) => issues.push(FileIssue {
                    file: file.name,
                    reason: err.reason(),
                    detail: err.to_string(),
                }),
            }
        }

        let dead = &self.dead;
        let views: Vec<FileView<'_>> = self
            .files
            .values()
            .filter(|t| {
                !(matches!(&t.file.kind, FileKind::Gauge(m) if m.is_live())
                    && dead.contains(&t.file.pid))
            })
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
        let names: Vec<&String> = self
            .files
            .iter()
            .filter(|(_, t)| {
                !(matches!(&t.file.kind, FileKind::Gauge(m) if m.is_live())
                    && dead.contains(&t.file.pid))
            })
            .map(|(n, _)| n)
            .collect();
        for m in merge_issues {
            issues.push(FileIssue {
                file: names[m.file].clone(),
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

/// Re-indexes what is new in `snap` and reloads all values of the file.
fn refresh(
    tracked: &mut Tracked,
    snap: &Snapshot,
    keys: &mut KeyTable,
    issues: &mut Vec<FileIssue>,
) {
    if snap.bytes.len() < tracked.index.parsed_to() && !tracked.index.entries.is_empty() {
        // Shorter than what was indexed: the file was rewritten; start over.
        tracked.index = FileIndex::new();
        tracked.generation = next_generation();
        tracked.values.clear();
    }
    let mut found = Vec::new();
    tracked
        .index
        .update(&snap.bytes, snap.used, snap.size, keys, &mut found);
    for (reason, detail) in found {
        issues.push(FileIssue {
            file: tracked.file.name.clone(),
            reason,
            detail,
        });
    }
    let mut values = Vec::with_capacity(tracked.index.entries.len());
    for e in &tracked.index.entries {
        match value_at(&snap.bytes, e.value_offset as usize) {
            Some(v) => values.push(v),
            None => break,
        }
    }
    // Keep the last good values of entries this read could not reach.
    if values.len() < tracked.values.len() {
        values.extend_from_slice(&tracked.values[values.len()..]);
    }
    tracked.values = values;
}
