//! Drift: each revision's Deployment is kept at what edasd last applied. A Deployment deleted
//! or scaled by hand (`kubectl delete deploy`, `kubectl scale`) is restored, and the change is
//! logged, as soon as its watch event arrives: no polling, and no release is disturbed (a
//! release step changes the desired replicas first, so its own writes are never "drift").
//!
//! What edasd last applied is known per process: a revision this process applied since it
//! started (the engine re-applies every running revision's step when it resumes a release).

use std::sync::Weak;

use edas_runtime::{RuntimeEvent, Target};
use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::broadcast;

use crate::{Inner, KubeRuntime};

/// What a revision should run, as last applied by this process.
#[derive(Clone)]
pub(crate) struct Desired {
    pub(crate) target: Target,
    pub(crate) replicas: u32,
    /// Whether the step that set it finished (until then its own writes are in flight).
    pub(crate) settled: bool,
    /// Whether a restore is running.
    pub(crate) restoring: bool,
}

impl KubeRuntime {
    /// Records that `target` should run `replicas` (0: forgets it) before a step applies it.
    pub(crate) fn desire(&self, target: &Target, replicas: u32) {
        let key = (target.app_id.clone(), target.revision.clone());
        let mut desired = self.inner.desired.lock().unwrap_or_else(|e| e.into_inner());
        if replicas == 0 {
            desired.remove(&key);
        } else {
            desired.insert(
                key,
                Desired {
                    target: target.clone(),
                    replicas,
                    settled: false,
                    restoring: false,
                },
            );
        }
    }

    /// Marks the step that applied `replicas` for `target` as done.
    pub(crate) fn settle(&self, target: &Target, replicas: u32) {
        let key = (target.app_id.clone(), target.revision.clone());
        let mut desired = self.inner.desired.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = desired.get_mut(&key)
            && d.replicas == replicas
        {
            d.settled = true;
        }
    }

    /// Forgets every revision of an application (it is being deleted).
    pub(crate) fn forget(&self, app_id: &str) {
        self.inner
            .desired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(app, _), _| app != app_id);
    }
}

/// Why a revision's Deployment differs from what was applied, if it does.
fn drift(deployment: Option<&Deployment>, replicas: u32) -> Option<String> {
    let Some(d) = deployment else {
        return Some("was deleted outside edasd".into());
    };
    if d.metadata.deletion_timestamp.is_some() {
        return Some("is being deleted outside edasd".into());
    }
    let actual = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    (i64::from(actual) != i64::from(replicas))
        .then(|| format!("was scaled to {actual} outside edasd"))
}

/// Restores drifted Deployments as their watch events arrive, until the runtime is dropped.
pub(crate) async fn run(inner: Weak<Inner>, mut events: broadcast::Receiver<RuntimeEvent>) {
    // Until the first full list the cache is empty, which would look like deletions.
    {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let store = strong.deployments.clone();
        drop(strong);
        if store.wait_until_ready().await.is_err() {
            return;
        }
    }
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(strong) = inner.upgrade() else {
            return;
        };
        check(&KubeRuntime { inner: strong }, &event);
    }
}

/// Compares one revision with what was applied and starts a restore when it drifted.
fn check(rt: &KubeRuntime, event: &RuntimeEvent) {
    let key = (event.app_id.clone(), event.revision.clone());
    let (target, replicas) = {
        let desired = rt.inner.desired.lock().unwrap_or_else(|e| e.into_inner());
        match desired.get(&key) {
            Some(d) if d.settled && !d.restoring => (d.target.clone(), d.replicas),
            _ => return,
        }
    };
    let name = edas_render::deployment_name(&target.spec.name, &target.revision);
    let reference = ObjectRef::<Deployment>::new(&name).within(&target.spec.k8s_namespace);
    let current = rt.inner.deployments.get(&reference);
    let Some(why) = drift(current.as_deref(), replicas) else {
        return;
    };
    if let Some(d) = rt
        .inner
        .desired
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_mut(&key)
    {
        d.restoring = true;
    }
    let rt = rt.clone();
    tokio::spawn(async move {
        let cluster = rt.inner.options.cluster_id.clone();
        let result = rt.apply_revision(&target, replicas).await;
        {
            let mut desired = rt.inner.desired.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(d) = desired.get_mut(&key) {
                d.restoring = false;
            }
        }
        match result {
            Ok(()) => tracing::warn!(
                %cluster,
                app_id = %target.app_id,
                revision = %target.revision,
                deployment = %name,
                namespace = %target.spec.k8s_namespace,
                replicas,
                "Deployment {why}: restored to what edasd applied"
            ),
            Err(error) => tracing::warn!(
                %cluster,
                app_id = %target.app_id,
                revision = %target.revision,
                deployment = %name,
                %error,
                "Deployment {why}: restoring it failed; retrying at its next event"
            ),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deleted_and_hand_scaled_deployments_are_drift() {
        let d = |replicas: i32| -> Deployment {
            serde_json::from_value(
                json!({"metadata": {"name": "a-r1"}, "spec": {"replicas": replicas,
                "selector": {}, "template": {}}}),
            )
            .unwrap()
        };
        assert_eq!(drift(Some(&d(3)), 3), None);
        assert!(drift(Some(&d(1)), 3).unwrap().contains("scaled to 1"));
        assert!(drift(None, 3).unwrap().contains("deleted"));
    }
}
