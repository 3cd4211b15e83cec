//! Processes of the cases: harness workers kept talking to, signals, chosen pids.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

/// A harness process whose stdout stays readable (it may print more than one line).
pub struct Worker {
    pub child: Child,
    out: BufReader<ChildStdout>,
    pub pid: u32,
}

impl Worker {
    /// Starts `harness.py ARGS` and reads its first line, `ready PID`.
    pub fn start(args: &[&str]) -> Worker {
        Worker::spawn(args).ready()
    }

    /// Starts `harness.py ARGS` so that it gets pid `want` (see [`with_pid`]).
    pub fn start_as(want: u32, args: &[&str]) -> Worker {
        with_pid(want, || Worker::spawn(args), |w| w.pid).ready()
    }

    fn spawn(args: &[&str]) -> Worker {
        let mut child = Command::new(crate::util::python())
            .arg(crate::pool::HARNESS)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Worker {
            pid: child.id(),
            child,
            out,
        }
    }

    fn ready(mut self) -> Worker {
        let line = self.line();
        assert_eq!(line, format!("ready {}", self.pid));
        self
    }

    /// The next line it prints.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    /// Sends one line to its stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// SIGKILL, and reaped (its pid is free again).
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// Spawns a process that gets the free pid `want`: a real pid reuse. The kernel's last
/// allocated pid is set through `/proc/sys/kernel/ns_last_pid` (root), and the spawn
/// retried when another fork on the machine took the pid first.
pub fn with_pid<T>(want: u32, mut spawn: impl FnMut() -> T, pid: impl Fn(&T) -> u32) -> T {
    for _ in 0..200 {
        fs::write("/proc/sys/kernel/ns_last_pid", (want - 1).to_string())
            .unwrap_or_else(|e| panic!("choosing a pid needs root (ns_last_pid): {e}"));
        let t = spawn();
        if pid(&t) == want {
            return t;
        }
    }
    panic!("could not get pid {want}: other processes keep taking it");
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends signal `sig` (`KILL`, `STOP`, ...) to `pid`.
pub fn signal(pid: u32, sig: &str) {
    let sent = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -{sig} {pid}");
}

/// The `*.db` names of the directory that carry `pid`.
pub fn files_of(dir: &Path, pid: u32) -> Vec<String> {
    crate::util::db_files(dir)
        .into_iter()
        .filter(|n| n.ends_with(&format!("_{pid}.db")))
        .collect()
}
