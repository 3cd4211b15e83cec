//! The filesystem around a case: copies, modes, mounts, a full volume, and the sentinel
//! that proves nothing outside the directory changed.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Copies the regular `*.db` files of `from` (not hidden, not links) into `to`.
pub fn copy_db_files(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if e.file_type().unwrap().is_file() && name.ends_with(".db") && !name.starts_with('.') {
            fs::copy(e.path(), to.join(&name)).unwrap();
            set_mode(&to.join(&name), 0o644);
        }
    }
}

pub fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub fn mount(args: &[&str], target: &Path) -> bool {
    Command::new("mount")
        .args(args)
        .arg(target)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fills the volume of `path` until a write fails.
pub fn fill(path: &Path) {
    let mut f = fs::File::create(path).unwrap();
    let chunk = vec![1u8; 64 * 1024];
    while f.write_all(&chunk).and_then(|()| f.flush()).is_ok() {}
    let small = [1u8; 512];
    while f.write_all(&small).and_then(|()| f.flush()).is_ok() {}
}

/// Mount points to undo at the end (lazily: a process may still hold one).
pub struct Mounts(pub Vec<PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

/// What the outside of the directory looked like: the names next to it and every file
/// under `outside`, to the byte, with its inode, mode and times.
pub struct Sentinel {
    base: PathBuf,
    names: Vec<String>,
    files: BTreeMap<PathBuf, Stamp>,
}

#[derive(PartialEq, Eq, Debug)]
struct Stamp {
    len: u64,
    ino: u64,
    mode: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
    sum: u64,
}

impl Stamp {
    fn of(p: &Path) -> Stamp {
        let m = fs::symlink_metadata(p).unwrap();
        let bytes = if m.is_file() {
            fs::read(p).unwrap()
        } else {
            Vec::new()
        };
        Stamp {
            len: m.len(),
            ino: m.ino(),
            mode: m.mode(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            sum: super::bytes::fnv(&bytes),
        }
    }
}

impl Sentinel {
    pub fn record(base: &Path) -> Sentinel {
        let mut files = BTreeMap::new();
        for e in fs::read_dir(base.join("outside")).unwrap() {
            let p = e.unwrap().path();
            files.insert(p.clone(), Stamp::of(&p));
        }
        let filler = base.join("filler");
        if filler.exists() {
            files.insert(filler.clone(), Stamp::of(&filler));
        }
        Sentinel {
            base: base.to_path_buf(),
            names: listing(base),
            files,
        }
    }

    pub fn check(&self) {
        assert_eq!(
            listing(&self.base),
            self.names,
            "names next to the directory changed"
        );
        let outside = self.base.join("outside");
        let now: Vec<PathBuf> = fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        for p in &now {
            assert!(self.files.contains_key(p), "new file outside: {p:?}");
        }
        for (p, stamp) in &self.files {
            assert!(p.exists(), "deleted outside the directory: {p:?}");
            assert_eq!(&Stamp::of(p), stamp, "changed outside the directory: {p:?}");
        }
    }
}

pub fn listing(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}
