//! The layer's queries and commands on a real SQLite store with the fake runtime.

use std::sync::Arc;
use std::time::Duration;

use edas_engine::{CreateApplication, Engine, EngineConfig, Runtimes};
use edas_runtime::fake::FakeRuntime;
use edas_spec::{Operation, Params, apply};
use edas_store::{AuditQuery, PageRequest, Store};

use crate::{Abort, Actor, App, AppError};

struct World {
    app: App,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).await.unwrap());
    let engine = Engine::new(
        store.clone(),
        Runtimes::new().with(
            "local",
            Arc::new(FakeRuntime::new(Duration::from_millis(1))),
        ),
        EngineConfig::default(),
    );
    World {
        app: App::new(store, engine),
        _dir: dir,
    }
}

fn params(pairs: &[(&str, &str)]) -> Params {
    Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
}

/// Creates application `app-1` through the engine; returns its change order.
async fn create(w: &World) -> String {
    let change = apply(
        Operation::InsertK8sApplication,
        None,
        &params(&[
            ("AppName", "demo"),
            ("ClusterId", "local"),
            ("Command", "/bin/app"),
        ]),
    )
    .unwrap();
    w.app
        .engine()
        .create_application(CreateApplication {
            app_id: "app-1".into(),
            region_id: "cn-hangzhou".into(),
            namespace_id: "cn-hangzhou".into(),
            change,
            actor: "alice (AK1)".into(),
            request_id: "req-1".into(),
        })
        .await
        .unwrap()
        .change_order_id
}

#[tokio::test]
async fn an_unknown_application_is_not_found_naming_its_id() {
    let w = world().await;
    for result in [
        w.app.application("nope").await,
        w.app.application_with_history("nope").await,
    ] {
        match result {
            Err(AppError::ApplicationNotFound(message)) => assert!(message.contains("`nope`")),
            other => panic!("expected ApplicationNotFound, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_change_order_is_read_with_its_state_and_application() {
    let w = world().await;
    let id = create(&w).await;
    let view = w.app.change_order(&id).await.unwrap();
    assert_eq!(view.stored.id, id);
    assert_eq!(view.app.id, "app-1");
    assert_eq!(view.app, w.app.application("app-1").await.unwrap());
    let listed = w.app.change_orders("app-1").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0.id, id);
    assert!(matches!(
        w.app.change_order("nope").await,
        Err(AppError::ChangeOrderNotFound(m)) if m.contains("`nope`")
    ));
}

#[tokio::test]
async fn the_audit_trail_names_the_actor_and_request() {
    let w = world().await;
    create(&w).await;
    let query = AuditQuery {
        app_id: Some("app-1".into()),
        from: None,
        to: None,
    };
    let page = w.app.audit(&query, PageRequest::new(1, 10)).await.unwrap();
    assert!(
        page.items
            .iter()
            .any(|r| r.entry.actor == "alice (AK1)"
                && r.entry.request_id.as_deref() == Some("req-1")),
        "{:?}",
        page.items
    );
}

fn actor() -> Actor {
    Actor {
        name: "alice (AK1)".into(),
        request_id: "req-2".into(),
    }
}

#[tokio::test]
async fn abort_stops_an_order_once_and_a_second_abort_is_refused_by_status() {
    let w = world().await;
    let id = create(&w).await;
    assert_eq!(w.app.abort(&id, Abort::Only, &actor()).await.unwrap(), id);
    assert!(
        matches!(
            w.app.abort(&id, Abort::Only, &actor()).await,
            Err(AppError::InvalidStatus(_))
        ),
        "a finished order cannot be aborted again"
    );
    assert!(matches!(
        w.app.abort("nope", Abort::Only, &actor()).await,
        Err(AppError::ChangeOrderNotFound(_))
    ));
}

#[tokio::test]
async fn an_unknown_pipeline_or_task_names_what_was_not_found() {
    let w = world().await;
    create(&w).await;
    match w.app.order_of_pipeline("p-x").await {
        Err(AppError::ChangeOrderNotFound(m)) => assert!(m.contains("`p-x`"), "{m}"),
        other => panic!("expected ChangeOrderNotFound, got {other:?}"),
    }
    match w.app.order_of_task("t-x").await {
        Err(AppError::ChangeOrderNotFound(m)) => assert!(m.contains("`t-x`"), "{m}"),
        other => panic!("expected ChangeOrderNotFound, got {other:?}"),
    }
    assert!(matches!(
        w.app.retry_task("t-x", &actor()).await,
        Err(AppError::ChangeOrderNotFound(_))
    ));
}
