//! Validated settings: what the binary runs with, built from the raw flags.

use super::*;
use crate::healthcheck::Target;
use std::net::{SocketAddr, ToSocketAddrs};
use thiserror::Error;

/// Settings of the HTTP server.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The prometheus_client multiprocess directory.
    pub dir: PathBuf,
    /// Path of the metrics endpoint.
    pub telemetry_path: String,
    /// Scrapes served at once, each until its response is written.
    pub max_connections: usize,
    /// Time a client has to send a request head (also bounds idle keep-alive).
    pub header_timeout: Duration,
    /// Time to write one response, from its first byte to its last.
    pub write_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// Bound on the bytes read from one file.
    pub file_limit: u64,
    /// How often readiness is re-checked while the directory is missing, and how often
    /// the lifecycle (liveness, compaction) runs without a watch event.
    pub dir_poll: Duration,
    /// Liveness and compaction settings.
    pub lifecycle: compact::Settings,
    /// `--web.config.file`, loaded (TLS, basic auth, headers, rate limit); `None`
    /// serves plain HTTP to anyone.
    pub web: Option<std::sync::Arc<crate::web::Reloader>>,
}

impl ServeConfig {
    /// Defaults for `dir`: the same as the flags' defaults.
    pub fn new(dir: impl Into<PathBuf>) -> ServeConfig {
        ServeConfig {
            dir: dir.into(),
            telemetry_path: DEFAULT_TELEMETRY_PATH.to_owned(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            file_limit: crate::read::DEFAULT_FILE_LIMIT,
            dir_poll: DEFAULT_LIFECYCLE_INTERVAL,
            lifecycle: lifecycle_settings(
                DEFAULT_LIVENESS,
                DEFAULT_COMPACTION.is_on(),
                DEFAULT_MIN_FREE_BYTES,
            ),
            web: None,
        }
    }
}

/// The lifecycle settings of every subcommand (`render` judges with compaction off).
pub fn lifecycle_settings(
    liveness: liveness::Mode,
    compaction: bool,
    min_free_bytes: u64,
) -> compact::Settings {
    compact::Settings {
        liveness,
        compaction,
        min_free_bytes,
    }
}

/// Validated settings of `serve`.
#[derive(Clone, Debug)]
pub struct Serve {
    /// The addresses `--web.listen-address` resolved to, to bind in order until one
    /// works.
    pub addrs: Vec<SocketAddr>,
    /// `--web.listen-address` as given, for messages.
    pub listen_address: String,
    /// Whose files are served.
    pub pool: Pool,
    /// The server's settings; see [`Pool`] for `dir`.
    pub config: ServeConfig,
    /// `--web.config.file`, to load before serving (then [`ServeConfig::web`]).
    pub web_config_file: Option<PathBuf>,
    /// `--web.config.check`: only check that file.
    pub web_config_check: bool,
    /// `--web.probe-address` resolved, with the flag's value for messages.
    pub probe: Option<(Vec<SocketAddr>, String)>,
}

/// Whose files `serve` serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// The application's pool, in the directory `--dir` (or the environment) names:
    /// [`Serve::config`]'s `dir`.
    App,
    /// `--demo`: simulated workers in a temporary directory of their own, removed at
    /// exit; [`Serve::config`]'s `dir` is empty until that directory is made.
    Demo {
        /// `--demo.workers`.
        workers: usize,
        /// `--demo.worker-lifetime`.
        lifetime: Duration,
    },
}

impl ServeArgs {
    /// Checks the flags and resolves the directory and the listen address.
    ///
    /// With `--demo` the directory variables are ignored (the demo pool removes its
    /// directory at exit and must never touch a real pool's); only an explicit `--dir`
    /// is an error.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the flag and what is wrong with it (a usage error).
    pub fn validate(self) -> Result<Serve, ConfigError> {
        check_telemetry_path(&self.telemetry_path)?;
        if self.write_timeout.0.is_zero() {
            return Err(ConfigError::ZeroWriteTimeout);
        }
        let addrs = listen_addresses(&self.listen_address)?;
        let probe = match self.probe_address {
            Some(spec) => match listen_addresses(&spec) {
                Ok(addrs) => Some((addrs, spec)),
                Err(ConfigError::UnresolvableHost { host, reason, .. }) => {
                    let why = format!("host {host:?} cannot be resolved: {reason}");
                    return Err(ConfigError::ProbeAddress(spec, why));
                }
                Err(_) => {
                    let why = "not HOST:PORT or :PORT".to_owned();
                    return Err(ConfigError::ProbeAddress(spec, why));
                }
            },
            None => None,
        };
        let (pool, dir) = if self.demo {
            if self.dir.is_some() && !self.dir_from_env {
                return Err(ConfigError::DemoWithDir);
            }
            let pool = Pool::Demo {
                workers: self.demo_workers,
                lifetime: self.demo_worker_lifetime.into(),
            };
            (pool, PathBuf::new())
        } else {
            // `--web.config.check` serves nothing: no directory needed.
            let dir = match resolve_dir(self.dir) {
                Ok(dir) => dir,
                Err(_) if self.web_config_check => PathBuf::new(),
                Err(_) => return Err(ConfigError::NoServeDir),
            };
            (Pool::App, dir)
        };
        let config = ServeConfig {
            dir,
            telemetry_path: self.telemetry_path,
            max_connections: self.max_connections,
            header_timeout: self.header_timeout.into(),
            write_timeout: self.write_timeout.into(),
            shutdown_timeout: self.shutdown_timeout.into(),
            file_limit: crate::read::DEFAULT_FILE_LIMIT,
            dir_poll: self.lifecycle_interval.into(),
            lifecycle: lifecycle_settings(
                self.liveness,
                self.compaction.is_on(),
                self.min_free_bytes,
            ),
            web: None,
        };
        Ok(Serve {
            addrs,
            listen_address: self.listen_address,
            pool,
            config,
            web_config_file: self.web_config_file,
            web_config_check: self.web_config_check,
            probe,
        })
    }
}

/// Validated settings of `render`.
#[derive(Clone, Debug)]
pub struct Render {
    /// The directory to merge.
    pub dir: PathBuf,
    /// The exposition format to print.
    pub format: Format,
    /// With a `--liveness` other than `none`: the settings of the round that finds the
    /// dead workers whose live-mode gauges are left out (compaction off: render never
    /// writes).
    pub judge: Option<compact::Settings>,
}

impl RenderArgs {
    /// Resolves the directory.
    ///
    /// # Errors
    /// [`ConfigError::NoDir`] when no directory is given.
    pub fn validate(self) -> Result<Render, ConfigError> {
        Ok(Render {
            dir: resolve_dir(self.dir)?,
            format: self.format.format(),
            judge: (self.liveness != liveness::Mode::None)
                .then(|| lifecycle_settings(self.liveness, false, 0)),
        })
    }
}

/// Validated settings of `compact`.
#[derive(Clone, Debug)]
pub struct Compact {
    /// The directory to compact.
    pub dir: PathBuf,
    /// `--wipe-stale`.
    pub wipe_stale: bool,
    /// Liveness and compaction settings (compaction on).
    pub lifecycle: compact::Settings,
}

impl CompactArgs {
    /// Resolves the directory.
    ///
    /// # Errors
    /// [`ConfigError::NoDir`] when no directory is given.
    pub fn validate(self) -> Result<Compact, ConfigError> {
        Ok(Compact {
            dir: resolve_dir(self.dir)?,
            wipe_stale: self.wipe_stale,
            lifecycle: lifecycle_settings(self.liveness, true, self.min_free_bytes),
        })
    }
}

impl HealthcheckArgs {
    /// Resolves what to probe: `--url` if given, else `/healthz` on the port of
    /// `--web.listen-address`, on loopback when that address is every interface.
    ///
    /// # Errors
    /// A [`ConfigError`] for a listen address or URL that is not usable (a usage error).
    pub fn validate(self) -> Result<Target, ConfigError> {
        let (addrs, authority, path) = match &self.url {
            Some(url) => healthcheck_url(url)?,
            None => {
                let addrs = probe_addresses(&self.listen_address)?;
                let authority = match self.listen_address.rsplit_once(':') {
                    Some((host, _)) if !is_unspecified(host) => self.listen_address.clone(),
                    _ => addrs[0].to_string(),
                };
                (addrs, authority, "/healthz".to_owned())
            }
        };
        Ok(Target {
            addrs,
            authority,
            path,
            timeout: self.timeout.into(),
        })
    }
}

fn is_unspecified(host: &str) -> bool {
    matches!(host, "" | "0.0.0.0" | "[::]")
}

/// Where a client on this host reaches a server listening on `spec`: the addresses of
/// [`listen_addresses`] with every unspecified address (all interfaces) replaced by the
/// loopback address of its family, IPv4 first (a dual-stack `[::]` socket answers on
/// 127.0.0.1 too, and a host without IPv6 has no `::1`).
///
/// # Errors
/// As [`listen_addresses`].
pub fn probe_addresses(spec: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    let mut addrs: Vec<SocketAddr> = listen_addresses(spec)?
        .into_iter()
        .map(|mut a| {
            if a.ip().is_unspecified() {
                a.set_ip(match a {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            a
        })
        .collect();
    if spec
        .rsplit_once(':')
        .is_some_and(|(host, _)| host.is_empty())
    {
        addrs.sort_by_key(SocketAddr::is_ipv6);
    }
    Ok(addrs)
}

/// Splits `http://HOST[:PORT][/PATH]` into the addresses HOST resolves to, the `Host`
/// header and the path (`/healthz` when the URL has none). The port defaults to 80.
///
/// # Errors
/// [`ConfigError::HealthcheckUrl`] for another scheme (https included: the check speaks
/// plain HTTP), a missing host, a bad port or a host that does not resolve.
pub fn healthcheck_url(url: &str) -> Result<(Vec<SocketAddr>, String, String), ConfigError> {
    let bad = |reason: &str| ConfigError::HealthcheckUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs can be probed"))?;
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
        Some(_) => return Err(bad("a path must start with /")),
        None => (rest, "/healthz"),
    };
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("the path has a space or a control character"));
    }
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("HOST[:PORT] expected after http://"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, p.parse::<u16>().map_err(|_| bad("bad port"))?),
        _ => (authority, 80),
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.is_empty() {
        return Err(bad("HOST[:PORT] expected after http://"));
    }
    let addrs: Vec<SocketAddr> = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) if host.starts_with('[') || bare.contains(':') => {
            return Err(bad("bad IPv6 address"));
        }
        Err(_) => (bare, port)
            .to_socket_addrs()
            .map_err(|e| bad(&format!("host {bare:?} cannot be resolved: {e}")))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(bad(&format!("host {bare:?} has no addresses")));
    }
    Ok((addrs, authority.to_owned(), path.to_owned()))
}

/// The addresses to try for a listen address (`:PORT` means every interface, IPv6 and
/// IPv4 where the system has both).
///
/// # Errors
/// [`ConfigError::ListenAddress`] when the address is not `HOST:PORT` or `:PORT`,
/// [`ConfigError::UnresolvableHost`] when the host does not resolve.
pub fn listen_addresses(spec: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    let bad = || ConfigError::ListenAddress(spec.to_owned());
    let (host, port) = spec.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Ok(vec![
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
        ]);
    }
    if let Ok(addr) = spec.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    // A bracketed or an unbracketed IPv6 literal that did not parse is a typo, not a name.
    if host.contains(':') || host.starts_with('[') {
        return Err(bad());
    }
    let unresolvable = |reason: String| ConfigError::UnresolvableHost {
        spec: spec.to_owned(),
        host: host.to_owned(),
        reason,
    };
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| unresolvable(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(unresolvable("no addresses".to_owned()));
    }
    Ok(addrs)
}

/// Checks the telemetry path.
///
/// # Errors
/// When it does not start with `/` or clashes with another endpoint.
pub fn check_telemetry_path(path: &str) -> Result<(), ConfigError> {
    if !path.starts_with('/') || matches!(path, "/" | "/healthz" | "/readyz") {
        return Err(ConfigError::TelemetryPath(path.to_owned()));
    }
    Ok(())
}

/// A setting could not be resolved: a usage error.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Neither the flag nor either environment variable names a directory (`render`,
    /// `compact`).
    #[error("no directory given: pass --dir DIR or set {DIR_ENV} (or the legacy {LEGACY_DIR_ENV})")]
    NoDir,
    /// The same for `serve`, which can also run its demo pool instead.
    #[error(
        "no directory given: pass --dir DIR or set {DIR_ENV} (or the legacy {LEGACY_DIR_ENV}), or try --demo"
    )]
    NoServeDir,
    /// `--demo` and `--dir` on the command line.
    #[error(
        "--demo cannot be used with --dir: the demo pool writes to a temporary directory of its own and removes it at exit"
    )]
    DemoWithDir,
    /// `--web.listen-address` is not usable.
    #[error("--web.listen-address {0:?} is not HOST:PORT or :PORT")]
    ListenAddress(String),
    /// The host of `--web.listen-address` does not resolve.
    #[error("--web.listen-address {spec:?}: host {host:?} cannot be resolved: {reason}")]
    UnresolvableHost {
        /// The flag's value.
        spec: String,
        /// Its host part.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// `--web.write-timeout 0s` would fail every response.
    #[error("--web.write-timeout must be longer than 0s")]
    ZeroWriteTimeout,
    /// The `--url` of `healthcheck` is not usable.
    #[error("--url {url:?} is not http://HOST[:PORT][/PATH]: {reason}")]
    HealthcheckUrl {
        /// The flag's value.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `--web.probe-address` is not usable: the value, and why.
    #[error("--web.probe-address {0:?}: {1}")]
    ProbeAddress(String, String),
    /// `--web.telemetry-path` is not usable.
    #[error("--web.telemetry-path {0:?} must start with '/' and not be /, /healthz or /readyz")]
    TelemetryPath(String),
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
