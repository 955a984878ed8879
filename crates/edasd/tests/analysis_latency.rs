//! Issue 21, black-box: a latency check of the built-in traffic provider against the stable
//! revision, with the real edasd on `local`, edas-testapp instances and a load generator through
//! the Service port. The new revision's 90th percentile (from edasd's proxy's latency buckets,
//! interpolated as Prometheus does) must stay within 150 ms of the stable revision's over the
//! same interval: a version as fast as the stable one is promoted with no human step, one that
//! answers 300 ms later (`EXTRA_LATENCY_MS`) is held at status 8 with both values named.

#[path = "support/analysis.rs"]
mod analysis_support;
mod support;

use std::time::{Duration, Instant};

use analysis_support::{Load, app_with_service, deploy_gray, set_policy};
use serde_json::json;
use support::Cluster;

/// Not a test: the test application's entry point when edasd's local runtime runs this binary.
#[test]
fn testapp_entry() {
    support::testapp_entry();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slower_version_is_held_by_a_latency_check_against_the_stable_one() {
    let edasd = Cluster::start("analysis-latency", "", false);
    let (app, port) = app_with_service(&edasd, "timed").await;
    let policy = json!({
        "checks": [{
            "name": "p90",
            "provider": {"traffic": {"metric": "latencyP90", "comparedTo": "stable"}},
            "successCondition": "result < baseline + 150 && requests >= 5 && baselineRequests >= 5",
            "interval": "2s",
            "count": 2,
            "when": "gray",
            "onFailure": "pause",
        }],
    });
    set_policy(&edasd, &app, &policy).await;
    let _load = Load::start(port, 2, Duration::from_millis(5));

    // As fast as the stable revision: promoted.
    let started = Instant::now();
    let co = deploy_gray(&edasd, &app, "v2", &[]).await;
    let info = edasd.finished(&co, Duration::from_secs(60)).await;
    assert_eq!(info["Status"], 2, "{info:#}");
    eprintln!("as fast: promoted in {:?}", started.elapsed());

    // 300 ms slower: held at status 8, the new and the stable revision's values named.
    let started = Instant::now();
    let co = deploy_gray(&edasd, &app, "v3", &[("EXTRA_LATENCY_MS", "300")]).await;
    let info = edasd.wait_status(&co, &[8], Duration::from_secs(60)).await;
    let text = info.to_string();
    eprintln!("300 ms slower: held after {:?}", started.elapsed());
    let reason = text
        .split(r#"check \"p90\" failed"#)
        .nth(1)
        .unwrap_or_else(|| panic!("no reason naming the check: {info:#}"));
    // "1 of 1: result=<p90 ms>, baseline=<p90 ms>, condition …"
    let value = |name: &str| -> f64 {
        reason
            .split(&format!("{name}="))
            .nth(1)
            .and_then(|r| r.split([',', ' ']).next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {reason}"))
    };
    let (result, baseline) = (value("result"), value("baseline"));
    eprintln!("p90: new {result} ms, stable {baseline} ms");
    assert!(result >= 250.0, "the new revision's p90 {result} ms");
    // Generous for a loaded machine; 300 ms later still fails the condition.
    assert!(baseline < 200.0, "the stable revision's p90 {baseline} ms");
}
