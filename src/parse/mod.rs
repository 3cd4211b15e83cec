//! Stage 3: turn the bytes of one file into indexed entries.
//!
//! Parsing is incremental: [`FileIndex`] remembers how far a file has been framed (with
//! the framer of [`crate::format`]), so a later read only frames the new tail and
//! re-reads values at known offsets; keys are decoded once per distinct key by
//! [`KeyTable`], never once per scrape.
//!
//! Everything here is pure over `&[u8]` and never panics: the bytes come from files that
//! other processes write while we read, and from files that are simply garbage.

mod index;
mod keys;

pub use index::{FileIndex, Indexed};
pub use keys::{Interner, KeyInfo, KeyTable, Le, py_float};
