//! The incremental part of parsing: a per-file index of entries and a shared key table.
//!
//! Keys are append-only and values change in place, so a file is framed once and then
//! only extended when `used` grows; a steady-state read only loads the value doubles at
//! the offsets remembered here. A key is decoded from JSON once per distinct key text,
//! however many files and scrapes contain it (64 workers share the same keys).

use super::key::{self, KeyError};
use super::{HEADER_LEN, OLD_VALUE_LEN, VALUE_LEN, WalkError, walk};
use crate::error::Reason;
use rustc_hash::FxHashMap;
use std::hash::Hash;
use std::sync::Arc;

/// Label pairs sorted by name.
pub type LabelSet = Arc<[(Box<str>, Box<str>)]>;

/// Gives each distinct value a small dense id.
#[derive(Debug)]
pub struct Interner<T> {
    ids: FxHashMap<T, u32>,
    items: Vec<T>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            ids: FxHashMap::default(),
            items: Vec::new(),
        }
    }
}

impl<T: Hash + Eq + Clone> Interner<T> {
    /// The id of `value`, adding it if new.
    pub fn intern(&mut self, value: T) -> u32 {
        if let Some(&id) = self.ids.get(&value) {
            return id;
        }
        let id = u32::try_from(self.items.len()).expect("fewer than 2^32 distinct values");
        self.items.push(value.clone());
        self.ids.insert(value, id);
        id
    }

    /// The value of `id`.
    pub fn get(&self, id: u32) -> &T {
        &self.items[id as usize]
    }

    /// How many distinct values there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing was interned.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The `le` label of a sample, decided once per key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Le {
    /// No `le` label.
    Absent,
    /// An `le` label that Python's `float()` accepts.
    Bound(f64),
    /// An `le` label that is not a number.
    Bad,
}

/// Everything the merge needs to know about one distinct key text.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// Family (metric name) id.
    pub family: u32,
    /// Sample name id.
    pub name: u32,
    /// Label set id.
    pub labels: u32,
    /// The label set without `le` (histogram bucket grouping).
    pub labels_no_le: u32,
    /// The label set without `pid` (gauges other than `all` drop it).
    pub labels_no_pid: u32,
    /// The `le` label as a number.
    pub le: Le,
    /// The help text in this key.
    pub help: Arc<str>,
}

/// Decoded keys, shared by all files of a directory.
#[derive(Debug, Default)]
pub struct KeyTable {
    raw: FxHashMap<Box<[u8]>, u32>,
    infos: Vec<KeyInfo>,
    /// Family names.
    pub families: Interner<Arc<str>>,
    /// Sample names.
    pub names: Interner<Arc<str>>,
    /// Label sets.
    pub labelsets: Interner<LabelSet>,
    helps: Interner<Arc<str>>,
}

impl KeyTable {
    /// The id of the key with this text, decoding it if it is new.
    ///
    /// # Errors
    /// When the text is not a valid key.
    pub fn intern(&mut self, raw: &[u8]) -> Result<u32, KeyError> {
        if let Some(&id) = self.raw.get(raw) {
            return Ok(id);
        }
        let key = key::decode(raw)?;
        let labels: LabelSet = key
            .labels
            .iter()
            .map(|(k, v)| (Box::from(k.as_str()), Box::from(v.as_str())))
            .collect();
        let without = |name: &str| -> LabelSet {
            labels
                .iter()
                .filter(|(k, _)| &**k != name)
                .cloned()
                .collect()
        };
        let le = match labels.iter().find(|(k, _)| &**k == "le") {
            None => Le::Absent,
            Some((_, v)) => py_float(v).map_or(Le::Bad, Le::Bound),
        };
        let labels_no_le = self.labelsets.intern(without("le"));
        let labels_no_pid = self.labelsets.intern(without("pid"));
        let help_id = self.helps.intern(Arc::from(key.help));
        let info = KeyInfo {
            family: self.families.intern(Arc::from(key.metric)),
            name: self.names.intern(Arc::from(key.name)),
            labels: self.labelsets.intern(labels),
            labels_no_le,
            labels_no_pid,
            le,
            help: self.helps.get(help_id).clone(),
        };
        let id = u32::try_from(self.infos.len()).expect("fewer than 2^32 keys");
        self.infos.push(info);
        self.raw.insert(Box::from(raw), id);
        Ok(id)
    }

    /// What is known about key `id`.
    pub fn info(&self, id: u32) -> &KeyInfo {
        &self.infos[id as usize]
    }

    /// How many distinct key texts were decoded.
    pub fn len(&self) -> usize {
        self.infos.len()
    }

    /// Whether no key was decoded.
    pub fn is_empty(&self) -> bool {
        self.infos.is_empty()
    }
}

/// Python's `float(str)`: surrounding whitespace, `inf`/`nan` in any case, and
/// underscores between digits are accepted.
pub fn py_float(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.contains('_') {
        let b = t.as_bytes();
        let ok = b.iter().enumerate().all(|(i, &c)| {
            c != b'_'
                || (i > 0
                    && b[i - 1].is_ascii_digit()
                    && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        });
        if !ok {
            return None;
        }
        return t.replace('_', "").parse().ok();
    }
    t.parse().ok()
}

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
}

/// SQLite's file magic: a common foreign `.db` file.
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

impl FileIndex {
    /// An index that has framed nothing.
    pub fn new() -> FileIndex {
        FileIndex {
            entries: Vec::new(),
            parsed_to: HEADER_LEN,
            old_format: false,
        }
    }

    /// Whether the file was recognised as a pre-0.18 file.
    pub fn is_old_format(&self) -> bool {
        self.old_format
    }

    /// Offset up to which entries are framed.
    pub fn parsed_to(&self) -> usize {
        self.parsed_to
    }

    /// Frames what is new in `bytes` (the file's `[0, min(used, size))`).
    ///
    /// `declared_used` and `size` come from the read; problems are appended to `issues`
    /// with a sentence naming offsets. Entries framed so far stay valid whatever happens.
    pub fn update(
        &mut self,
        bytes: &[u8],
        declared_used: Option<i32>,
        size: u64,
        keys: &mut KeyTable,
        issues: &mut Vec<(Reason, String)>,
    ) {
        if self.old_format {
            issues.push((Reason::OldFormat, old_format_detail()));
            return;
        }
        let Some(used) = declared_used else {
            let what = if size == 0 {
                "zero-length file".to_owned()
            } else {
                format!("{size}-byte file is shorter than the 8-byte header")
            };
            issues.push((Reason::Empty, what));
            return;
        };
        if bytes.starts_with(SQLITE_MAGIC) {
            issues.push((
                Reason::Foreign,
                "an SQLite database, not a prometheus_client file".to_owned(),
            ));
            return;
        }
        if used == 0 {
            // A writer between `truncate` and its first header write: empty, not bad.
            return;
        }
        let used_len = match usize::try_from(used) {
            Ok(u) if u >= HEADER_LEN => u,
            _ => {
                issues.push((
                    Reason::BadHeader,
                    format!("header says used={used}, less than the 8-byte header"),
                ));
                return;
            }
        };
        let end = bytes.len();
        if (used_len as u64) > size {
            issues.push((
                Reason::UsedBeyondEof,
                format!(
                    "header says used={used_len} but the file has {size} bytes; read the entries that fit"
                ),
            ));
        } else if end < used_len {
            issues.push((
                Reason::TooLarge,
                format!("used={used_len} exceeds the per-file limit; read the first {end} bytes"),
            ));
        }
        let mut bad_keys: Vec<(Reason, usize, String)> = Vec::new();
        let mut old_shape = false;
        let mut stopped: Option<WalkError> = None;
        let mut frames = walk(bytes, self.parsed_to, end, VALUE_LEN);
        for frame in frames.by_ref() {
            match frame {
                Ok(e) => match keys.intern(e.key) {
                    Ok(id) => self.entries.push(Indexed {
                        key: id,
                        value_offset: e.value_offset as u32,
                    }),
                    Err(KeyError::OldShape) => {
                        old_shape = true;
                        break;
                    }
                    Err(err) => bad_keys.push((key_reason(&err), e.offset, err.to_string())),
                },
                Err(w) => stopped = Some(w),
            }
        }
        self.parsed_to = stopped.map_or(frames.position(), |w| w.offset());
        if old_shape || (stopped.is_some() && frames_as_old_format(bytes, end)) {
            self.entries.clear();
            self.old_format = true;
            issues.push((Reason::OldFormat, old_format_detail()));
            return;
        }
        if let Some((reason, offset, what)) = bad_keys.first() {
            let more = bad_keys.len() - 1;
            let others = if more > 0 {
                format!(" (and {more} more bad keys)")
            } else {
                String::new()
            };
            issues.push((
                *reason,
                format!("skipped the entry at byte {offset}: {what}{others}"),
            ));
        }
        if let Some(w) = stopped {
            let reason = match w {
                WalkError::BadLength { .. } => Reason::BadLength,
                WalkError::Torn { .. } => Reason::TornEntry,
            };
            issues.push((
                reason,
                format!("{w}; kept the {} entries before it", self.entries.len()),
            ));
        }
    }
}

fn old_format_detail() -> String {
    "written by prometheus_client older than 0.18 (8-byte values); skipped whole: wipe the directory when upgrading writers".to_owned()
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
    use crate::parse::{padding, value_at};
    use proptest::prelude::*;

    fn build(keys: &[String], value_len: usize) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        for k in keys {
            b.extend_from_slice(&(k.len() as i32).to_ne_bytes());
            b.extend_from_slice(k.as_bytes());
            b.extend(std::iter::repeat_n(b' ', padding(k.len())));
            b.extend_from_slice(&2.5f64.to_ne_bytes());
            if value_len == 16 {
                b.extend_from_slice(&0f64.to_ne_bytes());
            }
        }
        let used = b.len() as i32;
        b[..4].copy_from_slice(&used.to_ne_bytes());
        b
    }

    fn k(i: usize) -> String {
        key::encode("c", "c_total", &[("i", &i.to_string())], "help")
    }

    fn update(idx: &mut FileIndex, b: &[u8], keys: &mut KeyTable) -> Vec<(Reason, String)> {
        let mut issues = Vec::new();
        idx.update(b, used_of(b), b.len() as u64, keys, &mut issues);
        issues
    }

    fn used_of(b: &[u8]) -> Option<i32> {
        super::super::used(b)
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
    fn bad_key_skips_only_that_entry() {
        let mut keys = KeyTable::default();
        let b = build(&[k(0), "not json".to_owned(), k(2)], 16);
        let mut idx = FileIndex::new();
        let issues = update(&mut idx, &b, &mut keys);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].0, Reason::BadJson);
        assert_eq!(idx.entries.len(), 2);
    }

    #[test]
    fn py_float_accepts_what_python_accepts() {
        assert_eq!(py_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(py_float(" 1.0 "), Some(1.0));
        assert_eq!(py_float("1e+07"), Some(1e7));
        assert_eq!(py_float("1_000"), Some(1000.0));
        assert_eq!(py_float("_1"), None);
        assert_eq!(py_float("x"), None);
        assert!(py_float("nan").unwrap().is_nan());
    }

    proptest! {
        #[test]
        fn update_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), used in any::<i32>()) {
            let mut b = bytes.clone();
            if b.len() >= 4 { b[..4].copy_from_slice(&used.to_ne_bytes()); }
            let mut keys = KeyTable::default();
            let mut idx = FileIndex::new();
            let mut issues = Vec::new();
            idx.update(&b, used_of(&b), b.len() as u64, &mut keys, &mut issues);
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
            let mut issues = Vec::new();
            idx.update(&b, used_of(&b), b.len() as u64, &mut keys, &mut issues);
        }
    }
}
