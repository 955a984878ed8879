//! GetK8sCluster, ListCluster, ImportK8sCluster, ListK8sNamespaces and ListBuildPack: the
//! clusters registered in the store (`local` and those of the configuration file).

use std::collections::BTreeSet;

use edas_app::{Cluster, ClusterInfo};
use edas_spec::Params;
use edas_wire::DataTextBody;
use edas_wire::cluster::{self as wire, ClusterHead, ClusterListBody, ClusterPageBody};
use edas_wire::cluster::{BuildPackListBody, NamespacesBody};

use crate::Api;
use crate::caller::{Call, Caller};
use crate::error::{ApiError, codes};
use crate::operations::ram;
use crate::params::{invalid, known_namespace, only, page_number, required};
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

/// What both cluster listings say of a cluster.
fn cluster_head(info: &ClusterInfo) -> ClusterHead {
    let cluster = &info.cluster;
    let number = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    ClusterHead {
        cluster_id: cluster.id.clone(),
        cluster_import_status: info.import_status,
        cluster_name: cluster.name.clone(),
        cluster_status: info.cluster_status,
        cluster_type: CLUSTER_TYPE_KUBERNETES,
        cpu: number(info.cpu_cores),
        cs_cluster_id: cluster.id.clone(),
        description: info.description.clone(),
        mem: number(info.memory_mib),
        // 2: VPC.
        network_mode: 2,
        node_num: number(info.nodes),
        region_id: cluster.region_id.clone(),
        vpc_id: String::new(),
    }
}

fn k8s_cluster_item(info: &ClusterInfo) -> wire::K8sCluster {
    wire::K8sCluster {
        head: cluster_head(info),
        cs_cluster_status: info.cs_status().to_owned(),
        sub_cluster_type: SUB_CLUSTER_TYPE.to_owned(),
        sub_net_cidr: String::new(),
        vswitch_id: String::new(),
    }
}

pub(crate) async fn get_k8s_cluster(call: Call<'_>) -> Result<ClusterPageBody, ApiError> {
    let (api, caller, params, _) = call.parts();
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
    let matching: Vec<wire::K8sCluster> = readable_clusters(api, caller)
        .await?
        .iter()
        .filter(|_| cluster_type.is_none_or(|t| CLUSTER_TYPE_KUBERNETES == t))
        .filter(|_| sub_type.is_none_or(|s| s == SUB_CLUSTER_TYPE))
        .map(k8s_cluster_item)
        .collect();
    let total_size = crate::render::count(matching.len());
    let cluster = matching
        .into_iter()
        .skip((current_page as usize - 1).saturating_mul(page_size as usize))
        .take(page_size as usize)
        .collect();
    Ok(ClusterPageBody {
        cluster_page: wire::ClusterPage {
            cluster_list: wire::K8sClusterList { cluster },
            current_page: i64::from(current_page),
            page_size: i64::from(page_size),
            total_size,
        },
    })
}

pub(crate) async fn list_cluster(call: Call<'_>) -> Result<ClusterListBody, ApiError> {
    let (api, caller, params, _) = call.parts();
    only(
        params,
        "ListCluster",
        &["LogicalRegionId", "ResourceGroupId"],
    )?;
    if let Some(ns) = params.get("LogicalRegionId").filter(|v| !v.is_empty()) {
        known_namespace(api, "LogicalRegionId", ns).await?;
    }
    // Clusters serve every namespace and belong to no resource group: a resource-group filter
    // matches none of them.
    let by_group = params.get("ResourceGroupId").is_some_and(|v| !v.is_empty());
    let cluster = readable_clusters(api, caller)
        .await?
        .iter()
        .filter(|_| !by_group)
        .map(|info| wire::Cluster {
            head: cluster_head(info),
            cpu_used: 0,
            create_time: info.cluster.created_at.as_millisecond(),
            iaas_provider: info.provider.to_owned(),
            mem_used: 0,
            oversold_factor: 1,
            resource_group_id: String::new(),
            update_time: info.cluster.updated_at.as_millisecond(),
        })
        .collect();
    Ok(ClusterListBody {
        cluster_list: wire::ClusterList { cluster },
    })
}

/// ImportK8sCluster: edasd imports clusters from its configuration file (`[[clusters]]`), so
/// importing a configured cluster is already done (or in progress: GetK8sCluster's
/// `ClusterImportStatus` says which) and answers its id as `Data`; any other id is refused,
/// saying where clusters come from.
pub(crate) async fn import_k8s_cluster(call: Call<'_>) -> Result<DataTextBody, ApiError> {
    let (api, caller, params, _) = call.parts();
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
    if let Some(ns) = params.get("NamespaceId").filter(|v| !v.is_empty()) {
        known_namespace(api, "NamespaceId", ns).await?;
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
    Ok(DataTextBody {
        data: info.cluster.id,
    })
}

/// The cluster named by `ClusterId`, or `InvalidParameter` listing the clusters there are.
pub(crate) async fn existing_cluster(api: &Api, cluster_id: &str) -> Result<Cluster, ApiError> {
    Ok(api.app().cluster(cluster_id).await?.cluster)
}

pub(crate) async fn list_namespaces(call: Call<'_>) -> Result<NamespacesBody, ApiError> {
    let (api, caller, params, _) = call.parts();
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
    Ok(NamespacesBody {
        data: names
            .into_iter()
            .map(|namespace| wire::Namespace { namespace })
            .collect(),
    })
}

/// ListBuildPack: EDAS Container (the Pandora/Tomcat runtime of EDAS) is not part of this
/// server, so there are no build packs; `BuildPackId` is refused when given to a deployment.
pub(crate) fn list_build_packs(params: &Params) -> Result<BuildPackListBody, ApiError> {
    only(params, "ListBuildPack", &[])?;
    Ok(BuildPackListBody::default())
}
