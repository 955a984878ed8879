//! Release analysis (issue 21, an edasd extension): the part of a change order the release
//! policy's checks decide. The machine stays pure and knows no provider nor expression: the
//! engine measures, judges with edas-analysis and hands the outcome in as [`Input::Analysis`]
//! (with its whole analysis state, so the measurement and the decision it causes are one
//! persisted transition, and a restart resumes exactly where it was).
//!
//! [`Input::Analysis`]: crate::Input::Analysis

use serde::{Deserialize, Serialize};

use crate::RollbackRequest;

/// One check's standing after the last measurement: what GetChangeOrderInfo, the watch view
/// and the events show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStanding {
    /// The check's name (unique in its policy).
    pub name: String,
    /// When it runs: `gray`, `afterEachBatch` or `background`.
    pub when: String,
    /// Its success condition, as written in the policy.
    pub condition: String,
    /// The last measurement as text (`result=0.21`, or the provider's error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    /// Measurements taken in the current run of the check.
    pub measurements: u32,
    /// Of those, how many failed the condition.
    pub failures: u32,
    /// Of those, how many the provider could not answer.
    pub inconclusive: u32,
    /// `pending`, `running`, `passed`, `failed`, `skipped by …`, or
    /// [`ENDED`](crate::ENDED) when the change order ended while it ran.
    pub outcome: String,
}

impl CheckStanding {
    /// One line for a task message: `errors: result=0.01 (condition result < 0.05), 3 of 5
    /// measured, 0 failed — running`.
    pub fn line(&self) -> String {
        format!(
            "{}: {} (condition {}), {} measured, {} failed, {} inconclusive — {}",
            self.name,
            self.last.as_deref().unwrap_or("not measured yet"),
            self.condition,
            self.measurements,
            self.failures,
            self.inconclusive,
            self.outcome
        )
    }
}

/// The analysis part of a change order (present when its application had a release policy
/// when the order was created).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseAnalysis {
    /// The version of the application's release policy this order runs with.
    pub policy_version: i64,
    /// By pipeline index: whether the batch waits for a verdict once it is done.
    pub gated: Vec<bool>,
    /// Why the order is held for a human: a failed check whose policy says `pause`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<String>,
    /// The engine's analysis state (edas-analysis's, as JSON), opaque here.
    pub doc: String,
    /// Every check's standing.
    pub checks: Vec<CheckStanding>,
    /// Measurements recorded over the whole order (the events count them).
    #[serde(default)]
    pub measured: u32,
    /// Gates passed by a verdict (not skipped) over the whole order.
    #[serde(default)]
    pub passes: u32,
    /// Failed checks acted upon (a pause or a rollback) over the whole order.
    #[serde(default)]
    pub failures: u32,
    /// The reason of the last failure acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// What the last measurement decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnalysisVerdict {
    /// Nothing yet: more measurements are due.
    Continue,
    /// Every check of the gate after batch `pipeline` (index) passed: the release moves on.
    Passed {
        /// The pipeline index whose gate passed.
        pipeline: u32,
    },
    /// A check failed: hold the order for a human (`rollback: None`, status 8 with the reason)
    /// or end it and roll back at once.
    Failed {
        /// The failing check's name.
        check: String,
        /// Human text naming the check, the last value and the condition.
        reason: String,
        /// How to roll back, when the policy says `rollback`.
        rollback: Option<RollbackRequest>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    /// A release of v2 over 2 instances of v1: a gray batch of 1, then 1 batch; `release`
    /// between them; the gray batch (and with `every` each batch) waits for a verdict.
    fn order(release: Release, every: bool) -> ChangeOrder {
        order_with(
            Strategy::GrayBatch {
                gray: 1,
                batches: 1,
                release,
            },
            every,
        )
    }

    fn order_with(strategy: Strategy, every: bool) -> ChangeOrder {
        ChangeOrder::new(
            NewOrder {
                id: "co-a".into(),
                kind: ChangeKind::Deploy,
                description: "v2".into(),
                from: Some(Instances {
                    revision: RevisionId("v1".into()),
                    replicas: 2,
                    ready: 2,
                }),
                to: Instances {
                    revision: RevisionId("v2".into()),
                    replicas: 0,
                    ready: 0,
                },
                plan: plan(2, &strategy).unwrap(),
                settings: ReleaseSettings::default(),
            },
            EpochMillis(0),
        )
        .unwrap()
        .with_analysis(ReleaseAnalysis {
            policy_version: 3,
            gated: vec![true, every],
            paused: None,
            doc: "{}".into(),
            checks: vec![standing("running", 0)],
            measured: 0,
            passes: 0,
            failures: 0,
            last_failure: None,
        })
    }

    fn standing(outcome: &str, failures: u32) -> CheckStanding {
        CheckStanding {
            name: "errors".into(),
            when: "gray".into(),
            condition: "result < 0.05".into(),
            last: Some("result=0.2".into()),
            measurements: 1,
            failures,
            inconclusive: 0,
            outcome: outcome.into(),
        }
    }

    fn observed(rev: &str, ready: u32, total: u32) -> Input {
        Input::Observed(Observation {
            revision: RevisionId(rev.into()),
            ready,
            total,
            failed: None,
            instances: Vec::new(),
        })
    }

    fn measured(verdict: AnalysisVerdict) -> Input {
        Input::Analysis {
            doc: "{\"n\":1}".into(),
            checks: vec![standing("failed", 1)],
            measured: true,
            verdict,
        }
    }

    /// Runs the gray batch to its end: v2 has 1 ready instance, v1 is down to 1.
    fn gray_done(o: &mut ChangeOrder) {
        o.step(Input::Start, EpochMillis(1)).unwrap();
        o.step(observed("v2", 1, 1), EpochMillis(2)).unwrap();
        o.step(observed("v1", 1, 1), EpochMillis(3)).unwrap();
    }

    #[test]
    fn a_gated_batch_waits_for_its_verdict_and_continue_is_refused_meanwhile() {
        let mut o = order(Release::Manual, false);
        assert_eq!(o.pipelines()[0].stages.len(), 4);
        gray_done(&mut o);
        assert_eq!(o.status(), Status::InProgress);
        assert_eq!(o.judging(), Some(0));
        let next = o.pipelines()[1].id.clone();
        let err = o
            .step(
                Input::Continue {
                    pipeline_id: next.clone(),
                    confirm: true,
                },
                EpochMillis(4),
            )
            .unwrap_err();
        assert!(matches!(err, StepError::AnalysisRunning { .. }), "{err}");
        // A measurement is recorded (and shown) without moving on.
        let before = o.clone();
        o.step(measured(AnalysisVerdict::Continue), EpochMillis(5))
            .unwrap();
        assert_eq!(o.analysis().unwrap().measured, 1);
        assert!(
            o.pipelines()[0].stages[3]
                .task
                .message
                .contains("errors: result=0.2")
        );
        let kinds: Vec<_> = events(Some(&before), &o).iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::AnalysisMeasured]);
        // The verdict for another batch is stale: nothing moves.
        o.step(
            measured(AnalysisVerdict::Passed { pipeline: 1 }),
            EpochMillis(6),
        )
        .unwrap();
        assert_eq!(o.judging(), Some(0));
        let before = o.clone();
        o.step(
            measured(AnalysisVerdict::Passed { pipeline: 0 }),
            EpochMillis(7),
        )
        .unwrap();
        assert_eq!(o.status(), Status::WaitingForConfirmation);
        assert_eq!(o.pipelines()[0].status, Status::Success);
        assert_eq!(o.pipelines()[0].stages[3].status, Status::Success);
        let kinds: Vec<_> = events(Some(&before), &o).iter().map(|e| e.kind).collect();
        assert!(kinds.contains(&EventKind::AnalysisPassed), "{kinds:?}");
        // The ungated last batch finishes without a verdict.
        o.step(
            Input::Continue {
                pipeline_id: next,
                confirm: true,
            },
            EpochMillis(8),
        )
        .unwrap();
        o.step(observed("v2", 2, 2), EpochMillis(9)).unwrap();
        o.step(observed("v1", 0, 0), EpochMillis(10)).unwrap();
        assert_eq!(o.status(), Status::Success);
        assert_eq!(
            o.pipelines()[1].stages[3].task.message,
            "No checks after this batch"
        );
    }

    #[test]
    fn an_auto_release_with_every_batch_gated_ends_only_after_the_last_verdict() {
        let mut o = order(Release::Auto { wait_minutes: 0 }, true);
        gray_done(&mut o);
        o.step(
            measured(AnalysisVerdict::Passed { pipeline: 0 }),
            EpochMillis(7),
        )
        .unwrap();
        // No wait: the next batch started at once.
        assert_eq!(o.status(), Status::InProgress);
        assert_eq!(o.current_batch(), Some(1));
        o.step(observed("v2", 2, 2), EpochMillis(9)).unwrap();
        o.step(observed("v1", 0, 0), EpochMillis(10)).unwrap();
        assert_eq!(o.judging(), Some(1));
        o.step(
            measured(AnalysisVerdict::Passed { pipeline: 1 }),
            EpochMillis(11),
        )
        .unwrap();
        assert_eq!(o.status(), Status::Success);
        assert_eq!(o.analysis().unwrap().passes, 2);
    }

    #[test]
    fn a_failed_check_pauses_then_continue_judges_again_and_skip_passes() {
        let mut o = order(Release::Auto { wait_minutes: 0 }, false);
        gray_done(&mut o);
        let failed = AnalysisVerdict::Failed {
            check: "errors".into(),
            reason: "check \"errors\" failed".into(),
            rollback: None,
        };
        let before = o.clone();
        o.step(measured(failed.clone()), EpochMillis(5)).unwrap();
        assert_eq!(o.status(), Status::WaitingForConfirmation);
        assert_eq!(o.message(), Some("check \"errors\" failed"));
        assert_eq!(o.paused(), Some("check \"errors\" failed"));
        let task = &o.pipelines()[0].stages[3].task;
        assert_eq!(task.error_code.as_deref(), Some("AnalysisFailed"));
        let kinds: Vec<_> = events(Some(&before), &o).iter().map(|e| e.kind).collect();
        assert!(kinds.contains(&EventKind::AnalysisFailed), "{kinds:?}");
        assert!(kinds.contains(&EventKind::Waiting), "{kinds:?}");
        // Plain continue: judged again (the engine re-runs the failed check).
        let gray = o.pipelines()[0].id.clone();
        o.step(
            Input::Continue {
                pipeline_id: gray.clone(),
                confirm: true,
            },
            EpochMillis(6),
        )
        .unwrap();
        assert_eq!(
            (o.status(), o.judging(), o.paused()),
            (Status::InProgress, Some(0), None)
        );
        assert_eq!(o.message(), None);
        o.step(measured(failed), EpochMillis(7)).unwrap();
        assert_eq!(o.analysis().unwrap().failures, 2);
        // Skip: the gate passes without a verdict.
        o.step(Input::SkipAnalysis { pipeline_id: gray }, EpochMillis(8))
            .unwrap();
        assert_eq!(o.status(), Status::InProgress);
        assert_eq!(o.current_batch(), Some(1));
        assert_eq!(o.paused(), None);
        // Skip when nothing waits for an analysis is refused.
        let err = o
            .step(
                Input::SkipAnalysis {
                    pipeline_id: o.pipelines()[1].id.clone(),
                },
                EpochMillis(9),
            )
            .unwrap_err();
        assert_eq!(err, StepError::NoAnalysisToSkip);
    }

    #[test]
    fn a_failed_check_with_rollback_ends_the_order_and_starts_the_rollback() {
        let mut o = order(Release::Manual, false);
        o.step(Input::Start, EpochMillis(1)).unwrap();
        // A background check fails while the gray batch still runs.
        let fx = o
            .step(
                measured(AnalysisVerdict::Failed {
                    check: "errors".into(),
                    reason: "check \"errors\" failed 3 of 3".into(),
                    rollback: Some(RollbackRequest {
                        order_id: "co-rb".into(),
                        strategy: Strategy::Single,
                    }),
                }),
                EpochMillis(2),
            )
            .unwrap();
        assert_eq!(o.status(), Status::Terminated);
        assert_eq!(o.message(), Some("check \"errors\" failed 3 of 3"));
        assert_eq!(o.rolled_back_by(), Some("co-rb"));
        assert!(fx.iter().any(|e| matches!(e, Effect::StartRollback(_))));
        // A settled order takes no more measurements.
        let err = o
            .step(measured(AnalysisVerdict::Continue), EpochMillis(3))
            .unwrap_err();
        assert!(matches!(err, StepError::InvalidState { .. }), "{err}");
    }

    #[test]
    fn a_background_pause_while_a_batch_runs_holds_the_order_when_the_batch_is_done() {
        let mut o = order(Release::Auto { wait_minutes: 0 }, false);
        o.step(Input::Start, EpochMillis(1)).unwrap();
        o.step(
            measured(AnalysisVerdict::Failed {
                check: "errors".into(),
                reason: "bad".into(),
                rollback: None,
            }),
            EpochMillis(2),
        )
        .unwrap();
        // The batch goes on (its instances are half started) ...
        assert_eq!(o.status(), Status::InProgress);
        o.step(observed("v2", 1, 1), EpochMillis(3)).unwrap();
        o.step(observed("v1", 1, 1), EpochMillis(4)).unwrap();
        // ... and then the order is held.
        assert_eq!(o.status(), Status::WaitingForConfirmation);
        assert_eq!(o.message(), Some("bad"));
        assert_eq!(o.analysis().unwrap().failures, 1);
    }

    fn analysis_message(o: &ChangeOrder, pipeline: usize) -> &str {
        &o.pipelines()[pipeline].stages[3].task.message
    }

    fn with_checks(checks: Vec<CheckStanding>, verdict: AnalysisVerdict) -> Input {
        Input::Analysis {
            doc: "{\"n\":2}".into(),
            checks,
            measured: true,
            verdict,
        }
    }

    #[test]
    fn running_checks_end_with_the_order_whatever_ends_it() {
        let background = CheckStanding {
            when: "background".into(),
            ..standing("running", 0)
        };
        // Aborted while a background check runs.
        let mut o = order(Release::Manual, false);
        o.step(Input::Start, EpochMillis(1)).unwrap();
        o.step(
            with_checks(vec![background.clone()], AnalysisVerdict::Continue),
            EpochMillis(2),
        )
        .unwrap();
        assert!(analysis_message(&o, 0).ends_with("— running"));
        assert!(!o.close_analysis("{}".into(), vec![]), "still active");
        o.step(Input::Abort, EpochMillis(3)).unwrap();
        assert_eq!(o.analysis().unwrap().checks[0].outcome, ENDED);
        let message = analysis_message(&o, 0);
        assert!(message.ends_with(ENDED), "{message}");
        assert!(!message.contains("running"), "{message}");
        // Rolled back by a failed check while another one runs: the failed one stays failed.
        let mut o = order(Release::Manual, false);
        gray_done(&mut o);
        o.step(
            with_checks(
                vec![standing("failed", 1), background.clone()],
                AnalysisVerdict::Failed {
                    check: "errors".into(),
                    reason: "bad".into(),
                    rollback: Some(RollbackRequest {
                        order_id: "co-rb".into(),
                        strategy: Strategy::Single,
                    }),
                },
            ),
            EpochMillis(4),
        )
        .unwrap();
        let outcomes: Vec<_> = o
            .analysis()
            .unwrap()
            .checks
            .iter()
            .map(|c| c.outcome.clone())
            .collect();
        assert_eq!(outcomes, ["failed", ENDED]);
        assert!(!analysis_message(&o, 0).contains("— running"));
        // Succeeded with a background check running: the last batch's stage says it ended.
        let mut o = order(Release::Auto { wait_minutes: 0 }, false);
        gray_done(&mut o);
        o.step(
            with_checks(vec![background], AnalysisVerdict::Passed { pipeline: 0 }),
            EpochMillis(5),
        )
        .unwrap();
        o.step(observed("v2", 2, 2), EpochMillis(6)).unwrap();
        o.step(observed("v1", 0, 0), EpochMillis(7)).unwrap();
        assert_eq!(o.status(), Status::Success);
        assert!(
            analysis_message(&o, 1).ends_with(ENDED),
            "{}",
            analysis_message(&o, 1)
        );
        // The engine's closed analysis state is stored with the ended order.
        let closed = CheckStanding {
            outcome: ENDED.into(),
            ..standing("running", 0)
        };
        assert!(o.close_analysis("{\"closed\":1}".into(), vec![closed]));
        assert_eq!(o.analysis().unwrap().doc, "{\"closed\":1}");
        assert_eq!(o.status(), Status::Success);
    }

    #[test]
    fn gray_checks_judge_the_first_batch_of_a_release_without_a_gray_batch_and_say_so() {
        let mut o = order_with(
            Strategy::Batch {
                batches: 2,
                release: Release::Auto { wait_minutes: 0 },
            },
            false,
        );
        o.step(Input::Start, EpochMillis(1)).unwrap();
        o.step(observed("v2", 1, 1), EpochMillis(2)).unwrap();
        o.step(observed("v1", 1, 1), EpochMillis(3)).unwrap();
        assert_eq!(o.judging(), Some(0), "the first batch is gated");
        let message = analysis_message(&o, 0);
        assert!(message.contains(NO_GRAY), "{message}");
        // A failing gray check rolls the release back after its first batch.
        o.step(
            measured(AnalysisVerdict::Failed {
                check: "errors".into(),
                reason: "bad".into(),
                rollback: Some(RollbackRequest {
                    order_id: "co-rb".into(),
                    strategy: Strategy::Single,
                }),
            }),
            EpochMillis(4),
        )
        .unwrap();
        assert_eq!(o.status(), Status::Terminated);
        assert_eq!(o.pipelines()[1].start_time, None, "batch 2 never started");
        // With a gray batch, a gray check's line says nothing of the sort.
        let mut o = order(Release::Manual, false);
        gray_done(&mut o);
        assert!(!analysis_message(&o, 0).contains(NO_GRAY));
    }

    #[test]
    fn an_order_without_analysis_refuses_its_inputs_and_round_trips() {
        let mut o = order(Release::Manual, false);
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<ChangeOrder>(&json).unwrap(), o);
        let mut plain = ChangeOrder::new(
            NewOrder {
                id: "co-b".into(),
                kind: ChangeKind::Deploy,
                description: "v2".into(),
                from: None,
                to: Instances {
                    revision: RevisionId("v2".into()),
                    replicas: 0,
                    ready: 0,
                },
                plan: plan(1, &Strategy::Single).unwrap(),
                settings: ReleaseSettings::default(),
            },
            EpochMillis(0),
        )
        .unwrap();
        plain.step(Input::Start, EpochMillis(1)).unwrap();
        assert!(
            plain
                .step(measured(AnalysisVerdict::Continue), EpochMillis(2))
                .is_err()
        );
        assert_eq!(
            plain.step(
                Input::SkipAnalysis {
                    pipeline_id: "x".into()
                },
                EpochMillis(2)
            ),
            Err(StepError::NoAnalysisToSkip)
        );
        // Without a previous revision a rollback verdict holds the order instead.
        let fx = plain
            .step(
                measured(AnalysisVerdict::Failed {
                    check: "errors".into(),
                    reason: "bad".into(),
                    rollback: Some(RollbackRequest {
                        order_id: "co-rb".into(),
                        strategy: Strategy::Single,
                    }),
                }),
                EpochMillis(3),
            )
            .unwrap_or_default();
        assert!(fx.is_empty());
        o.step(Input::Start, EpochMillis(1)).unwrap();
        assert_eq!(o.analysis().unwrap().policy_version, 3);
    }
}
