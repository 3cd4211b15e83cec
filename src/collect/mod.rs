//! One pass of the pipeline over a directory: scan, read, parse, merge.
//!
//! A [`Collector`] lives as long as the process that serves the directory and keeps
//! the incremental state: per file its index (which entries exist and where their values
//! are) and the shared key table. A pass re-lists the directory, re-reads each file's
//! used bytes, frames only what is new, and merges. A file is identified by device,
//! inode and birth time, so a file replaced under the same name (or an inode number
//! reused by a new file) is indexed afresh.
//!
//! Bad input: every stage returns a [`FileProblem`]; this is the one place that attaches
//! the file's name, making a [`FileIssue`], and the rest is merged. A file that cannot be
//! read this time keeps its last good values, so a transient error cannot make counters
//! drop. Only an unlistable directory fails a pass.
//!
//! A file of counts (counter, histogram, summary) that vanishes without our compaction
//! becomes a *ghost*: its last good values keep contributing (DESIGN section 3) until the
//! lifecycle absorbs them into an archive ([`Collector::settle`]) or the directory is
//! wiped: every writer file gone in one listing, or the shim's wipe marker
//! ([`WIPE_MARKER`]) replaced. Without compaction ghosts live only in this process.

use crate::compact::archive::ARCHIVE_PID;
use crate::compact::{Ghost, Memory, Report, WIPE_MARKER};
use crate::dir::FileId;
use crate::dir::{Dir, Held};
use crate::format::HEADER_LEN;
use crate::merge::{FileView, Merger};
use crate::model::{Family, FileIssue, FileKind, FileProblem, Reason};
use crate::parse::{FileIndex, KeyTable};
use crate::read::mmap::MappedFile;
use crate::scan::{self, DbFile, ScanError};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod refresh;
mod steady;

use refresh::{Refreshed, refresh};

/// How long a file may stay zero-length after it was created before that is a problem:
/// prometheus_client creates a file and sizes it a moment later, so every new worker's
/// files are briefly empty.
pub const YOUNG_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Tracked {
    file: DbFile,
    pid_label: Arc<str>,
    /// Which file this is (a name may come to refer to another).
    id: FileId,
    /// The open, mapped file, kept between passes while the descriptor budget allows;
    /// otherwise opened for each pass and closed again.
    mapped: Option<MappedFile>,
    index: FileIndex,
    /// The last good value pair of each entry.
    values: Vec<(f64, f64)>,
    /// Changes when the index starts over; keys cached merge plans.
    generation: u64,
    /// The file was seen shorter than what was indexed: when it grows back, someone
    /// rewrote it, and the old offsets mean nothing.
    shrunk: bool,
}

/// A listed file before its refresh in a pass.
enum Listed {
    /// Open, and kept open after the pass.
    Warm,
    /// Beyond the descriptor budget: opened, read whole and closed when its turn comes.
    Cold(DbFile),
    /// Could not be opened.
    Failed(FileProblem),
}

/// Source of generation numbers; only uniqueness matters.
static GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// What one pass produced.
#[derive(Debug, Default)]
pub struct Pass {
    /// Merged families, sorted by name.
    pub families: Vec<Family>,
    /// Problems with single files, sorted by file name.
    pub issues: Vec<FileIssue>,
    /// Files too new to judge (created less than [`YOUNG_GRACE`] ago and still empty):
    /// skipped without being a problem.
    pub young: usize,
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
    dir: Held,
    limit: u64,
    /// Bytes indexed from all files together, at most.
    dir_limit: u64,
    keys: KeyTable,
    files: BTreeMap<OsString, Tracked>,
    merger: Merger,
    /// Files kept open between passes: half the descriptor limit less a reserve (the other
    /// half is for connections), so a directory of any size never exhausts descriptors.
    fd_budget: usize,
    /// Files of counts that vanished without our compaction, with their last good values.
    ghosts: Vec<Tracked>,
    /// The identity of the shim's wipe marker at the last pass (`None` before the first).
    marker: Option<Option<FileId>>,
    /// Threads for the steady reload, if not chosen by size and cores (see [`steady`]).
    reload_threads: Option<usize>,
}

/// The default number of files kept open between passes (see `Collector::fd_budget`).
fn default_fd_budget() -> usize {
    let fds = crate::procfs::max_fds().unwrap_or(1024);
    usize::try_from(fds / 2)
        .unwrap_or(usize::MAX)
        .saturating_sub(32)
        .clamp(16, crate::read::mmap::fault::CAPACITY)
}

impl Collector {
    /// A collector for `dir`; nothing is read until [`Collector::collect`].
    pub fn new(dir: impl Into<PathBuf>) -> Collector {
        Collector {
            dir: Held::new(dir),
            limit: crate::read::DEFAULT_FILE_LIMIT,
            dir_limit: crate::read::DEFAULT_DIR_LIMIT,
            keys: KeyTable::default(),
            files: BTreeMap::new(),
            merger: Merger::default(),
            fd_budget: default_fd_budget(),
            ghosts: Vec::new(),
            marker: None,
            reload_threads: None,
        }
    }

    /// Reloads steady files on exactly `threads` threads (1 or 2), whatever the
    /// directory's size and the cores: for tests that run both ways.
    pub fn with_reload_threads(mut self, threads: usize) -> Collector {
        self.reload_threads = Some(threads);
        self
    }

    /// Bounds the files kept open between passes (the rest are reopened each pass).
    pub fn with_fd_budget(mut self, files: usize) -> Collector {
        self.fd_budget = files;
        self
    }

    /// Bounds the bytes read from any one file.
    pub fn with_file_limit(mut self, limit: u64) -> Collector {
        self.limit = limit.max(HEADER_LEN as u64);
        self
    }

    /// Bounds the bytes indexed from all files together (beyond it, files stop growing
    /// in our index and say so, `too_large`).
    pub fn with_dir_limit(mut self, limit: u64) -> Collector {
        self.dir_limit = limit;
        self
    }

    /// The directory being read.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Forgets everything read so far (keeping the directory and the per-file bound):
    /// the next pass reads every file afresh. For recovery after a failed pass.
    pub fn reset(&mut self) {
        let budget = self.fd_budget;
        let threads = self.reload_threads;
        *self = Collector::new(self.dir.path())
            .with_file_limit(self.limit)
            .with_dir_limit(self.dir_limit)
            .with_fd_budget(budget);
        self.reload_threads = threads;
    }

    /// The last good values of `t` (key text, value, timestamp).
    fn values_of(&self, t: &Tracked) -> crate::model::LastGood {
        t.index
            .entries
            .iter()
            .zip(&t.values)
            .map(|(e, &(v, ts))| (Box::from(self.keys.text(e.key)), v, ts))
            .collect()
    }

    /// Takes in what a lifecycle round did: files it absorbed or deleted are forgotten
    /// (their counts are in the archives now, or the directory was cleaned), and so are
    /// the ghosts it absorbed; a wipe forgets every ghost.
    ///
    /// Files are matched by identity, not name: a file someone renamed and our compaction
    /// then retired under its new name is still known here by its old one.
    pub fn settle(&mut self, report: &Report) {
        let retired: std::collections::HashSet<FileId> =
            report.retired.iter().map(|(_, id)| *id).collect();
        self.files.retain(|_, t| !retired.contains(&t.id));
        let absorbed: std::collections::HashSet<FileId> =
            report.ghosts_absorbed.iter().map(|(_, id)| *id).collect();
        self.ghosts
            .retain(|g| !report.wiped && !absorbed.contains(&g.id) && !retired.contains(&g.id));
    }

    /// Whether the shim replaced its wipe marker since the last pass (the first sighting
    /// of a marker that was already there is not a wipe).
    fn marker_replaced(&mut self, dir: &Dir) -> bool {
        let now = dir.stat(WIPE_MARKER).ok().map(|s| s.id);
        let before = self.marker.replace(now);
        matches!(before, Some(b) if b != now && now.is_some())
    }

    /// Moves the tracked files whose names are gone from `present` out: files of counts
    /// become ghosts, unless the directory was `wiped`.
    fn drop_vanished(&mut self, present: &BTreeSet<&OsStr>, wiped: bool) {
        let gone: Vec<OsString> = self
            .files
            .keys()
            .filter(|name| !present.contains(name.as_os_str()))
            .cloned()
            .collect();
        for name in gone {
            let Some(mut t) = self.files.remove(&name) else {
                continue;
            };
            let counts = matches!(
                t.file.kind,
                FileKind::Counter | FileKind::Histogram | FileKind::Summary
            );
            if !wiped && counts && !t.values.is_empty() {
                t.mapped = None;
                tracing::warn!(
                    file = %crate::model::Escaped::path(Path::new(&name)),
                    "file vanished without our compaction; keeping its last good values"
                );
                self.ghosts.push(t);
            }
        }
    }

    /// How many merge plans were built so far (a steady pass builds none).
    pub fn plans_built(&self) -> u64 {
        self.merger.plans_built()
    }

    /// How many times the merge plan was extended to new entries instead of rebuilt.
    pub fn plans_extended(&self) -> u64 {
        self.merger.plans_extended()
    }

    /// Runs one pass. The live-mode gauges of the pids in `dead` (proven dead by the
    /// lifecycle) are left out: "live" means not proven dead, with or without compaction.
    ///
    /// # Errors
    /// Only when the directory cannot be listed.
    pub fn collect(&mut self, dead: &BTreeSet<String>) -> Result<Pass, ScanError> {
        let (dir, replaced) = self.dir.get()?;
        if replaced {
            tracing::warn!(
                dir = %crate::model::Escaped::path(dir.path()),
                "the path names another directory now; reading it afresh (a wipe)"
            );
            self.files.clear();
            self.ghosts.clear();
        }
        // The marker first: a wipe the listing shows happened before it was replaced.
        let marked = self.marker_replaced(&dir);
        let listing = scan::scan(&dir)?;
        let mut issues = listing.skipped;
        let mut young = 0;
        let emptied = !listing.files.iter().any(|f| f.pid != ARCHIVE_PID);
        let wiped = marked || emptied;
        if wiped && !self.ghosts.is_empty() {
            tracing::info!(
                ghosts = self.ghosts.len(),
                "directory wiped; forgetting the last good values of vanished files"
            );
            self.ghosts.clear();
        }
        let present: BTreeSet<&OsStr> = listing.files.iter().map(|f| f.name.as_os_str()).collect();
        self.drop_vanished(&present, wiped);
        let indexed: u64 = self
            .files
            .values()
            .chain(&self.ghosts)
            .map(|t| t.index.parsed_to() as u64)
            .sum();
        let left = self.dir_limit.saturating_sub(indexed);
        let listed = self.open_listed(&dir, listing.files);
        let mut steady = self.reload_steady(&listed, left);
        let mut left = left;
        for (name, listed) in listed {
            let found = match listed {
                Listed::Failed(problem) => Err(problem),
                Listed::Warm => match steady.remove(&name) {
                    Some(found) => Ok(found),
                    None => self.refresh_one(&name, false, &mut left),
                },
                Listed::Cold(file) => track(&mut self.files, &dir, file)
                    .map(|_| ())
                    .and_then(|()| self.refresh_one(&name, true, &mut left)),
            };
            let found = found.unwrap_or_else(|problem| Refreshed {
                problems: vec![problem],
                young: false,
            });
            young += usize::from(found.young);
            issues.extend(found.problems.into_iter().map(|p| p.of(name.clone())));
        }
        // A file renamed (not deleted) is read under its new name: no ghost of it.
        let ids: std::collections::HashSet<FileId> = self.files.values().map(|t| t.id).collect();
        self.ghosts.retain(|g| !ids.contains(&g.id));
        for g in &self.ghosts {
            issues.push(
                FileProblem::new(
                    Reason::Vanished,
                    "the file vanished without our compaction; its last good values are kept until compaction absorbs them or the directory is wiped",
                )
                .of(g.file.name.clone()),
            );
        }
        crate::testpoint::panic("collect");
        Ok(self.merge(dead, issues, young))
    }

    /// Tracks the listed files that stay open between passes (opening what is new):
    /// the first `fd_budget` in name order. The rest are [`Listed::Cold`], to be opened,
    /// read whole and closed one at a time, so a directory of any size never holds more
    /// descriptors than the budget.
    fn open_listed(&mut self, dir: &Dir, listed: Vec<DbFile>) -> Vec<(OsString, Listed)> {
        let mut kept = 0usize;
        let mut opened = Vec::with_capacity(listed.len());
        for file in listed {
            let name = file.name.clone();
            let state = if kept >= self.fd_budget {
                Listed::Cold(file)
            } else {
                match track(&mut self.files, dir, file) {
                    Ok(_) => {
                        kept += 1;
                        Listed::Warm
                    }
                    Err(problem) => Listed::Failed(problem),
                }
            };
            opened.push((name, state));
        }
        opened
    }

    /// Refreshes the tracked file `name` (a `cold` one is closed again), indexing at most
    /// its share of the `left` bytes of the directory's budget, and takes what it indexed
    /// from `left`.
    fn refresh_one(
        &mut self,
        name: &OsStr,
        cold: bool,
        left: &mut u64,
    ) -> Result<Refreshed, FileProblem> {
        let tracked = self
            .files
            .get_mut(name)
            .ok_or_else(|| FileProblem::new(Reason::Vanished, "the file vanished"))?;
        let before = tracked.index.parsed_to() as u64;
        let limit = self.limit.min(before.saturating_add(*left));
        let found = refresh(tracked, limit, &mut self.keys, cold);
        *left = left.saturating_sub((tracked.index.parsed_to() as u64).saturating_sub(before));
        if cold {
            tracked.mapped = None;
        }
        Ok(found)
    }

    /// Reloads the values of the open files that are steady (see [`steady`]), before the
    /// rest are refreshed one by one; a file that grew is left to that. Each may index at
    /// most `left` more bytes, the budget before any file of this pass took from it, which
    /// a steady file does not.
    fn reload_steady(
        &mut self,
        listed: &[(OsString, Listed)],
        left: u64,
    ) -> std::collections::HashMap<OsString, Refreshed> {
        let warm: BTreeSet<&OsStr> = listed
            .iter()
            .filter(|(_, state)| matches!(state, Listed::Warm))
            .map(|(name, _)| name.as_os_str())
            .collect();
        let limit = self.limit;
        let (names, mut files): (Vec<&OsString>, Vec<(&mut Tracked, u64)>) = self
            .files
            .iter_mut()
            .filter(|(name, _)| warm.contains(name.as_os_str()))
            .map(|(name, t)| {
                let before = t.index.parsed_to() as u64;
                (name, (t, limit.min(before.saturating_add(left))))
            })
            .unzip();
        let done = steady::reload(&mut files, self.reload_threads);
        names
            .into_iter()
            .zip(done)
            .filter_map(|(name, found)| Some((name.clone(), found?)))
            .collect()
    }

    /// Merges the tracked files; attaches merge problems to their files.
    fn merge(&mut self, dead: &BTreeSet<String>, mut issues: Vec<FileIssue>, young: usize) -> Pass {
        let merged: Vec<&Tracked> = self
            .files
            .values()
            .chain(&self.ghosts)
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
            .collect::<BTreeSet<_>>()
            .len();
        let out = self.merger.merge(&views, &self.keys);
        for (file, problem) in out.problems {
            issues.push(problem.of(merged[file].file.name.clone()));
        }
        issues.sort_by(|a, b| a.file.cmp(&b.file));
        Pass {
            families: out.families,
            issues,
            young,
            entries,
            files_by_kind,
            pids,
        }
    }
}

impl Memory for Collector {
    /// What the last pass kept of `name`; empty unless the name still refers to the file
    /// `id` (a new file may have taken it).
    fn last_good(&self, name: &str, id: &FileId) -> crate::model::LastGood {
        match self.files.get(OsStr::new(name)).filter(|t| t.id == *id) {
            Some(t) => self.values_of(t),
            None => Vec::new(),
        }
    }

    /// Ghosts whose names are not UTF-8 stay with the reader: compaction handles only
    /// names it can spell (and never judges such a writer dead).
    fn ghosts(&self) -> Vec<Ghost> {
        self.ghosts
            .iter()
            .filter_map(|g| Some((g, g.file.name.to_str()?)))
            .map(|(g, name)| Ghost {
                name: name.to_owned(),
                kind: g.file.kind.clone(),
                id: g.id,
                last: self.values_of(g),
            })
            .collect()
    }
}

/// The tracked state of `file`, opened afresh when the name now refers to another
/// file (replaced, or a reused inode with a new birth time): then the old index means
/// nothing.
fn track<'a>(
    files: &'a mut BTreeMap<OsString, Tracked>,
    dir: &Dir,
    file: DbFile,
) -> Result<&'a mut Tracked, FileProblem> {
    let current = dir.stat(&file.name).map(|s| s.id);
    let same = files
        .get(&file.name)
        .is_some_and(|t| t.file.kind == file.kind && matches!(&current, Ok(id) if t.id == *id));
    let open = files.get(&file.name).is_some_and(|t| t.mapped.is_some());
    let reopened = match (same, open) {
        (true, true) => None,
        _ => Some(MappedFile::open(dir, &file.name)?),
    };
    if let Some(mapped) = reopened {
        match files.get_mut(&file.name) {
            // Reopened the same file (it was closed for the descriptor budget).
            Some(t) if same && mapped.id() == t.id => t.mapped = Some(mapped),
            // New, or replaced (perhaps between the listing and the open): index afresh.
            _ => {
                let tracked = Tracked {
                    pid_label: Arc::from(file.pid_label.as_str()),
                    file: file.clone(),
                    id: mapped.id(),
                    mapped: Some(mapped),
                    index: FileIndex::new(),
                    values: Vec::new(),
                    generation: next_generation(),
                    shrunk: false,
                };
                files.insert(file.name.clone(), tracked);
            }
        }
    }
    files
        .get_mut(&file.name)
        .ok_or_else(|| FileProblem::new(Reason::Vanished, "the file vanished"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::DbWriter;

    #[test]
    fn test_issue_9_the_directory_limit_bounds_what_all_files_index_together() {
        let d = tempfile::tempdir().unwrap();
        for pid in ["1", "2", "3"] {
            let mut w = DbWriter::open(&d.path().join(format!("counter_{pid}.db"))).unwrap();
            for i in 0..100 {
                w.set_sample("c", "c_total", &[("i", &i.to_string())], "h", 1.0, 0.0)
                    .unwrap();
            }
        }
        let one = std::fs::read(d.path().join("counter_1.db")).unwrap();
        let used = crate::format::used(&one).unwrap() as u64;
        // Room for two files and a half: the third stops where the limit does.
        let mut c = Collector::new(d.path()).with_dir_limit(used * 5 / 2);
        let pass = c.collect(&BTreeSet::new()).unwrap();
        assert!(
            pass.entries >= 240 && pass.entries < 300,
            "{}",
            pass.entries
        );
        let over: Vec<_> = pass
            .issues
            .iter()
            .filter(|i| i.reason() == Reason::TooLarge)
            .collect();
        assert_eq!(over.len(), 1, "{:?}", pass.issues);
        assert!(
            over[0].detail().contains("per-directory"),
            "{}",
            over[0].detail()
        );
        // Steady: the next pass indexes nothing more and loses nothing.
        assert_eq!(c.collect(&BTreeSet::new()).unwrap().entries, pass.entries);
    }
}
