//! Release settings that pace every batch: timeout, minimum ready time, lossless start.

use serde::{Deserialize, Serialize};

/// How long a batch may take and when its instances count as done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSettings {
    /// `BatchTimeout` (seconds; when absent the operation's `Timeout`, default 600): a batch not done
    /// this long after it started fails the change order. Waits between batches do not count.
    pub batch_timeout_seconds: u32,
    /// The top-level `BatchWaitTime` (seconds, like Kubernetes `minReadySeconds`): how long the new
    /// instances of a batch must stay ready before the batch is done.
    pub min_ready_seconds: u32,
    /// Lossless start (`EnableLosslessRule` and its switches), if on.
    pub lossless: Option<LosslessStart>,
}

impl Default for ReleaseSettings {
    fn default() -> Self {
        ReleaseSettings {
            batch_timeout_seconds: DEFAULT_BATCH_TIMEOUT_SECONDS,
            min_ready_seconds: 0,
            lossless: None,
        }
    }
}

/// EDAS's default operation timeout, used when neither `BatchTimeout` nor `Timeout` is given.
pub const DEFAULT_BATCH_TIMEOUT_SECONDS: u32 = 600;

/// Lossless start: a new instance is registered `delay_seconds` after it is ready, then warms up
/// over `warmup_seconds`. The release waits for that only when the matching switch is on:
/// `aligned` (LosslessRuleAligned, "registration complete before ready") waits for the delay;
/// `related` (LosslessRuleRelated, "warm-up complete before ready") waits for delay + warm-up,
/// because warm-up begins only once the instance is registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LosslessStart {
    /// `LosslessRuleDelayTime`, seconds.
    pub delay_seconds: u32,
    /// `LosslessRuleWarmupTime`, seconds.
    pub warmup_seconds: u32,
    /// `LosslessRuleAligned`.
    pub aligned: bool,
    /// `LosslessRuleRelated`.
    pub related: bool,
}

impl LosslessStart {
    /// Seconds a ready instance still waits before it counts as done.
    pub fn gate_seconds(&self) -> u64 {
        if self.related {
            u64::from(self.delay_seconds) + u64::from(self.warmup_seconds)
        } else if self.aligned {
            u64::from(self.delay_seconds)
        } else {
            0
        }
    }
}

/// Settings that would make every batch fail or wait forever.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A zero timeout fails every batch at once.
    #[error("BatchTimeout must be at least 1 second, got 0")]
    ZeroTimeout,
    /// The timeout cannot cover the time instances must stay ready.
    #[error(
        "BatchTimeout ({timeout} s) must be longer than the time a batch must stay ready \
         (BatchWaitTime plus lossless delay/warm-up: {window} s), or no batch could ever finish"
    )]
    TimeoutShorterThanReadyWindow {
        /// The batch timeout, seconds.
        timeout: u32,
        /// min_ready_seconds + lossless gate, seconds.
        window: u64,
    },
}

impl SettingsError {
    /// The EDAS field this error is about.
    pub fn field(&self) -> &'static str {
        "BatchTimeout"
    }
}

impl ReleaseSettings {
    /// Seconds the new instances of a batch must stay ready before the batch is done.
    pub fn ready_window_seconds(&self) -> u64 {
        u64::from(self.min_ready_seconds)
            + self
                .lossless
                .as_ref()
                .map_or(0, LosslessStart::gate_seconds)
    }

    /// Checks that a batch can finish within its timeout.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.batch_timeout_seconds == 0 {
            return Err(SettingsError::ZeroTimeout);
        }
        let window = self.ready_window_seconds();
        if u64::from(self.batch_timeout_seconds) <= window {
            return Err(SettingsError::TimeoutShorterThanReadyWindow {
                timeout: self.batch_timeout_seconds,
                window,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossless_gate_follows_the_switches() {
        let l = |aligned, related| LosslessStart {
            delay_seconds: 10,
            warmup_seconds: 120,
            aligned,
            related,
        };
        assert_eq!(l(false, false).gate_seconds(), 0);
        assert_eq!(l(true, false).gate_seconds(), 10);
        assert_eq!(l(false, true).gate_seconds(), 130);
        assert_eq!(l(true, true).gate_seconds(), 130);
    }

    #[test]
    fn validation_refuses_timeouts_that_cannot_be_met() {
        assert_eq!(ReleaseSettings::default().validate(), Ok(()));
        let zero = ReleaseSettings {
            batch_timeout_seconds: 0,
            ..Default::default()
        };
        assert_eq!(zero.validate(), Err(SettingsError::ZeroTimeout));
        let short = ReleaseSettings {
            batch_timeout_seconds: 60,
            min_ready_seconds: 30,
            lossless: Some(LosslessStart {
                delay_seconds: 10,
                warmup_seconds: 20,
                aligned: false,
                related: true,
            }),
        };
        let err = short.validate().unwrap_err();
        assert_eq!(
            err,
            SettingsError::TimeoutShorterThanReadyWindow {
                timeout: 60,
                window: 60
            }
        );
        assert_eq!(err.field(), "BatchTimeout");
    }
}
