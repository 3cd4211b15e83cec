//! Correctly rounded floating-point sums whose result does not depend on the order of
//! the terms.
//!
//! prometheus_client adds file values in directory order with plain `+=`, so its last
//! bits depend on readdir order. We read files in sorted order, compact dead workers into
//! archives and restart; with plain addition any of those could move a counter down by
//! an ulp, which Prometheus reads as a reset. An exact sum (Shewchuk's algorithm, as in
//! Python's `math.fsum`) is the same whatever the grouping, so re-association can never
//! make a counter go backwards.

use smallvec::SmallVec;

/// An exact running sum of `f64` terms.
#[derive(Clone, Debug, Default)]
pub struct ExactSum {
    /// Non-overlapping partial sums, increasing in magnitude.
    partials: SmallVec<[f64; 2]>,
    /// Sum of the infinite and NaN terms (and of overflowed partials).
    special: f64,
    /// Whether `special` holds anything.
    has_special: bool,
}

impl ExactSum {
    /// An empty sum (0.0).
    pub fn new() -> ExactSum {
        ExactSum::default()
    }

    /// Adds one term.
    #[inline]
    pub fn add(&mut self, value: f64) {
        // Most sums of a scrape (counts, bucket counts, byte gauges) stay one partial: a
        // two-sum with no rounding error. Such a term takes this path; the rest, and
        // anything that overflows, the general one, which would end the same way here.
        if value.is_finite() && self.partials.len() <= 1 {
            let Some(&y) = self.partials.first() else {
                self.partials.push(value);
                return;
            };
            let hi = value + y;
            let (big, small) = if value.abs() < y.abs() {
                (y, value)
            } else {
                (value, y)
            };
            if hi.is_finite() && small - (hi - big) == 0.0 {
                self.partials[0] = hi;
                return;
            }
        }
        self.add_general(value);
    }

    /// Shewchuk's step: merges the term into the non-overlapping partials.
    fn add_general(&mut self, value: f64) {
        if !value.is_finite() {
            self.special += value;
            self.has_special = true;
            return;
        }
        let mut x = value;
        let mut kept = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        self.partials.truncate(kept);
        if x.is_finite() {
            self.partials.push(x);
        } else {
            // Intermediate overflow: the true sum is beyond f64 as well.
            self.special += x;
            self.has_special = true;
        }
    }

    /// The correctly rounded sum. Never `-0.0`, as a sum starting from `0.0` is not.
    pub fn value(&self) -> f64 {
        if self.has_special {
            return self.special;
        }
        let p = &self.partials;
        let mut n = p.len();
        if n == 0 {
            return 0.0;
        }
        n -= 1;
        let mut hi = p[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = p[n];
            hi = x + y;
            let yr = hi - x;
            lo = y - yr;
            if lo != 0.0 {
                break;
            }
        }
        // Round half-even correctly when the rest of the partials push it over.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            let yr = x - hi;
            if y == yr {
                hi = x;
            }
        }
        hi + 0.0
    }
}

impl ExactSum {
    /// The sum rounded toward +inf: never below the exact sum. Archives store this, so
    /// folding terms into them can only keep or raise a counter, never lower it.
    pub fn value_up(&self) -> f64 {
        let v = self.value();
        if !v.is_finite() {
            return v;
        }
        let mut rest = self.clone();
        rest.add(-v);
        if rest.value() > 0.0 { v.next_up() } else { v }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sum(values: &[f64]) -> f64 {
        let mut s = ExactSum::new();
        for &v in values {
            s.add(v);
        }
        s.value()
    }

    #[test]
    fn rounding_up_never_loses() {
        let mut s = ExactSum::new();
        for v in [0.1, 0.2] {
            s.add(v);
        }
        // 0.1 + 0.2 = 0.3000000000000000166..., nearest is 0.30000000000000004 (above).
        assert!(s.value_up() >= s.value());
        let mut t = ExactSum::new();
        t.add(1.0);
        t.add(1e-30);
        assert_eq!(t.value(), 1.0);
        assert_eq!(t.value_up(), 1.0f64.next_up());
        let mut u = ExactSum::new();
        u.add(3.0);
        assert_eq!(u.value_up(), 3.0);
    }

    #[test]
    fn exact_where_plain_addition_is_not() {
        assert_eq!(sum(&[0.1; 10]), 1.0);
        assert_eq!(sum(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(sum(&[]), 0.0);
        assert!(sum(&[-0.0]).is_sign_positive());
        assert_eq!(sum(&[f64::INFINITY, 1.0]), f64::INFINITY);
        assert!(sum(&[f64::INFINITY, f64::NEG_INFINITY]).is_nan());
        assert!(sum(&[f64::NAN, 1.0]).is_nan());
    }

    proptest! {
        /// The one-partial fast path of `add` leaves exactly what the general step
        /// would.
        #[test]
        fn fast_path_changes_nothing(values in proptest::collection::vec(prop_oneof![
            -1e6f64..1e6,
            (0u32..1000).prop_map(f64::from),
            any::<f64>(),
            Just(f64::MAX),
            Just(0.1),
        ], 0..40)) {
            let mut fast = ExactSum::new();
            let mut general = ExactSum::new();
            for &v in &values {
                fast.add(v);
                general.add_general(v);
                let bits = |s: &ExactSum| s.partials.iter().map(|p| p.to_bits()).collect::<Vec<_>>();
                prop_assert_eq!(bits(&fast), bits(&general));
                prop_assert_eq!(fast.has_special, general.has_special);
                prop_assert_eq!(fast.special.to_bits(), general.special.to_bits());
            }
        }

        #[test]
        fn order_does_not_matter(mut values in proptest::collection::vec(-1e12f64..1e12, 0..40), seed in any::<u64>()) {
            let a = sum(&values);
            // A deterministic shuffle.
            let mut s = seed | 1;
            for i in (1..values.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                values.swap(i, (s % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(a.to_bits(), sum(&values).to_bits());
        }

        #[test]
        fn integers_are_exact(values in proptest::collection::vec(0u32..1_000_000, 0..100)) {
            let floats: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
            let want: u64 = values.iter().map(|&v| u64::from(v)).sum();
            prop_assert_eq!(sum(&floats), want as f64);
        }
    }
}
