//! Every series edasd exports: its HELP text (`describe_*`) and the histogram buckets, in one
//! place (docs/METRICS.md lists the same, with each label's bound).

use anyhow::Context;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

/// How long a gauge nobody sets stays in the output.
const GAUGE_IDLE: std::time::Duration = std::time::Duration::from_secs(600);

/// Request and store latencies: 1 ms to 10 s.
const FAST: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Release, batch and wait durations: 1 s to 4 h.
const SLOW: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0,
];

/// Installs the Prometheus recorder (histograms with buckets, not summaries) and describes
/// every series.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("edasd_request_duration_seconds".into()), FAST)?
        .set_buckets_for_metric(
            Matcher::Full("edasd_store_transaction_seconds".into()),
            FAST,
        )?
        .set_buckets_for_metric(
            Matcher::Full("edasd_notify_request_duration_seconds".into()),
            FAST,
        )?
        .set_buckets_for_metric(
            Matcher::Full("edasd_proxy_request_duration_seconds".into()),
            FAST,
        )?
        .set_buckets_for_metric(
            Matcher::Full("edasd_change_order_duration_seconds".into()),
            SLOW,
        )?
        .set_buckets_for_metric(Matcher::Full("edasd_batch_duration_seconds".into()), SLOW)?
        .set_buckets_for_metric(Matcher::Full("edasd_batch_wait_seconds".into()), SLOW)?
        // Gauges are set at every scrape (or connection): one not set for this long belongs to
        // something gone (a deleted application) and leaves the output.
        .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE))
        .install_recorder()
        .context("installing the metrics recorder")?;
    describe();
    Ok(handle)
}

fn describe() {
    describe_counter!(
        "edasd_requests_total",
        "API requests answered, by operation (action) and answer code."
    );
    describe_histogram!(
        "edasd_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an API request, by operation."
    );
    describe_counter!(
        "edasd_handler_panics_total",
        "Request handlers that panicked (answered 500 InternalError)."
    );
    describe_counter!(
        "edasd_change_orders_submitted_total",
        "Change orders submitted through the API, by operation."
    );
    describe_gauge!(
        "edasd_active_change_orders",
        "Unfinished change orders by EDAS status code (0, 1, 8, 9), counted by the store at scrape time."
    );
    describe_counter!(
        "edasd_change_orders_finished_total",
        "Change orders that finished, by change type and outcome (success, failed, system_failure, terminated)."
    );
    describe_histogram!(
        "edasd_change_order_duration_seconds",
        Unit::Seconds,
        "Time from a change order's creation to its end, by change type and outcome."
    );
    describe_histogram!(
        "edasd_batch_duration_seconds",
        Unit::Seconds,
        "Time from a batch's start to its end (new instances ready, old ones gone), by change type and batch (gray, regular)."
    );
    describe_histogram!(
        "edasd_batch_wait_seconds",
        Unit::Seconds,
        "Time between two batches: waiting for confirmation (ContinuePipeline) or the automatic wait."
    );
    describe_counter!(
        "edasd_change_order_confirmations_total",
        "Waits between batches that ended (ContinuePipeline, or the automatic wait ran out), by change type."
    );
    describe_histogram!(
        "edasd_store_transaction_seconds",
        Unit::Seconds,
        "Time of the release engine's store transactions, by operation (transition, deploy, create)."
    );
    describe_counter!(
        "edasd_store_wal_syncs_total",
        "SQLite WAL syncs (fdatasync) so far: group commit makes every commit waiting at the time durable with one."
    );
    describe_counter!(
        "edasd_store_wal_pages_total",
        "SQLite WAL pages (4 KiB frames) the group writer's commits wrote so far: the write path's volume, which its syncs and checkpoints carry."
    );
    describe_counter!(
        "edasd_store_wal_checkpoints_total",
        "SQLite WAL checkpoints so far, by who ran them: the checkpoint thread beside the writer (thread), the writer copying the thread's last few pages so the WAL restarts (finish), or the writer itself once the WAL passed the backstop (backstop: the thread fell behind)."
    );
    describe_gauge!(
        "edasd_application_revision",
        "The number of each live application's current revision."
    );
    describe_gauge!(
        "edasd_application_instances",
        "Each live application's instances: desired (its spec), ready (any revision), available (ready, of the current template revision)."
    );
    describe_gauge!(
        "edasd_application_instance_restarts",
        "Restarts of each live application's current instances, summed."
    );
    describe_gauge!(
        "edasd_outbox_deliveries",
        "Notification deliveries by state: pending (not yet accepted by the receiver) and dead (given up)."
    );
    describe_counter!(
        "edasd_notify_deliveries_total",
        "Notification delivery attempts by sink and outcome (delivered, retried, dead)."
    );
    describe_histogram!(
        "edasd_notify_request_duration_seconds",
        Unit::Seconds,
        "Time of one request to a notification receiver, by sink."
    );
    describe_counter!(
        "edasd_proxy_requests_total",
        "Requests through the local runtime's Service proxies, by application, revision of the instance that answered (none: no instance) and status class."
    );
    describe_histogram!(
        "edasd_proxy_request_duration_seconds",
        Unit::Seconds,
        "Time from a request's arrival at a local Service proxy to its response's head, by application and revision."
    );
    describe_counter!(
        "edasd_analysis_measurements_total",
        "Measurements of release policies' checks, once stored, by result (passed, failed, inconclusive)."
    );
    describe_counter!(
        "edasd_analysis_verdicts_total",
        "Release analysis decisions: a batch's checks passed, or a failed check paused or rolled back the release."
    );
    describe_gauge!("edasd_connections_open", "Open API connections.");
    describe_counter!(
        "edasd_connections_evicted_total",
        "API connections closed to make room at the connection cap (the longest silent first)."
    );
}
