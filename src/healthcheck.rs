//! `multiproc-exporter healthcheck`: one plain HTTP GET of the server's `/healthz`, for
//! runtimes that run a command to check a container (a `FROM scratch` image has no curl,
//! and podman's default OCI image format drops `HEALTHCHECK`).
//!
//! The client is deliberately tiny: HTTP/1.1 over one TCP connection, `Connection:
//! close`, and only the status line is looked at (200 is healthy, anything else is not).
//! It depends on nothing else in the crate; `config` resolves the flags into a
//! [`Target`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Bound on the response bytes read before the status line must have arrived.
const MAX_HEAD: usize = 8 << 10;

/// What to probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The addresses to try in order; the first that accepts the connection answers.
    pub addrs: Vec<SocketAddr>,
    /// The `Host` header (`host:port`, as the URL or the listen address spells it).
    pub authority: String,
    /// The request path, `/healthz` unless a URL says otherwise.
    pub path: String,
    /// Deadline of the whole check: connecting, sending and reading the status line.
    pub timeout: Duration,
}

impl Target {
    /// `http://AUTHORITY/PATH`, for messages.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }
}

/// Why the check failed (the process exits 1).
#[derive(Debug, Error)]
pub enum Unhealthy {
    /// No address accepted a connection in time.
    #[error("GET {url}: cannot connect to {addrs}: {error}")]
    Connect {
        /// The URL probed.
        url: String,
        /// The addresses tried.
        addrs: String,
        /// The last connection error.
        error: io::Error,
    },
    /// Connected, but sending the request or reading the answer failed or timed out.
    #[error("GET {url} ({addr}): {error}")]
    Exchange {
        /// The URL probed.
        url: String,
        /// The address that accepted the connection.
        addr: SocketAddr,
        /// What went wrong.
        error: io::Error,
    },
    /// The server answered something other than `200`.
    #[error("GET {url} ({addr}) answered {status_line:?}")]
    Status {
        /// The URL probed.
        url: String,
        /// The address that answered.
        addr: SocketAddr,
        /// The status line received (or the start of what came instead).
        status_line: String,
    },
}

/// Probes `target`; `Ok` with the status line when it answers 200.
///
/// # Errors
/// [`Unhealthy`] when no address accepts a connection, the exchange fails or exceeds the
/// timeout, or the status is not 200.
pub fn check(target: &Target) -> Result<String, Unhealthy> {
    let deadline = Instant::now() + target.timeout;
    let url = target.url();
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
    for &addr in &target.addrs {
        let Some(left) = remaining(deadline) else {
            last = io::Error::new(io::ErrorKind::TimedOut, "timed out");
            break;
        };
        let stream = match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => s,
            Err(err) => {
                last = err;
                continue;
            }
        };
        let status_line =
            exchange(stream, target, deadline).map_err(|error| Unhealthy::Exchange {
                url: url.clone(),
                addr,
                error,
            })?;
        return if is_ok(&status_line) {
            Ok(status_line)
        } else {
            Err(Unhealthy::Status {
                url,
                addr,
                status_line,
            })
        };
    }
    let addrs = target
        .addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Err(Unhealthy::Connect {
        url,
        addrs,
        error: last,
    })
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// Sends the request and returns the response's status line.
fn exchange(mut stream: TcpStream, target: &Target, deadline: Instant) -> io::Result<String> {
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "timed out");
    stream.set_write_timeout(Some(remaining(deadline).ok_or_else(timed_out)?))?;
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: multiproc-exporter-healthcheck\r\n\
         Connection: close\r\n\r\n",
        target.path, target.authority
    )?;
    stream.flush()?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    while !head.contains(&b'\n') && head.len() < MAX_HEAD {
        stream.set_read_timeout(Some(remaining(deadline).ok_or_else(timed_out)?))?;
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Err(timed_out()),
            Err(err) => return Err(err),
        };
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    if head.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed before a response",
        ));
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    Ok(line.trim_end().chars().take(200).collect())
}

/// Whether a status line says `200` (`HTTP/1.1 200 OK`, `HTTP/1.0 200`).
fn is_ok(status_line: &str) -> bool {
    let mut parts = status_line.split(' ');
    parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) && parts.next() == Some("200")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn target(addrs: Vec<SocketAddr>, timeout: Duration) -> Target {
        Target {
            addrs,
            authority: "127.0.0.1:1".to_owned(),
            path: "/healthz".to_owned(),
            timeout,
        }
    }

    /// A one-shot server answering `reply` (after reading the request head).
    fn answer_once(reply: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    return;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got.starts_with(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"));
            let _ = s.write_all(reply);
        });
        addr
    }

    #[test]
    fn status_lines() {
        assert!(is_ok("HTTP/1.1 200 OK"));
        assert!(is_ok("HTTP/1.0 200"));
        assert!(!is_ok("HTTP/1.1 2000 OK"));
        assert!(!is_ok("HTTP/1.1 503 Service Unavailable"));
        assert!(!is_ok("SSH-2.0-OpenSSH"));
        assert!(!is_ok(""));
    }

    #[test]
    fn test_issue_10_healthy_and_unhealthy_answers() {
        let ok = answer_once(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n");
        let t = target(vec![ok], Duration::from_secs(5));
        assert_eq!(check(&t).unwrap(), "HTTP/1.1 200 OK");
        let bad = answer_once(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let err = check(&target(vec![bad], Duration::from_secs(5))).unwrap_err();
        assert!(matches!(err, Unhealthy::Status { .. }), "{err}");
        assert!(err.to_string().contains("503"), "{err}");
    }

    #[test]
    fn test_issue_10_a_refused_address_falls_through_to_the_next() {
        let refused = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let ok = answer_once(b"HTTP/1.1 200 OK\r\n\r\n");
        let t = target(vec![refused, ok], Duration::from_secs(5));
        assert!(check(&t).is_ok());
        let err = check(&target(vec![refused], Duration::from_secs(5))).unwrap_err();
        assert!(matches!(err, Unhealthy::Connect { .. }), "{err}");
    }

    #[test]
    fn test_issue_10_a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let started = Instant::now();
        let err = check(&target(vec![addr], Duration::from_millis(300))).unwrap_err();
        assert!(matches!(err, Unhealthy::Exchange { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(listener);
    }
}
