//! The cluster as a whole: whether it answers (so no API call waits on a cluster that does
//! not), its capacity (nodes, CPU, memory) and namespaces as its API reports them, and
//! rate-limited warnings that name the cluster and its API server address.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

use edas_runtime::{BoxFuture, RuntimeError};

use crate::{Health, KubeRuntime};

impl KubeRuntime {
    /// The API server address of the cluster (`https://10.0.0.1:6443`), as configured.
    pub fn api_server(&self) -> &str {
        self.inner
            .options
            .api_server
            .as_deref()
            .unwrap_or("(address unknown)")
    }

    /// "`id` (API server ADDRESS)": how messages name the cluster.
    pub(crate) fn cluster_label(&self) -> String {
        format!(
            "`{}` (API server {})",
            self.inner.options.cluster_id,
            self.api_server()
        )
    }

    /// A call's error, with the API server address when the cluster did not answer (so a
    /// change order's failure says where edasd tried).
    pub(crate) fn with_address(&self, error: RuntimeError) -> RuntimeError {
        match error {
            RuntimeError::Unavailable(m) => {
                RuntimeError::Unavailable(format!("{m} (API server {})", self.api_server()))
            }
            other => other,
        }
    }

    /// A call got no answer at all within its timeout: the cluster counts as not answering
    /// from now on (so the next calls are refused at once instead of waiting as long), until
    /// its watches or discovery hear from it again.
    pub(crate) fn no_answer(&self, why: &str) {
        let marked = self.inner.health.send_if_modified(|h| {
            if matches!(h, Health::Unreachable(_)) {
                false
            } else {
                *h = Health::Unreachable(why.to_owned());
                true
            }
        });
        if marked {
            // The watches may hear nothing for a while on an idle cluster: ask the API server
            // itself (with back-off) when it answers again.
            tokio::spawn(recover(std::sync::Arc::downgrade(&self.inner)));
        }
    }

    /// `Err(Unavailable)` naming the cluster and its address while its API does not answer.
    /// Before the first answer the cluster counts as available (it is being reached).
    pub(crate) fn availability_now(&self) -> Result<(), RuntimeError> {
        match &*self.inner.health.borrow() {
            Health::Unreachable(why) => Err(RuntimeError::Unavailable(format!(
                "cluster {} does not answer: {why}",
                self.cluster_label()
            ))),
            _ => Ok(()),
        }
    }

    /// Resolves once the cluster answers and its pods and Deployments have been listed.
    pub(crate) fn until_available(&self) -> BoxFuture<'_, ()> {
        let mut health = self.inner.health.subscribe();
        Box::pin(async move {
            loop {
                if health
                    .wait_for(|h| !matches!(h, Health::Unreachable(_)))
                    .await
                    .is_err()
                {
                    return;
                }
                let listed = self.caches_listed();
                let mut down = self.inner.health.subscribe();
                tokio::select! {
                    _ = listed => {
                        if self.availability_now().is_ok() {
                            return;
                        }
                    }
                    _ = down.wait_for(|h| matches!(h, Health::Unreachable(_))) => {}
                }
            }
        })
    }

    /// Waits until the caches hold a full list of the cluster's pods and Deployments; answers
    /// at once from the last list when there was one, and fails at once, naming the cluster,
    /// while the cluster does not answer and was never listed.
    pub(crate) async fn listed(&self) -> Result<(), RuntimeError> {
        let wait = self.caches_listed();
        let mut health = self.inner.health.subscribe();
        let unreachable = health.wait_for(|h| matches!(h, Health::Unreachable(_)));
        tokio::select! {
            biased;
            _ = wait => Ok(()),
            _ = unreachable => Err(self.availability_now().err().unwrap_or_else(|| {
                RuntimeError::Unavailable(format!("cluster {} does not answer", self.cluster_label()))
            })),
            _ = tokio::time::sleep(self.inner.options.call_timeout) => {
                let why = format!("no answer within {:?}", self.inner.options.call_timeout);
                self.no_answer(&why);
                Err(RuntimeError::Unavailable(format!(
                    "cluster {} has not been listed yet ({why})",
                    self.cluster_label()
                )))
            }
        }
    }
}

/// After a call got no answer: asks the API server for its version, with back-off, until it
/// answers (then the cluster is available again) or something else saw it answer.
async fn recover(inner: std::sync::Weak<crate::Inner>) {
    let mut delay = Duration::from_millis(500);
    loop {
        tokio::time::sleep(delay).await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if !matches!(*strong.health.borrow(), Health::Unreachable(_)) {
            return;
        }
        let client = strong.client.clone();
        let timeout = strong.options.call_timeout;
        if let Ok(Ok(info)) = tokio::time::timeout(timeout, client.apiserver_version()).await {
            strong.health.send_if_modified(|h| {
                if matches!(h, Health::Unreachable(_)) {
                    *h = Health::Connected {
                        version: info.git_version.clone(),
                    };
                    true
                } else {
                    false
                }
            });
            return;
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// What a cluster offers, from its Nodes' `status.allocatable` (else `capacity`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capacity {
    /// Nodes.
    pub nodes: u32,
    /// CPU, in millicores.
    pub cpu_millis: u64,
    /// Memory, in MiB.
    pub memory_mib: u64,
}

/// The cluster's nodes and namespaces as its API reports them (kept by watches).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Capacity; `None` until the Nodes were listed (or when edasd may not list them).
    pub capacity: Option<Capacity>,
    /// Namespace names, sorted; `None` until listed (or when edasd may not list them).
    pub namespaces: Option<Vec<String>>,
}

/// Watches the cluster's Nodes and Namespaces and publishes its [`Inventory`] whenever it
/// changes (no polling: one watch per type, re-listed with back-off after an outage).
/// Failures are logged through `warn`, which names the cluster and is rate-limited.
pub fn watch_inventory(client: Client, warn: Warner) -> watch::Receiver<Inventory> {
    let (tx, rx) = watch::channel(Inventory::default());
    let warn = std::sync::Arc::new(warn);
    let nodes_tx = tx.clone();
    tokio::spawn(keep_listed(
        Api::<Node>::all(client.clone()),
        warn.clone(),
        node_capacity,
        move |nodes| {
            let total = nodes.values().fold(
                Capacity {
                    nodes: nodes.len() as u32,
                    ..Capacity::default()
                },
                |mut acc, c| {
                    acc.cpu_millis += c.cpu_millis;
                    acc.memory_mib += c.memory_mib;
                    acc
                },
            );
            nodes_tx.send_if_modified(|i| {
                let changed = i.capacity.as_ref() != Some(&total);
                i.capacity = Some(total);
                changed
            });
        },
    ));
    tokio::spawn(keep_listed(
        Api::<Namespace>::all(client),
        warn,
        |_| (),
        move |namespaces| {
            let names: Vec<String> = namespaces.keys().cloned().collect();
            tx.send_if_modified(|i| {
                let changed = i.namespaces.as_ref() != Some(&names);
                i.namespaces = Some(names);
                changed
            });
        },
    ));
    rx
}

/// Keeps every object of one cluster-scoped type, by name, as `value` of it, from a watch
/// (re-listed with back-off after an outage), and calls `publish` after every change once
/// the first list is complete.
async fn keep_listed<K, V>(
    api: Api<K>,
    warn: std::sync::Arc<Warner>,
    value: impl Fn(&K) -> V,
    mut publish: impl FnMut(&BTreeMap<String, V>),
) where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let mut objects: BTreeMap<String, V> = BTreeMap::new();
    let mut listing: BTreeMap<String, V> = BTreeMap::new();
    let mut listed = false;
    let name = |o: &K| o.meta().name.clone().unwrap_or_default();
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(o)) => {
                objects.insert(name(&o), value(&o));
            }
            Ok(watcher::Event::Delete(o)) => {
                objects.remove(&name(&o));
            }
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(o)) => {
                listing.insert(name(&o), value(&o));
            }
            Ok(watcher::Event::InitDone) => {
                objects = std::mem::take(&mut listing);
                listed = true;
            }
            Err(error) => {
                let message = format!("watching the cluster's {}s failed; retrying", K::kind(&()));
                warn.warn(&message, &error);
                continue;
            }
        }
        if listed {
            publish(&objects);
        }
    }
}

pub(crate) fn node_capacity(node: &Node) -> Capacity {
    let status = node.status.as_ref();
    let resources = status
        .and_then(|s| s.allocatable.as_ref())
        .or_else(|| status.and_then(|s| s.capacity.as_ref()));
    let get = |key: &str| resources.and_then(|r| r.get(key)).and_then(quantity);
    Capacity {
        nodes: 1,
        cpu_millis: get("cpu").map_or(0, |cores| (cores * 1000.0).round() as u64),
        memory_mib: get("memory").map_or(0, |bytes| (bytes / (1024.0 * 1024.0)).floor() as u64),
    }
}

/// A Kubernetes quantity (`4`, `3500m`, `16Gi`, `1e3`, `512M`) as a plain number of units;
/// `None` when it is not one.
pub fn quantity(q: &Quantity) -> Option<f64> {
    let s = q.0.trim();
    let split = s
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some(value * factor)
}

/// Rate-limited warnings about one cluster: each message carries the cluster id and its API
/// server address, and the same message is logged at most once per period, with the number
/// of repeats it stood for (a watch that fails twice a second logs once a minute).
pub struct Warner {
    cluster_id: String,
    api_server: String,
    period: Duration,
    last: Mutex<BTreeMap<String, (Instant, u64)>>,
}

impl Warner {
    /// Warnings about `cluster_id` at `api_server`, each message at most once per `period`.
    pub fn new(cluster_id: &str, api_server: &str, period: Duration) -> Warner {
        Warner {
            cluster_id: cluster_id.to_owned(),
            api_server: api_server.to_owned(),
            period,
            last: Mutex::new(BTreeMap::new()),
        }
    }

    /// Logs `message` with `error` unless it was logged less than a period ago (then counts it).
    pub fn warn(&self, message: &str, error: &dyn std::fmt::Display) {
        if let Some(suppressed) = self.admit(message, Instant::now()) {
            tracing::warn!(
                cluster = %self.cluster_id,
                api_server = %self.api_server,
                %error,
                suppressed,
                "{message}"
            );
        }
    }

    /// `Some(repeats suppressed since the last log)` when `message` may be logged at `now`.
    fn admit(&self, message: &str, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.get_mut(message) {
            Some((at, suppressed)) if now.duration_since(*at) < self.period => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                let n = *suppressed;
                *at = now;
                *suppressed = 0;
                Some(n)
            }
            None => {
                last.insert(message.to_owned(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use edas_fake_kube::{ApiFault, Config, FakeCluster};
    use edas_runtime::{Runtime, Target};
    use edas_spec::AppSpec;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use kube::api::{ListParams, PostParams};

    use crate::{AppRef, ClusterAccess, LABEL_APP_ID, Options, Settled, connect};

    /// A store with nothing in it.
    struct Empty;

    impl Settled for Empty {}

    const APP: &str = "7f0c5a1e-0000-4000-8000-0000000000aa";

    async fn started(cluster: &FakeCluster, call_timeout: Duration) -> (KubeRuntime, Client) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        cluster.write_kubeconfig(&path, "default").unwrap();
        let client = connect(&ClusterAccess::Kubeconfig {
            path: Some(path),
            context: None,
        })
        .await
        .unwrap();
        let mut options = Options::new("c1");
        options.api_server = Some(cluster.base_url());
        options.call_timeout = call_timeout;
        let rt = KubeRuntime::start(client.clone(), Arc::new(Empty), options);
        tokio::time::timeout(Duration::from_secs(15), rt.wait_available())
            .await
            .expect("the fake cluster answers");
        (rt, client)
    }

    fn app() -> AppRef {
        AppRef {
            id: APP.into(),
            name: "swept".into(),
            namespace: "apps".into(),
        }
    }

    fn target(revision: &str) -> Target {
        let spec: AppSpec = serde_json::from_value(serde_json::json!({
            "name": "swept",
            "cluster_id": "c1",
            "k8s_namespace": "apps",
            "artifact": {"type": "image", "url": "registry.example/demo:1"},
            "replicas": 2,
        }))
        .unwrap();
        Target {
            app: app(),
            revision: revision.into(),
            spec: Arc::new(spec),
            config: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_call_without_answer_makes_the_cluster_unavailable_naming_its_address() {
        let cluster = FakeCluster::start(Config::default()).await.unwrap();
        let (rt, _) = started(&cluster, Duration::from_millis(300)).await;
        assert!(rt.availability().is_ok());
        cluster
            .add_api_fault(ApiFault::delay(None, "*", Duration::from_secs(5)))
            .unwrap();
        let err = rt.set_replicas(&target("1"), 1).await.unwrap_err();
        assert!(
            matches!(&err, RuntimeError::Unavailable(m) if m.contains(&cluster.base_url())),
            "{err}"
        );
        // The next call is refused at once, naming the cluster and its address.
        let refused = rt.availability().unwrap_err().to_string();
        assert!(
            refused.contains("`c1`") && refused.contains(&cluster.base_url()),
            "{refused}"
        );
        // Reads answer from the last list at once.
        let started = Instant::now();
        rt.observe(&app(), "1").await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        // It answers again: available again, though nothing changed that a watch would see.
        cluster.clear_faults();
        tokio::time::timeout(Duration::from_secs(15), rt.wait_available())
            .await
            .expect("available again");
        assert!(rt.availability().is_ok());
    }

    #[tokio::test]
    async fn deleting_an_application_removes_every_object_labelled_with_its_id() {
        let cluster = FakeCluster::start(Config {
            pod_ready_delay: Duration::from_millis(50),
            ..Config::default()
        })
        .await
        .unwrap();
        let (rt, client) = started(&cluster, Duration::from_secs(10)).await;
        rt.set_replicas(&target("1"), 2).await.unwrap();
        // An object of the application that no revision owns, and one of another application.
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "apps");
        for (name, app) in [("left-over", APP), ("someone-else", "other")] {
            let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": {LABEL_APP_ID: app}}
            }))
            .unwrap();
            cms.create(&PostParams::default(), &cm).await.unwrap();
        }
        let lp = ListParams::default().labels(&format!("{LABEL_APP_ID}={APP}"));
        let pods: Api<Pod> = Api::all(client.clone());
        let deadline = Instant::now() + Duration::from_secs(15);
        while pods.list(&lp).await.unwrap().items.len() < 2 {
            assert!(Instant::now() < deadline, "pods never came");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        rt.delete_application(&app(), true).await.unwrap();
        let deployments: Api<Deployment> = Api::all(client.clone());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = (
                deployments.list(&lp).await.unwrap().items.len(),
                pods.list(&lp).await.unwrap().items.len(),
                cms.list(&lp).await.unwrap().items.len(),
            );
            if left == (0, 0, 0) {
                break;
            }
            assert!(Instant::now() < deadline, "left: {left:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Only objects labelled with the application id are touched.
        cms.get("someone-else").await.unwrap();
        // Idempotent: nothing left is success.
        rt.delete_application(&app(), false).await.unwrap();
    }

    #[test]
    fn quantities_in_every_notation() {
        let q = |s: &str| quantity(&Quantity(s.to_owned()));
        assert_eq!(q("4"), Some(4.0));
        assert_eq!(q("3500m"), Some(3.5));
        assert_eq!(q("16Gi"), Some(16.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(q("2048Ki"), Some(2048.0 * 1024.0));
        assert_eq!(q("1e3"), Some(1000.0));
        assert_eq!(q("512M"), Some(512e6));
        assert_eq!(q("1.5"), Some(1.5));
        assert_eq!(q("12Qi"), None);
        assert_eq!(q("abc"), None);
        assert_eq!(q("-1"), None);
        assert_eq!(q(""), None);
    }

    #[test]
    fn node_capacity_prefers_allocatable() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"},
            "status": {
                "capacity": {"cpu": "8", "memory": "32Gi"},
                "allocatable": {"cpu": "7500m", "memory": "30Gi"}
            }
        }))
        .unwrap();
        assert_eq!(
            node_capacity(&node),
            Capacity {
                nodes: 1,
                cpu_millis: 7500,
                memory_mib: 30 * 1024
            }
        );
        let bare: Node =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "n2"}})).unwrap();
        assert_eq!(
            node_capacity(&bare),
            Capacity {
                nodes: 1,
                ..Capacity::default()
            }
        );
    }

    #[test]
    fn warnings_are_rate_limited_per_message_and_count_repeats() {
        let w = Warner::new("c1", "https://10.0.0.1:6443", Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(w.admit("watch failed", t0), Some(0));
        assert_eq!(w.admit("watch failed", t0 + Duration::from_secs(1)), None);
        assert_eq!(w.admit("watch failed", t0 + Duration::from_secs(2)), None);
        // Another message has its own budget.
        assert_eq!(w.admit("other", t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(
            w.admit("watch failed", t0 + Duration::from_secs(61)),
            Some(2)
        );
    }
}
