//! The Prometheus provider against a real Prometheus server (the Prometheus tier: Debian's
//! `prometheus`, `EDAS_PROMETHEUS`; run by scripts/tiers.d/40-prometheus.sh, `#[ignore]`d in the
//! plain run). The server scrapes a small exporter on 127.0.0.1 every second; the provider must
//! take a scalar or a one-sample vector and refuse everything else with what came back.

#[path = "../../edasd/tests/support/prometheus.rs"]
mod prometheus;

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use edas_analysis::Providers;
use prometheus::{Prometheus, Target};

async fn exporter() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route(
        "/metrics",
        get(|| async {
            "# TYPE judge_up gauge\njudge_up{route=\"a\"} 1\njudge_up{route=\"b\"} 1\n\
             # TYPE judge_error_ratio gauge\njudge_error_ratio 0.25\n"
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "Prometheus tier: needs EDAS_PROMETHEUS (scripts/tiers.d/40-prometheus.sh)"]
async fn prometheus_provider_against_a_real_server() {
    let target = exporter().await;
    let started = Instant::now();
    let server = tokio::task::spawn_blocking(move || {
        let p = Prometheus::start(&[Target::new("judge", target, "/metrics")]);
        p.wait_for("judge_error_ratio", Duration::from_secs(30));
        p
    })
    .await
    .unwrap();
    eprintln!("prometheus up and scraped in {:?}", started.elapsed());
    let p = Providers::new(Some(server.url()), Duration::from_secs(5)).unwrap();
    let e = |r: Result<f64, edas_analysis::ProviderError>| r.unwrap_err().0;

    // A scalar and a one-sample vector are one number.
    assert_eq!(
        p.prometheus(None, "scalar(judge_error_ratio)").await,
        Ok(0.25)
    );
    assert_eq!(p.prometheus(None, "judge_error_ratio").await, Ok(0.25));
    assert_eq!(p.prometheus(None, "sum(judge_up)").await, Ok(2.0));
    assert_eq!(p.prometheus(None, "1 + 1").await, Ok(2.0));

    // Several samples: refused, naming them.
    let many = e(p.prometheus(None, "judge_up").await);
    assert!(
        many.starts_with("prometheus: the query answered 2 samples (")
            && many.contains("\"route\":\"a\"")
            && many.contains("\"route\":\"b\"")
            && many.ends_with("a check needs one number (aggregate it, e.g. sum(…))"),
        "{many}"
    );
    // Nothing matched: refused, never a pass.
    assert_eq!(
        e(p.prometheus(None, "judge_missing_series").await),
        "prometheus: the query answered an empty vector (no series matched)"
    );
    // A bad query: Prometheus's own message.
    let bad = e(p.prometheus(None, "sum(").await);
    assert!(
        bad.starts_with("prometheus: the query failed (bad_data): ") && bad.contains("parse error"),
        "{bad}"
    );
    // A range vector is not an instant value.
    let range = e(p.prometheus(None, "judge_up[5m]").await);
    assert_eq!(
        range,
        "prometheus: the query answered a matrix; a check needs a scalar or a one-sample vector"
    );
    // NaN (0/0) is no number to judge.
    assert_eq!(
        e(p.prometheus(None, "scalar(judge_error_ratio) * 0 / 0")
            .await),
        "prometheus: the query answered NaN"
    );

    // An unreachable server: the check's own address, nobody listening.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let unreachable = e(p
        .prometheus(Some(&format!("http://{dead_addr}")), "judge_error_ratio")
        .await);
    assert!(
        unreachable.starts_with(&format!(
            "prometheus: http://{dead_addr}/ could not connect"
        )),
        "{unreachable}"
    );
    drop(server);
}
