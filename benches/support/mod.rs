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
