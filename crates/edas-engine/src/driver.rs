//! One task per claimed change order: step, persist, act; react to runtime events, timers and
//! control calls. The engine renews the leases of all drivers at once; a finishing transition
//! releases the lease, and a shutdown keeps it (handed over in one write).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use edas_release::{
    ChangeKind, ChangeOrder, Effect, EpochMillis, Input, InstanceEntry, Observation, RevisionId,
    Status, Timer,
};
use edas_runtime::{AppRef, Runtime, RuntimeError, Target};
use edas_store::{StoreError, Transition};
use serde_json::json;
use tokio::sync::mpsc;

use crate::{DriverMsg, Inner, RevisionDoc, audit, mapping};

/// What a control call did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlOutcome {
    /// The change order's status afterwards.
    pub status: i32,
    /// The rollback change order it started, if any.
    pub rollback_change_order: Option<String>,
}

/// Why a control call was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such change order (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The input does not apply to the order's state (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// The order moved on concurrently, or another process drives it (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// Storage or runtime failure (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { entity, id } => {
                ControlError::NotFound(format!("{entity} {id} does not exist"))
            }
            e @ (StoreError::Stale { .. }
            | StoreError::Conflict { .. }
            | StoreError::ActiveChangeOrder { .. }
            | StoreError::LeaseNotHeld { .. }) => ControlError::Conflict(e.to_string()),
            StoreError::Finished { id } => {
                ControlError::Invalid(format!("change order {id} is finished"))
            }
            other => ControlError::Internal(other.to_string()),
        }
    }
}

/// The first wait before runtime work that failed transiently is tried again; it doubles up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(200);
/// The longest wait between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long runtime writes may keep failing transiently before the order fails with the last
/// reason (a cluster that stays away is an outage, not a hiccup).
const RETRY_GIVE_UP: Duration = Duration::from_secs(120);

/// Runtime work owed after a transient failure (`RuntimeError::Unavailable`: the cluster did
/// not answer, or answered nothing after applying), tried again with bounded back-off rather
/// than failing the order or waiting for the next event. Every write is idempotent, so a write
/// the runtime applied before its answer was lost is simply applied again.
struct Retry {
    /// Revision → the replicas whose write is owed (a newer write of the revision replaces it).
    replicas: BTreeMap<String, u32>,
    /// Revisions whose failed instances are owed a re-creation.
    recreate: BTreeSet<String>,
    /// An observation failed: observe again.
    observe: bool,
    /// When the next attempt runs (`None`: nothing owed).
    at: Option<tokio::time::Instant>,
    /// The wait before the attempt after that one.
    delay: Duration,
    /// Since when writes have kept failing (for [`RETRY_GIVE_UP`]).
    since: Option<tokio::time::Instant>,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            replicas: BTreeMap::new(),
            recreate: BTreeSet::new(),
            observe: false,
            at: None,
            delay: RETRY_FIRST,
            since: None,
        }
    }
}

impl Retry {
    /// Schedules the next attempt (unless one is scheduled).
    fn arm(&mut self) {
        if self.at.is_none() {
            self.at = Some(tokio::time::Instant::now() + self.delay);
            self.delay = (self.delay * 2).min(RETRY_MAX);
        }
    }

    /// Whether a failed write is retried (`None`) or fails the order (`Some(reason)`): a
    /// permanent refusal fails it at once with the runtime's reason, a transient failure once
    /// writes have kept failing for [`RETRY_GIVE_UP`].
    fn write_failed(&mut self, error: &RuntimeError) -> Option<String> {
        if !matches!(error, RuntimeError::Unavailable(_)) {
            return Some(error.to_string());
        }
        let since = *self.since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() >= RETRY_GIVE_UP {
            return Some(format!(
                "{error} (still failing after retrying for {:?})",
                since.elapsed()
            ));
        }
        self.arm();
        None
    }

    /// Whether nothing is owed any more (and the back-off starts over).
    fn settle(&mut self) {
        if self.replicas.is_empty() && self.recreate.is_empty() && self.at.is_none() {
            self.since = None;
            self.delay = RETRY_FIRST;
        }
    }
}

/// Whether the store should consider the order finished: success and termination are final;
/// a failed order stays open for RetryChangeOrderTask until a newer change supersedes it.
fn store_finished(status: Status) -> bool {
    !(status.is_active() || status.is_failure())
}

/// Counts a driver in [`crate::Engine::driven`] while it lives.
struct Driven(Arc<Inner>);

impl Driven {
    fn count(inner: Arc<Inner>) -> Driven {
        inner
            .driven
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Driven(inner)
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        self.0
            .driven
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether a finished order's routing is in place.
enum Routed {
    Applied,
    /// A transient failure: the retry timer is armed.
    Later,
    /// Refused, or failing for too long: the order fails with this input.
    Failed(Input),
}

struct Driver {
    inner: Arc<Inner>,
    id: String,
    app_id: String,
    /// The application, as runtime calls name it.
    app: AppRef,
    version: i64,
    order: ChangeOrder,
    runtime: Arc<dyn Runtime>,
    /// The application's cluster (whose sweeper removes a deleted application's objects).
    cluster_id: String,
    /// The targets of the revisions this order touched, by revision (read once).
    targets: HashMap<String, Target>,
    timers: BTreeMap<Timer, EpochMillis>,
    last_seen: HashMap<String, (u32, u32, Option<String>, Vec<InstanceEntry>)>,
    lost: bool,
    /// The application's current revision document (the desired state this order carries out).
    doc: RevisionDoc,
    /// The routing last applied to the runtime by this driver (`None`: not yet).
    routed: Option<edas_runtime::Routing>,
    /// Set when the application was deleted: the cluster whose sweeper to wake once this
    /// driver is gone.
    sweep: Option<String>,
    /// Runtime work owed after transient failures.
    retry: Retry,
    /// The release analysis, as last persisted with the order (issue 21).
    analysis: Option<edas_analysis::Analysis>,
    /// Checks with a measurement in flight (their task reports back through `mailbox`).
    measuring: BTreeSet<String>,
    /// The input that would have ended the order in success, held back because the routing of
    /// the finished order could not be applied yet: stepped again once the retry applies it.
    /// An order reads success only once its Services and traffic are what it promised.
    deferred_success: Option<Input>,
    /// This driver's own channel, for its measurement tasks (weak: the driver ends as before).
    mailbox: Option<mpsc::WeakUnboundedSender<DriverMsg>>,
}

/// What the process that stored an order already holds, so its driver does not read it again.
pub(crate) struct Known {
    /// The application as the order's own deploy stored it.
    pub app: edas_store::Application,
    /// The revision the order leaves (its id and document), when the deploy had it at hand.
    pub leaving: Option<(String, edas_spec::RevisionDoc)>,
}

pub(crate) async fn drive(
    inner: Arc<Inner>,
    record: edas_store::ChangeOrder,
    app: Option<Box<Known>>,
    mut rx: mpsc::UnboundedReceiver<DriverMsg>,
) {
    let id = record.id.clone();
    let app_id = record.app_id.clone();
    let mut sweep = None;
    // Boxed: a driver's futures are deep, and a debug build's thread stack is not.
    match Box::pin(Driver::load(inner.clone(), record, app)).await {
        Ok(mut d) => {
            Box::pin(d.run(&mut rx)).await;
            sweep = d.sweep.take();
        }
        Err(error) => {
            tracing::error!(message = "Cannot drive change order.", change_order = %id, %error)
        }
    }
    {
        let mut drivers = inner.drivers.lock().unwrap_or_else(|p| p.into_inner());
        if drivers.get(&app_id).is_some_and(|(o, _)| *o == id) {
            drivers.remove(&app_id);
        }
    }
    // Once no driver of the application is left, its cluster's sweeper may remove it all.
    if let Some(cluster_id) = sweep {
        inner.kick_sweeper(&cluster_id);
    }
    // Drain control calls that raced with the end of the driver: answer them from the store.
    rx.close();
    while let Some(msg) = rx.recv().await {
        if let DriverMsg::Control {
            input,
            actor,
            request_id,
            reply,
        } = msg
        {
            let _ = reply.send(Box::pin(direct(&inner, &id, input, &actor, &request_id)).await);
        }
    }
}

impl Driver {
    /// `known`: what the order's own deploy stored and left (not read again).
    async fn load(
        inner: Arc<Inner>,
        record: edas_store::ChangeOrder,
        known: Option<Box<Known>>,
    ) -> Result<Driver, String> {
        let order = record.state;
        let (known, leaving) = match known.map(|k| *k) {
            Some(Known { app, leaving }) => (Some(app), leaving),
            None => (None, None),
        };
        let app = match known {
            Some(app) if app.id == record.app_id => app,
            _ => inner
                .store
                .get_application(&record.app_id)
                .await
                .map_err(|e| e.to_string())?,
        };
        let runtime = inner
            .runtimes
            .get(&app.cluster_id)
            .cloned()
            .ok_or_else(|| format!("no runtime for cluster {}", app.cluster_id))?;
        let timers = order.armed_timers().into_iter().collect();
        let app_ref = crate::target::app_ref(&app);
        // The order releases the application's current revision (a new template): its
        // document is the application's, read just now, so it is not read again.
        let mut targets = HashMap::new();
        let to = order.to_revision().0.clone();
        if app.current_revision.to_string() == to {
            let target = crate::target::doc_target(&inner.store, &app_ref, &to, &app.spec).await?;
            targets.insert(to, target);
        }
        // The revision it leaves, as the deploy read it.
        if let Some((from, doc)) = leaving
            && order.previous().is_some_and(|p| p.revision.0 == from)
            && !targets.contains_key(&from)
        {
            let target = crate::target::doc_target(&inner.store, &app_ref, &from, &doc).await?;
            targets.insert(from, target);
        }
        let analysis = crate::analysis::decode(&order);
        let mailbox = inner
            .drivers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&record.app_id)
            .filter(|(o, _)| *o == record.id)
            .map(|(_, tx)| tx.downgrade());
        Ok(Driver {
            inner,
            id: record.id,
            app_id: record.app_id,
            app: app_ref,
            version: record.version,
            order,
            runtime,
            cluster_id: app.cluster_id.clone(),
            targets,
            timers,
            last_seen: HashMap::new(),
            lost: false,
            doc: app.spec.clone(),
            routed: None,
            sweep: None,
            retry: Retry::default(),
            analysis,
            measuring: BTreeSet::new(),
            mailbox,
            deferred_success: None,
        })
    }

    async fn run(&mut self, rx: &mut mpsc::UnboundedReceiver<DriverMsg>) {
        // An autoscaler keeps the count this order planned until it ends.
        crate::autoscaling::hold(&self.inner, &self.runtime, &self.app).await;
        // Start a new order; resume one a previous process left in flight.
        let first = if self.order.status() == Status::Ready {
            self.step(Input::Start, "system", "").await.map(|_| ())
        } else {
            let fx = self.order.resume_effects(self.inner.clock.now());
            self.execute(fx).await;
            if let Some(failure) = self.route().await {
                let _ = self.step(failure, "system", "").await;
            }
            self.observe_all().await;
            Ok(())
        };
        if let Err(error) = first {
            tracing::warn!(message = "Starting a change order failed.", change_order = %self.id, %error);
        }
        if self.order.status() == Status::Ready && self.deferred_success.is_none() {
            // The start could not even be persisted; another process will retry it.
            return;
        }
        let _driven = Driven::count(self.inner.clone());
        while !self.lost && store_active(self.order.status()) {
            self.sync_analysis().await;
            if self.lost || !store_active(self.order.status()) {
                break;
            }
            let measure_at = self.next_measurement();
            let next_timer = self
                .timers
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(t, at)| (*t, *at));
            let sleep_until = next_timer.map(|(_, at)| self.inner.clock.instant_at(at));
            let retry_at = self.retry.at;
            tokio::select! {
                // The lease is kept: the engine hands every lease over in one write once
                // all drivers stopped.
                _ = self.inner.shutdown.cancelled() => return,
                msg = rx.recv() => match msg {
                    None => return,
                    Some(DriverMsg::Runtime) => self.observe_all().await,
                    Some(DriverMsg::LeaseLost) => {
                        self.lease_lost().await;
                        return;
                    }
                    Some(DriverMsg::Stop) => {
                        tracing::debug!(message = "Change order ended by a deletion; its driver stops.", change_order = %self.id);
                        self.lost = true;
                        return;
                    }
                    Some(DriverMsg::Control { input, actor, request_id, reply }) => {
                        let r = self.step(input, &actor, &request_id).await;
                        let _ = reply.send(r);
                    }
                    Some(DriverMsg::Measured { check, result }) => self.record(check, result).await,
                },
                _ = tokio::time::sleep_until(measure_at.unwrap_or_else(tokio::time::Instant::now)), if measure_at.is_some() => {
                    self.measure_due();
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)), if retry_at.is_some() => {
                    self.retry_owed().await;
                }
                _ = tokio::time::sleep_until(sleep_until.unwrap_or_else(tokio::time::Instant::now)), if sleep_until.is_some() => {
                    if let Some((timer, _)) = next_timer {
                        self.timers.remove(&timer);
                        if let Err(error) = self.step(Input::TimerFired(timer), "system", "").await {
                            tracing::warn!(message = "Timer step refused.", change_order = %self.id, %error);
                        }
                    }
                }
            }
        }
        // Nothing to give back: the loop ends when the order is finished, and the transition
        // that finished it released the lease in its transaction.
    }

    /// Steps the machine with `input` and everything it leads to: persist, then act.
    async fn step(
        &mut self,
        input: Input,
        actor: &str,
        request_id: &str,
    ) -> Result<ControlOutcome, ControlError> {
        let mut queue = VecDeque::from([input]);
        let mut rollback = None;
        let mut first = true;
        while let Some(input) = queue.pop_front() {
            let now = self.inner.clock.now();
            let mut next = self.order.clone();
            let label = input_label(&input);
            let replay = input.clone();
            let fx = match next.step(input, now) {
                Ok(fx) => fx,
                Err(e) if first => return Err(ControlError::Invalid(e.to_string())),
                Err(e) => {
                    tracing::warn!(message = "Follow-up step refused.", change_order = %self.id, error = %e);
                    continue;
                }
            };
            first = false;
            if self.order.is_active() && !next.is_active() {
                // The analysis ends with the order, in the same transition.
                crate::analysis::close(&mut next);
            }
            if next == self.order && fx.is_empty() {
                continue;
            }
            // Any other step supersedes an input held back for the routing.
            self.deferred_success = None;
            if next.status() == Status::Success && self.order.status() != Status::Success {
                match self.route_for(&next).await {
                    Routed::Applied => {}
                    Routed::Later => {
                        self.deferred_success = Some(replay);
                        continue;
                    }
                    Routed::Failed(failure) => {
                        queue.push_front(failure);
                        continue;
                    }
                }
            }
            let new_rollback = fx.iter().find_map(|e| match e {
                Effect::StartRollback(o) => Some((**o).clone()),
                _ => None,
            });
            let follow_up = match &new_rollback {
                Some(r) => {
                    Some(rollback_deploy(&self.inner, &self.app_id, r, actor, request_id).await?)
                }
                None => None,
            };
            self.persist(&next, actor, request_id, label, follow_up)
                .await?;
            if let Some(r) = new_rollback {
                self.inner.wake_claimer();
                rollback = Some(r.id().to_owned());
            }
            let failures = self.execute(fx).await;
            queue.extend(failures);
            queue.extend(self.route().await);
        }
        if !store_active(self.order.status()) {
            self.finish().await;
        }
        Ok(ControlOutcome {
            status: self.order.status().code(),
            rollback_change_order: rollback,
        })
    }

    async fn persist(
        &mut self,
        next: &ChangeOrder,
        actor: &str,
        request_id: &str,
        label: &str,
        follow_up: Option<edas_store::FollowUpDeploy>,
    ) -> Result<(), ControlError> {
        let status = next.status();
        let transition = transition(&self.order, next);
        let entry = audit(
            actor,
            "ChangeOrder.Transition",
            &self.app_id,
            request_id,
            json!({"change_order": self.id, "input": label, "from": self.order.status().code(), "to": status.code()}),
        );
        let now = self.inner.clock.timestamp();
        let store = &self.inner.store;
        let started = std::time::Instant::now();
        let written = match follow_up {
            None => {
                store
                    .transition(&self.id, self.version, transition, entry, now)
                    .await
            }
            Some(follow_up) => store
                .transition_and_deploy(&self.id, self.version, transition, entry, follow_up, now)
                .await
                .map(|(version, _, _)| version),
        };
        crate::release_log::store_latency("transition", started);
        match written {
            Ok(v) => {
                self.version = v;
                crate::release_log::log_events(&self.app_id, Some(&self.order), next);
                self.order = next.clone();
                Ok(())
            }
            Err(e @ (StoreError::Stale { .. } | StoreError::Finished { .. })) => {
                // Someone else moved the order on (a takeover, or a supersede): stop driving it.
                self.lost = true;
                Err(ControlError::Conflict(e.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Runs effects in order; returns inputs that report failures to carry them out.
    async fn execute(&mut self, fx: Vec<Effect>) -> Vec<Input> {
        let mut follow = Vec::new();
        for effect in fx {
            match effect {
                Effect::SetReplicas { revision, replicas } => {
                    // This write replaces one still owed for the revision.
                    self.retry.replicas.remove(&revision.0);
                    match self.target(&revision).await {
                        Ok(target) => {
                            if let Err(e) = self.runtime.set_replicas(&target, replicas).await {
                                match self.retry.write_failed(&e) {
                                    None => {
                                        tracing::info!(message = "Scaling a revision failed; retrying.", app_id = %self.app_id, %revision, error = %e);
                                        self.retry.replicas.insert(revision.0.clone(), replicas);
                                    }
                                    Some(reason) => follow.push(Input::SystemFailure { reason }),
                                }
                            }
                        }
                        Err(reason) => follow.push(Input::SystemFailure { reason }),
                    }
                }
                Effect::RecreateFailed { revision } => {
                    self.retry.recreate.remove(&revision.0);
                    if let Err(e) = self.runtime.recreate_failed(&self.app, &revision.0).await {
                        match self.retry.write_failed(&e) {
                            None => {
                                tracing::info!(message = "Replacing failed instances failed; retrying.", app_id = %self.app_id, %revision, error = %e);
                                self.retry.recreate.insert(revision.0.clone());
                            }
                            Some(reason) => follow.push(Input::SystemFailure { reason }),
                        }
                    }
                }
                Effect::ArmTimer { timer, at } => {
                    self.timers.insert(timer, at);
                }
                Effect::CancelTimer { timer } => {
                    self.timers.remove(&timer);
                }
                Effect::Finished { .. } | Effect::StartRollback(_) => {}
            }
        }
        follow
    }

    /// Applies the routing the stored state calls for now, if it differs from what this driver
    /// last applied (so a step that does not change it costs nothing); a refusal fails the
    /// order like any other runtime failure.
    async fn route(&mut self) -> Option<Input> {
        let wanted = crate::routing::routing(&self.doc, Some(&self.order));
        if self.routed.as_ref() == Some(&wanted) {
            return None;
        }
        match self.runtime.set_routing(&self.app, &wanted).await {
            Ok(()) => {
                self.routed = Some(wanted);
                None
            }
            // `routed` stays as it was, so a retry applies the routing again.
            Err(e) if store_active(self.order.status()) => match self.retry.write_failed(&e) {
                None => {
                    tracing::info!(message = "Applying the routing failed; retrying.", app_id = %self.app_id, error = %e);
                    None
                }
                Some(reason) => Some(Input::SystemFailure {
                    reason: format!("routing traffic: {reason}"),
                }),
            },
            Err(error) => {
                tracing::warn!(message = "Applying the routing failed.", app_id = %self.app_id, %error);
                None
            }
        }
    }

    /// Applies the routing of `finished` (the order as it is about to read success) before that
    /// is persisted: a Service-only change, or the last batch's traffic, is in place when a
    /// client first sees status 2. The desired state is already durable, so applying ahead of
    /// the transition is safe: a restart re-derives and re-applies the same routing.
    async fn route_for(&mut self, finished: &ChangeOrder) -> Routed {
        let wanted = crate::routing::routing(&self.doc, Some(finished));
        if self.routed.as_ref() == Some(&wanted) {
            return Routed::Applied;
        }
        match self.runtime.set_routing(&self.app, &wanted).await {
            Ok(()) => {
                self.routed = Some(wanted);
                Routed::Applied
            }
            Err(e) => match self.retry.write_failed(&e) {
                None => {
                    tracing::info!(message = "Applying the finished order's routing failed; retrying before it reads success.", app_id = %self.app_id, error = %e);
                    Routed::Later
                }
                Some(reason) => Routed::Failed(Input::SystemFailure {
                    reason: format!("routing traffic: {reason}"),
                }),
            },
        }
    }

    async fn target(&mut self, revision: &RevisionId) -> Result<Target, String> {
        if let Some(target) = self.targets.get(&revision.0) {
            return Ok(target.clone());
        }
        let target =
            crate::target::stored_target(&self.inner.store, &self.app, &revision.0).await?;
        self.targets.insert(revision.0.clone(), target.clone());
        Ok(target)
    }

    /// Tries the runtime work owed after transient failures again (its back-off timer fired):
    /// the owed writes, the routing, then an observation (which a failed write or observation
    /// left stale).
    async fn retry_owed(&mut self) {
        self.retry.at = None;
        let mut fx: Vec<Effect> = std::mem::take(&mut self.retry.replicas)
            .into_iter()
            .map(|(revision, replicas)| Effect::SetReplicas {
                revision: RevisionId(revision),
                replicas,
            })
            .collect();
        fx.extend(
            std::mem::take(&mut self.retry.recreate)
                .into_iter()
                .map(|revision| Effect::RecreateFailed {
                    revision: RevisionId(revision),
                }),
        );
        let mut failures = self.execute(fx).await;
        failures.extend(self.route().await);
        // The input held back for the routing goes first: stepping it applies that routing.
        if let Some(input) = self.deferred_success.take() {
            failures.insert(0, input);
        }
        for failure in failures {
            if let Err(error) = self.step(failure, "system", "").await {
                tracing::warn!(message = "Failing the change order after a runtime failure was refused.", change_order = %self.id, %error);
            }
        }
        // After the steps: one that failed again keeps the back-off (and its give-up clock).
        self.retry.settle();
        self.observe_all().await;
    }

    /// Observes the revisions the order is about and steps on every change; an observation
    /// that fails is tried again with bounded back-off.
    async fn observe_all(&mut self) {
        self.retry.observe = false;
        let mut revisions = vec![self.order.to_revision().clone()];
        if let Some(p) = self.order.previous()
            && p.revision != revisions[0]
        {
            revisions.push(p.revision.clone());
        }
        for revision in revisions {
            if !store_active(self.order.status()) || self.lost {
                return;
            }
            let state = match self.runtime.observe(&self.app, &revision.0).await {
                Ok(s) => s,
                Err(error) => {
                    tracing::warn!(message = "Observing a revision failed; retrying.", app_id = %self.app_id, %revision, %error);
                    self.retry.observe = true;
                    self.retry.arm();
                    continue;
                }
            };
            let instances: Vec<InstanceEntry> = state
                .instances
                .iter()
                .map(|i| InstanceEntry {
                    name: i.name.clone(),
                    ip: i.ip.clone(),
                    ready: i.ready,
                    failed: i.failed.clone(),
                })
                .collect();
            let seen = (
                state.ready,
                state.total,
                state.failed.clone(),
                instances.clone(),
            );
            if self.last_seen.get(&revision.0) == Some(&seen) {
                continue;
            }
            self.last_seen.insert(revision.0.clone(), seen);
            let obs = Observation {
                revision: revision.clone(),
                ready: state.ready.min(state.total),
                total: state.total,
                failed: state.failed,
                instances,
            };
            if let Err(error) = self.step(Input::Observed(obs), "system", "").await {
                tracing::debug!(message = "Observation not applied.", change_order = %self.id, %error);
            }
        }
        if !self.retry.observe {
            self.retry.settle();
        }
    }

    /// When the next measurement of the release analysis is due (a check with one in flight
    /// waits for it), as a tokio instant.
    fn next_measurement(&self) -> Option<tokio::time::Instant> {
        let a = self.analysis.as_ref()?;
        let at = a
            .checks
            .iter()
            .filter(|s| s.status == edas_analysis::judge::CheckStatus::Running)
            .filter(|s| !self.measuring.contains(&s.name))
            .filter_map(|s| s.next_at)
            .min()?;
        Some(
            self.inner
                .clock
                .instant_at(EpochMillis(u64::try_from(at).unwrap_or(0))),
        )
    }

    /// Spawns a measurement of every check that is due; each reports back as
    /// [`DriverMsg::Measured`].
    fn measure_due(&mut self) {
        let Some(a) = &self.analysis else { return };
        let now = self.inner.clock.now().0 as i64;
        for due in a.due(now) {
            let Some(check) = a.policy.check(&due.check).cloned() else {
                continue;
            };
            if !self.measuring.insert(due.check.clone()) {
                continue;
            }
            let Some(mailbox) = self.mailbox.clone() else {
                continue;
            };
            let phase = match a
                .checks
                .iter()
                .find(|s| s.name == due.check)
                .and_then(|s| s.stage)
            {
                Some(edas_analysis::Stage::Gray) => "gray",
                Some(edas_analysis::Stage::Batch(_)) => "batch",
                _ => "release",
            };
            let ctx = crate::analysis::MeasureCtx {
                runtime: self.runtime.clone(),
                app: self.app.clone(),
                order_id: self.id.clone(),
                revision: self.order.to_revision().0.clone(),
                stable: self
                    .order
                    .previous()
                    .map(|p| p.revision.0.clone())
                    .filter(|p| p != &self.order.to_revision().0),
                batch: self.order.current_batch(),
                phase: phase.to_owned(),
                settings: self.inner.analysis.get().cloned().unwrap_or_default(),
                now,
            };
            tokio::spawn(async move {
                let result = crate::analysis::measure(check, ctx).await;
                if let Some(tx) = mailbox.upgrade() {
                    let _ = tx.send(DriverMsg::Measured {
                        check: due.check,
                        result,
                    });
                }
            });
        }
    }

    /// Records a measurement with edas-analysis's judge and persists it with the verdict it
    /// leads to, as one transition, before that verdict acts.
    async fn record(&mut self, check: String, result: crate::analysis::Measured) {
        self.measuring.remove(&check);
        let Some(mut a) = self.analysis.clone() else {
            return;
        };
        if !self.order.is_active() {
            return;
        }
        let now = self.inner.clock.now().0 as i64;
        let verdict = match result {
            crate::analysis::Measured::Value(observation) => a.record(&check, observation, now),
            crate::analysis::Measured::Traffic(snapshot) => {
                let stable = self
                    .order
                    .previous()
                    .map(|p| p.revision.0.clone())
                    .filter(|p| p != &self.order.to_revision().0);
                let revision = self.order.to_revision().0.clone();
                a.record_traffic(&check, snapshot, &revision, stable.as_deref(), now)
            }
        };
        let outcome = match &verdict {
            edas_analysis::Verdict::Stale => return,
            edas_analysis::Verdict::Failed { .. } => "failed",
            _ => match a
                .checks
                .iter()
                .find(|s| s.name == check)
                .and_then(|s| s.measurements.last())
            {
                Some(m) if m.passed == Some(true) => "passed",
                Some(m) if m.passed == Some(false) => "failed",
                Some(_) => "inconclusive",
                None => "started",
            },
        };
        let verdict = match verdict {
            edas_analysis::Verdict::Failed {
                check,
                reason,
                action,
            } => crate::analysis::failed(check, reason, action),
            _ => self.gate_verdict(&a),
        };
        let input = Input::Analysis {
            doc: crate::analysis::encode(&a),
            checks: crate::analysis::standings(&a),
            measured: outcome != "started",
            verdict,
        };
        match self.step(input, "system", "").await {
            Ok(_) => {
                if outcome != "started" {
                    metrics::counter!("edasd_analysis_measurements_total", "result" => outcome)
                        .increment(1);
                }
                self.analysis = crate::analysis::decode(&self.order);
            }
            Err(error) => {
                tracing::warn!(message = "Recording a measurement failed; it is taken again.", change_order = %self.id, %check, %error);
                // The measurement is lost, not the check: it is due again at once.
                self.analysis = crate::analysis::decode(&self.order);
            }
        }
    }

    /// `Passed` when the batch being judged may complete, else `Continue`.
    fn gate_verdict(&self, a: &edas_analysis::Analysis) -> edas_release::AnalysisVerdict {
        match self.order.judging() {
            Some(i) => match crate::analysis::gate(a, &crate::analysis::stages(&self.order, i)) {
                edas_analysis::Gate::Open => edas_release::AnalysisVerdict::Passed {
                    pipeline: u32::try_from(i).unwrap_or(u32::MAX),
                },
                _ => edas_release::AnalysisVerdict::Continue,
            },
            None => edas_release::AnalysisVerdict::Continue,
        }
    }

    /// Brings the analysis in line with the order after any step: background checks run
    /// once the release started; the batch being judged starts its checks (again, for those
    /// that failed, after a ContinuePipeline); a gate left by SkipAnalysis stops its checks;
    /// a background check that held the order runs again once the order was continued. Any
    /// change is persisted (with a `Passed` verdict when the batch's gate is already open).
    async fn sync_analysis(&mut self) {
        use edas_analysis::judge::CheckStatus;
        use edas_analysis::policy::When;
        let Some(before) = self.analysis.clone() else {
            return;
        };
        if !self.order.is_active() || self.order.status() == Status::Ready {
            return;
        }
        let now = self.inner.clock.now().0 as i64;
        let mut a = before.clone();
        a.begin(edas_analysis::Stage::Release, now);
        let judged = self
            .order
            .judging()
            .map(|i| crate::analysis::stages(&self.order, i))
            .unwrap_or_default();
        let held = self.order.paused().is_some();
        for stage in &judged {
            a.begin(*stage, now);
        }
        if !held {
            // Continued after a failed check held the order: judge again from zero.
            crate::analysis::rerun_failed(
                &mut a,
                |c, s| c.when == When::Background || s.stage.is_some_and(|st| judged.contains(&st)),
                now,
            );
        }
        // A gate passed without its verdict (SkipAnalysis): its checks stop, as skipped.
        let left: Vec<edas_analysis::Stage> = a
            .checks
            .iter()
            .filter(|s| {
                matches!(s.status, CheckStatus::Running | CheckStatus::Failed { .. })
                    && s.stage.is_some_and(|st| {
                        st != edas_analysis::Stage::Release && !judged.contains(&st)
                    })
            })
            .filter_map(|s| s.stage)
            .collect();
        if !held {
            for stage in left {
                a.skip(stage, "ContinuePipeline SkipAnalysis=true");
            }
        }
        let verdict = if judged.is_empty() {
            edas_release::AnalysisVerdict::Continue
        } else {
            self.gate_verdict(&a)
        };
        if a == before && verdict == edas_release::AnalysisVerdict::Continue {
            return;
        }
        let input = Input::Analysis {
            doc: crate::analysis::encode(&a),
            checks: crate::analysis::standings(&a),
            measured: false,
            verdict,
        };
        if let Err(error) = self.step(input, "system", "").await {
            tracing::warn!(message = "Updating the release analysis failed.", change_order = %self.id, %error);
        }
        self.analysis = crate::analysis::decode(&self.order);
    }

    /// The renewal found the order no longer held by this process: say why, and warn only when
    /// another process really took it over (a finished or superseded order is no news).
    async fn lease_lost(&mut self) {
        self.lost = true;
        let owner = match self.inner.store.get_change_order(&self.id).await {
            Ok(record) => record.lease.map(|l| l.owner),
            Err(error) => {
                tracing::debug!(message = "Reading a change order whose lease ended failed.", change_order = %self.id, %error);
                return;
            }
        };
        match owner {
            Some(owner) if owner != self.inner.config.worker_id => {
                tracing::warn!(message = "Lost the lease of a change order; another process drives it now.", change_order = %self.id, %owner);
            }
            _ => {
                tracing::debug!(message = "Change order finished or released elsewhere; its driver stops.", change_order = %self.id);
            }
        }
    }

    /// After a successful release, instances of other revisions (left by an earlier failed
    /// release) are stopped; a deleted application keeps nothing: its cluster's sweeper removes
    /// every object of it (the sweep was recorded with the Delete order).
    async fn finish(&mut self) {
        // The autoscaler resumes on the revision that serves now (or stays held by a failed
        // order), retried in the background until the runtime takes it.
        // A deletion removes it.
        let (inner, app_id) = (self.inner.clone(), self.app_id.clone());
        let remove = self.order.kind() == ChangeKind::Delete;
        self.inner.spawn(async move {
            crate::autoscaling::reassert(&inner, &app_id, remove).await;
        });
        if self.order.status() != Status::Success {
            return;
        }
        if self.order.kind() == ChangeKind::Delete {
            self.sweep = Some(self.cluster_id.clone());
            return;
        }
        let keep = Some(self.order.to_revision().0.clone());
        let Ok(revisions) = self.runtime.revisions(&self.app).await else {
            return;
        };
        for rev in revisions {
            if Some(&rev) == keep.as_ref() {
                continue;
            }
            if let Ok(target) = self.target(&RevisionId(rev.clone())).await
                && let Err(error) = self.runtime.set_replicas(&target, 0).await
            {
                tracing::warn!(message = "Stopping leftover instances failed.", app_id = %self.app_id, revision = %rev, %error);
            }
        }
    }
}

/// The store write of a step from status `before` to `next`: the application's lifecycle state
/// follows the order (DEPLOYING when it starts; RUNNING, STOPPED or deleted when it settles).
fn transition(current: &ChangeOrder, next: &ChangeOrder) -> Transition {
    let before = current.status();
    let status = next.status();
    let settled = status == Status::Success || status == Status::Terminated || status.is_failure();
    let (app_state, delete_app) = match (next.kind(), status) {
        (ChangeKind::Delete, Status::Success) => (None, true),
        (ChangeKind::Stop, Status::Success) => (Some("STOPPED".to_owned()), false),
        _ if settled => (Some("RUNNING".to_owned()), false),
        (_, Status::InProgress) if before == Status::Ready => (Some("DEPLOYING".to_owned()), false),
        _ => (None, false),
    };
    Transition {
        status,
        state: next.clone(),
        finished: store_finished(status),
        app_state,
        delete_app,
        // The state at the version being replaced: the store derives the events from it
        // instead of reading it back inside the write transaction.
        before: Some(Box::new(current.clone())),
    }
}

fn store_active(status: Status) -> bool {
    !store_finished(status)
}

fn input_label(input: &Input) -> &'static str {
    match input {
        Input::Start => "Start",
        Input::Observed(_) => "Observed",
        Input::TimerFired(_) => "TimerFired",
        Input::Continue { .. } => "ContinuePipeline",
        Input::Abort => "AbortChangeOrder",
        Input::AbortAndRollback(_) => "AbortAndRollbackChangeOrder",
        Input::Rollback(_) => "RollbackChangeOrder",
        Input::Retry { .. } => "RetryChangeOrderTask",
        Input::SystemFailure { .. } => "SystemFailure",
        Input::Forced { .. } => "Forced",
        Input::Analysis { .. } => "Analysis",
        Input::SkipAnalysis { .. } => "SkipAnalysis",
    }
}

/// The rollback change order `order` and the revision that restores the earlier spec, as the
/// deploy the store writes in the same transaction as the termination of the order it rolls
/// back ([`edas_store::Store::transition_and_deploy`]): a crash cannot separate them.
async fn rollback_deploy(
    inner: &Arc<Inner>,
    app_id: &str,
    order: &ChangeOrder,
    actor: &str,
    request_id: &str,
) -> Result<edas_store::FollowUpDeploy, ControlError> {
    let number: i64 = order.to_revision().0.parse().map_err(|_| {
        ControlError::Internal(format!(
            "revision id {} is not a number",
            order.to_revision()
        ))
    })?;
    let rev = inner.store.get_revision(app_id, number).await?;
    let mut doc = rev.spec;
    doc.template_revision = order.to_revision().0.clone();
    doc.traffic_control = None;
    doc.spec.replicas = order.target_replicas();
    doc.spec.stopped = false;
    let (co_type, _) = mapping::co_type(order.kind());
    let co = crate::new_change_order(order, co_type);
    let entry = audit(
        actor,
        "ChangeOrder.Rollback",
        app_id,
        request_id,
        json!({"change_order": order.id(), "to_revision": number}),
    );
    Ok(edas_store::FollowUpDeploy {
        app_id: app_id.to_owned(),
        revision: doc,
        change_order: co,
        audit: entry,
    })
}

/// A control call: through the driver when this process drives the order, else on the store.
pub(crate) async fn control(
    inner: &Arc<Inner>,
    id: &str,
    input: Input,
    actor: &str,
    request_id: &str,
) -> Result<crate::ControlOutcome, ControlError> {
    let record = inner.store.get_change_order(id).await?;
    let sender = {
        let drivers = inner.drivers.lock().unwrap_or_else(|p| p.into_inner());
        drivers
            .get(&record.app_id)
            .filter(|(o, _)| o == id)
            .map(|(_, tx)| tx.clone())
    };
    if let Some(tx) = sender {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let msg = DriverMsg::Control {
            input: input.clone(),
            actor: actor.to_owned(),
            request_id: request_id.to_owned(),
            reply,
        };
        if tx.send(msg).is_ok()
            && let Ok(r) = rx.await
        {
            return r;
        }
    }
    direct(inner, id, input, actor, request_id).await
}

/// Steps an order this process does not drive (finished, failed, or not yet claimed) with a
/// compare-and-swap on the store, then wakes the claimer if it became active again.
async fn direct(
    inner: &Arc<Inner>,
    id: &str,
    input: Input,
    actor: &str,
    request_id: &str,
) -> Result<crate::ControlOutcome, ControlError> {
    let record = inner.store.get_change_order(id).await?;
    if let Some(lease) = &record.lease
        && lease.owner != inner.config.worker_id
        && lease.expires_at > inner.clock.timestamp()
    {
        return Err(ControlError::Conflict(format!(
            "change order {id} is being driven by another edasd process; try again shortly"
        )));
    }
    let mut order = record.state;
    let stored_before = order.clone();
    let before = order.status();
    let label = input_label(&input);
    let fx = order
        .step(input, inner.clock.now())
        .map_err(|e| ControlError::Invalid(e.to_string()))?;
    if stored_before.is_active() {
        crate::analysis::close(&mut order);
    }
    let rollback = fx.iter().find_map(|e| match e {
        Effect::StartRollback(o) => Some((**o).clone()),
        _ => None,
    });
    let follow_up = match &rollback {
        Some(r) => Some(rollback_deploy(inner, &record.app_id, r, actor, request_id).await?),
        None => None,
    };
    let now = inner.clock.timestamp();
    if record.finished_at.is_none() {
        let status = order.status();
        let transition = transition(&stored_before, &order);
        let entry = audit(
            actor,
            "ChangeOrder.Transition",
            &record.app_id,
            request_id,
            json!({"change_order": id, "input": label, "from": before.code(), "to": status.code()}),
        );
        match follow_up {
            None => {
                inner
                    .store
                    .transition(id, record.version, transition, entry, now)
                    .await?;
            }
            Some(follow_up) => {
                inner
                    .store
                    .transition_and_deploy(id, record.version, transition, entry, follow_up, now)
                    .await?;
            }
        }
        crate::release_log::log_events(&record.app_id, Some(&stored_before), &order);
    } else if let Some(follow_up) = follow_up {
        // A finished order (e.g. RollbackChangeOrder of a failed one) only gets its rollback.
        let edas_store::FollowUpDeploy {
            app_id,
            revision,
            change_order,
            audit,
        } = follow_up;
        inner
            .store
            .deploy(&app_id, revision, change_order, audit, now)
            .await?;
    }
    inner.wake_claimer();
    Ok(crate::ControlOutcome {
        status: order.status().code(),
        rollback_change_order: rollback.map(|r| r.id().to_owned()),
    })
}
