//! One task per instance: start (or adopt) the process, run its hooks and probes, restart it
//! with back-off when it exits or fails its liveness/startup probe, give up after a crash loop,
//! and stop it gracefully (PreStop, SIGTERM to the group, grace period, SIGKILL).

use std::os::unix::fs::OpenOptionsExt as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edas_spec::AppSpec;
use edas_spec::model::Artifact;
use k8s_openapi::api::core::v1::{LifecycleHandler, Probe};
use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use crate::housekeeping::{self, Watched, oom_reason};
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
                inst.set_failed(&inner, reason).await;
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
        inst.count_restart(&inner, &reason).await;
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = inst.stop.cancelled() => break,
            () = inner.detach.cancelled() => return,
        }
        backoff = (backoff * 2).min(cfg.max_restart_backoff);
    }
    inner.remove_instance(&inst).await;
}

async fn wait_for_stop(inner: &Inner, inst: &InstanceEntry) -> Outcome {
    tokio::select! {
        () = inst.stop.cancelled() => Outcome::Stopped,
        () = inner.detach.cancelled() => Outcome::Detached,
    }
}

/// Everything probes and hooks need, computed for a start or an adoption: the probe target,
/// the program's argv and the mounts the launcher handles.
async fn probe_target(
    inner: &Arc<Inner>,
    inst: &Arc<InstanceEntry>,
    spec: &Arc<AppSpec>,
    starting: bool,
) -> Result<(probe::Target, Vec<String>, launch::MountPlan), String> {
    let workdir = inst.dir.join("work");
    // User lookups (the password database) and host path checks read files.
    let owner = {
        let (inner, inst, spec) = (inner.clone(), inst.clone(), spec.clone());
        blocking(move || {
            let owner = launch::identity(&spec, inner.run_as_for(&inst.app_id)?)?;
            if let Some(roots) = &inner.config.allowed_host_paths {
                launch::check_host_paths(&spec, roots)?;
            }
            Ok(owner)
        })
        .await?
    };
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
        owner,
        files: inst.files.clone(),
    };
    let (env, plan) = launch::environment(spec, &facts, &inst.config).await?;
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
    let cgroup = inst.status().record.cgroup.clone();
    let sandbox = inner.config.launcher.as_ref().map(|launcher| {
        let read_only_root = spec
            .security_context
            .as_ref()
            .and_then(|s| s.read_only_root_filesystem)
            == Some(true);
        let mut writable = vec![workdir.clone()];
        writable.extend(plan.writable.iter().cloned());
        Arc::new((
            launcher.clone(),
            crate::sandbox::Spec {
                run_as: owner,
                cgroups: cgroup.map(|c| c.dirs).unwrap_or_default(),
                hide: inner.config.hidden_paths.clone(),
                read_only_root,
                writable,
                read_only: plan.read_only.clone(),
                mount_namespace: inner.mount_namespace,
                landlock: true,
                ..Default::default()
            },
        ))
    });
    let target = probe::Target {
        port: inst.port,
        workdir,
        env: env.into_iter().collect(),
        run_as: owner,
        sandbox,
    };
    Ok((target, argv, plan))
}

/// `RequestsEphemeralStorage`: the instances directory must have that much free space when the
/// instance starts (what a scheduler checks). `LimitEphemeralStorage`: the working directory (the
/// instance's writable "layer", `HOME`) is a tmpfs of that size, mounted once and kept across
/// restarts of the instance until it is removed; its pages count toward the memory cgroup.
fn ephemeral_storage(
    inner: &Inner,
    spec: &AppSpec,
    workdir: &std::path::Path,
    owner: Option<(u32, u32)>,
) -> Result<(), String> {
    let r = &spec.resources;
    if let Some(gib) = r.ephemeral_request_gib.filter(|g| *g > 0) {
        let dir = &inner.config.instances_dir;
        let stat = nix::sys::statvfs::statvfs(dir)
            .map_err(|e| format!("cannot read the free space of `{}`: {e}", dir.display()))?;
        let free = stat.blocks_available().saturating_mul(stat.fragment_size());
        if free < u64::from(gib) << 30 {
            return Err(format!(
                "`RequestsEphemeralStorage` asks {gib} GiB, but `{}` has {} MiB free",
                dir.display(),
                free >> 20
            ));
        }
    }
    let Some(gib) = r.ephemeral_limit_gib.filter(|g| *g > 0) else {
        return Ok(());
    };
    if inner.config.launcher.is_none() || !nix::unistd::geteuid().is_root() {
        // Refused when submitted, or recorded only (see `unenforced`).
        return Ok(());
    }
    if is_mount_point(workdir) {
        return Ok(());
    }
    let (uid, gid) = owner.unwrap_or((0, 0));
    nix::mount::mount(
        Some("tmpfs"),
        workdir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(format!("size={gib}g,mode=0700,uid={uid},gid={gid}").as_str()),
    )
    .map_err(|e| {
        format!(
            "cannot limit the working directory `{}` to {gib} GiB (`LimitEphemeralStorage`): {e}",
            workdir.display()
        )
    })?;
    Ok(())
}

/// Whether `path` is a mount point (of this mount namespace).
pub(crate) fn is_mount_point(path: &std::path::Path) -> bool {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| crate::sandbox::mount_points(&m).contains(&real))
        .unwrap_or(false)
}

/// Unmounts the working directory's tmpfs (see [`ephemeral_storage`]), if there is one.
pub(crate) fn unmount_scratch(workdir: &std::path::Path) {
    if is_mount_point(workdir)
        && let Err(e) = nix::mount::umount2(workdir, nix::mount::MntFlags::MNT_DETACH)
    {
        tracing::warn!(dir = %workdir.display(), error = %e, "cannot unmount the instance's working directory");
    }
}

/// The cgroup limits `spec` asks for, plus the configured pids limit.
fn limits(inner: &Inner, spec: &AppSpec) -> crate::cgroup::Limits {
    let r = &spec.resources;
    let mib = |m: Option<u32>| m.filter(|m| *m > 0).map(|m| u64::from(m) << 20);
    crate::cgroup::Limits {
        cpu_limit_millis: r.cpu_limit_millis.filter(|m| *m > 0),
        cpu_request_millis: r.cpu_request_millis.filter(|m| *m > 0),
        memory_limit_bytes: mib(r.memory_limit_mib),
        memory_request_bytes: mib(r.memory_request_mib),
        pids_max: inner.config.pids_max,
    }
}

/// Runs blocking file work off the tokio workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("blocking task failed: {e}"))?
}

/// What a start prepares on disk before the environment: the `logs/` and `work/` directories,
/// the ephemeral-storage check and tmpfs, and the instance's cgroup.
fn prepare(inner: &Inner, inst: &InstanceEntry, spec: &AppSpec) -> Result<(), String> {
    let _files = inst.files.lock().unwrap_or_else(|e| e.into_inner());
    let logs = inst.dir.join("logs");
    let workdir = inst.dir.join("work");
    let owner = launch::identity(spec, inner.run_as_for(&inst.app_id)?)?;
    crate::make_dir(&logs, 0o700)
        .map_err(|e| format!("cannot create `{}`: {e}", logs.display()))?;
    if !workdir.is_dir() {
        crate::make_dir(&workdir, 0o700)
            .map_err(|e| format!("cannot create `{}`: {e}", workdir.display()))?;
        if let Some((uid, gid)) = owner {
            // Just created by edasd in a directory only edasd can write: no link in the way.
            std::os::unix::fs::lchown(&workdir, Some(uid), Some(gid))
                .map_err(|e| format!("cannot give `{}` to the instance: {e}", workdir.display()))?;
        }
    }
    ephemeral_storage(inner, spec, &workdir, owner)?;
    let missing = inner.unenforced(spec);
    if !missing.is_empty() {
        tracing::warn!(instance = %inst.name, not_enforced = %missing.join("; "), "starting without what this host cannot enforce ([local] unenforceable = \"record\")");
    }
    if inner.config.launcher.is_some() {
        let cg = inner.cgroups.create(&inst.name, &limits(inner, spec))?;
        let mut st = inst.status();
        st.record.oom_kills_at_start = cg.oom_kills();
        st.record.cgroup = Some(cg);
    }
    Ok(())
}

/// Opens the log files for appending and, without a launcher, creates the paths the launcher
/// would.
fn open_logs(
    logs: &std::path::Path,
    plan: &launch::MountPlan,
    sandboxed: bool,
) -> Result<(std::fs::File, std::fs::File), String> {
    let open_log = |name: &str| {
        let path = logs.join(name);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| format!("cannot open `{}`: {e}", path.display()))
    };
    crate::logs::retire_run(logs)?;
    let (stdout, stderr) = (open_log("stdout.log")?, open_log("stderr.log")?);
    if !sandboxed {
        // No launcher: edasd creates what the launcher would (as its own user).
        for c in &plan.create {
            crate::sandbox::create(c)?;
        }
    }
    Ok((stdout, stderr))
}

async fn start(
    inner: &Arc<Inner>,
    inst: &Arc<InstanceEntry>,
    spec: &Arc<AppSpec>,
) -> Result<(Running, probe::Target), String> {
    let (i, e, s) = (inner.clone(), inst.clone(), spec.clone());
    blocking(move || prepare(&i, &e, &s)).await?;
    let (target, argv, plan) = probe_target(inner, inst, spec, true).await?;
    let Some(program) = argv.first() else {
        return Err("nothing to run".to_owned());
    };
    let logs = inst.dir.join("logs");
    let sandboxed = target.sandbox.is_some();
    let (stdout, stderr) = {
        let (plan, inst) = (plan.clone(), inst.clone());
        blocking(move || {
            let _files = inst.files.lock().unwrap_or_else(|e| e.into_inner());
            open_logs(&logs, &plan, sandboxed)
        })
        .await?
    };
    let mut cmd = probe::command(
        &argv,
        &target.workdir,
        &target.env,
        target.run_as,
        target.sandbox.as_deref(),
    )?;
    if let Some(sb) = &target.sandbox {
        // Only the instance's own start creates its paths (not its hooks and probes).
        let spec = crate::sandbox::Spec {
            argv: argv.clone(),
            workdir: target.workdir.clone(),
            create: plan.create.clone(),
            ..sb.1.clone()
        };
        let json = serde_json::to_string(&spec).map_err(|e| e.to_string())?;
        cmd.env(crate::sandbox::SPEC_ENV, json);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(false);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    let running = Running::child(child)
        .ok_or_else(|| format!("`{program}` exited before it could be watched"))?;
    inst.record_process(Some(&running));
    Ok((running, target))
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
    inner: &Arc<Inner>,
    inst: &Arc<InstanceEntry>,
    spec: &Arc<AppSpec>,
    mut proc: Running,
    target: Option<probe::Target>,
) -> Outcome {
    let adopted = target.is_none();
    let target = match target {
        Some(t) => t,
        None => match probe_target(inner, inst, spec, false).await {
            Ok((t, _, _)) => t,
            Err(e) => {
                tracing::warn!(instance = %inst.name, error = %e, "environment of an adopted instance cannot be resolved");
                let env = vec![("PORT".to_owned(), inst.port.to_string())];
                // Exec probes and hooks still run in the instance's sandbox.
                let owner = inner.run_as_for(&inst.app_id).ok().flatten();
                let cgroups = inst.status().record.cgroup.clone();
                let sandbox = inner.config.launcher.as_ref().map(|launcher| {
                    Arc::new((
                        launcher.clone(),
                        crate::sandbox::Spec {
                            run_as: owner,
                            cgroups: cgroups.map(|c| c.dirs).unwrap_or_default(),
                            hide: inner.config.hidden_paths.clone(),
                            mount_namespace: inner.mount_namespace,
                            landlock: true,
                            ..Default::default()
                        },
                    ))
                });
                probe::Target {
                    port: inst.port,
                    workdir: inst.dir.join("work"),
                    env,
                    run_as: owner,
                    sandbox,
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
        .filter(|m| *m > 0)
        .map(|m| u64::from(m) * 1024 * 1024);
    let watched = {
        let st = inst.status();
        Watched {
            logs: inst.dir.join("logs"),
            pgid: pid,
            cgroup: st.record.cgroup.clone(),
            oom_base: st.record.oom_kills_at_start,
            memory_limit,
            files: inst.files.clone(),
        }
    };
    // With a memory cgroup the kernel enforces the limit and the housekeeping reads its OOM
    // counter; without one, it watches the resident memory. It rotates the logs too.
    let mut housekeeping = inner.housekeeping.register(watched.clone());
    let (tx, mut rx) = mpsc::channel(16);
    // An adopted instance keeps the readiness it had, so a failing probe can take it away.
    let initially_ready = adopted && inst.is_ready();
    let driver = drive_probes(spec, &target, tx, started, adopted, initially_ready);
    tokio::pin!(driver);
    let mut driver_done = false;
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
                    Msg::Ready(ready) => inst.set_ready(inner, ready).await,
                    Msg::Kill { reason, grace } => break Why::Kill(reason, grace),
                },
                () = &mut driver, if !driver_done => driver_done = true,
                Some(reason) = housekeeping.kills.recv() => break Why::Kill(reason, Some(Duration::ZERO)),
            }
        }
    };
    drop(housekeeping);
    if !matches!(why, Why::Detach) {
        inst.set_ready(inner, false).await;
    }
    match why {
        Why::Detach => Outcome::Detached,
        Why::Stop => {
            terminate(&mut proc, spec.pre_stop.as_ref(), grace_of(spec), &target).await;
            Outcome::Stopped
        }
        Why::Exited(how) => {
            process::signal_group(pid, Signal::SIGKILL);
            let sandbox_failed =
                how.ends_with(&format!("status {}", crate::sandbox::FAILURE_STATUS));
            let stderr = inst.dir.join("logs/stderr.log");
            let (oom, sandbox) = tokio::task::spawn_blocking(move || {
                let oom = housekeeping::oom_killed(&watched);
                let sandbox = (!oom && sandbox_failed)
                    .then(|| crate::sandbox::failure_reason(&stderr))
                    .flatten();
                (oom, sandbox)
            })
            .await
            .unwrap_or_default();
            if oom {
                return Outcome::Failed(format!("{} ({how})", oom_reason(memory_limit)));
            }
            if let Some(reason) = sandbox {
                return Outcome::Failed(format!("the sandbox could not be set up: {reason}"));
            }
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
        && proc.is_alive().await
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

/// [`write_record`] off the tokio workers; returns once written.
pub(crate) async fn save_record(inst: &Arc<InstanceEntry>, record: InstanceRecord) {
    let inst = Arc::clone(inst);
    let _ = tokio::task::spawn_blocking(move || write_record(&inst, &record)).await;
}

/// The state file of an instance, written after each start and each change of its fate.
pub fn write_record(inst: &InstanceEntry, record: &InstanceRecord) {
    let path = inst.dir.join("state.json");
    if let Err(e) = state::write_json(&path, record) {
        tracing::warn!(file = %path.display(), error = %e, "cannot write the instance state file");
    }
}
