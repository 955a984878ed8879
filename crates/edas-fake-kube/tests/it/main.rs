//! Integration tests: kube-rs against the in-process fake, the binary over loopback, and kubectl.

mod binary;
mod failures;
mod kube_client;
mod kubectl;
mod statefulset;
mod watch;

use std::future::Future;
use std::time::Duration;

use edas_fake_kube::{Config, FakeCluster};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use serde_json::json;

/// Every wait in these tests gives up after this long, so no test can hang.
pub const WAIT: Duration = Duration::from_secs(15);

pub async fn start(config: Config) -> FakeCluster {
    FakeCluster::start(config)
        .await
        .expect("the fake cluster starts")
}

pub async fn quick_cluster() -> FakeCluster {
    start(Config {
        pod_ready_delay: Duration::from_millis(50),
        ..Config::default()
    })
    .await
}

/// kube builds its rustls config from the process-wide crypto provider. A workspace build enables
/// two providers (ring through kube, aws-lc through reqwest), so rustls cannot pick one by itself:
/// tests install ring, the provider kube is configured with.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn client_for(base_url: &str) -> Client {
    install_crypto_provider();
    let mut config = kube::Config::new(base_url.parse().expect("a valid URL"));
    config.default_namespace = "default".into();
    Client::try_from(config).expect("a kube client")
}

pub fn client(cluster: &FakeCluster) -> Client {
    client_for(&cluster.base_url())
}

/// A Deployment `name` running `image`, with a rolling update of maxSurge 1 / maxUnavailable 0.
pub fn deployment(name: &str, image: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    }))
    .expect("a valid Deployment")
}

/// `kubectl rollout status`'s definition of a finished rollout.
pub fn rolled_out(deployment: &Deployment) -> bool {
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    deployment.status.as_ref().is_some_and(|s| {
        s.observed_generation.unwrap_or(0) >= generation
            && s.updated_replicas.unwrap_or(0) == wanted
            && s.replicas.unwrap_or(0) == wanted
            && s.available_replicas.unwrap_or(0) == wanted
    })
}

/// Polls `check` every 20 ms until it returns `Some`, failing the test after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
