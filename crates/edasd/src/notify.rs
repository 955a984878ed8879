//! `[notify]`: release notifications (see the edas-notify crate): the delivery retry policy
//! and timeouts, and the notifier task edasd runs beside the engine.

use std::time::Duration;

use anyhow::bail;
use edas_notify::NotifyConfig;
use edas_notify::retry::RetryPolicy;
use serde::Deserialize;

/// `[notify]`. Every key is optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotifySection {
    /// The wait after a delivery's first failed attempt, seconds (default 1); it doubles.
    pub first_retry_seconds: Option<f64>,
    /// The longest wait between two attempts, seconds (default 300).
    pub max_retry_seconds: Option<f64>,
    /// Attempts before a delivery is dead (default 15).
    pub max_attempts: Option<u32>,
    /// The time limit of one request to a receiver, seconds (default 10).
    pub timeout_seconds: Option<f64>,
    /// A safety net: how often to look for deliveries even when nothing woke the notifier
    /// (default: never; commits of every process sharing the database wake it, on PostgreSQL
    /// through LISTEN/NOTIFY, and retry times and lease expiries are timers).
    pub rescan_seconds: Option<f64>,
}

fn seconds(value: Option<f64>, key: &str, min: f64, max: f64) -> anyhow::Result<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_finite() && (min..=max).contains(&v) => {
            Ok(Some(Duration::from_secs_f64(v)))
        }
        Some(v) => bail!("[notify] {key} = {v}: must be between {min} and {max}"),
    }
}

impl NotifySection {
    /// The notifier's configuration for worker `worker_id` (validated).
    pub fn config(&self, worker_id: &str) -> anyhow::Result<NotifyConfig> {
        let mut config = NotifyConfig::new(worker_id);
        let defaults = RetryPolicy::default();
        let first = seconds(
            self.first_retry_seconds,
            "first_retry_seconds",
            0.01,
            3600.0,
        )?
        .unwrap_or(defaults.first);
        let max = seconds(self.max_retry_seconds, "max_retry_seconds", 0.01, 86_400.0)?
            .unwrap_or(defaults.max);
        if max < first {
            bail!("[notify] max_retry_seconds must not be less than first_retry_seconds");
        }
        let max_attempts = match self.max_attempts {
            None => defaults.max_attempts,
            Some(n @ 1..=100) => n,
            Some(n) => bail!("[notify] max_attempts = {n}: must be between 1 and 100"),
        };
        config.retry = RetryPolicy {
            first,
            max,
            max_attempts,
        };
        if let Some(t) = seconds(self.timeout_seconds, "timeout_seconds", 0.1, 300.0)? {
            config.timeout = t;
            config.lease = config.lease.max(t * 3);
        }
        config.rescan = seconds(self.rescan_seconds, "rescan_seconds", 0.1, 3600.0)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        let c = NotifySection::default().config("w").unwrap();
        assert_eq!(c.retry, RetryPolicy::default());
        assert_eq!(c.rescan, None);
        let rescan = NotifySection {
            rescan_seconds: Some(5.0),
            ..NotifySection::default()
        };
        assert_eq!(
            rescan.config("w").unwrap().rescan,
            Some(Duration::from_secs(5))
        );
        let bad = NotifySection {
            max_attempts: Some(0),
            ..NotifySection::default()
        };
        assert!(bad.config("w").is_err());
        let inverted = NotifySection {
            first_retry_seconds: Some(10.0),
            max_retry_seconds: Some(1.0),
            ..NotifySection::default()
        };
        assert!(inverted.config("w").is_err());
    }
}
