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
    /// Every revision's 5xx answers and latency buckets since the proxies started (the
    /// release analysis's traffic provider takes the difference of two snapshots).
    traffic: Mutex<HashMap<Arc<str>, Counters>>,
}

/// Upper bounds (seconds) of the latency buckets kept per revision for the release analysis:
/// fine enough for p50/p90/p99 of a web service between 1 ms and 10 s.
pub(crate) const LATENCY_BOUNDS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// One revision's counters (non-cumulative buckets; the snapshot makes them cumulative).
#[derive(Default)]
struct Counters {
    requests: u64,
    server_errors: u64,
    buckets: [u64; LATENCY_BOUNDS.len()],
}

impl ProxyMetrics {
    pub(crate) fn new(app_id: &str) -> ProxyMetrics {
        ProxyMetrics {
            app_id: app_id.into(),
            revisions: Mutex::default(),
            traffic: Mutex::default(),
        }
    }

    /// Every revision's cumulative counters now (the runtime port's `traffic`).
    pub(crate) fn traffic(&self) -> edas_runtime::TrafficCounters {
        let traffic = self.traffic.lock().unwrap_or_else(|e| e.into_inner());
        let revisions = traffic
            .iter()
            .map(|(revision, c)| {
                let mut cumulative = 0;
                let latency_counts = c
                    .buckets
                    .iter()
                    .map(|n| {
                        cumulative += n;
                        cumulative
                    })
                    .collect();
                (
                    revision.to_string(),
                    edas_runtime::RevisionCounters {
                        requests: c.requests,
                        server_errors: c.server_errors,
                        latency_bounds: LATENCY_BOUNDS.to_vec(),
                        latency_counts,
                    },
                )
            })
            .collect();
        edas_runtime::TrafficCounters { revisions }
    }

    /// Requests answered by the instances of `revision` so far (the local autoscaler's
    /// request rate is the difference between two of its samples).
    pub(crate) fn requests_of(&self, revision: &str) -> u64 {
        self.traffic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(revision)
            .map_or(0, |c| c.requests)
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
        {
            let mut traffic = self.traffic.lock().unwrap_or_else(|e| e.into_inner());
            let c = traffic.entry(revision.clone()).or_default();
            c.requests += 1;
            c.server_errors += u64::from(status >= 500);
            let seconds = elapsed.as_secs_f64();
            if let Some(i) = LATENCY_BOUNDS.iter().position(|b| seconds <= *b) {
                c.buckets[i] += 1;
            }
        }
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
    fn revisions_are_counted_with_their_errors_and_latency() {
        use edas_proxy::Observer;
        let m = ProxyMetrics::new("app");
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        m.set_revisions(HashMap::from([(addr, Arc::from("2"))]));
        m.answered(Some(addr), 200, Duration::from_millis(3));
        m.answered(Some(addr), 500, Duration::from_millis(300));
        m.answered(None, 503, Duration::from_millis(1));
        let t = m.traffic();
        let two = &t.revisions["2"];
        assert_eq!((two.requests, two.server_errors), (2, 1));
        // Cumulative: 3 ms is within 5 ms, 300 ms within 500 ms; 60 s is in no bucket.
        assert_eq!(two.latency_counts[2], 1);
        assert_eq!(two.latency_counts[9], 2);
        assert_eq!(two.latency_counts.last(), Some(&2));
        assert_eq!(t.revisions["none"].server_errors, 1);
    }

    #[test]
    fn status_classes() {
        assert_eq!(
            [101, 200, 302, 404, 503, 600].map(class),
            ["1xx", "2xx", "3xx", "4xx", "5xx", "other"]
        );
    }
}
