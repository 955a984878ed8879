//! `edas-bench scale --apps N --in-flight M`: what holding many applications costs the release
//! engine. Measured on the engine in-process (the same `Engine` edasd runs, on the real SQLite
//! store with edasd's settings) with the fake runtime, in a process of its own
//! (`edas-bench scale-load`), so its memory is the engine's and not the set-up's.
//!
//! Set-up (not measured): M applications are created and given a manual two-batch release
//! through the engine itself, so each of their change orders is really in flight (waiting
//! between batches, status 8, leased by the engine); the other N − M applications, each with
//! a finished first change order, are one written through the store API and the rest copied
//! from it in bulk by SQL (`Store::copy_application_fixture`, a benchmark-only feature of
//! edas-store), which is what makes 1,000,000 applications affordable to set up.
//!
//! Measured in a fresh process after the set-up's graceful stop: start-up (store opened and
//! migrated, engine started), every in-flight order leased again, then driven again (its driver
//! loaded it, re-applied its effects and routing, observed its instances: [`Engine::driven`]),
//! resident memory, CPU time while the process then sits idle holding that state (lease
//! renewals are its only work: no polling tick), and its graceful shutdown with every order
//! still in flight. Then the same after a crash: a process driving every order is killed with
//! SIGKILL (its leases live) and the next one, same worker id, resumes them.
//!
//! [`Engine::driven`]: edas_engine::Engine::driven

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

        // Idle applications, each with a finished first change order: the first through the
        // store API, the others copied from it in bulk (`Store::copy_application_fixture`,
        // 50,000 per transaction: what makes 1,000,000 affordable to set up).
        let first = if in_flight == 0 { 1 } else { in_flight };
        if first < apps {
            idle_app(&store, &template_app, &template_order, first).await?;
            let copying = Instant::now();
            store
                .copy_application_fixture(&format!("idle-{first}"), "idle-", first + 1, apps)
                .await?;
            println!(
                "  {} idle applications copied in {:?}",
                apps - first - 1,
                copying.elapsed()
            );
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

    // The measured process, after the set-up's graceful shutdown.
    let mut graceful = Load::spawn(&data, in_flight, idle_seconds)?;
    let startup_line = graceful.line("started")?;
    let leased_line = graceful.line("leased")?;
    let driven_line = graceful.line("driven")?;
    let idle_from = rss_and_cpu(graceful.pid);
    graceful.line("idle-end")?;
    let after = rss_and_cpu(graceful.pid).context("reading the process")?;
    let list_first = graceful.line("list-first")?;
    let list_middle = graceful.line("list-middle")?;
    let shutdown_line = graceful
        .line("shutdown")
        .unwrap_or_else(|_| "shutdown not reported".into());
    graceful.wait();
    let (rss_resumed, cpu_resumed) = idle_from.context("no resume reported")?;
    let idle_cpu = after.1.saturating_sub(cpu_resumed);

    // A crash: a process that drives every order is killed (SIGKILL, its leases still live),
    // and the next one, with the same worker id, re-claims them at once.
    let mut victim = Load::spawn(&data, in_flight, 3600)?;
    victim.line("driven")?;
    victim.kill();
    let mut after_crash = Load::spawn(&data, in_flight, 0)?;
    let crash_started = after_crash.line("started")?;
    let crash_leased = after_crash.line("leased")?;
    let crash_driven = after_crash.line("driven")?;
    after_crash.line("idle-end")?;
    let crash_shutdown = after_crash
        .line("shutdown")
        .unwrap_or_else(|_| "shutdown not reported".into());
    after_crash.wait();

    println!("scale: {apps} applications, {in_flight} change orders in flight");
    println!(
        "  after a graceful restart: {startup_line}, {leased_line}, {driven_line} (ms after exec)"
    );
    println!(
        "  RSS after resume {}; RSS after {idle_seconds} s idle {}; CPU to start and resume {:?}; \
         CPU while idle {:?} over {idle_seconds} s ({:.2}% of one core)",
        mib(rss_resumed),
        mib(after.0),
        cpu_resumed,
        idle_cpu,
        idle_cpu.as_secs_f64() * 100.0 / idle_seconds.max(1) as f64
    );
    println!("  {shutdown_line} ms (graceful, {in_flight} orders in flight)");
    println!("  ListApplication's store read: {list_first}; {list_middle}");
    println!(
        "  after SIGKILL: {crash_started}, {crash_leased}, {crash_driven} (ms after exec); {crash_shutdown} ms"
    );
    Ok(())
}

/// Writes idle application `idle-<i>` (a copy of the template) with a finished first change
/// order: two transactions through the store API.
async fn idle_app(
    store: &Store,
    template_app: &edas_store::Application,
    template_order: &edas_store::ChangeOrder,
    i: u32,
) -> anyhow::Result<()> {
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
    Ok(())
}

/// One run of the measured process (`edas-bench scale-load`), its stdout read line by line.
struct Load {
    child: std::process::Child,
    pid: u32,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Load {
    fn spawn(data: &std::path::Path, in_flight: u32, idle_seconds: u64) -> anyhow::Result<Load> {
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .arg("scale-load")
            .arg("--data-dir")
            .arg(data)
            .arg("--in-flight")
            .arg(in_flight.to_string())
            .arg("--idle-seconds")
            .arg(idle_seconds.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting scale-load")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        Ok(Load {
            pid: child.id(),
            child,
            lines,
        })
    }

    /// The next line that starts with `prefix` (earlier lines are skipped).
    fn line(&mut self, prefix: &str) -> anyhow::Result<String> {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(3600))
                .with_context(|| format!("scale-load stopped before `{prefix}`"))?;
            if line.starts_with(prefix) {
                return Ok(line);
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait(&mut self) {
        let _ = self.child.wait();
    }
}

/// The measured process: opens the store, starts the engine, waits until every in-flight
/// change order is leased by it again and then driven, then idles. Prints `started <ms>`,
/// `leased <ms>`, `driven <ms>`, `idle-end` and `shutdown <ms>` on stdout.
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
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("leased {}", t0.elapsed().as_millis());
    // Driven: each order's driver loaded it, re-applied its effects and routing and observed
    // its instances (an in-memory count: the watch costs nothing).
    while engine.driven() < in_flight as usize {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("driven {}", t0.elapsed().as_millis());
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    println!("idle-end");
    // What a ListApplication page costs the store (its one read: the page and the total), with
    // every order in flight: the first page and one in the middle, 20 applications each.
    let total = store
        .list_applications(&Default::default(), edas_store::PageRequest::new(1, 1))
        .await?
        .total;
    let middle = u32::try_from(total / 40).unwrap_or(u32::MAX).max(1);
    for (label, number) in [("first", 1), ("middle", middle)] {
        let mut took = Vec::new();
        for _ in 0..200 {
            let started = Instant::now();
            store
                .list_applications(
                    &Default::default(),
                    edas_store::PageRequest::new(number, 20),
                )
                .await?;
            took.push(started.elapsed());
        }
        took.sort();
        println!(
            "list-{label} page {number} (20 per page, {total} applications): p50 {} p99 {}",
            crate::stats::ms(crate::stats::percentile(&took, 0.5)),
            crate::stats::ms(crate::stats::percentile(&took, 0.99))
        );
    }
    // A graceful shutdown with every order in flight (their leases kept, handed over in one
    // write).
    let stopping = Instant::now();
    engine.shutdown().await;
    println!("shutdown {}", stopping.elapsed().as_millis());
    store.close().await;
    Ok(())
}
