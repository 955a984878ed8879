//! The Kubernetes clusters of the configuration: one [`edas_kube::KubeRuntime`] (one shared
//! client) per `[[clusters]]` entry, asking the store what a drifted revision should run, and
//! reporting the cluster's health into the store's cluster registry so that
//! GetK8sCluster / ListCluster answer with EDAS's import status from any edasd process.

use std::sync::Arc;

use anyhow::Context;
use edas_kube::cluster::{Inventory, Warner};
use edas_kube::{Health, KubeRuntime, Settled, SettledReplicas};
use edas_runtime::{BoxFuture, Target};
use edas_store::{Store, StoreError};
use serde_json::{Value, json};

use crate::config::ClusterConfig;

/// The store's settled state, as one cluster's drift correction needs it.
struct StoreSettled {
    store: Store,
    /// This process's engine worker: a change order it leases is driven here.
    worker_id: String,
}

impl Settled for StoreSettled {
    fn settled_replicas<'a>(
        &'a self,
        app_id: &'a str,
        revision: &'a str,
    ) -> BoxFuture<'a, Result<SettledReplicas, String>> {
        Box::pin(async move {
            let app = match self.store.get_application(app_id).await {
                Ok(app) if !app.deleted => app,
                Ok(_) | Err(StoreError::NotFound { .. }) => return Ok(SettledReplicas::Runs(0)),
                Err(e) => return Err(e.to_string()),
            };
            // A change in progress decides by its own steps, in the process that drives it.
            if let Some(active) = self
                .store
                .active_change_order(app_id)
                .await
                .map_err(|e| e.to_string())?
            {
                let here = active
                    .lease
                    .is_some_and(|lease| lease.owner == self.worker_id);
                return Ok(if here {
                    SettledReplicas::ChangingHere
                } else {
                    SettledReplicas::ChangingElsewhere
                });
            }
            let doc = &app.spec;
            Ok(SettledReplicas::Runs(
                if doc.template_revision == revision {
                    doc.spec.effective_replicas()
                } else {
                    0
                },
            ))
        })
    }

    fn settled_target<'a>(
        &'a self,
        app_id: &'a str,
        revision: &'a str,
    ) -> BoxFuture<'a, Result<Option<(u32, Target)>, String>> {
        Box::pin(async move {
            let SettledReplicas::Runs(replicas) = self.settled_replicas(app_id, revision).await?
            else {
                return Ok(None);
            };
            if replicas == 0 {
                return Ok(None);
            }
            // The revision as the engine's steps apply it, with its ConfigMaps and Secrets.
            let app = match self.store.get_application(app_id).await {
                Ok(app) => edas_engine::app_ref(&app),
                Err(StoreError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e.to_string()),
            };
            let target = edas_engine::stored_target(&self.store, &app, revision).await?;
            Ok(Some((replicas, target)))
        })
    }
}

/// The registry's status document of a cluster in `health` with its `inventory` (see
/// `edas_api::clusters`): import and cluster status, the API server address, and the nodes,
/// CPU, memory and namespaces the cluster reports (absent until listed).
fn status_doc(
    health: &Health,
    api_server: &str,
    inventory: &Inventory,
    missing_rights: Option<&Vec<String>>,
) -> Value {
    let mut doc = match health {
        Health::Connecting => json!({"import_status": 3, "cluster_status": 3}),
        Health::Connected { version } => {
            json!({"import_status": 1, "cluster_status": 1, "version": version})
        }
        Health::Unreachable(error) => {
            json!({"import_status": 2, "cluster_status": 3, "error": error})
        }
    };
    doc["api_server"] = json!(api_server);
    if let Some(c) = &inventory.capacity {
        doc["nodes"] = json!(c.nodes);
        doc["cpu_millis"] = json!(c.cpu_millis);
        doc["memory_mib"] = json!(c.memory_mib);
    }
    if let Some(namespaces) = &inventory.namespaces {
        doc["namespaces"] = json!(namespaces);
    }
    // The rights of deploy/rbac.yaml the cluster does not grant edasd (start-up check).
    if let Some(missing) = missing_rights.filter(|m| !m.is_empty()) {
        doc["missing_rights"] = json!(missing);
    }
    doc
}

/// Writes the cluster's status into its registry entry whenever its health changes.
async fn report_health(
    store: Store,
    cluster_id: String,
    runtime: KubeRuntime,
    mut inventory: tokio::sync::watch::Receiver<Inventory>,
) {
    let mut health = runtime.health();
    let mut rights = runtime.missing_rights();
    let api_server = runtime.api_server().to_owned();
    loop {
        let doc = status_doc(
            &health.borrow_and_update().clone(),
            &api_server,
            &inventory.borrow_and_update().clone(),
            rights.borrow_and_update().clone().as_ref(),
        );
        match store.get_cluster(&cluster_id).await {
            Ok(mut cluster) => {
                if cluster.config.get("status") != Some(&doc) {
                    if let Some(config) = cluster.config.as_object_mut() {
                        config.insert("status".into(), doc);
                    }
                    cluster.updated_at = jiff::Timestamp::now();
                    if let Err(error) = store.put_cluster(&cluster).await {
                        tracing::warn!(cluster = %cluster_id, %error, "recording the cluster's status failed");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(cluster = %cluster_id, %error, "reading the cluster failed")
            }
        }
        // Event-driven: the runtime's health and the inventory's watches.
        tokio::select! {
            changed = health.changed() => if changed.is_err() { return },
            // The rights are checked once; after that their channel only closes with the runtime.
            changed = rights.changed(), if rights.borrow().is_none() => if changed.is_err() { return },
            changed = inventory.changed() => if changed.is_err() {
                // The inventory's watches ended (they do not while edasd runs): health only.
                if health.changed().await.is_err() { return }
            },
        }
    }
}

/// Builds the runtime of a configured cluster and starts reporting its health.
pub async fn runtime(
    store: &Store,
    cluster: &ClusterConfig,
    worker_id: &str,
) -> anyhow::Result<KubeRuntime> {
    let context = || format!("cluster `{}`", cluster.id);
    // The address only names the cluster in messages and its status.
    let api_server = edas_kube::client_config(&cluster.access())
        .await
        .with_context(context)?
        .cluster_url
        .to_string();
    let client = edas_kube::connect(&cluster.access())
        .await
        .with_context(context)?;
    let settled = Arc::new(StoreSettled {
        store: store.clone(),
        worker_id: worker_id.to_owned(),
    });
    let mut options = cluster.options();
    options.api_server = Some(api_server.clone());
    let inventory = edas_kube::cluster::watch_inventory(
        client.clone(),
        Warner::new(&cluster.id, &api_server, std::time::Duration::from_secs(60)),
    );
    let runtime = KubeRuntime::start(client, settled, options);
    tokio::spawn(report_health(
        store.clone(),
        cluster.id.clone(),
        runtime.clone(),
        inventory,
    ));
    tracing::info!(cluster = %cluster.id, "Kubernetes runtime started");
    Ok(runtime)
}
