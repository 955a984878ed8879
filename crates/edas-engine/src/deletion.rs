//! Deleting an application so that it always terminates, and the sweeps that remove what is
//! left of deleted applications from their clusters.
//!
//! A Delete on a cluster that answers is a change order that scales the serving revision to 0
//! (never up: a batch to 0 is not failed by failed instances) and, once it succeeded, sweeps
//! every object of the application. With `Force=true`, or when the cluster does not answer, the
//! application is deleted from edasd at once (its open order ended, a finished Delete order
//! stored) and the sweep is left owed in the store. Each cluster has one sweeper task, woken
//! when a sweep is owed and when the cluster becomes available again (an event from the
//! runtime, not a polling tick), so a cluster that comes back after an outage is cleaned then.

use std::sync::Arc;
use std::time::Duration;

use edas_release::{ChangeKind, ChangeOrder, Input, Instances, NewOrder, RevisionId, plan};
use edas_runtime::{AppRef, Routing, Runtime, RuntimeError};
use edas_store::{Application, PendingSweep, StoreError, Superseded};
use serde_json::json;

use crate::{DriverMsg, Inner, SubmitError, Submitted, audit, mapping};

/// How long a sweeper waits before trying a cluster again after a sweep failed while the
/// cluster looked available (it is woken at once when the cluster turns available again).
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Deletes `app` at once: ends its open change order, stores a finished Delete order, marks it
/// deleted and leaves the sweep of its cluster owed, then wakes that cluster's sweeper.
pub(crate) async fn delete_now(
    inner: &Arc<Inner>,
    app: &Application,
    forced: bool,
    reason: String,
    actor: &str,
    request_id: &str,
) -> Result<Submitted, SubmitError> {
    let doc = &app.spec;
    let order_id = edas_store::new_record_id();
    // Nothing is known of the instances (the cluster may not answer) and nothing waits for them.
    let current = Instances {
        revision: RevisionId(doc.template_revision.clone()),
        replicas: 0,
        ready: 0,
    };
    let now = inner.clock.now();
    let mut order = ChangeOrder::new(
        NewOrder {
            id: order_id.clone(),
            kind: ChangeKind::Delete,
            description: reason.clone(),
            from: Some(current.clone()),
            to: current,
            plan: plan(0, &edas_release::Strategy::Single)
                .map_err(|e| SubmitError::Internal(e.to_string()))?,
            settings: edas_release::ReleaseSettings::default(),
        },
        now,
    )
    .map_err(|e| SubmitError::Internal(e.to_string()))?;
    order
        .step(Input::Forced { reason }, now)
        .map_err(|e| SubmitError::Internal(e.to_string()))?;
    let (co_type, _) = mapping::co_type(ChangeKind::Delete);
    let co = crate::new_change_order(&order, co_type);
    // The open order may move on between reading and ending it: try again with its new state.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let superseded = match inner.store.active_change_order(&app.id).await? {
            Some(active) => {
                stop_driver(inner, &app.id, &active.id);
                vec![end_open_order(inner, active)?]
            }
            None => Vec::new(),
        };
        let entry = audit(
            actor,
            "DeleteK8sApplication",
            &app.id,
            request_id,
            json!({"change_order": order_id, "force": forced, "immediate": true,
                   "superseded": superseded.iter().map(|s| s.id.clone()).collect::<Vec<_>>()}),
        );
        match inner
            .store
            .delete_application_now(
                &app.id,
                &app.cluster_id,
                forced,
                &superseded,
                co.clone(),
                entry,
                inner.clock.timestamp(),
            )
            .await
        {
            Ok(_) => break,
            Err(StoreError::Stale { .. } | StoreError::ActiveChangeOrder { .. })
                if attempts < 5 =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(message = "Application deleted; its objects are swept from the cluster when it answers.", app_id = %app.id, cluster = %app.cluster_id, forced);
    inner.kick_sweeper(&app.cluster_id);
    Ok(Submitted {
        app_id: app.id.clone(),
        change_order_id: order_id,
    })
}

/// The final state of an open order a deletion ends: an active one is terminated (6), a failed
/// one keeps its status (it is superseded, as by any newer change).
fn end_open_order(
    inner: &Inner,
    active: edas_store::ChangeOrder,
) -> Result<Superseded, SubmitError> {
    let mut order = active.state;
    if order.is_active() {
        order
            .step(Input::Abort, inner.clock.now())
            .map_err(|e| SubmitError::Internal(e.to_string()))?;
        crate::analysis::close(&mut order);
    }
    Ok(Superseded {
        id: active.id,
        expected_version: active.version,
        status: order.status(),
        state: order,
    })
}

/// Tells this process's driver of `order_id` (if any) to stop: the order is being ended.
fn stop_driver(inner: &Inner, app_id: &str, order_id: &str) {
    let drivers = inner.drivers.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((id, tx)) = drivers.get(app_id)
        && id == order_id
    {
        let _ = tx.send(DriverMsg::Stop);
    }
}

/// Whether this process still runs a driver for an order of `app_id`.
fn driving(inner: &Inner, app_id: &str) -> bool {
    inner
        .drivers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains_key(app_id)
}

/// Removes everything of application `app_id` from `runtime`: every revision that still has
/// instances scaled to 0, its routing cleared, then every object left labelled with its id.
pub(crate) async fn sweep(
    inner: &Inner,
    runtime: &Arc<dyn Runtime>,
    app_id: &str,
    forced: bool,
) -> Result<(), RuntimeError> {
    // A deleted application stays in the store; should it be gone, the runtime still finds
    // its objects by id.
    let app = match inner.store.get_application(app_id).await {
        Ok(app) => crate::target::app_ref(&app),
        Err(StoreError::NotFound { .. }) => AppRef {
            id: app_id.to_owned(),
            ..AppRef::default()
        },
        Err(e) => {
            return Err(RuntimeError::Unavailable(format!(
                "reading application {app_id}: {e}"
            )));
        }
    };
    for revision in runtime.revisions(&app).await? {
        // A revision whose spec cannot be read still goes: the runtime removes it by label.
        if let Ok(target) = crate::target::stored_target(&inner.store, &app, &revision).await {
            runtime.set_replicas(&target, 0).await?;
        }
    }
    runtime.set_routing(&app, &Routing::default()).await?;
    runtime.delete_application(&app, forced).await
}

/// One cluster's sweeper: whenever the cluster is available and a sweep is owed (at start-up,
/// when woken by a deletion, when the cluster turns available again), sweeps every deleted
/// application of the cluster and forgets the sweeps the cluster confirmed.
pub(crate) async fn sweeper(
    inner: Arc<Inner>,
    cluster_id: String,
    runtime: Arc<dyn Runtime>,
    kick: Arc<tokio::sync::Notify>,
) {
    let mut retry = RETRY_FIRST;
    loop {
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            _ = runtime.wait_available() => {}
        }
        let owed = match inner.store.pending_sweeps(&cluster_id).await {
            Ok(owed) => owed,
            Err(error) => {
                tracing::warn!(message = "Reading the sweeps owed to a cluster failed.", cluster = %cluster_id, %error);
                Vec::new()
            }
        };
        let mut failed = 0usize;
        for PendingSweep { app_id, forced, .. } in owed {
            if driving(&inner, &app_id) {
                // The order a deletion ended may still be carrying out an effect (it stops
                // at its next step): sweeping now could be undone by it, so try again shortly.
                failed += 1;
                continue;
            }
            match sweep(&inner, &runtime, &app_id, forced).await {
                Ok(()) => {
                    if let Err(error) = inner.store.remove_sweep(&app_id).await {
                        tracing::warn!(message = "Forgetting a finished sweep failed; it runs again (idempotent).", %app_id, %error);
                    } else {
                        tracing::info!(message = "Swept a deleted application's objects from its cluster.", cluster = %cluster_id, %app_id, forced);
                    }
                }
                Err(error) => {
                    failed += 1;
                    tracing::warn!(message = "Sweeping a deleted application's objects failed; it is retried when the cluster answers.", cluster = %cluster_id, %app_id, %error);
                }
            }
        }
        if failed == 0 {
            retry = RETRY_FIRST;
            tokio::select! {
                _ = inner.shutdown.cancelled() => return,
                _ = kick.notified() => {}
            }
        } else {
            tokio::select! {
                _ = inner.shutdown.cancelled() => return,
                _ = kick.notified() => {}
                _ = tokio::time::sleep(retry) => {}
            }
            retry = (retry * 2).min(RETRY_MAX);
        }
    }
}
