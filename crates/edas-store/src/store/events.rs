//! Release events (the outbox), notification subscriptions and their deliveries.
//!
//! Every write that creates or moves a change order records the events of that change
//! ([`edas_release::events`] of the state before and the state after) in its own transaction,
//! with one `pending` delivery per subscription that wants them. Deliveries of one
//! subscription go out in event order, by one process at a time: [`Store::claim_subscription`]
//! leases the subscription (PostgreSQL: `FOR UPDATE SKIP LOCKED`), every mark of a delivery is
//! refused unless the lease is still held, and a failed head delivery blocks the subscription
//! until its retry time (`blocked_until`), so a later event never overtakes an earlier one.

use std::borrow::Cow;

use sqlx::{PgConnection, SqliteConnection};

use super::*;

/// An event as stored: the outbox's sequence number orders the events of one database.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    /// Unique id (the idempotency key receivers deduplicate on).
    pub id: String,
    pub app_id: String,
    pub change_order_id: String,
    /// [`edas_release::EventKind::as_str`].
    pub kind: String,
    pub at: Timestamp,
    /// What happened (stored as JSON, decoded straight into it on read).
    pub data: edas_release::ReleaseEvent,
}

/// Which events [`Store::events_after`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventScope {
    All,
    Application(String),
    ChangeOrder(String),
}

/// Where a subscription's events go. Sealed at rest; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubscriptionTarget {
    pub url: String,
    /// The HMAC key of a generic webhook, or a DingTalk robot's signing secret.
    pub secret: Option<String>,
}

impl std::fmt::Debug for SubscriptionTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubscriptionTarget(<redacted>)")
    }
}

/// A subscription to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSubscription {
    pub id: String,
    /// `None`: every application.
    pub app_id: Option<String>,
    /// Event kinds it wants; empty: all.
    pub kinds: Vec<String>,
    /// `webhook`, `slack` or `dingtalk` (edas-notify knows them; the store does not check).
    pub sink: String,
    pub target: Sensitive<SubscriptionTarget>,
}

/// A stored subscription: what was stored (its fields read through `Deref`), by whom, when.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub spec: NewSubscription,
    pub creator: String,
    pub created_at: Timestamp,
}

impl std::ops::Deref for Subscription {
    type Target = NewSubscription;
    fn deref(&self) -> &NewSubscription {
        &self.spec
    }
}

/// The state of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Given up on after the last attempt (the dead letter).
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        match s {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "dead" => Some(DeliveryState::Dead),
            _ => None,
        }
    }
}

/// One event owed to (or given to) one subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub subscription_id: String,
    pub event: StoredEvent,
    pub state: DeliveryState,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub updated_at: Timestamp,
}

/// What a failed attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time; the subscription's later events wait behind it.
    RetryAt(Timestamp),
    /// Give up: the delivery is dead and the next event is next.
    Dead,
}

/// The outbox's backlog, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxCounts {
    pub pending: u64,
    pub dead: u64,
}

/// A change-order state as [`edas_release::ChangeOrder`], whatever type carries it (the JSON
/// document or the typed order). A document that is not a change order yields no events.
pub(crate) trait AsOrder {
    fn as_order(&self) -> Option<Cow<'_, edas_release::ChangeOrder>>;
}

impl AsOrder for Value {
    fn as_order(&self) -> Option<Cow<'_, edas_release::ChangeOrder>> {
        serde_json::from_value(self.clone()).ok().map(Cow::Owned)
    }
}

impl AsOrder for edas_release::ChangeOrder {
    fn as_order(&self) -> Option<Cow<'_, edas_release::ChangeOrder>> {
        Some(Cow::Borrowed(self))
    }
}

/// Writes the events of a change order's transition inside a write transaction (implemented
/// for the connection of each backend; `&mut **tx` of a transaction).
pub(crate) trait RecordEvents {
    /// The stored state of change order `id` at `version`, before it is overwritten.
    async fn state_before(
        &mut self,
        id: &str,
        version: i64,
    ) -> Result<Option<edas_release::ChangeOrder>, StoreError>;

    /// Records the events from `before` (`None`: just created) to `after` of change order
    /// `change_order_id` of application `app_id`, with a pending delivery per matching
    /// subscription.
    async fn record_events(
        &mut self,
        app_id: &str,
        change_order_id: &str,
        before: Option<&edas_release::ChangeOrder>,
        after: Option<&edas_release::ChangeOrder>,
        at: i64,
    ) -> Result<(), StoreError>;
}

/// The PostgreSQL channel a transaction that recorded events notifies (at its commit), so
/// every edasd process sharing the database wakes, not only the one that wrote.
pub(crate) const NOTIFY_CHANNEL: &str = "edasd_events";

macro_rules! record_events_impl {
    ($conn:ty, $announce:expr, $write:ident) => {
        impl RecordEvents for $conn {
            async fn state_before(
                &mut self,
                id: &str,
                version: i64,
            ) -> Result<Option<edas_release::ChangeOrder>, StoreError> {
                let state: Option<Json<Value>> = sqlx::query_scalar(
                    "SELECT state FROM change_orders WHERE id = $1 AND version = $2",
                )
                .bind(id)
                .bind(version)
                .fetch_optional(&mut *self)
                .await?;
                Ok(state.and_then(|s| s.0.as_order().map(Cow::into_owned)))
            }

            async fn record_events(
                &mut self,
                app_id: &str,
                change_order_id: &str,
                before: Option<&edas_release::ChangeOrder>,
                after: Option<&edas_release::ChangeOrder>,
                at: i64,
            ) -> Result<(), StoreError> {
                let Some(after) = after else { return Ok(()) };
                let mut events = edas_release::events(before, after);
                if events.is_empty() {
                    return Ok(());
                }
                let announce: Option<&str> = $announce;
                if let Some(sql) = announce {
                    sqlx::query(sql)
                        .bind(NOTIFY_CHANNEL)
                        .execute(&mut *self)
                        .await?;
                }
                for event in &mut events {
                    change_order_id.clone_into(&mut event.change_order_id);
                }
                $write(self, app_id, &events, at).await
            }
        }
    };
}

/// The columns of one event row, bound in this order.
const EVENT_COLUMNS: usize = 6;

/// SQLite: every event of a transition in one statement; the `events_deliveries` trigger adds
/// each event's pending deliveries.
async fn insert_events_sqlite(
    conn: &mut SqliteConnection,
    app_id: &str,
    events: &[edas_release::ReleaseEvent],
    at: i64,
) -> Result<(), StoreError> {
    let rows: Vec<String> = (0..events.len())
        .map(|i| {
            let n = i * EVENT_COLUMNS;
            format!(
                "(${}, ${}, ${}, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO events (id, app_id, change_order_id, kind, at, data) VALUES {}",
        rows.join(", ")
    );
    // Only placeholders are formatted into it: nothing of the events is.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for event in events {
        query = query
            .bind(crate::new_record_id())
            .bind(app_id)
            .bind(&event.change_order_id)
            .bind(event.kind.as_str())
            .bind(at)
            .bind(Json(event));
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// PostgreSQL: the events and their pending deliveries (one per matching subscription) in one
/// statement (`pg_hot`).
async fn insert_events_postgres(
    conn: &mut PgConnection,
    app_id: &str,
    events: &[edas_release::ReleaseEvent],
    at: i64,
) -> Result<(), StoreError> {
    super::pg_hot::insert_events(conn, app_id, events, at).await
}
record_events_impl!(SqliteConnection, None, insert_events_sqlite);
record_events_impl!(
    PgConnection,
    Some("SELECT pg_notify($1, '')"),
    insert_events_postgres
);

/// On PostgreSQL, other processes' commits wake this one too: one LISTEN connection per store
/// bumps the signal on every notification of [`NOTIFY_CHANNEL`], and after a lost connection
/// (whatever was missed is read again by the waiters). Ends when the pool is closed.
pub(crate) async fn listen(pool: sqlx::PgPool, signals: [Arc<tokio::sync::watch::Sender<u64>>; 2]) {
    let bump = move || {
        for signal in &signals {
            signal.send_modify(|n| *n = n.wrapping_add(1));
        }
    };
    let listening = async {
        let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    // Listening before `Store::open` returns: no commit after it goes unnoticed.
    let mut listener = match listening.await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for other processes' release events");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(_) => bump(),
                Err(sqlx::Error::PoolClosed) => break,
                Err(error) => {
                    tracing::warn!(%error, "listening for release events failed; retrying");
                    bump();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
}

/// The events of a change order that was just stored (status 0, or settled already), inside
/// the write transaction `$tx` (a `&mut Transaction`); returns the error from the enclosing
/// function.
macro_rules! record_created {
    ($tx:expr, $app_id:expr, $co_id:expr, $state:expr, $at:expr) => {{
        let after = $crate::store::events::AsOrder::as_order($state);
        $crate::store::events::RecordEvents::record_events(
            &mut **$tx,
            $app_id,
            $co_id,
            None,
            after.as_deref(),
            $at,
        )
        .await?;
    }};
}
pub(crate) use record_created;

const EVENT_COLS: &str = "e.seq, e.id, e.app_id, e.change_order_id, e.kind, e.at, e.data";

#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    id: String,
    app_id: String,
    change_order_id: String,
    kind: String,
    at: i64,
    data: RawDoc,
}

impl TryFrom<EventRow> for StoredEvent {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<StoredEvent, StoreError> {
        Ok(StoredEvent {
            seq: r.seq,
            id: r.id,
            app_id: r.app_id,
            change_order_id: r.change_order_id,
            kind: r.kind,
            at: from_ms(r.at, "events.at")?,
            data: decode_doc(&r.data, "events.data")?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    #[sqlx(flatten)]
    event: EventRow,
    subscription_id: String,
    state: String,
    attempts: i64,
    last_error: Option<String>,
    updated_at: i64,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;
    fn try_from(r: DeliveryRow) -> Result<Delivery, StoreError> {
        Ok(Delivery {
            state: DeliveryState::parse(&r.state).ok_or_else(|| StoreError::Corrupt {
                what: "deliveries.state",
                reason: format!("{:?} is not a delivery state", r.state),
            })?,
            subscription_id: r.subscription_id,
            attempts: r.attempts,
            last_error: r.last_error,
            updated_at: from_ms(r.updated_at, "deliveries.updated_at")?,
            event: r.event.try_into()?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SubscriptionRow {
    id: String,
    app_id: Option<String>,
    kinds: String,
    sink: String,
    target: Vec<u8>,
    creator: String,
    created_at: i64,
}

const SUBSCRIPTION_COLS: &str = "id, app_id, kinds, sink, target, creator, created_at";
const DELIVERY_SELECT: &str = "SELECT e.seq, e.id, e.app_id, e.change_order_id, e.kind, e.at, \
     e.data, d.subscription_id, d.state, d.attempts, d.last_error, d.updated_at \
     FROM deliveries d JOIN events e ON e.seq = d.event_seq";

fn subscription_context(id: &str) -> String {
    format!("subscription:{id}")
}

impl Store {
    /// The sender every committed write that may have recorded events bumps: the delivery
    /// worker and the event streams wait on it instead of polling.
    pub fn events_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.subscribe()
    }

    /// Bumped after the commits that may have given a subscription something to deliver:
    /// the delivery worker waits on it. With no subscription (on SQLite, where this process
    /// is the only writer) it stays still, and the worker reads nothing per release.
    pub fn deliveries_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.deliveries.subscribe()
    }

    /// Wakes whoever waits on [`Store::events_signal`] (after a commit), and on
    /// [`Store::deliveries_signal`] when a subscription may exist.
    pub(crate) fn events_committed(&self) {
        self.events.send_modify(|n| *n = n.wrapping_add(1));
        if self.subscribed.load(std::sync::atomic::Ordering::SeqCst) {
            self.deliveries.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Whether any subscription is stored (read once, when a SQLite store opens).
    pub(crate) async fn any_subscription(&self) -> Result<bool, StoreError> {
        Ok(on_reader!(self, pool => {
            sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM subscriptions)")
                .fetch_one(pool)
                .await?
        }))
    }

    fn subscription(&self, r: SubscriptionRow) -> Result<Subscription, StoreError> {
        let plain = self.cipher.open(&subscription_context(&r.id), &r.target)?;
        let target: SubscriptionTarget =
            serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt {
                what: "subscriptions.target",
                reason: e.to_string(),
            })?;
        Ok(Subscription {
            spec: NewSubscription {
                kinds: r
                    .kinds
                    .split(',')
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect(),
                target: Sensitive::new(target),
                id: r.id,
                app_id: r.app_id,
                sink: r.sink,
            },
            created_at: from_ms(r.created_at, "subscriptions.created_at")?,
            creator: r.creator,
        })
    }

    /// Stores a subscription (its target sealed) with its audit record; it receives the events
    /// recorded from now on.
    pub async fn create_subscription(
        &self,
        new: NewSubscription,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<Subscription, StoreError> {
        non_empty(&new.id, "subscription id")?;
        non_empty(&new.sink, "sink")?;
        if let Some(bad) = new.kinds.iter().find(|k| k.is_empty() || k.contains(',')) {
            return Err(StoreError::InvalidInput {
                field: "kinds",
                reason: format!("{bad:?} is not an event kind"),
            });
        }
        let now = truncate(now);
        let at = ms(now);
        let plain = serde_json::to_vec(new.target.expose()).map_err(|e| StoreError::Corrupt {
            what: "subscriptions.target",
            reason: e.to_string(),
        })?;
        let sealed = self.cipher.seal(&subscription_context(&new.id), &plain)?;
        // Before it is stored: every event committed once it exists wakes the deliveries.
        self.subscribed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let kinds = if new.kinds.is_empty() {
            String::new()
        } else {
            format!(",{},", new.kinds.join(","))
        };
        on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO subscriptions (id, app_id, kinds, sink, target, creator, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&new.id)
            .bind(&new.app_id)
            .bind(&kinds)
            .bind(&new.sink)
            .bind(&sealed)
            .bind(&audit.actor)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_conflict(e, "subscription", &new.id, "id already taken"))?;
            insert_audit!(&mut *tx, &audit, at)?;
            tx.commit().await?;
        });
        Ok(Subscription {
            spec: new,
            creator: audit.actor,
            created_at: now,
        })
    }

    /// Every subscription, oldest first.
    pub async fn list_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        let rows: Vec<SubscriptionRow> = on_reader!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SUBSCRIPTION_COLS} FROM subscriptions ORDER BY created_at, id"
            )))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(|r| self.subscription(r)).collect()
    }

    pub async fn get_subscription(&self, id: &str) -> Result<Subscription, StoreError> {
        let row: Option<SubscriptionRow> = on_reader!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SUBSCRIPTION_COLS} FROM subscriptions WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        self.subscription(row.ok_or_else(|| StoreError::not_found("subscription", id))?)
    }

    /// Deletes a subscription and its deliveries, with the audit record. `false` when it did
    /// not exist (nothing is written then).
    pub async fn delete_subscription(
        &self,
        id: &str,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let at = ms(now);
        on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM deliveries WHERE subscription_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let gone = sqlx::query("DELETE FROM subscriptions WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if gone == 0 {
                return Ok(false);
            }
            insert_audit!(&mut *tx, &audit, at)?;
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Up to `limit` events of `scope` after sequence number `after` (0: from the start), in
    /// order.
    pub async fn events_after(
        &self,
        scope: &EventScope,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (filter, value) = match scope {
            EventScope::All => ("$2 = ''", ""),
            EventScope::Application(app) => ("e.app_id = $2", app.as_str()),
            EventScope::ChangeOrder(co) => ("e.change_order_id = $2", co.as_str()),
        };
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events e WHERE e.seq > $1 AND {filter} \
             ORDER BY e.seq LIMIT $3"
        );
        let rows: Vec<EventRow> = on_reader!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(after)
                .bind(value)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(StoredEvent::try_from).collect()
    }

    /// A subscription's deliveries (all states, or one), newest first, at most `limit`.
    pub async fn list_deliveries(
        &self,
        subscription_id: &str,
        state: Option<DeliveryState>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let sql = format!(
            "{DELIVERY_SELECT} WHERE d.subscription_id = $1 AND ($2 = '' OR d.state = $2) \
             ORDER BY d.event_seq DESC LIMIT $3"
        );
        let rows: Vec<DeliveryRow> = on_reader!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(subscription_id)
                .bind(state.map_or("", DeliveryState::as_str))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Delivery::try_from).collect()
    }

    /// Pending and dead deliveries, for the metrics.
    pub async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let rows: Vec<(String, i64)> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT state, COUNT(*) FROM deliveries WHERE state <> 'delivered' GROUP BY state",
            )
            .fetch_all(pool)
            .await?
        });
        let mut counts = OutboxCounts::default();
        for (state, n) in rows {
            let n = u64::try_from(n).unwrap_or_default();
            match state.as_str() {
                "pending" => counts.pending = n,
                "dead" => counts.dead = n,
                _ => {}
            }
        }
        Ok(counts)
    }

    /// Leases to `worker` until `now + lease` a subscription that has a pending delivery, is
    /// not blocked by a retry later than `now`, and whose lease is free or expired. `None`
    /// when there is none. On PostgreSQL the candidate is locked `FOR UPDATE SKIP LOCKED`, so
    /// two processes never claim the same subscription.
    pub async fn claim_subscription(
        &self,
        worker: &str,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Option<Subscription>, StoreError> {
        non_empty(worker, "worker id")?;
        let expires = plus(now, lease, "lease duration")?;
        // Woken by every commit that recorded events, mostly with nothing to deliver (no
        // subscription matched): learn that from a reader, not with a write on the one writer.
        // A delivery committed after this read bumps the commit signal again.
        let pending: bool = on_reader!(self, pool => {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM deliveries WHERE state = 'pending')")
                .fetch_one(pool)
                .await?
        });
        if !pending {
            return Ok(None);
        }
        let candidates = "SELECT s.id FROM subscriptions s \
             WHERE (s.blocked_until IS NULL OR s.blocked_until <= $3) \
             AND (s.lease_owner IS NULL OR s.lease_expires_at <= $3) \
             AND EXISTS (SELECT 1 FROM deliveries d WHERE d.subscription_id = s.id \
                         AND d.state = 'pending') \
             ORDER BY s.created_at, s.id LIMIT 1";
        let lock = match self.backend.as_ref() {
            Backend::Sqlite(_) => "",
            Backend::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE subscriptions SET lease_owner = $1, lease_expires_at = $2 \
             WHERE id = ({candidates}{lock}) \
             AND (lease_owner IS NULL OR lease_expires_at <= $3) RETURNING {SUBSCRIPTION_COLS}"
        );
        let row: Option<SubscriptionRow> = on_writer!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(worker)
                .bind(expires)
                .bind(ms(now))
                .fetch_optional(pool)
                .await?
        });
        row.map(|r| self.subscription(r)).transpose()
    }

    /// The oldest pending delivery of a subscription (the one to send next).
    pub async fn next_delivery(
        &self,
        subscription_id: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        let sql = format!(
            "{DELIVERY_SELECT} WHERE d.subscription_id = $1 AND d.state = 'pending' \
             ORDER BY d.event_seq LIMIT 1"
        );
        let row: Option<DeliveryRow> = on_writer!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(subscription_id)
                .fetch_optional(pool)
                .await?
        });
        row.map(Delivery::try_from).transpose()
    }

    /// Marks a pending delivery delivered and extends the lease, if `worker` still holds the
    /// subscription's lease; `false` otherwise (another process took it over: stop).
    pub async fn mark_delivered(
        &self,
        subscription_id: &str,
        event_seq: i64,
        worker: &str,
        lease: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.mark(subscription_id, event_seq, worker, lease, now, None)
            .await
    }

    /// Records a failed attempt: retried at a later time (the subscription blocked until then
    /// and its lease given back), or dead. `false` when `worker` no longer holds the lease.
    #[allow(clippy::too_many_arguments)]
    pub async fn mark_failed(
        &self,
        subscription_id: &str,
        event_seq: i64,
        worker: &str,
        lease: Duration,
        error: &str,
        after: AfterFailure,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.mark(
            subscription_id,
            event_seq,
            worker,
            lease,
            now,
            Some((error, after)),
        )
        .await
    }

    async fn mark(
        &self,
        subscription_id: &str,
        event_seq: i64,
        worker: &str,
        lease: Duration,
        now: Timestamp,
        failure: Option<(&str, AfterFailure)>,
    ) -> Result<bool, StoreError> {
        let at = ms(now);
        let expires = plus(now, lease, "lease duration")?;
        let (state, error, blocked) = match failure {
            None => ("delivered", None, None),
            Some((error, AfterFailure::Dead)) => ("dead", Some(error), None),
            Some((error, AfterFailure::RetryAt(t))) => ("pending", Some(error), Some(ms(t))),
        };
        on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let held = sqlx::query(
                "UPDATE subscriptions SET lease_expires_at = $1, blocked_until = $2 \
                 WHERE id = $3 AND lease_owner = $4",
            )
            .bind(expires)
            .bind(blocked)
            .bind(subscription_id)
            .bind(worker)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if held == 0 {
                return Ok(false);
            }
            sqlx::query(
                "UPDATE deliveries SET state = $1, attempts = attempts + 1, \
                 last_error = COALESCE($2, last_error), updated_at = $3 \
                 WHERE subscription_id = $4 AND event_seq = $5 AND state = 'pending'",
            )
            .bind(state)
            .bind(error)
            .bind(at)
            .bind(subscription_id)
            .bind(event_seq)
            .execute(&mut *tx)
            .await?;
            if blocked.is_some() {
                sqlx::query(
                    "UPDATE subscriptions SET lease_owner = NULL, lease_expires_at = NULL \
                     WHERE id = $1",
                )
                .bind(subscription_id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Gives a subscription's lease back (nothing left to send, or shutting down).
    pub async fn release_subscription(
        &self,
        subscription_id: &str,
        worker: &str,
    ) -> Result<(), StoreError> {
        on_writer!(self, pool => {
            sqlx::query(
                "UPDATE subscriptions SET lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(subscription_id)
            .bind(worker)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Gives back every subscription lease `worker` holds: what a restarted process with the
    /// same worker id does first, so it resumes delivery at once instead of waiting for its
    /// own leases to expire.
    pub async fn release_own_subscriptions(&self, worker: &str) -> Result<(), StoreError> {
        on_writer!(self, pool => {
            sqlx::query(
                "UPDATE subscriptions SET lease_owner = NULL, lease_expires_at = NULL \
                 WHERE lease_owner = $1",
            )
            .bind(worker)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// When the delivery worker must look again without being woken: the earliest retry time
    /// or lease expiry of a subscription with pending deliveries.
    pub async fn next_delivery_wakeup(&self) -> Result<Option<Timestamp>, StoreError> {
        let at: Option<i64> = on_reader!(self, pool => {
            sqlx::query_scalar(
                "SELECT MIN(COALESCE(s.lease_expires_at, s.blocked_until)) FROM subscriptions s \
                 WHERE (s.lease_expires_at IS NOT NULL OR s.blocked_until IS NOT NULL) \
                 AND EXISTS (SELECT 1 FROM deliveries d WHERE d.subscription_id = s.id \
                             AND d.state = 'pending')",
            )
            .fetch_one(pool)
            .await?
        });
        at.map(|t| from_ms(t, "subscriptions.blocked_until"))
            .transpose()
    }
}
