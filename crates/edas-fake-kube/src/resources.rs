//! The resource types this server serves and the discovery documents that describe them
//! (`/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`), in the legacy (non-aggregated) format
//! that kubectl and kube-rs fall back to.

use serde_json::{Value, json};

/// One served resource type.
#[derive(Debug)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    /// Whether `/status` is a subresource (status is then ignored on the main resource).
    pub status_subresource: bool,
    /// Whether `/scale` is a subresource.
    pub scale_subresource: bool,
    /// Whether `metadata.generation` is tracked (bumped on spec changes).
    pub tracks_generation: bool,
}

impl ResourceType {
    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps` or `pods`: the name the API server uses in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The `kind` of this resource's list (`DeploymentList`).
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Gateway API's group: served only when [`crate::Config::gateway_api`] is on.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// Every resource type the fake knows, in a fixed order (an index into this slice identifies a type).
pub static RESOURCES: &[ResourceType] = &[
    ResourceType {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        short_names: &["ns"],
        namespaced: false,
        status_subresource: true,
        scale_subresource: false,
        tracks_generation: false,
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        short_names: &["po"],
        namespaced: true,
        status_subresource: true,
        scale_subresource: false,
        tracks_generation: false,
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        short_names: &["svc"],
        namespaced: true,
        status_subresource: true,
        scale_subresource: false,
        tracks_generation: false,
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        short_names: &["cm"],
        namespaced: true,
        status_subresource: false,
        scale_subresource: false,
        tracks_generation: false,
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        short_names: &[],
        namespaced: true,
        status_subresource: false,
        scale_subresource: false,
        tracks_generation: false,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        short_names: &["deploy"],
        namespaced: true,
        status_subresource: true,
        scale_subresource: true,
        tracks_generation: true,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        plural: "statefulsets",
        singular: "statefulset",
        short_names: &["sts"],
        namespaced: true,
        status_subresource: true,
        scale_subresource: true,
        tracks_generation: true,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        short_names: &["rs"],
        namespaced: true,
        status_subresource: true,
        scale_subresource: true,
        tracks_generation: true,
    },
    ResourceType {
        group: GATEWAY_GROUP,
        version: "v1",
        kind: "HTTPRoute",
        plural: "httproutes",
        singular: "httproute",
        short_names: &[],
        namespaced: true,
        status_subresource: true,
        scale_subresource: false,
        tracks_generation: true,
    },
    ResourceType {
        group: GATEWAY_GROUP,
        version: "v1",
        kind: "Gateway",
        plural: "gateways",
        singular: "gateway",
        short_names: &["gtw"],
        namespaced: true,
        status_subresource: true,
        scale_subresource: false,
        tracks_generation: true,
    },
    // ResourceQuotas: a test writes `status.hard`/`status.used` with the object (no quota
    // controller here); a precheck reads what they still allow.
    ResourceType {
        group: "",
        version: "v1",
        kind: "ResourceQuota",
        plural: "resourcequotas",
        singular: "resourcequota",
        short_names: &["quota"],
        namespaced: true,
        status_subresource: false,
        scale_subresource: false,
        tracks_generation: false,
    },
    // Nodes exist only as a test creates them (with their `status.allocatable`): edasd reports
    // a cluster's capacity from them. Their status is written with the object (no kubelet here).
    ResourceType {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        short_names: &["no"],
        namespaced: false,
        status_subresource: false,
        scale_subresource: false,
        tracks_generation: false,
    },
    // Ingresses are stored; no ingress controller routes them (its `status.loadBalancer`
    // stays empty, as on a cluster without one).
    ResourceType {
        group: "networking.k8s.io",
        version: "v1",
        kind: "Ingress",
        plural: "ingresses",
        singular: "ingress",
        short_names: &["ing"],
        namespaced: true,
        status_subresource: true,
        scale_subresource: false,
        tracks_generation: true,
    },
    // HorizontalPodAutoscalers are stored; no metrics are read. A test plays the HPA controller
    // through [`crate::FakeCluster::autoscale`] (`POST /_fake/hpa/...`): it scales the target
    // and writes `status.desiredReplicas`, as the real controller does after a metrics read.
    ResourceType {
        group: "autoscaling",
        version: "v2",
        kind: "HorizontalPodAutoscaler",
        plural: "horizontalpodautoscalers",
        singular: "horizontalpodautoscaler",
        short_names: &["hpa"],
        namespaced: true,
        status_subresource: true,
        scale_subresource: false,
        tracks_generation: true,
    },
];

/// Index of a resource type in [`RESOURCES`].
pub type ResourceId = usize;

/// Looks up the resource type by kind (used by the controller simulation).
pub fn by_kind(kind: &str) -> ResourceId {
    RESOURCES.iter().position(|r| r.kind == kind).unwrap_or(0)
}

/// Finds the served type for a group/version/plural, honouring whether Gateway API is enabled.
pub fn find(group: &str, version: &str, plural: &str, gateway_api: bool) -> Option<ResourceId> {
    RESOURCES.iter().position(|r| {
        r.group == group
            && r.version == version
            && r.plural == plural
            && (gateway_api || r.group != GATEWAY_GROUP)
    })
}

/// Whether a group/version is served at all.
pub fn serves_group_version(group: &str, version: &str, gateway_api: bool) -> bool {
    RESOURCES.iter().any(|r| {
        r.group == group && r.version == version && (gateway_api || r.group != GATEWAY_GROUP)
    })
}

/// `GET /api`.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    })
}

/// `GET /apis`.
pub fn group_list(gateway_api: bool) -> Value {
    let mut groups = vec![
        group("apps", "v1"),
        group("autoscaling", "v2"),
        group("networking.k8s.io", "v1"),
    ];
    if gateway_api {
        groups.push(group(GATEWAY_GROUP, "v1"));
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn group(name: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{name}/{version}"), "version": version});
    json!({"name": name, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis/{group}`.
pub fn group_document(name: &str, gateway_api: bool) -> Option<Value> {
    let version = RESOURCES
        .iter()
        .find(|r| r.group == name && (gateway_api || r.group != GATEWAY_GROUP))?
        .version;
    if name.is_empty() {
        return None;
    }
    let mut document = group(name, version);
    document["kind"] = json!("APIGroup");
    document["apiVersion"] = json!("v1");
    Some(document)
}

/// `GET /api/v1` or `GET /apis/{group}/{version}`: the APIResourceList.
pub fn resource_list(group: &str, version: &str, gateway_api: bool) -> Option<Value> {
    if !serves_group_version(group, version, gateway_api) {
        return None;
    }
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if matches!(
            r.kind,
            "Deployment" | "ReplicaSet" | "StatefulSet" | "Pod" | "Service"
        ) {
            entry["categories"] = json!(["all"]);
        }
        resources.push(entry);
        if r.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.scale_subresource {
            resources.push(json!({
                "name": format!("{}/scale", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

/// `GET /version`.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-edas-fake-kube",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `GET /openapi/v3`: the index of per-group-version documents.
pub fn openapi_v3_root(gateway_api: bool) -> Value {
    let mut paths = serde_json::Map::new();
    let mut seen = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| gateway_api || r.group != GATEWAY_GROUP)
    {
        let key = if r.group.is_empty() {
            format!("api/{}", r.version)
        } else {
            format!("apis/{}/{}", r.group, r.version)
        };
        if !seen.contains(&key) {
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash=edas-fake-kube")}),
            );
            seen.push(key);
        }
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/{api/v1 | apis/group/version}`: a schema-less document whose PATCH operations
/// declare the `fieldValidation` parameter. That is what kubectl checks before deferring
/// validation to the server; without it, kubectl refuses to apply. No component schemas are
/// published, so kubectl computes strategic merge patches from its compiled-in types.
pub fn openapi_v3_group_version(group: &str, version: &str, gateway_api: bool) -> Option<Value> {
    if !serves_group_version(group, version, gateway_api) {
        return None;
    }
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let parameters: Vec<Value> = ["fieldValidation", "fieldManager", "force", "dryRun"]
        .iter()
        .map(|name| json!({"name": name, "in": "query", "schema": {"type": "string"}}))
        .collect();
    let mut paths = serde_json::Map::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let path = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        paths.insert(
            path,
            json!({"patch": {
                "operationId": format!("patch{}", r.kind),
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
                "parameters": parameters,
                "responses": {"200": {"description": "OK"}},
            }}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (edas-fake-kube)", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
