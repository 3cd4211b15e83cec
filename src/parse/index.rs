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
    /// Entries in `[8, framed_to)` are framed; framing resumes here.
    framed_to: usize,
    /// While the file may still be a pre-0.18 one: `[8, p)` frames cleanly with 8-byte
    /// values and keys of a known shape, and that walk resumes at `p`. `None` once a read
    /// of the whole `used` rules the old layout out. Kept as a walk of its own, not
    /// decided from one read, because a read cut short (a concurrent truncation, a hole,
    /// the per-file limit) can make a current file look old and hide an old file's last
    /// entry, and a mapped file's later reads no longer hold the bytes already framed.
    old_walk: Option<usize>,
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
            framed_to: HEADER_LEN,
            old_walk: Some(HEADER_LEN),
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

    /// Offset up to which the file is known: entries are framed up to here, and a later
    /// update needs only the header and the bytes from here on (the rest may be zeros).
    /// Behind the framing while the old-layout walk is behind it and undecided.
    pub fn parsed_to(&self) -> usize {
        self.old_walk
            .map_or(self.framed_to, |p| p.min(self.framed_to))
    }

    /// Whether `bytes` (a file's `[0, len)`) still frames, up to what was indexed, the
    /// same entries at the same offsets: a file that shrank and grew back holds what was
    /// indexed (a truncation undone) or other content (rewritten). `None` when `bytes`
    /// does not reach that far.
    pub fn agrees_with(&self, bytes: &[u8], keys: &KeyTable) -> Option<bool> {
        if bytes.len() < self.framed_to {
            return None;
        }
        let mut expected = self.entries.iter().peekable();
        for frame in walk(bytes, HEADER_LEN, self.framed_to, VALUE_LEN) {
            let Ok(e) = frame else {
                return Some(false);
            };
            match expected.peek() {
                Some(x) if x.value_offset as usize == e.value_offset => {
                    if !keys.text_is(x.key, e.key) {
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

    /// Whether a file now `len` readable bytes long holds nothing to frame: every byte up
    /// to `len` is framed and no old-layout walk is pending. A pass over such a file
    /// needs no copy of it, only [`recheck`](Self::recheck): copying the header into a
    /// buffer of the file's length cost a zeroed allocation per file per pass.
    pub fn is_current(&self, len: usize) -> bool {
        !self.old_format && self.old_walk.is_none() && self.framed_to == len
    }

    /// The problems [`update`](Self::update) would report for a file that
    /// [`is_current`](Self::is_current), from its header's `used`, its size and its
    /// readable length alone: a bad header, and the bad keys still skipped (reported
    /// every pass, as `file_errors_total` counts them).
    pub fn recheck(&self, declared_used: Option<i32>, size: u64, len: usize) -> Vec<FileProblem> {
        let mut problems = Vec::new();
        if check_header(&[], len, declared_used, size, &mut problems).is_some() {
            problems.extend(self.bad_key_problem());
        }
        problems
    }

    /// Frames what is new in `bytes` (the file's `[0, min(used, size))`).
    ///
    /// `declared_used` and `size` come from the read; problems are returned with a
    /// sentence naming offsets. Entries framed so far stay valid whatever happens, and
    /// the index does not depend on how the file's growth was split into reads: a file
    /// read in two updates (the second holding only the header and the bytes from
    /// [`parsed_to`](Self::parsed_to) on) is indexed as if read once, whole (the fuzz
    /// target `fuzz/src/bin/file.rs` checks this).
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
        let Some((end, used)) =
            check_header(bytes, bytes.len(), declared_used, size, &mut problems)
        else {
            return problems;
        };
        // Only a read of all of `used` can show that a file is old, or that it is not.
        let whole = end >= used;
        self.walk_old_layout(bytes, whole);
        let framed = self.frame(bytes, keys);
        // The label sets this file added may now be handed to the merge, shared.
        keys.seal();
        // An old file frames at most one entry with 16-byte values: the first misread
        // value runs into the next entry's key, whose text read as a length is hundreds
        // of megabytes. Two frames rule it out (and bound how far the old-layout walk
        // can hold `parsed_to` back).
        if self.entries.len() + self.bad_keys > 1 {
            self.old_walk = None;
        }
        if framed.stopped.is_some() && whole && self.old_walk == Some(end) && end > HEADER_LEN {
            self.entries.clear();
            self.old_format = true;
            problems.push(old_format());
            return problems;
        }
        problems.extend(self.bad_key_problem());
        problems.extend(framed.problems(self.entries.len()));
        problems
    }

    /// Extends the old-layout walk over `bytes`. A pre-0.18 writer leaves `used` where
    /// an entry with an 8-byte value ends, so in a read of the whole `used` the walk
    /// reaches the end, or the file is not old; a read cut short leaves it waiting at the
    /// frame that the cut tore.
    fn walk_old_layout(&mut self, bytes: &[u8], whole: bool) {
        let Some(mut at) = self.old_walk else { return };
        for frame in walk(bytes, at, bytes.len(), OLD_VALUE_LEN) {
            let Ok(e) = frame else { break };
            if !matches!(key::decode(e.key), Ok(_) | Err(KeyError::OldShape)) {
                self.old_walk = None;
                return;
            }
            at = e.end;
        }
        self.old_walk = (!whole || at >= bytes.len()).then_some(at);
    }

    /// Frames entries from where the last update stopped up to the end of `bytes`.
    fn frame(&mut self, bytes: &[u8], keys: &mut KeyTable) -> Framed {
        let mut out = Framed::default();
        let mut frames = walk(bytes, self.framed_to, bytes.len(), VALUE_LEN);
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
        self.framed_to = out.stopped.map_or(frames.position(), |w| w.offset());
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

/// Judges the header against the file; returns the end of the bytes and `used` when
/// there are entries to frame. `head` is the start of the file as read (checked for a
/// SQLite database), `end` the length of what was read.
fn check_header(
    head: &[u8],
    end: usize,
    declared_used: Option<i32>,
    size: u64,
    problems: &mut Vec<FileProblem>,
) -> Option<(usize, usize)> {
    let Some(used) = declared_used else {
        let what = if size == 0 {
            "zero-length file".to_owned()
        } else {
            format!("{size}-byte file is shorter than the 8-byte header")
        };
        problems.push(FileProblem::new(Reason::Empty, what));
        return None;
    };
    if head.starts_with(SQLITE_MAGIC) {
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
    Some((end, used_len))
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

    /// A summary file written by prometheus_client 0.26 (two entries, little-endian),
    /// and the same summary written by 0.17 (8-byte values): fuzz/seeds/file/summary_8.db
    /// and old-summary_8.db, the inputs on which the fuzz target `file` found both
    /// issues below.
    const SUMMARY_0_26: &[u8] = b"\x98\x00\x00\x00\x00\x00\x00\x000\x00\x00\x00[\"size_bytes\", \"size_bytes_count\", {}, \"Sizes.\"]    \x00\x00\x00\x00\x00\x00\xf0?\x00\x00\x00\x00\x00\x00\x00\x00.\x00\x00\x00[\"size_bytes\", \"size_bytes_sum\", {}, \"Sizes.\"]      \x00\x00\x00\x00\x00\xb0\x9f@\x00\x00\x00\x00\x00\x00\x00\x00";
    const SUMMARY_0_17: &[u8] = b"\x88\x00\x00\x00\x00\x00\x00\x000\x00\x00\x00[\"size_bytes\", \"size_bytes_count\", {}, \"Sizes.\"]    \x00\x00\x00\x00\x00\x00\xf0?.\x00\x00\x00[\"size_bytes\", \"size_bytes_sum\", {}, \"Sizes.\"]      \x00\x00\x00\x00\x00\xb0\x9f@";

    /// Passes `file[..cut]` (a read cut short: the header says more), then all of it as a
    /// mapped file's next read brings it: the header and the bytes from `parsed_to` on.
    fn short_then_whole(file: &[u8], cut: usize) -> (FileIndex, Vec<(Reason, String)>) {
        let mut keys = KeyTable::default();
        let mut idx = FileIndex::new();
        idx.update(&file[..cut], used_of(file), file.len() as u64, &mut keys);
        let mut next = file.to_vec();
        next[HEADER_LEN..idx.parsed_to()].fill(0);
        let issues = update(&mut idx, &next, &mut keys);
        (idx, issues)
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn test_issue_9_a_short_read_never_makes_a_current_file_old() {
        // Cut 8 bytes before the first entry ends, the first entry frames as an old one
        // and the file was skipped as old format for good.
        let (idx, issues) = short_then_whole(SUMMARY_0_26, 72);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(idx.entries.len(), 2);
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn test_issue_9_an_old_file_read_short_first_is_still_skipped_whole() {
        // A first read that tears the second (old) entry could not tell the file was
        // old, and the next read no longer held the first entry: one misframed entry
        // (its timestamp made of the next key's bytes) was served for good.
        let (idx, issues) = short_then_whole(SUMMARY_0_17, 100);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].0, Reason::OldFormat);
        assert!(idx.entries.is_empty());
        let mut keys = KeyTable::default();
        let mut whole = FileIndex::new();
        assert_eq!(
            update(&mut whole, SUMMARY_0_17, &mut keys)[0].0,
            Reason::OldFormat
        );
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
