//! One structured INFO line per release event, written by the process that stored the
//! transition (after it is durable): the change order, the application, the batch.

use edas_release::{ChangeOrder, events};

/// Logs the events of the transition from `before` (`None`: just created) to `after`.
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
    }
}
