//! `edas-fake-kube`: a fake Kubernetes API server for tests (test tooling, never shipped).
//!
//! It serves the Kubernetes REST API over plain HTTP on 127.0.0.1, keeps objects in memory, and
//! simulates the Deployment and ReplicaSet controllers and the kubelet's pod lifecycle, so that
//! kube-rs clients, `kubectl` and several `edasd` processes can be tested against something that
//! answers like a cluster. Faults (pods that never become Ready or crash, API errors and delays,
//! dropped watches, compacted history) are injected by the test, from Rust or over HTTP.
//!
//! Start it in-process with [`FakeCluster::start`], or run the `edas-fake-kube` binary for
//! black-box tests (it prints `listening on http://127.0.0.1:PORT` and can write a kubeconfig).
//!
//! # What it does faithfully
//! - **Discovery** in the legacy format: `/api`, `/apis`, `/api/v1`, `/apis/apps/v1`,
//!   `/apis/networking.k8s.io/v1`,
//!   `/apis/gateway.networking.k8s.io/v1` (only when [`Config::gateway_api`] is on), `/version`.
//! - **Resources**: Namespaces, Pods, Services, ConfigMaps, Secrets, Deployments, ReplicaSets,
//!   StatefulSets,
//!   HTTPRoutes, HorizontalPodAutoscalers (`autoscaling/v2`; stored, scaled by the test through
//!   [`FakeCluster::autoscale`], see [`hpa`]), Ingresses (`networking.k8s.io/v1`; stored, no
//!   ingress controller routes them or fills `status.loadBalancer`); `status` subresources (status is ignored on the main resource and vice versa) and
//!   `scale` (autoscaling/v1 `Scale`) for Deployments, ReplicaSets and StatefulSets.
//! - **Verbs**: create (201; `generateName`), get, list (label selectors with equality and
//!   set-based requirements, field selectors on `metadata.name` / `metadata.namespace`, `limit` /
//!   `continue`), update (PUT; 409 Conflict on a stale `metadata.resourceVersion`), JSON patch,
//!   JSON merge patch, strategic merge patch (subset), server-side apply (`application/apply-patch+yaml`,
//!   `fieldManager`, `force`; creates when missing; conflicts between managers; see [`merge`]),
//!   delete with `propagationPolicy` (Background/Foreground cascade through owner references,
//!   Orphan removes them) and `preconditions`, deletecollection, `dryRun=All`.
//! - **Metadata**: one global `resourceVersion` counter (like etcd's revision), `uid`,
//!   `creationTimestamp`, `generation` bumped on spec changes, `managedFields`; a no-op write
//!   keeps the resourceVersion and sends no event. Namespaced objects need their namespace.
//! - **Watch**: `?watch=1` streams newline-delimited JSON events (`ADDED`, `MODIFIED`, `DELETED`,
//!   `BOOKMARK` with `allowWatchBookmarks=true`, `ERROR`); without a resourceVersion (or `0`) it
//!   starts with the current objects; with one it replays the bounded history after it, and a
//!   version older than the history gets an `ERROR` event carrying a 410 `Expired` Status (as the
//!   watch cache does), so clients relist. `sendInitialEvents=true` (streaming lists) ends the
//!   initial events with the `k8s.io/initial-events-end` bookmark. Selectors turn a MODIFIED that
//!   leaves or enters the selection into DELETED / ADDED. `timeoutSeconds` ends the stream.
//! - **Deployment controller**: a ReplicaSet per pod template (`<deployment>-<pod-template-hash>`,
//!   labels, selector, `deployment.kubernetes.io/revision` annotations, rollback reuses the old
//!   ReplicaSet), RollingUpdate honouring maxSurge/maxUnavailable (the real controller's scale-up
//!   and scale-down arithmetic), Recreate, `paused`, `revisionHistoryLimit`; status `replicas`,
//!   `updatedReplicas`, `readyReplicas`, `availableReplicas` (pods Ready for `minReadySeconds`),
//!   `unavailableReplicas`, `observedGeneration`, and the `Available` / `Progressing` conditions
//!   including `ProgressDeadlineExceeded` — enough for `kubectl rollout status`.
//! - **StatefulSet controller** (`controller/statefulset.rs`): pods `<name>-<ordinal>` with
//!   `hostname`/`subdomain`, `OrderedReady` (one pod at a time, each waiting for the lower ones
//!   to be Ready), `RollingUpdate` with `partition` (pods at or above it replaced from the
//!   highest ordinal down; below it, a re-created pod gets the current revision), the
//!   `controller-revision-hash` label, status `replicas`, `readyReplicas`, `availableReplicas`,
//!   `currentReplicas`, `updatedReplicas`, `currentRevision`, `updateRevision`. Not simulated:
//!   ControllerRevision objects (templates kept in memory), `volumeClaimTemplates`, the
//!   `Parallel` policy, `maxUnavailable`.
//! - **Garbage collection**: the controllers never create a dependent (ReplicaSet, pod) of an
//!   owner deleted since they read it, as a real garbage collector would delete it at once.
//! - **Pods**: created by the ReplicaSet controller as `<replicaset>-<5 chars>`, owned and labelled
//!   with `pod-template-hash`; Pending → Running → Ready after [`Config::pod_ready_delay`], with
//!   conditions, container statuses and pod IPs.
//! - **Pod logs**: the `log` subresource (`container`, `follow`, `previous`, `tailLines`,
//!   `sinceSeconds`, `timestamps`, `limitBytes`) over simulated output: no program runs, so a
//!   container's output is a line per start and crash plus what the test writes
//!   ([`FakeCluster::write_log`], `POST /_fake/logs/{namespace}/{pod}/{container}`); see [`logs`].
//!
//! # Where it differs from a real API server
//! - No authentication or admission (beyond the namespace-exists check); authorization is only
//!   the denied rights of the fault injection; plain HTTP.
//! - Defaulting only where listed: Deployment `replicas`/`strategy`/`revisionHistoryLimit`/
//!   `progressDeadlineSeconds`, ReplicaSet `replicas`, Service `type`/`clusterIP`/port
//!   `protocol`/`targetPort`/`nodePort` (allocated in turn from 30000–32767 for NodePort and
//!   LoadBalancer Services without checking for a clash with one a client chose; kept on
//!   update; a LoadBalancer's `status.loadBalancer` stays empty: no cloud provider), Secret `type` and `stringData` → `data`, Namespace phase and name
//!   label, Pod initial status, and pod specs (in Pods and templates): `restartPolicy`,
//!   `dnsPolicy`, `schedulerName`, `terminationGracePeriodSeconds`, `securityContext`, and per
//!   container `imagePullPolicy`, `terminationMessagePath`/`Policy`, `resources`, port `protocol`,
//!   probe timings. Other defaults (volumes, env sources, …) are not applied.
//! - Validation is a subset: names, Deployment/ReplicaSet selector vs template labels and
//!   immutability, containers with name and image, replicas, strategy; ConfigMap/Secret data.
//!   Unknown fields are kept, not rejected (`fieldValidation` is accepted and not enforced).
//! - Field ownership is simplified (see [`merge`]): keyed lists come from a fixed table instead of
//!   the OpenAPI schema; status fields are not tracked; a write that changes `managedFields`
//!   replaces them (kubectl's client-side → server-side apply migration), otherwise they are
//!   recomputed. As on a real server, `kubectl apply --server-side` (manager `kubectl`) takes over
//!   fields recorded in the `last-applied-configuration` annotation without a conflict. An apply
//!   patch on `/scale` is treated as a merge patch.
//! - `/openapi/v3` publishes only what kubectl needs to defer validation to the server (PATCH
//!   operations declaring `fieldValidation`), no schemas: `kubectl explain` does not work, and
//!   kubectl computes strategic merge patches from its compiled-in types.
//! - CBOR and protobuf are not implemented: responses are JSON, and a protobuf request body gets
//!   415 (so kubectl's typed generators such as `kubectl create namespace` fail; `kubectl apply`
//!   works). Server-side `Table`s (what `kubectl get` prints) have the real columns for the served
//!   kinds but only `PartialObjectMetadata` row objects (`includeObject` is not supported).
//! - **Gateway controller**: Gateways are stored; an HTTPRoute whose parent Gateway exists gets
//!   `status.parents[].conditions` `Accepted=True` (or `False`, reason `NotAllowedByListeners`,
//!   when the Gateway carries [`controller::REJECT_ROUTES_ANNOTATION`]); a route whose parent does
//!   not exist, or carries [`controller::IGNORE_ROUTES_ANNOTATION`], gets no status. No traffic is routed.
//! - **Authorization**: everything is allowed unless denied ([`FakeCluster::deny`]); a denied
//!   right answers 403 Forbidden worded like RBAC, and `SelfSubjectAccessReview`s
//!   (`authorization.k8s.io/v1`) answer `allowed` accordingly.
//! - Deletion is immediate: no finalizers, no `deletionTimestamp`, no graceful pod termination;
//!   Foreground behaves like Background. Namespace deletion removes its objects at once.
//! - No scheduler, nodes, endpoints, events, or Service behaviour (stored and watched only). Proportional scaling during a rollout is approximated.
//! - No quota controller: a ResourceQuota's `status` (`hard`, `used`) is what the test wrote with
//!   the object, and nothing is refused for exceeding it.
//! - Pod status belongs to the simulated kubelet: every pod (also one created directly) gets the
//!   simulated lifecycle, and a client's write to a pod's status is overwritten. Probes are not run;
//!   readiness comes from the delay and the faults.
//! - Lists are served from the current state (no snapshots): a `continue` token returns the
//!   current objects after its key, and `resourceVersionMatch=Exact` at an old version is 410.
//! - `BOOKMARK`s are sent every [`Config::bookmark_interval`] (a real server: about a minute).
//!
//! # Fault injection
//! [`FakeCluster::add_pod_fault`] ([`PodFault`]: never Ready, crash after a while (then
//! `CrashLoopBackOff`), unschedulable (`PodScheduled=False`, `Unschedulable`), image pull errors
//! (`ErrImagePull`, then `ImagePullBackOff`), `CreateContainerConfigError`; by label selector or
//! image), [`FakeCluster::add_api_fault`] ([`ApiFault`]: an HTTP error status or a delay for a
//! method + path pattern, for N calls or until cleared; an outage is a 500 on `*` plus
//! [`FakeCluster::drop_watches`], recovery is [`FakeCluster::clear_faults`]),
//! [`FakeCluster::drain_watches`] (open watches go silent without closing, as on a draining API
//! server), [`FakeCluster::deny`] (RBAC), [`FakeCluster::drop_watches`],
//! [`FakeCluster::compact`] (older resourceVersions get 410), [`FakeCluster::clear_faults`]. The
//! same over HTTP for the binary: see [`server`] (`/_fake/...`). Note that kube-rs's default client
//! retries 429/503/504 by itself, so use another status to make a single call fail.

pub mod controller;
pub mod error;
pub mod faults;
pub mod hpa;
pub mod logs;
pub mod merge;
pub mod resources;
pub mod selector;
pub mod server;
pub mod store;
pub mod table;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::ApiError;
pub use faults::{ApiFault, DeniedRight, PodEffect, PodFault};

/// How to run the fake cluster.
#[derive(Debug, Clone)]
pub struct Config {
    /// Port on 127.0.0.1; `0` picks a free one. The server never binds another address.
    pub port: u16,
    /// How long a started pod takes to become Ready.
    pub pod_ready_delay: Duration,
    /// Serve `gateway.networking.k8s.io/v1` HTTPRoutes.
    pub gateway_api: bool,
    /// How many events the watch history keeps; a watch from an older resourceVersion gets 410.
    pub watch_history: usize,
    /// How often a watch with `allowWatchBookmarks=true` receives a BOOKMARK.
    pub bookmark_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: 0,
            pod_ready_delay: Duration::from_millis(300),
            gateway_api: false,
            watch_history: 1000,
            bookmark_interval: Duration::from_secs(5),
        }
    }
}

/// A running fake cluster. Dropping it stops the server and the controllers and ends open watches.
pub struct FakeCluster {
    addr: SocketAddr,
    store: Arc<store::Store>,
    faults: Arc<faults::Faults>,
    logs: Arc<logs::Logs>,
    drop_watches: watch::Sender<u64>,
    drain_watches: watch::Sender<u64>,
    /// Stops accepting connections and closes idle ones (graceful, so in-flight calls finish).
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeCluster {
    /// Binds 127.0.0.1:`config.port` and starts serving on the current tokio runtime.
    pub async fn start(config: Config) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, config.port)).await?;
        let addr = listener.local_addr()?;
        let store = Arc::new(store::Store::new(config.watch_history));
        let faults = Arc::new(faults::Faults::default());
        let logs = Arc::new(logs::Logs::default());
        let (drop_watches, _) = watch::channel(0u64);
        let (drain_watches, _) = watch::channel(0u64);
        let app = Arc::new(server::AppState {
            store: store.clone(),
            faults: faults.clone(),
            gateway_api: config.gateway_api,
            bookmark_interval: config.bookmark_interval.max(Duration::from_millis(10)),
            drop_watches: drop_watches.clone(),
            drain_watches: drain_watches.clone(),
            logs: logs.clone(),
        });
        let controller = Arc::new(controller::Controller::new(
            store.clone(),
            faults.clone(),
            logs.clone(),
            controller::SimConfig {
                pod_ready_delay: config.pod_ready_delay,
            },
        ));
        let router = server::router(app);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(error) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(message = "fake API server stopped", %error);
            }
        });
        let controller = tokio::spawn(controller.run());
        Ok(Self {
            addr,
            store,
            faults,
            logs,
            drop_watches,
            drain_watches,
            stop: Some(stop),
            tasks: vec![server, controller],
        })
    }

    /// Appends `text` to the output of a pod's container (what its `log` subresource serves;
    /// see [`logs`]).
    pub fn write_log(&self, namespace: &str, pod: &str, container: &str, text: &str) {
        self.logs.write(namespace, pod, container, text);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address (always on 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig pointing at this server, with `namespace` as the context's default.
    pub fn kubeconfig_yaml(&self, namespace: &str) -> String {
        kubeconfig_yaml(&self.base_url(), namespace)
    }

    /// Writes [`FakeCluster::kubeconfig_yaml`] to a file.
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml(namespace))
    }

    /// Installs an API fault (rejected with the offending field if invalid).
    pub fn add_api_fault(&self, fault: ApiFault) -> Result<(), String> {
        self.faults.add_api(fault)
    }

    /// Installs a pod fault (rejected with the offending field if invalid); it applies at once.
    pub fn add_pod_fault(&self, fault: PodFault) -> Result<(), String> {
        self.faults.add_pod(fault)?;
        self.store.controller_wake.notify_one();
        Ok(())
    }

    /// Removes every fault; faulty pods recover.
    pub fn clear_faults(&self) {
        self.faults.clear();
        self.store.controller_wake.notify_one();
    }

    /// Ends every open watch stream (clients re-watch from their last resourceVersion).
    pub fn drop_watches(&self) {
        self.drop_watches.send_modify(|generation| *generation += 1);
    }

    /// Makes every open watch stream go silent without closing it, as a draining API server
    /// does during a graceful restart; new watches are served normally.
    pub fn drain_watches(&self) {
        self.drain_watches
            .send_modify(|generation| *generation += 1);
    }

    /// Denies a right: calls needing it answer 403 Forbidden, and SelfSubjectAccessReviews for
    /// it `allowed: false` (until [`FakeCluster::clear_faults`]).
    pub fn deny(&self, right: DeniedRight) -> Result<(), String> {
        self.faults.deny(right)
    }

    /// Forgets the watch history: a watch from any older resourceVersion gets 410 Gone.
    pub fn compact(&self) {
        self.store.compact();
    }

    /// Plays the HPA controller: scales the target Deployment of HorizontalPodAutoscaler
    /// `namespace/name` to `desired` clamped to the HPA's bounds, and records it in the HPA's
    /// status (see [`hpa`]); answers the count set.
    pub fn autoscale(&self, namespace: &str, name: &str, desired: i32) -> Result<i32, String> {
        hpa::autoscale(&self.store, namespace, name, desired)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store.current_rv()
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.drop_watches();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The server task ends by itself once its connections are closed; the controller never does.
        for task in self.tasks.iter().skip(1) {
            task.abort();
        }
    }
}

/// A kubeconfig for a fake cluster at `base_url`.
pub fn kubeconfig_yaml(base_url: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: edas-fake-kube\n  cluster:\n    server: {base_url}\n\
         contexts:\n- name: edas-fake-kube\n  context:\n    cluster: edas-fake-kube\n    user: edas-fake-kube\n    namespace: {namespace}\n\
         current-context: edas-fake-kube\nusers:\n- name: edas-fake-kube\n  user: {{}}\n"
    )
}
