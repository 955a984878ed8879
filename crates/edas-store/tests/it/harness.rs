//! Test stores: SQLite in a temporary data directory, PostgreSQL in a fresh schema of the
//! database named by `EDAS_TEST_PG_URL` (so tests run in parallel, each in its own process
//! under nextest).
//!
//! PostgreSQL missing: the PostgreSQL tests FAIL when `CI` is set or `EDAS_TEST_REQUIRE_PG=1`,
//! and print that they were skipped otherwise. `source scripts/setup.d/20-postgres.sh` starts
//! one and sets the variable.

use edas_release::{ChangeKind, Instances, NewOrder, ReleaseSettings, RevisionId, Strategy, plan};
use edas_spec::AppSpec;
use edas_spec::model::{PortMapping, ServiceConfig, ServicePort};
use edas_store::{
    AuditEntry, ChangeOrderState, ChangeOrderStatus, EncryptionKey, NewApplication, NewChangeOrder,
    RevisionDoc, Store, Transition,
};
use jiff::Timestamp;
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection};

pub struct TestStore {
    pub store: Store,
    pub location: String,
    pub key: EncryptionKey,
    raw: Raw,
    _dir: Option<tempfile::TempDir>,
}

enum Raw {
    Sqlite(std::path::PathBuf),
    Postgres { url: String, schema: String },
}

pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = dir
        .path()
        .join("data")
        .to_str()
        .expect("utf-8 temp path")
        .to_owned();
    let key = EncryptionKey::generate();
    let store = Store::open(&location, &key)
        .await
        .expect("open sqlite store");
    let db = dir.path().join("data").join(edas_store::SQLITE_FILE_NAME);
    TestStore {
        store,
        location,
        key,
        raw: Raw::Sqlite(db),
        _dir: Some(dir),
    }
}

/// The PostgreSQL URL, or `None` (after printing why) when the tier is skipped here.
pub fn pg_url() -> Option<String> {
    if let Ok(url) = std::env::var("EDAS_TEST_PG_URL")
        && !url.trim().is_empty()
    {
        return Some(url);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty());
    let required = std::env::var("EDAS_TEST_REQUIRE_PG").is_ok_and(|v| v == "1");
    assert!(
        !(ci || required),
        "EDAS_TEST_PG_URL is not set, but the PostgreSQL tests are required here (CI or \
         EDAS_TEST_REQUIRE_PG=1): source scripts/setup.d/20-postgres.sh first"
    );
    eprintln!(
        "SKIPPED: EDAS_TEST_PG_URL is not set; source scripts/setup.d/20-postgres.sh to run the \
         PostgreSQL tier"
    );
    None
}

pub async fn postgres() -> Option<TestStore> {
    let url = pg_url()?;
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .expect("connect to EDAS_TEST_PG_URL");
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .expect("create test schema");
    conn.close().await.ok();
    let location = with_search_path(&url, &schema);
    let key = EncryptionKey::generate();
    let store = Store::open(&location, &key)
        .await
        .expect("open postgres store");
    Some(TestStore {
        store,
        location,
        key,
        raw: Raw::Postgres { url, schema },
        _dir: None,
    })
}

fn with_search_path(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

impl TestStore {
    /// A second, independent store on the same database (its own pools, like another process).
    pub async fn reopen(&self) -> Store {
        Store::open(&self.location, &self.key)
            .await
            .expect("reopen store")
    }

    /// Closes the store and, on PostgreSQL, drops the test's schema. Called when a test passed
    /// (a failed test leaves its schema behind for inspection).
    pub async fn finish(self) {
        self.store.close().await;
        if let Raw::Postgres { url, schema } = &self.raw {
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .expect("connect for cleanup");
            sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut conn)
                .await
                .expect("drop test schema");
            conn.close().await.ok();
        }
    }

    /// Runs SQL directly, bypassing the store (to inspect or tamper with the database).
    pub async fn raw_execute(&self, sql: &str) {
        match &self.raw {
            Raw::Sqlite(path) => {
                let mut conn = sqlite_conn(path).await;
                sqlx::query(AssertSqlSafe(sql.to_owned()))
                    .execute(&mut conn)
                    .await
                    .expect(sql);
            }
            Raw::Postgres { url, schema } => {
                let mut conn = sqlx::PgConnection::connect(&with_search_path(url, schema))
                    .await
                    .expect("raw connect");
                sqlx::query(AssertSqlSafe(sql.to_owned()))
                    .execute(&mut conn)
                    .await
                    .expect(sql);
            }
        }
    }

    /// The first column (bytes) of every row of `sql`, read directly.
    pub async fn raw_blobs(&self, sql: &str) -> Vec<Vec<u8>> {
        match &self.raw {
            Raw::Sqlite(path) => {
                let mut conn = sqlite_conn(path).await;
                sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&mut conn)
                    .await
                    .expect(sql)
            }
            Raw::Postgres { url, schema } => {
                let mut conn = sqlx::PgConnection::connect(&with_search_path(url, schema))
                    .await
                    .expect("raw connect");
                sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&mut conn)
                    .await
                    .expect(sql)
            }
        }
    }
}

async fn sqlite_conn(path: &std::path::Path) -> sqlx::SqliteConnection {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
    sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("raw sqlite connect")
}

/// A fixed base time plus `seconds`: tests pass time explicitly.
pub fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_780_000_000 + seconds).expect("valid test time")
}

pub fn audit(action: &str, app_id: &str) -> AuditEntry {
    AuditEntry {
        actor: "LTAItest".into(),
        action: action.into(),
        resource: format!("application/{app_id}"),
        app_id: Some(app_id.into()),
        request_id: Some(format!("req-{action}")),
        detail: json!({ "note": action }),
    }
}

pub fn new_app(id: &str, name: &str, namespace: &str, cluster: &str) -> NewApplication {
    NewApplication {
        id: id.into(),
        name: name.into(),
        region_id: "cn-hangzhou".into(),
        namespace_id: namespace.into(),
        namespace_stored: false,
        cluster_id: cluster.into(),
        k8s_namespace: "default".into(),
        state: "DEPLOYING".into(),
        spec: spec(&format!("{name}-1")),
    }
}

/// A revision document told apart by `marker` (its template revision), without Services.
pub fn spec(marker: &str) -> RevisionDoc {
    RevisionDoc::new(marker, AppSpec::default())
}

/// A revision document with one Service on each of `ports`.
pub fn spec_with_ports(marker: &str, ports: &[i64]) -> RevisionDoc {
    let services = ports
        .iter()
        .map(|&port| ServiceConfig {
            name: format!("svc-{port}"),
            service_type: "ClusterIP".into(),
            port_mappings: vec![PortMapping {
                service_port: ServicePort {
                    port,
                    target_port: port,
                    protocol: None,
                    node_port: None,
                },
            }],
        })
        .collect();
    RevisionDoc::new(
        marker,
        AppSpec {
            services,
            ..AppSpec::default()
        },
    )
}

/// A change-order state told apart by `marker` (its description).
pub fn state(marker: &str) -> ChangeOrderState {
    let revision = RevisionId("1".into());
    ChangeOrderState::new(
        NewOrder {
            id: "co".into(),
            kind: ChangeKind::Deploy,
            description: marker.into(),
            from: None,
            to: Instances {
                revision,
                replicas: 0,
                ready: 0,
            },
            plan: plan(1, &Strategy::Single).expect("a one-batch plan"),
            settings: ReleaseSettings::default(),
        },
        edas_release::EpochMillis(0),
    )
    .expect("a valid change order")
}

pub fn new_co(id: &str) -> NewChangeOrder {
    NewChangeOrder {
        id: id.into(),
        co_type: "CoDeploy".into(),
        status: st(0),
        state: state("new"),
        description: format!("change order {id}"),
    }
}

pub fn step(status: i32, state: ChangeOrderState) -> Transition {
    Transition {
        status: st(status),
        state,
        finished: false,
        app_state: None,
        delete_app: false,
        before: None,
    }
}

pub fn finish(status: i32) -> Transition {
    Transition {
        status: st(status),
        state: state("done"),
        finished: true,
        app_state: Some("RUNNING".into()),
        delete_app: false,
        before: None,
    }
}

/// Creates application `id` (name = id) with change order `co`, at `now`.
pub async fn create(store: &Store, id: &str, co: &str, now: Timestamp) {
    store
        .create_application(
            new_app(id, id, "cn-hangzhou:ns", "c1"),
            new_co(co),
            audit("Insert", id),
            now,
        )
        .await
        .expect("create application");
}

/// The status of EDAS code `code` (tests write the wire codes).
pub fn st(code: i32) -> ChangeOrderStatus {
    ChangeOrderStatus::from_code(code).expect("a known status code")
}
