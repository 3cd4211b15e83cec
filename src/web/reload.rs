//! Re-reading the web config when it or a file it names changes, so rotated
//! certificates and changed users apply without a restart.
//!
//! exporter-toolkit re-reads the config file on every request and every TLS handshake.
//! Here [`Reloader::current`] is asked at each new connection and compares, at most
//! once per [`CHECK_INTERVAL`] (so a connection flood does not become a flood of
//! `stat` calls), the (device, inode, mtime, size) of the config file and of every
//! file it named with what was loaded; on any difference it loads again.
//!
//! `stat` follows symbolic links: Kubernetes mounts a Secret as symlinks into a
//! `..data` directory that it swaps atomically, which changes no file's own mtime that
//! inotify on the old path would report, but changes the inode the path leads to. (The
//! multiprocess directory's no-symlink rule is about attacker-written files; the web
//! config is the operator's.)
//!
//! A deliberate difference: a config that turns invalid does not take the server down
//! or fail every request (as in exporter-toolkit); the last good configuration stays,
//! the error is logged once per change and counted ([`ReloadStatus`], for the
//! self-metrics), and it is tried again at each check until it loads.
//!
//! Stamps are taken before the files are read, so a file replaced while it is being
//! read is seen as changed at the next check; when a reload names other files than
//! before, it is read again with stamps of the new set.

use super::{Error, Problem, WebConfig};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Least time between two looks at the files.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Loads tried when a reload names other files than the stamps were taken of.
const LOAD_ATTEMPTS: usize = 3;

/// No notAfter (plain HTTP).
const NO_NOT_AFTER: i64 = i64::MIN;

/// The web config, kept current.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    check_every: Duration,
    current: RwLock<Arc<WebConfig>>,
    /// When the files were last looked at, and what they looked like then.
    watch: Mutex<Watch>,
    last_ok: AtomicBool,
    failures: AtomicU64,
    reloads: AtomicU64,
    not_after: AtomicI64,
    last_error: Mutex<Option<String>>,
}

#[derive(Debug)]
struct Watch {
    last_check: Instant,
    /// The stamps of the configuration in use.
    seen: Vec<Stamp>,
    /// Since the files last changed into something unusable: their stamps then, and the
    /// error. Such a config is tried again at every check (a file it names may appear
    /// without any watched file changing), but counted and logged once per change.
    failed: Option<(Vec<Stamp>, String)>,
}

/// What a file looked like; `None` when it could not be stat'ed (missing, say).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    path: PathBuf,
    id: Option<(u64, u64, i64, i64, u64)>,
}

impl Stamp {
    fn of(path: &Path) -> Stamp {
        let id = std::fs::metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()));
        Stamp {
            path: path.to_path_buf(),
            id,
        }
    }
}

fn stamps(paths: &[PathBuf]) -> Vec<Stamp> {
    paths.iter().map(|p| Stamp::of(p)).collect()
}

/// What the self-metrics read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Whether the last load (at start or after a change) succeeded.
    pub last_reload_ok: bool,
    /// Loads after a change that failed (the last good configuration stayed).
    pub reload_failures: u64,
    /// Loads after a change that succeeded.
    pub reloads: u64,
    /// The serving certificate's notAfter, Unix seconds; `None` for plain HTTP.
    pub cert_not_after: Option<i64>,
    /// The last failure's message, until a load succeeds.
    pub last_error: Option<String>,
}

impl Reloader {
    /// Loads the config at `path`.
    ///
    /// # Errors
    /// The [`Error`] of a bad config: at start it is fatal.
    pub fn new(path: &Path) -> Result<Reloader, Error> {
        let (config, seen) = load(path, vec![path.to_path_buf()])?;
        log_warnings(&config);
        Ok(Reloader {
            path: path.to_path_buf(),
            check_every: CHECK_INTERVAL,
            not_after: AtomicI64::new(config.cert_not_after().unwrap_or(NO_NOT_AFTER)),
            current: RwLock::new(Arc::new(config)),
            watch: Mutex::new(Watch {
                last_check: Instant::now(),
                seen,
                failed: None,
            }),
            last_ok: AtomicBool::new(true),
            failures: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            last_error: Mutex::new(None),
        })
    }

    /// Looks at the files at most once per `every` instead of [`CHECK_INTERVAL`].
    pub fn with_check_interval(mut self, every: Duration) -> Reloader {
        self.check_every = every;
        self
    }

    /// The configuration to accept a new connection with, reloaded first if its files
    /// changed (looked at no more than once per check interval, by one caller at a
    /// time; the others meanwhile get the current one without waiting).
    pub fn current(&self) -> Arc<WebConfig> {
        if let Ok(mut watch) = self.watch.try_lock()
            && watch.last_check.elapsed() >= self.check_every
        {
            watch.last_check = Instant::now();
            self.check(&mut watch);
        }
        self.loaded()
    }

    /// Whether [`Reloader::current`] would look at the files now: the caller can then
    /// call it where file IO may block (the server: on the blocking pool, never on an
    /// async thread).
    pub fn check_due(&self) -> bool {
        self.watch
            .try_lock()
            .is_ok_and(|watch| watch.last_check.elapsed() >= self.check_every)
    }

    /// Looks at the files now, whatever the interval; reloads if they changed. Returns
    /// whether a new configuration was loaded.
    pub fn check_now(&self) -> bool {
        let mut watch = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
        watch.last_check = Instant::now();
        self.check(&mut watch)
    }

    /// The configuration in use, without looking at the files.
    pub fn loaded(&self) -> Arc<WebConfig> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// For the self-metrics.
    pub fn status(&self) -> ReloadStatus {
        let not_after = self.not_after.load(Ordering::Relaxed);
        ReloadStatus {
            last_reload_ok: self.last_ok.load(Ordering::Relaxed),
            reload_failures: self.failures.load(Ordering::Relaxed),
            reloads: self.reloads.load(Ordering::Relaxed),
            cert_not_after: (not_after != NO_NOT_AFTER).then_some(not_after),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    fn check(&self, watch: &mut Watch) -> bool {
        let paths: Vec<PathBuf> = watch.seen.iter().map(|s| s.path.clone()).collect();
        let now = stamps(&paths);
        if now == watch.seen {
            if watch.failed.take().is_some() {
                // Back to the files in use.
                self.recovered();
            }
            return false;
        }
        let loaded = load(&self.path, paths).and_then(|(config, seen)| {
            match downgrade(&self.loaded(), &config) {
                Some(why) => Err(Error::new(&self.path, "", Problem::Refused(why.into()))),
                None => Ok((config, seen)),
            }
        });
        match loaded {
            Ok((mut config, seen)) => {
                watch.seen = seen;
                watch.failed = None;
                config.inherit(&self.loaded());
                log_warnings(&config);
                self.not_after.store(
                    config.cert_not_after().unwrap_or(NO_NOT_AFTER),
                    Ordering::Relaxed,
                );
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
                self.reloads.fetch_add(1, Ordering::Relaxed);
                self.recovered();
                tracing::info!(config = %self.path.display(), "web config reloaded");
                true
            }
            Err(err) => {
                let message = err.to_string();
                let repeated = watch
                    .failed
                    .as_ref()
                    .is_some_and(|(s, m)| *s == now && *m == message);
                if !repeated {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        error = %message,
                        "web config changed but cannot be used; keeping the last good one"
                    );
                }
                self.last_ok.store(false, Ordering::Relaxed);
                *self
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(message.clone());
                watch.failed = Some((now, message));
                false
            }
        }
    }

    fn recovered(&self) {
        self.last_ok.store(true, Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Why a reload from `old` to `new` is refused as a downgrade: the listener's scheme is
/// fixed at start (as in exporter-toolkit), and a file read empty or cut short while
/// being rewritten in place must not turn TLS or basic auth off.
fn downgrade(old: &WebConfig, new: &WebConfig) -> Option<&'static str> {
    if old.tls.is_some() && new.tls.is_none() {
        Some("it turns TLS off; the listener serves HTTPS until a restart")
    } else if old.tls.is_none() && new.tls.is_some() {
        Some("it turns TLS on; the listener serves plain HTTP until a restart")
    } else if old.auth.is_some() && new.auth.is_none() {
        Some("it removes every basic_auth_users entry; restart to turn basic auth off")
    } else {
        None
    }
}

fn log_warnings(config: &WebConfig) {
    for w in &config.warnings {
        tracing::warn!(config = %config.path.display(), warning = %w, "web config");
    }
}

/// Loads the config at `path` with stamps taken before reading, starting from the
/// guess that it names `paths`; when it names others, loads again with those.
fn load(path: &Path, mut paths: Vec<PathBuf>) -> Result<(WebConfig, Vec<Stamp>), Error> {
    for _ in 1..LOAD_ATTEMPTS {
        let before = stamps(&paths);
        let config = WebConfig::load(path)?;
        if config.files == paths {
            return Ok((config, before));
        }
        paths = config.files.clone();
    }
    // Still moving: stamps after the read, and any change from now on is seen.
    let config = WebConfig::load(path)?;
    let seen = stamps(&config.files);
    Ok((config, seen))
}

#[cfg(test)]
mod tests;
