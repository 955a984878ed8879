//! The rules of the built-in `local` cluster, in one place: its applications are processes on
//! edasd's own host, so using it is a privilege of its own, every service port is one
//! listening port on 127.0.0.1, and the host is its one node.

use edas_spec::AppSpec;
use edas_spec::model::Artifact;

use edas_store::Cluster;

use crate::{App, AppError};

/// The built-in cluster whose applications run as processes on edasd's own host.
pub const LOCAL_CLUSTER: &str = "local";

/// Whether a registered cluster is the local one (its type names it).
pub(crate) fn is_local(cluster: &Cluster) -> bool {
    cluster.cluster_type == LOCAL_CLUSTER
}

/// What the cluster queries answer for `local`: one node, this host's CPUs; no memory figure.
pub(crate) struct HostFacts {
    pub cpu_cores: u64,
    pub memory_mib: u64,
    pub nodes: u64,
    pub description: &'static str,
}

pub(crate) fn host_facts() -> HostFacts {
    HostFacts {
        cpu_cores: std::thread::available_parallelism().map_or(0, |n| n.get() as u64),
        memory_mib: 0,
        nodes: 1,
        description: "processes on the edasd host (local runtime)",
    }
}

/// The address an application's Services answer at, where edasd knows it: on `local` every
/// Service listens on 127.0.0.1; elsewhere the cluster assigns it (not tracked here).
pub fn service_address(app_cluster_id: &str) -> Option<&'static str> {
    (app_cluster_id == LOCAL_CLUSTER).then_some("127.0.0.1")
}

/// What a change asks of the `local` cluster beyond the change itself, for the API to
/// authorize (`edas:UseLocalCluster`, `edas:UseLocalHostPath`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalUse {
    /// Not on `local`: nothing more to authorize.
    None,
    /// Runs code on edasd's host.
    Cluster,
    /// Runs code on edasd's host and reads a host path (a `LocalVolume`, a `file://` package)
    /// the current spec does not read already.
    ClusterAndNewHostPath,
}

/// What `next` asks of the `local` cluster, given the `current` spec (none for a new
/// application).
pub fn local_use(current: Option<&AppSpec>, next: &AppSpec) -> LocalUse {
    if next.cluster_id != LOCAL_CLUSTER {
        return LocalUse::None;
    }
    let new_path = host_paths(next)
        .iter()
        .any(|p| !current.is_some_and(|c| host_paths(c).contains(p)));
    if new_path {
        LocalUse::ClusterAndNewHostPath
    } else {
        LocalUse::Cluster
    }
}

/// The host paths a spec reads on `local`: `LocalVolume` sources and a `file://` package.
fn host_paths(spec: &AppSpec) -> Vec<&str> {
    let mut paths: Vec<&str> = spec
        .local_volumes
        .iter()
        .map(|v| v.node_path.as_str())
        .collect();
    if let Artifact::Package(package) = &spec.artifact
        && package.url.starts_with("file://")
    {
        paths.push(&package.url);
    }
    paths
}

impl App {
    /// On `local` two applications cannot both have a Service on the same port (on Kubernetes
    /// each Service has its own cluster IP and this does not apply). Refused at the request,
    /// naming `parameter`, rather than failing when the routing is applied.
    pub(crate) async fn local_service_ports_free(
        &self,
        app_id: Option<&str>,
        spec: &AppSpec,
        parameter: &str,
    ) -> Result<(), AppError> {
        if spec.cluster_id != LOCAL_CLUSTER || spec.services.is_empty() {
            return Ok(());
        }
        let taken = self
            .store
            .service_port_in_use(LOCAL_CLUSTER, &spec.service_ports(), app_id)
            .await
            .map_err(|e| AppError::internal("looking up service ports", e))?;
        match taken {
            None => Ok(()),
            Some(other) => Err(AppError::invalid(
                parameter,
                format!(
                    "port {} is already a service port of application `{}` ({}) on cluster local, where every service port is a port on 127.0.0.1; choose another port",
                    other.port, other.app_name, other.app_id
                ),
            )),
        }
    }
}
