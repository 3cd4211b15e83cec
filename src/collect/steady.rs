//! The steady reload of a pass on two threads.
//!
//! In the steady state of a pool (files indexed, nothing new) most of a pass is loading
//! each file's values out of its mapping: 628,000 loads at the L of DESIGN section 6,
//! each on a cache line of its own, so the loop waits on memory, and a second core
//! waiting on other lines nearly halves it. Each file's reload touches only that file's
//! state ([`refresh_steady`]), so the files are split between this thread and one
//! scoped helper, by entries. Everything that needs the shared key table or the
//! directory's byte budget (new files, files that grew) stays on the pass's thread, in
//! name order, afterwards.
//!
//! A process allowed one core gets one thread ([`crate::parallel`]), and small
//! directories are not worth a thread.

use super::Tracked;
use super::refresh::{Refreshed, refresh_steady};
use crate::parallel;

/// Below this many entries in all, one thread reloads everything: a thread's start costs
/// about what a few thousand loads do.
const PARALLEL_FROM: usize = 16_384;

/// Reloads each of `files` that is steady, each with its `limit`, on `threads` threads
/// if given, else as the cores and the size say; the result of file `i` is at `i`:
/// `None` for a file that needs the full refresh.
pub(super) fn reload(
    files: &mut [(&mut Tracked, u64)],
    threads: Option<usize>,
) -> Vec<Option<Refreshed>> {
    let entries: usize = files.iter().map(|(t, _)| t.index.entries.len()).sum();
    let threads = threads.unwrap_or(if entries < PARALLEL_FROM {
        1
    } else {
        parallel::threads()
    });
    if threads < 2 || files.len() < 2 {
        return reload_all(files);
    }
    let cut = parallel::half_by(files, entries, |(t, _)| t.index.entries.len());
    let (mine, theirs) = files.split_at_mut(cut);
    let (mut done, rest) = parallel::join(|| reload_all(mine), || reload_all(theirs));
    done.extend(rest);
    done
}

fn reload_all(files: &mut [(&mut Tracked, u64)]) -> Vec<Option<Refreshed>> {
    files
        .iter_mut()
        .map(|(t, limit)| refresh_steady(t, *limit))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::Collector;
    use crate::render::{Format, render};
    use crate::write::DbWriter;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn write(dir: &Path, name: &str, series: std::ops::Range<usize>, value: f64) {
        let mut w = DbWriter::open(&dir.join(name)).unwrap();
        for i in series {
            let id = i.to_string();
            w.set_sample("c", "c_total", &[("i", &id)], "h", value, 0.0)
                .unwrap();
        }
    }

    /// The text and the (file, reason) issues of a pass.
    fn pass(c: &mut Collector) -> (String, Vec<String>) {
        let pass = c.collect(&BTreeSet::new()).unwrap();
        let mut text = String::new();
        render(&pass.families, Format::Text004, &mut text);
        let issues = pass
            .issues
            .iter()
            .map(|i| format!("{:?} {}", i.file, i.reason().as_str()))
            .collect();
        (text, issues)
    }

    /// The fast path beside the general one: the same directory read by a collector
    /// reloading on two threads and by one reloading on one gives the same output and
    /// the same problems, pass after pass, while files stay, grow, shrink, are written
    /// over, replaced and deleted; with files beyond the descriptor budget too.
    #[test]
    fn test_issue_11_steady_reload_on_two_threads_equals_one() {
        let d = tempfile::tempdir().unwrap();
        let names: Vec<String> = (1..=6).map(|p| format!("counter_{p}.db")).collect();
        for (n, name) in names.iter().enumerate() {
            write(d.path(), name, 0..200 + n * 50, n as f64 + 0.5);
        }
        let mut one = Collector::new(d.path()).with_reload_threads(1);
        let mut two = Collector::new(d.path()).with_reload_threads(2);
        // Half the files beyond the descriptor budget: read whole and closed each pass.
        let mut half_cold = Collector::new(d.path())
            .with_reload_threads(2)
            .with_fd_budget(3);
        let mut check = |step: &str| {
            let (a, b, c) = (pass(&mut one), pass(&mut two), pass(&mut half_cold));
            assert_eq!(a, b, "after {step}");
            assert_eq!(a, c, "after {step}, half of the files cold");
            a
        };
        let first = check("the first pass");
        assert!(first.0.contains("c_total{i=\"199\"} 18.0"), "{}", first.0);
        assert_eq!(check("a steady pass"), first);
        write(d.path(), &names[0], 0..200, 7.0);
        let changed = check("values changed in place");
        assert!(
            changed.0.contains("c_total{i=\"199\"} 24.5"),
            "{}",
            changed.0
        );
        write(d.path(), &names[1], 250..400, 1.0);
        check("a file grew");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(d.path().join(&names[2]))
            .unwrap();
        f.set_len(4096).unwrap();
        let (_, shrunk) = check("a file shrank");
        assert!(shrunk.iter().any(|i| i.contains("shrunk")), "{shrunk:?}");
        std::fs::write(d.path().join(&names[3]), [0xffu8; 64]).unwrap();
        check("a file written over");
        std::fs::remove_file(d.path().join(&names[4])).unwrap();
        write(d.path(), &names[4], 0..10, 3.0);
        check("a file replaced");
        std::fs::remove_file(d.path().join(&names[5])).unwrap();
        check("a file deleted");
        check("a steady pass after all that");
    }
}
