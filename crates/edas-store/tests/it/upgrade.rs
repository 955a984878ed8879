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
/// (by `LTAIcreator`) is older than the engine's transition record (by `system`). Revision
/// documents as an older edasd wrote them (without the fields added since); the change-order
/// state, `'STATE'`, is filled in by [`old_rows`].
const OLD_ROWS: [&str; 5] = [
    "INSERT INTO applications (id, name, region_id, namespace_id, cluster_id, k8s_namespace, \
     current_revision, state, spec, created_at, updated_at, deleted) VALUES ('app-1', 'alpha', \
     'cn-hangzhou', 'cn-hangzhou', 'c1', 'default', 1, 'DEPLOYING', '{\"template_revision\":\"1\",\"spec\":{\"services\":[{\"name\":\"web\",\
     \"serviceType\":\"ClusterIP\",\"portMappings\":[{\"servicePort\":{\"port\":8080,\"targetPort\":80}},\
     {\"servicePort\":{\"port\":8443,\"targetPort\":443}}]}]}}', 1000, 1000, FALSE)",
    "INSERT INTO revisions (app_id, number, spec, created_at) VALUES ('app-1', 1, '{\"template_revision\":\"1\",\"spec\":{\"replicas\":1}}', 1000)",
    "INSERT INTO change_orders (id, app_id, co_type, status, version, revision, state, description, \
     created_at, updated_at) VALUES ('co-1', 'app-1', 'CoCreateApp', 1, 2, 1, 'STATE', 'create', 1000, 2000)",
    "INSERT INTO audit (at, actor, action, resource, app_id, request_id, detail) VALUES \
     (1000, 'LTAIcreator', 'InsertK8sApplication', 'application/app-1', 'app-1', 'r1', '{\"change_order\":\"co-1\"}')",
    "INSERT INTO audit (at, actor, action, resource, app_id, request_id, detail) VALUES \
     (2000, 'system', 'ChangeOrder.Transition', 'application/app-1', 'app-1', NULL, '{\"change_order\":\"co-1\"}')",
];

/// [`OLD_ROWS`] with the stored form of a change-order state (the release machine's serde,
/// which this change did not touch).
fn old_rows() -> Vec<String> {
    let state = serde_json::to_string(&crate::harness::state("create")).unwrap();
    OLD_ROWS
        .iter()
        .map(|sql| sql.replace("'STATE'", &format!("'{state}'")))
        .collect()
}

async fn check_upgraded(store: &Store) {
    let co = store
        .get_change_order("co-1")
        .await
        .expect("old change order");
    assert_eq!(co.status, ChangeOrderStatus::InProgress);
    assert_eq!(co.creator.as_deref(), Some("LTAIcreator"));
    assert_eq!(co.version, 2);
    assert_eq!(co.state, crate::harness::state("create"));
    assert_eq!(
        store.count_active_change_orders().await.unwrap(),
        [(ChangeOrderStatus::InProgress, 1)]
    );
    let app = store
        .get_application("app-1")
        .await
        .expect("old application");
    assert_eq!((app.name.as_str(), app.current_revision), ("alpha", 1));
    assert_eq!(app.spec.spec.service_ports(), [8080, 8443]);
    let revision = store.get_revision("app-1", 1).await.expect("old revision");
    assert_eq!(revision.spec.spec.replicas, 1);
    // Ingress rules (issue 24): an old database has none.
    assert!(store.ingress_rules(None, None).await.unwrap().is_empty());
    // Release policies (issue 21): an old application has none.
    assert_eq!(store.release_policy("app-1").await.unwrap(), None);
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
    for sql in old_rows() {
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
    for sql in old_rows() {
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

/// SHA-384 of every migration already on main. A database remembers the checksum of each
/// migration it applied and refuses to open when the file changed since, so a released
/// migration is never edited: a fix is a new migration. Append new migrations here once they
/// are committed.
const RELEASED: [(&str, &str, &str); 19] = [
    (
        "postgres",
        "20261128000001",
        "7c5d8cc67c8090f08808abee4d1757d7d5ebafab545209ecf0e249f670b862702b594d80f3431d78caa3ba8df1d284b1",
    ),
    (
        "postgres",
        "20261204000002",
        "a5d84e7eb5fc779261d1416a720f970da13a0f3add44f4ccd80aa3fa5bca8ed53d2282e307da85fe3cf12a515ef76154",
    ),
    (
        "postgres",
        "20261206000001",
        "0f5c196afc33b261fb2c1aabc7cbefdefe0bb3130540cdf28783d7e487264fa8424c8679c80b341d8ca1382948d92c83",
    ),
    (
        "postgres",
        "20261206000100",
        "fd50fcc7d3470bd8d8bccd9d0bdefacae65175f471d62935b8c35aeeaa8248bdcfe74343c815bb7089a6a86d7367e550",
    ),
    (
        "postgres",
        "20261206000200",
        "4ac055e9c98cf13b16ee128700ddad6830be97d17b0ade6e1e9df369d100d0c1292f54f5426778d54debd793c7118195",
    ),
    (
        "postgres",
        "20261206000300",
        "e693bea8be2304dbb5dd6e31e9a834b76065234801bb65a712d88a7e5d90afca4473bdf71f09a864dcd82f9983f83a91",
    ),
    (
        "postgres",
        "20261206002400",
        "aff271443ee1dcd6575b32a341d3cc6c91f8ebe6627080e352ef1bc6dd65ab1b3b1af5f8df204d233c95023273c69d26",
    ),
    (
        "postgres",
        "20261206002500",
        "dfdc2dd6b1d7444f1a44dccfd2107ca37e01a942f57fd6c23c46c9f43107493778b706d5ff11eae675b2a58fe1dcef97",
    ),
    (
        "postgres",
        "20261206002700",
        "b4fb61da4b3833a620e9d88822dc9cc404d540e9b7b61b2859b01e94b68e439d66f61e8873a54b958e705e074627b4f4",
    ),
    (
        "sqlite",
        "20261128000001",
        "33389e104fb5fdbcb992549b40fccd2c0bcf0da2c252ea765f0ab59c81948d9f23d254d5fd2dec1240ff41cf7f067476",
    ),
    (
        "sqlite",
        "20261204000001",
        "3fed13f90c050bb3ae32ee4eca2bced2ed9b80b59ea5bb465f9955c083d03a97294d657797b39f6c7958e1388701367f",
    ),
    (
        "sqlite",
        "20261204000002",
        "714f4e5f8fbb58639ffb895f21e767ed0dc419cfe5a3f9ba2cfcc2ac22fdc492902bcb655ff087d6bb77ecbffaeed3e6",
    ),
    (
        "sqlite",
        "20261206000001",
        "72fd3bc4c9d890e07b772a34e76cad1e014a237986b954e7f7e03e596c8a4c9b3f4483057078b95839aa432c7ed93aed",
    ),
    (
        "sqlite",
        "20261206000100",
        "e556234977af1b87dfa54ed6ad49e825398f7760314cbcbf07a6867596b6febbbe193c3700bb494aec2e1d13a550a05b",
    ),
    (
        "sqlite",
        "20261206000200",
        "f466eaaf1e9897b35fa9ae50d58426e8ec81a2486ca299d46ca77d083aecc3eb9f9921ff2689e3fa9dd1fafc939edab6",
    ),
    (
        "sqlite",
        "20261206000300",
        "5d7e4a45d61cde03fd90bb12f85f4365dafcf0e579b485262d5a69ed7620640c8d100e94758361a5422c57086ee493f7",
    ),
    (
        "sqlite",
        "20261206002400",
        "3f146061c5ffed3ee644d845088640307cfbd883ad7fe53181d0acd5b401ab037bc2b8fec43024d2aeb5db2c741cef46",
    ),
    (
        "sqlite",
        "20261206002500",
        "85ffc61a21f6e9452478bf9b7b57bcf74ff8027baa453e0b3dad748e8cc76738bff8f3d16afb9ca11221eb82de696055",
    ),
    (
        "sqlite",
        "20261206002700",
        "a5ba661ce8bb8bc84eabfcb43a68f99be2336e17b2812bf3cfae08a79b906993fbc14fcaecfe0005c0a29760b21ea33f",
    ),
];

#[tokio::test]
async fn released_migrations_are_never_edited() {
    let mut changed = Vec::new();
    for backend in ["postgres", "sqlite"] {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let migrator = Migrator::new(dir).await.expect("read migrations");
        for (b, version, checksum) in RELEASED.iter().filter(|(b, ..)| *b == backend) {
            let found = migrator
                .iter()
                .find(|m| m.version.to_string() == *version)
                .map(|m| hex::encode(&m.checksum));
            if found.as_deref() != Some(*checksum) {
                changed.push(format!("{b}/{version}: {found:?}"));
            }
        }
    }
    assert!(
        changed.is_empty(),
        "released migrations were edited or removed (databases that applied them would refuse \
         to open; write a new migration instead): {changed:?}"
    );
}
