//! Conformance of the release-event outbox, subscriptions and deliveries.

use std::time::Duration;

use edas_release::{EpochMillis, Input};
use edas_store::{
    AfterFailure, Delivery, DeliveryState, EventScope, NewSubscription, Sensitive, Store,
    SubscriptionTarget,
};

use crate::harness::*;

fn subscription(id: &str, app: Option<&str>, kinds: &[&str]) -> NewSubscription {
    NewSubscription {
        id: id.into(),
        app_id: app.map(str::to_owned),
        kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
        sink: "webhook".into(),
        target: Sensitive::new(SubscriptionTarget {
            url: format!("http://127.0.0.1:9/{id}-hook-url"),
            secret: Some("hook-secret-value".into()),
        }),
    }
}

const LEASE: Duration = Duration::from_secs(30);

/// Whether `worker` claims a subscription at `at`.
async fn claims(store: &Store, worker: &str, at: jiff::Timestamp) -> bool {
    store
        .claim_subscription(worker, LEASE, at)
        .await
        .unwrap()
        .is_some()
}

/// Marks `seq` of subscription `all` failed by `worker`; whether it still held the lease.
async fn fail(
    store: &Store,
    seq: i64,
    worker: &str,
    error: &str,
    after: AfterFailure,
    at: jiff::Timestamp,
) -> bool {
    store
        .mark_failed("all", seq, worker, LEASE, error, after, at)
        .await
        .unwrap()
}

/// A subscription's deliveries (newest first, at most 10).
async fn deliveries(store: &Store, sub: &str, state: Option<DeliveryState>) -> Vec<Delivery> {
    store.list_deliveries(sub, state, 10).await.unwrap()
}

/// Every change-order write records its events in its own transaction, with one pending
/// delivery per matching subscription; a refused write records none. Deliveries of one
/// subscription are leased to one worker, go out in order, retry after a failure (blocking
/// the later ones), and end delivered or dead.
pub async fn release_events_are_recorded_with_their_transition(ts: &TestStore) {
    let store = &ts.store;
    let mut signal = store.events_signal();
    let wanted: [(&str, Option<&str>, &[&str]); 3] = [
        ("all", None, &[]),
        ("other", Some("other-app"), &[]),
        ("succeeded", None, &["change_order.succeeded"]),
    ];
    for (id, app, kinds) in wanted {
        store
            .create_subscription(subscription(id, app, kinds), audit("Subscribe", "-"), t(0))
            .await
            .unwrap();
    }
    create(store, "app", "co-1", t(1)).await;
    assert!(signal.has_changed().unwrap(), "a commit wakes the waiters");
    signal.mark_unchanged();

    // The order starts: batch 1 starts.
    let mut order = state("new");
    order.step(Input::Start, EpochMillis(0)).unwrap();
    // On PostgreSQL another process's store is woken by these commits too (LISTEN/NOTIFY).
    let other = (store.backend_name() == "postgres").then_some(ts.reopen().await);
    let mut theirs = other.as_ref().map(Store::events_signal);
    let start = |action: &'static str, at| {
        store.transition("co-1", 1, step(1, order.clone()), audit(action, "app"), at)
    };
    start("Start", t(2)).await.unwrap();
    // A stale write is refused and records nothing.
    start("Stale", t(3)).await.unwrap_err();
    if let (Some(other), Some(theirs)) = (other, theirs.as_mut()) {
        tokio::time::timeout(Duration::from_secs(5), theirs.changed())
            .await
            .expect("another process's store is woken by the commit")
            .unwrap();
        other.close().await;
    }
    let events = store
        .events_after(&EventScope::ChangeOrder("co-1".into()), 0, 100)
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["change_order.created", "batch.started"]);
    assert!(events[0].seq < events[1].seq);
    assert!(
        events
            .iter()
            .all(|e| e.app_id == "app" && e.change_order_id == "co-1")
    );
    assert_eq!(events[1].data.batch, Some(1));
    assert_eq!(events[0].at, t(1));
    let after_first = store
        .events_after(&EventScope::Application("app".into()), events[0].seq, 100)
        .await
        .unwrap();
    assert_eq!(after_first, events[1..]);
    assert!(
        store
            .events_after(&EventScope::Application("other-app".into()), 0, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // Only "all" wants these two events.
    assert!(deliveries(store, "other", None).await.is_empty());
    assert!(deliveries(store, "succeeded", None).await.is_empty());
    assert_eq!(
        store.outbox_counts().await.unwrap(),
        edas_store::OutboxCounts {
            pending: 2,
            dead: 0
        }
    );

    // One worker at a time.
    let sub = store.claim_subscription("w1", LEASE, t(4)).await.unwrap();
    assert_eq!(sub.as_ref().map(|s| s.id.as_str()), Some("all"));
    let sub = sub.unwrap();
    assert_eq!(sub.target.expose().url, "http://127.0.0.1:9/all-hook-url");
    assert!(!claims(store, "w2", t(4)).await);
    let head = store.next_delivery("all").await.unwrap().unwrap();
    assert_eq!(head.event.kind, "change_order.created");
    // A failure blocks the subscription (and gives the lease back) until the retry time.
    assert!(
        fail(
            store,
            head.event.seq,
            "w1",
            "HTTP 503",
            AfterFailure::RetryAt(t(10)),
            t(5)
        )
        .await
    );
    assert!(!claims(store, "w2", t(9)).await);
    assert_eq!(store.next_delivery_wakeup().await.unwrap(), Some(t(10)));
    assert!(claims(store, "w2", t(10)).await);
    // w1 lost the lease: its marks are refused.
    assert!(
        !store
            .mark_delivered("all", head.event.seq, "w1", LEASE, t(10))
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_delivered("all", head.event.seq, "w2", LEASE, t(10))
            .await
            .unwrap()
    );
    let next = store.next_delivery("all").await.unwrap().unwrap();
    assert_eq!(next.event.kind, "batch.started");
    assert!(
        fail(
            store,
            next.event.seq,
            "w2",
            "HTTP 410",
            AfterFailure::Dead,
            t(11)
        )
        .await
    );
    assert!(store.next_delivery("all").await.unwrap().is_none());
    store.release_subscription("all", "w2").await.unwrap();
    let dead = deliveries(store, "all", Some(DeliveryState::Dead)).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 410"));
    let all = deliveries(store, "all", None).await;
    assert_eq!(all[1].state, DeliveryState::Delivered);
    assert_eq!(all[1].attempts, 2);
    assert_eq!(
        store.outbox_counts().await.unwrap(),
        edas_store::OutboxCounts {
            pending: 0,
            dead: 1
        }
    );
    assert_eq!(store.next_delivery_wakeup().await.unwrap(), None);

    // Targets are sealed at rest.
    for blob in ts.raw_blobs("SELECT target FROM subscriptions").await {
        let text = String::from_utf8_lossy(&blob);
        assert!(
            !text.contains("hook-url") && !text.contains("hook-secret"),
            "{text}"
        );
    }
    let listed = store.list_subscriptions().await.unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[2].kinds, ["change_order.succeeded"]);
    assert!(!format!("{listed:?}").contains("hook-secret"));

    assert!(
        store
            .delete_subscription("all", audit("Unsubscribe", "-"), t(12))
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_subscription("all", audit("Unsubscribe", "-"), t(12))
            .await
            .unwrap()
    );
    assert!(deliveries(store, "all", None).await.is_empty());
}

/// Pruning a finished change order prunes its events with it, but not those a subscription is
/// still owed.
pub async fn events_are_pruned_with_their_change_order_once_delivered(ts: &TestStore) {
    let store = &ts.store;
    store
        .create_subscription(
            subscription("hook", None, &[]),
            audit("Subscribe", "-"),
            t(0),
        )
        .await
        .unwrap();
    create(store, "app", "co-1", t(1)).await;
    store
        .transition("co-1", 1, finish(2), audit("Done", "app"), t(2))
        .await
        .unwrap();
    let everything = edas_store::Retention {
        max_age: Some(Duration::from_secs(1)),
        max_count: None,
    };
    let keep = edas_store::Retention::default();
    let co_1 = EventScope::ChangeOrder("co-1".into());
    // Owed to the subscription: kept even though the change order is gone.
    let report = store.prune(everything, keep, t(100)).await.unwrap();
    assert_eq!(report.change_orders, 1);
    let owed = store.events_after(&co_1, 0, 10).await.unwrap();
    assert_eq!(owed.len(), 1, "{owed:?}");
    // Delivered: pruned at the next pass.
    assert!(claims(store, "w", t(101)).await);
    assert!(
        store
            .mark_delivered("hook", owed[0].seq, "w", LEASE, t(101))
            .await
            .unwrap()
    );
    store.prune(everything, keep, t(102)).await.unwrap();
    assert!(store.events_after(&co_1, 0, 10).await.unwrap().is_empty());
    assert!(deliveries(store, "hook", None).await.is_empty());
}
