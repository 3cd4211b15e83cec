//! The `multiproc-exporter` binary: parse flags, set up logging, run, map to exit codes.

use anyhow::Context;
use clap::Parser;
use multiproc_exporter::collect::Collector;
use multiproc_exporter::compact::{Lifecycle, Settings};
use multiproc_exporter::config::{
    self, Cli, Command, CompactArgs, LogArgs, LogFormat, RenderArgs, ServeArgs, Toggle,
};
use multiproc_exporter::serve::{self, ServeConfig};
use multiproc_exporter::{demo, render};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let result = match cli.command {
        Some(Command::Render(args)) => render_once(args),
        Some(Command::DemoWorker(args)) => demo::worker_main(
            &args.dir,
            args.seed,
            Duration::from_millis(args.lifetime_ms),
        )
        .map(|()| ExitCode::SUCCESS)
        .with_context(|| format!("demo worker writing to {}", args.dir.display())),
        Some(Command::Serve(args)) => serve_main(args),
        Some(Command::Compact(args)) => compact_once(args),
        None => serve_main(cli.serve),
    };
    result.unwrap_or_else(|err| {
        tracing::error!("{err:#}");
        ExitCode::from(1)
    })
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

fn usage_error(err: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {err}");
    ExitCode::from(2)
}

/// `serve`: bind, serve until SIGTERM/SIGINT, drain, exit 0.
fn serve_main(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if let Err(err) = config::check_telemetry_path(&args.telemetry_path) {
        return Ok(usage_error(err));
    }
    let addrs = match config::listen_addresses(&args.listen_address) {
        Ok(a) => a,
        Err(err) => return Ok(usage_error(err)),
    };
    let dir = if args.demo {
        None
    } else {
        match config::resolve_dir(args.dir.clone()) {
            Ok(dir) => Some(dir),
            Err(err) => return Ok(usage_error(err)),
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = bind(&addrs, &args.listen_address)?;
        let (_pool, dir) = match dir {
            Some(dir) => (None, dir),
            None => {
                let exe = std::env::current_exe().context("cannot find our own executable")?;
                let pool = demo::start(exe, args.demo_workers, args.demo_worker_lifetime)
                    .context("cannot create the demo directory")?;
                let dir = pool.dir().to_owned();
                tracing::info!(dir = %dir.display(), workers = args.demo_workers, "demo pool started");
                (Some(pool), dir)
            }
        };
        let config = ServeConfig {
            telemetry_path: args.telemetry_path.clone(),
            max_connections: args.max_connections,
            header_timeout: args.header_timeout,
            shutdown_timeout: args.shutdown_timeout,
            dir_poll: args.lifecycle_interval,
            lifecycle: Settings {
                liveness: args.liveness,
                compaction: args.compaction == Toggle::On,
                min_free_bytes: args.min_free_bytes,
            },
            ..ServeConfig::new(dir)
        };
        serve::run(config, listener, shutdown_signal())
            .await
            .context("server failed")?;
        Ok(ExitCode::SUCCESS)
    })
}

fn bind(addrs: &[std::net::SocketAddr], spec: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let mut last = None;
    for addr in addrs {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => {
                l.set_nonblocking(true)?;
                return Ok(tokio::net::TcpListener::from_std(l)?);
            }
            Err(err) => last = Some(err),
        }
    }
    Err(last.map_or_else(|| anyhow::anyhow!("no address"), anyhow::Error::from))
        .with_context(|| format!("cannot listen on --web.listen-address {spec}"))
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(error = %err, "cannot watch SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

/// `compact`: one lifecycle round; prints what it did as `key=value` pairs.
fn compact_once(args: CompactArgs) -> anyhow::Result<ExitCode> {
    let dir = match config::resolve_dir(args.dir) {
        Ok(dir) => dir,
        Err(err) => return Ok(usage_error(err)),
    };
    if !dir.is_dir() {
        anyhow::bail!(
            "directory {} does not exist or is not a directory",
            dir.display()
        );
    }
    let mut lifecycle = Lifecycle::new(
        &dir,
        Settings {
            liveness: args.liveness,
            compaction: true,
            min_free_bytes: args.min_free_bytes,
        },
    );
    let report = lifecycle
        .tick(args.wipe_stale)
        .with_context(|| format!("cannot compact {}", dir.display()))?;
    if let Some((reason, detail)) = &report.skipped {
        tracing::warn!(reason, "compaction skipped: {detail}");
    }
    println!(
        "evidence={} alive={} dead={} unknown={} absorbed={} removed={} wiped={} skipped={}",
        lifecycle.evidence(),
        report.alive,
        report.dead,
        report.unknown,
        report.absorbed,
        report.removed,
        report.wiped,
        report.skipped.as_ref().map_or("no", |s| s.0)
    );
    Ok(ExitCode::SUCCESS)
}

/// `render`: one pass, exposition on stdout, one warning per bad file on stderr.
fn render_once(args: RenderArgs) -> anyhow::Result<ExitCode> {
    let dir = match config::resolve_dir(args.dir) {
        Ok(dir) => dir,
        Err(err) => return Ok(usage_error(err)),
    };
    let mut collector = Collector::new(&dir);
    let mut dead = std::collections::BTreeSet::new();
    if args.liveness != multiproc_exporter::liveness::Mode::None {
        let mut judge = Lifecycle::new(
            &dir,
            Settings {
                liveness: args.liveness,
                compaction: false,
                min_free_bytes: 0,
            },
        );
        judge
            .tick(false)
            .with_context(|| format!("cannot judge the writers of {}", dir.display()))?;
        dead.clone_from(judge.dead_pids());
    }
    let pass = collector
        .collect(&dead)
        .with_context(|| format!("cannot render {}", dir.display()))?;
    for issue in &pass.issues {
        tracing::warn!(
            file = %dir.join(&issue.file).display(),
            reason = issue.reason().as_str(),
            "{}",
            issue.detail()
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
