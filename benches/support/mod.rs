//! Deterministic benchmark directories in prometheus_client's format, written with our
//! writer so criterion benches need no Python.
//!
//! Each worker writes the same mix as `benches/compare.py` (per 1,000 entries: a counter
//! with 100 label sets, a histogram with 50 label sets of 15 buckets and a sum, a
//! `livesum` gauge and an `all` gauge with 50 label sets each).

use multiproc_exporter::write::DbWriter;
use std::path::Path;

/// A benchmark scale: `workers` processes with about `entries` entries each.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub name: &'static str,
    pub workers: usize,
    pub entries: usize,
}

pub const S: Scale = Scale {
    name: "S",
    workers: 4,
    entries: 100,
};
pub const M: Scale = Scale {
    name: "M",
    workers: 64,
    entries: 1_000,
};
pub const L: Scale = Scale {
    name: "L",
    workers: 64,
    entries: 10_000,
};

const BOUNDS: [&str; 15] = [
    "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1.0", "2.5", "5.0",
    "7.5", "10.0", "+Inf",
];

/// Writes `scale` into `dir` (which must exist and be empty).
pub fn generate(dir: &Path, scale: Scale) {
    let units = (scale.entries / 1_000).max(1);
    let per = |n: usize| {
        if scale.entries < 1_000 {
            (n * scale.entries / 1_000).max(1)
        } else {
            n * units
        }
    };
    for w in 0..scale.workers {
        let pid = 10_000 + w;
        let mut counter = DbWriter::open(&dir.join(format!("counter_{pid}.db"))).unwrap();
        for i in 0..per(100) {
            let path = format!("/api/v1/resource/{}", i / 5);
            let status = ["200", "201", "404", "500", "503"][i % 5];
            counter
                .set_sample(
                    "http_requests",
                    "http_requests_total",
                    &[("path", &path), ("status", status)],
                    "Requests served.",
                    (w * 7 + i) as f64,
                    0.0,
                )
                .unwrap();
        }
        let mut hist = DbWriter::open(&dir.join(format!("histogram_{pid}.db"))).unwrap();
        for i in 0..per(50) {
            let handler = format!("handler_{i}");
            hist.set_sample(
                "latency_seconds",
                "latency_seconds_sum",
                &[("handler", &handler)],
                "Request latency.",
                (w + i) as f64 * 0.125,
                0.0,
            )
            .unwrap();
            for (b, le) in BOUNDS.iter().enumerate() {
                hist.set_sample(
                    "latency_seconds",
                    "latency_seconds_bucket",
                    &[("handler", &handler), ("le", le)],
                    "Request latency.",
                    ((w + b + i) % 3) as f64,
                    0.0,
                )
                .unwrap();
            }
        }
        let mut livesum = DbWriter::open(&dir.join(format!("gauge_livesum_{pid}.db"))).unwrap();
        let mut all = DbWriter::open(&dir.join(format!("gauge_all_{pid}.db"))).unwrap();
        for i in 0..per(50) {
            let queue = format!("queue_{i}");
            livesum
                .set_sample(
                    "inprogress",
                    "inprogress",
                    &[("queue", &queue)],
                    "In progress.",
                    (i % 4) as f64,
                    0.0,
                )
                .unwrap();
            all.set_sample(
                "worker_rss_bytes",
                "worker_rss_bytes",
                &[("pool", &queue)],
                "Resident memory.",
                (1 << 20) as f64 * (w + 1) as f64,
                0.0,
            )
            .unwrap();
        }
    }
}

/// The kinds of values [`spell_values`] makes.
#[derive(Clone, Copy, Debug)]
pub enum Spell {
    /// Integral counts as merged counters and buckets hold them: mostly below 1e6, a
    /// tenth from 1e6 up (Go's exponent form).
    Counts,
    /// Sums and gauges: decimals of 1 to 17 digits from 1e-6 to 1e6, a fifth negative.
    Measured,
    /// Random bit patterns (finite): mostly 16-17 digits and far exponents.
    Bits,
}

/// `n` seeded values of one kind (splitmix64, so every run spells the same values).
pub fn spell_values(kind: Spell, n: usize) -> Vec<f64> {
    let mut state = 0x5EED_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut values = Vec::with_capacity(n);
    while values.len() < n {
        let r = next();
        let x = match kind {
            Spell::Counts if r % 10 == 0 => (next() % 10_000_000_000) as f64,
            Spell::Counts => (next() % 1_000_000) as f64,
            Spell::Measured => {
                let digits = 1 + next() % 17;
                let mantissa = (next() % 10u64.pow(digits as u32)) as f64;
                let x = mantissa * 10f64.powi((next() % 13) as i32 - 6 - digits as i32);
                if r % 5 == 0 { -x } else { x }
            }
            Spell::Bits => f64::from_bits(r),
        };
        if x.is_finite() {
            values.push(x);
        }
    }
    values
}
