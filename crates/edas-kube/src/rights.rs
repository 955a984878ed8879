//! The Kubernetes rights edasd needs on a cluster, and the start-up check of them
//! (SelfSubjectAccessReview). `deploy/rbac.yaml` grants exactly [`RIGHTS`]; a test keeps the
//! two in step.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};

/// One rule: these verbs on this resource of this API group (`""`: core), in every namespace
/// (applications may use any namespace, which edasd creates when missing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The API group.
    pub group: &'static str,
    /// The resource (plural).
    pub resource: &'static str,
    /// The verbs.
    pub verbs: &'static [&'static str],
    /// Needed only with a Gateway configured (gray splits through Gateway API).
    pub gateway_only: bool,
}

const fn rule(group: &'static str, resource: &'static str, verbs: &'static [&'static str]) -> Rule {
    Rule {
        group,
        resource,
        verbs,
        gateway_only: false,
    }
}

/// Every right edasd uses, and why:
/// - pods: the watch cache (list, watch) and replacing failed instances (delete);
/// - Deployments: the watch cache, server-side apply of revisions (create, patch), scaling a
///   revision to 0 (delete);
/// - StatefulSets (`WorkloadType=StatefulSet`): read before each step (get), applied and
///   scaled (create, patch), removed (delete), the sweep on Delete and the revisions (list),
///   drift correction (watch);
/// - Services, ConfigMaps, Secrets: server-side apply (create, patch), removal (delete), the
///   application's objects by label (list: routing, the sweep on Delete);
/// - namespaces: an application's namespace is created when missing (get, create) and
///   ListK8sNamespaces lists them (list, watch: `cluster::watch_inventory`);
/// - nodes: the cluster's capacity (list, watch: `cluster::watch_inventory`); a precheck's
///   room (list, with pods);
/// - ResourceQuotas: what a precheck's namespace still allows (list);
/// - HorizontalPodAutoscalers: an application's enabled scaling rule (apply: create, patch;
///   its desired count and target: get; removal: delete; the sweep on Delete: list);
/// - Ingresses: ingress rules (apply: create, patch; whose it is: get; removal: delete);
/// - HTTPRoutes and Gateways: gray splits (apply, list, delete; the route's `Accepted` status
///   and the Gateway's existence: get);
/// - SelfSubjectAccessReviews: this check (create).
pub const RIGHTS: &[Rule] = &[
    rule("", "pods", &["list", "watch", "delete"]),
    rule(
        "apps",
        "deployments",
        &["list", "watch", "create", "patch", "delete"],
    ),
    rule(
        "apps",
        "statefulsets",
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    rule("", "services", &["list", "create", "patch", "delete"]),
    rule("", "configmaps", &["list", "create", "patch", "delete"]),
    rule("", "secrets", &["list", "create", "patch", "delete"]),
    rule("", "namespaces", &["get", "list", "watch", "create"]),
    rule("", "nodes", &["list", "watch"]),
    rule("", "resourcequotas", &["list"]),
    rule(
        "autoscaling",
        "horizontalpodautoscalers",
        &["get", "list", "create", "patch", "delete"],
    ),
    rule(
        "networking.k8s.io",
        "ingresses",
        &["get", "create", "patch", "delete"],
    ),
    Rule {
        group: "gateway.networking.k8s.io",
        resource: "httproutes",
        verbs: &["get", "list", "create", "patch", "delete"],
        gateway_only: true,
    },
    Rule {
        group: "gateway.networking.k8s.io",
        resource: "gateways",
        verbs: &["get"],
        gateway_only: true,
    },
    rule(
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        &["create"],
    ),
];

/// `create configmaps`, `patch deployments.apps`: how a right is named in messages.
pub fn right_name(verb: &str, group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("{verb} {resource}")
    } else {
        format!("{verb} {resource}.{group}")
    }
}

/// The rights in [`RIGHTS`] (those of Gateway API only `with_gateway`) that the cluster does
/// not grant this client, by name; an error when the cluster could not be asked.
pub async fn missing(client: &Client, with_gateway: bool) -> Result<Vec<String>, kube::Error> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut out = Vec::new();
    for rule in RIGHTS.iter().filter(|r| with_gateway || !r.gateway_only) {
        for verb in rule.verbs {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some((*verb).to_owned()),
                        group: Some(rule.group.to_owned()),
                        resource: Some(rule.resource.to_owned()),
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            };
            let answer = api.create(&PostParams::default(), &review).await?;
            if !answer.status.is_some_and(|s| s.allowed) {
                out.push(right_name(verb, rule.group, rule.resource));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `deploy/rbac.yaml`'s ClusterRole rules as (group, resource, verbs), read line by line
    /// (each rule is `- apiGroups: ["g"]` / `resources: ["r"]` / `verbs: [...]`).
    fn manifest_rules() -> Vec<(String, String, Vec<String>)> {
        let text = include_str!("../../../deploy/rbac.yaml");
        let list = |line: &str| -> Vec<String> {
            let inner = line
                .split_once('[')
                .and_then(|(_, rest)| rest.rsplit_once(']'))
                .map(|(inner, _)| inner)
                .unwrap_or_else(|| panic!("not a flow list: {line}"));
            inner
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_owned())
                .filter(|s| !s.is_empty() || inner.trim() == "\"\"")
                .collect()
        };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if let Some(rest) = line.strip_prefix("- apiGroups:") {
                let groups = list(rest);
                let resources = list(lines[i + 1].strip_prefix("resources:").unwrap());
                let verbs = list(lines[i + 2].strip_prefix("verbs:").unwrap());
                assert_eq!((groups.len(), resources.len()), (1, 1), "{line}");
                out.push((groups[0].clone(), resources[0].clone(), verbs));
            }
        }
        out
    }

    #[test]
    fn the_shipped_manifest_grants_exactly_the_rights() {
        let wanted: Vec<(String, String, Vec<String>)> = RIGHTS
            .iter()
            .map(|r| {
                (
                    r.group.to_owned(),
                    r.resource.to_owned(),
                    r.verbs.iter().map(|v| (*v).to_owned()).collect(),
                )
            })
            .collect();
        assert_eq!(manifest_rules(), wanted);
        assert_eq!(
            right_name("patch", "apps", "deployments"),
            "patch deployments.apps"
        );
        assert_eq!(right_name("create", "", "configmaps"), "create configmaps");
    }
}
