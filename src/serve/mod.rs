//! Stage 6: serve the merged directory over HTTP.
//!
//! [`run`] is the seam: it takes a bound listener and a shutdown future, so tests run the
//! real server on a port chosen at run time and stop it at will.
//!
//! Idle and slow clients cannot delay a health check or a scrape: every connection is
//! accepted at once (so `/healthz` never waits in the kernel backlog behind them), a
//! client that does not send its request head in time (first or keep-alive) is dropped,
//! one that does not read its response in time is reset, and only scrapes are capped
//! (`--web.max-connections` scrapes served at once, each until its response is written;
//! the rest wait their turn). Open connections are bounded by half the file descriptor
//! limit; a new connection beyond it takes the place of the connection idle longest,
//! and is closed itself only when none is idle (`serve/conn.rs`). Shutdown stops
//! accepting, lets in-flight requests finish and gives up after a deadline.
//!
//! [`flight`] runs the merge passes and keeps each pass's bodies; [`gzip`] compresses a
//! body as one gzip member, in two halves on two threads when it is large;
//! [`negotiate`] reads `Accept` and `Accept-Encoding`; [`recycle`] hands the bodies'
//! buffers from one pass to the next.

mod accept;
mod conn;
pub mod flight;
pub mod gzip;
mod lifecycle;
pub mod negotiate;
pub mod recycle;
mod routes;
pub mod worker;

use crate::collect::Collector;
use crate::compact::Lifecycle;
use crate::selfmetrics::SelfMetrics;
use flight::Flight;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Settings of the HTTP server (defined with the other settings and their defaults).
pub use crate::config::ServeConfig;

/// What a merge pass and a lifecycle round both need, behind one lock: a round changes
/// files only while no pass reads them, and a pass leaves out the live gauges of the pids
/// the last round proved dead.
#[derive(Debug)]
pub(crate) struct Pipeline {
    pub(crate) collector: Collector,
    pub(crate) lifecycle: Lifecycle,
}

/// State shared by every connection.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) config: ServeConfig,
    pub(crate) flight: Arc<Flight>,
    pub(crate) metrics: Arc<SelfMetrics>,
    /// Scrapes served at once (`--web.max-connections`), each until its response is
    /// written; health checks take none.
    pub(crate) scrapes: Arc<Semaphore>,
    /// The thread of basic auth's bcrypt checks, at the lowest priority (with a web
    /// configuration).
    pub(crate) bcrypt: Option<worker::Worker>,
}

/// The nice value of the bcrypt thread: the lowest priority.
const BCRYPT_NICE: i32 = 19;

/// How many connections may be open at once: half the descriptor limit (the rest is for
/// the directory's files).
fn open_connection_cap() -> usize {
    let fds = crate::procfs::max_fds().unwrap_or(1024);
    usize::try_from(fds / 2).unwrap_or(usize::MAX).max(4)
}

/// The sockets a server accepts on.
#[derive(Debug)]
pub struct Listeners {
    /// Every endpoint, with the web configuration (TLS, basic auth) if any.
    pub main: TcpListener,
    /// `--web.probe-address`: `/healthz` and `/readyz` only, plain HTTP, no credentials.
    pub probes: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(main: TcpListener) -> Listeners {
        Listeners { main, probes: None }
    }
}

/// Which listener a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Surface {
    Main,
    Probes,
}

/// Serves `config.dir` on `listeners` until `shutdown` resolves, then drains.
///
/// # Errors
/// Only start-up errors; a bad file or an unreadable directory is reported in responses
/// and logs, never by returning.
pub async fn run(
    config: ServeConfig,
    listeners: impl Into<Listeners>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let Listeners { main, probes } = listeners.into();
    let metrics = Arc::new(SelfMetrics::default());
    if let Some(web) = &config.web {
        metrics.watch_web_config(web.clone());
    }
    let pipeline = Pipeline {
        collector: Collector::new(&config.dir).with_file_limit(config.file_limit),
        lifecycle: Lifecycle::new(&config.dir, config.lifecycle.clone()),
    };
    let app = Arc::new(App {
        flight: Arc::new(Flight::new(pipeline, metrics.clone())?),
        metrics,
        scrapes: Arc::new(Semaphore::new(config.max_connections.max(1))),
        bcrypt: match config.web {
            Some(_) => Some(worker::Worker::start_named("bcrypt", Some(BCRYPT_NICE))?),
            None => None,
        },
        config: config.clone(),
    });
    // Finish a crashed compaction and clean a stale directory before the first scrape.
    let started = crate::dir::Dir::open(&config.dir).is_ok();
    if started {
        lifecycle::run_tick(&app, true).await;
    }
    let local = main.local_addr()?;
    let scheme = match config.web.as_ref().map(|w| w.loaded()) {
        Some(web) if web.tls.is_some() => "https",
        _ => "http",
    };
    tracing::info!(address = %local, scheme, dir = %config.dir.display(), path = %config.telemetry_path, "listening");
    if let Some(p) = &probes {
        tracing::info!(probes = %p.local_addr()?, "serving /healthz and /readyz over plain HTTP");
    }
    let background = tokio::spawn(lifecycle::run(app.clone(), started));

    let graceful = GracefulShutdown::new();
    let slots = conn::Slots::new(open_connection_cap(), app.metrics.clone());
    tokio::pin!(shutdown);
    loop {
        let (accepted, surface) = tokio::select! {
            a = main.accept() => (a, Surface::Main),
            a = accept_on(probes.as_ref()) => (a, Surface::Probes),
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(err) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Out of connection slots, the connection idle longest is closed to make room;
        // with none idle this one is closed now rather than accepting stopped (which
        // would queue health checks behind whoever holds the slots). A TLS handshake
        // holds its slot, idle, so a flood of handshakes cannot crowd out requests.
        let Some(tracked) = slots.admit(peer) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = accept::Connection {
            app: app.clone(),
            tracked,
            peer,
            surface,
        };
        tokio::spawn(connection.serve(stream, graceful.watcher()));
    }
    drop(main);
    drop(probes);
    background.abort();
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("drained"),
        () = tokio::time::sleep(config.shutdown_timeout) => {
            tracing::warn!(timeout = ?config.shutdown_timeout, "shutdown deadline passed; closing remaining connections");
        }
    }
    Ok(())
}

/// The next connection on `listener`; never, without one.
async fn accept_on(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}
