//! The fault suite of DESIGN section 7 (issue 9), through one checker.
//!
//! Every case runs the same way ([`run`]): real prometheus_client workers write a
//! directory (three live workers, every file kind and all ten gauge modes), an "outside"
//! sentinel sits next to it (a dead writer's counter file, a note), the real sidecar
//! serves the directory and is scraped once, so it has last good values. Then the case
//! applies its fault and says what must follow ([`Expect`]): the directory whose
//! `MultiProcessCollector` output the sidecar must serve (the untouched files plus, where
//! DESIGN section 3 keeps them, the faulted file's last good values), the self-metrics
//! that must rise and the log lines that must appear where the sidecar can observe the
//! fault, and conditions on the directory. The checker then scrapes until all of that
//! holds (every scrape 200, counters never backwards, nothing from outside served) and
//! twice more, and checks that the sidecar still runs and nothing outside the directory
//! changed.

mod bad_files;
mod bytes;
mod compare;
mod ctx;
mod lifecycle;
mod outside;
mod procs;

pub use ctx::Ctx;
pub use procs::{Worker, files_of, signal, with_pid};

use std::path::PathBuf;
use std::time::Duration;

/// How long a case may take to reach its expected state after the fault.
const DEADLINE: Duration = Duration::from_secs(15);

/// A pid beyond the usual `pid_max` (32768; the kernel allows up to 4194304): the writer
/// of the outside sentinel, and of files no process may claim.
pub const NO_PID: u32 = 4_194_303;

/// How the sidecar runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `--liveness none`: only reading (pure read faults).
    Reading,
    /// `--liveness proc --lifecycle.interval 200ms`: dead writers compacted.
    Compacting,
}

/// Where the case's directory lives.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Volume {
    /// A temporary directory.
    Plain,
    /// A small tmpfs of its own, filled to the brim before the sidecar starts (needs root
    /// to mount; without it, `--compaction.min-free-bytes` asks for more than any volume has).
    Full,
    /// The sidecar reads the directory through a read-only bind mount (root), or the
    /// directory is made read-only by its mode (not root).
    ReadOnly,
}

/// How a case is set up.
pub struct Setup {
    pub mode: Mode,
    pub volume: Volume,
    /// Run the sidecar as an unprivileged user (root reads any file).
    pub unprivileged: bool,
    /// Environment variables for the sidecar (fault injection points).
    pub env: Vec<(&'static str, String)>,
}

impl Setup {
    pub fn reading() -> Setup {
        Setup {
            mode: Mode::Reading,
            volume: Volume::Plain,
            unprivileged: false,
            env: Vec::new(),
        }
    }

    pub fn compacting() -> Setup {
        Setup {
            mode: Mode::Compacting,
            ..Setup::reading()
        }
    }
}

/// A condition on the state after the fault: `Err` says what is still wrong.
pub type Condition = Box<dyn Fn(&Ctx) -> Result<(), String>>;

/// What must hold after the fault.
pub struct Expect {
    /// The sidecar's application output must equal `MultiProcessCollector` over this.
    pub reference: PathBuf,
    /// Self-metric samples (`name{labels}`) that must have risen since the first scrape.
    pub rose: Vec<String>,
    /// For each entry, one log line must contain every one of its strings.
    pub logged: Vec<Vec<String>>,
    /// Conditions on the directory (or the processes) that must hold too.
    pub conditions: Vec<Condition>,
    /// Also `MultiProcessCollector` over the directory itself (as compacted) must give
    /// the reference: nothing lost or counted twice on disk.
    pub on_disk: bool,
}

impl Expect {
    pub fn new(reference: PathBuf) -> Expect {
        Expect {
            reference,
            rose: Vec::new(),
            logged: Vec::new(),
            conditions: Vec::new(),
            on_disk: false,
        }
    }

    /// `multiproc_exporter_file_errors_total{reason}` must rise.
    pub fn file_error(mut self, reason: &str) -> Expect {
        self.rose.push(format!(
            "multiproc_exporter_file_errors_total{{reason=\"{reason}\"}}"
        ));
        self
    }

    /// Any self-metric sample must rise.
    pub fn rose(mut self, sample: &str) -> Expect {
        self.rose.push(sample.to_owned());
        self
    }

    /// One log line must contain all of `parts`.
    pub fn logged<S: AsRef<str>>(mut self, parts: impl IntoIterator<Item = S>) -> Expect {
        let parts = parts.into_iter().map(|p| p.as_ref().to_owned()).collect();
        self.logged.push(parts);
        self
    }

    pub fn condition(mut self, c: impl Fn(&Ctx) -> Result<(), String> + 'static) -> Expect {
        self.conditions.push(Box::new(c));
        self
    }

    pub fn on_disk(mut self) -> Expect {
        self.on_disk = true;
        self
    }
}

/// Runs one case of the suite.
pub fn run(setup: Setup, fault: impl FnOnce(&mut Ctx) -> Expect) {
    let mut ctx = Ctx::new(setup);
    ctx.start_server();
    ctx.baseline();
    let expect = fault(&mut ctx);
    ctx.check(&expect);
}
