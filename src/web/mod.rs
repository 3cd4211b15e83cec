//! `--web.config.file`: TLS, mutual TLS, basic auth, response headers and a rate limit,
//! in the YAML schema of Prometheus' exporter-toolkit, so a file written for any other
//! exporter works here.
//!
//! One home for the web configuration, from the file to the objects the server asks:
//! [`schema`] reads the YAML (every key handled or refused by name, unknown keys refused
//! with their path), [`tls`] turns `tls_server_config` into a rustls `ServerConfig`
//! ([`verify`] holds the client-certificate verifiers rustls lacks), [`auth`] checks
//! `Authorization: Basic` against bcrypt hashes, [`ratelimit`] is `rate_limit`'s token
//! bucket, and [`reload`] re-reads the file and the files it names when they change.
//!
//! Policy on bad input: at start a bad file is an [`Error`] naming the key, the file and
//! what is wrong (the caller exits 1); a file that turns bad while serving keeps the last
//! good configuration ([`reload`]). Nothing here panics on any file content.
//!
//! Paths in `tls_server_config` (`cert_file`, `key_file`, `client_ca_file`) are relative
//! to the directory of the config file, as exporter-toolkit resolves them
//! (`TLSConfig.SetDirectory`).
//!
//! Depends on nothing else in the crate.

pub mod auth;
mod error;
pub mod ratelimit;
pub mod reload;
pub mod schema;
pub mod tls;
pub mod verify;

pub use auth::Authenticator;
pub use error::{Error, Problem, Warning};
pub use ratelimit::{RateLimit, TokenBucket};
pub use reload::{ReloadStatus, Reloader};
pub use tls::Tls;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest config or PEM file read: these are a few kilobytes, and a bound keeps a wrong
/// path (a log file, a device) from being read whole.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// A validated web configuration, ready to serve with.
#[derive(Debug)]
pub struct WebConfig {
    /// The config file it was read from.
    pub path: PathBuf,
    /// TLS, when `tls_server_config` turns it on; plain HTTP otherwise (basic auth and
    /// headers still apply, as in exporter-toolkit).
    pub tls: Option<Tls>,
    /// `http_server_config.http2` as written (default true). The server speaks
    /// HTTP/1.1 only and offers no ALPN, so clients use HTTP/1.1 either way.
    pub http2: bool,
    /// `http_server_config.headers`: added to every response, blank values left out.
    pub headers: Vec<(String, String)>,
    /// `basic_auth_users`: `None` when there are none (no authentication).
    pub auth: Option<Arc<Authenticator>>,
    /// `rate_limit`: `None` when its interval is 0 or it is absent.
    pub rate_limit: Option<Arc<TokenBucket>>,
    /// What was accepted but changed or is risky (for the log, at start and reload).
    pub warnings: Vec<Warning>,
    /// Every file read: the config file first, then the files it names. [`reload`]
    /// watches them.
    pub files: Vec<PathBuf>,
}

impl WebConfig {
    /// Reads and validates the config file at `path` and every file it names.
    ///
    /// # Errors
    /// One [`Error`] naming the key, the file and what is wrong: an unknown key, a bad
    /// value, a missing or unreadable file, a key that does not match its certificate,
    /// a bad bcrypt hash.
    pub fn load(path: &Path) -> Result<WebConfig, Error> {
        let text = read_bounded(path).map_err(|problem| Error::new(path, "", problem))?;
        let text = String::from_utf8(text)
            .map_err(|_| Error::new(path, "", Problem::Schema("not UTF-8 text".into())))?;
        let raw = schema::parse(&text).map_err(|(key, msg)| Error::new(path, &key, msg))?;
        let base = path.parent().unwrap_or(Path::new(""));
        let mut warnings = Vec::new();
        let mut files = vec![path.to_path_buf()];
        let tls = match &raw.tls_server_config {
            Some(t) if t.is_enabled() => Some(
                tls::build(t, base, &mut files, &mut warnings)
                    .map_err(|(key, problem)| Error::new(path, &key, problem))?,
            ),
            _ => None,
        };
        let http = raw.http_server_config.unwrap_or_default();
        let headers =
            schema::headers(http.headers.as_ref()).map_err(|(key, p)| Error::new(path, &key, p))?;
        let users = raw.basic_auth_users.unwrap_or_default();
        let auth = if users.is_empty() {
            None
        } else {
            Some(Arc::new(
                Authenticator::new(&users).map_err(|(key, p)| Error::new(path, &key, p))?,
            ))
        };
        let rate_limit = match raw.rate_limit {
            Some(r) => RateLimit::from_raw(&r, &mut warnings)
                .map_err(|(key, p)| Error::new(path, &key, p))?
                .map(|r| Arc::new(TokenBucket::new(r))),
            None => None,
        };
        Ok(WebConfig {
            path: path.to_path_buf(),
            tls,
            http2: http.http2.unwrap_or(true),
            headers,
            auth,
            rate_limit,
            warnings,
            files,
        })
    }

    /// Carries over what should survive a reload: the credential cache (its keys
    /// include the hash, so a changed user never matches an old entry) and the rate
    /// limiter's tokens when its settings did not change.
    pub fn inherit(&mut self, old: &WebConfig) {
        if let (Some(new), Some(old)) = (&self.auth, &old.auth) {
            new.adopt_cache(old);
        }
        if let (Some(new), Some(old)) = (&self.rate_limit, &old.rate_limit)
            && new.settings() == old.settings()
        {
            self.rate_limit = Some(old.clone());
        }
    }

    /// One line on what is served with this configuration (for `--web.config.check`).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match &self.tls {
            Some(tls) => parts.push(format!(
                "TLS (client certificates: {:?}, certificate valid until {} Unix seconds)",
                tls.client_auth, tls.not_after
            )),
            None => parts.push("plain HTTP".to_owned()),
        }
        if let Some(auth) = &self.auth {
            parts.push(format!("basic auth for {} users", auth.users()));
        }
        if let Some(limit) = &self.rate_limit {
            let s = limit.settings();
            parts.push(format!("rate limit {s:?}"));
        }
        if !self.headers.is_empty() {
            parts.push(format!("{} response headers", self.headers.len()));
        }
        parts.join(", ")
    }

    /// The serving certificate's notAfter in Unix seconds, when serving TLS.
    pub fn cert_not_after(&self) -> Option<i64> {
        self.tls.as_ref().map(|t| t.not_after)
    }
}

/// Joins a relative path from the config to the config file's directory, as
/// exporter-toolkit's `JoinDir` does (absolute paths stay as written).
pub fn resolve(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Reads at most [`MAX_FILE_BYTES`] of `path`, refusing a larger file rather than
/// reading part of it.
///
/// Only a regular file is read: it is opened without blocking (a FIFO or a device named
/// by mistake must not hang the server) and refused if it is anything else.
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, Problem> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(Problem::Unreadable)?;
    let meta = file.metadata().map_err(Problem::Unreadable)?;
    if !meta.is_file() {
        return Err(Problem::Refused("not a regular file".into()));
    }
    let mut buf = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(Problem::Unreadable)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(Problem::Refused(format!(
            "larger than {MAX_FILE_BYTES} bytes; not a config or PEM file"
        )));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests;
