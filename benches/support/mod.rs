//! Deterministic benchmark directories in prometheus_client's format, written with our
//! writer so criterion benches need no Python.
//!
//! The shape is the one of `benches/shape.py` (which real prometheus_client writers
//! write for `benches/compare.py`), key for key: L is the L of DESIGN section 6 (64
//! writers, 16 of them dead and marked, all 10 gauge modes: 752 files, 628,000 entries,
//! ~112 MB used, 88,512 output samples, ~7.7 MB of text); S and M are the same shape with
//! a hundredth and a tenth of the label sets per family. `shape.py` explains the choices;
//! `tests/it/bench_shape.rs` checks that the two generators write the same files, keys
//! and merged values. Change both together.

use multiproc_exporter::write::DbWriter;
use std::collections::HashMap;
use std::path::Path;

/// A benchmark scale: `workers` writers, the last `dead` of them dead (their live-mode
/// gauge files removed), each family with its label sets at L divided by `divisor`.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub name: &'static str,
    pub workers: usize,
    pub dead: usize,
    pub divisor: usize,
}

pub const S: Scale = Scale {
    name: "S",
    workers: 4,
    dead: 1,
    divisor: 100,
};
pub const M: Scale = Scale {
    name: "M",
    workers: 64,
    dead: 16,
    divisor: 10,
};
pub const L: Scale = Scale {
    name: "L",
    workers: 64,
    dead: 16,
    divisor: 1,
};

/// Writer `w` uses the identifier (pid) `FIRST_ID + w`.
pub const FIRST_ID: usize = 10_000;

/// The default buckets of prometheus_client, as `floatToGoString` spells them in `le`.
const BUCKETS: [(f64, &str); 15] = [
    (0.005, "0.005"),
    (0.01, "0.01"),
    (0.025, "0.025"),
    (0.05, "0.05"),
    (0.075, "0.075"),
    (0.1, "0.1"),
    (0.25, "0.25"),
    (0.5, "0.5"),
    (0.75, "0.75"),
    (1.0, "1.0"),
    (2.5, "2.5"),
    (5.0, "5.0"),
    (7.5, "7.5"),
    (10.0, "10.0"),
    (f64::INFINITY, "+Inf"),
];

const GAUGE_MODES: [&str; 10] = [
    "all",
    "liveall",
    "min",
    "livemin",
    "max",
    "livemax",
    "sum",
    "livesum",
    "mostrecent",
    "livemostrecent",
];

/// Shared children of these gauges that are created but never set (at L).
const NEVER_SET: [(&str, usize); 2] = [("mostrecent", 13), ("livemostrecent", 12)];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Histogram,
    Summary,
    Gauge(&'static str),
}

/// One metric family of every writer (see `FAMILIES` in `shape.py`).
struct Family {
    kind: Kind,
    name: String,
    help: String,
    labels: &'static [&'static str],
    /// Value choices of the labels after the first.
    choices: &'static [&'static [&'static str]],
    /// Label sets at L, and how many of them are the writer's own.
    sets: usize,
    own: usize,
}

fn families() -> Vec<Family> {
    let fam = |kind, name: &str, help: &str, labels, choices, sets, own| Family {
        kind,
        name: name.to_owned(),
        help: help.to_owned(),
        labels,
        choices,
        sets,
        own,
    };
    let mut v = vec![
        fam(
            Kind::Counter,
            "http_requests",
            "HTTP requests served, by route.",
            &["handler", "method", "status"],
            &[
                &["GET", "POST", "PUT", "DELETE", "PATCH"],
                &["200", "201", "400", "404", "500", "503"],
            ],
            1800,
            178,
        ),
        fam(
            Kind::Counter,
            "db_queries",
            "Database queries run.",
            &["operation", "table"],
            &[&["select", "insert", "update", "delete"]],
            508,
            50,
        ),
        fam(
            Kind::Counter,
            "cache_operations",
            "Cache lookups and stores.",
            &["cache", "operation", "result"],
            &[&["get", "set"], &["hit", "miss"]],
            200,
            20,
        ),
        fam(
            Kind::Histogram,
            "http_request_duration_seconds",
            "HTTP request latency, seconds.",
            &["handler", "method"],
            &[&["GET", "POST", "PUT", "DELETE"]],
            260,
            26,
        ),
        fam(
            Kind::Histogram,
            "db_query_duration_seconds",
            "Database query latency in seconds.",
            &["operation", "table"],
            &[&["select", "insert", "update", "delete"]],
            52,
            5,
        ),
        fam(
            Kind::Summary,
            "http_response_size_bytes",
            "HTTP response body sizes in bytes.",
            &["handler", "method"],
            &[&["GET", "POST", "PUT", "DELETE", "PATCH"]],
            500,
            50,
        ),
    ];
    for mode in GAUGE_MODES {
        v.push(fam(
            Kind::Gauge(mode),
            &format!("pool_connections_{mode}"),
            &format!("Connections of the pool ({mode})."),
            &["pool", "state"],
            &[&["idle", "busy", "waiting"]],
            150,
            15,
        ));
    }
    v
}

/// The first label's value stem, by label name.
fn stem(label: &str) -> &'static str {
    match label {
        "handler" => "/api/orders/",
        "operation" => "orders.by_customer.",
        "cache" => "session-tokens-",
        "pool" => "pg-main-",
        _ => unreachable!("no stem for {label}"),
    }
}

/// The label values of label set `i` of `f` (of `n`, the last `own` the writer's own).
fn label_values(f: &Family, i: usize, n: usize, own: usize, ident: usize) -> Vec<String> {
    let mut vals = Vec::new();
    let mut rest = i;
    for ch in f.choices.iter().rev() {
        vals.push(ch[rest % ch.len()].to_owned());
        rest /= ch.len();
    }
    let stem = stem(f.labels[0]);
    vals.push(if i < n - own {
        format!("{stem}{rest}")
    } else {
        format!("{stem}w{ident}-{rest}")
    });
    vals.reverse();
    vals
}

/// What writer `w` observed on histogram or summary label set `i`.
fn observations(kind: Kind, i: usize, w: usize) -> Vec<f64> {
    if kind == Kind::Histogram {
        (0..1 + (i + w) % 3)
            .map(|j| ((i * 31 + w * 17 + j * 7) % 1200) as f64 / 100.0)
            .collect()
    } else {
        (0..1 + (i + w) % 2)
            .map(|j| (100 + (i * 53 + w * 11 + j) % 5000) as f64)
            .collect()
    }
}

/// The value writer `w` sets on gauge label set `i`, or `None`: never set.
fn gauge_value(scale: Scale, mode: &str, i: usize, w: usize, shared: bool) -> Option<f64> {
    if mode.ends_with("mostrecent") {
        let never = NEVER_SET.iter().find(|(m, _)| *m == mode).unwrap().1 / scale.divisor;
        if shared && i < never {
            return None;
        }
        return Some(if shared {
            (i % 50) as f64 + 0.5
        } else {
            w as f64 + 0.5
        });
    }
    if mode.ends_with("all") {
        return Some((w * 1000 + i) as f64);
    }
    Some(((i * 3 + w * 5) % 101) as f64 * 0.25)
}

/// Writes `scale` into `dir` (which must exist and be empty).
pub fn generate(dir: &Path, scale: Scale) {
    let families = families();
    for w in 0..scale.workers {
        let ident = FIRST_ID + w;
        let dead = w >= scale.workers - scale.dead;
        // Files in the order the writer opens them (at its first entry of each).
        let mut files: HashMap<String, DbWriter> = HashMap::new();
        for f in &families {
            let prefix = match f.kind {
                Kind::Counter => "counter".to_owned(),
                Kind::Histogram => "histogram".to_owned(),
                Kind::Summary => "summary".to_owned(),
                // mark_process_dead removed these files of a dead writer.
                Kind::Gauge(mode) if dead && mode.starts_with("live") => continue,
                Kind::Gauge(mode) => format!("gauge_{mode}"),
            };
            let file = files.entry(prefix.clone()).or_insert_with(|| {
                DbWriter::open(&dir.join(format!("{prefix}_{ident}.db"))).unwrap()
            });
            let n = (f.sets / scale.divisor).max(1);
            let own = f.own / scale.divisor;
            for i in 0..n {
                let values = label_values(f, i, n, own, ident);
                let labels: Vec<(&str, &str)> = f
                    .labels
                    .iter()
                    .copied()
                    .zip(values.iter().map(String::as_str))
                    .collect();
                let mut set = |suffix: &str, le: Option<&str>, value: f64, ts: f64| {
                    let mut labels = labels.clone();
                    labels.extend(le.map(|le| ("le", le)));
                    let name = format!("{}{suffix}", f.name);
                    file.set_sample(&f.name, &name, &labels, &f.help, value, ts)
                        .unwrap();
                };
                match f.kind {
                    Kind::Counter => set("_total", None, (1 + (i * 7 + w * 13) % 997) as f64, 0.0),
                    Kind::Histogram => {
                        let obs = observations(f.kind, i, w);
                        let mut counts = [0.0; BUCKETS.len()];
                        let mut sum = 0.0;
                        for v in obs {
                            sum += v;
                            counts[BUCKETS.iter().position(|b| v <= b.0).unwrap()] += 1.0;
                        }
                        set("_sum", None, sum, 0.0);
                        for (b, count) in BUCKETS.iter().zip(counts) {
                            set("_bucket", Some(b.1), count, 0.0);
                        }
                    }
                    Kind::Summary => {
                        let obs = observations(f.kind, i, w);
                        set("_count", None, obs.len() as f64, 0.0);
                        set("_sum", None, obs.iter().fold(0.0, |a, v| a + v), 0.0);
                    }
                    Kind::Gauge(mode) => {
                        match gauge_value(scale, mode, i, w, i < n - own) {
                            // A set mostrecent gauge carries the time it was set.
                            Some(v) if mode.ends_with("mostrecent") => {
                                set("", None, v, 1.8e9 + w as f64)
                            }
                            Some(v) => set("", None, v, 0.0),
                            None => set("", None, 0.0, 0.0),
                        }
                    }
                }
            }
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
