//! Ingress rules ([`edas_runtime::Runtime::set_ingress`]): each rule is a `networking.k8s.io/v1`
//! Ingress (rendered by edas-render with the cluster's `ingress_class`), server-side applied by
//! [`crate::FIELD_MANAGER`] after its namespace exists. Only an Ingress labelled with the rule's
//! name ([`edas_render::LABEL_INGRESS`]) is ever replaced or deleted: a user's own Ingress of
//! the same name is refused, not taken over.
//!
//! With [`crate::Options::ingress_via_gateway`] (a cluster configured with a `gateway` and
//! `ingress = "gateway"`), a rule is instead one Gateway API HTTPRoute per host, `<name>-<i>`,
//! attached to that Gateway: hostnames, a `PathPrefix` (`Prefix`, `ImplementationSpecific`) or
//! `Exact` match per path, the Service and port as backend. TLS is the Gateway listener's there,
//! so `secretName` is refused.

use std::collections::BTreeMap;

use edas_runtime::{IngressSpec, PathType, RuntimeError};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::{Value, json};

use crate::routing::http_route_resource;
use crate::{GatewayRef, KubeRuntime, label};

/// The HTTPRoutes of rule `name` in `namespace`: one per host, by name.
pub(crate) fn http_routes(
    name: &str,
    namespace: &str,
    spec: &IngressSpec,
    gateway: &GatewayRef,
) -> Vec<DynamicObject> {
    let mut labels = spec.labels.clone();
    labels.insert(edas_render::LABEL_INGRESS.into(), name.into());
    labels.insert("app.kubernetes.io/managed-by".into(), "edasd".into());
    spec.rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let rules: Vec<Value> = rule
                .paths
                .iter()
                .map(|p| {
                    let kind = match p.path_type {
                        PathType::Exact => "Exact",
                        PathType::Prefix | PathType::ImplementationSpecific => "PathPrefix",
                    };
                    json!({
                        "matches": [{"path": {"type": kind, "value": p.path}}],
                        "backendRefs": [{"name": p.backend.service_name,
                            "port": p.backend.service_port}],
                    })
                })
                .collect();
            let mut spec_json = json!({
                "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                    "namespace": gateway.namespace, "name": gateway.name}],
                "rules": rules,
            });
            if !rule.host.is_empty() {
                spec_json["hostnames"] = json!([rule.host]);
            }
            let mut route = DynamicObject::new(&format!("{name}-{i}"), &http_route_resource())
                .within(namespace)
                .data(json!({ "spec": spec_json }));
            route.metadata.labels = Some(labels.clone());
            route.metadata.annotations =
                (!spec.annotations.is_empty()).then(|| spec.annotations.clone());
            route
        })
        .collect()
}

impl KubeRuntime {
    /// What [`edas_runtime::Runtime::check_ingress`] refuses: TLS through a Gateway (its
    /// listener holds the certificate).
    pub(crate) fn check_ingress_rule(&self, ingress: &IngressSpec) -> Result<(), RuntimeError> {
        if self.inner.options.ingress_via_gateway
            && let Some(i) = ingress.rules.iter().position(|r| r.secret_name.is_some())
        {
            return Err(RuntimeError::Unsupported(format!(
                "IngressConf.rules[{i}].secretName: cluster `{}` routes ingress rules through its Gateway, whose listener holds the TLS certificate; leave secretName out",
                self.inner.options.cluster_id
            )));
        }
        Ok(())
    }

    /// Applies rule `name` of `namespace` for `ingress`, or deletes it (`None`).
    pub(crate) async fn put_ingress(
        &self,
        namespace: &str,
        name: &str,
        ingress: Option<&IngressSpec>,
    ) -> Result<(), RuntimeError> {
        if self.inner.options.ingress_via_gateway {
            return self.put_ingress_routes(namespace, name, ingress).await;
        }
        let api: Api<Ingress> = Api::namespaced(self.inner.client.clone(), namespace);
        let what = format!("reading Ingress {namespace}/{name}");
        let existing = self.call_tolerating(&what, 404, api.get(name)).await?;
        let ours = |i: &Ingress| label(i, edas_render::LABEL_INGRESS) == Some(name);
        if let Some(found) = &existing
            && !ours(found)
        {
            return Err(RuntimeError::Unsupported(format!(
                "cluster `{}`: namespace `{namespace}` has an Ingress `{name}` that edasd did not create; choose another Name",
                self.inner.options.cluster_id
            )));
        }
        let Some(ingress) = ingress else {
            return match existing {
                Some(_) => self.delete(&api, name).await,
                None => Ok(()),
            };
        };
        self.ensure_namespace(namespace).await?;
        let object = edas_render::render_ingress(
            name,
            namespace,
            ingress,
            self.inner.options.ingress_class.as_deref(),
        );
        self.apply(&api, name, &object).await
    }

    /// The Gateway form of [`KubeRuntime::put_ingress`]: the rule's HTTPRoutes applied, and
    /// those of it no longer wanted (fewer hosts) deleted.
    async fn put_ingress_routes(
        &self,
        namespace: &str,
        name: &str,
        ingress: Option<&IngressSpec>,
    ) -> Result<(), RuntimeError> {
        let cluster = &self.inner.options.cluster_id;
        let Some(gateway) = self.inner.options.gateway.clone() else {
            return Err(RuntimeError::Unsupported(format!(
                "cluster `{cluster}` routes ingress rules through a Gateway, and none is configured"
            )));
        };
        let ar = http_route_resource();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.inner.client.clone(), namespace, &ar);
        let selector = format!("{}={name}", edas_render::LABEL_INGRESS);
        let what = format!("listing the HTTPRoutes of ingress rule {namespace}/{name}");
        let existing: BTreeMap<String, ()> = self
            .call(
                &what,
                api.list_metadata(&ListParams::default().labels(&selector)),
            )
            .await?
            .items
            .into_iter()
            .filter_map(|o| o.metadata.name.map(|n| (n, ())))
            .collect();
        let wanted = match ingress {
            Some(spec) => {
                self.ensure_namespace(namespace).await?;
                http_routes(name, namespace, spec, &gateway)
            }
            None => Vec::new(),
        };
        for route in &wanted {
            let route_name = route.metadata.name.clone().unwrap_or_default();
            if !existing.contains_key(&route_name) {
                let what = format!("reading HTTPRoute {namespace}/{route_name}");
                if self
                    .call_tolerating(&what, 404, api.get(&route_name))
                    .await?
                    .is_some()
                {
                    return Err(RuntimeError::Unsupported(format!(
                        "cluster `{cluster}`: namespace `{namespace}` has an HTTPRoute `{route_name}` that edasd did not create for this rule; choose another Name"
                    )));
                }
            }
            self.apply(&api, &route_name, route).await?;
        }
        for stale in existing.keys() {
            if !wanted
                .iter()
                .any(|r| r.metadata.name.as_deref() == Some(stale.as_str()))
            {
                self.delete(&api, stale).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edas_runtime::{IngressBackend, IngressHost, IngressPath};

    #[test]
    fn a_rule_is_an_http_route_per_host_attached_to_the_gateway() {
        let path = |path: &str, path_type, port| IngressPath {
            path: path.into(),
            path_type,
            backend: IngressBackend {
                service_name: "web".into(),
                service_port: port,
                ..IngressBackend::default()
            },
        };
        let spec = IngressSpec {
            rules: vec![
                IngressHost {
                    host: "*.example.com".into(),
                    secret_name: None,
                    paths: vec![
                        path("/", PathType::Prefix, 80),
                        path("/healthz", PathType::Exact, 8080),
                    ],
                },
                IngressHost {
                    host: String::new(),
                    secret_name: None,
                    paths: vec![path("/x", PathType::ImplementationSpecific, 80)],
                },
            ],
            ..IngressSpec::default()
        };
        let gateway = GatewayRef {
            namespace: "infra".into(),
            name: "public".into(),
        };
        let routes = http_routes("front", "prod", &spec, &gateway);
        let names: Vec<_> = routes
            .iter()
            .map(|r| r.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["front-0", "front-1"]);
        let first = &routes[0].data["spec"];
        assert_eq!(first["hostnames"], json!(["*.example.com"]));
        assert_eq!(
            first["parentRefs"][0],
            json!({"group": "gateway.networking.k8s.io", "kind": "Gateway",
                "namespace": "infra", "name": "public"})
        );
        assert_eq!(
            first["rules"][1],
            json!({"matches": [{"path": {"type": "Exact", "value": "/healthz"}}],
                "backendRefs": [{"name": "web", "port": 8080}]})
        );
        assert!(
            routes[1].data["spec"].get("hostnames").is_none(),
            "any host"
        );
        assert_eq!(
            routes[1].data["spec"]["rules"][0]["matches"][0]["path"]["type"],
            "PathPrefix"
        );
        assert_eq!(
            routes[0].metadata.labels.as_ref().unwrap()[edas_render::LABEL_INGRESS],
            "front"
        );
    }
}
