//! What each node can still take, for a precheck: its allocatable CPU and memory (else its
//! capacity) less the requests of the pods placed on it that have not ended, read now from the
//! API (one list of Nodes and one of Pods, not the watch caches, which hold only edasd's pods).
//! Cordoned nodes (`spec.unschedulable`) take nothing. And what the namespace's
//! ResourceQuotas still allow (`status.hard` less `status.used`, the least of them).

use k8s_openapi::api::core::v1::{Container, Node, Pod, ResourceQuota};
use kube::Api;
use kube::api::ListParams;

use edas_runtime::{NodeRoom, QuotaRoom, Room, RuntimeError};

use crate::KubeRuntime;
use crate::cluster::{node_capacity, quantity};

/// CPU (millicores) and memory (MiB) one container requests.
fn requests(container: &Container) -> (u64, u64) {
    let get = |key: &str| {
        container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(key))
            .and_then(quantity)
            .unwrap_or(0.0)
    };
    (
        (get("cpu") * 1000.0).round() as u64,
        (get("memory") / (1024.0 * 1024.0)).ceil() as u64,
    )
}

/// What a pod requests of its node: its containers' sum, or its largest init container when
/// that is more (as the scheduler counts).
pub(crate) fn pod_requests(pod: &Pod) -> (u64, u64) {
    let Some(spec) = pod.spec.as_ref() else {
        return (0, 0);
    };
    let (cpu, memory) = spec
        .containers
        .iter()
        .map(requests)
        .fold((0, 0), |(c, m), (dc, dm)| (c + dc, m + dm));
    let (init_cpu, init_memory) = spec
        .init_containers
        .iter()
        .flatten()
        .map(requests)
        .fold((0, 0), |(c, m), (dc, dm)| (c.max(dc), m.max(dm)));
    (cpu.max(init_cpu), memory.max(init_memory))
}

/// The room of every schedulable node of `nodes`, given the `pods` of the cluster.
pub(crate) fn rooms(nodes: &[Node], pods: &[Pod]) -> Vec<NodeRoom> {
    nodes
        .iter()
        .filter(|n| n.spec.as_ref().and_then(|s| s.unschedulable) != Some(true))
        .map(|node| {
            let name = node.metadata.name.clone().unwrap_or_default();
            let offered = node_capacity(node);
            let (cpu, memory) = pods
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
                .filter(|p| {
                    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                    !matches!(phase, Some("Succeeded" | "Failed"))
                })
                .map(pod_requests)
                .fold((0, 0), |(c, m), (dc, dm)| (c + dc, m + dm));
            NodeRoom {
                node: name,
                cpu_millis: offered.cpu_millis.saturating_sub(cpu),
                memory_mib: offered.memory_mib.saturating_sub(memory),
            }
        })
        .collect()
}

/// What `quotas` still allow: for each resource, the least any of them leaves.
pub(crate) fn quota_room(quotas: &[ResourceQuota]) -> Option<QuotaRoom> {
    let mut room = QuotaRoom::default();
    for quota in quotas {
        let Some(status) = quota.status.as_ref() else {
            continue;
        };
        let left = |keys: &[&str], scale: fn(f64) -> u64| -> Option<u64> {
            keys.iter().find_map(|key| {
                let hard = status.hard.as_ref()?.get(*key).and_then(quantity)?;
                let used = status
                    .used
                    .as_ref()
                    .and_then(|u| u.get(*key))
                    .and_then(quantity)
                    .unwrap_or(0.0);
                Some(scale((hard - used).max(0.0)))
            })
        };
        let millis = |v: f64| (v * 1000.0).floor() as u64;
        let mib = |v: f64| (v / (1024.0 * 1024.0)).floor() as u64;
        let fields = [
            (&mut room.pods, left(&["pods"], |v| v.floor() as u64)),
            (
                &mut room.cpu_requests_millis,
                left(&["requests.cpu", "cpu"], millis),
            ),
            (
                &mut room.memory_requests_mib,
                left(&["requests.memory", "memory"], mib),
            ),
            (&mut room.cpu_limits_millis, left(&["limits.cpu"], millis)),
            (&mut room.memory_limits_mib, left(&["limits.memory"], mib)),
        ];
        let mut bounds = false;
        for (field, value) in fields {
            if let Some(v) = value {
                *field = Some(field.map_or(v, |old| old.min(v)));
                bounds = true;
            }
        }
        if bounds {
            room.quotas
                .push(quota.metadata.name.clone().unwrap_or_default());
        }
    }
    (!room.quotas.is_empty()).then_some(room)
}

/// Lists the cluster's Nodes and Pods and `namespace`'s ResourceQuotas now: each schedulable
/// node's room and what the quotas allow.
pub(crate) async fn room(rt: &KubeRuntime, namespace: &str) -> Result<Room, RuntimeError> {
    let client = rt.inner.client.clone();
    let cluster = &rt.inner.options.cluster_id;
    let failed = |what: &str, e: kube::Error| {
        RuntimeError::Unavailable(format!(
            "cluster `{cluster}`: listing its {what} failed: {e}"
        ))
    };
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| failed("Nodes", e))?;
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| failed("Pods", e))?;
    let quota = Api::<ResourceQuota>::namespaced(client, namespace)
        .list(&ListParams::default())
        .await
        .map(|list| quota_room(&list.items))
        .map_err(|e| {
            format!("cluster `{cluster}`: listing the ResourceQuotas of namespace `{namespace}` failed: {e}")
        });
    Ok(Room {
        nodes: rooms(&nodes.items, &pods.items),
        quota,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cpu: &str, memory: &str, cordoned: bool) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"unschedulable": cordoned},
            "status": {"allocatable": {"cpu": cpu, "memory": memory}}
        }))
        .unwrap()
    }

    fn pod(node: &str, cpu: &str, memory: &str, phase: &str, init_cpu: Option<&str>) -> Pod {
        let mut pod = json!({
            "metadata": {"name": "p"},
            "spec": {"nodeName": node, "containers": [
                {"name": "a", "resources": {"requests": {"cpu": cpu, "memory": memory}}},
                {"name": "b"}
            ]},
            "status": {"phase": phase}
        });
        if let Some(init) = init_cpu {
            pod["spec"]["initContainers"] =
                json!([{"name": "i", "resources": {"requests": {"cpu": init}}}]);
        }
        serde_json::from_value(pod).unwrap()
    }

    #[test]
    fn quotas_leave_the_least_of_hard_less_used() {
        let quota =
            |name: &str, hard: serde_json::Value, used: serde_json::Value| -> ResourceQuota {
                serde_json::from_value(json!({
                    "metadata": {"name": name},
                    "status": {"hard": hard, "used": used}
                }))
                .unwrap()
            };
        let quotas = [
            quota(
                "compute",
                json!({"requests.cpu": "4", "requests.memory": "8Gi", "pods": "10"}),
                json!({"requests.cpu": "2500m", "requests.memory": "2Gi", "pods": "3"}),
            ),
            quota(
                "small",
                json!({"cpu": "2", "limits.memory": "1Gi"}),
                json!({"cpu": "1"}),
            ),
            quota("other", json!({"services": "5"}), json!({})),
        ];
        let room = quota_room(&quotas).unwrap();
        assert_eq!(
            room,
            QuotaRoom {
                quotas: vec!["compute".into(), "small".into()],
                pods: Some(7),
                cpu_requests_millis: Some(1000),
                memory_requests_mib: Some(6144),
                cpu_limits_millis: None,
                memory_limits_mib: Some(1024),
            }
        );
        assert_eq!(quota_room(&quotas[2..]), None);
        assert_eq!(quota_room(&[]), None);
    }

    #[test]
    fn room_is_allocatable_less_the_requests_of_live_pods() {
        let nodes = [
            node("n1", "4", "8Gi", false),
            node("n2", "2", "4Gi", false),
            node("cordoned", "64", "1Ti", true),
        ];
        let pods = [
            pod("n1", "1500m", "1Gi", "Running", None),
            pod("n1", "500m", "512Mi", "Pending", Some("2")),
            pod("n1", "4", "8Gi", "Succeeded", None),
            pod("n2", "250m", "100M", "Running", None),
        ];
        let got = rooms(&nodes, &pods);
        assert_eq!(
            got,
            [
                NodeRoom {
                    node: "n1".into(),
                    cpu_millis: 4000 - 1500 - 2000,
                    memory_mib: 8192 - 1024 - 512
                },
                NodeRoom {
                    node: "n2".into(),
                    cpu_millis: 1750,
                    memory_mib: 4096 - 96
                },
            ]
        );
    }
}
