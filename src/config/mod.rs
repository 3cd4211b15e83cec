//! Command line and environment: raw flags (clap) turned into validated settings.
//!
//! Flags follow the Prometheus exporter conventions (`--web.listen-address`,
//! `--log.level`, ...), each with an environment fallback, so the same binary is
//! configured the same way in a pod spec, a systemd unit or a shell.
//!
//! Two phases: [`Cli::from_command_line`] parses the raw flags (an empty environment
//! variable counts as unset, see [`unset_empty_env`]), then `validate` on the
//! subcommand's flags ([`ServeArgs::validate`], [`RenderArgs::validate`],
//! [`CompactArgs::validate`], [`HealthcheckArgs::validate`]) resolves the directory,
//! checks and resolves the values and returns the settings the binary runs with
//! ([`Serve`], [`Render`], [`Compact`], a [`healthcheck::Target`](crate::healthcheck::Target)).
//! Every default lives once, in the `DEFAULT_*` constants below, used both by the flags
//! and by [`ServeConfig::new`].

use crate::compact;
use crate::liveness;
use crate::render::Format;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

mod settings;

pub use settings::{
    Compact, ConfigError, Pool, Render, Serve, ServeConfig, check_telemetry_path, healthcheck_url,
    lifecycle_settings, listen_addresses, probe_addresses, resolve_dir,
};

/// Environment variable prometheus_client reads the directory from.
pub const DIR_ENV: &str = "PROMETHEUS_MULTIPROC_DIR";
/// The lowercase name prometheus_client accepted before 0.10 and still honours.
pub const LEGACY_DIR_ENV: &str = "prometheus_multiproc_dir";

/// The port of the default listen address.
pub const DEFAULT_PORT: u16 = 9867;
/// `--web.listen-address`: every interface, on [`DEFAULT_PORT`].
pub const DEFAULT_LISTEN_ADDRESS: &str = ":9867";
/// `--web.telemetry-path`.
pub const DEFAULT_TELEMETRY_PATH: &str = "/metrics";
/// `--web.max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// `--web.header-timeout`.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `--web.write-timeout`.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// `--web.shutdown-timeout`.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// `--timeout` of `healthcheck`.
pub const DEFAULT_HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// `--lifecycle.interval`.
pub const DEFAULT_LIFECYCLE_INTERVAL: Duration = Duration::from_secs(1);
/// `--compaction.min-free-bytes` (of `serve` and `compact`).
pub const DEFAULT_MIN_FREE_BYTES: u64 = 4 << 20;
/// `--liveness` of `serve` and `compact`.
pub const DEFAULT_LIVENESS: liveness::Mode = liveness::Mode::Auto;
/// `--liveness` of `render`: equivalence with prometheus_client is defined without it.
pub const DEFAULT_RENDER_LIVENESS: liveness::Mode = liveness::Mode::None;
/// `--compaction`.
pub const DEFAULT_COMPACTION: Toggle = Toggle::On;
/// `--demo.workers`.
pub const DEFAULT_DEMO_WORKERS: usize = 4;
/// `--demo.worker-lifetime` (hidden): each demo worker lives between it and 2.5 times it.
pub const DEFAULT_DEMO_WORKER_LIFETIME: Duration = Duration::from_secs(8);
/// `--log.level`.
pub const DEFAULT_LOG_LEVEL: LogLevel = LogLevel::Info;
/// `--log.format`.
pub const DEFAULT_LOG_FORMAT: LogFormat = LogFormat::Text;

/// One aggregated /metrics for a pre-fork worker pool that writes prometheus_client
/// multiprocess files. Without a subcommand it serves (see `serve`).
///
/// Parse it with [`Cli::from_command_line`] or [`Cli::try_from_args`], not with
/// clap's `Parser::parse`: only those treat empty environment variables as unset and
/// record where `--dir` came from (which `--demo` needs).
#[derive(Debug, Parser)]
#[command(name = "multiproc-exporter", version, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `serve`, accepted without the subcommand.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Logging options.
    #[command(flatten)]
    pub log: LogArgs,
}

impl Cli {
    /// Parses the process's arguments and environment; on a usage error prints clap's
    /// message and exits 2 (0 for `--help` and `--version`).
    pub fn from_command_line() -> Cli {
        Cli::try_from_args(std::env::args_os()).unwrap_or_else(|err| err.exit())
    }

    /// Parses `args` (the first is the program name) with the process's environment
    /// as fallback, an empty variable counting as unset.
    ///
    /// # Errors
    /// clap's error for an unknown flag, a bad value and the like (exit code 2), or its
    /// `--help` and `--version` output (exit code 0).
    pub fn try_from_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut cmd = unset_empty_env(Cli::command(), &|var| {
            std::env::var_os(var).is_some_and(|v| v.is_empty())
        });
        let matches = cmd.try_get_matches_from_mut(args)?;
        let mut cli = Cli::from_arg_matches(&matches).map_err(|err| err.format(&mut cmd))?;
        cli.serve.dir_from_env = dir_from_env(&matches);
        if let (Some(Command::Serve(serve)), Some(sub)) =
            (&mut cli.command, matches.subcommand_matches("serve"))
        {
            serve.dir_from_env = dir_from_env(sub);
        }
        Ok(cli)
    }
}

/// Whether the `--dir` of `serve` in `matches` was taken from the environment.
fn dir_from_env(matches: &ArgMatches) -> bool {
    matches.value_source("serve_dir") == Some(ValueSource::EnvVariable)
}

/// Removes the environment fallback of every argument of `cmd` and its subcommands
/// whose variable `is_empty` says is set but empty, so it counts as unset (clap would
/// otherwise take the empty value and fail with "a value is required", as a Kubernetes
/// `value: ""` does). The process environment itself is left alone.
pub fn unset_empty_env(mut cmd: clap::Command, is_empty: &dyn Fn(&OsStr) -> bool) -> clap::Command {
    let empty: Vec<clap::Id> = cmd
        .get_arguments()
        .filter(|arg| arg.get_env().is_some_and(is_empty))
        .map(|arg| arg.get_id().clone())
        .collect();
    for id in empty {
        cmd = cmd.mut_arg(id, |arg| arg.env(None::<&str>));
    }
    let subcommands: Vec<String> = cmd
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    for name in subcommands {
        cmd = cmd.mut_subcommand(name, |sub| unset_empty_env(sub, is_empty));
    }
    cmd
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the merged directory on /metrics until SIGTERM or SIGINT (the default).
    Serve(ServeArgs),
    /// Print the merged exposition of a directory once and exit (0 ok, 1 directory
    /// unusable, 2 usage). Problems with single files are reported on stderr.
    Render(RenderArgs),
    /// Run one lifecycle round and exit: finish an interrupted compaction, fold the
    /// files of proven-dead workers into archives, remove their live gauges.
    Compact(CompactArgs),
    /// Check that a running server answers: GET /healthz on loopback and exit 0 if it
    /// answers 200, 1 if not (for container runtimes that run a command as health
    /// check; the image has no shell and no curl).
    Healthcheck(HealthcheckArgs),
    /// One worker of the --demo pool (started by the demo supervisor).
    #[command(hide = true)]
    DemoWorker(DemoWorkerArgs),
}

/// Flags of `serve`.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// The prometheus_client multiprocess directory. Falls back to the legacy
    /// lowercase variable prometheus_multiproc_dir. It may not exist yet: the sidecar
    /// waits for it (not ready) and serves /healthz meanwhile. Ignored with --demo when
    /// it comes from the environment.
    #[arg(id = "serve_dir", long = "dir", env = DIR_ENV, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Whether `dir` came from the environment rather than the command line (set by
    /// [`Cli::try_from_args`]; `false`, the strict reading, when parsed otherwise).
    #[arg(skip)]
    pub dir_from_env: bool,
    /// Serve a built-in simulated worker pool writing to a temporary directory of its
    /// own, to see the sidecar work without an application.
    #[arg(long = "demo")]
    pub demo: bool,
    /// Number of workers of the --demo pool.
    #[arg(
        long = "demo.workers",
        value_name = "N",
        default_value_t = DEFAULT_DEMO_WORKERS,
        requires = "demo"
    )]
    pub demo_workers: usize,
    /// Shortest lifetime of a --demo worker; each lives between it and 2.5 times it.
    /// Hidden: tests shorten it to see many workers die and be compacted.
    #[arg(
        long = "demo.worker-lifetime",
        value_name = "DURATION",
        default_value_t = DurationArg(DEFAULT_DEMO_WORKER_LIFETIME),
        hide = true,
        requires = "demo"
    )]
    pub demo_worker_lifetime: DurationArg,
    /// Address to listen on: HOST:PORT, or :PORT for all interfaces.
    #[arg(
        long = "web.listen-address",
        env = "MULTIPROC_EXPORTER_WEB_LISTEN_ADDRESS",
        value_name = "ADDRESS",
        default_value = DEFAULT_LISTEN_ADDRESS
    )]
    pub listen_address: String,
    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        env = "MULTIPROC_EXPORTER_WEB_TELEMETRY_PATH",
        value_name = "PATH",
        default_value = DEFAULT_TELEMETRY_PATH
    )]
    pub telemetry_path: String,
    /// Scrapes served at once; more wait their turn. A scrape keeps its turn until its
    /// response is written (at most --web.write-timeout). Health checks never wait, and
    /// idle connections do not count.
    #[arg(
        long = "web.max-connections",
        env = "MULTIPROC_EXPORTER_WEB_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = DEFAULT_MAX_CONNECTIONS
    )]
    pub max_connections: usize,
    /// Time a client has to send its request headers; idle and slow clients are
    /// disconnected after it.
    #[arg(
        long = "web.header-timeout",
        env = "MULTIPROC_EXPORTER_WEB_HEADER_TIMEOUT",
        value_name = "DURATION",
        default_value_t = DurationArg(DEFAULT_HEADER_TIMEOUT)
    )]
    pub header_timeout: DurationArg,
    /// Time to write a response from its first byte; a client that reads slower (or not
    /// at all) is disconnected after it, freeing its scrape slot.
    #[arg(
        long = "web.write-timeout",
        env = "MULTIPROC_EXPORTER_WEB_WRITE_TIMEOUT",
        value_name = "DURATION",
        default_value_t = DurationArg(DEFAULT_WRITE_TIMEOUT)
    )]
    pub write_timeout: DurationArg,
    /// Where evidence that a worker is dead comes from: auto (lock files where the shim
    /// writes them, /proc once the pid namespace is proven shared), lock, proc (asserts
    /// a shared pid namespace), or none (never declare a worker dead).
    #[arg(
        long = "liveness",
        env = "MULTIPROC_EXPORTER_LIVENESS",
        value_name = "MODE",
        value_enum,
        default_value_t = DEFAULT_LIVENESS
    )]
    pub liveness: liveness::Mode,
    /// Fold dead workers' files into archive files and remove their live gauges. Turn
    /// off while an in-app collector still reads the same directory.
    #[arg(
        long = "compaction",
        env = "MULTIPROC_EXPORTER_COMPACTION",
        value_name = "ON|OFF",
        value_enum,
        default_value_t = DEFAULT_COMPACTION
    )]
    pub compaction: Toggle,
    /// Free bytes the directory's volume must keep after compaction writes; below it
    /// compaction is skipped and reported (a full memory volume crashes the writers).
    #[arg(
        long = "compaction.min-free-bytes",
        env = "MULTIPROC_EXPORTER_COMPACTION_MIN_FREE_BYTES",
        value_name = "BYTES",
        default_value_t = DEFAULT_MIN_FREE_BYTES
    )]
    pub min_free_bytes: u64,
    /// How often liveness and compaction run when no file event wakes them.
    #[arg(
        long = "lifecycle.interval",
        env = "MULTIPROC_EXPORTER_LIFECYCLE_INTERVAL",
        value_name = "DURATION",
        default_value_t = DurationArg(DEFAULT_LIFECYCLE_INTERVAL)
    )]
    pub lifecycle_interval: DurationArg,
    /// On SIGTERM or SIGINT, how long to let in-flight scrapes finish before exiting.
    #[arg(
        long = "web.shutdown-timeout",
        env = "MULTIPROC_EXPORTER_WEB_SHUTDOWN_TIMEOUT",
        value_name = "DURATION",
        default_value_t = DurationArg(DEFAULT_SHUTDOWN_TIMEOUT)
    )]
    pub shutdown_timeout: DurationArg,
    /// TLS, mutual TLS, basic auth, response headers and a rate limit, in the YAML of
    /// Prometheus' exporter-toolkit (docs/configuration.md). Re-read when it or a file
    /// it names changes; a change that does not load keeps the last good one.
    #[arg(
        long = "web.config.file",
        env = "MULTIPROC_EXPORTER_WEB_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub web_config_file: Option<PathBuf>,
    /// Check --web.config.file and every file it names, print what would be served,
    /// and exit: 0 when it is good, 1 naming the key that is not.
    #[arg(long = "web.config.check", requires = "web_config_file")]
    pub web_config_check: bool,
    /// Also serve /healthz and /readyz, and nothing else, over plain HTTP on this
    /// address (HOST:PORT or :PORT): probes that present no client certificate under
    /// mutual TLS. Off unless given.
    #[arg(
        long = "web.probe-address",
        env = "MULTIPROC_EXPORTER_WEB_PROBE_ADDRESS",
        value_name = "ADDRESS"
    )]
    pub probe_address: Option<String>,
}

/// Flags of `render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The prometheus_client multiprocess directory. Falls back to the legacy
    /// lowercase variable prometheus_multiproc_dir.
    #[arg(long = "dir", env = DIR_ENV, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Where evidence that a worker is dead comes from; live-mode gauges of dead
    /// workers are left out. Nothing is ever written.
    #[arg(
        id = "render_liveness",
        long = "liveness",
        value_name = "MODE",
        value_enum,
        default_value_t = DEFAULT_RENDER_LIVENESS
    )]
    pub liveness: liveness::Mode,
    /// Exposition format to print.
    #[arg(id = "render_format", long = "format", value_name = "FORMAT", value_enum, default_value_t = FormatArg::Text)]
    pub format: FormatArg,
}

/// Flags of `compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The prometheus_client multiprocess directory. Falls back to the legacy
    /// lowercase variable prometheus_multiproc_dir.
    #[arg(id = "compact_dir", long = "dir", env = DIR_ENV, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Where evidence that a worker is dead comes from.
    #[arg(
        id = "compact_liveness",
        long = "liveness",
        value_name = "MODE",
        value_enum,
        default_value_t = DEFAULT_LIVENESS
    )]
    pub liveness: liveness::Mode,
    /// Also clean the directory if every writer in it is dead (what the server does at
    /// start).
    #[arg(long = "wipe-stale")]
    pub wipe_stale: bool,
    /// Free bytes the volume must keep after compaction writes.
    #[arg(
        id = "compact_min_free",
        long = "compaction.min-free-bytes",
        value_name = "BYTES",
        default_value_t = DEFAULT_MIN_FREE_BYTES
    )]
    pub min_free_bytes: u64,
}

/// Flags of `healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The server's listen address, as given to `serve` (the same environment variable):
    /// its port is probed on loopback when the host is empty or an any-address (0.0.0.0,
    /// ::), else on that host.
    #[arg(
        id = "healthcheck_listen_address",
        long = "web.listen-address",
        env = "MULTIPROC_EXPORTER_WEB_LISTEN_ADDRESS",
        value_name = "ADDRESS",
        default_value = DEFAULT_LISTEN_ADDRESS
    )]
    pub listen_address: String,
    /// Probe this URL instead (http://HOST:PORT/PATH, e.g. a /readyz); it wins over
    /// --web.listen-address.
    #[arg(id = "healthcheck_url", long = "url", value_name = "URL")]
    pub url: Option<String>,
    /// Give up after this long (connecting, sending, reading the status line).
    #[arg(
        id = "healthcheck_timeout",
        long = "timeout",
        value_name = "DURATION",
        default_value_t = DurationArg(DEFAULT_HEALTHCHECK_TIMEOUT)
    )]
    pub timeout: DurationArg,
}

/// Flags of the hidden `demo-worker` subcommand.
#[derive(Debug, Args)]
pub struct DemoWorkerArgs {
    /// Directory to write to.
    #[arg(long = "dir", value_name = "DIR")]
    pub dir: PathBuf,
    /// Seed of the simulated traffic.
    #[arg(long = "seed", value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// How long the worker lives, in milliseconds.
    #[arg(long = "lifetime-ms", value_name = "MS", default_value_t = 15_000)]
    pub lifetime_ms: u64,
}

/// Logging flags, shared by every subcommand.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only log messages with the given severity or above.
    #[arg(
        id = "log_level",
        long = "log.level",
        env = "MULTIPROC_EXPORTER_LOG_LEVEL",
        value_name = "LEVEL",
        value_enum,
        default_value_t = DEFAULT_LOG_LEVEL,
        global = true
    )]
    pub level: LogLevel,
    /// Output format of log messages.
    #[arg(
        id = "log_format",
        long = "log.format",
        env = "MULTIPROC_EXPORTER_LOG_FORMAT",
        value_name = "FORMAT",
        value_enum,
        default_value_t = DEFAULT_LOG_FORMAT,
        global = true
    )]
    pub format: LogFormat,
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Toggle {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

impl Toggle {
    /// Whether it is [`Toggle::On`].
    pub fn is_on(self) -> bool {
        self == Toggle::On
    }
}

/// Formats `render` can print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.0 text.
    Openmetrics,
}

impl FormatArg {
    /// The renderer format.
    pub fn format(self) -> Format {
        match self {
            FormatArg::Text => Format::Text004,
            FormatArg::Openmetrics => Format::OPENMETRICS,
        }
    }
}

/// Log severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Everything, for debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Problems that were worked around (bad files).
    Warn,
    /// Failures.
    Error,
}

impl LogLevel {
    /// The `tracing` filter directive.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `key=value` lines for people.
    Text,
    /// One JSON object per line for log pipelines.
    Json,
}

/// A duration flag value: `500ms`, `10s`, `2m`, `1h` (see [`parse_duration`]). It
/// prints the same way, so a `Duration` default shows as `10s` in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationArg(pub Duration);

impl FromStr for DurationArg {
    type Err = String;

    fn from_str(s: &str) -> Result<DurationArg, String> {
        parse_duration(s).map(DurationArg)
    }
}

impl fmt::Display for DurationArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if !d.subsec_nanos().is_multiple_of(1_000_000) {
            return write!(f, "{}s", d.as_secs_f64());
        }
        let ms = d.as_millis();
        match ms {
            0 => write!(f, "0s"),
            _ if ms.is_multiple_of(3_600_000) => write!(f, "{}h", ms / 3_600_000),
            _ if ms.is_multiple_of(60_000) => write!(f, "{}m", ms / 60_000),
            _ if ms.is_multiple_of(1000) => write!(f, "{}s", ms / 1000),
            _ => write!(f, "{ms}ms"),
        }
    }
}

impl From<DurationArg> for Duration {
    fn from(d: DurationArg) -> Duration {
        d.0
    }
}

impl PartialEq<Duration> for DurationArg {
    fn eq(&self, other: &Duration) -> bool {
        self.0 == *other
    }
}

/// Parses `500ms`, `10s`, `2m`, `1h` (Prometheus' duration units, without days).
///
/// # Errors
/// A message naming the value and the expected form.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 10s, 2m or 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?} is not a duration like 500ms, 10s, 2m or 1h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests;
