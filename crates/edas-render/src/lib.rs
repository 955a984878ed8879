//! Rendering: one revision of an application becomes the Kubernetes objects that run it.
//!
//! [`render`] is a pure function of the revision's [`AppSpec`], its revision id and the replica
//! count of the current release step. It returns a [`Rendered`]: one Deployment for the revision
//! plus the application's Services. [`Rendered::to_yaml`] prints them as multi-document YAML, the
//! form `kubectl apply -f` takes and `edasctl render` shows.
//!
//! **How a release step maps onto objects.** Every revision has its own Deployment, named
//! `<app name, lowercased>-r<revision>`, whose pod template never changes after it is created.
//! A release step is "revision N has k replicas": the release engine sets `spec.replicas` of the
//! new revision's Deployment up and of the old one down, so the engine (not the Deployment
//! controller) paces the gray and batch steps, and a pause or rollback is only a replica change.
//! The Deployment's own strategy is `RollingUpdate` with `maxSurge: 0`, `maxUnavailable: 1`: it
//! never takes effect for a template edit made by edasd (there is none), and if someone edits a
//! template by hand the controller still never runs more pods than the engine asked for.
//! Services select the application label only, so they reach the ready pods of every revision.
//!
//! Names: Kubernetes object names and container names must be DNS labels, while an EDAS
//! application name may contain uppercase letters; the name is lowercased for them. Label
//! values keep the name exactly as given (`edas.oam.acname`).

mod autoscaling;
mod ingress;
mod pod;
mod statefulset;

use std::collections::BTreeMap;

use edas_spec::AppSpec;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment, StatefulSet,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};

pub use autoscaling::{Autoscaler, ScaleDirection, ScaleMetric, ScalePolicy, hpa_name, render_hpa};
pub use ingress::{LABEL_INGRESS, render_ingress};
pub use pod::{
    DEFAULT_JDK7_IMAGE, DEFAULT_JDK8_IMAGE, PACKAGE_DIR, PACKAGE_FETCHER, PACKAGE_FETCHER_IMAGE,
    PACKAGE_FILE,
};
pub use statefulset::{
    Stateful, headless_name, render_statefulset, statefulset_name, statefulset_selector,
};

/// Label: the application name, exactly as given (EDAS's own convention).
pub const LABEL_APP: &str = "edas.oam.acname";
/// Label: the revision id.
pub const LABEL_REVISION: &str = "edas.oam.revision";
/// Label on the headless Service of an application's StatefulSet (`WorkloadType=StatefulSet`):
/// it belongs to the workload, not to the application's `ServiceConfigs`.
pub const LABEL_HEADLESS: &str = "edas.oam.headless";
/// Pod annotation: the restart generation (RestartK8sApplication increments it).
pub const ANNOTATION_RESTART: &str = "edas.oam.restart-generation";
/// Pod annotation: the graceful-start settings, enforced by edasd's release engine.
pub const ANNOTATION_LOSSLESS: &str = "edas.oam.lossless";
/// Pod annotation: empty-push protection is on, enforced by edasd.
pub const ANNOTATION_EMPTY_PUSH_REJECT: &str = "edas.oam.empty-push-reject";

/// Why a revision cannot be rendered for Kubernetes. Each names what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A command-only application has nothing a pod could run.
    #[error(
        "application `{app}` has neither an image nor a package: a command alone runs only on the local runtime (give ImageUrl or PackageUrl)"
    )]
    NoArtifact {
        /// The application name.
        app: String,
    },
    /// A `file://` package lives on the edasd machine, which the cluster's pods cannot reach.
    #[error(
        "PackageUrl `{url}` is a file:// URL, which pods in a cluster cannot download: give an http:// or https:// URL"
    )]
    PackageNotReachable {
        /// The package URL.
        url: String,
    },
    /// The application name cannot name Kubernetes objects.
    #[error(
        "application name `{0}` cannot name Kubernetes objects: lowercased it must be a DNS label (letters, digits, -, ending with a letter or digit)"
    )]
    AppName(String),
    /// The revision id cannot be part of an object name or a label value.
    #[error(
        "revision `{revision}` cannot name Kubernetes objects: it must be lowercase letters, digits and -, starting and ending alphanumerically, and `{app}-r<revision>` at most 63 characters"
    )]
    Revision {
        /// The lowercased application name.
        app: String,
        /// The revision id.
        revision: String,
    },
    /// Two containers of the pod would have the same name.
    #[error(
        "container name `{0}` is used twice in the pod (the application container is named after the application; sidecars, init containers and `{PACKAGE_FETCHER}` must differ)"
    )]
    DuplicateContainer(String),
    /// Two environment variables of the application container would have the same name.
    #[error(
        "environment variable `{name}` is set twice: by Envs and by {by} (remove it from Envs)"
    )]
    DuplicateEnv {
        /// The variable.
        name: String,
        /// What else sets it.
        by: &'static str,
    },
    /// A log file pattern whose directory cannot be a volume.
    #[error(
        "SlsConfigs logDir `{0}` must lie in a directory below / (the directory becomes a volume the log agent reads)"
    )]
    LogDir(String),
    /// Two volumes would be mounted at the same path of the application container.
    #[error(
        "mount path `{0}` is used twice in the application container (it is reserved by edasd or declared twice)"
    )]
    MountPath(String),
    /// The replica count does not fit a Kubernetes replica field.
    #[error("replica count {0} is too large")]
    Replicas(u32),
    /// A Service of `ServiceConfigs` would take the name of the StatefulSet's headless Service.
    #[error(
        "Service name `{0}` is the headless Service of the application's StatefulSet (WorkloadType=StatefulSet): name the Service otherwise"
    )]
    HeadlessService(String),
    /// A scaling rule the HorizontalPodAutoscaler cannot take.
    #[error("scaling rule cannot become a HorizontalPodAutoscaler: {0}")]
    Autoscaler(String),
    /// YAML serialization failed.
    #[error("cannot print YAML: {0}")]
    Yaml(String),
}

impl RenderError {
    /// The wire parameter to change, when one parameter is at fault (for the EDAS error body).
    pub fn parameter(&self) -> Option<&'static str> {
        match self {
            RenderError::NoArtifact { .. } => Some("ImageUrl"),
            RenderError::PackageNotReachable { .. } => Some("PackageUrl"),
            RenderError::AppName(_) => Some("AppName"),
            RenderError::DuplicateEnv { .. } => Some("Envs"),
            RenderError::LogDir(_) => Some("SlsConfigs"),
            RenderError::HeadlessService(_) => Some("ServiceConfigs"),
            RenderError::Revision { .. }
            | RenderError::DuplicateContainer(_)
            | RenderError::MountPath(_)
            | RenderError::Replicas(_)
            | RenderError::Autoscaler(_)
            | RenderError::Yaml(_) => None,
        }
    }
}

/// The Kubernetes objects of one revision.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The revision's Deployment.
    pub deployment: Deployment,
    /// The application's Services (the same for every revision).
    pub services: Vec<Service>,
    /// With `WorkloadType=StatefulSet`: the application's StatefulSet running this revision
    /// on all its pods (`partition` 0) and its headless Service, which run it instead of
    /// `deployment` (then only the source of the pod template).
    pub stateful: Option<Stateful>,
}

/// Any object [`render`] produces; the unit of the multi-document YAML.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Object {
    /// An `apps/v1` Deployment.
    Deployment(Box<Deployment>),
    /// A `v1` Service.
    Service(Box<Service>),
    /// An `apps/v1` StatefulSet.
    StatefulSet(Box<StatefulSet>),
}

impl Rendered {
    /// The objects in apply order: the Deployment (or the headless Service and the
    /// StatefulSet), then the Services.
    pub fn objects(&self) -> Vec<Object> {
        let mut out = match &self.stateful {
            None => vec![Object::Deployment(Box::new(self.deployment.clone()))],
            Some(s) => vec![
                Object::Service(Box::new(s.headless.clone())),
                Object::StatefulSet(Box::new(s.set.clone())),
            ],
        };
        out.extend(
            self.services
                .iter()
                .map(|s| Object::Service(Box::new(s.clone()))),
        );
        out
    }

    /// Multi-document YAML (`---` between documents), as `kubectl apply -f` reads it.
    ///
    /// Long single-line strings (JVM options, URLs) stay on one line instead of being folded
    /// with `>`, so what a reviewer greps for is what the pod gets; multi-line strings keep
    /// YAML's literal `|` blocks.
    pub fn to_yaml(&self) -> Result<String, RenderError> {
        let options = serde_saphyr::ser_options! { folded_wrap_chars: 1 << 20 };
        serde_saphyr::to_string_multiple_with_options(&self.objects(), options)
            .map_err(|e| RenderError::Yaml(e.to_string()))
    }
}

/// Parses multi-document YAML produced by [`Rendered::to_yaml`] back into objects.
pub fn parse_yaml(yaml: &str) -> Result<Vec<Object>, String> {
    serde_saphyr::from_multiple(yaml).map_err(|e| e.to_string())
}

/// The Deployment name of a revision: `<app name, lowercased>-r<revision>`.
pub fn deployment_name(app_name: &str, revision: &str) -> String {
    format!("{}-r{revision}", app_name.to_ascii_lowercase())
}

/// The labels every pod of the revision carries besides the user's (the keys edas-spec reserves).
pub fn revision_labels(spec: &AppSpec, revision: &str) -> BTreeMap<String, String> {
    let mut m = app_labels(spec);
    m.insert(
        "app.kubernetes.io/instance".into(),
        deployment_name(&spec.name, revision),
    );
    m.insert("app.kubernetes.io/version".into(), revision.into());
    m.insert(LABEL_REVISION.into(), revision.into());
    m
}

/// The labels shared by every object of the application.
fn app_labels(spec: &AppSpec) -> BTreeMap<String, String> {
    app_labels_of(&spec.name)
}

/// The labels shared by every object of application `name`.
fn app_labels_of(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), name.to_owned()),
        ("app.kubernetes.io/managed-by".into(), "edasd".into()),
        (LABEL_APP.into(), name.to_owned()),
    ])
}

/// The selector of a revision's pods: application and revision.
pub fn revision_selector(spec: &AppSpec, revision: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_APP.into(), spec.name.clone()),
        (LABEL_REVISION.into(), revision.into()),
    ])
}

fn is_dns_label(s: &str) -> bool {
    edas_spec::k8s::is_dns_label(s)
}

/// Renders revision `revision` of `spec` with `replicas` instances (this release step's count);
/// a `WorkloadType=StatefulSet` application's StatefulSet runs the revision on all its pods
/// (see [`render_statefulset`] for a release in progress).
pub fn render(spec: &AppSpec, revision: &str, replicas: u32) -> Result<Rendered, RenderError> {
    let mut rendered = render_deployment(spec, revision, replicas)?;
    if spec.workload == edas_spec::model::Workload::StatefulSet {
        rendered.stateful = Some(statefulset::stateful(
            spec, revision, replicas, 0, &rendered,
        )?);
    }
    Ok(rendered)
}

/// The revision's Deployment and the application's Services.
fn render_deployment(
    spec: &AppSpec,
    revision: &str,
    replicas: u32,
) -> Result<Rendered, RenderError> {
    let lower = spec.name.to_ascii_lowercase();
    if !is_dns_label(&lower) || !edas_spec::k8s::is_label_value(&spec.name) {
        return Err(RenderError::AppName(spec.name.clone()));
    }
    let name = deployment_name(&spec.name, revision);
    if !is_dns_label(revision) || !is_dns_label(&name) {
        return Err(RenderError::Revision {
            app: lower,
            revision: revision.to_owned(),
        });
    }
    let replicas = i32::try_from(replicas).map_err(|_| RenderError::Replicas(replicas))?;
    let template = pod::template(spec, revision)?;
    let deployment = Deployment {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(spec.k8s_namespace.clone()),
            labels: Some(revision_labels(spec, revision)),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(revision_selector(spec, revision)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(0)),
                    max_unavailable: Some(IntOrString::Int(1)),
                }),
            }),
            min_ready_seconds: (spec.min_ready_seconds > 0)
                .then(|| i32::try_from(spec.min_ready_seconds).unwrap_or(i32::MAX)),
            template,
            ..DeploymentSpec::default()
        }),
        status: None,
    };
    Ok(Rendered {
        deployment,
        services: services(spec),
        stateful: None,
    })
}

/// The application's Services: they select the application label only, so one Service reaches
/// the ready pods of every revision while a release moves replicas between them.
fn services(spec: &AppSpec) -> Vec<Service> {
    render_services(&spec.name, &spec.k8s_namespace, &spec.services)
}

/// The Services `services` of application `app_name` in `namespace`, exactly as [`render`]
/// renders them: the Kubernetes runtime applies them when the engine sets an application's
/// routing, which names the Services but not the whole revision.
pub fn render_services(
    app_name: &str,
    namespace: &str,
    services: &[edas_spec::model::ServiceConfig],
) -> Vec<Service> {
    let spec = AppSpec {
        name: app_name.to_owned(),
        k8s_namespace: namespace.to_owned(),
        ..AppSpec::default()
    };
    services
        .iter()
        .map(|s| Service {
            metadata: ObjectMeta {
                name: Some(s.name.clone()),
                namespace: Some(spec.k8s_namespace.clone()),
                labels: Some(app_labels(&spec)),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some(s.service_type.clone()),
                selector: Some(BTreeMap::from([(LABEL_APP.into(), spec.name.clone())])),
                ports: Some(
                    s.port_mappings
                        .iter()
                        .map(|m| {
                            let p = &m.service_port;
                            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                            ServicePort {
                                name: Some(format!("{}-{}", protocol.to_ascii_lowercase(), p.port)),
                                port: i32::try_from(p.port).unwrap_or_default(),
                                // Only where the type has node ports; 0 is EDAS's "none".
                                node_port: p
                                    .node_port
                                    .filter(|n| *n > 0 && s.service_type != "ClusterIP")
                                    .and_then(|n| i32::try_from(n).ok()),
                                target_port: Some(IntOrString::Int(
                                    i32::try_from(p.target_port).unwrap_or_default(),
                                )),
                                protocol: Some(protocol),
                                ..ServicePort::default()
                            }
                        })
                        .collect(),
                ),
                ..ServiceSpec::default()
            }),
            status: None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
