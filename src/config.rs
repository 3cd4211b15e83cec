//! Command line and environment: raw flags (clap) turned into validated settings.
//!
//! Flags follow the Prometheus exporter conventions (`--web.listen-address`,
//! `--log.level`, ...), each with an environment fallback, so the same binary is
//! configured the same way in a pod spec, a systemd unit or a shell.

use crate::render::Format;
use crate::render::escape::Escaping;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use thiserror::Error;

/// Environment variable prometheus_client reads the directory from.
pub const DIR_ENV: &str = "PROMETHEUS_MULTIPROC_DIR";
/// The lowercase name prometheus_client accepted before 0.10 and still honours.
pub const LEGACY_DIR_ENV: &str = "prometheus_multiproc_dir";

/// One aggregated /metrics for a pre-fork worker pool that writes prometheus_client
/// multiprocess files.
#[derive(Debug, Parser)]
#[command(name = "multiproc-exporter", version, about, long_about = None)]
#[command(arg_required_else_help = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Logging options.
    #[command(flatten)]
    pub log: LogArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the merged exposition of a directory once and exit (0 ok, 1 directory
    /// unusable, 2 usage). Problems with single files are reported on stderr.
    Render(RenderArgs),
}

/// Flags of `render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The prometheus_client multiprocess directory. Falls back to the legacy
    /// lowercase variable prometheus_multiproc_dir.
    #[arg(long = "dir", env = DIR_ENV, value_name = "DIR")]
    pub dir: Option<PathBuf>,
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
            FormatArg::Openmetrics => Format::OpenMetrics(Escaping::Underscores),
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
    #[error("no directory given: pass --dir DIR or set {DIR_ENV} (or the legacy {LEGACY_DIR_ENV})")]
    NoDir,
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
        let Command::Render(r) = cli.command;
        assert_eq!(r.dir, Some(PathBuf::from("/x")));
        assert_eq!(r.format, FormatArg::Openmetrics);
    }

    #[test]
    fn bad_format_is_a_usage_error() {
        let err =
            Cli::try_parse_from(["multiproc-exporter", "render", "--format", "xml"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
