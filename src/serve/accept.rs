//! One accepted connection: its TLS handshake when the web configuration asks for TLS,
//! then HTTP/1.1.
//!
//! The web configuration is taken once per connection ([`Reloader::current`], which
//! looks at its files at most once a second), so a rotated certificate or a changed
//! user applies to every connection accepted after the change, and a connection keeps
//! the configuration it was accepted with to its end: an in-flight scrape is never cut
//! by a rotation.
//!
//! The handshake runs in the connection's task, within `--web.header-timeout`, and the
//! connection holds its slot meanwhile, idle (so the eviction of [`super::conn`] applies
//! to half-open handshakes too). Two openings get the answer Go's server gives instead
//! of rustls's generic `handshake_failure`: plain HTTP gets `400 Bad Request` in plain
//! text, and a ClientHello of TLS 1.1 or older a `protocol_version` alert.
//!
//! [`Reloader::current`]: crate::web::Reloader::current

use super::conn::{self, Conn, Socket};
use super::{App, Surface, routes};
use crate::selfmetrics::HandshakeFailure;
use crate::web::{Reloader, WebConfig};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

/// What Go's `net/http` answers a plain-HTTP request on a TLS port.
const PLAIN_HTTP_ON_TLS: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A connection admitted to a slot, before its first byte.
pub(crate) struct Connection {
    pub(crate) app: Arc<App>,
    pub(crate) tracked: Arc<Conn>,
    pub(crate) peer: SocketAddr,
    pub(crate) surface: Surface,
}

impl Connection {
    /// Serves the connection to its end (or its eviction).
    pub(crate) async fn serve(self, stream: TcpStream, watcher: Watcher) {
        let web = match (self.surface, &self.app.config.web) {
            (Surface::Main, Some(web)) => Some(current(web, self.app.config.header_timeout).await),
            _ => None,
        };
        let Some(tls) = web.as_ref().and_then(|w| w.tls.as_ref()) else {
            return self.http(stream, web, watcher).await;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
        let deadline = self.app.config.header_timeout;
        let handshake = async {
            let opening = opening(&stream).await;
            if opening != Opening::Tls {
                refuse(&stream, &opening);
                tracing::debug!(peer = %self.peer, opening = ?opening, "refused before the TLS handshake");
                return Err(match opening {
                    Opening::PlainHttp => HandshakeFailure::PlainHttp,
                    _ => HandshakeFailure::Refused,
                });
            }
            acceptor.accept(stream).await.map_err(|err| {
                tracing::debug!(peer = %self.peer, error = %err, "TLS handshake failed");
                HandshakeFailure::Refused
            })
        };
        let done = tokio::select! {
            done = tokio::time::timeout(deadline, handshake) => done,
            // Idle until the handshake is done: its slot may go to a newcomer.
            () = self.tracked.evicted() => return,
        };
        match done {
            Ok(Ok(stream)) => self.http(stream, web, watcher).await,
            Ok(Err(failure)) => self.app.metrics.handshake_failed(failure),
            Err(_) => {
                tracing::debug!(peer = %self.peer, timeout = ?deadline, "TLS handshake not done within --web.header-timeout");
                self.app.metrics.handshake_failed(HandshakeFailure::Timeout);
            }
        }
    }

    async fn http<S: Socket + Send + 'static>(
        self,
        stream: S,
        web: Option<Arc<WebConfig>>,
        watcher: Watcher,
    ) {
        let Connection {
            app,
            tracked,
            peer,
            surface,
        } = self;
        let service = {
            let (app, tracked) = (app.clone(), tracked.clone());
            service_fn(move |req| {
                tracked.request();
                let web = web.clone();
                routes::handle(app.clone(), tracked.clone(), web, surface, req)
            })
        };
        let io = conn::Io::new(stream, tracked.clone(), app.config.write_timeout);
        let served = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(app.config.header_timeout)
            .serve_connection(TokioIo::new(io), service);
        tokio::select! {
            done = watcher.watch(served) => if let Err(err) = done {
                tracing::debug!(peer = %peer, error = %err, "connection ended with an error");
            },
            // Dropping the connection closes it; idle, it has nothing unsent.
            () = tracked.evicted() => {}
        }
    }
}

/// The web configuration for a new connection. Once a second its files are looked at,
/// and loaded again if they changed: that file IO runs on the blocking pool.
///
/// A check that takes longer than `wait` (a file system that hangs) is not waited for:
/// the connection goes on with the configuration loaded, and no other check starts
/// until that one ends.
async fn current(web: &Arc<Reloader>, wait: std::time::Duration) -> Arc<WebConfig> {
    if !web.check_due() {
        return web.loaded();
    }
    let reloader = web.clone();
    let check = tokio::task::spawn_blocking(move || reloader.current());
    match tokio::time::timeout(wait, check).await {
        Ok(Ok(config)) => config,
        Ok(Err(_)) | Err(_) => web.loaded(),
    }
}

/// What a connection's first bytes say.
#[derive(Debug, PartialEq, Eq)]
enum Opening {
    /// A handshake record of TLS 1.2 or later: for rustls.
    Tls,
    /// A ClientHello whose highest version is below TLS 1.2 (a TLS 1.3 hello says 1.2
    /// there too): answered with a `protocol_version` alert, as Go's server does.
    TooOld,
    /// Plain HTTP: answered `400` as Go's server does.
    PlainHttp,
}

/// Peeks at the client's first bytes, without reading them, and answers the two cases
/// rustls would only refuse with an alert the client cannot tell apart
/// (`handshake_failure`). Whatever else comes is rustls's to refuse.
async fn opening(stream: &TcpStream) -> Opening {
    // Record header (type, version, length), handshake type and length, client version.
    let mut head = [0u8; 11];
    // Backed off: a peer that sends one byte and stalls (or closes: a peek cannot see
    // the end behind unread bytes) would otherwise be polled 200 times a second until
    // the deadline.
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        let Ok(n) = stream.peek(&mut head).await else {
            return Opening::Tls;
        };
        match head.first() {
            _ if n == 0 => return Opening::Tls,
            Some(&TLS_HANDSHAKE_RECORD) if n >= head.len() => break,
            Some(&TLS_HANDSHAKE_RECORD) => {
                // The hello is still arriving; the caller's deadline bounds the wait.
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            Some(b) if b.is_ascii_uppercase() => return Opening::PlainHttp,
            _ => return Opening::Tls,
        }
    }
    const CLIENT_HELLO: u8 = 1;
    // Only when the first record holds the hello's header and version: a hello
    // fragmented into records of a few bytes is legal, and rustls joins it.
    let record_len = u16::from_be_bytes([head[3], head[4]]);
    if head[5] == CLIENT_HELLO && record_len >= 6 && (head[9], head[10]) < (3, 3) {
        Opening::TooOld
    } else {
        Opening::Tls
    }
}

/// A fatal `protocol_version` alert (RFC 8446 section 6), in a TLS 1.0 record.
const PROTOCOL_VERSION_ALERT: [u8; 7] = [0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46];

/// Answers what [`opening`] found, best effort and without waiting (the client may be
/// gone): what it sent is read first, so that closing does not reset the answer away.
fn refuse(stream: &TcpStream, opening: &Opening) {
    let answer: &[u8] = match opening {
        Opening::Tls => return,
        Opening::TooOld => &PROTOCOL_VERSION_ALERT,
        Opening::PlainHttp => PLAIN_HTTP_ON_TLS,
    };
    let mut sink = [0u8; 4096];
    let _ = stream.try_read(&mut sink);
    let _ = stream.try_write(answer);
}
