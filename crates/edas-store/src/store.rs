//! [`Store`]: one API over the SQLite and PostgreSQL backends.
//!
//! Every query is written once, with `$N` placeholders, and compiled for each backend by the
//! `on_writer!`/`on_reader!` macros (sqlx's query builders are generic, but their trait bounds
//! are not worth spelling out). Only work claiming differs (`FOR UPDATE SKIP LOCKED`).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
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
    /// needs a lock upgrade (SQLITE_BUSY).
    writer: SqlitePool,
    reader: SqlitePool,
}

/// Runs `$body` with `$pool` bound to the pool that writes: the single SQLite writer
/// connection, or the PostgreSQL pool. The body is compiled once per backend.
macro_rules! on_writer {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store.backend.as_ref() {
            Backend::Sqlite(sqlite) => {
                let $pool = &sqlite.writer;
                $body
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

// ---------------------------------------------------------------------------------------------
// Rows (private): the storage shape, converted to the model types.

macro_rules! app_cols {
    () => {
        "id, name, region_id, namespace_id, cluster_id, k8s_namespace, current_revision, state, \
         spec, created_at, updated_at, deleted"
    };
}

macro_rules! co_cols {
    () => {
        "id, app_id, co_type, status, version, revision, state, description, created_at, \
         updated_at, finished_at, lease_owner, lease_expires_at"
    };
}

macro_rules! audit_cols {
    () => {
        "id, at, actor, action, resource, app_id, request_id, detail"
    };
}

#[derive(sqlx::FromRow)]
struct AppRow {
    id: String,
    name: String,
    region_id: String,
    namespace_id: String,
    cluster_id: String,
    k8s_namespace: String,
    current_revision: i64,
    state: String,
    spec: Json<Value>,
    created_at: i64,
    updated_at: i64,
    deleted: bool,
}

impl TryFrom<AppRow> for Application {
    type Error = StoreError;
    fn try_from(r: AppRow) -> Result<Self, StoreError> {
        Ok(Application {
            id: r.id,
            name: r.name,
            region_id: r.region_id,
            namespace_id: r.namespace_id,
            cluster_id: r.cluster_id,
            k8s_namespace: r.k8s_namespace,
            current_revision: r.current_revision,
            state: r.state,
            spec: r.spec.0,
            created_at: from_ms(r.created_at, "applications.created_at")?,
            updated_at: from_ms(r.updated_at, "applications.updated_at")?,
            deleted: r.deleted,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RevisionRow {
    app_id: String,
    number: i64,
    spec: Json<Value>,
    created_at: i64,
}

impl TryFrom<RevisionRow> for Revision {
    type Error = StoreError;
    fn try_from(r: RevisionRow) -> Result<Self, StoreError> {
        Ok(Revision {
            app_id: r.app_id,
            number: r.number,
            spec: r.spec.0,
            created_at: from_ms(r.created_at, "revisions.created_at")?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct CoRow {
    id: String,
    app_id: String,
    co_type: String,
    status: i32,
    version: i64,
    revision: Option<i64>,
    state: Json<Value>,
    description: String,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
}

impl TryFrom<CoRow> for ChangeOrder {
    type Error = StoreError;
    fn try_from(r: CoRow) -> Result<Self, StoreError> {
        let lease = match (r.lease_owner, r.lease_expires_at) {
            (Some(owner), Some(expires)) => Some(Lease {
                owner,
                expires_at: from_ms(expires, "change_orders.lease_expires_at")?,
            }),
            _ => None,
        };
        Ok(ChangeOrder {
            id: r.id,
            app_id: r.app_id,
            co_type: r.co_type,
            status: r.status,
            version: r.version,
            revision: r.revision,
            state: r.state.0,
            description: r.description,
            created_at: from_ms(r.created_at, "change_orders.created_at")?,
            updated_at: from_ms(r.updated_at, "change_orders.updated_at")?,
            finished_at: r
                .finished_at
                .map(|t| from_ms(t, "change_orders.finished_at"))
                .transpose()?,
            lease,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    resource: String,
    app_id: Option<String>,
    request_id: Option<String>,
    detail: Json<Value>,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;
    fn try_from(r: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditRecord {
            id: r.id,
            at: from_ms(r.at, "audit.at")?,
            entry: AuditEntry {
                actor: r.actor,
                action: r.action,
                resource: r.resource,
                app_id: r.app_id,
                request_id: r.request_id,
                detail: r.detail.0,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
struct ClusterRow {
    id: String,
    name: String,
    region_id: String,
    cluster_type: String,
    config: Json<Value>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ClusterRow> for Cluster {
    type Error = StoreError;
    fn try_from(r: ClusterRow) -> Result<Self, StoreError> {
        Ok(Cluster {
            id: r.id,
            name: r.name,
            region_id: r.region_id,
            cluster_type: r.cluster_type,
            config: r.config.0,
            created_at: from_ms(r.created_at, "clusters.created_at")?,
            updated_at: from_ms(r.updated_at, "clusters.updated_at")?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ConfigMapRow {
    cluster_id: String,
    k8s_namespace: String,
    name: String,
    data: Json<Value>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ConfigMapRow> for ConfigMap {
    type Error = StoreError;
    fn try_from(r: ConfigMapRow) -> Result<Self, StoreError> {
        Ok(ConfigMap {
            cluster_id: r.cluster_id,
            k8s_namespace: r.k8s_namespace,
            name: r.name,
            data: r.data.0,
            created_at: from_ms(r.created_at, "config_maps.created_at")?,
            updated_at: from_ms(r.updated_at, "config_maps.updated_at")?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SecretRow {
    cluster_id: String,
    k8s_namespace: String,
    name: String,
    data_encrypted: Vec<u8>,
    created_at: i64,
    updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct AccessKeyRow {
    id: String,
    secret_encrypted: Vec<u8>,
    user_name: String,
    enabled: bool,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    name: String,
    admin: bool,
    created_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            name: r.name,
            admin: r.admin,
            created_at: from_ms(r.created_at, "users.created_at")?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    name: String,
    document: Json<Value>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<PolicyRow> for Policy {
    type Error = StoreError;
    fn try_from(r: PolicyRow) -> Result<Self, StoreError> {
        Ok(Policy {
            name: r.name,
            document: r.document.0,
            created_at: from_ms(r.created_at, "policies.created_at")?,
            updated_at: from_ms(r.updated_at, "policies.updated_at")?,
        })
    }
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

fn map_conflict(e: sqlx::Error, entity: &'static str, id: &str, reason: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::conflict(entity, id, reason)
    } else {
        StoreError::Database(e)
    }
}

const INSERT_AUDIT: &str = "INSERT INTO audit (at, actor, action, resource, app_id, request_id, \
                            detail) VALUES ($1, $2, $3, $4, $5, $6, $7)";

const INSERT_CHANGE_ORDER: &str = "INSERT INTO change_orders (id, app_id, co_type, status, \
     version, revision, state, description, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $8)";

const ACTIVE_CHANGE_ORDER_ID: &str =
    "SELECT id FROM change_orders WHERE app_id = $1 AND finished_at IS NULL";

fn new_change_order(
    co: NewChangeOrder,
    app_id: &str,
    revision: Option<i64>,
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
        created_at: now,
        updated_at: now,
        finished_at: None,
        lease: None,
    }
}

fn validate_change_order(co: &NewChangeOrder) -> Result<(), StoreError> {
    non_empty(&co.id, "change order id")?;
    non_empty(&co.co_type, "change order type")
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
        };
        if let Err(e) = store.check_key().await {
            store.close().await;
            return Err(e);
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

    // -----------------------------------------------------------------------------------------
    // Applications, revisions and the change orders that create them.

    /// Creates an application, its revision 1 (`app.spec`), its first change order (which rolls
    /// out revision 1) and the audit record, in one transaction.
    ///
    /// [`StoreError::Conflict`] when the id is taken or a live application of the same region
    /// has the same name.
    pub async fn create_application(
        &self,
        app: NewApplication,
        change_order: NewChangeOrder,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<(Application, ChangeOrder), StoreError> {
        non_empty(&app.id, "application id")?;
        non_empty(&app.name, "application name")?;
        validate_change_order(&change_order)?;
        let now = truncate(now);
        let at = ms(now);
        on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let taken: Option<String> = sqlx::query_scalar(
                "SELECT id FROM applications WHERE region_id = $1 AND name = $2 \
                 AND deleted = FALSE",
            )
            .bind(&app.region_id)
            .bind(&app.name)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(other) = taken {
                return Err(StoreError::conflict(
                    "application",
                    &app.name,
                    format!("region {} already has an application of that name ({other})",
                        app.region_id),
                ));
            }
            sqlx::query(
                "INSERT INTO applications (id, name, region_id, namespace_id, cluster_id, \
                 k8s_namespace, current_revision, state, spec, created_at, updated_at, deleted) \
                 VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $9, FALSE)",
            )
            .bind(&app.id)
            .bind(&app.name)
            .bind(&app.region_id)
            .bind(&app.namespace_id)
            .bind(&app.cluster_id)
            .bind(&app.k8s_namespace)
            .bind(&app.state)
            .bind(Json(&app.spec))
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_conflict(e, "application", &app.id, "id or name already taken"))?;
            sqlx::query(
                "INSERT INTO revisions (app_id, number, spec, created_at) VALUES ($1, 1, $2, $3)",
            )
            .bind(&app.id)
            .bind(Json(&app.spec))
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(INSERT_CHANGE_ORDER)
                .bind(&change_order.id)
                .bind(&app.id)
                .bind(&change_order.co_type)
                .bind(change_order.status)
                .bind(Some(1i64))
                .bind(Json(&change_order.state))
                .bind(&change_order.description)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    map_conflict(e, "change order", &change_order.id, "id already taken")
                })?;
            insert_audit!(&mut *tx, &audit, at)?;
            tx.commit().await?;
        });
        let co = new_change_order(change_order, &app.id, Some(1), now);
        let app = Application {
            id: app.id,
            name: app.name,
            region_id: app.region_id,
            namespace_id: app.namespace_id,
            cluster_id: app.cluster_id,
            k8s_namespace: app.k8s_namespace,
            current_revision: 1,
            state: app.state,
            spec: app.spec,
            created_at: now,
            updated_at: now,
            deleted: false,
        };
        Ok((app, co))
    }

    /// Deploys: stores `spec` as the application's next revision, makes it current, and creates
    /// the change order that rolls it out plus the audit record, in one transaction.
    ///
    /// [`StoreError::Conflict`] when the application already has an active (unfinished) change
    /// order, also under concurrent callers (a unique partial index backs the check);
    /// [`StoreError::NotFound`] when the application does not exist or was deleted.
    pub async fn deploy(
        &self,
        app_id: &str,
        spec: Value,
        change_order: NewChangeOrder,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<(Revision, ChangeOrder), StoreError> {
        validate_change_order(&change_order)?;
        let now = truncate(now);
        let at = ms(now);
        let number: i64 = on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            // Locks the application row (PostgreSQL), serializing deploys of one application.
            let number: Option<i64> = sqlx::query_scalar(
                "UPDATE applications SET current_revision = current_revision + 1, spec = $1, \
                 updated_at = $2 WHERE id = $3 AND deleted = FALSE RETURNING current_revision",
            )
            .bind(Json(&spec))
            .bind(at)
            .bind(app_id)
            .fetch_optional(&mut *tx)
            .await?;
            let number = number.ok_or_else(|| StoreError::not_found("application", app_id))?;
            let active: Option<String> = sqlx::query_scalar(ACTIVE_CHANGE_ORDER_ID)
                .bind(app_id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(active) = active {
                return Err(active_conflict(app_id, &active));
            }
            sqlx::query(
                "INSERT INTO revisions (app_id, number, spec, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(app_id)
            .bind(number)
            .bind(Json(&spec))
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_conflict(e, "application", app_id, "concurrent deploy"))?;
            sqlx::query(INSERT_CHANGE_ORDER)
                .bind(&change_order.id)
                .bind(app_id)
                .bind(&change_order.co_type)
                .bind(change_order.status)
                .bind(Some(number))
                .bind(Json(&change_order.state))
                .bind(&change_order.description)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    map_conflict(
                        e,
                        "change order",
                        &change_order.id,
                        "id already taken, or the application has an active change order",
                    )
                })?;
            insert_audit!(&mut *tx, &audit, at)?;
            tx.commit().await?;
            number
        });
        let revision = Revision {
            app_id: app_id.to_owned(),
            number,
            spec,
            created_at: now,
        };
        Ok((
            revision,
            new_change_order(change_order, app_id, Some(number), now),
        ))
    }

    /// Creates a change order that makes no new revision (stop, start, restart, delete…) and its
    /// audit record, in one transaction. Same conflict rule as [`Store::deploy`].
    pub async fn start_change_order(
        &self,
        app_id: &str,
        change_order: NewChangeOrder,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<ChangeOrder, StoreError> {
        validate_change_order(&change_order)?;
        let now = truncate(now);
        let at = ms(now);
        on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let touched = sqlx::query(
                "UPDATE applications SET updated_at = $1 WHERE id = $2 AND deleted = FALSE",
            )
            .bind(at)
            .bind(app_id)
            .execute(&mut *tx)
            .await?;
            if touched.rows_affected() == 0 {
                return Err(StoreError::not_found("application", app_id));
            }
            let active: Option<String> = sqlx::query_scalar(ACTIVE_CHANGE_ORDER_ID)
                .bind(app_id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(active) = active {
                return Err(active_conflict(app_id, &active));
            }
            sqlx::query(INSERT_CHANGE_ORDER)
                .bind(&change_order.id)
                .bind(app_id)
                .bind(&change_order.co_type)
                .bind(change_order.status)
                .bind(None::<i64>)
                .bind(Json(&change_order.state))
                .bind(&change_order.description)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    map_conflict(
                        e,
                        "change order",
                        &change_order.id,
                        "id already taken, or the application has an active change order",
                    )
                })?;
            insert_audit!(&mut *tx, &audit, at)?;
            tx.commit().await?;
        });
        Ok(new_change_order(change_order, app_id, None, now))
    }

    /// Sets an application's lifecycle state, with its audit record.
    pub async fn set_application_state(
        &self,
        app_id: &str,
        state: &str,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let at = ms(now);
        on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("UPDATE applications SET state = $1, updated_at = $2 WHERE id = $3")
                .bind(state)
                .bind(at)
                .bind(app_id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::not_found("application", app_id));
            }
            insert_audit!(&mut *tx, &audit, at)?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// An application by id, deleted or not.
    pub async fn get_application(&self, id: &str) -> Result<Application, StoreError> {
        let row: Option<AppRow> = on_reader!(self, pool => {
            sqlx::query_as(concat!("SELECT ", app_cols!(), " FROM applications WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or_else(|| StoreError::not_found("application", id))?
            .try_into()
    }

    /// Live applications, optionally of one EDAS namespace and/or cluster, ordered by name.
    pub async fn list_applications(
        &self,
        filter: &ApplicationFilter,
        page: PageRequest,
    ) -> Result<Page<Application>, StoreError> {
        let (limit, offset) = limit_offset(page)?;
        // One static statement per filter shape, so each can use its index.
        let (select, count, binds): (&'static str, &'static str, Vec<&str>) =
            match (filter.namespace_id.as_deref(), filter.cluster_id.as_deref()) {
                (Some(ns), Some(cluster)) => (
                    concat!(
                        "SELECT ",
                        app_cols!(),
                        " FROM applications WHERE deleted = FALSE \
                        AND namespace_id = $3 AND cluster_id = $4 ORDER BY name, id \
                        LIMIT $1 OFFSET $2"
                    ),
                    "SELECT COUNT(*) FROM applications WHERE deleted = FALSE \
                        AND namespace_id = $1 AND cluster_id = $2",
                    vec![ns, cluster],
                ),
                (Some(ns), None) => (
                    concat!(
                        "SELECT ",
                        app_cols!(),
                        " FROM applications WHERE deleted = FALSE \
                        AND namespace_id = $3 ORDER BY name, id LIMIT $1 OFFSET $2"
                    ),
                    "SELECT COUNT(*) FROM applications WHERE deleted = FALSE \
                        AND namespace_id = $1",
                    vec![ns],
                ),
                (None, Some(cluster)) => (
                    concat!(
                        "SELECT ",
                        app_cols!(),
                        " FROM applications WHERE deleted = FALSE \
                        AND cluster_id = $3 ORDER BY name, id LIMIT $1 OFFSET $2"
                    ),
                    "SELECT COUNT(*) FROM applications WHERE deleted = FALSE AND cluster_id = $1",
                    vec![cluster],
                ),
                (None, None) => (
                    concat!(
                        "SELECT ",
                        app_cols!(),
                        " FROM applications WHERE deleted = FALSE \
                        ORDER BY name, id LIMIT $1 OFFSET $2"
                    ),
                    "SELECT COUNT(*) FROM applications WHERE deleted = FALSE",
                    vec![],
                ),
            };
        let (items, total): (Vec<AppRow>, i64) = on_reader!(self, pool => {
            let mut query = sqlx::query_as(select).bind(limit).bind(offset);
            let mut counting = sqlx::query_scalar(count);
            for value in &binds {
                query = query.bind(*value);
                counting = counting.bind(*value);
            }
            (query.fetch_all(pool).await?, counting.fetch_one(pool).await?)
        });
        Ok(page_of(rows(items)?, total, page))
    }

    /// One revision of an application.
    pub async fn get_revision(&self, app_id: &str, number: i64) -> Result<Revision, StoreError> {
        let row: Option<RevisionRow> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT app_id, number, spec, created_at FROM revisions \
                 WHERE app_id = $1 AND number = $2",
            )
            .bind(app_id)
            .bind(number)
            .fetch_optional(pool)
            .await?
        });
        row.ok_or_else(|| StoreError::not_found("revision", format!("{app_id}#{number}")))?
            .try_into()
    }

    /// An application's revisions, newest first.
    pub async fn list_revisions(
        &self,
        app_id: &str,
        page: PageRequest,
    ) -> Result<Page<Revision>, StoreError> {
        let (limit, offset) = limit_offset(page)?;
        let (items, total): (Vec<RevisionRow>, i64) = on_reader!(self, pool => {
            let items = sqlx::query_as(
                "SELECT app_id, number, spec, created_at FROM revisions WHERE app_id = $1 \
                 ORDER BY number DESC LIMIT $2 OFFSET $3",
            )
            .bind(app_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            let total = sqlx::query_scalar("SELECT COUNT(*) FROM revisions WHERE app_id = $1")
                .bind(app_id)
                .fetch_one(pool)
                .await?;
            (items, total)
        });
        Ok(page_of(rows(items)?, total, page))
    }

    // -----------------------------------------------------------------------------------------
    // Change orders.

    pub async fn get_change_order(&self, id: &str) -> Result<ChangeOrder, StoreError> {
        let row: Option<CoRow> = on_reader!(self, pool => {
            sqlx::query_as(concat!("SELECT ", co_cols!(), " FROM change_orders WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or_else(|| StoreError::not_found("change order", id))?
            .try_into()
    }

    /// The application's unfinished change order, if any (there is at most one).
    pub async fn active_change_order(
        &self,
        app_id: &str,
    ) -> Result<Option<ChangeOrder>, StoreError> {
        let row: Option<CoRow> = on_reader!(self, pool => {
            sqlx::query_as(concat!(
                "SELECT ", co_cols!(), " FROM change_orders \
                 WHERE app_id = $1 AND finished_at IS NULL"
            ))
            .bind(app_id)
            .fetch_optional(pool)
            .await?
        });
        row.map(ChangeOrder::try_from).transpose()
    }

    /// An application's change orders, newest first.
    pub async fn list_change_orders(
        &self,
        app_id: &str,
        page: PageRequest,
    ) -> Result<Page<ChangeOrder>, StoreError> {
        let (limit, offset) = limit_offset(page)?;
        let (items, total): (Vec<CoRow>, i64) = on_reader!(self, pool => {
            let items = sqlx::query_as(concat!(
                "SELECT ", co_cols!(), " FROM change_orders WHERE app_id = $1 \
                 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
            ))
            .bind(app_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            let total =
                sqlx::query_scalar("SELECT COUNT(*) FROM change_orders WHERE app_id = $1")
                    .bind(app_id)
                    .fetch_one(pool)
                    .await?;
            (items, total)
        });
        Ok(page_of(rows(items)?, total, page))
    }

    /// Compare-and-swap of a change order's status and state: succeeds only if the change
    /// order is still at `expected_version` and unfinished; writes the audit record (and the
    /// optional application update) in the same transaction. Returns the new version.
    ///
    /// [`StoreError::Stale`] when another writer (or a claim) moved it on;
    /// [`StoreError::Finished`] when it is already final. A finishing transition releases the
    /// lease.
    pub async fn transition(
        &self,
        id: &str,
        expected_version: i64,
        transition: Transition,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let at = ms(now);
        on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let updated: Option<(i64, String)> = if transition.finished {
                sqlx::query_as(
                    "UPDATE change_orders SET status = $1, state = $2, version = version + 1, \
                     updated_at = $3, finished_at = $3, lease_owner = NULL, \
                     lease_expires_at = NULL \
                     WHERE id = $4 AND version = $5 AND finished_at IS NULL \
                     RETURNING version, app_id",
                )
            } else {
                sqlx::query_as(
                    "UPDATE change_orders SET status = $1, state = $2, version = version + 1, \
                     updated_at = $3 \
                     WHERE id = $4 AND version = $5 AND finished_at IS NULL \
                     RETURNING version, app_id",
                )
            }
            .bind(transition.status)
            .bind(Json(&transition.state))
            .bind(at)
            .bind(id)
            .bind(expected_version)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((version, app_id)) = updated else {
                let current: Option<(i64, Option<i64>)> = sqlx::query_as(
                    "SELECT version, finished_at FROM change_orders WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                return Err(match current {
                    None => StoreError::not_found("change order", id),
                    Some((_, Some(_))) => StoreError::Finished { id: id.to_owned() },
                    Some((actual, None)) => StoreError::Stale {
                        id: id.to_owned(),
                        expected: expected_version,
                        actual,
                    },
                });
            };
            if let Some(state) = &transition.app_state {
                sqlx::query("UPDATE applications SET state = $1, updated_at = $2 WHERE id = $3")
                    .bind(state)
                    .bind(at)
                    .bind(&app_id)
                    .execute(&mut *tx)
                    .await?;
            }
            if transition.delete_app {
                sqlx::query("UPDATE applications SET deleted = TRUE, updated_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(&app_id)
                    .execute(&mut *tx)
                    .await?;
            }
            insert_audit!(&mut *tx, &audit, at)?;
            tx.commit().await?;
            Ok(version)
        })
    }

    /// Claims the oldest unfinished change order whose lease is free or expired at `now`, for
    /// `worker` until `now + lease`. The claim increments the version, so a previous owner's
    /// later transitions are refused as stale. `None` when nothing is claimable.
    ///
    /// On PostgreSQL the candidate row is locked `FOR UPDATE SKIP LOCKED`, so concurrent
    /// claimers never take the same order and never wait on each other.
    pub async fn claim_next(
        &self,
        worker: &str,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Option<ChangeOrder>, StoreError> {
        non_empty(worker, "worker id")?;
        let expires = plus(now, lease, "lease duration")?;
        let at = ms(now);
        let row: Option<CoRow> = match self.backend.as_ref() {
            Backend::Sqlite(s) => {
                sqlx::query_as(concat!(
                    "UPDATE change_orders SET lease_owner = $1, lease_expires_at = $2, \
                     version = version + 1 \
                     WHERE id = (SELECT id FROM change_orders WHERE finished_at IS NULL \
                       AND (lease_owner IS NULL OR lease_expires_at <= $3) \
                       ORDER BY created_at, id LIMIT 1) \
                     RETURNING ",
                    co_cols!()
                ))
                .bind(worker)
                .bind(expires)
                .bind(at)
                .fetch_optional(&s.writer)
                .await?
            }
            Backend::Postgres(pool) => {
                sqlx::query_as(concat!(
                    "UPDATE change_orders SET lease_owner = $1, lease_expires_at = $2, \
                     version = version + 1 \
                     WHERE id = (SELECT id FROM change_orders WHERE finished_at IS NULL \
                       AND (lease_owner IS NULL OR lease_expires_at <= $3) \
                       ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                     AND finished_at IS NULL \
                     AND (lease_owner IS NULL OR lease_expires_at <= $3) \
                     RETURNING ",
                    co_cols!()
                ))
                .bind(worker)
                .bind(expires)
                .bind(at)
                .fetch_optional(pool)
                .await?
            }
        };
        row.map(ChangeOrder::try_from).transpose()
    }

    /// Extends `worker`'s lease to `now + lease` and returns the new expiry. Works while the
    /// worker is still the owner, even past expiry if nobody took the order over;
    /// [`StoreError::LeaseNotHeld`] otherwise (taken over, released, or finished).
    pub async fn renew_lease(
        &self,
        id: &str,
        worker: &str,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Timestamp, StoreError> {
        let expires = plus(now, lease, "lease duration")?;
        let done = on_writer!(self, pool => {
            sqlx::query(
                "UPDATE change_orders SET lease_expires_at = $1 \
                 WHERE id = $2 AND lease_owner = $3 AND finished_at IS NULL",
            )
            .bind(expires)
            .bind(id)
            .bind(worker)
            .execute(pool)
            .await?.rows_affected()
        });
        if done == 0 {
            return Err(StoreError::LeaseNotHeld {
                id: id.to_owned(),
                worker: worker.to_owned(),
            });
        }
        from_ms(expires, "lease expiry")
    }

    /// Gives the lease back so another worker can claim at once. Returns whether `worker` held
    /// it.
    pub async fn release_lease(&self, id: &str, worker: &str) -> Result<bool, StoreError> {
        let done = on_writer!(self, pool => {
            sqlx::query(
                "UPDATE change_orders SET lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(id)
            .bind(worker)
            .execute(pool)
            .await?.rows_affected()
        });
        Ok(done > 0)
    }

    // -----------------------------------------------------------------------------------------
    // Audit trail.

    /// Appends an audit record on its own (for actions that change nothing else here).
    pub async fn append_audit(&self, entry: &AuditEntry, now: Timestamp) -> Result<(), StoreError> {
        on_writer!(self, pool => {
            insert_audit!(pool, entry, ms(now))?;
        });
        Ok(())
    }

    /// Audit records, newest first, of one application (or all) in `[from, to)`.
    pub async fn list_audit(
        &self,
        query: &AuditQuery,
        page: PageRequest,
    ) -> Result<Page<AuditRecord>, StoreError> {
        let (limit, offset) = limit_offset(page)?;
        let from = query.from.map_or(i64::MIN, ms);
        let to = query.to.map_or(i64::MAX, ms);
        let (items, total): (Vec<AuditRow>, i64) = on_reader!(self, pool => {
            match &query.app_id {
                Some(app_id) => {
                    let items = sqlx::query_as(concat!(
                        "SELECT ", audit_cols!(), " FROM audit WHERE app_id = $1 \
                         AND at >= $2 AND at < $3 ORDER BY at DESC, id DESC LIMIT $4 OFFSET $5"
                    ))
                    .bind(app_id)
                    .bind(from)
                    .bind(to)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(pool)
                    .await?;
                    let total = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM audit WHERE app_id = $1 AND at >= $2 AND at < $3",
                    )
                    .bind(app_id)
                    .bind(from)
                    .bind(to)
                    .fetch_one(pool)
                    .await?;
                    (items, total)
                }
                None => {
                    let items = sqlx::query_as(concat!(
                        "SELECT ", audit_cols!(), " FROM audit WHERE at >= $1 AND at < $2 \
                         ORDER BY at DESC, id DESC LIMIT $3 OFFSET $4"
                    ))
                    .bind(from)
                    .bind(to)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(pool)
                    .await?;
                    let total =
                        sqlx::query_scalar("SELECT COUNT(*) FROM audit WHERE at >= $1 AND at < $2")
                            .bind(from)
                            .bind(to)
                            .fetch_one(pool)
                            .await?;
                    (items, total)
                }
            }
        });
        Ok(page_of(rows(items)?, total, page))
    }

    // -----------------------------------------------------------------------------------------
    // Clusters, ConfigMaps, Secrets.

    /// Inserts or replaces a cluster (`created_at` of an existing one is kept).
    pub async fn put_cluster(&self, cluster: &Cluster) -> Result<(), StoreError> {
        non_empty(&cluster.id, "cluster id")?;
        on_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO clusters (id, name, region_id, cluster_type, config, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                 region_id = excluded.region_id, cluster_type = excluded.cluster_type, \
                 config = excluded.config, updated_at = excluded.updated_at",
            )
            .bind(&cluster.id)
            .bind(&cluster.name)
            .bind(&cluster.region_id)
            .bind(&cluster.cluster_type)
            .bind(Json(&cluster.config))
            .bind(ms(cluster.created_at))
            .bind(ms(cluster.updated_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn get_cluster(&self, id: &str) -> Result<Cluster, StoreError> {
        let row: Option<ClusterRow> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT id, name, region_id, cluster_type, config, created_at, updated_at \
                 FROM clusters WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        row.ok_or_else(|| StoreError::not_found("cluster", id))?
            .try_into()
    }

    pub async fn list_clusters(&self) -> Result<Vec<Cluster>, StoreError> {
        let items: Vec<ClusterRow> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT id, name, region_id, cluster_type, config, created_at, updated_at \
                 FROM clusters ORDER BY id",
            )
            .fetch_all(pool)
            .await?
        });
        rows(items)
    }

    /// Returns whether the cluster existed.
    pub async fn delete_cluster(&self, id: &str) -> Result<bool, StoreError> {
        let done = on_writer!(self, pool => {
            sqlx::query("DELETE FROM clusters WHERE id = $1").bind(id).execute(pool).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// Inserts or replaces a ConfigMap (`created_at` of an existing one is kept).
    pub async fn put_config_map(&self, config_map: &ConfigMap) -> Result<(), StoreError> {
        non_empty(&config_map.name, "config map name")?;
        on_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO config_maps (cluster_id, k8s_namespace, name, data, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (cluster_id, k8s_namespace, name) DO UPDATE SET \
                 data = excluded.data, updated_at = excluded.updated_at",
            )
            .bind(&config_map.cluster_id)
            .bind(&config_map.k8s_namespace)
            .bind(&config_map.name)
            .bind(Json(&config_map.data))
            .bind(ms(config_map.created_at))
            .bind(ms(config_map.updated_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn get_config_map(
        &self,
        cluster_id: &str,
        k8s_namespace: &str,
        name: &str,
    ) -> Result<ConfigMap, StoreError> {
        let row: Option<ConfigMapRow> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT cluster_id, k8s_namespace, name, data, created_at, updated_at \
                 FROM config_maps WHERE cluster_id = $1 AND k8s_namespace = $2 AND name = $3",
            )
            .bind(cluster_id)
            .bind(k8s_namespace)
            .bind(name)
            .fetch_optional(pool)
            .await?
        });
        row.ok_or_else(|| {
            StoreError::not_found("config map", format!("{cluster_id}/{k8s_namespace}/{name}"))
        })?
        .try_into()
    }

    /// The ConfigMaps of one Kubernetes namespace of a cluster, by name.
    pub async fn list_config_maps(
        &self,
        cluster_id: &str,
        k8s_namespace: &str,
    ) -> Result<Vec<ConfigMap>, StoreError> {
        let items: Vec<ConfigMapRow> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT cluster_id, k8s_namespace, name, data, created_at, updated_at \
                 FROM config_maps WHERE cluster_id = $1 AND k8s_namespace = $2 ORDER BY name",
            )
            .bind(cluster_id)
            .bind(k8s_namespace)
            .fetch_all(pool)
            .await?
        });
        rows(items)
    }

    pub async fn delete_config_map(
        &self,
        cluster_id: &str,
        k8s_namespace: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let done = on_writer!(self, pool => {
            sqlx::query(
                "DELETE FROM config_maps WHERE cluster_id = $1 AND k8s_namespace = $2 \
                 AND name = $3",
            )
            .bind(cluster_id)
            .bind(k8s_namespace)
            .bind(name)
            .execute(pool)
            .await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// Inserts or replaces a Secret; its data is encrypted before it leaves this process.
    pub async fn put_secret(&self, secret: &SecretRecord) -> Result<(), StoreError> {
        non_empty(&secret.name, "secret name")?;
        let context = secret_context(&secret.cluster_id, &secret.k8s_namespace, &secret.name);
        let plain =
            serde_json::to_vec(secret.data.expose()).map_err(|e| StoreError::InvalidInput {
                field: "secret data",
                reason: e.to_string(),
            })?;
        let sealed = self.cipher.seal(&context, &plain)?;
        on_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO secrets (cluster_id, k8s_namespace, name, data_encrypted, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (cluster_id, k8s_namespace, name) DO UPDATE SET \
                 data_encrypted = excluded.data_encrypted, updated_at = excluded.updated_at",
            )
            .bind(&secret.cluster_id)
            .bind(&secret.k8s_namespace)
            .bind(&secret.name)
            .bind(&sealed)
            .bind(ms(secret.created_at))
            .bind(ms(secret.updated_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn get_secret(
        &self,
        cluster_id: &str,
        k8s_namespace: &str,
        name: &str,
    ) -> Result<SecretRecord, StoreError> {
        let row: Option<SecretRow> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT cluster_id, k8s_namespace, name, data_encrypted, created_at, updated_at \
                 FROM secrets WHERE cluster_id = $1 AND k8s_namespace = $2 AND name = $3",
            )
            .bind(cluster_id)
            .bind(k8s_namespace)
            .bind(name)
            .fetch_optional(pool)
            .await?
        });
        let row = row.ok_or_else(|| {
            StoreError::not_found("secret", format!("{cluster_id}/{k8s_namespace}/{name}"))
        })?;
        self.open_secret(row)
    }

    /// The Secrets of one Kubernetes namespace of a cluster, by name, decrypted.
    pub async fn list_secrets(
        &self,
        cluster_id: &str,
        k8s_namespace: &str,
    ) -> Result<Vec<SecretRecord>, StoreError> {
        let items: Vec<SecretRow> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT cluster_id, k8s_namespace, name, data_encrypted, created_at, updated_at \
                 FROM secrets WHERE cluster_id = $1 AND k8s_namespace = $2 ORDER BY name",
            )
            .bind(cluster_id)
            .bind(k8s_namespace)
            .fetch_all(pool)
            .await?
        });
        items.into_iter().map(|row| self.open_secret(row)).collect()
    }

    fn open_secret(&self, row: SecretRow) -> Result<SecretRecord, StoreError> {
        let context = secret_context(&row.cluster_id, &row.k8s_namespace, &row.name);
        let plain = self.cipher.open(&context, &row.data_encrypted)?;
        let data: Value = serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt {
            what: "secrets.data",
            reason: e.to_string(),
        })?;
        Ok(SecretRecord {
            cluster_id: row.cluster_id,
            k8s_namespace: row.k8s_namespace,
            name: row.name,
            data: Sensitive::new(data),
            created_at: from_ms(row.created_at, "secrets.created_at")?,
            updated_at: from_ms(row.updated_at, "secrets.updated_at")?,
        })
    }

    pub async fn delete_secret(
        &self,
        cluster_id: &str,
        k8s_namespace: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let done = on_writer!(self, pool => {
            sqlx::query(
                "DELETE FROM secrets WHERE cluster_id = $1 AND k8s_namespace = $2 AND name = $3",
            )
            .bind(cluster_id)
            .bind(k8s_namespace)
            .bind(name)
            .execute(pool)
            .await?.rows_affected()
        });
        Ok(done > 0)
    }

    // -----------------------------------------------------------------------------------------
    // Users, access keys, policies.

    /// Inserts or updates a user (`created_at` of an existing one is kept).
    pub async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        non_empty(&user.name, "user name")?;
        on_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO users (name, admin, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET admin = excluded.admin",
            )
            .bind(&user.name)
            .bind(user.admin)
            .bind(ms(user.created_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn get_user(&self, name: &str) -> Result<User, StoreError> {
        let row: Option<UserRow> = on_reader!(self, pool => {
            sqlx::query_as("SELECT name, admin, created_at FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or_else(|| StoreError::not_found("user", name))?
            .try_into()
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let items: Vec<UserRow> = on_reader!(self, pool => {
            sqlx::query_as("SELECT name, admin, created_at FROM users ORDER BY name")
                .fetch_all(pool)
                .await?
        });
        rows(items)
    }

    /// Deletes a user with its access keys and policy attachments. Returns whether it existed.
    pub async fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        let done = on_writer!(self, pool => {
            sqlx::query("DELETE FROM users WHERE name = $1").bind(name).execute(pool).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// Stores a new access key (its secret encrypted). [`StoreError::Conflict`] if the id is
    /// taken, [`StoreError::NotFound`] if the user does not exist.
    pub async fn create_access_key(&self, key: &AccessKey) -> Result<(), StoreError> {
        non_empty(&key.id, "access key id")?;
        non_empty(key.secret.expose(), "access key secret")?;
        let sealed = self
            .cipher
            .seal(&access_key_context(&key.id), key.secret.expose().as_bytes())?;
        on_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO access_keys (id, secret_encrypted, user_name, enabled, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&key.id)
            .bind(&sealed)
            .bind(&key.user)
            .bind(key.enabled)
            .bind(ms(key.created_at))
            .execute(pool)
            .await
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    StoreError::not_found("user", &key.user)
                } else {
                    map_conflict(e, "access key", &key.id, "id already taken")
                }
            })?;
        });
        Ok(())
    }

    /// An access key with its decrypted secret.
    pub async fn get_access_key(&self, id: &str) -> Result<AccessKey, StoreError> {
        let row: Option<AccessKeyRow> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT id, secret_encrypted, user_name, enabled, created_at FROM access_keys \
                 WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        self.open_access_key(row.ok_or_else(|| StoreError::not_found("access key", id))?)
    }

    /// A user's access keys, by id.
    pub async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKey>, StoreError> {
        let items: Vec<AccessKeyRow> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT id, secret_encrypted, user_name, enabled, created_at FROM access_keys \
                 WHERE user_name = $1 ORDER BY id",
            )
            .bind(user)
            .fetch_all(pool)
            .await?
        });
        items
            .into_iter()
            .map(|row| self.open_access_key(row))
            .collect()
    }

    fn open_access_key(&self, row: AccessKeyRow) -> Result<AccessKey, StoreError> {
        let plain = self
            .cipher
            .open(&access_key_context(&row.id), &row.secret_encrypted)?;
        let secret = String::from_utf8(plain).map_err(|_| StoreError::Corrupt {
            what: "access_keys.secret",
            reason: "not UTF-8".into(),
        })?;
        Ok(AccessKey {
            id: row.id,
            secret: Sensitive::new(secret),
            user: row.user_name,
            enabled: row.enabled,
            created_at: from_ms(row.created_at, "access_keys.created_at")?,
        })
    }

    pub async fn set_access_key_enabled(&self, id: &str, enabled: bool) -> Result<(), StoreError> {
        let done = on_writer!(self, pool => {
            sqlx::query("UPDATE access_keys SET enabled = $1 WHERE id = $2")
                .bind(enabled)
                .bind(id)
                .execute(pool)
                .await?.rows_affected()
        });
        if done == 0 {
            return Err(StoreError::not_found("access key", id));
        }
        Ok(())
    }

    pub async fn delete_access_key(&self, id: &str) -> Result<bool, StoreError> {
        let done = on_writer!(self, pool => {
            sqlx::query("DELETE FROM access_keys WHERE id = $1").bind(id).execute(pool).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// Inserts or replaces a policy (`created_at` of an existing one is kept).
    pub async fn put_policy(&self, policy: &Policy) -> Result<(), StoreError> {
        non_empty(&policy.name, "policy name")?;
        on_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO policies (name, document, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET \
                 document = excluded.document, updated_at = excluded.updated_at",
            )
            .bind(&policy.name)
            .bind(Json(&policy.document))
            .bind(ms(policy.created_at))
            .bind(ms(policy.updated_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn get_policy(&self, name: &str) -> Result<Policy, StoreError> {
        let row: Option<PolicyRow> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT name, document, created_at, updated_at FROM policies WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await?
        });
        row.ok_or_else(|| StoreError::not_found("policy", name))?
            .try_into()
    }

    pub async fn list_policies(&self) -> Result<Vec<Policy>, StoreError> {
        let items: Vec<PolicyRow> = on_reader!(self, pool => {
            sqlx::query_as("SELECT name, document, created_at, updated_at FROM policies ORDER BY name")
                .fetch_all(pool)
                .await?
        });
        rows(items)
    }

    /// Deletes a policy and its attachments. Returns whether it existed.
    pub async fn delete_policy(&self, name: &str) -> Result<bool, StoreError> {
        let done = on_writer!(self, pool => {
            sqlx::query("DELETE FROM policies WHERE name = $1").bind(name).execute(pool).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// Attaches a policy to a user (idempotent). [`StoreError::NotFound`] if either is missing.
    pub async fn attach_policy(&self, user: &str, policy: &str) -> Result<(), StoreError> {
        on_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO user_policies (user_name, policy_name) VALUES ($1, $2) \
                 ON CONFLICT (user_name, policy_name) DO NOTHING",
            )
            .bind(user)
            .bind(policy)
            .execute(pool)
            .await
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    StoreError::not_found("user or policy", format!("{user}/{policy}"))
                } else {
                    StoreError::Database(e)
                }
            })?;
        });
        Ok(())
    }

    /// Returns whether the policy was attached.
    pub async fn detach_policy(&self, user: &str, policy: &str) -> Result<bool, StoreError> {
        let done = on_writer!(self, pool => {
            sqlx::query("DELETE FROM user_policies WHERE user_name = $1 AND policy_name = $2")
                .bind(user)
                .bind(policy)
                .execute(pool)
                .await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// The policies attached to a user, by name.
    pub async fn user_policies(&self, user: &str) -> Result<Vec<Policy>, StoreError> {
        let items: Vec<PolicyRow> = on_reader!(self, pool => {
            sqlx::query_as(
                "SELECT p.name, p.document, p.created_at, p.updated_at FROM policies p \
                 JOIN user_policies up ON up.policy_name = p.name \
                 WHERE up.user_name = $1 ORDER BY p.name",
            )
            .bind(user)
            .fetch_all(pool)
            .await?
        });
        rows(items)
    }

    // -----------------------------------------------------------------------------------------
    // Retention and backup.

    /// Deletes finished change orders and audit records beyond their retention, in one
    /// transaction. Unfinished change orders, applications and revisions are never pruned.
    pub async fn prune(
        &self,
        change_orders: Retention,
        audit: Retention,
        now: Timestamp,
    ) -> Result<PruneReport, StoreError> {
        let cutoff = |r: &Retention, field| -> Result<Option<i64>, StoreError> {
            r.max_age
                .map(|age| Ok(ms(now).saturating_sub(duration_ms(age, field)?)))
                .transpose()
        };
        let co_cutoff = cutoff(&change_orders, "change order max age")?;
        let audit_cutoff = cutoff(&audit, "audit max age")?;
        let keep = |r: &Retention| r.max_count.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let (co_keep, audit_keep) = (keep(&change_orders), keep(&audit));
        let mut report = PruneReport::default();
        on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            if let Some(cutoff) = co_cutoff {
                report.change_orders += sqlx::query(
                    "DELETE FROM change_orders WHERE finished_at IS NOT NULL AND finished_at < $1",
                )
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            if let Some(keep) = co_keep {
                report.change_orders += sqlx::query(
                    "DELETE FROM change_orders WHERE id IN (SELECT id FROM change_orders \
                     WHERE finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC \
                     LIMIT $1 OFFSET $2)",
                )
                .bind(i64::MAX)
                .bind(keep)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            if let Some(cutoff) = audit_cutoff {
                report.audit_records += sqlx::query("DELETE FROM audit WHERE at < $1")
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            if let Some(keep) = audit_keep {
                report.audit_records += sqlx::query(
                    "DELETE FROM audit WHERE id IN (SELECT id FROM audit \
                     ORDER BY at DESC, id DESC LIMIT $1 OFFSET $2)",
                )
                .bind(i64::MAX)
                .bind(keep)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
        });
        Ok(report)
    }

    /// Writes a consistent copy of the live SQLite database to `destination` (which must not
    /// exist) with `VACUUM INTO`, while the store keeps serving. The copy holds ciphertexts
    /// only: keep the key file with it. PostgreSQL backups are `pg_dump`'s job
    /// ([`StoreError::Unsupported`]).
    pub async fn backup_to(&self, destination: &Path) -> Result<(), StoreError> {
        let Backend::Sqlite(sqlite) = self.backend.as_ref() else {
            return Err(StoreError::Unsupported {
                operation: "backup",
                backend: "postgres (use pg_dump)",
            });
        };
        if destination.exists() {
            return Err(StoreError::InvalidInput {
                field: "backup destination",
                reason: format!("{} already exists", destination.display()),
            });
        }
        let path = destination
            .to_str()
            .ok_or_else(|| StoreError::InvalidInput {
                field: "backup destination",
                reason: format!("{} is not valid UTF-8", destination.display()),
            })?;
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(&sqlite.reader)
            .await?;
        Ok(())
    }
}

fn active_conflict(app_id: &str, active: &str) -> StoreError {
    StoreError::conflict(
        "application",
        app_id,
        format!("change order {active} is still in progress"),
    )
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
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    if let Err(e) = migrate(&writer, &SQLITE_MIGRATOR).await {
        writer.close().await;
        return Err(e);
    }
    let reader = SqlitePoolOptions::new()
        .max_connections(SQLITE_READERS)
        .connect_with(options.create_if_missing(false))
        .await?;
    Ok(SqliteBackend { writer, reader })
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

impl SchemaVersion for SqlitePool {
    async fn applied_schema_version(&self) -> Result<Option<i64>, StoreError> {
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(self)
        .await?;
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

impl SchemaVersion for PgPool {
    async fn applied_schema_version(&self) -> Result<Option<i64>, StoreError> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(self)
            .await?;
        if !exists {
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

/// Replaces the SQLite database at `database` with the backup file `backup` (made by
/// [`Store::backup_to`]).
///
/// **The store must be stopped** (no process may have `database` open): the copy is written
/// beside it, synced, and renamed over it, and the old WAL and shared-memory files are
/// removed. The key file the backup was made with must be in place (it is not in the backup).
pub fn restore_sqlite_backup(backup: &Path, database: &Path) -> Result<(), StoreError> {
    use std::io::Read;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    let mut header = [0u8; 16];
    std::fs::File::open(backup)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(io(backup))?;
    if &header != b"SQLite format 3\0" {
        return Err(StoreError::InvalidInput {
            field: "backup",
            reason: format!("{} is not an SQLite database", backup.display()),
        });
    }
    let staging = sibling(database, ".restore-tmp");
    std::fs::copy(backup, &staging).map_err(io(&staging))?;
    std::fs::File::open(&staging)
        .and_then(|f| f.sync_all())
        .map_err(io(&staging))?;
    for suffix in ["-wal", "-shm"] {
        let path = sibling(database, suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::Io { path, source: e }),
        }
    }
    std::fs::rename(&staging, database).map_err(io(database))?;
    if let Some(parent) = database.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io(parent))?;
    }
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
