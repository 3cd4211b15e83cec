//! Two threads for the CPU-bound parts of a scrape: the steady reload of values, the
//! render, the gzip of a large body.
//!
//! The machine we target has two cores, and each of those parts is a loop over
//! independent pieces (files, families, halves of a body) that waits on memory or
//! spends one core: done by the scrape's thread and one scoped helper, each takes about
//! half as long. A process allowed one core ([`std::thread::available_parallelism`]
//! reads the cgroup's CPU quota: a pod limited to 1 CPU would only be throttled by a
//! second thread) does everything on one.

use std::sync::{Mutex, OnceLock, PoisonError};

/// How many threads a scrape's work may use: two when the process may use two cores.
pub fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(2)
    })
}

/// Runs `a` on this thread and `b` on a scoped helper at the same time; `b` runs here
/// after `a` when no thread can be started (a scrape must not fail for want of one). A
/// panic in either is resumed here.
pub fn join<A, B: Send>(a: impl FnOnce() -> A, b: impl FnMut() -> B + Send) -> (A, B) {
    let b = Mutex::new(b);
    // Called once: by the helper, or here when the helper never started.
    let run_b = || (*b.lock().unwrap_or_else(PoisonError::into_inner))();
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("scrape-helper".into())
            .spawn_scoped(scope, run_b);
        let a = a();
        let b = match helper {
            Ok(helper) => helper
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => run_b(),
        };
        (a, b)
    })
}

/// Where to cut `items` in two so both parts weigh about half of `total` (the sum of
/// `weight` over them): the length of the first part.
pub fn half_by<T>(items: &[T], total: usize, weight: impl Fn(&T) -> usize) -> usize {
    let mut seen = 0;
    items
        .iter()
        .position(|item| {
            seen += weight(item);
            seen >= total / 2
        })
        .map_or(items.len(), |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_halves_run_and_keep_their_order() {
        let mut items: Vec<u32> = (0..100).collect();
        let cut = half_by(&items, 100, |_| 1);
        assert_eq!(cut, 50);
        let (mine, theirs) = items.split_at_mut(cut);
        let (a, b) = join(
            || mine.iter().sum::<u32>(),
            || {
                theirs.iter_mut().for_each(|x| *x *= 2);
                theirs.len()
            },
        );
        assert_eq!((a, b), ((0..50).sum(), 50));
        assert_eq!(items[99], 198);
        assert_eq!(items[49], 49);
    }

    #[test]
    fn weights_decide_the_cut() {
        assert_eq!(half_by(&[10, 1, 1, 1], 13, |w| *w), 1);
        assert_eq!(half_by(&[1, 1, 1, 10], 13, |w| *w), 4);
        assert_eq!(half_by::<u32>(&[], 0, |w| *w as usize), 0);
    }

    #[test]
    fn a_panic_of_the_helper_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| join(|| 1, || -> u32 { panic!("helper") }));
        assert!(caught.is_err());
    }
}
