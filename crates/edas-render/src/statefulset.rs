//! `WorkloadType=StatefulSet`: one StatefulSet for the whole application instead of a
//! Deployment per revision, so its pods keep stable names (`<name>-0..N-1`) and network
//! identity (`<pod>.<name>-headless.<namespace>.svc`) across releases.
//!
//! A StatefulSet runs at most two revisions at once, by ordinal: ordinals below
//! `updateStrategy.rollingUpdate.partition` keep the revision they run, ordinals at or above it
//! run the template's. So the state "old revision k instances, new revision m" is `replicas =
//! k + m`, template = the new revision, `partition = k`; Kubernetes replaces pods from the
//! highest ordinal down, one at a time (`OrderedReady`), which is exactly a release's ordered,
//! partitioned batches. The Kubernetes runtime decides the two counts ([`render_statefulset`]
//! takes them as given).

use std::collections::BTreeMap;

use edas_spec::AppSpec;
use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::{LABEL_APP, LABEL_HEADLESS, LABEL_REVISION, RenderError, app_labels};

/// The StatefulSet of an application and the headless Service that gives its pods their
/// network identity.
#[derive(Clone, Debug, PartialEq)]
pub struct Stateful {
    /// The StatefulSet `<name>`.
    pub set: StatefulSet,
    /// The headless Service `<name>-headless` (its `serviceName`).
    pub headless: Service,
}

/// The StatefulSet name of an application: its name, lowercased (the pods are `<it>-<ordinal>`).
pub fn statefulset_name(app_name: &str) -> String {
    app_name.to_ascii_lowercase()
}

/// The headless Service of an application's StatefulSet: `<name, lowercased>-headless`.
pub fn headless_name(app_name: &str) -> String {
    format!("{}-headless", app_name.to_ascii_lowercase())
}

/// The selector of an application's StatefulSet: the application label only (immutable, and
/// its pods of both revisions match it; each pod keeps the revision label of the template it
/// was created from).
pub fn statefulset_selector(spec: &AppSpec) -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_APP.into(), spec.name.clone())])
}

/// Renders application `spec`'s StatefulSet with revision `revision` as its template,
/// `replicas` pods and `partition` (ordinals below it keep the revision they run), and its
/// headless Service. The checks are [`crate::render`]'s, plus a Service of `ServiceConfigs`
/// that would take the headless Service's name.
pub fn render_statefulset(
    spec: &AppSpec,
    revision: &str,
    replicas: u32,
    partition: u32,
) -> Result<Stateful, RenderError> {
    // The same name, revision and pod checks as a Deployment's.
    let rendered = crate::render_deployment(spec, revision, replicas)?;
    stateful(spec, revision, replicas, partition, &rendered)
}

/// The StatefulSet and headless Service of `spec` from its rendered Deployment (the pod
/// template and the Services).
pub(crate) fn stateful(
    spec: &AppSpec,
    revision: &str,
    replicas: u32,
    partition: u32,
    rendered: &crate::Rendered,
) -> Result<Stateful, RenderError> {
    let headless = headless_name(&spec.name);
    if spec.services.iter().any(|s| s.name == headless) {
        return Err(RenderError::HeadlessService(headless));
    }
    let replicas = i32::try_from(replicas).map_err(|_| RenderError::Replicas(replicas))?;
    let partition = i32::try_from(partition).map_err(|_| RenderError::Replicas(partition))?;
    let mut labels = app_labels(spec);
    labels.insert(LABEL_REVISION.into(), revision.into());
    let set = StatefulSet {
        metadata: ObjectMeta {
            name: Some(statefulset_name(&spec.name)),
            namespace: Some(spec.k8s_namespace.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(statefulset_selector(spec)),
                ..LabelSelector::default()
            },
            service_name: Some(headless.clone()),
            pod_management_policy: Some("OrderedReady".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(partition),
                    max_unavailable: None,
                }),
            }),
            min_ready_seconds: (spec.min_ready_seconds > 0)
                .then(|| i32::try_from(spec.min_ready_seconds).unwrap_or(i32::MAX)),
            template: rendered
                .deployment
                .spec
                .as_ref()
                .map(|s| s.template.clone())
                .unwrap_or_default(),
            ..StatefulSetSpec::default()
        }),
        status: None,
    };
    // The target ports the Services reach, so the pods' SRV records name them too.
    let mut ports: Vec<ServicePort> = Vec::new();
    for service in rendered.services.iter().filter_map(|s| s.spec.as_ref()) {
        for p in service.ports.iter().flatten() {
            let Some(IntOrString::Int(target)) = p.target_port else {
                continue;
            };
            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            if !ports
                .iter()
                .any(|q| q.port == target && q.protocol.as_deref() == Some(&protocol))
            {
                ports.push(ServicePort {
                    name: Some(format!("{}-{target}", protocol.to_ascii_lowercase())),
                    port: target,
                    target_port: Some(IntOrString::Int(target)),
                    protocol: Some(protocol),
                    ..ServicePort::default()
                });
            }
        }
    }
    let mut headless_labels = app_labels(spec);
    headless_labels.insert(LABEL_HEADLESS.into(), "true".into());
    let headless = Service {
        metadata: ObjectMeta {
            name: Some(headless),
            namespace: Some(spec.k8s_namespace.clone()),
            labels: Some(headless_labels),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some("None".into()),
            selector: Some(statefulset_selector(spec)),
            ports: (!ports.is_empty()).then_some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    };
    Ok(Stateful { set, headless })
}

#[cfg(test)]
mod tests {
    use edas_spec::{Operation, Params, apply};

    use super::*;
    use crate::{Object, parse_yaml, render};

    fn spec(extra: &[(&str, &str)]) -> AppSpec {
        let mut pairs = vec![
            ("AppName", "Ledger"),
            ("ClusterId", "k8s"),
            ("Namespace", "prod"),
            ("ImageUrl", "registry.example.com/ledger:v1"),
            ("Replicas", "4"),
            ("WorkloadType", "StatefulSet"),
            (
                "ServiceConfigs",
                r#"[{"name":"ledger","serviceType":"ClusterIP","portMappings":[{"servicePort":{"port":80,"targetPort":8080,"protocol":"TCP"}},{"servicePort":{"port":81,"targetPort":8080,"protocol":"TCP"}}]}]"#,
            ),
        ];
        pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        pairs.extend_from_slice(extra);
        let params =
            Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        apply(Operation::InsertK8sApplication, None, &params)
            .expect("a StatefulSet application")
            .spec
    }

    #[test]
    fn the_statefulset_runs_the_template_revision_above_the_partition() {
        let s = render_statefulset(&spec(&[]), "7", 5, 3).unwrap();
        let meta = &s.set.metadata;
        assert_eq!(meta.name.as_deref(), Some("ledger"));
        assert_eq!(meta.namespace.as_deref(), Some("prod"));
        assert_eq!(meta.labels.as_ref().unwrap()[LABEL_REVISION], "7");
        let set = s.set.spec.as_ref().unwrap();
        assert_eq!(set.replicas, Some(5));
        assert_eq!(set.service_name.as_deref(), Some("ledger-headless"));
        assert_eq!(set.pod_management_policy.as_deref(), Some("OrderedReady"));
        let strategy = set.update_strategy.as_ref().unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        assert_eq!(strategy.rolling_update.as_ref().unwrap().partition, Some(3));
        // The selector is the application's only: pods of both revisions match it.
        let selector = set.selector.match_labels.as_ref().unwrap();
        assert_eq!(
            selector,
            &BTreeMap::from([(LABEL_APP.to_owned(), "Ledger".to_owned())])
        );
        let labels = set
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert_eq!(labels[LABEL_REVISION], "7");
        assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
        let pod = set.template.spec.as_ref().unwrap();
        assert_eq!(pod.containers[0].name, "ledger");

        let headless = s.headless.spec.as_ref().unwrap();
        assert_eq!(s.headless.metadata.name.as_deref(), Some("ledger-headless"));
        assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
        assert_eq!(
            s.headless.metadata.labels.as_ref().unwrap()[LABEL_HEADLESS],
            "true"
        );
        assert_eq!(headless.selector.as_ref(), Some(selector));
        // One port per target port and protocol, for the pods' SRV records.
        let ports = headless.ports.as_ref().unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].port, 8080);
        assert_eq!(ports[0].name.as_deref(), Some("tcp-8080"));
    }

    #[test]
    fn render_prints_the_headless_service_and_the_statefulset_instead_of_a_deployment() {
        let rendered = render(&spec(&[]), "2", 4).unwrap();
        let stateful = rendered.stateful.as_ref().expect("a StatefulSet");
        let partition = stateful.set.spec.as_ref().unwrap().update_strategy.as_ref();
        assert_eq!(
            partition.and_then(|u| u.rolling_update.as_ref()?.partition),
            Some(0)
        );
        let objects = rendered.objects();
        assert!(
            matches!(&objects[0], Object::Service(s) if s.metadata.name.as_deref() == Some("ledger-headless"))
        );
        assert!(matches!(&objects[1], Object::StatefulSet(_)));
        assert!(
            matches!(&objects[2], Object::Service(s) if s.metadata.name.as_deref() == Some("ledger"))
        );
        assert!(!objects.iter().any(|o| matches!(o, Object::Deployment(_))));
        let yaml = rendered.to_yaml().unwrap();
        assert!(yaml.contains("kind: StatefulSet"), "{yaml}");
        assert_eq!(parse_yaml(&yaml).unwrap(), objects);
        // A Deployment application renders as before.
        let mut plain = spec(&[]);
        plain.workload = edas_spec::model::Workload::Deployment;
        assert!(render(&plain, "2", 4).unwrap().stateful.is_none());
    }

    #[test]
    fn a_service_named_like_the_headless_service_is_refused_naming_service_configs() {
        let clash = spec(&[(
            "ServiceConfigs",
            r#"[{"name":"ledger-headless","serviceType":"ClusterIP","portMappings":[{"servicePort":{"port":80,"targetPort":8080}}]}]"#,
        )]);
        let e = render(&clash, "1", 1).unwrap_err();
        assert_eq!(e, RenderError::HeadlessService("ledger-headless".into()));
        assert_eq!(e.parameter(), Some("ServiceConfigs"));
        assert!(e.to_string().contains("WorkloadType=StatefulSet"), "{e}");
    }
}
