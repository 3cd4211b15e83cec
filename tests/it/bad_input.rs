//! Bad files never fail a render: each is skipped or read up to its last valid entry,
//! stderr names it and what was wrong, and everything else is exactly as without it.
//! The good part of the directory is written by real prometheus_client workers; the bad
//! files are hand-made bytes (and one real SQLite database).

use crate::util::{harness, python, render, samples};
use std::fs;
use std::path::Path;
use std::process::Command;

fn pad(n: usize) -> usize {
    8 - (n + 4) % 8
}

/// One entry with a 16-byte (current) or 8-byte (pre-0.18) value.
fn entry(key: &[u8], value: f64, old: bool) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(key.len() as i32).to_ne_bytes());
    b.extend_from_slice(key);
    b.extend(std::iter::repeat_n(b' ', pad(key.len())));
    b.extend_from_slice(&value.to_ne_bytes());
    if !old {
        b.extend_from_slice(&0f64.to_ne_bytes());
    }
    b
}

/// A file: header with `used` (default: the real end) and the entries.
fn file(entries: &[Vec<u8>], used: Option<i32>) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    for e in entries {
        b.extend_from_slice(e);
    }
    let used = used.unwrap_or(b.len() as i32);
    b[..4].copy_from_slice(&used.to_ne_bytes());
    b
}

fn key(f: &str) -> Vec<u8> {
    format!(r#"["bad_prefix", "bad_prefix_total", {{"f": "{f}"}}, "kept entries of bad files"]"#)
        .into_bytes()
}

fn whoami_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs `render` as an unprivileged user when we are root (root reads any file, so
/// permission bits alone cannot make a file unreadable).
fn render_unprivileged(dir: &Path) -> (String, String, i32) {
    let mut cmd = if whoami_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            crate::util::BIN,
        ]);
        c
    } else {
        Command::new(crate::util::BIN)
    };
    let out = cmd
        // No liveness judgement: the harness's pid may be reused by another process
        // between two renders on a busy machine, which would change its live gauges.
        .args(["render", "--liveness", "none", "--dir"])
        .arg(dir)
        .output()
        .expect("run the binary");
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn every_kind_of_bad_file_is_isolated_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    let mixed = tmp.path().join("mixed");
    fs::create_dir(&good).unwrap();
    harness(&["case", good.to_str().unwrap(), "types_and_modes"]);
    fs::create_dir(&mixed).unwrap();
    for e in fs::read_dir(&good).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), mixed.join(e.file_name())).unwrap();
    }
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(
        outside.join("counter_1.db"),
        file(&[entry(&key("outside"), 99.0, false)], None),
    )
    .unwrap();

    let put = |name: &str, bytes: Vec<u8>| fs::write(mixed.join(name), bytes).unwrap();
    put("counter_900.db", Vec::new());
    // `used` beyond the end of the file: the entries that exist are read.
    put(
        "counter_901.db",
        file(&[entry(&key("beyond"), 5.0, false)], Some(1 << 20)),
    );
    // A key length that runs past `used`, after one good entry.
    let mut bad_len = entry(b"[]", 0.0, false);
    bad_len[..4].copy_from_slice(&0x7fff_0000i32.to_ne_bytes());
    put(
        "counter_902.db",
        file(&[entry(&key("len"), 2.0, false), bad_len], None),
    );
    put(
        "counter_903.db",
        file(
            &[
                entry(b"[\"\xff\xfe\"]", 1.0, false),
                entry(&key("utf8"), 3.0, false),
            ],
            None,
        ),
    );
    put(
        "counter_904.db",
        file(
            &[
                entry(b"{not json", 1.0, false),
                entry(&key("json"), 4.0, false),
            ],
            None,
        ),
    );
    put(
        "counter_905.db",
        file(
            &[
                entry(br#"["a", "a", {"x": 1}, "h"]"#, 1.0, false),
                entry(&key("shape"), 6.0, false),
            ],
            None,
        ),
    );
    // Written by prometheus_client 0.16/0.17: 8-byte values, skipped whole.
    put(
        "counter_906.db",
        file(
            &[
                entry(&key("old_a"), 1.0, true),
                entry(&key("old_b"), 1.0, true),
            ],
            None,
        ),
    );
    fs::create_dir(mixed.join("counter_907.db")).unwrap();
    fs::create_dir(mixed.join("x.db")).unwrap();
    let sqlite = mixed.join("counter_908.db");
    let made = Command::new(python())
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('create table t(x)'); c.commit()"])
        .arg(&sqlite)
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink(outside.join("counter_1.db"), mixed.join("counter_909.db")).unwrap();
    let unreadable = mixed.join("counter_910.db");
    put(
        "counter_910.db",
        file(&[entry(&key("secret"), 1.0, false)], None),
    );
    // A torn last entry: `used` ends inside its value.
    let torn = file(
        &[
            entry(&key("torn"), 7.0, false),
            entry(&key("torn_b"), 8.0, false),
        ],
        None,
    );
    let cut = torn.len() - 5;
    let mut torn = torn[..cut].to_vec();
    torn[..4].copy_from_slice(&(cut as i32).to_ne_bytes());
    put("counter_911.db", torn);
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&unreadable, fs::Permissions::from_mode(0o000)).unwrap();
    for d in [tmp.path(), &mixed] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    for e in fs::read_dir(&mixed).unwrap() {
        let p = e.unwrap().path();
        if p != unreadable && !p.is_symlink() {
            let mode = if p.is_dir() { 0o755 } else { 0o644 };
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
    }

    // A zero-length file is a problem only once it is older than the grace that lets
    // prometheus_client size a file it has just created (issue 8).
    std::thread::sleep(multiproc_exporter::collect::YOUNG_GRACE);
    let (stdout, stderr, code) = render_unprivileged(&mixed);
    assert_eq!(code, 0, "{stderr}");
    let expected_reports = [
        ("counter_900.db", "reason=\"empty\""),
        ("counter_901.db", "reason=\"used_beyond_eof\""),
        ("counter_902.db", "reason=\"bad_length\""),
        ("counter_903.db", "reason=\"bad_utf8\""),
        ("counter_904.db", "reason=\"bad_json\""),
        ("counter_905.db", "reason=\"bad_key\""),
        ("counter_906.db", "reason=\"old_format\""),
        ("counter_907.db", "reason=\"not_regular_file\""),
        ("x.db", "reason=\"bad_name\""),
        ("counter_908.db", "reason=\"foreign\""),
        ("counter_909.db", "reason=\"symlink\""),
        ("counter_910.db", "reason=\"unreadable\""),
        ("counter_911.db", "reason=\"torn_entry\""),
    ];
    for (name, reason) in expected_reports {
        let path = mixed.join(name);
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("file={}", path.display())) && l.contains(reason));
        assert!(
            line.is_some(),
            "no report for {name} with {reason} in:\n{stderr}"
        );
    }

    // Everything else is exactly what the good files alone give, plus the valid
    // prefixes of the damaged files.
    let (alone, alone_err, alone_code) = render_unprivileged(&good);
    assert_eq!(alone_code, 0, "{alone_err}");
    let mut want = samples(&alone);
    for (f, v) in [
        ("beyond", 5.0),
        ("len", 2.0),
        ("utf8", 3.0),
        ("json", 4.0),
        ("shape", 6.0),
        ("torn", 7.0),
    ] {
        want.push((format!("bad_prefix_total{{f=\"{f}\"}}"), v));
    }
    let mut got = samples(&stdout);
    let key = |s: &(String, f64)| s.0.clone();
    want.sort_by_key(key);
    got.sort_by_key(key);
    assert_eq!(got, want);
}

#[test]
fn corruption_detected_like_test_corruption_detected() {
    // prometheus_client's test_corruption_detected overwrites bytes 8..16 with b"somejunk";
    // upstream raises, we report the file and serve the rest.
    let tmp = tempfile::tempdir().unwrap();
    harness(&["case", tmp.path().to_str().unwrap(), "test_counter_adds"]);
    let victim = tmp.path().join("counter_456.db");
    let mut bytes = fs::read(&victim).unwrap();
    bytes[8..16].copy_from_slice(b"somejunk");
    fs::write(&victim, bytes).unwrap();
    let out = render(tmp.path(), "text");
    assert_eq!(out.code, 0);
    assert!(
        out.stderr.contains("counter_456.db") && out.stderr.contains("bad_length"),
        "{}",
        out.stderr
    );
    // The other worker's increment (1) is still served.
    assert_eq!(crate::util::value(&out.stdout, "c_total"), Some(1.0));
}
