//! `edas-bench release-overhead --runtime local`: what the release engine adds to a release of
//! real instances. The real edasd (release build) runs a BatchUpdate of `replicas`
//! single-instance batches, automatic, no wait, of the real `edas-testapp` binary on the
//! built-in `local` runtime (no readiness probe: an instance is ready once its process runs).
//!
//! - **Gap**, batch N done → batch N+1 started, from the local runtime's own records: from the
//!   moment batch N's old instance was gone (the runtime removed it and moved its logs, which
//!   is when it tells the engine) to the creation of batch N+1's new instance (its state
//!   record). In between: the runtime event, the engine's observation, the state-machine steps
//!   and their durable writes, the `set_replicas` call.
//! - **Floor**, in the same run: the same batch sequence (start one new instance, wait until it
//!   is ready, stop one old instance, wait until it is gone) driven directly on the same local
//!   runtime code (`edas_local::LocalRuntime`, in this process, its events awaited, no store,
//!   no engine), measured the same way. **Engine overhead** = release wall time − floor wall
//!   time, also as a share of the release.
//!
//! `--runtime fake-kube` measures the same on the fake Kubernetes API server (see
//! [`crate::kube_release`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use edas_local::{LocalConfig, LocalRuntime};
use edas_runtime::{Runtime, Target};
use edas_spec::{Operation, apply};
use serde_json::{Value, json};

use crate::batch_gap::params;
use crate::server::{Operations, Server};
use crate::stats::{machine, ms, percentile};

/// A readiness probe on the test app's `/ready`, every second (Kubernetes' smallest period).
const READINESS: &str = r#"{"httpGet":{"path":"/ready","port":8080},"initialDelaySeconds":0,"periodSeconds":1,"timeoutSeconds":1,"successThreshold":1,"failureThreshold":3}"#;

pub(crate) async fn release_overhead(
    runtime: &str,
    replicas: u32,
    runs: u32,
    probe: bool,
    pod_ready: Duration,
    edasd: PathBuf,
    testapp: PathBuf,
) -> anyhow::Result<()> {
    if runtime == "fake-kube" {
        println!("machine: {}", machine());
        let dir = tempfile::tempdir()?;
        let (mut gaps, walls, mut floor_gaps, floors) =
            crate::kube_release::run(&edasd, dir.path(), replicas, runs, pod_ready).await?;
        gaps.sort();
        floor_gaps.sort();
        println!(
            "release-overhead (fake Kubernetes API server, pods Ready {} after start, {replicas} \
             single-instance batches, auto, no wait, {runs} releases)",
            ms(pod_ready)
        );
        report(&gaps, &floor_gaps, &walls, &floors);
        return Ok(());
    }
    if runtime != "local" {
        bail!("--runtime {runtime}: use `local` or `fake-kube`");
    }
    if !testapp.exists() {
        bail!(
            "{} does not exist: build it with `cargo build --release -p edas-testapp` or pass --testapp",
            testapp.display()
        );
    }
    println!("machine: {}", machine());
    let dir = tempfile::tempdir()?;
    let (gaps, walls) = through_edasd(&edasd, &testapp, dir.path(), replicas, runs, probe).await?;
    let (floors, mut floor_gaps) =
        direct(&testapp, &dir.path().join("floor"), replicas, runs, probe).await?;

    let mut gaps = gaps;
    gaps.sort();
    floor_gaps.sort();
    println!(
        "release-overhead (local runtime, {replicas} single-instance batches, auto, no wait, {runs} releases, {})",
        if probe {
            "readiness probe every 1 s"
        } else {
            "no readiness probe"
        }
    );
    report(&gaps, &floor_gaps, &walls, &floors);
    Ok(())
}

/// Releases through the real edasd; (gaps, wall time of each release from the change order's
/// create time to its finish time).
async fn through_edasd(
    edasd: &Path,
    testapp: &Path,
    dir: &Path,
    replicas: u32,
    runs: u32,
    probe: bool,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let server = Server::edasd(edasd, &dir.join("edasd"), None)?;
    // edasd keeps instances outside its data directory: `<data-dir>.instances` by default.
    let instances = dir.join("edasd.instances");
    let api = Operations::new(&server);
    let envs = |v: &str| json!([{"name": "APP_VERSION", "value": v}]).to_string();
    let app = api
        .insert(
            vec![
                ("AppName", "overhead".into()),
                ("ClusterId", "local".into()),
                ("ImageUrl", "edas-testapp:v0".into()),
                ("Command", testapp.display().to_string()),
                ("Replicas", replicas.to_string()),
                ("Envs", envs("v0")),
            ]
            .into_iter()
            .chain(probe.then(|| ("Readiness", READINESS.to_owned())))
            .collect(),
        )
        .await?;
    let strategy = format!(
        r#"{{"type":"BatchUpdate","batchUpdate":{{"batch":{replicas},"releaseType":"auto","batchWaitTime":0}}}}"#
    );
    let mut gaps = Vec::new();
    let mut walls = Vec::new();
    for run in 1..=runs {
        let v = format!("v{run}");
        let (created, wall) = api
            .deploy(vec![
                ("AppId", app.clone()),
                ("Image", format!("edas-testapp:{v}")),
                ("Envs", envs(&v)),
                ("UpdateStrategy", strategy.clone()),
            ])
            .await?;
        walls.push(wall);
        gaps.extend(file_gaps(
            &dir.join("edasd").join("local"),
            &instances,
            &app,
            created,
        )?);
    }
    drop(server);
    // The instances outlive edasd by design: stop them (each leads its own process group).
    kill_instances(&instances);
    Ok((gaps, walls))
}

/// Prints the gaps, the floor's gaps, and the engine's overhead as a share of the release.
fn report(gaps: &[Duration], floor_gaps: &[Duration], walls: &[Duration], floors: &[Duration]) {
    let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len().max(1) as u32;
    let wall = mean(walls);
    let floor = mean(floors);
    let overhead = wall.saturating_sub(floor);
    println!(
        "  gap batch N done → N+1 started: {} gaps, p50 {} p90 {} p99 {} max {}",
        gaps.len(),
        ms(percentile(gaps, 0.5)),
        ms(percentile(gaps, 0.9)),
        ms(percentile(gaps, 0.99)),
        ms(gaps.last().copied().unwrap_or_default())
    );
    println!(
        "  floor gap (same runtime, no engine): {} gaps, p50 {} p90 {} max {}",
        floor_gaps.len(),
        ms(percentile(floor_gaps, 0.5)),
        ms(percentile(floor_gaps, 0.9)),
        ms(floor_gaps.last().copied().unwrap_or_default())
    );
    println!(
        "  release wall time (mean) {}; floor (same batches directly on the runtime) {}; \
         engine overhead {} = {:.1}% of the release",
        ms(wall),
        ms(floor),
        ms(overhead),
        overhead.as_secs_f64() * 100.0 / wall.as_secs_f64().max(f64::MIN_POSITIVE)
    );
    println!(
        "  per release: walls {:?}, floors {:?}",
        walls.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        floors.iter().map(|d| ms(*d)).collect::<Vec<_>>()
    );
}

/// Milliseconds since the Unix epoch.
fn epoch_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The gaps of the release that started at `since_ms` on a local runtime's data directory
/// (`local`) and its instances directory (`instances`): old instance k gone (its logs directory
/// moved aside, stamped then) → new instance k+1 created (its state record's `created_ms`).
fn file_gaps(
    local: &Path,
    instances: &Path,
    app: &str,
    since_ms: u64,
) -> anyhow::Result<Vec<Duration>> {
    let dirs = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut gone: Vec<u64> = dirs(&local.join("logs").join(app))
        .iter()
        .filter_map(|d| std::fs::metadata(d).ok()?.modified().ok())
        .map(epoch_ms)
        .filter(|t| *t >= since_ms)
        .collect();
    gone.sort_unstable();
    let mut created: Vec<u64> = Vec::new();
    for rev in dirs(&instances.join(app)) {
        for inst in dirs(&rev) {
            let text = std::fs::read_to_string(inst.join("state.json"))?;
            let v: Value = serde_json::from_str(&text)?;
            if let Some(t) = v["created_ms"].as_u64().filter(|t| *t >= since_ms) {
                created.push(t);
            }
        }
    }
    created.sort_unstable();
    Ok(gone
        .iter()
        .zip(created.iter().skip(1))
        .map(|(g, c)| Duration::from_millis(c.saturating_sub(*g)))
        .collect())
}

/// SIGKILLs the process group of every instance a local runtime's state files name.
pub(crate) fn kill_instances(instances: &Path) {
    let dirs = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    for app in dirs(instances) {
        for rev in dirs(&app) {
            for inst in dirs(&rev) {
                let Ok(text) = std::fs::read_to_string(inst.join("state.json")) else {
                    continue;
                };
                let pid = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["pid"].as_i64());
                // Never through /bin/kill: procps reads `kill -KILL -<pgid>` as `kill -1`
                // (every process of the user). Only a plausible group id is signalled.
                if let Some(pgid) = pid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 1) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pgid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
    }
}

/// The floor: the same batches driven directly on a `LocalRuntime`; the wall time of each.
async fn direct(
    testapp: &Path,
    dir: &Path,
    replicas: u32,
    runs: u32,
    probe: bool,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let runtime = LocalRuntime::new(LocalConfig::new(dir))?;
    let mut events = runtime.subscribe();
    let spec = |v: &str| -> anyhow::Result<Arc<edas_spec::AppSpec>> {
        let envs = json!([{"name": "APP_VERSION", "value": v}]).to_string();
        let command = testapp.display().to_string();
        let replicas = replicas.to_string();
        let mut p = vec![
            ("AppName", "floor"),
            ("ClusterId", "local"),
            ("ImageUrl", "edas-testapp:v0"),
            ("Command", command.as_str()),
            ("Replicas", replicas.as_str()),
            ("Envs", envs.as_str()),
        ];
        if probe {
            p.push(("Readiness", READINESS));
        }
        let change = apply(Operation::InsertK8sApplication, None, &params(&p))
            .map_err(|v| anyhow::anyhow!("{v}"))?;
        Ok(Arc::new(change.spec))
    };
    let target = |rev: u32, v: &str| -> anyhow::Result<Target> {
        Ok(Target {
            app: crate::kube_release::floor_app(),
            revision: rev.to_string(),
            spec: spec(v)?,
            config: Default::default(),
        })
    };
    // Waits (event-driven, bounded) until `check` holds for a revision's observed state.
    let first = target(0, "v0")?;
    runtime.set_replicas(&first, replicas).await?;
    until(&runtime, &mut events, "0", |s| s.ready == replicas).await?;
    let mut walls = Vec::new();
    let mut gaps = Vec::new();
    for run in 1..=runs {
        let old = target(run - 1, &format!("v{}", run - 1))?;
        let new = target(run, &format!("v{run}"))?;
        let started = Instant::now();
        let since = epoch_ms(std::time::SystemTime::now());
        floor_batches(&runtime, &mut events, &old, &new, replicas).await?;
        walls.push(started.elapsed());
        gaps.extend(file_gaps(dir, &dir.join("instances"), "floor", since)?);
    }
    let last = target(runs, "last")?;
    runtime.set_replicas(&last, 0).await?;
    until(&runtime, &mut events, &last.revision, |s| s.total == 0).await?;
    drop(runtime);
    Ok((walls, gaps))
}

/// Waits, on the runtime's own events, until `check` holds for revision `revision` of the
/// floor's application (at most two minutes).
pub(crate) async fn until(
    runtime: &dyn Runtime,
    events: &mut tokio::sync::broadcast::Receiver<edas_runtime::RuntimeEvent>,
    revision: &str,
    check: impl Fn(&edas_runtime::RevisionState) -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let state = runtime
            .observe(&crate::kube_release::floor_app(), revision)
            .await?;
        if check(&state) {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => bail!("revision {revision} did not get there in time: {state:?}"),
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                bail!("the runtime's events closed")
            }
            Ok(_) => {}
        }
    }
}

/// The floor of a release: `new` replaces `old` one instance per batch, each step awaited on the
/// runtime's events, as the engine paces it but with no store and no engine in between.
pub(crate) async fn floor_batches(
    runtime: &dyn Runtime,
    events: &mut tokio::sync::broadcast::Receiver<edas_runtime::RuntimeEvent>,
    old: &Target,
    new: &Target,
    replicas: u32,
) -> anyhow::Result<()> {
    for k in 1..=replicas {
        runtime.set_replicas(new, k).await?;
        until(runtime, events, &new.revision, |s| s.ready >= k).await?;
        runtime.set_replicas(old, replicas - k).await?;
        until(runtime, events, &old.revision, |s| s.total <= replicas - k).await?;
    }
    Ok(())
}
