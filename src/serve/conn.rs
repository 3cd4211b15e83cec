//! Connections: which ones are idle, room made by closing the one idle longest, and the
//! deadline for writing a response.
//!
//! Open connections are bounded ([`Slots`], half the descriptor limit). A connection is
//! *idle* from its accept until hyper has read a request head, and again from the moment
//! its response has been written in full until the next head: closing it then loses
//! nothing but a socket. When every slot is taken, a new connection takes the slot of the
//! connection idle longest, which is closed; only when none is idle (every one has a
//! request in hand) is the newcomer closed instead. A flood of idle sockets therefore
//! costs its own oldest members, never a health check or a scrape. (A keep-alive client
//! whose next request crosses the eviction gets the connection closed without an
//! answer, as at any idle timeout; HTTP clients retry that for a GET.)
//!
//! A response must be written within `--web.write-timeout` of its first byte ([`Io`]).
//! A client that stops reading (its TCP window full) is reset when the deadline passes:
//! its connection, its scrape slot (held until the response is written, see
//! [`Conn::hold`]) and the body its socket buffer pinned are freed at once.
//!
//! How "written in full" is known without looking into hyper: the response body
//! ([`ReplyBody`]) tells the connection when hyper drops it, which it does once it has
//! buffered the last byte; hyper flushes its socket ([`Io`]'s `poll_flush`) only once
//! its buffer is empty. The first flush after the body is gone ends the response.

use crate::selfmetrics::SelfMetrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};
use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::Sleep;

/// Longest write deadline honoured (a larger `--web.write-timeout` means about never);
/// keeps the deadline's arithmetic from overflowing.
const MAX_WRITE_TIMEOUT: Duration = Duration::from_secs(1 << 30);

/// The open connections, and which of them are idle.
#[derive(Debug)]
pub(crate) struct Slots {
    /// How many connections may be open at once.
    cap: usize,
    /// Where evictions, refusals and write timeouts are counted.
    metrics: Arc<SelfMetrics>,
    /// One lock for the table and the idle order, so the two always agree; held for a
    /// hash-map and a B-tree operation at a time.
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Id of the next connection.
    next: u64,
    /// Every open connection, by id.
    open: HashMap<u64, Slot>,
    /// The idle ones by (idle since, id): the first is the one idle longest. Kept beside
    /// `open` so that finding it costs a logarithm, not a walk over every connection.
    idle: BTreeSet<(Instant, u64)>,
}

#[derive(Debug)]
struct Slot {
    /// Since when the connection is idle; `None` while it has a request in hand.
    idle_since: Option<Instant>,
    /// Wakes its task to close it.
    evict: Arc<Notify>,
    /// Its client, for the log.
    peer: SocketAddr,
}

impl Slots {
    /// Room for `cap` connections (at least one).
    pub(crate) fn new(cap: usize, metrics: Arc<SelfMetrics>) -> Arc<Slots> {
        Arc::new(Slots {
            cap: cap.max(1),
            metrics,
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection from `peer`: a free one, else the one of the
    /// connection idle longest, whose task is told to close it (counted). `None`
    /// (counted) when every open connection has a request in hand.
    pub(crate) fn admit(self: &Arc<Self>, peer: SocketAddr) -> Option<Arc<Conn>> {
        let now = Instant::now();
        let evict = Arc::new(Notify::new());
        let mut evicted = None;
        let id = {
            let mut guard = self.lock();
            let inner = &mut *guard;
            if inner.open.len() >= self.cap {
                let Some((since, old)) = inner.idle.pop_first() else {
                    drop(guard);
                    self.metrics.connection_rejected();
                    return None;
                };
                if let Some(slot) = inner.open.remove(&old) {
                    // A permit is stored if its task is not waiting yet: never lost.
                    slot.evict.notify_one();
                    evicted = Some((slot.peer, now.saturating_duration_since(since)));
                }
            }
            let id = inner.next;
            inner.next += 1;
            inner.open.insert(
                id,
                Slot {
                    idle_since: Some(now),
                    evict: evict.clone(),
                    peer,
                },
            );
            inner.idle.insert((now, id));
            id
        };
        if let Some((old, idle)) = evicted {
            self.metrics.connection_evicted();
            tracing::debug!(peer = %old, idle = ?idle, new = %peer, "every connection slot taken: closed the connection idle longest");
        }
        Some(Arc::new(Conn {
            id,
            peer,
            slots: self.clone(),
            evict,
            state: Mutex::new(State::default()),
        }))
    }

    /// Connection `id` has a request in hand: not to be evicted.
    fn set_busy(&self, id: u64) {
        let mut guard = self.lock();
        let Inner { open, idle, .. } = &mut *guard;
        if let Some(since) = open.get_mut(&id).and_then(|s| s.idle_since.take()) {
            idle.remove(&(since, id));
        }
    }

    /// Connection `id` has written its response in full: idle from now.
    fn set_idle(&self, id: u64) {
        let mut guard = self.lock();
        let Inner { open, idle, .. } = &mut *guard;
        if let Some(slot) = open.get_mut(&id)
            && slot.idle_since.is_none()
        {
            let now = Instant::now();
            slot.idle_since = Some(now);
            idle.insert((now, id));
        }
    }

    /// Connection `id` is gone (an evicted one already left the table).
    fn close(&self, id: u64) {
        let mut guard = self.lock();
        let Inner { open, idle, .. } = &mut *guard;
        if let Some(since) = open.remove(&id).and_then(|s| s.idle_since) {
            idle.remove(&(since, id));
        }
    }
}

/// One open connection, shared by its task, its socket ([`Io`]), its service and its
/// response bodies; its slot is given back when the last of them is dropped.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Its key in [`Slots`].
    id: u64,
    /// The client, for logs.
    peer: SocketAddr,
    slots: Arc<Slots>,
    /// Notified when the connection is evicted.
    evict: Arc<Notify>,
    /// The response in progress; locked briefly, never while `slots` is locked.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// A request head has been read and its response is not yet written in full.
    responding: bool,
    /// hyper still holds that response's body (it has not buffered all of it).
    body_pending: bool,
    /// The scrape slot of that response, freed once it is written or the connection
    /// closes: the bodies being sent, and their memory, are bounded by
    /// `--web.max-connections`.
    scrape: Option<OwnedSemaphorePermit>,
}

impl Conn {
    /// The client's address.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// hyper has read a request head: the connection is not idle until its response is
    /// written.
    pub(crate) fn request(&self) {
        {
            let mut s = self.state();
            s.responding = true;
            s.body_pending = true;
        }
        self.slots.set_busy(self.id);
    }

    /// Keeps `permit` (a scrape slot) until the response in progress is written, or the
    /// connection closes.
    pub(crate) fn hold(&self, permit: OwnedSemaphorePermit) {
        self.state().scrape = Some(permit);
    }

    /// `body` as the body of the response in progress, telling this connection when
    /// hyper is done with it.
    pub(crate) fn body(self: &Arc<Self>, body: Full<Bytes>) -> ReplyBody {
        ReplyBody {
            inner: body,
            conn: Some(self.clone()),
        }
    }

    fn body_done(&self) {
        self.state().body_pending = false;
    }

    /// The socket took everything hyper had buffered. Returns whether that completed a
    /// response; the connection is then idle and its scrape slot free.
    fn flushed(&self) -> bool {
        let permit = {
            let mut s = self.state();
            if !s.responding || s.body_pending {
                return false;
            }
            s.responding = false;
            s.scrape.take()
        };
        drop(permit);
        self.slots.set_idle(self.id);
        true
    }

    /// A response was not written within `timeout`: counted and logged.
    fn write_timed_out(&self, timeout: Duration) {
        self.slots.metrics.write_timed_out();
        tracing::warn!(peer = %self.peer, timeout = ?timeout, "a response was not written within --web.write-timeout (the client reads too slowly or not at all); connection reset");
    }

    /// Resolves once the connection has been evicted; its task then drops it.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.slots.close(self.id);
    }
}

/// A response body that tells its connection when hyper has taken all of it (by being
/// dropped); otherwise exactly the [`Full`] body it wraps.
#[derive(Debug)]
pub(crate) struct ReplyBody {
    inner: Full<Bytes>,
    /// `None` only once dropped.
    conn: Option<Arc<Conn>>,
}

impl Drop for ReplyBody {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.body_done();
        }
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket of one connection, with the write deadline of the response being sent:
/// armed by the response's first write, disarmed once it has all been written. When it
/// passes, writes fail with `TimedOut` (hyper then ends the connection) and the socket
/// is closed with a reset, which drops the unsent bytes in the kernel too.
#[derive(Debug)]
pub(crate) struct Io<S = TcpStream> {
    stream: S,
    conn: Arc<Conn>,
    /// `--web.write-timeout`.
    timeout: Duration,
    /// The deadline of the response being written; `None` between responses (allocated
    /// per response, so an idle connection holds no timer).
    deadline: Option<Pin<Box<Sleep>>>,
    /// The deadline passed: every write fails from now on.
    expired: bool,
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "response not written within --web.write-timeout",
    )
}

/// A connection's byte stream: TCP, or TLS over TCP.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin {
    /// Makes closing the connection a reset (see [`Io`]).
    fn reset_on_close(&self);
}

impl Socket for TcpStream {
    fn reset_on_close(&self) {
        let _ = self.set_zero_linger();
    }
}

impl Socket for tokio_rustls::server::TlsStream<TcpStream> {
    fn reset_on_close(&self) {
        self.get_ref().0.reset_on_close();
    }
}

impl<S: Socket> Io<S> {
    /// `stream` of `conn`, whose responses must each be written within `timeout`.
    pub(crate) fn new(stream: S, conn: Arc<Conn>, timeout: Duration) -> Io<S> {
        Io {
            stream,
            conn,
            timeout: timeout.min(MAX_WRITE_TIMEOUT),
            deadline: None,
            expired: false,
        }
    }

    /// Runs a write under the deadline (armed by the first write of a response).
    fn guarded<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if !self.expired {
            let timeout = self.timeout;
            let deadline = self
                .deadline
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
            if !deadline.is_elapsed() {
                let done = write(Pin::new(&mut self.stream), cx);
                // Blocked: wake up at the deadline too, so a client that never reads
                // again is noticed without one.
                if done.is_ready() || deadline.as_mut().poll(cx).is_pending() {
                    return done;
                }
            }
            self.expire();
        }
        Poll::Ready(Err(timed_out()))
    }

    fn expire(&mut self) {
        self.expired = true;
        self.deadline = None;
        // Close with a reset: a graceful close would leave the unsent bytes queued in
        // the kernel for a client that does not read them.
        self.stream.reset_on_close();
        self.conn.write_timed_out(self.timeout);
    }
}

impl<S: Socket> AsyncRead for Io<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl<S: Socket> AsyncWrite for Io<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .guarded(cx, |stream, cx| stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .guarded(cx, |stream, cx| stream.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Err(timed_out()));
        }
        let done = ready!(Pin::new(&mut this.stream).poll_flush(cx));
        // hyper flushes the socket only once its own buffer is empty.
        if done.is_ok() && this.conn.flushed() {
            this.deadline = None;
        }
        Poll::Ready(done)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn is_open(slots: &Slots, conn: &Conn) -> bool {
        slots.lock().open.contains_key(&conn.id)
    }

    /// Ends the response in progress as hyper does: body dropped, then a flush.
    fn respond(conn: &Conn) -> bool {
        conn.body_done();
        conn.flushed()
    }

    #[test]
    fn test_issue_9_the_connection_idle_longest_makes_room() {
        let slots = Slots::new(2, Arc::new(SelfMetrics::default()));
        let a = slots.admit(peer(1)).unwrap();
        let b = slots.admit(peer(2)).unwrap();
        // a has a request in hand, so the idle b goes although a is older.
        a.request();
        let c = slots.admit(peer(3)).unwrap();
        assert!(!is_open(&slots, &b) && is_open(&slots, &a) && is_open(&slots, &c));
        // Every connection busy: the newcomer is refused.
        c.request();
        assert!(slots.admit(peer(4)).is_none());
        // a finishes its response first, so it is the one idle longest.
        assert!(respond(&a));
        assert!(respond(&c));
        let d = slots.admit(peer(5)).unwrap();
        assert!(!is_open(&slots, &a) && is_open(&slots, &c));
        // Dropping an evicted connection frees nothing twice; dropping c frees its slot.
        drop((a, b));
        drop(c);
        assert_eq!(slots.lock().open.len(), 1);
        assert_eq!(slots.lock().idle.len(), 1);
        let _e = slots.admit(peer(6)).unwrap();
        assert!(is_open(&slots, &d));
    }

    #[test]
    fn a_response_ends_at_the_first_flush_after_its_body() {
        let slots = Slots::new(1, Arc::new(SelfMetrics::default()));
        let a = slots.admit(peer(1)).unwrap();
        // Flushes between requests change nothing.
        assert!(!a.flushed());
        a.request();
        // Flushes while the body is still with hyper do not end the response.
        assert!(!a.flushed());
        assert!(slots.lock().idle.is_empty());
        assert!(respond(&a));
        assert_eq!(slots.lock().idle.len(), 1);
        assert!(!a.flushed());
    }
}
