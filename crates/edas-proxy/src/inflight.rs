//! Per-backend in-flight counts, so a drained backend can be reported idle the moment its last
//! request (or TCP connection) ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// Counts requests (HTTP: until the response body is done) or connections (TCP) per backend.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    counts: Mutex<HashMap<SocketAddr, usize>>,
    /// Woken whenever some backend's count drops to zero.
    idle: Notify,
}

/// One request in flight to `address`; dropping it ends the request.
#[derive(Debug)]
pub(crate) struct Guard {
    tracker: Arc<InFlight>,
    address: SocketAddr,
}

impl InFlight {
    pub(crate) fn enter(self: &Arc<Self>, address: SocketAddr) -> Guard {
        *self.lock().entry(address).or_default() += 1;
        Guard {
            tracker: Arc::clone(self),
            address,
        }
    }

    pub(crate) fn count(&self, address: SocketAddr) -> usize {
        self.lock().get(&address).copied().unwrap_or(0)
    }

    /// Resolves once no request to `address` is in flight.
    pub(crate) async fn idle(&self, address: SocketAddr) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Register before checking, so a drop to zero in between is not missed.
            notified.as_mut().enable();
            if self.count(address) == 0 {
                return;
            }
            notified.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, usize>> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let now_idle = {
            let mut counts = self.tracker.lock();
            match counts.get_mut(&self.address) {
                Some(1) | None => {
                    counts.remove(&self.address);
                    true
                }
                Some(n) => {
                    *n -= 1;
                    false
                }
            }
        };
        if now_idle {
            self.tracker.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn idle_resolves_when_the_last_guard_drops() {
        let tracker = Arc::new(InFlight::default());
        let address = SocketAddr::from(([127, 0, 0, 1], 1));
        tracker.idle(address).await; // nothing in flight: at once
        let a = tracker.enter(address);
        let b = tracker.enter(address);
        let waiter = tokio::spawn({
            let tracker = Arc::clone(&tracker);
            async move { tracker.idle(address).await }
        });
        drop(a);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(b);
        tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tracker.count(address), 0);
    }
}
