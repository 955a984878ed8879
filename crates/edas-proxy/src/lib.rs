//! The service proxy of the local runtime: what a Kubernetes Service plus a gray-aware ingress
//! do in a cluster, done in-process on 127.0.0.1.
//!
//! One [`ServiceProxy`] listens on one service port and balances over the backends (instances)
//! that its owner hands it with [`ServiceProxy::update`] at any time. HTTP services
//! ([`Protocol::Http`]) are proxied per request, so traffic rules can read headers, cookies and
//! query parameters, and an instance can be drained between requests; plain TCP services
//! ([`Protocol::Tcp`]) are forwarded per connection. [`Protocol::Auto`] decides per connection
//! from the client's first bytes, for ports (like EDAS `ServiceConfigs`) that only say `TCP`;
//! its TCP connections see only the percent rule.
//!
//! # Who gets a request
//!
//! 1. Only *serviceable* backends: `ready`, not `draining`, not drained through
//!    [`ServiceProxy::drain`], and past the lossless delay.
//! 2. With a traffic strategy ([`ServiceProxy::set_traffic`]: a [`TrafficControl`], this crate's
//!    own form of EDAS `TrafficControlStrategy`, which its owner converts): a request
//!    matching every condition of any content rule goes to [`Group::Gray`]; otherwise a percent
//!    rule sends exactly that share of the remaining requests to gray (a Bresenham counter:
//!    20 % is every fifth request, no randomness), the rest to [`Group::Stable`]; no matching rule
//!    means stable. When the wanted group has no serviceable backend, the other group serves
//!    rather than the request failing. Without a strategy every serviceable backend is a
//!    candidate, whatever its group. TCP connections have no content, so only the percent rule
//!    applies to them; setting content rules on a TCP proxy is rejected.
//! 3. Within the candidates, smooth weighted round-robin (nginx's algorithm), the weight being
//!    the warm-up weight below.
//! 4. With empty-push protection (`EnableEmptyPushReject`) and no serviceable backend at all, the
//!    request goes to the last non-empty ready set the proxy was given (minus drained backends
//!    and those still in their lossless delay) instead of failing; without it the proxy answers
//!    503.
//!
//! # The warm-up curve (lossless start)
//!
//! With `LosslessRuleDelayTime` = D, `LosslessRuleWarmupTime` = W and `LosslessRuleFuncType` = n,
//! a backend that became ready at `ready_since` has, `s` later, the weight
//!
//! ```text
//!   s < D:        none (no traffic at all)
//!   t = s - D:    max(min((t / W)^n, 1), 0.01)
//! ```
//!
//! relative to 1 for a warm backend; n = 0 or W = 0 means full weight right after the delay. The
//! floor ([`WARMUP_FLOOR`]) keeps a warming instance from starving entirely. Example, W = 120 s,
//! n = 2 (the defaults), next to one warm instance: after 30 s its weight is 1/16 (≈ 6 % of
//! requests), after 60 s 1/4 (20 %), after 120 s 1 (50 %).
//!
//! # Failures
//!
//! No backend: `503 Service Unavailable` with a plain-text body naming the service port (TCP: the
//! connection is closed). An instance refusing the connection: an idempotent request whose body
//! is empty (GET, HEAD, …) is sent once more to another backend, anything else, or a second
//! failure, answers `502 Bad Gateway` naming the instance and the error. TCP connections try a
//! second instance the same way.
//!
//! # Draining
//!
//! [`ServiceProxy::drain`] stops new requests to an instance at once and returns a future that
//! resolves when its in-flight requests are done (for HTTP, when the last response *body* has
//! been sent; for TCP, when the last forwarded connection closed). The runtime awaits it and then
//! stops the instance. A drain lasts until the runtime removes the address from the set.
//!
//! # Cost
//!
//! The request path takes one short `std::sync::Mutex` (selection is O(backends), no
//! allocation), compiles nothing (regular expressions are built by `set_traffic`), and forwards
//! through one hyper-util pooled client, so upstream connections are kept alive and reused
//! (30 s idle timeout) rather than opened per request. Per request it allocates the upstream URI
//! (and a copy of its path) and, for retryable requests only, a copy of the headers; content
//! rules are evaluated under the lock (a header lookup or a precompiled regex per condition).
//! Bodies stream through without buffering. HTTP/1.1 only; protocol upgrades (WebSocket) are not
//! forwarded (`Upgrade` is a hop-by-hop header and is removed).
//!
//! # Ingress
//!
//! [`IngressProxy`] is the shared ingress listener: host and path routing of HTTP/1.1 requests
//! to upstream addresses (the local runtime's service ports), see the `ingress` module.
//!
//! # Lifecycle
//!
//! [`ServiceProxy::bind`], then [`ServiceProxy::update`] / [`ServiceProxy::set_traffic`] /
//! [`ServiceProxy::drain`] at any time; [`ServiceProxy::shutdown`] stops listening, lets requests
//! in progress finish within a grace period and frees the port for a successor (edasd restarting)
//! at once; dropping the proxy closes everything immediately.

mod accept;
mod balance;
mod http_proxy;
mod inflight;
mod ingress;
mod tcp_proxy;
mod traffic;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use balance::{Backend, Group, WARMUP_FLOOR, WarmUp};
pub use ingress::{IngressProxy, IngressRoute, select as select_ingress_route};
pub use traffic::{
    ConditionOperator, ConditionSource, RequestView, TrafficCondition, TrafficControl, TrafficRule,
};

use balance::Balancer;
use inflight::InFlight;
use traffic::CompiledTraffic;

/// Why a proxy could not be started or configured.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The service port could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The requested address.
        address: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// `TrafficControlStrategy` cannot be honoured as given.
    #[error("TrafficControlStrategy: {0}")]
    InvalidTraffic(String),
    /// Content rules need HTTP; a TCP connection has no headers, cookies or parameters.
    #[error(
        "TrafficControlStrategy: content rules need an HTTP service; port {port} is forwarded as plain TCP"
    )]
    ContentRulesNeedHttp {
        /// The service port.
        port: u16,
    },
}

/// How a service port is proxied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Per HTTP/1.1 request: traffic rules, draining between requests, 503/502 answers.
    Http,
    /// Per TCP connection.
    Tcp,
    /// Per connection: HTTP when the client's first bytes are an HTTP/1 request line, else TCP
    /// (also when the client sends nothing within 300 ms, as server-speaks-first protocols do).
    /// For `ServiceConfigs` ports, whose protocol is only `TCP`.
    Auto,
}

/// The settings of one proxy at start; all but the protocol can be changed later.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProxyConfig {
    /// HTTP or TCP.
    pub protocol: Protocol,
    /// Lossless start, or `None` for full weight as soon as ready.
    pub warmup: Option<WarmUp>,
    /// `EnableEmptyPushReject`.
    pub empty_push_reject: bool,
}

/// Whether `control` can be compiled ([`ServiceProxy::set_traffic`] would accept it on an HTTP or
/// `Auto` port), so a runtime can refuse a release when it is submitted rather than fail later.
pub fn check_traffic(control: &TrafficControl) -> Result<(), ProxyError> {
    CompiledTraffic::compile(control).map(drop)
}

/// Told of every HTTP request the proxy answered: the backend that answered (`None`: no
/// backend, a 503 of the proxy's own), the status, and the time to the response's head. What
/// it does with it (metrics, logs) is its owner's business; it must not block.
pub trait Observer: Send + Sync {
    fn answered(&self, backend: Option<SocketAddr>, status: u16, elapsed: std::time::Duration);
}

/// State shared by the listener task and the owner's handle.
struct Shared {
    listen: SocketAddr,
    balancer: Mutex<Balancer>,
    inflight: Arc<InFlight>,
    observer: std::sync::OnceLock<Arc<dyn Observer>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn balancer(&self) -> MutexGuard<'_, Balancer> {
        self.balancer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Picks a backend and counts the request in flight to it under the same lock, so a
    /// concurrent `drain` either sees the request or keeps it from being sent there.
    fn pick(
        &self,
        request: Option<&RequestView<'_>>,
        exclude: Option<SocketAddr>,
    ) -> Option<(SocketAddr, inflight::Guard)> {
        let mut balancer = self.balancer();
        let address = balancer.pick(request, Instant::now(), exclude)?;
        let guard = self.inflight.enter(address);
        drop(balancer);
        Some((address, guard))
    }
}

/// A proxy listening on one service port. Dropping it stops listening and closes its
/// connections.
#[derive(Debug)]
pub struct ServiceProxy {
    shared: Arc<Shared>,
    protocol: Protocol,
    task: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

impl ServiceProxy {
    /// Listens on `address` (port 0 picks a free port; see [`ServiceProxy::local_addr`]) with no
    /// backends yet. Must be called inside a Tokio runtime.
    pub async fn bind(
        address: SocketAddr,
        config: ProxyConfig,
    ) -> Result<ServiceProxy, ProxyError> {
        let bind_error = |source| ProxyError::Bind { address, source };
        let listener = TcpListener::bind(address).await.map_err(bind_error)?;
        let listen = listener.local_addr().map_err(bind_error)?;
        let shared = Arc::new(Shared {
            listen,
            balancer: Mutex::new(Balancer::new(config.warmup, config.empty_push_reject)),
            inflight: Arc::new(InFlight::default()),
            observer: std::sync::OnceLock::new(),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(accept::serve(
            listener,
            Arc::clone(&shared),
            config.protocol,
            shutdown_rx,
        ));
        tracing::debug!(%listen, ?config, "service proxy listening");
        Ok(ServiceProxy {
            shared,
            protocol: config.protocol,
            task,
            shutdown,
        })
    }

    /// Sets the observer of answered HTTP requests (once; a second call is ignored).
    pub fn set_observer(&self, observer: Arc<dyn Observer>) {
        let _ = self.shared.observer.set(observer);
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.listen
    }

    /// HTTP or TCP.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Replaces the backend set. Backends that stay keep their balancing state; removing one
    /// ends its drain mark (its in-flight requests still finish).
    pub fn update(&self, backends: Vec<Backend>) {
        self.shared.balancer().update(backends);
    }

    /// Sets or clears the gray traffic strategy, rejecting what cannot be honoured (see
    /// [`ProxyError`]); on error the previous strategy stays.
    pub fn set_traffic(&self, control: Option<&TrafficControl>) -> Result<(), ProxyError> {
        let compiled = control.map(CompiledTraffic::compile).transpose()?;
        if self.protocol == Protocol::Tcp
            && compiled.as_ref().is_some_and(|c| c.has_content_rules())
        {
            return Err(ProxyError::ContentRulesNeedHttp {
                port: self.shared.listen.port(),
            });
        }
        self.shared.balancer().set_traffic(compiled.map(Arc::new));
        Ok(())
    }

    /// Whether a traffic strategy is in force.
    pub fn has_traffic_control(&self) -> bool {
        self.shared.balancer().traffic().is_some()
    }

    /// Changes the lossless-start settings (they apply from the next request on).
    pub fn set_warmup(&self, warmup: Option<WarmUp>) {
        self.shared.balancer().set_warmup(warmup);
    }

    /// Turns empty-push protection on or off.
    pub fn set_empty_push_reject(&self, on: bool) {
        self.shared.balancer().set_empty_push_reject(on);
    }

    /// Sends no new request to `address` from now on; the returned future resolves once its
    /// in-flight requests (TCP: connections) are done, so the instance can be stopped. It does
    /// not borrow the proxy.
    pub fn drain(&self, address: SocketAddr) -> impl Future<Output = ()> + Send + use<> {
        self.shared.balancer().drain(address);
        let inflight = Arc::clone(&self.shared.inflight);
        async move { inflight.idle(address).await }
    }

    /// Stops listening at once (the port can be bound again right away), lets requests in
    /// progress finish while HTTP connections close after their current request, and closes
    /// whatever is still open after `grace` (TCP connections, slow requests).
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        if tokio::time::timeout(grace, &mut self.task).await.is_err() {
            tracing::debug!(
                port = self.shared.listen.port(),
                "grace period over; closing connections"
            );
        }
        // `Drop` aborts the task if it is still running.
    }

    /// Requests (TCP: connections) currently in flight to `address`.
    pub fn in_flight(&self, address: SocketAddr) -> usize {
        self.shared.inflight.count(address)
    }
}

impl Drop for ServiceProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
