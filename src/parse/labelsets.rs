//! Interned label sets: each distinct set spelled once (`model::labels`), the texts
//! end to end in a few large buffers.
//!
//! A label set per key used to cost a string per label name and value plus the list
//! (seven allocations for three labels); spelled into a shared buffer it costs its text
//! and a 12-byte span. The sets handed out to the merge ([`LabelSets::get`]) share the
//! buffer they are in, so a buffer must not change once a set in it is handed out: new
//! sets go into an open buffer, which [`LabelSets::seal`] freezes (the index does so
//! after each file's update), and a buffer is sealed before it outgrows [`BUFFER`].

use crate::model::LabelSet;
use crate::model::labels::spell;
use hashbrown::HashTable;
use std::sync::Arc;

/// The size past which the open buffer is sealed and another started.
const BUFFER: usize = 1 << 20;

/// Where one set's text is.
#[derive(Clone, Copy, Debug)]
struct Span {
    buffer: u32,
    start: u32,
    /// The length, with the top bit set when some name is quoted.
    len: u32,
}

const QUOTED: u32 = 1 << 31;

/// Label sets by dense id.
#[derive(Debug, Default)]
pub struct LabelSets {
    /// Buffers that no longer change, shared with the sets handed out.
    sealed: Vec<Arc<str>>,
    /// The buffer being filled (index `sealed.len()`).
    open: String,
    spans: Vec<Span>,
    /// Ids, found by the hash of their text.
    ids: HashTable<u32>,
    /// Where a candidate is spelled.
    scratch: String,
}

fn hash(text: &str) -> u64 {
    super::hash_bytes(0, text.as_bytes())
}

impl LabelSets {
    /// The id of the set of `pairs` (sorted by name, names distinct), adding it if new;
    /// `None` when its text would not fit a span (2 GiB, more than any key holds).
    pub fn intern<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<u32> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let quoted = spell(&mut scratch, pairs);
        let id = self.intern_spelled(&scratch, quoted);
        self.scratch = scratch;
        id
    }

    fn intern_spelled(&mut self, text: &str, quoted: bool) -> Option<u32> {
        let h = hash(text);
        if let Some(&id) = self.ids.find(h, |&id| self.text(id) == text) {
            return Some(id);
        }
        let len = u32::try_from(text.len()).ok().filter(|l| l & QUOTED == 0)?;
        if !self.open.is_empty() && self.open.len() + text.len() > BUFFER {
            self.seal();
        }
        let span = Span {
            buffer: u32::try_from(self.sealed.len()).ok()?,
            start: u32::try_from(self.open.len()).ok()?,
            len: if quoted { len | QUOTED } else { len },
        };
        let id = u32::try_from(self.spans.len()).ok()?;
        self.open.push_str(text);
        self.spans.push(span);
        let (sealed, open, spans) = (&self.sealed, &self.open, &self.spans);
        let rehash = |&i: &u32| hash(text_of(sealed, open, spans, i));
        self.ids.insert_unique(h, id, rehash);
        Some(id)
    }

    /// Freezes the open buffer, so the sets in it can be handed out shared.
    pub fn seal(&mut self) {
        if !self.open.is_empty() {
            let text = std::mem::take(&mut self.open);
            self.sealed.push(Arc::from(text));
        }
    }

    /// The spelled text of set `id` (empty for an unknown id).
    pub fn text(&self, id: u32) -> &str {
        text_of(&self.sealed, &self.open, &self.spans, id)
    }

    /// Set `id`, sharing its buffer; a set still in the open buffer (not sealed since it
    /// was added) gets a copy of its text.
    pub fn get(&self, id: u32) -> LabelSet {
        let Some(span) = self.spans.get(id as usize) else {
            return LabelSet::new([]);
        };
        let quoted = span.len & QUOTED != 0;
        match self.sealed.get(span.buffer as usize) {
            Some(buffer) => {
                LabelSet::in_shared(buffer.clone(), span.start, span.len & !QUOTED, quoted)
            }
            None => LabelSet::from_spelled(self.text(id), quoted),
        }
    }

    /// How many distinct sets.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

fn text_of<'a>(sealed: &'a [Arc<str>], open: &'a str, spans: &[Span], id: u32) -> &'a str {
    let Some(span) = spans.get(id as usize) else {
        return "";
    };
    let buffer = sealed.get(span.buffer as usize).map_or(open, |b| &**b);
    let start = span.start as usize;
    buffer
        .get(start..start + (span.len & !QUOTED) as usize)
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_sets_get_one_id_and_share_a_sealed_buffer() {
        let mut sets = LabelSets::default();
        let a = sets.intern([("a", "1"), ("b", "2")]).unwrap();
        let b = sets.intern([("a", "1")]).unwrap();
        assert_eq!(sets.intern([("a", "1"), ("b", "2")]), Some(a));
        assert_ne!(a, b);
        // Not sealed yet: a copy.
        assert_eq!(sets.get(a).text(), r#"a="1",b="2""#);
        sets.seal();
        let (ga, gb) = (sets.get(a), sets.get(b));
        assert!(Arc::ptr_eq(ga.parts().0, gb.parts().0));
        assert_eq!(gb.text(), r#"a="1""#);
        let q = sets.intern([("a.b", "")]).unwrap();
        sets.seal();
        assert!(sets.get(q).has_quoted_names());
        assert_eq!(sets.len(), 3);
        assert_eq!(sets.get(99).text(), "");
    }

    #[test]
    fn a_full_buffer_is_sealed_before_it_grows() {
        let mut sets = LabelSets::default();
        let big = "x".repeat(BUFFER / 2 + 1);
        let first = sets.intern([("a", big.as_str())]).unwrap();
        let second = sets.intern([("b", big.as_str())]).unwrap();
        sets.seal();
        assert!(!Arc::ptr_eq(
            sets.get(first).parts().0,
            sets.get(second).parts().0
        ));
        assert_eq!(sets.text(second).len(), big.len() + 4);
    }
}
