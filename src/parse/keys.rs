//! The key table: each distinct key text decoded once, its parts interned to small ids.
//!
//! 64 workers write the same keys, and a key never changes once written, so decoding
//! (JSON, label sets, the `le` bound) is done once per distinct text for the whole
//! directory, and the merge then hashes integers, not strings.

use crate::format::key::{self, KeyError};
use crate::model::LabelSet;
use rustc_hash::FxHashMap;
use std::hash::Hash;
use std::sync::Arc;

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
    /// The key text of each id, for writing a file's last good values back (compaction).
    texts: Vec<Box<[u8]>>,
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
        self.texts.push(Box::from(raw));
        self.raw.insert(Box::from(raw), id);
        Ok(id)
    }

    /// The text of key `id`, as the file holds it.
    pub fn text(&self, id: u32) -> &[u8] {
        &self.texts[id as usize]
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
