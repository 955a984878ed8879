//! The local runtime: the instances of an application on the built-in cluster `local` are
//! supervised processes on this machine.
//!
//! [`LocalRuntime`] implements [`edas_runtime::Runtime`]. Each instance is one process, started
//! in its own process group, in its own directory (layout in [`state`]), with stdout and stderr
//! appended to `logs/stdout.log` and `logs/stderr.log` (never a pipe to edasd, so an instance
//! outlives edasd), rotated by size (`copytruncate`: [`LocalConfig::log_max_bytes`] ×
//! [`LocalConfig::log_files_kept`]). When a run ends and the instance restarts, the run's logs
//! move to `logs/previous/` (what [`Runtime::logs`] reads with `previous`). When an instance
//! stops, its logs move to `<data_dir>/logs/<app_id>/<instance>/` (the newest
//! [`LocalConfig::stopped_logs_kept`] kept), still readable by the instance's name.
//!
//! # What an instance runs
//! - `Command` + `Args`: the program is executed directly, **not through a shell** (write
//!   `Command=sh`, `Args=["-c", "…"]` for shell syntax). `$(VAR)` references in both are expanded
//!   from the instance's environment as Kubernetes does (`$$` is a literal `$`).
//! - A package (`PackageUrl`, file:// or http(s)://) is fetched once per (URL, `PackageVersion`)
//!   and run as `java <JavaStartUpConfig/WebContainerConfig options> -jar <file> <Args>`. `JDK`
//!   unset runs [`LocalConfig::default_java`]; a `JDK` value runs the binary
//!   [`LocalConfig::java_binaries`] maps it to, and an unmapped value is refused. With `Command`
//!   given too, the command runs instead and finds the package in `EDAS_PACKAGE_FILE`.
//! - An image without `Command` is refused ([`edas_runtime::RuntimeError::Unsupported`]): that
//!   needs a container engine. With `Command`, the command runs here and the image is not used.
//! - Refused as well: `Sidecars`, `InitContainers`, `PvcMountDescs`, NFS `MountDescs`, grpc
//!   probes, HTTPS probes, probe/hook hosts other than 127.0.0.1, `resourceFieldRef` env values.
//!
//! # Ports
//! Each instance gets a unique free loopback port in `PORT` (kept across its restarts). Every
//! port number (or name) in a probe or hook means that port: all instances share 127.0.0.1, so a
//! spec written for pods (each with its own IP) can only work that way. Service target ports of a
//! local application refer to it the same way. `PORT` cannot be overridden by `Envs`.
//!
//! # Environment
//! Cleared (an instance never sees edasd's environment), then (later wins): `PATH`, `LANG`,
//! `LC_ALL`, `TZ` from edasd; `HOME` (the working
//! directory), `HOSTNAME` and `EDAS_INSTANCE_NAME` (the instance name), `EDAS_APP_NAME`,
//! `EDAS_NAMESPACE`, `EDAS_INSTANCE_DIR`, `EDAS_PACKAGE_FILE`; `EnvFroms` (ConfigMaps and Secrets
//! of the target's [`edas_runtime::ConfigSnapshot`], with their prefix); `Envs` (values with `$(VAR)` expansion, ConfigMap
//! and Secret keys, `fieldRef` `metadata.name`, `metadata.namespace`, `status.podIP`/`hostIP`
//! = 127.0.0.1, `spec.nodeName` = `local`); finally `PORT`. A missing ConfigMap, Secret or key
//! (not marked optional) fails the start, which is retried with back-off like a crash.
//!
//! # Mounts
//! A process cannot mount at an absolute path, so each mount path is announced in its own
//! variable, `EDAS_MOUNT_<PATH>` (the path upper-cased, non-alphanumeric runs as `_`:
//! `/app/conf.d` → `EDAS_MOUNT_APP_CONF_D`), and all of them in `EDAS_MOUNTS` as
//! `mountPath=localPath` lines. `EmptyDirs` are directories under the instance directory (kept
//! across restarts of the instance, removed with it; `subPathExpr` is honoured); `LocalVolume` is
//! its node path (the hostPath type is checked or created as Kubernetes does);
//! `ConfigMountDescs` are directories with one file per key, rewritten at each start (read-only
//! in the instance's mount namespace); `readOnly` `EmptyDirs` are bind-mounted read-only there.
//!
//! # Probes, hooks, restarts
//! Kubernetes semantics: PostStart runs after the start and before any probe; the Startup probe
//! gates Liveness and Readiness; an instance is ready after `successThreshold` readiness
//! successes (at once without a readiness probe) and not ready after `failureThreshold`
//! failures. That plain readiness is what [`Runtime::observe`] reports: `BatchWaitTime`
//! (`min_ready_seconds`) and the lossless delays are applied by the release engine, as the port
//! says. A failed Liveness or Startup probe or PostStart hook
//! kills the process (PreStop, SIGTERM, grace period: the probe's own
//! `terminationGracePeriodSeconds` if set); a process that exits is restarted too (as with
//! `restartPolicy: Always`), after an exponential back-off ([`LocalConfig::restart_backoff`]
//! doubling up to [`LocalConfig::max_restart_backoff`]). After
//! [`LocalConfig::crash_loop_limit`] consecutive runs shorter than
//! [`LocalConfig::quick_failure`], the runtime gives up: the instance is reported `failed` with
//! the reason until it is stopped or replaced ([`Runtime::recreate_failed`]). Stopping runs
//! PreStop, sends SIGTERM to the process group, waits for `TerminateGracePeriod` (default 30 s,
//! counted from the start of PreStop, plus 2 s if PreStop used it all) and then sends SIGKILL.
//! Scale-down stops failed instances first, then not-ready ones, then the newest.
//! Every change (started, ready, not ready, restarted, failed, gone) is broadcast as a
//! [`RuntimeEvent`] at once.
//!
//! # Sandbox and limits
//! With a [`LocalConfig::launcher`] (edasd always sets one), every instance, exec hook and exec
//! probe starts through [`sandbox`]: the instance's cgroup ([`cgroup`]: CPU limit and request,
//! memory limit and request, [`LocalConfig::pids_max`]), a private mount namespace and Landlock
//! rules hiding [`LocalConfig::hidden_paths`], `readOnlyRootFilesystem`, the instance's user
//! (`SecurityContext` runAsUser/runAsGroup, else [`LocalConfig::run_as_user`], else the
//! application's own from [`LocalConfig::app_uids`]) with `no_new_privs`. An OOM kill (the
//! memory cgroup's counter) ends the whole instance and is reported as `OOMKilled`; without a
//! memory cgroup the resident memory of the process group is watched once a second instead.
//! `LimitEphemeralStorage` makes the working directory a tmpfs of that size (root only);
//! `RequestsEphemeralStorage` must be free when an instance starts. What the host cannot
//! enforce is refused ([`RuntimeError::Unsupported`], naming the parameter) unless
//! [`LocalConfig::unenforceable`] records it only. `LocalVolume` node paths and `file://`
//! packages must lie under [`LocalConfig::allowed_host_paths`]. Not applied on one machine
//! (recorded only): node and zone spreading, affinity, tolerations, `RuntimeClassName`,
//! `ImagePlatforms`, image pull secrets, labels and annotations. Lossless start and traffic
//! rules belong to the local service proxy (below).
//!
//! # Services
//! [`Runtime::set_routing`] gives an application one `edas-proxy` listener per service port on
//! `127.0.0.1:<port>` (any target port means each instance's one `PORT`), balancing over the
//! ready instances of every revision. The backend set is recomputed whenever an instance changes
//! state (the moment its [`RuntimeEvent`] is sent; no polling). During a gray split the gray
//! revision's instances get the configured share; lossless start and empty-push protection come
//! from the routing. Scaling down drains an instance first: it gets no new request, its requests
//! in flight finish (within its grace period), and only then PreStop and SIGTERM run. The
//! routing is written to `<data_dir>/routing/<app_id>.json` before it is applied and bound again
//! when a runtime is created, and an adopted instance keeps the readiness it had, so the service
//! ports answer again within tens of milliseconds of an edasd restart. UDP, a port another
//! process holds and ports that cannot be bound (below 1024 without root) are refused by
//! [`Runtime::check_routing`] when the change is submitted; a port of another application is
//! refused by the API (which knows the application) and again by `set_routing`.
//!
//! # Surviving edasd
//! Instances are not killed when the runtime is dropped or edasd exits or crashes: dropping a
//! [`LocalRuntime`] only stops supervising (and log rotation pauses until a runtime adopts the
//! instance again). One runtime at a time may use a data directory: it holds an exclusive lock on
//! `<data_dir>/edas-local.lock` (not inherited by instances) while it lives. Each instance has a
//! state file (pid, process start time from `/proc/<pid>/stat`, port, restarts, failure).
//! [`LocalRuntime::new`] adopts every instance it finds: a pid whose start time still matches is
//! the same process and is supervised again (probes resume at once, PostStart is not rerun);
//! otherwise the process is gone and the instance is started again (a restart). An adopted process is not our child, so its exit is
//! seen by looking at `/proc` every 200 ms. A service manager must not kill them either: under
//! systemd, run edasd with `KillMode=process` (the default `control-group` kills the whole cgroup,
//! instances included).
//!
//! # Blocking work
//! File and `/proc` work runs off the tokio workers (`spawn_blocking`, `tokio::fs`), except
//! reading a just-spawned process's start time and recording it (no await between spawning and
//! recording, so a start given up for a stop never leaves an unrecorded process) and
//! [`LocalRuntime::new`]'s adoption (a synchronous constructor, once at start). What is
//! periodic — log rotation, the OOM and resident-memory watch, adopted processes' exits — is
//! one housekeeping task per runtime for all instances, not a timer per instance (the module
//! `housekeeping` says why each is periodic).
//!
//! # Tests of the whole project
//! `edas-testapp` is a library and a binary; a test binary of another crate can run it by
//! re-executing itself with a test that calls `edas_testapp::run()` (this crate's tests do so),
//! which works under `cargo test` and `cargo nextest` without building another binary first.

pub mod autoscale;
pub mod cgroup;
mod housekeeping;
mod ingress;
mod launch;
mod logs;
mod package;
mod probe;
mod process;
mod proxy_metrics;
mod routing;
pub mod sandbox;
pub mod state;
mod supervisor;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edas_runtime::{
    AppRef, BoxFuture, ConfigSnapshot, Instance, RevisionState, Routing, Runtime, RuntimeError,
    RuntimeEvent, Target,
};
use edas_spec::AppSpec;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use edas_runtime::ConfigData;
pub use launch::{INHERITED_ENV, mount_env_name};

use state::InstanceRecord;
use supervisor::Initial;

/// How the local runtime runs instances.
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// The runtime's own state: its lock, the routing files and the logs of stopped instances.
    pub data_dir: PathBuf,
    /// Where instance directories and the package cache live (default `<data_dir>/instances`;
    /// edasd puts them outside its data directory, which no instance may see).
    pub instances_dir: PathBuf,
    /// Run instances as this user (a name or a numeric uid) instead of edasd's; needs edasd to
    /// be able to switch users (root or CAP_SETUID/CAP_SETGID).
    pub run_as_user: Option<String>,
    /// Without `run_as_user`, when edasd is root: each application runs as its own user id from
    /// this range (inclusive; its group id is the same number), assigned at its first instance
    /// and kept in `<data_dir>/app-uids.json`, so applications can neither read each other's
    /// files nor signal each other's processes. `None`: edasd's own user.
    pub app_uids: Option<(u32, u32)>,
    /// The launcher every instance, exec hook and exec probe goes through (see [`sandbox`]);
    /// `None` starts programs directly, without a sandbox or cgroups (tests of the supervisor).
    pub launcher: Option<sandbox::Launcher>,
    /// Paths no instance may see (edasd's data directory, its key files), hidden in the
    /// launcher's private mount namespace.
    pub hidden_paths: Vec<PathBuf>,
    /// Roots under which `LocalVolume` node paths and `file://` packages must lie; `None`
    /// allows any path (edasd always sets a list, empty by default).
    pub allowed_host_paths: Option<Vec<PathBuf>>,
    /// The pids limit of every instance's cgroup (`None`: unlimited).
    pub pids_max: Option<u64>,
    /// What to do with a limit or setting this host cannot enforce.
    pub unenforceable: Unenforceable,
    /// `JDK` value → java binary.
    pub java_binaries: BTreeMap<String, PathBuf>,
    /// The java binary when `JDK` is not given (default `java`, from `PATH`).
    pub default_java: PathBuf,
    /// First restart delay (default 10 s, as Kubernetes).
    pub restart_backoff: Duration,
    /// Longest restart delay (default 5 min).
    pub max_restart_backoff: Duration,
    /// Consecutive quick failures after which an instance is reported failed (default 5).
    pub crash_loop_limit: u32,
    /// A run shorter than this is a quick failure (default 60 s).
    pub quick_failure: Duration,
    /// A log file larger than this is rotated (default 10 MiB).
    pub log_max_bytes: u64,
    /// Rotated copies kept per log file (default 3).
    pub log_files_kept: u32,
    /// Log directories of stopped instances kept per application, newest first (default 20), so
    /// the logs of a failed release can still be read after its instances are gone.
    pub stopped_logs_kept: usize,
    /// The shared ingress listener of ingress rules (host and path routing to the service
    /// ports); `None` (the default): ingress rules are refused.
    pub ingress_listen: Option<std::net::SocketAddr>,
    /// How often the autoscaler of an application with an enabled scaling rule samples its
    /// metrics and decides (default 15 s, the HPA controller's sync period; see [`autoscale`]).
    pub autoscale_interval: Duration,
}

/// What the runtime does with a parameter it cannot enforce on this host (a CPU limit without a
/// cpu cgroup, an ephemeral-storage limit, a `SecurityContext` field it cannot map).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unenforceable {
    /// Refuse the change, naming what cannot be enforced (the default).
    #[default]
    Refuse,
    /// Accept it; the instance runs without it and the log says so at every start.
    Record,
}

impl LocalConfig {
    /// The defaults, with instances under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> LocalConfig {
        let data_dir = data_dir.into();
        LocalConfig {
            instances_dir: data_dir.join("instances"),
            data_dir,
            run_as_user: None,
            app_uids: None,
            launcher: None,
            hidden_paths: Vec::new(),
            allowed_host_paths: None,
            pids_max: Some(4096),
            unenforceable: Unenforceable::Refuse,
            java_binaries: BTreeMap::new(),
            default_java: PathBuf::from("java"),
            restart_backoff: Duration::from_secs(10),
            max_restart_backoff: Duration::from_secs(300),
            crash_loop_limit: 5,
            quick_failure: Duration::from_secs(60),
            log_max_bytes: 10 * 1024 * 1024,
            log_files_kept: 3,
            stopped_logs_kept: 20,
            ingress_listen: None,
            autoscale_interval: Duration::from_secs(15),
        }
    }
}

/// Why the local runtime could not be created.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// `run_as_user` names no user.
    #[error("run-as user `{0}` does not exist")]
    UnknownUser(String),
    /// The sandbox cannot be set up on this host.
    #[error("the instance sandbox cannot be set up: {0}")]
    Sandbox(String),
    /// Another runtime (another edasd) already uses the data directory.
    #[error("data directory `{0}` is in use by another edasd")]
    InUse(PathBuf),
    /// The data directory cannot be used.
    #[error("data directory `{path}`: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The ingress listener (`ingress_listen`) cannot listen.
    #[error("ingress_listen `{address}`: {source}")]
    IngressListen {
        /// The configured address.
        address: std::net::SocketAddr,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// The runtime. Dropping it stops supervising but leaves the instances running (see the crate
/// docs); a new one on the same data directory adopts them.
pub struct LocalRuntime {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: LocalConfig,
    pub(crate) run_as: Option<(u32, u32)>,
    /// Application id → its own user id (see [`LocalConfig::app_uids`]).
    app_uids: Mutex<BTreeMap<String, u32>>,
    pub(crate) cgroups: cgroup::Cgroups,
    /// Instances get a private mount namespace (see [`sandbox`]).
    pub(crate) mount_namespace: bool,
    pub(crate) packages: package::PackageCache,
    pub(crate) detach: CancellationToken,
    /// Log rotation, the memory watch and adopted processes' exits, for all instances.
    pub(crate) housekeeping: Arc<housekeeping::Housekeeping>,
    /// The data directory's lock, held while this runtime supervises (released on drop).
    lock: Mutex<Option<std::fs::File>>,
    events: broadcast::Sender<RuntimeEvent>,
    revisions: Mutex<BTreeMap<(String, String), RevisionEntry>>,
    /// The service proxies (lock order: `routes` before `revisions`, never the reverse).
    routes: routing::Routes,
    /// The autoscalers of applications with an enabled scaling rule.
    autoscalers: autoscale::Autoscalers,
    /// The ingress listener and its rules.
    ingresses: ingress::Ingresses,
}

struct RevisionEntry {
    spec: Arc<AppSpec>,
    /// The ConfigMaps and Secrets the spec references, as the revision was released with them
    /// (kept in `config.json` next to `spec.json`, so an adopted instance restarts with them).
    config: Arc<ConfigSnapshot>,
    instances: Vec<Arc<InstanceEntry>>,
}

/// One instance as the runtime knows it.
pub(crate) struct InstanceEntry {
    pub(crate) app_id: String,
    /// Its revision's ConfigMaps and Secrets (for `Envs`, `EnvFroms` and `ConfigMountDescs`).
    pub(crate) config: Arc<ConfigSnapshot>,
    pub(crate) revision: String,
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) dir: PathBuf,
    pub(crate) stop: CancellationToken,
    status: Mutex<Status>,
    /// Held by blocking file work on the instance's directory and cgroup. A start given up
    /// for a stop abandons its blocking task without ending it; the removal takes this lock
    /// first, so it runs after that task and sees the cgroup it created.
    pub(crate) files: Arc<Mutex<()>>,
}

#[derive(Default)]
struct Status {
    record: InstanceRecord,
    ready: bool,
    /// When it last became ready: the origin of the proxy's lossless delay and warm-up.
    ready_since: Option<Instant>,
    stopping: bool,
}

/// How long ago an instance that was already ready under a previous edasd "became ready": far
/// enough that it is fully warmed up, as it was before edasd restarted.
const LONG_AGO: Duration = Duration::from_secs(86_400);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(0))
        .unwrap_or(0)
}

impl InstanceEntry {
    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_stopping(&self) -> bool {
        self.status().stopping
    }

    pub(crate) async fn set_ready(self: &Arc<Self>, inner: &Inner, ready: bool) {
        let changed = {
            let mut st = self.status();
            let was = st.ready;
            st.ready = ready;
            if ready && !was {
                st.ready_since = Some(Instant::now());
            }
            st.record.ready = ready;
            (was != ready).then(|| st.record.clone())
        };
        if let Some(record) = changed {
            // Readiness survives edasd (see `adopt`), so the service ports answer at once after a
            // restart instead of waiting for the first probe.
            supervisor::save_record(self, record).await;
            inner.emit(&self.app_id, &self.revision);
        }
    }

    /// Whether it is ready now (as the runtime reports it).
    pub(crate) fn is_ready(&self) -> bool {
        self.status().ready
    }

    /// (ready for traffic, ready since, stopping) for the service proxies.
    fn traffic_state(&self) -> (bool, Instant, bool) {
        let st = self.status();
        let ready = !st.stopping && st.record.failed.is_none() && st.ready;
        (
            ready,
            st.ready_since.unwrap_or_else(Instant::now),
            st.stopping,
        )
    }

    pub(crate) async fn set_failed(self: &Arc<Self>, inner: &Inner, reason: String) {
        let record = {
            let mut st = self.status();
            st.ready = false;
            st.record.failed = Some(reason);
            st.record.pid = None;
            st.record.start_time = None;
            st.record.clone()
        };
        supervisor::save_record(self, record).await;
        inner.emit(&self.app_id, &self.revision);
    }

    pub(crate) async fn count_restart(self: &Arc<Self>, inner: &Inner, reason: &str) {
        tracing::info!(instance = %self.name, %reason, "restarting instance");
        let record = {
            let mut st = self.status();
            st.record.restarts += 1;
            st.record.last_exit = Some(reason.to_owned());
            st.record.clone()
        };
        // The run ended: its output becomes the previous run's at once (not only when the
        // next run starts), so `previous` reads it during the restart back-off too.
        let (logs, files) = (self.dir.join("logs"), self.files.clone());
        let retired = tokio::task::spawn_blocking(move || {
            let _files = files.lock().unwrap_or_else(|e| e.into_inner());
            logs::retire_run(&logs)
        })
        .await;
        if let Ok(Err(e)) = retired {
            tracing::warn!(instance = %self.name, error = %e, "cannot keep the output of the run that ended");
        }
        supervisor::save_record(self, record).await;
        inner.emit(&self.app_id, &self.revision);
    }

    /// Records the process in the state file at once: no await between spawning a process and
    /// recording it, so a start given up for a stop never leaves an unrecorded process.
    pub(crate) fn record_process(&self, running: Option<&process::Running>) {
        let record = {
            let mut st = self.status();
            st.record.pid = running.map(|r| r.pid);
            st.record.start_time = running.map(|r| r.start_time);
            st.record.clone()
        };
        supervisor::write_record(self, &record);
    }

    fn observe(&self) -> (Instance, bool, bool) {
        let st = self.status();
        let ready = !st.stopping && st.record.failed.is_none() && st.ready;
        let instance = Instance {
            name: self.name.clone(),
            revision: self.revision.clone(),
            ip: Some("127.0.0.1".to_owned()),
            port: Some(self.port),
            ready,
            restarts: st.record.restarts,
            failed: st.record.failed.clone(),
            last_exit: st.record.last_exit.clone(),
        };
        (instance, ready, st.stopping)
    }
}

fn unavailable(what: &str, path: &Path, e: std::io::Error) -> RuntimeError {
    RuntimeError::Unavailable(format!("{what} `{}`: {e}", path.display()))
}

impl Inner {
    fn emit(&self, app_id: &str, revision: &str) {
        self.refresh_backends(app_id);
        let _ = self.events.send(RuntimeEvent {
            app_id: app_id.to_owned(),
            revision: revision.to_owned(),
        });
    }

    fn revisions(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), RevisionEntry>> {
        self.revisions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn revision_dir(&self, app_id: &str, revision: &str) -> PathBuf {
        self.config.instances_dir.join(app_id).join(revision)
    }

    /// The user and group an application's instances run as before `SecurityContext`: the
    /// configured user, else the application's own (assigned now if it has none), else `None`
    /// (edasd's own).
    pub(crate) fn run_as_for(&self, app_id: &str) -> Result<Option<(u32, u32)>, String> {
        if self.run_as.is_some() {
            return Ok(self.run_as);
        }
        let Some((first, last)) = self
            .config
            .app_uids
            .filter(|_| nix::unistd::geteuid().is_root())
        else {
            return Ok(None);
        };
        let mut uids = self.app_uids.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(uid) = uids.get(app_id) {
            return Ok(Some((*uid, *uid)));
        }
        let next = uids
            .values()
            .filter(|u| (first..=last).contains(*u))
            .max()
            .map_or(Some(first), |u| u.checked_add(1))
            .filter(|u| *u <= last)
            .ok_or_else(|| {
                format!("every user id of [local] app_uid_range {first}-{last} is taken")
            })?;
        uids.insert(app_id.to_owned(), next);
        let file = self.config.data_dir.join(APP_UIDS_FILE);
        state::write_json(&file, &*uids).map_err(|e| {
            format!(
                "cannot record the application's user id in `{}`: {e}",
                file.display()
            )
        })?;
        Ok(Some((next, next)))
    }

    /// What of `spec` this host cannot enforce (empty: everything is).
    pub(crate) fn unenforced(&self, spec: &AppSpec) -> Vec<String> {
        launch::unenforced(
            spec,
            &launch::Host {
                cgroups: &self.cgroups,
                sandbox: self.config.launcher.is_some() && self.mount_namespace,
                root: nix::unistd::geteuid().is_root(),
                run_as: self.run_as,
            },
        )
    }

    /// The whole check of a spec before it is accepted: what the runtime can run, the host
    /// paths it may use, and what it can enforce (refused or recorded, as configured).
    fn check_spec(&self, spec: &AppSpec) -> Result<(), RuntimeError> {
        launch::check_supported(spec, &|jdk| self.java_for(jdk))
            .map_err(RuntimeError::Unsupported)?;
        if let Some(roots) = &self.config.allowed_host_paths {
            launch::check_host_paths(spec, roots).map_err(RuntimeError::Unsupported)?;
        }
        let missing = self.unenforced(spec);
        if !missing.is_empty() && self.config.unenforceable == Unenforceable::Refuse {
            return Err(RuntimeError::Unsupported(format!(
                "application `{}`: the local runtime cannot enforce {} on this host (set [local] unenforceable = \"record\" to run without them)",
                spec.name,
                missing.join("; ")
            )));
        }
        Ok(())
    }

    pub(crate) fn java_for(&self, jdk: Option<&str>) -> Result<PathBuf, String> {
        match jdk {
            None => Ok(self.config.default_java.clone()),
            Some(name) => self.config.java_binaries.get(name).cloned().ok_or_else(|| {
                let known: Vec<&str> = self.config.java_binaries.keys().map(String::as_str).collect();
                format!(
                    "`JDK` `{name}` has no java binary configured for the local runtime (configured: {})",
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                )
            }),
        }
    }

    /// A free loopback port no known instance uses.
    fn free_port(&self, taken: &BTreeSet<u16>) -> Result<u16, RuntimeError> {
        for _ in 0..64 {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| {
                RuntimeError::Unavailable(format!("cannot find a free loopback port: {e}"))
            })?;
            let port = listener
                .local_addr()
                .map_err(|e| RuntimeError::Unavailable(e.to_string()))?
                .port();
            if !taken.contains(&port) {
                return Ok(port);
            }
        }
        Err(RuntimeError::Unavailable(
            "cannot find a free loopback port".to_owned(),
        ))
    }

    fn taken_ports(revisions: &BTreeMap<(String, String), RevisionEntry>) -> BTreeSet<u16> {
        revisions
            .values()
            .flat_map(|r| r.instances.iter().map(|i| i.port))
            .collect()
    }

    /// Enters one new instance of a revision in the map (the caller holds the map); it starts
    /// with [`Inner::start_new`], once the map is unlocked.
    fn new_instance(
        &self,
        app_id: &str,
        revision: &str,
        entry: &mut RevisionEntry,
        taken: &mut BTreeSet<u16>,
    ) -> Result<Arc<InstanceEntry>, RuntimeError> {
        let port = self.free_port(taken)?;
        taken.insert(port);
        let base: String = entry
            .spec
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let base = if base.is_empty() {
            app_id.to_ascii_lowercase()
        } else {
            base
        };
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{base}-{revision}-{}", &suffix[..5]);
        let dir = self.revision_dir(app_id, revision).join(&name);
        let record = InstanceRecord {
            name: name.clone(),
            port,
            created_ms: now_ms(),
            ..Default::default()
        };
        let inst = self.entry(app_id, revision, dir, record, entry.config.clone());
        entry.instances.push(inst.clone());
        Ok(inst)
    }

    /// Creates the directories and state files of instances just entered by
    /// [`Inner::new_instance`] (off the workers) and starts their supervisors. An instance
    /// whose directory cannot be made is forgotten again, and the first such error returned.
    async fn start_new(
        self: &Arc<Self>,
        new: Vec<Arc<InstanceEntry>>,
        spec: &Arc<AppSpec>,
    ) -> Result<(), RuntimeError> {
        if new.is_empty() {
            return Ok(());
        }
        let made = {
            let batch = new.clone();
            tokio::task::spawn_blocking(move || {
                let new = batch;
                new.iter()
                    .map(|inst| {
                        let _files = inst.files.lock().unwrap_or_else(|e| e.into_inner());
                        make_dir(&inst.dir, 0o711)
                            .map_err(|e| unavailable("cannot create", &inst.dir, e))?;
                        let record = inst.status().record.clone();
                        supervisor::write_record(inst, &record);
                        Ok(())
                    })
                    .collect::<Vec<Result<(), RuntimeError>>>()
            })
            .await
            .unwrap_or_else(|e| {
                let e = RuntimeError::Unavailable(format!("cannot create instances: {e}"));
                new.iter()
                    .map(|_| Err(RuntimeError::Unavailable(e.to_string())))
                    .collect()
            })
        };
        let mut failure = None;
        for (inst, made) in new.into_iter().zip(made) {
            match made {
                Ok(()) => {
                    tokio::spawn(supervisor::supervise(
                        self.clone(),
                        inst,
                        spec.clone(),
                        Initial::Start,
                    ));
                }
                Err(e) => {
                    let key = (inst.app_id.clone(), inst.revision.clone());
                    if let Some(entry) = self.revisions().get_mut(&key) {
                        entry.instances.retain(|i| i.name != inst.name);
                    }
                    failure.get_or_insert(e);
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    fn entry(
        &self,
        app_id: &str,
        revision: &str,
        dir: PathBuf,
        record: InstanceRecord,
        config: Arc<ConfigSnapshot>,
    ) -> Arc<InstanceEntry> {
        Arc::new(InstanceEntry {
            app_id: app_id.to_owned(),
            config,
            revision: revision.to_owned(),
            name: record.name.clone(),
            port: record.port,
            dir,
            stop: CancellationToken::new(),
            status: Mutex::new(Status {
                record,
                ..Default::default()
            }),
            files: Arc::default(),
        })
    }

    /// Forgets a stopped instance and deletes its directory (and its revision's, when empty),
    /// off the tokio workers: keeping its logs copies them when they cross filesystems.
    pub(crate) async fn remove_instance(self: &Arc<Self>, inst: &Arc<InstanceEntry>) {
        let (this, entry) = (Arc::clone(self), Arc::clone(inst));
        if let Err(e) = tokio::task::spawn_blocking(move || this.remove_instance_now(&entry)).await
        {
            tracing::warn!(instance = %inst.name, error = %e, "removing the instance failed");
        }
        self.emit(&inst.app_id, &inst.revision);
    }

    /// The blocking part of [`Inner::remove_instance`]. The revision map is locked only to
    /// forget the instance and, when it was the last, to drop the revision and its directory
    /// (under the lock, so a new instance of the same revision cannot lose it).
    fn remove_instance_now(&self, inst: &InstanceEntry) {
        let _files = inst.files.lock().unwrap_or_else(|e| e.into_inner());
        let key = (inst.app_id.clone(), inst.revision.clone());
        {
            let mut revisions = self.revisions();
            let Some(entry) = revisions.get_mut(&key) else {
                return;
            };
            entry.instances.retain(|i| i.name != inst.name);
        }
        self.keep_logs(inst);
        let cgroup = inst.status().record.cgroup.clone();
        if let Some(cg) = cgroup {
            cg.remove();
        }
        supervisor::unmount_scratch(&inst.dir.join("work"));
        let _ = std::fs::remove_dir_all(&inst.dir);
        let mut revisions = self.revisions();
        if revisions.get(&key).is_some_and(|e| e.instances.is_empty())
            && let Some(rev_dir) = inst.dir.parent()
        {
            revisions.remove(&key);
            let _ = std::fs::remove_dir_all(rev_dir);
            if let Some(app_dir) = rev_dir.parent() {
                let _ = std::fs::remove_dir(app_dir);
            }
        }
    }
}

impl Inner {
    /// Stops `inst` losslessly: its service proxies send it no new request (it is already
    /// marked stopping), its in-flight requests finish (at most the grace period), and only
    /// then does its supervisor run PreStop and SIGTERM.
    fn drain_then_stop(self: &Arc<Self>, inst: Arc<InstanceEntry>, grace_seconds: Option<u32>) {
        let idle = self
            .routes
            .drain(&inst.app_id, routing::instance_address(inst.port));
        if idle.is_empty() {
            inst.stop.cancel();
            return;
        }
        let grace = Duration::from_secs(u64::from(grace_seconds.unwrap_or(30)));
        let detach = self.detach.clone();
        tokio::spawn(async move {
            let drained = async {
                for f in idle {
                    f.await;
                }
            };
            tokio::select! {
                () = detach.cancelled() => return,
                _ = tokio::time::timeout(grace, drained) => {}
            }
            inst.stop.cancel();
        });
    }

    fn stopped_logs_dir(&self, app_id: &str) -> PathBuf {
        self.config.data_dir.join("logs").join(app_id)
    }

    /// Moves a stopped instance's `logs/` to `<data_dir>/logs/<app_id>/<instance>/` and drops the
    /// oldest such directories beyond [`LocalConfig::stopped_logs_kept`].
    fn keep_logs(&self, inst: &InstanceEntry) {
        let app_logs = self.stopped_logs_dir(&inst.app_id);
        let to = app_logs.join(&inst.name);
        let moved =
            std::fs::create_dir_all(&app_logs).and_then(|()| move_dir(&inst.dir.join("logs"), &to));
        if let Err(e) = moved {
            tracing::warn!(instance = %inst.name, error = %e, "cannot keep the logs of a stopped instance");
            return;
        }
        let _ = std::fs::File::open(&to).and_then(|d| d.set_modified(SystemTime::now()));
        let mut kept: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(&app_logs)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
                    .collect()
            })
            .unwrap_or_default();
        kept.sort_by_key(|k| std::cmp::Reverse(k.0));
        for (_, old) in kept.into_iter().skip(self.config.stopped_logs_kept) {
            let _ = std::fs::remove_dir_all(old);
        }
    }
}

/// The order in which surplus instances are stopped, by (rank, creation time): failed (rank 0)
/// first, then not ready (1), then ready (2); the newest first within a rank.
fn stop_order(a: (u8, u64), b: (u8, u64)) -> std::cmp::Ordering {
    a.0.cmp(&b.0).then(b.1.cmp(&a.1))
}

/// Renames a directory of plain files, or copies it when it is on another filesystem.
fn move_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.raw_os_error() == Some(nix::libc::EXDEV) => {
            std::fs::create_dir_all(to)?;
            for entry in std::fs::read_dir(from)?.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_file()) {
                    std::fs::copy(entry.path(), to.join(entry.file_name()))?;
                }
            }
            std::fs::remove_dir_all(from)
        }
        other => other,
    }
}

/// Creates `dir` (and its parents) and gives it `mode`.
pub(crate) fn make_dir(dir: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

fn check_ids(app_id: &str, revision: &str) -> Result<(), RuntimeError> {
    for (what, v) in [("application id", app_id), ("revision", revision)] {
        if !state::is_safe_segment(v) {
            return Err(RuntimeError::Unsupported(format!(
                "{what} `{v}` cannot name a directory of the local runtime (letters, digits, `.`, `_`, `-`; at most 128)"
            )));
        }
    }
    Ok(())
}

/// Checks that user `uid` (group `gid`, no other group) can traverse every directory down to
/// `dir`, so its instances can reach their directories.
fn reachable(dir: &Path, uid: u32, gid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    if uid == 0 {
        return Ok(());
    }
    for d in dir.ancestors() {
        let Ok(meta) = std::fs::metadata(d) else {
            continue;
        };
        let bit = if meta.uid() == uid {
            0o100
        } else if meta.gid() == gid {
            0o010
        } else {
            0o001
        };
        if meta.mode() & bit == 0 {
            return Err(format!(
                "the instances directory `{}` cannot be reached by the instances' user (uid {uid}): `{}` has mode {:o}; \
                 let others traverse it (chmod o+x) or set [local] instances_dir elsewhere",
                dir.display(),
                d.display(),
                meta.mode() & 0o7777
            ));
        }
    }
    Ok(())
}

/// The applications' own user ids, in the runtime's data directory.
const APP_UIDS_FILE: &str = "app-uids.json";

/// Where the package cache lives in the instances directory.
const PACKAGES_DIR: &str = ".packages";

/// Runs `true` through the launcher once, so a host where the sandbox cannot be set up (no
/// mount namespace, a user that cannot be switched to) stops edasd at start, not each instance.
fn preflight(
    launcher: &sandbox::Launcher,
    config: &LocalConfig,
    run_as: Option<(u32, u32)>,
    mount_namespace: bool,
) -> Result<(), String> {
    let spec = sandbox::Spec {
        argv: vec!["true".to_owned()],
        workdir: config.instances_dir.clone(),
        run_as,
        hide: config.hidden_paths.clone(),
        mount_namespace,
        landlock: true,
        ..Default::default()
    };
    let json = serde_json::to_string(&spec).map_err(|e| e.to_string())?;
    let out = std::process::Command::new(&launcher.program)
        .args(&launcher.args)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env(sandbox::SPEC_ENV, json)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            format!(
                "cannot run the launcher `{}`: {e}",
                launcher.program.display()
            )
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reason = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(sandbox::FAILURE_PREFIX))
        .unwrap_or(stderr.trim());
    Err(format!("the launcher {}: {reason}", out.status))
}

fn resolve_user(user: &str) -> Result<(u32, u32), LocalError> {
    let found = match user.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(user),
    };
    match found {
        Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        _ => Err(LocalError::UnknownUser(user.to_owned())),
    }
}

impl LocalRuntime {
    /// The address of the ingress listener (`ingress_listen`), if it has one.
    pub fn ingress_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.ingresses.local_addr()
    }

    /// Creates the runtime and adopts the instances a previous one left running (see the crate
    /// docs). Must be called inside a tokio runtime: supervisors are tasks.
    pub fn new(config: LocalConfig) -> Result<LocalRuntime, LocalError> {
        let run_as = config
            .run_as_user
            .as_deref()
            .map(resolve_user)
            .transpose()?;
        let instances = config.instances_dir.clone();
        // Instances may traverse it (to their own directories) but not list it.
        make_dir(&instances, 0o711).map_err(|source| LocalError::DataDir {
            path: instances.clone(),
            source,
        })?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| LocalError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let cgroups = if config.launcher.is_some() {
            cgroup::Cgroups::detect()
        } else {
            cgroup::Cgroups::none()
        };
        let app_uids_on = config
            .app_uids
            .filter(|_| run_as.is_none() && nix::unistd::geteuid().is_root());
        // What the instances run as, for the checks below (an application's own user owns
        // nothing on the way).
        let probe_user = run_as.or(app_uids_on.map(|(first, _)| (first, first)));
        if let Some((uid, gid)) = probe_user {
            reachable(&instances, uid, gid).map_err(LocalError::Sandbox)?;
        }
        let mut mount_namespace = config.launcher.is_some();
        if let Some(launcher) = &config.launcher
            && let Err(e) = preflight(launcher, &config, probe_user, true)
        {
            // Without a private mount namespace, only another user keeps instances out of
            // edasd's files: refuse to run them as edasd's own user.
            let other_user =
                probe_user.is_some_and(|(uid, _)| uid != nix::unistd::geteuid().as_raw());
            if !other_user {
                return Err(LocalError::Sandbox(format!(
                    "{e}; without a private mount namespace instances must run as another user than edasd's ([local] run_as_user)"
                )));
            }
            preflight(launcher, &config, probe_user, false).map_err(LocalError::Sandbox)?;
            tracing::warn!(error = %e, "no private mount namespace for instances: edasd's files are kept from them by their user and file modes only; readOnlyRootFilesystem cannot be enforced");
            mount_namespace = false;
        }
        tracing::info!(cgroups = %cgroups.describe(), instances = %instances.display(), "local runtime sandbox");
        let lock_path = config.data_dir.join("edas-local.lock");
        let data_dir_error = |source| LocalError::DataDir {
            path: lock_path.clone(),
            source,
        };
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(data_dir_error)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LocalError::InUse(config.data_dir.clone()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(data_dir_error(e)),
        }
        let app_uids = state::read_json(&config.data_dir.join(APP_UIDS_FILE)).unwrap_or_default();
        let ingresses = ingress::Ingresses::bind(config.ingress_listen).map_err(|source| {
            LocalError::IngressListen {
                address: config
                    .ingress_listen
                    .unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
                source,
            }
        })?;
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            packages: package::PackageCache::new(instances.join(PACKAGES_DIR)),
            config,
            run_as,
            app_uids: Mutex::new(app_uids),
            cgroups,
            mount_namespace,
            detach: CancellationToken::new(),
            housekeeping: Arc::default(),
            lock: Mutex::new(Some(lock)),
            events,
            revisions: Mutex::new(BTreeMap::new()),
            routes: routing::Routes::default(),
            autoscalers: autoscale::Autoscalers::default(),
            ingresses,
        });
        tokio::spawn(inner.housekeeping.clone().run(
            inner.config.log_max_bytes,
            inner.config.log_files_kept,
            inner.detach.clone(),
        ));
        adopt(&inner, &instances);
        // Instances an edasd before the sandbox started under its data directory.
        let legacy = inner.config.data_dir.join("instances");
        if legacy != instances && legacy.is_dir() {
            tracing::warn!(dir = %legacy.display(), "adopting instances from the old location inside the data directory; they run unsandboxed until replaced");
            adopt(&inner, &legacy);
        }
        // The service ports come back with the runtime, before the release engine re-applies
        // the stored routing (which it does idempotently).
        for (app_id, routing) in inner.saved_routings() {
            let inner = inner.clone();
            tokio::spawn(async move {
                if let Err(e) = inner.apply_routing(&app_id, &routing).await {
                    tracing::warn!(app = %app_id, error = %e, "cannot restore the service ports");
                }
            });
        }
        Ok(LocalRuntime { inner })
    }

    /// The directory of an instance (its `logs/`, `work/`, `mounts/` and `state.json`).
    pub fn instance_dir(&self, app_id: &str, revision: &str, instance: &str) -> PathBuf {
        self.inner.revision_dir(app_id, revision).join(instance)
    }

    /// Where the logs of a stopped instance are kept (see [`LocalConfig::stopped_logs_kept`]).
    pub fn stopped_instance_logs(&self, app_id: &str, instance: &str) -> PathBuf {
        self.inner.stopped_logs_dir(app_id).join(instance)
    }

    /// The service ports listening for an application now.
    pub fn service_ports(&self, app_id: &str) -> Vec<u16> {
        self.inner.routes.ports(app_id)
    }

    /// The process id (also the process group id) of a running instance.
    pub fn process_id(&self, app_id: &str, revision: &str, instance: &str) -> Option<i32> {
        let revisions = self.inner.revisions();
        let entry = revisions.get(&(app_id.to_owned(), revision.to_owned()))?;
        let inst = entry.instances.iter().find(|i| i.name == instance)?;
        inst.status().record.pid
    }
}

impl LocalRuntime {
    /// edasd is stopping: every service port stops accepting at once (so the next edasd can bind
    /// it) and the requests in flight finish within `grace`, instead of being cut when the
    /// process exits. Instances keep running.
    pub async fn shutdown_services(&self, grace: Duration) {
        self.inner.routes.shutdown_all(grace).await;
    }
}

impl Drop for LocalRuntime {
    fn drop(&mut self) {
        self.inner.detach.cancel();
        // The service ports close with the runtime (tasks may still hold `Inner` for a moment),
        // so a successor can bind them at once.
        self.inner.routes.close_all();
        let lock = self
            .inner
            .lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(file) = lock {
            let _ = file.unlock();
        }
    }
}

/// Picks up what a previous runtime left in the data directory.
fn adopt(inner: &Arc<Inner>, instances: &Path) {
    let dirs = |p: &Path| -> Vec<(String, PathBuf)> {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut revisions = inner.revisions();
    for (app_id, app_dir) in dirs(instances) {
        if app_id.starts_with('.') {
            continue;
        }
        for (revision, rev_dir) in dirs(&app_dir) {
            let Some(spec) = state::read_json::<AppSpec>(&rev_dir.join("spec.json")) else {
                tracing::warn!(dir = %rev_dir.display(), "revision without a readable spec.json left alone");
                continue;
            };
            let spec = Arc::new(spec);
            // A revision written before snapshots were kept has none: its instances restart
            // without ConfigMaps and Secrets until the next release step writes them.
            let config: Arc<ConfigSnapshot> =
                Arc::new(state::read_json(&rev_dir.join("config.json")).unwrap_or_default());
            let mut entry = RevisionEntry {
                spec: spec.clone(),
                config: config.clone(),
                instances: Vec::new(),
            };
            for (_, inst_dir) in dirs(&rev_dir) {
                let Some(mut record) =
                    state::read_json::<InstanceRecord>(&inst_dir.join("state.json"))
                else {
                    let _ = std::fs::remove_dir_all(&inst_dir);
                    continue;
                };
                let verified = match (record.pid, record.start_time) {
                    (Some(pid), Some(t)) if process::start_time(pid) == Some(t) => Some(
                        process::Running::adopted(pid, t, inner.housekeeping.clone()),
                    ),
                    _ => None,
                };
                let initial = match (&record.failed, verified) {
                    (Some(reason), _) => Initial::Failed(reason.clone()),
                    (None, Some(running)) => Initial::Adopt(running),
                    (None, None) => {
                        // A process spawned just before the previous edasd died, before its pid
                        // was recorded, still runs (and holds the port): stop it, or the restart
                        // would double the instance.
                        for pgid in process::strays(&inst_dir.join("work")) {
                            tracing::warn!(instance = %record.name, pgid, "stopping an unrecorded process of the instance before restarting it");
                            process::signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
                        }
                        record.restarts += 1;
                        Initial::Start
                    }
                };
                let adopted = matches!(initial, Initial::Adopt(_));
                tracing::info!(instance = %record.name, adopted, "instance found");
                let was_ready = adopted && record.ready;
                if !adopted {
                    record.ready = false;
                }
                let inst = inner.entry(&app_id, &revision, inst_dir, record, config.clone());
                if was_ready {
                    let mut st = inst.status();
                    st.ready = true;
                    st.ready_since = Some(
                        Instant::now()
                            .checked_sub(LONG_AGO)
                            .unwrap_or_else(Instant::now),
                    );
                }
                entry.instances.push(inst.clone());
                tokio::spawn(supervisor::supervise(
                    inner.clone(),
                    inst,
                    spec.clone(),
                    initial,
                ));
            }
            if entry.instances.is_empty() {
                let _ = std::fs::remove_dir_all(&rev_dir);
            } else {
                revisions.insert((app_id.clone(), revision), entry);
            }
        }
    }
}

impl Runtime for LocalRuntime {
    fn check(&self, spec: &edas_spec::AppSpec) -> Result<(), RuntimeError> {
        self.inner.check_spec(spec)
    }

    fn unenforced(&self, spec: &edas_spec::AppSpec) -> Vec<String> {
        // In refuse mode such a spec never gets past `check`.
        match self.inner.config.unenforceable {
            Unenforceable::Record => self.inner.unenforced(spec),
            Unenforceable::Refuse => Vec::new(),
        }
    }

    fn check_routing(&self, routing: &Routing) -> Result<(), RuntimeError> {
        if let Some(s) = routing
            .services
            .iter()
            .find(|s| s.service_type != "ClusterIP")
        {
            return Err(RuntimeError::Unsupported(format!(
                "ServiceConfigs: service `{}` has Type {}, which the local runtime cannot provide (no nodes or cloud load balancer; its Services are loopback listeners): use ClusterIP, and the ingress listener (`[local] ingress_listen`, CreateK8sIngressRule) to reach it from outside",
                s.name, s.service_type
            )));
        }
        routing::check(&self.inner.routes, routing)
    }

    fn check_ingress(&self, ingress: &edas_runtime::IngressSpec) -> Result<(), RuntimeError> {
        self.inner.ingresses.check(ingress)
    }

    fn set_ingress(
        &self,
        namespace: &str,
        name: &str,
        ingress: Option<&edas_runtime::IngressSpec>,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let routes = &self.inner.routes;
        let result = self
            .inner
            .ingresses
            .set(namespace, name, ingress, |port| routes.owner(port));
        Box::pin(async move { result })
    }

    fn set_routing(
        &self,
        app: &AppRef,
        routing: &Routing,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let (app_id, routing) = (app.id.clone(), routing.clone());
        Box::pin(async move {
            check_ids(&app_id, "0")?;
            self.inner.apply_routing(&app_id, &routing).await
        })
    }

    fn set_replicas(
        &self,
        target: &Target,
        replicas: u32,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let target = target.clone();
        Box::pin(async move {
            let inner = &self.inner;
            check_ids(&target.app.id, &target.revision)?;
            if replicas > 0 {
                // Host paths are resolved on disk.
                let (checker, spec) = (inner.clone(), target.spec.clone());
                tokio::task::spawn_blocking(move || checker.check_spec(&spec))
                    .await
                    .map_err(|e| RuntimeError::Unavailable(e.to_string()))??;
            }
            let key = (target.app.id.clone(), target.revision.clone());
            // The revision's directory and spec are written before it is entered in the map
            // (off the workers, without the map's lock): only a revision in the map has its
            // directory removed. Should it leave the map meanwhile, it is written again.
            let mut written = false;
            let (new, surplus_instances, changed, mut failure) = loop {
                if !written && !inner.revisions().contains_key(&key) {
                    if replicas == 0 {
                        return Ok(());
                    }
                    let dir = inner.revision_dir(&target.app.id, &target.revision);
                    let (spec, config) = (target.spec.clone(), target.config.clone());
                    tokio::task::spawn_blocking(move || {
                        for d in [dir.parent().unwrap_or(&dir), &dir] {
                            make_dir(d, 0o711).map_err(|e| unavailable("cannot create", d, e))?;
                        }
                        let config_file = dir.join("config.json");
                        state::write_json(&config_file, config.as_ref())
                            .map_err(|e| unavailable("cannot write", &config_file, e))?;
                        let spec_file = dir.join("spec.json");
                        state::write_json(&spec_file, spec.as_ref())
                            .map_err(|e| unavailable("cannot write", &spec_file, e))
                    })
                    .await
                    .map_err(|e| RuntimeError::Unavailable(e.to_string()))??;
                    written = true;
                }
                // The map's lock is not held across an await.
                let mut revisions = inner.revisions();
                let mut taken = Inner::taken_ports(&revisions);
                if !revisions.contains_key(&key) && replicas > 0 {
                    if !written {
                        continue;
                    }
                    revisions.insert(
                        key.clone(),
                        RevisionEntry {
                            spec: target.spec.clone(),
                            config: target.config.clone(),
                            instances: Vec::new(),
                        },
                    );
                }
                let Some(entry) = revisions.get_mut(&key) else {
                    return Ok(());
                };
                let mut live: Vec<(Arc<InstanceEntry>, u8, u64)> = entry
                    .instances
                    .iter()
                    .filter(|i| !i.is_stopping())
                    .map(|i| {
                        let (obs, ready, _) = i.observe();
                        let rank = if obs.failed.is_some() {
                            0
                        } else if ready {
                            2
                        } else {
                            1
                        };
                        (i.clone(), rank, i.status().record.created_ms)
                    })
                    .collect();
                let want = usize::try_from(replicas).unwrap_or(usize::MAX);
                let mut changed = false;
                let mut surplus_instances = Vec::new();
                let mut new = Vec::new();
                let mut failure = None;
                while live.len() < want {
                    match inner.new_instance(&target.app.id, &target.revision, entry, &mut taken) {
                        Ok(inst) => {
                            live.push((inst.clone(), 1, now_ms()));
                            new.push(inst);
                        }
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                    changed = true;
                }
                if live.len() > want {
                    live.sort_by(|a, b| stop_order((a.1, a.2), (b.1, b.2)));
                    let surplus = live.len() - want;
                    for (inst, _, _) in live.into_iter().take(surplus) {
                        inst.status().stopping = true;
                        surplus_instances.push(inst);
                    }
                    changed = true;
                }
                break (new, surplus_instances, changed, failure);
            };
            if let Err(e) = inner.start_new(new, &target.spec).await {
                failure.get_or_insert(e);
            }
            if changed {
                // Marks the stopping instances draining in every service proxy.
                inner.emit(&target.app.id, &target.revision);
            }
            for inst in surplus_instances {
                inner.drain_then_stop(inst, target.spec.termination_grace_period_seconds);
            }
            failure.map_or(Ok(()), Err)
        })
    }

    fn recreate_failed(
        &self,
        app: &AppRef,
        revision: &str,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let (app_id, revision) = (app.id.clone(), revision.to_owned());
        Box::pin(async move {
            let inner = &self.inner;
            // The map's lock is not held across an await.
            let (new, spec, failed, mut failure) = {
                let mut revisions = inner.revisions();
                let mut taken = Inner::taken_ports(&revisions);
                let Some(entry) = revisions.get_mut(&(app_id.clone(), revision.clone())) else {
                    return Ok(());
                };
                let failed: Vec<Arc<InstanceEntry>> = entry
                    .instances
                    .iter()
                    .filter(|i| {
                        let st = i.status();
                        !st.stopping && st.record.failed.is_some()
                    })
                    .cloned()
                    .collect();
                let spec = entry.spec.clone();
                let mut new = Vec::new();
                let mut failure = None;
                for inst in &failed {
                    inst.status().stopping = true;
                    inst.stop.cancel();
                    match inner.new_instance(&app_id, &revision, entry, &mut taken) {
                        Ok(inst) => new.push(inst),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                (new, spec, failed, failure)
            };
            if let Err(e) = inner.start_new(new, &spec).await {
                failure.get_or_insert(e);
            }
            if !failed.is_empty() {
                inner.emit(&app_id, &revision);
            }
            failure.map_or(Ok(()), Err)
        })
    }

    fn observe(
        &self,
        app: &AppRef,
        revision: &str,
    ) -> BoxFuture<'_, Result<RevisionState, RuntimeError>> {
        let key = (app.id.clone(), revision.to_owned());
        Box::pin(async move {
            let revisions = self.inner.revisions();
            let Some(entry) = revisions.get(&key) else {
                return Ok(RevisionState::default());
            };
            let mut state = RevisionState::default();
            for inst in &entry.instances {
                let (obs, ready, stopping) = inst.observe();
                state.total += 1;
                state.ready += u32::from(ready);
                if state.failed.is_none()
                    && !stopping
                    && let Some(reason) = &obs.failed
                {
                    state.failed = Some(format!("instance {}: {reason}", obs.name));
                }
                state.instances.push(obs);
            }
            Ok(state)
        })
    }

    fn revisions(&self, app: &AppRef) -> BoxFuture<'_, Result<Vec<String>, RuntimeError>> {
        let app_id = app.id.clone();
        Box::pin(async move {
            let revisions = self.inner.revisions();
            Ok(revisions
                .iter()
                .filter(|((app, _), entry)| *app == app_id && !entry.instances.is_empty())
                .map(|((_, rev), _)| rev.clone())
                .collect())
        })
    }

    fn logs(
        &self,
        app: &AppRef,
        instance: &str,
        request: &edas_runtime::LogRequest,
    ) -> BoxFuture<'_, Result<edas_runtime::LogChunks, edas_runtime::LogError>> {
        let found = self.inner.log_dir(&app.id, instance);
        let request = request.clone();
        Box::pin(async move { logs::open(found?, &request).await })
    }

    fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.inner.events.subscribe()
    }

    fn check_autoscaling(&self, rule: &edas_runtime::Autoscaler) -> Result<(), RuntimeError> {
        autoscale::check(rule)
    }

    fn set_autoscaling(
        &self,
        app: &AppRef,
        autoscaling: Option<&edas_runtime::Autoscaling>,
    ) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let checked = autoscaling.map_or(Ok(()), |a| autoscale::check(&a.rule));
        if checked.is_ok() {
            autoscale::set(&self.inner, &app.id, autoscaling);
        }
        Box::pin(async move { checked })
    }

    fn traffic(
        &self,
        app: &AppRef,
    ) -> BoxFuture<'_, Result<edas_runtime::TrafficCounters, RuntimeError>> {
        let counters = self.inner.routes.traffic(&app.id);
        Box::pin(async move { Ok(counters) })
    }

    fn autoscaled_replicas(
        &self,
        app: &AppRef,
    ) -> BoxFuture<'_, Result<Option<u32>, RuntimeError>> {
        let wanted = self.inner.autoscalers.wanted(&app.id);
        Box::pin(async move { Ok(wanted) })
    }

    fn scale_decisions(&self) -> Option<broadcast::Receiver<edas_runtime::ScaleDecision>> {
        Some(self.inner.autoscalers.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surplus_instances_stop_failed_then_unready_then_newest() {
        let mut live = vec![(2, 10), (1, 5), (2, 30), (0, 1), (1, 7)];
        live.sort_by(|a, b| stop_order(*a, *b));
        assert_eq!(live, vec![(0, 1), (1, 7), (1, 5), (2, 30), (2, 10)]);
    }

    #[tokio::test]
    async fn stopped_instance_logs_are_kept_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = LocalConfig::new(dir.path());
        cfg.stopped_logs_kept = 2;
        let rt = LocalRuntime::new(cfg).unwrap();
        for i in 0..3 {
            let inst_dir = dir.path().join(format!("i{i}"));
            std::fs::create_dir_all(inst_dir.join("logs")).unwrap();
            std::fs::write(inst_dir.join("logs/stdout.log"), i.to_string()).unwrap();
            let record = InstanceRecord {
                name: format!("demo-1-{i}"),
                ..Default::default()
            };
            let inst = rt.inner.entry("app", "1", inst_dir, record, Arc::default());
            rt.inner.keep_logs(&inst);
            std::thread::sleep(Duration::from_millis(20));
        }
        let kept = |i: u32| {
            rt.stopped_instance_logs("app", &format!("demo-1-{i}"))
                .join("stdout.log")
        };
        assert!(!kept(0).exists(), "the oldest is dropped");
        assert_eq!(std::fs::read_to_string(kept(1)).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(kept(2)).unwrap(), "2");
    }

    #[tokio::test]
    async fn what_cannot_be_enforced_is_refused_or_reported_as_configured() {
        let dir = tempfile::tempdir().unwrap();
        let spec = AppSpec {
            name: "demo".into(),
            command: Some("/bin/true".into()),
            resources: edas_spec::model::Resources {
                cpu_limit_millis: Some(500),
                ..Default::default()
            },
            ..Default::default()
        };
        // Without a launcher there are no cgroups: a CPU limit cannot be enforced.
        let rt = LocalRuntime::new(LocalConfig::new(dir.path().join("a"))).unwrap();
        let err = rt.check(&spec).unwrap_err().to_string();
        assert!(
            err.contains("`LimitmCpu`") && err.contains("unenforceable"),
            "{err}"
        );
        assert!(
            rt.unenforced(&spec).is_empty(),
            "refused, so nothing to report"
        );
        let mut config = LocalConfig::new(dir.path().join("b"));
        config.unenforceable = Unenforceable::Record;
        let rt = LocalRuntime::new(config).unwrap();
        assert!(rt.check(&spec).is_ok());
        let notes = rt.unenforced(&spec).join("; ");
        assert!(notes.contains("`LimitmCpu`"), "{notes}");
    }

    #[test]
    fn ids_that_cannot_name_a_directory_are_refused() {
        assert!(check_ids("app-1", "3").is_ok());
        let err = check_ids("app-1", "../3").unwrap_err().to_string();
        assert!(err.contains("revision `../3`"), "{err}");
    }
}
