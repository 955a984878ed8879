//! The application model: one complete, self-contained description of what should run.
//!
//! A revision is an [`AppSpec`]; any revision can be re-applied later without consulting the
//! requests that produced it. Kubernetes-shaped settings reuse k8s-openapi types unchanged;
//! EDAS-specific shapes are small structs here. Serde gives the storage format (the model's own
//! field names; nested EDAS and Kubernetes objects keep their camelCase wire names).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvFromSource, EnvVar, LifecycleHandler, Probe, SecurityContext,
    Toleration,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The desired state of one application: the content of a revision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSpec {
    /// `AppName`: starts with a letter; letters, digits and hyphens.
    pub name: String,
    /// `ApplicationDescription`.
    pub description: Option<String>,
    /// `ClusterId`: the cluster the application runs on (`local` is built in).
    pub cluster_id: String,
    /// `Namespace`: the Kubernetes namespace (default `default`).
    pub k8s_namespace: String,
    /// `LogicalRegionId`: the EDAS namespace; `None` means the installation's default namespace.
    pub edas_namespace: Option<String>,
    /// `ResourceGroupId`, recorded and reported back.
    pub resource_group_id: Option<String>,
    /// `IsMultilingualApp`, reported as `DevelopType`.
    pub multilingual: bool,
    /// What the instances run: an image, a package, or neither (a command on the local runtime).
    pub artifact: Artifact,
    /// `Replicas`: the instance count while the application is started.
    pub replicas: u32,
    /// Set by StopK8sApplication: no instance runs, `replicas` is remembered for the next start.
    pub stopped: bool,
    /// Incremented by RestartK8sApplication so the restart is a revision of its own.
    pub restart_generation: u64,
    /// `Command`: the container entrypoint.
    pub command: Option<String>,
    /// `Args` (`CommandArgs` in InsertK8sApplication).
    pub args: Vec<String>,
    /// `Envs`.
    pub envs: Vec<EnvVar>,
    /// `EnvFroms`.
    pub env_froms: Vec<EnvFromSource>,
    /// CPU, memory and ephemeral storage.
    pub resources: Resources,
    /// `Liveness`.
    pub liveness: Option<Probe>,
    /// `Readiness`.
    pub readiness: Option<Probe>,
    /// `Startup`.
    pub startup: Option<Probe>,
    /// `PostStart`.
    pub post_start: Option<LifecycleHandler>,
    /// `PreStop`.
    pub pre_stop: Option<LifecycleHandler>,
    /// `TerminateGracePeriod` in seconds; `None` is Kubernetes' default (30).
    pub termination_grace_period_seconds: Option<u32>,
    /// The top-level `BatchWaitTime`: Kubernetes `minReadySeconds`.
    pub min_ready_seconds: u32,
    /// `DeployAcrossNodes`: spread instances over `kubernetes.io/hostname`.
    pub deploy_across_nodes: bool,
    /// `DeployAcrossZones`: spread instances over `topology.kubernetes.io/zone`.
    pub deploy_across_zones: bool,
    /// `CustomAffinity`, effective only when neither spread switch is on (as EDAS documents).
    pub custom_affinity: Option<Affinity>,
    /// `CustomTolerations`, effective only when neither spread switch is on.
    pub custom_tolerations: Vec<Toleration>,
    /// `RuntimeClassName`: `runc` or `runv`.
    pub runtime_class_name: Option<String>,
    /// `ImagePlatforms`: the CPU architectures instances may run on (`linux/amd64`, `linux/arm64`).
    pub image_platforms: Vec<String>,
    /// `Labels` of the pods.
    pub labels: BTreeMap<String, String>,
    /// `Annotations` of the pods.
    pub annotations: BTreeMap<String, String>,
    /// `ConfigMountDescs`.
    pub config_mounts: Vec<ConfigMount>,
    /// `PvcMountDescs`.
    pub pvc_mounts: Vec<PvcMount>,
    /// `EmptyDirs`.
    pub empty_dirs: Vec<EmptyDirMount>,
    /// `LocalVolume`: host paths.
    pub local_volumes: Vec<LocalVolume>,
    /// `NasId` + `MountDescs` + `StorageType`: an NFS server and its exports.
    pub nfs: Nfs,
    /// `Sidecars`.
    pub sidecars: Vec<Container>,
    /// `InitContainers`.
    pub init_containers: Vec<Container>,
    /// `SecurityContext` of the application container.
    pub security_context: Option<SecurityContext>,
    /// `SecretName`: the image pull secret.
    pub image_pull_secret: Option<String>,
    /// The `LosslessRule*` settings.
    pub lossless: Lossless,
    /// `EnableEmptyPushReject`: traffic keeps going to the last known instances when the set of
    /// ready instances becomes empty.
    pub empty_push_reject: bool,
    /// `JavaStartUpConfig`: key → {original, startup}; the `startup` values are the JVM options.
    pub java_startup: BTreeMap<String, JavaStartupOption>,
    /// `WebContainerConfig`, for FatJar (Spring Boot) applications.
    pub web_container: Option<WebContainerConfig>,
    /// `UriEncoding`.
    pub uri_encoding: Option<String>,
    /// `SlsConfigs`: log collection declared to the cluster's log agent.
    pub log_collection: Vec<LogCollection>,
    /// `ServiceConfigs` (InsertK8sApplication): the application's Services.
    pub services: Vec<ServiceConfig>,
    /// `WorkloadType` (InsertK8sApplication; fixed for the application's life).
    pub workload: Workload,
}

/// `WorkloadType`: what runs the application's instances on Kubernetes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Workload {
    /// A Deployment per revision (the default).
    #[default]
    Deployment,
    /// One StatefulSet for the application: pods `<name>-0..N-1` with stable network identity
    /// (a headless Service); a release moves its `partition`. Kubernetes only.
    StatefulSet,
}

impl Workload {
    /// The EDAS name (`Deployment`, `StatefulSet`), as `WorkloadType` answers it.
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Deployment => "Deployment",
            Workload::StatefulSet => "StatefulSet",
        }
    }
}

impl AppSpec {
    /// The ports of all its Services (`ServicePort.port`), in spec order: what the store
    /// indexes to find the application that already uses a port.
    pub fn service_ports(&self) -> Vec<i64> {
        self.services
            .iter()
            .flat_map(|s| &s.port_mappings)
            .map(|m| m.service_port.port)
            .collect()
    }

    /// Every ConfigMap and Secret the application's instances reference, by kind and name: an
    /// environment variable's `valueFrom`, `EnvFroms`, a `ConfigMountDescs` mount, and the image
    /// pull secret. The one place that lists them (the engine copies them per revision, the
    /// Kubernetes runtime applies the copies, the API refuses to delete one in use). Names
    /// compare exactly (Kubernetes names are case-sensitive); a mount's kind is normalized to
    /// `ConfigMap`/`Secret` when the spec is built, anything but `Secret` is a ConfigMap.
    pub fn config_refs(&self) -> std::collections::BTreeSet<ConfigRef> {
        let mut out = std::collections::BTreeSet::new();
        let mut add = |kind, name: &str| {
            out.insert(ConfigRef {
                kind,
                name: name.to_owned(),
            });
        };
        for env in &self.envs {
            if let Some(from) = &env.value_from {
                if let Some(r) = &from.config_map_key_ref {
                    add(ConfigKind::ConfigMap, &r.name);
                }
                if let Some(r) = &from.secret_key_ref {
                    add(ConfigKind::Secret, &r.name);
                }
            }
        }
        for from in &self.env_froms {
            if let Some(r) = &from.config_map_ref {
                add(ConfigKind::ConfigMap, &r.name);
            }
            if let Some(r) = &from.secret_ref {
                add(ConfigKind::Secret, &r.name);
            }
        }
        for m in &self.config_mounts {
            let kind = if m.kind == "Secret" {
                ConfigKind::Secret
            } else {
                ConfigKind::ConfigMap
            };
            add(kind, &m.name);
        }
        if let Some(name) = &self.image_pull_secret {
            add(ConfigKind::PullSecret, name);
        }
        out
    }

    /// Renames the ConfigMaps and Secrets the instances read (what [`AppSpec::config_refs`]
    /// lists, in the same places): `rename` returns the new name, or `None` to keep one. The
    /// engine points a revision's references at its immutable copies with it.
    pub fn rename_config_refs(&mut self, rename: impl Fn(ConfigKind, &str) -> Option<String>) {
        let apply = |kind, name: &mut String| {
            if let Some(new) = rename(kind, name) {
                *name = new;
            }
        };
        for env in &mut self.envs {
            if let Some(from) = &mut env.value_from {
                if let Some(r) = &mut from.config_map_key_ref {
                    apply(ConfigKind::ConfigMap, &mut r.name);
                }
                if let Some(r) = &mut from.secret_key_ref {
                    apply(ConfigKind::Secret, &mut r.name);
                }
            }
        }
        for from in &mut self.env_froms {
            if let Some(r) = &mut from.config_map_ref {
                apply(ConfigKind::ConfigMap, &mut r.name);
            }
            if let Some(r) = &mut from.secret_ref {
                apply(ConfigKind::Secret, &mut r.name);
            }
        }
        for m in &mut self.config_mounts {
            let kind = if m.kind == "Secret" {
                ConfigKind::Secret
            } else {
                ConfigKind::ConfigMap
            };
            apply(kind, &mut m.name);
        }
        if let Some(name) = &mut self.image_pull_secret {
            apply(ConfigKind::PullSecret, name);
        }
    }

    /// The number of instances that should run now.
    pub fn effective_replicas(&self) -> u32 {
        if self.stopped { 0 } else { self.replicas }
    }

    /// The JVM options of a package-based application, in a stable order: the `startup` values
    /// of `JavaStartUpConfig` (split into words), then what `WebContainerConfig` and
    /// `UriEncoding` mean for an embedded (Spring Boot) web container.
    pub fn java_options(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .java_startup
            .values()
            .flat_map(|o| o.startup.split_whitespace().map(str::to_owned))
            .collect();
        if let Some(web) = &self.web_container
            && !web.use_default_config
        {
            if let Some(port) = web.http_port {
                out.push(format!("-Dserver.port={port}"));
            }
            match web.context_input_type.as_deref() {
                Some("root") => out.push("-Dserver.servlet.context-path=/".to_owned()),
                Some("custom") => {
                    if let Some(path) = &web.context_path {
                        let path = if path.starts_with('/') {
                            path.clone()
                        } else {
                            format!("/{path}")
                        };
                        out.push(format!("-Dserver.servlet.context-path={path}"));
                    }
                }
                _ => {}
            }
            if let Some(threads) = web.max_threads {
                out.push(format!("-Dserver.tomcat.threads.max={threads}"));
            }
            if let Some(enc) = &web.uri_encoding {
                out.push(format!("-Dserver.tomcat.uri-encoding={enc}"));
            }
        }
        if let Some(enc) = &self.uri_encoding {
            out.push(format!("-Dserver.tomcat.uri-encoding={enc}"));
        }
        out
    }

    /// Every mount path of the application container, with the parameter that declares it.
    pub fn mount_paths(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        for m in &self.config_mounts {
            out.push(("ConfigMountDescs", m.mount_path.as_str()));
        }
        for p in &self.pvc_mounts {
            for m in &p.mount_paths {
                out.push(("PvcMountDescs", m.mount_path.as_str()));
            }
        }
        for m in &self.empty_dirs {
            out.push(("EmptyDirs", m.mount_path.as_str()));
        }
        for m in &self.local_volumes {
            out.push(("LocalVolume", m.mount_path.as_str()));
        }
        for m in &self.nfs.mounts {
            out.push(("MountDescs", m.mount_path.as_str()));
        }
        out
    }
}

/// What an application's instances run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Artifact {
    /// Nothing yet: the instances run `Command` + `Args` (local runtime only).
    #[default]
    None,
    /// A container image (`ImageUrl` / `Image` / `ImageTag`).
    Image {
        /// The full image reference.
        url: String,
        /// `RepoId`, recorded and reported back.
        repo_id: Option<String>,
    },
    /// A FatJar package run with `java -jar` (`PackageUrl`, `PackageVersion`, `JDK`).
    Package(Package),
}

impl Artifact {
    /// The image reference, for image-based applications.
    pub fn image(&self) -> Option<&str> {
        match self {
            Artifact::Image { url, .. } => Some(url),
            _ => None,
        }
    }
}

/// A deployment package.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Package {
    /// `PackageUrl`: `file://`, `http://` or `https://`.
    pub url: String,
    /// `PackageVersion`: the user's own version label; the cache key of the download.
    pub version: String,
    /// `JDK`: `Open JDK 7`, `Open JDK 8` or `Custom OpenJDK`.
    pub jdk: Option<String>,
    /// `UserBaseImageUrl`: the image that provides the JDK on Kubernetes (required with
    /// `Custom OpenJDK`).
    pub base_image: Option<String>,
}

/// Resource bounds. `None` means unbounded (EDAS's `0`), never a bound of zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// CPU limit in millicores.
    pub cpu_limit_millis: Option<u32>,
    /// CPU request in millicores.
    pub cpu_request_millis: Option<u32>,
    /// Memory limit in MiB.
    pub memory_limit_mib: Option<u32>,
    /// Memory request in MiB.
    pub memory_request_mib: Option<u32>,
    /// Ephemeral storage limit in GiB.
    pub ephemeral_limit_gib: Option<u32>,
    /// Ephemeral storage request in GiB.
    pub ephemeral_request_gib: Option<u32>,
}

/// Graceful start (`EnableLosslessRule` and the `LosslessRule*` parameters).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Lossless {
    /// `EnableLosslessRule`.
    pub enabled: bool,
    /// `LosslessRuleDelayTime`: seconds before a new instance is registered for traffic.
    pub delay_seconds: u32,
    /// `LosslessRuleWarmupTime`: seconds over which its traffic share ramps up.
    pub warmup_seconds: u32,
    /// `LosslessRuleFuncType`: the exponent of the warm-up curve (0–20; 2 = quadratic).
    pub func_type: u32,
    /// `LosslessRuleAligned`: count an instance ready only after registration.
    pub aligned: bool,
    /// `LosslessRuleRelated`: count an instance ready only after warm-up.
    pub related: bool,
}

impl Default for Lossless {
    fn default() -> Self {
        Lossless {
            enabled: false,
            delay_seconds: 0,
            warmup_seconds: 120,
            func_type: 2,
            aligned: false,
            related: false,
        }
    }
}

/// What kind of object a [`ConfigRef`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigKind {
    /// A ConfigMap (environment or mounted files).
    ConfigMap,
    /// A Secret whose data the instances read (environment or mounted files).
    Secret,
    /// The image pull secret: a Secret the pod references by its own name for the registry
    /// login. It is never copied per revision: it may be a `kubernetes.io/dockerconfigjson`
    /// Secret made in the cluster, whose type a copy would lose.
    PullSecret,
}

impl ConfigKind {
    /// Whether the object is a Secret (a pull secret is one).
    pub fn is_secret(self) -> bool {
        self != ConfigKind::ConfigMap
    }

    /// Whether the engine takes an immutable per-revision copy of it (ConfigMaps and Secrets
    /// whose data the instances read; not the pull secret).
    pub fn is_copied(self) -> bool {
        self != ConfigKind::PullSecret
    }
}

/// One ConfigMap or Secret an application references ([`AppSpec::config_refs`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigRef {
    /// Its kind.
    pub kind: ConfigKind,
    /// Its name in the application's namespace (case-sensitive).
    pub name: String,
}

/// One `ConfigMountDescs` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMount {
    /// The ConfigMap or Secret name.
    pub name: String,
    /// `ConfigMap` or `Secret` (normalized from any case).
    #[serde(rename = "type")]
    pub kind: String,
    /// Absolute directory in the container.
    pub mount_path: String,
}

/// One `PvcMountDescs` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PvcMount {
    /// The claim's name.
    pub pvc_name: String,
    /// Where it is mounted.
    pub mount_paths: Vec<PvcMountPath>,
}

/// A mount point of a PVC.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PvcMountPath {
    /// Absolute path in the container.
    pub mount_path: String,
    /// Read-only mount (default false).
    #[serde(default)]
    pub read_only: bool,
}

/// One `EmptyDirs` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmptyDirMount {
    /// Absolute path in the container (required).
    pub mount_path: String,
    /// Read-only mount (default false).
    #[serde(default)]
    pub read_only: bool,
    /// Kubernetes `subPathExpr`, e.g. `$(POD_IP)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path_expr: Option<String>,
}

/// One `LocalVolume` entry: a host path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalVolume {
    /// Kubernetes hostPath type (`""`, `Directory`, `DirectoryOrCreate`, `File`, …).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Absolute path on the node.
    pub node_path: String,
    /// Absolute path in the container.
    pub mount_path: String,
}

/// The NFS server (`NasId`), its storage class (`StorageType`) and mounts (`MountDescs`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Nfs {
    /// The NFS server's host name or address.
    pub server: Option<String>,
    /// `StorageType`, recorded; only `Performance` is accepted, as EDAS documents.
    pub storage_type: Option<String>,
    /// Exports and where they are mounted.
    pub mounts: Vec<NfsMount>,
}

/// One `MountDescs` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NfsMount {
    /// The exported path on the NFS server.
    pub nas_path: String,
    /// Absolute path in the container.
    pub mount_path: String,
}

/// One `JavaStartUpConfig` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JavaStartupOption {
    /// The console's raw value (any JSON), kept for reading back.
    #[serde(default)]
    pub original: Value,
    /// The JVM option text, e.g. `-Xms512m`.
    pub startup: String,
}

/// `WebContainerConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebContainerConfig {
    /// `true`: the settings below are not used.
    #[serde(default)]
    pub use_default_config: bool,
    /// `war`, `root` or `custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_input_type: Option<String>,
    /// The context path when `contextInputType` is `custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_path: Option<String>,
    /// HTTP port, 1024–65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_port: Option<u32>,
    /// Maximum worker threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_threads: Option<u32>,
    /// URI encoding of the web container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_encoding: Option<String>,
    /// Tomcat's useBodyEncodingForURI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_body_encoding: Option<bool>,
    /// Whether `serverXml` replaces Tomcat's server.xml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_advanced_server_xml: Option<bool>,
    /// A custom server.xml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_xml: Option<String>,
}

/// One `SlsConfigs` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogCollection {
    /// The logstore name (empty: generated from the application name).
    #[serde(default)]
    pub logstore: String,
    /// `file` or `stdout`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The file pattern (`file`) or `stdout.log` (`stdout`).
    #[serde(default)]
    pub log_dir: String,
}

/// One Service of the application (`ServiceConfigs`, CreateK8sService).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConfig {
    /// The Service name (a DNS label).
    pub name: String,
    /// `ClusterIP`, `NodePort` or `LoadBalancer` (the last two on Kubernetes only).
    pub service_type: String,
    /// Port mappings.
    pub port_mappings: Vec<PortMapping>,
}

/// One port mapping of a Service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The Service port.
    pub service_port: ServicePort,
}

/// Port, target port and protocol of a Service port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// The Service's port, 1–65535.
    pub port: i64,
    /// The instance port, 1–65535.
    pub target_port: i64,
    /// `TCP` or `UDP` (default TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The node port of a `NodePort` or `LoadBalancer` Service, 30000–32767; `None` lets the
    /// cluster choose one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i64>,
}
