//! The analysis of one change order: which checks run now, when each next measures, and what
//! each measurement decides. Pure and deterministic (time is an input, in epoch
//! milliseconds); the whole state, the policy it runs with included, serializes as JSON and
//! is stored with the change order after every step, so a restarted edasd decodes it and
//! carries on: a check keeps its measurements and counts (never from zero), a failed check
//! stays failed (never skipped), an overdue measurement is simply due.
//!
//! # The life of a check
//! A check starts with its stage: `gray` when the gray batch is ready ([`Stage::Gray`]),
//! `afterEachBatch` when each batch is ready ([`Stage::Batch`], a fresh run per batch, first
//! measuring after `settle` + one interval), `background` when the release starts
//! ([`Stage::Release`]). It measures every interval. A measurement either passes, fails, or
//! has no value (the provider erred, or the condition could not be decided, e.g. a division
//! by zero): the first `inconclusiveLimit` of those per run are recorded and tolerated (they do
//! not count towards `count`), every later one counts as a failed measurement. The check fails
//! as soon as its failed measurements exceed `failureLimit`, and passes after `count`
//! measurements; a background check without a count measures until the release ends. When the
//! release ends ([`Analysis::finish`]), every check still running ends with it
//! ([`CheckStatus::Ended`]: neither passed nor failed, never due again). A release without a
//! gray batch has its first batch judged by the `gray` checks ([`batch_stages`]).

use serde::{Deserialize, Serialize};

use crate::policy::{Check, OnFailure, Provider, ReleasePolicy, When};
use crate::traffic::{self, TrafficSnapshot};

/// Measurements kept per check for display (the counts cover every one).
pub const KEPT_MEASUREMENTS: usize = 50;

/// A part of the release that checks are tied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// The gray batch (its checks are `when: gray`).
    Gray,
    /// Batch number n (1-based, as EDAS counts them; `when: afterEachBatch`).
    Batch(u32),
    /// The whole release (`when: background`).
    Release,
}

/// What a failed check does, as the engine acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Pause,
    Rollback,
}

impl From<OnFailure> for Action {
    fn from(o: OnFailure) -> Action {
        match o {
            OnFailure::Pause => Action::Pause,
            OnFailure::Rollback => Action::Rollback,
        }
    }
}

/// What one step of the analysis means for the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to act on: measuring goes on (or the stage has other checks still running).
    Continue,
    /// Every check of this stage has passed (or none exists): the stage may complete.
    Passed { stage: Stage },
    /// A check failed: the engine pauses or rolls back, with the reason.
    Failed {
        check: String,
        reason: String,
        action: Action,
    },
    /// The check is not running (finished, failed, or never started): nothing recorded. A
    /// measurement taken before a restart and answered after it lands here, harmlessly.
    Stale,
}

/// A provider's value and, for traffic, its companions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub result: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_requests: Option<f64>,
}

impl Sample {
    pub fn value(result: f64) -> Sample {
        Sample {
            result,
            ..Sample::default()
        }
    }
}

/// One measurement as a provider answered it.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A value for the condition to judge.
    Value(Sample),
    /// The provider's own verdict: failed (a webhook's non-2xx answer without a result).
    Failed(String),
    /// No value: unreachable, timed out, an answer of the wrong shape (inconclusive).
    Error(String),
}

impl From<Result<f64, crate::ProviderError>> for Observation {
    fn from(r: Result<f64, crate::ProviderError>) -> Observation {
        match r {
            Ok(v) => Observation::Value(Sample::value(v)),
            Err(e) => Observation::Error(e.to_string()),
        }
    }
}

/// One recorded measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// Epoch milliseconds.
    pub at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `None`: inconclusive and tolerated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
}

/// Where a check stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum CheckStatus {
    /// Its stage has not come (yet).
    Pending,
    Running,
    Passed,
    Failed {
        reason: String,
    },
    /// A principal allowed to skip analysis continued past it.
    Skipped {
        by: String,
    },
    /// It was running when the release ended (completed, failed, aborted or rolled back): it
    /// neither passed nor failed, and measures no more.
    Ended,
}

/// One check's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckState {
    pub name: String,
    pub status: CheckStatus,
    /// The stage of the current (or last) run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// When it next measures (epoch ms), while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<i64>,
    /// Measurements that counted (passed or failed) in this run.
    pub taken: u32,
    pub failed: u32,
    /// Inconclusive measurements in this run (tolerated or not).
    pub errors: u32,
    /// The newest [`KEPT_MEASUREMENTS`], oldest first.
    pub measurements: Vec<Measurement>,
    /// The traffic counters the next traffic measurement starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<TrafficSnapshot>,
}

/// A measurement to take now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub check: String,
    pub at: i64,
}

/// Whether a stage may complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// These checks still measure.
    Waiting(Vec<String>),
    /// This check failed (the first, in policy order).
    Failed {
        check: String,
        reason: String,
        action: Action,
    },
}

/// A change order's analysis: the policy it runs with and every check's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    pub policy: ReleasePolicy,
    pub checks: Vec<CheckState>,
}

/// The stages batch `pipeline` (index) completes: its own [`Stage::Batch`] (numbered from 1
/// like EDAS's batches) and, for the gray batch, [`Stage::Gray`]. A release without a gray
/// batch (`gray_batch` is `None`) has its first batch play the canary's role: `gray` checks
/// judge the first batch instead of never running.
pub fn batch_stages(pipeline: usize, gray_batch: Option<usize>) -> Vec<Stage> {
    let batch = Stage::Batch(
        u32::try_from(pipeline)
            .unwrap_or(u32::MAX)
            .saturating_add(1),
    );
    if gray_batch.map_or(pipeline == 0, |g| g == pipeline) {
        vec![Stage::Gray, batch]
    } else {
        vec![batch]
    }
}

fn stage_of(when: When) -> fn(Stage) -> bool {
    match when {
        When::Gray => |s| s == Stage::Gray,
        When::AfterEachBatch => |s| matches!(s, Stage::Batch(_)),
        When::Background => |s| s == Stage::Release,
    }
}

impl Analysis {
    /// Every check pending.
    pub fn new(policy: &ReleasePolicy) -> Analysis {
        Analysis {
            policy: policy.clone(),
            checks: policy
                .checks
                .iter()
                .map(|c| CheckState {
                    name: c.name.clone(),
                    status: CheckStatus::Pending,
                    stage: None,
                    next_at: None,
                    taken: 0,
                    failed: 0,
                    errors: 0,
                    measurements: Vec::new(),
                    cursor: None,
                })
                .collect(),
        }
    }

    /// The stage began (the release started, the gray batch or batch n is ready): its checks
    /// start a run. A run already going for this same stage is left alone, so telling it twice
    /// (after a restart) changes nothing; a new batch starts `afterEachBatch` checks afresh.
    /// `Passed` when the stage has no check to wait for (always for [`Stage::Release`]:
    /// background checks gate nothing), `Failed` when one of its checks already failed.
    pub fn begin(&mut self, stage: Stage, now: i64) -> Verdict {
        for (check, state) in self.policy.checks.iter().zip(self.checks.iter_mut()) {
            // A failed check stays failed until it is skipped: a later batch never restarts it.
            let failed = matches!(state.status, CheckStatus::Failed { .. });
            // A check that ended with the release runs again if the release goes on (a retry).
            let again = state.stage == Some(stage) && state.status != CheckStatus::Ended;
            if !stage_of(check.when)(stage) || again || failed {
                continue;
            }
            let settle = match stage {
                Stage::Batch(_) => check.settle.map_or(0, |s| s.ms()),
                _ => 0,
            };
            state.status = CheckStatus::Running;
            state.stage = Some(stage);
            state.next_at = Some(now + settle as i64 + check.interval.ms() as i64);
            state.taken = 0;
            state.failed = 0;
            state.errors = 0;
            state.cursor = None;
        }
        match self.gate(stage) {
            Gate::Open => Verdict::Passed { stage },
            Gate::Failed {
                check,
                reason,
                action,
            } => Verdict::Failed {
                check,
                reason,
                action,
            },
            Gate::Waiting(_) => Verdict::Continue,
        }
    }

    /// The release ended (completed, failed, aborted or rolled back): every running check
    /// stops as [`CheckStatus::Ended`] (neither passed nor failed) and nothing is due any more.
    pub fn finish(&mut self) {
        for state in &mut self.checks {
            if state.status == CheckStatus::Running {
                state.next_at = None;
                state.status = CheckStatus::Ended;
            }
        }
    }

    /// The checks whose measurement is due at `now`, earliest first.
    pub fn due(&self, now: i64) -> Vec<Due> {
        let mut due: Vec<Due> = self
            .checks
            .iter()
            .filter_map(|s| match (s.status == CheckStatus::Running, s.next_at) {
                (true, Some(at)) if at <= now => Some(Due {
                    check: s.name.clone(),
                    at,
                }),
                _ => None,
            })
            .collect();
        due.sort_by_key(|d| d.at);
        due
    }

    /// When the next measurement is due (for the engine's timer), if any check runs.
    pub fn next_due(&self) -> Option<i64> {
        self.checks
            .iter()
            .filter(|s| s.status == CheckStatus::Running)
            .filter_map(|s| s.next_at)
            .min()
    }

    /// Whether `stage` may complete: every one of its checks passed or was skipped.
    pub fn gate(&self, stage: Stage) -> Gate {
        let mut waiting = Vec::new();
        for (check, state) in self.policy.checks.iter().zip(&self.checks) {
            if !stage_of(check.when)(stage) {
                continue;
            }
            if let CheckStatus::Failed { reason } = &state.status {
                return Gate::Failed {
                    check: check.name.clone(),
                    reason: reason.clone(),
                    action: check.on_failure.into(),
                };
            }
            // A background check gates nothing (it stops the release only by failing); a
            // batch's checks gate it only once they ran for it.
            let gates = match stage {
                Stage::Release => false,
                Stage::Gray => true,
                Stage::Batch(_) => true,
            };
            let done = matches!(
                state.status,
                CheckStatus::Passed | CheckStatus::Skipped { .. }
            ) && state.stage == Some(stage);
            if gates && !done {
                waiting.push(check.name.clone());
            }
        }
        if waiting.is_empty() {
            Gate::Open
        } else {
            Gate::Waiting(waiting)
        }
    }

    /// The first failed check that is not skipped, in policy order (what a resumed engine
    /// acts on).
    pub fn failure(&self) -> Option<(String, String, Action)> {
        self.policy
            .checks
            .iter()
            .zip(&self.checks)
            .find_map(|(c, s)| match &s.status {
                CheckStatus::Failed { reason } => {
                    Some((c.name.clone(), reason.clone(), c.on_failure.into()))
                }
                _ => None,
            })
    }

    /// A principal allowed to override the analysis continues: every failed or running check
    /// of `stage` (and every failed background check) is skipped, by name.
    pub fn skip(&mut self, stage: Stage, by: &str) {
        for (check, state) in self.policy.checks.iter().zip(self.checks.iter_mut()) {
            let failed = matches!(state.status, CheckStatus::Failed { .. });
            let ours = stage_of(check.when)(stage) && state.stage == Some(stage);
            let background_failed = check.when == When::Background && failed;
            if (ours && (failed || state.status == CheckStatus::Running)) || background_failed {
                state.status = CheckStatus::Skipped { by: by.to_owned() };
                state.next_at = None;
            }
            if stage_of(check.when)(stage)
                && state.status == CheckStatus::Pending
                && check.when != When::Background
            {
                state.status = CheckStatus::Skipped { by: by.to_owned() };
                state.stage = Some(stage);
            }
        }
    }

    /// A plain continue after a pause: every failed check of `stage` (and every failed
    /// background check) runs again from a fresh count, its history kept. `Continue` when one
    /// was restarted, else what the stage's gate says.
    pub fn rerun(&mut self, stage: Stage, now: i64) -> Verdict {
        let mut restarted = false;
        for (check, state) in self.policy.checks.iter().zip(self.checks.iter_mut()) {
            let failed = matches!(state.status, CheckStatus::Failed { .. });
            let ours = stage_of(check.when)(stage) || check.when == When::Background;
            if failed && ours {
                state.status = CheckStatus::Running;
                state.next_at = Some(now + check.interval.ms() as i64);
                state.taken = 0;
                state.failed = 0;
                state.errors = 0;
                state.cursor = None;
                restarted = true;
            }
        }
        if restarted {
            return Verdict::Continue;
        }
        match self.gate(stage) {
            Gate::Open => Verdict::Passed { stage },
            Gate::Waiting(_) => Verdict::Continue,
            Gate::Failed {
                check,
                reason,
                action,
            } => Verdict::Failed {
                check,
                reason,
                action,
            },
        }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.checks
            .iter()
            .position(|s| s.name == name && s.status == CheckStatus::Running)
    }

    /// Records a traffic measurement from the runtime's counters: the interval since the
    /// check's last snapshot, of `revision` (and `stable` for a comparison). The first
    /// snapshot of a run only starts the interval (nothing is measured, the check is due again
    /// one interval later).
    pub fn record_traffic(
        &mut self,
        name: &str,
        snapshot: TrafficSnapshot,
        revision: &str,
        stable: Option<&str>,
        now: i64,
    ) -> Verdict {
        let Some(i) = self.index(name) else {
            return Verdict::Stale;
        };
        let check = self.policy.checks[i].clone();
        let Provider::Traffic {
            metric,
            compared_to,
        } = check.provider
        else {
            return self.record(
                name,
                Observation::Error(format!("{} is not a traffic check", check.name)),
                now,
            );
        };
        let Some(before) = self.checks[i].cursor.replace(snapshot.clone()) else {
            self.checks[i].next_at = Some(now + check.interval.ms() as i64);
            return Verdict::Continue;
        };
        let observation = (|| {
            let w = traffic::window(&before, &snapshot, revision)?;
            let mut sample = Sample {
                result: w.value(metric, revision)?,
                requests: Some(w.requests as f64),
                ..Sample::default()
            };
            if compared_to.is_some() {
                let stable = stable.ok_or("there is no stable revision to compare with")?;
                let b = traffic::window(&before, &snapshot, stable)?;
                sample.baseline = Some(b.value(metric, stable)?);
                sample.baseline_requests = Some(b.requests as f64);
            }
            Ok::<_, Box<dyn std::error::Error>>(sample)
        })();
        let observation = match observation {
            Ok(s) => Observation::Value(s),
            Err(e) => Observation::Error(e.to_string()),
        };
        self.record(name, observation, now)
    }

    /// Records one measurement of a running check and says what it decided.
    pub fn record(&mut self, name: &str, observation: Observation, now: i64) -> Verdict {
        let Some(i) = self.index(name) else {
            return Verdict::Stale;
        };
        let check = self.policy.checks[i].clone();
        let limit = self.policy.inconclusive_limit_of(&check);
        let state = &mut self.checks[i];
        let mut m = Measurement {
            at: now,
            value: None,
            baseline: None,
            error: None,
            passed: None,
        };
        let inconclusive = |m: &mut Measurement, state: &mut CheckState, why: String| {
            state.errors += 1;
            if state.errors > limit {
                m.error = Some(format!(
                    "{why} (inconclusive {} times, limit {limit}: counted as failed)",
                    state.errors
                ));
                m.passed = Some(false);
            } else {
                m.error = Some(why);
            }
        };
        match observation {
            Observation::Value(s) => {
                m.value = Some(s.result);
                m.baseline = s.baseline;
                let lookup = |v: &str| match v {
                    "result" => Some(s.result),
                    "baseline" => s.baseline,
                    "requests" => s.requests,
                    "baselineRequests" => s.baseline_requests,
                    _ => None,
                };
                match check.condition() {
                    Ok(expr) => match expr.eval(&lookup) {
                        Ok(b) => m.passed = Some(b),
                        Err(e) => inconclusive(&mut m, state, format!("condition: {e}")),
                    },
                    Err(e) => inconclusive(&mut m, state, format!("condition: {e}")),
                }
            }
            Observation::Failed(why) => {
                m.error = Some(why);
                m.passed = Some(false);
            }
            Observation::Error(why) => inconclusive(&mut m, state, why),
        }
        if let Some(p) = m.passed {
            state.taken += 1;
            if !p {
                state.failed += 1;
            }
        }
        state.measurements.push(m);
        if state.measurements.len() > KEPT_MEASUREMENTS {
            let extra = state.measurements.len() - KEPT_MEASUREMENTS;
            state.measurements.drain(..extra);
        }
        if state.failed > check.failure_limit {
            let reason = reason(&check, state);
            state.status = CheckStatus::Failed {
                reason: reason.clone(),
            };
            state.next_at = None;
            return Verdict::Failed {
                check: check.name.clone(),
                reason,
                action: check.on_failure.into(),
            };
        }
        if check.count.is_some_and(|c| state.taken >= c) {
            state.status = CheckStatus::Passed;
            state.next_at = None;
            let stage = state.stage.unwrap_or(Stage::Release);
            return match self.gate(stage) {
                Gate::Open if stage != Stage::Release => Verdict::Passed { stage },
                _ => Verdict::Continue,
            };
        }
        state.next_at = Some(now + check.interval.ms() as i64);
        Verdict::Continue
    }

    /// A line per check for humans (task messages, `edasctl change-order watch`): state, counts,
    /// the last value against the condition.
    pub fn summary(&self) -> Vec<String> {
        self.policy
            .checks
            .iter()
            .zip(&self.checks)
            .map(|(c, s)| describe(c, s))
            .collect()
    }
}

fn fmt_value(v: f64) -> String {
    let r = (v * 10_000.0).round() / 10_000.0;
    format!("{r}")
}

fn last_value(state: &CheckState) -> String {
    match state.measurements.last() {
        Some(Measurement {
            value: Some(v),
            baseline,
            ..
        }) => match baseline {
            Some(b) => format!("result={}, baseline={}", fmt_value(*v), fmt_value(*b)),
            None => format!("result={}", fmt_value(*v)),
        },
        Some(Measurement { error: Some(e), .. }) => e.clone(),
        _ => "no measurement".into(),
    }
}

/// `check "errors" failed 3 of 3: result=0.21, condition "result < 0.05"`.
fn reason(check: &Check, state: &CheckState) -> String {
    format!(
        "check {:?} failed {} of {}: {}, condition {:?}",
        check.name,
        state.failed,
        state.taken,
        last_value(state),
        check.success_condition
    )
}

fn describe(check: &Check, state: &CheckState) -> String {
    let status = match &state.status {
        CheckStatus::Pending => "pending".to_owned(),
        CheckStatus::Running => "running".to_owned(),
        CheckStatus::Passed => "passed".to_owned(),
        CheckStatus::Failed { .. } => "failed".to_owned(),
        CheckStatus::Skipped { by } => format!("skipped by {by}"),
        CheckStatus::Ended => "ended with the release".to_owned(),
    };
    let of = check.count.map_or_else(
        || state.taken.to_string(),
        |c| format!("{}/{c}", state.taken),
    );
    format!(
        "check {:?} {status}: {of} measured, {} failed, {} inconclusive; last {} against {:?}",
        check.name,
        state.failed,
        state.errors,
        last_value(state),
        check.success_condition
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::{Histogram, RevisionTraffic};

    fn policy(text: &str) -> ReleasePolicy {
        ReleasePolicy::from_text(text).unwrap()
    }

    const GRAY: &str = r#"
checks:
  - name: errors
    provider: {prometheus: {query: "x", address: "http://127.0.0.1:9090"}}
    successCondition: result < 0.05
    interval: 10s
    count: 3
    failureLimit: 0
    when: gray
    onFailure: rollback
"#;

    fn v(x: f64) -> Observation {
        Observation::Value(Sample::value(x))
    }

    #[test]
    fn a_healthy_gray_batch_passes_after_count_measurements() {
        let mut a = Analysis::new(&policy(GRAY));
        assert_eq!(a.gate(Stage::Gray), Gate::Waiting(vec!["errors".into()]));
        assert_eq!(a.next_due(), None, "nothing runs before its stage");
        assert_eq!(a.begin(Stage::Gray, 1000), Verdict::Continue);
        assert_eq!(a.next_due(), Some(11_000));
        assert!(a.due(10_999).is_empty());
        assert_eq!(
            a.due(11_000),
            vec![Due {
                check: "errors".into(),
                at: 11_000
            }]
        );
        assert_eq!(a.record("errors", v(0.01), 11_000), Verdict::Continue);
        assert_eq!(a.next_due(), Some(21_000));
        assert_eq!(a.record("errors", v(0.0), 21_000), Verdict::Continue);
        assert_eq!(
            a.record("errors", v(0.02), 31_000),
            Verdict::Passed { stage: Stage::Gray }
        );
        assert_eq!(a.gate(Stage::Gray), Gate::Open);
        assert_eq!(a.next_due(), None);
        assert_eq!(a.record("errors", v(0.9), 41_000), Verdict::Stale);
        // Beginning the stage again (a restart replaying it) changes nothing.
        assert_eq!(
            a.begin(Stage::Gray, 50_000),
            Verdict::Passed { stage: Stage::Gray }
        );
    }

    #[test]
    fn a_bad_value_fails_at_once_with_a_reason_naming_value_and_condition() {
        let mut a = Analysis::new(&policy(GRAY));
        a.begin(Stage::Gray, 0);
        assert_eq!(a.record("errors", v(0.01), 10_000), Verdict::Continue);
        let Verdict::Failed {
            check,
            reason,
            action,
        } = a.record("errors", v(0.21), 20_000)
        else {
            panic!("expected a failure");
        };
        assert_eq!(check, "errors");
        assert_eq!(action, Action::Rollback);
        assert_eq!(
            reason,
            r#"check "errors" failed 1 of 2: result=0.21, condition "result < 0.05""#
        );
        assert!(matches!(a.gate(Stage::Gray), Gate::Failed { .. }));
        assert_eq!(a.next_due(), None);
        assert_eq!(a.failure().unwrap().0, "errors");
    }

    #[test]
    fn provider_errors_are_tolerated_up_to_the_limit_then_fail() {
        let mut p = policy(GRAY);
        p.inconclusive_limit = 2;
        let mut a = Analysis::new(&p);
        a.begin(Stage::Gray, 0);
        let e = || Observation::Error("connection refused".into());
        assert_eq!(a.record("errors", e(), 10_000), Verdict::Continue);
        assert_eq!(a.record("errors", e(), 20_000), Verdict::Continue);
        assert_eq!(a.checks[0].taken, 0, "tolerated errors do not count");
        assert_eq!(a.checks[0].measurements[1].passed, None);
        let Verdict::Failed { reason, .. } = a.record("errors", e(), 30_000) else {
            panic!("the third error exceeds the limit");
        };
        assert_eq!(
            reason,
            r#"check "errors" failed 1 of 1: connection refused (inconclusive 3 times, limit 2: counted as failed), condition "result < 0.05""#
        );
    }

    #[test]
    fn undecidable_conditions_are_inconclusive_not_passes() {
        let text = GRAY.replace("result < 0.05", "1 / result > 2");
        let mut a = Analysis::new(&policy(&text));
        a.begin(Stage::Gray, 0);
        assert_eq!(a.record("errors", v(0.0), 10_000), Verdict::Continue);
        let m = &a.checks[0].measurements[0];
        assert_eq!(m.passed, None);
        assert_eq!(m.error.as_deref(), Some("condition: division by zero"));
    }

    #[test]
    fn failure_limit_tolerates_some_failures() {
        let text = GRAY.replace("failureLimit: 0", "failureLimit: 1");
        let mut a = Analysis::new(&policy(&text));
        a.begin(Stage::Gray, 0);
        assert_eq!(a.record("errors", v(0.5), 10_000), Verdict::Continue);
        assert_eq!(a.record("errors", v(0.0), 20_000), Verdict::Continue);
        assert_eq!(
            a.record("errors", v(0.0), 30_000),
            Verdict::Passed { stage: Stage::Gray }
        );
        let mut b = Analysis::new(&policy(&text));
        b.begin(Stage::Gray, 0);
        b.record("errors", v(0.5), 10_000);
        assert!(matches!(
            b.record("errors", Observation::Failed("HTTP 500".into()), 20_000),
            Verdict::Failed {
                action: Action::Rollback,
                ..
            }
        ));
    }

    const BATCHES: &str = r#"
checks:
  - name: health
    provider: {health: {metric: restarts}}
    successCondition: result == 0
    interval: 5s
    count: 2
    when: afterEachBatch
    settle: 20s
  - name: bg
    provider: {webhook: {url: "http://127.0.0.1:1/"}}
    successCondition: result == 1
    interval: 30s
    when: background
"#;

    #[test]
    fn each_batch_gets_a_fresh_run_after_its_settle_window_and_background_runs_throughout() {
        let mut a = Analysis::new(&policy(BATCHES));
        assert_eq!(
            a.begin(Stage::Release, 0),
            Verdict::Passed {
                stage: Stage::Release
            }
        );
        assert_eq!(a.next_due(), Some(30_000));
        assert_eq!(a.gate(Stage::Gray), Gate::Open, "no gray checks");
        assert_eq!(a.begin(Stage::Batch(1), 1000), Verdict::Continue);
        assert_eq!(a.next_due(), Some(26_000), "settle 20 s + interval 5 s");
        a.record("health", v(0.0), 26_000);
        assert_eq!(
            a.record("health", v(0.0), 31_000),
            Verdict::Passed {
                stage: Stage::Batch(1)
            }
        );
        assert_eq!(a.record("bg", v(1.0), 30_000), Verdict::Continue);
        assert_eq!(a.checks[1].next_at, Some(60_000));
        assert_eq!(
            a.gate(Stage::Batch(2)),
            Gate::Waiting(vec!["health".into()])
        );
        assert_eq!(a.begin(Stage::Batch(2), 40_000), Verdict::Continue);
        assert_eq!(a.next_due(), Some(60_000), "settle 20 s + interval 5 s");
        assert_eq!(a.checks[0].taken, 0, "a fresh run");
        assert_eq!(a.checks[0].measurements.len(), 2, "history stays");
        a.record("health", v(0.0), 65_000);
        assert!(matches!(
            a.record("health", v(2.0), 70_000),
            Verdict::Failed {
                action: Action::Pause,
                ..
            }
        ));
        // The failed check is not restarted by the next batch: only a skip clears it.
        assert!(matches!(
            a.begin(Stage::Batch(3), 80_000),
            Verdict::Failed { .. }
        ));
        assert_eq!(a.next_due(), Some(60_000), "only the background check runs");
        a.skip(Stage::Batch(2), "ops");
        assert_eq!(a.begin(Stage::Batch(3), 80_000), Verdict::Continue);
        a.finish();
        assert_eq!(a.checks[1].status, CheckStatus::Ended);
        assert_eq!(a.next_due(), None);
        assert!(a.due(i64::MAX).is_empty());
        assert!(
            a.summary()[1].contains("ended with the release"),
            "{:?}",
            a.summary()
        );
    }

    #[test]
    fn a_background_failure_stops_the_release_whenever_it_comes() {
        let mut a = Analysis::new(&policy(BATCHES));
        a.begin(Stage::Release, 0);
        let Verdict::Failed { check, action, .. } = a.record(
            "bg",
            Observation::Failed("HTTP 503 without a result".into()),
            30_000,
        ) else {
            panic!("failure expected");
        };
        assert_eq!((check.as_str(), action), ("bg", Action::Pause));
        assert!(matches!(a.gate(Stage::Release), Gate::Failed { .. }));
        a.skip(Stage::Release, "alice");
        assert_eq!(
            a.checks[1].status,
            CheckStatus::Skipped { by: "alice".into() }
        );
        assert_eq!(a.failure(), None);
    }

    #[test]
    fn a_rerun_measures_a_failed_check_again_from_a_fresh_count() {
        let mut a = Analysis::new(&policy(GRAY));
        a.begin(Stage::Gray, 0);
        assert!(matches!(
            a.record("errors", v(1.0), 10_000),
            Verdict::Failed { .. }
        ));
        assert_eq!(a.rerun(Stage::Gray, 50_000), Verdict::Continue);
        assert_eq!(a.next_due(), Some(60_000));
        assert_eq!(a.gate(Stage::Gray), Gate::Waiting(vec!["errors".into()]));
        for t in [60_000, 70_000] {
            assert_eq!(a.record("errors", v(0.0), t), Verdict::Continue);
        }
        assert_eq!(
            a.record("errors", v(0.0), 80_000),
            Verdict::Passed { stage: Stage::Gray }
        );
        assert_eq!(a.checks[0].measurements.len(), 4, "the failed one is kept");
        assert_eq!(
            a.rerun(Stage::Gray, 90_000),
            Verdict::Passed { stage: Stage::Gray }
        );
    }

    #[test]
    fn skipping_a_paused_gray_check_opens_the_gate() {
        let mut a = Analysis::new(&policy(GRAY));
        a.begin(Stage::Gray, 0);
        a.record("errors", v(1.0), 10_000);
        a.skip(Stage::Gray, "ops");
        assert_eq!(a.gate(Stage::Gray), Gate::Open);
        assert!(a.summary()[0].contains("skipped by ops"));
    }

    #[test]
    fn resuming_from_the_stored_state_carries_on() {
        let mut a = Analysis::new(&policy(GRAY));
        a.begin(Stage::Gray, 0);
        a.record("errors", v(0.01), 10_000);
        let stored = serde_json::to_string(&a).unwrap();
        // edasd restarts long after the next measurement was due.
        let mut b: Analysis = serde_json::from_str(&stored).unwrap();
        assert_eq!(b, a);
        assert_eq!(
            b.due(100_000).len(),
            1,
            "an overdue measurement is due at once"
        );
        assert_eq!(b.record("errors", v(0.01), 100_000), Verdict::Continue);
        assert_eq!(b.checks[0].taken, 2, "never from zero");
        // A failed check stays failed through a restart.
        b.record("errors", v(0.5), 110_000);
        let mut c: Analysis = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert!(matches!(c.gate(Stage::Gray), Gate::Failed { .. }));
        assert_eq!(c.begin(Stage::Gray, 120_000), c.begin(Stage::Gray, 120_000));
        assert!(matches!(
            c.begin(Stage::Gray, 130_000),
            Verdict::Failed { .. }
        ));
    }

    #[test]
    fn measurement_history_is_bounded() {
        let text = GRAY.replace("count: 3", "count: 500");
        let mut a = Analysis::new(&policy(&text));
        a.begin(Stage::Gray, 0);
        for i in 1..=120 {
            a.record("errors", v(0.0), i * 10_000);
        }
        assert_eq!(a.checks[0].measurements.len(), KEPT_MEASUREMENTS);
        assert_eq!(a.checks[0].taken, 120);
        assert_eq!(a.checks[0].measurements.last().unwrap().at, 1_200_000);
    }

    mod random_steps {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Step {
            Begin(u8),
            Record(u8, u8),
            Skip(u8),
            Rerun(u8),
            Finish,
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                (0u8..4).prop_map(Step::Begin),
                (0u8..3, 0u8..4).prop_map(|(c, o)| Step::Record(c, o)),
                (0u8..4).prop_map(Step::Skip),
                (0u8..4).prop_map(Step::Rerun),
                Just(Step::Finish),
            ]
        }

        fn stage(n: u8) -> Stage {
            match n {
                0 => Stage::Gray,
                1 => Stage::Release,
                k => Stage::Batch(u32::from(k)),
            }
        }

        const POLICY: &str = r#"
checks:
  - {name: g, provider: {health: {metric: restarts}}, successCondition: result == 0, interval: 1s, count: 3, failureLimit: 1, when: gray, onFailure: rollback}
  - {name: b, provider: {health: {metric: restarts}}, successCondition: 1 / result > 0, interval: 2s, count: 2, when: afterEachBatch, settle: 1s}
  - {name: r, provider: {health: {metric: restarts}}, successCondition: result < 5, interval: 5s, when: background, inconclusiveLimit: 1}
"#;

        proptest! {
            /// Whatever happens in whatever order: no panic, the counts stay within the
            /// policy, a failed check is failed with a reason and never due, a stored and
            /// decoded analysis is the same and decides the same.
            #[test]
            fn any_sequence_keeps_the_invariants(steps in proptest::collection::vec(step(), 0..60)) {
                let policy = ReleasePolicy::from_text(POLICY).unwrap();
                let mut a = Analysis::new(&policy);
                let mut now = 0i64;
                for s in steps {
                    now += 700;
                    match s {
                        Step::Begin(n) => { a.begin(stage(n), now); }
                        Step::Record(c, o) => {
                            let name = ["g", "b", "r"][usize::from(c)];
                            let obs = match o {
                                0 => Observation::Value(Sample::value(0.0)),
                                1 => Observation::Value(Sample::value(7.0)),
                                2 => Observation::Failed("no".into()),
                                _ => Observation::Error("down".into()),
                            };
                            let mut copy: Analysis =
                                serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
                            prop_assert_eq!(&copy, &a);
                            let v = a.record(name, obs.clone(), now);
                            prop_assert_eq!(copy.record(name, obs, now), v);
                        }
                        Step::Skip(n) => a.skip(stage(n), "ops"),
                        Step::Rerun(n) => { a.rerun(stage(n), now); }
                        Step::Finish => a.finish(),
                    }
                    for (c, st) in a.policy.checks.iter().zip(&a.checks) {
                        prop_assert!(st.failed <= st.taken);
                        if let Some(count) = c.count {
                            prop_assert!(st.taken <= count);
                        }
                        prop_assert!(st.measurements.len() <= KEPT_MEASUREMENTS);
                        match &st.status {
                            CheckStatus::Failed { reason } => {
                                let prefix = format!("check {:?} failed", c.name);
                                prop_assert!(reason.starts_with(&prefix), "{}", reason);
                                prop_assert_eq!(st.next_at, None);
                            }
                            CheckStatus::Running => prop_assert!(st.next_at.is_some()),
                            _ => {}
                        }
                    }
                    if let Some(due) = a.next_due() {
                        prop_assert!(!a.due(due).is_empty());
                    }
                }
            }
        }
    }

    fn counters(at: i64, v2: (u64, u64), v1: (u64, u64)) -> TrafficSnapshot {
        let rev = |(r, e): (u64, u64)| RevisionTraffic {
            requests: r,
            server_errors: e,
            latency: Histogram {
                bounds: vec![0.1],
                counts: vec![r],
                count: r,
            },
        };
        TrafficSnapshot {
            at,
            revisions: [("v2".to_owned(), rev(v2)), ("v1".to_owned(), rev(v1))].into(),
        }
    }

    #[test]
    fn traffic_checks_measure_between_stored_snapshots_against_the_stable_revision() {
        let text = r#"
checks:
  - name: rate
    provider: {traffic: {metric: errorRate, comparedTo: stable}}
    successCondition: result <= baseline + 0.01 && requests >= 10
    interval: 10s
    count: 2
    when: gray
"#;
        let mut a = Analysis::new(&policy(text));
        a.begin(Stage::Gray, 0);
        // The first snapshot starts the interval.
        assert_eq!(
            a.record_traffic(
                "rate",
                counters(10_000, (5, 0), (100, 1)),
                "v2",
                Some("v1"),
                10_000
            ),
            Verdict::Continue
        );
        assert_eq!(a.checks[0].taken, 0);
        assert_eq!(a.next_due(), Some(20_000));
        // It survives a restart with the analysis.
        let mut a: Analysis = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(
            a.record_traffic(
                "rate",
                counters(20_000, (105, 1), (300, 3)),
                "v2",
                Some("v1"),
                20_000
            ),
            Verdict::Continue
        );
        assert_eq!(a.checks[0].measurements[0].value, Some(0.01));
        assert_eq!(a.checks[0].measurements[0].baseline, Some(0.01));
        // 20 % errors against the stable revision's 1 %.
        let Verdict::Failed { reason, .. } = a.record_traffic(
            "rate",
            counters(30_000, (205, 21), (400, 4)),
            "v2",
            Some("v1"),
            30_000,
        ) else {
            panic!("failure expected");
        };
        assert_eq!(
            reason,
            r#"check "rate" failed 1 of 2: result=0.2, baseline=0.01, condition "result <= baseline + 0.01 && requests >= 10""#
        );
    }

    #[test]
    fn gray_checks_judge_the_first_batch_when_the_release_has_no_gray_batch() {
        // With a gray batch (index 0), only it carries the gray stage.
        assert_eq!(batch_stages(0, Some(0)), [Stage::Gray, Stage::Batch(1)]);
        assert_eq!(batch_stages(1, Some(0)), [Stage::Batch(2)]);
        // Without one, the first batch plays the canary's role; the others do not.
        assert_eq!(batch_stages(0, None), [Stage::Gray, Stage::Batch(1)]);
        assert_eq!(batch_stages(1, None), [Stage::Batch(2)]);
        // So a gray check runs (and gates) the first batch instead of never running.
        let mut a = Analysis::new(&policy(GRAY));
        for stage in batch_stages(0, None) {
            a.begin(stage, 0);
        }
        assert_eq!(a.checks[0].status, CheckStatus::Running);
        assert_eq!(a.gate(Stage::Gray), Gate::Waiting(vec!["errors".into()]));
        assert!(matches!(
            a.record("errors", v(0.5), 10_000),
            Verdict::Failed {
                action: Action::Rollback,
                ..
            }
        ));
    }

    #[test]
    fn finish_ends_running_checks_without_passing_or_failing_them() {
        let mut a = Analysis::new(&policy(GRAY));
        a.begin(Stage::Gray, 0);
        a.record("errors", v(0.0), 10_000);
        a.finish();
        assert_eq!(a.checks[0].status, CheckStatus::Ended);
        assert_eq!((a.next_due(), a.due(i64::MAX)), (None, vec![]));
        assert_eq!(a.record("errors", v(0.0), 20_000), Verdict::Stale);
        // Round-trips (a stored order keeps it ended).
        let back: Analysis = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn a_comparison_without_a_stable_revision_is_inconclusive() {
        let text = r#"
checks:
  - name: rate
    provider: {traffic: {metric: errorRate, comparedTo: stable}}
    successCondition: result <= baseline
    interval: 10s
    when: gray
"#;
        let mut a = Analysis::new(&policy(text));
        a.begin(Stage::Gray, 0);
        a.record_traffic("rate", counters(10_000, (5, 0), (0, 0)), "v2", None, 10_000);
        a.record_traffic("rate", counters(20_000, (9, 0), (0, 0)), "v2", None, 20_000);
        assert_eq!(
            a.checks[0].measurements[0].error.as_deref(),
            Some("there is no stable revision to compare with")
        );
    }

    #[test]
    fn a_quiet_new_revision_is_inconclusive() {
        let text = r#"
checks:
  - name: rate
    provider: {traffic: {metric: successRate}}
    successCondition: result > 0.99
    interval: 10s
    when: gray
"#;
        let mut a = Analysis::new(&policy(text));
        a.begin(Stage::Gray, 0);
        a.record_traffic("rate", counters(10_000, (5, 0), (0, 0)), "v2", None, 10_000);
        assert_eq!(
            a.record_traffic("rate", counters(20_000, (5, 0), (0, 0)), "v2", None, 20_000),
            Verdict::Continue
        );
        assert_eq!(
            a.checks[0].measurements[0].error.as_deref(),
            Some("revision v2 answered no requests in the interval")
        );
    }
}
