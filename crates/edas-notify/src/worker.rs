//! The notifier: delivers the store's event outbox, one leased subscription at a time.

use std::time::Duration;

use edas_store::{AfterFailure, Store, StoreError, Subscription};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::retry::RetryPolicy;
use crate::sink::{self, SinkKind};

/// How the notifier works.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// This process's worker id (the engine's: stable across restarts, so a restarted edasd
    /// takes its own subscription leases back at once).
    pub worker_id: String,
    /// How long a claimed subscription stays leased without a delivery being marked.
    pub lease: Duration,
    /// The time limit of one request to a receiver.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Subscriptions delivered at the same time.
    pub concurrency: usize,
    /// A safety net: how often to look for work even when nothing woke the notifier. `None`
    /// (the default): the store's commit signal (every process's commits, on PostgreSQL through
    /// LISTEN/NOTIFY), the earliest retry time and lease expiry are all that wake it.
    pub rescan: Option<Duration>,
}

impl NotifyConfig {
    pub fn new(worker_id: impl Into<String>) -> NotifyConfig {
        NotifyConfig {
            worker_id: worker_id.into(),
            lease: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            concurrency: 16,
            rescan: None,
        }
    }
}

/// Delivers release events to the subscriptions' sinks. See the crate docs.
pub struct Notifier {
    store: Store,
    config: NotifyConfig,
    client: reqwest::Client,
}

impl Notifier {
    pub fn new(store: Store, config: NotifyConfig) -> Result<Notifier, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("edasd/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Notifier {
            store,
            config,
            client,
        })
    }

    /// Runs until `shutdown`: claims subscriptions with pending deliveries and delivers them,
    /// woken by the store's commits, by finished deliveries and by the earliest retry time or
    /// lease expiry.
    pub async fn run(self, shutdown: CancellationToken) {
        let worker = self.config.worker_id.clone();
        if let Err(error) = self.store.release_own_subscriptions(&worker).await {
            tracing::warn!(message = "Could not take back this process's subscription leases.", %error);
        }
        let mut signal = self.store.deliveries_signal();
        let mut tasks: JoinSet<()> = JoinSet::new();
        loop {
            signal.mark_unchanged();
            while tasks.len() < self.config.concurrency {
                match self
                    .store
                    .claim_subscription(&worker, self.config.lease, jiff::Timestamp::now())
                    .await
                {
                    Ok(Some(sub)) => {
                        let job = Delivery {
                            store: self.store.clone(),
                            client: self.client.clone(),
                            config: self.config.clone(),
                        };
                        tasks.spawn(job.deliver(sub));
                    }
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(message = "Claiming a subscription failed.", %error);
                        break;
                    }
                }
            }
            let wait = self.next_wait().await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = signal.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        // Deliveries in flight finish (bounded by the request timeout) and mark their results.
        while tasks.join_next().await.is_some() {}
    }

    /// Until the earliest retry time or lease expiry (capped by `rescan`, or an hour).
    async fn next_wait(&self) -> Duration {
        let cap = self.config.rescan.unwrap_or(Duration::from_secs(3600));
        match self.store.next_delivery_wakeup().await {
            Ok(Some(at)) => {
                let ms = at.as_millisecond() - jiff::Timestamp::now().as_millisecond();
                Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0) + 5).min(cap)
            }
            Ok(None) => cap,
            Err(error) => {
                tracing::warn!(message = "Reading the next delivery time failed.", %error);
                Duration::from_secs(1).min(cap)
            }
        }
    }
}

/// The delivery of one claimed subscription's pending events.
struct Delivery {
    store: Store,
    client: reqwest::Client,
    config: NotifyConfig,
}

impl Delivery {
    async fn deliver(self, sub: Subscription) {
        let worker = &self.config.worker_id;
        if let Err(error) = self.deliver_pending(&sub).await {
            tracing::warn!(message = "Delivering a subscription's events failed.", subscription = %sub.id, %error);
        }
        if let Err(error) = self.store.release_subscription(&sub.id, worker).await {
            tracing::warn!(message = "Releasing a subscription failed.", subscription = %sub.id, %error);
        }
    }

    /// Sends the pending deliveries oldest first until none is left, one fails (retried
    /// later) or the lease is lost.
    async fn deliver_pending(&self, sub: &Subscription) -> Result<(), StoreError> {
        let worker = &self.config.worker_id;
        let lease = self.config.lease;
        while let Some(delivery) = self.store.next_delivery(&sub.id).await? {
            let Some(kind) = SinkKind::parse(&sub.sink) else {
                // Not one this edasd knows (a newer one stored it): its events wait, and the
                // subscription is looked at again after the longest back-off, not at once.
                tracing::warn!(message = "A subscription has an unknown sink; its events wait.", subscription = %sub.id, sink = %sub.sink);
                let later = jiff::Timestamp::now()
                    .checked_add(self.config.retry.max)
                    .unwrap_or(jiff::Timestamp::MAX);
                let reason = format!("unknown sink {:?}", sub.sink);
                let event = delivery.event.seq;
                self.store
                    .mark_failed(
                        &sub.id,
                        event,
                        worker,
                        lease,
                        &reason,
                        AfterFailure::RetryAt(later),
                        jiff::Timestamp::now(),
                    )
                    .await?;
                return Ok(());
            };
            let event = &delivery.event;
            let out = sink::render(kind, sub.target.expose(), event, jiff::Timestamp::now());
            let started = std::time::Instant::now();
            let result = self.send(kind, out).await;
            metrics::histogram!("edasd_notify_request_duration_seconds", "sink" => kind.as_str())
                .record(started.elapsed().as_secs_f64());
            let now = jiff::Timestamp::now();
            match result {
                Ok(()) => {
                    metrics::counter!("edasd_notify_deliveries_total", "sink" => kind.as_str(), "outcome" => "delivered").increment(1);
                    tracing::debug!(message = "Event delivered.", subscription = %sub.id, event = %event.id, kind = %event.kind);
                    if !self
                        .store
                        .mark_delivered(&sub.id, event.seq, worker, lease, now)
                        .await?
                    {
                        return Ok(());
                    }
                }
                Err(error) => {
                    let attempts = u32::try_from(delivery.attempts + 1).unwrap_or(u32::MAX);
                    let after = match self.config.retry.after(attempts) {
                        Some(wait) => AfterFailure::RetryAt(
                            now.checked_add(wait).unwrap_or(jiff::Timestamp::MAX),
                        ),
                        None => AfterFailure::Dead,
                    };
                    let outcome = if after == AfterFailure::Dead {
                        "dead"
                    } else {
                        "retried"
                    };
                    metrics::counter!("edasd_notify_deliveries_total", "sink" => kind.as_str(), "outcome" => outcome).increment(1);
                    tracing::warn!(message = "Delivering an event failed.", subscription = %sub.id, event = %event.id, kind = %event.kind, attempts, %error, outcome);
                    let held = self
                        .store
                        .mark_failed(&sub.id, event.seq, worker, lease, &error, after, now)
                        .await?;
                    if !held || after != AfterFailure::Dead {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    async fn send(&self, kind: SinkKind, out: sink::Outgoing) -> Result<(), String> {
        let mut request = self.client.post(&out.url).body(out.body);
        for (name, value) in out.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| {
            // reqwest's errors carry the URL (a secret): say what kind of failure it was only.
            if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "connection failed".to_owned()
            } else {
                "request failed".to_owned()
            }
        })?;
        let status = response.status().as_u16();
        let body = read_limited(response, ANSWER_LIMIT).await;
        sink::accepted(kind, status, &body)
    }
}

/// The most of a receiver's answer read: enough for DingTalk's `{"errcode":…,"errmsg":…}`. A
/// receiver that answers a huge (or endless) body costs no more memory nor time than this.
const ANSWER_LIMIT: usize = 64 * 1024;

/// The first `limit` bytes of an answer's body (what arrived of it, if it broke).
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A hostile receiver answers 200 with a body that never ends: the delivery reads a bounded
    /// prefix and is done at once, not when the request times out with the body in memory.
    #[tokio::test]
    async fn an_endless_answer_is_read_up_to_the_limit_only() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 65536];
            let _ = conn.read(&mut buf).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            if conn.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = format!("{:x}\r\n{}\r\n", 65536, " ".repeat(65536));
            while conn.write_all(chunk.as_bytes()).await.is_ok() {}
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let response = client
            .post(format!("http://{addr}/robot"))
            .send()
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let body = tokio::time::timeout(
            Duration::from_secs(10),
            read_limited(response, ANSWER_LIMIT),
        )
        .await
        .expect("the endless answer was read until the timeout");
        assert_eq!(body.len(), ANSWER_LIMIT);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(
            sink::accepted(SinkKind::DingTalk, 200, &body),
            Ok(()),
            "a cut answer that is not JSON is not a DingTalk refusal"
        );
    }
}
