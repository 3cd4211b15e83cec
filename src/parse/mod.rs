//! Stage 3: turn the bytes of one file into indexed entries.
//!
//! Parsing is incremental: [`FileIndex`] remembers how far a file has been framed (with
//! the framer of [`crate::format`]), so a later read only frames the new tail and
//! re-reads values at known offsets; keys are decoded once per distinct key by
//! [`KeyTable`], never once per scrape, and kept compactly (what surrounds the labels of a
//! key text shared, the rest end to end in one buffer; label sets spelled into shared
//! buffers by [`LabelSets`]).
//!
//! Everything here is pure over `&[u8]` and never panics: the bytes come from files that
//! other processes write while we read, and from files that are simply garbage.

mod index;
mod keys;
mod labelsets;
mod texts;

pub use index::{FileIndex, Indexed};
pub use keys::{Interner, KeyInfo, KeyTable, Le, py_float};
pub use labelsets::LabelSets;

/// The hash of `bytes` (with `seed`) for the tables of ids ([`LabelSets`] and the key
/// texts), which keep no hashes and work them out again when they grow: word by word in
/// a plain loop, because it runs for every key of every new file, also in the debug
/// builds the tests run (where `FxHasher`'s byte loop costs several times more).
fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (seed ^ bytes.len() as u64).wrapping_mul(K);
    let mut i = 0;
    while i + 8 <= bytes.len() {
        let b = &bytes[i..i + 8];
        let word = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        h = (h ^ word).wrapping_mul(K).rotate_left(26);
        i += 8;
    }
    let mut last = 0u64;
    let mut shift = 0;
    while i < bytes.len() {
        last |= u64::from(bytes[i]) << shift;
        shift += 8;
        i += 1;
    }
    h = (h ^ last).wrapping_mul(K);
    h ^ (h >> 29)
}
