//! Drift: each revision's Deployment is kept at what edasd last applied. A Deployment deleted
//! or scaled by hand (`kubectl delete deploy`, `kubectl scale`) is restored, and the change is
//! logged, as soon as its watch event arrives: no polling, and no release is disturbed (a
//! release step changes the desired replicas first, so its own writes are never "drift").
//!
//! What edasd last applied is known per process for the revisions it applied since it started;
//! for the others (after a restart, or applied by another edasd process) the Deployment's
//! [`crate::ANNOTATION_REPLICAS`] tells a hand-scale, its disappearance from the cache a
//! deletion, and the store ([`crate::Settled::settled_target`]) what to restore.
//! A difference counts as drift only once the cluster has shown the Deployment as applied (the
//! very object the apply returned: its uid, at its generation or later), so a step's own writes
//! in flight, and a cache still showing an earlier incarnation that happens to match, are never
//! mistaken for it; and before restoring, the store is
//! asked ([`crate::Settled::settled_replicas`]): an application deleted or stopped, or a
//! revision it no longer runs (another edasd process finished the change), is left alone.
//!
//! A Deployment the application's HorizontalPodAutoscaler targets is scaled by it: a replica
//! count that differs from what edasd applied is then not drift, and edasd follows it (its
//! desired state and [`crate::ANNOTATION_REPLICAS`] take the HPA's count) instead of restoring.

use std::sync::Weak;

use edas_runtime::{RuntimeEvent, Target};
use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::broadcast;
use tracing::Instrument as _;

use crate::{Inner, KubeRuntime, SettledReplicas};

/// What a revision should run, as last applied by this process.
#[derive(Clone)]
pub(crate) struct Desired {
    pub(crate) target: Target,
    pub(crate) replicas: u32,
    /// Whether the cluster has shown the Deployment as applied (until then the step's own
    /// writes are in flight, and a difference is not drift).
    pub(crate) settled: bool,
    /// The uid and generation the apply returned (`None` until it has): only a cached
    /// Deployment with that uid, at that generation or later, can settle the revision. A
    /// cache lagging behind shows an earlier incarnation (deleted and re-created by the steps
    /// since), whose replicas may match by chance and then "drift" to its later ones.
    pub(crate) applied: Option<(String, i64)>,
    /// Whether a restore is running.
    pub(crate) restoring: bool,
    /// The drift last restored (the Deployment's uid and generation, or `None` for a deleted
    /// one), so the events that follow the restore before the cache shows it do not restore
    /// it again.
    pub(crate) restored: Option<Option<String>>,
}

impl KubeRuntime {
    /// Records that `target` should run `replicas` (0: forgets it) before a step applies it.
    pub(crate) fn desire(&self, target: &Target, replicas: u32) {
        let key = (target.app.id.clone(), target.revision.clone());
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
                    applied: None,
                    restoring: false,
                    restored: None,
                },
            );
        }
    }

    /// Records the Deployment an apply of `replicas` instances returned, unless a newer step
    /// changed the revision meanwhile.
    pub(crate) fn applied(&self, target: &Target, replicas: u32, deployment: &Deployment) {
        let (Some(uid), Some(generation)) =
            (&deployment.metadata.uid, deployment.metadata.generation)
        else {
            return;
        };
        let key = (target.app.id.clone(), target.revision.clone());
        let mut desired = self.inner.desired.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = desired.get_mut(&key).filter(|d| d.replicas == replicas) {
            d.applied = Some((uid.clone(), generation));
        }
    }

    /// Forgets a revision's desired state (the store wants something else), unless a newer
    /// step changed it meanwhile.
    fn forget_revision(&self, key: &(String, String), replicas: u32) {
        let mut desired = self.inner.desired.lock().unwrap_or_else(|e| e.into_inner());
        if desired.get(key).is_some_and(|d| d.replicas == replicas) {
            desired.remove(key);
        }
    }

    /// Ends a restore that did not happen, so the next event tries again.
    fn release_restore(&self, key: &(String, String)) {
        let mut desired = self.inner.desired.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = desired.get_mut(key) {
            d.restoring = false;
            d.restored = None;
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
    // No wait for the first list (kube's `Store::wait_until_ready` wakes only the last of
    // several waiters): an empty cache cannot look like drift, since a revision counts as
    // settled only once the cache has shown its Deployment as applied.
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
    let entry = rt
        .inner
        .desired
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .map(|d| (!d.restoring).then(|| (d.target.clone(), d.replicas)));
    let (target, replicas) = match entry {
        Some(Some(entry)) => entry,
        // A restore of it is running.
        Some(None) => return,
        None => {
            adopt(rt, &key);
            return;
        }
    };
    let name = edas_render::deployment_name(&target.spec.name, &target.revision);
    let reference = ObjectRef::<Deployment>::new(&name).within(&target.spec.k8s_namespace);
    let current = rt.inner.deployments.get(&reference);
    // The generation changes with the spec only (not with status updates).
    let version = current
        .as_ref()
        .map(|d| format!("{:?}/{:?}", d.metadata.uid, d.metadata.generation));
    let why = drift(current.as_deref(), replicas);
    // Whether the cache shows the very Deployment this process applied, or a later state of it.
    let shows_applied = |applied: &Option<(String, i64)>| {
        let (Some(current), Some((uid, generation))) = (current.as_deref(), applied) else {
            return false;
        };
        current.metadata.uid.as_ref() == Some(uid)
            && current
                .metadata
                .generation
                .is_some_and(|g| g >= *generation)
    };
    // Scaled (not deleted): its HPA may have chosen the count.
    let scaled_to = current
        .as_deref()
        .filter(|d| d.metadata.deletion_timestamp.is_none())
        .and_then(|d| d.spec.as_ref()?.replicas)
        .and_then(|n| u32::try_from(n).ok());
    {
        let mut desired = rt.inner.desired.lock().unwrap_or_else(|e| e.into_inner());
        let Some(d) = desired.get_mut(&key).filter(|d| d.replicas == replicas) else {
            return;
        };
        match &why {
            // As applied: from now on a difference is drift.
            None if d.settled || shows_applied(&d.applied) => {
                d.settled = true;
                d.restored = None;
                return;
            }
            // Matches by chance, before the apply's own object shows.
            None => return,
            Some(_) if !d.settled || d.restored.as_ref() == Some(&version) => return,
            Some(_) => {
                d.restoring = true;
                d.restored = Some(version);
            }
        }
    }
    let why = why.unwrap_or_default();
    let rt = rt.clone();
    // Every line of this restore names the cluster, application, revision and Deployment.
    let span = tracing::info_span!(
        "drift",
        cluster = %rt.inner.options.cluster_id,
        app_id = %target.app.id,
        revision = %target.revision,
        deployment = %name,
    );
    tokio::spawn(
        async move {
            // A Deployment scaled by the application's HPA is not drift: edasd follows the HPA's
            // count (its desired state and the Deployment's annotation) instead of restoring its own.
            if let Some(actual) = scaled_to {
                match rt.scaled_by_hpa(&target.app, &name).await {
                    Ok(true) => {
                        rt.desire(&target, actual);
                        let result = rt.apply_revision(&target, actual).await;
                        if result.is_err() {
                            rt.forget_revision(&key, actual);
                        }
                        // The HPA's decision, for the engine to record (a Scale change order).
                        let _ = rt.inner.scale_decisions.send(edas_runtime::ScaleDecision {
                            app_id: target.app.id.clone(),
                            revision: target.revision.clone(),
                            from: replicas,
                            to: actual,
                            reason: format!(
                                "HorizontalPodAutoscaler `{}` scaled Deployment `{name}`",
                                edas_render::hpa_name(&target.app.name)
                            ),
                            applied: true,
                        });
                        tracing::info!(
                            replicas = actual,
                            ok = result.is_ok(),
                            "Deployment scaled by its HorizontalPodAutoscaler from {replicas} to {actual}: followed, not restored"
                        );
                        return;
                    }
                    Ok(false) => {}
                    Err(error) => {
                        rt.release_restore(&key);
                        tracing::warn!(
                            %error,
                            "Deployment {why}: reading its HorizontalPodAutoscaler failed; retrying at its next event"
                        );
                        return;
                    }
                }
            }
            // The store has the last word: an application deleted or stopped, or a revision it no
            // longer runs (changed by another edasd process), is not brought back.
            match rt
                .inner
                .settled
                .settled_replicas(&target.app.id, &target.revision)
                .await
            {
                Ok(SettledReplicas::Runs(settled)) if settled != replicas => {
                    rt.forget_revision(&key, replicas);
                    tracing::info!(
                        settled,
                        "Deployment {why}, but the store wants {settled} instances of this revision now, not the {replicas} this process applied: left to the store's next change"
                    );
                    return;
                }
                Ok(SettledReplicas::ChangingElsewhere) => {
                    rt.forget_revision(&key, replicas);
                    tracing::debug!(
                        "Deployment {why}: a change order another edasd process drives decides its instances; left to it"
                    );
                    return;
                }
                Ok(
                    SettledReplicas::Runs(_) | SettledReplicas::ChangingHere | SettledReplicas::Unknown,
                ) => {}
                Err(error) => {
                    rt.release_restore(&key);
                    tracing::warn!(
                        %error,
                        "Deployment {why}: reading the store failed; retrying at its next event"
                    );
                    return;
                }
            }
            // Forgotten meanwhile (the application is being deleted) or changed by a newer
            // step: restoring now would bring back what was just removed.
            let still_wanted = rt
                .inner
                .desired
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .is_some_and(|d| d.replicas == replicas);
            if !still_wanted {
                return;
            }
            let result = rt.apply_revision(&target, replicas).await;
            {
                let mut desired = rt.inner.desired.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(d) = desired.get_mut(&key) {
                    d.restoring = false;
                    if result.is_err() {
                        d.restored = None;
                    }
                }
            }
            match result {
                Ok(()) => tracing::warn!(
                    namespace = %target.spec.k8s_namespace,
                    replicas,
                    "Deployment {why}: restored to what edasd applied"
                ),
                Err(error) => tracing::warn!(
                    %error,
                    "Deployment {why}: restoring it failed; retrying at its next event"
                ),
            }
        }
        .instrument(span),
    );
}

/// Drift of a revision this process did not apply (it applied it before a restart, or another
/// edasd process did): a Deployment whose replicas differ from what edasd annotated, or one the
/// cache showed and no longer does, is restored with what the store says it runs.
fn adopt(rt: &KubeRuntime, key: &(String, String)) {
    let found = rt.inner.deployments.state().into_iter().find(|d| {
        crate::label(d.as_ref(), crate::LABEL_APP_ID) == Some(key.0.as_str())
            && crate::label(d.as_ref(), crate::LABEL_REVISION) == Some(key.1.as_str())
    });
    // Scaled (not deleted): the application (for its HPA) and the count.
    let scaled = found.as_ref().and_then(|d| {
        let app = edas_runtime::AppRef {
            id: key.0.clone(),
            name: crate::label(d.as_ref(), crate::LABEL_APP)?.to_owned(),
            namespace: d.metadata.namespace.clone()?,
        };
        let actual = u32::try_from(d.spec.as_ref()?.replicas?).ok()?;
        Some((app, d.metadata.name.clone()?, actual))
    });
    let why = {
        let mut seen = rt.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
        match &found {
            Some(d) => {
                seen.insert(key.clone());
                let applied = d
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(crate::ANNOTATION_REPLICAS))
                    .and_then(|v| v.parse::<i64>().ok());
                let actual = d.spec.as_ref().and_then(|s| s.replicas).map(i64::from);
                match (applied, actual) {
                    (Some(applied), Some(actual))
                        if applied != actual && d.metadata.deletion_timestamp.is_none() =>
                    {
                        format!("was scaled to {actual} outside edasd")
                    }
                    _ => return,
                }
            }
            None if seen.remove(key) => "was deleted outside edasd".to_owned(),
            None => return,
        }
    };
    if !rt
        .inner
        .adopting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key.clone())
    {
        return;
    }
    let rt = rt.clone();
    let key = key.clone();
    let span = tracing::info_span!(
        "drift",
        cluster = %rt.inner.options.cluster_id,
        app_id = %key.0,
        revision = %key.1,
    );
    tokio::spawn(
        async move {
            let by_hpa = match &scaled {
                Some((app, deployment, actual)) => match rt.scaled_by_hpa(app, deployment).await {
                    Ok(true) => Some(*actual),
                    Ok(false) => None,
                    Err(error) => {
                        rt.inner
                            .adopting
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&key);
                        tracing::warn!(
                            %error,
                            "Deployment {why}: reading its HorizontalPodAutoscaler failed; retrying at its next event"
                        );
                        return;
                    }
                },
                None => None,
            };
            let settled = rt.inner.settled.settled_target(&key.0, &key.1).await;
            let result = match settled {
                // Scaled by its HPA: followed (edasd's annotation takes the HPA's count).
                Ok(Some((_, target))) if by_hpa.is_some() => {
                    let actual = by_hpa.unwrap_or_default();
                    rt.desire(&target, actual);
                    Some((actual, rt.apply_revision(&target, actual).await))
                }
                Ok(_) if by_hpa.is_some() => None,
                Ok(Some((replicas, target))) if replicas > 0 => {
                    // From now on this process keeps it as applied.
                    rt.desire(&target, replicas);
                    Some((replicas, rt.apply_revision(&target, replicas).await))
                }
                Ok(_) => None,
                Err(error) => Some((0, Err(edas_runtime::RuntimeError::Unavailable(error)))),
            };
            rt.inner
                .adopting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            if matches!(result, Some((_, Err(_)))) {
                // A deletion is tried again at the revision's next event.
                rt.inner
                    .seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone());
            }
            match result {
                None => {}
                Some((replicas, Ok(()))) if by_hpa.is_some() => tracing::info!(
                    replicas,
                    "Deployment scaled by its HorizontalPodAutoscaler: followed, not restored"
                ),
                Some((replicas, Ok(()))) => tracing::warn!(
                    replicas,
                    "Deployment {why}: restored to what the store says it runs"
                ),
                Some((_, Err(error))) => tracing::warn!(
                    %error,
                    "Deployment {why}: restoring it from the store failed; retrying at its next event"
                ),
            }
        }
        .instrument(span),
    );
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
