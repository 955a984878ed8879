//! The `edas-fake-kube` binary over loopback: the kubeconfig it writes, the control API, and
//! several clients at once.

use std::process::Stdio;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{WAIT, client_for, deployment, eventually, rolled_out};

async fn control(
    client: &kube::Client,
    method: &str,
    path: &str,
    body: &str,
) -> Result<String, kube::Error> {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.as_bytes().to_vec())
        .unwrap();
    client.request_text(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_kubeconfig_clients_and_the_control_api() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_edas-fake-kube"))
        .args(["--port", "0", "--pod-ready-delay-ms", "50", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("it prints its address")
        .unwrap()
        .unwrap();
    let base_url = first
        .strip_prefix("listening on ")
        .expect("the first line names the address")
        .to_owned();
    assert!(base_url.starts_with("http://127.0.0.1:"), "{base_url}");

    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&kubeconfig).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(config.default_namespace, "default");
    crate::install_crypto_provider();
    let client = kube::Client::try_from(config).unwrap();
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    deployments
        .create(&PostParams::default(), &deployment("web", "nginx:1", 2))
        .await
        .unwrap();
    // A second, independent client (another process in real use) sees the same cluster.
    let other: Api<Deployment> = Api::default_namespaced(client_for(&base_url));
    eventually("the rollout, seen by another client", || async {
        other.get("web").await.ok().filter(rolled_out)
    })
    .await;

    // Control API: an API fault, then clearing it; invalid faults are rejected by field.
    control(
        &client,
        "POST",
        "/_fake/faults/api",
        r#"{"method":"GET","path":"/api/v1/*","status":500,"times":1}"#,
    )
    .await
    .unwrap();
    let config_maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    match config_maps.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 500),
        other => panic!("expected the injected 500, got {other:?}"),
    }
    config_maps.list(&ListParams::default()).await.unwrap();
    match control(
        &client,
        "POST",
        "/_fake/faults/api",
        r#"{"path":"/x","status":500,"delayMs":5}"#,
    )
    .await
    {
        Err(kube::Error::Api(status)) => {
            assert!(status.message.contains("delayMs"), "{}", status.message)
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    match control(
        &client,
        "POST",
        "/_fake/faults/pods",
        r#"{"effect":"explode"}"#,
    )
    .await
    {
        Err(kube::Error::Api(status)) => {
            assert!(status.message.contains("effect"), "{}", status.message)
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    control(
        &client,
        "POST",
        "/_fake/faults/pods",
        r#"{"effect":"neverReady","selector":"app=web"}"#,
    )
    .await
    .unwrap();
    control(&client, "DELETE", "/_fake/faults", "")
        .await
        .unwrap();
    control(&client, "POST", "/_fake/watches/drop", "")
        .await
        .unwrap();
    control(&client, "POST", "/_fake/compact", "")
        .await
        .unwrap();
    assert_eq!(
        control(&client, "GET", "/_fake/healthz", "").await.unwrap(),
        "ok"
    );

    // The HPA stand-in over HTTP: scales the target within the HPA's bounds.
    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::default_namespaced(client.clone());
    let hpa = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 3}
    }))
    .unwrap();
    hpas.create(&PostParams::default(), &hpa).await.unwrap();
    let answer = control(
        &client,
        "POST",
        "/_fake/hpa/default/web",
        r#"{"desiredReplicas":9}"#,
    )
    .await
    .unwrap();
    assert_eq!(answer.trim(), r#"{"desiredReplicas":3}"#);
    assert_eq!(
        deployments.get("web").await.unwrap().spec.unwrap().replicas,
        Some(3)
    );
    match control(
        &client,
        "POST",
        "/_fake/hpa/default/web",
        r#"{"replicas":2}"#,
    )
    .await
    {
        Err(kube::Error::Api(status)) => {
            assert!(
                status.message.contains("desiredReplicas"),
                "{}",
                status.message
            )
        }
        other => panic!("expected a 400, got {other:?}"),
    }

    child.start_kill().unwrap();
    tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the binary exits")
        .unwrap();
}
