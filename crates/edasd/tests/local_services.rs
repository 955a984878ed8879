//! Black-box tests of Services on the built-in cluster `local`: the real `edasd` binary, signed
//! CreateK8sService / UpdateK8sService / DeleteK8sService / GetK8sServices requests, and the
//! service ports its local runtime listens on, across an edasd restart too.
//!
//! As in `local_runtime.rs`, the application's `Command` is this test binary re-executed with
//! the filter `testapp_entry`, carrying a tag unique to the test so that the test can kill
//! exactly its own instances when it ends (instances outlive edasd by design).

mod support;

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Cluster, envs, free_port};

/// Not a test: the test application's entry point when edasd's local runtime runs this binary.
#[test]
fn testapp_entry() {
    support::testapp_entry();
}

/// The shared [`Cluster`] with this file's Services helpers; dropping it kills edasd and every
/// instance of the test.
struct Edasd(Cluster);

impl std::ops::Deref for Edasd {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.0
    }
}

impl std::ops::DerefMut for Edasd {
    fn deref_mut(&mut self) -> &mut Cluster {
        &mut self.0
    }
}

impl Edasd {
    fn start(test: &str) -> Edasd {
        Edasd(Cluster::launch(
            format!("edasd-services-test-{test}-{}", std::process::id()),
            |_, _| "[local]\nrestart_backoff_seconds = 0.2\n".to_owned(),
            true,
            Duration::from_millis(100),
        ))
    }

    /// InsertK8sApplication of the test application on `local` (a readiness probe); returns (AppId, ChangeOrderId).
    async fn insert(&self, name: &str, replicas: &str, extra: &[(&str, &str)]) -> (String, String) {
        let exe = std::env::current_exe().unwrap().display().to_string();
        let args = json!([
            {"argument": "testapp_entry"}, {"argument": self.tag}, {"argument": "--exact"}
        ])
        .to_string();
        let envs = envs(&[("APP_VERSION", "v1")]);
        let readiness =
            json!({"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1}).to_string();
        let mut params: Vec<(&str, &str)> = vec![
            ("AppName", name),
            ("ClusterId", "local"),
            ("ImageUrl", "edas-testapp:v1"),
            ("Replicas", replicas),
            ("Command", &exe),
            ("CommandArgs", &args),
            ("Envs", &envs),
            ("Readiness", &readiness),
        ];
        params.extend_from_slice(extra);
        self.insert_app(&params).await
    }

    /// Waits until the change order is no longer active; returns its `Status`.
    async fn finished(&self, id: &str) -> i64 {
        self.0.finished(id, Duration::from_secs(60)).await["Status"]
            .as_i64()
            .unwrap()
    }

    async fn service_op(&self, method: &str, action: &str, params: &[(&str, &str)]) -> String {
        let body = self
            .call(method, "/pop/v5/k8s/acs/k8s_service", action, params)
            .await;
        let id = body["ChangeOrderId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(!id.is_empty(), "{action}: {body}");
        id
    }

    /// The pids of this test's instances.
    fn instance_pids(&self) -> BTreeSet<i32> {
        self.tagged_processes()
    }
}

/// One GET / through a service port (blocking, short timeouts): the body, or why not.
fn get(port: u16) -> Result<String, String> {
    get_path(port, "/")
}

/// One GET of `path` through a service port: the body, or why not.
fn get_path(port: u16, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    match answer.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.trim().to_owned()),
        _ => Err(answer),
    }
}

/// Waits until `port` answers 200.
async fn until_served(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match get(port) {
            Ok(body) => return body,
            Err(e) => assert!(Instant::now() < deadline, "port {port} never answered: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn services_are_change_orders_that_open_move_and_close_service_ports() {
    let edasd = Edasd::start("ops");
    let (app, co) = edasd.insert("svc-demo", "3", &[]).await;
    assert_eq!(edasd.finished(&co).await, 2);
    let pids = edasd.instance_pids();
    assert_eq!(pids.len(), 3);

    let port = free_port();
    let ports = format!(r#"[{{"protocol":"TCP","port":{port},"targetPort":8080}}]"#);
    let co = edasd
        .service_op(
            "POST",
            "CreateK8sService",
            &[
                ("AppId", &app),
                ("Name", "web"),
                ("Type", "ClusterIP"),
                ("ServicePorts", &ports),
            ],
        )
        .await;
    assert_eq!(edasd.finished(&co).await, 2);
    assert!(until_served(port).await.starts_with("version=v1 "));
    assert_eq!(
        edasd.instance_pids(),
        pids,
        "a Service change replaces no instance"
    );

    let listed = edasd
        .call(
            "GET",
            "/pop/v5/k8s/acs/k8s_service",
            "GetK8sServices",
            &[("AppId", &app)],
        )
        .await;
    assert_eq!(
        listed["Services"],
        json!([{"ClusterIP": "127.0.0.1", "Name": "web", "Type": "ClusterIP",
                "ServicePorts": [{"NodePort": 0, "Port": port, "Protocol": "TCP", "TargetPort": "8080"}]}])
    );

    // Another application cannot take the port; UDP and NodePort are refused, naming the parameter.
    // InsertK8sApplication's ServiceConfigs open their port with the application.
    let other_port = free_port();
    let configs = format!(
        r#"[{{"name":"other","serviceType":"ClusterIP","portMappings":[{{"servicePort":{{"port":{other_port},"targetPort":8080,"protocol":"TCP"}}}}]}}]"#
    );
    let (other, co2) = edasd
        .insert("svc-other", "1", &[("ServiceConfigs", &configs)])
        .await;
    assert_eq!(edasd.finished(&co2).await, 2);
    assert!(until_served(other_port).await.starts_with("version=v1 "));
    let (status, body) = edasd
        .call_raw(
            "POST",
            "/pop/v5/k8s/acs/k8s_service",
            "CreateK8sService",
            &[
                ("AppId", &other),
                ("Name", "web"),
                ("Type", "ClusterIP"),
                ("ServicePorts", &ports),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["Message"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!(
                "port {port} is already a service port of application `svc-demo`"
            )),
        "{body}"
    );
    let udp = format!(
        r#"[{{"protocol":"UDP","port":{},"targetPort":8080}}]"#,
        free_port()
    );
    let (status, body) = edasd
        .call_raw(
            "POST",
            "/pop/v5/k8s/acs/k8s_service",
            "CreateK8sService",
            &[
                ("AppId", &app),
                ("Name", "dns"),
                ("Type", "ClusterIP"),
                ("ServicePorts", &udp),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["Message"].as_str().unwrap_or_default().contains("UDP"),
        "{body}"
    );
    let (status, body) = edasd
        .call_raw(
            "POST",
            "/pop/v5/k8s/acs/k8s_service",
            "CreateK8sService",
            &[
                ("AppId", &app),
                ("Name", "np"),
                ("Type", "NodePort"),
                ("ServicePorts", &ports),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["Message"]
            .as_str()
            .unwrap_or_default()
            .contains("Type"),
        "{body}"
    );

    // Move the Service to another port: the old port closes, the new one serves.
    let port2 = free_port();
    let ports2 = format!(r#"[{{"protocol":"TCP","port":{port2},"targetPort":8080}}]"#);
    let co = edasd
        .service_op(
            "PUT",
            "UpdateK8sService",
            &[
                ("AppId", &app),
                ("Name", "web"),
                ("Type", "ClusterIP"),
                ("ServicePorts", &ports2),
            ],
        )
        .await;
    assert_eq!(edasd.finished(&co).await, 2);
    assert!(until_served(port2).await.starts_with("version=v1 "));
    assert!(get(port).is_err(), "the old port is closed");

    // Across an edasd restart the port comes back with edasd; the gap is measured.
    let mut edasd = edasd;
    let probe = std::thread::spawn(move || {
        // From the first failed request (refused, or anything but 200) to the next answer.
        let mut down_since = None::<Instant>;
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            match get(port2) {
                Err(_) => {
                    down_since.get_or_insert_with(Instant::now);
                }
                Ok(_) => {
                    if let Some(t) = down_since {
                        return Some(t.elapsed());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    edasd.stop_edasd();
    edasd.spawn();
    let gap = tokio::task::spawn_blocking(move || probe.join().unwrap())
        .await
        .unwrap()
        .expect("the port came back within 30 s");
    eprintln!("service port gap across an edasd restart: {gap:?}");
    assert!(
        gap < Duration::from_secs(3),
        "service port down for {gap:?}"
    );
    assert!(get(port2).unwrap().starts_with("version=v1 "));

    // A request in flight when edasd is told to stop still gets its answer (edasd stops
    // listening at once and exits when it is done, so this restart's gap includes it).
    let in_flight = std::thread::spawn(move || get_path(port2, "/slow?ms=1000"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    edasd.stop_edasd();
    edasd.spawn();
    let slow = tokio::task::spawn_blocking(move || in_flight.join().unwrap())
        .await
        .unwrap();
    assert!(
        slow.as_deref().is_ok_and(|b| b.starts_with("version=v1 ")),
        "the request in flight across the SIGTERM was cut: {slow:?}"
    );

    let co = edasd
        .service_op(
            "DELETE",
            "DeleteK8sService",
            &[("AppId", &app), ("Name", "web")],
        )
        .await;
    assert_eq!(edasd.finished(&co).await, 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        get(port2).is_err(),
        "the port is closed after DeleteK8sService"
    );
    let listed = edasd
        .call(
            "GET",
            "/pop/v5/k8s/acs/k8s_service",
            "GetK8sServices",
            &[("AppId", &app)],
        )
        .await;
    assert_eq!(listed["Services"], json!([]));

    // Deleting an application closes its service ports.
    assert!(get(other_port).is_ok());
    let body = edasd
        .call(
            "DELETE",
            "/pop/v5/k8s/acs/k8s_apps",
            "DeleteK8sApplication",
            &[("AppId", &other)],
        )
        .await;
    let co = body["ChangeOrderId"].as_str().unwrap().to_owned();
    assert_eq!(edasd.finished(&co).await, 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        get(other_port).is_err(),
        "the deleted application's port is closed"
    );
}

/// The instance name in a `version=… instance=…` answer.
fn instance_of(body: &str) -> String {
    body.split("instance=")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_scaled_up_instance_ramps_up_along_the_lossless_warm_up_curve() {
    let edasd = Edasd::start("warmup");
    let port = free_port();
    let configs = format!(
        r#"[{{"name":"web","serviceType":"ClusterIP","portMappings":[{{"servicePort":{{"port":{port},"targetPort":8080}}}}]}}]"#
    );
    // Lossless start: no request for 1 s, then a linear ramp over 4 s.
    let lossless = [
        ("ServiceConfigs", configs.as_str()),
        ("EnableLosslessRule", "true"),
        ("LosslessRuleDelayTime", "1"),
        ("LosslessRuleWarmupTime", "4"),
        ("LosslessRuleFuncType", "1"),
    ];
    let (app, co) = edasd.insert("warm", "1", &lossless).await;
    assert_eq!(edasd.finished(&co).await, 2);
    // The first instance ramps up too; once it answers it is past its delay: let it warm up.
    let first = instance_of(&until_served(port).await);
    tokio::time::sleep(Duration::from_millis(4200)).await;

    let body = edasd
        .call(
            "PUT",
            "/pop/v5/k8s/acs/k8s_apps",
            "ScaleK8sApplication",
            &[("AppId", &app), ("Replicas", "2")],
        )
        .await;
    let co = body["ChangeOrderId"].as_str().unwrap().to_owned();
    assert_eq!(edasd.finished(&co).await, 2);
    // The new instance is ready now: its share of requests in 500 ms windows over 6.5 s.
    let start = Instant::now();
    let mut shares = Vec::new();
    for window in 1..=13u32 {
        let end = start + Duration::from_millis(500) * window;
        let (mut total, mut new) = (0u32, 0u32);
        while Instant::now() < end {
            let body = get(port).expect("no request fails");
            total += 1;
            new += u32::from(instance_of(&body) != first);
        }
        shares.push(f64::from(new) / f64::from(total.max(1)));
    }
    eprintln!("share of the new instance per 500 ms: {shares:.2?}");
    assert_eq!(shares[0], 0.0, "nothing during the delay: {shares:.2?}");
    let (early, late, warm) = (shares[3], shares[7], shares[12]);
    assert!(0.0 < early && early < late, "the share grows: {shares:.2?}");
    assert!(late < warm, "the share grows: {shares:.2?}");
    assert!(
        (0.4..=0.6).contains(&warm),
        "half of the requests once warm: {shares:.2?}"
    );
}
