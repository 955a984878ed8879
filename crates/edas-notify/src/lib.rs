//! Release notifications: what a subscription's events look like on the wire ([`sink`]: a
//! generic CloudEvents 1.0 webhook signed with HMAC-SHA256, a Slack-compatible incoming
//! webhook, a DingTalk robot with its signing), when a failed delivery is tried again
//! ([`retry`]), and the [`Notifier`] that delivers the store's event outbox.
//!
//! # Delivery
//! The store records every release event in the transaction of its change-order transition,
//! with a pending delivery per matching subscription. The notifier is woken by the store's
//! commit signal (no polling tick; on PostgreSQL the commits of other edasd processes too,
//! through LISTEN/NOTIFY), by the earliest retry time and by the expiry of a lease a dead
//! process left; it leases one subscription at a time
//! ([`edas_store::Store::claim_subscription`]; on PostgreSQL `FOR UPDATE SKIP LOCKED`, so of
//! several edasd processes exactly one delivers a subscription's events), sends its pending
//! deliveries oldest first and marks each one delivered only while it still holds the lease.
//! A failed attempt blocks the subscription until its retry time (exponential back-off), so a
//! later event never overtakes an earlier one; after the last attempt the delivery is dead
//! (visible through the admin API) and the next one goes. Delivery is at-least-once: a crash
//! between a receiver's answer and the mark sends that event again, with the same id
//! (`ce-id`/`Idempotency-Key`), so receivers deduplicate on it.
//!
//! # Invariants
//! [`sink`] and [`retry`] are pure (time is an input). A subscription's URL and secret are
//! never logged: logs name the subscription and the event.

pub mod retry;
pub mod sink;
mod worker;

pub use sink::{InvalidSubscription, SinkKind, validate};
pub use worker::{Notifier, NotifyConfig};
