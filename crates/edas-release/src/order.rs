//! The change-order state machine. See the crate docs for the model and the engine contract.

use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisVerdict, CheckStanding, ReleaseAnalysis};
use crate::ids::derived_id;
use crate::plan::{BatchKind, Plan, PlanError, Release, Strategy, plan};
use crate::settings::{ReleaseSettings, SettingsError};
use crate::status::Status;

/// A point in time: milliseconds since the Unix epoch. The machine never reads a clock; every
/// input comes with one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EpochMillis(pub u64);

impl EpochMillis {
    /// This time plus `seconds` (saturating).
    pub fn plus_seconds(self, seconds: u64) -> EpochMillis {
        EpochMillis(self.0.saturating_add(seconds.saturating_mul(1000)))
    }
}

/// An application revision (the store's id for one version of the application spec).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RevisionId(pub String);

impl std::fmt::Display for RevisionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A revision and its instances as the runtime reports them at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instances {
    /// The revision.
    pub revision: RevisionId,
    /// Instances of it that exist (ready or not).
    pub replicas: u32,
    /// Of those, how many are ready.
    pub ready: u32,
}

/// What kind of change an order carries (rendered as `CoType`/`CoTypeCode` by the API). The
/// mechanics are the same for all: move the application from one revision and count to another.
/// A restart is a new revision with the same spec, so its instances are replaced batch by batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// InsertK8sApplication.
    Create,
    /// DeployK8sApplication.
    Deploy,
    /// UpdateK8sApplicationConfig.
    UpdateConfig,
    /// ScaleK8sApplication.
    Scale,
    /// StartK8sApplication.
    Start,
    /// StopK8sApplication.
    Stop,
    /// RestartK8sApplication.
    Restart,
    /// A rollback order (AbortAndRollbackChangeOrder, RollbackChangeOrder, rollback to a revision).
    Rollback,
    /// DeleteK8sApplication (to zero instances).
    Delete,
}

/// Everything a new change order needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// The change order id (the engine generates it; ids of pipelines, stages and tasks derive from it).
    pub id: String,
    /// What kind of change this is.
    pub kind: ChangeKind,
    /// `ChangeOrderDesc`.
    pub description: String,
    /// The revision serving now and its instances; `None` when the application has none yet
    /// (creation). Rollback goes back to this revision and count.
    pub from: Option<Instances>,
    /// The revision to release and how many of its instances exist now (usually 0; more when
    /// rolling back to a revision that still serves). The target count is `plan.replicas()`.
    /// For a change within one revision (scale, stop) `to` equals `from`.
    pub to: Instances,
    /// The batches, from [`plan`](crate::plan()).
    pub plan: Plan,
    /// Timeout and readiness pacing.
    pub settings: ReleaseSettings,
}

/// Why a change order cannot be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NewOrderError {
    /// The settings cannot be met.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// `ready` exceeds `replicas` in `from` or `to`.
    #[error("{side}: {ready} ready instances reported out of {replicas}")]
    ReadyExceedsReplicas {
        /// `"from"` or `"to"`.
        side: &'static str,
        /// Ready count.
        ready: u32,
        /// Instance count.
        replicas: u32,
    },
    /// The plan's batches do not add up (only possible for a plan deserialized from bad data).
    #[error("plan is inconsistent: {0}")]
    InvalidPlan(String),
    /// `from` and `to` name the same revision with different counts.
    #[error("from and to are the same revision {revision} but report different instance counts")]
    InconsistentRevision {
        /// The revision.
        revision: RevisionId,
    },
}

/// A timer the engine arms for an order. The engine keys timers by (order id, [`Timer`]); arming an
/// armed timer replaces its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timer {
    /// Index of the pipeline the timer belongs to.
    pub pipeline: u32,
    /// What the timer is for.
    pub kind: TimerKind,
}

/// The waits the user asked for. There is no polling tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// The batch timeout.
    BatchTimeout,
    /// The end of the ready window (min ready seconds + lossless gate) of the batch's instances.
    ReadyWindow,
    /// The end of the automatic wait before this pipeline starts.
    NextBatch,
}

/// A runtime observation of one revision: the engine delivers one whenever the runtime reports a
/// change (instance started, ready, not ready, failed, stopped), for the `from` and `to` revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The revision observed.
    pub revision: RevisionId,
    /// Ready instances.
    pub ready: u32,
    /// Existing instances (ready or not, not yet stopped).
    pub total: u32,
    /// Set when the runtime gave up on an instance (it cannot start, or keeps crashing): the reason.
    pub failed: Option<String>,
    /// The instances, when the runtime names them (shown in GetChangeOrderInfo).
    pub instances: Vec<InstanceEntry>,
}

/// One instance, as the runtime reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceEntry {
    /// Instance (pod/process) name.
    pub name: String,
    /// Its address, if any.
    pub ip: Option<String>,
    /// Whether it is ready.
    pub ready: bool,
    /// Why the runtime gave up on it, if it did.
    pub failed: Option<String>,
}

impl InstanceEntry {
    /// The EDAS status of the instance: 2 ready, 3 failed, 1 starting.
    pub fn status(&self) -> Status {
        if self.failed.is_some() {
            Status::Failed
        } else if self.ready {
            Status::Success
        } else {
            Status::InProgress
        }
    }
}

/// A rollback's new order: its id (generated by the engine) and how to batch it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRequest {
    /// Id of the rollback change order.
    pub order_id: String,
    /// Its batching ([`Strategy::Single`] for a fast rollback; capacity is protected either way).
    pub strategy: Strategy,
}

/// An input to [`ChangeOrder::step`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// The engine claimed the order: start the first batch (status 0 → 1).
    Start,
    /// A runtime observation.
    Observed(Observation),
    /// A timer armed by this order fired (a stale one is harmless: deadlines live in the state).
    TimerFired(Timer),
    /// ContinuePipeline.
    Continue {
        /// `PipelineId`: the batch waiting to start, or the batch just finished.
        pipeline_id: String,
        /// `Confirm`: `true` starts the next batch; `false` keeps waiting.
        confirm: bool,
    },
    /// AbortChangeOrder.
    Abort,
    /// AbortAndRollbackChangeOrder.
    AbortAndRollback(RollbackRequest),
    /// RollbackChangeOrder (on a running or a finished order).
    Rollback(RollbackRequest),
    /// RetryChangeOrderTask: re-run the failed batch with a fresh timeout. `task_id`, when given,
    /// must be a task of the failed batch.
    Retry {
        /// `TaskId`.
        task_id: Option<String>,
    },
    /// The engine could not carry out an effect (runtime unavailable, refused): status 10. The
    /// batch running or waiting to start is marked failed; Retry starts it.
    SystemFailure {
        /// What went wrong.
        reason: String,
    },
    /// DeleteK8sApplication with `Force=true`, or a deletion on an unreachable cluster: the
    /// order ends at once as a success without waiting for instances to stop; the runtime's
    /// clean-up of the application continues outside the order. Only for [`ChangeKind::Delete`]
    /// orders that have not settled yet.
    Forced {
        /// Why it did not wait (shown as the message of every batch it ended).
        reason: String,
    },
    /// A measurement of the release analysis (edasd extension, issue 21): the engine's new
    /// analysis state, every check's standing and what they decided. Persisted as one
    /// transition, so a measurement is durable before the decision it causes acts.
    Analysis {
        /// The engine's analysis state (opaque here).
        doc: String,
        /// Every check's standing.
        checks: Vec<CheckStanding>,
        /// Whether this carries a new measurement (rather than only a verdict).
        measured: bool,
        /// What it decided.
        verdict: AnalysisVerdict,
    },
    /// ContinuePipeline with edasd's `SkipAnalysis=true`: the batch waiting for (or held by)
    /// its analysis moves on without a verdict.
    SkipAnalysis {
        /// `PipelineId`: the batch judged, or the one after it.
        pipeline_id: String,
    },
}

/// What the engine must do after persisting the new state. All but `StartRollback` are idempotent:
/// executing one twice has the effect of executing it once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Make exactly `replicas` instances of `revision` exist: start the missing ones, or stop
    /// surplus ones (not-ready ones first). Never emitted to shrink the previous revision before the
    /// new revision's instances of the batch are ready.
    SetReplicas {
        /// The revision.
        revision: RevisionId,
        /// The exact count wanted.
        replicas: u32,
    },
    /// Replace the instances of `revision` the runtime gave up on (on Retry).
    RecreateFailed {
        /// The revision.
        revision: RevisionId,
    },
    /// Deliver `Input::TimerFired(timer)` at `at` (replaces an armed timer with the same key).
    ArmTimer {
        /// Which timer.
        timer: Timer,
        /// When.
        at: EpochMillis,
    },
    /// Drop the timer if armed.
    CancelTimer {
        /// Which timer.
        timer: Timer,
    },
    /// The order settled with this status (2, 3, 6 or 10): release the application for other
    /// changes, notify watchers. After 3 or 10 a Retry may re-activate the order.
    Finished {
        /// The final status.
        status: Status,
    },
    /// A rollback order was created: the engine stores it in the SAME transaction as this order's
    /// new state, then steps it with [`Input::Start`]. Never re-issued by
    /// [`ChangeOrder::resume_effects`].
    StartRollback(Box<ChangeOrder>),
}

/// Why an input was refused. Nothing changed in the order. The API maps these to 4xx answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The input does not apply in the order's current status.
    #[error("{input} is not possible while the change order is {status}")]
    InvalidState {
        /// The refused input.
        input: &'static str,
        /// The order's status.
        status: Status,
    },
    /// No pipeline of this order has that id.
    #[error("PipelineId {0} is not a batch of this change order")]
    UnknownPipeline(String),
    /// The pipeline exists but is neither waiting to start nor just finished.
    #[error(
        "PipelineId {pipeline_id} is not the batch waiting for confirmation ({waiting}) nor the \
         batch just finished"
    )]
    PipelineNotWaiting {
        /// The pipeline named.
        pipeline_id: String,
        /// The pipeline that is waiting.
        waiting: String,
    },
    /// The task is not part of the failed batch.
    #[error("TaskId {0} is not a task of the failed batch of this change order")]
    TaskNotInFailedBatch(String),
    /// An observation about a revision this order does not involve.
    #[error("revision {0} is not part of this change order")]
    UnrelatedRevision(RevisionId),
    /// An impossible observation.
    #[error("observation of revision {revision} reports {ready} ready out of {total} instances")]
    ReadyExceedsTotal {
        /// Revision.
        revision: RevisionId,
        /// Ready.
        ready: u32,
        /// Total.
        total: u32,
    },
    /// Rollback of an order without a previous revision (the creation of the application).
    #[error("change order has no previous revision to roll back to")]
    NoPreviousRevision,
    /// The order was already rolled back.
    #[error("change order was already rolled back by change order {0}")]
    AlreadyRolledBack(String),
    /// ContinuePipeline while the analysis after a batch still runs.
    #[error(
        "the analysis of batch {pipeline_id} is still running; ContinuePipeline is possible once \
         it passes (or fails and pauses)"
    )]
    AnalysisRunning {
        /// The batch being judged.
        pipeline_id: String,
    },
    /// SkipAnalysis on an order that does not wait for an analysis.
    #[error("the change order is not waiting for a release analysis")]
    NoAnalysisToSkip,
    /// The rollback strategy cannot be planned.
    #[error(transparent)]
    RollbackPlan(#[from] PlanError),
    /// The rollback order could not be built.
    #[error(transparent)]
    RollbackOrder(#[from] NewOrderError),
}

/// Which part of a batch a stage covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Start the batch's instances of the new revision.
    StartNew,
    /// Wait until they are ready and have stayed ready for the ready window.
    Readiness,
    /// Stop the previous revision's instances the batch replaces.
    StopOld,
    /// Judge the batch with the release policy's checks (edasd extension, issue 21; only in
    /// orders whose application has a policy).
    Analysis,
}

/// One stage of a pipeline, with its single task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// Deterministic id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What the stage does.
    pub kind: StageKind,
    /// Its status.
    pub status: Status,
    /// When it started.
    pub start_time: Option<EpochMillis>,
    /// When it finished (succeeded, failed or was terminated).
    pub finish_time: Option<EpochMillis>,
    /// The stage's task.
    pub task: Task,
}

/// A task (`TaskInfoDTO`): the unit RetryChangeOrderTask names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Deterministic id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Its status.
    pub status: Status,
    /// Progress text.
    pub message: String,
    /// Error code when it failed or was terminated (`BatchTimeout`, `InstanceFailed`,
    /// `SystemFailure`, `Aborted`).
    pub error_code: Option<String>,
    /// Error text.
    pub error_message: Option<String>,
}

/// One batch of the change order (`PipelineInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pipeline {
    /// Deterministic id (the `PipelineId` of ContinuePipeline).
    pub id: String,
    /// Position, from 0.
    pub index: u32,
    /// Display name: "Gray Batch Change" for a gray batch, "Batch N Change" for the others
    /// (regular batches counted from 1).
    pub name: String,
    /// Gray or regular.
    pub kind: BatchKind,
    /// Instances the batch adds.
    pub size: u32,
    /// Instances of the new revision once the batch is done.
    pub new_target: u32,
    /// Instances of the previous revision once the batch is done.
    pub old_target: u32,
    /// Status.
    pub status: Status,
    /// When it (first) started.
    pub start_time: Option<EpochMillis>,
    /// Last change.
    pub update_time: EpochMillis,
    /// When it finished.
    pub finish_time: Option<EpochMillis>,
    /// How many times it was started (1 + retries).
    pub attempts: u32,
    /// Start new, readiness, stop old.
    pub stages: Vec<Stage>,
    /// The new revision's instances as last observed while this batch ran.
    pub instances: Vec<InstanceEntry>,
}

/// The last observation of one side of the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    ready: u32,
    total: u32,
    failed: Option<String>,
    instances: Vec<InstanceEntry>,
}

/// The last replica counts this order asked the runtime for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
struct Desired {
    new: Option<u32>,
    old: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    NotStarted,
    /// Pipeline `current` runs.
    Running {
        step: BatchStep,
        timeout_at: EpochMillis,
    },
    /// Pipeline `current` waits to start (8 with `until: None`, 9 with a deadline).
    Waiting {
        until: Option<EpochMillis>,
    },
    /// Pipeline `current` is done and waits for the verdict of its analysis (1), or is held
    /// by a failed check (`paused`, 8).
    Judging {
        paused: bool,
    },
    /// Pipeline `current` failed (3 or 10).
    Failed,
    /// Success (2) or terminated (6).
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BatchStep {
    /// New instances started; waiting for readiness (since when all are ready).
    StartNew { ready_since: Option<EpochMillis> },
    /// Previous revision shrinking to the batch's `old_target`.
    StopOld,
}

const START_NEW: usize = 0;
const READINESS: usize = 1;
const STOP_OLD: usize = 2;
const ANALYSIS: usize = 3;

/// A change order: the durable, serializable state of one release. See the crate docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeOrder {
    id: String,
    kind: ChangeKind,
    description: String,
    status: Status,
    /// What served before, as given (rollback goes back to it).
    previous: Option<Instances>,
    /// The previous revision when it differs from `to` (the one to shrink), else `None`.
    old: Option<RevisionId>,
    to: RevisionId,
    /// Instances of `to` that existed at creation.
    to_existing: u32,
    plan: Plan,
    settings: ReleaseSettings,
    capacity_floor: u32,
    pipelines: Vec<Pipeline>,
    current: usize,
    phase: Phase,
    seen_old: Seen,
    seen_new: Seen,
    desired: Desired,
    recreate_pending: bool,
    create_time: EpochMillis,
    start_time: Option<EpochMillis>,
    update_time: EpochMillis,
    finish_time: Option<EpochMillis>,
    message: Option<String>,
    rollback_of: Option<String>,
    rolled_back_by: Option<String>,
    /// The release analysis, when the application had a release policy (issue 21).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    analysis: Option<ReleaseAnalysis>,
}

impl ChangeOrder {
    /// Creates an order in status 0 (ready). Nothing happens until [`Input::Start`].
    pub fn new(order: NewOrder, now: EpochMillis) -> Result<ChangeOrder, NewOrderError> {
        order.settings.validate()?;
        order.plan.check().map_err(NewOrderError::InvalidPlan)?;
        for (side, inst) in [("from", order.from.as_ref()), ("to", Some(&order.to))] {
            if let Some(i) = inst
                && i.ready > i.replicas
            {
                return Err(NewOrderError::ReadyExceedsReplicas {
                    side,
                    ready: i.ready,
                    replicas: i.replicas,
                });
            }
        }
        let same_revision = order
            .from
            .as_ref()
            .is_some_and(|f| f.revision == order.to.revision);
        if same_revision && order.from.as_ref() != Some(&order.to) {
            return Err(NewOrderError::InconsistentRevision {
                revision: order.to.revision,
            });
        }
        let old = order.from.as_ref().filter(|_| !same_revision);
        let old_count = old.map_or(0, |o| o.replicas);
        let ready_at_start = order.to.ready.saturating_add(old.map_or(0, |o| o.ready));
        let target = order.plan.replicas();

        let batches = order.plan.batches();
        let mut pipelines = Vec::with_capacity(batches.len());
        let mut cumulative = 0u32;
        let mut regular_number = 0u32;
        for (i, batch) in batches.iter().enumerate() {
            cumulative += batch.size;
            let last = i + 1 == batches.len();
            // Instances of `to` that already serve count toward the early batches, and are never
            // stopped before the last batch (a rollback must not shrink the revision it restores).
            let new_target = if last {
                target
            } else {
                cumulative.max(order.to.replicas.min(target))
            };
            // Stop old instances only down to `target - new`: after each batch old + new is back
            // at the target (or at what old had, if less), so a batch surges by at most its own
            // size and ready capacity never dips below min(ready at start, target).
            let old_target = old_count.min(target.saturating_sub(new_target));
            let name = match batch.kind {
                BatchKind::Gray => "Gray Batch Change".to_string(),
                BatchKind::Regular => {
                    regular_number += 1;
                    format!("Batch {regular_number} Change")
                }
            };
            pipelines.push(new_pipeline(
                &order.id,
                i as u32,
                name,
                batch.kind,
                batch.size,
                new_target,
                old_target,
                order.to.revision.clone(),
                old.map(|o| o.revision.clone()),
                now,
            ));
        }

        Ok(ChangeOrder {
            id: order.id,
            kind: order.kind,
            description: order.description,
            status: Status::Ready,
            previous: order.from.clone(),
            old: old.map(|o| o.revision.clone()),
            to_existing: order.to.replicas,
            seen_old: Seen {
                ready: old.map_or(0, |o| o.ready),
                total: old_count,
                failed: None,
                instances: Vec::new(),
            },
            seen_new: Seen {
                ready: order.to.ready,
                total: order.to.replicas,
                failed: None,
                instances: Vec::new(),
            },
            to: order.to.revision,
            plan: order.plan,
            settings: order.settings,
            capacity_floor: ready_at_start.min(target),
            pipelines,
            current: 0,
            phase: Phase::NotStarted,
            desired: Desired::default(),
            recreate_pending: false,
            create_time: now,
            start_time: None,
            update_time: now,
            finish_time: None,
            message: None,
            rollback_of: None,
            rolled_back_by: None,
            analysis: None,
        })
    }

    /// Attaches the release analysis of the application's policy to a new order (status 0):
    /// every batch gets an analysis stage, and the batches `analysis.gated` names wait for a
    /// verdict once they are done. A rollback order never has one.
    pub fn with_analysis(mut self, mut analysis: ReleaseAnalysis) -> ChangeOrder {
        analysis.gated.resize(self.pipelines.len(), false);
        for p in &mut self.pipelines {
            let idx = p.index.to_string();
            let gated = analysis.gated[p.index as usize];
            p.stages.push(Stage {
                id: derived_id(&[&self.id, "stage", &idx, "analysis"]),
                name: "Release analysis".to_string(),
                kind: StageKind::Analysis,
                status: Status::Ready,
                start_time: None,
                finish_time: None,
                task: Task {
                    id: derived_id(&[&self.id, "task", &idx, "analysis"]),
                    name: if gated {
                        "Judge the batch with the release policy".to_string()
                    } else {
                        "Background checks of the release policy".to_string()
                    },
                    status: Status::Ready,
                    message: String::new(),
                    error_code: None,
                    error_message: None,
                },
            });
        }
        self.analysis = Some(analysis);
        self
    }

    /// Applies `input` at `now` and returns the effects to execute, in order, AFTER the engine has
    /// persisted the new state. On `Err` the order is unchanged. A `now` earlier than the last
    /// update is treated as the last update (clocks may step back; the order's times do not).
    pub fn step(&mut self, input: Input, now: EpochMillis) -> Result<Vec<Effect>, StepError> {
        let now = now.max(self.update_time);
        let before = self.clone();
        let mut fx = Vec::new();
        match input {
            Input::Start => {
                if self.status != Status::Ready {
                    return Err(self.invalid("Start"));
                }
                self.start_pipeline(now, &mut fx);
            }
            Input::Observed(obs) => self.observe(obs, now)?,
            Input::TimerFired(_) => {
                // Deadlines are part of the state, so a timer is only a wake-up: re-evaluate them.
            }
            Input::Continue {
                pipeline_id,
                confirm,
            } if matches!(self.phase, Phase::Judging { .. }) => {
                self.check_judged(&pipeline_id)?;
                if self.phase == (Phase::Judging { paused: false }) {
                    return Err(StepError::AnalysisRunning {
                        pipeline_id: self.pipelines[self.current].id.clone(),
                    });
                }
                if !confirm {
                    return Ok(fx);
                }
                // Judge again: the engine re-runs the checks that failed.
                self.resume_judging(now);
            }
            Input::Continue {
                pipeline_id,
                confirm,
            } => {
                self.check_continue(&pipeline_id)?;
                if !confirm {
                    return Ok(fx);
                }
                self.cancel_timers(&mut fx);
                self.clear_pause();
                self.start_pipeline(now, &mut fx);
            }
            Input::SkipAnalysis { pipeline_id } => {
                if self.analysis.is_none() || !self.status.is_active() {
                    return Err(StepError::NoAnalysisToSkip);
                }
                match self.phase {
                    Phase::Judging { .. } => {
                        self.check_judged(&pipeline_id)?;
                        let p = &mut self.pipelines[self.current];
                        p.stages[ANALYSIS].task.message =
                            "Skipped (ContinuePipeline with SkipAnalysis=true)".to_string();
                        self.pass_gate(now, &mut fx);
                    }
                    Phase::Waiting { .. } if self.paused().is_some() => {
                        self.check_continue(&pipeline_id)?;
                        self.cancel_timers(&mut fx);
                        self.clear_pause();
                        self.start_pipeline(now, &mut fx);
                    }
                    _ => return Err(StepError::NoAnalysisToSkip),
                }
            }
            Input::Analysis {
                doc,
                checks,
                measured,
                verdict,
            } => {
                if !self.status.is_active() {
                    return Err(self.invalid("Analysis"));
                }
                let Some(a) = self.analysis.as_mut() else {
                    return Err(self.invalid("Analysis"));
                };
                a.doc = doc;
                a.checks = checks;
                if measured {
                    a.measured = a.measured.saturating_add(1);
                }
                self.show_analysis(now);
                match verdict {
                    AnalysisVerdict::Continue => {}
                    AnalysisVerdict::Passed { pipeline } => {
                        if self.phase == (Phase::Judging { paused: false })
                            && self.current == pipeline as usize
                        {
                            if let Some(a) = self.analysis.as_mut() {
                                a.passes = a.passes.saturating_add(1);
                            }
                            self.pass_gate(now, &mut fx);
                        }
                    }
                    AnalysisVerdict::Failed {
                        check: _,
                        reason,
                        rollback: Some(request),
                    } if self.previous.is_some() && self.rolled_back_by.is_none() => {
                        let rollback = self.rollback_order(request, now)?;
                        self.count_failure(&reason);
                        self.fail_analysis_stage(&reason, now);
                        self.terminate(now, &mut fx);
                        self.message = Some(reason);
                        self.rolled_back_by = Some(rollback.id.clone());
                        fx.push(Effect::StartRollback(Box::new(rollback)));
                    }
                    // Without a previous revision there is nothing to roll back to: hold it.
                    AnalysisVerdict::Failed { reason, .. } => self.pause(reason, now, &mut fx),
                }
            }
            Input::Abort => {
                if !self.status.is_active() {
                    return Err(self.invalid("AbortChangeOrder"));
                }
                self.terminate(now, &mut fx);
            }
            Input::AbortAndRollback(request) => {
                if !(self.status.is_active() || self.status.is_failure()) {
                    return Err(self.invalid("AbortAndRollbackChangeOrder"));
                }
                let rollback = self.rollback_order(request, now)?;
                self.terminate(now, &mut fx);
                self.rolled_back_by = Some(rollback.id.clone());
                fx.push(Effect::StartRollback(Box::new(rollback)));
            }
            Input::Rollback(request) => {
                let rollback = self.rollback_order(request, now)?;
                if self.status.is_active() || self.status.is_failure() {
                    self.terminate(now, &mut fx);
                }
                self.rolled_back_by = Some(rollback.id.clone());
                fx.push(Effect::StartRollback(Box::new(rollback)));
            }
            Input::Retry { task_id } => {
                if !self.status.is_failure() {
                    return Err(self.invalid("RetryChangeOrderTask"));
                }
                if let Some(by) = &self.rolled_back_by {
                    return Err(StepError::AlreadyRolledBack(by.clone()));
                }
                if let Some(task_id) = task_id
                    && !self.pipelines[self.current]
                        .stages
                        .iter()
                        .any(|s| s.task.id == task_id)
                {
                    return Err(StepError::TaskNotInFailedBatch(task_id));
                }
                self.finish_time = None;
                self.message = None;
                if self.seen_new.failed.take().is_some() {
                    self.recreate_pending = true;
                    fx.push(Effect::RecreateFailed {
                        revision: self.to.clone(),
                    });
                }
                self.start_pipeline(now, &mut fx);
            }
            Input::SystemFailure { reason } => {
                if !self.status.is_active() {
                    return Err(self.invalid("SystemFailure"));
                }
                self.fail(Status::SystemFailure, "SystemFailure", reason, now, &mut fx);
            }
            Input::Forced { reason } => {
                if self.kind != ChangeKind::Delete
                    || !(self.status.is_active() || self.status.is_failure())
                {
                    return Err(self.invalid("Forced"));
                }
                self.force_success(&reason, now, &mut fx);
            }
        }
        self.advance(now, &mut fx);
        // The analysis ends with the order: no check runs on after it.
        if before.status.is_active() && !self.status.is_active() {
            self.end_analysis(now);
        }
        // A no-op (a stale timer, a repeated observation) leaves the order untouched.
        if *self != before {
            self.update_time = now;
        }
        Ok(fx)
    }

    /// The effects that bring the runtime and the timers back in line with this state after an
    /// engine restart: the replica counts last asked for (new revision first), the timers of the
    /// current wait, and a pending replacement of failed instances. All idempotent, so re-applying
    /// them never doubles instances. An order in status 0 needs [`Input::Start`] instead; a settled
    /// order needs nothing.
    pub fn resume_effects(&self, _now: EpochMillis) -> Vec<Effect> {
        let mut fx = Vec::new();
        if !self.status.is_active() {
            return fx;
        }
        if let Some(replicas) = self.desired.new {
            fx.push(Effect::SetReplicas {
                revision: self.to.clone(),
                replicas,
            });
        }
        if let (Some(revision), Some(replicas)) = (&self.old, self.desired.old) {
            fx.push(Effect::SetReplicas {
                revision: revision.clone(),
                replicas,
            });
        }
        if self.recreate_pending {
            fx.push(Effect::RecreateFailed {
                revision: self.to.clone(),
            });
        }
        for (timer, at) in self.armed_timers() {
            fx.push(Effect::ArmTimer { timer, at });
        }
        fx
    }

    // ----- accessors for the API and the engine -----

    /// The change order id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The kind of change.
    pub fn kind(&self) -> ChangeKind {
        self.kind
    }
    /// `ChangeOrderDescription`.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// The order's status.
    pub fn status(&self) -> Status {
        self.status
    }
    /// True while the order holds the application (status 0, 1, 8, 9).
    pub fn is_active(&self) -> bool {
        self.status.is_active()
    }
    /// `BatchCount`.
    pub fn batch_count(&self) -> usize {
        self.pipelines.len()
    }
    /// `BatchType`: manual or automatic (with the wait).
    pub fn release(&self) -> Release {
        self.plan.release()
    }
    /// The plan the order executes.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    /// The release settings.
    pub fn settings(&self) -> &ReleaseSettings {
        &self.settings
    }
    /// Index of the batch running, waiting to start, failed or terminated; `None` before the start
    /// and after success.
    pub fn current_batch(&self) -> Option<usize> {
        match self.phase {
            Phase::NotStarted => None,
            Phase::Done if self.status == Status::Success => None,
            _ => Some(self.current),
        }
    }
    /// The pipelines (batches), in order.
    pub fn pipelines(&self) -> &[Pipeline] {
        &self.pipelines
    }
    /// The pipeline with this id.
    pub fn pipeline(&self, pipeline_id: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.id == pipeline_id)
    }
    /// The pipeline and stage holding the task with this id.
    pub fn task(&self, task_id: &str) -> Option<(&Pipeline, &Stage)> {
        self.pipelines.iter().find_map(|p| {
            p.stages
                .iter()
                .find(|s| s.task.id == task_id)
                .map(|s| (p, s))
        })
    }
    /// The revision being released.
    pub fn to_revision(&self) -> &RevisionId {
        &self.to
    }
    /// What served before the order, as given at creation.
    pub fn previous(&self) -> Option<&Instances> {
        self.previous.as_ref()
    }
    /// Target replica count.
    pub fn target_replicas(&self) -> u32 {
        self.plan.replicas()
    }
    /// min(ready instances at creation, target): ready capacity never drops below this because of
    /// this order.
    pub fn capacity_floor(&self) -> u32 {
        self.capacity_floor
    }
    /// The replica counts last asked of the runtime: (revision, count), new revision first.
    pub fn desired_replicas(&self) -> Vec<(RevisionId, u32)> {
        let mut out = Vec::new();
        if let Some(n) = self.desired.new {
            out.push((self.to.clone(), n));
        }
        if let (Some(rev), Some(n)) = (&self.old, self.desired.old) {
            out.push((rev.clone(), n));
        }
        out
    }
    /// `CreateTime`.
    pub fn create_time(&self) -> EpochMillis {
        self.create_time
    }
    /// When Start was applied.
    pub fn start_time(&self) -> Option<EpochMillis> {
        self.start_time
    }
    /// Last change.
    pub fn update_time(&self) -> EpochMillis {
        self.update_time
    }
    /// `FinishTime`: when it settled (cleared by Retry).
    pub fn finish_time(&self) -> Option<EpochMillis> {
        self.finish_time
    }
    /// Why it failed, when it did.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
    /// `SupportRollback`: there is a previous revision and no rollback happened yet.
    pub fn supports_rollback(&self) -> bool {
        self.previous.is_some() && self.rolled_back_by.is_none()
    }
    /// The order this one rolls back, if it is a rollback.
    pub fn rollback_of(&self) -> Option<&str> {
        self.rollback_of.as_deref()
    }
    /// The rollback order created from this one, if any.
    pub fn rolled_back_by(&self) -> Option<&str> {
        self.rolled_back_by.as_deref()
    }
    /// The release analysis, when the order has one.
    pub fn analysis(&self) -> Option<&ReleaseAnalysis> {
        self.analysis.as_ref()
    }
    /// The analysis state of an order that just ended, as the engine closed it (every check
    /// still running ended, see [`Self::end_analysis`]): stored with the order's last
    /// transition. Refused (`false`, nothing changes) while the order is active or has no
    /// analysis.
    pub fn close_analysis(&mut self, doc: String, checks: Vec<CheckStanding>) -> bool {
        if self.status.is_active() {
            return false;
        }
        let Some(a) = self.analysis.as_mut() else {
            return false;
        };
        a.doc = doc;
        a.checks = checks;
        let now = self.update_time;
        self.end_analysis(now);
        true
    }
    /// The batch (index) whose analysis verdict the order waits for now (not while held).
    pub fn judging(&self) -> Option<usize> {
        (self.phase == Phase::Judging { paused: false }).then_some(self.current)
    }
    /// Why a failed check holds the order for a human, if one does.
    pub fn paused(&self) -> Option<&str> {
        self.analysis.as_ref().and_then(|a| a.paused.as_deref())
    }
    /// Timers the current state waits for, with their deadlines.
    pub fn armed_timers(&self) -> Vec<(Timer, EpochMillis)> {
        let pipeline = self.current as u32;
        let mut out = Vec::new();
        match self.phase {
            Phase::Running { step, timeout_at } => {
                out.push((
                    Timer {
                        pipeline,
                        kind: TimerKind::BatchTimeout,
                    },
                    timeout_at,
                ));
                if let BatchStep::StartNew {
                    ready_since: Some(since),
                } = step
                    && self.ready_window() > 0
                {
                    out.push((
                        Timer {
                            pipeline,
                            kind: TimerKind::ReadyWindow,
                        },
                        since.plus_seconds(self.ready_window()),
                    ));
                }
            }
            Phase::Waiting { until: Some(at) } => out.push((
                Timer {
                    pipeline,
                    kind: TimerKind::NextBatch,
                },
                at,
            )),
            _ => {}
        }
        out
    }

    /// The rollback order of this one: back to the previous revision and its replica count, from
    /// the instances that exist now (both revisions keep serving until the rollback's batches
    /// replace them). Pure: it changes nothing here; [`Input::Rollback`] and
    /// [`Input::AbortAndRollback`] call it and record the link.
    pub fn rollback_order(
        &self,
        request: RollbackRequest,
        now: EpochMillis,
    ) -> Result<ChangeOrder, StepError> {
        if let Some(by) = &self.rolled_back_by {
            return Err(StepError::AlreadyRolledBack(by.clone()));
        }
        let previous = self
            .previous
            .as_ref()
            .ok_or(StepError::NoPreviousRevision)?;
        let plan = plan(previous.replicas, &request.strategy)?;
        let new_count = self.desired.new.unwrap_or(self.seen_new.total);
        let from = Instances {
            revision: self.to.clone(),
            replicas: new_count,
            ready: self.seen_new.ready.min(new_count),
        };
        let to = if self.old.is_some() {
            let old_count = self.desired.old.unwrap_or(self.seen_old.total);
            Instances {
                revision: previous.revision.clone(),
                replicas: old_count,
                ready: self.seen_old.ready.min(old_count),
            }
        } else {
            from.clone()
        };
        let mut order = ChangeOrder::new(
            NewOrder {
                id: request.order_id,
                kind: ChangeKind::Rollback,
                description: format!("Rollback of change order {}", self.id),
                from: Some(from),
                to,
                plan,
                settings: self.settings.clone(),
            },
            now,
        )?;
        order.rollback_of = Some(self.id.clone());
        Ok(order)
    }

    // ----- transitions -----

    /// Seconds the current batch's new instances must stay ready; none when it has no instances.
    fn ready_window(&self) -> u64 {
        if self.pipelines[self.current].new_target == 0 {
            0
        } else {
            self.settings.ready_window_seconds()
        }
    }

    fn invalid(&self, input: &'static str) -> StepError {
        StepError::InvalidState {
            input,
            status: self.status,
        }
    }

    fn check_continue(&self, pipeline_id: &str) -> Result<(), StepError> {
        if !matches!(
            self.status,
            Status::WaitingForConfirmation | Status::WaitingForNextBatch
        ) {
            if self.pipeline(pipeline_id).is_none() {
                return Err(StepError::UnknownPipeline(pipeline_id.to_string()));
            }
            return Err(self.invalid("ContinuePipeline"));
        }
        let waiting = &self.pipelines[self.current];
        let just_finished = self.current.checked_sub(1).map(|i| &self.pipelines[i]);
        if waiting.id == pipeline_id || just_finished.is_some_and(|p| p.id == pipeline_id) {
            Ok(())
        } else if self.pipeline(pipeline_id).is_some() {
            Err(StepError::PipelineNotWaiting {
                pipeline_id: pipeline_id.to_string(),
                waiting: waiting.id.clone(),
            })
        } else {
            Err(StepError::UnknownPipeline(pipeline_id.to_string()))
        }
    }

    fn observe(&mut self, obs: Observation, now: EpochMillis) -> Result<(), StepError> {
        if obs.ready > obs.total {
            return Err(StepError::ReadyExceedsTotal {
                revision: obs.revision,
                ready: obs.ready,
                total: obs.total,
            });
        }
        let seen = Seen {
            ready: obs.ready,
            total: obs.total,
            failed: obs.failed,
            instances: obs.instances,
        };
        if obs.revision == self.to {
            self.recreate_pending = false;
            self.seen_new = seen;
            if let Phase::Running { .. } = self.phase {
                let p = &mut self.pipelines[self.current];
                p.instances = self.seen_new.instances.clone();
                p.update_time = now;
            }
            Ok(())
        } else if self.old.as_ref() == Some(&obs.revision) {
            self.seen_old = seen;
            Ok(())
        } else {
            Err(StepError::UnrelatedRevision(obs.revision))
        }
    }

    /// Starts pipeline `current` (first run, after a wait, or on retry).
    fn start_pipeline(&mut self, now: EpochMillis, fx: &mut Vec<Effect>) {
        let timeout_at = now.plus_seconds(u64::from(self.settings.batch_timeout_seconds));
        self.status = Status::InProgress;
        self.start_time.get_or_insert(now);
        let to = self.to.clone();
        let p = &mut self.pipelines[self.current];
        p.status = Status::InProgress;
        p.attempts = p.attempts.saturating_add(1);
        p.start_time.get_or_insert(now);
        p.finish_time = None;
        p.update_time = now;
        for stage in &mut p.stages {
            reset_stage(stage);
        }
        begin_stage(
            &mut p.stages[START_NEW],
            now,
            format!("Scaling revision {to} to {} instance(s)", p.new_target),
        );
        begin_stage(
            &mut p.stages[READINESS],
            now,
            format!(
                "Waiting for {} ready instance(s) of revision {to}",
                p.new_target
            ),
        );
        let replicas = p.new_target;
        self.desired.new = Some(replicas);
        fx.push(Effect::SetReplicas {
            revision: to,
            replicas,
        });
        self.phase = Phase::Running {
            step: BatchStep::StartNew { ready_since: None },
            timeout_at,
        };
        fx.push(Effect::ArmTimer {
            timer: Timer {
                pipeline: self.current as u32,
                kind: TimerKind::BatchTimeout,
            },
            at: timeout_at,
        });
    }

    /// Re-evaluates the deadlines and observations until nothing more can happen at `now`.
    fn advance(&mut self, now: EpochMillis, fx: &mut Vec<Effect>) {
        loop {
            // A batch that scales the revision to 0 removes failed instances: they cannot fail
            // it (a crash-looping application can always be stopped or deleted).
            if let (Phase::Running { .. }, Some(reason)) = (self.phase, &self.seen_new.failed)
                && self.pipelines[self.current].new_target > 0
            {
                // The runtime gave up on an instance of the revision being released.
                let reason = format!("instance of revision {} failed: {reason}", self.to);
                self.fail(Status::Failed, "InstanceFailed", reason, now, fx);
                return;
            }
            match self.phase {
                Phase::Running {
                    step: BatchStep::StartNew { ready_since },
                    timeout_at,
                } => {
                    let p = &self.pipelines[self.current];
                    let target = p.new_target;
                    let shrinking = target < self.to_existing;
                    let ready = self.seen_new.ready >= target
                        && (!shrinking || self.seen_new.total <= target);
                    let since = if ready {
                        Some(ready_since.unwrap_or(now))
                    } else {
                        None
                    };
                    let window = self.ready_window();
                    let timer = Timer {
                        pipeline: self.current as u32,
                        kind: TimerKind::ReadyWindow,
                    };
                    if since != ready_since {
                        self.phase = Phase::Running {
                            step: BatchStep::StartNew { ready_since: since },
                            timeout_at,
                        };
                        if window > 0 {
                            match since {
                                Some(s) => fx.push(Effect::ArmTimer {
                                    timer,
                                    at: s.plus_seconds(window),
                                }),
                                None => fx.push(Effect::CancelTimer { timer }),
                            }
                        }
                    }
                    self.update_progress(now);
                    if let Some(s) = since {
                        let done_at = s.plus_seconds(window);
                        if done_at <= now && done_at <= timeout_at {
                            if window > 0 {
                                fx.push(Effect::CancelTimer { timer });
                            }
                            self.begin_stop_old(now, timeout_at, fx);
                            continue;
                        }
                    }
                    if now >= timeout_at {
                        let reason = format!(
                            "batch not done within BatchTimeout ({} s): {}/{} instance(s) of revision {} ready",
                            self.settings.batch_timeout_seconds,
                            self.seen_new.ready,
                            target,
                            self.to
                        );
                        self.fail(Status::Failed, "BatchTimeout", reason, now, fx);
                    }
                    return;
                }
                Phase::Running {
                    step: BatchStep::StopOld,
                    timeout_at,
                } => {
                    let old_target = self.pipelines[self.current].old_target;
                    let done = self.old.is_none() || self.seen_old.total <= old_target;
                    if done {
                        self.finish_pipeline(now, fx);
                        continue;
                    }
                    self.update_progress(now);
                    if now >= timeout_at {
                        let reason = format!(
                            "batch not done within BatchTimeout ({} s): {} instance(s) of the previous \
                             revision still running, {} expected",
                            self.settings.batch_timeout_seconds, self.seen_old.total, old_target
                        );
                        self.fail(Status::Failed, "BatchTimeout", reason, now, fx);
                    }
                    return;
                }
                Phase::Waiting { until: Some(at) } if at <= now => {
                    self.start_pipeline(now, fx);
                }
                _ => return,
            }
        }
    }

    fn begin_stop_old(&mut self, now: EpochMillis, timeout_at: EpochMillis, fx: &mut Vec<Effect>) {
        let to = self.to.clone();
        let p = &mut self.pipelines[self.current];
        p.update_time = now;
        // Say how the stages ended: their last progress message may predate the observation
        // that finished them (an order whose instances already exist finishes on its first).
        if p.stages[START_NEW].status == Status::InProgress {
            p.stages[START_NEW].task.message =
                format!("{0}/{0} instance(s) of revision {to} exist", p.new_target);
        }
        if p.stages[READINESS].status == Status::InProgress {
            p.stages[READINESS].task.message =
                format!("{0}/{0} instance(s) of revision {to} ready", p.new_target);
        }
        finish_stage(&mut p.stages[START_NEW], now);
        finish_stage(&mut p.stages[READINESS], now);
        let old_target = p.old_target;
        match &self.old {
            Some(old) => {
                begin_stage(
                    &mut p.stages[STOP_OLD],
                    now,
                    format!("Scaling revision {old} to {old_target} instance(s)"),
                );
                // Only ever shrink here, after the batch's new instances are ready.
                if self.desired.old.is_none_or(|d| d > old_target) {
                    self.desired.old = Some(old_target);
                    fx.push(Effect::SetReplicas {
                        revision: old.clone(),
                        replicas: old_target,
                    });
                }
            }
            None => {
                begin_stage(
                    &mut p.stages[STOP_OLD],
                    now,
                    "No previous revision to stop".to_string(),
                );
            }
        }
        self.phase = Phase::Running {
            step: BatchStep::StopOld,
            timeout_at,
        };
    }

    fn finish_pipeline(&mut self, now: EpochMillis, fx: &mut Vec<Effect>) {
        self.cancel_timers(fx);
        let p = &mut self.pipelines[self.current];
        // The last progress message was written before the old instances were gone: say how
        // the stage ended instead.
        if let (Some(old), Status::InProgress) = (&self.old, p.stages[STOP_OLD].status) {
            p.stages[STOP_OLD].task.message =
                format!("Revision {old} scaled to {} instance(s)", p.old_target);
        }
        finish_stage(&mut p.stages[STOP_OLD], now);
        if let Some(a) = &self.analysis {
            let gated = a.gated.get(self.current).copied().unwrap_or(false);
            let paused = a.paused.clone();
            if gated || paused.is_some() {
                begin_stage(
                    &mut p.stages[ANALYSIS],
                    now,
                    "Judging the batch with the release policy".to_string(),
                );
                self.phase = Phase::Judging { paused: false };
                self.show_analysis(now);
                if let Some(reason) = paused {
                    self.pause(reason, now, fx);
                }
                return;
            }
            if let Some(stage) = p.stages.get_mut(ANALYSIS) {
                begin_stage(stage, now, "No checks after this batch".to_string());
                finish_stage(stage, now);
            }
        }
        self.complete_pipeline(now, fx);
    }

    /// Pipeline `current` succeeded: the order succeeds or waits for the next batch.
    fn complete_pipeline(&mut self, now: EpochMillis, fx: &mut Vec<Effect>) {
        let p = &mut self.pipelines[self.current];
        p.status = Status::Success;
        p.finish_time = Some(now);
        p.update_time = now;
        if self.current + 1 == self.pipelines.len() {
            self.status = Status::Success;
            self.phase = Phase::Done;
            self.finish_time = Some(now);
            fx.push(Effect::Finished {
                status: Status::Success,
            });
            return;
        }
        self.current += 1;
        let (status, until) = match self.plan.release() {
            Release::Manual => (Status::WaitingForConfirmation, None),
            Release::Auto { wait_minutes } => (
                Status::WaitingForNextBatch,
                Some(now.plus_seconds(u64::from(wait_minutes) * 60)),
            ),
        };
        self.status = status;
        let next = &mut self.pipelines[self.current];
        next.status = status;
        next.update_time = now;
        self.phase = Phase::Waiting { until };
        if let Some(at) = until
            && at > now
        {
            fx.push(Effect::ArmTimer {
                timer: Timer {
                    pipeline: self.current as u32,
                    kind: TimerKind::NextBatch,
                },
                at,
            });
        }
    }

    /// The gate after pipeline `current` passed (or was skipped): it succeeds and the release
    /// moves on.
    fn pass_gate(&mut self, now: EpochMillis, fx: &mut Vec<Effect>) {
        self.clear_pause();
        let p = &mut self.pipelines[self.current];
        if let Some(stage) = p.stages.get_mut(ANALYSIS) {
            stage.task.error_code = None;
            stage.task.error_message = None;
            stage.status = Status::InProgress;
            finish_stage(stage, now);
        }
        self.status = Status::InProgress;
        self.complete_pipeline(now, fx);
    }

    /// A failed check holds the order for a human: at once when it is judging a batch or
    /// waiting between batches (status 8, the reason as its message), else when the running
    /// batch is done.
    fn pause(&mut self, reason: String, now: EpochMillis, fx: &mut Vec<Effect>) {
        if self.paused().is_none() {
            self.count_failure(&reason);
        }
        if let Some(a) = self.analysis.as_mut() {
            a.paused = Some(reason.clone());
        }
        match self.phase {
            Phase::Judging { .. } => {
                self.phase = Phase::Judging { paused: true };
                self.fail_analysis_stage(&reason, now);
            }
            Phase::Waiting { .. } => {
                self.cancel_timers(fx);
                self.phase = Phase::Waiting { until: None };
            }
            _ => return,
        }
        self.status = Status::WaitingForConfirmation;
        self.message = Some(reason);
        let p = &mut self.pipelines[self.current];
        p.status = Status::WaitingForConfirmation;
        p.update_time = now;
    }

    /// ContinuePipeline on a held gate: judge it again (the engine re-runs the failed checks).
    fn resume_judging(&mut self, now: EpochMillis) {
        self.clear_pause();
        self.status = Status::InProgress;
        self.phase = Phase::Judging { paused: false };
        let p = &mut self.pipelines[self.current];
        p.status = Status::InProgress;
        p.update_time = now;
        if let Some(stage) = p.stages.get_mut(ANALYSIS) {
            stage.task.error_code = None;
            stage.task.error_message = None;
            begin_stage(
                stage,
                now,
                "Judging the batch again after ContinuePipeline".to_string(),
            );
        }
        self.show_analysis(now);
    }

    fn count_failure(&mut self, reason: &str) {
        if let Some(a) = self.analysis.as_mut() {
            a.failures = a.failures.saturating_add(1);
            a.last_failure = Some(reason.to_owned());
        }
    }

    fn clear_pause(&mut self) {
        if let Some(a) = self.analysis.as_mut()
            && a.paused.take().is_some()
        {
            self.message = None;
        }
    }

    /// Ends the analysis stage of the batch being judged as failed, with the reason.
    fn fail_analysis_stage(&mut self, reason: &str, now: EpochMillis) {
        if !matches!(self.phase, Phase::Judging { .. }) {
            return;
        }
        let p = &mut self.pipelines[self.current];
        if let Some(stage) = p.stages.get_mut(ANALYSIS) {
            end_stage(stage, Status::Failed, now, "AnalysisFailed", reason);
        }
    }

    /// The order ended (success, failure, abort, rollback): a check still running ends with
    /// it (neither passed nor failed), and the analysis stage of the last batch says so.
    fn end_analysis(&mut self, now: EpochMillis) {
        let Some(a) = self.analysis.as_mut() else {
            return;
        };
        let mut ended = false;
        for c in &mut a.checks {
            if c.outcome == "running" || c.outcome == ENDED {
                c.outcome = ENDED.to_string();
                ended = true;
            }
        }
        if ended {
            self.show_analysis(now);
        }
    }

    /// Writes every check's standing into the task message of the current batch's analysis
    /// stage (what GetChangeOrderInfo shows), one line per check. A release without a gray
    /// batch has its `gray` checks judge the first batch, and their lines say so.
    fn show_analysis(&mut self, now: EpochMillis) {
        let Some(a) = &self.analysis else { return };
        let canary = self.current == 0 && !self.pipelines.iter().any(|p| p.kind == BatchKind::Gray);
        let lines: Vec<String> = a
            .checks
            .iter()
            .map(|c| {
                if canary && c.when == "gray" {
                    format!("{} {NO_GRAY}", c.line())
                } else {
                    c.line()
                }
            })
            .collect();
        let Some(p) = self.pipelines.get_mut(self.current) else {
            return;
        };
        if let Some(stage) = p.stages.get_mut(ANALYSIS)
            && !lines.is_empty()
        {
            stage.task.message = lines.join("\n");
            p.update_time = now;
        }
    }

    /// The pipeline id ContinuePipeline/SkipAnalysis name for the batch being judged: that
    /// batch or the one after it.
    fn check_judged(&self, pipeline_id: &str) -> Result<(), StepError> {
        let judged = &self.pipelines[self.current];
        let next = self.pipelines.get(self.current + 1);
        if judged.id == pipeline_id || next.is_some_and(|p| p.id == pipeline_id) {
            Ok(())
        } else if self.pipeline(pipeline_id).is_some() {
            Err(StepError::PipelineNotWaiting {
                pipeline_id: pipeline_id.to_string(),
                waiting: judged.id.clone(),
            })
        } else {
            Err(StepError::UnknownPipeline(pipeline_id.to_string()))
        }
    }

    /// Fails the current pipeline and the order; both revisions keep serving as they are.
    fn fail(
        &mut self,
        status: Status,
        code: &str,
        reason: String,
        now: EpochMillis,
        fx: &mut Vec<Effect>,
    ) {
        self.cancel_timers(fx);
        let p = &mut self.pipelines[self.current];
        p.status = status;
        p.update_time = now;
        p.finish_time = Some(now);
        let mut marked = false;
        for stage in &mut p.stages {
            if stage.status == Status::InProgress {
                end_stage(stage, status, now, code, &reason);
                marked = true;
            }
        }
        if !marked {
            end_stage(&mut p.stages[START_NEW], status, now, code, &reason);
        }
        self.status = status;
        self.phase = Phase::Failed;
        self.finish_time = Some(now);
        self.message = Some(reason);
        fx.push(Effect::Finished { status });
    }

    /// Terminates the order (6): every pipeline not finished or failed is terminated, nothing
    /// further starts, and the replica counts last asked for stay in force.
    fn terminate(&mut self, now: EpochMillis, fx: &mut Vec<Effect>) {
        self.cancel_timers(fx);
        for p in &mut self.pipelines {
            // Finished and failed batches keep their outcome; the rest are terminated.
            if p.status == Status::Success || p.status.is_failure() {
                continue;
            }
            p.status = Status::Terminated;
            p.update_time = now;
            p.finish_time.get_or_insert(now);
            for stage in &mut p.stages {
                if stage.status == Status::InProgress {
                    end_stage(
                        stage,
                        Status::Terminated,
                        now,
                        "Aborted",
                        "change order aborted",
                    );
                }
            }
        }
        self.status = Status::Terminated;
        self.phase = Phase::Done;
        self.finish_time = Some(now);
        fx.push(Effect::Finished {
            status: Status::Terminated,
        });
    }

    /// Ends every unfinished batch and the order as a success at once ([`Input::Forced`]).
    fn force_success(&mut self, reason: &str, now: EpochMillis, fx: &mut Vec<Effect>) {
        self.cancel_timers(fx);
        for p in &mut self.pipelines {
            if p.status == Status::Success {
                continue;
            }
            p.status = Status::Success;
            p.start_time.get_or_insert(now);
            p.update_time = now;
            p.finish_time = Some(now);
            for stage in &mut p.stages {
                if stage.status == Status::Success {
                    continue;
                }
                stage.status = Status::Success;
                stage.start_time.get_or_insert(now);
                stage.finish_time = Some(now);
                stage.task.status = Status::Success;
                stage.task.message = reason.to_owned();
                stage.task.error_code = None;
                stage.task.error_message = None;
            }
        }
        self.current = self.pipelines.len().saturating_sub(1);
        self.start_time.get_or_insert(now);
        self.status = Status::Success;
        self.phase = Phase::Done;
        self.finish_time = Some(now);
        self.message = Some(reason.to_owned());
        fx.push(Effect::Finished {
            status: Status::Success,
        });
    }

    fn cancel_timers(&self, fx: &mut Vec<Effect>) {
        for (timer, _) in self.armed_timers() {
            fx.push(Effect::CancelTimer { timer });
        }
    }

    /// Refreshes the progress messages of the running pipeline.
    fn update_progress(&mut self, now: EpochMillis) {
        let to = self.to.clone();
        let (new_ready, new_total) = (self.seen_new.ready, self.seen_new.total);
        let old_total = self.seen_old.total;
        let old = self.old.clone();
        let window = self.ready_window();
        let p = &mut self.pipelines[self.current];
        let target = p.new_target;
        let start = &mut p.stages[START_NEW];
        if start.status == Status::InProgress {
            start.task.message = format!("{new_total}/{target} instance(s) of revision {to} exist");
            if new_total >= target {
                finish_stage(start, now);
            }
        }
        let readiness = &mut p.stages[READINESS];
        if readiness.status == Status::InProgress {
            readiness.task.message = format!(
                "{new_ready}/{target} instance(s) of revision {to} ready (must stay ready {window} s)"
            );
        }
        let stop = &mut p.stages[STOP_OLD];
        if stop.status == Status::InProgress
            && let Some(old) = old
        {
            stop.task.message = format!(
                "{old_total} instance(s) of revision {old} running, {} expected",
                p.old_target
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn new_pipeline(
    order_id: &str,
    index: u32,
    name: String,
    kind: BatchKind,
    size: u32,
    new_target: u32,
    old_target: u32,
    to: RevisionId,
    old: Option<RevisionId>,
    now: EpochMillis,
) -> Pipeline {
    let idx = index.to_string();
    let stage = |kind: StageKind, key: &str, name: String, task_name: String| Stage {
        id: derived_id(&[order_id, "stage", &idx, key]),
        name,
        kind,
        status: Status::Ready,
        start_time: None,
        finish_time: None,
        task: Task {
            id: derived_id(&[order_id, "task", &idx, key]),
            name: task_name,
            status: Status::Ready,
            message: String::new(),
            error_code: None,
            error_message: None,
        },
    };
    let stop_task = match &old {
        Some(old) => format!("Scale revision {old} to {old_target} instance(s)"),
        None => "No previous revision to stop".to_string(),
    };
    Pipeline {
        id: derived_id(&[order_id, "pipeline", &idx]),
        index,
        name,
        kind,
        size,
        new_target,
        old_target,
        status: Status::Ready,
        start_time: None,
        update_time: now,
        finish_time: None,
        attempts: 0,
        stages: vec![
            stage(
                StageKind::StartNew,
                "start",
                "Start new instances".to_string(),
                format!("Scale revision {to} to {new_target} instance(s)"),
            ),
            stage(
                StageKind::Readiness,
                "ready",
                "Check readiness".to_string(),
                format!("Wait for {new_target} ready instance(s) of revision {to}"),
            ),
            stage(
                StageKind::StopOld,
                "stop",
                "Stop old instances".to_string(),
                stop_task,
            ),
        ],
        instances: Vec::new(),
    }
}

fn reset_stage(stage: &mut Stage) {
    stage.status = Status::Ready;
    stage.start_time = None;
    stage.finish_time = None;
    stage.task.status = Status::Ready;
    stage.task.message.clear();
    stage.task.error_code = None;
    stage.task.error_message = None;
}

fn begin_stage(stage: &mut Stage, now: EpochMillis, message: String) {
    stage.status = Status::InProgress;
    stage.start_time = Some(now);
    stage.task.status = Status::InProgress;
    stage.task.message = message;
}

fn finish_stage(stage: &mut Stage, now: EpochMillis) {
    if stage.status == Status::InProgress {
        stage.status = Status::Success;
        stage.finish_time = Some(now);
        stage.task.status = Status::Success;
    }
}

/// The outcome of a check that was running when its change order ended.
pub const ENDED: &str = "ended with the change order";

/// What a `gray` check's line says in a release without a gray batch.
pub const NO_GRAY: &str =
    "(gray check: it judges the first batch, as the release has no gray batch)";

fn end_stage(stage: &mut Stage, status: Status, now: EpochMillis, code: &str, reason: &str) {
    stage.status = status;
    stage.finish_time = Some(now);
    stage.task.status = status;
    stage.task.error_code = Some(code.to_string());
    stage.task.error_message = Some(reason.to_string());
}

#[cfg(test)]
mod tests;
