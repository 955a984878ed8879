//! The built-in traffic provider's arithmetic: from two cumulative snapshots of a revision's
//! proxy counters (requests, 5xx answers, a latency histogram) to the interval's success or
//! error rate, request rate and latency percentiles. Pure: the runtime takes the snapshots
//! (on `local` the proxy counts every request of every revision), the judge keeps the last
//! one with the analysis so a restart measures on from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::TrafficMetric;

/// Every revision's cumulative counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSnapshot {
    /// Epoch milliseconds when it was taken.
    pub at: i64,
    /// By revision (a change order's version name, as the runtime labels it).
    pub revisions: BTreeMap<String, RevisionTraffic>,
}

/// One revision's counters since its proxy started counting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionTraffic {
    /// Answers, of every status.
    pub requests: u64,
    /// Answers with a 5xx status.
    pub server_errors: u64,
    pub latency: Histogram,
}

/// A cumulative latency histogram in Prometheus's shape: `counts[i]` answers took at most
/// `bounds[i]` seconds (bounds ascending, finite); `count` is every answer (the `+Inf`
/// bucket).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    pub bounds: Vec<f64>,
    pub counts: Vec<u64>,
    pub count: u64,
}

/// Why an interval has no value (the judge counts it as inconclusive).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrafficError {
    #[error("revision {0} answered no requests in the interval")]
    NoRequests(String),
    #[error("revision {0}'s counters went back (its proxy restarted); measuring from now on")]
    Reset(String),
    #[error("revision {0}'s latency buckets changed between measurements")]
    Buckets(String),
    #[error("the interval is empty")]
    NoTime,
}

/// One interval of one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub requests: u64,
    pub server_errors: u64,
    pub seconds: f64,
    /// Non-cumulative counts per bucket of `bounds`, the last one the `+Inf` bucket.
    buckets: Vec<u64>,
    bounds: Vec<f64>,
}

/// A revision's interval between two snapshots (a revision missing from `before` started
/// from zero; one missing from both answered nothing).
pub fn window(
    before: &TrafficSnapshot,
    after: &TrafficSnapshot,
    revision: &str,
) -> Result<Window, TrafficError> {
    let seconds = (after.at - before.at) as f64 / 1000.0;
    if seconds <= 0.0 {
        return Err(TrafficError::NoTime);
    }
    let zero = RevisionTraffic::default();
    let a = before.revisions.get(revision).unwrap_or(&zero);
    let b = after.revisions.get(revision).unwrap_or(&zero);
    let reset = || TrafficError::Reset(revision.to_owned());
    let requests = b.requests.checked_sub(a.requests).ok_or_else(reset)?;
    let server_errors = b
        .server_errors
        .checked_sub(a.server_errors)
        .ok_or_else(reset)?;
    let (ha, hb) = (&a.latency, &b.latency);
    let bounds = if ha.count == 0 && ha.bounds.is_empty() {
        hb.bounds.clone()
    } else if ha.bounds == hb.bounds || hb.count == 0 && hb.bounds.is_empty() {
        ha.bounds.clone()
    } else {
        return Err(TrafficError::Buckets(revision.to_owned()));
    };
    let cumulative = |h: &Histogram, i: usize| -> u64 {
        if i < bounds.len() {
            h.counts.get(i).copied().unwrap_or(0)
        } else {
            h.count
        }
    };
    let mut buckets = Vec::with_capacity(bounds.len() + 1);
    let mut prev = 0u64;
    for i in 0..=bounds.len() {
        let d = cumulative(hb, i)
            .checked_sub(cumulative(ha, i))
            .ok_or_else(reset)?;
        // A malformed histogram (counts not ascending) gives no negative bucket.
        buckets.push(d.saturating_sub(prev));
        prev = prev.max(d);
    }
    Ok(Window {
        requests,
        server_errors,
        seconds,
        buckets,
        bounds,
    })
}

impl Window {
    /// The metric's value: rates as 0–1, latencies in milliseconds, request rate per second.
    pub fn value(&self, metric: TrafficMetric, revision: &str) -> Result<f64, TrafficError> {
        let none = || TrafficError::NoRequests(revision.to_owned());
        match metric {
            TrafficMetric::RequestRate => Ok(self.requests as f64 / self.seconds),
            _ if self.requests == 0 => Err(none()),
            TrafficMetric::ErrorRate => Ok(self.server_errors as f64 / self.requests as f64),
            TrafficMetric::SuccessRate => {
                Ok(1.0 - self.server_errors as f64 / self.requests as f64)
            }
            TrafficMetric::LatencyP50 => self.quantile(0.5).ok_or_else(none),
            TrafficMetric::LatencyP90 => self.quantile(0.9).ok_or_else(none),
            TrafficMetric::LatencyP99 => self.quantile(0.99).ok_or_else(none),
        }
    }

    /// Prometheus's `histogram_quantile`: linear within the bucket the rank falls in (from 0
    /// for the first); in the `+Inf` bucket, the highest finite bound. Milliseconds.
    fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let Some(&upper) = self.bounds.get(i) else {
                    return Some(self.bounds.last().copied().unwrap_or(0.0) * 1000.0);
                };
                let lower = if i == 0 { 0.0 } else { self.bounds[i - 1] };
                let within = (rank - below as f64) / n as f64;
                return Some((lower + (upper - lower) * within) * 1000.0);
            }
            below += n;
        }
        Some(self.bounds.last().copied().unwrap_or(0.0) * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TrafficMetric::*;

    const BOUNDS: [f64; 4] = [0.01, 0.05, 0.1, 0.5];

    fn rev(requests: u64, errors: u64, counts: [u64; 4]) -> RevisionTraffic {
        RevisionTraffic {
            requests,
            server_errors: errors,
            latency: Histogram {
                bounds: BOUNDS.to_vec(),
                counts: counts.to_vec(),
                count: requests,
            },
        }
    }

    fn snap(at: i64, revs: &[(&str, RevisionTraffic)]) -> TrafficSnapshot {
        TrafficSnapshot {
            at,
            revisions: revs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    #[test]
    fn rates_over_the_interval_only() {
        // 100 earlier requests (10 failed) do not count; in the 10 s: 200 requests, 40 failed.
        let a = snap(1_000, &[("v2", rev(100, 10, [50, 90, 100, 100]))]);
        let b = snap(11_000, &[("v2", rev(300, 50, [150, 290, 300, 300]))]);
        let w = window(&a, &b, "v2").unwrap();
        assert_eq!((w.requests, w.server_errors), (200, 40));
        assert_eq!(w.value(ErrorRate, "v2"), Ok(0.2));
        assert_eq!(w.value(SuccessRate, "v2"), Ok(0.8));
        assert_eq!(w.value(RequestRate, "v2"), Ok(20.0));
    }

    #[test]
    fn latency_percentiles_interpolate_like_prometheus() {
        // In the interval: 100 answers ≤10 ms, 100 in (10, 50] ms, none slower.
        let a = snap(0, &[]);
        let b = snap(1000, &[("v2", rev(200, 0, [100, 200, 200, 200]))]);
        let w = window(&a, &b, "v2").unwrap();
        let near = |x: f64, y: f64| (x - y).abs() < 1e-9;
        assert!(near(w.value(LatencyP50, "v2").unwrap(), 10.0));
        // rank 180 of 200: 80 of 100 into (10, 50] ms.
        assert!(near(w.value(LatencyP90, "v2").unwrap(), 42.0));
        assert!(near(w.value(LatencyP99, "v2").unwrap(), 49.2));
        // Slower than every bound: the highest finite bound, as Prometheus answers.
        let c = snap(2000, &[("v2", rev(210, 0, [100, 200, 200, 200]))]);
        let slow = window(&b, &c, "v2").unwrap();
        assert!(near(slow.value(LatencyP50, "v2").unwrap(), 500.0));
    }

    #[test]
    fn no_requests_and_resets_are_errors_not_values() {
        let a = snap(0, &[("v2", rev(10, 0, [10, 10, 10, 10]))]);
        let b = snap(5000, &[("v2", rev(10, 0, [10, 10, 10, 10]))]);
        let w = window(&a, &b, "v2").unwrap();
        assert_eq!(w.value(RequestRate, "v2"), Ok(0.0));
        assert_eq!(
            w.value(SuccessRate, "v2"),
            Err(TrafficError::NoRequests("v2".into()))
        );
        assert_eq!(
            w.value(LatencyP99, "v2"),
            Err(TrafficError::NoRequests("v2".into()))
        );
        // A revision nobody saw answered nothing.
        assert_eq!(
            window(&a, &b, "v9").unwrap().value(ErrorRate, "v9"),
            Err(TrafficError::NoRequests("v9".into()))
        );
        let restarted = snap(9000, &[("v2", rev(3, 0, [3, 3, 3, 3]))]);
        assert_eq!(
            window(&b, &restarted, "v2"),
            Err(TrafficError::Reset("v2".into()))
        );
        assert_eq!(window(&b, &a, "v2"), Err(TrafficError::NoTime));
        let mut other = rev(20, 0, [20, 20, 20, 20]);
        other.latency.bounds = vec![1.0, 2.0, 3.0, 4.0];
        assert_eq!(
            window(&b, &snap(9000, &[("v2", other)]), "v2"),
            Err(TrafficError::Buckets("v2".into()))
        );
    }

    #[test]
    fn a_revision_first_seen_counts_from_zero() {
        let a = snap(0, &[("v1", rev(5, 0, [5, 5, 5, 5]))]);
        let b = snap(
            2000,
            &[
                ("v1", rev(5, 0, [5, 5, 5, 5])),
                ("v2", rev(4, 1, [4, 4, 4, 4])),
            ],
        );
        let w = window(&a, &b, "v2").unwrap();
        assert_eq!(w.value(ErrorRate, "v2"), Ok(0.25));
        assert_eq!(w.value(RequestRate, "v2"), Ok(2.0));
    }
}
