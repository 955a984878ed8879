//! StartK8sAppPrecheck and GetK8sAppPrecheckResult: what a deploy (or an insert) would run at
//! submission, run without storing anything of it, each check an EDAS precheck job:
//!
//! - `ParameterCheck`: the parameters decoded and validated into the next revision;
//! - `RightsCheck`: the caller's RAM rights (decided by edas-api, passed in) and the rights
//!   edasd lacks on the cluster (its RBAC), and that the cluster answers;
//! - `RenderCheck`: whether the cluster's runtime can run the revision (on Kubernetes: it
//!   renders), what it would only record, and its traffic routing;
//! - `ReferenceCheck`: the ConfigMaps and Secrets it references exist in its cluster and
//!   namespace, the image reference and package URL are well-formed;
//! - `CapacityCheck`: its instances' requests fit the nodes' room (allocatable less the
//!   requests of the pods on them, read from the cluster now; on `local` the host's CPUs and
//!   memory less the requests of the instances edasd runs there);
//! - `QuotaCheck`: its instances fit what the namespace's ResourceQuotas still allow (pods,
//!   CPU and memory requests and limits), and carry the requests and limits a quota demands.
//!
//! A failed `ParameterCheck` interrupts the others (there is no revision to check). The last
//! result of each application (cluster, Kubernetes namespace, name) is kept in memory for
//! GetK8sAppPrecheckResult; nothing is written to the store.

use std::collections::HashMap;

use edas_runtime::{NodeRoom, QuotaRoom, Routing};
use edas_spec::model::Artifact;
use edas_spec::{AppSpec, Operation, Params};
use edas_store::{Application, ApplicationFilter, StoreError};

use crate::{App, AppError, LOCAL_CLUSTER, local};

/// The jobs of a precheck, in the order they run.
pub const PRECHECK_JOBS: [&str; 6] = [
    "ParameterCheck",
    "RightsCheck",
    "RenderCheck",
    "ReferenceCheck",
    "CapacityCheck",
    "QuotaCheck",
];

/// One job's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrecheckJob {
    pub name: &'static str,
    pub pass: bool,
    /// Not run to the end (a job before it failed, or the cluster did not answer).
    pub interrupted: bool,
    /// Why it failed or was interrupted; on a pass, what it found (e.g. the room left).
    pub reason: String,
}

/// A precheck's outcome: `pass` when every job passed, else `failed` with the first failing
/// job's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrecheckResult {
    /// `pass` or `failed`.
    pub status: &'static str,
    pub reason: String,
    pub jobs: Vec<PrecheckJob>,
    /// The application ARN's parts the result is readable under (EDAS namespace, app id or
    /// `*` for an application not created yet).
    pub namespace_id: String,
    pub app_id: Option<String>,
}

/// What to precheck.
pub struct PrecheckRequest<'a> {
    /// The application a deploy would change (`None`: an insert).
    pub current: Option<&'a Application>,
    /// The parameters, named as InsertK8sApplication (no application) or
    /// DeployK8sApplication (an application) names them.
    pub params: &'a Params,
    /// The EDAS namespace of a new application (the default one).
    pub namespace_id: &'a str,
    /// The RAM rights the caller lacks for the change (decided by edas-api).
    pub denied: Vec<String>,
}

/// The key results are kept under: (cluster, Kubernetes namespace, application name).
pub type PrecheckKey = (String, String, String);

/// At most this many results are kept (the oldest go first), so prechecks of ever new names
/// cannot grow edasd's memory without bound.
const KEPT_RESULTS: usize = 1024;

/// The kept results, and their keys oldest first.
#[derive(Default)]
pub(crate) struct Prechecks(
    std::sync::Mutex<(
        HashMap<PrecheckKey, PrecheckResult>,
        std::collections::VecDeque<PrecheckKey>,
    )>,
);

impl Prechecks {
    fn keep(&self, key: PrecheckKey, result: PrecheckResult) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (kept, order) = &mut *guard;
        if kept.insert(key.clone(), result).is_some() {
            order.retain(|k| *k != key);
        }
        order.push_back(key);
        while order.len() > KEPT_RESULTS {
            if let Some(oldest) = order.pop_front() {
                kept.remove(&oldest);
            }
        }
    }

    fn get(&self, key: &PrecheckKey) -> Option<PrecheckResult> {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.get(key).cloned()
    }
}

fn job(name: &'static str, outcome: Result<String, String>) -> PrecheckJob {
    match outcome {
        Ok(reason) => PrecheckJob {
            name,
            pass: true,
            interrupted: false,
            reason,
        },
        Err(reason) => PrecheckJob {
            name,
            pass: false,
            interrupted: false,
            reason,
        },
    }
}

fn interrupted(name: &'static str, reason: &str) -> PrecheckJob {
    PrecheckJob {
        name,
        pass: false,
        interrupted: true,
        reason: reason.to_owned(),
    }
}

/// How many instances of (`cpu`, `memory`) per instance fit `rooms`, node by node.
fn fitting(rooms: &[NodeRoom], cpu: u64, memory: u64) -> u64 {
    rooms
        .iter()
        .map(|r| {
            let by_cpu = r.cpu_millis.checked_div(cpu).unwrap_or(u64::MAX);
            let by_memory = r.memory_mib.checked_div(memory).unwrap_or(u64::MAX);
            by_cpu.min(by_memory)
        })
        .fold(0u64, u64::saturating_add)
}

/// The capacity verdict of `replicas` instances of `spec` on `rooms`.
pub(crate) fn capacity_verdict(
    spec: &AppSpec,
    replicas: u32,
    rooms: &[NodeRoom],
) -> Result<String, String> {
    let cpu = u64::from(spec.resources.cpu_request_millis.unwrap_or(0));
    let memory = u64::from(spec.resources.memory_request_mib.unwrap_or(0));
    let described: Vec<String> = rooms
        .iter()
        .map(|r| format!("{} {} mCPU/{} MiB", r.node, r.cpu_millis, r.memory_mib))
        .collect();
    let room = if described.is_empty() {
        "no schedulable node".to_owned()
    } else {
        format!("room: {}", described.join(", "))
    };
    if replicas == 0 {
        return Ok(format!("no instance to place; {room}"));
    }
    if rooms.is_empty() {
        return Err(format!(
            "{replicas} instance(s) need a node, and the cluster has {room}"
        ));
    }
    if cpu == 0 && memory == 0 {
        return Ok(format!(
            "{replicas} instance(s) request no CPU or memory (the scheduler places them anywhere); {room}"
        ));
    }
    let fits = fitting(rooms, cpu, memory);
    let need = format!(
        "{replicas} instance(s) of {cpu} mCPU/{memory} MiB requested (total {} mCPU/{} MiB)",
        cpu * u64::from(replicas),
        memory * u64::from(replicas)
    );
    if fits >= u64::from(replicas) {
        Ok(format!("{need} fit; {room}"))
    } else {
        Err(format!(
            "insufficient capacity: {need}, but only {fits} fit; short by {} instance(s); {room}",
            u64::from(replicas) - fits
        ))
    }
}

/// The quota verdict of `replicas` instances of `spec` in `namespace`, given what its
/// ResourceQuotas still allow.
pub(crate) fn quota_verdict(
    spec: &AppSpec,
    replicas: u32,
    quota: Option<&QuotaRoom>,
    namespace: &str,
) -> Result<String, String> {
    let Some(quota) = quota else {
        return Ok(format!("namespace `{namespace}` has no ResourceQuota"));
    };
    let names = quota.quotas.join(", ");
    let n = u64::from(replicas);
    let r = &spec.resources;
    let checks = [
        ("pods", quota.pods, Some(1u64), ""),
        (
            "requests.cpu",
            quota.cpu_requests_millis,
            r.cpu_request_millis.map(u64::from),
            " mCPU",
        ),
        (
            "requests.memory",
            quota.memory_requests_mib,
            r.memory_request_mib.map(u64::from),
            " MiB",
        ),
        (
            "limits.cpu",
            quota.cpu_limits_millis,
            r.cpu_limit_millis.map(u64::from),
            " mCPU",
        ),
        (
            "limits.memory",
            quota.memory_limits_mib,
            r.memory_limit_mib.map(u64::from),
            " MiB",
        ),
    ];
    let mut problems = Vec::new();
    for (resource, left, each, unit) in checks {
        let Some(left) = left else { continue };
        match each {
            None if n > 0 => problems.push(format!(
                "the quota bounds {resource}, so each instance must set it (the namespace refuses pods without it)"
            )),
            None => {}
            Some(each) if each * n > left => problems.push(format!(
                "{resource}: {n} instance(s) need {}{unit}, {left}{unit} left",
                each * n
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(format!(
            "{n} instance(s) fit the quotas {names} of namespace `{namespace}`"
        ))
    } else {
        Err(format!(
            "quota exceeded in namespace `{namespace}` ({names}): {}",
            problems.join("; ")
        ))
    }
}

/// This host's memory (MiB), from `/proc/meminfo`.
fn host_memory_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

/// Whether an image reference is well-formed: no spaces, a lowercase repository, an optional
/// tag or digest.
fn image_ok(url: &str) -> bool {
    let name = url.split('@').next().unwrap_or_default();
    let last = name.rfind('/').map_or(0, |i| i + 1);
    let repository = match name[last..].rfind(':') {
        Some(i) => &name[..last + i],
        None => name,
    };
    let tag_ok = name.len() == repository.len() || name.len() > repository.len() + 1;
    !repository.is_empty()
        && tag_ok
        && !url.chars().any(char::is_whitespace)
        && !repository.chars().any(|c| c.is_ascii_uppercase())
        && !repository.starts_with('/')
        && !repository.ends_with('/')
}

impl App {
    /// Runs a precheck and keeps its result for [`App::precheck_result`].
    pub async fn precheck(&self, request: PrecheckRequest<'_>) -> PrecheckResult {
        let operation = match request.current {
            None => Operation::InsertK8sApplication,
            Some(_) => Operation::DeployK8sApplication,
        };
        let current_spec = request.current.map(|a| &a.spec.spec);
        let mut jobs = Vec::with_capacity(PRECHECK_JOBS.len());
        let spec = match edas_spec::apply(operation, current_spec, request.params) {
            Ok(change) => {
                jobs.push(job("ParameterCheck", Ok("the parameters are valid".into())));
                Some(change.spec)
            }
            Err(violations) => {
                jobs.push(job("ParameterCheck", Err(violations.to_string())));
                None
            }
        };
        let key = |spec: Option<&AppSpec>| -> PrecheckKey {
            match (spec, request.current) {
                (Some(s), _) => (
                    s.cluster_id.clone(),
                    s.k8s_namespace.clone(),
                    s.name.clone(),
                ),
                (None, Some(a)) => (
                    a.cluster_id.clone(),
                    a.k8s_namespace.clone(),
                    a.name.clone(),
                ),
                (None, None) => {
                    let get = |n: &str| request.params.get(n).unwrap_or_default().to_owned();
                    let ns = request
                        .params
                        .get("Namespace")
                        .unwrap_or("default")
                        .to_owned();
                    (get("ClusterId"), ns, get("AppName"))
                }
            }
        };
        match &spec {
            None => {
                for name in &PRECHECK_JOBS[1..] {
                    jobs.push(interrupted(
                        name,
                        "the parameters are invalid (ParameterCheck)",
                    ));
                }
            }
            Some(spec) => {
                jobs.push(self.rights_job(spec, &request.denied).await);
                jobs.push(self.render_job(spec));
                jobs.push(self.reference_job(spec).await);
                jobs.extend(self.room_jobs(spec).await);
            }
        }
        let failed = jobs.iter().find(|j| !j.pass);
        let result = PrecheckResult {
            status: if failed.is_some() { "failed" } else { "pass" },
            reason: failed
                .map(|j| format!("{}: {}", j.name, j.reason))
                .unwrap_or_default(),
            jobs,
            namespace_id: request
                .current
                .map_or(request.namespace_id, |a| a.namespace_id.as_str())
                .to_owned(),
            app_id: request.current.map(|a| a.id.clone()),
        };
        let key = key(spec.as_ref());
        self.prechecks.keep(key, result.clone());
        result
    }

    /// The last precheck of the application `key` names, if one ran since edasd started.
    pub fn precheck_result(&self, key: &PrecheckKey) -> Option<PrecheckResult> {
        self.prechecks.get(key)
    }

    async fn rights_job(&self, spec: &AppSpec, denied: &[String]) -> PrecheckJob {
        let mut problems: Vec<String> = denied.to_vec();
        match self.find_cluster(&spec.cluster_id).await {
            Ok(Some(info)) => {
                if info.unreachable() {
                    return interrupted(
                        "RightsCheck",
                        &format!(
                            "cluster `{}` ({}) does not answer: {}",
                            spec.cluster_id,
                            info.address(),
                            info.error().unwrap_or("no answer")
                        ),
                    );
                }
                let missing = info.missing_rights();
                if !missing.is_empty() {
                    problems.push(format!(
                        "edasd lacks the rights {} on cluster `{}` (deploy/rbac.yaml)",
                        missing.join(", "),
                        spec.cluster_id
                    ));
                }
            }
            Ok(None) => problems.push(format!("no cluster `{}` is registered", spec.cluster_id)),
            Err(e) => problems.push(e.to_string()),
        }
        if problems.is_empty() {
            job(
                "RightsCheck",
                Ok("the caller and edasd have the rights the change needs".into()),
            )
        } else {
            job("RightsCheck", Err(problems.join("; ")))
        }
    }

    fn render_job(&self, spec: &AppSpec) -> PrecheckJob {
        let Some(runtime) = self.engine.runtimes().get(&spec.cluster_id) else {
            return job(
                "RenderCheck",
                Err(format!("no runtime serves cluster `{}`", spec.cluster_id)),
            );
        };
        if let Err(e) = runtime.availability() {
            return interrupted("RenderCheck", &e.to_string());
        }
        let mut problems = Vec::new();
        if spec.effective_replicas() > 0
            && let Err(e) = runtime.check(spec)
        {
            problems.push(e.to_string());
        }
        let routing = Routing {
            services: spec.services.clone(),
            lossless: spec.lossless.clone(),
            empty_push_reject: spec.empty_push_reject,
            gray: None,
        };
        if let Err(e) = runtime.check_routing(&routing) {
            problems.push(e.to_string());
        }
        if !problems.is_empty() {
            return job("RenderCheck", Err(problems.join("; ")));
        }
        let unenforced = runtime.unenforced(spec);
        job(
            "RenderCheck",
            Ok(if unenforced.is_empty() {
                format!("cluster `{}` can run the revision", spec.cluster_id)
            } else {
                format!(
                    "cluster `{}` can run the revision; recorded but not applied: {}",
                    spec.cluster_id,
                    unenforced.join("; ")
                )
            }),
        )
    }

    async fn reference_job(&self, spec: &AppSpec) -> PrecheckJob {
        let (cluster, ns) = (&spec.cluster_id, &spec.k8s_namespace);
        let mut problems = Vec::new();
        for r in spec.config_refs() {
            if !r.kind.is_copied() {
                continue;
            }
            let (found, noun) = if r.kind.is_secret() {
                (
                    self.store.get_secret(cluster, ns, &r.name).await.map(drop),
                    "Secret",
                )
            } else {
                (
                    self.store
                        .get_config_map(cluster, ns, &r.name)
                        .await
                        .map(drop),
                    "ConfigMap",
                )
            };
            match found {
                Ok(()) => {}
                Err(StoreError::NotFound { .. }) => problems.push(format!(
                    "the {noun} `{}` does not exist in namespace `{ns}` of cluster `{cluster}`",
                    r.name
                )),
                Err(e) => problems.push(format!("reading the {noun} `{}` failed: {e}", r.name)),
            }
        }
        match &spec.artifact {
            Artifact::Image { url, .. } if !image_ok(url) => {
                problems.push(format!("`{url}` is not a well-formed image reference"));
            }
            Artifact::Package(p) => {
                let scheme_ok = ["http://", "https://", "file://"]
                    .iter()
                    .any(|s| p.url.starts_with(s));
                if !scheme_ok {
                    problems.push(format!(
                        "the package URL `{}` is not http://, https:// or file://",
                        p.url
                    ));
                } else if let Some(path) = p.url.strip_prefix("file://")
                    && spec.cluster_id == LOCAL_CLUSTER
                    && !std::path::Path::new(path).is_file()
                {
                    problems.push(format!(
                        "the package file `{path}` does not exist on this host"
                    ));
                }
            }
            _ => {}
        }
        if problems.is_empty() {
            job(
                "ReferenceCheck",
                Ok("the image, package and configuration references resolve".into()),
            )
        } else {
            job("ReferenceCheck", Err(problems.join("; ")))
        }
    }

    /// `CapacityCheck` and `QuotaCheck`, from one reading of the cluster's room.
    async fn room_jobs(&self, spec: &AppSpec) -> [PrecheckJob; 2] {
        let replicas = spec.effective_replicas();
        if spec.cluster_id == LOCAL_CLUSTER {
            let quota = job("QuotaCheck", Ok("`local` has no ResourceQuotas".into()));
            return match self.local_room().await {
                Ok(room) => [
                    job("CapacityCheck", capacity_verdict(spec, replicas, &[room])),
                    quota,
                ],
                Err(e) => [interrupted("CapacityCheck", &e.to_string()), quota],
            };
        }
        let Some(runtime) = self.engine.runtimes().get(&spec.cluster_id) else {
            let why = format!("no runtime serves cluster `{}`", spec.cluster_id);
            return [
                interrupted("CapacityCheck", &why),
                interrupted("QuotaCheck", &why),
            ];
        };
        match runtime.room(&spec.k8s_namespace).await {
            Ok(Some(room)) => [
                job(
                    "CapacityCheck",
                    capacity_verdict(spec, replicas, &room.nodes),
                ),
                match room.quota {
                    Ok(quota) => job(
                        "QuotaCheck",
                        quota_verdict(spec, replicas, quota.as_ref(), &spec.k8s_namespace),
                    ),
                    Err(e) => interrupted("QuotaCheck", &e),
                },
            ],
            Ok(None) => {
                let why = format!("cluster `{}` reports no room; not checked", spec.cluster_id);
                [
                    job("CapacityCheck", Ok(why.clone())),
                    job("QuotaCheck", Ok(why)),
                ]
            }
            Err(e) => {
                let why = e.to_string();
                [
                    interrupted("CapacityCheck", &why),
                    interrupted("QuotaCheck", &why),
                ]
            }
        }
    }

    /// The room of the `local` host: its CPUs and memory less the requests of the instances
    /// edasd runs there (the application being changed keeps its instances during a batch).
    async fn local_room(&self) -> Result<NodeRoom, AppError> {
        let facts = local::host_facts();
        let filter = ApplicationFilter {
            cluster_id: Some(LOCAL_CLUSTER.to_owned()),
            ..Default::default()
        };
        let (mut cpu, mut memory) = (0u64, 0u64);
        for app in self.applications(&filter).await? {
            let s = &app.spec.spec;
            let n = u64::from(s.effective_replicas());
            cpu += n * u64::from(s.resources.cpu_request_millis.unwrap_or(0));
            memory += n * u64::from(s.resources.memory_request_mib.unwrap_or(0));
        }
        Ok(NodeRoom {
            node: "local".to_owned(),
            cpu_millis: (facts.cpu_cores * 1000).saturating_sub(cpu),
            memory_mib: host_memory_mib().saturating_sub(memory),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cpu: u32, memory: u32) -> AppSpec {
        let mut s = AppSpec::default();
        s.resources.cpu_request_millis = Some(cpu);
        s.resources.memory_request_mib = Some(memory);
        s
    }

    fn room(node: &str, cpu: u64, memory: u64) -> NodeRoom {
        NodeRoom {
            node: node.into(),
            cpu_millis: cpu,
            memory_mib: memory,
        }
    }

    #[test]
    fn capacity_is_counted_node_by_node() {
        // 2 × 600 mCPU fit on n1 (1300), 1 on n2 (700): 3 fit, not 4.
        let rooms = [room("n1", 1300, 4096), room("n2", 700, 4096)];
        assert!(capacity_verdict(&spec(600, 100), 3, &rooms).is_ok());
        let short = capacity_verdict(&spec(600, 100), 4, &rooms).unwrap_err();
        assert!(short.contains("only 3 fit; short by 1"), "{short}");
        // Memory binds too.
        let short = capacity_verdict(&spec(100, 3000), 3, &rooms).unwrap_err();
        assert!(short.contains("only 2 fit"), "{short}");
        // No requests: nothing to fit; no node at all: nowhere to go.
        assert!(capacity_verdict(&spec(0, 0), 50, &rooms).is_ok());
        assert!(capacity_verdict(&spec(100, 100), 1, &[]).is_err());
        assert!(capacity_verdict(&spec(100, 100), 0, &[]).is_ok());
    }

    #[test]
    fn quotas_bound_pods_requests_and_limits() {
        let quota = QuotaRoom {
            quotas: vec!["compute".into()],
            pods: Some(3),
            cpu_requests_millis: Some(1000),
            memory_requests_mib: None,
            cpu_limits_millis: None,
            memory_limits_mib: Some(2048),
        };
        let mut s = spec(300, 100);
        s.resources.memory_limit_mib = Some(512);
        assert!(quota_verdict(&s, 3, Some(&quota), "ns").is_ok());
        let over = quota_verdict(&s, 4, Some(&quota), "ns").unwrap_err();
        assert!(
            over.contains("pods: 4 instance(s) need 4, 3 left"),
            "{over}"
        );
        assert!(
            over.contains("requests.cpu: 4 instance(s) need 1200 mCPU, 1000 mCPU left"),
            "{over}"
        );
        s.resources.memory_limit_mib = None;
        let unlimited = quota_verdict(&s, 1, Some(&quota), "ns").unwrap_err();
        assert!(
            unlimited.contains("limits.memory, so each instance must set it"),
            "{unlimited}"
        );
        assert!(quota_verdict(&s, 9, None, "ns").is_ok());
    }

    #[test]
    fn kept_results_are_bounded_oldest_first() {
        let kept = Prechecks::default();
        let result = PrecheckResult {
            status: "pass",
            reason: String::new(),
            jobs: Vec::new(),
            namespace_id: "ns".into(),
            app_id: None,
        };
        let key = |i: usize| ("c".to_owned(), "n".to_owned(), format!("app{i}"));
        for i in 0..=KEPT_RESULTS {
            kept.keep(key(i), result.clone());
        }
        // Keeping the newest again does not count twice.
        kept.keep(key(KEPT_RESULTS), result.clone());
        assert!(kept.get(&key(0)).is_none(), "the oldest went");
        assert!(kept.get(&key(1)).is_some() && kept.get(&key(KEPT_RESULTS)).is_some());
        assert_eq!(kept.0.lock().unwrap().1.len(), KEPT_RESULTS);
    }

    #[test]
    fn image_references_are_checked_for_form() {
        assert!(image_ok("registry.example.com/ns/app:1.0"));
        assert!(image_ok("busybox"));
        assert!(!image_ok("bad image"));
        assert!(!image_ok("app:"));
        assert!(!image_ok("Upper/Case"));
        assert!(image_ok("app:V1"));
        assert!(image_ok("app@sha256:0123abcd"));
    }
}
