//! Queries of the clusters registered in the store (`local` and those of the configuration
//! file) and what edasd knows of each: the status document a Kubernetes cluster's runtime
//! records, or the local host's facts.

use std::collections::BTreeSet;

use edas_store::{ApplicationFilter, Cluster, StoreError};
use serde_json::Value;

use crate::{App, AppError, local};

/// The Kubernetes namespace every cluster has.
const DEFAULT_NAMESPACE: &str = "default";

/// A cluster with what edasd knows of its state.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterInfo {
    /// The registry entry.
    pub cluster: Cluster,
    /// CPU cores offered: the host's for `local`, the Nodes' allocatable CPU otherwise (0 until
    /// the Nodes were listed).
    pub cpu_cores: u64,
    /// Memory offered (MiB): the Nodes' allocatable memory (0 for `local`).
    pub memory_mib: u64,
    /// Nodes: 1 for `local`.
    pub nodes: u64,
    /// EDAS's `ClusterImportStatus`: 1 imported, 2 import failed, 3 importing.
    pub import_status: i64,
    /// EDAS's `ClusterStatus`: 1 running, 3 offline.
    pub cluster_status: i64,
    /// What the cluster is and how it answers, with the rights edasd lacks on it.
    pub description: String,
    /// `IaasProvider`: `local` or `kubernetes`.
    pub provider: &'static str,
}

impl ClusterInfo {
    fn of(cluster: Cluster) -> ClusterInfo {
        if local::is_local(&cluster) {
            let facts = local::host_facts();
            return ClusterInfo {
                cpu_cores: facts.cpu_cores,
                memory_mib: facts.memory_mib,
                nodes: facts.nodes,
                import_status: 1,
                cluster_status: 1,
                description: facts.description.to_owned(),
                provider: "local",
                cluster,
            };
        }
        let number = |key: &str| status(&cluster, key).and_then(Value::as_u64).unwrap_or(0);
        let code = |key: &str| status(&cluster, key).and_then(Value::as_i64).unwrap_or(3);
        let import_status = code("import_status");
        let mut info = ClusterInfo {
            cpu_cores: number("cpu_millis") / 1000,
            memory_mib: number("memory_mib"),
            nodes: number("nodes"),
            import_status,
            cluster_status: code("cluster_status"),
            description: String::new(),
            provider: "kubernetes",
            cluster,
        };
        info.description = info.describe();
        info
    }

    /// `CsClusterStatus`: `running` once the cluster answered, `initial` while edasd has not
    /// reached it yet, `failed` when it cannot.
    pub fn cs_status(&self) -> &'static str {
        match self.import_status {
            1 => "running",
            2 => "failed",
            _ => "initial",
        }
    }

    /// Whether importing the cluster failed: it does not answer.
    pub fn unreachable(&self) -> bool {
        self.import_status == 2
    }

    /// "API server https://…": the cluster's address, as messages name it.
    pub fn address(&self) -> String {
        self.text("api_server")
            .map(|a| format!("API server {a}"))
            .unwrap_or_else(|| "API server address unknown".to_owned())
    }

    /// The last error its runtime recorded.
    pub fn error(&self) -> Option<&str> {
        self.text("error")
    }

    /// The rights of deploy/rbac.yaml the cluster does not grant edasd (as its runtime last
    /// checked).
    pub fn missing_rights(&self) -> Vec<&str> {
        status(&self.cluster, "missing_rights")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    }

    fn text(&self, key: &str) -> Option<&str> {
        status(&self.cluster, key).and_then(Value::as_str)
    }

    fn describe(&self) -> String {
        let kind = &self.cluster.cluster_type;
        let at = self.address();
        let text = match (self.text("version"), self.text("error")) {
            (_, Some(error)) if self.unreachable() => {
                format!("{kind} cluster, {at}, unreachable: {error}")
            }
            (Some(version), _) => format!("{kind} cluster, {at}, Kubernetes {version}"),
            (None, _) => format!("{kind} cluster, {at}, not reached yet"),
        };
        let missing = self.missing_rights();
        if missing.is_empty() {
            return text;
        }
        format!(
            "{text}; edasd lacks the rights: {} (deploy/rbac.yaml lists every right it needs)",
            missing.join(", ")
        )
    }
}

/// A field of the status document the cluster's runtime records (see edasd's
/// `kube_clusters`) in the registry entry.
fn status<'a>(cluster: &'a Cluster, key: &str) -> Option<&'a Value> {
    cluster.config.get("status").and_then(|s| s.get(key))
}

impl App {
    /// Every registered cluster, by id.
    pub async fn clusters(&self) -> Result<Vec<ClusterInfo>, AppError> {
        let mut clusters = self
            .store
            .list_clusters()
            .await
            .map_err(|e| AppError::internal("listing clusters", e))?;
        clusters.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(clusters.into_iter().map(ClusterInfo::of).collect())
    }

    /// The cluster `id`, or none when it is not registered.
    pub async fn find_cluster(&self, id: &str) -> Result<Option<ClusterInfo>, AppError> {
        match self.store.get_cluster(id).await {
            Ok(cluster) => Ok(Some(ClusterInfo::of(cluster))),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(AppError::internal("reading the cluster", e)),
        }
    }

    /// The cluster a `ClusterId` parameter names, or `Invalid` listing the registered ones.
    pub async fn cluster(&self, id: &str) -> Result<ClusterInfo, AppError> {
        if let Some(cluster) = self.find_cluster(id).await? {
            return Ok(cluster);
        }
        let known: Vec<String> = self
            .clusters()
            .await?
            .into_iter()
            .map(|c| c.cluster.id)
            .collect();
        Err(AppError::invalid(
            "ClusterId",
            format!(
                "no cluster `{id}` is registered; clusters: {}",
                known.join(", ")
            ),
        ))
    }

    /// The Kubernetes namespaces of a cluster: those its API lists (watched by its runtime and
    /// recorded in the registry), else (local, or not listed yet) `default` and those its live
    /// applications use.
    pub async fn namespaces_of(&self, cluster: &Cluster) -> Result<Vec<String>, AppError> {
        if let Some(listed) = status(cluster, "namespaces").and_then(Value::as_array) {
            return Ok(listed
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect());
        }
        let mut names: BTreeSet<String> = BTreeSet::from([DEFAULT_NAMESPACE.to_owned()]);
        let filter = ApplicationFilter {
            cluster_id: Some(cluster.id.clone()),
            ..Default::default()
        };
        let apps = self.applications(&filter).await?;
        names.extend(apps.into_iter().map(|a| a.k8s_namespace));
        Ok(names.into_iter().collect())
    }
}
