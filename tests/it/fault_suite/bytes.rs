//! Bad files made from real ones: the layout walked here is prometheus_client's (see
//! `reference/prometheus-client-multiprocess.md` section 2), written out independently
//! of the crate's parser so the tests do not grade it with itself.

use std::path::Path;

fn int32(b: &[u8], at: usize) -> usize {
    i32::from_ne_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

fn padding(n: usize) -> usize {
    8 - (n + 4) % 8
}

/// `used` of a file.
pub fn used(b: &[u8]) -> usize {
    int32(b, 0)
}

/// Where each entry of a current-format file ends.
pub fn entry_ends(b: &[u8]) -> Vec<usize> {
    let used = used(b);
    let mut ends = Vec::new();
    let mut pos = 8;
    while pos < used {
        let n = int32(b, pos);
        pos += 4 + n + padding(n) + 16;
        ends.push(pos);
    }
    ends
}

/// A file cut inside its last entry (as an interrupted copy leaves it: `used` still
/// claims the whole), and what of it is valid: the entries before, with `used` saying so.
pub fn cut_in_last_entry(b: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let ends = entry_ends(b);
    assert!(ends.len() >= 2, "needs two entries");
    let cut = b[..ends[ends.len() - 1] - 5].to_vec();
    let keep = ends[ends.len() - 2];
    let mut valid = b[..keep].to_vec();
    valid[..4].copy_from_slice(&(keep as i32).to_ne_bytes());
    (cut, valid)
}

/// The same entries as prometheus_client before 0.18 wrote them: 8-byte values, no
/// timestamps.
pub fn old_format(b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 8];
    let mut pos = 8;
    for end in entry_ends(b) {
        // Length, key and padding as they are; the value without its timestamp.
        out.extend_from_slice(&b[pos..end - 8]);
        pos = end;
    }
    let used = out.len() as i32;
    out[..4].copy_from_slice(&used.to_ne_bytes());
    out
}

/// prometheus_client's own `test_corruption_detected`: bytes 8..16 replaced by junk.
pub fn corrupt_first_entry(b: &mut [u8]) {
    b[8..16].copy_from_slice(b"somejunk");
}

/// `len` bytes of deterministic noise.
pub fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// An SQLite database (the foreign `.db` of prometheus_client issue 878).
pub fn sqlite(path: &Path) {
    let made = std::process::Command::new(crate::util::python())
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('create table t(x)'); c.commit()",
        ])
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

/// A one-series counter file (`{metric}_total`) with our writer: the outside sentinel.
pub fn counter_file(path: &Path, metric: &str, v: f64) {
    let mut w = multiproc_exporter::write::DbWriter::open(path).unwrap();
    w.set_sample(metric, &format!("{metric}_total"), &[], "h", v, 0.0)
        .unwrap();
}

/// FNV-1a of `b`: enough to tell whether a file's bytes changed.
pub fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}
