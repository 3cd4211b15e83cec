//! The key texts of a key table, kept compactly and found by their bytes.
//!
//! A key reads `["metric", "sample", {labels}, "help"]`: what surrounds the labels
//! (the names before, the help text after) is the same for every series of a metric,
//! and help texts are long. So a text is cut at its first `{` and its last `}` into a
//! head, a middle and a tail; heads and tails are interned (a pair of them is a
//! *frame*), and only the middle is stored per key, end to end with the others in one
//! buffer. Any cut reproduces the text exactly, so a key whose names or help hold
//! braces costs more, never wrong bytes. The table of ids holds 4 bytes per slot: a
//! key is found by the hash of its frame and middle.

use super::keys::Interner;
use hashbrown::HashTable;
use rustc_hash::FxHashMap;
use std::cell::Cell;

/// Key texts by dense id.
#[derive(Debug, Default)]
pub struct Texts {
    heads: Interner<Box<[u8]>>,
    tails: Interner<Box<[u8]>>,
    /// `(head, tail)` → frame id, and back.
    frames: FxHashMap<(u32, u32), u32>,
    frame_parts: Vec<(u32, u32)>,
    /// Per id: its frame.
    frame_of: Vec<u32>,
    /// The middles, end to end, and where each id's ends.
    middles: Vec<u8>,
    ends: Vec<usize>,
    /// Ids by the hash of frame and middle.
    ids: HashTable<u32>,
    /// The frame of the last text found or added, when it has braces: the keys of one
    /// file mostly share it, and a text that starts with its head and ends with its tail
    /// is cut there without a scan (see [`Texts::cut`]).
    last: Cell<Option<Frame>>,
    /// The id after the last one found or added: workers write the same keys in the same
    /// order, so the keys of the next file mostly come in id order, found by one
    /// comparison and no hashing.
    next: Cell<u32>,
}

/// `(head, middle, tail)` of a text.
fn cut(raw: &[u8]) -> (&[u8], &[u8], &[u8]) {
    // Plain loops: this runs for every key of every file on a first read, also in the
    // debug builds the tests run.
    let mut open = 0;
    while open < raw.len() && raw[open] != b'{' {
        open += 1;
    }
    let mut close = raw.len();
    while close > open + 1 && raw[close - 1] != b'}' {
        close -= 1;
    }
    if close > open + 1 {
        (&raw[..=open], &raw[open + 1..close - 1], &raw[close - 1..])
    } else {
        (&[], raw, &[])
    }
}

fn hash(frame: u32, middle: &[u8]) -> u64 {
    super::hash_bytes(u64::from(frame), middle)
}

fn middle_at<'a>(middles: &'a [u8], ends: &[usize], id: u32) -> &'a [u8] {
    let i = id as usize;
    let Some(&end) = ends.get(i) else {
        return &[];
    };
    let start = match i.checked_sub(1) {
        Some(p) => ends.get(p).copied().unwrap_or(0),
        None => 0,
    };
    middles.get(start..end).unwrap_or(&[])
}

/// A frame: its id, and the ids of its head and tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Frame {
    id: u32,
    head: u32,
    tail: u32,
}

/// A text cut into head, middle and tail, with its frame when that is known already.
struct Cut<'a> {
    head: &'a [u8],
    middle: &'a [u8],
    tail: &'a [u8],
    frame: Option<Frame>,
}

/// What a lookup found out about a text, for adding it without working it out again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    head: Option<u32>,
    tail: Option<u32>,
    /// The frame, and the hash of frame and middle, when the frame is known.
    frame: Option<(u32, u64)>,
}

impl Texts {
    /// `raw` cut as [`cut`] cuts it, with the frame when the last one fits: a head that
    /// ends in its only `{` and a tail that starts with its only `}` are where `cut`
    /// would cut a text that starts with the one and ends with the other.
    fn cut<'a>(&self, raw: &'a [u8]) -> Cut<'a> {
        if let Some(last) = self.last.get() {
            let (head, tail) = (&**self.heads.get(last.head), &**self.tails.get(last.tail));
            if raw.len() >= head.len() + tail.len() && raw.starts_with(head) && raw.ends_with(tail)
            {
                let (head, rest) = raw.split_at(head.len());
                let (middle, tail) = rest.split_at(rest.len() - tail.len());
                return Cut {
                    head,
                    middle,
                    tail,
                    frame: Some(last),
                };
            }
        }
        let (head, middle, tail) = cut(raw);
        Cut {
            head,
            middle,
            tail,
            frame: None,
        }
    }

    /// The id `raw` was added with, or what [`Texts::push`] needs to add it.
    pub fn find(&self, raw: &[u8]) -> Result<u32, Probe> {
        let next = self.next.get();
        if self.is(next, raw) {
            self.next.set(next + 1);
            return Ok(next);
        }
        let cut = self.cut(raw);
        let middle = cut.middle;
        let (head, tail, frame) = match cut.frame {
            Some(f) => (Some(f.head), Some(f.tail), Some(f.id)),
            None => {
                let (h, t) = (self.heads.find(cut.head), self.tails.find(cut.tail));
                let f = match (h, t) {
                    (Some(h), Some(t)) => self.frames.get(&(h, t)).copied(),
                    _ => None,
                };
                if let (Some(head), Some(tail), Some(id)) = (h, t, f) {
                    self.remember(Frame { id, head, tail });
                }
                (h, t, f)
            }
        };
        let frame = frame.map(|f| (f, hash(f, middle)));
        let probe = Probe { head, tail, frame };
        let Some((frame, h)) = frame else {
            return Err(probe);
        };
        let found = self
            .ids
            .find(h, |&id| {
                self.frame_of.get(id as usize) == Some(&frame)
                    && middle_at(&self.middles, &self.ends, id) == middle
            })
            .copied()
            .ok_or(probe)?;
        self.next.set(found + 1);
        Ok(found)
    }

    /// Remembers `frame` for [`Texts::cut`], if it has braces.
    fn remember(&self, frame: Frame) {
        let braced = self.heads.get(frame.head).last() == Some(&b'{')
            && self.tails.get(frame.tail).first() == Some(&b'}');
        if braced {
            self.last.set(Some(frame));
        }
    }

    /// Adds `raw`, which [`Texts::find`] did not find (`probe` is what it said), as the
    /// next id, which is returned.
    pub fn push(&mut self, raw: &[u8], probe: Probe) -> u32 {
        let Cut {
            head, middle, tail, ..
        } = self.cut(raw);
        let (frame, h) = match probe.frame {
            Some(known) => known,
            None => {
                let parts = (
                    probe
                        .head
                        .unwrap_or_else(|| self.heads.intern(Box::from(head))),
                    probe
                        .tail
                        .unwrap_or_else(|| self.tails.intern(Box::from(tail))),
                );
                let next = self.frame_parts.len() as u32;
                let frame = *self.frames.entry(parts).or_insert(next);
                if frame == next {
                    self.frame_parts.push(parts);
                }
                self.remember(Frame {
                    id: frame,
                    head: parts.0,
                    tail: parts.1,
                });
                (frame, hash(frame, middle))
            }
        };
        let id = self.frame_of.len() as u32;
        self.frame_of.push(frame);
        self.middles.extend_from_slice(middle);
        self.ends.push(self.middles.len());
        let (frame_of, middles, ends) = (&self.frame_of, &self.middles, &self.ends);
        self.ids.insert_unique(h, id, |&i| {
            let f = frame_of.get(i as usize).copied().unwrap_or(0);
            hash(f, middle_at(middles, ends, i))
        });
        self.next.set(id + 1);
        id
    }

    /// Whether the text of `id` is `raw` (without putting it together).
    pub fn is(&self, id: u32, raw: &[u8]) -> bool {
        let Some(&(head, tail)) = self
            .frame_of
            .get(id as usize)
            .and_then(|&f| self.frame_parts.get(f as usize))
        else {
            return false;
        };
        let (head, tail) = (self.heads.get(head), self.tails.get(tail));
        let middle = middle_at(&self.middles, &self.ends, id);
        raw.len() == head.len() + middle.len() + tail.len()
            && raw.starts_with(head)
            && raw.ends_with(tail)
            && &raw[head.len()..raw.len() - tail.len()] == middle
    }

    /// The text of `id` (empty for an unknown id).
    pub fn text(&self, id: u32) -> Vec<u8> {
        let Some(&(head, tail)) = self
            .frame_of
            .get(id as usize)
            .and_then(|&f| self.frame_parts.get(f as usize))
        else {
            return Vec::new();
        };
        let (head, tail) = (self.heads.get(head), self.tails.get(tail));
        let middle = middle_at(&self.middles, &self.ends, id);
        let mut out = Vec::with_capacity(head.len() + middle.len() + tail.len());
        out.extend_from_slice(head);
        out.extend_from_slice(middle);
        out.extend_from_slice(tail);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_are_shared_and_texts_come_back_whole() {
        let mut t = Texts::default();
        let a = br#"["c", "c_total", {"a": "1"}, "Help."]"#;
        let b = br#"["c", "c_total", {"a": "2"}, "Help."]"#;
        let odd = br#"no braces"#;
        let mut add = |raw: &[u8]| {
            let probe = t.find(raw).unwrap_err();
            t.push(raw, probe)
        };
        let (ia, ib, io) = (add(a), add(b), add(odd));
        assert_eq!(
            (t.find(a), t.find(b), t.find(odd)),
            (Ok(ia), Ok(ib), Ok(io))
        );
        assert!(t.find(br#"["c", "c_total", {"a": "3"}, "Help."]"#).is_err());
        assert_eq!(t.frame_parts.len(), 2);
        assert_eq!(t.text(ib), b.to_vec());
        assert!(t.is(ib, b) && !t.is(ia, b) && !t.is(99, b));
        assert_eq!(t.text(io), odd.to_vec());
        assert!(t.text(99).is_empty());
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(texts in proptest::collection::vec(proptest::collection::vec(prop_oneof![Just(b'{'), Just(b'}'), any::<u8>()], 0..12), 1..20)) {
            let mut t = Texts::default();
            let mut ids = Vec::new();
            for raw in &texts {
                let id = match t.find(raw) {
                    Ok(id) => id,
                    Err(probe) => t.push(raw, probe),
                };
                ids.push(id);
            }
            for (raw, id) in texts.iter().zip(ids) {
                prop_assert_eq!(&t.text(id), raw);
                prop_assert_eq!(t.find(raw), Ok(id));
            }
        }
    }
}
