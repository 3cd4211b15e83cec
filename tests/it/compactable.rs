//! `multiproc_exporter_compactable_files` (issue 10): the dead writers' files compaction
//! could still absorb. 0 after a successful compaction, although the `gauge_all` files
//! of the dead writer stay (so an alert on it does not fire forever on a pool with an
//! `all` gauge); the exact count while compaction is skipped for space, for write
//! permission, or turned off. Real prometheus_client workers, the real sidecar, through
//! the fault suite's checker.

use crate::fault_suite::{Ctx, Expect, Setup, Volume, files_of, run, signal};
use crate::util::value;

const GAUGE: &str = "multiproc_exporter_compactable_files";

/// The files of `pid` (as they were at the first scrape) that compaction folds: not the
/// `all` gauges (kept) nor the live gauges (deleted).
fn foldable_files_of(ctx: &Ctx, pid: u32) -> usize {
    files_of(&ctx.before, pid)
        .iter()
        .filter(|n| !n.starts_with("gauge_all_") && !n.starts_with("gauge_live"))
        .count()
}

/// The sidecar's `compactable_files` is `want`.
fn compactable_is(want: usize) -> impl Fn(&Ctx) -> Result<(), String> {
    move |ctx| {
        let body = ctx.server().get("/metrics", &[]).text();
        match value(&body, GAUGE) {
            Some(v) if v == want as f64 => Ok(()),
            got => Err(format!("{GAUGE} is {got:?}, want {want}")),
        }
    }
}

/// At least one writer is counted dead (its `gauge_all` file keeps it listed).
fn a_writer_is_dead(ctx: &Ctx) -> Result<(), String> {
    let body = ctx.server().get("/metrics", &[]).text();
    match value(&body, r#"multiproc_exporter_writers{state="dead"}"#) {
        Some(v) if v >= 1.0 => Ok(()),
        got => Err(format!("writers{{state=\"dead\"}} is {got:?}")),
    }
}

#[test]
fn test_issue_10_compactable_files_is_zero_after_compaction_despite_all_gauges() {
    run(Setup::compacting(), |ctx| {
        let body = ctx.scrape();
        assert_eq!(value(&body, GAUGE), Some(0.0), "no dead writer yet");
        let pid = ctx.pids[1];
        assert!(foldable_files_of(ctx, pid) > 0);
        signal(pid, "KILL");
        Expect::new(ctx.expected_before(&[pid]))
            .rose("multiproc_exporter_files_absorbed_total")
            .condition(move |ctx| {
                // Everything foldable went into archives; the `all` gauge stays, and
                // keeps the dead writer listed.
                let left = files_of(&ctx.dir, pid);
                if left.iter().all(|n| n.starts_with("gauge_all_")) && !left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("files of {pid}: {left:?}"))
                }
            })
            .condition(a_writer_is_dead)
            .condition(compactable_is(0))
    });
}

#[test]
fn test_issue_10_compactable_files_counts_what_waits_when_there_is_no_space() {
    let setup = Setup {
        volume: Volume::Full,
        ..Setup::compacting()
    };
    run(setup, |ctx| {
        let pid = ctx.pids[2];
        let want = foldable_files_of(ctx, pid);
        assert!(want > 0);
        signal(pid, "KILL");
        Expect::new(ctx.expected_before(&[pid]))
            .rose(r#"multiproc_exporter_compaction_skipped_total{reason="no_space"}"#)
            .condition(compactable_is(want))
    });
}

#[test]
fn test_issue_10_compactable_files_counts_what_waits_without_write_permission() {
    let setup = Setup {
        volume: Volume::ReadOnly,
        ..Setup::compacting()
    };
    run(setup, |ctx| {
        let pid = ctx.pids[0];
        let want = foldable_files_of(ctx, pid);
        assert!(want > 0);
        signal(pid, "KILL");
        Expect::new(ctx.expected_before(&[pid]))
            .rose(r#"multiproc_exporter_compaction_skipped_total{reason="no_write_permission"}"#)
            .condition(compactable_is(want))
    });
}

#[test]
fn test_issue_10_compactable_files_counts_what_waits_with_compaction_off() {
    let setup = Setup {
        env: vec![("MULTIPROC_EXPORTER_COMPACTION", "off".to_owned())],
        ..Setup::compacting()
    };
    run(setup, |ctx| {
        let pid = ctx.pids[1];
        let want = foldable_files_of(ctx, pid);
        // Its live gauges stay on disk too (left out of the output), and are not counted.
        let all = files_of(&ctx.before, pid).len();
        assert!(all > want, "{all} files, {want} foldable");
        signal(pid, "KILL");
        Expect::new(ctx.expected_before(&[pid]))
            .condition(a_writer_is_dead)
            .condition(move |ctx| {
                let now = files_of(&ctx.dir, pid).len();
                if now == all {
                    Ok(())
                } else {
                    Err(format!(
                        "compaction off, yet {pid} has {now} of {all} files"
                    ))
                }
            })
            .condition(compactable_is(want))
    });
}
