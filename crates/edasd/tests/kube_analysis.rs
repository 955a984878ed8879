//! Issue 21, black-box, Prometheus tier (`#[ignore]`d in the plain run; see
//! scripts/tiers.d/40-prometheus.sh): the same kind of release policy on Kubernetes (the fake
//! API server), where the local proxy's traffic data does not exist and a Prometheus check
//! stands in for it. A real Prometheus scrapes an exporter in this test that plays the
//! application's per-revision error ratio (revision 2 answers 30 % errors, the others 0.1 %);
//! the check's query names `{{revision}}`, so one policy judges every release: revision 2 is
//! rolled back in its gray batch (its Deployment gone, revision 1's back to full size), and
//! the next one is promoted with no human step.

mod kube_support;
#[path = "support/prometheus.rs"]
mod prometheus;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::routing::get;
use kube_support::support::admin_call;
use kube_support::*;
use serde_json::json;

const GRAY_AUTO: &str = r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":0}}"#;

async fn exporter() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Revision 2 answers 30 % errors, every other one 0.1 %.
    let mut text = String::from("# TYPE app_error_ratio gauge\n");
    for r in 1..10 {
        let ratio = if r == 2 { 0.3 } else { 0.001 };
        text.push_str(&format!("app_error_ratio{{revision=\"{r}\"}} {ratio}\n"));
    }
    let router = axum::Router::new().route("/metrics", get(move || async move { text }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "Prometheus tier: needs EDAS_PROMETHEUS (scripts/tiers.d/40-prometheus.sh)"]
async fn prometheus_check_judges_releases_on_kubernetes() {
    let target = exporter().await;
    let prom = blocking(|| {
        let p =
            prometheus::Prometheus::start(&[prometheus::Target::new("app", target, "/metrics")]);
        p.wait_for("app_error_ratio", Duration::from_secs(30));
        p
    });
    let backend = Backend::fake("analysis", Duration::from_millis(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let edasd = Edasd::start_with(
        &dir.path().join("a"),
        &backend.kubeconfig,
        None,
        &format!("[analysis]\nprometheus = \"{}\"\n", prom.url()),
    );
    let (app, order) = edasd.insert(&backend, "judged", 3, &[]).await;
    assert_eq!(edasd.finished(&order, backend.patience).await["Status"], 2);
    let policy = json!({
        "checks": [{
            "name": "errors",
            "provider": {"prometheus": {"query": "max(app_error_ratio{revision=\"{{revision}}\"})"}},
            "successCondition": "result < 0.05",
            "interval": "1s",
            "count": 2,
            "when": "gray",
            "onFailure": "rollback",
        }],
    });
    let (status, body) = admin_call(
        &edasd,
        edasd.key,
        "PUT",
        &format!("applications/{app}/policy"),
        Some(&policy),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Revision 2: 30 % errors in Prometheus → rolled back during the gray batch.
    let started = Instant::now();
    let order = edasd
        .deploy(&app, IMAGE_V2, &[("UpdateStrategy", GRAY_AUTO)])
        .await;
    let info = edasd.finished(&order, backend.patience).await;
    assert_ne!(info["Status"], 2, "{info:#}");
    let text = info.to_string();
    assert!(
        text.contains(r#"check \"errors\" failed 1 of 1: result=0.3, condition \"result < 0.05\""#),
        "{info:#}"
    );
    backend
        .wait_pods(&app, "revision 1 alone again", |p| {
            *p == BTreeMap::from([("1".to_owned(), (3, 3))])
        })
        .await;
    eprintln!("revision 2 rolled back after {:?}", started.elapsed());

    // The next revision: 0.1 % → promoted with no human step.
    let started = Instant::now();
    let order = edasd
        .deploy(
            &app,
            IMAGE_V1,
            &[
                ("UpdateStrategy", GRAY_AUTO),
                ("Envs", r#"[{"name":"V","value":"3"}]"#),
            ],
        )
        .await;
    let info = edasd.finished(&order, backend.patience).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    // The rollback took a revision number of its own: the new one is the only one left.
    let pods = backend
        .wait_pods(&app, "the new revision alone", |p| {
            p.len() == 1
                && p.iter()
                    .all(|(r, n)| r.parse::<u32>().is_ok_and(|r| r > 2) && *n == (3, 3))
        })
        .await;
    eprintln!("revision {pods:?} promoted in {:?}", started.elapsed());
    drop(prom);
}
