//! The proxy over real loopback sockets, with tiny hyper upstreams that answer their own name.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use edas_proxy::{
    Backend, ConditionOperator, ConditionSource, Group, Protocol, ProxyConfig, ServiceProxy,
    TrafficCondition, TrafficControl, TrafficRule, WarmUp,
};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Every test finishes within this, or fails.
const TEST_LIMIT: Duration = Duration::from_secs(30);

async fn bounded<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("the test took too long");
}

/// An HTTP instance answering its name; `/slow` answers after 600 ms.
struct Upstream {
    address: SocketAddr,
    name: &'static str,
    task: JoinHandle<()>,
    /// Stops the server: its listener closed and every connection ended (see `stop`).
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Upstream {
    async fn start(name: &'static str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => accepted.unwrap().0,
                    _ = &mut stopped => {
                        // Every connection's task ended (not just told to), the listener
                        // closed: nothing of this server answers once `stop` returns.
                        connections.shutdown().await;
                        return;
                    }
                };
                connections.spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| async move {
                        if request.uri().path() == "/slow" {
                            tokio::time::sleep(Duration::from_millis(600)).await;
                        }
                        let _ = request.into_body().collect().await;
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(name))))
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream {
            address,
            name,
            task,
            stop: Some(stop),
        }
    }

    fn backend(&self, group: Group) -> Backend {
        Backend {
            address: self.address,
            group,
            ready: true,
            ready_since: Instant::now() - Duration::from_secs(3600),
            draining: false,
        }
    }

    /// Stops the server and waits until it is gone (aborting its task returned before its
    /// connections had ended: a pooled connection could still answer the next request).
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn http_proxy(warmup: Option<WarmUp>, empty_push_reject: bool) -> ServiceProxy {
    ServiceProxy::bind(
        "127.0.0.1:0".parse().unwrap(),
        ProxyConfig {
            protocol: Protocol::Http,
            warmup,
            empty_push_reject,
        },
    )
    .await
    .unwrap()
}

type TestClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

async fn send(
    client: &TestClient,
    proxy: &ServiceProxy,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(StatusCode, String), String> {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", proxy.local_addr()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::new())).unwrap();
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

async fn get(client: &TestClient, proxy: &ServiceProxy, headers: &[(&str, &str)]) -> String {
    let (status, body) = send(client, proxy, Method::GET, "/", headers)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn tally(client: &TestClient, proxy: &ServiceProxy, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        *counts.entry(get(client, proxy, &[]).await).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_ready_backends_get_requests_and_none_is_a_clear_503() {
    bounded(async {
        let a = Upstream::start("a").await;
        let b = Upstream::start("b").await;
        let proxy = http_proxy(None, false).await;
        let client = client();

        let (status, body) = send(&client, &proxy, Method::GET, "/", &[]).await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("no ready instance"), "{body}");

        let mut unready = b.backend(Group::Stable);
        unready.ready = false;
        proxy.update(vec![a.backend(Group::Stable), unready.clone()]);
        assert_eq!(
            tally(&client, &proxy, 20).await,
            HashMap::from([("a".into(), 20)])
        );

        unready.ready = true;
        proxy.update(vec![a.backend(Group::Stable), unready]);
        let counts = tally(&client, &proxy, 20).await;
        assert_eq!(counts.get("a"), Some(&10));
        assert_eq!(counts.get("b"), Some(&10));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_lets_in_flight_requests_finish_and_reports_idle() {
    bounded(async {
        let a = Upstream::start("a").await;
        let b = Upstream::start("b").await;
        let proxy = Arc::new(http_proxy(None, false).await);
        let client = client();
        proxy.update(vec![a.backend(Group::Stable)]);

        let slow = tokio::spawn({
            let proxy = Arc::clone(&proxy);
            let client = client.clone();
            async move { send(&client, &proxy, Method::GET, "/slow", &[]).await }
        });
        while proxy.in_flight(a.address) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        proxy.update(vec![a.backend(Group::Stable), b.backend(Group::Stable)]);
        let drained = tokio::spawn(proxy.drain(a.address));

        assert_eq!(
            tally(&client, &proxy, 10).await,
            HashMap::from([("b".into(), 10)])
        );
        assert!(
            !drained.is_finished(),
            "idle reported while a request is in flight"
        );

        let (status, body) = slow.await.unwrap().unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "a"));
        tokio::time::timeout(Duration::from_secs(2), drained)
            .await
            .expect("idle notification")
            .unwrap();
        assert_eq!(proxy.in_flight(a.address), 0);
        // Still drained while the runtime has not removed it.
        assert_eq!(
            tally(&client, &proxy, 4).await,
            HashMap::from([("b".into(), 4)])
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_percent_rule_sends_a_fifth_to_gray() {
    bounded(async {
        let stable1 = Upstream::start("stable1").await;
        let stable2 = Upstream::start("stable2").await;
        let gray = Upstream::start("gray").await;
        let proxy = http_proxy(None, false).await;
        let client = client();
        proxy.update(vec![
            stable1.backend(Group::Stable),
            stable2.backend(Group::Stable),
            gray.backend(Group::Gray),
        ]);
        proxy
            .set_traffic(Some(&TrafficControl {
                rules: vec![TrafficRule::Percent { percent: 20 }],
            }))
            .unwrap();
        let counts = tally(&client, &proxy, 1000).await;
        let share = counts.get("gray").copied().unwrap_or(0) as f64 / 1000.0;
        assert!(
            (0.15..=0.25).contains(&share),
            "gray share {share}: {counts:?}"
        );
        assert_eq!(counts.values().sum::<usize>(), 1000);

        // Without a strategy every ready backend shares, whatever its group.
        proxy.set_traffic(None).unwrap();
        let counts = tally(&client, &proxy, 30).await;
        assert_eq!(counts.get("gray"), Some(&10), "{counts:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_cookie_and_param_rules_route_to_gray() {
    bounded(async {
        let stable = Upstream::start("stable").await;
        let gray = Upstream::start("gray").await;
        let proxy = http_proxy(None, false).await;
        let client = client();
        proxy.update(vec![
            stable.backend(Group::Stable),
            gray.backend(Group::Gray),
        ]);
        let condition = |source, name: &str, operator, value: &str| TrafficCondition {
            source,
            name: name.into(),
            operator,
            value: value.into(),
        };
        proxy
            .set_traffic(Some(&TrafficControl {
                rules: vec![
                    TrafficRule::Content {
                        conditions: vec![condition(
                            ConditionSource::Header,
                            "x-gray",
                            ConditionOperator::Equal,
                            "1",
                        )],
                    },
                    TrafficRule::Content {
                        conditions: vec![
                            condition(
                                ConditionSource::Cookie,
                                "user",
                                ConditionOperator::Regex,
                                "tester-[0-9]+",
                            ),
                            condition(
                                ConditionSource::Param,
                                "beta",
                                ConditionOperator::Equal,
                                "on",
                            ),
                        ],
                    },
                ],
            }))
            .unwrap();

        for _ in 0..5 {
            assert_eq!(get(&client, &proxy, &[]).await, "stable");
            assert_eq!(get(&client, &proxy, &[("X-Gray", "1")]).await, "gray");
            assert_eq!(get(&client, &proxy, &[("x-gray", "2")]).await, "stable");
        }
        let cookie = [("cookie", "theme=dark; user=tester-7")];
        let (_, body) = send(&client, &proxy, Method::GET, "/p?beta=on", &cookie)
            .await
            .unwrap();
        assert_eq!(body, "gray");
        // Both conditions of the second rule must match.
        let (_, body) = send(&client, &proxy, Method::GET, "/p?beta=off", &cookie)
            .await
            .unwrap();
        assert_eq!(body, "stable");
        let other = [("cookie", "user=tester-x")];
        let (_, body) = send(&client, &proxy, Method::GET, "/p?beta=on", &other)
            .await
            .unwrap();
        assert_eq!(body, "stable");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_backends_share_grows_along_the_warmup_curve() {
    bounded(async {
        let old = Upstream::start("old").await;
        let new = Upstream::start("new").await;
        let warmup = WarmUp {
            delay: Duration::ZERO,
            warmup: Duration::from_secs(2),
            exponent: 2,
        };
        let proxy = http_proxy(Some(warmup), false).await;
        let client = client();
        let start = Instant::now();
        let mut fresh = new.backend(Group::Stable);
        fresh.ready_since = start;
        proxy.update(vec![old.backend(Group::Stable), fresh]);

        // Four windows of 0.6 s; expected shares ≈ 3 %, 17 %, 35 %, 48 %.
        let window = Duration::from_millis(600);
        let mut totals = [0usize; 4];
        let mut news = [0usize; 4];
        loop {
            let at = start.elapsed();
            let index = (at.as_millis() / window.as_millis()) as usize;
            if index >= 4 {
                break;
            }
            totals[index] += 1;
            if get(&client, &proxy, &[]).await == "new" {
                news[index] += 1;
            }
        }
        let shares: Vec<f64> = news
            .iter()
            .zip(totals)
            .map(|(n, t)| *n as f64 / t.max(1) as f64)
            .collect();
        assert!(
            totals.iter().all(|t| *t >= 20),
            "too few samples: {totals:?}"
        );
        assert!(shares[0] < 0.10, "{shares:?}");
        assert!(shares[0] < shares[1] && shares[1] < shares[2], "{shares:?}");
        assert!(shares[3] > 0.38, "{shares:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lossless_delay_keeps_a_new_backend_out() {
    bounded(async {
        let old = Upstream::start("old").await;
        let new = Upstream::start("new").await;
        let warmup = WarmUp {
            delay: Duration::from_millis(500),
            warmup: Duration::ZERO,
            exponent: 2,
        };
        let proxy = http_proxy(Some(warmup), false).await;
        let client = client();
        let mut fresh = new.backend(Group::Stable);
        fresh.ready_since = Instant::now();
        proxy.update(vec![old.backend(Group::Stable), fresh]);
        assert_eq!(
            tally(&client, &proxy, 10).await,
            HashMap::from([("old".into(), 10)])
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(tally(&client, &proxy, 10).await.get("new"), Some(&5));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_push_protection_keeps_serving_the_last_known_backends() {
    bounded(async {
        let a = Upstream::start("a").await;
        let client = client();

        let protected = http_proxy(None, true).await;
        protected.update(vec![a.backend(Group::Stable)]);
        protected.update(vec![]);
        assert_eq!(get(&client, &protected, &[]).await, "a");

        let unprotected = http_proxy(None, false).await;
        unprotected.update(vec![a.backend(Group::Stable)]);
        unprotected.update(vec![]);
        let (status, _) = send(&client, &unprotected, Method::GET, "/", &[])
            .await
            .unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried_once_for_idempotent_requests_else_502() {
    bounded(async {
        let a = Upstream::start("a").await;
        let dead = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let proxy = http_proxy(None, false).await;
        let client = client();
        let mut down = a.backend(Group::Stable);
        down.address = dead;
        proxy.update(vec![a.backend(Group::Stable), down]);

        for _ in 0..10 {
            assert_eq!(get(&client, &proxy, &[]).await, "a");
        }
        let mut bad_gateways = 0;
        for _ in 0..10 {
            let (status, body) = send(&client, &proxy, Method::POST, "/", &[]).await.unwrap();
            match status {
                StatusCode::OK => assert_eq!(body, "a"),
                StatusCode::BAD_GATEWAY => {
                    assert!(body.contains(&dead.to_string()), "{body}");
                    bad_gateways += 1;
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert!(
            bad_gateways > 0,
            "a POST to the dead instance must not be retried"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_is_forwarded_to_ready_backends_only() {
    bounded(async {
        // Echo servers that prefix their name.
        async fn echo(name: &'static str) -> (SocketAddr, JoinHandle<()>) {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let task = tokio::spawn(async move {
                loop {
                    let (mut stream, _) = listener.accept().await.unwrap();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 64];
                        let n = stream.read(&mut buf).await.unwrap_or(0);
                        let _ = stream.write_all(name.as_bytes()).await;
                        let _ = stream.write_all(&buf[..n]).await;
                    });
                }
            });
            (address, task)
        }
        let (one, one_task) = echo("one:").await;
        let (two, two_task) = echo("two:").await;
        let proxy = ServiceProxy::bind(
            "127.0.0.1:0".parse().unwrap(),
            ProxyConfig {
                protocol: Protocol::Tcp,
                warmup: None,
                empty_push_reject: false,
            },
        )
        .await
        .unwrap();
        let backend = |address, ready| Backend {
            address,
            group: Group::Stable,
            ready,
            ready_since: Instant::now(),
            draining: false,
        };
        proxy.update(vec![backend(one, true), backend(two, false)]);
        for _ in 0..5 {
            let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
            stream.write_all(b"ping").await.unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).await.unwrap();
            assert_eq!(reply, "one:ping");
        }
        // Content rules cannot be honoured on TCP: rejected, naming why.
        let error = proxy
            .set_traffic(Some(&TrafficControl {
                rules: vec![TrafficRule::Content {
                    conditions: vec![TrafficCondition {
                        source: ConditionSource::Header,
                        name: "x".into(),
                        operator: ConditionOperator::Equal,
                        value: "1".into(),
                    }],
                }],
            }))
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("content rules need an HTTP service")
        );
        // No backend: the connection is closed.
        proxy.update(vec![]);
        let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply).await;
        assert!(reply.is_empty());
        one_task.abort();
        two_task.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_under_continuous_load_fails_no_request() {
    bounded(async {
        let mut old = [Upstream::start("old1").await, Upstream::start("old2").await];
        let new = [Upstream::start("new1").await, Upstream::start("new2").await];
        let proxy = Arc::new(http_proxy(None, false).await);
        proxy.update(old.iter().map(|u| u.backend(Group::Stable)).collect());

        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let failures = Arc::new(AtomicUsize::new(0));
        let mut clients = JoinSet::new();
        for worker in 0..4 {
            let (proxy, stop, failures) =
                (Arc::clone(&proxy), Arc::clone(&stop), Arc::clone(&failures));
            clients.spawn(async move {
                let client = client();
                let mut last = Vec::new();
                let mut sent = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    // Mix in non-idempotent requests and slow ones, which are never retried.
                    let (method, path) = match sent % 5 {
                        0 => (Method::POST, "/"),
                        1 if worker == 0 => (Method::GET, "/slow"),
                        _ => (Method::GET, "/"),
                    };
                    match send(&client, &proxy, method, path, &[]).await {
                        Ok((StatusCode::OK, body)) => last.push(body),
                        other => {
                            eprintln!("failed request: {other:?}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    sent += 1;
                }
                (sent, last.split_off(last.len().saturating_sub(5)))
            });
        }

        tokio::time::sleep(Duration::from_millis(300)).await;
        // The release: new instances ready, old ones drained, stopped, removed.
        let mut all: Vec<Backend> = old.iter().map(|u| u.backend(Group::Stable)).collect();
        all.extend(new.iter().map(|u| u.backend(Group::Stable)));
        proxy.update(all);
        tokio::time::sleep(Duration::from_millis(200)).await;
        for upstream in &mut old {
            tokio::time::timeout(Duration::from_secs(5), proxy.drain(upstream.address))
                .await
                .expect("old instance drained");
            upstream.stop().await;
        }
        proxy.update(new.iter().map(|u| u.backend(Group::Stable)).collect());
        tokio::time::sleep(Duration::from_millis(700)).await;
        stop.store(true, Ordering::Relaxed);

        let mut total = 0;
        while let Some(result) = clients.join_next().await {
            let (sent, last) = result.unwrap();
            total += sent;
            for body in last {
                assert!(
                    body.starts_with("new"),
                    "answered by {body} after the switchover"
                );
            }
        }
        assert!(total > 100, "too little load: {total}");
        assert_eq!(failures.load(Ordering::Relaxed), 0, "of {total} requests");
        assert!(old.iter().all(|u| !u.name.is_empty()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_ports_proxy_http_per_request_and_everything_else_as_tcp() {
    bounded(async {
        let auto = || async {
            ServiceProxy::bind(
                "127.0.0.1:0".parse().unwrap(),
                ProxyConfig {
                    protocol: Protocol::Auto,
                    warmup: None,
                    empty_push_reject: false,
                },
            )
            .await
            .unwrap()
        };
        // HTTP: content rules apply, so it is proxied per request.
        let stable = Upstream::start("stable").await;
        let gray = Upstream::start("gray").await;
        let proxy = auto().await;
        proxy.update(vec![
            stable.backend(Group::Stable),
            gray.backend(Group::Gray),
        ]);
        proxy
            .set_traffic(Some(&TrafficControl {
                rules: vec![TrafficRule::Content {
                    conditions: vec![TrafficCondition {
                        source: ConditionSource::Header,
                        name: "x-gray".into(),
                        operator: ConditionOperator::Equal,
                        value: "1".into(),
                    }],
                }],
            }))
            .unwrap();
        let client = client();
        for _ in 0..3 {
            assert_eq!(get(&client, &proxy, &[("x-gray", "1")]).await, "gray");
            assert_eq!(get(&client, &proxy, &[]).await, "stable");
        }

        // A server-speaks-first protocol: the client sends nothing, the greeting still arrives.
        let greeter = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let greeter_address = greeter.local_addr().unwrap();
        let greeter_task = tokio::spawn(async move {
            loop {
                let (mut stream, _) = greeter.accept().await.unwrap();
                let _ = stream.write_all(b"220 hello\r\n").await;
            }
        });
        let proxy = auto().await;
        proxy.update(vec![Backend {
            address: greeter_address,
            group: Group::Stable,
            ready: true,
            ready_since: Instant::now(),
            draining: false,
        }]);
        let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
        let mut greeting = String::new();
        stream.read_to_string(&mut greeting).await.unwrap();
        assert_eq!(greeting, "220 hello\r\n");
        greeter_task.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_progress_and_frees_the_port() {
    bounded(async {
        let a = Upstream::start("a").await;
        let proxy = http_proxy(None, false).await;
        let address = proxy.local_addr();
        proxy.update(vec![a.backend(Group::Stable)]);
        let client = client();
        // A kept-alive connection that is idle at shutdown must not hold it up.
        assert_eq!(get(&client, &proxy, &[]).await, "a");

        let slow = tokio::spawn({
            let client = client.clone();
            async move {
                let request = Request::get(format!("http://{address}/slow"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let response = client.request(request).await.map_err(|e| e.to_string())?;
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((status, body.to_bytes()))
            }
        });
        while proxy.in_flight(a.address) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = Instant::now();
        proxy.shutdown(Duration::from_secs(5)).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "shutdown waited for the grace period"
        );
        let (status, body) = slow.await.unwrap().unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"a"[..]));

        // Nobody listens any more, and a new proxy can take the port at once.
        assert!(TcpStream::connect(address).await.is_err());
        let again = ServiceProxy::bind(
            address,
            ProxyConfig {
                protocol: Protocol::Http,
                warmup: None,
                empty_push_reject: false,
            },
        )
        .await
        .unwrap();
        again.update(vec![a.backend(Group::Stable)]);
        assert_eq!(get(&client, &again, &[]).await, "a");
    })
    .await;
}

/// Records what the proxy tells its observer.
#[derive(Default)]
struct Seen(std::sync::Mutex<Vec<(Option<SocketAddr>, u16)>>);

impl edas_proxy::Observer for Seen {
    fn answered(&self, backend: Option<SocketAddr>, status: u16, elapsed: Duration) {
        assert!(elapsed < TEST_LIMIT);
        self.0.lock().unwrap().push((backend, status));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observer_hears_every_answer_with_its_backend() {
    bounded(async {
        let mut a = Upstream::start("a").await;
        let proxy = http_proxy(None, false).await;
        let seen = std::sync::Arc::new(Seen::default());
        proxy.set_observer(seen.clone());
        let client = client();
        let (status, _) = send(&client, &proxy, Method::GET, "/", &[]).await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        proxy.update(vec![a.backend(Group::Stable)]);
        get(&client, &proxy, &[]).await;
        a.stop().await;
        let (status, _) = send(&client, &proxy, Method::POST, "/", &[]).await.unwrap();
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(
            *seen.0.lock().unwrap(),
            [(None, 503), (Some(a.address), 200), (Some(a.address), 502)]
        );
    })
    .await;
}
