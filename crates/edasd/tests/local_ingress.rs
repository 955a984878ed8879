//! Black-box tests of ingress rules on the built-in cluster `local` (issue 24): the real `edasd`
//! binary with `[local] ingress_listen`, signed CreateK8sIngressRule / UpdateK8sIngressRule /
//! DeleteK8sIngressRule requests, and requests through the shared listener reaching two
//! applications by host and path — also after edasd was killed with SIGKILL and started again.
//! (The same operations through both official SDKs: tests/sdk/test_ingress.py.)
//!
//! As in `local_services.rs`, the applications run this test binary re-executed with the filter
//! `testapp_entry`, tagged so the test kills exactly its own instances when it ends.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Cluster, edasd_command, envs, free_port};

/// Not a test: the test application's entry point when edasd's local runtime runs this binary.
#[test]
fn testapp_entry() {
    support::testapp_entry();
}

const INGRESS: &str = "/pop/v5/k8s/acs/k8s_ingress";

/// One GET of `path` through the listener as `host`: (status, body).
fn through(port: u16, host: &str, path: &str) -> (u16, String) {
    let Ok(mut s) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1))
    else {
        return (0, "connection refused".into());
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The version an application answers `/` with, through the listener as `host`.
fn version(port: u16, host: &str) -> (u16, String) {
    let (status, body) = through(port, host, "/");
    (
        status,
        body.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned(),
    )
}

async fn insert(edasd: &Cluster, name: &str, service_port: u16) -> String {
    insert_n(edasd, name, service_port, "1").await
}

async fn insert_n(edasd: &Cluster, name: &str, service_port: u16, replicas: &str) -> String {
    let exe = std::env::current_exe().unwrap().display().to_string();
    let args = json!([
        {"argument": "testapp_entry"}, {"argument": edasd.tag}, {"argument": "--exact"}
    ])
    .to_string();
    let envs = envs(&[("APP_VERSION", name)]);
    let readiness =
        json!({"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1}).to_string();
    let services = json!([{"name": name, "serviceType": "ClusterIP", "portMappings":
        [{"servicePort": {"port": service_port, "targetPort": 8080, "protocol": "TCP"}}]}])
    .to_string();
    let (app, co) = edasd
        .insert_app(&[
            ("AppName", name),
            ("ClusterId", "local"),
            ("ImageUrl", "edas-testapp:v1"),
            ("Replicas", replicas),
            ("Command", &exe),
            ("CommandArgs", &args),
            ("Envs", &envs),
            ("Readiness", &readiness),
            ("ServiceConfigs", &services),
        ])
        .await;
    let done = edasd.finished(&co, Duration::from_secs(60)).await;
    assert_eq!(done["Status"], 2, "{done}");
    app
}

/// Waits until `host` answers 200 through the listener; how long that took.
async fn until_routed(port: u16, host: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = version(port, host);
        if status == 200 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{host} never routed: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_ingress_rule_routes_two_applications_and_survives_a_sigkill_of_edasd() {
    let listen = free_port();
    let mut edasd = Cluster::launch(
        format!("edasd-ingress-test-{}", std::process::id()),
        move |_, _| {
            format!(
                "[local]\nrestart_backoff_seconds = 0.2\ningress_listen = \"127.0.0.1:{listen}\"\n"
            )
        },
        true,
        Duration::from_millis(100),
    );
    let (shop_port, api_port) = (free_port(), free_port());
    let shop = insert(&edasd, "shop", shop_port).await;
    let api = insert(&edasd, "api", api_port).await;
    let conf = json!({"rules": [
        {"host": "shop.test", "paths": [
            {"path": "/", "backend": {"serviceName": "shop", "servicePort": shop_port}},
            {"path": "/env", "pathType": "Prefix",
             "backend": {"serviceName": "api", "servicePort": api_port}}]},
        {"host": "*.api.test", "paths": [
            {"path": "/", "backend": {"serviceName": "api", "servicePort": api_port}}]}]})
    .to_string();
    let asked = Instant::now();
    edasd
        .call(
            "POST",
            INGRESS,
            "CreateK8sIngressRule",
            &[
                ("ClusterId", "local"),
                ("Namespace", "default"),
                ("Name", "front"),
                ("IngressConf", &conf),
            ],
        )
        .await;
    let answered = asked.elapsed();
    assert_eq!(version(listen, "shop.test"), (200, "version=shop".into()));
    eprintln!("CreateK8sIngressRule answered in {answered:?}; routed when it answered");
    assert_eq!(
        through(listen, "shop.test", "/env/APP_VERSION"),
        (200, "api".into())
    );
    assert_eq!(version(listen, "eu.api.test"), (200, "version=api".into()));
    let (status, body) = version(listen, "api.test");
    assert_eq!(
        (status, body.as_str()),
        (404, "edas-proxy"),
        "the wildcard needs a label"
    );

    // A rule the ingress cannot honour is refused, naming the parameter; nothing changes.
    let (status, body) = edasd
        .call_raw(
            "PUT",
            INGRESS,
            "UpdateK8sIngressRule",
            &[
                ("ClusterId", "local"),
                ("Namespace", "default"),
                ("Name", "front"),
                (
                    "IngressConf",
                    &json!({"rules": [{"host": "shop.test", "secretName": "cert", "paths": [
                        {"path": "/", "backend": {"serviceName": "shop", "servicePort": shop_port}}]}]})
                    .to_string(),
                ),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["Code"], "InvalidParameter.NotSupported", "{body}");
    assert!(
        body["Message"]
            .as_str()
            .unwrap_or_default()
            .contains("IngressConf.rules[0].secretName"),
        "{body}"
    );
    assert_eq!(version(listen, "eu.api.test"), (200, "version=api".into()));

    // SIGKILL: the instances and their service ports outlive edasd; the listener goes with
    // it and is routed again from the store when edasd starts.
    edasd.kill_edasd();
    assert_eq!(
        version(listen, "shop.test").0,
        0,
        "the listener went with edasd"
    );
    let restarted = Instant::now();
    edasd.spawn();
    let listening = restarted.elapsed();
    let gap = until_routed(listen, "shop.test").await;
    eprintln!("after SIGKILL: edasd listening in {listening:?}, the rule routed {gap:?} later");
    assert_eq!(version(listen, "shop.test"), (200, "version=shop".into()));

    // The list shows both applications by path; the update moves shop.test to api.
    let listed = edasd
        .call(
            "GET",
            INGRESS,
            "ListK8sIngressRules",
            &[("ClusterId", "local")],
        )
        .await;
    let paths = &listed["Data"][0]["IngressConfs"][0]["Rules"][0]["Paths"];
    assert_eq!(paths[0]["AppId"], shop.as_str(), "{listed}");
    assert_eq!(paths[1]["AppId"], api.as_str(), "{listed}");
    assert_eq!(paths[1]["Status"], "Normal", "{listed}");
    let moved = json!({"rules": [{"host": "shop.test", "paths": [
        {"path": "/", "backend": {"serviceName": "api", "servicePort": api_port}}]}]})
    .to_string();
    edasd
        .call(
            "PUT",
            INGRESS,
            "UpdateK8sIngressRule",
            &[
                ("ClusterId", "local"),
                ("Namespace", "default"),
                ("Name", "front"),
                ("IngressConf", &moved),
            ],
        )
        .await;
    assert_eq!(version(listen, "shop.test"), (200, "version=api".into()));
    assert_eq!(version(listen, "eu.api.test").0, 404);
    edasd
        .call(
            "DELETE",
            INGRESS,
            "DeleteK8sIngressRule",
            &[
                ("ClusterId", "local"),
                ("Namespace", "default"),
                ("Name", "front"),
            ],
        )
        .await;
    assert_eq!(version(listen, "shop.test").0, 404);
}

/// The listener forwards to the Service's own proxy, so a release's gray split holds for
/// requests that come in through an ingress rule too.
#[tokio::test]
async fn a_gray_split_holds_through_the_ingress_listener() {
    let listen = free_port();
    let edasd = Cluster::launch(
        format!("edasd-ingress-gray-{}", std::process::id()),
        move |_, _| format!("[local]\ningress_listen = \"127.0.0.1:{listen}\"\n"),
        true,
        Duration::from_millis(100),
    );
    let port = free_port();
    let app = insert_n(&edasd, "gray", port, "2").await;
    let conf = json!({"rules": [{"host": "gray.test", "paths": [
        {"path": "/", "backend": {"serviceName": "gray", "servicePort": port}}]}]})
    .to_string();
    edasd
        .call(
            "POST",
            INGRESS,
            "CreateK8sIngressRule",
            &[
                ("ClusterId", "local"),
                ("Namespace", "default"),
                ("Name", "gray"),
                ("IngressConf", &conf),
            ],
        )
        .await;
    let strategy = r#"{"type":"GrayBatchUpdate","grayUpdate":{"gray":1},"batchUpdate":{"batch":1,"releaseType":"manual","batchWaitTime":0}}"#;
    let rule = r#"{"http":{"rules":[{"conditionType":"percent","percent":50}]}}"#;
    let co = edasd
        .deploy(
            &app,
            "v2",
            &[
                ("UpdateStrategy", strategy),
                ("TrafficControlStrategy", rule),
            ],
            &[("APP_VERSION", "v2")],
        )
        .await;
    edasd.wait_status(&co, &[8], Duration::from_secs(60)).await;
    let versions: Vec<String> = (0..200).map(|_| version(listen, "gray.test").1).collect();
    let gray = versions.iter().filter(|v| *v == "version=v2").count();
    let stable = versions.iter().filter(|v| *v == "version=gray").count();
    eprintln!("through the ingress listener during the gray batch: {gray} v2, {stable} v1 of 200");
    assert_eq!(gray + stable, 200, "{versions:?}");
    assert!((80..=120).contains(&gray), "the 50 % split: {gray} of 200");
}

/// A listener edasd cannot bind is a configuration mistake: edasd stops before it serves,
/// naming `ingress_listen`.
#[test]
fn an_ingress_listener_on_a_taken_address_stops_edasd_before_it_serves() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let config = dir.path().join("edasd.toml");
    std::fs::write(
        &config,
        format!("[local]\ningress_listen = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let mut command: Command = edasd_command(&dir.path().join("data"));
    let output = command
        .arg("--config")
        .arg(&config)
        .env("EDASD_ACCESS_KEY_ID", "LTAIingresstest0001")
        .env("EDASD_ACCESS_KEY_SECRET", "ingress-test-secret-0123456789")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ingress_listen"), "{stderr}");
    drop(taken);
}
