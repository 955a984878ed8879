//! What a deploy costs the database: every SQL statement is counted (sqlx's `sqlx::query` log
//! events and edas-store's `edas_store::sql` ones, seen by a counting subscriber), so a read that creeps back onto
//! the intake path fails here with the statements listed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use edas_engine::{CreateApplication, Engine, EngineConfig, Runtimes, Submission};
use edas_runtime::fake::FakeRuntime;
use edas_spec::{Operation, Params, apply};
use edas_store::Store;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records the text of every statement sqlx logs.
#[derive(Clone, Default)]
struct Statements(Arc<Mutex<Vec<String>>>);

struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "db.statement" {
            self.0 = format!("{value:?}");
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "db.statement" {
            self.0 = value.split_whitespace().collect::<Vec<_>>().join(" ");
        }
    }
}

impl Subscriber for Statements {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // sqlx's statements, and the ones edas-store runs synchronously on SQLite.
        matches!(metadata.target(), "sqlx::query" | "edas_store::sql")
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = Text(String::new());
        event.record(&mut text);
        self.0.lock().unwrap().push(text.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn params(pairs: &[(&str, &str)]) -> Params {
    Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
}

/// A DeployK8sApplication of an idle application, as the API submits it (the application it
/// just read handed over): no read of the application again, no read of the active order (the
/// one-active index refuses a second one in the deploy's transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_reads_nothing_twice() {
    let statements = Statements::default();
    tracing::subscriber::set_global_default(statements.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).await.unwrap());
    let fake = FakeRuntime::new(Duration::from_millis(10));
    // Not started: no claim loop or driver runs beside the submission.
    let engine = Engine::new(
        store.clone(),
        Runtimes::new().with("local", Arc::new(fake.clone())),
        EngineConfig::default(),
    );
    let change = apply(
        Operation::InsertK8sApplication,
        None,
        &params(&[
            ("AppName", "demo"),
            ("ClusterId", "local"),
            ("Command", "/bin/app"),
            ("Replicas", "0"),
        ]),
    )
    .unwrap();
    let created = engine
        .create_application(CreateApplication {
            app_id: "app-1".into(),
            region_id: "cn-hangzhou".into(),
            namespace_id: "cn-hangzhou".into(),
            namespace_stored: false,
            change,
            actor: "test".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    // The first order ends (as its driver would), so the application is idle.
    let co = store
        .get_change_order(&created.change_order_id)
        .await
        .unwrap();
    store
        .transition(
            &co.id,
            co.version,
            edas_store::Transition {
                status: edas_store::ChangeOrderStatus::Success,
                state: co.state.clone(),
                finished: true,
                app_state: Some("RUNNING".into()),
                delete_app: false,
                before: None,
            },
            edas_store::AuditEntry {
                actor: "test".into(),
                action: "test".into(),
                resource: "application/app-1".into(),
                app_id: Some("app-1".into()),
                request_id: None,
                detail: serde_json::Value::Null,
            },
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
    let app = store.get_application("app-1").await.unwrap();
    let change = apply(
        Operation::DeployK8sApplication,
        Some(&app.spec.spec),
        &params(&[("AppId", "app-1"), ("Command", "/bin/app-v2")]),
    )
    .unwrap();

    statements.0.lock().unwrap().clear();
    let first = engine
        .submit_read(
            Submission {
                app_id: "app-1".into(),
                change,
                actor: "test".into(),
                request_id: String::new(),
            },
            app,
        )
        .await
        .unwrap()
        .change_order_id;
    let ran = statements.0.lock().unwrap().clone();
    let reads_app = ran
        .iter()
        .filter(|s| s.contains("FROM applications WHERE id"))
        .count();
    let reads_active = ran
        .iter()
        .filter(|s| s.contains("FROM change_orders") && s.contains("finished_at IS NULL"))
        .count();
    // The one-active index refuses a second open order: no read of the active one at all.
    assert_eq!(
        (reads_app, reads_active),
        (0, 0),
        "the application or the active order is read ({} statements):\n{}",
        ran.len(),
        ran.join("\n")
    );
    println!("a deploy: {} statements\n{}", ran.len(), ran.join("\n"));

    // Started, the engine claims and releases that order; a second deploy is then created
    // already leased to it: its driver starts with no claim, with the new revision's document
    // from the application its deploy stored and the one it leaves from the application the
    // deploy read, so no revision is read.
    // (It may have finished already: a release of no instances is quick.) The start-up claim
    // pass runs once; it is waited for, so it is not counted with the second deploy.
    engine.start();
    for _ in 0..500 {
        let claimed = statements
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.contains("SET lease_owner"));
        if claimed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    released(&store, &first).await;
    // The start-up pass claims until a claim finds nothing, then restores routing, and the
    // first order's driver ends after its last transition: wait until no statement has run
    // for 200 ms, so none of theirs is counted with the second deploy.
    let mut seen = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = statements.0.lock().unwrap().len();
        if now == seen {
            break;
        }
        seen = now;
    }
    let app = store.get_application("app-1").await.unwrap();
    let change = apply(
        Operation::DeployK8sApplication,
        Some(&app.spec.spec),
        &params(&[("AppId", "app-1"), ("Command", "/bin/app-v3")]),
    )
    .unwrap();
    statements.0.lock().unwrap().clear();
    let second = engine
        .submit_read(
            Submission {
                app_id: "app-1".into(),
                change,
                actor: "test".into(),
                request_id: String::new(),
            },
            app,
        )
        .await
        .unwrap()
        .change_order_id;
    released(&store, &second).await;
    engine.shutdown().await;
    let ran = statements.0.lock().unwrap().clone();
    let count = |needle: &str| ran.iter().filter(|s| s.contains(needle)).count();
    println!(
        "a deploy and its release: {} statements\n{}",
        ran.len(),
        ran.join("\n")
    );
    // Neither the driver (it starts from the application its deploy stored) nor the
    // autoscaler's resume (no rule) reads the application; the transition derives its events
    // from the state the driver holds, not from a read of it.
    assert_eq!(
        (
            count("SET lease_owner"),
            count("FROM revisions"),
            count("FROM applications WHERE id"),
            count("SELECT state FROM change_orders"),
        ),
        (0, 0, 0, 0),
        "claims and revision reads of a deploy and its release ({} statements):\n{}",
        ran.len(),
        ran.join("\n")
    );
}

/// Waits until change order `id` succeeded.
async fn released(store: &Store, id: &str) {
    for _ in 0..500 {
        if store.get_change_order(id).await.unwrap().status.code() == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("change order {id} was not released");
}
