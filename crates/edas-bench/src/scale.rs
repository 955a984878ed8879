//! `edas-bench scale --apps N --in-flight M`: what holding many applications costs the release
//! engine. Measured on the engine in-process (the same `Engine` edasd runs, on the real SQLite
//! store with edasd's settings) with the fake runtime, in a process of its own
//! (`edas-bench scale-load`), so its memory is the engine's and not the set-up's.
//!
//! Set-up (not measured): M applications are created and given a manual two-batch release
//! through the engine itself, so each of their change orders is really in flight (waiting
//! between batches, status 8, leased by the engine); the other N − M applications, each with
//! a finished first change order, are written through the store API directly (two
//! transactions each), which is what makes 100,000 applications affordable to set up.
//!
//! Measured in the fresh process: start-up (store opened and migrated, engine started),
//! resume (every in-flight change order claimed again and driven: lease taken, runtime
//! observed), resident memory, CPU time while the process then sits idle holding that
//! state (lease renewals are its only work: no polling tick), and its graceful shutdown with
//! every order still in flight.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use edas_engine::{EngineConfig, Submission};
use edas_spec::{Operation, apply};
use edas_store::{AuditEntry, NewApplication, NewChangeOrder, Store, Transition};

use crate::batch_gap::{create, fake_engine, params};
use crate::stats::{machine, mib, rss_and_cpu};

const WORKER: &str = "edas-bench-scale";

/// The engine settings of the set-up and of the measured process: one worker id.
fn worker() -> EngineConfig {
    EngineConfig {
        worker_id: WORKER.into(),
        ..EngineConfig::default()
    }
}

fn audit(app_id: &str) -> AuditEntry {
    AuditEntry {
        actor: "bench".into(),
        action: "bench".into(),
        resource: format!("application/{app_id}"),
        app_id: Some(app_id.to_owned()),
        request_id: None,
        detail: serde_json::Value::Null,
    }
}

/// Waits (bounded) until every id has `status`.
async fn wait_all(store: &Store, ids: &[String], status: i32) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    for id in ids {
        loop {
            if store.get_change_order(id).await?.status.code() == status {
                break;
            }
            if Instant::now() > deadline {
                bail!("change order {id} did not reach status {status}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

pub(crate) async fn scale(apps: u32, in_flight: u32, idle_seconds: u64) -> anyhow::Result<()> {
    if in_flight > apps {
        bail!("--in-flight {in_flight} is more than --apps {apps}");
    }
    println!("machine: {}", machine());
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let setup_started = Instant::now();
    {
        let (store, _, engine) = fake_engine(&data, worker()).await?;
        // In flight: created and released through the engine, 32 at a time.
        let insert = |name: &str| {
            apply(
                Operation::InsertK8sApplication,
                None,
                &params(&[
                    ("AppName", name),
                    ("ClusterId", "local"),
                    ("Command", "/bin/app"),
                    ("Replicas", "2"),
                ]),
            )
            .map_err(|v| anyhow::anyhow!("{v}"))
        };
        let mut first_orders = Vec::new();
        let ids: Vec<u32> = (0..in_flight.max(1)).collect();
        for chunk in ids.chunks(32) {
            let mut tasks = Vec::new();
            for &i in chunk {
                let engine = engine.clone();
                let change = insert(&format!("flight-{i}"))?;
                tasks.push(tokio::spawn(async move {
                    create(&engine, &format!("flight-{i}"), change).await
                }));
            }
            for t in tasks {
                let created = t.await??;
                first_orders.push(created.change_order_id);
            }
        }
        wait_all(&store, &first_orders, 2).await?;
        let template_app = store.get_application("flight-0").await?;
        let template_order = store.get_change_order(&first_orders[0]).await?;
        let mut deploys = Vec::new();
        for i in 0..in_flight {
            let app = store.get_application(&format!("flight-{i}")).await?;
            let change = apply(
                Operation::DeployK8sApplication,
                Some(&app.spec.spec),
                &params(&[
                    ("AppId", &app.id),
                    ("Command", "/bin/app-v2"),
                    (
                        "UpdateStrategy",
                        r#"{"type":"BatchUpdate","batchUpdate":{"batch":2,"releaseType":"manual"}}"#,
                    ),
                ]),
            )
            .map_err(|v| anyhow::anyhow!("{v}"))?;
            let s = engine
                .submit(Submission {
                    app_id: app.id.clone(),
                    change,
                    actor: "bench".into(),
                    request_id: String::new(),
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            deploys.push(s.change_order_id);
        }
        wait_all(&store, &deploys, 8).await?;
        engine.shutdown().await;
        println!(
            "{in_flight} change orders in flight (waiting between batches) after {:?}",
            setup_started.elapsed()
        );

        // Idle applications, each with a finished first change order, through the store API.
        let first = if in_flight == 0 { 1 } else { in_flight };
        let mut last_report = Instant::now();
        for i in first..apps {
            let id = format!("idle-{i}");
            let mut spec = template_app.spec.clone();
            spec.spec.name = id.clone();
            let now = jiff::Timestamp::now();
            let (_, co) = store
                .create_application(
                    NewApplication {
                        id: id.clone(),
                        name: id.clone(),
                        region_id: template_app.region_id.clone(),
                        namespace_id: template_app.namespace_id.clone(),
                        namespace_stored: false,
                        cluster_id: template_app.cluster_id.clone(),
                        k8s_namespace: template_app.k8s_namespace.clone(),
                        state: template_app.state.clone(),
                        spec,
                    },
                    NewChangeOrder {
                        id: format!("co-{id}"),
                        co_type: template_order.co_type.clone(),
                        status: edas_store::ChangeOrderStatus::Ready,
                        state: template_order.state.clone(),
                        description: String::new(),
                    },
                    audit(&id),
                    now,
                )
                .await?;
            store
                .transition(
                    &co.id,
                    co.version,
                    Transition {
                        status: edas_store::ChangeOrderStatus::Success,
                        state: template_order.state.clone(),
                        finished: true,
                        app_state: None,
                        delete_app: false,
                        before: None,
                    },
                    audit(&id),
                    now,
                )
                .await?;
            if last_report.elapsed() > Duration::from_secs(10) {
                println!("  … {i} applications");
                last_report = Instant::now();
            }
        }
        store.close().await;
    }
    let db_bytes: u64 = std::fs::read_dir(&data)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("sqlite"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "set-up: {apps} applications ({in_flight} in flight) in {:?}; database {}",
        setup_started.elapsed(),
        mib(db_bytes)
    );

    // The measured process.
    let spawned = Instant::now();
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("scale-load")
        .arg("--data-dir")
        .arg(&data)
        .arg("--in-flight")
        .arg(in_flight.to_string())
        .arg("--idle-seconds")
        .arg(idle_seconds.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting scale-load")?;
    let pid = child.id();
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut idle_from = None;
    let mut startup_line = String::new();
    let mut resumed_line = String::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(3600))
            .context("scale-load stopped talking")?;
        if line.starts_with("started") {
            startup_line = line;
        } else if line.starts_with("resumed") {
            resumed_line = line;
            idle_from = rss_and_cpu(pid);
        } else if line.starts_with("idle-end") {
            break;
        }
    }
    let after = rss_and_cpu(pid).context("reading the process")?;
    let mut shutdown_line = String::from("shutdown not reported");
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(600)) {
        if line.starts_with("shutdown") {
            shutdown_line = line;
            break;
        }
    }
    let _ = child.wait();
    let (rss_resumed, cpu_resumed) = idle_from.context("no resume reported")?;
    let idle_cpu = after.1.saturating_sub(cpu_resumed);
    println!("scale: {apps} applications, {in_flight} change orders in flight");
    println!(
        "  {startup_line} ms after exec; {resumed_line} ms after exec (process spawned {:?} before)",
        spawned.elapsed()
    );
    println!(
        "  RSS after resume {}; RSS after {idle_seconds} s idle {}; CPU to start and resume {:?}; \
         CPU while idle {:?} over {idle_seconds} s ({:.2}% of one core)",
        mib(rss_resumed),
        mib(after.0),
        cpu_resumed,
        idle_cpu,
        idle_cpu.as_secs_f64() * 100.0 / idle_seconds as f64
    );
    println!("  {shutdown_line} ms (graceful, {in_flight} orders in flight)");
    Ok(())
}

/// The measured process: opens the store, starts the engine, waits until every in-flight
/// change order is leased by it again (and so driven), then idles. Prints `started <ms>`, `resumed <ms>` and
/// `idle-end` on stdout.
pub(crate) async fn scale_load(
    data_dir: PathBuf,
    in_flight: u32,
    idle_seconds: u64,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    // The same worker id as the set-up: a restart of the same edasd, which resumes its own
    // orders at once instead of waiting for their leases to expire.
    let (store, _, engine) = fake_engine(&data_dir, worker()).await?;
    println!("started {}", t0.elapsed().as_millis());
    // A live lease of this process on every order in flight (the set-up's shutdown handed
    // them over: same owner, lease ended). Counted by one status-only statement, so the
    // watching costs the measured process next to nothing.
    while store.count_leased(WORKER, jiff::Timestamp::now()).await? < u64::from(in_flight) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("resumed {}", t0.elapsed().as_millis());
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    println!("idle-end");
    // A graceful shutdown with every order in flight (their leases kept, handed over in one
    // write).
    let stopping = Instant::now();
    engine.shutdown().await;
    println!("shutdown {}", stopping.elapsed().as_millis());
    store.close().await;
    Ok(())
}
