//! Services of the local runtime: service ports proxied to real instance processes, gray
//! splits, draining on scale-down, and ports that come back with a new runtime. (The lossless
//! warm-up ramp is shown end to end in `crates/edasd/tests/local_services.rs`.)
//!
//! Like `runtime.rs`, the application is `edas-testapp`, run by re-executing this test binary
//! with the filter `testapp_entry`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use edas_local::LocalRuntime;
use edas_runtime::{GraySplit, Routing, Runtime, RuntimeError};
use edas_spec::AppSpec;
use edas_spec::model::{PortMapping, ServiceConfig, ServicePort};
use edas_spec::release::{TrafficControl, TrafficRule};
use k8s_openapi::api::core::v1::Probe;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Not a test: the test application's entry point when the runtime re-executes this binary.
#[test]
fn testapp_entry() {
    if std::env::var_os("EDAS_LOCAL_RUN_TESTAPP").is_some() {
        if let Err(e) = edas_testapp::run() {
            eprintln!("edas-testapp: {e}");
            std::process::exit(2);
        }
        std::process::exit(0);
    }
}

mod common;

use common::{APP, Harness, app_ref, config, http_probe};

/// The test application, version `version`, ready once `/ready` answers (probed every second).
fn testapp(version: &str) -> Arc<AppSpec> {
    Arc::new(AppSpec {
        readiness: Some(Probe {
            failure_threshold: None,
            ..http_probe("/ready", 1, 3)
        }),
        ..common::testapp(version, &[])
    })
}

/// A free loopback port for a service.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn service(port: u16, protocol: Option<&str>) -> ServiceConfig {
    ServiceConfig {
        name: "web".into(),
        service_type: "ClusterIP".into(),
        port_mappings: vec![PortMapping {
            service_port: ServicePort {
                port: i64::from(port),
                target_port: 8080,
                protocol: protocol.map(str::to_owned),
                node_port: None,
            },
        }],
    }
}

fn routing(port: u16) -> Routing {
    Routing {
        services: vec![service(port, Some("TCP"))],
        ..Routing::default()
    }
}

/// One GET through the service port: (status, body), or the I/O error.
async fn get(port: u16) -> Result<(u16, String), String> {
    get_with(port, "").await
}

/// One GET with extra header lines (each ending in `\r\n`).
async fn get_with(port: u16, headers: &str) -> Result<(u16, String), String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET / HTTP/1.1\r\nHost: svc\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// The `version=… instance=…` answer's instance name.
fn instance_of(body: &str) -> &str {
    body.split("instance=").nth(1).unwrap_or("")
}

#[tokio::test]
async fn a_service_port_balances_over_ready_instances_and_splits_gray_traffic() {
    let mut h = Harness::new();
    let port = free_port();
    let v1 = testapp("v1");
    h.set(&v1, "1", 2).await;
    h.rt().check_routing(&routing(port)).unwrap();
    h.rt()
        .set_routing(&app_ref(APP), &routing(port))
        .await
        .unwrap();
    h.rt()
        .set_routing(&app_ref(APP), &routing(port))
        .await
        .unwrap(); // idempotent
    assert_eq!(h.rt().service_ports(APP), vec![port]);
    h.wait_for("1", Duration::from_secs(10), |s| s.ready == 2)
        .await;
    let mut seen = BTreeMap::<String, u32>::new();
    for _ in 0..20 {
        let (status, body) = get(port).await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("version=v1 "), "{body}");
        *seen.entry(instance_of(&body).to_owned()).or_default() += 1;
    }
    assert_eq!(seen.len(), 2, "both instances serve: {seen:?}");
    assert!(seen.values().all(|n| *n == 10), "round robin: {seen:?}");

    // A gray revision with a 20 % split: exactly every fifth request.
    let v2 = testapp("v2");
    h.set(&v2, "2", 1).await;
    h.wait_for("2", Duration::from_secs(10), |s| s.ready == 1)
        .await;
    let gray = Routing {
        gray: Some(GraySplit {
            stable_revision: "1".into(),
            gray_revision: "2".into(),
            traffic: TrafficControl {
                rules: vec![TrafficRule::Percent { percent: 20 }],
            },
        }),
        ..routing(port)
    };
    h.rt().check_routing(&gray).unwrap();
    h.rt().set_routing(&app_ref(APP), &gray).await.unwrap();
    let mut v2_answers = 0;
    for _ in 0..100 {
        let (status, body) = get(port).await.unwrap();
        assert_eq!(status, 200);
        v2_answers += u32::from(body.starts_with("version=v2 "));
    }
    assert_eq!(v2_answers, 20, "20 % to gray");

    // A header rule: requests carrying it go to gray, the others stay stable.
    let by_header = Routing {
        gray: Some(GraySplit {
            stable_revision: "1".into(),
            gray_revision: "2".into(),
            traffic: TrafficControl {
                rules: vec![TrafficRule::Content {
                    conditions: vec![edas_spec::release::TrafficCondition {
                        source: edas_spec::release::ConditionSource::Header,
                        name: "x-gray".into(),
                        operator: edas_spec::release::ConditionOperator::Equal,
                        value: "1".into(),
                    }],
                }],
            },
        }),
        ..routing(port)
    };
    h.rt().set_routing(&app_ref(APP), &by_header).await.unwrap();
    for _ in 0..10 {
        let (_, body) = get_with(port, "x-gray: 1\r\n").await.unwrap();
        assert!(body.starts_with("version=v2 "), "{body}");
        let (_, body) = get(port).await.unwrap();
        assert!(body.starts_with("version=v1 "), "{body}");
    }

    // Without the split, the gray instance is one of three equal backends.
    h.rt()
        .set_routing(&app_ref(APP), &routing(port))
        .await
        .unwrap();
    let mut v2_answers = 0;
    for _ in 0..30 {
        v2_answers += u32::from(get(port).await.unwrap().1.starts_with("version=v2 "));
    }
    assert_eq!(v2_answers, 10);

    // No Services: the port closes.
    h.rt()
        .set_routing(&app_ref(APP), &Routing::default())
        .await
        .unwrap();
    assert!(h.rt().service_ports(APP).is_empty());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(get(port).await.is_err(), "the port no longer listens");
    h.set(&v1, "1", 0).await;
    h.set(&v2, "2", 0).await;
}

#[tokio::test]
async fn scaling_down_drains_instances_so_no_request_fails() {
    let mut h = Harness::new();
    let port = free_port();
    let v1 = testapp("v1");
    h.rt()
        .set_routing(&app_ref(APP), &routing(port))
        .await
        .unwrap();
    h.set(&v1, "1", 3).await;
    h.wait_for("1", Duration::from_secs(10), |s| s.ready == 3)
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match get(port).await {
                    Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        errors.push(format!("{other:?}"));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            errors
        }));
    }
    // 3 → 1 → 2 → 0 new ones of another revision and back: every stop goes through a drain.
    h.set(&v1, "1", 1).await;
    h.wait_for("1", Duration::from_secs(15), |s| s.total == 1)
        .await;
    let v2 = testapp("v2");
    h.set(&v2, "2", 2).await;
    h.wait_for("2", Duration::from_secs(10), |s| s.ready == 2)
        .await;
    h.set(&v1, "1", 0).await;
    h.wait_for("1", Duration::from_secs(15), |s| s.total == 0)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for c in clients {
        errors.extend(c.await.unwrap());
    }
    let ok = ok.load(Ordering::Relaxed);
    assert!(ok > 100, "only {ok} requests");
    assert!(
        errors.is_empty(),
        "{} of {} failed: {errors:?}",
        errors.len(),
        ok
    );
    assert!(get(port).await.unwrap().1.starts_with("version=v2 "));
    h.set(&v2, "2", 0).await;
}

#[tokio::test]
async fn service_ports_come_back_with_a_new_runtime() {
    let mut h = Harness::new();
    let port = free_port();
    let v1 = testapp("v1");
    h.rt()
        .set_routing(&app_ref(APP), &routing(port))
        .await
        .unwrap();
    h.set(&v1, "1", 1).await;
    h.wait_for("1", Duration::from_secs(10), |s| s.ready == 1)
        .await;
    assert_eq!(get(port).await.unwrap().0, 200);

    drop(h.rt.take());
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A file the old runtime left that the new one cannot read (nothing to restore from it).
    let unreadable = h.dir.path().join("routing").join("stale-app.json");
    std::fs::write(&unreadable, "{not json").unwrap();
    let down = tokio::time::Instant::now();
    let rt = LocalRuntime::new(config(h.dir.path())).unwrap();
    h.events = rt.subscribe();
    h.rt = Some(rt);
    // The adopted, still-ready instance answers as soon as the port listens again.
    loop {
        if let Ok((status, body)) = get(port).await {
            assert_eq!(status, 200, "{body}");
            break;
        }
        assert!(
            down.elapsed() < Duration::from_secs(2),
            "the port did not come back"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("service port back after {:?}", down.elapsed());
    // The Services go: the new runtime removes the file the old one wrote, and the port closes.
    let file = h.dir.path().join("routing").join(format!("{APP}.json"));
    assert!(file.exists());
    h.rt()
        .set_routing(&app_ref(APP), &Routing::default())
        .await
        .unwrap();
    assert!(!file.exists(), "the routing file outlived its Services");
    let closing = tokio::time::Instant::now();
    while get(port).await.is_ok() {
        assert!(
            closing.elapsed() < Duration::from_secs(2),
            "the port still answers"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.rt()
        .set_routing(&app_ref("stale-app"), &Routing::default())
        .await
        .unwrap();
    assert!(
        !unreadable.exists(),
        "a routing without Services left the old file"
    );
    // Without Services, nothing is written.
    h.rt()
        .set_routing(&app_ref("another-app"), &Routing::default())
        .await
        .unwrap();
    assert!(
        !h.dir
            .path()
            .join("routing")
            .join("another-app.json")
            .exists()
    );
    h.set(&v1, "1", 0).await;
    h.wait_for("1", Duration::from_secs(15), |s| s.total == 0)
        .await;
}

#[tokio::test]
async fn what_the_local_proxy_cannot_serve_is_refused() {
    let h = Harness::new();
    let udp = Routing {
        services: vec![service(free_port(), Some("UDP"))],
        ..Routing::default()
    };
    let err = h.rt().check_routing(&udp).unwrap_err();
    assert!(matches!(err, RuntimeError::Unsupported(_)));
    assert!(err.to_string().contains("protocol UDP"), "{err}");
    assert!(h.rt().set_routing(&app_ref(APP), &udp).await.is_err());

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = routing(busy.local_addr().unwrap().port());
    let err = h.rt().check_routing(&taken).unwrap_err().to_string();
    assert!(err.contains("cannot be listened on"), "{err}");

    let port = free_port();
    h.rt()
        .set_routing(&app_ref(APP), &routing(port))
        .await
        .unwrap();
    let err = h
        .rt()
        .set_routing(&app_ref("other-app"), &routing(port))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("service port of application {APP}")),
        "{err}"
    );

    let bad_regex = Routing {
        gray: Some(GraySplit {
            stable_revision: "1".into(),
            gray_revision: "2".into(),
            traffic: TrafficControl {
                rules: vec![TrafficRule::Content {
                    conditions: vec![edas_spec::release::TrafficCondition {
                        source: edas_spec::release::ConditionSource::Header,
                        name: "x".into(),
                        operator: edas_spec::release::ConditionOperator::Regex,
                        value: "(".into(),
                    }],
                }],
            },
        }),
        ..routing(port)
    };
    let err = h.rt().check_routing(&bad_regex).unwrap_err().to_string();
    assert!(err.contains("TrafficControlStrategy"), "{err}");
}
