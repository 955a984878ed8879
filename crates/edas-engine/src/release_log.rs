//! One structured INFO line per release event, written by the process that stored the
//! transition (after it is durable): the change order, the application, the batch. The
//! release metrics are counted from the same events, so every process counts what it stored
//! and nothing twice.
//!
//! Labels are bounded: `type` is one of the nine change kinds, `outcome` one of four final
//! statuses, `batch` `gray` or `regular`, `wait` `confirmation` or `automatic`; no label
//! carries an id.

use edas_release::{
    BatchKind, ChangeKind, ChangeOrder, EpochMillis, EventKind, Release, Status, events,
};

/// Logs the events of the transition from `before` (`None`: just created) to `after`, and
/// counts them in the release metrics.
pub(crate) fn log_events(app_id: &str, before: Option<&ChangeOrder>, after: &ChangeOrder) {
    for e in events(before, after) {
        let instance = e.instance.as_ref();
        tracing::info!(
            message = "Release event.",
            event = %e.kind,
            change_order = %e.change_order_id,
            app_id = %app_id,
            batch = e.batch,
            batch_count = e.batch_count,
            status = e.status,
            reason = e.message.as_deref(),
            instance = instance.map(|i| i.name.as_str()),
            ready = instance.map(|i| i.ready),
            failed = instance.and_then(|i| i.failed.as_deref()),
        );
        count(e.kind, e.batch, after);
    }
}

fn count(kind: EventKind, batch: Option<u32>, order: &ChangeOrder) {
    let change = kind_label(order.kind());
    let pipeline = batch
        .and_then(|b| usize::try_from(b).ok())
        .and_then(|b| order.pipelines().get(b.saturating_sub(1)));
    match kind {
        EventKind::Succeeded | EventKind::Failed | EventKind::Aborted => {
            let outcome = match order.status() {
                Status::Success => "success",
                Status::Failed => "failed",
                Status::SystemFailure => "system_failure",
                _ => "terminated",
            };
            metrics::counter!("edasd_change_orders_finished_total", "type" => change, "outcome" => outcome)
                .increment(1);
            let end = order.finish_time().unwrap_or_else(|| order.update_time());
            metrics::histogram!("edasd_change_order_duration_seconds", "type" => change, "outcome" => outcome)
                .record(seconds(order.create_time(), end));
        }
        EventKind::BatchSucceeded => {
            if let Some(p) = pipeline
                && let (Some(start), Some(end)) = (p.start_time, p.finish_time)
            {
                let batch = match p.kind {
                    BatchKind::Gray => "gray",
                    BatchKind::Regular => "regular",
                };
                metrics::histogram!("edasd_batch_duration_seconds", "type" => change, "batch" => batch)
                    .record(seconds(start, end));
            }
        }
        EventKind::BatchStarted => {
            // The wait before a batch: from the end of the one before to this start.
            if let Some(p) = pipeline
                && p.index > 0
                && let Some(previous) = order.pipelines().get(p.index as usize - 1)
                && let (Some(waited_from), Some(start)) = (previous.finish_time, p.start_time)
            {
                let wait = match order.release() {
                    Release::Manual => "confirmation",
                    Release::Auto { .. } => "automatic",
                };
                metrics::histogram!("edasd_batch_wait_seconds", "type" => change, "wait" => wait)
                    .record(seconds(waited_from, start));
            }
        }
        _ => {}
    }
    if kind == EventKind::Continued {
        metrics::counter!("edasd_change_order_confirmations_total", "type" => change).increment(1);
    }
    // The release analysis's decisions (issue 21): a gate passed, or a failed check acted on.
    let verdict = match kind {
        EventKind::AnalysisPassed => Some("passed"),
        EventKind::AnalysisFailed if order.status() == Status::Terminated => Some("rolled_back"),
        EventKind::AnalysisFailed => Some("paused"),
        _ => None,
    };
    if let Some(verdict) = verdict {
        metrics::counter!("edasd_analysis_verdicts_total", "verdict" => verdict).increment(1);
    }
}

fn seconds(from: EpochMillis, to: EpochMillis) -> f64 {
    to.0.saturating_sub(from.0) as f64 / 1000.0
}

fn kind_label(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Create => "create",
        ChangeKind::Deploy => "deploy",
        ChangeKind::UpdateConfig => "update_config",
        ChangeKind::Scale => "scale",
        ChangeKind::Start => "start",
        ChangeKind::Stop => "stop",
        ChangeKind::Restart => "restart",
        ChangeKind::Rollback => "rollback",
        ChangeKind::Delete => "delete",
    }
}

/// Records how long a store write of the engine took (`op`: `transition`, `deploy`,
/// `create`).
pub(crate) fn store_latency(op: &'static str, started: std::time::Instant) {
    metrics::histogram!("edasd_store_transaction_seconds", "op" => op)
        .record(started.elapsed().as_secs_f64());
}
