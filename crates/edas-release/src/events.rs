//! Release events: what changed between two states of a change order, derived purely.
//!
//! The store writes the events of a transition in the same transaction as the transition
//! itself, deriving them from the state before and the state after with [`events`]. Because the
//! derivation is a pure function of two persisted states, a crash can neither lose an event (it
//! is committed with its transition) nor invent one (no transition, no event).

use serde::{Deserialize, Serialize};

use crate::{ChangeKind, ChangeOrder, InstanceEntry, Status};

/// What kind of event it is. The wire name ([`EventKind::as_str`]) is what subscriptions filter
/// on and what sinks carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// The change order was stored (status 0, or already settled for a forced delete).
    Created,
    /// A batch (pipeline) started running.
    BatchStarted,
    /// A batch finished: its new instances are ready and the old ones it replaces are gone.
    BatchSucceeded,
    /// The order waits for ContinuePipeline (8) or for its next automatic batch (9).
    Waiting,
    /// A wait ended (ContinuePipeline, or the automatic wait ran out).
    Continued,
    /// A failed order runs again (RetryChangeOrderTask).
    Retried,
    /// The order failed (3, or 10 when the system could not carry out a step), with the reason.
    Failed,
    /// The order was terminated (6) by an abort.
    Aborted,
    /// A rollback change order was started for this one.
    RolledBack,
    /// The order finished successfully (2).
    Succeeded,
    /// An instance of the release appeared, or its readiness or failure changed.
    InstanceChanged,
    /// The release analysis took a measurement (the checks' standing as the message).
    AnalysisMeasured,
    /// Every check of a batch's analysis passed: the release moves on.
    AnalysisPassed,
    /// A check failed and the order was paused or rolled back (the reason as the message).
    AnalysisFailed,
    /// An autoscaler decided a new instance count: a Scale order whose description starts
    /// with [`AUTOSCALER_PREFIX`] was stored (the description, with the reason, as the message).
    Scaling,
}

/// How the description of a Scale change order an autoscaler decided starts
/// (`autoscaler: 2 → 4 (cpu 85% > target 60%)`): such an order's creation is also a
/// [`EventKind::Scaling`] event.
pub const AUTOSCALER_PREFIX: &str = "autoscaler: ";

impl EventKind {
    /// Every kind, in the order of the list above.
    pub const ALL: [EventKind; 15] = [
        EventKind::Created,
        EventKind::BatchStarted,
        EventKind::BatchSucceeded,
        EventKind::Waiting,
        EventKind::Continued,
        EventKind::Retried,
        EventKind::Failed,
        EventKind::Aborted,
        EventKind::RolledBack,
        EventKind::Succeeded,
        EventKind::InstanceChanged,
        EventKind::AnalysisMeasured,
        EventKind::AnalysisPassed,
        EventKind::AnalysisFailed,
        EventKind::Scaling,
    ];

    /// The wire name, e.g. `change_order.created`, `batch.started`, `instance.changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "change_order.created",
            EventKind::BatchStarted => "batch.started",
            EventKind::BatchSucceeded => "batch.succeeded",
            EventKind::Waiting => "change_order.waiting",
            EventKind::Continued => "change_order.continued",
            EventKind::Retried => "change_order.retried",
            EventKind::Failed => "change_order.failed",
            EventKind::Aborted => "change_order.aborted",
            EventKind::RolledBack => "change_order.rolled_back",
            EventKind::Succeeded => "change_order.succeeded",
            EventKind::InstanceChanged => "instance.changed",
            EventKind::AnalysisMeasured => "analysis.measured",
            EventKind::AnalysisPassed => "analysis.passed",
            EventKind::AnalysisFailed => "analysis.failed",
            EventKind::Scaling => "scaling",
        }
    }

    /// The kind of a wire name.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event of a change order. The store adds the application, the time and a sequence
/// number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseEvent {
    pub kind: EventKind,
    pub change_order_id: String,
    pub change_kind: ChangeKind,
    /// The order's status code after the transition.
    pub status: i32,
    /// The batch (1-based) the event is about, when it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    pub batch_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<String>,
    /// Why it failed or was terminated; the rollback order for `RolledBack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceEntry>,
}

/// The events of the transition from `prev` to `next` (`prev` `None`: `next` was just
/// created), in the order they happened: a wait ending or a retry first, then each batch in
/// order (its instances, its start, its end), then how the order settled.
pub fn events(prev: Option<&ChangeOrder>, next: &ChangeOrder) -> Vec<ReleaseEvent> {
    let batch_count = u32::try_from(next.pipelines().len()).unwrap_or(u32::MAX);
    let event = |kind: EventKind| ReleaseEvent {
        kind,
        change_order_id: next.id().to_owned(),
        change_kind: next.kind(),
        status: next.status().code(),
        batch: None,
        batch_count,
        pipeline_id: None,
        message: None,
        instance: None,
    };
    let mut out = Vec::new();
    let before = prev.map_or(Status::Ready, ChangeOrder::status);
    let after = next.status();
    if prev.is_none() {
        out.push(event(EventKind::Created));
        if next.kind() == ChangeKind::Scale && next.description().starts_with(AUTOSCALER_PREFIX) {
            out.push(ReleaseEvent {
                message: Some(next.description().to_owned()),
                ..event(EventKind::Scaling)
            });
        }
    }
    if before != after && after == Status::InProgress {
        if matches!(
            before,
            Status::WaitingForConfirmation | Status::WaitingForNextBatch
        ) {
            out.push(event(EventKind::Continued));
        } else if before.is_failure() {
            out.push(event(EventKind::Retried));
        }
    }
    for (i, pipeline) in next.pipelines().iter().enumerate() {
        let old = prev.and_then(|p| p.pipelines().get(i));
        let batch = |kind: EventKind| ReleaseEvent {
            batch: Some(pipeline.index + 1),
            pipeline_id: Some(pipeline.id.clone()),
            ..event(kind)
        };
        let old_status = old.map_or(Status::Ready, |p| p.status);
        let restarted = old.is_some_and(|o| o.attempts != pipeline.attempts);
        if pipeline.status == Status::InProgress && (old_status != Status::InProgress || restarted)
        {
            out.push(batch(EventKind::BatchStarted));
        }
        for instance in &pipeline.instances {
            let known = old.and_then(|o| o.instances.iter().find(|e| e.name == instance.name));
            if known != Some(instance) {
                out.push(ReleaseEvent {
                    instance: Some(instance.clone()),
                    ..batch(EventKind::InstanceChanged)
                });
            }
        }
        if pipeline.status == Status::Success && old_status != Status::Success {
            out.push(batch(EventKind::BatchSucceeded));
        }
    }
    let current = next.current_batch().and_then(|i| next.pipelines().get(i));
    if let Some(a) = next.analysis() {
        let (measured, passes, failures) = prev
            .and_then(ChangeOrder::analysis)
            .map_or((0, 0, 0), |p| (p.measured, p.passes, p.failures));
        let at = |kind: EventKind| ReleaseEvent {
            batch: current.map(|p| p.index + 1),
            pipeline_id: current.map(|p| p.id.clone()),
            ..event(kind)
        };
        if a.measured > measured {
            let lines: Vec<String> = a.checks.iter().map(crate::CheckStanding::line).collect();
            out.push(ReleaseEvent {
                message: Some(lines.join("; ")),
                ..at(EventKind::AnalysisMeasured)
            });
        }
        if a.failures > failures {
            out.push(ReleaseEvent {
                message: a.last_failure.clone(),
                ..at(EventKind::AnalysisFailed)
            });
        }
        if a.passes > passes {
            // The gate that passed is the batch before the one now current (or the last).
            let judged = prev.and_then(ChangeOrder::current_batch);
            let p = judged.and_then(|i| next.pipelines().get(i));
            out.push(ReleaseEvent {
                batch: p.map(|p| p.index + 1),
                pipeline_id: p.map(|p| p.id.clone()),
                ..event(EventKind::AnalysisPassed)
            });
        }
    }
    let at_current = |kind: EventKind| ReleaseEvent {
        batch: current.map(|p| p.index + 1),
        pipeline_id: current.map(|p| p.id.clone()),
        ..event(kind)
    };
    if before != after {
        match after {
            Status::WaitingForConfirmation | Status::WaitingForNextBatch => {
                out.push(at_current(EventKind::Waiting));
            }
            Status::Failed | Status::SystemFailure => out.push(ReleaseEvent {
                message: next.message().map(str::to_owned),
                ..at_current(EventKind::Failed)
            }),
            Status::Terminated => out.push(ReleaseEvent {
                message: next.message().map(str::to_owned),
                ..at_current(EventKind::Aborted)
            }),
            Status::Success => out.push(event(EventKind::Succeeded)),
            Status::Ready | Status::InProgress => {}
        }
    }
    if let Some(by) = next.rolled_back_by()
        && prev.and_then(ChangeOrder::rolled_back_by) != Some(by)
    {
        out.push(ReleaseEvent {
            message: Some(by.to_owned()),
            ..event(EventKind::RolledBack)
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    fn order(strategy: Strategy, replicas: u32) -> ChangeOrder {
        ChangeOrder::new(
            NewOrder {
                id: "co-1".into(),
                kind: ChangeKind::Deploy,
                description: "v2".into(),
                from: Some(Instances {
                    revision: RevisionId("v1".into()),
                    replicas,
                    ready: replicas,
                }),
                to: Instances {
                    revision: RevisionId("v2".into()),
                    replicas: 0,
                    ready: 0,
                },
                plan: plan(replicas, &strategy).unwrap(),
                settings: ReleaseSettings::default(),
            },
            EpochMillis(0),
        )
        .unwrap()
    }

    fn observed(rev: &str, ready: u32, total: u32) -> Input {
        Input::Observed(Observation {
            revision: RevisionId(rev.into()),
            ready,
            total,
            failed: None,
            instances: (0..total)
                .map(|i| InstanceEntry {
                    name: format!("{rev}-{i}"),
                    ip: None,
                    ready: i < ready,
                    failed: None,
                })
                .collect(),
        })
    }

    #[test]
    fn an_autoscaler_decision_is_a_scaling_event() {
        let scale = |description: &str| {
            ChangeOrder::new(
                NewOrder {
                    id: "co-s".into(),
                    kind: ChangeKind::Scale,
                    description: description.into(),
                    from: Some(Instances {
                        revision: RevisionId("1".into()),
                        replicas: 2,
                        ready: 2,
                    }),
                    to: Instances {
                        revision: RevisionId("1".into()),
                        replicas: 2,
                        ready: 2,
                    },
                    plan: plan(4, &Strategy::Single).unwrap(),
                    settings: ReleaseSettings::default(),
                },
                EpochMillis(0),
            )
            .unwrap()
        };
        let by_autoscaler = scale("autoscaler: 2 → 4 (cpu 85% > target 60%)");
        let e = events(None, &by_autoscaler);
        assert_eq!(
            e.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [EventKind::Created, EventKind::Scaling]
        );
        assert_eq!(
            e[1].message.as_deref(),
            Some("autoscaler: 2 → 4 (cpu 85% > target 60%)")
        );
        assert_eq!(EventKind::parse("scaling"), Some(EventKind::Scaling));
        let by_hand = scale("more");
        assert_eq!(events(None, &by_hand).len(), 1);
    }

    /// Steps `order` and returns the kinds of the events of that step.
    fn step(order: &mut ChangeOrder, input: Input, at: u64) -> Vec<(EventKind, Option<u32>)> {
        let before = order.clone();
        order.step(input, EpochMillis(at)).unwrap();
        events(Some(&before), order)
            .into_iter()
            .map(|e| (e.kind, e.batch))
            .collect()
    }

    #[test]
    fn a_manual_batch_release_speaks_at_every_transition() {
        use EventKind::*;
        let strategy = Strategy::Batch {
            batches: 2,
            release: Release::Manual,
        };
        let mut o = order(strategy, 2);
        assert_eq!(
            events(None, &o).iter().map(|e| e.kind).collect::<Vec<_>>(),
            vec![Created]
        );
        assert_eq!(step(&mut o, Input::Start, 0), vec![(BatchStarted, Some(1))]);
        assert_eq!(
            step(&mut o, observed("v2", 1, 1), 1_000),
            vec![(InstanceChanged, Some(1))]
        );
        assert_eq!(
            step(&mut o, observed("v1", 1, 1), 1_100),
            vec![(BatchSucceeded, Some(1)), (Waiting, Some(2))]
        );
        let pipeline = o.pipelines()[1].id.clone();
        let continued = step(
            &mut o,
            Input::Continue {
                pipeline_id: pipeline,
                confirm: true,
            },
            2_000,
        );
        assert_eq!(continued, vec![(Continued, None), (BatchStarted, Some(2))]);
        step(&mut o, observed("v2", 2, 2), 3_000);
        let last = step(&mut o, observed("v1", 0, 0), 3_100);
        assert_eq!(last, vec![(BatchSucceeded, Some(2)), (Succeeded, None)]);
        // The same state twice is no event: a replayed transition invents nothing.
        assert!(events(Some(&o), &o).is_empty());
    }

    #[test]
    fn failure_abort_and_rollback_carry_their_reason() {
        let strategy = Strategy::Batch {
            batches: 1,
            release: Release::Auto { wait_minutes: 0 },
        };
        let mut o = order(strategy.clone(), 1);
        step(&mut o, Input::Start, 0);
        let before = o.clone();
        o.step(
            Input::SystemFailure {
                reason: "cluster gone".into(),
            },
            EpochMillis(10),
        )
        .unwrap();
        let ev = events(Some(&before), &o);
        let failed = ev.iter().find(|e| e.kind == EventKind::Failed).unwrap();
        assert_eq!(failed.message.as_deref(), Some("cluster gone"));
        assert_eq!(failed.batch, Some(1));
        assert_eq!(failed.status, 10);

        let mut o = order(strategy.clone(), 1);
        step(&mut o, Input::Start, 0);
        let kinds = step(&mut o, Input::Abort, 10);
        assert_eq!(kinds, vec![(EventKind::Aborted, Some(1))]);

        let mut o = order(strategy.clone(), 1);
        step(&mut o, Input::Start, 0);
        let before = o.clone();
        o.step(
            Input::AbortAndRollback(RollbackRequest {
                order_id: "co-2".into(),
                strategy,
            }),
            EpochMillis(10),
        )
        .unwrap();
        let ev = events(Some(&before), &o);
        let kinds: Vec<_> = ev.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventKind::Aborted, EventKind::RolledBack]);
        assert_eq!(ev[1].message.as_deref(), Some("co-2"));
    }

    #[test]
    fn a_batch_timeout_a_failed_instance_and_a_retry_are_events() {
        use EventKind::*;
        let strategy = Strategy::Batch {
            batches: 1,
            release: Release::Auto { wait_minutes: 0 },
        };
        let mut o = order(strategy, 1);
        step(&mut o, Input::Start, 0);
        // The instance fails: an instance event carrying the runtime's reason, then the order.
        let failing = Input::Observed(Observation {
            revision: RevisionId("v2".into()),
            ready: 0,
            total: 1,
            failed: Some("OOMKilled".into()),
            instances: vec![InstanceEntry {
                name: "v2-0".into(),
                ip: None,
                ready: false,
                failed: Some("OOMKilled".into()),
            }],
        });
        let before = o.clone();
        o.step(failing, EpochMillis(1_000)).unwrap();
        let ev = events(Some(&before), &o);
        let kinds: Vec<_> = ev.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![InstanceChanged, Failed]);
        assert_eq!(
            ev[0].instance.as_ref().and_then(|i| i.failed.as_deref()),
            Some("OOMKilled")
        );
        // RetryChangeOrderTask: the batch runs again.
        assert_eq!(
            step(&mut o, Input::Retry { task_id: None }, 2_000),
            vec![(Retried, None), (BatchStarted, Some(1))]
        );
        // Its timeout fails the order with the reason.
        let timer = o
            .armed_timers()
            .into_iter()
            .find(|(t, _)| t.kind == TimerKind::BatchTimeout)
            .unwrap();
        let before = o.clone();
        o.step(Input::TimerFired(timer.0), timer.1).unwrap();
        let failed = events(Some(&before), &o);
        assert_eq!(failed.last().map(|e| e.kind), Some(Failed));
        assert!(
            failed
                .last()
                .and_then(|e| e.message.as_deref())
                .is_some_and(|m| m.contains("BatchTimeout")),
            "{failed:?}"
        );
    }

    #[test]
    fn wire_names_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("nope"), None);
    }
}
