//! The lifecycle of a directory: prove which writers are dead, fold their files into
//! archives, remove what `mark_process_dead` would, and clean a stale directory at start.
//!
//! One [`Lifecycle::tick`] runs under the directory lock (`.multiproc-exporter.lock`,
//! the same `flock` the shim takes around its wipes), and the server runs it with the
//! collector locked, so no merge pass ever sees a half-done step. Every step is
//! idempotent and crash-safe (see [`archive`]); the first thing a tick does is finish
//! what a crashed tick left.
//!
//! Bad situations never cost data: without write permission or free space (a full
//! memory-backed volume makes the writers crash with SIGBUS) compaction is skipped and
//! reported; with `--liveness none` nothing is ever deleted.

pub mod archive;

use crate::liveness::{self, Liveness, PidFile, Verdict};
use crate::model::FileKind;
use crate::read::FileId;
use crate::scan::{self, DbFile};
use archive::{ABSORBING_PREFIX, ARCHIVE_PID, Pending, TEMP_PREFIX};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Name of the directory lock file.
pub const DIR_LOCK: &str = ".multiproc-exporter.lock";

/// Test-only crash injection: `MPE_TEST_CRASH_AT=<point>[:<n>]` aborts the process the
/// n-th time (default 1st) execution reaches `point`. Points, in order:
/// `live_removed`, `renamed_hidden`, `temp_written`, `temp_synced`, `archive_renamed`,
/// `hidden_removed`, `wiped_one`.
pub fn hook(point: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static HITS: AtomicU64 = AtomicU64::new(0);
    let Ok(spec) = std::env::var("MPE_TEST_CRASH_AT") else {
        return;
    };
    let (name, n) = spec.split_once(':').unwrap_or((&spec, "1"));
    if name == point {
        let hit = HITS.fetch_add(1, Ordering::SeqCst) + 1;
        if n.parse::<u64>().unwrap_or(1) == hit {
            std::process::abort();
        }
    }
}

/// Lifecycle settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where liveness evidence comes from.
    pub liveness: liveness::Mode,
    /// Whether dead writers' files are folded into archives (and live gauges removed).
    pub compaction: bool,
    /// Free bytes the volume must keep beyond what compaction writes.
    pub min_free_bytes: u64,
}

/// What one tick found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Pids with evidence of life.
    pub alive: usize,
    /// Pids proven dead.
    pub dead: usize,
    /// Pids without evidence (treated as alive).
    pub unknown: usize,
    /// Files deleted (live gauges of dead pids, absorbed files, stale files).
    pub removed: usize,
    /// Dead files folded into archives.
    pub absorbed: usize,
    /// The whole directory was stale (every writer dead) and was cleaned.
    pub wiped: bool,
    /// Why compaction was skipped, if it was.
    pub skipped: Option<(&'static str, String)>,
}

/// The lifecycle state of one directory.
#[derive(Debug)]
pub struct Lifecycle {
    dir: PathBuf,
    settings: Settings,
    liveness: Liveness,
    dead: BTreeSet<String>,
}

impl Lifecycle {
    /// A lifecycle for `dir`.
    pub fn new(dir: impl Into<PathBuf>, settings: Settings) -> Lifecycle {
        Lifecycle {
            dir: dir.into(),
            liveness: Liveness::new(settings.liveness),
            settings,
            dead: BTreeSet::new(),
        }
    }

    /// Pids proven dead at the last tick (their live gauges are not served).
    pub fn dead_pids(&self) -> &BTreeSet<String> {
        &self.dead
    }

    /// What evidence is in use.
    pub fn evidence(&self) -> &'static str {
        self.liveness.describe()
    }

    /// One round: recover, judge every pid, then wipe (at start, if every writer is
    /// dead) or compact the dead.
    ///
    /// # Errors
    /// When the directory cannot be listed or a compaction step fails; what was done
    /// before the failure is consistent.
    pub fn tick(&mut self, at_start: bool) -> io::Result<Report> {
        let mut report = Report::default();
        if !self.dir.is_dir() {
            return Ok(report);
        }
        let modify = self.settings.compaction && self.settings.liveness != liveness::Mode::None;
        let _lock = if modify {
            Some(lock_dir(&self.dir)?)
        } else {
            None
        };
        let mut pending: BTreeMap<String, (FileKind, Vec<Pending>)> = BTreeMap::new();
        if modify {
            report.removed += recover(&self.dir, &mut pending)?;
        }
        let listing = scan::scan(&self.dir).map_err(io::Error::other)?;
        let by_pid = group_by_pid(&self.dir, &listing.files);
        let pairs: Vec<(&str, &[PidFile])> = by_pid
            .iter()
            .map(|(pid, files)| (pid.as_str(), files.1.as_slice()))
            .collect();
        self.liveness.prove_namespace(&self.dir, &pairs);
        self.dead.clear();
        for (pid, (_, files)) in &by_pid {
            match self.liveness.judge(&self.dir, pid, files) {
                Verdict::Alive => report.alive += 1,
                Verdict::Unknown => report.unknown += 1,
                Verdict::Dead(_) => {
                    report.dead += 1;
                    self.dead.insert(pid.clone());
                }
            }
        }
        if !modify {
            return Ok(report);
        }
        if at_start && !by_pid.is_empty() && report.dead == by_pid.len() && pending.is_empty() {
            report.removed += wipe(&self.dir)?;
            report.wiped = true;
            self.dead.clear();
            return Ok(report);
        }
        if self.dead.is_empty() && pending.is_empty() {
            return Ok(report);
        }
        if let Some(skip) = preflight(&self.dir, &by_pid, &self.dead, self.settings.min_free_bytes)
        {
            report.skipped = Some(skip);
            return Ok(report);
        }
        let dead: Vec<String> = self.dead.iter().cloned().collect();
        for pid in &dead {
            let (db_files, files) = &by_pid[pid];
            let mut hidden_here = Vec::new();
            for (db, pf) in db_files.iter().zip(files) {
                let path = self.dir.join(&db.name);
                match &db.kind {
                    FileKind::Gauge(m) if m.is_live() => {
                        remove_if_present(&path)?;
                        report.removed += 1;
                        liveness_hook_live();
                    }
                    kind => {
                        let Some(archive) = archive::archive_name(kind) else {
                            continue;
                        };
                        let hidden = format!("{ABSORBING_PREFIX}{}", db.name);
                        match fs::rename(&path, self.dir.join(&hidden)) {
                            Ok(()) => {}
                            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(e),
                        }
                        hook("renamed_hidden");
                        hidden_here.push((archive, kind.clone(), db.name.clone(), hidden, pf.id));
                    }
                }
            }
            // Prove death again now that the name is free: a new process under the same
            // pid may have opened the old file just before the rename.
            let hidden_files: Vec<PidFile> = hidden_here
                .iter()
                .map(|(_, _, _, hidden, id)| PidFile {
                    name: hidden.clone(),
                    id: *id,
                })
                .collect();
            if self.liveness.judge(&self.dir, pid, &hidden_files) == Verdict::Alive {
                for (_, _, name, hidden, _) in &hidden_here {
                    if !self.dir.join(name).exists() {
                        fs::rename(self.dir.join(hidden), self.dir.join(name))?;
                    }
                }
                self.dead.remove(pid);
                continue;
            }
            for (archive, kind, _, hidden, id) in hidden_here {
                pending
                    .entry(archive)
                    .or_insert_with(|| (kind, Vec::new()))
                    .1
                    .push(Pending { hidden, id });
            }
        }
        archive::sync_dir(&self.dir)?;
        for (done, (archive, (kind, files))) in pending.iter().enumerate() {
            if let Err(err) = archive::absorb(&self.dir, archive, kind, files) {
                // Put every file not yet absorbed back under its name, so every reader
                // counts it again; the next round retries.
                for (_, (_, rest)) in pending.iter().skip(done) {
                    for p in rest {
                        let original = &p.hidden[ABSORBING_PREFIX.len()..];
                        if !self.dir.join(original).exists() {
                            let _ = fs::rename(self.dir.join(&p.hidden), self.dir.join(original));
                        }
                    }
                }
                let _ = archive::sync_dir(&self.dir);
                report.skipped = Some(("error", format!("cannot write {archive}: {err}")));
                return Ok(report);
            }
            report.absorbed += files.len();
            report.removed += files.len();
        }
        report.removed += remove_released_locks(&self.dir, &self.dead)?;
        Ok(report)
    }
}

fn liveness_hook_live() {
    hook("live_removed");
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Files of each writer pid (archives excluded), with identities for liveness.
fn group_by_pid(dir: &Path, files: &[DbFile]) -> BTreeMap<String, (Vec<DbFile>, Vec<PidFile>)> {
    let mut by_pid: BTreeMap<String, (Vec<DbFile>, Vec<PidFile>)> = BTreeMap::new();
    for f in files {
        if f.pid == ARCHIVE_PID {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(dir.join(&f.name)) else {
            continue;
        };
        let entry = by_pid.entry(f.pid.clone()).or_default();
        entry.0.push(f.clone());
        entry.1.push(PidFile {
            name: f.name.clone(),
            id: FileId::of(&meta),
        });
    }
    by_pid
}

/// Takes the directory lock, waiting for the shim if it holds it.
fn lock_dir(dir: &Path) -> io::Result<fs::File> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(dir.join(DIR_LOCK))?;
    f.lock()?;
    Ok(f)
}

/// Finishes what a crashed tick left: temporary archives are deleted; hidden files are
/// deleted if their archive records them, otherwise queued for absorption.
fn recover(
    dir: &Path,
    pending: &mut BTreeMap<String, (FileKind, Vec<Pending>)>,
) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !entry.file_type()?.is_file() {
            continue;
        }
        if name.starts_with(TEMP_PREFIX) {
            remove_if_present(&entry.path())?;
            removed += 1;
            continue;
        }
        let Some(original) = name.strip_prefix(ABSORBING_PREFIX) else {
            continue;
        };
        let Ok(Some(db)) = scan::parse_name(original) else {
            continue;
        };
        let Some(archive) = archive::archive_name(&db.kind) else {
            continue;
        };
        let id = FileId::of(&entry.metadata()?);
        if archive::has_absorbed(&dir.join(&archive), &name, &id) {
            remove_if_present(&entry.path())?;
            removed += 1;
        } else {
            pending
                .entry(archive)
                .or_insert_with(|| (db.kind.clone(), Vec::new()))
                .1
                .push(Pending { hidden: name, id });
        }
    }
    Ok(removed)
}

/// Checks write permission and free space; returns why not, if compaction cannot run.
fn preflight(
    dir: &Path,
    by_pid: &BTreeMap<String, (Vec<DbFile>, Vec<PidFile>)>,
    dead: &BTreeSet<String>,
    min_free: u64,
) -> Option<(&'static str, String)> {
    if nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_err() {
        return Some((
            "no_write_permission",
            format!("cannot write to {}", dir.display()),
        ));
    }
    // A new archive is at most the old one plus the absorbed files' used bytes.
    let mut need: u64 = 0;
    for pid in dead {
        for f in &by_pid[pid].0 {
            need += fs::metadata(dir.join(&f.name)).map_or(0, |m| m.len().min(1 << 31));
        }
    }
    for f in fs::read_dir(dir).ok()?.flatten() {
        if f.file_name()
            .to_str()
            .is_some_and(|n| n.ends_with("_archive.db"))
        {
            need += f.metadata().map_or(0, |m| m.len());
        }
    }
    match nix::sys::statvfs::statvfs(dir) {
        Ok(st) => {
            let free = st.blocks_available() * st.fragment_size();
            if free < need + min_free {
                return Some((
                    "no_space",
                    format!(
                        "{} has {free} bytes free; compaction needs {need} plus a reserve of {min_free}",
                        dir.display()
                    ),
                ));
            }
            None
        }
        Err(e) => Some((
            "no_space",
            format!("cannot read free space of {}: {e}", dir.display()),
        )),
    }
}

/// Deletes everything of a stale directory that is ours to delete: names of the file
/// grammar (archives included), our hidden and temporary files, lock files nobody holds.
/// Never recurses, never follows a symlink (only regular files are removed).
fn wipe(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let ours = matches!(scan::parse_name(&name), Ok(Some(_)))
            || name.starts_with(ABSORBING_PREFIX)
            || name.starts_with(TEMP_PREFIX)
            || liveness::lock_pid(&name)
                .is_some_and(|pid| liveness::probe_lock(dir, pid) == liveness::LockState::Released);
        if ours {
            remove_if_present(&entry.path())?;
            removed += 1;
            hook("wiped_one");
        }
    }
    archive::sync_dir(dir)?;
    Ok(removed)
}

/// Removes the lock files of dead pids that have no file left in the directory.
fn remove_released_locks(dir: &Path, dead: &BTreeSet<String>) -> io::Result<usize> {
    let listing = scan::scan(dir).map_err(io::Error::other)?;
    let with_files: BTreeSet<&str> = listing.files.iter().map(|f| f.pid.as_str()).collect();
    let mut removed = 0;
    for pid in dead {
        if with_files.contains(pid.as_str()) {
            continue;
        }
        let path = liveness::lock_path(dir, pid);
        // Hold the lock while deleting, and delete only the inode we hold: a new worker
        // with this pid renames a fresh, held lock file into place.
        let Ok(f) = liveness::open_nofollow(&path) else {
            continue;
        };
        if f.try_lock().is_err() {
            continue;
        }
        let same = match (f.metadata(), fs::symlink_metadata(&path)) {
            (Ok(a), Ok(b)) => FileId::of(&a) == FileId::of(&b),
            _ => false,
        };
        if same {
            remove_if_present(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}
