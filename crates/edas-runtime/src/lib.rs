//! The runtime port: the small interface the release engine drives.
//!
//! A runtime runs the instances of application revisions: the local runtime as supervised
//! processes on this machine, the Kubernetes runtime as pods. The engine never asks "how"; it
//! says how many instances of which revision must exist ([`Runtime::set_replicas`], idempotent,
//! so a resumed step never doubles instances), and it learns what happened from
//! [`RuntimeEvent`]s, which say *that* a revision changed, followed by [`Runtime::observe`],
//! which says *how it is now*. Events carry no state, so a lost or duplicated event is harmless:
//! the engine always acts on a fresh observation.
//!
//! Every call carries what the runtime needs and nothing makes it call back: the application
//! as an [`AppRef`] (id, name, namespace), and with each [`Target`] the revision's spec and the
//! contents of the ConfigMaps and Secrets it references ([`ConfigSnapshot`]).
//!
//! Not here: planning (edas-release), persistence (edas-store), HTTP (edas-api).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub mod fake;
mod logs;

pub use logs::{LOG_CHANNEL_DEPTH, LogChunks, LogError, LogRequest, log_channel};

pub use edas_spec::autoscale::{Autoscaler, ScaleDirection, ScaleMetric, ScalePolicy};
pub use edas_spec::ingress::{IngressBackend, IngressHost, IngressPath, IngressSpec, PathType};

use edas_spec::AppSpec;
use edas_spec::model::{Lossless, ServiceConfig};
use edas_spec::release::TrafficControl;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// A boxed future, so runtimes of different kinds can sit behind one `dyn Runtime`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The application a runtime call is about: its id (never reused, what a runtime labels and
/// finds its objects by) with the name and namespace it names them after, so that no runtime
/// has to ask the store who an application is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AppRef {
    /// The application id.
    pub id: String,
    /// The application name (`AppName`).
    pub name: String,
    /// Its Kubernetes namespace (the local runtime's namespace of ConfigMaps and Secrets).
    pub namespace: String,
}

/// Key → value data of a ConfigMap or (decoded) Secret.
pub type ConfigData = BTreeMap<String, String>;

/// The contents of the ConfigMaps and Secrets a revision's instances read (the engine's
/// immutable per-revision copies, by the names the revision's spec uses), carried with the
/// target so that a runtime needs no way back into the store to start an instance. A name the
/// spec references but the snapshot lacks did not exist when the revision was released. Its
/// `Debug` shows names only, never values.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigSnapshot {
    /// ConfigMaps by name.
    pub config_maps: BTreeMap<String, ConfigData>,
    /// Secrets (decoded) by name.
    pub secrets: BTreeMap<String, ConfigData>,
}

impl ConfigSnapshot {
    /// The data of a ConfigMap (`secret` false) or Secret, if the revision has it.
    pub fn get(&self, secret: bool, name: &str) -> Option<&ConfigData> {
        if secret {
            self.secrets.get(name)
        } else {
            self.config_maps.get(name)
        }
    }
}

impl std::fmt::Debug for ConfigSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSnapshot")
            .field("config_maps", &self.config_maps.keys().collect::<Vec<_>>())
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One revision of one application, as the runtime must run it.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The application.
    pub app: AppRef,
    /// The revision id (unique within the application; e.g. `"3"`).
    pub revision: String,
    /// The revision's complete spec (ConfigMap and Secret references naming its copies).
    pub spec: Arc<AppSpec>,
    /// The contents of the ConfigMaps and Secrets the spec references.
    pub config: Arc<ConfigSnapshot>,
}

/// An application's enabled scaling rule and the revision whose instances it scales (the
/// stable one while a release runs, the new one once it completes): what a runtime must make
/// true with [`Runtime::set_autoscaling`]. The engine sets it from the stored rule, so the
/// runtime never asks the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Autoscaling {
    /// The revision scaled.
    pub revision: String,
    /// The rule.
    pub rule: Autoscaler,
    /// A change order of the application is in flight: the autoscaler keeps the count the
    /// release planned and changes nothing (on Kubernetes both directions' `selectPolicy`
    /// is `Disabled`), so it cannot fight the batches; cleared when the order ends.
    pub held: bool,
}

/// A decision of an autoscaler that scales through edasd (the local one): the engine stores
/// it as a Scale change order (creator `autoscaler`) and carries it out like any other, so
/// the stored count stays the truth across restarts and releases. An autoscaler that scales
/// by itself (the Kubernetes HPA) reports what it did the same way, `applied` set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleDecision {
    /// The application.
    pub app_id: String,
    /// The revision scaled.
    pub revision: String,
    /// Its instance count when the autoscaler decided.
    pub from: u32,
    /// The count it wants.
    pub to: u32,
    /// Why, for the change order's description (e.g. `cpu 85% > target 60%`).
    pub reason: String,
    /// The autoscaler already scaled the revision (the HPA): the record follows it.
    pub applied: bool,
}

/// What a runtime reports about one revision of one application.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevisionState {
    /// Instances that are ready: passing their readiness probe (or started, without one). Plain
    /// readiness only: the release engine itself applies `min_ready_seconds` and the lossless
    /// registration delay and warm-up, so a runtime must not wait for them as well.
    pub ready: u32,
    /// Instances that exist, ready or not, not yet stopped.
    pub total: u32,
    /// Set when the runtime gave up on an instance (cannot start, keeps crashing): the reason.
    pub failed: Option<String>,
    /// The instances, by name.
    pub instances: Vec<Instance>,
}

/// One instance (a process or a pod).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instance {
    /// Unique name (e.g. `demo-3-7f2c`).
    pub name: String,
    /// The revision it runs (the one [`Runtime::observe`] was asked about).
    pub revision: String,
    /// Address traffic reaches it on, if any.
    pub ip: Option<String>,
    /// Port traffic reaches it on, if any.
    pub port: Option<u16>,
    /// Whether it is ready.
    pub ready: bool,
    /// Restarts so far.
    pub restarts: u32,
    /// Why the runtime gave up on it, if it did.
    pub failed: Option<String>,
    /// How its previous run ended, if it restarted (`OOMKilled`, an exit status, a failed
    /// liveness probe …): what an operator asks first about an instance that restarts.
    pub last_exit: Option<String>,
}

/// Every revision's request counters since the runtime started counting them
/// ([`Runtime::traffic`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrafficCounters {
    /// By revision.
    pub revisions: std::collections::BTreeMap<String, RevisionCounters>,
}

/// One revision's cumulative counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RevisionCounters {
    /// Answers of every status.
    pub requests: u64,
    /// Answers with a 5xx status.
    pub server_errors: u64,
    /// Upper bounds (seconds, ascending) of the latency buckets.
    pub latency_bounds: Vec<f64>,
    /// Cumulative: answers that took at most the bound (time to the response's head).
    pub latency_counts: Vec<u64>,
}

/// "Something about this revision changed": observe it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeEvent {
    /// The application.
    pub app_id: String,
    /// The revision.
    pub revision: String,
}

/// How an application's traffic reaches its instances: what a runtime must make true with
/// [`Runtime::set_routing`]. The engine derives it from the stored state alone (the newest
/// revision's Services and lossless settings; during the gray batch of a release with
/// `TrafficControlStrategy`, the split), so re-applying it after a restart is always safe.
/// Serializable so a runtime can keep it (the local runtime re-binds its Service ports from it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Routing {
    /// The application's Services (`ServiceConfigs`, CreateK8sService …). Each selects the ready
    /// instances of *every* revision of the application; none means no Services.
    pub services: Vec<ServiceConfig>,
    /// Lossless start of new instances (delay, then warm-up along the curve), from the newest
    /// revision: a runtime that routes traffic itself honours it for instances that become ready.
    pub lossless: Lossless,
    /// `EnableEmptyPushReject`: keep sending to the last known instances rather than to none.
    pub empty_push_reject: bool,
    /// Set during the gray batch of a release with a `TrafficControlStrategy`.
    pub gray: Option<GraySplit>,
}

/// The gray traffic split of a release: requests matching `traffic` go to the instances of
/// `gray_revision`, the others to those of `stable_revision`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraySplit {
    /// The revision that served before the release.
    pub stable_revision: String,
    /// The revision being released.
    pub gray_revision: String,
    /// The rules (percent, header, cookie, parameter).
    pub traffic: TrafficControl,
}

/// Why a runtime could not do what it was asked. The kind decides what the engine does: a
/// refusal fails the change order with the runtime's reason, an unavailability is retried
/// with bounded back-off (every write is idempotent, so one applied before its answer was lost
/// is safely applied again).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime refuses this for good (an image-only application on the local runtime, a
    /// cluster rejecting the object as invalid or forbidden); retrying will not help.
    #[error("{0}")]
    Unsupported(String),
    /// The runtime is unavailable or failed (cluster unreachable, no answer, I/O error);
    /// retrying may help.
    #[error("{0}")]
    Unavailable(String),
}

/// What one node can still take: its allocatable CPU and memory less what the pods placed on
/// it request (a precheck's capacity check places instances on them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeRoom {
    /// The node's name.
    pub node: String,
    /// CPU still free for requests, in millicores.
    pub cpu_millis: u64,
    /// Memory still free for requests, in MiB.
    pub memory_mib: u64,
}

/// What a namespace's ResourceQuotas still allow (the least any of them leaves, `hard` less
/// `used`); `None` where no quota bounds that resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuotaRoom {
    /// The quotas that bound something, by name.
    pub quotas: Vec<String>,
    /// `pods`.
    pub pods: Option<u64>,
    /// `requests.cpu` (or `cpu`), in millicores.
    pub cpu_requests_millis: Option<u64>,
    /// `requests.memory` (or `memory`), in MiB.
    pub memory_requests_mib: Option<u64>,
    /// `limits.cpu`, in millicores.
    pub cpu_limits_millis: Option<u64>,
    /// `limits.memory`, in MiB.
    pub memory_limits_mib: Option<u64>,
}

/// Where a revision's instances could go now: each schedulable node's room, and what the
/// namespace's quotas still allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Room {
    pub nodes: Vec<NodeRoom>,
    /// `Ok(None)`: no ResourceQuota in the namespace; `Err`: they could not be read (why).
    pub quota: Result<Option<QuotaRoom>, String>,
}

/// A place that runs instances.
pub trait Runtime: Send + Sync + 'static {
    /// Whether this runtime can run `spec` at all (checked when a change is submitted, so a
    /// request it can never carry out is refused with a clear error instead of failing later as
    /// a system failure). The default accepts everything.
    fn check(&self, spec: &AppSpec) -> Result<(), RuntimeError> {
        let _ = spec;
        Ok(())
    }

    /// What of `spec` this runtime accepted but will not apply (each naming its parameter),
    /// for a runtime configured to record what it cannot enforce instead of refusing it (the
    /// local runtime's `unenforceable = "record"`): the change order should say so. The
    /// default applies everything it accepts.
    fn unenforced(&self, spec: &AppSpec) -> Vec<String> {
        let _ = spec;
        Vec::new()
    }

    /// Whether this runtime can route traffic as `routing` says (checked when a change is
    /// submitted, like [`Runtime::check`]: e.g. a Kubernetes cluster without Gateway API cannot
    /// split gray traffic, the local runtime cannot serve UDP). A check of the runtime's
    /// capabilities, like `check`, so it names no application. The default accepts everything.
    fn check_routing(&self, routing: &Routing) -> Result<(), RuntimeError> {
        let _ = routing;
        Ok(())
    }

    /// Makes the application's traffic routing exactly `routing`: creates, updates or removes its
    /// Services and the gray split. Idempotent; the engine calls it when a change order starts,
    /// at every step that changes the routing, when it resumes, and for every application when
    /// edasd starts. The default (a runtime that routes nothing) does nothing.
    fn set_routing(
        &self,
        app: &AppRef,
        routing: &Routing,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let _ = (app, routing);
        Box::pin(async { Ok(()) })
    }

    /// Whether this runtime can route `ingress` from outside (checked before an ingress rule
    /// is stored, like [`Runtime::check`]). The default refuses: a runtime without an ingress
    /// would leave a stored rule silently unrouted.
    fn check_ingress(&self, ingress: &IngressSpec) -> Result<(), RuntimeError> {
        let _ = ingress;
        Err(RuntimeError::Unsupported(
            "this runtime routes no ingress".to_owned(),
        ))
    }

    /// Makes ingress rule `name` of `namespace` exactly `ingress` (`None`: removes it).
    /// Idempotent; edasd calls it when a rule is created, changed or deleted and, for every
    /// stored rule, when it starts. The default accepts `None` and refuses a rule.
    fn set_ingress(
        &self,
        namespace: &str,
        name: &str,
        ingress: Option<&IngressSpec>,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let _ = (namespace, name);
        let refused = ingress.is_some();
        Box::pin(async move {
            if refused {
                Err(RuntimeError::Unsupported(
                    "this runtime routes no ingress".to_owned(),
                ))
            } else {
                Ok(())
            }
        })
    }

    /// Whether this runtime can scale an application by `rule` (checked when a scaling rule
    /// is enabled, like [`Runtime::check`]; a metric it cannot measure is refused naming
    /// `metrics[i]`). The default refuses: a runtime without an autoscaler would leave an
    /// enabled rule silently ignored.
    fn check_autoscaling(&self, rule: &Autoscaler) -> Result<(), RuntimeError> {
        let _ = rule;
        Err(RuntimeError::Unsupported(
            "this runtime has no autoscaler: a scaling rule cannot be enabled here".to_owned(),
        ))
    }

    /// Makes the application's autoscaler exactly `autoscaling` (`None`: removes it).
    /// Idempotent. The default accepts `None` (there is nothing to remove) and refuses a rule.
    fn set_autoscaling(
        &self,
        app: &AppRef,
        autoscaling: Option<&Autoscaling>,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let _ = app;
        let refused = autoscaling.is_some();
        Box::pin(async move {
            if refused {
                Err(RuntimeError::Unsupported(
                    "this runtime has no autoscaler".to_owned(),
                ))
            } else {
                Ok(())
            }
        })
    }

    /// How many instances the application's autoscaler wants now (a release plans its batches
    /// against it); `None` when it has no autoscaler or the autoscaler has not decided yet.
    /// The default has none.
    fn autoscaled_replicas(
        &self,
        app: &AppRef,
    ) -> BoxFuture<'_, Result<Option<u32>, RuntimeError>> {
        let _ = app;
        Box::pin(async { Ok(None) })
    }

    /// The decisions of this runtime's autoscalers, for the engine to record (and, unless
    /// `applied`, carry out) as Scale change orders; `None` (the default) when it has none to
    /// tell.
    fn scale_decisions(&self) -> Option<broadcast::Receiver<ScaleDecision>> {
        None
    }

    /// The requests each revision of the application answered so far, counted where the
    /// runtime sees them (the release analysis's built-in traffic provider takes the difference
    /// of two). `Unsupported` by default: a runtime that sees no requests (Kubernetes, where a
    /// policy uses its Prometheus instead).
    fn traffic(&self, app: &AppRef) -> BoxFuture<'_, Result<TrafficCounters, RuntimeError>> {
        let _ = app;
        Box::pin(async {
            Err(RuntimeError::Unsupported(
                "this runtime does not count requests per revision; use a Prometheus check"
                    .to_owned(),
            ))
        })
    }

    /// Makes exactly `replicas` instances of `target` exist: starts the missing ones, or stops
    /// surplus ones (not-ready ones first, gracefully). Idempotent.
    fn set_replicas(
        &self,
        target: &Target,
        replicas: u32,
    ) -> BoxFuture<'_, Result<(), RuntimeError>>;

    /// Replaces the instances of a revision the runtime gave up on (used by a retry).
    fn recreate_failed(
        &self,
        app: &AppRef,
        revision: &str,
    ) -> BoxFuture<'_, Result<(), RuntimeError>>;

    /// How a revision is now. A revision that has no instances reports zeros.
    fn observe(
        &self,
        app: &AppRef,
        revision: &str,
    ) -> BoxFuture<'_, Result<RevisionState, RuntimeError>>;

    /// The revisions of an application that have instances (so a resumed engine can find
    /// leftovers and a deleted application can be cleaned up).
    fn revisions(&self, app: &AppRef) -> BoxFuture<'_, Result<Vec<String>, RuntimeError>>;

    /// Subscribes to change notifications for every application.
    fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent>;

    /// The output of one of the application's instances (see [`LogRequest`]): its current run,
    /// or with `previous` the run before it. An instance of another application is
    /// [`LogError::NoInstance`]. The default (a runtime that keeps no output) refuses.
    fn logs(
        &self,
        app: &AppRef,
        instance: &str,
        request: &LogRequest,
    ) -> BoxFuture<'_, Result<LogChunks, LogError>> {
        let _ = (app, instance, request);
        Box::pin(async {
            Err(LogError::Runtime(RuntimeError::Unsupported(
                "this runtime keeps no instance output".to_owned(),
            )))
        })
    }

    /// Whether the runtime can be asked now, without waiting: `Err(Unavailable)` naming the
    /// cluster and its address when it is known not to answer (its API server is down), so
    /// writes are refused at once and reads answer from the last known state, marked unknown,
    /// instead of waiting on it. The default (a runtime in this process) is always available.
    fn availability(&self) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// Resolves once the runtime is available (at once when it is): the event that lets
    /// clean-up left for an unreachable cluster run as soon as the cluster answers again.
    fn wait_available(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// What each schedulable node can still take and what the quotas of `namespace` still
    /// allow (read now from the cluster, for a precheck), or `None` when this runtime does not
    /// know its room (the default; the local runtime's room is the host's, which the
    /// application layer knows).
    fn room(&self, namespace: &str) -> BoxFuture<'_, Result<Option<Room>, RuntimeError>> {
        let _ = namespace;
        Box::pin(async { Ok(None) })
    }

    /// The object that runs revision `revision` of the application, as the cluster has it now
    /// (GetAppDeployment): on Kubernetes its Deployment as JSON text, `None` when there is none.
    /// The default (a runtime that runs no such object) refuses, saying so.
    fn deployment(
        &self,
        app: &AppRef,
        revision: &str,
    ) -> BoxFuture<'_, Result<Option<String>, RuntimeError>> {
        let _ = (app, revision);
        Box::pin(async {
            Err(RuntimeError::Unsupported(
                "this runtime runs processes, not Kubernetes Deployments".to_owned(),
            ))
        })
    }

    /// Makes a ConfigMap (`secret` false) or Secret that a user created through the API exist
    /// in the runtime under its own name in `namespace`, with exactly `data` (`None`: removes
    /// it). Runtimes whose instances read configuration from edasd's store (the local one) have
    /// nothing to do; the default does nothing.
    fn put_config(
        &self,
        secret: bool,
        namespace: &str,
        name: &str,
        data: Option<std::collections::BTreeMap<String, String>>,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let _ = (secret, namespace, name, data);
        Box::pin(async { Ok(()) })
    }

    /// Removes every object of the application that is left in the runtime, whatever
    /// revision or state it is in: the last step of deleting an application, after its
    /// revisions were scaled to 0 and its routing cleared. `force` skips graceful termination
    /// (EDAS's `Force=true`: no waits, no hooks). Idempotent: nothing left is success. The
    /// default (a runtime whose objects are only its instances and routing) has nothing more
    /// to remove.
    fn delete_application(
        &self,
        app: &AppRef,
        force: bool,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let _ = (app, force);
        Box::pin(async { Ok(()) })
    }
}
