//! The shared ingress listener: what an Ingress controller does in a cluster, done in-process.
//! One [`IngressProxy`] listens on one address and routes each HTTP/1.1 request by its `Host`
//! and path to an upstream address its owner gives it ([`IngressProxy::set_routes`]); the local
//! runtime points each route at an application's service port, whose [`crate::ServiceProxy`]
//! then balances it (gray splits, lossless start and draining included).
//!
//! # Which route
//!
//! [`select`], a pure function: the routes of the request's host are tried first (the `Host`
//! header without its port, any case), then those of a matching wildcard (`*.example.com`
//! matches `a.example.com`, neither `example.com` nor `a.b.example.com`), then those of no host
//! (every host). Within the first of these classes that has a match, an exact path wins, then
//! the longest prefix, matched element by element as Kubernetes' `Prefix` (`/api` matches `/api`
//! and `/api/v1`, not `/apis`; a trailing `/` is ignored). No match answers `404`; an upstream
//! that refuses the connection (nothing listens on the service port) `503`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::ProxyError;
use crate::http_proxy::{Upstream, strip_hop_by_hop, upstream_client};

/// One route: requests for `host` (empty: any host; `*.` first: a wildcard) whose path is
/// `path` (`exact`) or starts with it element-wise go to `upstream`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressRoute {
    pub host: String,
    pub path: String,
    pub exact: bool,
    pub upstream: SocketAddr,
}

type Body = Either<Incoming, Full<Bytes>>;

/// Whether `path` matches route path `prefix` element by element.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// How well `route_host` matches `host`: 2 exactly, 1 as a wildcard, 0 as any host.
fn host_rank(route_host: &str, host: &str) -> Option<u8> {
    if route_host.is_empty() {
        return Some(0);
    }
    if route_host.eq_ignore_ascii_case(host) {
        return Some(2);
    }
    let suffix = route_host.strip_prefix('*')?;
    let head = host
        .len()
        .checked_sub(suffix.len())
        .and_then(|n| host.get(..n))?;
    let tail = &host[head.len()..];
    (tail.eq_ignore_ascii_case(suffix) && !head.is_empty() && !head.contains('.')).then_some(1)
}

/// The route a request for `host` (without its port) and `path` takes (see the module).
pub fn select<'a>(routes: &'a [IngressRoute], host: &str, path: &str) -> Option<&'a IngressRoute> {
    let mut best: Option<(u8, bool, usize, &IngressRoute)> = None;
    for route in routes {
        let Some(rank) = host_rank(&route.host, host) else {
            continue;
        };
        let matched = if route.exact {
            route.path == path
        } else {
            prefix_matches(&route.path, path)
        };
        if !matched {
            continue;
        }
        let candidate = (
            rank,
            route.exact,
            route.path.trim_end_matches('/').len(),
            route,
        );
        if best.is_none_or(|(r, e, l, _)| (candidate.0, candidate.1, candidate.2) > (r, e, l)) {
            best = Some(candidate);
        }
    }
    best.map(|(.., route)| route)
}

struct Shared {
    routes: RwLock<Arc<Vec<IngressRoute>>>,
}

/// The ingress listener. Dropping it stops listening and closes its connections.
pub struct IngressProxy {
    shared: Arc<Shared>,
    listen: SocketAddr,
    task: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for IngressProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressProxy")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl IngressProxy {
    /// Listens on `address` with no routes (every request answers 404 until
    /// [`IngressProxy::set_routes`]). Must be called inside a Tokio runtime.
    pub async fn bind(address: SocketAddr) -> Result<IngressProxy, ProxyError> {
        let bind_error = |source| ProxyError::Bind { address, source };
        let listener = TcpListener::bind(address).await.map_err(bind_error)?;
        Self::serve_on(listener).map_err(bind_error)
    }

    /// Listens on `listener`, bound already (so a caller that is not async can bind it and
    /// report a taken address at once). Must be called inside a Tokio runtime.
    pub fn from_std(listener: std::net::TcpListener) -> std::io::Result<IngressProxy> {
        listener.set_nonblocking(true)?;
        Self::serve_on(TcpListener::from_std(listener)?)
    }

    fn serve_on(listener: TcpListener) -> std::io::Result<IngressProxy> {
        let listen = listener.local_addr()?;
        let shared = Arc::new(Shared {
            routes: RwLock::new(Arc::new(Vec::new())),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, Arc::clone(&shared), shutdown_rx));
        tracing::info!(%listen, "ingress listener listening");
        Ok(IngressProxy {
            shared,
            listen,
            task,
            shutdown,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Replaces the whole route table (requests in flight keep the table they started with).
    pub fn set_routes(&self, routes: Vec<IngressRoute>) {
        *self
            .shared
            .routes
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(routes);
    }

    /// Stops listening at once, lets requests in progress finish within `grace`.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(grace, &mut self.task).await;
    }
}

impl Drop for IngressProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let client = upstream_client();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (shared, client, mut shutdown) =
                        (Arc::clone(&shared), client.clone(), shutdown.clone());
                    connections.spawn(async move {
                        let _ = stream.set_nodelay(true);
                        let service = service_fn(move |request| {
                            handle(Arc::clone(&shared), client.clone(), peer, request)
                        });
                        let connection = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service);
                        tokio::pin!(connection);
                        let result = tokio::select! {
                            result = connection.as_mut() => result,
                            _ = shutdown.changed() => {
                                connection.as_mut().graceful_shutdown();
                                connection.await
                            }
                        };
                        if let Err(error) = result {
                            tracing::debug!(%error, "ingress client connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "ingress accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

fn local(status: StatusCode, message: String) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(message))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The request's host without its port, lowercased: the `Host` header, else the URI's.
fn request_host(request: &Request<Incoming>) -> String {
    let raw = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .unwrap_or_default();
    // `[v6]:port`, `name:port`, `name`.
    let host = match raw.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => raw,
    };
    host.to_ascii_lowercase()
}

async fn handle(
    shared: Arc<Shared>,
    client: Upstream,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let host = request_host(&request);
    let routes = Arc::clone(&shared.routes.read().unwrap_or_else(PoisonError::into_inner));
    let Some(route) = select(&routes, &host, request.uri().path()) else {
        return Ok(local(
            StatusCode::NOT_FOUND,
            format!(
                "edas-proxy ingress: no rule routes host `{host}` path `{}`\n",
                request.uri().path()
            ),
        ));
    };
    let upstream = route.upstream;
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let forwarded = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(earlier) => format!("{earlier}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded) {
        parts.headers.insert("x-forwarded-for", value);
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let outgoing = format!("http://{upstream}{path}")
        .parse::<http::Uri>()
        .map_err(http::Error::from)
        .and_then(|uri| {
            let mut request = Request::builder()
                .method(parts.method.clone())
                .uri(uri)
                .body(Either::Left(body))?;
            *request.headers_mut() = parts.headers;
            Ok(request)
        });
    let outgoing = match outgoing {
        Ok(r) => r,
        Err(e) => {
            return Ok(local(
                StatusCode::BAD_REQUEST,
                format!("edas-proxy ingress: {e}\n"),
            ));
        }
    };
    Ok(match client.request(outgoing).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Either::Left(body))
        }
        Err(e) if e.is_connect() => local(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("edas-proxy ingress: nothing serves {upstream} (the backend Service)\n"),
        ),
        Err(e) => local(
            StatusCode::BAD_GATEWAY,
            format!("edas-proxy ingress: {upstream} failed: {e}\n"),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: &str, path: &str, exact: bool, port: u16) -> IngressRoute {
        IngressRoute {
            host: host.into(),
            path: path.into(),
            exact,
            upstream: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn port(routes: &[IngressRoute], host: &str, path: &str) -> Option<u16> {
        select(routes, host, path).map(|r| r.upstream.port())
    }

    #[test]
    fn the_longest_prefix_of_the_most_specific_host_wins() {
        let routes = [
            route("a.example.com", "/", false, 1),
            route("a.example.com", "/api", false, 2),
            route("a.example.com", "/api/v2/", false, 3),
            route("a.example.com", "/api/health", true, 4),
            route("*.example.com", "/", false, 5),
            route("", "/other", false, 6),
        ];
        assert_eq!(port(&routes, "a.example.com", "/"), Some(1));
        assert_eq!(
            port(&routes, "a.example.com", "/apis"),
            Some(1),
            "element-wise"
        );
        assert_eq!(port(&routes, "a.example.com", "/api"), Some(2));
        assert_eq!(port(&routes, "a.example.com", "/api/v1/x"), Some(2));
        assert_eq!(port(&routes, "a.example.com", "/api/v2"), Some(3));
        assert_eq!(port(&routes, "a.example.com", "/api/health"), Some(4));
        assert_eq!(port(&routes, "a.example.com", "/api/health/x"), Some(2));
        assert_eq!(port(&routes, "b.example.com", "/x"), Some(5), "wildcard");
        assert_eq!(
            port(&routes, "x.b.example.com", "/other"),
            Some(6),
            "one label only"
        );
        assert_eq!(port(&routes, "example.com", "/other"), Some(6));
        assert_eq!(port(&routes, "example.com", "/"), None);
        assert_eq!(port(&[], "a", "/"), None);
    }

    #[test]
    fn hosts_match_in_any_case() {
        let routes = [route("a.example.com", "/", false, 1)];
        assert_eq!(port(&routes, "A.Example.COM", "/"), Some(1));
    }

    #[tokio::test]
    async fn requests_are_routed_and_unmatched_ones_answer_404() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A backend that answers its own port.
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend_addr = backend.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = backend.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]).to_string();
                    let host_seen = request
                        .lines()
                        .find(|l| l.to_ascii_lowercase().starts_with("host:"))
                        .unwrap_or_default()
                        .to_owned();
                    let body = format!("backend {host_seen}");
                    let _ = s
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            )
                            .as_bytes(),
                        )
                        .await;
                });
            }
        });
        let proxy = IngressProxy::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        proxy.set_routes(vec![IngressRoute {
            host: "shop.test".into(),
            path: "/".into(),
            exact: false,
            upstream: backend_addr,
        }]);
        let get = |host: &'static str| {
            let addr = proxy.local_addr();
            async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.write_all(
                    format!("GET /x HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).await.unwrap();
                out
            }
        };
        let ok = get("shop.test:8080").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(
            ok.contains("backend host: shop.test:8080"),
            "the Host header is kept: {ok}"
        );
        let missing = get("other.test").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        // A route to a port nothing listens on.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        proxy.set_routes(vec![IngressRoute {
            host: String::new(),
            path: "/".into(),
            exact: false,
            upstream: closed_addr,
        }]);
        let down = get("any.test").await;
        assert!(down.starts_with("HTTP/1.1 503"), "{down}");
    }
}
