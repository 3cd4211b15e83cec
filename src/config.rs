//! Command line and environment: raw flags (clap) turned into validated settings.
//!
//! Flags follow the Prometheus exporter conventions (`--web.listen-address`,
//! `--log.level`, ...), each with an environment fallback, so the same binary is
//! configured the same way in a pod spec, a systemd unit or a shell.

use crate::liveness;
use crate::render::Format;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// Environment variable prometheus_client reads the directory from.
pub const DIR_ENV: &str = "PROMETHEUS_MULTIPROC_DIR";
/// The lowercase name prometheus_client accepted before 0.10 and still honours.
pub const LEGACY_DIR_ENV: &str = "prometheus_multiproc_dir";

/// One aggregated /metrics for a pre-fork worker pool that writes prometheus_client
/// multiprocess files. Without a subcommand it serves (see `serve`).
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
    /// One worker of the --demo pool (started by the demo supervisor).
    #[command(hide = true)]
    DemoWorker(DemoWorkerArgs),
}

/// The port of the default listen address.
pub const DEFAULT_PORT: u16 = 9867;

/// Flags of `serve`.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// The prometheus_client multiprocess directory. Falls back to the legacy
    /// lowercase variable prometheus_multiproc_dir. It may not exist yet: the sidecar
    /// waits for it (not ready) and serves /healthz meanwhile.
    #[arg(id = "serve_dir", long = "dir", env = DIR_ENV, value_name = "DIR", conflicts_with = "demo")]
    pub dir: Option<PathBuf>,
    /// Serve a built-in simulated worker pool writing to a temporary directory, to see
    /// the sidecar work without an application.
    #[arg(long = "demo")]
    pub demo: bool,
    /// Number of workers of the --demo pool.
    #[arg(
        long = "demo.workers",
        value_name = "N",
        default_value_t = 4,
        requires = "demo"
    )]
    pub demo_workers: usize,
    /// Shortest lifetime of a --demo worker; each lives between it and 2.5 times it.
    /// Hidden: tests shorten it to see many workers die and be compacted.
    #[arg(
        long = "demo.worker-lifetime",
        value_name = "DURATION",
        default_value = "8s",
        value_parser = parse_duration,
        hide = true,
        requires = "demo"
    )]
    pub demo_worker_lifetime: Duration,
    /// Address to listen on: HOST:PORT, or :PORT for all interfaces.
    #[arg(
        long = "web.listen-address",
        env = "MULTIPROC_EXPORTER_WEB_LISTEN_ADDRESS",
        value_name = "ADDRESS",
        default_value = ":9867"
    )]
    pub listen_address: String,
    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        env = "MULTIPROC_EXPORTER_WEB_TELEMETRY_PATH",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(
        long = "web.max-connections",
        env = "MULTIPROC_EXPORTER_WEB_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 64
    )]
    pub max_connections: usize,
    /// Time a client has to send its request headers; idle and slow clients are
    /// disconnected after it.
    #[arg(
        long = "web.header-timeout",
        env = "MULTIPROC_EXPORTER_WEB_HEADER_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub header_timeout: Duration,
    /// Where evidence that a worker is dead comes from: auto (lock files where the shim
    /// writes them, /proc once the pid namespace is proven shared), lock, proc (asserts
    /// a shared pid namespace), or none (never declare a worker dead).
    #[arg(
        long = "liveness",
        env = "MULTIPROC_EXPORTER_LIVENESS",
        value_enum,
        default_value_t = liveness::Mode::Auto
    )]
    pub liveness: liveness::Mode,
    /// Fold dead workers' files into archive files and remove their live gauges. Turn
    /// off while an in-app collector still reads the same directory.
    #[arg(
        long = "compaction",
        env = "MULTIPROC_EXPORTER_COMPACTION",
        value_enum,
        default_value_t = Toggle::On
    )]
    pub compaction: Toggle,
    /// Free bytes the directory's volume must keep after compaction writes; below it
    /// compaction is skipped and reported (a full memory volume crashes the writers).
    #[arg(
        long = "compaction.min-free-bytes",
        env = "MULTIPROC_EXPORTER_COMPACTION_MIN_FREE_BYTES",
        value_name = "BYTES",
        default_value_t = 4 << 20
    )]
    pub min_free_bytes: u64,
    /// How often liveness and compaction run when no file event wakes them.
    #[arg(
        long = "lifecycle.interval",
        env = "MULTIPROC_EXPORTER_LIFECYCLE_INTERVAL",
        value_name = "DURATION",
        default_value = "1s",
        value_parser = parse_duration
    )]
    pub lifecycle_interval: Duration,
    /// On SIGTERM or SIGINT, how long to let in-flight scrapes finish before exiting.
    #[arg(
        long = "web.shutdown-timeout",
        env = "MULTIPROC_EXPORTER_WEB_SHUTDOWN_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub shutdown_timeout: Duration,
}

/// Flags of `compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The prometheus_client multiprocess directory.
    #[arg(id = "compact_dir", long = "dir", env = DIR_ENV, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Where evidence that a worker is dead comes from.
    #[arg(id = "compact_liveness", long = "liveness", value_enum, default_value_t = liveness::Mode::Auto)]
    pub liveness: liveness::Mode,
    /// Also clean the directory if every writer in it is dead (what the server does at
    /// start).
    #[arg(long = "wipe-stale")]
    pub wipe_stale: bool,
    /// Free bytes the volume must keep after compaction writes.
    #[arg(id = "compact_min_free", long = "compaction.min-free-bytes", value_name = "BYTES", default_value_t = 4 << 20)]
    pub min_free_bytes: u64,
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Toggle {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// Flags of the hidden `demo-worker` subcommand.
#[derive(Debug, Args)]
pub struct DemoWorkerArgs {
    /// Directory to write to.
    #[arg(long = "dir", value_name = "DIR")]
    pub dir: PathBuf,
    /// Seed of the simulated traffic.
    #[arg(long = "seed", default_value_t = 1)]
    pub seed: u64,
    /// How long the worker lives, in milliseconds.
    #[arg(long = "lifetime-ms", default_value_t = 15_000)]
    pub lifetime_ms: u64,
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

/// The addresses to try for a listen address (`:PORT` means every interface, IPv6 and
/// IPv4 where the system has both).
///
/// # Errors
/// When the address is not `HOST:PORT` or `:PORT`, or the host does not resolve.
pub fn listen_addresses(spec: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    let bad = || ConfigError::ListenAddress(spec.to_owned());
    if let Some(port) = spec.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| bad())?;
        return Ok(vec![
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
        ]);
    }
    let addrs: Vec<SocketAddr> = spec.to_socket_addrs().map_err(|_| bad())?.collect();
    if addrs.is_empty() {
        return Err(bad());
    }
    Ok(addrs)
}

/// Checks the telemetry path.
///
/// # Errors
/// When it does not start with `/` or clashes with another endpoint.
pub fn check_telemetry_path(path: &str) -> Result<(), ConfigError> {
    if !path.starts_with('/') || matches!(path, "/" | "/healthz" | "/readyz") {
        return Err(ConfigError::TelemetryPath(path.to_owned()));
    }
    Ok(())
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
    #[arg(id = "render_liveness", long = "liveness", value_enum, default_value_t = liveness::Mode::None)]
    pub liveness: liveness::Mode,
    /// Exposition format to print.
    #[arg(id = "render_format", long = "format", value_name = "FORMAT", value_enum, default_value_t = FormatArg::Text)]
    pub format: FormatArg,
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

/// Logging flags, shared by every subcommand.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only log messages with the given severity or above.
    #[arg(
        id = "log_level",
        long = "log.level",
        env = "MULTIPROC_EXPORTER_LOG_LEVEL",
        value_enum,
        default_value_t = LogLevel::Info,
        global = true
    )]
    pub level: LogLevel,
    /// Output format of log messages.
    #[arg(
        id = "log_format",
        long = "log.format",
        env = "MULTIPROC_EXPORTER_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub format: LogFormat,
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

/// A setting could not be resolved.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Neither the flag nor either environment variable names a directory.
    #[error(
        "no directory given: pass --dir DIR or set {DIR_ENV} (or the legacy {LEGACY_DIR_ENV}), or try --demo"
    )]
    NoDir,
    /// `--web.listen-address` is not usable.
    #[error("--web.listen-address {0:?} is not HOST:PORT or :PORT")]
    ListenAddress(String),
    /// `--web.telemetry-path` is not usable.
    #[error("--web.telemetry-path {0:?} must start with '/' and not be /, /healthz or /readyz")]
    TelemetryPath(String),
}

/// The directory from the flag, `PROMETHEUS_MULTIPROC_DIR` (applied by clap), or the
/// legacy lowercase variable, in that order. Empty values count as unset.
///
/// # Errors
/// [`ConfigError::NoDir`] when none is set.
pub fn resolve_dir(flag: Option<PathBuf>) -> Result<PathBuf, ConfigError> {
    flag.filter(|p| !p.as_os_str().is_empty())
        .or_else(|| {
            std::env::var_os(LEGACY_DIR_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .ok_or(ConfigError::NoDir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn render_flags_parse() {
        let cli = Cli::try_parse_from([
            "multiproc-exporter",
            "render",
            "--dir",
            "/x",
            "--format",
            "openmetrics",
        ])
        .unwrap();
        let Some(Command::Render(r)) = cli.command else {
            panic!("render expected")
        };
        assert_eq!(r.dir, Some(PathBuf::from("/x")));
        assert_eq!(r.format, FormatArg::Openmetrics);
    }

    #[test]
    fn serve_is_the_default() {
        let cli = Cli::try_parse_from([
            "multiproc-exporter",
            "--dir",
            "/d",
            "--web.listen-address",
            "127.0.0.1:0",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.dir, Some(PathBuf::from("/d")));
        assert_eq!(cli.serve.header_timeout, Duration::from_secs(10));
        assert!(Cli::try_parse_from(["multiproc-exporter", "--dir", "/d", "--demo"]).is_err());
    }

    #[test]
    fn durations_and_addresses() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("x s").is_err());
        assert_eq!(listen_addresses(":9867").unwrap().len(), 2);
        assert_eq!(listen_addresses("127.0.0.1:80").unwrap()[0].port(), 80);
        assert!(listen_addresses("nonsense").is_err());
        assert!(check_telemetry_path("/healthz").is_err());
        assert!(check_telemetry_path("metrics").is_err());
        assert!(check_telemetry_path("/m").is_ok());
    }

    #[test]
    fn bad_format_is_a_usage_error() {
        let err =
            Cli::try_parse_from(["multiproc-exporter", "render", "--format", "xml"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
