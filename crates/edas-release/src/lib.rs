//! The release planner and the change-order state machine of edasd: deterministic, time as an
//! input, no I/O, no clock, no randomness.
//!
//! # Model
//!
//! A **change order** moves an application from one revision and instance count (`from`) to
//! another (`to`, target replicas). [`plan()`] splits the target into **pipelines** (batches):
//! GrayBatchUpdate = a gray batch then `batches` regular ones, BatchUpdate = `batches`, no strategy =
//! one. Each pipeline has three **stages**, each with one **task**: start the batch's new instances,
//! wait until they are ready and have stayed ready for the ready window, stop the old instances the
//! batch replaces. Change order, pipelines, stages, tasks and instances carry the EDAS [`Status`]
//! codes (0, 1, 2, 3, 6, 8, 9, 10).
//!
//! Rules the machine guarantees:
//! - **New before old.** A batch asks for its new instances first and shrinks the previous revision
//!   only once they are ready, and only down to `min(old, target - new)`. So ready capacity never
//!   drops below `min(ready instances at creation, target)` ([`ChangeOrder::capacity_floor`])
//!   because of the release, given a runtime that stops not-ready instances first.
//! - **Done means ready for long enough.** A batch is done when its new instances are all ready and
//!   have stayed ready for `min_ready_seconds` (top-level BatchWaitTime) plus, with lossless start,
//!   the registration delay (Aligned) or delay + warm-up (Related); a drop in readiness restarts the
//!   window. Then the old instances must be observed gone.
//! - **Between batches**: `Manual` → 8 until ContinuePipeline with `confirm = true` (`false` keeps
//!   waiting). The pipeline id may be the batch *waiting to start* or the batch *just finished*:
//!   EDAS does not say which, and both identify the same gap. ContinuePipeline during an automatic
//!   wait (9) starts the next batch at once. `Auto { wait_minutes }` → 9 for that long; 0 starts the
//!   next batch in the same step, with no timer.
//! - **No release waits forever.** A batch not done within `batch_timeout_seconds` of its start fails
//!   the order (3) and leaves both revisions serving as they are; an instance the runtime gives up
//!   on fails it at once. [`Input::Retry`] re-runs the failed batch with a fresh timeout (and asks the
//!   runtime to replace failed instances). Waits between batches do not count toward the timeout.
//! - **Abort** (6): nothing further starts; the replica counts last asked for stay in force (so
//!   instances already starting finish starting, and no old instance is stopped).
//! - **Rollback** is a NEW change order back to the previous revision and replica count, batched by
//!   the [`RollbackRequest`]'s strategy, starting from the instances that exist now.
//!   AbortAndRollback (and Rollback of a running or failed order) terminates this order (6); Rollback
//!   of a finished order keeps its status. Either way the new order arrives as
//!   [`Effect::StartRollback`], and [`ChangeOrder::rolled_back_by`] links them.
//! - **Scale during a release** is a change order of its own, so it is refused while this one is
//!   active ([`ChangeOrder::is_active`]: 0, 1, 8, 9), which the API answers with 409. Abort first, or
//!   wait. Failed orders (3, 10) do not hold the application; retrying one is for the engine to allow
//!   only while it is still the application's latest order.
//! - An input that does not apply (Continue when not waiting, Retry when not failed, an unknown
//!   pipeline, ready > total …) returns a typed [`StepError`] and changes nothing. No input panics.
//!
//! # Engine contract
//!
//! 1. Create with [`ChangeOrder::new`] (status 0) and store it.
//! 2. For every input (API call, runtime observation, timer), call [`ChangeOrder::step`] with the
//!    current time, **persist the new state, then execute the returned effects in order**. An
//!    [`Effect::StartRollback`] order is stored in the same transaction, then started with
//!    [`Input::Start`].
//! 3. Effects are idempotent: `SetReplicas` means "exactly N instances of this revision", timers
//!    are keyed by (order id, [`Timer`]) and re-arming replaces. A crash between persist and act is
//!    therefore repaired on restart by executing [`ChangeOrder::resume_effects`] of each stored
//!    active order (status 0 orders get [`Input::Start`] instead), after delivering a fresh
//!    [`Input::Observed`] for both revisions. Deadlines live in the state, so timers fire at their
//!    original time, not a restarted one, and a stale or early timer is harmless.
//! 4. Deliver [`Input::Observed`] whenever the runtime's counts for either revision change: the
//!    machine reacts at once, with no polling tick. Report raw (probe) readiness: the machine
//!    applies `min_ready_seconds` and the lossless gate itself, so a runtime that also delayed
//!    readiness for them would make every batch wait twice.
//! 5. If an effect cannot be executed, deliver [`Input::SystemFailure`] (status 10, retryable).
//! 6. ContinuePipeline names a pipeline and RetryChangeOrderTask a task, not an order: find the
//!    order with [`ChangeOrder::pipeline`] / [`ChangeOrder::task`] (their ids derive
//!    deterministically from the order id, so an index built at creation stays valid).
//!
//! ```
//! use edas_release::*;
//!
//! // v1 serves 2 instances; release v2 in two automatic batches with no wait.
//! let strategy = Strategy::Batch { batches: 2, release: Release::Auto { wait_minutes: 0 } };
//! let mut order = ChangeOrder::new(
//!     NewOrder {
//!         id: "co-1".into(),
//!         kind: ChangeKind::Deploy,
//!         description: "v2".into(),
//!         from: Some(Instances { revision: RevisionId("v1".into()), replicas: 2, ready: 2 }),
//!         to: Instances { revision: RevisionId("v2".into()), replicas: 0, ready: 0 },
//!         plan: plan(2, &strategy)?,
//!         settings: ReleaseSettings::default(),
//!     },
//!     EpochMillis(0),
//! )?;
//! let observed = |rev: &str, ready, total| Input::Observed(Observation {
//!     revision: RevisionId(rev.into()), ready, total, failed: None, instances: vec![],
//! });
//! // (The engine persists `order` after every step, then executes the effects.)
//! let fx = order.step(Input::Start, EpochMillis(0))?;
//! assert_eq!(fx[0], Effect::SetReplicas { revision: RevisionId("v2".into()), replicas: 1 });
//! // The new instance is ready: only now is an old one stopped.
//! let fx = order.step(observed("v2", 1, 1), EpochMillis(2_000))?;
//! assert_eq!(fx, vec![Effect::SetReplicas { revision: RevisionId("v1".into()), replicas: 1 }]);
//! // The old instance is gone: batch 1 is done and batch 2 starts at once (no wait configured).
//! let fx = order.step(observed("v1", 1, 1), EpochMillis(2_100))?;
//! assert!(fx.contains(&Effect::SetReplicas { revision: RevisionId("v2".into()), replicas: 2 }));
//! order.step(observed("v2", 2, 2), EpochMillis(4_000))?;
//! let fx = order.step(observed("v1", 0, 0), EpochMillis(4_100))?;
//! assert!(fx.contains(&Effect::Finished { status: Status::Success }));
//! assert_eq!(order.status().code(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The serde shape of [`ChangeOrder`] is the storage format (snake_case, additive changes only);
//! the EDAS wire shapes (PascalCase, `PipelineInfoList` …) belong to the API crate, which reads
//! everything it needs through the accessors and the public [`Pipeline`], [`Stage`], [`Task`] and
//! [`InstanceEntry`] fields.

mod analysis;
mod events;
mod ids;
mod order;
mod plan;
mod settings;
mod status;

pub use analysis::{AnalysisVerdict, CheckStanding, ReleaseAnalysis};
pub use events::{AUTOSCALER_PREFIX, EventKind, ReleaseEvent, events};
pub use order::{
    ChangeKind, ChangeOrder, ENDED, Effect, EpochMillis, Input, InstanceEntry, Instances, NO_GRAY,
    NewOrder, NewOrderError, Observation, Pipeline, RevisionId, RollbackRequest, Stage, StageKind,
    StepError, Task, Timer, TimerKind,
};
pub use plan::{BatchKind, Plan, PlanError, PlannedBatch, Release, Strategy, plan};
pub use settings::{DEFAULT_BATCH_TIMEOUT_SECONDS, LosslessStart, ReleaseSettings, SettingsError};
pub use status::Status;
