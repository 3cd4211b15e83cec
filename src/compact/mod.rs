//! The lifecycle of a directory: prove which writers are dead, fold their files into
//! archives, remove what `mark_process_dead` would, and clean a stale directory at start.
//!
//! One [`Lifecycle::tick`] runs under the directory lock (`.multiproc-exporter.lock`,
//! the same `flock` the shim takes around its wipes), and the server runs it with the
//! pipeline locked (no merge pass runs meanwhile), so no pass ever sees a half-done step. Every step is
//! idempotent and crash-safe (see [`archive`]); the first thing a tick does is finish
//! what a crashed tick left.
//!
//! Bad situations never cost data: without write permission or free space (a full
//! memory-backed volume makes the writers crash with SIGBUS) compaction is skipped and
//! reported; with `--liveness none` nothing is ever deleted.

pub mod archive;
mod clean;
mod preflight;

pub use clean::{Deletable, deletable};
use clean::{regular_files, remove_released_locks, wipe};
pub use preflight::{Skip, SkipReason};

use crate::dir::FileId;
use crate::dir::{Dir, Held};
use crate::liveness::{self, Evidence, Liveness, PidFile, Verdict};
use crate::model::{FileKind, LastGood};
use crate::scan::{self, DbFile};
use crate::testpoint::crash as hook;
use archive::{ABSORBING_PREFIX, ARCHIVE_PID, Pending, TEMP_PREFIX};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;

/// Name of the directory lock file.
pub const DIR_LOCK: &str = ".multiproc-exporter.lock";
/// The shim replaces this file (a new inode each time) under the directory lock after it
/// wiped the directory: readers take it as a reset, forgetting what vanished files held.
pub const WIPE_MARKER: &str = ".multiproc-exporter.wiped";

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
    /// Pids proven dead in this tick that were not at the previous one, and why.
    pub proven: Vec<Death>,
    /// Files deleted (live gauges of dead pids, absorbed files, stale files).
    pub removed: usize,
    /// Dead files folded into archives.
    pub absorbed: usize,
    /// The whole directory was stale (every writer dead) and was cleaned.
    pub wiped: bool,
    /// Why compaction was skipped, if it was.
    pub skipped: Option<Skip>,
    /// The previous tick was skipped for the same reason (say it once, count it always).
    pub skip_repeated: bool,
    /// Files of writers proven dead that compaction could still fold into archives, as
    /// the tick ends: 0 after a successful compaction, above 0 while compaction is
    /// skipped or off. Neither `gauge_all` files (kept by design: their series carry the
    /// `pid`) nor live gauges (deleted, never folded) count, so a pool with an `all`
    /// gauge does not look as if its dead writers were never compacted.
    pub compactable: usize,
    /// Files this tick took away from under their names (absorbed or deleted), by name
    /// and identity: the reader forgets them instead of keeping their last good values.
    pub retired: Vec<(String, FileId)>,
    /// Ghosts (see [`Memory::ghosts`]) folded into archives in this tick.
    pub ghosts_absorbed: Vec<(String, FileId)>,
}

/// The last good values of a file of counts that vanished without our compaction (DESIGN
/// section 3: they keep contributing until compaction absorbs them or a wipe).
#[derive(Clone, Debug)]
pub struct Ghost {
    /// The name the file had.
    pub name: String,
    /// What it held.
    pub kind: FileKind,
    /// Which file it was.
    pub id: FileId,
    /// Its last good values.
    pub last: LastGood,
}

/// What the reader of the directory remembers that the files may no longer hold.
pub trait Memory {
    /// The last good values of the file `name` while it was the file `id` (empty if the
    /// reader has none): absorbed with it, so a truncated file loses no counts.
    fn last_good(&self, name: &str, id: &FileId) -> LastGood;
    /// Files of counts that vanished without our compaction, to absorb.
    fn ghosts(&self) -> Vec<Ghost>;
}

/// A lifecycle without a reader beside it (the `compact` command): nothing remembered.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMemory;

impl Memory for NoMemory {
    fn last_good(&self, _: &str, _: &FileId) -> LastGood {
        Vec::new()
    }
    fn ghosts(&self) -> Vec<Ghost> {
        Vec::new()
    }
}

/// A writer newly proven dead, and the evidence that proved it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Death {
    /// Its pid (as the file names spell it).
    pub pid: String,
    /// What proved it.
    pub evidence: Evidence,
}

/// The files of one writer pid (archives excluded), with identities for liveness.
#[derive(Debug, Default)]
struct Writer {
    files: Vec<DbFile>,
    ids: Vec<PidFile>,
}

/// A dead writer's file renamed out of the way, waiting to be absorbed.
struct Hidden {
    archive: String,
    kind: FileKind,
    name: String,
    pending: Pending,
}

/// Hidden files of one kind waiting to be absorbed into one archive.
#[derive(Debug)]
struct Queue {
    kind: FileKind,
    files: Vec<Pending>,
}

impl Queue {
    fn new(kind: FileKind) -> Queue {
        Queue {
            kind,
            files: Vec::new(),
        }
    }
}

/// Hidden files to absorb, by archive name.
type Absorptions = BTreeMap<String, Queue>;

/// The lifecycle state of one directory.
#[derive(Debug)]
pub struct Lifecycle {
    dir: Held,
    settings: Settings,
    liveness: Liveness,
    dead: BTreeSet<String>,
    /// Why the previous tick skipped compaction.
    last_skip: Option<SkipReason>,
}

impl Lifecycle {
    /// A lifecycle for `dir`.
    pub fn new(dir: impl Into<PathBuf>, settings: Settings) -> Lifecycle {
        Lifecycle {
            dir: Held::new(dir),
            liveness: Liveness::new(settings.liveness),
            settings,
            dead: BTreeSet::new(),
            last_skip: None,
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
        self.tick_with(at_start, &NoMemory)
    }

    /// [`Lifecycle::tick`], with what a reader remembers: the last good values of each
    /// file are absorbed with it, and the reader's ghosts are absorbed too.
    ///
    /// # Errors
    /// As [`Lifecycle::tick`].
    pub fn tick_with(&mut self, at_start: bool, memory: &dyn Memory) -> io::Result<Report> {
        let mut report = self.round(at_start, memory)?;
        let reason = report.skipped.as_ref().map(|s| s.reason);
        report.skip_repeated = reason.is_some() && reason == self.last_skip;
        self.last_skip = reason;
        Ok(report)
    }

    /// One tick's work ([`Lifecycle::tick_with`] adds what only a sequence of ticks knows).
    fn round(&mut self, at_start: bool, memory: &dyn Memory) -> io::Result<Report> {
        let mut report = Report::default();
        // Never act through a symbolic link: it could name another directory.
        let Ok((dir, _)) = self.dir.get() else {
            return Ok(report);
        };
        let mut modify = self.settings.compaction && self.settings.liveness != liveness::Mode::None;
        let _lock = match modify.then(|| lock_dir(&dir)).transpose() {
            Ok(lock) => lock,
            // A directory we may not write: liveness is still judged (dead writers' live
            // gauges are left out of the output); only the changes are skipped.
            Err(e) if is_denied(&e) => {
                report.skipped = Some(Skip::new(
                    SkipReason::NoWritePermission,
                    format!(
                        "cannot open the directory lock in {}: {e}",
                        crate::model::Escaped::path(dir.path())
                    ),
                ));
                modify = false;
                None
            }
            Err(e) => return Err(e),
        };
        let mut pending = Absorptions::new();
        if modify {
            report.removed += recover(&dir, &mut pending)?;
        }
        let writers = self.judge(&dir, &mut report)?;
        report.compactable = self.compactable(&writers) + on_disk(&pending);
        if !modify {
            return Ok(report);
        }
        if at_start && !writers.is_empty() && report.dead == writers.len() && pending.is_empty() {
            report.retired = wipe(&dir)?;
            report.removed += report.retired.len();
            report.wiped = true;
            report.compactable = 0;
            self.dead.clear();
            return Ok(report);
        }
        let ghosts = memory.ghosts();
        if self.dead.is_empty() && pending.is_empty() && ghosts.is_empty() {
            return Ok(report);
        }
        if let Some(skip) =
            preflight::preflight(&dir, &writers, &self.dead, self.settings.min_free_bytes)
        {
            report.skipped = Some(skip);
            return Ok(report);
        }
        let dead: Vec<String> = self.dead.iter().cloned().collect();
        for pid in &dead {
            if !self.retire(&dir, pid, &writers[pid], &mut pending, &mut report, memory)? {
                // Proven alive on the second look: a new process took the pid over.
                report.dead -= 1;
                report.alive += 1;
            }
        }
        report.proven.retain(|d| self.dead.contains(&d.pid));
        queue_ghosts(ghosts, &mut pending);
        dir.sync()?;
        // Every dead writer's foldable file is now queued (or was taken over by a new
        // process, or vanished): what a failed absorption puts back counts again.
        report.compactable = 0;
        if !absorb_all(&dir, &pending, &mut report, memory) {
            return Ok(report);
        }
        report.removed += remove_released_locks(&dir, &self.dead)?;
        Ok(report)
    }

    /// The files of the pids judged dead that compaction would fold into archives.
    fn compactable(&self, writers: &BTreeMap<String, Writer>) -> usize {
        self.dead
            .iter()
            .filter_map(|pid| writers.get(pid))
            .flat_map(|w| &w.files)
            .filter(|f| archive::archive_name(&f.kind).is_some())
            .count()
    }

    /// Judges every writer pid of the directory; fills the counts of `report` and the
    /// set of dead pids.
    fn judge(&mut self, dir: &Dir, report: &mut Report) -> io::Result<BTreeMap<String, Writer>> {
        let listing = scan::scan(dir).map_err(io::Error::other)?;
        let writers = group_by_pid(dir, &listing.files);
        let pairs: Vec<(&str, &[PidFile])> = writers
            .iter()
            .map(|(pid, w)| (pid.as_str(), w.ids.as_slice()))
            .collect();
        self.liveness.prove_namespace(dir, &pairs);
        let before = std::mem::take(&mut self.dead);
        for (pid, w) in &writers {
            match self.liveness.judge(dir, pid, &w.ids) {
                Verdict::Alive => report.alive += 1,
                Verdict::Unknown => report.unknown += 1,
                Verdict::Dead(evidence) => {
                    report.dead += 1;
                    if !before.contains(pid) {
                        report.proven.push(Death {
                            pid: pid.clone(),
                            evidence,
                        });
                    }
                    self.dead.insert(pid.clone());
                }
            }
        }
        Ok(writers)
    }

    /// Deletes the live gauges of dead `pid` and renames its foldable files to hidden
    /// names; once death is proven again (nothing took the pid over meanwhile), queues
    /// them in `pending`. Returns whether the pid is still dead.
    fn retire(
        &mut self,
        dir: &Dir,
        pid: &str,
        writer: &Writer,
        pending: &mut Absorptions,
        report: &mut Report,
        memory: &dyn Memory,
    ) -> io::Result<bool> {
        let mut hidden_here = Vec::new();
        for (db, pf) in writer.files.iter().zip(&writer.ids) {
            if matches!(&db.kind, FileKind::Gauge(m) if m.is_live()) {
                remove_if_present(dir, &pf.name)?;
                report.removed += 1;
                report.retired.push((pf.name.clone(), pf.id));
                hook("live_removed");
                continue;
            }
            let Some(archive) = archive::archive_name(&db.kind) else {
                continue;
            };
            let hidden = format!("{ABSORBING_PREFIX}{}", pf.name);
            match dir.rename(&pf.name, &hidden) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            hook("renamed_hidden");
            hidden_here.push(Hidden {
                archive,
                kind: db.kind.clone(),
                name: pf.name.clone(),
                pending: Pending {
                    hidden,
                    on_disk: true,
                    id: pf.id,
                    last: memory.last_good(&pf.name, &pf.id),
                },
            });
        }
        // Prove death again now that the name is free: a new process under the same
        // pid may have opened the old file just before the rename.
        let hidden_files: Vec<PidFile> = hidden_here
            .iter()
            .map(|h| PidFile {
                name: h.pending.hidden.clone(),
                id: h.pending.id,
            })
            .collect();
        if self.liveness.judge(dir, pid, &hidden_files) == Verdict::Alive {
            for h in &hidden_here {
                if !dir.exists(&h.name) {
                    dir.rename(&h.pending.hidden, &h.name)?;
                }
            }
            self.dead.remove(pid);
            return Ok(false);
        }
        for h in hidden_here {
            pending
                .entry(h.archive)
                .or_insert_with(|| Queue::new(h.kind))
                .files
                .push(h.pending);
        }
        Ok(true)
    }
}

/// Absorbs every queued hidden file into its archive. On a failure, puts every file not
/// yet absorbed back under its name (so every reader counts it again; the next round
/// retries), records why in `report`, and returns `false`.
fn absorb_all(dir: &Dir, pending: &Absorptions, report: &mut Report, memory: &dyn Memory) -> bool {
    for (done, (archive, queue)) in pending.iter().enumerate() {
        let files = &queue.files;
        let kept = dir
            .stat(archive)
            .map(|st| memory.last_good(archive, &st.id))
            .unwrap_or_default();
        if let Err(err) = archive::absorb(dir, archive, &queue.kind, files, &kept) {
            for (_, rest) in pending.iter().skip(done) {
                for p in rest.files.iter().filter(|p| p.on_disk) {
                    let original = &p.hidden[ABSORBING_PREFIX.len()..];
                    if !dir.exists(original) {
                        let _ = dir.rename(&p.hidden, original);
                    }
                    report.compactable += 1;
                }
            }
            let _ = dir.sync();
            report.skipped = Some(Skip::new(
                SkipReason::Error,
                format!("cannot write {archive}: {err}"),
            ));
            return false;
        }
        for p in files {
            if p.on_disk {
                let original = &p.hidden[ABSORBING_PREFIX.len()..];
                report.retired.push((original.to_owned(), p.id));
                report.absorbed += 1;
                report.removed += 1;
            } else {
                report.ghosts_absorbed.push((p.hidden.clone(), p.id));
            }
        }
    }
    true
}

/// Hidden files on disk waiting in `pending` (what a crashed tick left).
fn on_disk(pending: &Absorptions) -> usize {
    pending
        .values()
        .flat_map(|q| &q.files)
        .filter(|p| p.on_disk)
        .count()
}

/// Queues the reader's ghosts for their archives (kinds that are not folded stay with
/// the reader).
fn queue_ghosts(ghosts: Vec<Ghost>, pending: &mut Absorptions) {
    for g in ghosts {
        let Some(archive) = archive::archive_name(&g.kind) else {
            continue;
        };
        pending
            .entry(archive)
            .or_insert_with(|| Queue::new(g.kind.clone()))
            .files
            .push(Pending {
                hidden: g.name,
                on_disk: false,
                id: g.id,
                last: g.last,
            });
    }
}

fn remove_if_present(dir: &Dir, name: &str) -> io::Result<()> {
    match dir.remove(name) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Files of each writer pid (archives excluded), with identities for liveness. A name
/// that is not UTF-8 is read but never judged: no writer we could prove dead spells its
/// pid that way.
fn group_by_pid(dir: &Dir, files: &[DbFile]) -> BTreeMap<String, Writer> {
    let mut by_pid: BTreeMap<String, Writer> = BTreeMap::new();
    for f in files {
        let Some(name) = f.name.to_str() else {
            continue;
        };
        if f.pid == ARCHIVE_PID {
            continue;
        }
        let Ok(st) = dir.stat(&f.name) else {
            continue;
        };
        let entry = by_pid.entry(f.pid.clone()).or_default();
        entry.files.push(f.clone());
        entry.ids.push(PidFile {
            name: name.to_owned(),
            id: st.id,
        });
    }
    by_pid
}

/// Whether `e` says we may not write (a read-only mount, or no permission).
fn is_denied(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied
        || e.raw_os_error() == Some(libc::EROFS)
        || e.raw_os_error() == Some(libc::EACCES)
        || e.raw_os_error() == Some(libc::EPERM)
}

/// Takes the directory lock, waiting for the shim if it holds it.
fn lock_dir(dir: &Dir) -> io::Result<std::fs::File> {
    let f = dir.open_rw(DIR_LOCK)?;
    f.lock()?;
    Ok(f)
}

/// Finishes what a crashed tick left: temporary archives are deleted; hidden files are
/// deleted if their archive records them, otherwise queued for absorption.
fn recover(dir: &Dir, pending: &mut Absorptions) -> io::Result<usize> {
    let mut removed = 0;
    for (name, st) in regular_files(dir)? {
        if name.starts_with(TEMP_PREFIX) {
            remove_if_present(dir, &name)?;
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
        let id = st.id;
        if archive::has_absorbed(dir, &archive, &name, &id) {
            remove_if_present(dir, &name)?;
            removed += 1;
        } else {
            pending
                .entry(archive)
                .or_insert_with(|| Queue::new(db.kind.clone()))
                .files
                .push(Pending {
                    hidden: name,
                    on_disk: true,
                    id,
                    last: Vec::new(),
                });
        }
    }
    Ok(removed)
}
