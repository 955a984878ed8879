//! The Kubernetes runtime: runs application revisions as pods on a cluster, through kube-rs.
//!
//! [`KubeRuntime`] implements [`edas_runtime::Runtime`] for one cluster, with one shared
//! [`kube::Client`] (from a kubeconfig file and context, or the in-cluster service account: see
//! [`connect`]).
//!
//! **Writes** are server-side apply with one field manager, [`FIELD_MANAGER`] (`edasd`), of
//! exactly the objects `edas-render` produces: a release step "revision N runs k instances"
//! applies revision N's rendered Deployment with `spec.replicas = k` (its pod template never
//! changes, so the Deployment controller only scales). The ConfigMaps and Secrets a revision
//! references (the engine's immutable copies, `<name>.<app id>.r<revision>`) are applied from the
//! target's snapshot before the Deployment, `immutable: true`, so its pods never wait for them; once the
//! Deployment exists it becomes their owner (`ownerReferences`), so the garbage collector removes
//! them with it whoever deletes it. A revision scaled to 0 has its Deployment and copies deleted,
//! so nothing is left over when a release ends or an application is deleted; scaling it up
//! again (a rollback) re-creates them from the target's snapshot. The user's own ConfigMaps and
//! Secrets (CreateK8sConfigMap …) are applied under their own names ([`Runtime::put_config`]).
//! Every object carries the `edas.oam.acname` and `edas.oam.revision` labels of rendering plus
//! [`LABEL_APP_ID`] (`edas.oam.appid`), so `kubectl get deploy,pod,svc -l edas.oam.acname=NAME`
//! shows an application and the runtime finds its objects by application id.
//!
//! **Reads** go through kube's `watcher` + `reflector` on the pods and Deployments carrying
//! [`LABEL_APP_ID`] (all namespaces): [`Runtime::observe`] and [`Runtime::revisions`] answer from
//! the caches, and every change of a pod or Deployment is broadcast as a [`RuntimeEvent`] for its
//! application and revision (after a re-list, for every revision seen), so the engine reacts to
//! pod readiness as it happens. There is no polling loop. A resumed release therefore continues
//! from what the cluster really shows: the cache is filled by a full list before the first
//! answer. A failed watch is re-established with a bounded back-off
//! ([`Options::watch_backoff_max`]), and each watch asks the server to end it after
//! [`Options::watch_timeout`]: one that stays silent 5 s longer (a draining API server keeps it
//! open and says nothing) is abandoned and replaced. [`state`] reports an instance as failed,
//! with the cluster's own reason, as soon as Kubernetes will not start it by itself
//! ([`state::FailurePolicy`]); an unschedulable pod's grace period ends on a timer that wakes the
//! release. A Deployment deleted or scaled outside edasd is restored on its watch event
//! (`drift.rs`).
//!
//! **Readiness** is the pods' own `Ready` condition, driven by the kubelet and the readiness
//! probes of the pod spec; nothing in a pod depends on edasd being up. The engine applies
//! `minReadySeconds` and the lossless registration delay and warm-up itself.
//!
//! **What replaces EDAS's port-55199 `/health` agent endpoint.** On EDAS, a Java agent inside the
//! pod answers `:55199/health` only once the application has registered with the service
//! registry and warmed up, and `LosslessRuleAligned`/`Related` make that the readiness probe.
//! edasd injects no agent: the pod's readiness is its own `Readiness` probe (as given), and the
//! registration delay and warm-up (`LosslessRuleDelayTime`, `LosslessRuleWarmupTime`) are
//! counted by the release engine from the moment a pod becomes Ready, before it counts the pod
//! for the batch; during a gray split with Gateway API, the HTTPRoute weights ramp along the
//! warm-up curve. An application that wants the aligned behaviour lets its own readiness
//! endpoint report ready only after it has registered.
//!
//! **Traffic** ([`Runtime::set_routing`]): the application's Services select `edas.oam.acname`,
//! so they reach the ready pods of every revision. A gray split (TrafficControlStrategy) adds a
//! `<service>-stable` and a `<service>-gray` Service per Service (selecting one revision each) and
//! a Gateway API `HTTPRoute` (`gateway.networking.k8s.io/v1`) named after the Service, attached to
//! the configured Gateway, with header/cookie/parameter matches and weights; meanwhile the plain
//! Services select the stable revision only, so in-cluster callers (who bypass the Gateway) never
//! reach gray pods and the split is exact. The step succeeds only once the Gateway exists and has
//! `Accepted` the route ([`Options::route_acceptance_timeout`]). This needs the cluster to serve
//! Gateway API and a Gateway in the cluster's configuration, and [`Runtime::check_routing`]
//! refuses the release otherwise, naming what is missing.
//!
//! **`WorkloadType=StatefulSet`** (`stateful.rs`): the application runs as one StatefulSet and
//! its headless Service instead of a Deployment per revision; a release moves the StatefulSet's
//! `partition`, and the object is always computed from the counts of its two revisions (the
//! layout it carries), so `set_replicas` keeps its meaning.
//!
//! **Autoscaling** ([`Runtime::set_autoscaling`], `autoscale.rs`): an enabled scaling rule is
//! an `autoscaling/v2` HorizontalPodAutoscaler named like the application, applied like the
//! other objects and targeting the revision the engine names; its `status.desiredReplicas` is
//! [`Runtime::autoscaled_replicas`]. A Deployment its HPA scaled is not drift: edasd follows
//! the HPA's count instead of restoring its own.
//!
//! **Permissions** the client needs are [`rights::RIGHTS`], shipped as `deploy/rbac.yaml`, and
//! checked at start-up with SelfSubjectAccessReviews ([`KubeRuntime::missing_rights`]).

mod autoscale;
pub mod cluster;
mod drift;
mod ingress;
mod logs;
pub mod rights;
mod room;
mod routing;
pub mod state;
mod stateful;
mod sweep;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edas_runtime::{
    Autoscaling, BoxFuture, RevisionState, Routing, Runtime, RuntimeError, RuntimeEvent, Target,
};
use futures_util::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::{broadcast, watch};

pub use edas_render::{LABEL_APP, LABEL_REVISION};
pub use edas_runtime::{AppRef, ConfigData};
/// The application spec, as a [`Target`] carries it.
pub use edas_spec::AppSpec;

/// Label on every object edasd applies: the application id (names can be reused after a
/// deletion, ids cannot).
pub const LABEL_APP_ID: &str = "edas.oam.appid";
/// The one server-side-apply field manager of every write.
pub const FIELD_MANAGER: &str = "edasd";

/// How to reach a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterAccess {
    /// A kubeconfig file (`None`: the usual resolution, `$KUBECONFIG` then `~/.kube/config`)
    /// and context (`None`: its current context).
    Kubeconfig {
        /// The file.
        path: Option<PathBuf>,
        /// The context.
        context: Option<String>,
    },
    /// The service account of the pod edasd runs in.
    InCluster,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

/// Builds the client of a cluster. It does not contact the cluster (that happens when the
/// runtime starts watching), so a cluster that is down does not stop edasd.
pub async fn connect(access: &ClusterAccess) -> Result<Client, ConnectError> {
    Client::try_from(client_config(access).await?)
        .map_err(|e| ConnectError(format!("building the client: {e}")))
}

/// The client configuration of a cluster (its `cluster_url` is the API server address that
/// messages name). Does not contact the cluster.
pub async fn client_config(access: &ClusterAccess) -> Result<kube::Config, ConnectError> {
    // A workspace build enables two rustls providers; choose ring explicitly (an error means
    // one is already installed).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match access {
        ClusterAccess::Kubeconfig { path, context } => {
            let options = kube::config::KubeConfigOptions {
                context: context.clone(),
                ..Default::default()
            };
            match path {
                Some(path) => {
                    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                        ConnectError(format!("reading kubeconfig {}: {e}", path.display()))
                    })?;
                    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                        .await
                        .map_err(|e| ConnectError(format!("kubeconfig {}: {e}", path.display())))?
                }
                None => kube::Config::from_kubeconfig(&options)
                    .await
                    .map_err(|e| ConnectError(format!("kubeconfig: {e}")))?,
            }
        }
        ClusterAccess::InCluster => kube::Config::incluster()
            .map_err(|e| ConnectError(format!("in-cluster configuration: {e}")))?,
    };
    Ok(config)
}

/// What drift correction asks edasd's store: whether a Deployment changed outside edasd is
/// drift to undo, and what to restore it with. A narrow port of its own because no runtime call
/// carries it: drift shows up on a watch event, between the engine's calls, and "what should
/// run now" is the store's settled state (no change in progress), which only edasd knows.
/// Everything else a runtime needs comes with the call ([`AppRef`], [`Target`]).
pub trait Settled: Send + Sync + 'static {
    /// What the store says revision `revision` of application `app_id` should run: a count
    /// while no change is in progress (0 for an application deleted or stopped, and for a
    /// revision it no longer runs), or who decides while a change order is in progress. Drift
    /// correction restores only what this agrees with. The default says nothing.
    fn settled_replicas<'a>(
        &'a self,
        app_id: &'a str,
        revision: &'a str,
    ) -> BoxFuture<'a, Result<SettledReplicas, String>> {
        let _ = (app_id, revision);
        Box::pin(async { Ok(SettledReplicas::Unknown) })
    }

    /// What the store says revision `revision` of `app_id` runs, with the target its release
    /// steps apply, when it runs any instances and no change is in progress; `None` otherwise.
    /// Drift correction restores with it a Deployment this process did not apply itself (e.g.
    /// after an edasd restart). The default says nothing.
    fn settled_target<'a>(
        &'a self,
        app_id: &'a str,
        revision: &'a str,
    ) -> BoxFuture<'a, Result<Option<(u32, Target)>, String>> {
        let _ = (app_id, revision);
        Box::pin(async { Ok(None) })
    }
}

/// The store's answer to "how many instances should this revision run" ([`Settled`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettledReplicas {
    /// No change in progress: the revision runs this many instances (0: none).
    Runs(u32),
    /// A change order this process drives is in progress: its steps decide, and what this
    /// process applied for them stands.
    ChangingHere,
    /// A change order is in progress that another edasd process drives, or that no process
    /// has claimed yet: that process decides, and this one leaves the Deployment alone (two
    /// processes restoring each other's steps would fight over the replica count).
    ChangingElsewhere,
    /// The store does not say.
    Unknown,
}

/// Annotation on each revision's Deployment: the replicas edasd applied, so a Deployment
/// scaled by hand is recognised as drift even by an edasd process that did not apply it.
pub const ANNOTATION_REPLICAS: &str = "edas.oam.replicas";

/// A Gateway (Gateway API) that gray-split HTTPRoutes attach to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Settings of one cluster's runtime.
#[derive(Clone, Debug)]
pub struct Options {
    /// The cluster id (in logs and messages).
    pub cluster_id: String,
    /// The Gateway gray-split HTTPRoutes attach to; without one, gray splits are refused.
    pub gateway: Option<GatewayRef>,
    /// How long one API call may take before the step fails as unavailable.
    pub call_timeout: Duration,
    /// The API server's address, for messages (set from the kubeconfig by edasd).
    pub api_server: Option<String>,
    /// When a pod that Kubernetes keeps retrying counts as failed.
    pub failure: state::FailurePolicy,
    /// Server-side timeout of each watch request (`timeoutSeconds`): the watch is renewed this
    /// often, and a watch that stays silent 5 s longer (a draining API server) is abandoned and
    /// re-established.
    pub watch_timeout: Duration,
    /// The longest wait between attempts to re-establish a failed watch (the first is 100 ms,
    /// doubling up to this).
    pub watch_backoff_max: Duration,
    /// How long a gray split waits for the Gateway to accept its HTTPRoute before the step
    /// fails.
    pub route_acceptance_timeout: Duration,
    /// The `ingressClassName` of the Ingresses of ingress rules (none: the cluster's default
    /// IngressClass).
    pub ingress_class: Option<String>,
    /// Route ingress rules as Gateway API HTTPRoutes attached to `gateway` instead of Ingresses.
    pub ingress_via_gateway: bool,
}

impl Options {
    /// Defaults for cluster `cluster_id`.
    pub fn new(cluster_id: &str) -> Options {
        Options {
            cluster_id: cluster_id.to_owned(),
            gateway: None,
            call_timeout: Duration::from_secs(30),
            api_server: None,
            failure: state::FailurePolicy::default(),
            watch_timeout: Duration::from_secs(5),
            watch_backoff_max: Duration::from_secs(2),
            route_acceptance_timeout: Duration::from_secs(60),
            ingress_class: None,
            ingress_via_gateway: false,
        }
    }
}

/// How the cluster is, as far as the runtime can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not reached yet.
    Connecting,
    /// Its API answers; the server's version (`v1.33.1`).
    Connected {
        /// `gitVersion` of the API server.
        version: String,
    },
    /// Its API does not answer, or refuses edasd: why.
    Unreachable(String),
}

/// Whether the cluster serves Gateway API HTTPRoutes: not yet known, yes, no.
const GATEWAY_UNKNOWN: u8 = 0;
const GATEWAY_YES: u8 = 1;
const GATEWAY_NO: u8 = 2;

/// The Kubernetes runtime of one cluster. Cloning shares it.
#[derive(Clone)]
pub struct KubeRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    settled: Arc<dyn Settled>,
    options: Options,
    pods: Store<Pod>,
    deployments: Store<Deployment>,
    events: broadcast::Sender<RuntimeEvent>,
    health: watch::Sender<Health>,
    /// The API server's version once discovery answered (health returns to it after an outage).
    version: Arc<std::sync::OnceLock<String>>,
    gateway_api: AtomicU8,
    namespaces: Mutex<HashSet<String>>,
    /// The rights of [`rights::RIGHTS`] the cluster does not grant (`None` until checked).
    missing_rights: watch::Sender<Option<Vec<String>>>,
    /// Whether the pod and the Deployment caches have been fully listed once (kube's
    /// `Store::wait_until_ready` wakes only the last of several concurrent waiters; these
    /// channels wake them all).
    pods_listed: watch::Sender<bool>,
    deployments_listed: watch::Sender<bool>,
    /// What each revision should run, as this process last applied it (drift correction).
    desired: Mutex<HashMap<(String, String), drift::Desired>>,
    /// Revisions whose Deployment the cache has shown (a later absence is a deletion), and
    /// those whose restore from the store is running.
    seen: Mutex<HashSet<(String, String)>>,
    adopting: Mutex<HashSet<(String, String)>>,
    /// Revisions with a wake-up pending for the end of an unschedulable pod's grace period.
    wakes: Mutex<HashSet<(String, String)>>,
    /// Warm-up ramps of HTTPRoute weights, by application id.
    ramps: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// What the applications' HPAs did (drift correction sees a Deployment its HPA scaled),
    /// for the engine to record as Scale change orders.
    scale_decisions: tokio::sync::broadcast::Sender<edas_runtime::ScaleDecision>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            task.abort();
        }
        for (_, ramp) in self.ramps.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            ramp.abort();
        }
    }
}

impl KubeRuntime {
    /// Starts watching the cluster (on the current tokio runtime) and returns the runtime.
    pub fn start(client: Client, settled: Arc<dyn Settled>, options: Options) -> KubeRuntime {
        let (events, _) = broadcast::channel(4096);
        let (health, _) = watch::channel(Health::Connecting);
        let (pods, pod_writer) = reflector::store::<Pod>();
        let (deployments, deployment_writer) = reflector::store::<Deployment>();
        let version = Arc::new(std::sync::OnceLock::new());
        let (pods_listed, _) = watch::channel(false);
        let (deployments_listed, _) = watch::channel(false);
        let pod_task = tokio::spawn(watch_objects(
            Api::<Pod>::all(client.clone()),
            pod_writer,
            events.clone(),
            health.clone(),
            version.clone(),
            options.clone(),
            pods_listed.clone(),
        ));
        let deployment_task = tokio::spawn(watch_objects(
            Api::<Deployment>::all(client.clone()),
            deployment_writer,
            events.clone(),
            health.clone(),
            version.clone(),
            options.clone(),
            deployments_listed.clone(),
        ));
        let inner = Arc::new(Inner {
            client,
            settled,
            options,
            pods,
            deployments,
            events,
            health,
            version,
            gateway_api: AtomicU8::new(GATEWAY_UNKNOWN),
            namespaces: Mutex::new(HashSet::new()),
            wakes: Mutex::new(HashSet::new()),
            desired: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashSet::new()),
            adopting: Mutex::new(HashSet::new()),
            pods_listed,
            deployments_listed,
            missing_rights: watch::channel(None).0,
            ramps: Mutex::new(HashMap::new()),
            tasks: Mutex::new(vec![
                pod_task.abort_handle(),
                deployment_task.abort_handle(),
            ]),
            scale_decisions: tokio::sync::broadcast::channel(64).0,
        });
        // Discovery and drift correction hold only a weak reference, so dropping the runtime
        // ends them.
        let discovery = tokio::spawn(discover(Arc::downgrade(&inner)));
        let drift = tokio::spawn(drift::run(Arc::downgrade(&inner), inner.events.subscribe()));
        let stateful = tokio::spawn(stateful::watch(Arc::downgrade(&inner)));
        inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend([
                discovery.abort_handle(),
                drift.abort_handle(),
                stateful.abort_handle(),
            ]);
        KubeRuntime { inner }
    }

    /// The cluster's health as it changes (for the cluster's import status).
    pub fn health(&self) -> watch::Receiver<Health> {
        self.inner.health.subscribe()
    }

    /// The rights edasd needs (see [`rights::RIGHTS`] and `deploy/rbac.yaml`) that the cluster
    /// does not grant, by name (`create configmaps`), as they become known: `None` until the
    /// start-up check answered, then the (possibly empty) list.
    pub fn missing_rights(&self) -> watch::Receiver<Option<Vec<String>>> {
        self.inner.missing_rights.subscribe()
    }

    /// Whether the cluster serves Gateway API HTTPRoutes (`None` until discovery answered).
    pub fn serves_gateway_api(&self) -> Option<bool> {
        match self.inner.gateway_api.load(Ordering::Acquire) {
            GATEWAY_YES => Some(true),
            GATEWAY_NO => Some(false),
            _ => None,
        }
    }

    /// Waits until the caches hold a full list of the cluster's pods and Deployments (see
    /// `cluster::listed`: never waits on a cluster that does not answer).
    async fn ready(&self) -> Result<(), RuntimeError> {
        self.listed().await
    }

    /// Runs one API call with the call timeout; errors name `what`.
    async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, RuntimeError> {
        let result = match tokio::time::timeout(self.inner.options.call_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(api_error(&self.inner.options.cluster_id, what, e)),
            Err(_) => {
                self.no_answer(&format!(
                    "{what}: no answer within {:?}",
                    self.inner.options.call_timeout
                ));
                Err(RuntimeError::Unavailable(format!(
                    "cluster `{}`: {what}: no answer within {:?}",
                    self.inner.options.cluster_id, self.inner.options.call_timeout
                )))
            }
        };
        result.map_err(|e| self.with_address(e))
    }

    /// [`Self::call`], with an API answer of status `tolerated` (e.g. 404 to a deletion) as
    /// `None`.
    async fn call_tolerating<T>(
        &self,
        what: &str,
        tolerated: u16,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<Option<T>, RuntimeError> {
        let fut = async move {
            match fut.await {
                Ok(v) => Ok(Some(v)),
                Err(kube::Error::Api(s)) if s.code == tolerated => Ok(None),
                Err(e) => Err(e),
            }
        };
        self.call(what, fut).await
    }

    /// Server-side apply of `object` (named `name`) through `api`.
    async fn apply<K>(&self, api: &Api<K>, name: &str, object: &K) -> Result<(), RuntimeError>
    where
        K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
    {
        self.apply_returning(api, name, object).await.map(drop)
    }

    /// Server-side apply of `object`, returning the object as the cluster now has it.
    async fn apply_returning<K>(
        &self,
        api: &Api<K>,
        name: &str,
        object: &K,
    ) -> Result<K, RuntimeError>
    where
        K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
    {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let what = format!("applying {} {name}", kind_of::<K>());
        self.call(&what, api.patch(name, &params, &Patch::Apply(object)))
            .await
    }

    /// Deletes `name` through `api`; one that does not exist is fine.
    async fn delete<K>(&self, api: &Api<K>, name: &str) -> Result<(), RuntimeError>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let what = format!("deleting {} {name}", kind_of::<K>());
        self.call_tolerating(&what, 404, api.delete(name, &DeleteParams::background()))
            .await
            .map(drop)
    }

    /// Creates the namespace when it does not exist (once per process and namespace).
    async fn ensure_namespace(&self, namespace: &str) -> Result<(), RuntimeError> {
        if self
            .inner
            .namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(namespace)
        {
            return Ok(());
        }
        let api: Api<Namespace> = Api::all(self.inner.client.clone());
        let reading = format!("reading namespace {namespace}");
        let found = match self
            .call_tolerating(&reading, 403, api.get_opt(namespace))
            .await?
        {
            Some(found) => found.is_some(),
            // Not allowed to read namespaces: assume it exists (writes into it will say otherwise).
            None => true,
        };
        if !found {
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(namespace.to_owned()),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/managed-by".to_owned(),
                        "edasd".to_owned(),
                    )])),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            };
            // Created meanwhile (409) is fine.
            let creating = format!("creating namespace {namespace}");
            if self
                .call_tolerating(&creating, 409, api.create(&PostParams::default(), &ns))
                .await?
                .is_some()
            {
                tracing::info!(cluster = %self.inner.options.cluster_id, %namespace, "created namespace");
            }
        }
        self.inner
            .namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(namespace.to_owned());
        Ok(())
    }

    /// Applies the ConfigMaps and Secrets the revision's pods reference (the engine's copies
    /// `<name>.<app id>.r<revision>`), from the target's snapshot, `immutable: true`; returns the
    /// ones it applied. One the snapshot lacks (it did not exist when the revision was released)
    /// is left out: its pods then report `CreateContainerConfigError`, which fails the release
    /// with Kubernetes' own message.
    async fn apply_config(&self, target: &Target) -> Result<Vec<(bool, String)>, RuntimeError> {
        let spec = &target.spec;
        let ns = &spec.k8s_namespace;
        let labels = object_labels(spec, &target.app.id, Some(&target.revision));
        let mut applied = Vec::new();
        for (secret, name) in references(spec) {
            let Some(data) = target.config.get(secret, &name).cloned() else {
                continue;
            };
            let metadata = ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                labels: Some(labels.clone()),
                ..ObjectMeta::default()
            };
            if secret {
                let api: Api<Secret> = Api::namespaced(self.inner.client.clone(), ns);
                self.apply(&api, &name, &secret_object(metadata, data, true))
                    .await?;
            } else {
                let api: Api<ConfigMap> = Api::namespaced(self.inner.client.clone(), ns);
                self.apply(&api, &name, &config_map_object(metadata, data, true))
                    .await?;
            }
            applied.push((secret, name));
        }
        Ok(applied)
    }

    /// Makes the revision's Deployment (or the application's StatefulSet: `kind`, `owner`) the
    /// owner of its ConfigMap and Secret copies, so the garbage collector removes them with it
    /// (whoever deletes it). The copies exist before it (its pods never wait for them), so the
    /// reference is added once it exists.
    async fn own_copies(
        &self,
        target: &Target,
        copies: &[(bool, String)],
        kind: &str,
        owner: &ObjectMeta,
    ) -> Result<(), RuntimeError> {
        let (Some(name), Some(uid)) = (&owner.name, &owner.uid) else {
            return Ok(());
        };
        let owner = json!({"metadata": {"ownerReferences": [{
            "apiVersion": "apps/v1",
            "kind": kind,
            "name": name,
            "uid": uid,
            "blockOwnerDeletion": false,
        }]}});
        let ns = &target.spec.k8s_namespace;
        let params = PatchParams::default();
        for (secret, copy) in copies {
            let what = format!("making {kind} {name} the owner of {copy}");
            if *secret {
                let api: Api<Secret> = Api::namespaced(self.inner.client.clone(), ns);
                self.call(&what, api.patch(copy, &params, &Patch::Merge(&owner)))
                    .await?;
            } else {
                let api: Api<ConfigMap> = Api::namespaced(self.inner.client.clone(), ns);
                self.call(&what, api.patch(copy, &params, &Patch::Merge(&owner)))
                    .await?;
            }
        }
        Ok(())
    }

    /// Deletes the revision's ConfigMap and Secret copies (by name: the garbage collector
    /// removes them with their Deployment too, but not at once).
    async fn delete_config(&self, target: &Target) -> Result<(), RuntimeError> {
        let ns = &target.spec.k8s_namespace;
        for (secret, name) in references(&target.spec) {
            if secret {
                let api: Api<Secret> = Api::namespaced(self.inner.client.clone(), ns);
                self.delete(&api, &name).await?;
            } else {
                let api: Api<ConfigMap> = Api::namespaced(self.inner.client.clone(), ns);
                self.delete(&api, &name).await?;
            }
        }
        Ok(())
    }

    /// Applies (`Some`) or deletes (`None`) a user's ConfigMap or Secret under its own name.
    async fn put_user_config(
        &self,
        secret: bool,
        namespace: &str,
        name: &str,
        data: Option<ConfigData>,
    ) -> Result<(), RuntimeError> {
        let Some(data) = data else {
            if secret {
                let api: Api<Secret> = Api::namespaced(self.inner.client.clone(), namespace);
                return self.delete(&api, name).await;
            }
            let api: Api<ConfigMap> = Api::namespaced(self.inner.client.clone(), namespace);
            return self.delete(&api, name).await;
        };
        self.ensure_namespace(namespace).await?;
        let metadata = ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "edasd".to_owned(),
            )])),
            ..ObjectMeta::default()
        };
        if secret {
            let api: Api<Secret> = Api::namespaced(self.inner.client.clone(), namespace);
            self.apply(&api, name, &secret_object(metadata, data, false))
                .await
        } else {
            let api: Api<ConfigMap> = Api::namespaced(self.inner.client.clone(), namespace);
            self.apply(&api, name, &config_map_object(metadata, data, false))
                .await
        }
    }

    /// Applies revision `target` with `replicas` instances (0: deletes its Deployment and
    /// copies): one release step, or the restore of a drifted Deployment.
    pub(crate) async fn apply_revision(
        &self,
        target: &Target,
        replicas: u32,
    ) -> Result<(), RuntimeError> {
        let spec = &target.spec;
        let ns = &spec.k8s_namespace;
        let name = edas_render::deployment_name(&spec.name, &target.revision);
        let api: Api<Deployment> = Api::namespaced(self.inner.client.clone(), ns);
        if replicas == 0 {
            self.delete(&api, &name).await?;
            return self.delete_config(target).await;
        }
        let mut rendered = edas_render::render(spec, &target.revision, replicas)
            .map_err(|e| RuntimeError::Unsupported(e.to_string()))?;
        let deployment = &mut rendered.deployment;
        deployment
            .metadata
            .labels
            .get_or_insert_default()
            .insert(LABEL_APP_ID.to_owned(), target.app.id.clone());
        deployment
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(ANNOTATION_REPLICAS.to_owned(), replicas.to_string());
        if let Some(s) = deployment.spec.as_mut() {
            s.template
                .metadata
                .get_or_insert_default()
                .labels
                .get_or_insert_default()
                .insert(LABEL_APP_ID.to_owned(), target.app.id.clone());
        }
        self.ensure_namespace(ns).await?;
        let copies = self.apply_config(target).await?;
        let applied = self.apply_returning(&api, &name, deployment).await?;
        self.applied(target, replicas, &applied);
        self.own_copies(target, &copies, "Deployment", &applied.metadata)
            .await
    }

    /// Resolves once the pod and Deployment caches hold a full list (every concurrent caller
    /// is woken, unlike kube's `Store::wait_until_ready`).
    pub(crate) async fn caches_listed(&self) {
        let mut pods = self.inner.pods_listed.subscribe();
        let mut deployments = self.inner.deployments_listed.subscribe();
        let _ = pods.wait_for(|listed| *listed).await;
        let _ = deployments.wait_for(|listed| *listed).await;
    }

    /// Announces a change of the revision at `at` (when an unschedulable pod's grace period
    /// ends, nothing in the cluster changes, but the release must look again).
    fn wake_at(
        &self,
        app_id: &str,
        revision: &str,
        now: k8s_openapi::jiff::Timestamp,
        at: k8s_openapi::jiff::Timestamp,
    ) {
        let key = (app_id.to_owned(), revision.to_owned());
        if !self
            .inner
            .wakes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone())
        {
            return;
        }
        let delay = Duration::try_from(at.duration_since(now)).unwrap_or_default()
            + Duration::from_millis(50);
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(inner) = weak.upgrade() {
                inner
                    .wakes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                let _ = inner.events.send(RuntimeEvent {
                    app_id: key.0,
                    revision: key.1,
                });
            }
        });
    }

    /// Every pod edasd watches, from a fully listed cache, and the time they are judged at.
    async fn listed_pods(
        &self,
    ) -> Result<(Vec<Arc<Pod>>, k8s_openapi::jiff::Timestamp), RuntimeError> {
        self.ready().await?;
        Ok((self.inner.pods.state(), k8s_openapi::jiff::Timestamp::now()))
    }

    fn pods_of<'a>(
        pods: &'a [Arc<Pod>],
        app_id: &'a str,
        revision: &'a str,
    ) -> impl Iterator<Item = &'a Pod> + 'a {
        pods.iter()
            .map(|p| p.as_ref())
            .filter(move |p| label(*p, LABEL_APP_ID) == Some(app_id))
            .filter(move |p| label(*p, LABEL_REVISION) == Some(revision))
    }
}

/// The short type name of `K` (`Deployment`), for messages.
fn kind_of<K>() -> &'static str {
    let name = std::any::type_name::<K>();
    name.rsplit("::").next().unwrap_or(name)
}

fn label<'a, K: Resource>(object: &'a K, key: &str) -> Option<&'a str> {
    object
        .meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// The labels of the objects of an application (and revision): rendering's plus the id.
fn object_labels(spec: &AppSpec, app_id: &str, revision: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (LABEL_APP.to_owned(), spec.name.clone()),
        (LABEL_APP_ID.to_owned(), app_id.to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "edasd".to_owned(),
        ),
    ]);
    if let Some(rev) = revision {
        labels.insert(LABEL_REVISION.to_owned(), rev.to_owned());
    }
    labels
}

/// A Secret with `data` (plain text; the API encodes it).
fn secret_object(metadata: ObjectMeta, data: ConfigData, immutable: bool) -> Secret {
    Secret {
        metadata,
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        immutable: immutable.then_some(true),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// A ConfigMap with `data`.
fn config_map_object(metadata: ObjectMeta, data: ConfigData, immutable: bool) -> ConfigMap {
    ConfigMap {
        metadata,
        data: Some(data),
        immutable: immutable.then_some(true),
        ..ConfigMap::default()
    }
}

/// The ConfigMaps (`false`) and Secrets (`true`) the spec's pods reference that are the
/// engine's revision copies, by name (the pull secret is referenced under its own name).
fn references(spec: &AppSpec) -> BTreeSet<(bool, String)> {
    spec.config_refs()
        .into_iter()
        .filter(|r| r.kind.is_copied())
        .map(|r| (r.kind.is_secret(), r.name))
        .collect()
}

/// A client error as the engine sees it: the cluster refusing the request for good
/// (validation, permissions, conflicts) is `Unsupported`, anything else `Unavailable`.
fn api_error(cluster: &str, what: &str, error: kube::Error) -> RuntimeError {
    match error {
        kube::Error::Api(s) if matches!(s.code, 400 | 403 | 404 | 409 | 422) => {
            RuntimeError::Unsupported(format!(
                "cluster `{cluster}` refused {what}: {} ({} {})",
                s.message, s.code, s.reason
            ))
        }
        e => RuntimeError::Unavailable(format!("cluster `{cluster}`: {what}: {e}")),
    }
}

/// Watches the objects labelled with an application id, keeps the cache, and says which
/// application revisions changed.
async fn watch_objects<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    events: broadcast::Sender<RuntimeEvent>,
    health: watch::Sender<Health>,
    version: Arc<std::sync::OnceLock<String>>,
    options: Options,
    listed: watch::Sender<bool>,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let warn = cluster::Warner::new(
        &options.cluster_id,
        options.api_server.as_deref().unwrap_or("(address unknown)"),
        Duration::from_secs(60),
    );
    let timeout = u32::try_from(options.watch_timeout.as_secs().max(1)).unwrap_or(290);
    let config = watcher::Config::default()
        .labels(LABEL_APP_ID)
        .timeout(timeout);
    let stream = watcher(api, config)
        .backoff(WatchBackoff::new(options.watch_backoff_max))
        .reflect(writer);
    let mut stream = std::pin::pin!(stream);
    let key = |o: &K| -> Option<(String, String)> {
        Some((
            label(o, LABEL_APP_ID)?.to_owned(),
            label(o, LABEL_REVISION)?.to_owned(),
        ))
    };
    let emit = |(app_id, revision): (String, String)| {
        let _ = events.send(RuntimeEvent { app_id, revision });
    };
    let mut known: HashSet<(String, String)> = HashSet::new();
    let mut listing: HashSet<(String, String)> = HashSet::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                // `Init` comes before the list is even requested (a watch retrying against a
                // dead API server yields it every time): only the other events are answers.
                let answered = !matches!(event, watcher::Event::Init);
                health.send_if_modified(|h| {
                    if answered && matches!(h, Health::Unreachable(_)) {
                        *h = match version.get() {
                            Some(v) => Health::Connected { version: v.clone() },
                            None => Health::Connecting,
                        };
                        true
                    } else {
                        false
                    }
                });
                match event {
                    watcher::Event::Apply(o) | watcher::Event::Delete(o) => {
                        if let Some(k) = key(&o) {
                            known.insert(k.clone());
                            emit(k);
                        }
                    }
                    watcher::Event::Init => listing.clear(),
                    watcher::Event::InitApply(o) => listing.extend(key(&o)),
                    watcher::Event::InitDone => {
                        listed.send_replace(true);
                        // Anything may have changed while the watch was down: every revision
                        // seen before or now is worth a fresh observation.
                        for k in known.union(&listing) {
                            emit(k.clone());
                        }
                        known = std::mem::take(&mut listing);
                    }
                }
            }
            Err(error) => {
                warn.warn(
                    &format!("watching the cluster's {}s failed; retrying", K::kind(&())),
                    &error,
                );
                // An error event of a watch (410 Gone: the watcher lists again) comes from an
                // API server that answers: only the others make the cluster unavailable.
                if !matches!(error, watcher::Error::WatchError(_)) {
                    health.send_replace(Health::Unreachable(error.to_string()));
                }
            }
        }
    }
}

/// Checks the rights edasd needs (once the cluster answered) and reports the missing ones by
/// name, in the log and through [`KubeRuntime::missing_rights`].
async fn check_rights(inner: &Inner) {
    let cluster = &inner.options.cluster_id;
    match tokio::time::timeout(
        inner.options.call_timeout,
        rights::missing(&inner.client, inner.options.gateway.is_some()),
    )
    .await
    {
        Ok(Ok(missing)) => {
            for right in &missing {
                tracing::warn!(%cluster, %right, "edasd lacks a right it needs on the cluster: grant it (deploy/rbac.yaml lists them all)");
            }
            if missing.is_empty() {
                tracing::info!(%cluster, "edasd has every right it needs on the cluster");
            }
            inner.missing_rights.send_replace(Some(missing));
        }
        Ok(Err(error)) => {
            tracing::warn!(%cluster, %error, "checking edasd's rights on the cluster (SelfSubjectAccessReview) failed");
        }
        Err(_) => {
            tracing::warn!(%cluster, "checking edasd's rights on the cluster (SelfSubjectAccessReview): no answer");
        }
    }
}

/// Back-off between attempts to re-establish a failed watch: 100 ms, doubling up to a bound
/// (seconds, not kube's default 30 s, so edasd sees a recovered cluster at once), reset by the
/// first event that arrives.
struct WatchBackoff {
    next: Duration,
    max: Duration,
}

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(100);

    fn new(max: Duration) -> WatchBackoff {
        WatchBackoff {
            next: Self::FIRST.min(max),
            max,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let current = self.next;
        self.next = (self.next * 2).min(self.max);
        Some(current)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST.min(self.max);
    }
}

/// Asks the API server for its version and whether it serves Gateway API HTTPRoutes, retrying
/// with back-off until it answers.
async fn discover(inner: std::sync::Weak<Inner>) {
    let mut delay = Duration::from_millis(200);
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let client = strong.client.clone();
        let result = async {
            let version = client.apiserver_version().await?;
            let gateway = match client
                .list_api_group_resources(routing::GATEWAY_API_VERSION)
                .await
            {
                Ok(list) => list.resources.iter().any(|r| r.name == "httproutes"),
                Err(kube::Error::Api(s)) if s.code == 404 => false,
                Err(e) => return Err(e),
            };
            Ok::<_, kube::Error>((version.git_version, gateway))
        }
        .await;
        match result {
            Ok((version, gateway)) => {
                strong.gateway_api.store(
                    if gateway { GATEWAY_YES } else { GATEWAY_NO },
                    Ordering::Release,
                );
                tracing::info!(cluster = %strong.options.cluster_id, %version, gateway_api = gateway, "cluster reachable");
                let _ = strong.version.set(version.clone());
                strong.health.send_replace(Health::Connected { version });
                check_rights(&strong).await;
                return;
            }
            Err(error) => {
                tracing::warn!(cluster = %strong.options.cluster_id, api_server = %strong.options.api_server.as_deref().unwrap_or("(address unknown)"), %error, "cluster not reachable yet");
                strong
                    .health
                    .send_replace(Health::Unreachable(error.to_string()));
            }
        }
        drop(strong);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

impl Runtime for KubeRuntime {
    fn check(&self, spec: &AppSpec) -> Result<(), RuntimeError> {
        edas_render::render(spec, "1", spec.replicas)
            .map(drop)
            .map_err(|e| {
                let parameter = e
                    .parameter()
                    .map(|p| format!(" (parameter {p})"))
                    .unwrap_or_default();
                RuntimeError::Unsupported(format!(
                    "cluster `{}` is Kubernetes: {e}{parameter}",
                    self.inner.options.cluster_id
                ))
            })
    }

    fn check_routing(&self, routing: &Routing) -> Result<(), RuntimeError> {
        routing::check(self, routing)
    }

    fn room(
        &self,
        namespace: &str,
    ) -> BoxFuture<'_, Result<Option<edas_runtime::Room>, RuntimeError>> {
        let namespace = namespace.to_owned();
        Box::pin(async move { room::room(self, &namespace).await.map(Some) })
    }

    fn deployment(
        &self,
        app: &AppRef,
        revision: &str,
    ) -> BoxFuture<'_, Result<Option<String>, RuntimeError>> {
        let (app, app_id, revision) = (app.clone(), app.id.clone(), revision.to_owned());
        Box::pin(async move {
            self.ready().await?;
            let found = self.inner.deployments.state().into_iter().find(|d| {
                label(d.as_ref(), LABEL_APP_ID) == Some(app_id.as_str())
                    && label(d.as_ref(), LABEL_REVISION) == Some(revision.as_str())
            });
            if found.is_none() {
                // A StatefulSet application's one object runs every revision.
                return self.stateful_json(&app).await;
            }
            found
                .map(|d| serde_json::to_string(d.as_ref()))
                .transpose()
                .map_err(|e| RuntimeError::Unavailable(format!("encoding the Deployment: {e}")))
        })
    }

    fn set_routing(
        &self,
        app: &AppRef,
        routing: &Routing,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let app = app.clone();
        let routing = routing.clone();
        Box::pin(async move { routing::set(self, &app, &routing).await })
    }

    fn check_autoscaling(&self, rule: &edas_runtime::Autoscaler) -> Result<(), RuntimeError> {
        autoscale::check(rule)
    }

    fn scale_decisions(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<edas_runtime::ScaleDecision>> {
        Some(self.inner.scale_decisions.subscribe())
    }

    fn check_ingress(&self, ingress: &edas_runtime::IngressSpec) -> Result<(), RuntimeError> {
        self.check_ingress_rule(ingress)
    }

    fn set_ingress(
        &self,
        namespace: &str,
        name: &str,
        ingress: Option<&edas_runtime::IngressSpec>,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let (namespace, name, ingress) = (namespace.to_owned(), name.to_owned(), ingress.cloned());
        Box::pin(async move { self.put_ingress(&namespace, &name, ingress.as_ref()).await })
    }

    fn set_autoscaling(
        &self,
        app: &AppRef,
        autoscaling: Option<&Autoscaling>,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let app = app.clone();
        let autoscaling = autoscaling.cloned();
        Box::pin(async move { self.set_hpa(&app, autoscaling.as_ref()).await })
    }

    fn autoscaled_replicas(
        &self,
        app: &AppRef,
    ) -> BoxFuture<'_, Result<Option<u32>, RuntimeError>> {
        let app = app.clone();
        Box::pin(async move { self.hpa_desired(&app).await })
    }

    fn set_replicas(
        &self,
        target: &Target,
        replicas: u32,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let target = target.clone();
        Box::pin(async move {
            if target.spec.workload == edas_spec::model::Workload::StatefulSet {
                // Boxed: the Deployment path's future stays as small as it was.
                return Box::pin(self.set_stateful(&target, replicas)).await;
            }
            self.desire(&target, replicas);
            self.apply_revision(&target, replicas).await
        })
    }

    fn put_config(
        &self,
        secret: bool,
        namespace: &str,
        name: &str,
        data: Option<BTreeMap<String, String>>,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let namespace = namespace.to_owned();
        let name = name.to_owned();
        Box::pin(async move { self.put_user_config(secret, &namespace, &name, data).await })
    }

    fn recreate_failed(
        &self,
        app: &AppRef,
        revision: &str,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let app_id = app.id.clone();
        let revision = revision.to_owned();
        Box::pin(async move {
            let (pods, now) = self.listed_pods().await?;
            let policy = &self.inner.options.failure;
            let failed: Vec<(String, String)> = Self::pods_of(&pods, &app_id, &revision)
                .filter(|p| state::failure(p, policy, now).is_some())
                .filter_map(|p| Some((p.metadata.namespace.clone()?, p.metadata.name.clone()?)))
                .collect();
            for (ns, name) in failed {
                let api: Api<Pod> = Api::namespaced(self.inner.client.clone(), &ns);
                self.delete(&api, &name).await?;
            }
            Ok(())
        })
    }

    fn observe(
        &self,
        app: &AppRef,
        revision: &str,
    ) -> BoxFuture<'_, Result<RevisionState, RuntimeError>> {
        let app_id = app.id.clone();
        let revision = revision.to_owned();
        Box::pin(async move {
            let (pods, now) = self.listed_pods().await?;
            let policy = &self.inner.options.failure;
            let grace_ends = Self::pods_of(&pods, &app_id, &revision)
                .filter_map(|p| state::grace_ends(p, policy, now))
                .min();
            if let Some(ends) = grace_ends {
                self.wake_at(&app_id, &revision, now, ends);
            }
            Ok(state::revision_state(
                Self::pods_of(&pods, &app_id, &revision),
                policy,
                now,
            ))
        })
    }

    fn revisions(&self, app: &AppRef) -> BoxFuture<'_, Result<Vec<String>, RuntimeError>> {
        let app_id = app.id.clone();
        Box::pin(async move {
            self.ready().await?;
            let mut out = BTreeSet::new();
            for pod in self.inner.pods.state() {
                if label(pod.as_ref(), LABEL_APP_ID) == Some(app_id.as_str())
                    && let Some(rev) = label(pod.as_ref(), LABEL_REVISION)
                {
                    out.insert(rev.to_owned());
                }
            }
            for d in self.inner.deployments.state() {
                if label(d.as_ref(), LABEL_APP_ID) == Some(app_id.as_str())
                    && let Some(rev) = label(d.as_ref(), LABEL_REVISION)
                {
                    out.insert(rev.to_owned());
                }
            }
            out.extend(self.stateful_revisions(&app_id).await?);
            Ok(out.into_iter().collect())
        })
    }

    fn logs(
        &self,
        app: &AppRef,
        instance: &str,
        request: &edas_runtime::LogRequest,
    ) -> BoxFuture<'_, Result<edas_runtime::LogChunks, edas_runtime::LogError>> {
        let (app, instance, request) = (app.clone(), instance.to_owned(), request.clone());
        Box::pin(async move { self.pod_logs(&app, &instance, &request).await })
    }

    fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.inner.events.subscribe()
    }

    fn availability(&self) -> Result<(), RuntimeError> {
        self.availability_now()
    }

    fn wait_available(&self) -> BoxFuture<'_, ()> {
        self.until_available()
    }

    fn delete_application(
        &self,
        app: &AppRef,
        force: bool,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let app_id = app.id.clone();
        // No drift correction may bring back what the sweep removes.
        self.forget(&app_id);
        Box::pin(async move { self.sweep_application(&app_id, force).await })
    }
}

#[cfg(test)]
mod tests;
