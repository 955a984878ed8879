//! The per-application gauges and the outbox's backlog, set at scrape time from the
//! application layer (the store and each runtime's cached view), so every node sharing a
//! database reports the same numbers. One series per live application: the label `app_id` is
//! bounded by the number of applications.

use crate::Api;

/// Sets `edasd_application_revision`, `edasd_application_instances{state}`,
/// `edasd_application_instance_restarts` and `edasd_outbox_deliveries{state}`.
pub(crate) async fn record(api: &Api) {
    match api.app().fleet().await {
        Ok(fleet) => {
            for app in fleet {
                let id = app.app_id;
                metrics::gauge!("edasd_application_revision", "app_id" => id.clone())
                    .set(app.revision as f64);
                for (state, n) in [
                    ("desired", app.desired),
                    ("ready", app.ready),
                    ("available", app.available),
                ] {
                    metrics::gauge!("edasd_application_instances", "app_id" => id.clone(), "state" => state)
                        .set(f64::from(n));
                }
                metrics::gauge!("edasd_application_instance_restarts", "app_id" => id)
                    .set(app.restarts as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: reading the applications failed"),
    }
    match api.app().outbox().await {
        Ok(counts) => {
            metrics::gauge!("edasd_outbox_deliveries", "state" => "pending")
                .set(counts.pending as f64);
            metrics::gauge!("edasd_outbox_deliveries", "state" => "dead").set(counts.dead as f64);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: counting the outbox failed"),
    }
}
