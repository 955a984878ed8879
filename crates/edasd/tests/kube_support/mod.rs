//! Shared by the Kubernetes black-box tests (`kubernetes.rs`, `two_edasd.rs`): the real `edasd`
//! binary configured with a `[[clusters]]` entry whose kubeconfig points at a cluster, signed
//! requests, and what the cluster shows (read with kube-rs, as `kubectl` would).
//!
//! The cluster is the in-process fake API server (`edas-fake-kube`), or, for the real-cluster
//! tier, the cluster `EDAS_TEST_KUBECONFIG` names: every scenario runs in a fresh namespace
//! labelled `edas.test/run`, deleted afterwards. With `EDAS_TEST_REQUIRE_KUBERNETES=1` a missing
//! kubeconfig fails the real-cluster tests instead of skipping them.

#![allow(dead_code)]

/// The generic pieces (starting edasd, signed requests, change-order waits), shared with the
/// local-runtime tests.
#[path = "../support/mod.rs"]
pub mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use edas_fake_kube::{Config, FakeCluster, PodFault};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
// Re-exported for the test files (`use kube_support::*`); not every file uses every one.
#[allow(unused_imports)]
pub use support::{Endpoint, blocking, edasd_command, pipelines, spawn_edasd, task_error_codes};

/// The administrator key edasd is started with.
pub const KEY: (&str, &str) = ("LTAIkubernetes", "kubernetes-secret-0123456789");
/// The cluster id of the `[[clusters]]` entry.
pub const CLUSTER: &str = "k8s";
/// Label on the application objects: the application id.
pub const LABEL_APP_ID: &str = "edas.oam.appid";
/// Label on pods and Deployments: the revision.
pub const LABEL_REVISION: &str = "edas.oam.revision";

/// Where the scenarios run.
pub struct Backend {
    /// The fake cluster, when not on a real one.
    pub fake: Option<FakeCluster>,
    /// The kubeconfig edasd and the test use.
    pub kubeconfig: PathBuf,
    /// The namespace of this scenario.
    pub namespace: String,
    pub client: kube::Client,
    /// How long things may take (a real cluster pulls images and schedules pods).
    pub patience: Duration,
    _dir: tempfile::TempDir,
}

/// Every call to the cluster from the test is bounded: a hang fails the test, naming the call.
pub async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: the cluster did not answer within 60 s"))
}

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn client_of(kubeconfig: &Path) -> kube::Client {
    install_crypto();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Images that run anywhere and become Ready without a probe.
pub const IMAGE_V1: &str = "registry.k8s.io/pause:3.10";
pub const IMAGE_V2: &str = "registry.k8s.io/pause:3.9";
/// Given with [`NEVER_READY_PROBE`] (and a fake-cluster fault): never becomes Ready.
pub const IMAGE_BROKEN: &str = "registry.k8s.io/pause:3.8";
/// A readiness probe no pause container passes (nothing listens on port 1).
pub const NEVER_READY_PROBE: &str =
    r#"{"tcpSocket":{"port":1},"periodSeconds":1,"timeoutSeconds":1,"failureThreshold":1}"#;

impl Backend {
    /// The fake API server; pods become Ready `ready_after` after they are created.
    pub async fn fake(test: &str, ready_after: Duration) -> Backend {
        Backend::fake_with(test, ready_after, false).await
    }

    /// The fake API server, serving Gateway API HTTPRoutes if `gateway_api`.
    pub async fn fake_with(test: &str, ready_after: Duration, gateway_api: bool) -> Backend {
        let fake = FakeCluster::start(Config {
            pod_ready_delay: ready_after,
            gateway_api,
            ..Config::default()
        })
        .await
        .unwrap();
        fake.add_pod_fault(PodFault::never_ready_image(IMAGE_BROKEN))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        fake.write_kubeconfig(&kubeconfig, "default").unwrap();
        let client = client_of(&kubeconfig).await;
        let backend = Backend {
            fake: Some(fake),
            kubeconfig,
            namespace: format!("edas-test-{test}"),
            client,
            patience: Duration::from_secs(30),
            _dir: dir,
        };
        backend.create_namespace().await;
        backend
    }

    /// The real cluster of `EDAS_TEST_KUBECONFIG`, or `None` (after saying why) when the tier
    /// is not configured; panics when it is required (`EDAS_TEST_REQUIRE_KUBERNETES=1`).
    pub async fn real(test: &str) -> Option<Backend> {
        let path = std::env::var("EDAS_TEST_KUBECONFIG")
            .ok()
            .filter(|p| !p.is_empty());
        let required = std::env::var("EDAS_TEST_REQUIRE_KUBERNETES").is_ok_and(|v| v == "1");
        let Some(path) = path else {
            assert!(
                !required,
                "EDAS_TEST_REQUIRE_KUBERNETES=1 but EDAS_TEST_KUBECONFIG names no kubeconfig: \
                 the real-cluster tier cannot run (see README: real-cluster tests)"
            );
            eprintln!(
                "SKIPPED: EDAS_TEST_KUBECONFIG is not set; the real-cluster tier runs against the \
                 cluster it names (see README)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::copy(&path, &kubeconfig)
            .unwrap_or_else(|e| panic!("EDAS_TEST_KUBECONFIG {path}: {e}"));
        let client = client_of(&kubeconfig).await;
        let suffix = format!(
            "{:x}",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_micros()
                % 0xff_ffff
        );
        let backend = Backend {
            fake: None,
            kubeconfig,
            namespace: format!("edas-test-{test}-{suffix}"),
            client,
            // A real cluster pulls images and schedules pods: minutes, unless told otherwise.
            patience: Duration::from_secs(
                std::env::var("EDAS_TEST_KUBERNETES_PATIENCE_SECONDS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(240),
            ),
            _dir: dir,
        };
        backend.create_namespace().await;
        Some(backend)
    }

    async fn create_namespace(&self) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": self.namespace, "labels": {"edas.test/run": "1"}}
        }))
        .unwrap();
        bounded(
            "creating the namespace",
            api.create(&PostParams::default(), &ns),
        )
        .await
        .unwrap();
    }

    /// Deletes the scenario's namespace (on a real cluster; the fake goes away by itself).
    pub async fn cleanup(&self) {
        if self.fake.is_none() {
            let api: Api<Namespace> = Api::all(self.client.clone());
            let _ = bounded(
                "deleting the namespace",
                api.delete(&self.namespace, &DeleteParams::background()),
            )
            .await;
        }
    }

    /// The pods of an application: revision → (ready, total, names).
    pub async fn pods(&self, app_id: &str) -> BTreeMap<String, (u32, u32, BTreeSet<String>)> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let lp = ListParams::default().labels(&format!("{LABEL_APP_ID}={app_id}"));
        let list = bounded("listing pods", api.list(&lp)).await.unwrap();
        let mut out: BTreeMap<String, (u32, u32, BTreeSet<String>)> = BTreeMap::new();
        for pod in list.items {
            let rev = pod.metadata.labels.as_ref().unwrap()[LABEL_REVISION].clone();
            let entry = out.entry(rev).or_default();
            let ready = pod.metadata.deletion_timestamp.is_none()
                && pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            entry.0 += u32::from(ready);
            entry.1 += 1;
            entry.2.insert(pod.metadata.name.unwrap());
        }
        out
    }

    /// `spec.replicas` of the application's Deployments, by revision.
    pub async fn deployments(&self, app_id: &str) -> BTreeMap<String, i32> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let lp = ListParams::default().labels(&format!("{LABEL_APP_ID}={app_id}"));
        let list = bounded("listing Deployments", api.list(&lp)).await.unwrap();
        list.items
            .into_iter()
            .map(|d| {
                (
                    d.metadata.labels.as_ref().unwrap()[LABEL_REVISION].clone(),
                    d.spec.and_then(|s| s.replicas).unwrap_or(1),
                )
            })
            .collect()
    }

    /// Waits until `check` holds for the application's pods (ready, total by revision).
    pub async fn wait_pods(
        &self,
        app_id: &str,
        what: &str,
        check: impl Fn(&BTreeMap<String, (u32, u32)>) -> bool,
    ) -> BTreeMap<String, (u32, u32)> {
        let deadline = Instant::now() + self.patience;
        loop {
            let pods: BTreeMap<String, (u32, u32)> = self
                .pods(app_id)
                .await
                .into_iter()
                .map(|(r, (ready, total, _))| (r, (ready, total)))
                .collect();
            if check(&pods) {
                return pods;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {:?}: {pods:?}",
                self.patience
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Records every pod of the namespace as it appears: the pod names seen per revision, and
    /// the most pods (not being deleted) that existed at once. The recording stops when the
    /// returned log is dropped.
    pub fn record_pods(&self) -> PodLog {
        let inner = Arc::new(Mutex::new(PodLogInner::default()));
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let shared = inner.clone();
        let task = tokio::spawn(async move {
            let mut live: BTreeSet<String> = BTreeSet::new();
            // With back-off: a watch that keeps failing (its namespace deleted) must not spin.
            let stream = watcher(api, watcher::Config::default()).default_backoff();
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let Ok(event) = event else { continue };
                let (pod, deleted) = match event {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => (p, false),
                    watcher::Event::Delete(p) => (p, true),
                    _ => continue,
                };
                let name = pod.metadata.name.clone().unwrap_or_default();
                let rev = pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_REVISION))
                    .cloned()
                    .unwrap_or_default();
                if deleted || pod.metadata.deletion_timestamp.is_some() {
                    live.remove(&name);
                } else {
                    live.insert(name.clone());
                }
                let mut log = shared.lock().unwrap();
                log.seen.entry(rev).or_default().insert(name);
                log.max_live = log.max_live.max(live.len());
            }
        });
        PodLog { inner, task }
    }
}

#[derive(Default)]
pub struct PodLogInner {
    pub seen: BTreeMap<String, BTreeSet<String>>,
    pub max_live: usize,
}

/// What [`Backend::record_pods`] saw.
pub struct PodLog {
    inner: Arc<Mutex<PodLogInner>>,
    task: tokio::task::JoinHandle<()>,
}

impl PodLog {
    /// Pods ever created per revision.
    pub fn created(&self) -> BTreeMap<String, usize> {
        self.inner
            .lock()
            .unwrap()
            .seen
            .iter()
            .map(|(r, s)| (r.clone(), s.len()))
            .collect()
    }

    pub fn max_live(&self) -> usize {
        self.inner.lock().unwrap().max_live
    }
}

impl Drop for PodLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One edasd process with its data directory. Derefs to its [`Endpoint`] for the signed
/// requests.
pub struct Edasd {
    pub dir: PathBuf,
    config: PathBuf,
    kubeconfig: PathBuf,
    database_url: Option<String>,
    child: Option<Child>,
    pub api: Endpoint,
}

impl std::ops::Deref for Edasd {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.api
    }
}

impl Edasd {
    /// Writes the configuration (the cluster `k8s` at `kubeconfig`, a short engine lease) and
    /// starts edasd with its data under `dir`.
    pub fn start(dir: &Path, kubeconfig: &Path, database_url: Option<&str>) -> Edasd {
        Edasd::start_with(dir, kubeconfig, database_url, "")
    }

    /// [`Edasd::start`] with `more` appended to the configuration (e.g. another cluster).
    pub fn start_with(
        dir: &Path,
        kubeconfig: &Path,
        database_url: Option<&str>,
        more: &str,
    ) -> Edasd {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("edasd.toml");
        let mut edasd = Edasd {
            dir: dir.to_owned(),
            config,
            kubeconfig: kubeconfig.to_owned(),
            database_url: database_url.map(str::to_owned),
            child: None,
            api: Endpoint::new(KEY, Duration::from_secs(30), Duration::from_millis(100)),
        };
        edasd.configure("", more);
        edasd.spawn();
        edasd
    }

    /// Writes the configuration: the cluster `k8s` (plus `cluster_extra` lines in its entry),
    /// a short engine lease, then `more`. Takes effect at the next [`Edasd::spawn`].
    pub fn configure(&self, cluster_extra: &str, more: &str) {
        std::fs::write(
            &self.config,
            format!(
                "[engine]\nlease_seconds = 2\n\n[[clusters]]\nid = \"{CLUSTER}\"\nkubeconfig = \"{}\"\n{cluster_extra}\n{more}",
                self.kubeconfig.display()
            ),
        )
        .unwrap();
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Another edasd in `dir` on the same database (`database_url`) and cluster, with the
    /// store's encryption key copied from this one (as an operator deploys them) and `more`
    /// appended to its configuration.
    pub fn another(&self, dir: &Path, backend: &Backend, database_url: &str, more: &str) -> Edasd {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::copy(
            self.data_dir().join("store.key"),
            dir.join("data").join("store.key"),
        )
        .unwrap();
        Edasd::start_with(dir, &backend.kubeconfig, Some(database_url), more)
    }

    /// Starts (or restarts) the process.
    pub fn spawn(&mut self) {
        let mut command = edasd_command(&self.data_dir());
        command
            .arg("--config")
            .arg(&self.config)
            .env("EDASD_ACCESS_KEY_ID", KEY.0)
            .env("EDASD_ACCESS_KEY_SECRET", KEY.1)
            .env("EDASD_LOG", "info,kube=warn")
            .env_remove("EDASD_DATABASE_URL");
        if let Some(url) = &self.database_url {
            command.arg("--database-url").arg(url);
        }
        let tag = self.dir.file_name().unwrap().to_string_lossy().into_owned();
        let (child, base, _lines) = spawn_edasd(&mut command, Some(format!("edasd[{tag}]")));
        self.child = Some(child);
        self.api.base = base;
    }

    /// SIGKILL: edasd gets no chance to do anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            blocking(|| {
                let _ = child.wait();
            });
        }
    }

    /// InsertK8sApplication on the cluster; returns (AppId, ChangeOrderId).
    pub async fn insert(
        &self,
        backend: &Backend,
        name: &str,
        replicas: u32,
        extra: &[(&str, &str)],
    ) -> (String, String) {
        let replicas = replicas.to_string();
        let mut params: Vec<(&str, &str)> = vec![
            ("AppName", name),
            ("ClusterId", CLUSTER),
            ("Namespace", &backend.namespace),
            ("ImageUrl", IMAGE_V1),
            ("Replicas", &replicas),
        ];
        params.extend_from_slice(extra);
        self.insert_app(&params).await
    }

    /// DeployK8sApplication of `image`; returns the ChangeOrderId.
    pub async fn deploy(&self, app_id: &str, image: &str, extra: &[(&str, &str)]) -> String {
        let mut params: Vec<(&str, &str)> = vec![("AppId", app_id), ("Image", image)];
        params.extend_from_slice(extra);
        self.deploy_app(&params).await
    }

    /// Waits until the change order reached a final status; returns its final info.
    pub async fn finished(&self, id: &str, within: Duration) -> Value {
        self.api.wait_status(id, &[2, 3, 6, 7, 10], within).await
    }

    /// ContinuePipeline for the batch the order waits for.
    pub async fn continue_next(&self, id: &str) {
        let info = self.order(id).await;
        let pipeline = pipelines(&info)
            .into_iter()
            .find(|p| p["PipelineStatus"] != 2)
            .unwrap_or_else(|| panic!("no batch waits: {info:#}"));
        let pipeline_id = pipeline["PipelineId"].as_str().unwrap().to_owned();
        self.call(
            "GET",
            "/pop/v5/changeorder/pipeline_batch_confirm",
            "ContinuePipeline",
            &[("PipelineId", &pipeline_id), ("Confirm", "true")],
        )
        .await;
    }

    /// An action on the application whose only parameter is its `AppId` (StopK8sApplication,
    /// StartK8sApplication, RestartK8sApplication, DeleteK8sApplication); returns the response's
    /// `ChangeOrderId`.
    pub async fn app_order(&self, method: &str, path: &str, action: &str, app_id: &str) -> String {
        let body = self.call(method, path, action, &[("AppId", app_id)]).await;
        body["ChangeOrderId"].as_str().unwrap().to_owned()
    }

    /// DeleteK8sApplication; returns the ChangeOrderId.
    pub async fn delete(&self, app_id: &str) -> String {
        self.app_order(
            "DELETE",
            "/pop/v5/k8s/acs/k8s_apps",
            "DeleteK8sApplication",
            app_id,
        )
        .await
    }

    /// AbortChangeOrder, AbortAndRollbackChangeOrder or RollbackChangeOrder; returns the
    /// response's `Data.ChangeOrderId`.
    pub async fn control(&self, action: &str, path: &str, id: &str) -> String {
        let body = self
            .call("PUT", path, action, &[("ChangeOrderId", id)])
            .await;
        body["Data"]["ChangeOrderId"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for Edasd {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Backend {
    /// Every object left labelled with the application id, in every namespace, as `Kind/name`
    /// (pods being deleted included: they still exist).
    pub async fn leftovers(&self, app_id: &str) -> Vec<String> {
        use k8s_openapi::api::apps::v1::ReplicaSet;
        use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
        let lp = ListParams::default().labels(&format!("{LABEL_APP_ID}={app_id}"));
        let mut out = Vec::new();
        macro_rules! names {
            ($kind:ty, $label:expr) => {{
                let api: Api<$kind> = Api::all(self.client.clone());
                let list = bounded(concat!("listing ", $label), api.list_metadata(&lp))
                    .await
                    .unwrap();
                out.extend(
                    list.items
                        .into_iter()
                        .map(|o| format!("{}/{}", $label, o.metadata.name.unwrap_or_default())),
                );
            }};
        }
        names!(Deployment, "Deployment");
        names!(ReplicaSet, "ReplicaSet");
        names!(Pod, "Pod");
        names!(Service, "Service");
        names!(ConfigMap, "ConfigMap");
        names!(Secret, "Secret");
        out
    }

    /// Waits until no object labelled with the application id is left; panics after `within`.
    pub async fn wait_swept(&self, app_id: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = self.leftovers(app_id).await;
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "objects of application {app_id} left after {within:?}: {left:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A TCP relay on 127.0.0.1 in front of an API server, that the test can take down (the port
/// refuses connections and open ones are cut, as when an API server dies) and bring back on
/// the same port with the cluster's state intact.
pub struct Relay {
    pub port: u16,
    target: std::net::SocketAddr,
    running: Mutex<Vec<tokio::task::AbortHandle>>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    /// A relay to `target`, up.
    pub async fn start(target: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay {
            port: listener.local_addr().unwrap().port(),
            target,
            running: Mutex::new(Vec::new()),
            conns: Arc::default(),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let target = self.target;
        let conns = self.conns.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(conn.abort_handle());
            }
        });
        self.running.lock().unwrap().push(task.abort_handle());
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The API server "dies": the port refuses connections and every open one is cut.
    pub fn stop(&self) {
        for task in self.running.lock().unwrap().drain(..) {
            task.abort();
        }
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    /// It comes back on the same port.
    pub async fn resume(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(e) => {
                    assert!(Instant::now() < deadline, "rebinding the relay: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        self.serve(listener);
    }

    /// A kubeconfig for the cluster behind the relay, written to `path`.
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) {
        std::fs::write(
            path,
            edas_fake_kube::kubeconfig_yaml(&self.url(), namespace),
        )
        .unwrap();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A relay in front of the backend's API server (the fake one, or the real cluster's) and a
/// kubeconfig that reaches the cluster through it (TLS still verified against the server's own
/// name).
pub async fn relayed(backend: &Backend, kubeconfig: &std::path::Path) -> Relay {
    let mut config = kube::config::Kubeconfig::read_from(&backend.kubeconfig).unwrap();
    let context = config
        .current_context
        .clone()
        .or_else(|| config.contexts.first().map(|c| c.name.clone()))
        .unwrap();
    let cluster_name = config
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .unwrap();
    let named = config
        .clusters
        .iter_mut()
        .find(|c| c.name == cluster_name)
        .unwrap();
    let cluster = named.cluster.as_mut().unwrap();
    let server = reqwest::Url::parse(cluster.server.as_deref().unwrap()).unwrap();
    let host = server
        .host_str()
        .unwrap()
        .trim_matches(['[', ']'])
        .to_owned();
    let https = server.scheme() == "https";
    let port = server.port_or_known_default().unwrap();
    let target = tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let relay = Relay::start(target).await;
    cluster.server = Some(format!(
        "{}://127.0.0.1:{}",
        if https { "https" } else { "http" },
        relay.port
    ));
    if https && cluster.tls_server_name.is_none() {
        cluster.tls_server_name = Some(host);
    }
    // YAML is a superset of JSON.
    std::fs::write(kubeconfig, serde_json::to_vec(&config).unwrap()).unwrap();
    relay
}
