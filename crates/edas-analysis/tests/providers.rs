//! The providers against real HTTP servers on 127.0.0.1: a webhook receiver that answers pass,
//! fail, slowly and not at all, and a Prometheus-shaped server for every kind of answer (the
//! real Prometheus is in `prometheus.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use edas_analysis::{Observation, Providers, Sample, WebhookContext};
use serde_json::{Value, json};
use tokio::sync::Mutex;

#[derive(Default)]
struct Seen {
    calls: AtomicU32,
    bodies: Mutex<Vec<Value>>,
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

async fn record(seen: &Seen, body: Value) {
    seen.calls.fetch_add(1, Ordering::SeqCst);
    seen.bodies.lock().await.push(body);
}

async fn receiver() -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let router = Router::new()
        .route(
            "/pass",
            post(
                |State(s): State<Arc<Seen>>, Json(b): Json<Value>| async move {
                    record(&s, b).await;
                    Json(json!({"result": true}))
                },
            ),
        )
        .route(
            "/value",
            post(
                |State(s): State<Arc<Seen>>, Json(b): Json<Value>| async move {
                    record(&s, b).await;
                    Json(json!({"result": 0.3, "note": "ignored"}))
                },
            ),
        )
        .route(
            "/status-only",
            post(
                |State(s): State<Arc<Seen>>, Json(b): Json<Value>| async move {
                    record(&s, b).await;
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/fail",
            post(
                |State(s): State<Arc<Seen>>, Json(b): Json<Value>| async move {
                    record(&s, b).await;
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the new version looks bad",
                    )
                },
            ),
        )
        .route(
            "/fail-with-result",
            post(
                |State(s): State<Arc<Seen>>, Json(b): Json<Value>| async move {
                    record(&s, b).await;
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        Json(json!({"result": false})),
                    )
                },
            ),
        )
        .route(
            "/garbage",
            post(
                |State(s): State<Arc<Seen>>, Json(b): Json<Value>| async move {
                    record(&s, b).await;
                    Json(json!({"result": "yes"}))
                },
            ),
        )
        .route(
            "/slow",
            post(
                |State(s): State<Arc<Seen>>, Json(b): Json<Value>| async move {
                    record(&s, b).await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Json(json!({"result": true}))
                },
            ),
        )
        .route(
            "/slow-once",
            post(
                |State(s): State<Arc<Seen>>, Json(b): Json<Value>| async move {
                    let first = s.calls.load(Ordering::SeqCst) == 0;
                    record(&s, b).await;
                    if first {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    Json(json!({"result": 7}))
                },
            ),
        )
        .with_state(seen.clone());
    (serve(router).await, seen)
}

fn context() -> WebhookContext {
    WebhookContext {
        change_order_id: "co-1".into(),
        app_id: "app-1".into(),
        app_name: "shop".into(),
        revision: "v2".into(),
        stable_revision: Some("v1".into()),
        batch: Some(1),
        check: "hook".into(),
        phase: "gray".into(),
    }
}

fn providers() -> Providers {
    Providers::new(None, Duration::from_secs(2)).unwrap()
}

const T: Duration = Duration::from_millis(300);

#[tokio::test]
async fn webhook_verdicts_pass_fail_and_values() {
    let (addr, seen) = receiver().await;
    let p = providers();
    let url = |path: &str| format!("http://{addr}{path}?token=s3cret");
    let ctx = context();
    assert_eq!(
        p.webhook(&url("/pass"), T, 0, &ctx).await,
        Observation::Value(Sample::value(1.0))
    );
    assert_eq!(
        p.webhook(&url("/value"), T, 0, &ctx).await,
        Observation::Value(Sample::value(0.3))
    );
    assert_eq!(
        p.webhook(&url("/status-only"), T, 0, &ctx).await,
        Observation::Value(Sample::value(1.0)),
        "Flagger's contract: a 2xx without a body passes"
    );
    assert_eq!(
        p.webhook(&url("/fail"), T, 2, &ctx).await,
        Observation::Failed(format!(
            "webhook http://{addr}/fail: HTTP 500 the new version looks bad"
        )),
        "an answer is a verdict: not retried, and the token is not in it"
    );
    assert_eq!(
        p.webhook(&url("/fail-with-result"), T, 0, &ctx).await,
        Observation::Value(Sample::value(0.0)),
        "a result is judged whatever the status"
    );
    let Observation::Error(e) = p.webhook(&url("/garbage"), T, 0, &ctx).await else {
        panic!("a result that is not a number is an error");
    };
    assert!(
        e.contains("its result is not a number or boolean: \"yes\""),
        "{e}"
    );
    assert_eq!(seen.calls.load(Ordering::SeqCst), 6);
    let bodies = seen.bodies.lock().await;
    assert_eq!(
        bodies[0],
        json!({"changeOrderId": "co-1", "appId": "app-1", "appName": "shop", "revision": "v2",
               "stableRevision": "v1", "batch": 1, "check": "hook", "phase": "gray"})
    );
}

#[tokio::test]
async fn a_slow_webhook_times_out_after_its_retries() {
    let (addr, seen) = receiver().await;
    let start = Instant::now();
    let got = providers()
        .webhook(
            &format!("http://{addr}/slow?token=s3cret"),
            T,
            2,
            &context(),
        )
        .await;
    let took = start.elapsed();
    let Observation::Error(e) = got else {
        panic!("a timeout is inconclusive, got {got:?}");
    };
    assert_eq!(
        e,
        format!("webhook http://{addr}/slow: timed out (3 attempts)")
    );
    assert_eq!(seen.calls.load(Ordering::SeqCst), 3);
    // 3 × 300 ms plus the pauses (200 + 400 ms), far less than the receiver's 5 s.
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn a_retry_gets_the_answer_a_timeout_lost() {
    let (addr, seen) = receiver().await;
    let got = providers()
        .webhook(&format!("http://{addr}/slow-once"), T, 1, &context())
        .await;
    assert_eq!(got, Observation::Value(Sample::value(7.0)));
    assert_eq!(seen.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_webhook_that_does_not_answer_is_inconclusive() {
    // Refused: a port nobody listens on any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = listener.local_addr().unwrap();
    drop(listener);
    let got = providers()
        .webhook(
            &format!("http://{refused}/x?token=s3cret"),
            T,
            1,
            &context(),
        )
        .await;
    let Observation::Error(e) = got else {
        panic!("refused is inconclusive, got {got:?}");
    };
    assert!(
        e.starts_with(&format!("webhook http://{refused}/x: could not connect")),
        "{e}"
    );
    assert!(e.ends_with("(2 attempts)") && !e.contains("s3cret"), "{e}");

    // Closed: a server that accepts and hangs up without a word.
    let closer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = closer.local_addr().unwrap();
    let accepted = Arc::new(AtomicU32::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = closer.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(sock);
        }
    });
    let got = providers()
        .webhook(&format!("http://{closed}/x"), T, 2, &context())
        .await;
    assert!(
        matches!(&got, Observation::Error(e) if e.ends_with("(3 attempts)")),
        "{got:?}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[derive(serde::Deserialize)]
struct Q {
    query: String,
}

async fn fake_prometheus() -> SocketAddr {
    async fn answer(Query(q): Query<Q>) -> impl IntoResponse {
        let ok = |data: Value| {
            (
                StatusCode::OK,
                Json(json!({"status": "success", "data": data})),
            )
        };
        match q.query.as_str() {
            "scalar" => ok(json!({"resultType": "scalar", "result": [1700000000.0, "0.25"]})),
            "one" => ok(json!({"resultType": "vector", "result": [
                {"metric": {"job": "edasd"}, "value": [1700000000.0, "42"]}]})),
            "many" => ok(json!({"resultType": "vector", "result": [
                {"metric": {"instance": "a"}, "value": [1.0, "1"]},
                {"metric": {"instance": "b"}, "value": [1.0, "2"]}]})),
            "none" => ok(json!({"resultType": "vector", "result": []})),
            "nan" => ok(json!({"resultType": "scalar", "result": [1.0, "NaN"]})),
            "range" => ok(json!({"resultType": "matrix", "result": []})),
            _ => (
                StatusCode::BAD_REQUEST,
                Json(json!({"status": "error", "errorType": "bad_data",
                            "error": "1:4: parse error: unexpected <EOF>"})),
            ),
        }
    }
    let api = Router::new().route("/api/v1/query", get(answer));
    serve(Router::new().nest("/prom", api.clone()).merge(api)).await
}

#[tokio::test]
async fn prometheus_answers_must_be_one_number() {
    let addr = fake_prometheus().await;
    let p = Providers::new(Some(format!("http://{addr}")), Duration::from_secs(2)).unwrap();
    assert!(p.has_prometheus());
    assert_eq!(p.prometheus(None, "scalar").await, Ok(0.25));
    assert_eq!(p.prometheus(None, "one").await, Ok(42.0));
    // A server under a path prefix, named by the check.
    assert_eq!(
        p.prometheus(Some(&format!("http://{addr}/prom/")), "one")
            .await,
        Ok(42.0)
    );
    let e = |r: Result<f64, edas_analysis::ProviderError>| r.unwrap_err().0;
    assert_eq!(
        e(p.prometheus(None, "many").await),
        r#"prometheus: the query answered 2 samples ({"instance":"a"}, {"instance":"b"}); a check needs one number (aggregate it, e.g. sum(…))"#
    );
    assert_eq!(
        e(p.prometheus(None, "none").await),
        "prometheus: the query answered an empty vector (no series matched)"
    );
    assert_eq!(
        e(p.prometheus(None, "nan").await),
        "prometheus: the query answered NaN"
    );
    assert_eq!(
        e(p.prometheus(None, "range").await),
        "prometheus: the query answered a matrix; a check needs a scalar or a one-sample vector"
    );
    assert_eq!(
        e(p.prometheus(None, "sum(").await),
        "prometheus: the query failed (bad_data): 1:4: parse error: unexpected <EOF>"
    );
    let none = providers();
    assert!(e(none.prometheus(None, "up").await).contains("no server configured"));
}
