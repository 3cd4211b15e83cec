//! Evidence that the writer of a pid's files is alive or dead.
//!
//! A writer counts as dead only on positive evidence; without evidence it is alive and
//! nothing of it is touched. Two sources, strongest first:
//!
//! - **lock**: the shim (and each `--demo` worker, through [`hold_worker_lock`]) holds
//!   an exclusive `flock` on `.multiproc-exporter-<pid>.lock` for the worker's lifetime
//!   (created locked under a temporary name and renamed into place, so a lock file under
//!   its final name is always held by its creator until it dies). A successful
//!   non-blocking probe proves death. `flock` works across containers and pid
//!   namespaces because they share the kernel and the inode.
//! - **proc**: the sidecar shares the writers' pid namespace. `/proc/<pid>` absent (or
//!   a zombie) proves death. A process under that pid that started after the file was
//!   created, and does not map it, is a new process that reused the pid: the file's
//!   writer is dead too. A pid that maps the file is alive whatever its start time
//!   (prometheus_client resumes an existing file when a new process gets the same pid).
//!
//! In a separate pid namespace every pid looks missing, so `auto` uses proc evidence
//! only after proving the namespace is shared: a pid named by a file maps that very file
//! (same device and inode), or a lock file records our own pid namespace.

use crate::dir::{Dir, FileId};
use crate::procfs;
use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Prefix of the per-worker lock files the shim holds.
pub const LOCK_PREFIX: &str = ".multiproc-exporter-";
/// Suffix of the per-worker lock files.
pub const LOCK_SUFFIX: &str = ".lock";
/// What follows a lock file's final name in the temporary name it is created under,
/// before the creator's pid (`.multiproc-exporter-7.lock.tmp.7`).
pub const LOCK_TMP_INFIX: &str = ".tmp.";

/// How much later than a file's birth a process must have started to be a reuser of
/// its pid: covers the coarse clocks of file timestamps and process start ticks.
const REUSE_SLACK: Duration = Duration::from_millis(50);

/// Where liveness evidence may come from (`--liveness`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Lock files where they exist; /proc once the pid namespace is proven shared.
    Auto,
    /// Only the shim's lock files.
    Lock,
    /// Only /proc; asserts that the sidecar shares the writers' pid namespace.
    Proc,
    /// Never declare a writer dead (only observe mark_process_dead deletions).
    None,
}

impl Mode {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Lock => "lock",
            Mode::Proc => "proc",
            Mode::None => "none",
        }
    }
}

/// Why a writer is known to be dead: reported per death in the lifecycle log line and
/// as the `evidence` label of `multiproc_exporter_writers_proven_dead_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Evidence {
    /// Its lock file is no longer held.
    LockReleased,
    /// No process (or only a zombie) has its pid.
    ProcessGone,
    /// The process with its pid started after the file was created and does not map it.
    PidReused,
}

impl Evidence {
    /// Every kind of evidence, for declaring metric label values up front.
    pub const ALL: [Evidence; 3] = [
        Evidence::LockReleased,
        Evidence::ProcessGone,
        Evidence::PidReused,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Evidence::LockReleased => "lock_released",
            Evidence::ProcessGone => "process_gone",
            Evidence::PidReused => "pid_reused",
        }
    }
}

/// The judgement on one pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Evidence of life (a held lock, a process mapping the file).
    Alive,
    /// Evidence of death.
    Dead(Evidence),
    /// No evidence either way: treated as alive.
    Unknown,
}

/// The name of the lock file of `pid`.
pub fn lock_name(pid: &str) -> String {
    format!("{LOCK_PREFIX}{pid}{LOCK_SUFFIX}")
}

/// The path of the lock file of `pid` (for workers, which write it by path).
pub fn lock_path(dir: &Path, pid: &str) -> PathBuf {
    dir.join(lock_name(pid))
}

/// The pid of a lock file name, if it is one.
pub fn lock_pid(name: &str) -> Option<&str> {
    let pid = name.strip_prefix(LOCK_PREFIX)?.strip_suffix(LOCK_SUFFIX)?;
    (!pid.is_empty() && !pid.contains('.')).then_some(pid)
}

/// Whether `name` is a lock file still being created: `<lock name>.tmp.<creator pid>`.
///
/// Its creator locks it before writing it, so, like a lock under its final name, it is
/// stale only once nobody holds it (its creator died before the rename); the
/// stale-directory wipe treats both alike.
pub fn is_lock_tmp(name: &str) -> bool {
    name.rsplit_once(LOCK_TMP_INFIX)
        .is_some_and(|(lock, creator)| {
            lock_pid(lock).is_some()
                && !creator.is_empty()
                && creator.bytes().all(|b| b.is_ascii_digit())
        })
}

/// The state of a lock file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockState {
    /// Someone holds it: the worker lives.
    Held,
    /// Nobody holds it: the worker is gone.
    Released,
    /// There is no lock file (or it cannot be probed).
    Absent,
}

/// Probes the lock of `pid` without blocking and without keeping it.
pub fn probe_lock(dir: &Dir, pid: &str) -> LockState {
    probe_lock_at(dir, &lock_name(pid))
}

/// Probes the lock file `name` (a final or a temporary lock name) without blocking and
/// without keeping it.
pub fn probe_lock_at(dir: &Dir, name: &str) -> LockState {
    let Ok(file) = dir.open_read(name) else {
        return LockState::Absent;
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            LockState::Released
        }
        Err(std::fs::TryLockError::WouldBlock) => LockState::Held,
        Err(std::fs::TryLockError::Error(_)) => LockState::Absent,
    }
}

/// Whether the lock file of `pid` records the pid namespace we are in.
fn lock_in_our_namespace(dir: &Dir, pid: &str) -> bool {
    let (Ok(bytes), Some(ours)) = (dir.read(lock_name(pid)), procfs::own_pid_namespace()) else {
        return false;
    };
    let text = String::from_utf8_lossy(&bytes);
    text.split([',', '{', '}', '\n'])
        .filter_map(|kv| kv.split_once(':'))
        .any(|(k, v)| {
            k.trim().trim_matches('"') == "pidns" && v.trim().trim_matches('"') == ours.to_string()
        })
}

/// One pid's file, as liveness needs it.
#[derive(Clone, Debug)]
pub struct PidFile {
    /// Base name.
    pub name: String,
    /// Identity, with birth time.
    pub id: FileId,
}

/// Judges pids with the evidence `mode` allows.
#[derive(Debug)]
pub struct Liveness {
    mode: Mode,
    namespace_proven: bool,
}

impl Liveness {
    /// A judge for `mode`.
    pub fn new(mode: Mode) -> Liveness {
        Liveness {
            mode,
            namespace_proven: mode == Mode::Proc,
        }
    }

    /// The configured mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether /proc evidence is in use.
    pub fn uses_proc(&self) -> bool {
        self.namespace_proven && matches!(self.mode, Mode::Auto | Mode::Proc)
    }

    /// What evidence is in use, for logs and the liveness-mode self-metric.
    pub fn describe(&self) -> &'static str {
        match (self.mode, self.uses_proc()) {
            (Mode::None, _) => "none",
            (Mode::Lock, _) => "lock",
            (Mode::Proc, _) => "proc",
            (Mode::Auto, true) => "lock+proc",
            (Mode::Auto, false) => "lock",
        }
    }

    /// In `auto` mode, tries to prove that we share the writers' pid namespace; returns
    /// whether it is proven (now or before).
    pub fn prove_namespace(&mut self, dir: &Dir, pids: &[(&str, &[PidFile])]) -> bool {
        if self.namespace_proven || self.mode != Mode::Auto {
            return self.namespace_proven;
        }
        for (pid, files) in pids {
            // One of our own threads maps the files too (we read them): no proof.
            let proven = lock_in_our_namespace(dir, pid)
                || pid_number(pid)
                    .is_some_and(|p| !procfs::is_own_thread(p) && maps_any(p, files) == Some(true));
            if proven {
                tracing::info!(
                    pid,
                    "pid namespace shared with the writers: /proc evidence in use"
                );
                self.namespace_proven = true;
                break;
            }
        }
        self.namespace_proven
    }

    /// Judges the writer of `pid`, whose files are `files`.
    pub fn judge(&self, dir: &Dir, pid: &str, files: &[PidFile]) -> Verdict {
        if self.mode == Mode::None {
            return Verdict::Unknown;
        }
        if matches!(self.mode, Mode::Auto | Mode::Lock) {
            match probe_lock(dir, pid) {
                LockState::Held => return Verdict::Alive,
                LockState::Released => return Verdict::Dead(Evidence::LockReleased),
                LockState::Absent => {}
            }
        }
        if self.uses_proc() {
            return proc_verdict(pid, files);
        }
        Verdict::Unknown
    }
}

fn pid_number(pid: &str) -> Option<u32> {
    pid.parse::<u32>().ok().filter(|&p| p > 0)
}

/// The /proc verdict on `pid` for its `files`.
fn proc_verdict(pid: &str, files: &[PidFile]) -> Verdict {
    let Some(p) = pid_number(pid) else {
        return Verdict::Unknown;
    };
    let stat = match procfs::stat(Some(p)) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Verdict::Dead(Evidence::ProcessGone);
        }
        Err(_) => return Verdict::Unknown,
    };
    if stat.has_exited() {
        return Verdict::Dead(Evidence::ProcessGone);
    }
    match maps_any(p, files) {
        Some(true) => return Verdict::Alive,
        Some(false) => {}
        None => return Verdict::Unknown,
    }
    let born = files.iter().filter_map(|f| f.id.born).min();
    match (stat.start_time(), born) {
        (Some(started), Some(born)) if started > born + REUSE_SLACK => {
            Verdict::Dead(Evidence::PidReused)
        }
        _ => Verdict::Alive,
    }
}

/// Whether process `p` maps one of `files` (by inode, and device or name); `None` when
/// its maps cannot be read.
pub fn maps_any(p: u32, files: &[PidFile]) -> Option<bool> {
    let maps = procfs::maps(p)?;
    Some(maps.iter().any(|m| {
        files.iter().any(|f| {
            let dev = (
                nix::sys::stat::major(f.id.dev),
                nix::sys::stat::minor(f.id.dev),
            );
            f.id.ino == m.ino
                && (m.dev == dev || m.path.rsplit('/').next() == Some(f.name.as_str()))
        })
    }))
}

/// In a worker: takes its liveness lock, exactly as the shim's `hold_worker_lock` does,
/// and returns the open file, which holds the lock until it is closed. Keep it for the
/// process lifetime: the kernel releases the lock however the process ends, which is
/// what lets [`probe_lock`] prove death.
///
/// The file is created and locked under a temporary name (`<final>.tmp.<our pid>`) and
/// only then renamed into place, so a lock file under its final name is always held by
/// its creator until it dies (a probe never catches it between creation and `flock`).
/// Its content is the shim's JSON record: the pid, our pid namespace (so the sidecar can
/// prove it shares it and use /proc evidence), our start time in clock ticks after boot,
/// and the creation time; unknown values are `null`.
///
/// # Errors
/// When the file cannot be created, locked, written or renamed; the temporary file is
/// removed again.
pub fn hold_worker_lock(dir: &Path, pid: u32) -> io::Result<File> {
    use std::io::Write;
    let final_path = lock_path(dir, &pid.to_string());
    let tmp = dir.join(format!(
        "{LOCK_PREFIX}{pid}{LOCK_SUFFIX}{LOCK_TMP_INFIX}{}",
        std::process::id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    let null = || "null".to_owned();
    let start_ticks = procfs::stat(None).ok().map(|s| s.start_ticks);
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    // Laid out as Python's json.dumps does, so both writers' records look alike.
    let record = format!(
        r#"{{"pid": {pid}, "pidns": {}, "start_ticks": {}, "created": {created:?}}}"#,
        procfs::own_pid_namespace().map_or_else(null, |n| n.to_string()),
        start_ticks.map_or_else(null, |t| t.to_string()),
    );
    let taken = file
        .lock()
        .and_then(|()| file.write_all(record.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, &final_path));
    if let Err(err) = taken {
        let _ = std::fs::remove_file(&tmp);
        return Err(err);
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_files(dir: &Path) -> Vec<PidFile> {
        let path = dir.join("counter_1.db");
        std::fs::write(&path, b"x").unwrap();
        let snap = crate::read::read_file(&Dir::open(dir).unwrap(), "counter_1.db", 8).unwrap();
        vec![PidFile {
            name: "counter_1.db".into(),
            id: snap.id,
        }]
    }

    #[test]
    fn lock_names() {
        assert_eq!(lock_pid(".multiproc-exporter-123.lock"), Some("123"));
        assert_eq!(lock_pid(".multiproc-exporter-.lock"), None);
        assert_eq!(lock_pid("counter_1.db"), None);
    }

    #[test]
    fn lock_tmp_names() {
        assert!(is_lock_tmp(".multiproc-exporter-12.lock.tmp.12"));
        assert!(is_lock_tmp(".multiproc-exporter-w1.lock.tmp.99"));
        assert!(!is_lock_tmp(".multiproc-exporter-12.lock"));
        assert!(!is_lock_tmp(".multiproc-exporter-12.lock.tmp."));
        assert!(!is_lock_tmp(".multiproc-exporter-12.lock.tmp.x"));
        assert!(!is_lock_tmp(".multiproc-exporter-.lock.tmp.1"));
        assert!(!is_lock_tmp("counter_1.db.tmp.1"));
    }

    #[test]
    fn worker_lock_is_held_with_the_shims_record() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let file = hold_worker_lock(dir.path(), me).unwrap();
        let pid = me.to_string();
        assert_eq!(
            probe_lock(&Dir::open(dir.path()).unwrap(), &pid),
            LockState::Held
        );
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [format!(".multiproc-exporter-{me}.lock")]);
        let text = std::fs::read_to_string(lock_path(dir.path(), &pid)).unwrap();
        let record: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(record["pid"], me);
        assert_eq!(record["pidns"], procfs::own_pid_namespace().unwrap());
        assert_eq!(
            record["start_ticks"],
            procfs::stat(None).unwrap().start_ticks
        );
        assert!(record["created"].as_f64().unwrap() > 1.5e9);
        assert!(lock_in_our_namespace(&Dir::open(dir.path()).unwrap(), &pid));
        drop(file);
        assert_eq!(
            probe_lock(&Dir::open(dir.path()).unwrap(), &pid),
            LockState::Released
        );
    }

    #[test]
    fn lock_probe_sees_holders() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            probe_lock(&Dir::open(dir.path()).unwrap(), "7"),
            LockState::Absent
        );
        let f = File::create(lock_path(dir.path(), "7")).unwrap();
        f.lock().unwrap();
        // flock locks belong to the open file description: a second open conflicts.
        assert_eq!(
            probe_lock(&Dir::open(dir.path()).unwrap(), "7"),
            LockState::Held
        );
        drop(f);
        assert_eq!(
            probe_lock(&Dir::open(dir.path()).unwrap(), "7"),
            LockState::Released
        );
    }

    #[test]
    fn proc_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let files = own_files(dir.path());
        // A pid that cannot exist.
        assert_eq!(
            proc_verdict("4194304999", &files),
            Verdict::Dead(Evidence::ProcessGone)
        );
        assert_eq!(proc_verdict("not-a-pid", &files), Verdict::Unknown);
        // Our own process started before the file was created and is alive.
        let me = std::process::id().to_string();
        assert_eq!(proc_verdict(&me, &files), Verdict::Alive);
        // A process started after the file was created, not mapping it: reuse.
        std::thread::sleep(Duration::from_millis(120));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let verdict = proc_verdict(&child.id().to_string(), &files);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(verdict, Verdict::Dead(Evidence::PidReused));
        assert_eq!(
            proc_verdict(&child.id().to_string(), &files),
            Verdict::Dead(Evidence::ProcessGone)
        );
    }
}
