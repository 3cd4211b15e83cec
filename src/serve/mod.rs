//! Stage 6: serve the merged directory over HTTP.
//!
//! [`run`] is the seam: it takes a bound listener and a shutdown future, so tests run the
//! real server on a port chosen at run time and stop it at will. Connections are capped
//! (a semaphore taken before `accept`, so excess clients wait in the kernel backlog), a
//! client that does not send its request head in time is dropped, and shutdown stops
//! accepting, lets in-flight requests finish and gives up after a deadline.

pub mod flight;
pub mod negotiate;
mod routes;

use crate::collect::Collector;
use crate::compact::Lifecycle;
use crate::selfmetrics::SelfMetrics;
use flight::Flight;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Settings of the HTTP server.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The prometheus_client multiprocess directory.
    pub dir: PathBuf,
    /// Path of the metrics endpoint.
    pub telemetry_path: String,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a client has to send a request head (also bounds idle keep-alive).
    pub header_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// Bound on the bytes read from one file.
    pub file_limit: u64,
    /// How often readiness is re-checked while the directory is missing, and how often
    /// the lifecycle (liveness, compaction) runs without a watch event.
    pub dir_poll: Duration,
    /// Liveness and compaction settings.
    pub lifecycle: crate::compact::Settings,
}

impl ServeConfig {
    /// Defaults for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> ServeConfig {
        ServeConfig {
            dir: dir.into(),
            telemetry_path: "/metrics".to_owned(),
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
            file_limit: crate::collect::DEFAULT_FILE_LIMIT,
            dir_poll: Duration::from_secs(1),
            lifecycle: crate::compact::Settings {
                liveness: crate::liveness::Mode::Auto,
                compaction: true,
                min_free_bytes: 4 << 20,
            },
        }
    }
}

/// State shared by every connection.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) config: ServeConfig,
    pub(crate) flight: Flight,
    pub(crate) metrics: Arc<SelfMetrics>,
}

/// Serves `config.dir` on `listener` until `shutdown` resolves, then drains.
///
/// # Errors
/// Only start-up errors; a bad file or an unreadable directory is reported in responses
/// and logs, never by returning.
pub async fn run(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let metrics = Arc::new(SelfMetrics::default());
    let collector = Collector::new(&config.dir).with_file_limit(config.file_limit);
    let app = Arc::new(App {
        flight: Flight::new(collector, metrics.clone()),
        metrics,
        config: config.clone(),
    });
    let lifecycle = Arc::new(std::sync::Mutex::new(Lifecycle::new(
        &config.dir,
        config.lifecycle.clone(),
    )));
    // Finish a crashed compaction and clean a stale directory before the first scrape.
    let started = config.dir.is_dir();
    if started {
        run_tick(&app, &lifecycle, true).await;
    }
    let local = listener.local_addr()?;
    tracing::info!(address = %local, dir = %config.dir.display(), path = %config.telemetry_path, "listening");
    let readiness = tokio::spawn(lifecycle_loop(app.clone(), lifecycle, started));

    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(err) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |req| routes::handle(app.clone(), req));
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(peer = %peer, error = %err, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    readiness.abort();
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("drained"),
        () = tokio::time::sleep(config.shutdown_timeout) => {
            tracing::warn!(timeout = ?config.shutdown_timeout, "shutdown deadline passed; closing remaining connections");
        }
    }
    Ok(())
}

/// Runs one lifecycle round with the collector locked, so no merge pass sees it half done.
async fn run_tick(app: &Arc<App>, lifecycle: &Arc<std::sync::Mutex<Lifecycle>>, at_start: bool) {
    let collector = app.flight.collector();
    let lifecycle = lifecycle.clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut c = collector.lock().unwrap_or_else(|e| e.into_inner());
        let mut l = lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        let report = l.tick(at_start);
        c.set_dead_pids(l.dead_pids());
        (report, l.evidence())
    })
    .await;
    let Ok((report, evidence)) = done else {
        return;
    };
    let mode = app.config.lifecycle.liveness.as_str();
    match report {
        Ok(report) => {
            if report.wiped {
                tracing::info!(
                    removed = report.removed,
                    "every writer in the directory was dead: cleaned the stale directory"
                );
            } else if report.absorbed > 0 || report.removed > 0 {
                tracing::info!(
                    dead = report.dead,
                    absorbed = report.absorbed,
                    removed = report.removed,
                    "compacted dead writers"
                );
            }
            if let Some((reason, detail)) = &report.skipped {
                tracing::warn!(reason, "compaction skipped: {detail}");
            }
            app.metrics.lifecycle(&report, mode, evidence);
        }
        Err(err) => {
            tracing::warn!(error = %err, "lifecycle round failed; will retry");
            let report = crate::compact::Report {
                skipped: Some(("error", err.to_string())),
                ..Default::default()
            };
            app.metrics.lifecycle(&report, mode, evidence);
        }
    }
}

/// Runs the lifecycle every `dir_poll` or when the directory changes, and until the
/// directory has been read once, tries to read it and says why not.
async fn lifecycle_loop(
    app: Arc<App>,
    lifecycle: Arc<std::sync::Mutex<Lifecycle>>,
    mut started: bool,
) {
    let (wake, mut events) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = None;
    let mut said_missing = false;
    let mut logged_mode = false;
    loop {
        if watcher.is_none() && app.config.dir.is_dir() {
            watcher = crate::watch::watch(&app.config.dir, wake.clone())
                .map_err(|e| tracing::debug!(error = %e, "no directory watch; the timer alone drives the lifecycle"))
                .ok();
        }
        if app.config.dir.is_dir() {
            run_tick(&app, &lifecycle, !started).await;
            started = true;
            if !logged_mode {
                let evidence = lifecycle.lock().map(|l| l.evidence()).unwrap_or("none");
                tracing::info!(
                    mode = app.config.lifecycle.liveness.as_str(),
                    evidence,
                    compaction = app.config.lifecycle.compaction,
                    "liveness"
                );
                logged_mode = true;
            }
        }
        if !app.flight.is_ready() {
            match app.flight.get(std::time::Instant::now()).await {
                Ok(_) => tracing::info!(dir = %app.config.dir.display(), "directory read; ready"),
                Err(err) => {
                    if !said_missing {
                        tracing::warn!(error = %err, "not ready; waiting for the directory");
                        said_missing = true;
                    }
                }
            }
        } else {
            said_missing = false;
        }
        tokio::select! {
            () = tokio::time::sleep(app.config.dir_poll) => {}
            Some(()) = events.recv() => {
                // Let a burst of events settle, then handle it in one round.
                tokio::time::sleep(Duration::from_millis(50)).await;
                while events.try_recv().is_ok() {}
            }
        }
    }
}
