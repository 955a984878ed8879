//! The release analysis (issue 21): an application's release policy judges its releases.
//!
//! At submission the policy's current version is attached to the change order
//! ([`attach`]: which batches wait for a verdict, the analysis state, every check's standing).
//! The driver then keeps the analysis going, event-driven: each check's next measurement is a
//! timer in the driver's loop, a measurement runs in a spawned task ([`measure`]) that reports
//! back through the driver's channel, and the measurement is recorded by edas-analysis's pure
//! judge and persisted, with the verdict it leads to, as one transition
//! (`Input::Analysis`) before that verdict acts. The whole analysis lives in the stored change
//! order, so a restarted edasd resumes it where it was: measurements and counts kept, a failed
//! check never skipped, an overdue measurement simply due.

use std::sync::Arc;

use edas_analysis::judge::{CheckStatus, Observation, Sample};
use edas_analysis::policy::{Check, HealthMetric, Provider, When};
use edas_analysis::traffic::{Histogram, RevisionTraffic};
use edas_analysis::{Action, Analysis, Gate, ReleasePolicy, Stage, TrafficSnapshot};
use edas_release::{
    AnalysisVerdict, BatchKind, ChangeKind, ChangeOrder, CheckStanding, ReleaseAnalysis,
    RollbackRequest, Strategy,
};
use edas_runtime::{AppRef, Runtime, TrafficCounters};
use edas_store::Store;

use crate::SubmitError;

/// Engine-wide settings of the release analysis (edasd's `[analysis]`).
#[derive(Clone, Debug, Default)]
pub struct AnalysisSettings {
    /// The Prometheus server a `prometheus` check without its own `address` queries.
    pub prometheus: Option<String>,
}

/// `order` with the application's release policy attached, when it has one and the order
/// releases a new revision over a previous one (a scale, stop, delete or rollback is not
/// judged: there is nothing new to judge, or judging it could only stop a way back).
pub(crate) async fn attach(
    store: &Store,
    app_id: &str,
    order: ChangeOrder,
) -> Result<ChangeOrder, SubmitError> {
    let judged = matches!(
        order.kind(),
        ChangeKind::Deploy | ChangeKind::UpdateConfig | ChangeKind::Restart
    ) && order
        .previous()
        .is_some_and(|p| &p.revision != order.to_revision() && p.replicas > 0);
    if !judged {
        return Ok(order);
    }
    let Some(stored) = store.release_policy(app_id).await? else {
        return Ok(order);
    };
    let Some(doc) = &stored.policy else {
        return Ok(order);
    };
    let policy = ReleasePolicy::from_value(doc).map_err(|e| {
        SubmitError::Internal(format!(
            "the stored release policy v{} of application {app_id} is invalid: {e}",
            stored.version
        ))
    })?;
    let gated = (0..order.batch_count())
        .map(|i| {
            stages(&order, i).into_iter().any(|stage| {
                policy.checks.iter().any(|c| {
                    matches!(
                        (c.when, stage),
                        (When::Gray, Stage::Gray) | (When::AfterEachBatch, Stage::Batch(_))
                    )
                })
            })
        })
        .collect();
    let analysis = Analysis::new(&policy);
    Ok(order.with_analysis(ReleaseAnalysis {
        policy_version: stored.version,
        gated,
        paused: None,
        doc: encode(&analysis),
        checks: standings(&analysis),
        measured: 0,
        passes: 0,
        failures: 0,
        last_failure: None,
    }))
}

/// The analysis stages batch `pipeline` (index) completes: the gray batch's checks and each
/// batch's own (`afterEachBatch`, numbered from 1 like EDAS's batches). A release without a
/// gray batch has its `gray` checks judge the first batch.
pub(crate) fn stages(order: &ChangeOrder, pipeline: usize) -> Vec<Stage> {
    let gray = order
        .pipelines()
        .iter()
        .position(|p| p.kind == BatchKind::Gray);
    edas_analysis::batch_stages(pipeline, gray)
}

/// The analysis state stored in `order`, if it has one that decodes.
pub(crate) fn decode(order: &ChangeOrder) -> Option<Analysis> {
    let a = order.analysis()?;
    match serde_json::from_str(&a.doc) {
        Ok(analysis) => Some(analysis),
        Err(error) => {
            tracing::error!(message = "A change order's analysis state does not decode; its checks stop.", change_order = %order.id(), %error);
            None
        }
    }
}

pub(crate) fn encode(analysis: &Analysis) -> String {
    serde_json::to_string(analysis).unwrap_or_else(|_| "{}".to_owned())
}

fn fmt_value(v: f64) -> String {
    format!("{}", (v * 10_000.0).round() / 10_000.0)
}

/// Every check's standing, for the change order (task messages, watch, events).
pub(crate) fn standings(analysis: &Analysis) -> Vec<CheckStanding> {
    analysis
        .policy
        .checks
        .iter()
        .zip(&analysis.checks)
        .map(|(c, s)| {
            let last = s.measurements.last().map(|m| match (m.value, m.baseline) {
                (Some(v), Some(b)) => format!("result={}, baseline={}", fmt_value(v), fmt_value(b)),
                (Some(v), None) => format!("result={}", fmt_value(v)),
                _ => m.error.clone().unwrap_or_else(|| "no value".to_owned()),
            });
            let outcome = match &s.status {
                CheckStatus::Pending => "pending".to_owned(),
                CheckStatus::Running => "running".to_owned(),
                CheckStatus::Passed => "passed".to_owned(),
                CheckStatus::Failed { .. } => "failed".to_owned(),
                CheckStatus::Skipped { by } => format!("skipped by {by}"),
                CheckStatus::Ended => edas_release::ENDED.to_owned(),
            };
            CheckStanding {
                name: c.name.clone(),
                when: match c.when {
                    When::Gray => "gray",
                    When::AfterEachBatch => "afterEachBatch",
                    When::Background => "background",
                }
                .to_owned(),
                condition: c.success_condition.clone(),
                last,
                measurements: s.taken,
                failures: s.failed,
                inconclusive: s.errors,
                outcome,
            }
        })
        .collect()
}

/// Whether the batch whose stages are `stages` may complete: every stage open, else the
/// first failure, else still waiting.
pub(crate) fn gate(analysis: &Analysis, stages: &[Stage]) -> Gate {
    let mut waiting = Vec::new();
    for stage in stages {
        match analysis.gate(*stage) {
            Gate::Open => {}
            failed @ Gate::Failed { .. } => return failed,
            Gate::Waiting(names) => waiting.extend(names),
        }
    }
    if waiting.is_empty() {
        Gate::Open
    } else {
        Gate::Waiting(waiting)
    }
}

/// The machine's verdict for a failed check: hold the order, or end it and roll back (one
/// batch, like AbortAndRollbackChangeOrder).
pub(crate) fn failed(check: String, reason: String, action: Action) -> AnalysisVerdict {
    AnalysisVerdict::Failed {
        check,
        reason,
        rollback: (action == Action::Rollback).then(|| RollbackRequest {
            order_id: edas_store::new_record_id(),
            strategy: Strategy::Single,
        }),
    }
}

/// The analysis of an order that just ended, closed with it: every check still running
/// ended ([`Analysis::finish`]), stored in `next` with its last transition, so nothing is due
/// any more and what GetChangeOrderInfo shows agrees.
pub(crate) fn close(next: &mut ChangeOrder) {
    if next.is_active() {
        return;
    }
    let Some(mut analysis) = decode(next) else {
        return;
    };
    analysis.finish();
    next.close_analysis(encode(&analysis), standings(&analysis));
}

/// Runs the checks that failed (matching `which`) again from zero: ContinuePipeline on an
/// order a failed check held asks for a new judgement, not for the old one again.
pub(crate) fn rerun_failed(
    analysis: &mut Analysis,
    which: impl Fn(&Check, &edas_analysis::judge::CheckState) -> bool,
    now: i64,
) {
    for (check, state) in analysis
        .policy
        .checks
        .iter()
        .zip(analysis.checks.iter_mut())
    {
        if matches!(state.status, CheckStatus::Failed { .. }) && which(check, state) {
            state.status = CheckStatus::Running;
            state.taken = 0;
            state.failed = 0;
            state.errors = 0;
            state.cursor = None;
            state.next_at = Some(now + check.interval.ms() as i64);
        }
    }
}

/// What a measurement task brings back to its driver.
#[derive(Debug, Clone)]
pub(crate) enum Measured {
    /// A provider's answer for the condition.
    Value(Observation),
    /// The runtime's request counters (the judge measures the interval since the last ones).
    Traffic(TrafficSnapshot),
}

/// What a measurement needs, owned so the task outlives nothing.
pub(crate) struct MeasureCtx {
    pub runtime: Arc<dyn Runtime>,
    pub app: AppRef,
    pub order_id: String,
    pub revision: String,
    /// The revision the release replaces, if any.
    pub stable: Option<String>,
    pub batch: Option<usize>,
    /// `gray`, `batch` or `release` (what the webhook is told).
    pub phase: String,
    pub settings: AnalysisSettings,
    pub now: i64,
}

/// Takes one measurement of `check` (in a task of its own: a slow provider never blocks the
/// driver).
pub(crate) async fn measure(check: Check, ctx: MeasureCtx) -> Measured {
    match &check.provider {
        Provider::Traffic { .. } => match ctx.runtime.traffic(&ctx.app).await {
            Ok(counters) => Measured::Traffic(snapshot(counters, ctx.now)),
            Err(e) => Measured::Value(Observation::Error(format!("traffic: {e}"))),
        },
        Provider::Health { metric } => match ctx.runtime.observe(&ctx.app, &ctx.revision).await {
            Ok(state) => {
                let value = match metric {
                    HealthMetric::Restarts => {
                        state.instances.iter().map(|i| u64::from(i.restarts)).sum()
                    }
                    HealthMetric::OomKills => state
                        .instances
                        .iter()
                        .filter(|i| i.last_exit.as_deref().is_some_and(|e| e.contains("OOM")))
                        .count() as u64,
                    HealthMetric::CrashLooping => state
                        .instances
                        .iter()
                        .filter(|i| i.failed.is_some() || (!i.ready && i.restarts >= 3))
                        .count() as u64,
                };
                Measured::Value(Observation::Value(Sample::value(value as f64)))
            }
            Err(e) => Measured::Value(Observation::Error(format!("health: {e}"))),
        },
        Provider::Prometheus { query, address } => {
            providers::prometheus(&check, address.as_deref(), query, &ctx).await
        }
        Provider::Webhook {
            url,
            timeout,
            retries,
        } => {
            let timeout = std::time::Duration::from_millis(timeout.ms());
            providers::webhook(&check, url, timeout, *retries, &ctx).await
        }
    }
}

/// The runtime's counters as the judge's snapshot, taken at `now`.
pub(crate) fn snapshot(counters: TrafficCounters, now: i64) -> TrafficSnapshot {
    TrafficSnapshot {
        at: now,
        revisions: counters
            .revisions
            .into_iter()
            .map(|(revision, c)| {
                (
                    revision,
                    RevisionTraffic {
                        requests: c.requests,
                        server_errors: c.server_errors,
                        latency: Histogram {
                            bounds: c.latency_bounds,
                            counts: c.latency_counts,
                            count: c.requests,
                        },
                    },
                )
            })
            .collect(),
    }
}

/// The Prometheus and webhook providers (edas-analysis's HTTP clients), one client for the
/// whole process.
mod providers {
    use std::sync::OnceLock;
    use std::time::Duration;

    use edas_analysis::providers::{Providers, WebhookContext, expand};

    use super::*;

    /// How long one Prometheus query may take.
    const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(10);

    fn client(settings: &AnalysisSettings) -> Result<&'static Providers, String> {
        static CLIENT: OnceLock<Result<Providers, String>> = OnceLock::new();
        CLIENT
            .get_or_init(|| {
                Providers::new(settings.prometheus.clone(), PROMETHEUS_TIMEOUT)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn context(check: &Check, ctx: &MeasureCtx) -> WebhookContext {
        WebhookContext {
            change_order_id: ctx.order_id.clone(),
            app_id: ctx.app.id.clone(),
            app_name: ctx.app.name.clone(),
            revision: ctx.revision.clone(),
            stable_revision: ctx.stable.clone(),
            batch: ctx
                .batch
                .map(|b| u32::try_from(b).unwrap_or(u32::MAX).saturating_add(1)),
            check: check.name.clone(),
            phase: ctx.phase.clone(),
        }
    }

    pub(super) async fn prometheus(
        check: &Check,
        address: Option<&str>,
        query: &str,
        ctx: &MeasureCtx,
    ) -> Measured {
        let client = match client(&ctx.settings) {
            Ok(c) => c,
            Err(e) => return Measured::Value(Observation::Error(e)),
        };
        let query = match expand(query, &context(check, ctx)) {
            Ok(q) => q,
            Err(e) => return Measured::Value(Observation::Error(e.to_string())),
        };
        Measured::Value(Observation::from(client.prometheus(address, &query).await))
    }

    pub(super) async fn webhook(
        check: &Check,
        url: &str,
        timeout: Duration,
        retries: u32,
        ctx: &MeasureCtx,
    ) -> Measured {
        let client = match client(&ctx.settings) {
            Ok(c) => c,
            Err(e) => return Measured::Value(Observation::Error(e)),
        };
        Measured::Value(
            client
                .webhook(url, timeout, retries, &context(check, ctx))
                .await,
        )
    }
}
