//! Crash safety of compaction: injected crashes at every step, real SIGKILLs, no space,
//! failed writes, a full memory volume. Nothing lost, nothing counted twice.

use crate::pool::*;
use crate::util::{BIN, Server, render, samples, value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn crash_at_every_point_of_a_compaction_loses_and_doubles_nothing() {
    let tmp = shm_tempdir();
    let (pristine, expected) = crash_fixture(tmp.path());
    let points = [
        "live_removed",
        "renamed_hidden",
        "temp_written",
        "temp_synced",
        "archive_renamed",
        "hidden_removed",
    ];
    let mut trials = 0;
    for point in points {
        for n in 1.. {
            let dir = tmp.path().join(format!("trial-{point}-{n}"));
            copy_dir(&pristine, &dir);
            let (status, _) = compact(
                &dir,
                "lock",
                &[("MPE_TEST_CRASH_AT", &format!("{point}:{n}"))],
            );
            if status.success() {
                // Past the last time this point is reached.
                assert!(n > 1, "crash point {point} was never reached");
                break;
            }
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(libc::SIGABRT), "{point}:{n}");
            check_trial(&dir, &expected, &format!("crash at {point}:{n}"));
            std::fs::remove_dir_all(&dir).unwrap();
            trials += 1;
        }
    }
    eprintln!("crash trials: {trials}");
    assert!(trials >= 200, "only {trials} crash trials");
}

#[test]
fn sigkill_at_random_times_loses_and_doubles_nothing() {
    let tmp = shm_tempdir();
    let (pristine, expected) = crash_fixture(tmp.path());
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for trial in 0..20 {
        let dir = tmp.path().join(format!("kill-{trial}"));
        copy_dir(&pristine, &dir);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % 20_000);
        let mut child = Command::new(BIN)
            .args([
                "compact",
                "--liveness",
                "lock",
                "--dir",
                dir.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();
        check_trial(&dir, &expected, &format!("SIGKILL after {delay:?}"));
    }
}

#[test]
fn no_space_or_failed_write_leaves_the_directory_correct() {
    let tmp = shm_tempdir();
    let (pristine, expected) = crash_fixture(tmp.path());
    // Not enough free space (the reserve cannot be met): skipped, reported, untouched.
    let dir = tmp.path().join("full");
    copy_dir(&pristine, &dir);
    let before = all_names(&dir);
    let out = Command::new(BIN)
        .args([
            "compact",
            "--liveness",
            "lock",
            "--compaction.min-free-bytes",
            "1000000000000000",
            "--dir",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("skipped=no_space"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("compaction skipped"));
    assert_eq!(all_names(&dir), before);
    // The archive cannot be written (its temporary name is taken by a directory): the
    // dead files go back under their names, nothing is lost, the next round succeeds.
    let dir = tmp.path().join("blocked");
    copy_dir(&pristine, &dir);
    let blocker = dir.join(".mpe-tmp.counter_archive.db");
    std::fs::create_dir(&blocker).unwrap();
    let (status, out) = compact(&dir, "lock", &[]);
    assert!(status.success() && out.contains("skipped=error"), "{out}");
    assert_same_samples(
        &render(&dir, "text").stdout,
        &expected,
        "after a failed write",
    );
    std::fs::remove_dir(&blocker).unwrap();
    check_trial(&dir, &expected, "retry after a failed write");
}

#[test]
fn full_memory_volume_is_reported_by_the_server() {
    // A real, small tmpfs filled to the brim (needs root to mount; CI runs as root).
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("vol");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .status();
    if !mounted.is_ok_and(|s| s.success()) {
        panic!("cannot mount a tmpfs (this test needs root)");
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let src = shm_tempdir();
    let (pristine, _) = crash_fixture(src.path());
    for e in std::fs::read_dir(&pristine).unwrap() {
        let e = e.unwrap();
        let bytes = std::fs::read(e.path()).unwrap();
        let used = i32::from_ne_bytes(bytes[..4].try_into().unwrap_or([0; 4])).max(8) as usize;
        std::fs::write(mnt.join(e.file_name()), &bytes[..used.min(bytes.len())]).unwrap();
    }
    // Fill what is left.
    let filler = std::fs::File::create(mnt.join("filler")).unwrap();
    let mut w = std::io::BufWriter::new(filler);
    let chunk = vec![1u8; 4096];
    while std::io::Write::write_all(&mut w, &chunk)
        .and_then(|()| std::io::Write::flush(&mut w))
        .is_ok()
    {}
    drop(w);
    // One writer is alive (its lock is held), so the directory is not stale.
    let lock = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(".multiproc-exporter-")
        })
        .unwrap();
    let held = std::fs::File::open(&lock).unwrap();
    held.lock().unwrap();
    let expected = String::from_utf8(
        Command::new(BIN)
            .args([
                "render",
                "--liveness",
                "lock",
                "--dir",
                mnt.to_str().unwrap(),
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let before = all_names(&mnt);
    let s = Server::start(&[
        "--dir",
        mnt.to_str().unwrap(),
        "--liveness",
        "lock",
        "--compaction.min-free-bytes",
        "0",
    ]);
    s.wait_ready();
    let body = s.get("/metrics", &[]).text();
    assert_eq!(
        value(
            &body,
            r#"multiproc_exporter_compaction_skipped_total{reason="no_space"}"#
        )
        .map(|v| v >= 1.0),
        Some(true),
        "{body}"
    );
    assert!(s.wait_log("compaction skipped"), "{}", s.log_text());
    assert_eq!(all_names(&mnt), before);
    let want: Vec<(String, f64)> = samples(&expected);
    for (head, v) in want {
        assert_eq!(value(&body, &head), Some(v), "{head}");
    }
}
