//! Our number spelling against prometheus_client's `floatToGoString` itself (issue 11).
//!
//! Python's `repr` breaks exact decimal ties to even, and Rust's `{:e}` broke some 16-17
//! digit ties the other way (768 in 1M random doubles, issue 11). So the values here
//! are seeded and many: random bit patterns, random short decimals, dyadic fractions
//! that fall exactly between two 16-17 digit decimals, integers of every length (the
//! fast path), and a list of edges. Python spells them all in one process.

use crate::util::python;
use multiproc_exporter::render::float::go;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[test]
fn test_issue_11_spelling_matches_prometheus_client_on_a_million_values() {
    let values = values();
    assert!(values.len() >= 1_000_000, "{} values", values.len());
    let tmp = tempfile::tempdir().unwrap();
    // Python spells while we do.
    let python = FloatToGoString::start(&values, tmp.path());
    let ours: Vec<String> = values.iter().map(|&x| go(x)).collect();
    let theirs = python.finish();
    assert_eq!(theirs.len(), values.len(), "one line per value");
    let diffs: Vec<String> = (values.iter().zip(&ours).zip(&theirs))
        .filter(|((_, ours), theirs)| ours != theirs)
        .map(|((x, ours), theirs)| {
            format!(
                "{:#018x} ({x:e}): ours {ours}, theirs {theirs}",
                x.to_bits()
            )
        })
        .collect();
    assert!(
        diffs.is_empty(),
        "{} of {} spelled differently, e.g.:\n{}",
        diffs.len(),
        values.len(),
        diffs[..diffs.len().min(20)].join("\n")
    );
    let ties = (TIES.clone().map(|i| (values[i], &ours[i])))
        .filter(|(x, spelled)| is_exact_tie(*x, spelled))
        .count();
    assert!(
        ties >= 50_000,
        "only {ties} exact ties: the tie cases are lost"
    );
}

/// prometheus_client's spelling of values, by `tests/py/spell.py` in its own process.
struct FloatToGoString {
    child: std::process::Child,
    output: PathBuf,
}

impl FloatToGoString {
    /// Writes `values` into `dir` and starts Python on them.
    fn start(values: &[f64], dir: &Path) -> FloatToGoString {
        let (input, output) = (dir.join("values.bin"), dir.join("spelled.txt"));
        // Native order: Python's `array("d")` on the same machine reads it back.
        let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_ne_bytes()).collect();
        std::fs::write(&input, bytes).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/spell.py");
        let child = Command::new(python())
            .arg(script)
            .arg(&input)
            .arg(&output)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        FloatToGoString { child, output }
    }

    /// Its spellings, one per value.
    fn finish(self) -> Vec<String> {
        let out = self.child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "spell.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&self.output).unwrap();
        text.lines().map(str::to_owned).collect()
    }
}

/// Where [`values`] puts the exact ties.
const TIES: std::ops::Range<usize> = 700_000..1_000_000;

/// About 1.2M seeded values: 400k bit patterns, 300k short decimals, 300k exact ties
/// (at [`TIES`]), 100k integers, and the edges.
fn values() -> Vec<f64> {
    let mut rng = SplitMix(0x1111);
    let mut v = Vec::with_capacity(1_300_000);
    v.extend((0..400_000).map(|_| f64::from_bits(rng.next())));
    v.extend((0..300_000).map(|_| rng.decimal()));
    v.extend((0..300_000).map(|_| rng.tie()));
    v.extend((0..100_000).map(|_| rng.integer()));
    v.extend(edges());
    v
}

/// A seeded splitmix64: the same values on every run and machine.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn sign(&mut self, x: f64) -> f64 {
        if self.next() & 1 == 0 { x } else { -x }
    }

    /// A decimal of 1 to 17 digits from 1e-30 to 1e30, as a user's value would be.
    fn decimal(&mut self) -> f64 {
        let digits = 1 + self.below(17) as u32;
        let mantissa = self.below(10u64.pow(digits));
        let exp = self.below(61) as i32 - 30;
        let x: f64 = format!("{mantissa}e{exp}").parse().unwrap();
        self.sign(x)
    }

    /// `k + j / 2^b` with `j` odd and `k` of `d` digits: exact, and its decimal has
    /// `d + b` significant digits ending in 5. With `d + b` of 17 or 18 it lies halfway
    /// between two 16 or 17 digit decimals, where most doubles need that many.
    fn tie(&mut self) -> f64 {
        loop {
            let b = 1 + self.below(18) as u32;
            let d = (16 + self.below(2) as u32).saturating_sub(b - 1);
            // k below 2^(53 - b) keeps k * 2^b + j exact.
            let (low, high) = (
                10u64.pow(d.max(1) - 1),
                (1u64 << (53 - b)).min(10u64.pow(d)),
            );
            let k = if d == 0 {
                0
            } else if low < high {
                low + self.below(high - low)
            } else {
                continue;
            };
            let j = 2 * self.below(1 << (b - 1)) + 1;
            let x = (k as f64) + (j as f64) / f64::from(1u32 << b);
            return self.sign(x);
        }
    }

    /// An integer of 1 to 20 digits: both sides of the fast path's bounds (1e6, 2^53,
    /// 1e16) and beyond.
    fn integer(&mut self) -> f64 {
        let digits = 1 + self.below(20) as u32;
        let n = (self.next() % 10u64.pow(digits.min(19))) as f64;
        self.sign(if digits == 20 { n * 10.0 } else { n })
    }
}

/// Powers of 2 and 10 with their neighbours, subnormals, integers around every bound
/// where the spelling changes form, and the special values.
// The tie literal is its double's exact value: that it needs 18 digits is the point.
#[allow(clippy::excessive_precision)]
fn edges() -> Vec<f64> {
    let step = |x: f64, d: i64| f64::from_bits(x.to_bits().wrapping_add_signed(d));
    let mut e = Vec::new();
    for exp in 1..2047u64 {
        let p = f64::from_bits(exp << 52);
        e.extend((-2..=2).map(|d| step(p, d)));
    }
    for k in -323..=308 {
        let p: f64 = format!("1e{k}").parse().unwrap();
        e.extend((-3..=3).map(|d| step(p, d)));
    }
    for b in 1..5_000u64 {
        e.extend([f64::from_bits(b), f64::from_bits((1 << 52) - b)]);
    }
    let bounds = [
        1e6,
        1e15,
        9_007_199_254_740_992.0,
        1e16,
        1e17,
        9.223_372_036_854_776e18,
    ];
    for bound in bounds {
        e.extend((-2_000..2_000).map(|d| bound + d as f64));
        e.extend((-20..20).map(|d| step(bound, d)));
    }
    for x in [1e-4, 1e-5, 0.5, 0.1, 0.125, 0.005] {
        e.extend((-20..20).map(|d| step(x, d)));
    }
    e.extend([
        0.0,
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::EPSILON,
        201_409_170_638_417.125,
    ]);
    e.extend([
        f64::INFINITY,
        f64::NAN,
        f64::from_bits(0x7FF0_0000_0000_0001),
    ]);
    let negatives: Vec<f64> = e.iter().map(|x| -x).collect();
    e.extend(negatives);
    e
}

/// Whether `x` lies exactly halfway between two decimals of as many digits as its
/// spelling `spelled` has: its exact decimal expansion (known for `x = m * 2^q` with
/// `-27 <= q` while `m * 2^q` or `m * 5^-q` fits 128 bits) has one digit more, a 5.
fn is_exact_tie(x: f64, spelled: &str) -> bool {
    let Some(exact) = exact_digits(x) else {
        return false;
    };
    exact.ends_with('5') && exact.len() == significant_digits(spelled) + 1
}

/// The significant digits of finite, non-zero `x`, exactly, when they fit 128 bits.
fn exact_digits(x: f64) -> Option<String> {
    if !x.is_finite() || x == 0.0 {
        return None;
    }
    let bits = x.abs().to_bits();
    let (exp, frac) = ((bits >> 52) as i32, bits & ((1 << 52) - 1));
    let (m, q) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | 1 << 52, exp - 1075)
    };
    let (m, q) = (m >> m.trailing_zeros(), q + m.trailing_zeros() as i32);
    let n = if q >= 0 {
        u128::from(m)
            .checked_shl(q as u32)
            .filter(|&n| n >> q == u128::from(m))?
    } else if q >= -27 {
        u128::from(m) * 5u128.pow(q.unsigned_abs())
    } else {
        return None;
    };
    Some(n.to_string().trim_end_matches('0').to_owned())
}

/// How many significant digits a spelling such as `-1.25e+06` or `0.0012` shows.
fn significant_digits(spelled: &str) -> usize {
    let mantissa = spelled.split(['e', 'E']).next().unwrap_or("");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    digits.trim_start_matches('0').trim_end_matches('0').len()
}
