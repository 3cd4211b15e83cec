//! Single flight: concurrent scrapes share one merge pass and one rendered body.
//!
//! A scrape is answered from a pass that *started after the scrape arrived*, so a
//! response never reflects the directory as it was before the request; scrapes that
//! arrive while a pass runs wait for the next one, which one of them starts. Fifty
//! concurrent scrapes therefore cost about two passes. Each pass renders and compresses
//! each requested body (format, compression, `name[]` filter) once, shared by every
//! scrape that waits on it.
//!
//! A pass that cannot read the directory still answers: the self-metrics alone, with
//! `multiproc_exporter_ready 0`. A pass or a render that panics answers no body: the
//! scrape gets a 500 naming the stage, the failure is counted, and the collector starts
//! over from the files (which cannot lower a counter: the files hold the totals).

use super::Pipeline;
use super::gzip::{self, GzipError};
use super::recycle::Recycler;
use super::worker::Worker;
use crate::collect::Pass;
use crate::model::{Family, FileIssue, Reason};
use crate::render::{self, Format};
use crate::selfmetrics::{ScrapeStage, SelfMetrics};
use bytes::Bytes;
use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::OnceCell;

/// How often the same problem with the same file is logged again.
const LOG_EVERY: Duration = Duration::from_secs(600);

/// At most this many distinct `name[]` filters are cached per pass; more are rendered
/// for their scrape alone, so a client cannot make a pass hold unbounded bodies.
const MAX_FILTERED_BODIES: usize = 16;

/// What selects one body of a pass.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BodyKey {
    /// Exposition format.
    pub format: Format,
    /// gzip-compressed.
    pub gzip: bool,
    /// Only samples with these names (`name[]=`), if given.
    pub names: Option<Vec<String>>,
}

/// A scrape that could not be produced.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ScrapeError {
    /// Reading and merging the directory panicked.
    #[error("merging the directory failed: {0}")]
    Collect(String),
    /// Rendering the merged families panicked, or compressing the body failed.
    #[error("rendering the exposition failed: {0}")]
    Render(String),
}

impl ScrapeError {
    /// Where it failed.
    pub fn stage(&self) -> ScrapeStage {
        match self {
            ScrapeError::Collect(_) => ScrapeStage::Collect,
            ScrapeError::Render(_) => ScrapeStage::Render,
        }
    }
}

type Body = Result<Bytes, ScrapeError>;

/// One finished pass and the bodies rendered from it.
#[derive(Debug)]
pub struct Scrape {
    /// When the pass started.
    pub started: Instant,
    /// Merged families followed by the self-metrics.
    pub families: Arc<Vec<Family>>,
    bodies: Mutex<HashMap<BodyKey, Arc<OnceCell<Bytes>>>>,
    /// Renders on the thread of passes.
    worker: Arc<Worker>,
    /// Where the bodies' buffers come from and go back to.
    buffers: Arc<Recycler>,
}

impl Scrape {
    fn new(started: Instant, families: Vec<Family>, flight: &Flight) -> Scrape {
        Scrape {
            started,
            families: Arc::new(families),
            bodies: Mutex::new(HashMap::new()),
            worker: flight.worker.clone(),
            buffers: flight.buffers.clone(),
        }
    }

    /// The body for `key`, rendered once per pass (filtered bodies up to a bound).
    ///
    /// # Errors
    /// When rendering panicked or compressing failed; nothing is cached then.
    pub async fn body(&self, key: BodyKey) -> Body {
        let cell = {
            let mut bodies = self.bodies.lock().unwrap_or_else(|e| e.into_inner());
            let filtered = bodies.keys().filter(|k| k.names.is_some()).count();
            if key.names.is_some() && filtered >= MAX_FILTERED_BODIES && !bodies.contains_key(&key)
            {
                Arc::new(OnceCell::new())
            } else {
                bodies.entry(key.clone()).or_default().clone()
            }
        };
        let (families, worker) = (self.families.clone(), self.worker.clone());
        let buffers = self.buffers.clone();
        cell.get_or_try_init(|| async move {
            worker
                .run(move || encode(&families, &key, &buffers))
                .await
                .map_err(|panic| ScrapeError::Render(payload_message(panic)))?
                .map_err(|err| ScrapeError::Render(format!("gzip: {err}")))
        })
        .await
        .cloned()
    }
}

/// The text of a task's panic (or of its cancellation, at shutdown).
fn panic_message(join: tokio::task::JoinError) -> String {
    if join.is_panic() {
        payload_message(join.into_panic())
    } else {
        "cancelled".to_owned()
    }
}

/// The text of a panic payload.
pub(super) fn payload_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

/// Renders `families` (only samples named in the key's filter, if any) and compresses
/// (one gzip member, on two threads for a large body: [`super::gzip`]), in a buffer of
/// `buffers` that goes back to it when the body is done with.
///
/// # Errors
/// When the body could not be compressed.
pub fn encode(
    families: &[Family],
    key: &BodyKey,
    buffers: &Arc<Recycler>,
) -> Result<Bytes, GzipError> {
    crate::testpoint::panic("render");
    let room = families.iter().map(|f| f.len() * 80 + 64).sum();
    // An empty buffer is valid UTF-8: the fallback is never taken.
    let mut text = String::from_utf8(buffers.take(room)).unwrap_or_default();
    match &key.names {
        None => render::render(families, key.format, &mut text),
        Some(names) => {
            let filtered: Vec<Family> = families
                .iter()
                .filter_map(|f| f.filtered(|name| names.iter().any(|n| n == name)))
                .collect();
            render::render(&filtered, key.format, &mut text);
        }
    }
    if !key.gzip {
        return Ok(buffers.bytes(text.into_bytes()));
    }
    let packed = gzip::gzip(text.as_bytes()).map(Bytes::from);
    buffers.give(text.into_bytes());
    packed
}

/// The merge state shared by all connections.
#[derive(Debug)]
pub struct Flight {
    dir: std::path::PathBuf,
    pipeline: Arc<Mutex<Pipeline>>,
    /// Held while a pass runs: the scrapes that wait on it share the next one.
    gate: Arc<tokio::sync::Mutex<()>>,
    /// The newest finished pass, readable without waiting (for timeouts).
    latest: Mutex<Option<Arc<Scrape>>>,
    ready: AtomicBool,
    /// Why the directory could not be read at the last pass, if it could not.
    unready: Mutex<Option<String>>,
    metrics: Arc<SelfMetrics>,
    logged: Mutex<HashMap<(OsString, Reason), Instant>>,
    /// The thread every pass and render runs on ([`super::worker`]).
    worker: Arc<Worker>,
    buffers: Arc<Recycler>,
}

impl Flight {
    /// A flight over `pipeline`, with the thread its passes run on.
    ///
    /// # Errors
    /// When that thread cannot be started.
    pub(crate) fn new(pipeline: Pipeline, metrics: Arc<SelfMetrics>) -> std::io::Result<Flight> {
        Ok(Flight {
            dir: pipeline.collector.dir().to_owned(),
            pipeline: Arc::new(Mutex::new(pipeline)),
            gate: Arc::new(tokio::sync::Mutex::new(())),
            latest: Mutex::new(None),
            ready: AtomicBool::new(false),
            unready: Mutex::new(None),
            metrics,
            logged: Mutex::new(HashMap::new()),
            worker: Arc::new(Worker::start()?),
            buffers: Arc::default(),
        })
    }

    /// The pipeline, for the lifecycle task, which changes files only while holding it.
    pub(crate) fn pipeline(&self) -> Arc<Mutex<Pipeline>> {
        self.pipeline.clone()
    }

    /// Whether the directory has been read in full and is readable.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Why the sidecar is not ready, if a pass said so.
    pub fn unready_reason(&self) -> Option<String> {
        self.unready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The newest finished pass, if any.
    pub fn last_done(&self) -> Option<Arc<Scrape>> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A pass that started at or after `arrived`, running one if needed.
    ///
    /// The pass runs in a task of its own that holds the gate until its bookkeeping is
    /// done, so a scrape that stops waiting (its timeout ran out) loses nothing: the
    /// pass still becomes the latest, and the next scrape waits for it instead of
    /// queueing another behind it.
    ///
    /// # Errors
    /// When the pass failed (a panic while merging).
    pub async fn get(self: &Arc<Self>, arrived: Instant) -> Result<Arc<Scrape>, ScrapeError> {
        let gate = self.gate.clone().lock_owned().await;
        if let Some(s) = self.last_done().filter(|s| s.started >= arrived) {
            return Ok(s);
        }
        let me = self.clone();
        tokio::spawn(async move {
            let done = me.pass().await;
            drop(gate);
            done
        })
        .await
        .unwrap_or_else(|join| Err(ScrapeError::Collect(panic_message(join))))
    }

    /// Runs one pass and records it.
    async fn pass(&self) -> Result<Arc<Scrape>, ScrapeError> {
        let started = Instant::now();
        let pipeline = self.pipeline.clone();
        let joined = self
            .worker
            .run(move || {
                let mut p = pipeline.lock().unwrap_or_else(|e| e.into_inner());
                let Pipeline {
                    collector,
                    lifecycle,
                } = &mut *p;
                let run = || collector.collect(lifecycle.dead_pids());
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).map_err(|payload| {
                    // Whatever the pass left half done, the files hold the totals: start over.
                    collector.reset();
                    payload_message(payload)
                })
            })
            .await;
        let (pass, ready) = match joined {
            Ok(Ok(Ok(pass))) => (pass, true),
            Ok(Ok(Err(err))) => {
                self.metrics.merge_failed();
                *self.unready.lock().unwrap_or_else(|e| e.into_inner()) = Some(err.to_string());
                (Pass::default(), false)
            }
            Ok(Err(panic)) => {
                let err = ScrapeError::Collect(panic);
                self.metrics.scrape_failed(err.stage());
                tracing::error!(error = %err, "a merge pass failed; reading the directory afresh");
                return Err(err);
            }
            // The worker thread is gone (nothing else escapes the catch above).
            Err(panic) => return Err(ScrapeError::Collect(payload_message(panic))),
        };
        if ready {
            self.metrics.merged(started.elapsed(), &pass);
            self.log_issues(&pass.issues);
            *self.unready.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        self.ready.store(ready, Ordering::Relaxed);
        // Self-metrics describe the pass, so they are made first; then the merged
        // families are moved, not copied.
        let own = self.metrics.families(&pass, ready);
        let mut families = pass.families;
        families.extend(own);
        let scrape = Arc::new(Scrape::new(started, families, self));
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(scrape.clone());
        Ok(scrape)
    }

    /// Logs each (file, reason) at most once per [`LOG_EVERY`].
    fn log_issues(&self, issues: &[FileIssue]) {
        let now = Instant::now();
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        logged.retain(|_, at| now.duration_since(*at) < LOG_EVERY);
        for issue in issues {
            let key = (issue.file.clone(), issue.reason());
            if logged.contains_key(&key) {
                continue;
            }
            logged.insert(key, now);
            tracing::warn!(
                file = %issue.path_in(&self.dir),
                reason = issue.reason().as_str(),
                "{}",
                crate::model::Escaped::text(issue.detail())
            );
        }
    }
}
