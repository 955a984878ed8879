//! One task per instance: start (or adopt) the process, run its hooks and probes, restart it
//! with back-off when it exits or fails its liveness/startup probe, give up after a crash loop,
//! and stop it gracefully (PreStop, SIGTERM to the group, grace period, SIGKILL).

use std::sync::Arc;
use std::time::{Duration, Instant};

use edas_spec::AppSpec;
use edas_spec::model::Artifact;
use k8s_openapi::api::core::v1::{LifecycleHandler, Probe};
use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use crate::launch::{self, InstanceFacts};
use crate::probe::{self, Action, Timing};
use crate::process::{self, Running};
use crate::state::{self, InstanceRecord};
use crate::{Inner, InstanceEntry};

/// How long a PostStart hook may run.
const POST_START_TIMEOUT: Duration = Duration::from_secs(300);
/// When the pre-stop hook used up the grace period, the process still gets this long after
/// SIGTERM (Kubernetes' one-off extension).
const GRACE_EXTENSION: Duration = Duration::from_secs(2);
/// How often logs are checked for rotation and memory for the limit.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// How the supervisor begins.
pub enum Initial {
    /// Start a new process.
    Start,
    /// Keep supervising a process found running.
    Adopt(Running),
    /// The instance was given up on before; wait to be stopped or replaced.
    Failed(String),
}

enum Outcome {
    /// Asked to stop, and stopped.
    Stopped,
    /// The runtime is going away; the process is left running.
    Detached,
    /// The process ended or was killed for a reason; restart it.
    Failed(String),
}

enum Msg {
    Ready(bool),
    Kill {
        reason: String,
        grace: Option<Duration>,
    },
}

/// Supervises `inst` until it is stopped (then removes it) or the runtime detaches.
pub async fn supervise(
    inner: Arc<Inner>,
    inst: Arc<InstanceEntry>,
    spec: Arc<AppSpec>,
    initial: Initial,
) {
    let cfg = &inner.config;
    let mut backoff = cfg.restart_backoff;
    let mut quick_failures = 0u32;
    let mut next = Some(initial);
    loop {
        let started = Instant::now();
        let outcome = match next.take().unwrap_or(Initial::Start) {
            Initial::Failed(reason) => {
                inst.set_failed(&inner, reason);
                wait_for_stop(&inner, &inst).await
            }
            Initial::Adopt(running) => run(&inner, &inst, &spec, running, None).await,
            // A start awaits only before it spawns (package fetch, ConfigMap and Secret
            // lookups), so giving it up for a stop or a detach never orphans a process.
            Initial::Start => tokio::select! {
                started = start(&inner, &inst, &spec) => match started {
                    Ok((running, target)) => run(&inner, &inst, &spec, running, Some(target)).await,
                    Err(e) => Outcome::Failed(format!("cannot start: {e}")),
                },
                () = inst.stop.cancelled() => Outcome::Stopped,
                () = inner.detach.cancelled() => Outcome::Detached,
            },
        };
        let reason = match outcome {
            Outcome::Stopped => break,
            Outcome::Detached => return,
            Outcome::Failed(reason) => reason,
        };
        if started.elapsed() < cfg.quick_failure {
            quick_failures += 1;
        } else {
            quick_failures = 1;
            backoff = cfg.restart_backoff;
        }
        if quick_failures >= cfg.crash_loop_limit {
            let reason = format!("{reason} ({quick_failures} times in a row; gave up)");
            next = Some(Initial::Failed(reason));
            continue;
        }
        inst.count_restart(&inner, &reason);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = inst.stop.cancelled() => break,
            () = inner.detach.cancelled() => return,
        }
        backoff = (backoff * 2).min(cfg.max_restart_backoff);
    }
    inner.remove_instance(&inst);
}

async fn wait_for_stop(inner: &Inner, inst: &InstanceEntry) -> Outcome {
    tokio::select! {
        () = inst.stop.cancelled() => Outcome::Stopped,
        () = inner.detach.cancelled() => Outcome::Detached,
    }
}

/// Everything probes and hooks need, computed for a start or an adoption.
async fn probe_target(
    inner: &Inner,
    inst: &InstanceEntry,
    spec: &AppSpec,
    starting: bool,
) -> Result<(probe::Target, Vec<String>), String> {
    let workdir = inst.dir.join("work");
    let package = match &spec.artifact {
        Artifact::Package(p) => Some(inner.packages.fetch(&p.url, &p.version).await?),
        _ => None,
    };
    let facts = InstanceFacts {
        name: &inst.name,
        port: inst.port,
        dir: &inst.dir,
        workdir: &workdir,
        package: package.as_deref(),
        write_config_files: starting,
    };
    let env = launch::environment(spec, &facts, inner.source.as_ref()).await?;
    let mut argv: Vec<String> = Vec::new();
    match (&spec.command, &package, &spec.artifact) {
        (Some(command), _, _) => {
            argv.push(launch::expand(command, &env));
            argv.extend(spec.args.iter().map(|a| launch::expand(a, &env)));
        }
        (None, Some(file), Artifact::Package(p)) => {
            argv.push(inner.java_for(p.jdk.as_deref())?.display().to_string());
            argv.extend(spec.java_options());
            argv.push("-jar".to_owned());
            argv.push(file.display().to_string());
            argv.extend(spec.args.iter().map(|a| launch::expand(a, &env)));
        }
        _ => return Err("nothing to run".to_owned()),
    }
    let target = probe::Target {
        port: inst.port,
        workdir,
        env: env.into_iter().collect(),
        run_as: inner.run_as,
    };
    Ok((target, argv))
}

async fn start(
    inner: &Inner,
    inst: &InstanceEntry,
    spec: &AppSpec,
) -> Result<(Running, probe::Target), String> {
    let logs = inst.dir.join("logs");
    for dir in [inst.dir.join("work"), logs.clone()] {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    }
    let (target, argv) = probe_target(inner, inst, spec, true).await?;
    let open_log = |name: &str| {
        let path = logs.join(name);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open `{}`: {e}", path.display()))
    };
    let (stdout, stderr) = (open_log("stdout.log")?, open_log("stderr.log")?);
    if let Some((uid, gid)) = inner.run_as {
        chown_tree(&inst.dir, uid, gid);
    }
    let Some((program, args)) = argv.split_first() else {
        return Err("nothing to run".to_owned());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(&target.workdir)
        .env_clear()
        .envs(target.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(false);
    if let Some((uid, gid)) = inner.run_as {
        cmd.uid(uid).gid(gid);
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    let running = Running::child(child)
        .ok_or_else(|| format!("`{program}` exited before it could be watched"))?;
    inst.record_process(Some(&running));
    Ok((running, target))
}

fn chown_tree(path: &std::path::Path, uid: u32, gid: u32) {
    let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                chown_tree(&e.path(), uid, gid);
            } else {
                let _ = std::os::unix::fs::chown(e.path(), Some(uid), Some(gid));
            }
        }
    }
}

fn grace_of(spec: &AppSpec) -> Duration {
    Duration::from_secs(u64::from(
        spec.termination_grace_period_seconds.unwrap_or(30),
    ))
}

fn probe_grace(p: &Probe) -> Option<Duration> {
    p.termination_grace_period_seconds
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
}

/// Watches a running process; `target` is `None` for an adopted one (then it is recomputed).
async fn run(
    inner: &Inner,
    inst: &InstanceEntry,
    spec: &AppSpec,
    mut proc: Running,
    target: Option<probe::Target>,
) -> Outcome {
    let adopted = target.is_none();
    let target = match target {
        Some(t) => t,
        None => match probe_target(inner, inst, spec, false).await {
            Ok((t, _)) => t,
            Err(e) => {
                tracing::warn!(instance = %inst.name, error = %e, "environment of an adopted instance cannot be resolved");
                let env = vec![("PORT".to_owned(), inst.port.to_string())];
                probe::Target {
                    port: inst.port,
                    workdir: inst.dir.join("work"),
                    env,
                    run_as: inner.run_as,
                }
            }
        },
    };
    let pid = proc.pid;
    let started = if adopted {
        Instant::now() - Duration::from_secs(86_400)
    } else {
        Instant::now()
    };
    let memory_limit = spec
        .resources
        .memory_limit_mib
        .map(|m| u64::from(m) * 1024 * 1024);
    let (tx, mut rx) = mpsc::channel(16);
    // An adopted instance keeps the readiness it had, so a failing probe can take it away.
    let initially_ready = adopted && inst.is_ready();
    let driver = drive_probes(spec, &target, tx, started, adopted, initially_ready);
    tokio::pin!(driver);
    let mut driver_done = false;
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    enum Why {
        Detach,
        Stop,
        Exited(String),
        Kill(String, Option<Duration>),
    }
    let why = {
        let exit = proc.wait();
        tokio::pin!(exit);
        loop {
            tokio::select! {
                biased;
                () = inner.detach.cancelled() => break Why::Detach,
                () = inst.stop.cancelled() => break Why::Stop,
                how = &mut exit => break Why::Exited(how),
                Some(msg) = rx.recv() => match msg {
                    Msg::Ready(ready) => inst.set_ready(inner, ready),
                    Msg::Kill { reason, grace } => break Why::Kill(reason, grace),
                },
                () = &mut driver, if !driver_done => driver_done = true,
                _ = housekeeping.tick() => {
                    for name in ["stdout.log", "stderr.log"] {
                        let file = inst.dir.join("logs").join(name);
                        if let Err(e) = process::rotate_if_large(&file, inner.config.log_max_bytes, inner.config.log_files_kept) {
                            tracing::warn!(file = %file.display(), error = %e, "log rotation failed");
                        }
                    }
                    if let Some(limit) = memory_limit {
                        let used = process::group_rss_bytes(pid);
                        if used > limit {
                            break Why::Kill(
                                format!("OOMKilled: resident memory {} MiB over the limit of {} MiB", used / 1024 / 1024, limit / 1024 / 1024),
                                Some(Duration::ZERO),
                            );
                        }
                    }
                }
            }
        }
    };
    if !matches!(why, Why::Detach) {
        inst.set_ready(inner, false);
    }
    match why {
        Why::Detach => Outcome::Detached,
        Why::Stop => {
            terminate(&mut proc, spec.pre_stop.as_ref(), grace_of(spec), &target).await;
            Outcome::Stopped
        }
        Why::Exited(how) => {
            process::signal_group(pid, Signal::SIGKILL);
            Outcome::Failed(how)
        }
        Why::Kill(reason, grace) => {
            terminate(
                &mut proc,
                spec.pre_stop.as_ref(),
                grace.unwrap_or_else(|| grace_of(spec)),
                &target,
            )
            .await;
            Outcome::Failed(reason)
        }
    }
}

/// PreStop, then SIGTERM to the group, then SIGKILL when the grace period (counted from the
/// start of PreStop, as Kubernetes does) is over.
async fn terminate(
    proc: &mut Running,
    pre_stop: Option<&LifecycleHandler>,
    grace: Duration,
    target: &probe::Target,
) {
    let deadline = tokio::time::Instant::now() + grace;
    let mut extension = false;
    if let Some(action) = pre_stop.and_then(Action::of_handler)
        && proc.is_alive()
    {
        match tokio::time::timeout_at(
            deadline,
            action.run(target, grace.max(Duration::from_secs(1))),
        )
        .await
        {
            Err(_) => extension = true,
            Ok(Err(e)) => tracing::warn!(pid = proc.pid, error = %e, "PreStop hook failed"),
            Ok(Ok(())) => {}
        }
    }
    process::signal_group(proc.pid, Signal::SIGTERM);
    let until = if extension {
        tokio::time::Instant::now() + GRACE_EXTENSION
    } else {
        deadline
    };
    if tokio::time::timeout_at(until, proc.wait()).await.is_err() {
        process::signal_group(proc.pid, Signal::SIGKILL);
        proc.wait().await;
    }
    process::signal_group(proc.pid, Signal::SIGKILL);
}

/// PostStart, then the startup probe, then readiness and liveness side by side.
async fn drive_probes(
    spec: &AppSpec,
    target: &probe::Target,
    tx: mpsc::Sender<Msg>,
    started: Instant,
    adopted: bool,
    initially_ready: bool,
) {
    let kill = |reason: String, grace: Option<Duration>| Msg::Kill { reason, grace };
    if !adopted && let Some(action) = spec.post_start.as_ref().and_then(Action::of_handler) {
        match tokio::time::timeout(POST_START_TIMEOUT, action.run(target, POST_START_TIMEOUT)).await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return drop(
                    tx.send(kill(format!("PostStart hook failed: {e}"), None))
                        .await,
                );
            }
            Err(_) => {
                return drop(
                    tx.send(kill("PostStart hook timed out".to_owned(), None))
                        .await,
                );
            }
        }
    }
    if let Some(p) = &spec.startup
        && let Some(action) = Action::of_probe(p)
    {
        let t = Timing::of(p);
        sleep_until(started + t.initial_delay).await;
        let mut failures = 0;
        loop {
            match action.run(target, t.timeout).await {
                Ok(()) => break,
                Err(e) => {
                    failures += 1;
                    if failures >= t.failure_threshold {
                        let reason = format!("Startup probe failed {failures} times: {e}");
                        return drop(tx.send(kill(reason, probe_grace(p))).await);
                    }
                }
            }
            tokio::time::sleep(t.period).await;
        }
    }
    let readiness = async {
        let Some((p, action)) = spec
            .readiness
            .as_ref()
            .and_then(|p| Some((p, Action::of_probe(p)?)))
        else {
            let _ = tx.send(Msg::Ready(true)).await;
            return;
        };
        let t = Timing::of(p);
        sleep_until(started + t.initial_delay).await;
        let (mut ready, mut successes, mut failures) = (initially_ready, 0, 0);
        loop {
            match action.run(target, t.timeout).await {
                Ok(()) => {
                    (successes, failures) = (successes + 1, 0);
                    if !ready && successes >= t.success_threshold {
                        ready = true;
                        let _ = tx.send(Msg::Ready(true)).await;
                    }
                }
                Err(e) => {
                    (successes, failures) = (0, failures + 1);
                    if ready && failures >= t.failure_threshold {
                        tracing::info!(error = %e, "readiness probe failed");
                        ready = false;
                        let _ = tx.send(Msg::Ready(false)).await;
                    }
                }
            }
            tokio::time::sleep(t.period).await;
        }
    };
    let liveness = async {
        let Some((p, action)) = spec
            .liveness
            .as_ref()
            .and_then(|p| Some((p, Action::of_probe(p)?)))
        else {
            return;
        };
        let t = Timing::of(p);
        sleep_until(started + t.initial_delay).await;
        let mut failures = 0;
        loop {
            match action.run(target, t.timeout).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    if failures >= t.failure_threshold {
                        let reason = format!("Liveness probe failed {failures} times: {e}");
                        let _ = tx.send(kill(reason, probe_grace(p))).await;
                        return;
                    }
                }
            }
            tokio::time::sleep(t.period).await;
        }
    };
    tokio::join!(readiness, liveness);
}

async fn sleep_until(at: Instant) {
    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
}

/// The state file of an instance, written after each start and each change of its fate.
pub fn write_record(inst: &InstanceEntry, record: &InstanceRecord) {
    let path = inst.dir.join("state.json");
    if let Err(e) = state::write_json(&path, record) {
        tracing::warn!(file = %path.display(), error = %e, "cannot write the instance state file");
    }
}
