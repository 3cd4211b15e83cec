//! Label sets, kept as the text a sample line spells them with.
//!
//! A label set is written `name="value",...` with names in order, a value's `\`, `"`
//! and newline escaped, and a name outside the legacy character set quoted (`"a.b"="1"`,
//! the UTF-8 syntax of OpenMetrics). As long as no name is quoted, that spelling is the
//! same in every exposition format and in every name-escaping scheme but `dots` (which
//! doubles `_`), so rendering copies it whole instead of escaping every label of every
//! sample at every scrape. It is also compact: a set is one span of text, and the sets
//! the key table interns share a few large buffers ([`LabelSet::in_shared`]) instead of
//! a string per label. Iterating gives the pairs back unescaped; the spelling is
//! canonical, so two sets are equal exactly when their texts are.
//!
//! The spelling of label *values* (the three escapes) lives here, with the legacy name
//! rule, because the vocabulary carries it; the exposition formats use these functions
//! and add the name-escaping schemes (`render::escape`).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Whether `c` may appear at position `i` of a legacy label name.
pub fn is_label_rune(c: char, i: usize) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (c.is_ascii_digit() && i > 0)
}

// The loops over bytes below are plain `while` loops: they run for every label of every
// new key, also in the debug builds the tests run, where iterator adapters cost more.

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_legacy_label_name(s: &str) -> bool {
    // Legacy names are ASCII, so bytes decide.
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_alphabetic() || c == b'_' || (c.is_ascii_digit() && i > 0)) {
            return false;
        }
        i += 1;
    }
    !b.is_empty()
}

/// Appends `s` with `\\` and newline escaped, and `"` too when `quotes` is set.
pub fn push_escaped(out: &mut String, s: &str, quotes: bool) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && !(b[i] == b'\\' || b[i] == b'\n' || (quotes && b[i] == b'"')) {
        i += 1;
    }
    if i == b.len() {
        out.push_str(s);
        return;
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'"' if quotes => "\\\"",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        out.push_str(esc);
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// Appends one pair as a label set spells it; returns whether the name was quoted.
pub fn push_pair(out: &mut String, name: &str, value: &str) -> bool {
    let quoted = !is_legacy_label_name(name);
    if quoted {
        out.push('"');
        push_escaped(out, name, true);
        out.push('"');
    } else {
        out.push_str(name);
    }
    out.push_str("=\"");
    push_escaped(out, value, true);
    out.push('"');
    quoted
}

/// Appends the spelling of `pairs` (sorted by name, names distinct); returns whether
/// some name was quoted.
pub fn spell<'a>(out: &mut String, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
    let mut quoted = false;
    for (i, (name, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        quoted |= push_pair(out, name, value);
    }
    quoted
}

/// A label set: label pairs sorted by name, as one span of spelled text (see the module
/// documentation). Cheap to clone; sets from the key table share their buffer.
#[derive(Clone)]
pub struct LabelSet {
    /// The buffer holding the text (shared by many sets, or this set's own).
    buffer: Arc<str>,
    /// Where the text is in `buffer`.
    start: u32,
    len: u32,
    /// Some name is quoted (not a legacy name).
    quoted: bool,
}

impl LabelSet {
    /// The set of `pairs`, which must be sorted by name with distinct names. (A text
    /// past 4 GiB, which no key can hold, reads as the empty set.)
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> LabelSet {
        let mut text = String::new();
        let quoted = spell(&mut text, pairs);
        let len = u32::try_from(text.len()).unwrap_or(0);
        LabelSet {
            buffer: Arc::from(text),
            start: 0,
            len,
            quoted,
        }
    }

    /// The set whose spelling (as [`spell`] wrote it, with `quoted` as it returned) is
    /// `text`, in a buffer of its own.
    pub fn from_spelled(text: &str, quoted: bool) -> LabelSet {
        LabelSet {
            buffer: Arc::from(text),
            start: 0,
            len: u32::try_from(text.len()).unwrap_or(0),
            quoted,
        }
    }

    /// The set spelled at `start..start + len` of a shared buffer (as [`spell`] wrote
    /// it, with `quoted` as it returned). A span that is not a text boundary of the
    /// buffer reads as the empty set.
    pub fn in_shared(buffer: Arc<str>, start: u32, len: u32, quoted: bool) -> LabelSet {
        LabelSet {
            buffer,
            start,
            len,
            quoted,
        }
    }

    /// The buffer this set's text is in, and where: what a [`super::Layout`] keeps.
    pub fn parts(&self) -> (&Arc<str>, u32, u32) {
        (&self.buffer, self.start, self.len)
    }

    /// The borrowed view.
    pub fn labels(&self) -> Labels<'_> {
        let text = self
            .buffer
            .get(self.start as usize..self.start as usize + self.len as usize)
            .unwrap_or("");
        Labels {
            text,
            quoted: self.quoted,
        }
    }

    /// The spelled text, e.g. `a="1",b="x"`.
    pub fn text(&self) -> &str {
        self.labels().text
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether some name is quoted (not a legacy name): then only `allow-utf-8` writes
    /// the text as it is.
    pub fn has_quoted_names(&self) -> bool {
        self.quoted
    }

    /// The pairs, unescaped.
    pub fn iter(&self) -> Pairs<'_> {
        self.labels().iter()
    }
}

impl PartialEq for LabelSet {
    fn eq(&self, other: &LabelSet) -> bool {
        self.text() == other.text()
    }
}

impl Eq for LabelSet {}

impl Hash for LabelSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text().hash(state);
    }
}

impl fmt::Debug for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", self.text())
    }
}

/// A borrowed label set: its spelled text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Labels<'a> {
    text: &'a str,
    quoted: bool,
}

impl<'a> Labels<'a> {
    /// A view of text spelled by [`spell`] (`quoted` as it returned).
    pub fn from_spelled(text: &'a str, quoted: bool) -> Labels<'a> {
        Labels { text, quoted }
    }

    /// The spelled text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Whether some name is quoted.
    pub fn has_quoted_names(&self) -> bool {
        self.quoted
    }

    /// The pairs, unescaped.
    pub fn iter(&self) -> Pairs<'a> {
        Pairs {
            rest: self.text.as_bytes(),
            text: self.text,
        }
    }

    /// The spelled pairs: `(name, spelled pair, offset of the pair in the text)`, the
    /// name unescaped.
    pub fn spelled_pairs(&self) -> SpelledPairs<'a> {
        SpelledPairs {
            text: self.text,
            pos: 0,
        }
    }

    /// Orders sets as their pair lists compare (name, then value, pair by pair).
    pub fn cmp_pairs(&self, other: &Labels<'_>) -> Ordering {
        let (a, b) = (self.text.as_bytes(), other.text.as_bytes());
        let mut p = 0;
        while p < a.len() && p < b.len() && a[p] == b[p] {
            p += 1;
        }
        // Equal bytes up to `p` parse alike, so both texts are at the same place of the
        // same name or value: where both hold an ordinary byte, the pair lists differ
        // in it. A text that ends first ends after a whole pair: fewer pairs, first.
        let ordinary = |c: u8| !matches!(c, b'"' | b'=' | b',' | b'\\');
        match (a.get(p), b.get(p)) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(&x), Some(&y)) if ordinary(x) && ordinary(y) => x.cmp(&y),
            _ => self.iter().cmp(other.iter()),
        }
    }
}

/// One quoted string of a spelling starting at `pos` (at its opening quote): the
/// content as spelled and the position after the closing quote.
fn quoted_at(text: &str, pos: usize) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    if b.get(pos) != Some(&b'"') {
        return None;
    }
    let mut i = pos + 1;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' => i += 2,
            b'"' => return Some((text.get(pos + 1..i)?, i + 1)),
            _ => i += 1,
        }
    }
    None
}

/// Undoes [`push_escaped`] with quotes.
fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    Cow::Owned(out)
}

/// One pair of a spelling at `pos`: `(name as spelled, value as spelled, end)`; the
/// name is unquoted but still escaped when it was quoted.
fn pair_at(text: &str, pos: usize) -> Option<(&str, bool, &str, usize)> {
    let b = text.as_bytes();
    let (name, quoted, after_name) = if b.get(pos) == Some(&b'"') {
        let (n, end) = quoted_at(text, pos)?;
        (n, true, end)
    } else {
        let eq = pos + b.get(pos..)?.iter().position(|&c| c == b'=')?;
        (text.get(pos..eq)?, false, eq)
    };
    if b.get(after_name) != Some(&b'=') {
        return None;
    }
    let (value, end) = quoted_at(text, after_name + 1)?;
    Some((name, quoted, value, end))
}

/// The unescaped pairs of a label set.
#[derive(Clone, Debug)]
pub struct Pairs<'a> {
    text: &'a str,
    rest: &'a [u8],
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        let pos = self.text.len() - self.rest.len();
        if self.rest.is_empty() {
            return None;
        }
        let Some((name, quoted, value, end)) = pair_at(self.text, pos) else {
            self.rest = &[];
            return None;
        };
        // Past the separating comma.
        let next = (end + 1).min(self.text.len());
        self.rest = self.text.as_bytes().get(next..).unwrap_or(&[]);
        let name = if quoted {
            unescape(name)
        } else {
            Cow::Borrowed(name)
        };
        Some((name, unescape(value)))
    }
}

/// The pairs of a label set as spelled: `(name, spelled pair, offset)`.
#[derive(Clone, Debug)]
pub struct SpelledPairs<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for SpelledPairs<'a> {
    type Item = (Cow<'a, str>, &'a str, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.pos;
        if start >= self.text.len() {
            return None;
        }
        let Some((name, quoted, _, end)) = pair_at(self.text, start) else {
            self.pos = self.text.len();
            return None;
        };
        self.pos = end + 1;
        let name = if quoted {
            unescape(name)
        } else {
            Cow::Borrowed(name)
        };
        Some((name, self.text.get(start..end)?, start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(l: &LabelSet) -> Vec<(String, String)> {
        l.iter()
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn spells_like_a_sample_line() {
        let l = LabelSet::new([("a", "1"), ("b", "x\"y\\z\nw")]);
        assert_eq!(l.text(), r#"a="1",b="x\"y\\z\nw""#);
        assert!(!l.has_quoted_names());
        let q = LabelSet::new([("a.b", "1")]);
        assert_eq!(q.text(), r#""a.b"="1""#);
        assert!(q.has_quoted_names());
        assert!(LabelSet::new([]).is_empty());
    }

    #[test]
    fn orders_by_pairs_not_by_text() {
        // As text `a1=` sorts before `a=`; as pairs `a` comes first.
        let a = LabelSet::new([("a", "x")]);
        let a1 = LabelSet::new([("a1", "x")]);
        assert_eq!(a.labels().cmp_pairs(&a1.labels()), Ordering::Less);
        let short = LabelSet::new([("a", "b")]);
        let long = LabelSet::new([("a", "b "), ("c", "")]);
        assert_eq!(short.labels().cmp_pairs(&long.labels()), Ordering::Less);
    }

    #[test]
    fn a_broken_span_reads_as_empty() {
        let buf: Arc<str> = Arc::from("é");
        let l = LabelSet::in_shared(buf, 1, 1, false);
        assert_eq!(l.text(), "");
        assert_eq!(l.iter().count(), 0);
        let junk = Labels::from_spelled("a=\"1\",b", false);
        assert_eq!(junk.iter().count(), 1);
    }

    proptest! {
        #[test]
        fn round_trips(mut raw in proptest::collection::vec(("\\PC{0,6}", "\\PC{0,6}"), 0..5)) {
            raw.sort_by(|a, b| a.0.cmp(&b.0));
            raw.dedup_by(|a, b| a.0 == b.0);
            let l = LabelSet::new(raw.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            prop_assert_eq!(pairs(&l), raw.clone());
            let spelled: Vec<usize> = l.labels().spelled_pairs().map(|p| p.2).collect();
            prop_assert_eq!(spelled.len(), raw.len());
        }

        #[test]
        fn order_is_the_order_of_pair_lists(
            mut a in proptest::collection::vec(("[a-c1_.]{1,3}", "[ -~]{0,3}"), 0..3),
            mut b in proptest::collection::vec(("[a-c1_.]{1,3}", "[ -~]{0,3}"), 0..3),
        ) {
            for v in [&mut a, &mut b] {
                v.sort_by(|x, y| x.0.cmp(&y.0));
                v.dedup_by(|x, y| x.0 == y.0);
            }
            let la = LabelSet::new(a.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            let lb = LabelSet::new(b.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            prop_assert_eq!(la.labels().cmp_pairs(&lb.labels()), a.cmp(&b));
            prop_assert_eq!(la == lb, a == b);
        }
    }
}
