//! Fuzz target: the content of one `.db` file, parsed as the sidecar parses it.
//! The checks are `multiproc_exporter_fuzz::check_file`; see docs/fuzzing.md.

fn main() {
    afl::fuzz!(|data: &[u8]| multiproc_exporter_fuzz::check_file(data));
}
