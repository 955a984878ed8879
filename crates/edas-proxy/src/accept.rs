//! The listener loop: accepts client connections and serves each as HTTP or TCP, deciding per
//! connection for [`Protocol::Auto`].

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::{Protocol, Shared, http_proxy, tcp_proxy};

/// How long an `Auto` port waits for the client's first bytes before treating the connection
/// as a server-speaks-first TCP protocol (MySQL, SMTP, …).
pub(crate) const SNIFF_TIMEOUT: Duration = Duration::from_millis(300);

/// Request-line starts of the HTTP/1.1 methods (RFC 9110 §9 and PATCH).
const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"CONNECT ",
];

/// Accepts client connections until the task is aborted (which also closes them) or `shutdown`
/// changes: then it stops listening, asks HTTP connections to close after their current request,
/// and returns once every connection has ended.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    protocol: Protocol,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = http_proxy::upstream_client();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let shared = Arc::clone(&shared);
                    let client = client.clone();
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        let http = match protocol {
                            Protocol::Http => true,
                            Protocol::Tcp => false,
                            Protocol::Auto => looks_like_http(&stream).await,
                        };
                        if http {
                            http_proxy::connection(stream, shared, client, shutdown).await;
                        } else {
                            tcp_proxy::forward(stream, shared).await;
                        }
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Whether the client's first bytes (peeked, not consumed) start an HTTP/1 request line.
async fn looks_like_http(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 8];
    let sniff = async {
        loop {
            let n = match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            match classify(&buf[..n]) {
                Some(decided) => return decided,
                // A partial method name: wait for the rest of it.
                None => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    };
    tokio::time::timeout(SNIFF_TIMEOUT, sniff)
        .await
        .unwrap_or(false)
}

/// `Some(true)` for an HTTP method and a space, `Some(false)` when no method can start with
/// `bytes`, `None` when too few bytes arrived to tell.
fn classify(bytes: &[u8]) -> Option<bool> {
    let mut possible = false;
    for method in HTTP_METHODS {
        if bytes.starts_with(method) {
            return Some(true);
        }
        if method.starts_with(bytes) {
            possible = true;
        }
    }
    if possible { None } else { Some(false) }
}

#[cfg(test)]
mod tests {
    use super::classify;

    #[test]
    fn http_request_lines_are_recognised() {
        assert_eq!(classify(b"GET / HT"), Some(true));
        assert_eq!(classify(b"OPTIONS "), Some(true));
        assert_eq!(classify(b"DELE"), None);
        assert_eq!(classify(b"GETX"), Some(false));
        assert_eq!(classify(b"\x16\x03\x01\x02"), Some(false)); // a TLS ClientHello
        assert_eq!(classify(b"ping"), Some(false));
    }
}
