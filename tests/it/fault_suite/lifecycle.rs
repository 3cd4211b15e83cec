//! Faults of processes and of the volume: workers and the sidecar killed, pids reused,
//! no space or no write permission for compaction, the directory replaced.

use super::{Ctx, Expect, Setup, Volume, Worker, files_of, run, signal, with_pid};
use crate::pool::Running;
use std::time::{Duration, Instant};

/// The files of `pid` other than `gauge_all_` (kept by design) are gone: absorbed.
fn absorbed(ctx: &Ctx, pid: u32) -> Result<(), String> {
    let left: Vec<String> = files_of(&ctx.dir, pid)
        .into_iter()
        .filter(|n| !n.starts_with("gauge_all_"))
        .collect();
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("files of dead pid {pid} not absorbed: {left:?}"))
    }
}

/// No temporary or hidden file of an unfinished compaction is left.
fn no_leftovers(ctx: &Ctx) -> Result<(), String> {
    let left: Vec<String> = crate::pool::all_names(&ctx.dir)
        .into_iter()
        .filter(|n| n.starts_with(".mpe-"))
        .collect();
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("leftovers of a compaction: {left:?}"))
    }
}

/// Every file of `pid` that `before` had is still there.
fn untouched(ctx: &Ctx, pid: u32, with_live: bool) -> Result<(), String> {
    let had = files_of(&ctx.before, pid);
    let now = files_of(&ctx.dir, pid);
    let missing: Vec<&String> = had
        .iter()
        .filter(|n| with_live || !n.starts_with("gauge_live"))
        .filter(|n| !now.contains(n))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("files of pid {pid} were removed: {missing:?}"))
    }
}

#[test]
fn test_issue_9_suite_worker_sigkilled_mid_write() {
    run(Setup::compacting(), |ctx| {
        let mut w = Worker::start(&["looping-worker", ctx.dir.to_str().unwrap()]);
        let pid = w.pid;
        // Scraped while it writes: counts only ever grow.
        let began = Instant::now();
        while began.elapsed() < Duration::from_millis(600) {
            ctx.scrape();
        }
        // Stopped wherever it is in its loop, its files copied, then killed without
        // running another instruction: SIGKILL mid-write, with a record of the bytes it
        // left.
        signal(pid, "STOP");
        let reference = ctx.expected(&[], &[], &[pid]);
        signal(pid, "KILL");
        w.child.wait().unwrap();
        let pid_field = format!("pid=\"{pid}\"");
        Expect::new(reference)
            .rose(r#"multiproc_exporter_writers_proven_dead_total{evidence="process_gone"}"#)
            .rose("multiproc_exporter_files_absorbed_total")
            .logged(["writer proven dead", &pid_field, "process_gone"])
            .condition(move |ctx| absorbed(ctx, pid))
            .on_disk()
    });
}

#[test]
fn test_issue_9_suite_sidecar_sigkilled_mid_compaction() {
    // The sidecar dies (abort, as abrupt as SIGKILL) right after it renamed a dead
    // writer's files to hidden names and before it absorbed them; the one restarted in
    // its place finishes the job.
    let setup = Setup {
        env: vec![("MPE_TEST_CRASH_AT", "renamed_hidden:1".to_owned())],
        ..Setup::compacting()
    };
    run(setup, |ctx| {
        let pid = ctx.pids[2];
        signal(pid, "KILL");
        let status = ctx
            .forget_server()
            .expect("the sidecar did not reach the crash point");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}");
        let hidden: Vec<String> = crate::pool::all_names(&ctx.dir)
            .into_iter()
            .filter(|n| n.starts_with(".mpe-"))
            .collect();
        assert!(!hidden.is_empty(), "not killed mid-compaction");
        ctx.setup.env.clear();
        ctx.start_server();
        Expect::new(ctx.expected_before(&[pid]))
            .rose("multiproc_exporter_files_absorbed_total")
            .logged(["compacted dead writers"])
            .condition(move |ctx| absorbed(ctx, pid))
            .condition(no_leftovers)
            .on_disk()
    });
}

#[test]
fn test_issue_9_suite_disk_full() {
    let setup = Setup {
        volume: Volume::Full,
        ..Setup::compacting()
    };
    run(setup, |ctx| {
        // A writer dies on a memory volume filled to the brim: compaction would need
        // space, so it is skipped and reported; nothing of the writer is absorbed, and
        // its live gauges are left out (it is proven dead).
        let pid = ctx.pids[2];
        signal(pid, "KILL");
        Expect::new(ctx.expected_before(&[pid]))
            .rose(r#"multiproc_exporter_compaction_skipped_total{reason="no_space"}"#)
            .logged(["compaction skipped", "reason=\"no_space\""])
            .condition(move |ctx| untouched(ctx, pid, false))
            .condition(no_leftovers)
    });
}

#[test]
fn test_issue_9_suite_no_write_permission() {
    let setup = Setup {
        volume: Volume::ReadOnly,
        ..Setup::compacting()
    };
    run(setup, |ctx| {
        // A writer dies where the sidecar may not write: compaction is skipped and
        // reported as lacking write permission (DESIGN section 4), the writer is still
        // proven dead, so its live gauges are left out as with no space, and nothing is
        // removed.
        let pid = ctx.pids[2];
        signal(pid, "KILL");
        Expect::new(ctx.expected_before(&[pid]))
            .rose(r#"multiproc_exporter_compaction_skipped_total{reason="no_write_permission"}"#)
            .logged(["compaction skipped", "reason=\"no_write_permission\""])
            .condition(move |ctx| untouched(ctx, pid, true))
    });
}

#[test]
fn test_issue_9_suite_pid_reuse() {
    run(Setup::compacting(), |ctx| {
        // Two writers die and their pids are reused, for real: one by an idle process
        // (its writer is dead: absorbed once), one by a new prometheus_client worker that
        // resumes the files of its pid (alive: kept, and its counts add up).
        let dir = ctx.dir.to_str().unwrap().to_owned();
        let spawn = |k: &str| {
            let mut w = Worker::start(&["resume-worker", &dir, k]);
            w.send("go");
            assert_eq!(w.line(), "done");
            w
        };
        let (first, second) = (spawn("3"), spawn("4"));
        let (idle_pid, resumed_pid) = (first.pid, second.pid);
        ctx.scrape();
        // Started later than the files by more than the clocks' slack.
        std::thread::sleep(Duration::from_millis(100));
        // The pids change hands while the sidecar is stopped: between two observations.
        ctx.server().signal("STOP");
        first.kill();
        second.kill();
        let idle = with_pid(
            idle_pid,
            || {
                let sleep = std::process::Command::new("sleep").arg("120").spawn();
                crate::util::Reaped(sleep.unwrap())
            },
            |r| r.0.id(),
        );
        let mut resumer = Worker::start_as(resumed_pid, &["resume-worker", &dir, "5"]);
        resumer.send("go");
        assert_eq!(resumer.line(), "done");
        let reference = ctx.expected(&[], &[], &[idle_pid]);
        ctx.server().signal("CONT");
        ctx.workers.push(resumer);
        ctx.children.push(idle);
        let resumed = files_of(&ctx.dir, resumed_pid);
        assert_eq!(resumed.len(), 13, "{resumed:?}");
        let pid_field = format!("pid=\"{idle_pid}\"");
        Expect::new(reference)
            .rose(r#"multiproc_exporter_writers_proven_dead_total{evidence="pid_reused"}"#)
            .logged(["writer proven dead", &pid_field, "pid_reused"])
            .condition(move |ctx| absorbed(ctx, idle_pid))
            .condition(move |ctx| {
                let now = files_of(&ctx.dir, resumed_pid);
                if now == resumed {
                    Ok(())
                } else {
                    Err(format!(
                        "files of the resumed pid {resumed_pid} changed: {now:?}"
                    ))
                }
            })
            .on_disk()
    });
}

#[test]
fn test_issue_9_suite_renamed_then_compacted() {
    run(Setup::compacting(), |ctx| {
        // A dead writer's files renamed (to another dead pid) and compacted before the
        // sidecar reads the directory again: counted once, not once from the archive
        // and once more as the "vanished" file under its old name.
        let d = ctx.pids[2];
        let to = super::NO_PID - 5;
        ctx.server().signal("STOP");
        signal(d, "KILL");
        for name in files_of(&ctx.dir, d) {
            let new = name.replace(&format!("_{d}.db"), &format!("_{to}.db"));
            std::fs::rename(ctx.path(&name), ctx.path(&new)).unwrap();
        }
        let reference = ctx.expected(&[], &[], &[to]);
        ctx.server().signal("CONT");
        // The lifecycle wakes on the renames; let it act before the next scrape.
        std::thread::sleep(Duration::from_millis(400));
        Expect::new(reference)
            .rose("multiproc_exporter_files_absorbed_total")
            .condition(move |ctx| absorbed(ctx, to))
            .on_disk()
    });
}

#[test]
fn test_issue_9_suite_directory_deleted_and_recreated() {
    run(Setup::compacting(), |ctx| {
        std::fs::remove_dir_all(&ctx.dir).unwrap();
        ctx.allow_reset();
        let body = ctx.scrape();
        assert_eq!(
            crate::util::value(&body, "multiproc_exporter_ready"),
            Some(0.0),
            "{body}"
        );
        std::fs::create_dir(&ctx.dir).unwrap();
        let pool = Running::start(&["pool", ctx.dir.to_str().unwrap(), "2", "0"]);
        ctx.keep(pool);
        ctx.allow_reset();
        Expect::new(ctx.expected(&[], &[], &[]))
            .logged(["names another directory"])
            .condition(|ctx| {
                let body = ctx.server().get("/metrics", &[]).text();
                match crate::util::value(&body, "multiproc_exporter_ready") {
                    Some(1.0) => Ok(()),
                    v => Err(format!("not ready again: {v:?}")),
                }
            })
    });
}
