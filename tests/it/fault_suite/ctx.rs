//! One case's world: the directory, its workers, the sidecar, the copies, and the
//! checks every case ends with.

use super::compare::{backwards, counts, diffs, reference_text};
use super::outside::{Mounts, Sentinel, copy_db_files, fill, is_root, mount, set_mode};
use super::{DEADLINE, Expect, Mode, NO_PID, Setup, Volume, Worker, bytes};
use crate::pool::Running;
use crate::util::{BIN, Server, harness, value};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One case's world. Fields drop in order: processes first, then mounts, then files.
pub struct Ctx {
    pub server: Option<Server>,
    /// Workers a case started besides the pool.
    pub workers: Vec<Worker>,
    /// Other processes a case keeps until its end.
    pub children: Vec<crate::util::Reaped>,
    pool: Vec<Running>,
    pub setup: Setup,
    /// Logs of sidecars that were replaced.
    old_logs: String,
    /// The body of the first scrape (self-metrics before the fault).
    baseline: String,
    /// The previous scrape's counts, for the never-backwards check.
    last_counts: BTreeMap<String, f64>,
    /// A wipe: counts may drop once.
    reset_allowed: bool,
    /// The pids of the live workers, in order.
    pub pids: Vec<u32>,
    /// The directory the workers write.
    pub dir: PathBuf,
    /// The directory the sidecar is told (`dir`, or a read-only view of it).
    pub served: PathBuf,
    /// Next to the directory: must never change.
    pub outside: PathBuf,
    /// Copies of the directory as it was at the first scrape.
    pub before: PathBuf,
    sentinel: Sentinel,
    scratch: tempfile::TempDir,
    copies: usize,
    /// The volume could not be filled: compaction is asked for more space than any has.
    min_free_fallback: bool,
    _mounts: Mounts,
    _root: tempfile::TempDir,
}

impl Ctx {
    pub(super) fn new(setup: Setup) -> Ctx {
        let root = tempfile::tempdir().unwrap();
        set_mode(root.path(), 0o755);
        let mut mounts = Mounts(Vec::new());
        let mut base = root.path().to_path_buf();
        let mut min_free = false;
        if setup.volume == Volume::Full {
            base = root.path().join("vol");
            fs::create_dir(&base).unwrap();
            if mount(&["-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs"], &base) {
                mounts.0.push(base.clone());
            } else {
                eprintln!("cannot mount a tmpfs (not root): asking for more free space instead");
                min_free = true;
            }
        }
        let dir = base.join("mp");
        let outside = base.join("outside");
        fs::create_dir(&dir).unwrap();
        fs::create_dir(&outside).unwrap();
        bytes::counter_file(
            &outside.join(format!("counter_{NO_PID}.db")),
            "outside",
            99.0,
        );
        fs::write(outside.join("notes.txt"), b"not the sidecar's").unwrap();
        let pool = Running::start(&["pool", dir.to_str().unwrap(), "3", "0"]);
        let (pids, _) = pool.pids();
        let mut served = dir.clone();
        if setup.volume == Volume::ReadOnly {
            if is_root() {
                served = base.join("view");
                fs::create_dir(&served).unwrap();
                let bound = Command::new("mount")
                    .arg("--bind")
                    .arg(&dir)
                    .arg(&served)
                    .status();
                assert!(bound.is_ok_and(|s| s.success()), "bind mount");
                mounts.0.push(served.clone());
                assert!(
                    mount(&["-o", "remount,bind,ro"], &served),
                    "read-only remount"
                );
            } else {
                set_mode(&dir, 0o555);
            }
        }
        if setup.volume == Volume::Full && !min_free {
            fill(&base.join("filler"));
        }
        let scratch = tempfile::tempdir().unwrap();
        let before = scratch.path().join("before");
        let sentinel = Sentinel::record(&base);
        Ctx {
            server: None,
            workers: Vec::new(),
            children: Vec::new(),
            pool: vec![pool],
            setup,
            old_logs: String::new(),
            baseline: String::new(),
            last_counts: BTreeMap::new(),
            reset_allowed: false,
            pids,
            dir,
            served,
            outside,
            before,
            sentinel,
            scratch,
            copies: 0,
            min_free_fallback: min_free,
            _mounts: mounts,
            _root: root,
        }
    }

    /// Starts (or restarts) the sidecar on the directory and waits until it is ready.
    pub fn start_server(&mut self) {
        if let Some(old) = self.server.take() {
            self.old_logs.push_str(&old.log_text());
            self.old_logs.push('\n');
        }
        let mut prefix: Vec<String> = Vec::new();
        if self.setup.unprivileged && is_root() {
            prefix.extend(
                [
                    "setpriv",
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                ]
                .map(String::from),
            );
        }
        prefix.push("env".into());
        prefix.extend(self.setup.env.iter().map(|(k, v)| format!("{k}={v}")));
        prefix.push(BIN.into());
        let mut args = vec!["--dir", self.served.to_str().unwrap()];
        match self.setup.mode {
            Mode::Reading => args.extend(["--liveness", "none"]),
            Mode::Compacting => {
                args.extend(["--liveness", "proc", "--lifecycle.interval", "200ms"]);
                if self.setup.volume == Volume::Full {
                    let reserve = if self.min_free_fallback {
                        "1000000000000000"
                    } else {
                        "0"
                    };
                    args.extend(["--compaction.min-free-bytes", reserve]);
                }
            }
        }
        let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
        let server = Server::start_with(&prefix, &args);
        server.wait_ready();
        // A new sidecar process counts its own metrics from zero; the pool's counts must
        // carry on.
        self.last_counts
            .retain(|h, _| !h.starts_with("multiproc_exporter_"));
        self.server = Some(server);
    }

    /// The running sidecar.
    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("a running sidecar")
    }

    /// Drops the sidecar's handle without stopping it (it died on its own).
    pub fn forget_server(&mut self) -> Option<std::process::ExitStatus> {
        let mut s = self.server.take()?;
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = s.child.try_wait().unwrap() {
                self.old_logs.push_str(&s.log_text());
                return Some(status);
            }
            if Instant::now() > deadline {
                self.server = Some(s);
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first scrape: equal to the reference over the directory, and the state
    /// `before` the fault.
    pub(super) fn baseline(&mut self) {
        let before = self.before.clone();
        copy_db_files(&self.dir, &before);
        let body = self.scrape();
        let problems = diffs(&body, &reference_text(&before));
        assert!(
            problems.is_empty(),
            "before the fault the output already differs from MultiProcessCollector:\n{}",
            problems.join("\n")
        );
        self.baseline = body;
    }

    /// One scrape: 200, nothing from outside the directory, no count gone backwards
    /// since the previous scrape.
    pub fn scrape(&mut self) -> String {
        let r = self.server().get("/metrics", &[]);
        let body = r.text();
        assert_eq!(r.status, 200, "a scrape failed: {body}");
        assert!(
            !body.contains("outside_total"),
            "served a file from outside the directory:\n{body}"
        );
        let now = counts(&body);
        if !std::mem::take(&mut self.reset_allowed) {
            let back = backwards(&self.last_counts, &now);
            assert!(
                back.is_empty(),
                "counts went backwards: {back:?}\n--- log:\n{}",
                self.log_text()
            );
        }
        self.last_counts = now;
        body
    }

    /// The next scrape may show counts lower than the last (the directory was wiped).
    pub fn allow_reset(&mut self) {
        self.reset_allowed = true;
    }

    /// `{kind}_{pid}.db` of live worker `i` (`kind` like `counter` or `gauge_livesum`).
    pub fn name(&self, kind: &str, i: usize) -> String {
        format!("{kind}_{}.db", self.pids[i])
    }

    /// A path in the directory the workers write.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A file as it was at the first scrape.
    pub fn before_file(&self, name: &str) -> PathBuf {
        self.before.join(name)
    }

    /// How the sidecar's log names a file of the directory.
    pub fn file_field(&self, name: &str) -> String {
        format!("file={}", self.served.join(name).display())
    }

    /// What one log line must hold for a problem of `reason` with the file `name`.
    pub fn file_line(&self, name: &str, reason: &str) -> [String; 2] {
        [self.file_field(name), format!("reason=\"{reason}\"")]
    }

    /// A fresh directory in the scratch area.
    pub fn scratch_dir(&mut self) -> PathBuf {
        self.copies += 1;
        let d = self.scratch.path().join(format!("copy-{}", self.copies));
        fs::create_dir(&d).unwrap();
        d
    }

    /// The reference directory: the directory's `*.db` files now, less `except` and
    /// `kept`, plus `kept` as they were at the first scrape (their last good values),
    /// after `mark_process_dead` of `dead`.
    pub fn expected(&mut self, except: &[&str], kept: &[&str], dead: &[u32]) -> PathBuf {
        let d = self.scratch_dir();
        copy_db_files(&self.dir, &d);
        for name in except.iter().chain(kept) {
            let _ = fs::remove_file(d.join(name));
        }
        for name in kept {
            fs::copy(self.before.join(name), d.join(name)).unwrap();
        }
        self.mark_dead(&d, dead);
        d
    }

    /// The reference directory as it was at the first scrape, after `mark_process_dead`
    /// of `dead`.
    pub fn expected_before(&mut self, dead: &[u32]) -> PathBuf {
        let d = self.scratch_dir();
        copy_db_files(&self.before, &d);
        self.mark_dead(&d, dead);
        d
    }

    fn mark_dead(&self, d: &Path, dead: &[u32]) {
        if dead.is_empty() {
            return;
        }
        let pids: Vec<String> = dead.iter().map(u32::to_string).collect();
        let mut args = vec!["mark-dead", d.to_str().unwrap()];
        args.extend(pids.iter().map(String::as_str));
        harness(&args);
    }

    /// Keeps another harness process (a second pool) until the end of the case.
    pub fn keep(&mut self, pool: Running) {
        self.pool.push(pool);
    }

    /// The logs of every sidecar of this case so far.
    pub fn log_text(&self) -> String {
        let now = self
            .server
            .as_ref()
            .map(Server::log_text)
            .unwrap_or_default();
        format!("{}{now}", self.old_logs)
    }

    /// Scrapes until everything `expect` says holds, then twice more; then checks the
    /// sidecar runs and the outside is untouched.
    pub(super) fn check(&mut self, expect: &Expect) {
        let want = reference_text(&expect.reference);
        let deadline = Instant::now() + DEADLINE;
        let mut stable = 0;
        let mut scrapes = 0;
        while stable < 3 {
            let body = self.scrape();
            scrapes += 1;
            let mut problems = diffs(&body, &want);
            problems.extend(self.invisible(expect, &body));
            for c in &expect.conditions {
                if let Err(e) = c(self) {
                    problems.push(e);
                }
            }
            if problems.is_empty() {
                stable += 1;
                continue;
            }
            assert!(
                stable == 0,
                "the output changed again after it was right:\n{}",
                problems.join("\n")
            );
            assert!(
                Instant::now() < deadline,
                "after {scrapes} scrapes in {DEADLINE:?}, still:\n{}\n--- log:\n{}",
                problems.join("\n"),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let s = self.server.as_mut().unwrap();
        assert!(
            s.child.try_wait().unwrap().is_none(),
            "the sidecar exited: {}",
            s.log_text()
        );
        assert_eq!(s.get("/healthz", &[]).status, 200);
        if expect.on_disk {
            let copy = self.scratch_dir();
            copy_db_files(&self.dir, &copy);
            let problems = diffs(&reference_text(&copy), &want);
            assert!(
                problems.is_empty(),
                "MultiProcessCollector over the directory itself differs:\n{}",
                problems.join("\n")
            );
        }
        self.sentinel.check();
    }

    /// What of `expect`'s self-metrics and log lines is not there yet.
    fn invisible(&self, expect: &Expect, body: &str) -> Vec<String> {
        let mut out = Vec::new();
        for sample in &expect.rose {
            let before = value(&self.baseline, sample).unwrap_or(0.0);
            let now = value(body, sample);
            if now.is_none_or(|v| v <= before) {
                out.push(format!("{sample} did not rise from {before}: {now:?}"));
            }
        }
        let log = self.log_text();
        for parts in &expect.logged {
            if !log
                .lines()
                .any(|l| parts.iter().all(|p| l.contains(p.as_str())))
            {
                out.push(format!("no log line with all of {parts:?}"));
            }
        }
        out
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // A directory made read-only by its mode must be writable again to be removed.
        if self.setup.volume == Volume::ReadOnly && self.served == self.dir {
            let _ = fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o755));
        }
    }
}
