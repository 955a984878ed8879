//! Durable state of edasd, on embedded SQLite (the default: nothing to install) or PostgreSQL
//! (a control plane of several nodes), behind one API: [`Store`].
//!
//! # What it stores
//! Applications (soft-deleted, so their history stays), their immutable revisions, change
//! orders (status code, engine state document, compare-and-swap `version`, lease), clusters,
//! ConfigMaps and Secrets kept for the local runtime, users, access keys, RAM-style policies and
//! their attachments, and an audit trail. Request nonces are not stored (the server keeps them
//! in memory).
//!
//! # Typed columns, typed documents, opaque documents
//! Columns that queries filter on or that callers decide on are typed: a change order's status
//! is a [`ChangeOrderStatus`] (edas-release's `Status`, stored as its EDAS code; an unknown
//! code reads as [`StoreError::Corrupt`]) and its creator is written with it. The documents
//! the engine decides on are typed too, stored as JSON: an application's and a revision's
//! [`RevisionDoc`] (edas-spec's; the Service ports of its spec are indexed from it) and a
//! change order's [`ChangeOrderState`] (edas-release's `ChangeOrder`), and a release event's
//! edas-release `ReleaseEvent` ([`StoredEvent::data`]). Each is encoded once on
//! write and decoded straight into its record on read; one that does not decode reads as
//! [`StoreError::Corrupt`] naming its column. Four documents cross this API as
//! `serde_json::Value` on purpose, because their shape is owned above the store (which may not
//! depend on their owners) or by the user: a cluster's configuration (edasd's), ConfigMap and
//! Secret data (the user's keys and values as given), policy documents (edas-api's RAM
//! grammar validates them) and the free-form audit detail.
//!
//! # Invariants
//! - **The only crate with SQL.** Everything else goes through [`Store`]. Each statement is
//!   written once with `$N` placeholders and runs on both backends; schemas are versioned
//!   migrations (`migrations/sqlite`, `migrations/postgres`, embedded with `sqlx::migrate!`)
//!   applied by [`Store::open`], which refuses a database migrated by a newer binary
//!   ([`StoreError::SchemaTooNew`]).
//! - **Atomic writes with their audit record.** Creating an application (+ revision 1 + change
//!   order), deploying (+ revision + change order), and every change-order transition commit in
//!   one transaction together with the audit record that explains them. Ending an order and
//!   starting its rollback (AbortAndRollbackChangeOrder) is one transaction too:
//!   [`Store::transition_and_deploy`].
//! - **Release events with their transition.** Every write that creates or moves a change
//!   order records the events of that change (edas-release's `events` of the stored state
//!   before and the state after) in the same transaction, with a pending delivery per
//!   matching notification subscription, so a crash neither loses nor invents one; the
//!   outbox is read in order ([`Store::events_after`]) and delivered under a per-subscription
//!   lease ([`Store::claim_subscription`]). Subscription targets (URL and secret) are sealed
//!   like other secrets.
//! - **One active change order per application**, enforced by a unique partial index
//!   (`WHERE finished_at IS NULL`) on both backends, so concurrent deploys cannot both win: the
//!   loser gets [`StoreError::Conflict`].
//! - **Compare-and-swap.** [`Store::transition`] succeeds only at the expected `version` and
//!   increments it; otherwise [`StoreError::Stale`]. A finished change order never changes
//!   again ([`StoreError::Finished`]).
//! - **Leases.** A lease is held while `now < expires_at`. [`Store::claim_next`] gives an
//!   unfinished change order whose lease is free or expired to one worker (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: one writer) and
//!   increments its version, which fences off the previous owner: its stale transitions are
//!   refused. The owner extends the lease with [`Store::renew_lease`] (or all of its leases at once
//!   with [`Store::renew_leases`]) while it works and gives
//!   it back with [`Store::release_lease`]; finishing releases it. [`Store::claim_claimable`]
//!   claims every claimable order in one statement; a graceful shutdown keeps its leases'
//!   owner and ends them at once ([`Store::hand_over_leases`], one statement), so the same
//!   worker id re-claims its own at start ([`Store::reclaim_own`]) and any other may claim
//!   them without waiting for the expiry.
//! - **Time is an input.** Every write takes `now` from the caller (the engine's clock, so tests
//!   control it); the database clock is never read. Leases compare the callers' clocks, so
//!   nodes sharing a PostgreSQL need clocks synchronized well within the lease duration. Times
//!   are kept as Unix milliseconds.
//! - **Secrets at rest.** Access-key secrets and Secret data are sealed with XChaCha20-Poly1305
//!   under an [`EncryptionKey`] (a 0600 file in the data directory, or given in configuration),
//!   bound to their row; they are never stored or printed in clear ([`Sensitive`] redacts
//!   `Debug`). The database keeps a check value, so opening it with another key fails
//!   ([`StoreError::WrongKey`]) instead of corrupting data.
//!
//! # SQLite
//! WAL, foreign keys, a busy timeout, one writer connection (plus readers). Group commit: the
//! writer commits with `synchronous=NORMAL` and a syncer thread `fdatasync`s the WAL once for
//! every commit waiting at the time; no write returns before the sync that covers it, so a
//! committed change order survives power loss as with `FULL` ([`Store::wal_syncs`] counts
//! the syncs). [`Store::backup_to`] makes an online,
//! consistent copy (`VACUUM INTO`); [`restore_sqlite_backup`] puts one back into a **stopped**
//! data directory. Retention is [`Store::prune`].

mod crypto;
mod error;
mod model;
mod store;

pub use crypto::{EncryptionKey, Sensitive};
pub use error::StoreError;
pub use model::*;
pub use store::base_info::BaseInfo;
pub use store::events::{
    AfterFailure, Delivery, DeliveryState, EventScope, NewSubscription, OutboxCounts, StoredEvent,
    Subscription, SubscriptionTarget,
};
pub use store::ingress_rules::IngressRule;
pub use store::regions::{EdasNamespace, NamespaceFields};
pub use store::release_policies::ReleasePolicyVersion;
pub use store::scaling_rules::{
    ScalingDirection, ScalingMetric, ScalingPolicy, ScalingRule, ScalingRuleDoc,
};
pub use store::tags::ResourceTag;
pub use store::{KEY_FILE_NAME, SQLITE_FILE_NAME, Store, restore_sqlite_backup};
