//! An application's enabled scaling rule, as the runtime takes it: the engine reads it from
//! the store and hands it over (the runtime never asks the store). A release plans its batches
//! against the count the autoscaler wants (`submit`); while a change order of the application
//! runs, its autoscaler is held (`held`: it keeps the count the release planned, so it cannot
//! fight the batches); when the order ends the autoscaler is pointed at the revision that
//! serves and resumes ([`reassert`], retried until the runtime takes it, and again at start-up
//! and whenever a cluster answers again, so a crash or an outage never leaves it held or
//! aimed at a revision that no longer runs).
//!
//! An autoscaler that scales through edasd (the local one) tells its decisions
//! ([`edas_runtime::Runtime::scale_decisions`]); each becomes a Scale change order created by
//! `autoscaler` with the reason in its description ([`carry_out`]), so it is durable, shows in
//! ListRecentChangeOrder and GetChangeOrderInfo, and produces the usual release events.

use std::sync::Arc;
use std::time::Duration;

use edas_runtime::{
    AppRef, Autoscaler, Autoscaling, Runtime, ScaleDecision, ScaleDirection, ScaleMetric,
    ScalePolicy,
};
use edas_spec::{Change, Operation};
use edas_store::{Application, ScalingRule, Store, StoreError};

use crate::{Engine, Inner, Submission};

/// The creator of the change orders an autoscaler's decisions become.
pub const AUTOSCALER: &str = "autoscaler";

fn direction(d: &edas_store::ScalingDirection) -> ScaleDirection {
    ScaleDirection {
        stabilization_window_seconds: d.stabilization_window_seconds,
        select_policy: d.select_policy.clone(),
        policies: d
            .policies
            .iter()
            .map(|p| ScalePolicy {
                kind: p.kind.clone(),
                value: p.value,
                period_seconds: p.period_seconds,
            })
            .collect(),
    }
}

/// A stored rule in the runtime's terms.
pub fn autoscaler(rule: &ScalingRule) -> Autoscaler {
    Autoscaler {
        min_replicas: rule.min_replicas,
        max_replicas: rule.max_replicas,
        metrics: rule
            .doc
            .metrics
            .iter()
            .map(|m| ScaleMetric {
                kind: m.kind.clone(),
                target_utilization: m.target_utilization,
            })
            .collect(),
        scale_up: rule.doc.scale_up.as_ref().map(direction),
        scale_down: rule.doc.scale_down.as_ref().map(direction),
    }
}

/// The application's enabled rule (the application layer lets at most one be enabled; the
/// first by name if the store has several).
pub async fn enabled_rule(store: &Store, app_id: &str) -> Result<Option<Autoscaler>, StoreError> {
    Ok(store
        .scaling_rules(app_id)
        .await?
        .iter()
        .find(|r| r.enabled)
        .map(autoscaler))
}

/// The instance count a release plans against: what the autoscaler wants now, within the
/// rule's bounds, when the application has an enabled rule and its autoscaler decided;
/// otherwise `stored`.
pub fn planned(rule: Option<&Autoscaler>, wanted: Option<u32>, stored: u32) -> u32 {
    match (rule, wanted) {
        (Some(rule), Some(wanted)) => {
            wanted.clamp(rule.min_replicas, rule.max_replicas.max(rule.min_replicas))
        }
        (Some(rule), None) => {
            stored.clamp(rule.min_replicas, rule.max_replicas.max(rule.min_replicas))
        }
        (None, _) => stored,
    }
}

/// What the application's autoscaler must be now, from the store: the enabled rule (`None`:
/// no autoscaler) scaling the revision that serves (the one before a change order in flight,
/// or before an aborted one; else the current one), held while a change order is open (a
/// failed one included: its revisions are mixed until it is retried or superseded).
pub async fn serving(store: &Store, app: &Application) -> Result<Option<Autoscaling>, StoreError> {
    let Some(rule) = enabled_rule(store, &app.id).await? else {
        return Ok(None);
    };
    let active = store.active_change_order(&app.id).await?;
    let (revision, held) = match &active {
        Some(co) => (
            co.state
                .previous()
                .map(|p| p.revision.0.clone())
                .unwrap_or_else(|| app.spec.template_revision.clone()),
            true,
        ),
        None => {
            let last = store
                .list_change_orders(&app.id, edas_store::PageRequest::new(1, 1))
                .await?
                .items
                .into_iter()
                .next()
                .map(|o| o.state)
                .filter(|s| s.status() == edas_release::Status::Terminated);
            let revision = last
                .as_ref()
                .and_then(|s| s.previous())
                .map(|p| p.revision.0.clone())
                .unwrap_or_else(|| app.spec.template_revision.clone());
            (revision, false)
        }
    };
    Ok(Some(Autoscaling {
        revision,
        rule,
        held,
    }))
}

/// The lock that makes each read of the store and the write of the autoscaler it decides one
/// step per application, so a resume at the end of one order and the hold at the start of the
/// next cannot cross (the later one always reads the newer state). Process-wide, keyed by
/// application id; an entry nobody holds is dropped.
fn one_at_a_time(app_id: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: std::sync::LazyLock<
        std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    > = std::sync::LazyLock::new(Default::default);
    let mut locks = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    locks.retain(|_, l| Arc::strong_count(l) > 1);
    locks.entry(app_id.to_owned()).or_default().clone()
}

/// How long [`reassert`] keeps trying a runtime that answers but fails.
const REASSERT_GIVE_UP: Duration = Duration::from_secs(120);

/// Makes the application's autoscaler what the store says ([`serving`]); with `remove`, an
/// application without an enabled rule has its autoscaler removed (after a disable or delete
/// whose removal failed), else it is left alone. A cluster that does not answer is waited for
/// (its return is an event), one that answers but fails is tried again with bounded back-off
/// (200 ms doubling to 5 s, for two minutes); each attempt reads the store again, so the
/// newest state wins. Idempotent.
pub(crate) async fn reassert(inner: &Inner, app_id: &str, remove: bool) {
    let mut delay = Duration::from_millis(200);
    let mut started = tokio::time::Instant::now();
    loop {
        let runtime = match reassert_once(inner, app_id, remove).await {
            Ok(()) => return,
            Err((error, Some(runtime))) if started.elapsed() < REASSERT_GIVE_UP => {
                tracing::info!(message = "Setting the autoscaler failed; retrying.", %app_id, %error);
                runtime
            }
            Err((error, _)) => {
                tracing::warn!(message = "Setting the autoscaler failed; it is set again at start-up and when the next change order ends.", %app_id, %error);
                return;
            }
        };
        if runtime.availability().is_err() {
            tokio::select! {
                _ = inner.shutdown.cancelled() => return,
                _ = runtime.wait_available() => {}
            }
            (delay, started) = (Duration::from_millis(200), tokio::time::Instant::now());
            continue;
        }
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// One attempt of [`reassert`]; the error carries the runtime when another attempt may help.
async fn reassert_once(
    inner: &Inner,
    app_id: &str,
    remove: bool,
) -> Result<(), (String, Option<Arc<dyn Runtime>>)> {
    let _one = one_at_a_time(app_id).lock_owned().await;
    // Most applications have no rule: learn that from the rules alone, before reading (and
    // decoding) the application, which every order's end would otherwise pay for. (A removal
    // reads on: the application may be gone, or its last rule just disabled.)
    if !remove {
        match enabled_rule(&inner.store, app_id).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) => {}
            Err(e) => return Err((e.to_string(), None)),
        }
    }
    let app = match inner.store.get_application(app_id).await {
        Ok(app) => app,
        Err(StoreError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err((e.to_string(), None)),
    };
    let Some(runtime) = inner.runtimes.get(&app.cluster_id).cloned() else {
        return Ok(());
    };
    let wanted = if app.deleted {
        None
    } else {
        serving(&inner.store, &app)
            .await
            .map_err(|e| (e.to_string(), Some(runtime.clone())))?
    };
    if wanted.is_none() && !app.deleted && !remove {
        // No enabled rule, and none was just disabled: nothing to do.
        return Ok(());
    }
    runtime
        .set_autoscaling(&crate::target::app_ref(&app), wanted.as_ref())
        .await
        .map_err(|e| {
            let again = matches!(e, edas_runtime::RuntimeError::Unavailable(_));
            (e.to_string(), again.then_some(runtime.clone()))
        })
}

/// Sets the application's autoscaler again from the store in the background (see
/// [`reassert`]), removing it when no rule is enabled: what the application layer asks when
/// applying a stored rule change failed.
pub fn reassert_later(engine: &Engine, app_id: &str) {
    let (inner, app_id) = (engine.inner.clone(), app_id.to_owned());
    engine.inner.spawn(async move {
        reassert(&inner, &app_id, true).await;
    });
}

/// At start-up, sets the autoscaler of every application with a scaling rule again from the
/// store, or removes it when none is enabled (the local one lives in this process; a
/// cluster's HPA may be held by an order that ended while edasd was down, or outlive a rule
/// disabled while the cluster did not answer), for each cluster once it answers.
pub(crate) fn reconcile(inner: &Arc<Inner>) {
    for (cluster_id, runtime) in &inner.runtimes.0 {
        let (i, cluster_id, runtime) = (inner.clone(), cluster_id.clone(), runtime.clone());
        inner.tasks.spawn(async move {
            tokio::select! {
                _ = i.shutdown.cancelled() => return,
                _ = runtime.wait_available() => {}
            }
            match i.store.applications_with_scaling_rules(Some(&cluster_id)).await {
                Ok(apps) => {
                    for app_id in apps {
                        reassert(&i, &app_id, true).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(message = "Listing autoscaled applications failed; their autoscalers are set when their next change order ends.", cluster = %cluster_id, %error)
                }
            }
        });
    }
}

/// Holds the application's autoscaler at the revision that serves while `order` runs (the
/// driver calls it when it starts or resumes an order). A failure is logged: the release
/// still proceeds, and [`reassert`] sets the autoscaler when the order ends.
pub(crate) async fn hold(inner: &Inner, runtime: &Arc<dyn Runtime>, app: &AppRef) {
    let _one = one_at_a_time(&app.id).lock_owned().await;
    // Most applications have no enabled rule: learn that from the rules alone before reading
    // (and decoding) the application, which every order's start would otherwise pay for.
    let held = match enabled_rule(&inner.store, &app.id).await {
        Ok(None) => Ok(None),
        Ok(Some(_)) => match inner.store.get_application(&app.id).await {
            Ok(a) => serving(&inner.store, &a).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match held {
        Ok(Some(autoscaling)) => {
            if let Err(error) = runtime.set_autoscaling(app, Some(&autoscaling)).await {
                tracing::warn!(message = "Holding the autoscaler during a change order failed.", app_id = %app.id, %error);
            }
        }
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(message = "Reading the scaling rule failed; the autoscaler is not held.", app_id = %app.id, %error)
        }
    }
}

/// Listens to a runtime's autoscaler decisions and carries each out.
pub(crate) async fn listen(inner: Arc<Inner>, runtime: Arc<dyn Runtime>) {
    let Some(mut decisions) = runtime.scale_decisions() else {
        return;
    };
    loop {
        let decision = tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            d = decisions.recv() => d,
        };
        match decision {
            Ok(decision) => {
                let engine = Engine {
                    inner: inner.clone(),
                };
                carry_out(&engine, decision).await;
            }
            // A decision lost to a lag is decided again at the autoscaler's next sample.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// The description of the change order of `decision`:
/// `autoscaler: 2 → 4 (cpu 85% > target 60%)` (its creation is also a `scaling` release
/// event).
pub fn description(decision: &ScaleDecision, to: u32) -> String {
    format!(
        "{}{} → {to} ({})",
        edas_release::AUTOSCALER_PREFIX,
        decision.from,
        decision.reason
    )
}

/// Stores `decision` as a Scale change order created by `autoscaler` and wakes the engine to
/// carry it out. A decision that no longer applies (the rule was disabled, a change order is
/// in flight, the revision or count changed meanwhile, the application is stopped) is
/// dropped: the autoscaler decides again from the new state.
pub async fn carry_out(engine: &Engine, decision: ScaleDecision) {
    let change = match scale_change(&engine.inner, &decision).await {
        Ok(Ok(change)) => change,
        Ok(Err(why)) => {
            tracing::debug!(message = "Autoscaler decision dropped.", app_id = %decision.app_id, from = decision.from, to = decision.to, %why);
            return;
        }
        Err(error) => {
            tracing::warn!(message = "Reading the application for an autoscaler decision failed; the autoscaler decides again.", app_id = %decision.app_id, %error);
            return;
        }
    };
    let to = change.spec.replicas;
    let req = Submission {
        app_id: decision.app_id.clone(),
        change,
        actor: AUTOSCALER.to_owned(),
        request_id: String::new(),
    };
    match engine.submit(req).await {
        Ok(submitted) => {
            tracing::info!(message = "Autoscaler decision stored as a change order.", app_id = %decision.app_id, change_order = %submitted.change_order_id, from = decision.from, to, reason = %decision.reason)
        }
        Err(error) => {
            tracing::info!(message = "Autoscaler decision refused; the autoscaler decides again.", app_id = %decision.app_id, from = decision.from, to, %error)
        }
    }
}

/// The ScaleK8sApplication change `decision` asks for, or why it no longer applies.
async fn scale_change(
    inner: &Inner,
    decision: &ScaleDecision,
) -> Result<Result<Change, String>, StoreError> {
    let app = inner.store.get_application(&decision.app_id).await?;
    if app.deleted || app.spec.spec.stopped {
        return Ok(Err("the application is stopped or deleted".to_owned()));
    }
    let Some(rule) = enabled_rule(&inner.store, &app.id).await? else {
        return Ok(Err("no scaling rule is enabled".to_owned()));
    };
    if let Some(active) = inner.store.active_change_order(&app.id).await? {
        return Ok(Err(format!("change order {} is in flight", active.id)));
    }
    if app.spec.template_revision != decision.revision {
        return Ok(Err(format!(
            "revision {} serves now, not {}",
            app.spec.template_revision, decision.revision
        )));
    }
    let to = planned(Some(&rule), Some(decision.to), decision.to);
    if to == app.spec.spec.replicas {
        return Ok(Err(format!("the application runs {to} already")));
    }
    let mut spec = app.spec.spec.clone();
    spec.replicas = to;
    Ok(Ok(Change {
        operation: Operation::ScaleK8sApplication,
        app_id: Some(app.id.clone()),
        region_id: None,
        force: false,
        spec,
        release: edas_spec::ReleaseSettings {
            description: Some(description(decision, to)),
            ..Default::default()
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_follows_the_autoscaler_within_the_rule() {
        let rule = Autoscaler {
            min_replicas: 2,
            max_replicas: 6,
            metrics: vec![],
            scale_up: None,
            scale_down: None,
        };
        assert_eq!(planned(Some(&rule), Some(5), 3), 5);
        assert_eq!(planned(Some(&rule), Some(9), 3), 6);
        assert_eq!(planned(Some(&rule), None, 1), 2);
        assert_eq!(planned(Some(&rule), None, 4), 4);
        assert_eq!(planned(None, Some(5), 3), 3);
    }
}
