//! Fault injection points for the tests that prove crash safety and the panic policy.
//!
//! A point is a named place in the code (`testpoint::crash("temp_synced")`). The test
//! suite runs the real binary with `MPE_TEST_CRASH_AT=<point>[:<n>]` (abort the process
//! the n-th time `point` is reached, default the first) or `MPE_TEST_PANIC_AT=<point>[:<n>]`
//! (panic there instead). The variables are read once per process; without them a point
//! costs one load of an initialised cell, so the points stay in release builds, which are
//! what the tests run.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// A parsed `<point>[:<n>]` and how often its point was reached.
struct Spec {
    point: String,
    nth: u64,
    hits: AtomicU64,
}

impl Spec {
    fn from_env(var: &str) -> Option<Spec> {
        let spec = std::env::var(var).ok()?;
        let (point, n) = spec.split_once(':').unwrap_or((&spec, "1"));
        Some(Spec {
            point: point.to_owned(),
            nth: n.parse().unwrap_or(1),
            hits: AtomicU64::new(0),
        })
    }

    /// Whether this reach of `point` is the one to fail.
    fn fires(&self, point: &str) -> bool {
        self.point == point && self.hits.fetch_add(1, Ordering::SeqCst) + 1 == self.nth
    }
}

/// Whether the point named by the variable `var` (read once, into `spec`) is `point`
/// and this is the reach to fail.
fn fires(spec: &OnceLock<Option<Spec>>, var: &str, point: &str) -> bool {
    spec.get_or_init(|| Spec::from_env(var))
        .as_ref()
        .is_some_and(|s| s.fires(point))
}

/// Aborts the process here if `MPE_TEST_CRASH_AT` names this point (and this reach).
pub fn crash(point: &str) {
    static SPEC: OnceLock<Option<Spec>> = OnceLock::new();
    if fires(&SPEC, "MPE_TEST_CRASH_AT", point) {
        std::process::abort();
    }
}

/// Panics here if `MPE_TEST_PANIC_AT` names this point (and this reach).
pub fn panic(point: &str) {
    static SPEC: OnceLock<Option<Spec>> = OnceLock::new();
    if fires(&SPEC, "MPE_TEST_PANIC_AT", point) {
        panic!("test point {point} reached (MPE_TEST_PANIC_AT)");
    }
}
