//! Stage 2: bring the bytes `[0, min(used, size))` of one file into memory.
//!
//! Writers grow files with `truncate` and change them in place while we read, so this
//! stage trusts nothing: it opens without following symlinks and without blocking (a
//! FIFO named `x.db` must not hang a scrape), checks that it holds a regular file, reads
//! the header, and then reads no further than both `used` and the file size allow, with
//! `pread`, never through a mapping (a file truncated under a mapping raises SIGBUS).
//! Bytes past `used` are never touched: on tmpfs the sparse tail costs nothing until
//! someone faults it in.
//!
//! Bad input: everything is reported as a [`ReadError`] for this file alone.

use crate::dir::{Dir, FileId};
use crate::format::{self, HEADER_LEN};
use crate::model::{FileProblem, Reason};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use thiserror::Error;

#[allow(unsafe_code)]
pub mod mmap;

/// Default bound on the bytes read from one file (prometheus_client's own limit is
/// 2 GiB, the range of `used`); protects memory from a hostile or broken file.
pub const DEFAULT_FILE_LIMIT: u64 = 1 << 30;

/// Default bound on the bytes indexed from all files of a directory together: memory
/// follows what is indexed (about 8x the file bytes at worst, for the shortest entries),
/// so many files each under the per-file bound cannot add up without bound either.
pub const DEFAULT_DIR_LIMIT: u64 = 4 << 30;

/// Reading one file failed; nothing of it can be used.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The file disappeared before it could be opened.
    #[error("the file vanished before it could be read")]
    Vanished,
    /// A symlink appeared where the listing saw a file.
    #[error("symbolic links are not followed")]
    Symlink,
    /// A FIFO, socket, device or directory.
    #[error("not a regular file")]
    NotRegular,
    /// The operating system refused to open or read it.
    #[error("cannot read the file: {0}")]
    Io(#[source] io::Error),
}

impl ReadError {
    /// The counted category.
    pub fn reason(&self) -> Reason {
        match self {
            ReadError::Vanished => Reason::Vanished,
            ReadError::Symlink => Reason::Symlink,
            ReadError::NotRegular => Reason::NotRegular,
            ReadError::Io(_) => Reason::Unreadable,
        }
    }
}

impl From<ReadError> for FileProblem {
    fn from(err: ReadError) -> FileProblem {
        FileProblem::new(err.reason(), err.to_string())
    }
}

/// What one read of a file saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// `[0, min(used, size, limit))`; shorter than 8 bytes only for an empty file.
    pub bytes: Vec<u8>,
    /// The file size at the time of the read.
    pub size: u64,
    /// The header's `used`, if the file is long enough to have a header.
    pub used: Option<i32>,
    /// Which file this was.
    pub id: FileId,
}

/// Reads the used part of the file `name` of `dir`, at most `limit` bytes.
///
/// # Errors
/// When the file cannot be opened or read at all; a short or odd file is not an error
/// here (the parse stage judges the bytes).
pub fn read_file(dir: &Dir, name: impl AsRef<OsStr>, limit: u64) -> Result<Snapshot, ReadError> {
    let file = open(dir, name.as_ref())?;
    read_open(&file, limit)
}

pub(crate) fn open(dir: &Dir, name: &OsStr) -> Result<File, ReadError> {
    match dir.open_read(name) {
        Ok(file) => Ok(file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ReadError::Vanished),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(ReadError::Symlink),
        Err(e) => Err(ReadError::Io(e)),
    }
}

/// Reads an already opened file (kept open between scrapes by later stages).
///
/// # Errors
/// As [`read_file`].
pub fn read_open(file: &File, limit: u64) -> Result<Snapshot, ReadError> {
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular);
    }
    let size = meta.len();
    let id = FileId::of(&meta);
    let h = read_header(file, size, limit)?;
    let Some((used, want)) = h.used else {
        return Ok(Snapshot {
            bytes: h.bytes[..h.got].to_vec(),
            size,
            used: None,
            id,
        });
    };
    let header = h.bytes;
    // Never allocate from the header's claim alone: stop at the first hole.
    let want = data_end(file, HEADER_LEN, want).max(HEADER_LEN);
    let mut bytes = vec![0u8; want];
    bytes[..HEADER_LEN].copy_from_slice(&header);
    let got = HEADER_LEN
        + read_at_most(file, &mut bytes[HEADER_LEN..], HEADER_LEN as u64).map_err(ReadError::Io)?;
    // A file truncated between fstat and pread reads short: keep what exists.
    bytes.truncate(got);
    Ok(Snapshot {
        bytes,
        size,
        used: Some(used),
        id,
    })
}

/// What the first bytes of a file say.
pub(crate) struct Header {
    /// The bytes read (`got` of them are real).
    pub(crate) bytes: [u8; HEADER_LEN],
    /// How many header bytes the file has.
    pub(crate) got: usize,
    /// With a whole header: `used`, and the readable length `min(used, size, limit)`
    /// (at least the header).
    pub(crate) used: Option<(i32, usize)>,
}

/// Reads the header of `file`, whose size is `size`.
pub(crate) fn read_header(file: &File, size: u64, limit: u64) -> Result<Header, ReadError> {
    let mut bytes = [0u8; HEADER_LEN];
    let got = read_at_most(file, &mut bytes, 0).map_err(ReadError::Io)?;
    if got < HEADER_LEN {
        return Ok(Header {
            bytes,
            got,
            used: None,
        });
    }
    let used = format::used(&bytes).unwrap_or(0);
    let want = readable_len(used, size, limit);
    Ok(Header {
        bytes,
        got,
        used: Some((used, want)),
    })
}

/// How many bytes of a file with a whole header are read: `min(used, size, limit)`, and
/// at least the header (a negative `used` counts as zero). Public and pure so that the
/// fuzz targets in `fuzz/` hand the parser exactly the bytes a read of the same content
/// would, without a file per input.
pub fn readable_len(used: i32, size: u64, limit: u64) -> usize {
    let want = u64::try_from(used.max(0))
        .unwrap_or(0)
        .min(size)
        .min(limit)
        .max(HEADER_LEN as u64);
    usize::try_from(want).unwrap_or(usize::MAX)
}

/// Where the data from `from` ends, at most `len`: the first hole at or after `from`.
/// prometheus_client writes every byte below `used`, so a hole below it means a header
/// claims what the file does not hold; reading it would cost memory for nothing.
pub(crate) fn data_end(file: &File, from: usize, len: usize) -> usize {
    let Ok(from_off) = i64::try_from(from) else {
        return len;
    };
    match nix::unistd::lseek(file, from_off, nix::unistd::Whence::SeekHole) {
        Ok(hole) => usize::try_from(hole).map_or(len, |h| h.clamp(from.min(len), len)),
        Err(_) => len,
    }
}

/// `pread` until `buf` is full or the file ends; returns the bytes read.
pub(crate) fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_path(path: &std::path::Path, limit: u64) -> Result<Snapshot, ReadError> {
        let dir = Dir::open(path.parent().unwrap()).unwrap();
        read_file(&dir, path.file_name().unwrap(), limit)
    }

    #[test]
    fn reads_only_up_to_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counter_1.db");
        let mut content = vec![0u8; 4096];
        content[..4].copy_from_slice(&16i32.to_ne_bytes());
        content[8..16].copy_from_slice(b"ABCDEFGH");
        content[16..24].copy_from_slice(b"IJKLMNOP");
        File::create(&path).unwrap().write_all(&content).unwrap();
        let snap = read_path(&path, u64::MAX).unwrap();
        assert_eq!(snap.bytes.len(), 16);
        assert_eq!(snap.used, Some(16));
        assert_eq!(snap.size, 4096);
    }

    #[test]
    fn used_beyond_the_end_reads_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counter_1.db");
        let mut content = vec![0u8; 24];
        content[..4].copy_from_slice(&1000i32.to_ne_bytes());
        File::create(&path).unwrap().write_all(&content).unwrap();
        let snap = read_path(&path, u64::MAX).unwrap();
        assert_eq!(snap.bytes.len(), 24);
        assert_eq!(snap.used, Some(1000));
    }

    #[test]
    fn refuses_symlinks_and_fifos() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        File::create(&target).unwrap();
        let link = dir.path().join("counter_1.db");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(read_path(&link, 1 << 20), Err(ReadError::Symlink)));
        let fifo = dir.path().join("counter_2.db");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert!(matches!(
            read_path(&fifo, 1 << 20),
            Err(ReadError::NotRegular)
        ));
        assert!(matches!(
            read_path(&dir.path().join("gone.db"), 1),
            Err(ReadError::Vanished)
        ));
    }

    #[test]
    fn zero_length_file_has_no_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counter_1.db");
        File::create(&path).unwrap();
        let snap = read_path(&path, 1 << 20).unwrap();
        assert_eq!((snap.bytes.len(), snap.used), (0, None));
    }
}
