//! GetK8sCluster, ListCluster, ImportK8sCluster, ListK8sNamespaces and ListBuildPack.

use serde::{Deserialize, Serialize};

use crate::lenient;

/// The body of GetK8sCluster: `{"ClusterPage": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ClusterPageBody {
    pub cluster_page: ClusterPage,
}

/// One page of Kubernetes clusters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ClusterPage {
    pub cluster_list: K8sClusterList,
    #[serde(deserialize_with = "lenient::int")]
    pub current_page: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub page_size: i64,
    /// Every matching cluster, not only this page's.
    #[serde(deserialize_with = "lenient::int")]
    pub total_size: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct K8sClusterList {
    pub cluster: Vec<K8sCluster>,
}

/// What GetK8sCluster and ListCluster both say of a cluster (flattened into each).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ClusterHead {
    #[serde(deserialize_with = "lenient::text")]
    pub cluster_id: String,
    /// 1 imported, 3 importing, 2 failed (the cluster does not answer).
    #[serde(deserialize_with = "lenient::int")]
    pub cluster_import_status: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub cluster_name: String,
    /// 1 normal, 2 not normal, 3 offline.
    #[serde(deserialize_with = "lenient::int")]
    pub cluster_status: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub cluster_type: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub cpu: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub cs_cluster_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub description: String,
    /// MiB.
    #[serde(deserialize_with = "lenient::int")]
    pub mem: i64,
    /// 2: VPC.
    #[serde(deserialize_with = "lenient::int")]
    pub network_mode: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub node_num: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub region_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub vpc_id: String,
}

/// A cluster of GetK8sCluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct K8sCluster {
    #[serde(flatten)]
    pub head: ClusterHead,
    /// `running`, `failed`, …
    #[serde(deserialize_with = "lenient::text")]
    pub cs_cluster_status: String,
    #[serde(deserialize_with = "lenient::text")]
    pub sub_cluster_type: String,
    #[serde(deserialize_with = "lenient::text")]
    pub sub_net_cidr: String,
    #[serde(deserialize_with = "lenient::text")]
    pub vswitch_id: String,
}

/// The body of ListCluster: `{"ClusterList": {"Cluster": [...]}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ClusterListBody {
    pub cluster_list: ClusterList,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ClusterList {
    pub cluster: Vec<Cluster>,
}

/// A cluster of ListCluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Cluster {
    #[serde(flatten)]
    pub head: ClusterHead,
    #[serde(deserialize_with = "lenient::int")]
    pub cpu_used: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub create_time: i64,
    /// Who provides it (`local`, `Kubernetes`, …).
    #[serde(deserialize_with = "lenient::text")]
    pub iaas_provider: String,
    #[serde(deserialize_with = "lenient::int")]
    pub mem_used: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub oversold_factor: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub resource_group_id: String,
    #[serde(deserialize_with = "lenient::int")]
    pub update_time: i64,
}

/// The body of ListK8sNamespaces: `{"Data": [{"Namespace": "..."}]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NamespacesBody {
    pub data: Vec<Namespace>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Namespace {
    #[serde(deserialize_with = "lenient::text")]
    pub namespace: String,
}

/// The body of ListBuildPack: `{"BuildPackList": {"BuildPack": [...]}}` (always empty on
/// edasd, which runs no EDAS Container).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BuildPackListBody {
    pub build_pack_list: BuildPackList,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BuildPackList {
    pub build_pack: Vec<BuildPack>,
}

/// An EDAS Container version, as EDAS lists it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BuildPack {
    #[serde(deserialize_with = "lenient::int")]
    pub config_id: i64,
    #[serde(deserialize_with = "lenient::boolean")]
    pub disabled: bool,
    #[serde(deserialize_with = "lenient::text")]
    pub pack_version: String,
    #[serde(deserialize_with = "lenient::text")]
    pub pandora_version: String,
    #[serde(deserialize_with = "lenient::text")]
    pub tomcat_version: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataTextBody;
    use crate::fixture::round_trip;

    #[test]
    fn captured_cluster_answers_round_trip() {
        let page: ClusterPageBody = round_trip(include_str!("../fixtures/get_k8s_cluster.json"));
        let page = page.cluster_page;
        assert_eq!((page.current_page, page.total_size), (1, 1));
        assert_eq!(
            page.cluster_list.cluster[0].sub_cluster_type,
            "ManagedKubernetes"
        );
        let list: ClusterListBody = round_trip(include_str!("../fixtures/list_cluster.json"));
        assert_eq!(list.cluster_list.cluster[0].head.cluster_id, "local");
        let imported: DataTextBody =
            round_trip(include_str!("../fixtures/import_k8s_cluster.json"));
        assert_eq!(imported.data, "local");
        let namespaces: NamespacesBody =
            round_trip(include_str!("../fixtures/list_k8s_namespaces.json"));
        assert_eq!(namespaces.data[0].namespace, "default");
        let packs: BuildPackListBody = round_trip(include_str!("../fixtures/list_build_pack.json"));
        assert!(packs.build_pack_list.build_pack.is_empty());
    }
}
