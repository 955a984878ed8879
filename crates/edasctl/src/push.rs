//! The push stream edasd offers (`GET /edasd/v1/events`, server-sent events): a watch waits
//! for the change order's next event instead of sleeping `--interval`, then reads
//! GetChangeOrderInfo once, so the live view moves within milliseconds of a transition.
//! A server without the stream (a real EDAS, an older edasd) or a stream that ends makes the
//! watch poll again.

use std::io::BufRead as _;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use crate::client::Client;

/// Read GetChangeOrderInfo at least this often even while the stream is quiet.
const QUIET: Duration = Duration::from_secs(15);

/// What wakes a watch: the change order's events, or the polling interval.
pub struct Push {
    events: Option<mpsc::Receiver<()>>,
}

impl Push {
    /// Subscribes to change order `id`'s events (replayed from its start, which only wakes the
    /// first read early). Falls back to polling when the server offers no stream.
    pub fn subscribe(client: &Client, change_order_id: &str) -> Push {
        let query = [("ChangeOrderId".to_owned(), change_order_id.to_owned())];
        let Ok(response) = client.stream("events", &query) else {
            return Push { events: None };
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(response).lines() {
                let Ok(line) = line else { break };
                if ends_event(&line) && tx.send(()).is_err() {
                    break;
                }
            }
        });
        Push { events: Some(rx) }
    }

    /// Waits for the next event (and takes every one already arrived with it), at most
    /// [`QUIET`]; without a stream, sleeps `interval`.
    pub fn wait(&mut self, interval: Duration) {
        self.wait_at_most(interval, QUIET);
    }

    /// [`Push::wait`], but never longer than `most` (what is left of a watch's `--timeout`).
    pub fn wait_at_most(&mut self, interval: Duration, most: Duration) {
        let interval = interval.min(most);
        let Some(events) = &self.events else {
            std::thread::sleep(interval);
            return;
        };
        match events.recv_timeout(QUIET.min(most)) {
            Ok(()) => while events.try_recv().is_ok() {},
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                self.events = None;
                std::thread::sleep(interval);
            }
        }
    }
}

/// Whether a line of the stream completes an event: its `id:` line (every event has one;
/// keep-alive comments start with `:`).
fn ends_event(line: &str) -> bool {
    line.starts_with("id:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_wake_the_watch() {
        assert!(ends_event("id: 42"));
        assert!(!ends_event(": keep-alive"));
        assert!(!ends_event("event: batch.started"));
        assert!(!ends_event("data: {\"id\": 1}"));
        assert!(!ends_event(""));
    }

    #[test]
    fn without_a_stream_the_watch_polls() {
        let mut push = Push { events: None };
        assert!(push.events.is_none());
        let started = std::time::Instant::now();
        push.wait(Duration::from_millis(20));
        assert!(started.elapsed() >= Duration::from_millis(20));
        let (tx, rx) = mpsc::channel();
        let mut push = Push { events: Some(rx) };
        tx.send(()).unwrap();
        tx.send(()).unwrap();
        push.wait(Duration::from_secs(60));
        assert!(push.events.is_some());
        drop(tx);
        // A quiet stream wakes a watch whose timeout runs out first.
        let (_quiet, rx) = mpsc::channel::<()>();
        let mut quiet = Push { events: Some(rx) };
        let started = std::time::Instant::now();
        quiet.wait_at_most(Duration::from_secs(60), Duration::from_millis(50));
        assert!(started.elapsed() < Duration::from_secs(5));
        push.wait(Duration::from_millis(1));
        assert!(
            push.events.is_none(),
            "a stream that ended falls back to polling"
        );
    }
}
