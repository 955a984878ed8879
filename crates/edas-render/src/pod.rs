//! The pod template of a revision: the application container, its sidecars and init
//! containers, volumes, scheduling, and the metadata edasd and the user put on the pods.

use std::collections::{BTreeMap, BTreeSet};

use edas_spec::AppSpec;
use edas_spec::model::{Artifact, Package};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HostPathVolumeSource, Lifecycle, LocalObjectReference, NFSVolumeSource,
    NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, ResourceRequirements,
    SecretVolumeSource, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::{
    ANNOTATION_EMPTY_PUSH_REJECT, ANNOTATION_LOSSLESS, ANNOTATION_RESTART, RenderError,
    revision_labels, revision_selector,
};

/// The image of a package that names no JDK, or `Open JDK 8`.
pub const DEFAULT_JDK8_IMAGE: &str = "eclipse-temurin:8-jre";
/// The image of a package on `Open JDK 7` (the last official OpenJDK 7 image; 7 is end of life).
pub const DEFAULT_JDK7_IMAGE: &str = "openjdk:7-jre";
/// The init container that downloads a package before the application starts.
pub const PACKAGE_FETCHER: &str = "edas-package-fetcher";
/// Its image: curl, pinned.
pub const PACKAGE_FETCHER_IMAGE: &str = "curlimages/curl:8.11.1";
/// The directory (an emptyDir) the package is downloaded into.
pub const PACKAGE_DIR: &str = "/edas/package";
/// The downloaded package file the application container runs with `java -jar`.
pub const PACKAGE_FILE: &str = "/edas/package/app.jar";
const PACKAGE_VOLUME: &str = "edas-package";

/// Node labels the spreading switches spread over.
const HOSTNAME_KEY: &str = "kubernetes.io/hostname";
const ZONE_KEY: &str = "topology.kubernetes.io/zone";
const ARCH_KEY: &str = "kubernetes.io/arch";

/// Pod fields a `subPathExpr` may refer to through the downward API, by conventional name.
const DOWNWARD_VARS: [(&str, &str); 5] = [
    ("POD_NAME", "metadata.name"),
    ("POD_NAMESPACE", "metadata.namespace"),
    ("POD_IP", "status.podIP"),
    ("HOST_IP", "status.hostIP"),
    ("NODE_NAME", "spec.nodeName"),
];

/// What the application container runs.
struct Launch {
    image: String,
    command: Option<Vec<String>>,
    args: Option<Vec<String>>,
    /// The JVM options go on the command line (package) rather than in `JAVA_TOOL_OPTIONS`.
    java_on_command_line: bool,
    fetcher: Option<Container>,
}

fn launch(spec: &AppSpec) -> Result<Launch, RenderError> {
    let user_args = (!spec.args.is_empty()).then(|| spec.args.clone());
    match &spec.artifact {
        Artifact::None => Err(RenderError::NoArtifact {
            app: spec.name.clone(),
        }),
        Artifact::Image { url, .. } => Ok(Launch {
            image: url.clone(),
            command: spec.command.as_ref().map(|c| vec![c.clone()]),
            args: user_args,
            java_on_command_line: false,
            fetcher: None,
        }),
        Artifact::Package(p) => {
            if !(p.url.starts_with("http://") || p.url.starts_with("https://")) {
                return Err(RenderError::PackageNotReachable { url: p.url.clone() });
            }
            let mut args = spec.java_options();
            args.extend(["-jar".to_owned(), PACKAGE_FILE.to_owned()]);
            args.extend(spec.args.iter().cloned());
            Ok(Launch {
                image: package_image(p),
                command: Some(vec![spec.command.clone().unwrap_or_else(|| "java".into())]),
                args: Some(args),
                java_on_command_line: true,
                fetcher: Some(fetcher(&p.url)),
            })
        }
    }
}

/// `UserBaseImageUrl` when given, else the default image of the JDK (`Open JDK 8` by default).
fn package_image(p: &Package) -> String {
    if let Some(image) = &p.base_image {
        return image.clone();
    }
    match p.jdk.as_deref() {
        Some("Open JDK 7") => DEFAULT_JDK7_IMAGE.into(),
        _ => DEFAULT_JDK8_IMAGE.into(),
    }
}

/// The ports the application listens on, as its Services' target ports say (each port and
/// protocol once, in order), so `kubectl describe` and network tooling see them; `None` without
/// Services.
fn container_ports(spec: &AppSpec) -> Option<Vec<ContainerPort>> {
    let mut seen = BTreeSet::new();
    let ports: Vec<ContainerPort> = spec
        .services
        .iter()
        .flat_map(|s| &s.port_mappings)
        .filter_map(|m| {
            let p = &m.service_port;
            let port = i32::try_from(p.target_port)
                .ok()
                .filter(|p| (1..=65535).contains(p))?;
            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            seen.insert((port, protocol.clone()))
                .then(|| ContainerPort {
                    container_port: port,
                    protocol: Some(protocol),
                    ..ContainerPort::default()
                })
        })
        .collect();
    (!ports.is_empty()).then_some(ports)
}

fn fetcher(url: &str) -> Container {
    Container {
        name: PACKAGE_FETCHER.into(),
        image: Some(PACKAGE_FETCHER_IMAGE.into()),
        command: Some(
            [
                "curl",
                "--fail",
                "--silent",
                "--show-error",
                "--location",
                "--retry",
                "3",
                "--output",
                PACKAGE_FILE,
                url,
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        volume_mounts: Some(vec![VolumeMount {
            name: PACKAGE_VOLUME.into(),
            mount_path: PACKAGE_DIR.into(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    }
}

/// Volumes of the pod and mounts of the application container, in parameter order.
#[derive(Default)]
struct Storage {
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
}

impl Storage {
    fn add(&mut self, volume: Volume, mount: VolumeMount) {
        self.volumes.push(volume);
        self.mounts.push(mount);
    }

    /// Whether `dir` already lies on a volume of the container.
    fn covers(&self, dir: &str) -> bool {
        self.mounts.iter().any(|m| {
            dir == m.mount_path
                || dir
                    .strip_prefix(m.mount_path.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn storage(spec: &AppSpec, package: bool) -> Storage {
    let mut s = Storage::default();
    for (i, c) in spec.config_mounts.iter().enumerate() {
        let name = format!("config-{i}");
        let mut v = Volume {
            name: name.clone(),
            ..Volume::default()
        };
        if c.kind == "Secret" {
            v.secret = Some(SecretVolumeSource {
                secret_name: Some(c.name.clone()),
                ..SecretVolumeSource::default()
            });
        } else {
            v.config_map = Some(ConfigMapVolumeSource {
                name: c.name.clone(),
                ..ConfigMapVolumeSource::default()
            });
        }
        s.add(v, mount(&name, &c.mount_path, false));
    }
    for (i, p) in spec.pvc_mounts.iter().enumerate() {
        let name = format!("pvc-{i}");
        s.volumes.push(Volume {
            name: name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: p.pvc_name.clone(),
                read_only: None,
            }),
            ..Volume::default()
        });
        for m in &p.mount_paths {
            s.mounts.push(mount(&name, &m.mount_path, m.read_only));
        }
    }
    for (i, e) in spec.empty_dirs.iter().enumerate() {
        let name = format!("empty-dir-{i}");
        let v = Volume {
            name: name.clone(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        };
        let mut m = mount(&name, &e.mount_path, e.read_only);
        m.sub_path_expr = e.sub_path_expr.clone();
        s.add(v, m);
    }
    for (i, h) in spec.local_volumes.iter().enumerate() {
        let name = format!("host-path-{i}");
        let v = Volume {
            name: name.clone(),
            host_path: Some(HostPathVolumeSource {
                path: h.node_path.clone(),
                type_: (!h.kind.is_empty()).then(|| h.kind.clone()),
            }),
            ..Volume::default()
        };
        s.add(v, mount(&name, &h.mount_path, false));
    }
    if let Some(server) = &spec.nfs.server {
        for (i, n) in spec.nfs.mounts.iter().enumerate() {
            let name = format!("nfs-{i}");
            let v = Volume {
                name: name.clone(),
                nfs: Some(NFSVolumeSource {
                    server: server.clone(),
                    path: n.nas_path.clone(),
                    read_only: None,
                }),
                ..Volume::default()
            };
            s.add(v, mount(&name, &n.mount_path, false));
        }
    }
    if package {
        let v = Volume {
            name: PACKAGE_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        };
        s.add(v, mount(PACKAGE_VOLUME, PACKAGE_DIR, true));
    }
    s
}

/// The directory of a log file pattern: the path up to the first component with a wildcard,
/// or up to the file name.
fn log_directory(pattern: &str) -> Option<String> {
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let fixed = parts
        .iter()
        .position(|p| p.contains(['*', '?', '[']))
        .unwrap_or(parts.len().saturating_sub(1));
    (fixed > 0).then(|| format!("/{}", parts[..fixed].join("/")))
}

/// Log collection, declared to the node's log agent with the log-pilot convention: the variable
/// `aliyun_logs_<logstore>` is `stdout` or a file pattern, and a file's directory must be a
/// volume (an emptyDir unless the user already mounts one there) so the agent can read it.
fn log_collection(
    spec: &AppSpec,
    storage: &mut Storage,
    env: &mut Vec<(EnvVar, &'static str)>,
) -> Result<(), RenderError> {
    let app = spec.name.to_ascii_lowercase();
    for (i, c) in spec.log_collection.iter().enumerate() {
        let store = if c.logstore.is_empty() {
            format!("{app}-{}-{i}", c.kind)
        } else {
            c.logstore.clone()
        };
        let value = if c.kind == "stdout" {
            "stdout".to_owned()
        } else {
            let dir =
                log_directory(&c.log_dir).ok_or_else(|| RenderError::LogDir(c.log_dir.clone()))?;
            if !storage.covers(&dir) {
                let name = format!("log-{i}");
                storage.add(
                    Volume {
                        name: name.clone(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Volume::default()
                    },
                    mount(&name, &dir, false),
                );
            }
            c.log_dir.clone()
        };
        env.push((
            EnvVar {
                name: format!("aliyun_logs_{store}"),
                value: Some(value),
                value_from: None,
            },
            "SlsConfigs",
        ));
    }
    Ok(())
}

/// The names `$(NAME)` a `subPathExpr` refers to.
fn referenced_vars(expr: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("$(") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else { break };
        out.push(&after[..end]);
        rest = &after[end + 1..];
    }
    out
}

/// The application container's environment: the user's `Envs`, then what edasd derives
/// (JVM options of an image, log collection, downward-API variables `subPathExpr` uses).
fn environment(
    spec: &AppSpec,
    launch: &Launch,
    storage: &mut Storage,
) -> Result<Vec<EnvVar>, RenderError> {
    let mut derived: Vec<(EnvVar, &'static str)> = Vec::new();
    let java = spec.java_options();
    if !launch.java_on_command_line && !java.is_empty() {
        derived.push((
            EnvVar {
                name: "JAVA_TOOL_OPTIONS".into(),
                value: Some(java.join(" ")),
                value_from: None,
            },
            "JavaStartUpConfig/WebContainerConfig/UriEncoding",
        ));
    }
    log_collection(spec, storage, &mut derived)?;
    let mut env = spec.envs.clone();
    for (var, by) in derived {
        if env.iter().any(|e| e.name == var.name) {
            return Err(RenderError::DuplicateEnv { name: var.name, by });
        }
        env.push(var);
    }
    for e in &spec.empty_dirs {
        for var in e
            .sub_path_expr
            .as_deref()
            .map(referenced_vars)
            .unwrap_or_default()
        {
            if env.iter().any(|x| x.name == var) {
                continue;
            }
            if let Some((_, path)) = DOWNWARD_VARS.iter().find(|(n, _)| *n == var) {
                env.push(EnvVar {
                    name: var.to_owned(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            api_version: None,
                            field_path: (*path).to_owned(),
                        }),
                        ..EnvVarSource::default()
                    }),
                });
            }
        }
    }
    Ok(env)
}

fn resources(spec: &AppSpec) -> Option<ResourceRequirements> {
    let r = &spec.resources;
    // Millicores, MiB and GiB, the units the spec keeps them in.
    let quantities = |cpu: Option<u32>, memory: Option<u32>, ephemeral: Option<u32>| {
        [
            ("cpu", cpu, "m"),
            ("memory", memory, "Mi"),
            ("ephemeral-storage", ephemeral, "Gi"),
        ]
        .into_iter()
        .filter_map(|(key, v, unit)| Some((key.to_owned(), Quantity(format!("{}{unit}", v?)))))
        .collect::<BTreeMap<_, _>>()
    };
    let limits = quantities(
        r.cpu_limit_millis,
        r.memory_limit_mib,
        r.ephemeral_limit_gib,
    );
    let requests = quantities(
        r.cpu_request_millis,
        r.memory_request_mib,
        r.ephemeral_request_gib,
    );
    if limits.is_empty() && requests.is_empty() {
        return None;
    }
    Some(ResourceRequirements {
        limits: (!limits.is_empty()).then_some(limits),
        requests: (!requests.is_empty()).then_some(requests),
        ..ResourceRequirements::default()
    })
}

/// Affinity: the user's `CustomAffinity` (only when neither spread switch is on, as EDAS
/// documents), with `ImagePlatforms` added to every required node selector term.
fn affinity(spec: &AppSpec) -> Option<Affinity> {
    let spreading = spec.deploy_across_nodes || spec.deploy_across_zones;
    let mut affinity = if spreading {
        None
    } else {
        spec.custom_affinity.clone()
    };
    if spec.image_platforms.is_empty() {
        return affinity;
    }
    let arch = NodeSelectorRequirement {
        key: ARCH_KEY.into(),
        operator: "In".into(),
        values: Some(
            spec.image_platforms
                .iter()
                .map(|p| p.rsplit('/').next().unwrap_or(p).to_owned())
                .collect(),
        ),
    };
    let a = affinity.get_or_insert_with(Affinity::default);
    let node = a.node_affinity.get_or_insert_with(NodeAffinity::default);
    let required = node
        .required_during_scheduling_ignored_during_execution
        .get_or_insert_with(NodeSelector::default);
    if required.node_selector_terms.is_empty() {
        required
            .node_selector_terms
            .push(NodeSelectorTerm::default());
    }
    // Terms are alternatives (OR): the architecture must hold in each of them.
    for term in &mut required.node_selector_terms {
        term.match_expressions
            .get_or_insert_with(Vec::new)
            .push(arch.clone());
    }
    affinity
}

/// `DeployAcrossNodes` / `DeployAcrossZones`: the revision's pods spread evenly (skew 1) over
/// nodes / zones. `ScheduleAnyway` makes it best effort, so a cluster with fewer nodes or zones
/// than replicas still runs every replica and a release never stalls on spreading.
fn spread(spec: &AppSpec, revision: &str) -> Option<Vec<TopologySpreadConstraint>> {
    let mut out = Vec::new();
    for (on, key) in [
        (spec.deploy_across_nodes, HOSTNAME_KEY),
        (spec.deploy_across_zones, ZONE_KEY),
    ] {
        if on {
            out.push(TopologySpreadConstraint {
                max_skew: 1,
                topology_key: key.into(),
                when_unsatisfiable: "ScheduleAnyway".into(),
                label_selector: Some(LabelSelector {
                    match_labels: Some(revision_selector(spec, revision)),
                    ..LabelSelector::default()
                }),
                ..TopologySpreadConstraint::default()
            });
        }
    }
    (!out.is_empty()).then_some(out)
}

fn annotations(spec: &AppSpec) -> BTreeMap<String, String> {
    let mut a = spec.annotations.clone();
    a.insert(
        ANNOTATION_RESTART.into(),
        spec.restart_generation.to_string(),
    );
    let l = &spec.lossless;
    if l.enabled {
        a.insert(
            ANNOTATION_LOSSLESS.into(),
            format!(
                "delay={}s warmup={}s curve={} aligned={} related={}",
                l.delay_seconds, l.warmup_seconds, l.func_type, l.aligned, l.related
            ),
        );
    }
    if spec.empty_push_reject {
        a.insert(ANNOTATION_EMPTY_PUSH_REJECT.into(), "true".into());
    }
    a
}

/// The pod template of revision `revision`.
pub(crate) fn template(spec: &AppSpec, revision: &str) -> Result<PodTemplateSpec, RenderError> {
    let launch = launch(spec)?;
    let mut storage = storage(spec, launch.fetcher.is_some());
    let env = environment(spec, &launch, &mut storage)?;
    let mut seen = BTreeSet::new();
    for m in &storage.mounts {
        if !seen.insert(m.mount_path.as_str()) {
            return Err(RenderError::MountPath(m.mount_path.clone()));
        }
    }
    let lifecycle = (spec.post_start.is_some() || spec.pre_stop.is_some()).then(|| Lifecycle {
        post_start: spec.post_start.clone(),
        pre_stop: spec.pre_stop.clone(),
        ..Lifecycle::default()
    });
    let app = Container {
        name: spec.name.to_ascii_lowercase(),
        image: Some(launch.image),
        command: launch.command,
        args: launch.args,
        env: (!env.is_empty()).then_some(env),
        env_from: (!spec.env_froms.is_empty()).then(|| spec.env_froms.clone()),
        resources: resources(spec),
        liveness_probe: spec.liveness.clone(),
        readiness_probe: spec.readiness.clone(),
        startup_probe: spec.startup.clone(),
        lifecycle,
        security_context: spec.security_context.clone(),
        volume_mounts: (!storage.mounts.is_empty()).then_some(storage.mounts),
        ports: container_ports(spec),
        ..Container::default()
    };
    let mut containers = vec![app];
    containers.extend(spec.sidecars.iter().cloned());
    let mut init: Vec<Container> = launch.fetcher.into_iter().collect();
    init.extend(spec.init_containers.iter().cloned());
    let mut names = BTreeSet::new();
    for c in containers.iter().chain(&init) {
        if !names.insert(c.name.as_str()) {
            return Err(RenderError::DuplicateContainer(c.name.clone()));
        }
    }
    let spreading = spec.deploy_across_nodes || spec.deploy_across_zones;
    let tolerations = (!spreading && !spec.custom_tolerations.is_empty())
        .then(|| spec.custom_tolerations.clone());
    let mut labels = spec.labels.clone();
    labels.extend(revision_labels(spec, revision));
    Ok(PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: Some(annotations(spec)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers,
            init_containers: (!init.is_empty()).then_some(init),
            volumes: (!storage.volumes.is_empty()).then_some(storage.volumes),
            affinity: affinity(spec),
            tolerations,
            topology_spread_constraints: spread(spec, revision),
            runtime_class_name: spec.runtime_class_name.clone(),
            termination_grace_period_seconds: spec.termination_grace_period_seconds.map(i64::from),
            image_pull_secrets: spec
                .image_pull_secret
                .as_ref()
                .map(|s| vec![LocalObjectReference { name: s.clone() }]),
            ..PodSpec::default()
        }),
    })
}
