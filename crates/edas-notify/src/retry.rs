//! When a failed delivery is tried again: exponential back-off, then the dead letter.

use std::time::Duration;

/// The retry policy of deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failed attempt; it doubles with every further one.
    pub first: Duration,
    /// The longest wait between two attempts.
    pub max: Duration,
    /// Attempts before a delivery is given up (dead).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 1 s doubling to 5 min, 15 attempts: a receiver may be away about 40 minutes.
    fn default() -> RetryPolicy {
        RetryPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(300),
            max_attempts: 15,
        }
    }
}

impl RetryPolicy {
    /// After `attempts` failed attempts (1 for the first): the wait before the next one, or
    /// `None` when the delivery is dead.
    pub fn after(&self, attempts: u32) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let doublings = attempts.saturating_sub(1).min(31);
        Some(self.first.saturating_mul(1 << doublings).min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_then_gives_up() {
        let p = RetryPolicy {
            first: Duration::from_millis(100),
            max: Duration::from_millis(500),
            max_attempts: 5,
        };
        let waits: Vec<_> = (1..=5).map(|a| p.after(a)).collect();
        assert_eq!(
            waits,
            [
                Some(Duration::from_millis(100)),
                Some(Duration::from_millis(200)),
                Some(Duration::from_millis(400)),
                Some(Duration::from_millis(500)),
                None
            ]
        );
        assert_eq!(RetryPolicy::default().after(40), None);
        let long = RetryPolicy {
            max_attempts: u32::MAX,
            ..RetryPolicy::default()
        };
        assert_eq!(long.after(1000), Some(Duration::from_secs(300)));
    }
}
