//! Writes files in prometheus_client's multiprocess format.
//!
//! The sidecar needs to write the format itself: the built-in demo pool writes through
//! it, compaction writes archive files that prometheus_client's own collector must still
//! read, and tests and benchmarks build directories with it. It follows the writer
//! protocol of prometheus_client's `MmapedDict`: a new file is 64 KiB, grows by doubling,
//! a new entry is written whole before `used` is advanced, and values are updated in place.
//! It uses `pwrite` rather than a mapping, so a full disk is an error, not a SIGBUS.

use crate::format::{self, HEADER_LEN, VALUE_LEN, key};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Initial size of a file, as prometheus_client 0.16+ creates it.
pub const INITIAL_SIZE: u64 = 1 << 16;

/// An open file in prometheus_client's format.
#[derive(Debug)]
pub struct DbWriter {
    file: File,
    capacity: u64,
    used: usize,
    /// Key text → offset of its value.
    positions: HashMap<String, usize>,
}

impl DbWriter {
    /// Opens `path`, creating a 64 KiB file or resuming an existing one (as
    /// prometheus_client does when a new process gets the pid of an old one).
    ///
    /// # Errors
    /// I/O errors, or an existing file that does not frame cleanly.
    pub fn open(path: &Path) -> io::Result<DbWriter> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut capacity = file.metadata()?.len();
        if capacity == 0 {
            file.set_len(INITIAL_SIZE)?;
            capacity = INITIAL_SIZE;
        }
        let mut header = [0u8; HEADER_LEN];
        file.read_exact_at(&mut header, 0)?;
        let mut used = usize::try_from(format::used(&header).unwrap_or(0).max(0)).unwrap_or(0);
        let mut positions = HashMap::new();
        if used == 0 {
            used = HEADER_LEN;
            file.write_all_at(&format::used_bytes(used as i32), 0)?;
        } else {
            let mut bytes = vec![0u8; used];
            file.read_exact_at(&mut bytes, 0)?;
            for entry in format::walk(&bytes, HEADER_LEN, used, VALUE_LEN) {
                let entry = entry.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let text = String::from_utf8_lossy(entry.key).into_owned();
                positions.insert(text, entry.value_offset);
            }
        }
        Ok(DbWriter {
            file,
            capacity,
            used,
            positions,
        })
    }

    /// Sets the value and timestamp of the entry with key text `key`, appending the
    /// entry if it is new.
    ///
    /// # Errors
    /// I/O errors (a full disk among them).
    pub fn set(&mut self, key: &str, value: f64, timestamp: f64) -> io::Result<()> {
        let offset = match self.positions.get(key) {
            Some(&offset) => offset,
            None => self.append(key)?,
        };
        let pair = format::value_bytes(value, timestamp);
        self.file.write_all_at(&pair, offset as u64)
    }

    /// Sets a value by its parts; see [`key::encode`].
    ///
    /// # Errors
    /// As [`DbWriter::set`].
    pub fn set_sample(
        &mut self,
        metric: &str,
        name: &str,
        labels: &[(&str, &str)],
        help: &str,
        value: f64,
        timestamp: f64,
    ) -> io::Result<()> {
        self.set(&key::encode(metric, name, labels, help), value, timestamp)
    }

    /// The current value of `key`, if present.
    ///
    /// # Errors
    /// I/O errors.
    pub fn get(&self, key: &str) -> io::Result<Option<(f64, f64)>> {
        let Some(&offset) = self.positions.get(key) else {
            return Ok(None);
        };
        let mut pair = [0u8; VALUE_LEN];
        self.file.read_exact_at(&mut pair, offset as u64)?;
        Ok(format::value_at(&pair, 0))
    }

    /// Flushes data to stable storage.
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn append(&mut self, key: &str) -> io::Result<usize> {
        let len = format::entry_len(key.len(), VALUE_LEN);
        let needed = (self.used + len) as u64;
        if needed > i32::MAX as u64 {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "a prometheus_client file cannot exceed 2 GiB",
            ));
        }
        if needed > self.capacity {
            let mut capacity = self.capacity.max(INITIAL_SIZE);
            while needed > capacity {
                capacity *= 2;
            }
            self.file.set_len(capacity)?;
            self.capacity = capacity;
        }
        let at = self.used;
        let mut entry = Vec::with_capacity(len);
        let value_offset = at + format::encode_entry(&mut entry, key.as_bytes(), 0.0, 0.0);
        // The whole entry first, then `used`: a reader never sees a half-written entry.
        self.file.write_all_at(&entry, at as u64)?;
        self.used += len;
        self.file
            .write_all_at(&format::used_bytes(self.used as i32), 0)?;
        self.positions.insert(key.to_owned(), value_offset);
        Ok(value_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_doubling_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counter_1.db");
        let big = "x".repeat(70_000);
        {
            let mut w = DbWriter::open(&path).unwrap();
            w.set_sample("c", "c_total", &[("a", "1")], "h", 5.0, 0.0)
                .unwrap();
            w.set_sample("c", "c_total", &[("a", &big)], "h", 1.0, 0.0)
                .unwrap();
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 17);
        let w = DbWriter::open(&path).unwrap();
        let k = key::encode("c", "c_total", &[("a", "1")], "h");
        assert_eq!(w.get(&k).unwrap(), Some((5.0, 0.0)));
    }
}
