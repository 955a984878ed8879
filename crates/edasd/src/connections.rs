//! Connection limits of the API listener (`[server]`): a cap on open connections that keeps
//! file-descriptor headroom, an inactivity timeout, and the request-head and body deadlines.
//!
//! Why a cap with eviction rather than a plain cap: a plain cap lets a flood of idle connections
//! lock everyone out until their timeouts expire. Here a new connection at the cap closes the
//! connection that has been silent longest (no byte read or written), so `/healthz` and signed
//! calls keep getting through while a flood only churns its own connections; and a connection
//! silent for `idle_timeout_seconds` is closed whatever state it is in (HTTP/2, a stalled TLS
//! handshake, a body that stopped arriving). A connection whose response is still being produced
//! (a followed log, the push stream) is waiting for edasd, not idle: its silence is not held
//! against it, and it is the last to be evicted; a client that stops reading such a response is
//! still closed after the timeout.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use anyhow::bail;
use axum_server::accept::Accept;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// File descriptors kept free below the process limit for everything but API connections
/// (the store, instance logs and probes, Service proxies, Kubernetes watches).
const FD_HEADROOM: u64 = 1024;

/// `[server]`: limits of the API listener. Every key is optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Open API connections at most (default 4096, lowered to leave 1024 file descriptors of
    /// the process limit free). At the cap, a new connection closes the one silent longest.
    pub max_connections: Option<u64>,
    /// A request's line and headers must arrive within this many seconds of the connection
    /// opening or of the previous response (default 10): it bounds half-sent requests and is
    /// also how long a keep-alive connection may wait idle for its next request.
    pub header_read_timeout_seconds: Option<f64>,
    /// A request body must arrive completely within this many seconds (default 30).
    pub body_read_timeout_seconds: Option<f64>,
    /// A connection with no byte read or written for this many seconds is closed (default 60),
    /// whatever it is doing.
    pub idle_timeout_seconds: Option<f64>,
    /// Signature nonces remembered per access key (default 100000): each key has its own share,
    /// so one key's flood never refuses another key's requests.
    pub nonce_capacity_per_key: Option<usize>,
}

/// The validated limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub nonce_capacity_per_key: usize,
}

impl ServerSection {
    /// Validates the section against the process's file-descriptor limit `fd_limit`.
    pub fn limits(&self, fd_limit: u64) -> anyhow::Result<Limits> {
        let seconds = |name: &str, value: Option<f64>, default: f64| -> anyhow::Result<Duration> {
            let v = value.unwrap_or(default);
            if !(v.is_finite() && (0.1..=3600.0).contains(&v)) {
                bail!("[server] {name} = {v}: must be between 0.1 and 3600 seconds");
            }
            Ok(Duration::from_secs_f64(v))
        };
        let wanted = self.max_connections.unwrap_or(4096);
        if wanted == 0 {
            bail!("[server] max_connections = 0: at least one connection must be allowed");
        }
        let room = fd_limit.saturating_sub(FD_HEADROOM);
        if room < 16 {
            bail!(
                "the open-file limit ({fd_limit}) leaves no room for API connections after {FD_HEADROOM} \
                 for edasd's own files; raise it (ulimit -n)"
            );
        }
        let max = wanted.min(room);
        if max < wanted {
            tracing::warn!(
                max_connections = max,
                configured = wanted,
                fd_limit,
                "[server] max_connections lowered to keep {FD_HEADROOM} file descriptors free"
            );
        }
        Ok(Limits {
            max_connections: usize::try_from(max).unwrap_or(usize::MAX),
            header_read_timeout: seconds(
                "header_read_timeout_seconds",
                self.header_read_timeout_seconds,
                10.0,
            )?,
            body_read_timeout: seconds(
                "body_read_timeout_seconds",
                self.body_read_timeout_seconds,
                30.0,
            )?,
            idle_timeout: seconds("idle_timeout_seconds", self.idle_timeout_seconds, 60.0)?,
            nonce_capacity_per_key: match self.nonce_capacity_per_key {
                None => edas_pop::DEFAULT_NONCE_CAPACITY,
                Some(n) if (1..=10_000_000).contains(&n) => n,
                Some(n) => {
                    bail!("[server] nonce_capacity_per_key = {n}: must be between 1 and 10000000")
                }
            },
        })
    }
}

/// Raises the soft open-file limit to the hard one (connections and instances need many) and
/// returns the soft limit in force.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

/// One open connection as the table sees it.
#[derive(Debug)]
struct Slot {
    /// Milliseconds since the table's epoch of the last byte read or written.
    last_active_ms: AtomicU64,
    /// Set to make the connection fail its next read or write (evicted).
    evicted: AtomicBool,
    /// The task blocked reading the connection, woken on eviction.
    waker: Mutex<Option<Waker>>,
    /// Responses on this connection not yet finished, from the request to the end of the body.
    in_flight: AtomicUsize,
}

/// The open connections, for the cap and eviction.
#[derive(Debug)]
pub struct Connections {
    epoch: Instant,
    max: usize,
    idle_timeout: Duration,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Slot>>>,
}

impl Connections {
    pub fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            max: limits.max_connections,
            idle_timeout: limits.idle_timeout,
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Registers a new connection; at the cap, first evicts the one silent longest.
    fn admit(self: &Arc<Self>) -> (u64, Arc<Slot>) {
        let slot = Arc::new(Slot {
            last_active_ms: AtomicU64::new(self.now_ms()),
            evicted: AtomicBool::new(false),
            waker: Mutex::new(None),
            in_flight: AtomicUsize::new(0),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        while open.len() >= self.max {
            // Connections with a response in flight go last: they wait for edasd.
            let Some((&victim, _)) = open.iter().min_by_key(|(_, s)| {
                (
                    s.in_flight.load(Ordering::Relaxed) > 0,
                    s.last_active_ms.load(Ordering::Relaxed),
                )
            }) else {
                break;
            };
            if let Some(evicted) = open.remove(&victim) {
                evicted.evicted.store(true, Ordering::Release);
                let waker = evicted
                    .waker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                if let Some(waker) = waker {
                    waker.wake();
                }
                metrics::counter!("edasd_connections_evicted_total").increment(1);
            }
        }
        open.insert(id, slot.clone());
        metrics::gauge!("edasd_connections_open").set(open.len() as f64);
        (id, slot)
    }

    fn release(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.remove(&id);
        metrics::gauge!("edasd_connections_open").set(open.len() as f64);
    }

    /// How many connections are open.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// An acceptor that puts every connection under [`Connections`], before any TLS handshake.
#[derive(Clone, Debug)]
pub struct GuardedAcceptor<A> {
    inner: A,
    connections: Arc<Connections>,
}

impl<A> GuardedAcceptor<A> {
    pub fn new(inner: A, connections: Arc<Connections>) -> Self {
        Self { inner, connections }
    }
}

impl<I, S, A> Accept<I, S> for GuardedAcceptor<A>
where
    A: Accept<Guarded<I>, S>,
    A::Future: Send + 'static,
{
    type Stream = A::Stream;
    type Service = Tracked<A::Service>;
    type Future = BoxFuture<'static, io::Result<(A::Stream, Tracked<A::Service>)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let (id, slot) = self.connections.admit();
        let idle = Box::pin(tokio::time::sleep(self.connections.idle_timeout));
        let guarded = Guarded {
            inner: stream,
            id,
            slot: slot.clone(),
            connections: self.connections.clone(),
            idle,
        };
        let accepted = self.inner.accept(guarded, service);
        Box::pin(async move {
            let (stream, inner) = accepted.await?;
            Ok((stream, Tracked { inner, slot }))
        })
    }
}

/// A connection under the limits: fails once evicted or silent past the idle timeout.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    id: u64,
    slot: Arc<Slot>,
    connections: Arc<Connections>,
    idle: Pin<Box<Sleep>>,
}

impl<S> Guarded<S> {
    fn touch(&mut self) {
        self.slot
            .last_active_ms
            .store(self.connections.now_ms(), Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + self.connections.idle_timeout;
        self.idle.as_mut().reset(deadline);
    }

    /// An error when the connection must close: evicted, or silent past the idle timeout
    /// (checked only while the caller would otherwise wait). A read that waits while a response
    /// is in flight is not idleness (the client waits for edasd); a write that waits is.
    fn closing(&mut self, cx: &mut Context<'_>, reading: bool) -> Option<io::Error> {
        // The waker first: an eviction after it is stored wakes this task; one before it is
        // seen by the check that follows.
        *self.slot.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        if self.slot.evicted.load(Ordering::Acquire) {
            return Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to admit a new connection at the connection cap",
            ));
        }
        if reading && self.slot.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if self.idle.as_mut().poll(cx).is_ready() {
            return Some(io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection was idle past [server] idle_timeout_seconds",
            ));
        }
        None
    }
}

impl<S> Guarded<S> {
    /// Accounts for a write's outcome: bytes written keep the connection alive; a write that
    /// would wait fails instead once the connection must close.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.touch();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.closing(cx, false) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl<S> Drop for Guarded<S> {
    fn drop(&mut self) {
        self.connections.release(self.id);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.slot.evicted.load(Ordering::Acquire) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to admit a new connection at the connection cap",
            )));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.closing(cx, true) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, data);
        self.wrote(cx, written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A connection's service that counts its responses in flight (see [`Slot::in_flight`]).
#[derive(Clone, Debug)]
pub struct Tracked<S> {
    inner: S,
    slot: Arc<Slot>,
}

/// One response in flight; counted down when dropped (the body ended, or the request failed).
#[derive(Debug)]
struct InFlight(Arc<Slot>);

impl InFlight {
    fn new(slot: Arc<Slot>) -> Self {
        slot.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(slot)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // The connection writes the response's end next, which restarts its idle timer.
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S, B, RB> tower::Service<http::Request<B>> for Tracked<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<TrackedBody<RB>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let in_flight = InFlight::new(self.slot.clone());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| TrackedBody {
                inner: body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// A response body that keeps its response counted as in flight until it is dropped.
#[derive(Debug)]
pub struct TrackedBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B: http_body::Body + Unpin> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> Limits {
        Limits {
            max_connections: max,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            nonce_capacity_per_key: 10,
        }
    }

    #[test]
    fn the_cap_keeps_file_descriptor_headroom_and_refuses_nonsense() {
        let section = ServerSection::default();
        assert_eq!(section.limits(1_000_000).unwrap().max_connections, 4096);
        assert_eq!(section.limits(2048).unwrap().max_connections, 1024);
        assert!(section.limits(1030).is_err());
        let zero = ServerSection {
            max_connections: Some(0),
            ..ServerSection::default()
        };
        assert!(zero.limits(1_000_000).is_err());
        let negative = ServerSection {
            idle_timeout_seconds: Some(-1.0),
            ..ServerSection::default()
        };
        assert!(
            negative
                .limits(1_000_000)
                .unwrap_err()
                .to_string()
                .contains("idle_timeout_seconds")
        );
    }

    #[test]
    fn at_the_cap_the_connection_silent_longest_is_evicted() {
        let connections = Connections::new(&limits(2));
        let (a, slot_a) = connections.admit();
        std::thread::sleep(Duration::from_millis(5));
        let (_b, slot_b) = connections.admit();
        std::thread::sleep(Duration::from_millis(5));
        // `a` speaks again: `b` is now the one silent longest.
        slot_a
            .last_active_ms
            .store(connections.now_ms(), Ordering::Relaxed);
        let (_c, slot_c) = connections.admit();
        assert!(!slot_a.evicted.load(Ordering::Acquire));
        assert!(slot_b.evicted.load(Ordering::Acquire));
        assert!(!slot_c.evicted.load(Ordering::Acquire));
        assert_eq!(connections.len(), 2);
        connections.release(a);
        assert_eq!(connections.len(), 1);
    }

    #[tokio::test]
    async fn a_response_in_flight_is_not_idleness() {
        use tokio::io::AsyncReadExt;
        let mut limits = limits(4);
        limits.idle_timeout = Duration::from_millis(100);
        let connections = Connections::new(&limits);
        let (id, slot) = connections.admit();
        let (_client, server) = tokio::io::duplex(64);
        let mut guarded = Guarded {
            inner: server,
            id,
            slot: slot.clone(),
            connections: connections.clone(),
            idle: Box::pin(tokio::time::sleep(limits.idle_timeout)),
        };
        let in_flight = InFlight::new(slot.clone());
        let mut buf = [0u8; 8];
        // Silent for three timeouts while a response (a followed log) is in flight: still open.
        let waited = tokio::time::timeout(Duration::from_millis(300), guarded.read(&mut buf)).await;
        assert!(waited.is_err(), "the connection was closed: {waited:?}");
        // The response ended; the silence now is idleness.
        drop(in_flight);
        let error = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn a_connection_with_a_response_in_flight_is_evicted_last() {
        let connections = Connections::new(&limits(2));
        let (_a, slot_a) = connections.admit();
        std::thread::sleep(Duration::from_millis(5));
        let (_b, slot_b) = connections.admit();
        // `a` is silent longest but streams a response.
        let _streaming = InFlight::new(slot_a.clone());
        let (_c, _) = connections.admit();
        assert!(!slot_a.evicted.load(Ordering::Acquire));
        assert!(slot_b.evicted.load(Ordering::Acquire));
    }
}
