//! The bad files of DESIGN section 3, and files changed under the sidecar while it
//! reads them.
//!
//! Each bad-file case makes two faults: a new file of that kind appears next to the
//! served ones (never read: it contributes nothing, and is reported with its reason),
//! and one served file of counts turns into such a file in place (the same inode):
//! it keeps its last good values (DESIGN section 3), and where the sidecar can tell, the
//! log names it.

use super::{Ctx, Expect, Setup, bytes, run};
use std::fs;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::time::{Duration, Instant};

/// A new file `name` holding `bytes`.
fn put(ctx: &Ctx, name: &str, b: &[u8]) {
    fs::write(ctx.path(name), b).unwrap();
}

/// Rewrites a served file in place (same inode): truncated, then `b` written.
fn overwrite(ctx: &Ctx, name: &str, b: &[u8]) {
    let f = fs::OpenOptions::new()
        .write(true)
        .open(ctx.path(name))
        .unwrap();
    f.set_len(0).unwrap();
    f.write_all_at(b, 0).unwrap();
}

fn before(ctx: &Ctx, name: &str) -> Vec<u8> {
    fs::read(ctx.before_file(name)).unwrap()
}

#[test]
fn test_issue_9_suite_zero_length() {
    run(Setup::reading(), |ctx| {
        let fresh = "counter_900.db";
        let served = ctx.name("histogram", 0);
        put(ctx, fresh, b"");
        overwrite(ctx, &served, b"");
        let (a, b) = (
            ctx.file_line(fresh, "empty"),
            ctx.file_line(&served, "shrunk"),
        );
        // Empty files are a problem only after the grace prometheus_client needs to size
        // a new file (`collect::YOUNG_GRACE`); the checker waits for it.
        Expect::new(ctx.expected(&[fresh], &[&served], &[]))
            .file_error("empty")
            .file_error("shrunk")
            .logged(&a)
            .logged(&b)
    });
}

#[test]
fn test_issue_9_suite_truncated_mid_entry() {
    run(Setup::reading(), |ctx| {
        let fresh = "counter_901.db";
        let served = ctx.name("summary", 2);
        // A copy of a real counter file cut inside its last entry: its first entry is
        // read, the torn one is not.
        let (cut, valid) = bytes::cut_in_last_entry(&before(ctx, &ctx.name("counter", 1)));
        put(ctx, fresh, &cut);
        let b = before(ctx, &served);
        overwrite(ctx, &served, &bytes::cut_in_last_entry(&b).0);
        let reference = ctx.expected(&[fresh], &[&served], &[]);
        fs::write(reference.join(fresh), valid).unwrap();
        let (a, b) = (
            ctx.file_line(fresh, "used_beyond_eof"),
            ctx.file_line(&served, "shrunk"),
        );
        Expect::new(reference)
            .file_error("used_beyond_eof")
            .file_error("shrunk")
            .logged(&a)
            .logged(&b)
    });
}

#[test]
fn test_issue_9_suite_garbage() {
    run(Setup::reading(), |ctx| {
        let corrupt = "counter_902.db";
        let noise = "gauge_max_903.db";
        let served = ctx.name("counter", 2);
        let mut b = before(ctx, &ctx.name("counter", 1));
        bytes::corrupt_first_entry(&mut b);
        put(ctx, corrupt, &b);
        put(ctx, noise, &bytes::noise(4096, 0x5eed));
        // The served file corrupted in place where its keys are: the sidecar indexed
        // them already and reads only values at known offsets, so it cannot see this
        // (and need not: the values are intact).
        let f = fs::OpenOptions::new()
            .write(true)
            .open(ctx.path(&served))
            .unwrap();
        f.write_all_at(b"somejunk", 8).unwrap();
        let a = ctx.file_line(corrupt, "bad_length");
        let n = ctx.file_field(noise);
        Expect::new(ctx.expected(&[corrupt, noise], &[&served], &[]))
            .file_error("bad_length")
            .logged(&a)
            .logged([n])
    });
}

#[test]
fn test_issue_9_suite_sqlite() {
    run(Setup::reading(), |ctx| {
        let fresh = "counter_904.db";
        let served = ctx.name("counter", 2);
        bytes::sqlite(&ctx.path(fresh));
        // The served counter file overwritten by a database, as `cp db counter_P.db`
        // does (same inode): it turned bad, so it keeps its last good values, and the
        // database is reported as what it is.
        let db = fs::read(ctx.path(fresh)).unwrap();
        overwrite(ctx, &served, &db);
        let (a, b) = (
            ctx.file_line(fresh, "foreign"),
            ctx.file_line(&served, "foreign"),
        );
        Expect::new(ctx.expected(&[fresh], &[&served], &[]))
            .file_error("foreign")
            .logged(&a)
            .logged(&b)
    });
}

#[test]
fn test_issue_9_suite_old_format() {
    run(Setup::reading(), |ctx| {
        let fresh = "counter_905.db";
        let served = ctx.name("summary", 2);
        put(
            ctx,
            fresh,
            &bytes::old_format(&before(ctx, &ctx.name("counter", 1))),
        );
        // The served file rewritten by a pre-0.18 writer: shorter than what was read.
        let old = bytes::old_format(&before(ctx, &served));
        overwrite(ctx, &served, &old);
        let (a, b) = (
            ctx.file_line(fresh, "old_format"),
            ctx.file_line(&served, "shrunk"),
        );
        Expect::new(ctx.expected(&[fresh], &[&served], &[]))
            .file_error("old_format")
            .logged(&a)
            .logged(&b)
    });
}

#[test]
fn test_issue_9_suite_permission_denied() {
    // Root reads any file: the sidecar runs as nobody (setpriv) when we are root.
    let setup = Setup {
        unprivileged: true,
        ..Setup::reading()
    };
    run(setup, |ctx| {
        let fresh = "counter_906.db";
        let served = ctx.name("counter", 2);
        fs::copy(ctx.before_file(&ctx.name("counter", 1)), ctx.path(fresh)).unwrap();
        let none = fs::Permissions::from_mode(0o000);
        fs::set_permissions(ctx.path(fresh), none.clone()).unwrap();
        // A served file made unreadable: the sidecar holds it open, so it goes on
        // reading it (its values are the last good ones either way).
        fs::set_permissions(ctx.path(&served), none).unwrap();
        let a = ctx.file_line(fresh, "unreadable");
        Expect::new(ctx.expected(&[fresh], &[&served], &[]))
            .file_error("unreadable")
            .logged(&a)
    });
}

#[test]
fn test_issue_9_suite_symlink() {
    // With compaction on: a link named like a dead writer's file must not be followed to
    // its target, neither to read it nor to absorb or delete it.
    run(Setup::compacting(), |ctx| {
        let to_file = format!("counter_{}.db", super::NO_PID - 1);
        let to_dir = format!("histogram_{}.db", super::NO_PID - 2);
        let target = ctx.outside.join(format!("counter_{}.db", super::NO_PID));
        std::os::unix::fs::symlink(&target, ctx.path(&to_file)).unwrap();
        std::os::unix::fs::symlink(&ctx.outside, ctx.path(&to_dir)).unwrap();
        let (a, b) = (
            ctx.file_line(&to_file, "symlink"),
            ctx.file_line(&to_dir, "symlink"),
        );
        Expect::new(ctx.expected(&[], &[], &[]))
            .file_error("symlink")
            .logged(&a)
            .logged(&b)
    });
}

#[test]
fn test_issue_9_suite_truncated_while_mapped() {
    run(Setup::reading(), |ctx| {
        let served = ctx.name("counter", 0);
        // A second pass reads the values through the mapping.
        ctx.scrape();
        let original = before(ctx, &served);
        let path = ctx.path(&served);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let truncator = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
                let mut rounds = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    f.set_len(0).unwrap();
                    std::thread::sleep(Duration::from_micros(300));
                    f.write_all_at(&original, 0).unwrap();
                    std::thread::sleep(Duration::from_micros(300));
                    rounds += 1;
                }
                // Left cut inside its last entry.
                f.set_len((bytes::used(&original) - 5) as u64).unwrap();
                rounds
            })
        };
        let began = Instant::now();
        let mut scrapes = 0;
        while began.elapsed() < Duration::from_millis(1500) {
            ctx.scrape();
            scrapes += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let rounds = truncator.join().unwrap();
        eprintln!("{scrapes} scrapes during {rounds} truncations");
        let a = ctx.file_line(&served, "shrunk");
        Expect::new(ctx.expected(&[], &[&served], &[]))
            .file_error("shrunk")
            .logged(&a)
    });
}

#[test]
fn test_issue_9_suite_deleted_mid_read() {
    run(Setup::reading(), |ctx| {
        // Files of counts vanish (kept as ghosts), gauge files vanish (dropped, as
        // mark_process_dead means), while scrapes run back to back.
        let counts = [ctx.name("counter", 0), ctx.name("histogram", 0)];
        let gauges = [ctx.name("gauge_livesum", 0), ctx.name("gauge_max", 0)];
        let url = ctx.server().url("/metrics");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let scraper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = crate::util::request("GET", &url, &[]);
                    assert_eq!(r.status, 200, "{}", r.text());
                    n += 1;
                }
                n
            })
        };
        for name in counts.iter().chain(&gauges) {
            std::thread::sleep(Duration::from_millis(30));
            fs::remove_file(ctx.path(name)).unwrap();
            ctx.scrape();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let n = scraper.join().unwrap();
        eprintln!("{n} concurrent scrapes while deleting");
        let a = ctx.file_line(&counts[0], "vanished");
        Expect::new(ctx.expected(&[], &[&counts[0], &counts[1]], &[]))
            .file_error("vanished")
            .logged(&a)
            .logged(["vanished without our compaction", &counts[1]])
    });
}
