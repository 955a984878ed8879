//! The release engine: the async shell around the pure state machine of `edas-release`.
//!
//! Start with [`Engine`]. The API calls [`Engine::create_application`] and [`Engine::submit`]:
//! each observes the runtime, builds a change order (`edas_release::ChangeOrder`), and stores
//! it with the application's next revision in one transaction. The engine's loop claims stored
//! change orders with a lease ([`edas_store::Store::claim_claimable`]) and drives each in its own
//! task: every input (runtime event, timer, control call) is stepped through the machine, the new
//! state is **persisted before** its effects run, and effects are idempotent, so a crash at any
//! point is repaired on restart by re-issuing the stored order's effects. Nothing polls: runtime
//! events, the user's own waits and timeouts (timers) and control calls wake the drivers; one
//! process-wide task renews every lease the process holds in one write per period and stops the
//! drivers of orders it lost.
//!
//! Revisions: the store numbers every revision; instances belong to a **template revision**,
//! the number of the last revision that changed what instances run (not just how many). A
//! scale, stop or start therefore resizes the serving revision instead of replacing instances.

mod analysis;
pub mod autoscaling;
mod copies;
mod deletion;
mod driver;
pub mod mapping;
mod release_log;
mod routing;
mod target;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edas_release::{ChangeOrder, EpochMillis, Input, Instances, NewOrder, RevisionId, plan};
use edas_runtime::Runtime;
use edas_spec::{Change, Operation, Violation, ViolationKind, Violations};
use edas_store::{AuditEntry, NewApplication, NewChangeOrder, Store, StoreError};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use analysis::AnalysisSettings;
pub use driver::{ControlError, ControlOutcome};
pub use routing::routing;
pub use target::{app_ref, stored_target};

/// The stored document of a revision (edas-spec's, so the store keeps it typed): the spec,
/// the template revision its instances are, and the ConfigMap/Secret copies they read.
pub use edas_spec::RevisionDoc;

/// The runtimes, by cluster id.
#[derive(Clone, Default)]
pub struct Runtimes(HashMap<String, Arc<dyn Runtime>>);

impl Runtimes {
    /// No runtime yet.
    pub fn new() -> Runtimes {
        Runtimes::default()
    }

    /// Adds the runtime of a cluster.
    pub fn with(mut self, cluster_id: &str, runtime: Arc<dyn Runtime>) -> Runtimes {
        self.0.insert(cluster_id.to_owned(), runtime);
        self
    }

    /// The runtime of a cluster.
    pub fn get(&self, cluster_id: &str) -> Option<&Arc<dyn Runtime>> {
        self.0.get(cluster_id)
    }
}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// This process's worker id (unique among processes sharing a database). Keep it across
    /// restarts (edasd stores it in its data directory): a restarted process then resumes the
    /// change orders it held at once instead of waiting for their leases to expire.
    pub worker_id: String,
    /// How long a claim lasts without renewal; renewed every third of it.
    pub lease: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            worker_id: format!("edasd-{}", uuid::Uuid::new_v4()),
            lease: Duration::from_secs(15),
        }
    }
}

/// The engine's clock: wall time that advances with tokio's clock, so paused-time tests move
/// deadlines and timers together.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    wall: SystemTime,
    base: tokio::time::Instant,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            wall: SystemTime::now(),
            base: tokio::time::Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> EpochMillis {
        let at = self.wall + self.base.elapsed();
        EpochMillis(
            at.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        )
    }

    pub(crate) fn timestamp(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(self.now().0 as i64)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// The tokio instant at which the wall clock reads `at`.
    pub(crate) fn instant_at(&self, at: EpochMillis) -> tokio::time::Instant {
        let now = self.now().0;
        tokio::time::Instant::now() + Duration::from_millis(at.0.saturating_sub(now))
    }
}

/// An InsertK8sApplication to carry out.
#[derive(Clone, Debug)]
pub struct CreateApplication {
    /// The new application's id.
    pub app_id: String,
    /// The installation's region.
    pub region_id: String,
    /// The EDAS namespace (the spec's, or the default).
    pub namespace_id: String,
    /// `namespace_id` was created through the API (not the configuration's): the store checks
    /// it still exists in the creating transaction.
    pub namespace_stored: bool,
    /// The decoded request.
    pub change: Change,
    /// Who asked.
    pub actor: String,
    /// The API request id.
    pub request_id: String,
}

/// A change of an existing application to carry out.
#[derive(Clone, Debug)]
pub struct Submission {
    /// The application.
    pub app_id: String,
    /// The decoded request (its spec is the complete next revision).
    pub change: Change,
    /// Who asked.
    pub actor: String,
    /// The API request id.
    pub request_id: String,
}

/// What a submission created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    /// The application.
    pub app_id: String,
    /// The change order releasing it.
    pub change_order_id: String,
}

/// Why a submission was refused. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The request cannot be carried out as given (HTTP 400).
    #[error("{0}")]
    Invalid(Violations),
    /// The application does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// Another change order is active on the application (HTTP 409).
    #[error(
        "the application has an active change order {active_change_order}; wait for it, or abort it"
    )]
    Conflict {
        /// The active change order.
        active_change_order: String,
    },
    /// The cluster's runtime refused.
    #[error("{0}")]
    Runtime(String),
    /// The cluster does not answer now (its API server is down): refused at once, without
    /// waiting on it. The message names the cluster and its address.
    #[error("{0}")]
    Unavailable(String),
    /// Storage failed (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

impl SubmitError {
    /// A runtime's error: a cluster that does not answer is [`SubmitError::Unavailable`], a
    /// refusal [`SubmitError::Runtime`].
    fn from_runtime(e: edas_runtime::RuntimeError) -> SubmitError {
        match e {
            edas_runtime::RuntimeError::Unavailable(m) => SubmitError::Unavailable(m),
            edas_runtime::RuntimeError::Unsupported(m) => SubmitError::Runtime(m),
        }
    }
}

impl From<StoreError> for SubmitError {
    fn from(e: StoreError) -> Self {
        match e {
            // The namespace was deleted between the API's check and the creation.
            StoreError::NotFound {
                entity: "namespace",
                id,
            } => SubmitError::Invalid(Violations(vec![violation(
                "LogicalRegionId",
                ViolationKind::Invalid,
                format!("the EDAS namespace `{id}` was deleted meanwhile"),
            )])),
            StoreError::NotFound { entity, id } => {
                SubmitError::NotFound(format!("{entity} {id} does not exist"))
            }
            StoreError::ActiveChangeOrder { active, .. } => SubmitError::Conflict {
                active_change_order: active,
            },
            StoreError::Conflict { reason, .. } => {
                SubmitError::Invalid(Violations(vec![violation(
                    "AppName",
                    ViolationKind::Invalid,
                    reason,
                )]))
            }
            other => SubmitError::Internal(other.to_string()),
        }
    }
}

fn violation(parameter: &str, kind: ViolationKind, message: impl Into<String>) -> Violation {
    Violation {
        parameter: parameter.to_owned(),
        kind,
        message: message.into(),
    }
}

pub(crate) enum DriverMsg {
    /// Something about the application's instances changed.
    Runtime,
    /// The lease renewal found the order no longer leased to this process: stop driving it.
    LeaseLost,
    /// The order is being ended by an immediate deletion: stop driving it.
    Stop,
    /// A measurement of the release analysis, taken by a task the driver spawned.
    Measured {
        check: String,
        result: analysis::Measured,
    },
    /// A control operation.
    Control {
        input: Input,
        actor: String,
        request_id: String,
        reply: oneshot::Sender<Result<ControlOutcome, ControlError>>,
    },
}

impl Inner {
    /// Runs `task` beside the drivers (shutdown waits for it).
    pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// The lease a change order this process stores is created under, so that this process
    /// drives it at once, with no claim (no second write) in between; `None` while the engine
    /// is not running (the order then waits for a claim).
    fn own_lease(&self) -> Option<edas_store::Lease> {
        if !self.started.load(std::sync::atomic::Ordering::SeqCst) || self.shutdown.is_cancelled() {
            return None;
        }
        Some(edas_store::Lease {
            owner: self.config.worker_id.clone(),
            expires_at: self.clock.timestamp().checked_add(self.config.lease).ok()?,
        })
    }

    /// Wakes the claim loop.
    pub(crate) fn wake_claimer(&self) {
        self.wake.notify_one();
    }

    /// Wakes the sweeper of `cluster_id` (a sweep may be owed there now).
    pub(crate) fn kick_sweeper(&self, cluster_id: &str) {
        if let Some(kick) = self.sweep_kicks.get(cluster_id) {
            kick.notify_one();
        }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<Store>,
    pub(crate) runtimes: Runtimes,
    pub(crate) config: EngineConfig,
    pub(crate) clock: Clock,
    wake: Notify,
    /// Drivers of the change orders this process holds, by application id.
    pub(crate) drivers: Mutex<HashMap<String, (String, mpsc::UnboundedSender<DriverMsg>)>>,
    pub(crate) shutdown: CancellationToken,
    /// Set once the engine's loop re-claimed this worker's orders: stored orders are then
    /// created leased to this process.
    started: std::sync::atomic::AtomicBool,
    tasks: tokio_util::task::TaskTracker,
    /// Wakes the sweeper of a cluster (by cluster id) when a sweep becomes owed.
    sweep_kicks: HashMap<String, Arc<Notify>>,
    /// The release analysis's settings, set once before the engine starts.
    pub(crate) analysis: std::sync::OnceLock<AnalysisSettings>,
    /// Drivers that started or resumed their order and are driving it ([`Engine::driven`]).
    pub(crate) driven: std::sync::atomic::AtomicUsize,
}

/// The release engine. Clones share one engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// An engine over a store and the runtimes of the clusters.
    pub fn new(store: Arc<Store>, runtimes: Runtimes, config: EngineConfig) -> Engine {
        let sweep_kicks = runtimes
            .0
            .keys()
            .map(|id| (id.clone(), Arc::new(Notify::new())))
            .collect();
        Engine {
            inner: Arc::new(Inner {
                sweep_kicks,
                store,
                runtimes,
                config,
                clock: Clock::new(),
                wake: Notify::new(),
                driven: std::sync::atomic::AtomicUsize::new(0),
                drivers: Mutex::default(),
                shutdown: CancellationToken::new(),
                started: Default::default(),
                tasks: tokio_util::task::TaskTracker::new(),
                analysis: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Sets the release analysis's settings (edasd's `[analysis]`); call it before
    /// [`Engine::start`]. Without it, a `prometheus` check needs its own `address`.
    pub fn set_analysis(&self, settings: AnalysisSettings) {
        let _ = self.inner.analysis.set(settings);
    }

    /// The release analysis's settings.
    pub fn analysis_settings(&self) -> AnalysisSettings {
        self.inner.analysis.get().cloned().unwrap_or_default()
    }

    /// How many change orders this process is driving now: their driver started them, or
    /// resumed them (effects re-applied, routing set, instances observed) after a restart.
    /// What a resume is measured by (`edas-bench scale`).
    pub fn driven(&self) -> usize {
        self.inner.driven.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The store the engine works on.
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// The engine's runtimes.
    pub fn runtimes(&self) -> &Runtimes {
        &self.inner.runtimes
    }

    /// Starts the engine's loop: claims stored change orders (resuming those a previous process
    /// left in flight) and drives them until [`Engine::shutdown`]. Returns at once: the API
    /// serves while the engine resumes.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let inner = self.inner.clone();
        self.inner.tasks.spawn(async move { run(inner).await })
    }

    /// Stops claiming and driving, waits for the loop and every driver to stop (each at the
    /// end of the step it is in), then hands its leases over in one write
    /// ([`edas_store::Store::hand_over_leases`]): they keep this worker id, so the restarted
    /// process (same data directory, same id) re-claims them at once, and any other process
    /// may claim them at once. Nothing is given back order by order, so shutting down with
    /// 1,000 orders in flight costs one write.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        let inner = &self.inner;
        match inner
            .store
            .hand_over_leases(&inner.config.worker_id, inner.clock.timestamp())
            .await
        {
            Ok(n) => tracing::debug!(
                message = "Handed the leases of the change orders in flight over.",
                change_orders = n
            ),
            Err(error) => {
                tracing::warn!(message = "Handing the leases over failed; they expire on their own.", %error)
            }
        }
    }

    /// Carries out InsertK8sApplication: stores the application, revision 1 and its change order.
    pub async fn create_application(
        &self,
        req: CreateApplication,
    ) -> Result<Submitted, SubmitError> {
        let inner = &self.inner;
        let spec = req.change.spec.clone();
        let runtime = self.runtime_for(&spec.cluster_id, "ClusterId")?;
        runtime
            .availability()
            .map_err(|e| SubmitError::Unavailable(e.to_string()))?;
        if spec.effective_replicas() > 0 {
            runtime.check(&spec).map_err(SubmitError::from_runtime)?;
        }
        let unenforced = runtime.unenforced(&spec);
        let order_id = edas_store::new_record_id();
        let to = Instances {
            revision: RevisionId("1".into()),
            replicas: 0,
            ready: 0,
        };
        let order = new_order(
            &order_id,
            &req.change,
            None,
            to,
            mapping::kind(Operation::InsertK8sApplication),
            inner.clock.now(),
            &unenforced,
        )?;
        runtime
            .check_routing(&routing::preview(&spec, None, &order))
            .map_err(SubmitError::from_runtime)?;
        let snapshot = copies::snapshot(&inner.store, &spec).await?;
        let config_digest = snapshot.digest.clone();
        let config_copies = copies::store_copies(
            &inner.store,
            snapshot,
            &req.app_id,
            "1",
            inner.clock.timestamp(),
        )
        .await?;
        let doc = RevisionDoc {
            template_revision: "1".into(),
            spec: spec.clone(),
            config_digest,
            config_copies,
            traffic_control: None,
        };
        let (co_type, _) = mapping::co_type(order.kind());
        let app = NewApplication {
            id: req.app_id.clone(),
            name: spec.name.clone(),
            region_id: req.region_id.clone(),
            namespace_id: req.namespace_id.clone(),
            namespace_stored: req.namespace_stored,
            cluster_id: spec.cluster_id.clone(),
            k8s_namespace: spec.k8s_namespace.clone(),
            state: "DEPLOYING".into(),
            spec: doc,
        };
        let co = new_change_order(&order, co_type);
        let audit = audit(
            &req.actor,
            "InsertK8sApplication",
            &req.app_id,
            &req.request_id,
            json!({"change_order": order_id}),
        );
        let started = std::time::Instant::now();
        let now = inner.clock.timestamp();
        let (_, record) = match inner.own_lease() {
            Some(lease) => {
                inner
                    .store
                    .create_application_leased(app, co, audit, now, lease)
                    .await?
            }
            None => inner.store.create_application(app, co, audit, now).await?,
        };
        release_log::store_latency("create", started);
        release_log::log_events(&req.app_id, None, &order);
        drive_or_wake(&self.inner, record, None);
        Ok(Submitted {
            app_id: req.app_id,
            change_order_id: order_id,
        })
    }

    /// Carries out a change of an existing application as one change order.
    pub async fn submit(&self, req: Submission) -> Result<Submitted, SubmitError> {
        // Boxed (here and below): a submission's future is large, and its callers' (a debug
        // build's 2 MiB test thread included) should hold only a pointer to it.
        Box::pin(self.submit_as(req, None, None)).await
    }

    /// [`Engine::submit`] of a change built from `app` as the caller just read it (the API
    /// decodes the request against its spec): the engine does not read it again. The store
    /// still refuses the change in its transaction if another order became active meanwhile.
    pub async fn submit_read(
        &self,
        req: Submission,
        app: edas_store::Application,
    ) -> Result<Submitted, SubmitError> {
        Box::pin(self.submit_as(req, None, Some(app))).await
    }

    /// Releases an earlier revision's spec again (edasd's rollback to any revision), batched
    /// like a deploy with `release`.
    pub async fn rollback_to_revision(
        &self,
        app_id: &str,
        revision: i64,
        release: edas_spec::ReleaseSettings,
        actor: &str,
        request_id: &str,
    ) -> Result<Submitted, SubmitError> {
        let rev = self.inner.store.get_revision(app_id, revision).await?;
        let mut spec = rev.spec.spec;
        // An autoscaled application keeps its autoscaler's count: the old revision's count
        // is history (`submit_as` plans against the autoscaler when the count is unchanged).
        if autoscaling::enabled_rule(&self.inner.store, app_id)
            .await?
            .is_some()
        {
            spec.replicas = self
                .inner
                .store
                .get_application(app_id)
                .await?
                .spec
                .spec
                .replicas;
        }
        let change = Change {
            operation: Operation::DeployK8sApplication,
            app_id: Some(app_id.to_owned()),
            region_id: None,
            force: false,
            spec,
            release,
        };
        let req = Submission {
            app_id: app_id.to_owned(),
            change,
            actor: actor.to_owned(),
            request_id: request_id.to_owned(),
        };
        Box::pin(self.submit_as(req, Some(edas_release::ChangeKind::Rollback), None)).await
    }

    async fn submit_as(
        &self,
        req: Submission,
        kind: Option<edas_release::ChangeKind>,
        read: Option<edas_store::Application>,
    ) -> Result<Submitted, SubmitError> {
        let inner = &self.inner;
        let app = match read {
            Some(app) if app.id == req.app_id => app,
            _ => inner.store.get_application(&req.app_id).await?,
        };
        if app.deleted {
            return Err(SubmitError::NotFound(format!(
                "application {} does not exist",
                req.app_id
            )));
        }
        let delete = req.change.operation == Operation::DeleteK8sApplication;
        if delete {
            // Force=true skips every wait; a cluster that does not answer (or is no longer
            // configured) cannot be waited for: either way the application goes at once and
            // its cluster is swept when it answers.
            let unavailable = match inner.runtimes.get(&app.cluster_id) {
                None => Some(format!(
                    "cluster `{}` has no runtime on this server",
                    app.cluster_id
                )),
                Some(runtime) => runtime.availability().err().map(|e| e.to_string()),
            };
            if req.change.force || unavailable.is_some() {
                let reason = match unavailable {
                    Some(why) => format!(
                        "Deleted without waiting: {why}; its objects are removed when the cluster answers"
                    ),
                    None => {
                        "Deleted with Force=true: instances are removed without waiting or hooks"
                            .to_owned()
                    }
                };
                // Boxed, as every rare branch here: inline, its future would grow every
                // submission's (copied at each move: a deploy's chain moves it several times).
                return Box::pin(deletion::delete_now(
                    inner,
                    &app,
                    req.change.force,
                    reason,
                    &req.actor,
                    &req.request_id,
                ))
                .await;
            }
        }
        let runtime = self.runtime_for(&app.cluster_id, "AppId")?;
        runtime
            .availability()
            .map_err(|e| SubmitError::Unavailable(e.to_string()))?;
        if delete
            && let Some(active) = inner.store.active_change_order(&req.app_id).await?
            && matches!(
                active.status,
                edas_release::Status::Ready
                    | edas_release::Status::InProgress
                    | edas_release::Status::WaitingForConfirmation
                    | edas_release::Status::WaitingForNextBatch
            )
        {
            // A deletion always goes ahead: a release still running (waiting for instances
            // that crash-loop, say) is aborted first; its instances are then scaled to 0.
            match Box::pin(self.control(&active.id, Input::Abort, &req.actor, &req.request_id))
                .await
            {
                Ok(_) | Err(ControlError::Invalid(_)) => {}
                Err(ControlError::Conflict(_)) => {
                    return Err(SubmitError::Conflict {
                        active_change_order: active.id,
                    });
                }
                Err(e) => return Err(SubmitError::Internal(e.to_string())),
            }
        }
        // The store refuses a change while another order is open, in the deploy's own
        // transaction; a failed order is superseded then (one more read, only in that case).
        // Read first only when something is written before the deploy (a deletion's sweep,
        // ConfigMap/Secret copies), so a refused change stores nothing.
        let read_active = delete
            || req
                .change
                .spec
                .config_refs()
                .iter()
                .any(|r| r.kind.is_copied());
        if read_active && let Some(active) = inner.store.active_change_order(&req.app_id).await? {
            Box::pin(supersede_failed(inner, active, &req)).await?;
        }
        let current = &app.spec;
        // A deletion scales to 0 and never up: its revision is the serving one, stopped.
        let mut req = req;
        if delete {
            req.change.spec.stopped = true;
            req.change.release.strategy = None;
        }
        // An autoscaled application: unless this change sets the count itself, the release
        // plans its batches against what the autoscaler wants now (within the rule), so the
        // batch math stays right while the load changes and the release ends at that count.
        if !delete
            && !req.change.spec.stopped
            && req.change.spec.replicas == current.spec.replicas
            && let Some(rule) = autoscaling::enabled_rule(&inner.store, &req.app_id).await?
        {
            let wanted = runtime
                .autoscaled_replicas(&target::app_ref(&app))
                .await
                .map_err(SubmitError::from_runtime)?;
            req.change.spec.replicas =
                autoscaling::planned(Some(&rule), wanted, req.change.spec.replicas);
        }
        if req.change.spec.effective_replicas() > 0 {
            runtime
                .check(&req.change.spec)
                .map_err(SubmitError::from_runtime)?;
        }
        let unenforced = runtime.unenforced(&req.change.spec);
        let observed = runtime
            .observe(&target::app_ref(&app), &current.template_revision)
            .await
            .map_err(SubmitError::from_runtime)?;
        let from = Instances {
            revision: RevisionId(current.template_revision.clone()),
            replicas: observed.total,
            ready: observed.ready.min(observed.total),
        };
        let next_number = app.current_revision + 1;
        // A deletion stops what runs: no new contents are taken (a ConfigMap deleted since
        // cannot refuse it), and the serving template revision is the one scaled to 0.
        let snapshot = if delete {
            None
        } else {
            Some(copies::snapshot(&inner.store, &req.change.spec).await?)
        };
        let template_revision = match &snapshot {
            Some(snapshot)
                if !mapping::same_template(&current.spec, &req.change.spec)
                    || snapshot.digest != current.config_digest =>
            {
                next_number.to_string()
            }
            _ => current.template_revision.clone(),
        };
        let to = if template_revision == current.template_revision {
            from.clone()
        } else {
            let o = runtime
                .observe(&target::app_ref(&app), &template_revision)
                .await
                .map_err(SubmitError::from_runtime)?;
            Instances {
                revision: RevisionId(template_revision.clone()),
                replicas: o.total,
                ready: o.ready.min(o.total),
            }
        };
        let order_id = edas_store::new_record_id();
        let order = new_order(
            &order_id,
            &req.change,
            Some(from),
            to,
            kind.unwrap_or(mapping::kind(req.change.operation)),
            inner.clock.now(),
            &unenforced,
        )?;
        // A release of an application with a release policy is judged by it (issue 21).
        let order = if kind.is_none() {
            // Boxed: the submission's future is already deep.
            Box::pin(analysis::attach(&inner.store, &req.app_id, order)).await?
        } else {
            order
        };
        runtime
            .check_routing(&routing::preview(
                &req.change.spec,
                req.change.release.traffic_control.as_ref(),
                &order,
            ))
            .map_err(SubmitError::from_runtime)?;
        let (co_type, _) = mapping::co_type(order.kind());
        let co = new_change_order(&order, co_type);
        let (config_digest, config_copies) = if let Some(snapshot) = snapshot
            && template_revision != current.template_revision
        {
            let digest = snapshot.digest.clone();
            let copies = Box::pin(copies::store_copies(
                &inner.store,
                snapshot,
                &req.app_id,
                &template_revision,
                inner.clock.timestamp(),
            ))
            .await?;
            (digest, copies)
        } else {
            (current.config_digest.clone(), current.config_copies.clone())
        };
        let doc = RevisionDoc {
            template_revision,
            spec: req.change.spec.clone(),
            config_digest,
            config_copies,
            traffic_control: req.change.release.traffic_control.clone(),
        };

        let audit = audit(
            &req.actor,
            req.change.operation.action(),
            &req.app_id,
            &req.request_id,
            json!({"change_order": order_id, "revision": next_number}),
        );
        if delete {
            // Owed from now on: if edasd stops between the end of the order and the sweep,
            // the sweep still happens (it waits until the application is deleted).
            inner
                .store
                .add_sweep(&req.app_id, &app.cluster_id, false, inner.clock.timestamp())
                .await?;
        }
        let started = std::time::Instant::now();
        let driven_doc = doc.clone();
        let retry = (!read_active).then(|| (doc.clone(), co.clone(), audit.clone()));
        let deploy = |doc, co, audit| async {
            let now = inner.clock.timestamp();
            match inner.own_lease() {
                Some(lease) => {
                    inner
                        .store
                        .deploy_leased(&req.app_id, doc, co, audit, now, lease)
                        .await
                }
                None => inner.store.deploy(&req.app_id, doc, co, audit, now).await,
            }
        };
        let deployed = deploy(doc, co, audit).await;
        let (revision, record) = match (deployed, retry) {
            (Err(StoreError::ActiveChangeOrder { .. }), Some((doc, co, audit))) => {
                // (None: it finished meanwhile; the deploy goes ahead.)
                if let Some(active) = inner.store.active_change_order(&req.app_id).await? {
                    Box::pin(supersede_failed(inner, active, &req)).await?;
                }
                deploy(doc, co, audit).await?
            }
            (deployed, _) => deployed?,
        };
        release_log::store_latency("deploy", started);
        release_log::log_events(&req.app_id, None, &order);
        if revision.number != next_number {
            tracing::warn!(
                message = "A concurrent change stored a revision in between; the change order names the revision it was planned for.",
                app_id = %req.app_id,
                expected = next_number,
                stored = revision.number
            );
        }
        // The driver starts from the application as just stored, without reading it back, and
        // from the revision it leaves when that is the application's current one (the usual
        // case: its document is the one read above).
        let leaving = (app.current_revision.to_string() == app.spec.template_revision)
            .then(|| (app.spec.template_revision.clone(), app.spec.clone()));
        let stored = edas_store::Application {
            current_revision: revision.number,
            spec: driven_doc,
            updated_at: inner.clock.timestamp(),
            ..app
        };
        drive_or_wake(
            &self.inner,
            record,
            Some(driver::Known {
                app: stored,
                leaving,
            }),
        );
        Ok(Submitted {
            app_id: req.app_id,
            change_order_id: order_id,
        })
    }

    /// Steps a change order with a control input (ContinuePipeline, Abort, Rollback, Retry):
    /// through its driver when this process drives it, else directly on the store (CAS).
    pub async fn control(
        &self,
        change_order_id: &str,
        input: Input,
        actor: &str,
        request_id: &str,
    ) -> Result<ControlOutcome, ControlError> {
        driver::control(&self.inner, change_order_id, input, actor, request_id).await
    }

    /// ContinuePipeline: finds the change order that has the pipeline and confirms it.
    pub async fn continue_pipeline(
        &self,
        pipeline_id: &str,
        confirm: bool,
        actor: &str,
        request_id: &str,
    ) -> Result<ControlOutcome, ControlError> {
        let id = self
            .find_open(|o| o.pipeline(pipeline_id).is_some())
            .await?
            .ok_or_else(|| {
                ControlError::NotFound(format!(
                    "no change order in progress has pipeline {pipeline_id}"
                ))
            })?;
        let input = Input::Continue {
            pipeline_id: pipeline_id.to_owned(),
            confirm,
        };
        self.control(&id, input, actor, request_id).await
    }

    /// RetryChangeOrderTask: finds the failed change order that has the task and retries it.
    pub async fn retry_task(
        &self,
        task_id: &str,
        actor: &str,
        request_id: &str,
    ) -> Result<ControlOutcome, ControlError> {
        let id = self
            .find_open(|o| o.task(task_id).is_some())
            .await?
            .ok_or_else(|| {
                ControlError::NotFound(format!("no open change order has task {task_id}"))
            })?;
        let input = Input::Retry {
            task_id: Some(task_id.to_owned()),
        };
        self.control(&id, input, actor, request_id).await
    }

    /// AbortChangeOrder.
    pub async fn abort(
        &self,
        change_order_id: &str,
        actor: &str,
        request_id: &str,
    ) -> Result<ControlOutcome, ControlError> {
        self.control(change_order_id, Input::Abort, actor, request_id)
            .await
    }

    /// AbortAndRollbackChangeOrder (`and_abort`) or RollbackChangeOrder: a new change order back
    /// to the previous revision, in one batch (capacity is protected either way).
    pub async fn rollback(
        &self,
        change_order_id: &str,
        and_abort: bool,
        actor: &str,
        request_id: &str,
    ) -> Result<ControlOutcome, ControlError> {
        let request = edas_release::RollbackRequest {
            order_id: edas_store::new_record_id(),
            strategy: edas_release::Strategy::Single,
        };
        let input = if and_abort {
            Input::AbortAndRollback(request)
        } else {
            Input::Rollback(request)
        };
        self.control(change_order_id, input, actor, request_id)
            .await
    }

    /// The open change order that has pipeline `pipeline_id` (ContinuePipeline names only the
    /// pipeline; the API needs the order to authorize the caller).
    pub async fn change_order_of_pipeline(
        &self,
        pipeline_id: &str,
    ) -> Result<Option<String>, ControlError> {
        self.find_open(|o| o.pipeline(pipeline_id).is_some()).await
    }

    /// The open change order that has task `task_id` (RetryChangeOrderTask names only the task).
    pub async fn change_order_of_task(
        &self,
        task_id: &str,
    ) -> Result<Option<String>, ControlError> {
        self.find_open(|o| o.task(task_id).is_some()).await
    }

    async fn find_open(
        &self,
        matches: impl Fn(&ChangeOrder) -> bool,
    ) -> Result<Option<String>, ControlError> {
        for record in self.inner.store.open_change_orders().await? {
            if matches(&record.state) {
                return Ok(Some(record.id));
            }
        }
        Ok(None)
    }

    fn runtime_for(
        &self,
        cluster_id: &str,
        parameter: &str,
    ) -> Result<Arc<dyn Runtime>, SubmitError> {
        self.inner.runtimes.get(cluster_id).cloned().ok_or_else(|| {
            SubmitError::Invalid(Violations(vec![violation(
                parameter,
                ViolationKind::Invalid,
                format!("cluster `{cluster_id}` has no runtime on this server: only `local` runs applications until the Kubernetes runtime lands"),
            )]))
        })
    }

    /// Wakes the loop to claim change orders now (after something stored one).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }
}

/// A failed change order (3, 10) holds the application only until a newer change arrives: that
/// change supersedes it (it becomes final, status unchanged). An active one refuses the change.
async fn supersede_failed(
    inner: &Inner,
    active: edas_store::ChangeOrder,
    req: &Submission,
) -> Result<(), SubmitError> {
    if !matches!(
        active.status,
        edas_release::Status::Failed | edas_release::Status::SystemFailure
    ) {
        return Err(SubmitError::Conflict {
            active_change_order: active.id,
        });
    }
    let transition = edas_store::Transition {
        status: active.status,
        state: active.state.clone(),
        finished: true,
        app_state: None,
        delete_app: false,
        before: None,
    };
    let entry = audit(
        &req.actor,
        "ChangeOrder.Superseded",
        &req.app_id,
        &req.request_id,
        json!({"change_order": active.id}),
    );
    inner
        .store
        .transition(
            &active.id,
            active.version,
            transition,
            entry,
            inner.clock.timestamp(),
        )
        .await
        .map_err(|e| match e {
            StoreError::Stale { id, .. } => SubmitError::Conflict {
                active_change_order: id,
            },
            other => other.into(),
        })?;
    Ok(())
}

fn new_order(
    id: &str,
    change: &Change,
    from: Option<Instances>,
    to: Instances,
    kind: edas_release::ChangeKind,
    now: EpochMillis,
    unenforced: &[String],
) -> Result<ChangeOrder, SubmitError> {
    let target = change.spec.effective_replicas();
    let strategy = mapping::strategy(change.release.strategy.as_ref());
    let plan = plan(target, &strategy).map_err(|e| {
        SubmitError::Invalid(Violations(vec![violation(
            "UpdateStrategy",
            ViolationKind::Invalid,
            e.to_string(),
        )]))
    })?;
    let order = NewOrder {
        id: id.to_owned(),
        kind,
        description: with_unenforced(
            change.release.description.clone().unwrap_or_default(),
            unenforced,
        ),
        from,
        to,
        plan,
        settings: mapping::settings(&change.spec, &change.release),
    };
    ChangeOrder::new(order, now).map_err(|e| {
        let p = if change.release.batch_timeout_seconds.is_some() {
            "BatchTimeout"
        } else {
            "Timeout"
        };
        SubmitError::Invalid(Violations(vec![violation(
            p,
            ViolationKind::Invalid,
            e.to_string(),
        )]))
    })
}

/// The change order's description, with what the runtime accepted but will not apply (see
/// `Runtime::unenforced`): recorded, never silent.
fn with_unenforced(description: String, unenforced: &[String]) -> String {
    if unenforced.is_empty() {
        return description;
    }
    let note = format!("Not applied on this host: {}.", unenforced.join("; "));
    if description.is_empty() {
        note
    } else {
        format!("{description} ({note})")
    }
}

fn new_change_order(order: &ChangeOrder, co_type: &str) -> NewChangeOrder {
    NewChangeOrder {
        id: order.id().to_owned(),
        co_type: co_type.to_owned(),
        status: order.status(),
        state: order.clone(),
        description: order.description().to_owned(),
    }
}

pub(crate) fn audit(
    actor: &str,
    action: &str,
    app_id: &str,
    request_id: &str,
    detail: Value,
) -> AuditEntry {
    AuditEntry {
        actor: actor.to_owned(),
        action: action.to_owned(),
        resource: format!("application/{app_id}"),
        app_id: Some(app_id.to_owned()),
        request_id: (!request_id.is_empty()).then(|| request_id.to_owned()),
        detail,
    }
}

/// The claim loop: re-claims this worker's own orders and claims every claimable one (in bulk),
/// then restores the routing of idle applications with Services, then routes runtime events to
/// drivers and claims again only when woken (an order was stored) or when another process's
/// lease could have expired. A runtime event never triggers a claim: it concerns an order a
/// driver holds, or none.
async fn run(inner: Arc<Inner>) {
    let (events_tx, mut events) = mpsc::unbounded_channel::<String>();
    for runtime in inner.runtimes.0.values() {
        let mut rx = runtime.subscribe();
        let tx = events_tx.clone();
        let stop = inner.shutdown.clone();
        inner.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    ev = rx.recv() => match ev {
                        Ok(ev) => { if tx.send(ev.app_id).is_err() { break } }
                        // Events carry no state: after a lag every driver re-observes.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => { if tx.send(String::new()).is_err() { break } }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            }
        });
    }
    for runtime in inner.runtimes.0.values() {
        inner
            .tasks
            .spawn(autoscaling::listen(inner.clone(), runtime.clone()));
    }
    autoscaling::reconcile(&inner);
    for (cluster_id, runtime) in &inner.runtimes.0 {
        if let Some(kick) = inner.sweep_kicks.get(cluster_id) {
            inner.tasks.spawn(deletion::sweeper(
                inner.clone(),
                cluster_id.clone(),
                runtime.clone(),
                kick.clone(),
            ));
        }
    }
    inner.tasks.spawn(renew_leases(inner.clone()));
    // Orders this worker id held when its previous process stopped resume at once.
    match inner
        .store
        .reclaim_own(
            &inner.config.worker_id,
            inner.config.lease,
            inner.clock.timestamp(),
        )
        .await
    {
        Ok(own) => spawn_drivers(&inner, own).await,
        Err(error) => {
            tracing::warn!(message = "Reclaiming this worker's change orders failed.", %error)
        }
    }
    // From now on an order stored here is created leased to this process and driven at once
    // (not before: the re-claim above would take it from its driver).
    inner
        .started
        .store(true, std::sync::atomic::Ordering::SeqCst);
    claim_all(&inner).await;
    // After the claims, so resuming never waits for it.
    reconcile_routing(&inner).await;
    let mut look_again = tokio::time::Instant::now() + inner.config.lease;
    loop {
        tokio::select! {
            _ = inner.shutdown.cancelled() => break,
            _ = inner.wake.notified() => {}
            Some(app) = events.recv() => {
                let drivers = inner.drivers.lock().unwrap_or_else(|p| p.into_inner());
                if app.is_empty() {
                    for (_, tx) in drivers.values() { let _ = tx.send(DriverMsg::Runtime); }
                } else if let Some((_, tx)) = drivers.get(&app) {
                    let _ = tx.send(DriverMsg::Runtime);
                }
                continue;
            }
            // Another process's lease may have expired: look again.
            _ = tokio::time::sleep_until(look_again) => {}
        }
        look_again = tokio::time::Instant::now() + inner.config.lease;
        claim_all(&inner).await;
    }
}

/// Renews every lease this process holds, in one store write per third of the lease, and stops
/// the drivers of orders it no longer holds (finished, or taken over by another process after a
/// stall). One write per period for the whole process, whatever the number of orders in flight.
async fn renew_leases(inner: Arc<Inner>) {
    let every = inner.config.lease / 3;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // The drivers of this moment; one spawned later is renewed next period.
        let before: Vec<(String, mpsc::UnboundedSender<DriverMsg>)> = {
            let drivers = inner.drivers.lock().unwrap_or_else(|p| p.into_inner());
            drivers.values().cloned().collect()
        };
        if before.is_empty() {
            continue;
        }
        let ids: Vec<String> = before.iter().map(|(id, _)| id.clone()).collect();
        let now = inner.clock.timestamp();
        match inner
            .store
            .renew_leases(&inner.config.worker_id, &ids, inner.config.lease, now)
            .await
        {
            Ok(held) => {
                let held: std::collections::HashSet<String> = held.into_iter().collect();
                for (order, tx) in before {
                    if !held.contains(&order) {
                        let _ = tx.send(DriverMsg::LeaseLost);
                    }
                }
            }
            Err(error) => {
                tracing::warn!(message = "Renewing this process's leases failed; retrying at the next period.", %error)
            }
        }
    }
}

/// At start-up, gives every runtime the routing of each application with Services that no
/// change order is driving (a driver applies its own): the local runtime's proxies live in this
/// process, so they come back with it; a cluster's Services are re-asserted. A cluster that does
/// not answer is not waited for (nor does it hold up the others): its applications' routing is
/// re-asserted when it answers.
async fn reconcile_routing(inner: &Arc<Inner>) {
    for cluster in restore_routing(inner, None).await {
        let Some(runtime) = inner.runtimes.get(&cluster).cloned() else {
            continue;
        };
        let i = inner.clone();
        inner.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = i.shutdown.cancelled() => return,
                    _ = runtime.wait_available() => {}
                }
                if restore_routing(&i, Some(&cluster)).await.is_empty() {
                    return;
                }
            }
        });
    }
}

/// Restores the routing of the idle applications with Services (of `cluster_id`, or of every
/// cluster); returns the clusters skipped because they do not answer. Applications without
/// Services are never read.
async fn restore_routing(
    inner: &Arc<Inner>,
    cluster_id: Option<&str>,
) -> std::collections::BTreeSet<String> {
    const PAGE: u32 = 500;
    let mut deferred = std::collections::BTreeSet::new();
    let mut after = String::new();
    loop {
        if inner.shutdown.is_cancelled() {
            return deferred;
        }
        let page = match inner
            .store
            .idle_applications_with_services(cluster_id, &after, PAGE)
            .await
        {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(message = "Listing applications to restore their routing failed.", %error);
                return deferred;
            }
        };
        for app in &page {
            let Some(runtime) = inner.runtimes.get(&app.cluster_id) else {
                continue;
            };
            if deferred.contains(&app.cluster_id) {
                continue;
            }
            if runtime.availability().is_err() {
                deferred.insert(app.cluster_id.clone());
                continue;
            }
            // The last order still decides when it was aborted (its new revision gets 0 %).
            let last = inner
                .store
                .list_change_orders(&app.id, edas_store::PageRequest::new(1, 1))
                .await
                .ok()
                .and_then(|page| page.items.into_iter().next())
                .map(|order| order.state)
                .filter(|state| state.status() == edas_release::Status::Terminated);
            if let Err(error) = runtime
                .set_routing(
                    &target::app_ref(app),
                    &routing::routing(&app.spec, last.as_ref()),
                )
                .await
            {
                tracing::warn!(message = "Restoring an application's routing failed.", app_id = %app.id, %error);
            }
        }
        match page.last() {
            Some(last) if page.len() >= PAGE as usize => after = last.id.clone(),
            _ => return deferred,
        }
    }
}

/// Drives a change order this process just stored under its own lease
/// ([`Inner::own_lease`]); wakes the claim loop for one stored without.
/// `app`: the application as the order's own deploy stored it, when the caller has it.
fn drive_or_wake(inner: &Arc<Inner>, record: edas_store::ChangeOrder, app: Option<driver::Known>) {
    if record
        .lease
        .as_ref()
        .is_some_and(|l| l.owner == inner.config.worker_id)
    {
        spawn_driver(inner, record, app);
    } else {
        inner.wake.notify_one();
    }
}

/// Spawns the driver of a claimed order; none once shutting down (the order keeps its lease,
/// handed over with the others).
fn spawn_driver(inner: &Arc<Inner>, record: edas_store::ChangeOrder, app: Option<driver::Known>) {
    if inner.shutdown.is_cancelled() {
        return;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    inner
        .drivers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(record.app_id.clone(), (record.id.clone(), tx));
    let i = inner.clone();
    // The application boxed: inline it is ~6 KiB, copied with the driver's future at each move.
    let app = app.map(Box::new);
    inner
        .tasks
        .spawn(async move { driver::drive(i, record, app, rx).await });
}

/// Spawns the drivers of claimed orders with their applications read in one statement (a
/// resume of 1,000 orders: one read, not 1,000); a driver whose application is missing from
/// it reads its own.
async fn spawn_drivers(inner: &Arc<Inner>, records: Vec<edas_store::ChangeOrder>) {
    let ids: Vec<String> = records.iter().map(|r| r.app_id.clone()).collect();
    let mut apps: HashMap<String, edas_store::Application> = match inner
        .store
        .get_applications(&ids)
        .await
    {
        Ok(apps) => apps.into_iter().map(|a| (a.id.clone(), a)).collect(),
        Err(error) => {
            tracing::warn!(message = "Reading the claimed orders' applications failed; each driver reads its own.", %error);
            HashMap::new()
        }
    };
    for record in records {
        let app = apps
            .remove(&record.app_id)
            .map(|app| driver::Known { app, leaving: None });
        spawn_driver(inner, record, app);
    }
}

/// How many orders one claim statement takes at most.
const CLAIM_BATCH: u32 = 1000;

/// Claims every claimable change order, [`CLAIM_BATCH`] per statement, and drives each; stops
/// at once on shutdown (so it never re-claims what shutting-down drivers leave).
async fn claim_all(inner: &Arc<Inner>) {
    while !inner.shutdown.is_cancelled() {
        let claimed = inner
            .store
            .claim_claimable(
                &inner.config.worker_id,
                inner.config.lease,
                inner.clock.timestamp(),
                CLAIM_BATCH,
            )
            .await;
        match claimed {
            Ok(records) => {
                let full = records.len() >= CLAIM_BATCH as usize;
                spawn_drivers(inner, records).await;
                if !full {
                    break;
                }
            }
            Err(error) => {
                tracing::warn!(message = "Claiming change orders failed.", %error);
                break;
            }
        }
    }
}
