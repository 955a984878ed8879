//! Shared by the engine's end-to-end tests (`engine.rs`, `analysis.rs`; each declares
//! `mod support;`): a real SQLite store in a temporary directory, the fake runtime (instances
//! ready after 100 ms) as cluster `local`, a started engine, and application `app-1`'s insert and
//! later changes submitted as the API would.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use edas_engine::{CreateApplication, Engine, EngineConfig, Runtimes, Submission, SubmitError};
use edas_runtime::fake::FakeRuntime;
use edas_spec::{Operation, Params, apply};
use edas_store::Store;

pub struct World {
    pub store: Arc<Store>,
    pub fake: FakeRuntime,
    pub engine: Engine,
    pub _dir: tempfile::TempDir,
}

pub async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).await.unwrap());
    let fake = FakeRuntime::new(Duration::from_millis(100));
    let engine = engine(&store, &fake, "w1");
    World {
        store,
        fake,
        engine,
        _dir: dir,
    }
}

/// A started engine on `store` with `fake` as cluster `local`, as worker `worker`.
pub fn engine(store: &Arc<Store>, fake: &FakeRuntime, worker: &str) -> Engine {
    let e = Engine::new(
        store.clone(),
        Runtimes::new().with("local", Arc::new(fake.clone())),
        EngineConfig {
            worker_id: worker.into(),
            lease: Duration::from_secs(15),
        },
    );
    e.start();
    e
}

pub fn params(pairs: &[(&str, &str)]) -> Params {
    Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
}

/// InsertK8sApplication of `app-1` (`demo`, `/bin/app`) with `replicas`; (AppId, ChangeOrderId).
pub async fn create(w: &World, replicas: u32) -> (String, String) {
    create_with(w, replicas, &[]).await
}

/// [`create`] with `extra` parameters besides.
pub async fn create_with(w: &World, replicas: u32, extra: &[(&str, &str)]) -> (String, String) {
    let r = replicas.to_string();
    let mut all = vec![
        ("AppName", "demo"),
        ("ClusterId", "local"),
        ("Command", "/bin/app"),
        ("Replicas", r.as_str()),
    ];
    all.extend_from_slice(extra);
    let change = apply(Operation::InsertK8sApplication, None, &params(&all)).unwrap();
    let s = w
        .engine
        .create_application(CreateApplication {
            app_id: "app-1".into(),
            region_id: "cn-hangzhou".into(),
            namespace_id: "cn-hangzhou".into(),
            namespace_stored: false,
            change,
            actor: "test".into(),
            request_id: "r".into(),
        })
        .await
        .unwrap();
    (s.app_id, s.change_order_id)
}

/// `op` on `app-1` with `pairs` besides its `AppId`, submitted to the engine; the ChangeOrderId.
pub async fn submit(
    w: &World,
    op: Operation,
    pairs: &[(&str, &str)],
) -> Result<String, SubmitError> {
    let app = w.store.get_application("app-1").await.unwrap();
    let doc = app.spec;
    let mut all = vec![("AppId", "app-1")];
    all.extend_from_slice(pairs);
    let change = apply(op, Some(&doc.spec), &params(&all)).unwrap();
    w.engine
        .submit(Submission {
            app_id: "app-1".into(),
            change,
            actor: "test".into(),
            request_id: "r".into(),
        })
        .await
        .map(|s| s.change_order_id)
}
