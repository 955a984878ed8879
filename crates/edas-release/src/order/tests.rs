//! State-machine tests against a small simulated runtime. Deterministic: simulated time only.

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;
use proptest::strategy::Strategy as _;

use super::*;
use crate::plan::{Release, Strategy, plan};
use crate::settings::LosslessStart;

const V1: &str = "v1";
const V2: &str = "v2";

fn rev(s: &str) -> RevisionId {
    RevisionId(s.to_string())
}

/// How a revision's instances behave in the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Ready this many ms after start.
    ReadyAfter(u64),
    /// Never ready.
    Never,
    /// Fails (the runtime gives up) this many ms after start.
    FailAfter(u64),
}

#[derive(Debug, Clone)]
struct Inst {
    id: u64,
    started: u64,
    ready: bool,
    failed: bool,
    behaviour: Behaviour,
}

/// A fake runtime: instances per revision, timers, and the observations it owes the machine.
#[derive(Debug, Clone)]
struct Sim {
    now: u64,
    instances: BTreeMap<RevisionId, Vec<Inst>>,
    behaviour: BTreeMap<RevisionId, Behaviour>,
    timers: BTreeMap<(String, Timer), EpochMillis>,
    pending: VecDeque<(String, Observation)>,
    next_id: u64,
    started: u64,
    spawned: Vec<ChangeOrder>,
    finished: Vec<(String, Status)>,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            now: 1_000_000,
            instances: BTreeMap::new(),
            behaviour: BTreeMap::new(),
            timers: BTreeMap::new(),
            pending: VecDeque::new(),
            next_id: 0,
            started: 0,
            spawned: Vec::new(),
            finished: Vec::new(),
        }
    }

    /// Puts `n` ready instances of `revision` in place (what serves before the release).
    fn seed(&mut self, revision: &str, n: u32) {
        for _ in 0..n {
            self.next_id += 1;
            self.instances.entry(rev(revision)).or_default().push(Inst {
                id: self.next_id,
                started: 0,
                ready: true,
                failed: false,
                behaviour: Behaviour::ReadyAfter(0),
            });
        }
    }

    fn behave(&mut self, revision: &str, b: Behaviour) {
        self.behaviour.insert(rev(revision), b);
    }

    fn count(&self, revision: &str) -> (u32, u32) {
        let list = self
            .instances
            .get(&rev(revision))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        (
            list.iter().filter(|i| i.ready).count() as u32,
            list.len() as u32,
        )
    }

    fn ready_total(&self, order: &ChangeOrder) -> u32 {
        let mut revisions = vec![order.to.0.clone()];
        if let Some(old) = &order.old {
            revisions.push(old.0.clone());
        }
        revisions.iter().map(|r| self.count(r).0).sum()
    }

    fn observation(&self, revision: &RevisionId) -> Observation {
        let list = self
            .instances
            .get(revision)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        Observation {
            revision: revision.clone(),
            ready: list.iter().filter(|i| i.ready).count() as u32,
            total: list.len() as u32,
            failed: list
                .iter()
                .find(|i| i.failed)
                .map(|i| format!("instance {} crashed", i.id)),
            instances: list
                .iter()
                .map(|i| InstanceEntry {
                    name: format!("{}-{}", revision, i.id),
                    ip: Some(format!("127.0.0.{}", i.id % 250 + 1)),
                    ready: i.ready,
                    failed: i.failed.then(|| "crashed".to_string()),
                })
                .collect(),
        }
    }

    fn start_one(&mut self, revision: &RevisionId) {
        self.next_id += 1;
        self.started += 1;
        let behaviour = *self
            .behaviour
            .get(revision)
            .unwrap_or(&Behaviour::ReadyAfter(1000));
        let inst = Inst {
            id: self.next_id,
            started: self.now,
            ready: false,
            failed: false,
            behaviour,
        };
        self.instances
            .entry(revision.clone())
            .or_default()
            .push(inst);
    }

    /// Executes effects like the engine would, queueing the observations they cause.
    fn apply(&mut self, order_id: &str, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::SetReplicas { revision, replicas } => {
                    let have = self.instances.get(&revision).map_or(0, Vec::len) as u32;
                    for _ in have..replicas {
                        self.start_one(&revision);
                    }
                    if replicas < have {
                        let list = self.instances.get_mut(&revision).unwrap();
                        // Stop not-ready instances first, then the newest.
                        list.sort_by_key(|i| (i.ready, std::cmp::Reverse(i.id)));
                        list.drain(..(have - replicas) as usize);
                        list.sort_by_key(|i| i.id);
                    }
                    // Like a real runtime, report changes only.
                    if replicas != have {
                        let obs = self.observation(&revision);
                        self.pending.push_back((order_id.to_string(), obs));
                    }
                }
                Effect::RecreateFailed { revision } => {
                    let list = self.instances.entry(revision.clone()).or_default();
                    let before = list.len();
                    list.retain(|i| !i.failed);
                    let replaced = before - list.len();
                    for _ in 0..replaced {
                        self.start_one(&revision);
                    }
                    if replaced > 0 {
                        let obs = self.observation(&revision);
                        self.pending.push_back((order_id.to_string(), obs));
                    }
                }
                Effect::ArmTimer { timer, at } => {
                    self.timers.insert((order_id.to_string(), timer), at);
                }
                Effect::CancelTimer { timer } => {
                    self.timers.remove(&(order_id.to_string(), timer));
                }
                Effect::Finished { status } => self.finished.push((order_id.to_string(), status)),
                Effect::StartRollback(order) => self.spawned.push(*order),
            }
        }
    }

    /// The next time something happens on its own (an instance gets ready or fails, a timer).
    fn next_event(&self) -> Option<u64> {
        let instance_events = self.instances.values().flatten().filter_map(|i| {
            if i.ready || i.failed {
                return None;
            }
            match i.behaviour {
                Behaviour::ReadyAfter(d) | Behaviour::FailAfter(d) => Some(i.started + d),
                Behaviour::Never => None,
            }
        });
        instance_events
            .chain(self.timers.values().map(|t| t.0))
            .min()
    }

    /// Advances to `t`: instances change state (queueing observations); returns the due timers.
    fn advance_to(&mut self, order_id: &str, t: u64) -> Vec<Timer> {
        self.now = self.now.max(t);
        let now = self.now;
        let mut changed = Vec::new();
        for (revision, list) in &mut self.instances {
            for i in list.iter_mut().filter(|i| !i.ready && !i.failed) {
                match i.behaviour {
                    Behaviour::ReadyAfter(d) if i.started + d <= now => i.ready = true,
                    Behaviour::FailAfter(d) if i.started + d <= now => i.failed = true,
                    _ => continue,
                }
                if !changed.contains(revision) {
                    changed.push(revision.clone());
                }
            }
        }
        for revision in changed {
            let obs = self.observation(&revision);
            self.pending.push_back((order_id.to_string(), obs));
        }
        let due: Vec<(String, Timer)> = self
            .timers
            .iter()
            .filter(|(_, at)| at.0 <= now)
            .map(|(k, _)| k.clone())
            .collect();
        due.into_iter()
            .map(|key| {
                self.timers.remove(&key);
                key.1
            })
            .collect()
    }
}

/// When to simulate an engine restart around each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    Never,
    /// The new state was persisted, the effects were never executed.
    BeforeEffects,
    /// The effects were executed, then the engine restarted and re-applied `resume_effects`.
    AfterEffects,
}

/// An engine around one order and the simulated runtime.
struct Harness {
    order: ChangeOrder,
    sim: Sim,
    restart: Restart,
    steps: usize,
    max_set_old: Option<u32>,
}

impl Harness {
    fn new(order: ChangeOrder, sim: Sim, restart: Restart) -> Harness {
        let h = Harness {
            order,
            sim,
            restart,
            steps: 0,
            max_set_old: None,
        };
        h.check_capacity();
        h
    }

    /// Delivers one input the way the engine does (persist, then act), checking invariants.
    fn deliver(&mut self, input: Input) -> Result<(), StepError> {
        let before = self.order.clone();
        let result = self.order.step(input, EpochMillis(self.sim.now));
        let effects = match result {
            Ok(effects) => effects,
            Err(e) => {
                assert_eq!(
                    self.order, before,
                    "a refused input must not change the order"
                );
                return Err(e);
            }
        };
        self.steps += 1;
        self.check_effects(&effects);
        let id = self.order.id.clone();
        // The engine persists first: the state must survive a storage round trip unchanged.
        let stored = serde_json::to_string(&self.order).unwrap();
        let restored: ChangeOrder = serde_json::from_str(&stored).unwrap();
        assert_eq!(restored, self.order);
        match self.restart {
            Restart::Never => self.sim.apply(&id, effects),
            Restart::BeforeEffects | Restart::AfterEffects => {
                // Storage effects are part of the transaction, so they survive the crash.
                let stored_effects: Vec<Effect> = effects
                    .iter()
                    .filter(|e| matches!(e, Effect::StartRollback(_)))
                    .cloned()
                    .collect();
                if self.restart == Restart::AfterEffects {
                    self.sim.apply(&id, effects);
                } else {
                    self.sim.apply(&id, stored_effects);
                }
                // Restart: in-memory timers are gone, the state comes from storage.
                self.sim.timers.retain(|(order, _), _| *order != id);
                self.order = restored;
                let resumed = self.order.resume_effects(EpochMillis(self.sim.now));
                self.check_effects(&resumed);
                self.sim.apply(&id, resumed);
            }
        }
        self.check_capacity();
        Ok(())
    }

    fn check_effects(&mut self, effects: &[Effect]) {
        for effect in effects {
            if let Effect::SetReplicas { revision, replicas } = effect {
                if Some(revision) == self.order.old.as_ref() {
                    // The previous revision only ever shrinks during a release.
                    if let Some(prev) = self.max_set_old {
                        assert!(
                            *replicas <= prev,
                            "old revision grew from {prev} to {replicas}"
                        );
                    }
                    self.max_set_old = Some(*replicas);
                    // Shrinking waits for the batch's new instances to be ready.
                    let (ready_new, _) = self.sim.count(&self.order.to.0);
                    assert!(
                        ready_new + replicas >= self.order.capacity_floor(),
                        "shrinking old to {replicas} with {ready_new} new ready breaks the floor {}",
                        self.order.capacity_floor()
                    );
                } else {
                    assert_eq!(revision, &self.order.to);
                }
            }
        }
    }

    fn check_capacity(&self) {
        let ready = self.sim.ready_total(&self.order);
        assert!(
            ready >= self.order.capacity_floor(),
            "ready capacity {ready} below floor {} at {} (status {})",
            self.order.capacity_floor(),
            self.sim.now,
            self.order.status()
        );
    }

    /// Runs until the order settles or waits for a user (status 8), or nothing can happen.
    fn run(&mut self) {
        for _ in 0..10_000 {
            if let Some((_, obs)) = self.sim.pending.pop_front() {
                let related =
                    obs.revision == self.order.to || Some(&obs.revision) == self.order.old.as_ref();
                if related {
                    self.deliver(Input::Observed(obs)).unwrap();
                }
                continue;
            }
            if !self.order.is_active() || self.order.status() == Status::WaitingForConfirmation {
                return;
            }
            let Some(t) = self.sim.next_event() else {
                return;
            };
            let id = self.order.id.clone();
            for timer in self.sim.advance_to(&id, t) {
                // Observations that happened at the same time are delivered first.
                while let Some((_, obs)) = self.sim.pending.pop_front() {
                    self.deliver(Input::Observed(obs)).unwrap();
                }
                self.deliver(Input::TimerFired(timer)).unwrap();
            }
        }
        panic!("simulation did not converge");
    }

    /// Delivers every queued observation.
    fn flush(&mut self) {
        while let Some((_, obs)) = self.sim.pending.pop_front() {
            self.deliver(Input::Observed(obs)).unwrap();
        }
    }

    /// Lets simulated time pass without the order waiting for anything (e.g. after it settled).
    fn idle(&mut self, ms: u64) {
        let id = self.order.id.clone();
        let target = self.sim.now + ms;
        while let Some(t) = self.sim.next_event().filter(|t| *t <= target) {
            for timer in self.sim.advance_to(&id, t) {
                self.deliver(Input::TimerFired(timer)).unwrap();
            }
            while let Some((_, obs)) = self.sim.pending.pop_front() {
                self.deliver(Input::Observed(obs)).unwrap();
            }
        }
        self.sim.now = target;
    }
}

fn settings(min_ready: u32, timeout: u32) -> ReleaseSettings {
    ReleaseSettings {
        batch_timeout_seconds: timeout,
        min_ready_seconds: min_ready,
        lossless: None,
    }
}

fn deploy(
    id: &str,
    replicas: u32,
    strategy: Strategy,
    settings: ReleaseSettings,
    now: u64,
) -> ChangeOrder {
    ChangeOrder::new(
        NewOrder {
            id: id.to_string(),
            kind: ChangeKind::Deploy,
            description: "deploy v2".to_string(),
            from: Some(Instances {
                revision: rev(V1),
                replicas,
                ready: replicas,
            }),
            to: Instances {
                revision: rev(V2),
                replicas: 0,
                ready: 0,
            },
            plan: plan(replicas, &strategy).unwrap(),
            settings,
        },
        EpochMillis(now),
    )
    .unwrap()
}

fn started(order: ChangeOrder, sim: Sim, restart: Restart) -> Harness {
    let mut h = Harness::new(order, sim, restart);
    h.deliver(Input::Start).unwrap();
    h
}

fn statuses(order: &ChangeOrder) -> Vec<i32> {
    order.pipelines().iter().map(|p| p.status.code()).collect()
}

fn gray_auto() -> Strategy {
    Strategy::GrayBatch {
        gray: 1,
        batches: 2,
        release: Release::Auto { wait_minutes: 1 },
    }
}

fn manual(gray: u32, batches: u32) -> Strategy {
    Strategy::GrayBatch {
        gray,
        batches,
        release: Release::Manual,
    }
}

#[test]
fn gray_then_batches_auto_runs_to_success_with_waits() {
    let mut sim = Sim::new();
    sim.seed(V1, 3);
    sim.behave(V2, Behaviour::ReadyAfter(2_000));
    let t0 = sim.now;
    let order = deploy("co-1", 3, gray_auto(), settings(5, 600), t0);
    assert_eq!(order.status().code(), 0);
    assert_eq!(order.batch_count(), 3);
    let names: Vec<&str> = order.pipelines().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["Gray Batch Change", "Batch 1 Change", "Batch 2 Change"]
    );
    let mut h = started(order, sim, Restart::Never);
    assert_eq!(h.order.status().code(), 1);

    // Gray batch: ready at +2 s, stays ready 5 s, then one old instance stops; then the 1-minute wait.
    h.run();
    assert_eq!(h.order.status(), Status::Success);
    assert_eq!(statuses(&h.order), vec![2, 2, 2]);
    assert_eq!(h.sim.count(V2), (3, 3));
    assert_eq!(h.sim.count(V1), (0, 0));
    assert_eq!(h.sim.started, 3);
    // 3 × (2 s start + 5 s ready window) + 2 × 60 s wait.
    assert_eq!(
        h.order.finish_time(),
        Some(EpochMillis(t0 + 3 * 7_000 + 2 * 60_000))
    );
    let p1 = &h.order.pipelines()[1];
    assert_eq!(p1.start_time, Some(EpochMillis(t0 + 7_000 + 60_000)));
    assert_eq!(p1.finish_time, Some(EpochMillis(t0 + 2 * 7_000 + 60_000)));
    assert!(
        p1.stages
            .iter()
            .all(|s| s.status == Status::Success && s.task.status == Status::Success)
    );
    assert_eq!(
        p1.instances.len(),
        2,
        "instances of the new revision seen while batch 2 ran"
    );
    let stop_messages: Vec<&str> = h
        .order
        .pipelines()
        .iter()
        .map(|p| p.stages[2].task.message.as_str())
        .collect();
    assert_eq!(
        stop_messages,
        [
            "Revision v1 scaled to 2 instance(s)",
            "Revision v1 scaled to 1 instance(s)",
            "Revision v1 scaled to 0 instance(s)"
        ],
        "each finished stop stage says how it ended"
    );
    let ready_messages: Vec<&str> = h
        .order
        .pipelines()
        .iter()
        .map(|p| p.stages[1].task.message.as_str())
        .collect();
    assert_eq!(
        ready_messages,
        [
            "1/1 instance(s) of revision v2 ready",
            "2/2 instance(s) of revision v2 ready",
            "3/3 instance(s) of revision v2 ready"
        ]
    );
    assert_eq!(h.sim.finished, vec![("co-1".to_string(), Status::Success)]);
    assert!(
        h.sim.timers.is_empty(),
        "no timer left behind: {:?}",
        h.sim.timers
    );
}

#[test]
fn auto_wait_is_status_9_and_zero_wait_needs_no_timer() {
    let mut sim = Sim::new();
    sim.seed(V1, 2);
    sim.behave(V2, Behaviour::ReadyAfter(1_000));
    let t0 = sim.now;
    let strategy = Strategy::GrayBatch {
        gray: 1,
        batches: 1,
        release: Release::Auto { wait_minutes: 1 },
    };
    let order = deploy("co-9", 2, strategy, settings(0, 600), t0);
    let mut h = started(order, sim, Restart::Never);
    while h.order.status() != Status::WaitingForNextBatch {
        if let Some((_, obs)) = h.sim.pending.pop_front() {
            h.deliver(Input::Observed(obs)).unwrap();
        } else {
            let t = h.sim.next_event().unwrap();
            assert!(h.sim.advance_to("co-9", t).is_empty());
        }
    }
    assert_eq!(statuses(&h.order), vec![2, 9]);
    assert_eq!(
        h.order.armed_timers(),
        vec![(
            Timer {
                pipeline: 1,
                kind: TimerKind::NextBatch
            },
            EpochMillis(t0 + 1_000 + 60_000)
        )]
    );
    // ContinuePipeline skips the rest of an automatic wait.
    let id = h.order.pipelines()[1].id.clone();
    h.deliver(Input::Continue {
        pipeline_id: id,
        confirm: true,
    })
    .unwrap();
    assert_eq!(h.order.status(), Status::InProgress);
    assert!(!h.sim.timers.contains_key(&(
        "co-9".to_string(),
        Timer {
            pipeline: 1,
            kind: TimerKind::NextBatch
        }
    )));
    h.run();
    assert_eq!(h.order.status(), Status::Success);
    assert_eq!(h.order.finish_time(), Some(EpochMillis(t0 + 2_000)));

    // wait 0: the next batch starts in the same step as the previous one ends.
    let mut sim = Sim::new();
    sim.seed(V1, 4);
    let zero = Strategy::Batch {
        batches: 2,
        release: Release::Auto { wait_minutes: 0 },
    };
    let order = deploy("co-0", 4, zero, settings(0, 600), sim.now);
    let mut h = started(order, sim, Restart::Never);
    let mut saw_wait = false;
    for _ in 0..100 {
        if let Some((_, obs)) = h.sim.pending.pop_front() {
            h.deliver(Input::Observed(obs)).unwrap();
            saw_wait |= h.order.status() == Status::WaitingForNextBatch;
            continue;
        }
        if !h.order.is_active() {
            break;
        }
        let t = h.sim.next_event().unwrap();
        assert!(
            h.sim.advance_to("co-0", t).is_empty(),
            "no timer but the timeout may fire"
        );
    }
    assert!(!saw_wait);
    assert_eq!(h.order.status(), Status::Success);
}

#[test]
fn manual_waits_for_continue_and_accepts_both_pipeline_ids() {
    let mut sim = Sim::new();
    sim.seed(V1, 4);
    let order = deploy("co-2", 4, manual(1, 2), settings(0, 600), sim.now);
    let mut h = started(order, sim, Restart::Never);
    let ids: Vec<String> = h.order.pipelines().iter().map(|p| p.id.clone()).collect();
    assert_eq!(h.order.release(), Release::Manual);

    // Continue while running is refused.
    let err = h
        .deliver(Input::Continue {
            pipeline_id: ids[1].clone(),
            confirm: true,
        })
        .unwrap_err();
    assert_eq!(
        err,
        StepError::InvalidState {
            input: "ContinuePipeline",
            status: Status::InProgress
        }
    );

    h.run();
    assert_eq!(h.order.status(), Status::WaitingForConfirmation);
    assert_eq!(statuses(&h.order), vec![2, 8, 0]);
    assert_eq!(h.sim.count(V2), (1, 1));
    assert_eq!(h.sim.count(V1), (3, 3));

    // confirm=false keeps waiting and does nothing.
    let before = h.order.clone();
    h.deliver(Input::Continue {
        pipeline_id: ids[1].clone(),
        confirm: false,
    })
    .unwrap();
    assert_eq!(h.order.status(), Status::WaitingForConfirmation);
    assert_eq!(h.order.pipelines(), before.pipelines());
    h.idle(3_600_000);
    assert_eq!(
        h.order.status(),
        Status::WaitingForConfirmation,
        "manual waits have no deadline"
    );

    // Unknown and not-waiting ids are refused with their own errors.
    assert_eq!(
        h.deliver(Input::Continue {
            pipeline_id: "nope".to_string(),
            confirm: true
        }),
        Err(StepError::UnknownPipeline("nope".to_string()))
    );
    assert!(matches!(
        h.deliver(Input::Continue {
            pipeline_id: ids[2].clone(),
            confirm: true
        }),
        Err(StepError::PipelineNotWaiting { .. })
    ));

    // The id of the batch just finished works ...
    h.deliver(Input::Continue {
        pipeline_id: ids[0].clone(),
        confirm: true,
    })
    .unwrap();
    assert_eq!(h.order.status(), Status::InProgress);
    h.run();
    assert_eq!(h.order.status(), Status::WaitingForConfirmation);
    assert_eq!(statuses(&h.order), vec![2, 2, 8]);
    // ... and so does the id of the batch waiting to start.
    h.deliver(Input::Continue {
        pipeline_id: ids[2].clone(),
        confirm: true,
    })
    .unwrap();
    h.run();
    assert_eq!(h.order.status(), Status::Success);
    assert_eq!(h.sim.count(V2), (4, 4));
    assert_eq!(h.sim.count(V1), (0, 0));
    assert_eq!(h.order.pipelines()[2].size, 2);
}

#[test]
fn batch_timeout_fails_then_retry_finishes() {
    let mut sim = Sim::new();
    sim.seed(V1, 2);
    // Slower than the 60 s timeout.
    sim.behave(V2, Behaviour::ReadyAfter(90_000));
    let t0 = sim.now;
    let strategy = Strategy::Batch {
        batches: 2,
        release: Release::Auto { wait_minutes: 0 },
    };
    let order = deploy("co-3", 2, strategy, settings(0, 60), t0);
    let mut h = started(order, sim, Restart::Never);

    // Retry while running is refused.
    assert_eq!(
        h.deliver(Input::Retry { task_id: None }),
        Err(StepError::InvalidState {
            input: "RetryChangeOrderTask",
            status: Status::InProgress
        })
    );

    h.run();
    assert_eq!(h.order.status(), Status::Failed);
    assert_eq!(h.order.finish_time(), Some(EpochMillis(t0 + 60_000)));
    assert_eq!(statuses(&h.order), vec![3, 0]);
    let failed_task = h.order.pipelines()[0].stages[READINESS].task.clone();
    assert_eq!(failed_task.status, Status::Failed);
    assert_eq!(failed_task.error_code.as_deref(), Some("BatchTimeout"));
    assert!(h.order.message().unwrap().contains("BatchTimeout (60 s)"));
    assert!(
        !h.order.is_active(),
        "a failed order releases the application"
    );
    // Both revisions keep serving as they are.
    assert_eq!(h.sim.count(V1), (2, 2));
    assert_eq!(h.sim.count(V2), (0, 1));
    assert_eq!(h.sim.finished, vec![("co-3".to_string(), Status::Failed)]);

    // The slow instance becomes ready later; the failed order records it but does not move.
    h.idle(40_000);
    assert_eq!(h.order.status(), Status::Failed);

    // Retry with a task of another batch is refused; with the failed task it re-runs the batch.
    let other_task = h.order.pipelines()[1].stages[0].task.id.clone();
    assert_eq!(
        h.deliver(Input::Retry {
            task_id: Some(other_task.clone())
        }),
        Err(StepError::TaskNotInFailedBatch(other_task))
    );
    let task_id = failed_task.id.clone();
    assert_eq!(h.order.task(&task_id).unwrap().0.index, 0);
    h.sim.behave(V2, Behaviour::ReadyAfter(1_000));
    h.deliver(Input::Retry {
        task_id: Some(task_id),
    })
    .unwrap();
    assert_eq!(h.order.pipelines()[0].attempts, 2);
    assert_eq!(h.order.finish_time(), None);
    h.run();
    assert_eq!(h.order.status(), Status::Success);
    assert_eq!(h.sim.count(V2), (2, 2));
    assert_eq!(h.sim.count(V1), (0, 0));
    assert_eq!(
        h.sim.started, 2,
        "retry re-used the instance that became ready"
    );
}

#[test]
fn abort_terminates_and_starts_nothing_more() {
    let mut sim = Sim::new();
    sim.seed(V1, 3);
    let order = deploy("co-4", 3, manual(1, 2), settings(0, 600), sim.now);
    let mut h = started(order, sim, Restart::Never);
    h.run();
    assert_eq!(h.order.status(), Status::WaitingForConfirmation);

    let effects = h
        .order
        .clone()
        .step(Input::Abort, EpochMillis(h.sim.now))
        .unwrap();
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::SetReplicas { .. })),
        "abort changes no instances: {effects:?}"
    );
    h.deliver(Input::Abort).unwrap();
    assert_eq!(h.order.status(), Status::Terminated);
    assert_eq!(statuses(&h.order), vec![2, 6, 6]);
    assert!(h.order.finish_time().is_some());
    assert_eq!(h.order.current_batch(), Some(1));
    assert_eq!(
        h.sim.finished.last(),
        Some(&("co-4".to_string(), Status::Terminated))
    );
    let ids: Vec<String> = h.order.pipelines().iter().map(|p| p.id.clone()).collect();
    assert!(matches!(
        h.deliver(Input::Continue {
            pipeline_id: ids[1].clone(),
            confirm: true
        }),
        Err(StepError::InvalidState {
            status: Status::Terminated,
            ..
        })
    ));
    assert!(matches!(
        h.deliver(Input::Abort),
        Err(StepError::InvalidState { .. })
    ));
    assert!(matches!(
        h.deliver(Input::Retry { task_id: None }),
        Err(StepError::InvalidState { .. })
    ));
    h.idle(3_600_000);
    assert_eq!(h.sim.count(V1), (2, 2));
    assert_eq!(h.sim.count(V2), (1, 1));
    assert_eq!(h.sim.started, 1);
}

#[test]
fn abort_while_running_terminates_the_running_stages() {
    let mut sim = Sim::new();
    sim.seed(V1, 2);
    sim.behave(V2, Behaviour::Never);
    let order = deploy("co-4b", 2, Strategy::Single, settings(0, 600), sim.now);
    let mut h = started(order, sim, Restart::Never);
    h.deliver(Input::Abort).unwrap();
    let p = &h.order.pipelines()[0];
    assert_eq!(p.status, Status::Terminated);
    assert_eq!(p.stages[START_NEW].status, Status::Terminated);
    assert_eq!(
        p.stages[START_NEW].task.error_code.as_deref(),
        Some("Aborted")
    );
    assert_eq!(p.stages[STOP_OLD].status, Status::Ready, "never started");
    assert!(h.order.armed_timers().is_empty());
}

#[test]
fn abort_and_rollback_creates_a_rollback_order_that_restores_the_previous_revision() {
    let mut sim = Sim::new();
    sim.seed(V1, 3);
    let order = deploy("co-5", 3, manual(1, 2), settings(0, 600), sim.now);
    let mut h = started(order, sim, Restart::Never);
    h.run();
    assert_eq!(h.sim.count(V2), (1, 1));
    assert_eq!(h.sim.count(V1), (2, 2));

    h.deliver(Input::AbortAndRollback(RollbackRequest {
        order_id: "rb-5".to_string(),
        strategy: Strategy::Single,
    }))
    .unwrap();
    assert_eq!(h.order.status(), Status::Terminated);
    assert_eq!(h.order.rolled_back_by(), Some("rb-5"));
    assert!(!h.order.supports_rollback());
    let rollback = h.sim.spawned.pop().expect("rollback order");
    assert_eq!(rollback.id(), "rb-5");
    assert_eq!(rollback.kind(), ChangeKind::Rollback);
    assert_eq!(rollback.rollback_of(), Some("co-5"));
    assert_eq!(rollback.to_revision(), &rev(V1));
    assert_eq!(rollback.target_replicas(), 3);
    assert_eq!(rollback.status(), Status::Ready);
    assert_eq!(rollback.capacity_floor(), 3);
    assert!(matches!(
        h.deliver(Input::AbortAndRollback(RollbackRequest {
            order_id: "x".into(),
            strategy: Strategy::Single
        })),
        Err(StepError::InvalidState { .. })
    ));
    assert_eq!(
        h.deliver(Input::Rollback(RollbackRequest {
            order_id: "x".into(),
            strategy: Strategy::Single
        })),
        Err(StepError::AlreadyRolledBack("rb-5".to_string()))
    );

    let mut rb = started(rollback, h.sim.clone(), Restart::Never);
    rb.run();
    assert_eq!(rb.order.status(), Status::Success);
    assert_eq!(rb.sim.count(V1), (3, 3));
    assert_eq!(rb.sim.count(V2), (0, 0));
    assert_eq!(
        rb.sim.started, 2,
        "one v2 instance, then one v1 instance to get back to 3"
    );
}

#[test]
fn abort_and_rollback_of_a_failed_order_keeps_the_failed_batch_visible() {
    let mut sim = Sim::new();
    sim.seed(V1, 4);
    sim.behave(V2, Behaviour::Never);
    let strategy = Strategy::Batch {
        batches: 2,
        release: Release::Manual,
    };
    let order = deploy("co-f", 4, strategy, settings(0, 30), sim.now);
    let mut h = started(order, sim, Restart::Never);
    h.run();
    assert_eq!(h.order.status(), Status::Failed);
    h.deliver(Input::AbortAndRollback(RollbackRequest {
        order_id: "rb-f".into(),
        strategy: Strategy::Batch {
            batches: 2,
            release: Release::Auto { wait_minutes: 0 },
        },
    }))
    .unwrap();
    assert_eq!(h.order.status(), Status::Terminated);
    assert_eq!(statuses(&h.order), vec![3, 6]);
    assert!(matches!(
        h.deliver(Input::Retry { task_id: None }),
        Err(StepError::InvalidState { .. })
    ));
    // The rollback keeps the four v1 instances and removes the two v2 ones that never got ready.
    let rollback = h.sim.spawned.pop().unwrap();
    assert_eq!(rollback.capacity_floor(), 4);
    let mut rb = started(rollback, h.sim.clone(), Restart::Never);
    rb.run();
    assert_eq!(rb.order.status(), Status::Success);
    assert_eq!(rb.sim.count(V1), (4, 4));
    assert_eq!(rb.sim.count(V2), (0, 0));
    assert_eq!(rb.sim.started, 2, "no v1 instance had to be started");
}

#[test]
fn rollback_of_a_finished_order_goes_back_in_batches() {
    let mut sim = Sim::new();
    sim.seed(V1, 4);
    let strategy = Strategy::Batch {
        batches: 2,
        release: Release::Auto { wait_minutes: 0 },
    };
    let order = deploy("co-6", 4, strategy.clone(), settings(0, 600), sim.now);
    let mut h = started(order, sim, Restart::Never);
    h.run();
    assert_eq!(h.order.status(), Status::Success);
    assert!(h.order.supports_rollback());
    assert!(matches!(
        h.deliver(Input::AbortAndRollback(RollbackRequest {
            order_id: "x".into(),
            strategy: Strategy::Single
        })),
        Err(StepError::InvalidState {
            status: Status::Success,
            ..
        })
    ));
    // An impossible rollback strategy is refused with the planner's error.
    assert!(matches!(
        h.deliver(Input::Rollback(RollbackRequest {
            order_id: "x".into(),
            strategy: Strategy::Batch {
                batches: 9,
                release: Release::Manual
            }
        })),
        Err(StepError::RollbackPlan(PlanError::TooManyBatches { .. }))
    ));
    h.deliver(Input::Rollback(RollbackRequest {
        order_id: "rb-6".to_string(),
        strategy,
    }))
    .unwrap();
    assert_eq!(
        h.order.status(),
        Status::Success,
        "a finished order stays finished"
    );
    let rollback = h.sim.spawned.pop().unwrap();
    assert_eq!(rollback.batch_count(), 2);
    let mut rb = started(rollback, h.sim.clone(), Restart::Never);
    rb.run();
    assert_eq!(rb.order.status(), Status::Success);
    assert_eq!(rb.sim.count(V1), (4, 4));
    assert_eq!(rb.sim.count(V2), (0, 0));
}

#[test]
fn creation_has_nothing_to_roll_back() {
    let mut order = ChangeOrder::new(
        NewOrder {
            id: "co-c".to_string(),
            kind: ChangeKind::Create,
            description: String::new(),
            from: None,
            to: Instances {
                revision: rev(V1),
                replicas: 0,
                ready: 0,
            },
            plan: plan(2, &Strategy::Single).unwrap(),
            settings: ReleaseSettings::default(),
        },
        EpochMillis(0),
    )
    .unwrap();
    assert!(!order.supports_rollback());
    assert_eq!(order.capacity_floor(), 0);
    let request = RollbackRequest {
        order_id: "rb".to_string(),
        strategy: Strategy::Single,
    };
    assert_eq!(
        order.step(Input::Rollback(request), EpochMillis(1)),
        Err(StepError::NoPreviousRevision)
    );
    let mut h = Harness::new(order, Sim::new(), Restart::Never);
    h.deliver(Input::Start).unwrap();
    h.run();
    assert_eq!(h.order.status(), Status::Success);
    assert_eq!(h.sim.count(V1), (2, 2));
}

#[test]
fn an_instance_failure_fails_the_batch_and_retry_replaces_it() {
    let mut sim = Sim::new();
    sim.seed(V1, 3);
    sim.behave(V2, Behaviour::FailAfter(3_000));
    let order = deploy("co-7", 3, gray_auto(), settings(0, 600), sim.now);
    let mut h = started(order, sim, Restart::Never);
    h.run();
    assert_eq!(h.order.status(), Status::Failed);
    let task = &h.order.pipelines()[0].stages[READINESS].task;
    assert_eq!(task.error_code.as_deref(), Some("InstanceFailed"));
    assert!(task.error_message.as_deref().unwrap().contains("crashed"));
    assert_eq!(h.order.pipelines()[0].instances[0].status(), Status::Failed);
    assert_eq!(h.sim.count(V1), (3, 3), "the old revision keeps serving");

    h.sim.behave(V2, Behaviour::ReadyAfter(1_000));
    let mut effects = h.order.clone();
    let fx = effects
        .step(Input::Retry { task_id: None }, EpochMillis(h.sim.now))
        .unwrap();
    assert!(fx.contains(&Effect::RecreateFailed { revision: rev(V2) }));
    h.deliver(Input::Retry { task_id: None }).unwrap();
    h.run();
    assert_eq!(h.order.status(), Status::Success);
    assert_eq!(h.sim.count(V2), (3, 3));
    assert_eq!(h.sim.started, 4, "three instances plus one replacement");
}

#[test]
fn readiness_must_hold_for_the_ready_window_including_lossless_start() {
    let mut sim = Sim::new();
    sim.seed(V1, 1);
    sim.behave(V2, Behaviour::ReadyAfter(1_000));
    let t0 = sim.now;
    let settings = ReleaseSettings {
        batch_timeout_seconds: 600,
        min_ready_seconds: 10,
        lossless: Some(LosslessStart {
            delay_seconds: 5,
            warmup_seconds: 30,
            aligned: true,
            related: true,
        }),
    };
    let order = deploy("co-8", 1, Strategy::Single, settings, t0);
    let mut h = started(order, sim, Restart::Never);
    h.run();
    assert_eq!(h.order.status(), Status::Success);
    assert_eq!(
        h.order.finish_time(),
        Some(EpochMillis(t0 + 1_000 + 45_000))
    );

    // A readiness drop restarts the window.
    let mut sim = Sim::new();
    sim.seed(V1, 1);
    sim.behave(V2, Behaviour::ReadyAfter(1_000));
    let t0 = sim.now;
    let order = deploy("co-8b", 1, Strategy::Single, settings_window(20), t0);
    let mut h = started(order, sim, Restart::Never);
    h.flush();
    let t = h.sim.next_event().unwrap();
    h.sim.advance_to("co-8b", t);
    let (_, obs) = h.sim.pending.pop_front().unwrap();
    h.deliver(Input::Observed(obs.clone())).unwrap();
    assert_eq!(h.order.armed_timers().len(), 2);
    h.sim.now += 10_000;
    let mut unready = obs.clone();
    unready.ready = 0;
    h.deliver(Input::Observed(unready)).unwrap();
    assert_eq!(h.order.armed_timers().len(), 1, "window timer cancelled");
    h.sim.now += 5_000;
    h.deliver(Input::Observed(obs)).unwrap();
    h.run();
    assert_eq!(h.order.status(), Status::Success);
    assert_eq!(
        h.order.finish_time(),
        Some(EpochMillis(t0 + 16_000 + 20_000))
    );
}

fn settings_window(min_ready: u32) -> ReleaseSettings {
    settings(min_ready, 600)
}

#[test]
fn invalid_inputs_are_typed_errors_not_panics() {
    let mut sim = Sim::new();
    sim.seed(V1, 2);
    let order = deploy(
        "co-e",
        2,
        Strategy::Single,
        ReleaseSettings::default(),
        sim.now,
    );
    let mut h = Harness::new(order, sim, Restart::Never);
    assert!(matches!(
        h.deliver(Input::Continue {
            pipeline_id: "x".into(),
            confirm: true
        }),
        Err(StepError::UnknownPipeline(_))
    ));
    assert!(matches!(
        h.deliver(Input::Retry { task_id: None }),
        Err(StepError::InvalidState { .. })
    ));
    assert_eq!(
        h.deliver(Input::Observed(Observation {
            revision: rev("v9"),
            ready: 0,
            total: 0,
            failed: None,
            instances: vec![]
        })),
        Err(StepError::UnrelatedRevision(rev("v9")))
    );
    assert!(matches!(
        h.deliver(Input::Observed(Observation {
            revision: rev(V2),
            ready: 3,
            total: 2,
            failed: None,
            instances: vec![]
        })),
        Err(StepError::ReadyExceedsTotal { .. })
    ));
    h.deliver(Input::Start).unwrap();
    assert!(matches!(
        h.deliver(Input::Start),
        Err(StepError::InvalidState { .. })
    ));
    h.deliver(Input::SystemFailure {
        reason: "runtime unreachable".into(),
    })
    .unwrap();
    assert_eq!(h.order.status().code(), 10);
    assert!(matches!(
        h.deliver(Input::SystemFailure {
            reason: "again".into()
        }),
        Err(StepError::InvalidState { .. })
    ));
    h.deliver(Input::Retry { task_id: None }).unwrap();
    h.run();
    assert_eq!(h.order.status(), Status::Success);
}

#[test]
fn new_order_validation() {
    let base = NewOrder {
        id: "co".into(),
        kind: ChangeKind::Deploy,
        description: String::new(),
        from: Some(Instances {
            revision: rev(V1),
            replicas: 2,
            ready: 2,
        }),
        to: Instances {
            revision: rev(V2),
            replicas: 0,
            ready: 0,
        },
        plan: plan(2, &Strategy::Single).unwrap(),
        settings: ReleaseSettings::default(),
    };
    let mut bad = base.clone();
    bad.settings.batch_timeout_seconds = 0;
    assert!(matches!(
        ChangeOrder::new(bad, EpochMillis(0)),
        Err(NewOrderError::Settings(SettingsError::ZeroTimeout))
    ));
    let mut bad = base.clone();
    bad.to.ready = 1;
    assert!(matches!(
        ChangeOrder::new(bad, EpochMillis(0)),
        Err(NewOrderError::ReadyExceedsReplicas { side: "to", .. })
    ));
    let mut bad = base.clone();
    bad.to.revision = rev(V1);
    assert!(matches!(
        ChangeOrder::new(bad, EpochMillis(0)),
        Err(NewOrderError::InconsistentRevision { .. })
    ));
    let ok = ChangeOrder::new(base.clone(), EpochMillis(0)).unwrap();
    let again = ChangeOrder::new(base, EpochMillis(0)).unwrap();
    assert_eq!(
        ok.pipelines()[0].id,
        again.pipelines()[0].id,
        "ids are deterministic"
    );
}

#[test]
fn scale_within_one_revision_and_stop_to_zero() {
    for (from, to) in [(2u32, 5u32), (5, 2), (3, 0)] {
        let mut sim = Sim::new();
        sim.seed(V1, from);
        let current = Instances {
            revision: rev(V1),
            replicas: from,
            ready: from,
        };
        let order = ChangeOrder::new(
            NewOrder {
                id: format!("scale-{from}-{to}"),
                kind: if to == 0 {
                    ChangeKind::Stop
                } else {
                    ChangeKind::Scale
                },
                description: String::new(),
                from: Some(current.clone()),
                to: current,
                plan: plan(to, &Strategy::Single).unwrap(),
                settings: ReleaseSettings::default(),
            },
            EpochMillis(sim.now),
        )
        .unwrap();
        assert_eq!(order.capacity_floor(), from.min(to));
        let mut h = started(order, sim, Restart::Never);
        h.run();
        assert_eq!(h.order.status(), Status::Success, "{from} -> {to}");
        assert_eq!(h.sim.count(V1), (to, to));
    }
}

#[test]
fn deploy_to_zero_replicas_stops_the_old_revision() {
    let mut sim = Sim::new();
    sim.seed(V1, 2);
    let order = ChangeOrder::new(
        NewOrder {
            id: "co-z".into(),
            kind: ChangeKind::Deploy,
            description: String::new(),
            from: Some(Instances {
                revision: rev(V1),
                replicas: 2,
                ready: 2,
            }),
            to: Instances {
                revision: rev(V2),
                replicas: 0,
                ready: 0,
            },
            plan: plan(0, &Strategy::Single).unwrap(),
            settings: ReleaseSettings::default(),
        },
        EpochMillis(sim.now),
    )
    .unwrap();
    let mut h = started(order, sim, Restart::Never);
    h.run();
    assert_eq!(h.order.status(), Status::Success);
    assert_eq!(h.sim.count(V1), (0, 0));
    assert_eq!(h.sim.count(V2), (0, 0));
}

fn delete_order(id: &str, existing: u32, ready: u32, now: u64) -> ChangeOrder {
    let current = Instances {
        revision: rev(V1),
        replicas: existing,
        ready,
    };
    ChangeOrder::new(
        NewOrder {
            id: id.into(),
            kind: ChangeKind::Delete,
            description: String::new(),
            from: Some(current.clone()),
            to: current,
            plan: plan(0, &Strategy::Single).unwrap(),
            settings: ReleaseSettings::default(),
        },
        EpochMillis(now),
    )
    .unwrap()
}

#[test]
fn a_crash_looping_revision_scaled_to_zero_is_not_failed_by_its_failures() {
    let mut sim = Sim::new();
    sim.seed(V1, 3);
    for inst in sim.instances.get_mut(&rev(V1)).unwrap() {
        inst.ready = false;
        inst.failed = true;
    }
    let now = sim.now;
    let mut h = started(delete_order("del", 3, 0, now), sim, Restart::Never);
    // The runtime still reports the failure before the instances are gone.
    h.deliver(Input::Observed(Observation {
        revision: rev(V1),
        ready: 0,
        total: 3,
        failed: Some("CrashLoopBackOff".into()),
        instances: vec![],
    }))
    .unwrap();
    assert_eq!(h.order.status(), Status::InProgress);
    h.run();
    assert_eq!(h.order.status(), Status::Success);
    assert_eq!(h.sim.count(V1), (0, 0));
    // Never asked for more instances than there were: a deletion only scales down.
    assert_eq!(h.order.desired_replicas(), vec![(rev(V1), 0)]);
}

#[test]
fn a_deletion_of_instances_that_never_existed_ends_at_once() {
    let mut order = delete_order("del0", 0, 0, 1_000);
    let fx = order.step(Input::Start, EpochMillis(1_000)).unwrap();
    assert_eq!(order.status(), Status::Success);
    assert!(fx.contains(&Effect::SetReplicas {
        revision: rev(V1),
        replicas: 0
    }));
    assert!(
        !fx.iter()
            .any(|e| matches!(e, Effect::SetReplicas { replicas, .. } if *replicas > 0))
    );
}

#[test]
fn forced_ends_a_deletion_at_once_whatever_its_state() {
    // Not started, running, failed: each ends as a success with the reason as its message.
    for stage in 0..3 {
        let mut order = delete_order("forced", 2, 0, 1_000);
        if stage >= 1 {
            order.step(Input::Start, EpochMillis(1_000)).unwrap();
        }
        if stage == 2 {
            order
                .step(
                    Input::SystemFailure {
                        reason: "cluster down".into(),
                    },
                    EpochMillis(2_000),
                )
                .unwrap();
            assert!(order.status().is_failure());
        }
        let fx = order
            .step(
                Input::Forced {
                    reason: "Force=true".into(),
                },
                EpochMillis(3_000),
            )
            .unwrap();
        assert_eq!(order.status(), Status::Success, "stage {stage}");
        assert!(fx.contains(&Effect::Finished {
            status: Status::Success
        }));
        assert!(order.armed_timers().is_empty());
        assert!(
            order
                .pipelines()
                .iter()
                .all(|p| p.status == Status::Success)
        );
        assert!(
            order
                .pipelines()
                .iter()
                .flat_map(|p| &p.stages)
                .all(|s| { s.status == Status::Success && s.task.error_code.is_none() })
        );
        assert_eq!(order.message(), Some("Force=true"));
        assert!(order.resume_effects(EpochMillis(4_000)).is_empty());
        // Settled: forcing again is refused.
        assert!(matches!(
            order.step(
                Input::Forced {
                    reason: "again".into()
                },
                EpochMillis(5_000)
            ),
            Err(StepError::InvalidState { .. })
        ));
    }
}

#[test]
fn forced_is_refused_for_anything_but_a_deletion() {
    let mut sim = Sim::new();
    sim.seed(V1, 1);
    let mut order = deploy("co-f", 2, Strategy::Single, settings(0, 60), sim.now);
    order.step(Input::Start, EpochMillis(sim.now)).unwrap();
    let before = order.clone();
    assert!(matches!(
        order.step(Input::Forced { reason: "x".into() }, EpochMillis(sim.now)),
        Err(StepError::InvalidState {
            input: "Forced",
            ..
        })
    ));
    assert_eq!(order, before);
}

#[test]
fn a_growing_batch_still_fails_on_an_instance_failure() {
    let mut sim = Sim::new();
    sim.seed(V1, 1);
    let mut order = deploy("co-g", 2, Strategy::Single, settings(0, 60), sim.now);
    order.step(Input::Start, EpochMillis(sim.now)).unwrap();
    order
        .step(
            Input::Observed(Observation {
                revision: rev(V2),
                ready: 0,
                total: 2,
                failed: Some("CrashLoopBackOff".into()),
                instances: vec![],
            }),
            EpochMillis(sim.now + 10),
        )
        .unwrap();
    assert_eq!(order.status(), Status::Failed);
}

// ----- restart at every step -----

/// The outcome the restart tests compare.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    status: Status,
    v1: (u32, u32),
    v2: (u32, u32),
    started: u64,
    finish: Option<EpochMillis>,
    pipelines: Vec<i32>,
}

/// Runs a scripted scenario; `script` answers a waiting order (status 8 or settled-but-retryable).
fn scenario(
    restart: Restart,
    replicas: u32,
    strategy: Strategy,
    settings: ReleaseSettings,
    v2: Behaviour,
    mut script: impl FnMut(&mut Harness) -> bool,
) -> Outcome {
    let mut sim = Sim::new();
    sim.seed(V1, replicas);
    sim.behave(V2, v2);
    let order = deploy("co-r", replicas, strategy, settings, sim.now);
    let mut h = started(order, sim, restart);
    for _ in 0..50 {
        h.run();
        if !script(&mut h) {
            break;
        }
    }
    Outcome {
        status: h.order.status(),
        v1: h.sim.count(V1),
        v2: h.sim.count(V2),
        started: h.sim.started,
        finish: h.order.finish_time(),
        pipelines: statuses(&h.order),
    }
}

fn continue_when_waiting(h: &mut Harness) -> bool {
    if h.order.status() != Status::WaitingForConfirmation {
        return false;
    }
    let id = h.order.pipelines()[h.order.current].id.clone();
    h.deliver(Input::Continue {
        pipeline_id: id,
        confirm: true,
    })
    .unwrap();
    true
}

#[test]
fn a_restart_at_every_step_finishes_exactly_like_an_uninterrupted_run() {
    type Case = (
        u32,
        Strategy,
        ReleaseSettings,
        Behaviour,
        fn(&mut Harness) -> bool,
    );
    let retry_once: fn(&mut Harness) -> bool = |h| {
        if h.order.status() == Status::Failed && h.order.pipelines()[h.order.current].attempts == 1
        {
            h.sim.behave(V2, Behaviour::ReadyAfter(500));
            h.deliver(Input::Retry { task_id: None }).unwrap();
            true
        } else {
            continue_when_waiting(h)
        }
    };
    let cases: Vec<Case> = vec![
        (
            3,
            gray_auto(),
            settings(5, 600),
            Behaviour::ReadyAfter(2_000),
            continue_when_waiting,
        ),
        (
            5,
            manual(1, 2),
            settings(3, 600),
            Behaviour::ReadyAfter(1_500),
            continue_when_waiting,
        ),
        (
            4,
            Strategy::Batch {
                batches: 2,
                release: Release::Auto { wait_minutes: 0 },
            },
            settings(0, 600),
            Behaviour::ReadyAfter(700),
            continue_when_waiting,
        ),
        (
            2,
            Strategy::Single,
            settings(0, 60),
            Behaviour::ReadyAfter(90_000),
            retry_once,
        ),
        (
            3,
            gray_auto(),
            settings(0, 600),
            Behaviour::FailAfter(1_000),
            retry_once,
        ),
    ];
    for (i, (replicas, strategy, settings, behaviour, script)) in cases.into_iter().enumerate() {
        let plain = scenario(
            Restart::Never,
            replicas,
            strategy.clone(),
            settings.clone(),
            behaviour,
            script,
        );
        assert!(plain.status == Status::Success, "case {i}: {plain:?}");
        for restart in [Restart::BeforeEffects, Restart::AfterEffects] {
            let resumed = scenario(
                restart,
                replicas,
                strategy.clone(),
                settings.clone(),
                behaviour,
                script,
            );
            assert_eq!(resumed, plain, "case {i} with {restart:?}");
        }
    }
}

// ----- properties -----

fn any_input(
    pipeline_ids: Vec<String>,
    task_ids: Vec<String>,
) -> impl proptest::strategy::Strategy<Value = (u64, Input)> {
    let revisions = prop_oneof![Just(rev(V1)), Just(rev(V2)), Just(rev("v9"))];
    let observed = (
        revisions,
        0u32..8,
        0u32..8,
        proptest::option::of(Just("boom".to_string())),
    )
        .prop_map(|(revision, ready, total, failed)| {
            Input::Observed(Observation {
                revision,
                ready,
                total,
                failed,
                instances: vec![],
            })
        });
    let timer = (
        0u32..4,
        prop_oneof![
            Just(TimerKind::BatchTimeout),
            Just(TimerKind::ReadyWindow),
            Just(TimerKind::NextBatch)
        ],
    )
        .prop_map(|(pipeline, kind)| Input::TimerFired(Timer { pipeline, kind }));
    let pipeline = prop_oneof![
        proptest::sample::select(pipeline_ids),
        Just("unknown".to_string())
    ];
    let cont = (pipeline, any::<bool>()).prop_map(|(pipeline_id, confirm)| Input::Continue {
        pipeline_id,
        confirm,
    });
    let task = proptest::option::of(prop_oneof![
        proptest::sample::select(task_ids),
        Just("t".to_string())
    ]);
    let rollback = prop_oneof![
        Just(Strategy::Single),
        Just(Strategy::Batch {
            batches: 2,
            release: Release::Manual
        })
    ]
    .prop_map(|strategy| RollbackRequest {
        order_id: "rb".to_string(),
        strategy,
    });
    let input = prop_oneof![
        6 => observed,
        3 => timer,
        3 => cont,
        1 => Just(Input::Start),
        1 => Just(Input::Abort),
        1 => rollback.clone().prop_map(Input::AbortAndRollback),
        1 => rollback.prop_map(Input::Rollback),
        2 => task.prop_map(|task_id| Input::Retry { task_id }),
        1 => Just(Input::SystemFailure { reason: "x".into() }),
        1 => Just(Input::Forced { reason: "forced".into() }),
    ];
    (prop_oneof![Just(0u64), 0u64..200_000], input)
}

fn random_order() -> impl proptest::strategy::Strategy<Value = ChangeOrder> {
    let strategy = prop_oneof![
        Just(Strategy::Single),
        (
            1u32..3,
            prop_oneof![
                Just(Release::Manual),
                (0u32..2).prop_map(|w| Release::Auto { wait_minutes: w })
            ]
        )
            .prop_map(|(batches, release)| Strategy::Batch { batches, release }),
        (
            1u32..3,
            1u32..3,
            prop_oneof![
                Just(Release::Manual),
                Just(Release::Auto { wait_minutes: 1 })
            ]
        )
            .prop_map(|(gray, batches, release)| Strategy::GrayBatch {
                gray,
                batches,
                release
            }),
    ];
    (0u32..6, 0u32..6, strategy, 0u32..20, 0u32..3).prop_filter_map(
        "plannable",
        |(from, to, strategy, min_ready, old_ready_gap)| {
            let plan = plan(to, &strategy).ok()?;
            ChangeOrder::new(
                NewOrder {
                    id: "co-p".into(),
                    kind: ChangeKind::Deploy,
                    description: String::new(),
                    from: Some(Instances {
                        revision: rev(V1),
                        replicas: from,
                        ready: from.saturating_sub(old_ready_gap),
                    }),
                    to: Instances {
                        revision: rev(V2),
                        replicas: 0,
                        ready: 0,
                    },
                    plan,
                    settings: settings(min_ready, 120),
                },
                EpochMillis(5_000),
            )
            .ok()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Arbitrary inputs in arbitrary order: never a panic; refused inputs change nothing; the old
    /// revision is only shrunk, never below what the new revision's ready instances cover; counts
    /// asked for stay within the release's bounds; the state always survives storage.
    #[test]
    fn random_event_orders_keep_the_invariants(
        (order, inputs) in random_order().prop_flat_map(|order| {
            let pipelines: Vec<String> = order.pipelines().iter().map(|p| p.id.clone()).collect();
            let tasks: Vec<String> = order.pipelines().iter().flat_map(|p| p.stages.iter().map(|s| s.task.id.clone())).collect();
            (Just(order), proptest::collection::vec(any_input(pipelines, tasks), 0..60))
        })
    ) {
        let mut order = order;
        let mut now = 5_000u64;
        let mut last_old: Option<u32> = None;
        let bound = order.target_replicas().max(order.previous().map_or(0, |p| p.replicas));
        for (dt, input) in inputs {
            now += dt;
            let before = order.clone();
            match order.step(input, EpochMillis(now)) {
                Err(_) => prop_assert_eq!(&order, &before),
                Ok(effects) => {
                    for effect in &effects {
                        if let Effect::SetReplicas { revision, replicas } = effect {
                            prop_assert!(*replicas <= bound);
                            if revision == &rev(V1) {
                                prop_assert!(last_old.is_none_or(|l| *replicas <= l));
                                last_old = Some(*replicas);
                                prop_assert!(replicas + order.seen_new.ready >= order.capacity_floor());
                            }
                        }
                    }
                    let json = serde_json::to_string(&order).unwrap();
                    let back: ChangeOrder = serde_json::from_str(&json).unwrap();
                    prop_assert_eq!(&back, &order);
                    let codes = [0, 1, 2, 3, 6, 8, 9, 10];
                    prop_assert!(codes.contains(&order.status().code()));
                    let _ = order.resume_effects(EpochMillis(now));
                }
            }
        }
    }

    /// Random releases against the simulated runtime, with user actions at random moments and
    /// random restarts: ready capacity never drops below the floor (checked by the harness at every
    /// step), and the run ends settled or waiting for a user.
    #[test]
    fn simulated_releases_keep_capacity(
        replicas in 1u32..6,
        strategy_pick in 0usize..4,
        delay in 0u64..5_000,
        min_ready in 0u32..10,
        fail in any::<bool>(),
        restart_pick in 0usize..3,
        actions in proptest::collection::vec(0usize..6, 0..8),
    ) {
        let strategy = [
            Strategy::Single,
            Strategy::Batch { batches: replicas.min(2), release: Release::Auto { wait_minutes: 1 } },
            Strategy::Batch { batches: replicas, release: Release::Manual },
            Strategy::GrayBatch { gray: 1, batches: 1, release: Release::Manual },
        ][strategy_pick].clone();
        let Ok(plan) = plan(replicas, &strategy) else { return Ok(()) };
        let mut sim = Sim::new();
        sim.seed(V1, replicas);
        sim.behave(V2, if fail { Behaviour::FailAfter(delay) } else { Behaviour::ReadyAfter(delay) });
        let order = ChangeOrder::new(NewOrder {
            id: "co-s".into(),
            kind: ChangeKind::Deploy,
            description: String::new(),
            from: Some(Instances { revision: rev(V1), replicas, ready: replicas }),
            to: Instances { revision: rev(V2), replicas: 0, ready: 0 },
            plan,
            settings: settings(min_ready, 60),
        }, EpochMillis(sim.now)).unwrap();
        let restart = [Restart::Never, Restart::BeforeEffects, Restart::AfterEffects][restart_pick];
        let mut h = started(order, sim, restart);
        for action in actions {
            h.run();
            let waiting = h.order.pipelines().get(h.order.current).map(|p| p.id.clone()).unwrap_or_default();
            let input = match action {
                0 => Input::Continue { pipeline_id: waiting, confirm: true },
                1 => Input::Abort,
                2 => Input::Retry { task_id: None },
                3 => Input::AbortAndRollback(RollbackRequest {
                    order_id: "rb".into(),
                    strategy: Strategy::Single,
                }),
                4 => Input::AbortAndRollback(RollbackRequest {
                    order_id: "rb".into(),
                    strategy: Strategy::Batch {
                        batches: replicas.min(2),
                        release: Release::Auto { wait_minutes: 0 },
                    },
                }),
                _ => Input::Continue { pipeline_id: waiting, confirm: false },
            };
            let _ = h.deliver(input);
            if let Some(rollback) = h.sim.spawned.pop() {
                let mut rb = started(rollback, h.sim.clone(), restart);
                rb.run();
                prop_assert_eq!(rb.order.status(), Status::Success);
                return Ok(());
            }
        }
        h.run();
        let s = h.order.status();
        prop_assert!(!s.is_active() || s == Status::WaitingForConfirmation, "ended {}", s);
    }
}

#[test]
fn a_tampered_plan_is_refused_not_a_panic() {
    let good = plan(2, &Strategy::Single).unwrap();
    let mut json = serde_json::to_value(&good).unwrap();
    json["batches"] = serde_json::json!([]);
    let empty: Plan = serde_json::from_value(json).unwrap();
    let order = NewOrder {
        id: "co".into(),
        kind: ChangeKind::Deploy,
        description: String::new(),
        from: None,
        to: Instances {
            revision: rev(V2),
            replicas: 0,
            ready: 0,
        },
        plan: empty,
        settings: ReleaseSettings::default(),
    };
    assert_eq!(
        ChangeOrder::new(order, EpochMillis(0)),
        Err(NewOrderError::InvalidPlan("no batches".to_string()))
    );
}
