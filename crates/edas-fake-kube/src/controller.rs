//! The simulated kube-controller-manager and kubelet: the Deployment controller (ReplicaSets per
//! pod template, rolling update with maxSurge / maxUnavailable, Recreate, revision annotations,
//! history limit, status and conditions), the ReplicaSet controller (pods named and labelled like
//! the real ones), the StatefulSet controller (`statefulset.rs`: ordinals, OrderedReady,
//! RollingUpdate with `partition`), and a pod lifecycle (Pending → Running → Ready after a
//! delay, with faults).
//!
//! It is event-driven: one task wakes on every write to a Deployment, ReplicaSet or Pod, or at the
//! next instant something is due (a pod becoming Ready, a pod becoming available after
//! `minReadySeconds`, a progress deadline), reconciles everything, and sleeps again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::faults::{Faults, PodEffect, PodFault};
use crate::resources::by_kind;
use crate::selector::LabelSelector;
use crate::store::{Store, name_of, now_rfc3339, random_suffix, uid_of};

mod statefulset;
pub use statefulset::REVISION_LABEL;

/// Resolves an IntOrString like `25%` or `1` against `total`; percentages round up for surge and
/// down for unavailability, as the real controller does. `None` for a malformed value.
pub fn int_or_percent(value: &Value, total: i64, round_up: bool) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().filter(|n| *n >= 0),
        Value::String(s) => {
            if let Some(percent) = s.strip_suffix('%') {
                let percent: i64 = percent.parse().ok().filter(|p| *p >= 0)?;
                let scaled = percent * total;
                Some(if round_up {
                    (scaled + 99) / 100
                } else {
                    scaled / 100
                })
            } else {
                s.parse().ok().filter(|n: &i64| *n >= 0)
            }
        }
        _ => None,
    }
}

/// The pod-template-hash: FNV-32a over the canonical template, encoded with the API server's
/// "safe" alphabet (so it looks like `5d59d67564`).
pub fn template_hash(template: &Value) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in canonical(template).to_string().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    hash.to_string()
        .bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// Sorted keys, and no `null`s or empty objects: a Go client's `creationTimestamp: null` and
/// `resources: {}` (what `kubectl rollout undo` sends back) mean the same template.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, Value> = map
                .iter()
                .map(|(k, v)| (k, canonical(v)))
                .filter(|(_, v)| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()))
                .collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn template_without_hash(template: &Value) -> Value {
    let mut copy = template.clone();
    if let Some(labels) = copy
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove("pod-template-hash");
    }
    canonical(&copy)
}

fn int(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn controller_owner(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|o| o.get("uid").and_then(Value::as_str))
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Ready")
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
}

/// Annotation on a Gateway that makes the simulated Gateway controller refuse its HTTPRoutes
/// (`Accepted=False`, reason `NotAllowedByListeners`, the annotation's value as message).
pub const REJECT_ROUTES_ANNOTATION: &str = "edas-fake-kube/reject-routes";

/// Annotation on a Gateway that no simulated controller serves: its HTTPRoutes get no status
/// (as with a Gateway whose GatewayClass has no running controller).
pub const IGNORE_ROUTES_ANNOTATION: &str = "edas-fake-kube/ignore-routes";

/// Per-pod state the kubelet simulation keeps outside the API object.
#[derive(Debug, Clone)]
struct PodSim {
    /// When the pod (re)starts being Ready; `None` while it never will.
    ready_at: Option<Instant>,
    /// When it became Ready (for availability after `minReadySeconds`).
    ready_since: Option<Instant>,
    /// When a crash fault makes it fail next.
    crash_at: Option<Instant>,
    restarts: i64,
    started: String,
}

/// Last observed rollout progress of a Deployment (for `progressDeadlineSeconds`).
#[derive(Debug, Clone)]
struct Progress {
    fingerprint: (i64, i64, i64, i64, String),
    since: Instant,
}

/// The controller simulation's tunables.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub pod_ready_delay: Duration,
}

pub struct Controller {
    store: Arc<Store>,
    faults: Arc<Faults>,
    /// The simulated containers' output (each start and crash writes a line).
    logs: Arc<crate::logs::Logs>,
    config: SimConfig,
    pods: Mutex<HashMap<String, PodSim>>,
    progress: Mutex<HashMap<String, Progress>>,
    /// The pod templates of each StatefulSet's revisions, by StatefulSet uid and revision name
    /// (what ControllerRevisions hold on a real cluster).
    set_revisions: Mutex<HashMap<String, HashMap<String, Value>>>,
    next_ip: Mutex<u32>,
}

impl Controller {
    pub fn new(
        store: Arc<Store>,
        faults: Arc<Faults>,
        logs: Arc<crate::logs::Logs>,
        config: SimConfig,
    ) -> Self {
        Self {
            store,
            faults,
            logs,
            config,
            pods: Mutex::new(HashMap::new()),
            progress: Mutex::new(HashMap::new()),
            set_revisions: Mutex::new(HashMap::new()),
            next_ip: Mutex::new(2),
        }
    }

    /// Runs until the task is aborted.
    pub async fn run(self: Arc<Self>) {
        loop {
            // A bug in the simulation must not stop it for the rest of the test run.
            let next = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.reconcile_all()
            })) {
                Ok(next) => next,
                Err(_) => {
                    tracing::error!(message = "controller simulation panicked; retrying in 1s");
                    Some(Instant::now() + Duration::from_secs(1))
                }
            };
            match next {
                Some(deadline) => {
                    tokio::select! {
                        () = self.store.controller_wake.notified() => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
                None => self.store.controller_wake.notified().await,
            }
        }
    }

    /// One pass over everything; returns the next instant something becomes due.
    pub fn reconcile_all(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut due = |at: Instant| {
            if at > now {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        self.sync_pods(now, &mut due);
        let deployments = self.store.all(by_kind("Deployment"));
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|uid, _| deployments.iter().any(|d| uid_of(d) == uid));
        for deployment in deployments {
            self.sync_deployment(&deployment, now, &mut due);
        }
        for replica_set in self.store.all(by_kind("ReplicaSet")) {
            self.sync_replica_set(&replica_set, now, &mut due);
        }
        let sets = self.store.all(by_kind("StatefulSet"));
        self.set_revisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|uid, _| sets.iter().any(|s| uid_of(s) == uid));
        for set in sets {
            self.sync_stateful_set(&set, now, &mut due);
        }
        self.sync_routes();
        next
    }

    /// The Gateway controller: an HTTPRoute whose parent Gateway exists is `Accepted` by it
    /// (`status.parents[].conditions`), unless the Gateway carries the annotation
    /// [`REJECT_ROUTES_ANNOTATION`] (its value is the message of `Accepted=False`, reason
    /// `NotAllowedByListeners`). A parent that does not exist, or carries
    /// [`IGNORE_ROUTES_ANNOTATION`], gets no status, as no controller is responsible for it.
    fn sync_routes(&self) {
        let route_kind = by_kind("HTTPRoute");
        let gateway_kind = by_kind("Gateway");
        for route in self.store.all(route_kind) {
            let route_ns = route
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let generation = route
                .pointer("/metadata/generation")
                .cloned()
                .unwrap_or(json!(1));
            let mut parents = Vec::new();
            for parent in route
                .pointer("/spec/parentRefs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = parent
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let ns = parent
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(route_ns);
                let Ok(gateway) = self.store.get(gateway_kind, ns, name) else {
                    continue;
                };
                let annotations = gateway.pointer("/metadata/annotations");
                if annotations.is_some_and(|a| a.get(IGNORE_ROUTES_ANNOTATION).is_some()) {
                    continue;
                }
                let rejected = annotations
                    .and_then(|a| a.get(REJECT_ROUTES_ANNOTATION))
                    .and_then(Value::as_str);
                let condition = match rejected {
                    None => json!({"type": "Accepted", "status": "True", "reason": "Accepted",
                        "message": "Route is accepted", "observedGeneration": generation,
                        "lastTransitionTime": now_rfc3339()}),
                    Some(message) => json!({"type": "Accepted", "status": "False",
                        "reason": "NotAllowedByListeners", "message": message,
                        "observedGeneration": generation, "lastTransitionTime": now_rfc3339()}),
                };
                parents.push(json!({
                    "parentRef": parent,
                    "controllerName": "edas-fake-kube/gateway-controller",
                    "conditions": [condition],
                }));
            }
            let old = route
                .pointer("/status/parents")
                .cloned()
                .unwrap_or(json!([]));
            let same = |a: &Value, b: &Value| {
                let strip = |v: &Value| {
                    let mut v = v.clone();
                    for p in v.as_array_mut().into_iter().flatten() {
                        for c in p["conditions"].as_array_mut().into_iter().flatten() {
                            c["lastTransitionTime"] = Value::Null;
                        }
                    }
                    v
                };
                strip(a) == strip(b)
            };
            if !same(&old, &json!(parents)) {
                let mut updated = route.clone();
                updated["status"] = json!({"parents": parents});
                self.store.controller_write(route_kind, updated, true);
            }
        }
    }

    fn sync_pods(&self, now: Instant, due: &mut impl FnMut(Instant)) {
        let pod_kind = by_kind("Pod");
        let pods = self.store.all(pod_kind);
        let mut sims = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        sims.retain(|uid, _| pods.iter().any(|p| uid_of(p) == uid));
        let names: Vec<(String, String)> = pods.iter().map(pod_key).collect();
        self.logs.retain(&names);
        for pod in pods {
            let (namespace, name) = pod_key(&pod);
            let containers = crate::logs::container_names(&pod);
            if !sims.contains_key(uid_of(&pod)) {
                for c in &containers {
                    self.logs.started(&namespace, &name, c, 0);
                }
            }
            let fault = self.faults.pod_fault(&pod);
            let effect = fault.as_ref().map(|f| {
                (
                    f.effect,
                    Duration::from_millis(f.crash_after_ms.unwrap_or(0)),
                )
            });
            let sim = sims
                .entry(uid_of(&pod).to_owned())
                .or_insert_with(|| PodSim {
                    ready_at: Some(now + self.config.pod_ready_delay),
                    ready_since: None,
                    crash_at: None,
                    restarts: 0,
                    started: now_rfc3339(),
                });
            match effect {
                Some((
                    PodEffect::NeverReady
                    | PodEffect::Unschedulable
                    | PodEffect::ImagePullError
                    | PodEffect::ConfigError,
                    _,
                )) => {
                    sim.ready_at = None;
                    sim.ready_since = None;
                    sim.crash_at = None;
                }
                Some((PodEffect::Crash, after)) => {
                    if let Some(since) = sim.ready_since {
                        let crash_at = *sim.crash_at.get_or_insert(since + after);
                        if crash_at <= now {
                            sim.restarts += 1;
                            if let Some(c) = containers.first() {
                                self.logs.write(
                                    &namespace,
                                    &name,
                                    c,
                                    &format!("{c} exited: edas-fake-kube crash fault"),
                                );
                                self.logs.started(
                                    &namespace,
                                    &name,
                                    c,
                                    u64::try_from(sim.restarts).unwrap_or(0),
                                );
                            }
                            sim.ready_since = None;
                            sim.crash_at = None;
                            sim.ready_at = Some(now + self.config.pod_ready_delay);
                            sim.started = now_rfc3339();
                        }
                    }
                }
                None => {
                    sim.crash_at = None;
                    if sim.ready_at.is_none() && sim.ready_since.is_none() {
                        sim.ready_at = Some(now + self.config.pod_ready_delay);
                    }
                }
            }
            if let Some(ready_at) = sim.ready_at
                && ready_at <= now
            {
                sim.ready_since = Some(ready_at);
                sim.ready_at = None;
                if let Some((PodEffect::Crash, after)) = effect {
                    sim.crash_at = Some(ready_at + after);
                }
            }
            for at in [sim.ready_at, sim.crash_at].into_iter().flatten() {
                due(at);
            }
            let status = self.pod_status(&pod, sim, fault.as_ref());
            if pod.get("status") != Some(&status) {
                let mut updated = pod.clone();
                updated["status"] = status;
                self.store.controller_write(pod_kind, updated, true);
            }
        }
    }

    fn pod_status(&self, pod: &Value, sim: &PodSim, fault: Option<&PodFault>) -> Value {
        let crashing = fault.is_some_and(|f| f.effect == PodEffect::Crash);
        let ready = sim.ready_since.is_some();
        let old_status = pod.get("status").cloned().unwrap_or_default();
        let message = |default: &str| {
            fault
                .and_then(|f| f.message.clone())
                .unwrap_or_else(|| default.to_owned())
        };
        let keep_time = |kind: &str, status: &str| {
            old_status
                .get("conditions")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter().find(|c| {
                        c.get("type").and_then(Value::as_str) == Some(kind)
                            && c.get("status").and_then(Value::as_str) == Some(status)
                    })
                })
                .and_then(|c| c.get("lastTransitionTime").cloned())
                .unwrap_or_else(|| json!(now_rfc3339()))
        };
        if fault.is_some_and(|f| f.effect == PodEffect::Unschedulable) {
            // What the scheduler writes for a pod it cannot place; the kubelet never sees it.
            return json!({
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False", "lastProbeTime": null,
                    "lastTransitionTime": keep_time("PodScheduled", "False"),
                    "reason": "Unschedulable",
                    "message": message("0/1 nodes are available: Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")}],
                "qosClass": "BestEffort",
            });
        }
        // A container the kubelet cannot start: waiting with this reason and message.
        let stuck = match fault.map(|f| f.effect) {
            Some(PodEffect::ImagePullError) => {
                // The first report is ErrImagePull, later ones ImagePullBackOff (as the kubelet).
                let reported = old_status
                    .pointer("/containerStatuses/0/state/waiting/reason")
                    .and_then(Value::as_str)
                    .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff");
                let image = pod
                    .pointer("/spec/containers/0/image")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                Some(if reported {
                    (
                        "ImagePullBackOff",
                        message(&format!("Back-off pulling image \"{image}\"")),
                    )
                } else {
                    (
                        "ErrImagePull",
                        message(&format!(
                            "failed to pull and unpack image \"{image}\": not found (edas-fake-kube image pull fault)"
                        )),
                    )
                })
            }
            Some(PodEffect::ConfigError) => Some((
                "CreateContainerConfigError",
                message("configmap \"config\" not found"),
            )),
            _ => None,
        };
        let flag = if ready { "True" } else { "False" };
        let mut conditions = vec![
            json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": keep_time("PodScheduled", "True")}),
            json!({"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": keep_time("Initialized", "True")}),
            json!({"type": "ContainersReady", "status": flag, "lastProbeTime": null, "lastTransitionTime": keep_time("ContainersReady", flag)}),
            json!({"type": "Ready", "status": flag, "lastProbeTime": null, "lastTransitionTime": keep_time("Ready", flag)}),
        ];
        if !ready {
            for condition in &mut conditions[2..] {
                condition["reason"] = json!("ContainersNotReady");
            }
        }
        let containers = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let statuses: Vec<Value> = containers
            .iter()
            .enumerate()
            .map(|(index, container)| {
                let restarts = if index == 0 { sim.restarts } else { 0 };
                let mut status = json!({
                    "name": container.get("name").cloned().unwrap_or_default(),
                    "image": container.get("image").cloned().unwrap_or_default(),
                    "imageID": "",
                    "ready": ready,
                    "started": true,
                    "restartCount": restarts,
                    "state": {"running": {"startedAt": sim.started}},
                });
                if let Some((reason, message)) = &stuck
                    && index == 0
                {
                    status["started"] = json!(false);
                    status["state"] = json!({"waiting": {"reason": reason, "message": message}});
                }
                if restarts > 0 {
                    status["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error"}});
                    if crashing && !ready && index == 0 {
                        status["started"] = json!(false);
                        status["state"] = json!({"waiting": {"reason": "CrashLoopBackOff",
                            "message": "back-off restarting failed container (edas-fake-kube crash fault)"}});
                    }
                }
                status
            })
            .collect();
        let pod_ip = old_status.get("podIP").cloned().unwrap_or_else(|| {
            let mut next = self.next_ip.lock().unwrap_or_else(|p| p.into_inner());
            *next += 1;
            json!(format!(
                "10.244.{}.{}",
                (*next / 250) % 250,
                *next % 250 + 1
            ))
        });
        json!({
            "phase": if stuck.is_some() { "Pending" } else { "Running" },
            "conditions": conditions,
            "hostIP": "10.0.0.10",
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": old_status.get("startTime").cloned().unwrap_or_else(|| json!(sim.started)),
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        })
    }

    /// Whether a pod counts as available: Ready for at least `min_ready` (schedules a wake-up if not yet).
    fn available(
        &self,
        pod: &Value,
        min_ready: i64,
        now: Instant,
        due: &mut impl FnMut(Instant),
    ) -> bool {
        if !is_ready(pod) {
            return false;
        }
        let sims = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        let Some(since) = sims.get(uid_of(pod)).and_then(|s| s.ready_since) else {
            return true;
        };
        let at = since + Duration::from_secs(u64::try_from(min_ready).unwrap_or(0));
        due(at);
        at <= now
    }

    fn owned_pods(&self, owner_uid: &str) -> Vec<Value> {
        self.store
            .all(by_kind("Pod"))
            .into_iter()
            .filter(|p| controller_owner(p) == Some(owner_uid))
            .collect()
    }

    fn sync_replica_set(&self, rs: &Value, now: Instant, due: &mut impl FnMut(Instant)) {
        let pod_kind = by_kind("Pod");
        let wanted = int(rs, "/spec/replicas");
        let mut pods = self.owned_pods(uid_of(rs));
        let have = i64::try_from(pods.len()).unwrap_or(i64::MAX);
        if have < wanted {
            for _ in have..wanted {
                if let Some(pod) = self.store.controller_create(pod_kind, self.new_pod(rs)) {
                    pods.push(pod);
                }
            }
        } else if have > wanted {
            // Delete not-ready pods first, then the newest.
            pods.sort_by_key(|p| (is_ready(p), std::cmp::Reverse(crate::store::rv_of(p))));
            let excess = usize::try_from(have - wanted).unwrap_or(0);
            for pod in pods.drain(..excess) {
                self.store.controller_delete(pod_kind, &pod);
            }
        }
        let min_ready = int(rs, "/spec/minReadySeconds");
        let ready = pods.iter().filter(|p| is_ready(p)).count();
        let available = pods
            .iter()
            .filter(|p| self.available(p, min_ready, now, due))
            .count();
        let status = json!({
            "replicas": pods.len(),
            "fullyLabeledReplicas": pods.len(),
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": int(rs, "/metadata/generation"),
        });
        if rs.get("status") != Some(&status) {
            let mut updated = rs.clone();
            updated["status"] = status;
            self.store
                .controller_write(by_kind("ReplicaSet"), updated, true);
        }
    }

    fn new_pod(&self, rs: &Value) -> Value {
        let template = rs.pointer("/spec/template").cloned().unwrap_or_default();
        let mut metadata = template
            .get("metadata")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let rs_name = name_of(rs);
        metadata["name"] = json!(format!("{rs_name}-{}", random_suffix(5)));
        metadata["namespace"] = rs
            .pointer("/metadata/namespace")
            .cloned()
            .unwrap_or_default();
        metadata["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name, "uid": uid_of(rs),
            "controller": true, "blockOwnerDeletion": true,
        }]);
        let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        spec["nodeName"] = json!("edas-fake-node");
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
    }

    fn sync_deployment(&self, deployment: &Value, now: Instant, due: &mut impl FnMut(Instant)) {
        let rs_kind = by_kind("ReplicaSet");
        let uid = uid_of(deployment).to_owned();
        let name = name_of(deployment).to_owned();
        let namespace = deployment
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let replicas = int(deployment, "/spec/replicas");
        let min_ready = int(deployment, "/spec/minReadySeconds");
        let paused = deployment.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
        let template = deployment
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_default();
        let wanted_template = template_without_hash(&template);
        let mut replica_sets: Vec<Value> = self
            .store
            .all(rs_kind)
            .into_iter()
            .filter(|rs| controller_owner(rs) == Some(uid.as_str()))
            .collect();
        replica_sets.sort_by_key(revision);
        let max_revision = replica_sets.iter().map(revision).max().unwrap_or(0);
        let mut new_rs = replica_sets
            .iter()
            .position(|rs| {
                template_without_hash(rs.pointer("/spec/template").unwrap_or(&Value::Null))
                    == wanted_template
            })
            .map(|index| replica_sets.remove(index));

        if !paused {
            if new_rs.is_none() {
                let hash = template_hash(&wanted_template);
                let created = self.store.controller_create(
                    rs_kind,
                    self.new_replica_set(deployment, &template, &hash, max_revision + 1),
                );
                if created.is_none() {
                    return;
                }
                new_rs = created;
            } else if let Some(rs) = new_rs.as_mut() {
                // Rolling back to an older template makes it the newest revision again.
                if revision(rs) < max_revision
                    && replica_sets.iter().any(|o| revision(o) == max_revision)
                {
                    let mut bumped = rs.clone();
                    bumped["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
                        json!((max_revision + 1).to_string());
                    if let Some(written) = self.store.controller_write(rs_kind, bumped, false) {
                        *rs = written;
                    }
                }
            }
        }
        let strategy = deployment
            .pointer("/spec/strategy/type")
            .and_then(Value::as_str)
            .unwrap_or("RollingUpdate");
        let rolling = deployment
            .pointer("/spec/strategy/rollingUpdate")
            .cloned()
            .unwrap_or_default();
        let mut surge = rolling
            .get("maxSurge")
            .and_then(|v| int_or_percent(v, replicas, true))
            .unwrap_or(0);
        let mut unavailable = rolling
            .get("maxUnavailable")
            .and_then(|v| int_or_percent(v, replicas, false))
            .unwrap_or(0);
        if strategy == "Recreate" {
            surge = 0;
            unavailable = replicas;
        } else if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        let available_of = |rs: &Value, due: &mut dyn FnMut(Instant)| -> i64 {
            let pods = self.owned_pods(uid_of(rs));
            let mut due_adapter = |at: Instant| due(at);
            i64::try_from(
                pods.iter()
                    .filter(|p| self.available(p, min_ready, now, &mut due_adapter))
                    .count(),
            )
            .unwrap_or(0)
        };

        if !paused && let Some(new) = new_rs.as_ref() {
            let mut new_replicas = int(new, "/spec/replicas");
            let mut old_replicas: Vec<i64> = replica_sets
                .iter()
                .map(|rs| int(rs, "/spec/replicas"))
                .collect();
            if strategy == "Recreate" {
                old_replicas.iter_mut().for_each(|r| *r = 0);
                let old_pods: usize = replica_sets
                    .iter()
                    .map(|rs| self.owned_pods(uid_of(rs)).len())
                    .sum();
                if old_pods == 0 {
                    new_replicas = replicas;
                }
            } else if old_replicas.iter().all(|r| *r == 0) {
                new_replicas = replicas;
            } else {
                let total: i64 = new_replicas + old_replicas.iter().sum::<i64>();
                let max_total = replicas + surge;
                if new_replicas < replicas && total < max_total {
                    new_replicas += (max_total - total).min(replicas - new_replicas);
                }
                new_replicas = new_replicas.min(replicas);
                let all_pods: i64 = new_replicas + old_replicas.iter().sum::<i64>();
                let min_available = replicas - unavailable;
                let new_available = available_of(new, due);
                let new_unavailable = new_replicas - new_available;
                let mut budget = all_pods - min_available - new_unavailable;
                // First remove old pods that are not available anyway.
                for (rs, old) in replica_sets.iter().zip(old_replicas.iter_mut()) {
                    if budget <= 0 {
                        break;
                    }
                    let unhealthy = (*old - available_of(rs, due)).max(0).min(budget);
                    *old -= unhealthy;
                    budget -= unhealthy;
                }
                // Then scale down old replica sets as far as availability allows.
                let available_total: i64 = new_available
                    + replica_sets
                        .iter()
                        .zip(old_replicas.iter())
                        .map(|(rs, r)| available_of(rs, due).min(*r))
                        .sum::<i64>();
                let mut scale_down = (available_total - min_available).min(budget).max(0);
                for old in old_replicas.iter_mut() {
                    if scale_down <= 0 {
                        break;
                    }
                    let step = (*old).min(scale_down);
                    *old -= step;
                    scale_down -= step;
                }
            }
            for (rs, wanted) in replica_sets.iter().zip(old_replicas) {
                self.scale_replica_set(rs, wanted, replicas, surge);
            }
            self.scale_replica_set(new, new_replicas, replicas, surge);
            if deployment.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
                != new.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
            {
                let mut annotated = deployment.clone();
                annotated["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = new
                    .pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
                    .cloned()
                    .unwrap_or_default();
                self.store
                    .controller_write(by_kind("Deployment"), annotated, false);
                return; // The write wakes another pass, which sees the fresh object.
            }
            self.clean_up_history(deployment, &replica_sets);
        }

        // Status, from the pods as they are now.
        let deployment = match self.store.get(by_kind("Deployment"), &namespace, &name) {
            Ok(current) if uid_of(&current) == uid => current,
            _ => return,
        };
        let mut all_sets = replica_sets.clone();
        all_sets.extend(new_rs.clone());
        let mut total = 0;
        let mut ready = 0;
        let mut available = 0;
        for rs in &all_sets {
            let pods = self.owned_pods(uid_of(rs));
            total += i64::try_from(pods.len()).unwrap_or(0);
            ready += i64::try_from(pods.iter().filter(|p| is_ready(p)).count()).unwrap_or(0);
            available += available_of(rs, due);
        }
        let updated = new_rs.as_ref().map_or(0, |rs| {
            i64::try_from(self.owned_pods(uid_of(rs)).len()).unwrap_or(0)
        });
        let generation = int(&deployment, "/metadata/generation");
        let new_name = new_rs
            .as_ref()
            .map(|rs| name_of(rs).to_owned())
            .unwrap_or_default();
        let complete = updated == replicas && total == replicas && available == replicas;
        let fingerprint = (total, updated, ready, available, new_name.clone());
        let deadline = Duration::from_secs(
            u64::try_from(int(&deployment, "/spec/progressDeadlineSeconds")).unwrap_or(600),
        );
        let progressed = {
            let mut progress = self.progress.lock().unwrap_or_else(|p| p.into_inner());
            let entry = progress.entry(uid.clone()).or_insert(Progress {
                fingerprint: fingerprint.clone(),
                since: now,
            });
            if entry.fingerprint != fingerprint {
                *entry = Progress {
                    fingerprint,
                    since: now,
                };
            }
            entry.since
        };
        let old_conditions = deployment
            .pointer("/status/conditions")
            .cloned()
            .unwrap_or_else(|| json!([]));
        let condition = |kind: &str,
                         status: &str,
                         reason: &str,
                         message: String,
                         progressing_update: bool| {
            let previous = old_conditions
                .as_array()
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
                })
                .cloned()
                .unwrap_or_default();
            let same_status = previous.get("status").and_then(Value::as_str) == Some(status);
            let same =
                same_status && previous.get("reason").and_then(Value::as_str) == Some(reason);
            let stamp = json!(now_rfc3339());
            let transition = if same_status {
                previous
                    .get("lastTransitionTime")
                    .cloned()
                    .unwrap_or(stamp.clone())
            } else {
                stamp.clone()
            };
            let update = if same && !progressing_update {
                previous.get("lastUpdateTime").cloned().unwrap_or(stamp)
            } else {
                stamp
            };
            json!({"type": kind, "status": status, "lastUpdateTime": update, "lastTransitionTime": transition, "reason": reason, "message": message})
        };
        let min_available = replicas - unavailable;
        let available_condition = if available >= min_available {
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                false,
            )
        } else {
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                false,
            )
        };
        let progressing_condition = if paused {
            condition(
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
                false,
            )
        } else if complete {
            condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{new_name}\" has successfully progressed."),
                false,
            )
        } else if now.duration_since(progressed) >= deadline {
            condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{new_name}\" has timed out progressing."),
                false,
            )
        } else {
            due(progressed + deadline);
            let moved = progressed == now;
            condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{new_name}\" is progressing."),
                moved,
            )
        };
        let mut status = json!({
            "observedGeneration": generation,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": [available_condition, progressing_condition],
        });
        let unavailable_now = (replicas - available).max(0);
        if unavailable_now > 0 {
            status["unavailableReplicas"] = json!(unavailable_now);
        }
        for field in [
            "readyReplicas",
            "availableReplicas",
            "updatedReplicas",
            "replicas",
        ] {
            if status[field] == json!(0) {
                status
                    .as_object_mut()
                    .expect("status is an object")
                    .remove(field);
            }
        }
        if deployment.get("status") != Some(&status) {
            let mut updated_deployment = deployment.clone();
            updated_deployment["status"] = status;
            self.store
                .controller_write(by_kind("Deployment"), updated_deployment, true);
        }
    }

    fn scale_replica_set(&self, rs: &Value, replicas: i64, desired: i64, surge: i64) {
        let annotations = [
            (
                "deployment.kubernetes.io/desired-replicas",
                desired.to_string(),
            ),
            (
                "deployment.kubernetes.io/max-replicas",
                (desired + surge).to_string(),
            ),
        ];
        let needs_annotations = annotations.iter().any(|(k, v)| {
            rs.pointer("/metadata/annotations")
                .and_then(|a| a.get(*k))
                .and_then(Value::as_str)
                != Some(v)
        });
        if int(rs, "/spec/replicas") == replicas && !needs_annotations {
            return;
        }
        let mut scaled = rs.clone();
        scaled["spec"]["replicas"] = json!(replicas);
        for (key, value) in annotations {
            scaled["metadata"]["annotations"][key] = json!(value);
        }
        self.store
            .controller_write(by_kind("ReplicaSet"), scaled, false);
    }

    fn new_replica_set(
        &self,
        deployment: &Value,
        template: &Value,
        hash: &str,
        revision: i64,
    ) -> Value {
        let name = name_of(deployment);
        let mut template = template.clone();
        template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let mut selector = deployment
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or_default();
        selector["matchLabels"]["pod-template-hash"] = json!(hash);
        let labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or_default();
        json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": format!("{name}-{hash}"),
                "namespace": deployment.pointer("/metadata/namespace").cloned().unwrap_or_default(),
                "labels": labels,
                "annotations": {"deployment.kubernetes.io/revision": revision.to_string()},
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid_of(deployment),
                    "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": int(deployment, "/spec/minReadySeconds"),
                "selector": selector,
                "template": template,
            },
        })
    }

    fn clean_up_history(&self, deployment: &Value, old_sets: &[Value]) {
        let limit = usize::try_from(int(deployment, "/spec/revisionHistoryLimit")).unwrap_or(10);
        let idle: Vec<&Value> = old_sets
            .iter()
            .filter(|rs| int(rs, "/spec/replicas") == 0 && int(rs, "/status/replicas") == 0)
            .collect();
        if idle.len() > limit {
            for rs in &idle[..idle.len() - limit] {
                self.store.controller_delete(by_kind("ReplicaSet"), rs);
            }
        }
    }
}

fn revision(rs: &Value) -> i64 {
    rs.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The selector string of a Deployment or ReplicaSet, for `Scale.status.selector`.
pub fn selector_string(object: &Value) -> String {
    object
        .pointer("/spec/selector")
        .and_then(|s| LabelSelector::from_object(s).ok())
        .map(|s| s.to_query_string())
        .unwrap_or_default()
}

/// `(namespace, name)` of a pod.
fn pod_key(pod: &Value) -> (String, String) {
    let text = |p: &str| {
        pod.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("/metadata/namespace"), text("/metadata/name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_or_percent_rounds_like_the_deployment_controller() {
        assert_eq!(int_or_percent(&json!("25%"), 3, true), Some(1));
        assert_eq!(int_or_percent(&json!("25%"), 3, false), Some(0));
        assert_eq!(int_or_percent(&json!(2), 3, false), Some(2));
        assert_eq!(int_or_percent(&json!("2"), 3, false), Some(2));
        assert_eq!(int_or_percent(&json!("x%"), 3, false), None);
        assert_eq!(int_or_percent(&json!(-1), 3, false), None);
    }

    #[test]
    fn template_hash_ignores_key_order_and_the_hash_label() {
        let a = json!({"metadata": {"labels": {"app": "web", "x": "y"}}, "spec": {"containers": [{"name": "a", "image": "i"}]}});
        let b = json!({"spec": {"containers": [{"image": "i", "name": "a", "resources": {}}]},
                       "metadata": {"creationTimestamp": null, "labels": {"x": "y", "app": "web"}}});
        assert_eq!(
            template_hash(&template_without_hash(&a)),
            template_hash(&template_without_hash(&b))
        );
        let hash = template_hash(&a);
        assert!(hash.chars().all(|c| "456789bcdf".contains(c)), "{hash}");
        let c = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "j"}]}});
        assert_ne!(template_hash(&a), template_hash(&c));
    }
}
