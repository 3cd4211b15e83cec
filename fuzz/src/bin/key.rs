//! Fuzz target: one entry's key text, decoded and re-encoded.
//! The checks are `multiproc_exporter_fuzz::check_key`; see docs/fuzzing.md.

fn main() {
    afl::fuzz!(|data: &[u8]| multiproc_exporter_fuzz::check_key(data));
}
