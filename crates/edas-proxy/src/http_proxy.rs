//! The HTTP/1.1 reverse proxy: one hyper server connection per client connection, one pooled
//! hyper-util client shared by all of them for the upstream side.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Empty, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::Shared;
use crate::inflight::Guard;
use crate::traffic::RequestView;

/// The body sent upstream: the client's, or nothing on a retry.
type UpstreamBody = Either<Incoming, Empty<Bytes>>;
/// The pooled upstream client.
pub(crate) type Upstream = Client<HttpConnector, UpstreamBody>;
/// What the proxy answers: the upstream body (holding its in-flight guard) or a local message.
type ProxyBody = Either<GuardedBody, Full<Bytes>>;

/// How long an idle upstream connection stays pooled.
const POOL_IDLE: Duration = Duration::from_secs(30);
/// How long connecting to an instance may take before it counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) fn upstream_client() -> Upstream {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(connector)
}

/// Serves one client connection as HTTP/1.1 (keep-alive: many requests, each balanced on its
/// own).
/// When `shutdown` changes, the connection closes after the request in progress.
pub(crate) async fn connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    client: Upstream,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| handle(Arc::clone(&shared), client.clone(), request));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "proxy client connection ended with an error");
    }
}

async fn handle(
    shared: Arc<Shared>,
    client: Upstream,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = std::time::Instant::now();
    let (backend, response) = route(&shared, client, request).await;
    if let Some(observer) = shared.observer.get() {
        observer.answered(backend, response.status().as_u16(), started.elapsed());
    }
    Ok(response)
}

/// Sends a request to a backend (a second one if the first refuses and it may be sent again);
/// the backend that answered (none: the proxy answered itself, 503) and the response.
async fn route(
    shared: &Shared,
    client: Upstream,
    request: Request<Incoming>,
) -> (Option<SocketAddr>, Response<ProxyBody>) {
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // A request whose body was never read can be sent again if connecting fails.
    let retryable = is_idempotent(&parts.method) && body.is_end_stream();
    let view = RequestView {
        headers: &parts.headers,
        query: parts.uri.query(),
    };
    let Some((first, guard)) = shared.pick(Some(&view), None) else {
        let response = local(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "edas-proxy: no ready instance behind service port {}\n",
                shared.listen.port()
            ),
        );
        return (None, response);
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let retry_headers = retryable.then(|| parts.headers.clone());

    let outgoing = upstream_request(
        &parts.method,
        first,
        &path,
        parts.headers,
        Either::Left(body),
    );
    let error = match send(&client, outgoing, guard).await {
        Ok(response) => return (Some(first), response),
        Err(error) => error,
    };
    let Some(headers) = retry_headers.filter(|_| error.is_connect()) else {
        return (Some(first), bad_gateway(first, &error));
    };
    let view = RequestView {
        headers: &headers,
        query: parts.uri.query(),
    };
    let Some((second, guard)) = shared.pick(Some(&view), Some(first)) else {
        return (Some(first), bad_gateway(first, &error));
    };
    tracing::debug!(%first, %second, %error, "upstream refused; retrying once");
    let outgoing = upstream_request(
        &parts.method,
        second,
        &path,
        headers,
        Either::Right(Empty::new()),
    );
    match send(&client, outgoing, guard).await {
        Ok(response) => (Some(second), response),
        Err(error) => (Some(second), bad_gateway(second, &error)),
    }
}

async fn send(
    client: &Upstream,
    request: Result<Request<UpstreamBody>, http::Error>,
    guard: Guard,
) -> Result<Response<ProxyBody>, SendError> {
    let request = request.map_err(SendError::Request)?;
    let response = client.request(request).await.map_err(SendError::Upstream)?;
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(
        parts,
        Either::Left(GuardedBody {
            inner: body,
            _guard: guard,
        }),
    ))
}

#[derive(Debug)]
enum SendError {
    Request(http::Error),
    Upstream(hyper_util::client::legacy::Error),
}

impl SendError {
    /// The request never reached the instance, so sending it elsewhere is safe.
    fn is_connect(&self) -> bool {
        matches!(self, SendError::Upstream(e) if e.is_connect())
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Request(e) => write!(f, "invalid upstream request: {e}"),
            SendError::Upstream(e) => {
                write!(f, "{e}")?;
                let mut source = std::error::Error::source(e);
                while let Some(cause) = source {
                    write!(f, ": {cause}")?;
                    source = cause.source();
                }
                Ok(())
            }
        }
    }
}

fn upstream_request(
    method: &Method,
    target: SocketAddr,
    path: &str,
    headers: HeaderMap,
    body: UpstreamBody,
) -> Result<Request<UpstreamBody>, http::Error> {
    let uri: Uri = format!("http://{target}{path}").parse()?;
    let mut request = Request::builder()
        .method(method.clone())
        .uri(uri)
        .body(body)?;
    *request.headers_mut() = headers;
    Ok(request)
}

fn bad_gateway(target: SocketAddr, error: &SendError) -> Response<ProxyBody> {
    local(
        StatusCode::BAD_GATEWAY,
        format!("edas-proxy: instance {target} failed: {error}\n"),
    )
}

fn local(status: StatusCode, message: String) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(message))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Methods that RFC 9110 defines as idempotent.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Removes the headers that describe one connection, not the message (RFC 9110 §7.6.1),
/// including any that `Connection` names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// The upstream response body; the in-flight guard lives until the body is done or dropped, so
/// a drained instance is idle only when its last response has been sent.
#[derive(Debug)]
pub(crate) struct GuardedBody {
    inner: Incoming,
    _guard: Guard,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-gray", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-gray"));
    }

    #[test]
    fn only_idempotent_methods_are_retried() {
        assert!(is_idempotent(&Method::GET));
        assert!(is_idempotent(&Method::PUT));
        assert!(!is_idempotent(&Method::POST));
        assert!(!is_idempotent(&Method::PATCH));
    }
}
