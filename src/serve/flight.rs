//! Single flight: concurrent scrapes share one merge pass and one rendered body.
//!
//! A scrape is answered from a pass that *started after the scrape arrived*, so a
//! response never reflects the directory as it was before the request; scrapes that
//! arrive while a pass runs wait for the next one, which one of them starts. Fifty
//! concurrent scrapes therefore cost about two passes. Each pass renders and compresses
//! each requested format once, shared by every scrape that waits on it.

use crate::collect::Collector;
use crate::error::{FileIssue, Reason};
use crate::merge::Family;
use crate::render::{self, Format};
use crate::scan::ScanError;
use crate::selfmetrics::SelfMetrics;
use bytes::Bytes;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// How often the same problem with the same file is logged again.
const LOG_EVERY: Duration = Duration::from_secs(600);

/// Bodies of one pass by (format, gzip), each rendered by the first scrape that asks.
type Bodies = HashMap<(Format, bool), Arc<OnceCell<Bytes>>>;

/// One finished pass and the bodies rendered from it.
#[derive(Debug)]
pub struct Scrape {
    /// When the pass started.
    pub started: Instant,
    /// Merged families followed by the self-metrics.
    pub families: Arc<Vec<Family>>,
    bodies: Mutex<Bodies>,
}

impl Scrape {
    /// The body in `format`, gzip-compressed if `gzip`, rendered once per pass.
    pub async fn body(&self, format: Format, gzip: bool) -> Bytes {
        let cell = {
            let mut bodies = self.bodies.lock().unwrap_or_else(|e| e.into_inner());
            bodies.entry((format, gzip)).or_default().clone()
        };
        let families = self.families.clone();
        cell.get_or_init(|| async move {
            tokio::task::spawn_blocking(move || encode(&families, format, gzip, None))
                .await
                .unwrap_or_default()
        })
        .await
        .clone()
    }
}

/// Renders `families` (only samples named in `names`, if given) and compresses.
pub fn encode(families: &[Family], format: Format, gzip: bool, names: Option<&[String]>) -> Bytes {
    let mut text = String::with_capacity(families.iter().map(|f| f.samples.len() * 80 + 64).sum());
    match names {
        None => render::render(families, format, &mut text),
        Some(names) => {
            let filtered: Vec<Family> = families
                .iter()
                .filter_map(|f| {
                    let samples: Vec<_> = f
                        .samples
                        .iter()
                        .filter(|s| names.iter().any(|n| n.as_str() == &*s.name))
                        .cloned()
                        .collect();
                    (!samples.is_empty()).then(|| Family {
                        samples,
                        ..f.clone()
                    })
                })
                .collect();
            render::render(&filtered, format, &mut text);
        }
    }
    if !gzip {
        return Bytes::from(text);
    }
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 8),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(text.as_bytes());
    Bytes::from(enc.finish().unwrap_or_default())
}

/// The merge state shared by all connections.
#[derive(Debug)]
pub struct Flight {
    dir: std::path::PathBuf,
    collector: Arc<Mutex<Collector>>,
    latest: tokio::sync::Mutex<Option<Arc<Scrape>>>,
    /// The newest finished pass, readable without waiting (for timeouts and readiness).
    last_done: Mutex<Option<Arc<Scrape>>>,
    ready: AtomicBool,
    metrics: Arc<SelfMetrics>,
    logged: Mutex<HashMap<(String, Reason), Instant>>,
}

impl Flight {
    /// A flight over `collector`.
    pub fn new(collector: Collector, metrics: Arc<SelfMetrics>) -> Flight {
        Flight {
            dir: collector.dir().to_owned(),
            collector: Arc::new(Mutex::new(collector)),
            latest: tokio::sync::Mutex::new(None),
            last_done: Mutex::new(None),
            ready: AtomicBool::new(false),
            metrics,
            logged: Mutex::new(HashMap::new()),
        }
    }

    /// The collector, for the lifecycle task, which changes files only while holding it.
    pub fn collector(&self) -> Arc<Mutex<Collector>> {
        self.collector.clone()
    }

    /// The directory being served.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Whether the directory has been read in full and is readable.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The newest finished pass, if any.
    pub fn last_done(&self) -> Option<Arc<Scrape>> {
        self.last_done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A pass that started at or after `arrived`, running one if needed.
    ///
    /// # Errors
    /// When the directory cannot be listed.
    pub async fn get(&self, arrived: Instant) -> Result<Arc<Scrape>, Arc<ScanError>> {
        let mut latest = self.latest.lock().await;
        if let Some(s) = latest.as_ref().filter(|s| s.started >= arrived) {
            return Ok(s.clone());
        }
        let started = Instant::now();
        let collector = self.collector.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut c = collector.lock().unwrap_or_else(|e| e.into_inner());
            c.collect()
        })
        .await;
        let pass = match joined {
            Ok(Ok(pass)) => pass,
            Ok(Err(err)) => {
                self.metrics.merge_failed();
                self.ready.store(false, Ordering::Relaxed);
                return Err(Arc::new(err));
            }
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        };
        self.metrics.merged(started.elapsed(), &pass);
        self.log_issues(&pass.issues);
        self.ready.store(true, Ordering::Relaxed);
        // Self-metrics describe the pass, so they are made first; then the merged
        // families are moved, not copied.
        let own = self.metrics.families(&pass, true);
        let mut families = pass.families;
        families.extend(own);
        let scrape = Arc::new(Scrape {
            started,
            families: Arc::new(families),
            bodies: Mutex::new(HashMap::new()),
        });
        *latest = Some(scrape.clone());
        *self.last_done.lock().unwrap_or_else(|e| e.into_inner()) = Some(scrape.clone());
        Ok(scrape)
    }

    /// Logs each (file, reason) at most once per [`LOG_EVERY`].
    fn log_issues(&self, issues: &[FileIssue]) {
        let dir = &self.dir;
        let now = Instant::now();
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        logged.retain(|_, at| now.duration_since(*at) < LOG_EVERY);
        for issue in issues {
            let key = (issue.file.clone(), issue.reason);
            if logged.contains_key(&key) {
                continue;
            }
            logged.insert(key, now);
            tracing::warn!(
                file = %dir.join(&issue.file).display(),
                reason = issue.reason.as_str(),
                "{}",
                issue.detail
            );
        }
    }
}
