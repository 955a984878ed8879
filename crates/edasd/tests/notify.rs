//! Release notifications end to end: the real edasd, subscriptions through the admin API, and a
//! real HTTP receiver on 127.0.0.1 (an axum server in the test) standing in for a webhook, a
//! Slack incoming webhook and a DingTalk robot.
//!
//! - every event of a gray + batch release arrives exactly once per subscription, in order;
//! - a receiver that is down gets everything once it is back, across a SIGKILL of edasd between
//!   the transitions and their delivery;
//! - a receiver that never answers ends in the dead letter, visible through the API;
//! - two edasd on one PostgreSQL deliver each event once (needs `EDAS_TEST_PG_URL`).

mod kube_support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use kube_support::support::*;
use serde_json::{Value, json};

#[test]
fn testapp_entry() {
    kube_support::support::testapp_entry();
}

const GRAY_AUTO: &str = r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":0}}"#;

/// Quick retries, so a receiver's outage costs the test milliseconds.
const QUICK_NOTIFY: &str =
    "[notify]\nfirst_retry_seconds = 0.05\nmax_retry_seconds = 0.3\nmax_attempts = 100\n";

/// One request the receiver accepted.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// A real HTTP receiver: answers 200 (`{"errcode":0}`) and records the request, or 503 while
/// it is `down` (recording nothing).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    down: Arc<AtomicBool>,
    refused: Arc<Mutex<u64>>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let receiver = Receiver::default();
        let app = axum::Router::new()
            .fallback(
                |State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: Bytes| async move {
                    if r.down.load(Ordering::SeqCst) {
                        *r.refused.lock().unwrap() += 1;
                        return (StatusCode::SERVICE_UNAVAILABLE, "down".to_owned());
                    }
                    r.got.lock().unwrap().push(Received {
                        path: uri.path().to_owned(),
                        query: uri.query().unwrap_or_default().to_owned(),
                        headers,
                        body: body.to_vec(),
                    });
                    (StatusCode::OK, r#"{"errcode":0,"errmsg":"ok"}"#.to_owned())
                },
            )
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, base)
    }

    fn at(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

async fn subscribe(api: &Endpoint, body: Value) -> String {
    let (status, answer) = admin_call(api, api.key, "POST", "subscriptions", Some(&body)).await;
    assert_eq!(status, 200, "{answer:#}");
    answer["Subscription"]["SubscriptionId"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn deliveries(api: &Endpoint, sub: &str, state: &str) -> Vec<Value> {
    let path = if state.is_empty() {
        format!("subscriptions/{sub}/deliveries")
    } else {
        format!("subscriptions/{sub}/deliveries/{state}")
    };
    let (status, answer) = admin_call(api, api.key, "GET", &path, None).await;
    assert_eq!(status, 200, "{answer:#}");
    answer["Deliveries"].as_array().cloned().unwrap_or_default()
}

/// Waits until `sub` has no pending delivery; returns its delivered ones, oldest first.
async fn all_delivered(api: &Endpoint, sub: &str, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        if deliveries(api, sub, "pending").await.is_empty() {
            let mut done = deliveries(api, sub, "delivered").await;
            done.reverse();
            return done;
        }
        assert!(Instant::now() < deadline, "deliveries still pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The CloudEvents a webhook path received, checked: signed with `secret`, the idempotency key
/// its id, no id twice, sequence numbers increasing (the outbox's order).
fn cloudevents(receiver: &Receiver, path: &str, secret: &str) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    let mut last = 0;
    let mut out = Vec::new();
    for r in receiver.at(path) {
        assert_eq!(
            r.header("x-edasd-signature"),
            edas_notify::sink::signature(secret, &r.body),
            "signed with the subscription's secret"
        );
        assert!(
            r.header("content-type")
                .starts_with("application/cloudevents+json")
        );
        let ce = r.json();
        assert_eq!(ce["specversion"], "1.0");
        let id = ce["id"].as_str().unwrap().to_owned();
        assert_eq!(r.header("idempotency-key"), id);
        assert!(seen.insert(id.clone()), "event {id} delivered twice");
        let seq: i64 = ce["sequence"].as_str().unwrap().parse().unwrap();
        assert!(seq > last, "out of order: {seq} after {last}");
        last = seq;
        out.push(ce);
    }
    out
}

/// The event types of one change order's CloudEvents, in order, without instance events.
fn release_kinds(events: &[Value], change_order: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["subject"] == change_order && e["type"] != "com.edasd.instance.changed")
        .map(|e| {
            let t = e["type"].as_str().unwrap().trim_start_matches("com.edasd.");
            match e["data"]["batch"].as_u64() {
                Some(b) if t.starts_with("batch.") => format!("{t} {b}"),
                _ => t.to_owned(),
            }
        })
        .collect()
}

/// Deploys v2 of `app` in a gray batch and two automatic ones; the change order.
async fn deploy_gray(c: &Cluster, app: &str) -> String {
    c.deploy(
        app,
        "v2",
        &[("UpdateStrategy", GRAY_AUTO)],
        &[("APP_VERSION", "v2")],
    )
    .await
}

/// Every one of `orders` has its events from its creation to its success.
fn complete(events: &[Value], orders: &[&str]) {
    for order in orders {
        let kinds = release_kinds(events, order);
        assert_eq!(
            kinds.first().map(String::as_str),
            Some("change_order.created"),
            "{kinds:?}"
        );
        assert_eq!(
            kinds.last().map(String::as_str),
            Some("change_order.succeeded"),
            "{kinds:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_of_a_gray_batch_release_arrives_once_per_subscription_in_order() {
    let (receiver, base) = Receiver::start().await;
    let c = Cluster::start("notify-once", QUICK_NOTIFY, true);
    // Invalid subscriptions are refused naming the parameter, and nothing is stored.
    for (body, parameter) in [
        (json!({"Sink": "webhook", "Url": "ftp://x/"}), "Url"),
        (
            json!({"Sink": "webhook", "Url": format!("{base}/hook")}),
            "Secret",
        ),
        (
            json!({"Sink": "pager", "Url": format!("{base}/hook")}),
            "Sink",
        ),
        (
            json!({"Sink": "slack", "Url": format!("{base}/s"), "EventTypes": ["nope"]}),
            "EventTypes",
        ),
        (
            json!({"Sink": "slack", "Url": format!("{base}/s"), "AppId": "no-such-app"}),
            "AppId",
        ),
    ] {
        let (status, answer) =
            admin_call(&c.api, c.api.key, "POST", "subscriptions", Some(&body)).await;
        assert_eq!(status, 400, "{answer:#}");
        assert_eq!(answer["Code"], "InvalidParameter", "{answer:#}");
        assert!(
            answer["Message"].as_str().unwrap().starts_with(parameter),
            "{answer:#}"
        );
    }
    let (_, listed) = admin_call(&c.api, c.api.key, "GET", "subscriptions", None).await;
    assert_eq!(listed["Subscriptions"], json!([]), "{listed:#}");

    let hook = subscribe(
        &c.api,
        json!({"Sink": "webhook", "Url": format!("{base}/hook"), "Secret": "s3cret-hook"}),
    )
    .await;
    let slack = subscribe(
        &c.api,
        json!({"Sink": "slack", "Url": format!("{base}/slack"),
               "EventTypes": ["change_order.succeeded", "change_order.failed"]}),
    )
    .await;
    let ding = subscribe(
        &c.api,
        json!({"Sink": "dingtalk", "Url": format!("{base}/ding?access_token=tok"), "Secret": "SECding"}),
    )
    .await;
    // Neither URL nor secret is ever answered.
    let (_, listed) = admin_call(&c.api, c.api.key, "GET", "subscriptions", None).await;
    let text = listed.to_string();
    assert!(!text.contains("s3cret") && !text.contains("tok") && !text.contains(&base));
    assert_eq!(listed["Subscriptions"].as_array().unwrap().len(), 3);

    // With a Service, so the local proxy's requests are measured too.
    let port = free_port();
    let services = format!(
        r#"[{{"name":"web","serviceType":"ClusterIP","portMappings":[{{"servicePort":{{"port":{port},"targetPort":8080,"protocol":"TCP"}}}}]}}]"#
    );
    let (app, created) = c
        .insert(
            "notified",
            3,
            &[("ServiceConfigs", &services)],
            &[("APP_VERSION", "v1")],
        )
        .await;
    assert_eq!(
        c.finished(&created, Duration::from_secs(60)).await["Status"],
        2
    );
    let deployed = deploy_gray(&c, &app).await;
    assert_eq!(
        c.finished(&deployed, Duration::from_secs(60)).await["Status"],
        2
    );

    let delivered = all_delivered(&c.api, &hook, Duration::from_secs(20)).await;
    let events = cloudevents(&receiver, "/hook", "s3cret-hook");
    assert_eq!(
        events.len(),
        delivered.len(),
        "one request per delivered event"
    );
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let delivered_ids: Vec<&str> = delivered
        .iter()
        .map(|d| d["Event"]["EventId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids, delivered_ids,
        "the receiver got exactly the outbox, in order"
    );
    assert_eq!(
        release_kinds(&events, &deployed),
        [
            "change_order.created",
            "batch.started 1",
            "batch.succeeded 1",
            "batch.started 2",
            "batch.succeeded 2",
            "batch.started 3",
            "batch.succeeded 3",
            "change_order.succeeded"
        ]
    );
    complete(&events, &[created.as_str()]);
    let instances = events
        .iter()
        .filter(|e| e["subject"] == deployed.as_str() && e["type"] == "com.edasd.instance.changed")
        .count();
    assert!(instances >= 3, "the new instances' states are events too");
    assert!(events.iter().all(|e| e["data"]["app_id"] == app.as_str()));

    // Slack: only the two events it asked for, as text.
    all_delivered(&c.api, &slack, Duration::from_secs(10)).await;
    let texts: Vec<String> = receiver
        .at("/slack")
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts.iter().all(|t| t.ends_with("succeeded")), "{texts:?}");
    assert!(texts[1].contains(&deployed), "{texts:?}");

    // DingTalk: every event, each request signed in its URL.
    let ding_delivered = all_delivered(&c.api, &ding, Duration::from_secs(10)).await;
    let dings = receiver.at("/ding");
    assert_eq!(dings.len(), ding_delivered.len());
    assert_eq!(dings.len(), events.len());
    for r in &dings {
        let q: Vec<(String, String)> = r
            .query
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect();
        assert_eq!(q[0], ("access_token".to_owned(), "tok".to_owned()));
        let ts: i64 = q[1].1.parse().unwrap();
        assert_eq!(q[2].1, edas_notify::sink::dingtalk_sign("SECding", ts));
        assert_eq!(r.json()["msgtype"], "text");
    }
    // One structured INFO line per release event; the waits' polling (GetChangeOrderInfo)
    // is not logged at INFO.
    let lines = c.new_log_lines();
    let logged = |event: &str| {
        lines.iter().any(|l| {
            l.contains("Release event.")
                && l.contains(&format!("event={event}"))
                && l.contains(&format!("change_order={deployed}"))
                && l.contains(&format!("app_id={app}"))
        })
    };
    assert!(logged("batch.started") && logged("change_order.succeeded"));
    assert!(lines.iter().any(|l| l.contains("Release event.")
        && l.contains("event=batch.succeeded")
        && l.contains("batch=3")));
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("GetChangeOrderInfo") && l.contains("answered")),
        "read-only polling is logged at DEBUG"
    );
    for _ in 0..5 {
        let answer = blocking(|| get(port, "/"));
        assert!(
            answer
                .as_ref()
                .is_some_and(|(status, body)| *status == 200 && body.starts_with("version=v2")),
            "{answer:?}"
        );
    }
    check_metrics(&c.api.base, &app).await;
    // Unsubscribing stops delivery and forgets the deliveries.
    let (status, _) = admin_call(
        &c.api,
        c.api.key,
        "DELETE",
        &format!("subscriptions/{ding}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = admin_call(
        &c.api,
        c.api.key,
        "GET",
        &format!("subscriptions/{ding}/deliveries"),
        None,
    )
    .await;
    assert_eq!(status, 404, "{answer:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_across_a_sigkill_gets_every_event_once_when_back() {
    let (receiver, base) = Receiver::start().await;
    receiver.down.store(true, Ordering::SeqCst);
    let mut c = Cluster::start("notify-down", QUICK_NOTIFY, true);
    let hook = subscribe(
        &c.api,
        json!({"Sink": "webhook", "Url": format!("{base}/hook"), "Secret": "k"}),
    )
    .await;
    let (app, created) = c.insert("outage", 3, &[], &[("APP_VERSION", "v1")]).await;
    assert_eq!(
        c.finished(&created, Duration::from_secs(60)).await["Status"],
        2
    );
    // Events wait in the outbox, retried with back-off; the API shows why.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pending = deliveries(&c.api, &hook, "pending").await;
        if pending.iter().any(|d| d["Attempts"].as_i64() >= Some(2)) {
            assert!(
                pending.iter().any(|d| d["LastError"] == "HTTP 503"),
                "{pending:#?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no retry: {pending:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A release runs while the receiver is down; edasd is killed in the middle of it, between
    // transitions and their delivery.
    let deployed = deploy_gray(&c, &app).await;
    c.wait_status(&deployed, &[1], Duration::from_secs(30))
        .await;
    c.kill_edasd();
    assert!(receiver.at("/hook").is_empty());
    c.spawn();
    assert_eq!(
        c.finished(&deployed, Duration::from_secs(60)).await["Status"],
        2
    );
    receiver.down.store(false, Ordering::SeqCst);
    let delivered = all_delivered(&c.api, &hook, Duration::from_secs(20)).await;
    let events = cloudevents(&receiver, "/hook", "k");
    assert_eq!(events.len(), delivered.len());
    assert!(*receiver.refused.lock().unwrap() >= 2);
    complete(&events, &[created.as_str(), deployed.as_str()]);
    assert_eq!(
        release_kinds(&events, &deployed)
            .iter()
            .filter(|k| k.starts_with("batch.succeeded"))
            .count(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_ends_in_the_dead_letter() {
    let (_refusing, port) = refusing_port();
    let c = Cluster::start(
        "notify-dead",
        "[notify]\nfirst_retry_seconds = 0.02\nmax_retry_seconds = 0.05\nmax_attempts = 2\n",
        true,
    );
    let hook = subscribe(
        &c.api,
        json!({"Sink": "webhook", "Url": format!("http://127.0.0.1:{port}/gone"), "Secret": "k",
               "EventTypes": ["change_order.created", "change_order.succeeded"]}),
    )
    .await;
    let (_, created) = c.insert("deadletter", 1, &[], &[]).await;
    assert_eq!(
        c.finished(&created, Duration::from_secs(60)).await["Status"],
        2
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let dead = loop {
        let dead = deliveries(&c.api, &hook, "dead").await;
        if dead.len() == 2 {
            break dead;
        }
        assert!(Instant::now() < deadline, "{dead:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        dead.iter()
            .all(|d| d["Attempts"] == 2 && d["LastError"] == "connection failed"),
        "{dead:#?}"
    );
    assert!(
        !dead
            .iter()
            .any(|d| d.to_string().contains(&port.to_string())),
        "no URL in answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edasd_on_postgresql_deliver_each_event_once() {
    use kube_support::{Backend, Edasd, IMAGE_V2};
    let Some(url) = pg_url() else {
        return;
    };
    let database = pg_schema(&url, &format!("edasd_notify_{}", std::process::id())).await;
    let (receiver, base) = Receiver::start().await;
    receiver.down.store(true, Ordering::SeqCst);
    let backend = Backend::fake("notify-two", Duration::from_millis(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let more = "[notify]\nfirst_retry_seconds = 0.05\nmax_retry_seconds = 0.2\n";
    let a = Edasd::start_with(
        &dir.path().join("a"),
        &backend.kubeconfig,
        Some(&database),
        more,
    );
    let hook = subscribe(
        &a.api,
        json!({"Sink": "webhook", "Url": format!("{base}/hook"), "Secret": "k"}),
    )
    .await;
    // A release while the receiver is down: its events wait in the outbox.
    let (app, created) = a.insert(&backend, "two", 3, &[]).await;
    assert_eq!(a.finished(&created, backend.patience).await["Status"], 2);
    let deployed = a
        .deploy(&app, IMAGE_V2, &[("UpdateStrategy", GRAY_AUTO)])
        .await;
    assert_eq!(a.finished(&deployed, backend.patience).await["Status"], 2);
    // A second edasd on the same database; both now compete for the backlog.
    let b = a.another(&dir.path().join("b"), &backend, &database, more);
    tokio::time::sleep(Duration::from_millis(500)).await;
    receiver.down.store(false, Ordering::SeqCst);
    let delivered = all_delivered(&b.api, &hook, Duration::from_secs(20)).await;
    // Give a second deliverer every chance to send something twice.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events = cloudevents(&receiver, "/hook", "k");
    assert_eq!(events.len(), delivered.len(), "each event delivered once");
    complete(&events, &[created.as_str(), deployed.as_str()]);
    // B's push stream shows what A stores, at once: A's commit wakes B (LISTEN/NOTIFY), no
    // polling.
    let last = events
        .iter()
        .map(|e| e["sequence"].as_str().unwrap().parse::<i64>().unwrap())
        .max();
    let mut on_b = Stream::open(&b.api, &[("AppId", &app)], last).await;
    let sent = Instant::now();
    let scaled = a
        .call(
            "PUT",
            "/pop/v5/k8s/acs/k8s_apps",
            "ScaleK8sApplication",
            &[("AppId", &app), ("Replicas", "4")],
        )
        .await;
    let ((_, _, created_event), arrived) = on_b.until("change_order.created").await;
    assert_eq!(created_event["ChangeOrderId"], scaled["ChangeOrderId"]);
    eprintln!(
        "MEASURED: a change order stored through edasd A is pushed by edasd B's stream {:?} \
         after the ScaleK8sApplication call was sent",
        arrived - sent
    );
    drop((a, b));
}

/// A scrape of `/metrics` after a release parses with a Prometheus text-format parser, every
/// series has its HELP line, and the release, application and outbox series are there.
async fn check_metrics(base: &str, app: &str) {
    use prometheus_parse::{Scrape, Value as Sample};
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("a Prometheus text exposition");
    let find = |name: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
    };
    for name in [
        "edasd_requests_total",
        "edasd_request_duration_seconds",
        "edasd_active_change_orders",
        "edasd_change_orders_finished_total",
        "edasd_change_order_duration_seconds",
        "edasd_batch_duration_seconds",
        "edasd_batch_wait_seconds",
        "edasd_store_transaction_seconds",
        "edasd_application_revision",
        "edasd_application_instances",
        "edasd_application_instance_restarts",
        "edasd_outbox_deliveries",
        "edasd_notify_deliveries_total",
        "edasd_notify_request_duration_seconds",
        "edasd_proxy_requests_total",
        "edasd_proxy_request_duration_seconds",
    ] {
        assert!(
            scrape.docs.contains_key(name),
            "no HELP for {name}:\n{text}"
        );
        assert!(
            scrape.samples.iter().any(|s| s.metric == name),
            "no sample of {name}:\n{text}"
        );
    }
    let value = |name: &str, labels: &[(&str, &str)]| match find(name, labels).map(|s| &s.value) {
        Some(Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v)) => *v,
        other => panic!("{name} {labels:?}: {other:?}"),
    };
    assert_eq!(
        value(
            "edasd_change_orders_finished_total",
            &[("type", "deploy"), ("outcome", "success")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "edasd_change_orders_finished_total",
            &[("type", "create"), ("outcome", "success")]
        ),
        1.0
    );
    assert!(
        value(
            "edasd_proxy_requests_total",
            &[("app_id", app), ("revision", "2"), ("class", "2xx")]
        ) >= 5.0
    );
    assert_eq!(value("edasd_application_revision", &[("app_id", app)]), 2.0);
    for state in ["desired", "ready", "available"] {
        assert_eq!(
            value(
                "edasd_application_instances",
                &[("app_id", app), ("state", state)]
            ),
            3.0,
            "{state}"
        );
    }
    assert!(
        value(
            "edasd_notify_deliveries_total",
            &[("sink", "webhook"), ("outcome", "delivered")]
        ) >= 10.0
    );
    match find(
        "edasd_batch_duration_seconds",
        &[("type", "deploy"), ("batch", "gray")],
    )
    .map(|s| &s.value)
    {
        Some(Sample::Histogram(buckets)) => {
            assert!(
                buckets.last().is_some_and(|b| b.count == 1.0),
                "{buckets:?}"
            );
        }
        other => panic!("the gray batch's duration is a histogram: {other:?}"),
    }
    // The Grafana dashboard graphs only series edasd exports.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/grafana-dashboard.json"
    ))
    .unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let mut graphed = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("edasd_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                graphed.insert(name.trim_end_matches("_bucket").to_owned());
            }
        }
    }
    assert!(graphed.len() >= 10, "{graphed:?}");
    for name in &graphed {
        assert!(
            scrape.docs.contains_key(name.as_str()),
            "the dashboard graphs {name}, which edasd does not export"
        );
    }
    match find("edasd_change_order_duration_seconds", &[("type", "deploy")]).map(|s| &s.value) {
        Some(Sample::Histogram(_)) => {}
        other => panic!("a change order's duration is a histogram: {other:?}"),
    }
}

/// One server-sent event: (id, type, data).
type Sse = (i64, String, Value);

/// A signed `GET /edasd/v1/events` (the push stream), read as it arrives.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(api: &Endpoint, query: &[(&str, &str)], last_event_id: Option<i64>) -> Stream {
        let mut builder = events_request(api, &form(query));
        if let Some(id) = last_event_id {
            builder = builder.header("Last-Event-ID", id.to_string());
        }
        let response = builder.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Stream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped), within 30 s.
    async fn next(&mut self) -> Sse {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (0, String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().unwrap();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        kind = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if kind.is_empty() {
                    continue;
                }
                return (id, kind, serde_json::from_str(&data).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.response.chunk())
                .await
                .expect("an event within 30 s")
                .unwrap()
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads until an event of type `kind`; returns it and when it arrived.
    async fn until(&mut self, kind: &str) -> (Sse, Instant) {
        loop {
            let e = self.next().await;
            if e.1 == kind {
                return (e, Instant::now());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_stream_shows_a_batch_change_at_once_and_resumes_from_the_last_event_id() {
    let c = Cluster::start("notify-stream", "", true);
    let (app, created) = c.insert("streamed", 2, &[], &[("APP_VERSION", "v1")]).await;
    assert_eq!(
        c.finished(&created, Duration::from_secs(60)).await["Status"],
        2
    );
    let manual = r#"{"type":"BatchUpdate","batchUpdate":{"batch":2,"releaseType":"manual","batchWaitTime":0}}"#;
    let order = c
        .deploy(
            &app,
            "v2",
            &[("UpdateStrategy", manual)],
            &[("APP_VERSION", "v2")],
        )
        .await;
    c.wait_status(&order, &[8], Duration::from_secs(60)).await;
    // The stream of the change order replays what happened so far.
    let mut stream = Stream::open(&c.api, &[("ChangeOrderId", &order)], None).await;
    let ((waiting_id, _, waiting), _) = stream.until("change_order.waiting").await;
    assert_eq!(waiting["ChangeOrderId"], order.as_str());
    assert_eq!(waiting["Data"]["batch"], 2);
    // ContinuePipeline: the next batch's start is pushed at once.
    let info = c.order(&order).await;
    let pipeline = pipelines(&info)
        .into_iter()
        .find(|p| p["PipelineStatus"] != 2)
        .unwrap();
    let pipeline_id = pipeline["PipelineId"].as_str().unwrap().to_owned();
    let sent = Instant::now();
    c.call(
        "GET",
        "/pop/v5/changeorder/pipeline_batch_confirm",
        "ContinuePipeline",
        &[("PipelineId", &pipeline_id), ("Confirm", "true")],
    )
    .await;
    let answered = sent.elapsed();
    let ((started_id, _, started), arrived) = stream.until("batch.started").await;
    assert_eq!(started["Data"]["batch"], 2);
    let pushed = arrived - sent;
    // What `edasctl change-order watch` does on an event: read GetChangeOrderInfo once.
    let info = c.order(&order).await;
    let shown = sent.elapsed();
    assert!(
        pipelines(&info)
            .iter()
            .any(|p| p["PipelineStatus"] == 1 || p["PipelineStatus"] == 2)
    );
    eprintln!(
        "MEASURED push stream: ContinuePipeline answered in {answered:?}; batch.started pushed \
         {pushed:?} after the call was sent; the watch's view (one GetChangeOrderInfo after the \
         event) shown {shown:?} after it (target: 100 ms)"
    );
    // Resume after the waiting event: nothing before it again, nothing after it missed.
    let mut resumed = Stream::open(&c.api, &[("ChangeOrderId", &order)], Some(waiting_id)).await;
    let first = resumed.next().await;
    assert!(first.0 > waiting_id, "{first:?}");
    assert!(first.0 <= started_id);
    // An application's stream has its change orders' events, the creation's too.
    let mut of_app = Stream::open(&c.api, &[("AppId", &app)], None).await;
    let first = of_app.next().await;
    assert_eq!(
        (first.1.as_str(), first.2["ChangeOrderId"].as_str()),
        ("change_order.created", Some(created.as_str()))
    );
    // Refusals answer in the EDAS error envelope.
    let raw = form(&[("AppId", app.as_str()), ("ChangeOrderId", order.as_str())]);
    let (status, body) = signed_get_events(&c.api, &raw).await;
    assert_eq!(
        (status, body["Code"].as_str()),
        (400, Some("MissingParameter")),
        "{body}"
    );
    let (status, body) = signed_get_events(&c.api, &form(&[("ChangeOrderId", "nope")])).await;
    assert_eq!(status, 404, "{body}");
}

/// A signed `GET /edasd/v1/events` with the query `raw`.
fn events_request(api: &Endpoint, raw: &str) -> reqwest::RequestBuilder {
    let request = edas_pop::Request::new("GET", "/edasd/v1/events")
        .with_raw_query(raw)
        .unwrap()
        .with_header("x-acs-action", "edasd.events")
        .with_header("x-acs-version", "2017-08-01");
    let signature = edas_pop::sign_v1(
        &request,
        api.key.0,
        api.key.1,
        std::time::SystemTime::now(),
        Some(&nonce()),
    )
    .unwrap();
    let mut builder = reqwest::Client::new().get(format!("{}/edasd/v1/events?{raw}", api.base));
    for (name, value) in request.headers() {
        builder = builder.header(name.as_str(), value.as_str());
    }
    for (name, value) in signature {
        builder = builder.header(name, value);
    }
    builder
}

async fn signed_get_events(api: &Endpoint, raw: &str) -> (u16, Value) {
    let builder = events_request(api, raw);
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
