//! `edas-bench batch-gap`: the engine's overhead between batches on the fake runtime (see the
//! crate docs).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use edas_engine::{CreateApplication, Engine, EngineConfig, Runtimes, Submission, Submitted};
use edas_runtime::fake::{FakeRuntime, LogEntry};
use edas_spec::{Change, Operation, Params, apply};
use edas_store::Store;

use crate::stats::percentile;

pub(crate) fn params(pairs: &[(&str, &str)]) -> Params {
    Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).expect("params")
}

pub(crate) async fn wait_status(store: &Store, id: &str, status: i32) -> anyhow::Result<()> {
    for _ in 0..60_000 {
        if store.get_change_order(id).await?.status.code() == status {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("change order {id} did not reach status {status}")
}

/// The engine edasd runs, started over the store in `data` and a fake runtime (1 ms a call) as
/// cluster `local`, with `config`.
pub(crate) async fn fake_engine(
    data: &Path,
    config: EngineConfig,
) -> anyhow::Result<(Arc<Store>, FakeRuntime, Engine)> {
    let store = Arc::new(Store::open_data_dir(data).await?);
    let fake = FakeRuntime::new(Duration::from_millis(1));
    let runtimes = Runtimes::new().with("local", Arc::new(fake.clone()));
    let engine = Engine::new(store.clone(), runtimes, config);
    engine.start();
    Ok((store, fake, engine))
}

/// Creates application `app_id` from `change` through `engine`, as `bench`.
pub(crate) async fn create(
    engine: &Engine,
    app_id: &str,
    change: Change,
) -> anyhow::Result<Submitted> {
    engine
        .create_application(CreateApplication {
            app_id: app_id.to_owned(),
            region_id: "cn-hangzhou".into(),
            namespace_id: "cn-hangzhou".into(),
            namespace_stored: false,
            change,
            actor: "bench".into(),
            request_id: String::new(),
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

pub(crate) async fn batch_gap(batches: u32, runs: u32) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, fake, engine) = fake_engine(dir.path(), EngineConfig::default()).await?;
    let replicas = batches.to_string();
    let change = apply(
        Operation::InsertK8sApplication,
        None,
        &params(&[
            ("AppName", "bench"),
            ("ClusterId", "local"),
            ("Command", "/bin/app"),
            ("Replicas", &replicas),
        ]),
    )
    .map_err(|v| anyhow::anyhow!("{v}"))?;
    let created = create(&engine, "bench", change).await?;
    wait_status(&store, &created.change_order_id, 2).await?;

    // Floor: one durable change-order transition (CAS + audit record) on a store of its own
    // (no engine claims its orders), same engine settings.
    let floor = {
        let floor_dir = tempfile::tempdir()?;
        let floor_store = Store::open_data_dir(floor_dir.path()).await?;
        let state = store
            .get_change_order(&created.change_order_id)
            .await?
            .state;
        let spec = store.get_application("bench").await?.spec;
        let audit = edas_store::AuditEntry {
            actor: "bench".into(),
            action: "bench".into(),
            resource: "bench".into(),
            app_id: None,
            request_id: None,
            detail: serde_json::Value::Null,
        };
        let mut samples = Vec::new();
        for i in 0..200 {
            let co = edas_store::NewChangeOrder {
                id: format!("floor-{i}"),
                co_type: "CoBench".into(),
                status: edas_store::ChangeOrderStatus::Ready,
                state: state.clone(),
                description: String::new(),
            };
            let new_app = edas_store::NewApplication {
                id: format!("floor-app-{i}"),
                name: format!("floor-app-{i}"),
                region_id: "cn-hangzhou".into(),
                namespace_id: "cn-hangzhou".into(),
                namespace_stored: false,
                cluster_id: "local".into(),
                k8s_namespace: "default".into(),
                state: "RUNNING".into(),
                spec: spec.clone(),
            };
            let (_, c) = floor_store
                .create_application(new_app, co, audit.clone(), jiff::Timestamp::now())
                .await?;
            let t = edas_store::Transition {
                status: edas_store::ChangeOrderStatus::InProgress,
                state: state.clone(),
                finished: false,
                app_state: None,
                delete_app: false,
                before: None,
            };
            let start = Instant::now();
            floor_store
                .transition(&c.id, c.version, t, audit.clone(), jiff::Timestamp::now())
                .await?;
            samples.push(start.elapsed());
        }
        samples.sort();
        percentile(&samples, 0.5)
    };

    let mut gaps = Vec::new();
    let mut walls = Vec::new();
    for run in 0..runs {
        let app = store.get_application("bench").await?;
        let doc = app.spec;
        let command = format!("/bin/app-{run}");
        let strategy = format!(
            r#"{{"type":"BatchUpdate","batchUpdate":{{"batch":{batches},"releaseType":"auto","batchWaitTime":0}}}}"#
        );
        let change = apply(
            Operation::DeployK8sApplication,
            Some(&doc.spec),
            &params(&[
                ("AppId", "bench"),
                ("Command", &command),
                ("UpdateStrategy", &strategy),
            ]),
        )
        .map_err(|v| anyhow::anyhow!("{v}"))?;
        let log_start = fake.log().len();
        let started = Instant::now();
        let s = engine
            .submit(Submission {
                app_id: "bench".into(),
                change,
                actor: "bench".into(),
                request_id: String::new(),
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        wait_status(&store, &s.change_order_id, 2).await?;
        walls.push(started.elapsed());
        let rec = store.get_change_order(&s.change_order_id).await?;
        let order = rec.state;
        let new_rev = order.to_revision().0.clone();
        let log = &fake.log()[log_start..];
        // Batch k starts when the new revision is asked for k instances; batch k-1 ended with
        // the last call before that which shrank another revision.
        let mut last_old_shrink: Option<Instant> = None;
        for (at, entry) in log {
            match entry {
                LogEntry::SetReplicas { revision, .. } if *revision != new_rev => {
                    last_old_shrink = Some(*at)
                }
                LogEntry::SetReplicas { revision, replicas }
                    if *revision == new_rev && *replicas > 1 =>
                {
                    if let Some(done) = last_old_shrink.take() {
                        gaps.push(at.duration_since(done));
                    }
                }
                _ => {}
            }
        }
    }
    engine.shutdown().await;
    if gaps.is_empty() {
        bail!("no batch gaps measured");
    }
    gaps.sort();
    let mean = gaps.iter().sum::<Duration>() / gaps.len() as u32;
    println!(
        "batch-gap: {} gaps over {runs} release(s) of {batches} batches (SQLite with edasd's group commit, fake runtime)",
        gaps.len()
    );
    println!(
        "  p50 {:?}  p90 {:?}  p99 {:?}  max {:?}  mean {:?}",
        percentile(&gaps, 0.5),
        percentile(&gaps, 0.9),
        percentile(&gaps, 0.99),
        gaps[gaps.len() - 1],
        mean
    );
    println!("  floor: one durable change-order transition p50 {floor:?}");
    let wall = walls.iter().sum::<Duration>() / walls.len() as u32;
    println!(
        "  whole release wall time (mean): {wall:?} for {batches} batches, instances ready after 1 ms"
    );
    Ok(())
}
