//! The key table: each distinct key text decoded once, its parts interned to small ids.
//!
//! 64 workers write the same keys, and a key never changes once written, so decoding
//! (JSON, label sets, the `le` bound) is done once per distinct text for the whole
//! directory, and the merge then hashes integers, not strings.

use super::labelsets::LabelSets;
use super::texts::Texts;
use crate::format::key::{self, KeyError};
use rustc_hash::FxHashMap;
use std::cell::Cell;
use std::hash::Hash;
use std::sync::Arc;

/// Gives each distinct value a small dense id.
///
/// Lookups remember the last id found: the keys of one file mostly share their metric,
/// sample name and help, so most lookups are one comparison and no hashing.
#[derive(Debug)]
pub struct Interner<T> {
    ids: FxHashMap<T, u32>,
    items: Vec<T>,
    last: Cell<u32>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            ids: FxHashMap::default(),
            items: Vec::new(),
            last: Cell::new(0),
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

    /// The id of `value`, if it was interned.
    pub fn find<Q>(&self, value: &Q) -> Option<u32>
    where
        T: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let last = self.last.get();
        if self
            .items
            .get(last as usize)
            .is_some_and(|v| v.borrow() == value)
        {
            return Some(last);
        }
        let id = self.ids.get(value).copied()?;
        self.last.set(id);
        Some(id)
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
#[derive(Clone, Copy, Debug)]
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
    /// Help text id ([`KeyTable::help`]).
    pub help: u32,
}

/// How a [`KeyInfo`] is kept: 28 bytes, the bound as an index.
#[derive(Clone, Copy, Debug)]
struct Stored {
    family: u32,
    name: u32,
    labels: u32,
    labels_no_le: u32,
    labels_no_pid: u32,
    help: u32,
    /// Index in `KeyTable::bounds`, or [`LE_ABSENT`] / [`LE_BAD`].
    le: u32,
}

const LE_ABSENT: u32 = u32::MAX;
const LE_BAD: u32 = u32::MAX - 1;

/// Decoded keys, shared by all files of a directory.
///
/// Memory per distinct key is what the issue-9 regression test holds to account (a
/// million distinct series in one file): the key's own part of its text (what
/// surrounds the labels, names and help, is kept once per metric: `parse/texts.rs`),
/// 28 bytes of ids, and its label set spelled once in [`LabelSets`], each found through
/// a table of 4-byte ids.
#[derive(Debug, Default)]
pub struct KeyTable {
    /// The key text of each id: what compaction writes back, and what a lookup compares.
    texts: Texts,
    infos: Vec<Stored>,
    /// Family names.
    pub families: Interner<Arc<str>>,
    /// Sample names.
    pub names: Interner<Arc<str>>,
    /// Label sets.
    pub labelsets: LabelSets,
    helps: Interner<Arc<str>>,
    /// Distinct `le` bounds, by their bits.
    bounds: Vec<f64>,
    bound_ids: FxHashMap<u64, u32>,
}

impl KeyTable {
    /// The id of the key with this text, decoding it if it is new.
    ///
    /// # Errors
    /// When the text is not a valid key.
    pub fn intern(&mut self, raw: &[u8]) -> Result<u32, KeyError> {
        let probe = match self.texts.find(raw) {
            Ok(id) => return Ok(id),
            Err(probe) => probe,
        };
        let key = key::decode_ref(raw)?;
        let too_long = KeyError::Shape("the label set is too long to keep");
        let pairs = || key.labels.iter().map(|(k, v)| (&**k, &**v));
        let labels = self.labelsets.intern(pairs()).ok_or(too_long.clone())?;
        let mut without = |name: &str| -> Result<u32, KeyError> {
            if !key.labels.iter().any(|(k, _)| k == name) {
                return Ok(labels);
            }
            let kept = pairs().filter(|(k, _)| *k != name);
            self.labelsets.intern(kept).ok_or(too_long.clone())
        };
        let labels_no_le = without("le")?;
        let labels_no_pid = without("pid")?;
        let le = match key.labels.iter().find(|(k, _)| k == "le") {
            None => LE_ABSENT,
            Some((_, v)) => match py_float(v) {
                None => LE_BAD,
                Some(b) => {
                    let next = self.bounds.len() as u32;
                    let i = *self.bound_ids.entry(b.to_bits()).or_insert(next);
                    if i == next {
                        self.bounds.push(b);
                    }
                    i
                }
            },
        };
        let id = u32::try_from(self.infos.len())
            .map_err(|_| KeyError::Shape("more than 2^32 distinct keys"))?;
        self.infos.push(Stored {
            family: intern_str(&mut self.families, &key.metric),
            name: intern_str(&mut self.names, &key.name),
            labels,
            labels_no_le,
            labels_no_pid,
            help: intern_str(&mut self.helps, &key.help),
            le,
        });
        let pushed = self.texts.push(raw, probe);
        debug_assert_eq!(pushed, id);
        Ok(id)
    }

    /// Whether the text of key `id` is `raw` (what [`KeyTable::text`] would give, without
    /// putting it together).
    pub fn text_is(&self, id: u32, raw: &[u8]) -> bool {
        self.texts.is(id, raw)
    }

    /// Makes the label sets added so far shareable (see [`LabelSets::seal`]).
    pub fn seal(&mut self) {
        self.labelsets.seal();
    }

    /// The text of key `id`, as the file holds it (empty for an unknown id).
    pub fn text(&self, id: u32) -> Vec<u8> {
        self.texts.text(id)
    }

    /// What is known about key `id`.
    ///
    /// # Panics
    /// For an id this table did not give out.
    pub fn info(&self, id: u32) -> KeyInfo {
        let s = self.infos[id as usize];
        KeyInfo {
            family: s.family,
            name: s.name,
            labels: s.labels,
            labels_no_le: s.labels_no_le,
            labels_no_pid: s.labels_no_pid,
            le: match s.le {
                LE_ABSENT => Le::Absent,
                LE_BAD => Le::Bad,
                i => self
                    .bounds
                    .get(i as usize)
                    .map_or(Le::Bad, |&b| Le::Bound(b)),
            },
            help: s.help,
        }
    }

    /// Help text `id` (see [`KeyInfo::help`]).
    pub fn help(&self, id: u32) -> &Arc<str> {
        self.helps.get(id)
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

/// The id of `s`, allocating only when it is new.
fn intern_str(interner: &mut Interner<Arc<str>>, s: &str) -> u32 {
    interner
        .find(s)
        .unwrap_or_else(|| interner.intern(Arc::from(s)))
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
