//! `/proc`, read and parsed in one place: a process's status line, its mappings, our
//! pid namespace and file descriptor limits.
//!
//! Liveness needs a process's state and start time (a zombie is dead; a process started
//! after a file was created did not write it) and its mappings (a process that maps a
//! file is its writer); the self-metrics need our own CPU time, memory and start time.
//! Both get them from here, with one start-time formula.
//!
//! Parsing is pure over the text; reading returns `None` (or an `io::Error` where the
//! caller must tell "no such process" from "cannot read") instead of failing.

use std::io;
use std::time::{Duration, SystemTime};

/// The fields of `/proc/<pid>/stat` we use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// The state letter (`R`, `S`, `Z` for a zombie, `X` for dead, ...).
    pub state: char,
    /// User CPU time, in clock ticks.
    pub utime: u64,
    /// System CPU time, in clock ticks.
    pub stime: u64,
    /// Start time, in clock ticks after boot.
    pub start_ticks: u64,
    /// Virtual memory size, in bytes.
    pub vsize: u64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
}

impl Stat {
    /// Whether the process has exited (a zombie waiting to be reaped, or gone).
    pub fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }

    /// User plus system CPU time, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        (self.utime + self.stime) as f64 / ticks_per_second()
    }

    /// Resident set size, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        self.rss_pages * page_size()
    }

    /// Wall-clock start time.
    pub fn start_time(&self) -> Option<SystemTime> {
        start_time(self.start_ticks)
    }
}

/// Parses the text of `/proc/<pid>/stat`. The command name is parenthesised and may
/// contain spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        state: f.first()?.chars().next()?,
        utime: num(11)?,
        stime: num(12)?,
        start_ticks: num(19)?,
        vsize: num(20)?,
        rss_pages: num(21)?,
    })
}

/// Reads `/proc/<pid>/stat`; `pid` `None` means this process.
///
/// # Errors
/// `NotFound` when there is no such process; `InvalidData` when the text does not parse.
pub fn stat(pid: Option<u32>) -> io::Result<Stat> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let text = std::fs::read_to_string(path)?;
    parse_stat(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable stat"))
}

/// Clock ticks per second (`USER_HZ`), the unit of `/proc` times.
pub fn ticks_per_second() -> f64 {
    use nix::unistd::{SysconfVar, sysconf};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

fn page_size() -> u64 {
    use nix::unistd::{SysconfVar, sysconf};
    match sysconf(SysconfVar::PAGE_SIZE) {
        Ok(Some(p)) if p > 0 => p as u64,
        _ => 4096,
    }
}

/// The wall-clock time of `ticks` clock ticks after boot. Boot is taken as now minus
/// `CLOCK_BOOTTIME` (which counts suspend, as process start times do), not as `btime` of
/// `/proc/stat`, which has whole-second resolution: pid reuse is judged in milliseconds.
pub fn start_time(ticks: u64) -> Option<SystemTime> {
    let boot = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    let since_boot = Duration::new(
        u64::try_from(boot.tv_sec()).ok()?,
        u32::try_from(boot.tv_nsec()).ok()?,
    );
    let booted = SystemTime::now().checked_sub(since_boot)?;
    booted.checked_add(Duration::from_secs_f64(ticks as f64 / ticks_per_second()))
}

/// One line of `/proc/<pid>/maps` that maps a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Device as `(major, minor)`.
    pub dev: (u64, u64),
    /// Inode number.
    pub ino: u64,
    /// The mapped path as the kernel prints it (may be missing or end in ` (deleted)`).
    pub path: String,
}

/// Parses the text of `/proc/<pid>/maps`; lines without an inode are skipped.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (_, _, _, dev, ino) = (
                parts.next()?,
                parts.next()?,
                parts.next()?,
                parts.next()?,
                parts.next()?,
            );
            let ino = ino.parse::<u64>().ok().filter(|&i| i != 0)?;
            let (maj, min) = dev.split_once(':')?;
            let dev = (
                u64::from_str_radix(maj, 16).ok()?,
                u64::from_str_radix(min, 16).ok()?,
            );
            let path = parts.collect::<Vec<_>>().join(" ");
            Some(Mapping { dev, ino, path })
        })
        .collect()
}

/// The file mappings of process `pid`; `None` when they cannot be read.
pub fn maps(pid: u32) -> Option<Vec<Mapping>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    Some(parse_maps(&text))
}

/// Whether `pid` is the id of one of our own threads, the main one included. A thread
/// id is a pid of our namespace: `/proc/<tid>` opens although `/proc` does not list it,
/// and shows our own mappings. In a pid namespace of our own (a container) the ids are
/// small and the same as the writers' pids in theirs, and our mappings of their files
/// would pass for the writers' own.
pub fn is_own_thread(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/self/task/{pid}")).exists()
}

/// The inode of our pid namespace (`/proc/self/ns/pid` reads `pid:[N]`).
pub fn own_pid_namespace() -> Option<u64> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let s = link.to_str()?;
    s.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

/// Raises the soft limit on open file descriptors to the hard one, as the Go runtime
/// does for every exporter: the soft default (1,024 under systemd) is far below what a
/// directory of a few hundred workers needs, and the hard limit is what the operator
/// granted. Returns the soft limit before and after.
///
/// # Errors
/// When the limits cannot be read or set.
pub fn raise_fd_limit() -> nix::Result<(u64, u64)> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok((soft, hard.max(soft)))
}

/// How many file descriptors this process has open.
pub fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// The soft limit on open file descriptors of this process.
pub fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_command_with_spaces_and_parentheses() {
        let text = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 12345 1000000 250 18446744073709551615";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!((s.utime, s.stime, s.start_ticks), (7, 3, 12345));
        assert_eq!((s.vsize, s.rss_pages), (1_000_000, 250));
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("1 (x) Z").is_none());
    }

    #[test]
    fn our_own_process() {
        let s = stat(None).unwrap();
        assert!(!s.has_exited());
        assert!(s.rss_bytes() > 0);
        let started = s.start_time().unwrap();
        let age = SystemTime::now().duration_since(started).unwrap();
        assert!(age < Duration::from_secs(3600), "{age:?}");
        assert!(open_fds().unwrap() >= 3);
        assert!(max_fds().unwrap() >= 3);
        assert!(own_pid_namespace().is_some());
        assert_eq!(
            stat(Some(4_194_304_999)).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn maps_lines() {
        let text = "7f0000000000-7f0000001000 r--s 00000000 00:1a 1234 /dev/shm/counter_1.db\n\
                    7f0000002000-7f0000003000 rw-p 00000000 00:00 0 \n\
                    55d000000000-55d000001000 r-xp 00000000 fd:01 99 /usr/bin/x (deleted)\n";
        let m = parse_maps(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].dev, (0, 0x1a));
        assert_eq!(
            (m[0].ino, m[0].path.as_str()),
            (1234, "/dev/shm/counter_1.db")
        );
        assert_eq!(m[1].dev, (0xfd, 1));
        assert!(maps(std::process::id()).unwrap().iter().any(|m| m.ino != 0));
    }
}
