//! The `multiproc-exporter` binary: parse flags, set up logging, run, map to exit codes.

use anyhow::Context;
use clap::Parser;
use multiproc_exporter::collect::Collector;
use multiproc_exporter::config::{self, Cli, Command, LogArgs, LogFormat, RenderArgs};
use multiproc_exporter::render;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    match cli.command {
        Command::Render(args) => match render_once(args) {
            Ok(code) => code,
            Err(err) => {
                tracing::error!("{err:#}");
                ExitCode::from(1)
            }
        },
    }
}

fn init_logging(log: &LogArgs) {
    let filter = tracing_subscriber::EnvFilter::new(log.level.directive());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    match log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `render`: one pass, exposition on stdout, one warning per bad file on stderr.
fn render_once(args: RenderArgs) -> anyhow::Result<ExitCode> {
    let dir = match config::resolve_dir(args.dir) {
        Ok(dir) => dir,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut collector = Collector::new(&dir);
    let pass = collector
        .collect()
        .with_context(|| format!("cannot render {}", dir.display()))?;
    for issue in &pass.issues {
        tracing::warn!(
            file = %dir.join(&issue.file).display(),
            reason = issue.reason.as_str(),
            "{}",
            issue.detail
        );
    }
    let mut out = String::with_capacity(pass.entries * 64);
    render::render(&pass.families, args.format.format(), &mut out);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write the exposition to stdout")?;
    Ok(ExitCode::SUCCESS)
}
