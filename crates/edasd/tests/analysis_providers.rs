//! Issue 21, black-box: releases judged by the HTTP providers, with the real edasd on `local`
//! and edas-testapp instances.
//!
//! - A webhook check against a receiver in this test on 127.0.0.1: a release it passes is
//!   promoted with no human step (and the receiver is told the order, application, revision
//!   and phase); one it fails is held at status 8 naming the check, and after the receiver
//!   recovers a plain ContinuePipeline judges again and the release completes; a receiver that
//!   answers too slowly is inconclusive up to the limit, then holds the release too, and so does
//!   one that is gone (connection refused) when a plain continue judges again.
//! - The Prometheus tier (`prometheus_*`, `#[ignore]`d in the plain run, see
//!   scripts/tiers.d/40-prometheus.sh): a real Prometheus scrapes edasd's `/metrics` every
//!   second and a Prometheus check on the new revision's share of 5xx answers at edasd's proxy
//!   rolls back a version answering 50 % errors during its gray batch, then promotes a healthy
//!   one, while a load generator sends requests through the application's Service port; and
//!   the same both ways with a check on the application's own counters (edas-testapp's
//!   `/metrics`, each instance a target labelled with its revision as instances come and go).

#[path = "support/analysis.rs"]
mod analysis_support;
#[path = "support/prometheus.rs"]
mod prometheus;
mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use analysis_support::{Load, app_with_service, deploy_gray, set_policy};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use support::{Cluster, pipelines};

/// Not a test: the test application's entry point when edasd's local runtime runs this binary.
#[test]
fn testapp_entry() {
    support::testapp_entry();
}

/// ContinuePipeline on the order's first pipeline not yet done.
async fn continue_next(edasd: &Cluster, co: &str) -> Value {
    let info = edasd.order(co).await;
    let pipeline = pipelines(&info)
        .into_iter()
        .find(|p| p["PipelineStatus"] != 2)
        .expect("a pipeline waits");
    let id = pipeline["PipelineId"].as_str().unwrap().to_owned();
    edasd
        .call(
            "GET",
            "/pop/v5/changeorder/pipeline_batch_confirm",
            "ContinuePipeline",
            &[("PipelineId", &id), ("Confirm", "true")],
        )
        .await
}

/// How the receiver answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Pass,
    Fail,
    Slow,
}

struct Receiver {
    mode: Mutex<Mode>,
    seen: Mutex<Vec<Value>>,
}

async fn judge(State(r): State<Arc<Receiver>>, Json(body): Json<Value>) -> Response {
    r.seen.lock().unwrap().push(body);
    let mode = *r.mode.lock().unwrap();
    match mode {
        Mode::Pass => Json(json!({"result": true})).into_response(),
        Mode::Fail => (StatusCode::INTERNAL_SERVER_ERROR, "the new version is bad").into_response(),
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Json(json!({"result": true})).into_response()
        }
    }
}

/// The receiver on 127.0.0.1, and what stops it for good (then nothing listens there).
async fn receiver() -> (SocketAddr, Arc<Receiver>, tokio::sync::oneshot::Sender<()>) {
    let state = Arc::new(Receiver {
        mode: Mutex::new(Mode::Pass),
        seen: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new()
        .route("/judge", post(judge))
        .with_state(state.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    (addr, state, stop)
}

/// Waits until the order is held (status 8) with `text` in its answer.
async fn held_with(edasd: &Cluster, co: &str, text: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = edasd.order(co).await;
        if info["Status"] == 8 && info.to_string().contains(text) {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "not held with {text:?} within 60 s: {info:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_check_promotes_holds_and_judges_again() {
    let (addr, recv, stop) = receiver().await;
    let edasd = Cluster::start("analysis-webhook", "", false);
    let (app, co) = edasd
        .insert("hooked", 2, &[], &[("APP_VERSION", "v1")])
        .await;
    assert_eq!(
        edasd.finished(&co, Duration::from_secs(30)).await["Status"],
        2
    );
    let policy = json!({
        "inconclusiveLimit": 1,
        "checks": [{
            "name": "hook",
            "provider": {"webhook": {"url": format!("http://{addr}/judge?token=s3cret"), "timeout": "1s", "retries": 0}},
            "successCondition": "result == 1",
            "interval": "1s",
            "count": 2,
            "when": "gray",
            "onFailure": "pause",
        }],
    });
    set_policy(&edasd, &app, &policy).await;

    // Passed: promoted with no human step; the receiver was told what it judges.
    let started = Instant::now();
    let co = deploy_gray(&edasd, &app, "v2", &[]).await;
    let info = edasd.finished(&co, Duration::from_secs(60)).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    eprintln!(
        "a release with 2 passed webhook measurements: {:?}",
        started.elapsed()
    );
    {
        let seen = recv.seen.lock().unwrap();
        assert!(seen.len() >= 2, "{seen:?}");
        let last = seen.last().unwrap();
        assert_eq!(last["changeOrderId"], co.as_str(), "{last}");
        assert_eq!(last["appId"], app.as_str(), "{last}");
        assert_eq!(last["appName"], "hooked", "{last}");
        assert_eq!(last["check"], "hook", "{last}");
        assert_eq!(last["phase"], "gray", "{last}");
        assert_eq!(last["revision"], "2", "{last}");
    }

    // Failed: held at status 8, the check and the answer named, the URL's token not shown.
    *recv.mode.lock().unwrap() = Mode::Fail;
    let co = deploy_gray(&edasd, &app, "v3", &[]).await;
    let info = edasd.wait_status(&co, &[8], Duration::from_secs(60)).await;
    let text = info.to_string();
    assert!(text.contains(r#"check \"hook\" failed 1 of 1"#), "{info:#}");
    assert!(text.contains("HTTP 500 the new version is bad"), "{info:#}");
    assert!(!text.contains("s3cret"), "{info:#}");
    // The receiver recovers; a plain continue judges again and the release completes.
    *recv.mode.lock().unwrap() = Mode::Pass;
    continue_next(&edasd, &co).await;
    let info = edasd.finished(&co, Duration::from_secs(60)).await;
    assert_eq!(info["Status"], 2, "{info:#}");

    // Too slow: the first timeout is tolerated (limit 1), the second holds the release.
    *recv.mode.lock().unwrap() = Mode::Slow;
    let co = deploy_gray(&edasd, &app, "v4", &[]).await;
    let info = edasd.wait_status(&co, &[8], Duration::from_secs(60)).await;
    let text = info.to_string();
    assert!(text.contains(r#"check \"hook\" failed 1 of 1"#), "{info:#}");
    assert!(text.contains("timed out"), "{info:#}");
    assert!(text.contains("limit 1: counted as failed"), "{info:#}");

    // Not at all: the receiver is gone (connection refused); a plain continue judges again and
    // the release is held again, the refused connection named.
    stop.send(()).unwrap();
    while std::net::TcpStream::connect(addr).is_ok() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    continue_next(&edasd, &co).await;
    let info = held_with(&edasd, &co, "could not connect").await;
    let text = info.to_string();
    assert!(text.contains(r#"check \"hook\" failed 1 of 1"#), "{info:#}");
    assert!(!text.contains("s3cret"), "{info:#}");
}

/// The new revision's share of 5xx answers at edasd's proxy over the last 10 s (0 when it had
/// none: the 5xx series exists only after the first one).
const ERROR_SHARE: &str = r#"(sum(increase(edasd_proxy_requests_total{app_id="{{appId}}",revision="{{revision}}",class="5xx"}[10s])) or vector(0)) / sum(increase(edasd_proxy_requests_total{app_id="{{appId}}",revision="{{revision}}"}[10s]))"#;

/// A rollback-on-failure policy with one Prometheus check `name` of `query` during the gray
/// batch: under 5 % errors, measured twice 3 s apart, up to 5 inconclusive answers.
fn prometheus_policy(name: &str, query: &str) -> Value {
    json!({
        "inconclusiveLimit": 5,
        "checks": [{
            "name": name,
            "provider": {"prometheus": {"query": query}},
            "successCondition": "result < 0.05",
            "interval": "3s",
            "count": 2,
            "when": "gray",
            "onFailure": "rollback",
        }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "Prometheus tier: needs EDAS_PROMETHEUS (scripts/tiers.d/40-prometheus.sh)"]
async fn prometheus_check_rolls_back_a_bad_version_and_promotes_a_good_one() {
    let prom_addr = prometheus::Prometheus::reserve();
    let edasd = Cluster::start(
        "analysis-prometheus",
        &format!("\n[analysis]\nprometheus = \"http://{prom_addr}\"\n"),
        false,
    );
    let edasd_addr: SocketAddr = edasd.base.trim_start_matches("http://").parse().unwrap();
    let prom = support::blocking(|| {
        prometheus::Prometheus::start_at(
            prom_addr,
            &[prometheus::Target::new("edasd", edasd_addr, "/metrics")],
        )
    });
    let (app, port) = app_with_service(&edasd, "judged").await;
    let load = Load::start(port, 1, Duration::from_millis(10));
    set_policy(&edasd, &app, &prometheus_policy("errors", ERROR_SHARE)).await;
    support::blocking(|| prom.wait_for("edasd_proxy_requests_total", Duration::from_secs(30)));

    // 50 % errors in the gray batch: rolled back, the check named with its value.
    let started = Instant::now();
    let co = deploy_gray(&edasd, &app, "v2", &[("ERROR_PERCENT", "50")]).await;
    let info = edasd
        .wait_status(&co, &[3, 6, 7, 10], Duration::from_secs(90))
        .await;
    let text = info.to_string();
    assert!(
        text.contains(r#"check \"errors\" failed 1 of 1: result="#),
        "{info:#}"
    );
    assert!(text.contains(r#"condition \"result < 0.05\""#), "{info:#}");
    edasd
        .wait_instances(&app, Duration::from_secs(60), "back on revision 1", |i| {
            i.len() == 2 && i.iter().all(|i| i.revision == "1")
        })
        .await;
    eprintln!(
        "bad version rolled back {:?} after the deploy ({} requests sent, {} answered 5xx)",
        started.elapsed(),
        load.answered.load(Ordering::Relaxed),
        load.failed.load(Ordering::Relaxed)
    );

    // A healthy version: two passing measurements, promoted with no human step.
    let started = Instant::now();
    let co = deploy_gray(&edasd, &app, "v3", &[]).await;
    let info = edasd.finished(&co, Duration::from_secs(90)).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    eprintln!("healthy version promoted in {:?}", started.elapsed());
    // Every instance runs the new revision (the rollback took a revision number of its own).
    edasd
        .wait_instances(&app, Duration::from_secs(30), "on the new revision", |i| {
            i.len() == 2
                && i.iter()
                    .all(|x| x.revision != "1" && x.revision == i[0].revision)
        })
        .await;
    drop(load);
    // Four answers through the Service port, all from v3 (an answer slower than the helper's
    // 1 s read timeout on a loaded machine is asked again, a wrong version fails).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut answered = 0;
    while answered < 4 {
        match support::version(port) {
            Some(v) => {
                assert_eq!(v, "v3");
                answered += 1;
            }
            None => assert!(
                Instant::now() < deadline,
                "the Service port does not answer"
            ),
        }
    }
    drop(prom);
}

/// The new revision's share of 500s as edas-testapp counts them itself (its `/metrics`, each
/// instance scraped as a target labelled with its application and revision).
const APP_ERROR_SHARE: &str = r#"(sum(increase(edas_testapp_requests_total{job="files",app="{{appId}}",revision="{{revision}}",code="500"}[10s])) or vector(0)) / sum(increase(edas_testapp_requests_total{job="files",app="{{appId}}",revision="{{revision}}"}[10s]))"#;

/// Waits for a final status while keeping Prometheus's targets the application's instances
/// (they come and go during a release), labelled with their revision.
async fn finished_scraping(
    edasd: &Cluster,
    prom: &prometheus::Prometheus,
    app: &str,
    co: &str,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        sync_targets(edasd, prom, app);
        let info = edasd.order(co).await;
        if [2, 3, 6, 7, 10].contains(&info["Status"].as_i64().unwrap_or(-1)) {
            return info;
        }
        assert!(Instant::now() < deadline, "not finished in 90 s: {info:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn sync_targets(edasd: &Cluster, prom: &prometheus::Prometheus, app: &str) {
    let targets: Vec<(SocketAddr, Vec<(String, String)>)> = edasd
        .instances(app)
        .into_iter()
        .filter(|i| i.port != 0)
        .map(|i| {
            (
                SocketAddr::from(([127, 0, 0, 1], i.port)),
                vec![
                    ("app".to_owned(), app.to_owned()),
                    ("revision".to_owned(), i.revision),
                ],
            )
        })
        .collect();
    prom.set_file_targets(&targets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "Prometheus tier: needs EDAS_PROMETHEUS (scripts/tiers.d/40-prometheus.sh)"]
async fn prometheus_check_on_the_applications_own_metrics_judges_both_ways() {
    let prom_addr = prometheus::Prometheus::reserve();
    let edasd = Cluster::start(
        "analysis-prometheus-app",
        &format!("\n[analysis]\nprometheus = \"http://{prom_addr}\"\n"),
        false,
    );
    let prom = support::blocking(|| prometheus::Prometheus::start_at(prom_addr, &[]));
    let (app, port) = app_with_service(&edasd, "scraped").await;
    let load = Load::start(port, 1, Duration::from_millis(10));
    sync_targets(&edasd, &prom, &app);
    support::blocking(|| {
        prom.wait_for(
            "edas_testapp_requests_total{job=\"files\"}",
            Duration::from_secs(30),
        )
    });
    set_policy(
        &edasd,
        &app,
        &prometheus_policy("app-errors", APP_ERROR_SHARE),
    )
    .await;

    // The application itself answers 50 % errors in the gray batch: rolled back.
    let started = Instant::now();
    let co = deploy_gray(&edasd, &app, "v2", &[("ERROR_PERCENT", "50")]).await;
    let info = finished_scraping(&edasd, &prom, &app, &co).await;
    let text = info.to_string();
    assert!(
        text.contains(r#"check \"app-errors\" failed 1 of 1: result="#),
        "{info:#}"
    );
    edasd
        .wait_instances(&app, Duration::from_secs(60), "back on revision 1", |i| {
            i.len() == 2 && i.iter().all(|i| i.revision == "1")
        })
        .await;
    eprintln!(
        "bad version rolled back by its own metrics {:?} after the deploy",
        started.elapsed()
    );

    // Healthy: promoted with no human step.
    let started = Instant::now();
    let co = deploy_gray(&edasd, &app, "v3", &[]).await;
    let info = finished_scraping(&edasd, &prom, &app, &co).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    eprintln!("healthy version promoted in {:?}", started.elapsed());
    drop(load);
    drop(prom);
}
