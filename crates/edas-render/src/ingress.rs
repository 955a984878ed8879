//! An ingress rule as a `networking.k8s.io/v1` Ingress: one Kubernetes rule per host, one path
//! per path with its `pathType`, the backend by Service name and port number, a TLS entry per
//! host that names a Secret. Ingress rather than a Gateway API HTTPRoute: every cluster serves
//! `networking.k8s.io/v1`, while Gateway API's CRDs are installed on some only (edasd already
//! needs them for gray splits, where nothing else can carry a weighted split).
//!
//! The Ingress is labelled [`LABEL_INGRESS`] with its rule's name and managed-by `edasd`, so
//! edasd deletes only Ingresses it applied, never a user's own of the same name.

use std::collections::BTreeMap;

use edas_spec::ingress::IngressSpec;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec as K8sIngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Label: the name of the ingress rule an Ingress renders (only Ingresses carrying it are
/// ever changed or deleted by edasd).
pub const LABEL_INGRESS: &str = "edas.oam.ingress";

/// Ingress rule `name` of `namespace` as an Ingress; `class` is the cluster's
/// `ingressClassName` (none: the cluster's default class).
pub fn render_ingress(
    name: &str,
    namespace: &str,
    spec: &IngressSpec,
    class: Option<&str>,
) -> Ingress {
    let mut labels = spec.labels.clone();
    labels.insert(LABEL_INGRESS.into(), name.into());
    labels.insert("app.kubernetes.io/managed-by".into(), "edasd".into());
    let rules = spec
        .rules
        .iter()
        .map(|rule| IngressRule {
            host: (!rule.host.is_empty()).then(|| rule.host.clone()),
            http: Some(HTTPIngressRuleValue {
                paths: rule
                    .paths
                    .iter()
                    .map(|p| HTTPIngressPath {
                        path: Some(p.path.clone()),
                        path_type: p.path_type.as_str().into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: p.backend.service_name.clone(),
                                port: Some(ServiceBackendPort {
                                    number: Some(i32::from(p.backend.service_port)),
                                    name: None,
                                }),
                            }),
                            resource: None,
                        },
                    })
                    .collect(),
            }),
        })
        .collect();
    // One TLS entry per Secret, with every host it covers.
    let mut tls: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for rule in &spec.rules {
        if let Some(secret) = rule.secret_name.as_deref() {
            let hosts = tls.entry(secret).or_default();
            if !rule.host.is_empty() && !hosts.contains(&rule.host) {
                hosts.push(rule.host.clone());
            }
        }
    }
    Ingress {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(labels),
            annotations: (!spec.annotations.is_empty()).then(|| spec.annotations.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(K8sIngressSpec {
            ingress_class_name: class.map(str::to_owned),
            rules: Some(rules),
            tls: (!tls.is_empty()).then(|| {
                tls.into_iter()
                    .map(|(secret, hosts)| IngressTLS {
                        hosts: (!hosts.is_empty()).then_some(hosts),
                        secret_name: Some(secret.into()),
                    })
                    .collect()
            }),
            ..K8sIngressSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edas_spec::ingress::{IngressBackend, IngressHost, IngressPath, PathType};

    fn path(path: &str, path_type: PathType, service: &str, port: u16) -> IngressPath {
        IngressPath {
            path: path.into(),
            path_type,
            backend: IngressBackend {
                service_name: service.into(),
                service_port: port,
                app_id: "app-1".into(),
                app_name: "shop".into(),
            },
        }
    }

    fn shop() -> IngressSpec {
        IngressSpec {
            rules: vec![
                IngressHost {
                    host: "shop.example.com".into(),
                    secret_name: Some("shop-tls".into()),
                    paths: vec![
                        path("/", PathType::Prefix, "web", 80),
                        path("/api", PathType::Prefix, "api", 8080),
                    ],
                },
                IngressHost {
                    host: String::new(),
                    secret_name: None,
                    paths: vec![path("/healthz", PathType::Exact, "web", 80)],
                },
            ],
            annotations: BTreeMap::from([(
                "nginx.ingress.kubernetes.io/proxy-body-size".into(),
                "8m".into(),
            )]),
            labels: BTreeMap::from([("team".into(), "shop".into())]),
        }
    }

    #[test]
    fn an_ingress_renders_hosts_paths_backends_and_tls() {
        let ingress = render_ingress("shop", "prod", &shop(), Some("nginx"));
        let yaml = serde_saphyr::to_string(&ingress).unwrap();
        insta::assert_snapshot!(yaml);
        let value = serde_json::to_value(&ingress).unwrap();
        assert_eq!(value["spec"]["ingressClassName"], "nginx");
        assert_eq!(value["metadata"]["labels"][LABEL_INGRESS], "shop");
        assert_eq!(value["metadata"]["labels"]["team"], "shop");
        let rules = &value["spec"]["rules"];
        assert_eq!(rules[0]["host"], "shop.example.com");
        assert_eq!(rules[0]["http"]["paths"][1]["path"], "/api");
        assert_eq!(rules[0]["http"]["paths"][1]["pathType"], "Prefix");
        assert_eq!(
            rules[0]["http"]["paths"][1]["backend"]["service"],
            serde_json::json!({"name": "api", "port": {"number": 8080}})
        );
        assert!(rules[1].get("host").is_none(), "any host");
        assert_eq!(rules[1]["http"]["paths"][0]["pathType"], "Exact");
        assert_eq!(
            value["spec"]["tls"],
            serde_json::json!([{"hosts": ["shop.example.com"], "secretName": "shop-tls"}])
        );
        // The YAML parses back into the same object.
        let back: Ingress = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, ingress);
    }

    #[test]
    fn without_a_class_or_tls_neither_is_rendered() {
        let mut spec = shop();
        spec.rules[0].secret_name = None;
        let value = serde_json::to_value(render_ingress("shop", "prod", &spec, None)).unwrap();
        assert!(value["spec"].get("ingressClassName").is_none());
        assert!(value["spec"].get("tls").is_none());
    }
}
