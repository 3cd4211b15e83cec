//! The `multiproc-exporter` binary: parse flags, set up logging, validate, run, map to
//! exit codes (0 ok, 1 cannot start or directory unusable, 2 usage).

use anyhow::Context;
use multiproc_exporter::collect::Collector;
use multiproc_exporter::compact::Lifecycle;
use multiproc_exporter::config::{Cli, Command, Compact, LogArgs, LogFormat, Pool, Render, Serve};
use multiproc_exporter::{demo, render, scan, serve};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::from_command_line();
    init_logging(&cli.log);
    match multiproc_exporter::procfs::raise_fd_limit() {
        Ok((before, after)) if after > before => {
            tracing::debug!(
                before,
                after,
                "raised the soft limit on open files to the hard one"
            );
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "cannot raise the soft limit on open files"),
    }
    let result = match cli.command {
        Some(Command::Render(args)) => args.validate().map(render_once),
        Some(Command::Compact(args)) => args.validate().map(compact_once),
        Some(Command::Serve(args)) => args.validate().map(serve_main),
        Some(Command::Healthcheck(args)) => args.validate().map(healthcheck_once),
        None => cli.serve.validate().map(serve_main),
        Some(Command::DemoWorker(args)) => Ok(demo::worker_main(
            &args.dir,
            args.seed,
            Duration::from_millis(args.lifetime_ms),
        )
        .with_context(|| format!("demo worker writing to {}", args.dir.display()))),
    };
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(err)) => {
            tracing::error!("{err:#}");
            ExitCode::from(1)
        }
        Err(usage) => {
            eprintln!("error: {usage}");
            ExitCode::from(2)
        }
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

/// `serve`: bind, serve until SIGTERM/SIGINT, drain.
fn serve_main(serve: Serve) -> anyhow::Result<()> {
    let Serve {
        addrs,
        listen_address,
        pool,
        mut config,
        web_config_file,
        web_config_check,
        probe,
    } = serve;
    if let Some(path) = web_config_file {
        let web = multiproc_exporter::web::Reloader::new(&path)
            .map_err(|err| anyhow::anyhow!("{err} (--web.config.file)"))?;
        if web_config_check {
            println!("{}: good: {}", path.display(), web.loaded().describe());
            return Ok(());
        }
        config.web = Some(std::sync::Arc::new(web));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(async move {
        let main = bind(&addrs, "--web.listen-address", &listen_address)?;
        let probes = match &probe {
            Some((addrs, spec)) => Some(bind(addrs, "--web.probe-address", spec)?),
            None => None,
        };
        let listeners = serve::Listeners { main, probes };
        // Dropped at exit, which stops the workers and removes the demo directory.
        let _demo = match pool {
            Pool::App => None,
            Pool::Demo { workers, lifetime } => {
                if std::env::var_os(multiproc_exporter::config::DIR_ENV)
                    .is_some_and(|v| !v.is_empty())
                {
                    tracing::info!(
                        "--demo ignores {}: the demo pool writes to a directory of its own",
                        multiproc_exporter::config::DIR_ENV
                    );
                }
                let exe = std::env::current_exe().context("cannot find our own executable")?;
                let pool = demo::start(exe, workers, lifetime)
                    .context("cannot create the demo directory")?;
                config.dir = pool.dir().to_owned();
                tracing::info!(dir = %config.dir.display(), workers, "demo pool started");
                Some(pool)
            }
        };
        serve::run(config, listeners, shutdown_signal())
            .await
            .context("server failed")
    });
    // A blocking task stuck in the kernel (a file system that hangs a `stat`) must not
    // keep the process from exiting after its shutdown deadline.
    runtime.shutdown_timeout(Duration::from_secs(1));
    served
}

fn bind(
    addrs: &[std::net::SocketAddr],
    flag: &str,
    spec: &str,
) -> anyhow::Result<tokio::net::TcpListener> {
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
        .with_context(|| format!("cannot listen on {flag} {spec}"))
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

/// `healthcheck`: one GET; the status line on stdout when it is 200.
fn healthcheck_once(target: multiproc_exporter::healthcheck::Target) -> anyhow::Result<()> {
    let status = multiproc_exporter::healthcheck::check(&target)?;
    println!("healthy: GET {} answered {status}", target.url());
    Ok(())
}

/// `compact`: one lifecycle round; prints what it did as `key=value` pairs.
fn compact_once(compact: Compact) -> anyhow::Result<()> {
    let dir = compact.dir;
    // Says which of missing, not a directory or not listable, as `render` does.
    scan::scan(&multiproc_exporter::dir::Dir::open(&dir)?)?;
    let mut lifecycle = Lifecycle::new(&dir, compact.lifecycle);
    let report = lifecycle
        .tick(compact.wipe_stale)
        .with_context(|| format!("cannot compact {}", dir.display()))?;
    if let Some(skip) = &report.skipped {
        tracing::warn!(
            reason = skip.reason.as_str(),
            "compaction skipped: {}",
            skip.detail
        );
    }
    println!(
        "evidence={} alive={} dead={} unknown={} absorbed={} removed={} wiped={} skipped={} compactable={}",
        lifecycle.evidence(),
        report.alive,
        report.dead,
        report.unknown,
        report.absorbed,
        report.removed,
        report.wiped,
        report.skipped.as_ref().map_or("no", |s| s.reason.as_str()),
        report.compactable
    );
    Ok(())
}

/// `render`: one pass, exposition on stdout, one warning per bad file on stderr.
fn render_once(render: Render) -> anyhow::Result<()> {
    let dir = render.dir;
    let mut collector = Collector::new(&dir);
    let mut dead = std::collections::BTreeSet::new();
    if let Some(settings) = render.judge {
        let mut judge = Lifecycle::new(&dir, settings);
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
            file = %issue.path_in(&dir),
            reason = issue.reason().as_str(),
            "{}",
            multiproc_exporter::model::Escaped::text(issue.detail())
        );
    }
    let mut out = String::with_capacity(pass.entries * 64);
    render::render(&pass.families, render.format, &mut out);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write the exposition to stdout")?;
    Ok(())
}
