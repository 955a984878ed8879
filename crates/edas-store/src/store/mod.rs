//! [`Store`]: one API over the SQLite and PostgreSQL backends.
//!
//! Every query is written once, with `$N` placeholders, and compiled for each backend by the
//! `on_writer!`/`on_reader!` macros (sqlx's query builders are generic, but their trait bounds
//! are not worth spelling out). Only work claiming differs (`FOR UPDATE SKIP LOCKED`), and the
//! hot write transactions (deploy, transition): on SQLite they run synchronously in groups
//! (`sync_sqlite`), on PostgreSQL each is one statement (`pg_hot`), the two mirroring each other
//! row for row.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::Json;

use crate::crypto::{Cipher, EncryptionKey, Sensitive};
use crate::error::{StoreError, is_foreign_key_violation, is_unique_violation};
use crate::model::*;

/// The SQLite database file inside a data directory.
pub const SQLITE_FILE_NAME: &str = "edas.sqlite3";
/// The encryption key file inside a data directory.
pub const KEY_FILE_NAME: &str = "store.key";

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

const KEY_CHECK: &str = "key_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"edas-store key check v1";
/// Max connections of the PostgreSQL pool (per process).
const PG_POOL_SIZE: u32 = 8;
/// Readers of the SQLite database (WAL lets them run beside the single writer).
const SQLITE_READERS: u32 = 4;
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The durable state of edasd. Cheap to clone (all clones share the pools); `Send + Sync`, so
/// it can also be held in an `Arc` and shared across tasks.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
    cipher: Cipher,
    /// Bumped after commits that may have recorded release events ([`Store::events_signal`]).
    events: Arc<tokio::sync::watch::Sender<u64>>,
    /// Bumped after those commits when some subscription may receive them
    /// ([`Store::deliveries_signal`]).
    deliveries: Arc<tokio::sync::watch::Sender<u64>>,
    /// Whether a subscription may exist: on SQLite (one process) read at open and set before a
    /// subscription is stored; on PostgreSQL always (another process may store one).
    subscribed: Arc<std::sync::atomic::AtomicBool>,
    /// Bumped after every commit that changed access keys, users or policies in this process
    /// ([`Store::identity_version`]).
    identity: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .finish_non_exhaustive()
    }
}

enum Backend {
    Sqlite(SqliteBackend),
    Postgres(PgPool),
}

struct SqliteBackend {
    /// One connection: every write is serialized in-process, so no write transaction ever
    /// needs a lock upgrade (SQLITE_BUSY). It commits without waiting for the disk
    /// (`synchronous=NORMAL`): `sync` makes its commits durable, several at a time.
    writer: SqlitePool,
    reader: SqlitePool,
    /// Group commit: every write through the writer waits for it before answering.
    sync: Arc<durability::WalSync>,
    /// The connection the hot write transactions use (`sync_sqlite`).
    hot: sync_sqlite::HotWriter,
    /// Which applications may have scaling rules (`scaling_rules`).
    ruled_apps: scaling_rules::RuledApps,
    /// The hot one-row reads, inline (`point_reads`).
    points: point_reads::PointReader,
}

/// Runs `$body` with `$pool` bound to the pool that writes: the single SQLite writer
/// connection, or the PostgreSQL pool. The body is compiled once per backend. On SQLite, what
/// the body committed is durable before its value is returned (group commit: one sync for the
/// commits of every writer waiting at the time; `durability`).
macro_rules! on_writer {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store.backend.as_ref() {
            Backend::Sqlite(sqlite) => {
                let $pool = &sqlite.writer;
                let value = $body;
                sqlite.sync.durable().await?;
                value
            }
            Backend::Postgres(pg) => {
                let $pool = pg;
                $body
            }
        }
    };
}

/// Like `on_writer!`, with the SQLite reader pool.
macro_rules! on_reader {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store.backend.as_ref() {
            Backend::Sqlite(sqlite) => {
                let $pool = &sqlite.reader;
                $body
            }
            Backend::Postgres(pg) => {
                let $pool = pg;
                $body
            }
        }
    };
}

/// Starts a write transaction: `BEGIN IMMEDIATE` on SQLite (takes the write lock up front, so
/// another process, e.g. a backup, can only make it wait, never fail halfway), plain `BEGIN` on
/// PostgreSQL.
trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// One write transaction of `$store`: runs `$body` with the transaction bound to `$tx` (it
/// evaluates to the number of rows it changed) and, when it changed something, writes `$audit`
/// (an `Option<(&AuditEntry, Timestamp)>`) in the same transaction, so a change is never
/// stored without its record nor recorded without the change. Evaluates to that number, or
/// returns the error from the enclosing function.
macro_rules! write_audited {
    ($store:expr, $audit:expr, $tx:ident => $body:expr) => {{
        let audit: Option<(&AuditEntry, Timestamp)> = $audit;
        on_writer!($store, pool => {
            let mut $tx = pool.begin_write().await?;
            let changed: u64 = $body;
            if let (true, Some((entry, now))) = (changed > 0, audit) {
                insert_audit!(&mut *$tx, entry, ms(now))?;
            }
            $tx.commit().await?;
            changed
        })
    }};
}

/// Inserts an audit record through `$executor` (a transaction or a pool, of either backend).
macro_rules! insert_audit {
    ($executor:expr, $entry:expr, $at:expr) => {{
        let entry: &AuditEntry = $entry;
        sqlx::query(INSERT_AUDIT)
            .bind($at)
            .bind(&entry.actor)
            .bind(&entry.action)
            .bind(&entry.resource)
            .bind(&entry.app_id)
            .bind(&entry.request_id)
            .bind(Json(&entry.detail))
            .execute($executor)
            .await
    }};
}

/// Runs `$update` (an `UPDATE applications … WHERE id = $2 AND deleted = FALSE` binding `$at`
/// as `$1`) on live application `$app_id` inside the write transaction `$tx`; returns
/// [`StoreError::NotFound`] from the enclosing function when it does not exist or was deleted.
macro_rules! update_live_app {
    ($tx:expr, $update:expr, $at:expr, $app_id:expr) => {{
        let app_id: &str = $app_id;
        let touched = sqlx::query($update)
            .bind($at)
            .bind(app_id)
            .execute(&mut **$tx)
            .await?;
        if touched.rows_affected() == 0 {
            return Err(StoreError::not_found("application", app_id));
        }
    }};
}

/// Returns [`StoreError::ActiveChangeOrder`] from the enclosing function when application
/// `$app_id` has an unfinished change order (read inside the write transaction `$tx`).
macro_rules! refuse_active {
    ($tx:expr, $app_id:expr) => {{
        let app_id: &str = $app_id;
        let active: Option<String> = sqlx::query_scalar(ACTIVE_CHANGE_ORDER_ID)
            .bind(app_id)
            .fetch_optional(&mut **$tx)
            .await?;
        if let Some(active) = active {
            return Err(active_conflict(app_id, &active));
        }
    }};
}

/// Inserts `$change_order` of application `$app_id` (rolling out revision `$revision`, created
/// by `$creator`, finished at once when `$finished`) inside the write transaction `$tx`;
/// returns the error from the enclosing function (a racing insert is the one-active conflict).
macro_rules! insert_change_order {
    ($tx:expr, $app_id:expr, $change_order:expr, $revision:expr, $creator:expr, $at:expr, $finished:expr) => {
        insert_change_order!(
            $tx,
            $app_id,
            $change_order,
            $revision,
            $creator,
            $at,
            $finished,
            None
        )
    };
    // `$lease`: an `Option<&Lease>` the order is created under (already claimed by its driver).
    ($tx:expr, $app_id:expr, $change_order:expr, $revision:expr, $creator:expr, $at:expr, $finished:expr, $lease:expr) => {{
        let lease: Option<&Lease> = $lease;
        let app_id: &str = $app_id;
        let change_order: &NewChangeOrder = $change_order;
        let revision: Option<i64> = $revision;
        let creator: &str = $creator;
        let at: i64 = $at;
        sqlx::query(INSERT_CHANGE_ORDER)
            .bind(&change_order.id)
            .bind(app_id)
            .bind(&change_order.co_type)
            .bind(change_order.status.code())
            .bind(revision)
            .bind(encode_doc(&change_order.state, "change order state")?)
            .bind(&change_order.description)
            .bind(at)
            .bind(creator)
            .bind($finished.then_some(at))
            .bind(lease.map(|l| l.owner.as_str()))
            .bind(lease.map(|l| ms(l.expires_at)))
            .execute(&mut **$tx)
            .await
            .map_err(|e| racing_change_order(e, app_id, &change_order.id))?;
        $crate::store::events::record_created!(
            $tx,
            app_id,
            &change_order.id,
            &change_order.state,
            at
        );
    }};
}

/// Replaces the indexed Service ports of application `$app_id` with `$ports` inside the write
/// transaction `$tx`; returns a database error from the enclosing function.
macro_rules! replace_service_ports {
    ($tx:expr, $app_id:expr, $ports:expr) => {{
        let app_id: &str = $app_id;
        let ports: &[i64] = $ports;
        sqlx::query("DELETE FROM service_ports WHERE app_id = $1")
            .bind(app_id)
            .execute(&mut **$tx)
            .await?;
        for port in ports {
            sqlx::query(
                "INSERT INTO service_ports (app_id, port) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(app_id)
            .bind(*port)
            .execute(&mut **$tx)
            .await?;
        }
    }};
}

// ---------------------------------------------------------------------------------------------
// Column lists of the row structs in `rows`.

macro_rules! app_cols {
    () => {
        "id, name, region_id, namespace_id, cluster_id, k8s_namespace, current_revision, state, \
         spec, created_at, updated_at, deleted"
    };
}

macro_rules! co_cols {
    () => {
        "id, app_id, co_type, status, version, revision, state, description, creator, \
         created_at, updated_at, finished_at, lease_owner, lease_expires_at"
    };
}

macro_rules! audit_cols {
    () => {
        "id, at, actor, action, resource, app_id, request_id, detail"
    };
}
// ---------------------------------------------------------------------------------------------
// Helpers.

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// `t` at the precision the store keeps (milliseconds), so returned records equal re-read ones.
fn truncate(t: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond()).unwrap_or(t)
}

fn from_ms(value: i64, what: &'static str) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(value).map_err(|e| StoreError::Corrupt {
        what,
        reason: e.to_string(),
    })
}

fn duration_ms(d: Duration, field: &'static str) -> Result<i64, StoreError> {
    i64::try_from(d.as_millis()).map_err(|_| StoreError::InvalidInput {
        field,
        reason: "duration is too large".into(),
    })
}

fn plus(now: Timestamp, d: Duration, field: &'static str) -> Result<i64, StoreError> {
    ms(now)
        .checked_add(duration_ms(d, field)?)
        .ok_or_else(|| StoreError::InvalidInput {
            field,
            reason: "now + duration overflows".into(),
        })
}

fn rows<R, T>(raw: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    raw.into_iter().map(T::try_from).collect()
}

/// Validates a page request; returns `(limit, offset)`.
fn limit_offset(page: PageRequest) -> Result<(i64, i64), StoreError> {
    if page.number == 0 {
        return Err(StoreError::InvalidInput {
            field: "page number",
            reason: "pages count from 1".into(),
        });
    }
    if page.size == 0 || page.size > PageRequest::MAX_SIZE {
        return Err(StoreError::InvalidInput {
            field: "page size",
            reason: format!(
                "must be between 1 and {}, got {}",
                PageRequest::MAX_SIZE,
                page.size
            ),
        });
    }
    let size = i64::from(page.size);
    Ok((size, (i64::from(page.number) - 1) * size))
}

fn page_of<T>(items: Vec<T>, total: i64, page: PageRequest) -> Page<T> {
    Page {
        items,
        total: u64::try_from(total).unwrap_or(0),
        number: page.number,
        size: page.size,
    }
}

/// The row a create-or-replace of rule `name` (an ingress or scaling rule) stored: when it stored
/// none, [`StoreError::Conflict`] for a create (the rule exists already), else
/// [`StoreError::NotFound`] (there is no rule to replace).
fn stored_rule<R>(
    row: Option<R>,
    entity: &'static str,
    name: &str,
    create: bool,
) -> Result<R, StoreError> {
    row.ok_or_else(|| {
        if create {
            StoreError::conflict(entity, name, "exists already")
        } else {
            StoreError::not_found(entity, name)
        }
    })
}

/// The rows a delete of rule `name` (an ingress or scaling rule) removed;
/// [`StoreError::NotFound`] when it removed none.
fn deleted_rule(deleted: u64, entity: &'static str, name: &str) -> Result<u64, StoreError> {
    if deleted == 0 {
        return Err(StoreError::not_found(entity, name));
    }
    Ok(deleted)
}

fn non_empty(value: &str, field: &'static str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::InvalidInput {
            field,
            reason: "must not be empty".into(),
        });
    }
    Ok(())
}

fn secret_context(cluster_id: &str, k8s_namespace: &str, name: &str) -> String {
    format!("secret:{cluster_id}/{k8s_namespace}/{name}")
}

fn access_key_context(id: &str) -> String {
    format!("access_key:{id}")
}

/// A typed document encoded once for binding (to a JSON column of either backend). A document
/// that cannot be encoded (not JSON-representable) is refused before anything is written.
fn encode_doc<T: Serialize>(
    doc: &T,
    field: &'static str,
) -> Result<Json<Box<RawValue>>, StoreError> {
    serde_json::value::to_raw_value(doc)
        .map(Json)
        .map_err(|e| StoreError::InvalidInput {
            field,
            reason: e.to_string(),
        })
}

/// A typed document column as read: kept raw until its row is converted, so one that does not
/// decode is [`StoreError::Corrupt`] naming the column instead of a driver error.
type RawDoc = Json<Box<RawValue>>;

/// Decodes a [`RawDoc`] straight into its type.
fn decode_doc<T: DeserializeOwned>(raw: &RawDoc, what: &'static str) -> Result<T, StoreError> {
    serde_json::from_str(raw.0.get()).map_err(|e| StoreError::Corrupt {
        what,
        reason: e.to_string(),
    })
}

/// A stored status code; one this binary does not know is corrupt.
fn status_of(code: i32) -> Result<ChangeOrderStatus, StoreError> {
    ChangeOrderStatus::from_code(code).ok_or_else(|| StoreError::Corrupt {
        what: "change_orders.status",
        reason: format!("{code} is not a change-order status code"),
    })
}

fn map_conflict(e: sqlx::Error, entity: &'static str, id: &str, reason: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::conflict(entity, id, reason)
    } else {
        StoreError::Database(e)
    }
}

const INSERT_AUDIT: &str = "INSERT INTO audit (at, actor, action, resource, app_id, request_id, \
                            detail) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Binds: id, app id, type, status code, revision, state, description, now, creator,
/// finished at, lease owner, lease expiry.
const INSERT_CHANGE_ORDER: &str = "INSERT INTO change_orders (id, app_id, co_type, status, \
     version, revision, state, description, created_at, updated_at, creator, finished_at, \
     lease_owner, lease_expires_at) \
     VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $8, $9, $10, $11, $12)";

const ACTIVE_CHANGE_ORDER_ID: &str =
    "SELECT id FROM change_orders WHERE app_id = $1 AND finished_at IS NULL";

fn new_change_order(
    co: NewChangeOrder,
    app_id: &str,
    revision: Option<i64>,
    creator: &str,
    now: Timestamp,
) -> ChangeOrder {
    ChangeOrder {
        id: co.id,
        app_id: app_id.to_owned(),
        co_type: co.co_type,
        status: co.status,
        version: 1,
        revision,
        state: co.state,
        description: co.description,
        creator: Some(creator.to_owned()),
        created_at: now,
        updated_at: now,
        finished_at: None,
        lease: None,
    }
}

/// Checks a change order to create and fixes the time it is written at, at the store's
/// precision: `(now, now in milliseconds)`.
fn change_order_time(co: &NewChangeOrder, now: Timestamp) -> Result<(Timestamp, i64), StoreError> {
    non_empty(&co.id, "change order id")?;
    non_empty(&co.co_type, "change order type")?;
    let now = truncate(now);
    Ok((now, ms(now)))
}
// ---------------------------------------------------------------------------------------------

impl Store {
    /// Opens (creating and migrating if needed) the store at `location`:
    /// - `postgres://…` or `postgresql://…`: a PostgreSQL database (URL parameters such as
    ///   `options=-c search_path=…` are honoured);
    /// - `sqlite://PATH` (sqlx's SQLite URL syntax): that database file, created if missing;
    /// - anything else: a data directory (created, mode 0700) holding [`SQLITE_FILE_NAME`].
    ///
    /// `key` seals access-key secrets and Secret data; the database remembers a check value of
    /// the first key and refuses another ([`StoreError::WrongKey`]). A database migrated by a
    /// newer binary is refused ([`StoreError::SchemaTooNew`]).
    pub async fn open(location: &str, key: &EncryptionKey) -> Result<Store, StoreError> {
        let location = location.trim();
        non_empty(location, "store location")?;
        let backend =
            if location.starts_with("postgres://") || location.starts_with("postgresql://") {
                Backend::Postgres(open_postgres(location).await?)
            } else if location.starts_with("sqlite:") {
                if location.contains(":memory:") || location.contains("mode=memory") {
                    return Err(StoreError::InvalidInput {
                        field: "store location",
                        reason: "an in-memory SQLite database is not durable; give a file".into(),
                    });
                }
                let options = SqliteConnectOptions::from_str(location)?;
                Backend::Sqlite(open_sqlite(options).await?)
            } else {
                let dir = Path::new(location);
                create_private_dir(dir)?;
                let options = SqliteConnectOptions::new().filename(dir.join(SQLITE_FILE_NAME));
                Backend::Sqlite(open_sqlite(options).await?)
            };
        let store = Store {
            backend: Arc::new(backend),
            cipher: Cipher::new(key),
            events: Arc::new(tokio::sync::watch::Sender::new(0)),
            deliveries: Arc::new(tokio::sync::watch::Sender::new(0)),
            subscribed: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            identity: Arc::default(),
        };
        if let Err(e) = store.check_key().await {
            store.close().await;
            return Err(e);
        }
        match store.backend.as_ref() {
            Backend::Postgres(pool) => {
                events::listen(
                    pool.clone(),
                    [store.events.clone(), store.deliveries.clone()],
                )
                .await;
            }
            Backend::Sqlite(_) => match store.any_subscription().await {
                Ok(any) => store
                    .subscribed
                    .store(any, std::sync::atomic::Ordering::SeqCst),
                Err(e) => {
                    store.close().await;
                    return Err(e);
                }
            },
        }
        Ok(store)
    }

    /// Opens the SQLite store of a data directory, with the key in its [`KEY_FILE_NAME`]
    /// (created on first use, mode 0600).
    pub async fn open_data_dir(dir: &Path) -> Result<Store, StoreError> {
        create_private_dir(dir)?;
        let key = EncryptionKey::load_or_create(&dir.join(KEY_FILE_NAME))?;
        let location = dir.to_str().ok_or_else(|| StoreError::InvalidInput {
            field: "data directory",
            reason: format!("{} is not valid UTF-8", dir.display()),
        })?;
        if location.starts_with("sqlite:") || location.starts_with("postgres") {
            return Err(StoreError::InvalidInput {
                field: "data directory",
                reason: format!("{location:?} looks like a URL, not a directory"),
            });
        }
        Self::open(location, &key).await
    }

    /// How many times SQLite's WAL was synced to disk so far (group commit: one sync covers the
    /// commits of every writer waiting at the time); `None` on PostgreSQL.
    pub fn wal_syncs(&self) -> Option<u64> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => Some(s.sync.syncs()),
            Backend::Postgres(_) => None,
        }
    }

    /// WAL checkpoints so far: run by the checkpoint thread beside the writer, by the writer
    /// to finish one (so the WAL restarts), and by the writer at the backstop (the thread fell
    /// behind); `None` on PostgreSQL.
    pub fn wal_checkpoints(&self) -> Option<(u64, u64, u64)> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => Some(s.hot.checkpoints.get()),
            Backend::Postgres(_) => None,
        }
    }

    /// WAL pages (frames) the group writer's commits wrote so far: the hot path's write volume
    /// (SQLite's default 4 KiB pages, plus a 24-byte frame header each); `None` on PostgreSQL.
    pub fn wal_pages_written(&self) -> Option<u64> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => Some(s.hot.checkpoints.pages_written()),
            Backend::Postgres(_) => None,
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend.as_ref() {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Closes every connection (waits for checked-out ones). Other clones become unusable.
    pub async fn close(&self) {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => {
                s.hot.close().await;
                s.points.close();
                s.reader.close().await;
                s.writer.close().await;
            }
            Backend::Postgres(p) => p.close().await,
        }
    }

    /// Stores a sealed check value on first open; later opens must decrypt it.
    async fn check_key(&self) -> Result<(), StoreError> {
        let sealed = self
            .cipher
            .seal("store_meta:key_check", KEY_CHECK_PLAINTEXT)?;
        let stored: Vec<u8> = on_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO store_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(KEY_CHECK)
            .bind(&sealed)
            .execute(pool)
            .await?;
            sqlx::query_scalar("SELECT value FROM store_meta WHERE key = $1")
                .bind(KEY_CHECK)
                .fetch_one(pool)
                .await?
        });
        match self.cipher.open("store_meta:key_check", &stored) {
            Ok(plain) if plain == KEY_CHECK_PLAINTEXT => Ok(()),
            _ => Err(StoreError::WrongKey),
        }
    }
}

/// Why a transition's compare-and-swap of change order `id` matched nothing, from its current
/// version and finish time (`None`: no such order).
fn refused_transition(id: &str, expected: i64, current: Option<(i64, Option<i64>)>) -> StoreError {
    match current {
        None => StoreError::not_found("change order", id),
        Some((_, Some(_))) => StoreError::Finished { id: id.to_owned() },
        Some((actual, None)) => StoreError::Stale {
            id: id.to_owned(),
            expected,
            actual,
        },
    }
}

/// A live application of region `region` is already named `name` (it is `other`).
fn name_taken(region: &str, name: &str, other: &str) -> StoreError {
    StoreError::conflict(
        "application",
        name,
        format!("region {region} already has an application of that name ({other})"),
    )
}

fn active_conflict(app_id: &str, active: &str) -> StoreError {
    StoreError::ActiveChangeOrder {
        app_id: app_id.to_owned(),
        active: active.to_owned(),
    }
}

/// A unique violation on inserting a change order: ids are generated server-side, so it is the
/// one-active-order-per-application index, hit by a concurrent writer (PostgreSQL). The active
/// order is named by [`Store::name_active`] once the transaction is rolled back.
fn racing_change_order(e: sqlx::Error, app_id: &str, co_id: &str) -> StoreError {
    if is_unique_violation(&e) && hits_one_active_index(&e) {
        active_conflict(app_id, "")
    } else {
        map_conflict(e, "change order", co_id, "id already taken")
    }
}

/// Whether a unique violation is the one-active-order-per-application index (PostgreSQL names
/// the index; SQLite names the indexed column), not a taken change-order id.
fn hits_one_active_index(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.constraint() == Some("change_orders_one_active")
                || db.message().contains("change_orders.app_id")
        }
        _ => false,
    }
}

/// A row struct (in `rows`) that both backends can read.
trait Row:
    Send + Unpin + for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow>
{
}

impl<T> Row for T where
    T: Send + Unpin + for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow>
{
}

impl Store {
    /// The rows `select` reads with `keys` bound in order (`$1`, `$2`, …).
    async fn fetch_rows<R: Row>(
        &self,
        select: &'static str,
        keys: &[&str],
    ) -> Result<Vec<R>, StoreError> {
        Ok(on_reader!(self, pool => {
            let mut query = sqlx::query_as(select);
            for key in keys {
                query = query.bind(*key);
            }
            query.fetch_all(pool).await?
        }))
    }

    /// The one row `select` reads with `keys` bound in order; [`StoreError::NotFound`] naming
    /// `entity` and the keys when there is none.
    async fn fetch_row<R: Row>(
        &self,
        select: &'static str,
        keys: &[&str],
        entity: &'static str,
    ) -> Result<R, StoreError> {
        let row: Option<R> = on_reader!(self, pool => {
            let mut query = sqlx::query_as(select);
            for key in keys {
                query = query.bind(*key);
            }
            query.fetch_optional(pool).await?
        });
        row.ok_or_else(|| StoreError::not_found(entity, keys.join("/")))
    }

    /// Runs the statement `delete` with `keys` bound in order and, when it removed something,
    /// writes `audit` in the same transaction; whether it removed something.
    pub(crate) async fn delete_audited(
        &self,
        delete: &'static str,
        keys: &[&str],
        audit: Option<(&AuditEntry, Timestamp)>,
    ) -> Result<bool, StoreError> {
        let done = write_audited!(self, audit, tx => {
            let mut query = sqlx::query(delete);
            for key in keys {
                query = query.bind(*key);
            }
            query.execute(&mut *tx).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// Fills in the active change order of an [`StoreError::ActiveChangeOrder`] raised by a
    /// racing insert, which could not read it inside its failed transaction.
    pub(crate) async fn name_active<T>(
        &self,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match result {
            Err(StoreError::ActiveChangeOrder { app_id, active }) if active.is_empty() => {
                let active = self
                    .active_change_order(&app_id)
                    .await?
                    .map(|co| co.id)
                    .unwrap_or_else(|| "(finished meanwhile)".to_owned());
                Err(StoreError::ActiveChangeOrder { app_id, active })
            }
            other => other,
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

async fn open_sqlite(options: SqliteConnectOptions) -> Result<SqliteBackend, StoreError> {
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    // The syncer first: a database it cannot sync is not opened.
    let sync = Arc::new(durability::WalSync::start(options.get_filename())?);
    // The writer commits to the WAL without an fsync; `sync` makes commits durable before
    // their writers are answered (checkpoints sync by themselves under NORMAL).
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        // An embedded file needs no round trip to check it is alive before every write.
        .test_before_acquire(false)
        .connect_with(
            options
                .clone()
                .synchronous(SqliteSynchronous::Normal)
                // Checkpoints run beside the writer (`checkpoints`); this is the backstop.
                .pragma(
                    "wal_autocheckpoint",
                    checkpoints::BACKSTOP_PAGES.to_string(),
                ),
        )
        .await?;
    if let Err(e) = migrate(&writer, &SQLITE_MIGRATOR).await {
        writer.close().await;
        return Err(e);
    }
    sync.durable().await?;
    let ruled_apps = scaling_rules::RuledApps::load(&writer).await?;
    let hot = sync_sqlite::HotWriter::start(
        options.get_filename(),
        SQLITE_BUSY_TIMEOUT,
        writer.clone(),
        sync.clone(),
    )?;
    let points = point_reads::PointReader::new(options.get_filename(), SQLITE_BUSY_TIMEOUT);
    let reader = SqlitePoolOptions::new()
        .max_connections(SQLITE_READERS)
        .connect_with(options.create_if_missing(false))
        .await?;
    Ok(SqliteBackend {
        writer,
        reader,
        sync,
        hot,
        ruled_apps,
        points,
    })
}

async fn open_postgres(url: &str) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)?;
    let pool = PgPoolOptions::new()
        .max_connections(PG_POOL_SIZE)
        .connect_with(options)
        .await?;
    if let Err(e) = migrate(&pool, &POSTGRES_MIGRATOR).await {
        pool.close().await;
        return Err(e);
    }
    Ok(pool)
}

/// Refuses a schema newer than this binary's migrations, then applies the missing ones.
async fn migrate<P>(pool: &P, migrator: &'static Migrator) -> Result<(), StoreError>
where
    P: SchemaVersion,
{
    let supported = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(found) = pool.applied_schema_version().await?
        && found > supported
    {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    pool.run_migrations(migrator).await
}

trait SchemaVersion {
    async fn applied_schema_version(&self) -> Result<Option<i64>, StoreError>;
    async fn run_migrations(&self, migrator: &'static Migrator) -> Result<(), StoreError>;
}

/// Implements [`SchemaVersion`] for a backend's pool; `$table_exists` counts the migration
/// table (0 or 1) in the backend's own catalog.
macro_rules! impl_schema_version {
    ($pool:ty, $table_exists:expr) => {
        impl SchemaVersion for $pool {
            async fn applied_schema_version(&self) -> Result<Option<i64>, StoreError> {
                let exists: i64 = sqlx::query_scalar($table_exists).fetch_one(self).await?;
                if exists == 0 {
                    return Ok(None);
                }
                Ok(
                    sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
                        .fetch_one(self)
                        .await?,
                )
            }

            async fn run_migrations(&self, migrator: &'static Migrator) -> Result<(), StoreError> {
                Ok(migrator.run(self).await?)
            }
        }
    };
}

impl_schema_version!(
    SqlitePool,
    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
);
// `to_regclass` follows the connection's search_path, like the migrator.
impl_schema_version!(
    PgPool,
    "SELECT COUNT(*) FROM (SELECT to_regclass('_sqlx_migrations') AS t) r WHERE t IS NOT NULL"
);

mod applications;
mod audit;
pub(crate) mod base_info;
mod change_orders;
mod checkpoints;
mod durability;
pub(crate) mod events;
#[cfg(feature = "bench-fixtures")]
mod fixtures;
mod identity;
pub(crate) mod ingress_rules;
mod maintenance;
mod pg_hot;
mod point_reads;
pub(crate) mod regions;
pub(crate) mod release_policies;
mod resources;
mod rows;
pub(crate) mod scaling_rules;
mod sweeps;
mod sync_sqlite;
pub(crate) mod tags;
mod writer_thread;

pub use maintenance::restore_sqlite_backup;
use rows::*;
