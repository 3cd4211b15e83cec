//! Reading files through a shared mapping: the crate's only `unsafe`.
//!
//! Why map: a steady-state pass needs only the value doubles, scattered through the used
//! part of every file (at 64 workers x 10,000 series, 640,000 values in 76 MB). Copying
//! the used bytes with `pread` costs most of a pass; through a mapping kept between passes
//! a pass touches one cache line per value and copies nothing. (Measured in
//! docs/benchmarks.md.)
//!
//! The rules that keep this sound, from the design:
//! - the file size is checked (`fstat`) before every pass over a file, and nothing past
//!   `min(used, size)` is ever touched: a page beyond the end of a file raises SIGBUS,
//!   and on tmpfs touching the sparse tail would allocate memory;
//! - no Rust reference is ever formed over the mapped bytes, because other processes
//!   write them: keys and the new tail are copied out with raw-pointer copies and parsed
//!   from the copy, and values are loaded with volatile reads;
//! - prometheus_client only ever grows files; if a file shrinks anyway, the mapping is
//!   dropped and made again for the new size before anything is read.
//!
//! What remains is a truncation by someone else between the size check and the reads of
//! one pass, which would raise SIGBUS; prometheus_client never does that, and neither do
//! we (our own rewrites replace files by rename, which leaves the mapped inode intact).

use super::{FileId, ReadError, open, read_at_most, read_header};
use crate::format::HEADER_LEN;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An open file and its current mapping.
#[derive(Debug)]
pub struct MappedFile {
    file: File,
    map: Option<memmap2::Mmap>,
    id: FileId,
}

/// What one pass may read of a mapped file.
#[derive(Debug)]
pub struct View<'a> {
    file: &'a File,
    map: Option<&'a memmap2::Mmap>,
    /// Readable length: `min(used, size, limit, mapped)`, at least the header when
    /// there is one.
    pub len: usize,
    /// The header's `used`, if the file has a header.
    pub used: Option<i32>,
    /// The file size checked for this pass.
    pub size: u64,
    /// When the file's inode last changed (its creation, for a file never written).
    pub changed: Option<SystemTime>,
}

impl MappedFile {
    /// Opens `path` (no symlinks, regular files only); maps nothing yet.
    ///
    /// # Errors
    /// As [`super::read_file`].
    pub fn open(path: &Path) -> Result<MappedFile, ReadError> {
        let file = open(path)?;
        let meta = file.metadata().map_err(ReadError::Io)?;
        if !meta.file_type().is_file() {
            return Err(ReadError::NotRegular);
        }
        Ok(MappedFile {
            file,
            map: None,
            id: FileId::of(&meta),
        })
    }

    /// Which file is open (a path may since name another one).
    pub fn id(&self) -> FileId {
        self.id
    }

    /// Checks the size, reads `used`, and (re)maps what this pass may read.
    ///
    /// # Errors
    /// When the file cannot be examined or mapped.
    pub fn refresh(&mut self, limit: u64) -> Result<View<'_>, ReadError> {
        let meta = self.file.metadata().map_err(ReadError::Io)?;
        let size = meta.len();
        let changed = u64::try_from(meta.ctime())
            .ok()
            .map(|s| UNIX_EPOCH + Duration::new(s, u32::try_from(meta.ctime_nsec()).unwrap_or(0)));
        let header = read_header(&self.file, size, limit)?;
        let Some((used, want)) = header.used else {
            self.map = None;
            return Ok(View {
                file: &self.file,
                map: None,
                len: header.got,
                used: None,
                size,
                changed,
            });
        };
        let mapped = self.map.as_ref().map_or(0, |m| m.len());
        // Map again when the file shrank under the mapping (never touch pages past the
        // end) or when the readable part grew beyond it. Map the whole file (up to the
        // limit): it grows by doubling, so remaps are rare; pages past `used` are never
        // touched.
        if (mapped as u64) > size || mapped < want {
            self.map = None;
            let len = usize::try_from(size.min(limit)).unwrap_or(usize::MAX);
            // SAFETY: the mapping is read-only and shared, `len` is within the file size
            // just checked, and no reference to its bytes is ever created (see the module
            // documentation): reads go through `copy_out` and `value_at`, which check
            // bounds against `View::len` and use raw-pointer copies and volatile loads,
            // because other processes change these bytes while we read them.
            let map = unsafe { memmap2::MmapOptions::new().len(len).map(&self.file) }
                .map_err(ReadError::Io)?;
            self.map = Some(map);
        }
        let map = self.map.as_ref();
        let len = want.min(map.map_or(0, |m| m.len()));
        Ok(View {
            file: &self.file,
            map,
            len,
            used: Some(used),
            size,
            changed,
        })
    }
}

impl View<'_> {
    /// Copies the header and `[from, len)` into a buffer `len` bytes long, at the same
    /// offsets; the bytes in between stay zero (untouched pages). Parsing works on this
    /// copy. It is read with `pread`, not through the mapping: a kernel copy takes no
    /// page faults, which matters for the first, full read of a file.
    ///
    /// # Errors
    /// When `pread` fails (an I/O error on the file): nothing of this read is usable.
    pub fn copy_out(&self, from: usize) -> Result<Vec<u8>, ReadError> {
        let to = self.len;
        let mut buf = vec![0u8; to];
        let header = HEADER_LEN.min(to);
        let from = from.max(header).min(to);
        read_at_most(self.file, &mut buf[..header], 0).map_err(ReadError::Io)?;
        read_at_most(self.file, &mut buf[from..], from as u64).map_err(ReadError::Io)?;
        Ok(buf)
    }

    /// Loads the `(value, timestamp)` pair at `offset`, if it lies within the readable
    /// length.
    pub fn value_at(&self, offset: usize) -> Option<(f64, f64)> {
        let map = self.map?;
        let end = offset.checked_add(16)?;
        if end > self.len || end > map.len() || !offset.is_multiple_of(8) {
            return None;
        }
        // SAFETY: `offset..offset + 16` is within the readable length (and so within the
        // mapping and the file size checked for this pass) and 8-byte aligned (mappings
        // are page aligned, entries put values at multiples of 8). Volatile loads read
        // what a concurrent writer stored, never a value the compiler assumed.
        let (value, timestamp) = unsafe {
            let p = map.as_ptr().add(offset).cast::<u64>();
            (
                std::ptr::read_volatile(p),
                std::ptr::read_volatile(p.add(1)),
            )
        };
        Some((f64::from_bits(value), f64::from_bits(timestamp)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::DbWriter;

    #[test]
    fn reads_values_and_follows_growth_and_shrinking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counter_1.db");
        let mut w = DbWriter::open(&path).unwrap();
        w.set("[\"a\", \"a_total\", {}, \"\"]", 1.5, 0.0).unwrap();
        let mut m = MappedFile::open(&path).unwrap();
        let v = m.refresh(u64::MAX).unwrap();
        let used = HEADER_LEN + crate::format::entry_len(25, 16);
        assert_eq!(v.used, Some(used as i32));
        assert_eq!(v.len, used);
        let bytes = v.copy_out(HEADER_LEN).unwrap();
        assert_eq!(&bytes[..4], &(used as i32).to_ne_bytes());
        let e = crate::format::walk(&bytes, 8, bytes.len(), 16)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(v.value_at(e.value_offset), Some((1.5, 0.0)));
        assert_eq!(v.value_at(e.value_offset + 8), None, "past used");
        // A value changed through the writer is seen without remapping.
        w.set("[\"a\", \"a_total\", {}, \"\"]", 2.5, 0.0).unwrap();
        let v = m.refresh(u64::MAX).unwrap();
        assert_eq!(v.value_at(e.value_offset), Some((2.5, 0.0)));
        // Growth past the mapping remaps.
        let big = format!(
            "[\"a\", \"a_total\", {{\"k\": \"{}\"}}, \"\"]",
            "x".repeat(70_000)
        );
        w.set(&big, 3.0, 0.0).unwrap();
        let v = m.refresh(u64::MAX).unwrap();
        assert!(v.len > 70_000);
        // A file truncated by someone else: remapped to the new size before any read.
        drop(w);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(1000)
            .unwrap();
        let v = m.refresh(u64::MAX).unwrap();
        assert_eq!(v.size, 1000);
        assert!(v.len <= 1000);
        assert_eq!(v.value_at(e.value_offset), Some((2.5, 0.0)));
        assert_eq!(v.value_at(2000), None);
    }

    /// Issue 8: a failed `pread` is an error of the read (unreadable), not a short file.
    #[test]
    fn test_issue_8_a_failed_pread_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counter_1.db");
        std::fs::write(&path, [0u8; 64]).unwrap();
        // A descriptor open for writing only: every pread fails with EBADF.
        let write_only = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let view = View {
            file: &write_only,
            map: None,
            len: 64,
            used: Some(64),
            size: 64,
            changed: None,
        };
        let err = view.copy_out(HEADER_LEN).unwrap_err();
        let problem = crate::model::FileProblem::from(err);
        assert_eq!(problem.reason, crate::model::Reason::Unreadable);
    }

    #[test]
    fn short_files_have_no_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counter_1.db");
        std::fs::write(&path, b"abc").unwrap();
        let mut m = MappedFile::open(&path).unwrap();
        let v = m.refresh(u64::MAX).unwrap();
        assert_eq!((v.len, v.used), (3, None));
        assert_eq!(v.value_at(0), None);
    }
}
