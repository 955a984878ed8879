//! GetK8sCluster, ListCluster, ImportK8sCluster, ListK8sNamespaces and ListBuildPack: the
//! clusters registered in the store (`local` and those of the configuration file).

use std::collections::BTreeSet;

use edas_app::{Cluster, ClusterInfo};
use edas_spec::Params;
use serde_json::{Map, Value, json};

use crate::Api;
use crate::caller::Caller;
use crate::error::{ApiError, codes};
use crate::operations::ram;
use crate::params::{invalid, only, page_number, required};
use crate::policy::cluster_arn;
use crate::render::CLUSTER_TYPE_KUBERNETES;

/// `SubClusterType` of every cluster: edasd deploys to plain Kubernetes-like clusters.
const SUB_CLUSTER_TYPE: &str = "ManagedKubernetes";

fn arn(api: &Api, cluster_id: &str) -> String {
    cluster_arn(
        &api.config().region_id,
        &api.config().account_id,
        cluster_id,
    )
}

/// The clusters the caller may read, by id.
async fn readable_clusters(api: &Api, caller: &Caller) -> Result<Vec<ClusterInfo>, ApiError> {
    let mut clusters = api.app().clusters().await?;
    clusters.retain(|c| caller.may(ram::READ_CLUSTER, &arn(api, &c.cluster.id)));
    Ok(clusters)
}

fn k8s_cluster_item(info: &ClusterInfo) -> Value {
    let cluster = &info.cluster;
    json!({
        "ClusterId": cluster.id,
        "ClusterImportStatus": info.import_status,
        "ClusterName": cluster.name,
        "ClusterStatus": info.cluster_status,
        "ClusterType": CLUSTER_TYPE_KUBERNETES,
        "Cpu": info.cpu_cores,
        "CsClusterId": cluster.id,
        "CsClusterStatus": info.cs_status(),
        "Description": info.description,
        "Mem": info.memory_mib,
        "NetworkMode": 2,
        "NodeNum": info.nodes,
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
        .map(|info| {
            let c = &info.cluster;
            json!({
                "ClusterId": c.id,
                "ClusterImportStatus": info.import_status,
                "ClusterName": c.name,
                "ClusterStatus": info.cluster_status,
                "ClusterType": CLUSTER_TYPE_KUBERNETES,
                "Cpu": info.cpu_cores,
                "CpuUsed": 0,
                "CreateTime": c.created_at.as_millisecond(),
                "CsClusterId": c.id,
                "Description": info.description,
                "IaasProvider": info.provider,
                "Mem": info.memory_mib,
                "MemUsed": 0,
                "NetworkMode": 2,
                "NodeNum": info.nodes,
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
    let Some(info) = api.app().find_cluster(id).await? else {
        return Err(invalid(
            "ClusterId",
            format!(
                "edasd imports clusters from its configuration file: add a [[clusters]] entry with id = \"{id}\" and its kubeconfig, then restart edasd"
            ),
        ));
    };
    caller.authorize(ram::READ_CLUSTER, &arn(api, &info.cluster.id))?;
    if info.unreachable() {
        return Err(ApiError::new(
            codes::CLUSTER_UNAVAILABLE,
            format!(
                "cluster `{}` ({}) cannot be imported: it does not answer: {}",
                info.cluster.id,
                info.address(),
                info.error().unwrap_or("no answer")
            ),
        ));
    }
    let mut out = Map::new();
    out.insert("Data".into(), Value::String(info.cluster.id));
    Ok(out)
}

/// The cluster named by `ClusterId`, or `InvalidParameter` listing the clusters there are.
pub(crate) async fn existing_cluster(api: &Api, cluster_id: &str) -> Result<Cluster, ApiError> {
    Ok(api.app().cluster(cluster_id).await?.cluster)
}

pub(crate) async fn list_namespaces(
    api: &Api,
    caller: &Caller,
    params: &Params,
) -> Result<Map<String, Value>, ApiError> {
    only(params, "ListK8sNamespaces", &["ClusterId"])?;
    let clusters = match params.get("ClusterId").filter(|v| !v.is_empty()) {
        Some(id) => {
            let info = api.app().cluster(id).await?;
            caller.authorize(ram::READ_CLUSTER, &arn(api, &info.cluster.id))?;
            vec![info]
        }
        None => readable_clusters(api, caller).await?,
    };
    let mut names = BTreeSet::new();
    for info in &clusters {
        names.extend(api.app().namespaces_of(&info.cluster).await?);
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
