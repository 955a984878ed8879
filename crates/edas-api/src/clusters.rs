//! GetK8sCluster, ListCluster, ImportK8sCluster, ListK8sNamespaces and ListBuildPack: the
//! clusters registered in the store (`local` and those of the configuration file).

use std::collections::BTreeSet;

use edas_spec::Params;
use edas_store::{ApplicationFilter, Cluster, PageRequest, StoreError};
use serde_json::{Map, Value, json};

use crate::Api;
use crate::caller::{Caller, internal};
use crate::error::{ApiError, codes};
use crate::operations::ram;
use crate::params::{invalid, only, page_number, required};
use crate::policy::cluster_arn;
use crate::render::CLUSTER_TYPE_KUBERNETES;

/// `SubClusterType` of every cluster: edasd deploys to plain Kubernetes-like clusters.
const SUB_CLUSTER_TYPE: &str = "ManagedKubernetes";

/// The Kubernetes namespace every cluster has.
const DEFAULT_NAMESPACE: &str = "default";

fn arn(api: &Api, cluster_id: &str) -> String {
    cluster_arn(
        &api.config().region_id,
        &api.config().account_id,
        cluster_id,
    )
}

/// The clusters the caller may read, by id.
async fn readable_clusters(api: &Api, caller: &Caller) -> Result<Vec<Cluster>, ApiError> {
    let mut clusters = api
        .store()
        .list_clusters()
        .await
        .map_err(|e| internal("listing clusters", e))?;
    clusters.retain(|c| caller.may(ram::READ_CLUSTER, &arn(api, &c.id)));
    clusters.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(clusters)
}

/// A number of the status document the cluster's runtime records (see edasd's
/// `kube_clusters`): `nodes`, `cpu_millis`, `memory_mib`, from the cluster's Nodes.
fn status_number(cluster: &Cluster, key: &str) -> u64 {
    cluster
        .config
        .get("status")
        .and_then(|s| s.get(key))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

fn status_text<'a>(cluster: &'a Cluster, key: &str) -> Option<&'a str> {
    cluster
        .config
        .get("status")
        .and_then(|s| s.get(key))
        .and_then(Value::as_str)
}

/// CPU cores the cluster offers: this host's for the local runtime, the sum of the Nodes'
/// allocatable CPU for a Kubernetes cluster (0 until its Nodes were listed).
fn cpu_cores(cluster: &Cluster) -> u64 {
    if cluster.cluster_type == "local" {
        std::thread::available_parallelism().map_or(0, |n| n.get() as u64)
    } else {
        status_number(cluster, "cpu_millis") / 1000
    }
}

/// Memory (MiB) the cluster offers: the sum of the Nodes' allocatable memory.
fn memory_mib(cluster: &Cluster) -> u64 {
    if cluster.cluster_type == "local" {
        0
    } else {
        status_number(cluster, "memory_mib")
    }
}

fn node_count(cluster: &Cluster) -> u64 {
    if cluster.cluster_type == "local" {
        1
    } else {
        status_number(cluster, "nodes")
    }
}

/// "API server https://…": the cluster's address, as messages name it.
fn address(cluster: &Cluster) -> String {
    status_text(cluster, "api_server")
        .map(|a| format!("API server {a}"))
        .unwrap_or_else(|| "API server address unknown".to_owned())
}

fn description(cluster: &Cluster) -> String {
    let missing: Vec<&str> = cluster
        .config
        .get("status")
        .and_then(|s| s.get("missing_rights"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let text = described(cluster);
    if missing.is_empty() {
        return text;
    }
    format!(
        "{text}; edasd lacks the rights: {} (deploy/rbac.yaml lists every right it needs)",
        missing.join(", ")
    )
}

fn described(cluster: &Cluster) -> String {
    match cluster.cluster_type.as_str() {
        "local" => "processes on the edasd host (local runtime)".to_owned(),
        other => {
            let at = address(cluster);
            match (
                status_text(cluster, "version"),
                status_text(cluster, "error"),
            ) {
                (_, Some(error)) if import_status(cluster).0 == 2 => {
                    format!("{other} cluster, {at}, unreachable: {error}")
                }
                (Some(version), _) => format!("{other} cluster, {at}, Kubernetes {version}"),
                (None, _) => format!("{other} cluster, {at}, not reached yet"),
            }
        }
    }
}

/// EDAS's import status (`ClusterImportStatus`: 1 imported, 2 import failed, 3 importing) and
/// cluster status (`ClusterStatus`: 1 running, 3 offline) of a cluster. `local` is always
/// imported and running; a Kubernetes cluster's runtime records them in the registry entry
/// (`config.status`) as its API answers or stops answering.
fn import_status(cluster: &Cluster) -> (i64, i64) {
    if cluster.cluster_type == "local" {
        return (1, 1);
    }
    let status = cluster.config.get("status");
    let get = |key: &str| status.and_then(|s| s.get(key)).and_then(Value::as_i64);
    (
        get("import_status").unwrap_or(3),
        get("cluster_status").unwrap_or(3),
    )
}

/// `CsClusterStatus`: `running` once the cluster answered, `initial` while edasd has not reached
/// it yet, `failed` when it cannot.
fn cs_status(cluster: &Cluster) -> &'static str {
    match import_status(cluster).0 {
        1 => "running",
        2 => "failed",
        _ => "initial",
    }
}

fn k8s_cluster_item(cluster: &Cluster) -> Value {
    let (import, status) = import_status(cluster);
    json!({
        "ClusterId": cluster.id,
        "ClusterImportStatus": import,
        "ClusterName": cluster.name,
        "ClusterStatus": status,
        "ClusterType": CLUSTER_TYPE_KUBERNETES,
        "Cpu": cpu_cores(cluster),
        "CsClusterId": cluster.id,
        "CsClusterStatus": cs_status(cluster),
        "Description": description(cluster),
        "Mem": memory_mib(cluster),
        "NetworkMode": 2,
        "NodeNum": node_count(cluster),
        "RegionId": cluster.region_id,
        "SubClusterType": SUB_CLUSTER_TYPE,
        "SubNetCidr": "",
        "VpcId": "",
        "VswitchId": "",
    })
}

pub(crate) async fn get_k8s_cluster(
    api: &Api,
    caller: &Caller,
    params: &Params,
) -> Result<Map<String, Value>, ApiError> {
    only(
        params,
        "GetK8sCluster",
        &[
            "ClusterType",
            "CurrentPage",
            "PageSize",
            "RegionTag",
            "SubClusterType",
        ],
    )?;
    let region = required(params, "RegionTag")?;
    if region != api.config().region_id {
        return Err(invalid(
            "RegionTag",
            format!(
                "this server serves region `{}`, not `{region}`",
                api.config().region_id
            ),
        ));
    }
    let cluster_type = match params.get("ClusterType").filter(|v| !v.is_empty()) {
        None => None,
        Some(raw) => match edas_spec::parse_int(raw) {
            Some(t @ (5 | 7)) => Some(t),
            _ => {
                return Err(invalid(
                    "ClusterType",
                    format!(
                        "`{raw}` is not a Kubernetes cluster type: use 5 (ACK) or 7 (self-managed)"
                    ),
                ));
            }
        },
    };
    let sub_type = params.get("SubClusterType").filter(|v| !v.is_empty());
    if let Some(sub) = sub_type
        && sub != "Ask"
        && sub != "ManagedKubernetes"
    {
        return Err(invalid(
            "SubClusterType",
            format!("`{sub}` is not a cluster subtype: use Ask or ManagedKubernetes"),
        ));
    }
    let current_page = page_number(params, "CurrentPage", i64::from(u32::MAX))?.unwrap_or(1);
    let page_size = page_number(params, "PageSize", 1000)?.unwrap_or(1000);
    let matching: Vec<Value> = readable_clusters(api, caller)
        .await?
        .iter()
        .filter(|_| cluster_type.is_none_or(|t| i64::from(CLUSTER_TYPE_KUBERNETES) == t))
        .filter(|_| sub_type.is_none_or(|s| s == SUB_CLUSTER_TYPE))
        .map(k8s_cluster_item)
        .collect();
    let total = matching.len();
    let items: Vec<Value> = matching
        .into_iter()
        .skip((current_page as usize - 1).saturating_mul(page_size as usize))
        .take(page_size as usize)
        .collect();
    let mut out = Map::new();
    out.insert(
        "ClusterPage".into(),
        json!({
            "ClusterList": { "Cluster": items },
            "CurrentPage": current_page,
            "PageSize": page_size,
            "TotalSize": total,
        }),
    );
    Ok(out)
}

pub(crate) async fn list_cluster(
    api: &Api,
    caller: &Caller,
    params: &Params,
) -> Result<Map<String, Value>, ApiError> {
    only(
        params,
        "ListCluster",
        &["LogicalRegionId", "ResourceGroupId"],
    )?;
    if let Some(ns) = params.get("LogicalRegionId").filter(|v| !v.is_empty())
        && !api.config().knows_namespace(ns)
    {
        return Err(invalid(
            "LogicalRegionId",
            format!(
                "`{ns}` is not an EDAS namespace of this server; namespaces: {}",
                api.config().all_namespaces().join(", ")
            ),
        ));
    }
    // Clusters serve every namespace and belong to no resource group: a resource-group filter
    // matches none of them.
    let by_group = params.get("ResourceGroupId").is_some_and(|v| !v.is_empty());
    let items: Vec<Value> = readable_clusters(api, caller)
        .await?
        .iter()
        .filter(|_| !by_group)
        .map(|c| {
            json!({
                "ClusterId": c.id,
                "ClusterImportStatus": import_status(c).0,
                "ClusterName": c.name,
                "ClusterStatus": import_status(c).1,
                "ClusterType": CLUSTER_TYPE_KUBERNETES,
                "Cpu": cpu_cores(c),
                "CpuUsed": 0,
                "CreateTime": c.created_at.as_millisecond(),
                "CsClusterId": c.id,
                "Description": description(c),
                "IaasProvider": if c.cluster_type == "local" { "local" } else { "kubernetes" },
                "Mem": memory_mib(c),
                "MemUsed": 0,
                "NetworkMode": 2,
                "NodeNum": node_count(c),
                "OversoldFactor": 1,
                "RegionId": c.region_id,
                "ResourceGroupId": "",
                "UpdateTime": c.updated_at.as_millisecond(),
                "VpcId": "",
            })
        })
        .collect();
    let mut out = Map::new();
    out.insert("ClusterList".into(), json!({ "Cluster": items }));
    Ok(out)
}

/// ImportK8sCluster: edasd imports clusters from its configuration file (`[[clusters]]`), so
/// importing a configured cluster is already done (or in progress: GetK8sCluster's
/// `ClusterImportStatus` says which) and answers its id as `Data`; any other id is refused,
/// saying where clusters come from.
pub(crate) async fn import_k8s_cluster(
    api: &Api,
    caller: &Caller,
    params: &Params,
) -> Result<Map<String, Value>, ApiError> {
    only(
        params,
        "ImportK8sCluster",
        &["ClusterId", "EnableAsm", "Mode", "NamespaceId"],
    )?;
    let id = required(params, "ClusterId")?;
    if let Some(v) = params.get("EnableAsm").filter(|v| !v.is_empty()) {
        match edas_spec::parse_bool(v) {
            Some(false) => {}
            Some(true) => {
                return Err(invalid(
                    "EnableAsm",
                    "Alibaba Cloud Service Mesh is not part of this server; leave EnableAsm out or false",
                ));
            }
            None => {
                return Err(invalid(
                    "EnableAsm",
                    format!("`{v}` is not a boolean: use true or false"),
                ));
            }
        }
    }
    if let Some(v) = params.get("Mode").filter(|v| !v.is_empty())
        && edas_spec::parse_int(v).is_none()
    {
        return Err(invalid("Mode", format!("`{v}` is not an integer")));
    }
    if let Some(ns) = params.get("NamespaceId").filter(|v| !v.is_empty())
        && !api.config().knows_namespace(ns)
    {
        return Err(invalid(
            "NamespaceId",
            format!(
                "`{ns}` is not an EDAS namespace of this server; namespaces: {}",
                api.config().all_namespaces().join(", ")
            ),
        ));
    }
    let cluster = match api.store().get_cluster(id).await {
        Ok(cluster) => cluster,
        Err(StoreError::NotFound { .. }) => {
            return Err(invalid(
                "ClusterId",
                format!(
                    "edasd imports clusters from its configuration file: add a [[clusters]] entry with id = \"{id}\" and its kubeconfig, then restart edasd"
                ),
            ));
        }
        Err(e) => return Err(internal("reading the cluster", e)),
    };
    caller.authorize(ram::READ_CLUSTER, &arn(api, &cluster.id))?;
    if import_status(&cluster).0 == 2 {
        return Err(ApiError::new(
            codes::CLUSTER_UNAVAILABLE,
            format!(
                "cluster `{}` ({}) cannot be imported: it does not answer: {}",
                cluster.id,
                address(&cluster),
                status_text(&cluster, "error").unwrap_or("no answer")
            ),
        ));
    }
    let mut out = Map::new();
    out.insert("Data".into(), Value::String(cluster.id));
    Ok(out)
}

/// The Kubernetes namespaces of a cluster: those its API lists (watched by its runtime and
/// recorded in the registry), else (local, or not listed yet) `default` and those its live
/// applications use.
pub(crate) async fn namespaces_of(api: &Api, cluster: &Cluster) -> Result<Vec<String>, ApiError> {
    if let Some(listed) = cluster
        .config
        .get("status")
        .and_then(|s| s.get("namespaces"))
        .and_then(Value::as_array)
    {
        return Ok(listed
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect());
    }
    let cluster_id = &cluster.id;
    let mut names: BTreeSet<String> = BTreeSet::from([DEFAULT_NAMESPACE.to_owned()]);
    let filter = ApplicationFilter {
        cluster_id: Some(cluster_id.to_owned()),
        ..Default::default()
    };
    let mut number = 1;
    loop {
        let page = api
            .store()
            .list_applications(&filter, PageRequest::new(number, PageRequest::MAX_SIZE))
            .await
            .map_err(|e| internal("listing applications", e))?;
        let done = page.items.len() < PageRequest::MAX_SIZE as usize;
        names.extend(page.items.into_iter().map(|a| a.k8s_namespace));
        if done {
            break;
        }
        number += 1;
    }
    Ok(names.into_iter().collect())
}

/// The cluster named by `ClusterId`, or `InvalidParameter` listing the clusters there are.
pub(crate) async fn existing_cluster(api: &Api, cluster_id: &str) -> Result<Cluster, ApiError> {
    match api.store().get_cluster(cluster_id).await {
        Ok(cluster) => Ok(cluster),
        Err(StoreError::NotFound { .. }) => {
            let known: Vec<String> = api
                .store()
                .list_clusters()
                .await
                .map_err(|e| internal("listing clusters", e))?
                .into_iter()
                .map(|c| c.id)
                .collect();
            Err(invalid(
                "ClusterId",
                format!(
                    "no cluster `{cluster_id}` is registered; clusters: {}",
                    known.join(", ")
                ),
            ))
        }
        Err(e) => Err(internal("reading the cluster", e)),
    }
}

pub(crate) async fn list_namespaces(
    api: &Api,
    caller: &Caller,
    params: &Params,
) -> Result<Map<String, Value>, ApiError> {
    only(params, "ListK8sNamespaces", &["ClusterId"])?;
    let clusters = match params.get("ClusterId").filter(|v| !v.is_empty()) {
        Some(id) => {
            let cluster = existing_cluster(api, id).await?;
            caller.authorize(ram::READ_CLUSTER, &arn(api, &cluster.id))?;
            vec![cluster]
        }
        None => readable_clusters(api, caller).await?,
    };
    let mut names = BTreeSet::new();
    for cluster in &clusters {
        names.extend(namespaces_of(api, cluster).await?);
    }
    let data: Vec<Value> = names
        .into_iter()
        .map(|n| json!({ "Namespace": n }))
        .collect();
    let mut out = Map::new();
    out.insert("Data".into(), Value::Array(data));
    Ok(out)
}

/// ListBuildPack: EDAS Container (the Pandora/Tomcat runtime of EDAS) is not part of this
/// server, so there are no build packs; `BuildPackId` is refused when given to a deployment.
pub(crate) fn list_build_packs(params: &Params) -> Result<Map<String, Value>, ApiError> {
    only(params, "ListBuildPack", &[])?;
    let mut out = Map::new();
    out.insert("BuildPackList".into(), json!({ "BuildPack": [] }));
    Ok(out)
}
