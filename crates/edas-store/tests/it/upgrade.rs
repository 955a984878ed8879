//! Opening a database written by the previous schema: [`edas_store::Store::open`] migrates it
//! in place and the old rows read back typed (status enum, creator backfilled from the audit
//! trail, Service ports indexed from the spec). The old schema is built here by applying only the migrations that came before.

use edas_store::{ChangeOrderStatus, EncryptionKey, Store};
use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, Connection};

/// The first migration this test upgrades across.
const FIRST_NEW: &str = "20261206000100";

/// A migrator of `backend`'s migrations older than [`FIRST_NEW`] (copied to `dir`).
async fn old_migrator(backend: &str, dir: &std::path::Path) -> Migrator {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for entry in std::fs::read_dir(&source).expect("read migrations") {
        let entry = entry.expect("migration entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.as_str() < FIRST_NEW {
            std::fs::copy(entry.path(), dir.join(&name)).expect("copy migration");
        }
    }
    Migrator::new(dir).await.expect("old migrator")
}

/// Rows as the previous schema stored them: no `creator` column; the creation's audit record
/// (by `LTAIcreator`) is older than the engine's transition record (by `system`).
const OLD_ROWS: [&str; 5] = [
    "INSERT INTO applications (id, name, region_id, namespace_id, cluster_id, k8s_namespace, \
     current_revision, state, spec, created_at, updated_at, deleted) VALUES ('app-1', 'alpha', \
     'cn-hangzhou', 'cn-hangzhou', 'c1', 'default', 1, 'DEPLOYING', '{\"spec\":{\"services\":[{\"name\":\"web\",\
     \"serviceType\":\"ClusterIP\",\"portMappings\":[{\"servicePort\":{\"port\":8080,\"targetPort\":80}},\
     {\"servicePort\":{\"port\":8443,\"targetPort\":443}}]}]}}', 1000, 1000, FALSE)",
    "INSERT INTO revisions (app_id, number, spec, created_at) VALUES ('app-1', 1, '{\"replicas\":1}', 1000)",
    "INSERT INTO change_orders (id, app_id, co_type, status, version, revision, state, description, \
     created_at, updated_at) VALUES ('co-1', 'app-1', 'CoCreateApp', 1, 2, 1, '{}', 'create', 1000, 2000)",
    "INSERT INTO audit (at, actor, action, resource, app_id, request_id, detail) VALUES \
     (1000, 'LTAIcreator', 'InsertK8sApplication', 'application/app-1', 'app-1', 'r1', '{\"change_order\":\"co-1\"}')",
    "INSERT INTO audit (at, actor, action, resource, app_id, request_id, detail) VALUES \
     (2000, 'system', 'ChangeOrder.Transition', 'application/app-1', 'app-1', NULL, '{\"change_order\":\"co-1\"}')",
];

async fn check_upgraded(store: &Store) {
    let co = store
        .get_change_order("co-1")
        .await
        .expect("old change order");
    assert_eq!(co.status, ChangeOrderStatus::InProgress);
    assert_eq!(co.creator.as_deref(), Some("LTAIcreator"));
    assert_eq!(co.version, 2);
    assert_eq!(
        store.count_active_change_orders().await.unwrap(),
        [(ChangeOrderStatus::InProgress, 1)]
    );
    let app = store
        .get_application("app-1")
        .await
        .expect("old application");
    assert_eq!((app.name.as_str(), app.current_revision), ("alpha", 1));
}

#[tokio::test]
async fn a_sqlite_database_of_the_previous_schema_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let migrations = tempfile::tempdir().unwrap();
    let old = old_migrator("sqlite", migrations.path()).await;
    let file = data.join(edas_store::SQLITE_FILE_NAME);
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    old.run(&mut conn).await.expect("old migrations");
    for sql in OLD_ROWS {
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();

    let store = Store::open(data.to_str().unwrap(), &EncryptionKey::generate())
        .await
        .expect("open and migrate");
    check_upgraded(&store).await;
    store.close().await;
}

#[tokio::test]
async fn a_postgres_database_of_the_previous_schema_is_upgraded_in_place() {
    let Some(url) = crate::harness::pg_url() else {
        return;
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let location = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    let migrations = tempfile::tempdir().unwrap();
    let old = old_migrator("postgres", migrations.path()).await;
    let mut conn = sqlx::PgConnection::connect(&location).await.unwrap();
    old.run(&mut conn).await.expect("old migrations");
    for sql in OLD_ROWS {
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();

    let store = Store::open(&location, &EncryptionKey::generate())
        .await
        .expect("open and migrate");
    check_upgraded(&store).await;
    store.close().await;
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.ok();
}
