//! The file format of prometheus_client's multiprocess mode, in one place: the header,
//! the entry layout and its padding, the key encoding ([`key`]), and how to frame entries.
//!
//! Layout (prometheus_client 0.18+, native byte order):
//! `i32 used | 4 pad | entries...` with each entry
//! `i32 n | n bytes of JSON key | 1..=8 spaces | f64 value | f64 timestamp`, padded so the
//! value is 8-byte aligned (`pad = 8 - (n + 4) % 8`).
//!
//! Every stage that touches the bytes uses this module: `read` for the header, `parse` to
//! frame and index, `write` and the compaction's archive writer to produce entries. So
//! there is one encoder ([`encode_entry`]) and one framer ([`walk`]); they cannot drift.
//!
//! Everything here is pure over `&[u8]`, checks every length against both `used` and the
//! slice, and never panics: the bytes come from files that other processes write while we
//! read, and from files that are simply garbage.

pub mod key;

use thiserror::Error;

/// The header: an `i32` `used` (native byte order) and four bytes of padding.
pub const HEADER_LEN: usize = 8;
/// Bytes of value data after each key in the current layout (value + timestamp).
pub const VALUE_LEN: usize = 16;
/// Bytes of value data in the layout of prometheus_client before 0.18.
pub const OLD_VALUE_LEN: usize = 8;

/// One framed entry: where its key and value are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEntry<'a> {
    /// Offset of the entry's length field.
    pub offset: usize,
    /// The key bytes (JSON text, not yet decoded).
    pub key: &'a [u8],
    /// Offset of the value (8-byte aligned).
    pub value_offset: usize,
    /// Offset just past the entry.
    pub end: usize,
}

/// Why framing stopped before `used`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum WalkError {
    /// A negative key length, or a key running past `used`.
    #[error("entry at byte {offset} has key length {len}, which runs past used={used}")]
    BadLength {
        /// Offset of the length field.
        offset: usize,
        /// The length read.
        len: i64,
        /// Where the data ends.
        used: usize,
    },
    /// The key fits but the value does not, or the length field itself is cut.
    #[error("entry at byte {offset} is cut short by used={used}")]
    Torn {
        /// Offset of the entry.
        offset: usize,
        /// Where the data ends.
        used: usize,
    },
}

impl WalkError {
    /// Offset of the entry that could not be framed.
    pub fn offset(&self) -> usize {
        match *self {
            WalkError::BadLength { offset, .. } | WalkError::Torn { offset, .. } => offset,
        }
    }
}

/// Padding after a key of `n` bytes: 1 to 8 spaces, never 0.
pub fn padding(n: usize) -> usize {
    8 - (n + 4) % 8
}

/// Size of a whole entry with a key of `n` bytes.
pub fn entry_len(n: usize, value_len: usize) -> usize {
    4 + n + padding(n) + value_len
}

/// SQLite's file magic: a common foreign `.db` file.
pub const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

/// Appends one entry with key text `key` and the given value pair to `out`, exactly as
/// prometheus_client's `MmapedDict` lays it out. Returns the offset of the value in
/// `out`. Entries start at multiples of 8 in a file, so the padding does not depend on
/// where `out` goes: add the entry's file offset to place the value.
pub fn encode_entry(out: &mut Vec<u8>, key: &[u8], value: f64, timestamp: f64) -> usize {
    let n = key.len();
    // Keys longer than i32::MAX cannot be written by any writer; callers bound `used`.
    out.extend_from_slice(&(n as i32).to_ne_bytes());
    out.extend_from_slice(key);
    out.resize(out.len() + padding(n), b' ');
    let at = out.len();
    out.extend_from_slice(&value_bytes(value, timestamp));
    at
}

/// Writes `used` into the header of `file` (the first [`HEADER_LEN`] bytes).
pub fn set_used(file: &mut [u8], used: i32) {
    if let Some(h) = file.get_mut(..4) {
        h.copy_from_slice(&used_bytes(used));
    }
}

/// The bytes of `used` as the header stores them (at offset 0), for writers that update
/// it in place.
pub fn used_bytes(used: i32) -> [u8; 4] {
    used.to_ne_bytes()
}

/// The bytes of a value pair as an entry stores them (at its value offset).
pub fn value_bytes(value: f64, timestamp: f64) -> [u8; VALUE_LEN] {
    bytemuck::cast([value, timestamp])
}

/// Reads the header's `used`, if the bytes hold a header.
pub fn used(bytes: &[u8]) -> Option<i32> {
    Some(bytemuck::pod_read_unaligned(bytes.get(..4)?))
}

/// Frames entries of `bytes[from..end]`, where `end <= bytes.len()`.
pub fn walk(bytes: &[u8], from: usize, end: usize, value_len: usize) -> Walk<'_> {
    Walk {
        bytes,
        pos: from,
        end: end.min(bytes.len()),
        value_len,
        failed: false,
    }
}

/// Iterator over framed entries; yields one error and then stops.
#[derive(Debug)]
pub struct Walk<'a> {
    bytes: &'a [u8],
    pos: usize,
    end: usize,
    value_len: usize,
    failed: bool,
}

impl Walk<'_> {
    /// The offset up to which entries were framed successfully.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Walk<'a> {
    type Item = Result<RawEntry<'a>, WalkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.end {
            return None;
        }
        let offset = self.pos;
        let fail = |w: &mut Self, e: WalkError| {
            w.failed = true;
            Some(Err(e))
        };
        let Some(len_bytes) = self
            .bytes
            .get(offset..offset + 4)
            .filter(|_| offset + 4 <= self.end)
        else {
            return fail(
                self,
                WalkError::Torn {
                    offset,
                    used: self.end,
                },
            );
        };
        let len: i32 = bytemuck::pod_read_unaligned(len_bytes);
        let key_start = offset + 4;
        let bad_length = WalkError::BadLength {
            offset,
            len: i64::from(len),
            used: self.end,
        };
        let Ok(n) = usize::try_from(len) else {
            return fail(self, bad_length);
        };
        let key_end = match key_start.checked_add(n) {
            Some(k) if k <= self.end => k,
            _ => return fail(self, bad_length),
        };
        let value_offset = key_end + padding(n);
        let end = value_offset + self.value_len;
        if end > self.end {
            return fail(
                self,
                WalkError::Torn {
                    offset,
                    used: self.end,
                },
            );
        }
        self.pos = end;
        Some(Ok(RawEntry {
            offset,
            key: &self.bytes[key_start..key_end],
            value_offset,
            end,
        }))
    }
}

/// Reads the `(value, timestamp)` pair at `offset`, if it lies inside `bytes`.
pub fn value_at(bytes: &[u8], offset: usize) -> Option<(f64, f64)> {
    let b = bytes.get(offset..offset.checked_add(VALUE_LEN)?)?;
    let [value, timestamp]: [f64; 2] = bytemuck::pod_read_unaligned(b);
    Some((value, timestamp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(keys: &[&str]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        for (i, k) in keys.iter().enumerate() {
            encode_entry(&mut b, k.as_bytes(), i as f64, 0.0);
        }
        let used = b.len() as i32;
        set_used(&mut b, used);
        b
    }

    #[test]
    fn encoded_entries_frame_back() {
        let mut b = vec![0u8; HEADER_LEN];
        let at = encode_entry(&mut b, b"abc", 2.5, 7.0);
        assert_eq!(at % 8, 0);
        assert_eq!(b.len(), HEADER_LEN + entry_len(3, VALUE_LEN));
        let e = walk(&b, HEADER_LEN, b.len(), VALUE_LEN)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!((e.key, e.value_offset), (&b"abc"[..], at));
        assert_eq!(value_at(&b, at), Some((2.5, 7.0)));
    }

    #[test]
    fn padding_is_never_zero() {
        assert_eq!(padding(4), 8);
        assert_eq!(padding(92), 8);
        assert_eq!(padding(3), 1);
        assert_eq!(entry_len(92, 16), 120);
    }

    #[test]
    fn frames_entries_and_values() {
        let b = file(&["ab", "cdefgh"]);
        let entries: Vec<_> = walk(&b, 8, b.len(), VALUE_LEN)
            .map(Result::unwrap)
            .collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].key, b"cdefgh");
        assert_eq!(value_at(&b, entries[1].value_offset), Some((1.0, 0.0)));
        assert_eq!(entries[0].value_offset % 8, 0);
    }

    #[test]
    fn torn_and_bad_lengths_stop_the_walk() {
        let b = file(&["ab", "cdefgh"]);
        let cut = b.len() - 3;
        let got: Vec<_> = walk(&b, 8, cut, VALUE_LEN).collect();
        assert!(got[0].is_ok());
        assert!(matches!(got[1], Err(WalkError::Torn { .. })));
        assert_eq!(got.len(), 2);
        let mut bad = b.clone();
        bad[8..12].copy_from_slice(&(-5i32).to_ne_bytes());
        assert!(matches!(
            walk(&bad, 8, bad.len(), VALUE_LEN).next(),
            Some(Err(WalkError::BadLength { len: -5, .. }))
        ));
        bad[8..12].copy_from_slice(&i32::MAX.to_ne_bytes());
        assert!(matches!(
            walk(&bad, 8, bad.len(), VALUE_LEN).next(),
            Some(Err(WalkError::BadLength { .. }))
        ));
    }

    proptest! {
        #[test]
        fn walk_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), from in 0usize..500, end in 0usize..500) {
            for e in walk(&bytes, from, end, VALUE_LEN).flatten() {
                prop_assert!(e.end <= bytes.len());
                prop_assert!(value_at(&bytes, e.value_offset).is_some());
            }
            let _ = value_at(&bytes, from);
        }
    }
}
