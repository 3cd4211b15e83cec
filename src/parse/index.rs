//! The per-file index: which entries a file has and where their values are.
//!
//! Keys are append-only and values change in place, so a file is framed once and then
//! only extended when `used` grows; a steady-state read only loads the value doubles at
//! the offsets remembered here.

use super::keys::KeyTable;
use crate::format::key::{self, KeyError};
use crate::format::{HEADER_LEN, OLD_VALUE_LEN, SQLITE_MAGIC, VALUE_LEN, WalkError, walk};
use crate::model::{FileProblem, Reason};

/// One indexed entry of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Indexed {
    /// Key id in the [`KeyTable`].
    pub key: u32,
    /// Offset of the value pair in the file.
    pub value_offset: u32,
}

/// What is known about the structure of one file.
#[derive(Clone, Debug, Default)]
pub struct FileIndex {
    /// Entries in file order.
    pub entries: Vec<Indexed>,
    /// Entries in `[8, parsed_to)` are framed; framing resumes here.
    parsed_to: usize,
    /// The file was written by prometheus_client < 0.18 and is skipped whole.
    old_format: bool,
    /// Entries skipped so far for a bad key, and the first of them (reason, offset,
    /// what): reported at every update while the file is read, not only when framed.
    bad_keys: usize,
    first_bad: Option<(Reason, usize, String)>,
}

impl FileIndex {
    /// An index that has framed nothing.
    pub fn new() -> FileIndex {
        FileIndex {
            entries: Vec::new(),
            parsed_to: HEADER_LEN,
            old_format: false,
            bad_keys: 0,
            first_bad: None,
        }
    }

    /// The entries skipped for a bad key, as one problem.
    fn bad_key_problem(&self) -> Option<FileProblem> {
        let (reason, offset, what) = self.first_bad.as_ref()?;
        let more = self.bad_keys - 1;
        let others = if more > 0 {
            format!(" (and {more} more bad keys)")
        } else {
            String::new()
        };
        Some(FileProblem::new(
            *reason,
            format!("skipped the entry at byte {offset}: {what}{others}"),
        ))
    }

    /// Offset up to which entries are framed.
    pub fn parsed_to(&self) -> usize {
        self.parsed_to
    }

    /// Whether `bytes` (a file's `[0, len)`) still frames, up to what was indexed, the
    /// same entries at the same offsets: a file that shrank and grew back holds what was
    /// indexed (a truncation undone) or other content (rewritten). `None` when `bytes`
    /// does not reach that far.
    pub fn agrees_with(&self, bytes: &[u8], keys: &KeyTable) -> Option<bool> {
        if bytes.len() < self.parsed_to {
            return None;
        }
        let mut expected = self.entries.iter().peekable();
        for frame in walk(bytes, HEADER_LEN, self.parsed_to, VALUE_LEN) {
            let Ok(e) = frame else {
                return Some(false);
            };
            match expected.peek() {
                Some(x) if x.value_offset as usize == e.value_offset => {
                    if keys.text(x.key) != e.key {
                        return Some(false);
                    }
                    expected.next();
                }
                // An entry the index skipped for its key must still be one.
                _ if key::decode(e.key).is_err() => {}
                _ => return Some(false),
            }
        }
        Some(expected.next().is_none())
    }

    /// Frames what is new in `bytes` (the file's `[0, min(used, size))`).
    ///
    /// `declared_used` and `size` come from the read; problems are returned with a
    /// sentence naming offsets. Entries framed so far stay valid whatever happens.
    pub fn update(
        &mut self,
        bytes: &[u8],
        declared_used: Option<i32>,
        size: u64,
        keys: &mut KeyTable,
    ) -> Vec<FileProblem> {
        let mut problems = Vec::new();
        if self.old_format {
            problems.push(old_format());
            return problems;
        }
        let Some(used) = check_header(bytes, declared_used, size, &mut problems) else {
            return problems;
        };
        let framed = self.frame(bytes, keys);
        if framed.stopped.is_some() && frames_as_old_format(bytes, used) {
            self.entries.clear();
            self.old_format = true;
            problems.push(old_format());
            return problems;
        }
        problems.extend(self.bad_key_problem());
        problems.extend(framed.problems(self.entries.len()));
        problems
    }

    /// Frames entries from where the last update stopped up to the end of `bytes`.
    fn frame(&mut self, bytes: &[u8], keys: &mut KeyTable) -> Framed {
        let mut out = Framed::default();
        let mut frames = walk(bytes, self.parsed_to, bytes.len(), VALUE_LEN);
        for frame in frames.by_ref() {
            match frame {
                Ok(e) => match keys.intern(e.key) {
                    Ok(id) => self.entries.push(Indexed {
                        key: id,
                        value_offset: e.value_offset as u32,
                    }),
                    // A key the decoder refuses (the pre-0.16 shape too) skips its entry
                    // only; a whole file is old-format only when its framing says so.
                    Err(err) => {
                        self.bad_keys += 1;
                        if self.first_bad.is_none() {
                            self.first_bad = Some((key_reason(&err), e.offset, err.to_string()));
                        }
                    }
                },
                Err(w) => out.stopped = Some(w),
            }
        }
        self.parsed_to = out.stopped.map_or(frames.position(), |w| w.offset());
        out
    }
}

/// What one framing run met besides good entries.
#[derive(Default)]
struct Framed {
    /// Why framing stopped before the end, if it did.
    stopped: Option<WalkError>,
}

impl Framed {
    /// The problems to report, given how many entries the file now has.
    fn problems(self, kept: usize) -> Vec<FileProblem> {
        let mut out = Vec::new();
        if let Some(w) = self.stopped {
            let reason = match w {
                WalkError::BadLength { .. } => Reason::BadLength,
                WalkError::Torn { .. } => Reason::TornEntry,
            };
            out.push(FileProblem::new(
                reason,
                format!("{w}; kept the {kept} entries before it"),
            ));
        }
        out
    }
}

/// Judges the header against the file; returns `used` when there are entries to frame.
fn check_header(
    bytes: &[u8],
    declared_used: Option<i32>,
    size: u64,
    problems: &mut Vec<FileProblem>,
) -> Option<usize> {
    let Some(used) = declared_used else {
        let what = if size == 0 {
            "zero-length file".to_owned()
        } else {
            format!("{size}-byte file is shorter than the 8-byte header")
        };
        problems.push(FileProblem::new(Reason::Empty, what));
        return None;
    };
    if bytes.starts_with(SQLITE_MAGIC) {
        problems.push(FileProblem::new(
            Reason::Foreign,
            "an SQLite database, not a prometheus_client file",
        ));
        return None;
    }
    if used == 0 {
        // A writer between `truncate` and its first header write: empty, not bad.
        return None;
    }
    let used_len = match usize::try_from(used) {
        Ok(u) if u >= HEADER_LEN => u,
        _ => {
            problems.push(FileProblem::new(
                Reason::BadHeader,
                format!("header says used={used}, less than the 8-byte header"),
            ));
            return None;
        }
    };
    let end = bytes.len();
    if (used_len as u64) > size {
        problems.push(FileProblem::new(
            Reason::UsedBeyondEof,
            format!(
                "header says used={used_len} but the file has {size} bytes; read the entries that fit"
            ),
        ));
    } else if end < used_len {
        problems.push(FileProblem::new(
            Reason::TooLarge,
            format!(
                "used={used_len} exceeds the read limit (per file, or what is left of the per-directory one); read the first {end} bytes"
            ),
        ));
    }
    Some(end)
}

fn old_format() -> FileProblem {
    FileProblem::new(
        Reason::OldFormat,
        "written by prometheus_client older than 0.18 (8-byte values); skipped whole: wipe the directory when upgrading writers",
    )
}

fn key_reason(err: &KeyError) -> Reason {
    match err {
        KeyError::Utf8 { .. } => Reason::BadUtf8,
        KeyError::Json { .. } => Reason::BadJson,
        KeyError::Shape(_) | KeyError::OldShape => Reason::BadKey,
    }
}

/// Whether the whole of `bytes[8..end]` frames cleanly with 8-byte values and keys of
/// the old or current shape: the signature of a pre-0.18 file, which the 16-byte walk
/// cannot frame.
fn frames_as_old_format(bytes: &[u8], end: usize) -> bool {
    let mut framed = 0usize;
    let mut w = walk(bytes, HEADER_LEN, end, OLD_VALUE_LEN);
    for frame in w.by_ref() {
        let Ok(e) = frame else { return false };
        match key::decode(e.key) {
            Ok(_) | Err(KeyError::OldShape) => framed += 1,
            Err(_) => return false,
        }
    }
    framed > 0 && w.position() == end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{encode_entry, padding, set_used, value_at};
    use proptest::prelude::*;

    fn build(keys: &[String], value_len: usize) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        for k in keys {
            if value_len == VALUE_LEN {
                encode_entry(&mut b, k.as_bytes(), 2.5, 0.0);
            } else {
                // The pre-0.18 layout, which no writer of ours produces.
                b.extend_from_slice(&(k.len() as i32).to_ne_bytes());
                b.extend_from_slice(k.as_bytes());
                b.extend(std::iter::repeat_n(b' ', padding(k.len())));
                b.extend_from_slice(&2.5f64.to_ne_bytes());
            }
        }
        let used = b.len() as i32;
        set_used(&mut b, used);
        b
    }

    fn k(i: usize) -> String {
        key::encode("c", "c_total", &[("i", &i.to_string())], "help")
    }

    fn update(idx: &mut FileIndex, b: &[u8], keys: &mut KeyTable) -> Vec<(Reason, String)> {
        idx.update(b, used_of(b), b.len() as u64, keys)
            .into_iter()
            .map(|p| (p.reason, p.detail))
            .collect()
    }

    fn used_of(b: &[u8]) -> Option<i32> {
        crate::format::used(b)
    }

    #[test]
    fn extends_incrementally_without_reframing() {
        let mut keys = KeyTable::default();
        let all = build(&[k(0), k(1), k(2)], 16);
        let first_two = build(&[k(0), k(1)], 16);
        let mut idx = FileIndex::new();
        assert!(update(&mut idx, &first_two, &mut keys).is_empty());
        assert_eq!(idx.entries.len(), 2);
        let before = idx.parsed_to();
        assert!(update(&mut idx, &all, &mut keys).is_empty());
        assert_eq!(idx.entries.len(), 3);
        assert!(idx.parsed_to() > before);
        assert_eq!(keys.len(), 3);
        let v = value_at(&all, idx.entries[2].value_offset as usize).unwrap();
        assert_eq!(v, (2.5, 0.0));
    }

    #[test]
    fn old_format_is_skipped_whole() {
        let mut keys = KeyTable::default();
        let old = build(&[k(0), k(1)], 8);
        let mut idx = FileIndex::new();
        let issues = update(&mut idx, &old, &mut keys);
        assert_eq!(issues[0].0, Reason::OldFormat);
        assert!(idx.entries.is_empty());
        // A single-entry old file too.
        let mut idx = FileIndex::new();
        let issues = update(&mut idx, &build(&[k(0)], 8), &mut keys);
        assert_eq!(issues[0].0, Reason::OldFormat);
        // Three-element keys (0.4 - 0.15).
        let three = build(&[r#"["c", "c_total", {}]"#.to_owned()], 8);
        let mut idx = FileIndex::new();
        assert_eq!(update(&mut idx, &three, &mut keys)[0].0, Reason::OldFormat);
    }

    #[test]
    fn torn_tail_keeps_the_prefix() {
        let mut keys = KeyTable::default();
        let mut b = build(&[k(0), k(1)], 16);
        let used = (b.len() - 8) as i32;
        b[..4].copy_from_slice(&used.to_ne_bytes());
        b.truncate(used as usize);
        let mut idx = FileIndex::new();
        let issues = update(&mut idx, &b, &mut keys);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].0, Reason::TornEntry);
        assert_eq!(idx.entries.len(), 1);
    }

    #[test]
    fn test_issue_9_one_old_shaped_key_skips_only_its_entry() {
        let mut keys = KeyTable::default();
        let b = build(&[k(0), r#"["c", "c_total", {}]"#.to_owned(), k(2)], 16);
        let mut idx = FileIndex::new();
        let issues = update(&mut idx, &b, &mut keys);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].0, Reason::BadKey);
        assert!(issues[0].1.contains("older than 0.16"), "{}", issues[0].1);
        assert_eq!(idx.entries.len(), 2);
    }

    #[test]
    fn test_issue_9_bad_keys_are_reported_at_every_pass() {
        let mut keys = KeyTable::default();
        let b = build(&[k(0), "not json".to_owned()], 16);
        let mut idx = FileIndex::new();
        assert_eq!(update(&mut idx, &b, &mut keys)[0].0, Reason::BadJson);
        let again = update(&mut idx, &b, &mut keys);
        assert_eq!(again.len(), 1, "the skipped entry is still skipped");
        assert_eq!(again[0].0, Reason::BadJson);
    }

    #[test]
    fn bad_key_skips_only_that_entry() {
        let mut keys = KeyTable::default();
        let b = build(&[k(0), "not json".to_owned(), k(2)], 16);
        let mut idx = FileIndex::new();
        let issues = update(&mut idx, &b, &mut keys);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].0, Reason::BadJson);
        assert_eq!(idx.entries.len(), 2);
    }

    proptest! {
        #[test]
        fn update_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), used in any::<i32>()) {
            let mut b = bytes.clone();
            if b.len() >= 4 { b[..4].copy_from_slice(&used.to_ne_bytes()); }
            let mut keys = KeyTable::default();
            let mut idx = FileIndex::new();
            idx.update(&b, used_of(&b), b.len() as u64, &mut keys);
            for e in &idx.entries {
                prop_assert!(value_at(&b, e.value_offset as usize).is_some());
            }
        }

        #[test]
        fn mutated_real_files_never_panic(seed_keys in 1usize..6, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8)) {
            let keys_text: Vec<String> = (0..seed_keys).map(k).collect();
            let mut b = build(&keys_text, 16);
            for (pos, byte) in flips {
                let n = b.len();
                b[pos % n] = byte;
            }
            let mut keys = KeyTable::default();
            let mut idx = FileIndex::new();
            idx.update(&b, used_of(&b), b.len() as u64, &mut keys);
        }
    }
}
