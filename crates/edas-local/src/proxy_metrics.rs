//! The local service proxies' requests as metrics: `edasd_proxy_requests_total{app_id,
//! revision, class}` and `edasd_proxy_request_duration_seconds{app_id, revision}` (time to the
//! response's head). The proxy names only the backend's address; this maps it to the revision
//! whose instance listens there. Labels are bounded: one application, the revisions it served
//! (`none` for the proxy's own 503), five status classes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One application's observer, shared by its proxies.
pub(crate) struct ProxyMetrics {
    app_id: Arc<str>,
    revisions: Mutex<HashMap<SocketAddr, Arc<str>>>,
    /// Requests answered per revision since the proxies started (the local autoscaler's
    /// request rate is the difference between two of its samples).
    answered: Mutex<HashMap<Arc<str>, u64>>,
}

impl ProxyMetrics {
    pub(crate) fn new(app_id: &str) -> ProxyMetrics {
        ProxyMetrics {
            app_id: app_id.into(),
            revisions: Mutex::default(),
            answered: Mutex::default(),
        }
    }

    /// Requests answered by the instances of `revision` so far (the local autoscaler's
    /// request rate is the difference between two of its samples).
    pub(crate) fn requests_of(&self, revision: &str) -> u64 {
        self.answered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(revision)
            .copied()
            .unwrap_or(0)
    }

    /// The revision of each backend address, as the proxies were last given them.
    pub(crate) fn set_revisions(&self, revisions: HashMap<SocketAddr, Arc<str>>) {
        *self.revisions.lock().unwrap_or_else(|e| e.into_inner()) = revisions;
    }
}

/// `2xx` … `5xx`, else `other`.
fn class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "other",
    }
}

impl edas_proxy::Observer for ProxyMetrics {
    fn answered(&self, backend: Option<SocketAddr>, status: u16, elapsed: Duration) {
        let revision: Arc<str> = backend
            .and_then(|b| {
                self.revisions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&b)
                    .cloned()
            })
            .unwrap_or_else(|| "none".into());
        *self
            .answered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(revision.clone())
            .or_default() += 1;
        let app = self.app_id.to_string();
        let revision = revision.to_string();
        metrics::counter!(
            "edasd_proxy_requests_total",
            "app_id" => app.clone(),
            "revision" => revision.clone(),
            "class" => class(status)
        )
        .increment(1);
        metrics::histogram!(
            "edasd_proxy_request_duration_seconds",
            "app_id" => app,
            "revision" => revision
        )
        .record(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(
            [101, 200, 302, 404, 503, 600].map(class),
            ["1xx", "2xx", "3xx", "4xx", "5xx", "other"]
        );
    }
}
