//! What the sidecar deletes besides absorbed files: a stale directory's files at start,
//! and the lock files of dead workers; and the one rule, by name, of what is ours.

use super::archive::{ABSORBING_PREFIX, TEMP_PREFIX};
use super::remove_if_present;
use crate::dir::{Dir, FileId, Kind};
use crate::liveness;
use crate::scan;
use crate::testpoint::crash as hook;
use std::collections::BTreeSet;
use std::io;

/// What the stale-directory wipe may do with a file, judged by its name alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletable {
    /// Not ours (the application's, or a name prometheus_client's collector would
    /// reject): never touched.
    No,
    /// Ours: a name of the file grammar (archives included) or one of our hidden files.
    Yes,
    /// A worker lock file, final or still being created: ours once nobody holds it.
    IfLockReleased,
}

/// The stale-wipe rule by name, shared with the shim (its `_deletable` gives the same
/// answers; the integration tests compare them): names [`scan::parse_name`] accepts,
/// names with our hidden prefixes, and worker lock names.
///
/// The grammar is the sidecar's, not just a type prefix: `gauge_1.db` is a bad name the
/// sidecar skips and reports, so nobody may delete it as if it were ours. The directory
/// lock is never deletable: the shim and the sidecar hold it around the wipe itself.
///
/// ```
/// use multiproc_exporter::compact::{Deletable, deletable};
/// assert_eq!(deletable("gauge_livesum_7.db"), Deletable::Yes);
/// assert_eq!(deletable("gauge_1.db"), Deletable::No);
/// assert_eq!(deletable(".multiproc-exporter-7.lock"), Deletable::IfLockReleased);
/// ```
pub fn deletable(name: &str) -> Deletable {
    if matches!(scan::parse_name(name), Ok(Some(_)))
        || name.starts_with(ABSORBING_PREFIX)
        || name.starts_with(TEMP_PREFIX)
    {
        Deletable::Yes
    } else if liveness::lock_pid(name).is_some() || liveness::is_lock_tmp(name) {
        Deletable::IfLockReleased
    } else {
        Deletable::No
    }
}

/// Deletes everything of a stale directory that is ours to delete (see [`deletable`]);
/// returns what it deleted. Never recurses, never follows a symlink (only regular files
/// are removed).
pub(super) fn wipe(dir: &Dir) -> io::Result<Vec<(String, FileId)>> {
    let mut removed = Vec::new();
    for (name, st) in regular_files(dir)? {
        let ours = match deletable(&name) {
            Deletable::No => false,
            Deletable::Yes => true,
            Deletable::IfLockReleased => {
                liveness::probe_lock_at(dir, &name) == liveness::LockState::Released
            }
        };
        if ours {
            remove_if_present(dir, &name)?;
            removed.push((name, st.id));
            hook("wiped_one");
        }
    }
    dir.sync()?;
    Ok(removed)
}

/// The regular files of `dir` with UTF-8 names (no name of ours is anything else), as
/// `statx` sees them now.
pub(super) fn regular_files(dir: &Dir) -> io::Result<Vec<(String, crate::dir::Stat)>> {
    let mut out = Vec::new();
    for entry in dir.entries()? {
        let Ok(name) = entry.name.into_string() else {
            continue;
        };
        match dir.stat(&name) {
            Ok(st) if st.kind == Kind::File => out.push((name, st)),
            _ => {}
        }
    }
    Ok(out)
}

/// Removes the lock files of dead pids that have no file left in the directory.
pub(super) fn remove_released_locks(dir: &Dir, dead: &BTreeSet<String>) -> io::Result<usize> {
    let listing = scan::scan(dir).map_err(io::Error::other)?;
    let with_files: BTreeSet<&str> = listing.files.iter().map(|f| f.pid.as_str()).collect();
    let mut removed = 0;
    for pid in dead {
        if with_files.contains(pid.as_str()) {
            continue;
        }
        let name = liveness::lock_name(pid);
        // Hold the lock while deleting, and delete only the inode we hold: a new worker
        // with this pid renames a fresh, held lock file into place.
        let Ok(f) = dir.open_read(&name) else {
            continue;
        };
        if f.try_lock().is_err() {
            continue;
        }
        let same = match (crate::dir::stat_file(&f), dir.stat(&name)) {
            (Ok(a), Ok(b)) => a.id == b.id,
            _ => false,
        };
        if same {
            remove_if_present(dir, &name)?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn deletable_follows_the_grammar_of_the_scan() {
        use Deletable::{IfLockReleased, No, Yes};
        for (name, want) in [
            ("counter_1.db", Yes),
            ("untyped_1.db", Yes),
            ("gauge_all_1.db", Yes),
            ("gauge_livesum_1.db", Yes),
            ("gauge_weird_1.db", Yes),
            ("counter_archive.db", Yes),
            ("gauge_max_archive.db", Yes),
            (".mpe-tmp.counter_archive.db", Yes),
            (".mpe-absorbing.counter_1.db", Yes),
            // What prometheus_client's collector would reject, so not ours either.
            ("gauge_1.db", No),
            ("info_1.db", No),
            ("foo.db", No),
            (".counter_1.db", No),
            ("counter_1.db.bak", No),
            (".multiproc-exporter-1.lock", IfLockReleased),
            (".multiproc-exporter-1.lock.tmp.1", IfLockReleased),
            (super::super::DIR_LOCK, No),
            (".multiproc-exporter-.lock", No),
        ] {
            assert_eq!(deletable(name), want, "{name}");
        }
    }

    #[test]
    fn wipe_deletes_lock_files_only_when_released() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let held = fs::File::create(d.join(".multiproc-exporter-1.lock.tmp.1")).unwrap();
        held.lock().unwrap();
        for name in [
            ".multiproc-exporter-2.lock.tmp.2",
            ".multiproc-exporter-3.lock",
            "counter_3.db",
            "gauge_1.db",
        ] {
            fs::write(d.join(name), b"x").unwrap();
        }
        assert_eq!(wipe(&Dir::open(d).unwrap()).unwrap().len(), 3);
        let mut left: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [".multiproc-exporter-1.lock.tmp.1", "gauge_1.db"]);
    }
}
