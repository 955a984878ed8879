//! Load: many concurrent signed clients against the real `edasd` on SQLite for a bounded time,
//! mixing DeployK8sApplication, GetChangeOrderInfo and ListApplication. Nothing may answer 5xx
//! or fail in transport, the only refusal allowed is 409 (a deploy while the application's
//! previous change order still runs), and every ChangeOrderId a deploy returned is found
//! afterwards and finishes successfully: no change order is lost.
//!
//! `EDAS_LOAD_SECONDS` (default 10) and `EDAS_LOAD_CLIENTS` (default 32) change the run. The
//! applications have no instances (Replicas 0), so the run measures the API, the store and the
//! engine, not process start-up.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::Cluster;
use tokio::sync::Mutex;

/// Not a test: the test application's entry point (unused here; every test file has one).
#[test]
fn testapp_entry() {
    support::testapp_entry();
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Tally {
    /// (operation, HTTP status) → count.
    statuses: BTreeMap<(&'static str, u16), u64>,
    /// Unexpected answers, kept for the failure message (at most a few).
    unexpected: Vec<String>,
    /// Every ChangeOrderId a deploy returned.
    orders: Vec<String>,
    latencies: Vec<Duration>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_signed_clients_get_no_5xx_and_lose_no_change_order() {
    let seconds = env_or("EDAS_LOAD_SECONDS", 10);
    let clients = env_or("EDAS_LOAD_CLIENTS", 32) as usize;
    let cluster = Arc::new(Cluster::start("load", "", false));

    // One application per client, so a client's deploys conflict only with its own.
    let mut apps = Vec::new();
    for i in 0..clients {
        let (app, order) = cluster
            .insert(&format!("load-{i}"), 0, &[], &[("APP_VERSION", "v0")])
            .await;
        apps.push((app, order));
    }
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (client, (app, first)) in apps.iter().cloned().enumerate() {
        let cluster = cluster.clone();
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = first;
            let mut round = 0u64;
            while Instant::now() < deadline {
                round += 1;
                let (op, path, params): (&'static str, &str, Vec<(&str, String)>) = match round % 4
                {
                    0 | 2 => (
                        "GetChangeOrderInfo",
                        "/pop/v5/changeorder/change_order_info",
                        vec![("ChangeOrderId", last.clone())],
                    ),
                    1 => (
                        "DeployK8sApplication",
                        "/pop/v5/k8s/acs/k8s_apps",
                        vec![
                            ("AppId", app.clone()),
                            ("Image", format!("edas-testapp:c{client}r{round}")),
                        ],
                    ),
                    _ => ("ListApplication", "/pop/v5/app/app_list", Vec::new()),
                };
                let params: Vec<(&str, &str)> =
                    params.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let sent = Instant::now();
                let (status, body) = cluster.send("POST", path, op, &params, false).await;
                let took = sent.elapsed();
                let mut t = tally.lock().await;
                t.latencies.push(took);
                *t.statuses.entry((op, status)).or_default() += 1;
                let expected = status == 200 || (op == "DeployK8sApplication" && status == 409);
                if !expected && t.unexpected.len() < 10 {
                    t.unexpected.push(format!("{op}: {status} {body}"));
                }
                if op == "DeployK8sApplication" && status == 200 {
                    match body["ChangeOrderId"].as_str() {
                        Some(id) => {
                            t.orders.push(id.to_owned());
                            last = id.to_owned();
                        }
                        None => t
                            .unexpected
                            .push(format!("deploy 200 without an id: {body}")),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a client panicked");
    }
    let elapsed = started.elapsed();
    let tally = Arc::try_unwrap(tally).ok().unwrap().into_inner();
    let requests: u64 = tally.statuses.values().sum();
    let mut latencies = tally.latencies.clone();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    eprintln!(
        "load: {clients} clients, {requests} requests in {elapsed:?} ({:.0}/s), p50 {:?} p99 {:?} \
         max {:?}; {} change orders; statuses {:?}",
        requests as f64 / elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        latencies[latencies.len() - 1],
        tally.orders.len(),
        tally.statuses
    );
    assert!(
        tally.unexpected.is_empty(),
        "unexpected answers: {:#?}",
        tally.unexpected
    );
    assert!(
        !tally.statuses.keys().any(|(_, s)| *s >= 500),
        "5xx answers: {:?}",
        tally.statuses
    );
    assert!(
        tally.orders.len() >= clients,
        "fewer successful deploys ({}) than clients ({clients}): the load did not deploy",
        tally.orders.len()
    );

    // Every change order a deploy returned exists and finishes successfully.
    let check = Instant::now();
    for id in &tally.orders {
        let info = cluster.finished(id, Duration::from_secs(60)).await;
        assert_eq!(info["ChangeOrderId"], id.as_str(), "{info:#}");
        assert_eq!(info["Status"], 2, "change order {id}: {info:#}");
    }
    eprintln!(
        "load: all {} change orders found and successful ({:?} to check)",
        tally.orders.len(),
        check.elapsed()
    );
    assert!(cluster.healthy().await);
}
