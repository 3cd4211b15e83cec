//! The directory being served, held open: every file operation of the sidecar is
//! relative to one descriptor (`openat`, `statx`, `renameat`, `unlinkat`), so swapping
//! the path for a symbolic link, or renaming a parent, cannot redirect a read or a
//! deletion into another directory.
//!
//! The directory is opened with `O_DIRECTORY|O_NOFOLLOW`: a symbolic link as the last
//! component is refused, parents may be links (Debian's `/var/run` is one). The path is
//! resolved again only when the held directory was deleted or the path now names another
//! directory ([`Held::get`]): that is a new directory, and readers take it as a wipe.
//! Every name passed to these functions is a single component (never `/` or `..`, which
//! a listing cannot return); file names are bytes, as the kernel has them.
//!
//! Why `rustix`: safe wrappers of the `*at` calls and of `statx` (the birth time, which
//! tells a reused inode number from the file that had it), already in the dependency
//! tree through `tempfile`.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// The identity of a file's content: device, inode and birth time. An inode number
/// alone can be reused by a new file after the old one is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Birth time, where the filesystem records one.
    pub born: Option<SystemTime>,
}

impl FileId {
    /// The identity of the file `meta` describes.
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            born: meta.created().ok(),
        }
    }
}

/// The directory as a whole cannot be used.
#[derive(Debug, Error)]
pub enum ScanError {
    /// The directory does not exist (yet).
    #[error("directory {} does not exist", path.display())]
    Missing {
        /// The directory.
        path: PathBuf,
    },
    /// The path exists but is not a directory.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The path is a symbolic link: never followed, it could lead the sidecar (which
    /// deletes dead writers' files) into another directory.
    #[error("{} is a symbolic link; the directory itself must be named (links are not followed)", path.display())]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// The directory could not be opened or listed.
    #[error("cannot list directory {}: {source}", path.display())]
    Unreadable {
        /// The directory.
        path: PathBuf,
        /// The operating system's answer.
        source: io::Error,
    },
}

/// What a file is, as `statx` says without following a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A directory.
    Dir,
    /// A FIFO, socket or device.
    Other,
}

/// One `statx` of a name in the directory.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    /// Which file it is.
    pub id: FileId,
    /// What it is.
    pub kind: Kind,
    /// Its size in bytes.
    pub size: u64,
    /// Its number of names (0 once deleted, for a held descriptor).
    pub nlink: u32,
}

/// One name of a listing.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The base name, as bytes.
    pub name: OsString,
    /// What the listing says it is (`None` when the filesystem does not say).
    pub kind: Option<Kind>,
}

/// An open directory.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    id: FileId,
}

fn kind_of(t: FileType) -> Kind {
    match t {
        FileType::RegularFile => Kind::File,
        FileType::Symlink => Kind::Symlink,
        FileType::Directory => Kind::Dir,
        _ => Kind::Other,
    }
}

/// The `FileId` of a `statx` result; the same as [`FileId::of`] gives for the metadata
/// of the same file (checked by a test).
fn stat_of(x: &rustix::fs::Statx) -> Stat {
    let born = x.stx_mask & StatxFlags::BTIME.bits() != 0;
    let t = x.stx_btime;
    let born: Option<SystemTime> = (born && t.tv_sec >= 0)
        .then(|| UNIX_EPOCH + Duration::new(t.tv_sec.unsigned_abs(), t.tv_nsec));
    Stat {
        id: FileId {
            dev: rustix::fs::makedev(x.stx_dev_major, x.stx_dev_minor),
            ino: x.stx_ino,
            born,
        },
        kind: kind_of(FileType::from_raw_mode(u32::from(x.stx_mode))),
        size: x.stx_size,
        nlink: x.stx_nlink,
    }
}

const STAT_MASK: StatxFlags = StatxFlags::BASIC_STATS.union(StatxFlags::BTIME);

/// `statx` of `name` relative to `fd` (the descriptor itself for an empty name).
fn statx_at(fd: impl rustix::fd::AsFd, name: &OsStr) -> io::Result<Stat> {
    let flags = if name.is_empty() {
        AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW
    } else {
        AtFlags::SYMLINK_NOFOLLOW
    };
    Ok(stat_of(&rustix::fs::statx(fd, name, flags, STAT_MASK)?))
}

/// The `Stat` of an open file.
pub fn stat_file(file: &File) -> io::Result<Stat> {
    statx_at(file, OsStr::new(""))
}

impl Dir {
    /// Opens the directory `path` itself (a symbolic link there is refused).
    ///
    /// # Errors
    /// [`ScanError::Missing`], [`ScanError::Symlink`], [`ScanError::NotADirectory`] or
    /// [`ScanError::Unreadable`].
    pub fn open(path: &Path) -> Result<Dir, ScanError> {
        let p = || path.to_owned();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) => {
                // ENOTDIR also answers a symlink with O_DIRECTORY|O_NOFOLLOW: look.
                let linked = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink());
                return Err(match e {
                    _ if linked => ScanError::Symlink { path: p() },
                    rustix::io::Errno::NOENT => ScanError::Missing { path: p() },
                    rustix::io::Errno::NOTDIR => ScanError::NotADirectory { path: p() },
                    rustix::io::Errno::LOOP => ScanError::Symlink { path: p() },
                    e => ScanError::Unreadable {
                        path: p(),
                        source: e.into(),
                    },
                });
            }
        };
        let id = statx_at(&fd, OsStr::new(""))
            .map_err(|source| ScanError::Unreadable { path: p(), source })?
            .id;
        Ok(Dir {
            fd,
            path: path.to_owned(),
            id,
        })
    }

    /// The path it was opened by (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which directory this is.
    pub fn id(&self) -> FileId {
        self.id
    }

    /// The path of `name` in it, for messages only.
    pub fn join(&self, name: impl AsRef<OsStr>) -> PathBuf {
        self.path.join(name.as_ref())
    }

    /// Every name in the directory but `.` and `..`.
    ///
    /// # Errors
    /// When the directory cannot be read.
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.fd)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let kind = match entry.file_type() {
                FileType::Unknown => None,
                t => Some(kind_of(t)),
            };
            out.push(Entry {
                name: OsStr::from_bytes(name).to_owned(),
                kind,
            });
        }
        Ok(out)
    }

    /// `statx` of `name`, not following a link.
    ///
    /// # Errors
    /// As `statx` (`NotFound` when there is no such name).
    pub fn stat(&self, name: impl AsRef<OsStr>) -> io::Result<Stat> {
        statx_at(&self.fd, name.as_ref())
    }

    /// Whether `name` exists (as anything, a link included).
    pub fn exists(&self, name: impl AsRef<OsStr>) -> bool {
        self.stat(name).is_ok()
    }

    fn open_with(&self, name: &OsStr, flags: OFlags) -> io::Result<File> {
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(0o644))?;
        Ok(File::from(fd))
    }

    /// Opens `name` for reading: never through a link, never blocking (a FIFO named
    /// `x.db` must not hang a pass).
    ///
    /// # Errors
    /// As `openat` (`ELOOP` for a link).
    pub fn open_read(&self, name: impl AsRef<OsStr>) -> io::Result<File> {
        self.open_with(name.as_ref(), OFlags::RDONLY | OFlags::NONBLOCK)
    }

    /// Opens or creates `name` for reading and writing, keeping its content.
    ///
    /// # Errors
    /// As `openat`.
    pub fn open_rw(&self, name: impl AsRef<OsStr>) -> io::Result<File> {
        self.open_with(name.as_ref(), OFlags::RDWR | OFlags::CREATE)
    }

    /// Creates (or truncates) `name` for writing.
    ///
    /// # Errors
    /// As `openat`.
    pub fn create(&self, name: impl AsRef<OsStr>) -> io::Result<File> {
        self.open_with(
            name.as_ref(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC,
        )
    }

    /// Reads the whole of `name` (small files: lock records, archives).
    ///
    /// # Errors
    /// As [`Dir::open_read`] and `read`.
    pub fn read(&self, name: impl AsRef<OsStr>) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let mut out = Vec::new();
        self.open_read(name)?.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Renames `from` to `to` within the directory.
    ///
    /// # Errors
    /// As `renameat`.
    pub fn rename(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> io::Result<()> {
        Ok(rustix::fs::renameat(
            &self.fd,
            from.as_ref(),
            &self.fd,
            to.as_ref(),
        )?)
    }

    /// Removes the name `name` (never a directory; a link is removed, not followed).
    ///
    /// # Errors
    /// As `unlinkat`.
    pub fn remove(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(
            &self.fd,
            name.as_ref(),
            AtFlags::empty(),
        )?)
    }

    /// Makes renames and deletions durable.
    ///
    /// # Errors
    /// As `fsync`.
    pub fn sync(&self) -> io::Result<()> {
        Ok(rustix::fs::fsync(&self.fd)?)
    }

    /// Whether we may create and remove files in it.
    pub fn writable(&self) -> bool {
        rustix::fs::accessat(
            &self.fd,
            ".",
            rustix::fs::Access::WRITE_OK,
            AtFlags::empty(),
        )
        .is_ok()
    }

    /// Bytes free for us on its filesystem.
    ///
    /// # Errors
    /// As `fstatvfs`.
    pub fn free_bytes(&self) -> io::Result<u64> {
        let st = rustix::fs::fstatvfs(&self.fd)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }
}

/// A directory path and the directory it names, opened on first use and again only when
/// the path comes to name another one.
#[derive(Debug)]
pub struct Held {
    path: PathBuf,
    dir: Option<Arc<Dir>>,
    /// The directory held before, once one was.
    last: Option<FileId>,
}

impl Held {
    /// The directory at `path`; nothing is opened yet.
    pub fn new(path: impl Into<PathBuf>) -> Held {
        Held {
            path: path.into(),
            dir: None,
            last: None,
        }
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory, and whether it is another one than the last call returned (the
    /// held one was deleted, or the path names another directory): for readers, a wipe.
    ///
    /// # Errors
    /// When the path names no usable directory now (missing, a link, not a directory).
    pub fn get(&mut self) -> Result<(Arc<Dir>, bool), ScanError> {
        let current = std::fs::symlink_metadata(&self.path).map(|m| FileId::of(&m));
        let keep = match (&self.dir, &current) {
            (Some(d), Ok(id)) => d.id.dev == id.dev && d.id.ino == id.ino && self.linked(d),
            _ => false,
        };
        if !keep {
            self.dir = None;
            let dir = Dir::open(&self.path)?;
            let replaced = self.last.is_some_and(|l| l != dir.id);
            self.last = Some(dir.id);
            let dir = Arc::new(dir);
            self.dir = Some(dir.clone());
            return Ok((dir, replaced));
        }
        let dir = self.dir.clone().ok_or_else(|| ScanError::Missing {
            path: self.path.clone(),
        })?;
        Ok((dir, false))
    }

    /// Whether the held directory still has a name (it was not deleted).
    fn linked(&self, d: &Dir) -> bool {
        statx_at(&d.fd, OsStr::new("")).is_ok_and(|s| s.nlink > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statx_ids_are_the_ids_of_std_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("counter_1.db"), b"x").unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let meta = std::fs::symlink_metadata(tmp.path().join("counter_1.db")).unwrap();
        let st = dir.stat("counter_1.db").unwrap();
        assert_eq!(st.id, FileId::of(&meta));
        assert_eq!((st.kind, st.size), (Kind::File, 1));
        let file = dir.open_read("counter_1.db").unwrap();
        assert_eq!(stat_file(&file).unwrap().id, st.id);
        assert_eq!(
            dir.id(),
            FileId::of(&std::fs::metadata(tmp.path()).unwrap())
        );
    }

    #[test]
    fn a_link_is_refused_as_the_directory_and_as_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, tmp.path().join("link")).unwrap();
        assert!(matches!(
            Dir::open(&tmp.path().join("link")),
            Err(ScanError::Symlink { .. })
        ));
        std::fs::write(real.join("x"), b"").unwrap();
        assert!(matches!(
            Dir::open(&real.join("x")),
            Err(ScanError::NotADirectory { .. })
        ));
        assert!(matches!(
            Dir::open(&tmp.path().join("none")),
            Err(ScanError::Missing { .. })
        ));
        let dir = Dir::open(&real).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", real.join("counter_1.db")).unwrap();
        assert!(dir.open_read("counter_1.db").is_err());
        assert_eq!(dir.stat("counter_1.db").unwrap().kind, Kind::Symlink);
    }

    #[test]
    fn operations_stay_in_the_held_directory_when_the_path_moves() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("counter_1.db"), b"1").unwrap();
        let mut held = Held::new(&a);
        assert!(!held.get().unwrap().1);
        // The path now names another directory holding the same name.
        std::fs::rename(&a, tmp.path().join("moved")).unwrap();
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("counter_1.db"), b"2").unwrap();
        let (dir, replaced) = held.get().unwrap();
        assert!(replaced);
        assert_eq!(dir.read("counter_1.db").unwrap(), b"2");
        // Deleted and not recreated: missing; recreated: another directory.
        std::fs::remove_dir_all(&a).unwrap();
        assert!(matches!(held.get(), Err(ScanError::Missing { .. })));
        std::fs::create_dir(&a).unwrap();
        assert!(held.get().unwrap().1);
        assert!(!held.get().unwrap().1);
    }
}
