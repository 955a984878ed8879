//! What an instance runs and with which environment: the spec checked against what this machine
//! can do, the environment resolved (values, ConfigMap/Secret keys, field references, `$(VAR)`
//! expansion), the mount directories prepared and announced through environment variables.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use edas_spec::AppSpec;
use edas_spec::model::Artifact;
use k8s_openapi::api::core::v1::{HTTPGetAction, LifecycleHandler, Probe};

use crate::cgroup::{Cgroups, Controller};
use crate::sandbox::Create;
use edas_runtime::{ConfigData, ConfigSnapshot};

/// What this host can enforce.
pub struct Host<'a> {
    /// The cgroup controllers available.
    pub cgroups: &'a Cgroups,
    /// Instances run through the launcher (private mount namespace, user switch).
    pub sandbox: bool,
    /// edasd runs as root (it can switch users).
    pub root: bool,
    /// The configured user instances run as.
    pub run_as: Option<(u32, u32)>,
}

/// What of `spec` the local runtime cannot enforce on `host`, each naming its parameter.
pub fn unenforced(spec: &AppSpec, host: &Host<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let r = &spec.resources;
    let cpu = host.cgroups.has(Controller::Cpu);
    let memory = host.cgroups.has(Controller::Memory);
    if r.cpu_limit_millis.is_some_and(|m| m > 0) && !cpu {
        out.push("the CPU limit (`LimitmCpu`/`LimitCpu`: no cpu cgroup)".to_owned());
    }
    if r.cpu_request_millis.is_some_and(|m| m > 0) && !cpu {
        out.push("the CPU request (`RequestsmCpu`/`RequestsCpu`: no cpu cgroup)".to_owned());
    }
    if r.memory_request_mib.is_some_and(|m| m > 0) && !memory {
        out.push("the memory request (`RequestsMem`: no memory cgroup)".to_owned());
    }
    // The limit is a size-limited tmpfs over the instance's working directory, which only root
    // can mount; the request is checked against the free space when the instance starts.
    if r.ephemeral_limit_gib.is_some_and(|g| g > 0) && !(host.root && host.sandbox) {
        out.push(
            "the ephemeral storage limit (`LimitEphemeralStorage`: a size-limited working directory needs edasd to run as root with the sandbox)"
                .to_owned(),
        );
    }
    if let Some(sc) = &spec.security_context {
        let own_uid = nix::unistd::geteuid().as_raw();
        let configured_uid = host.run_as.map(|(u, _)| u);
        if let Some(uid) = sc.run_as_user {
            let uid = u32::try_from(uid).ok();
            match uid {
                None => out.push("`SecurityContext` runAsUser (not a user id)".to_owned()),
                Some(0) if configured_uid != Some(0) => out.push(
                    "`SecurityContext` runAsUser 0 (instances run as root only when [local] run_as_user says root)"
                        .to_owned(),
                ),
                Some(u) if !host.root && u != own_uid => out.push(format!(
                    "`SecurityContext` runAsUser {u} (edasd is not root and cannot switch users)"
                )),
                _ => {}
            }
        }
        if let Some(gid) = sc.run_as_group {
            if u32::try_from(gid).is_err() {
                out.push("`SecurityContext` runAsGroup (not a group id)".to_owned());
            } else if !host.root {
                out.push(
                    "`SecurityContext` runAsGroup (edasd is not root and cannot switch groups)"
                        .to_owned(),
                );
            }
        }
        if sc.read_only_root_filesystem == Some(true) && !host.sandbox {
            out.push("`SecurityContext` readOnlyRootFilesystem (no sandbox launcher)".to_owned());
        }
        if sc.privileged == Some(true) {
            out.push("`SecurityContext` privileged (instances never get privileges)".to_owned());
        }
        if sc.allow_privilege_escalation == Some(true) {
            out.push(
                "`SecurityContext` allowPrivilegeEscalation true (instances always run with no_new_privs)"
                    .to_owned(),
            );
        }
        for (field, set) in [
            ("capabilities", sc.capabilities.is_some()),
            ("seLinuxOptions", sc.se_linux_options.is_some()),
            ("seccompProfile", sc.seccomp_profile.is_some()),
            ("appArmorProfile", sc.app_armor_profile.is_some()),
            ("procMount", sc.proc_mount.is_some()),
            ("windowsOptions", sc.windows_options.is_some()),
        ] {
            if set {
                out.push(format!("`SecurityContext` {field}"));
            }
        }
    }
    out
}

/// The user and group an instance of `spec` runs as: `SecurityContext` runAsUser/runAsGroup
/// over the configured user (`None`: edasd's own). `runAsNonRoot` refuses root.
pub fn identity(
    spec: &AppSpec,
    configured: Option<(u32, u32)>,
) -> Result<Option<(u32, u32)>, String> {
    let root = nix::unistd::geteuid().is_root();
    let sc = spec.security_context.as_ref().filter(|_| {
        // Without root no user can be switched to: the fields were refused or are recorded
        // only (see `unenforced`).
        root
    });
    let configured_uid = configured.map_or_else(|| nix::unistd::geteuid().as_raw(), |(u, _)| u);
    let uid = sc
        .and_then(|s| s.run_as_user)
        .and_then(|u| u32::try_from(u).ok());
    let gid = sc
        .and_then(|s| s.run_as_group)
        .and_then(|g| u32::try_from(g).ok());
    let mut who = configured;
    if uid == Some(0) && configured_uid != 0 {
        return Err(
            "`SecurityContext` runAsUser 0: instances run as root only when [local] run_as_user says root"
                .to_owned(),
        );
    }
    if let Some(uid) = uid {
        let primary = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or(uid, |u| u.gid.as_raw());
        who = Some((uid, primary));
    }
    if let Some(gid) = gid {
        let uid = who.map_or_else(|| nix::unistd::geteuid().as_raw(), |(u, _)| u);
        who = Some((uid, gid));
    }
    let effective_uid = who.map_or_else(|| nix::unistd::geteuid().as_raw(), |(u, _)| u);
    let non_root = spec
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_non_root);
    if non_root == Some(true) && effective_uid == 0 {
        return Err(
            "`SecurityContext` runAsNonRoot: the instance would run as root (uid 0)".to_owned(),
        );
    }
    Ok(who)
}

/// Checks that every `LocalVolume` node path and `file://` package lies under one of `roots`.
pub fn check_host_paths(spec: &AppSpec, roots: &[PathBuf]) -> Result<(), String> {
    let mut paths: Vec<(&str, String)> = spec
        .local_volumes
        .iter()
        .map(|v| ("LocalVolume", v.node_path.clone()))
        .collect();
    if let Artifact::Package(p) = &spec.artifact
        && let Some((scheme, path)) = p.url.split_once("://")
        && scheme.eq_ignore_ascii_case("file")
    {
        paths.push(("PackageUrl", path.to_owned()));
    }
    for (param, path) in paths {
        host_path_allowed(param, Path::new(&path), roots)?;
    }
    Ok(())
}

/// Whether `path` (absolute, no `..`; and, when it exists, its real path) is under a root.
pub fn host_path_allowed(param: &str, path: &Path, roots: &[PathBuf]) -> Result<(), String> {
    let listed = if roots.is_empty() {
        "none is allowed".to_owned()
    } else {
        format!(
            "allowed: {}",
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let refuse = || {
        Err(format!(
            "`{param}` host path `{}` is not under a root listed in [local] allowed_host_paths ({listed})",
            path.display()
        ))
    };
    let plain = path.is_absolute()
        && !path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
    if !plain || !roots.iter().any(|r| path.starts_with(r)) {
        return refuse();
    }
    if let Ok(real) = std::fs::canonicalize(path)
        && !roots
            .iter()
            .any(|r| real.starts_with(std::fs::canonicalize(r).unwrap_or_else(|_| r.clone())))
    {
        return refuse();
    }
    Ok(())
}

/// Environment variables of edasd that an instance inherits (everything else is cleared, as a
/// container does not see its node's environment).
pub const INHERITED_ENV: &[&str] = &["PATH", "LANG", "LC_ALL", "TZ"];

/// Checks that the local runtime can run `spec` at all; the error says what cannot and why.
pub fn check_supported(
    spec: &AppSpec,
    java: &dyn Fn(Option<&str>) -> Result<PathBuf, String>,
) -> Result<(), String> {
    let app = &spec.name;
    if spec.workload == edas_spec::model::Workload::StatefulSet {
        return Err(format!(
            "application `{app}`: `WorkloadType` StatefulSet cannot be honoured on the local runtime: its instances are \
             processes with no stable network identity (no `<name>-N` host names, no headless Service); use Deployment, \
             or deploy to a Kubernetes cluster"
        ));
    }
    match (&spec.artifact, &spec.command) {
        (Artifact::Image { url, .. }, None) => {
            return Err(format!(
                "application `{app}` runs image `{url}`: an image needs a container engine, which the local runtime does not \
                 have; give `Command` (and `Args`) to run a program on this machine, or deploy to a Kubernetes cluster"
            ));
        }
        (Artifact::None, None) => {
            return Err(format!(
                "application `{app}` has neither `Command` nor `PackageUrl`: nothing to run"
            ));
        }
        (Artifact::Package(p), _) => {
            java(p.jdk.as_deref())?;
            let scheme = p.url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            if !matches!(scheme.as_deref(), Some("file" | "http" | "https")) {
                return Err(format!(
                    "`PackageUrl` `{}` must start with file://, http:// or https://",
                    p.url
                ));
            }
        }
        _ => {}
    }
    if spec.command.as_deref().is_some_and(|c| c.trim().is_empty()) {
        return Err(format!("application `{app}`: `Command` is empty"));
    }
    let refuse = |what: &str| {
        Err(format!(
            "application `{app}`: {what} cannot run on the local runtime (no container engine)"
        ))
    };
    if !spec.sidecars.is_empty() {
        return refuse("`Sidecars`");
    }
    if !spec.init_containers.is_empty() {
        return refuse("`InitContainers`");
    }
    if !spec.pvc_mounts.is_empty() {
        return refuse("`PvcMountDescs` (persistent volume claims)");
    }
    if !spec.nfs.mounts.is_empty() {
        return refuse("`MountDescs` (NFS mounts)");
    }
    for (param, probe) in [
        ("Liveness", &spec.liveness),
        ("Readiness", &spec.readiness),
        ("Startup", &spec.startup),
    ] {
        if let Some(p) = probe {
            check_probe(param, p)?;
        }
    }
    for (param, hook) in [("PostStart", &spec.post_start), ("PreStop", &spec.pre_stop)] {
        if let Some(h) = hook {
            check_handler(param, h)?;
        }
    }
    for env in &spec.envs {
        if let Some(from) = &env.value_from {
            if from.resource_field_ref.is_some() {
                return Err(format!(
                    "`Envs` `{}`: resourceFieldRef is not supported on the local runtime",
                    env.name
                ));
            }
            if let Some(f) = &from.field_ref {
                field_value(&f.field_path, "x", "x")
                    .map_err(|e| format!("`Envs` `{}`: {e}", env.name))?;
            }
        }
    }
    mount_env_names(spec)?;
    Ok(())
}

fn check_probe(param: &str, p: &Probe) -> Result<(), String> {
    if p.grpc.is_some() {
        return Err(format!(
            "`{param}`: grpc probes are not supported on the local runtime; use httpGet, tcpSocket or exec"
        ));
    }
    let handlers = [
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
        p.exec.is_some(),
    ];
    if handlers.iter().filter(|h| **h).count() != 1 {
        return Err(format!(
            "`{param}` must have exactly one of httpGet, tcpSocket, exec"
        ));
    }
    check_http(param, p.http_get.as_ref())?;
    check_host(param, p.tcp_socket.as_ref().and_then(|t| t.host.as_deref()))
}

fn check_handler(param: &str, h: &LifecycleHandler) -> Result<(), String> {
    let handlers = [
        h.http_get.is_some(),
        h.tcp_socket.is_some(),
        h.exec.is_some(),
        h.sleep.is_some(),
    ];
    if handlers.iter().filter(|h| **h).count() != 1 {
        return Err(format!(
            "`{param}` must have exactly one of exec, httpGet, tcpSocket, sleep"
        ));
    }
    check_http(param, h.http_get.as_ref())?;
    check_host(param, h.tcp_socket.as_ref().and_then(|t| t.host.as_deref()))
}

fn check_http(param: &str, h: Option<&HTTPGetAction>) -> Result<(), String> {
    let Some(h) = h else { return Ok(()) };
    if h.scheme
        .as_deref()
        .is_some_and(|s| !s.eq_ignore_ascii_case("http"))
    {
        return Err(format!(
            "`{param}`: httpGet scheme `{}` is not supported on the local runtime; use HTTP",
            h.scheme.as_deref().unwrap_or_default()
        ));
    }
    check_host(param, h.host.as_deref())
}

fn check_host(param: &str, host: Option<&str>) -> Result<(), String> {
    match host {
        None | Some("" | "127.0.0.1" | "localhost") => Ok(()),
        Some(other) => Err(format!(
            "`{param}`: host `{other}` is not supported on the local runtime; probes and hooks always target the instance on 127.0.0.1"
        )),
    }
}

/// The value of a `fieldRef`.
fn field_value(path: &str, instance: &str, namespace: &str) -> Result<String, String> {
    match path {
        "metadata.name" => Ok(instance.to_owned()),
        "metadata.namespace" => Ok(namespace.to_owned()),
        "status.podIP" | "status.hostIP" => Ok("127.0.0.1".to_owned()),
        "status.podIPs" | "status.hostIPs" => Ok("127.0.0.1".to_owned()),
        "spec.nodeName" => Ok("local".to_owned()),
        other => Err(format!(
            "fieldRef `{other}` is not supported on the local runtime (supported: metadata.name, metadata.namespace, \
             status.podIP, status.podIPs, status.hostIP, status.hostIPs, spec.nodeName)"
        )),
    }
}

/// The environment variable that tells an instance where a mount path lives on this machine:
/// `EDAS_MOUNT_` + the path upper-cased, every run of other characters than letters and digits
/// turned into one `_`, leading and trailing `_` dropped (`/app/conf.d` → `EDAS_MOUNT_APP_CONF_D`).
pub fn mount_env_name(mount_path: &str) -> String {
    let mut out = String::from("EDAS_MOUNT_");
    let mut pending = false;
    for c in mount_path.chars() {
        if c.is_ascii_alphanumeric() {
            if pending && !out.ends_with('_') {
                out.push('_');
            }
            pending = false;
            out.push(c.to_ascii_uppercase());
        } else {
            pending = true;
        }
    }
    out
}

fn mount_env_names(spec: &AppSpec) -> Result<BTreeMap<String, String>, String> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (param, path) in spec.mount_paths() {
        let name = mount_env_name(path);
        if name == "EDAS_MOUNT_" {
            return Err(format!(
                "`{param}` mount path `{path}` has no letter or digit to name its environment variable"
            ));
        }
        if let Some(other) = seen.insert(name.clone(), path.to_owned()) {
            return Err(format!(
                "`{param}`: mount paths `{other}` and `{path}` both map to environment variable {name} on the local runtime"
            ));
        }
    }
    Ok(seen)
}

/// Expands `$(VAR)` references with Kubernetes' rules: a defined variable is replaced, `$$` is a
/// literal `$`, anything else is kept as written.
pub fn expand(input: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some(value) = env.get(&inner[..end])
        {
            out.push_str(value);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Everything an instance start needs to know about the instance itself.
pub struct InstanceFacts<'a> {
    pub name: &'a str,
    pub port: u16,
    pub dir: &'a Path,
    pub workdir: &'a Path,
    pub package: Option<&'a Path>,
    /// Write the `ConfigMountDescs` files (at a start), or only announce them (an adopted
    /// process keeps the files it started with).
    pub write_config_files: bool,
    /// The user and group the instance runs as (`None`: edasd's own): it owns its `EmptyDirs`
    /// and config files.
    pub owner: Option<(u32, u32)>,
    /// The instance's lock on its files (see `InstanceEntry::files`), held while the mounts are
    /// laid out.
    pub files: Arc<Mutex<()>>,
}

/// What the launcher does about the mounts of one start (see [`crate::sandbox::Spec`]).
#[derive(Clone, Debug, Default)]
pub struct MountPlan {
    /// Created as the instance's user before it runs.
    pub create: Vec<Create>,
    /// Bind-mounted read-only.
    pub read_only: Vec<PathBuf>,
    /// Kept writable under `readOnlyRootFilesystem`.
    pub writable: Vec<PathBuf>,
}

/// A ConfigMap (`secret` false) or Secret of the revision's snapshot, `None` when the revision
/// was released without one of that name (every reference is in the spec's own namespace).
async fn lookup(
    source: &ConfigSnapshot,
    secret: bool,
    _namespace: &str,
    name: &str,
) -> Result<Option<ConfigData>, String> {
    Ok(source.get(secret, name).cloned())
}

/// The complete environment of an instance, in order: inherited variables, the runtime's own
/// (`HOSTNAME`, `PORT`, `EDAS_*`, mount variables), `EnvFroms`, then `Envs` (later wins; `Envs`
/// values may refer to earlier variables as `$(NAME)`); `PORT` is always the instance's port.
pub async fn environment(
    spec: &AppSpec,
    facts: &InstanceFacts<'_>,
    source: &ConfigSnapshot,
) -> Result<(BTreeMap<String, String>, MountPlan), String> {
    let ns = spec.k8s_namespace.as_str();
    let mut env = BTreeMap::new();
    for key in INHERITED_ENV {
        if let Ok(v) = std::env::var(key) {
            env.insert((*key).to_owned(), v);
        }
    }
    env.insert("HOME".into(), facts.workdir.display().to_string());
    env.insert("HOSTNAME".into(), facts.name.to_owned());
    env.insert("PORT".into(), facts.port.to_string());
    env.insert("EDAS_INSTANCE_NAME".into(), facts.name.to_owned());
    env.insert("EDAS_APP_NAME".into(), spec.name.clone());
    env.insert("EDAS_NAMESPACE".into(), ns.to_owned());
    env.insert("EDAS_INSTANCE_DIR".into(), facts.dir.display().to_string());
    if let Some(p) = facts.package {
        env.insert("EDAS_PACKAGE_FILE".into(), p.display().to_string());
    }
    for from in &spec.env_froms {
        let prefix = from.prefix.clone().unwrap_or_default();
        let refs = [
            (
                false,
                from.config_map_ref.as_ref().map(|r| (&r.name, r.optional)),
            ),
            (
                true,
                from.secret_ref.as_ref().map(|r| (&r.name, r.optional)),
            ),
        ];
        for (secret, r) in refs {
            let Some((name, optional)) = r else { continue };
            match lookup(source, secret, ns, name).await? {
                Some(data) => {
                    env.extend(data.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)))
                }
                None if optional == Some(true) => {}
                None => {
                    let kind = if secret { "Secret" } else { "ConfigMap" };
                    return Err(format!(
                        "`EnvFroms`: {kind} `{name}` not found in namespace `{ns}`"
                    ));
                }
            }
        }
    }
    for var in &spec.envs {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => {
                let key_ref = from
                    .config_map_key_ref
                    .as_ref()
                    .map(|r| (false, &r.name, &r.key, r.optional))
                    .or_else(|| {
                        from.secret_key_ref
                            .as_ref()
                            .map(|r| (true, &r.name, &r.key, r.optional))
                    });
                if let Some((secret, name, key, optional)) = key_ref {
                    let kind = if secret { "Secret" } else { "ConfigMap" };
                    match lookup(source, secret, ns, name)
                        .await?
                        .and_then(|mut d| d.remove(key))
                    {
                        Some(v) => v,
                        None if optional == Some(true) => continue,
                        None => {
                            return Err(format!(
                                "`Envs` `{}`: key `{key}` of {kind} `{name}` not found in namespace `{ns}`",
                                var.name
                            ));
                        }
                    }
                } else if let Some(f) = &from.field_ref {
                    field_value(&f.field_path, facts.name, ns)
                        .map_err(|e| format!("`Envs` `{}`: {e}", var.name))?
                } else {
                    return Err(format!(
                        "`Envs` `{}`: valueFrom has no supported source",
                        var.name
                    ));
                }
            }
            (Some(v), None) => expand(v, &env),
            (None, None) => String::new(),
        };
        env.insert(var.name.clone(), value);
    }
    env.insert("PORT".into(), facts.port.to_string());
    let plan = prepare_mounts(spec, facts, source, &mut env).await?;
    Ok((env, plan))
}

/// Creates the directories and files of `EmptyDirs`, `LocalVolume` and `ConfigMountDescs` and
/// adds one `EDAS_MOUNT_*` variable per mount path (see [`mount_env_name`]). The ConfigMaps and
/// Secrets are read first (awaited); the files are then written in one blocking task, off the
/// tokio workers.
async fn prepare_mounts(
    spec: &AppSpec,
    facts: &InstanceFacts<'_>,
    source: &ConfigSnapshot,
    env: &mut BTreeMap<String, String>,
) -> Result<MountPlan, String> {
    let ns = spec.k8s_namespace.as_str();
    let mut configs = Vec::new();
    if facts.write_config_files {
        for m in &spec.config_mounts {
            let secret = m.kind.eq_ignore_ascii_case("secret");
            let kind = if secret { "Secret" } else { "ConfigMap" };
            let data = lookup(source, secret, ns, &m.name).await.and_then(|d| {
                d.ok_or_else(|| {
                    format!(
                        "`ConfigMountDescs`: {kind} `{}` not found in namespace `{ns}`",
                        m.name
                    )
                })
            });
            configs.push(data);
        }
    }
    let job = MountJob {
        mounts: facts.dir.join("mounts"),
        owner: facts.owner,
        files: facts.files.clone(),
        write_config_files: facts.write_config_files,
        empty_dirs: spec.empty_dirs.clone(),
        local_volumes: spec.local_volumes.clone(),
        config_mounts: spec.config_mounts.clone(),
        env: env.clone(),
    };
    let (plan, announced) = tokio::task::spawn_blocking(move || lay_out_mounts(&job, configs))
        .await
        .map_err(|e| format!("preparing the mounts failed: {e}"))??;
    let mut list = String::new();
    for (mount_path, local) in announced {
        env.insert(mount_env_name(&mount_path), local.display().to_string());
        list.push_str(&format!("{mount_path}={}\n", local.display()));
    }
    if !list.is_empty() {
        env.insert("EDAS_MOUNTS".into(), list);
    }
    Ok(plan)
}

/// What [`lay_out_mounts`] works from (owned, for a blocking task).
struct MountJob {
    /// The instance's `mounts/` directory.
    mounts: PathBuf,
    owner: Option<(u32, u32)>,
    files: Arc<Mutex<()>>,
    write_config_files: bool,
    empty_dirs: Vec<edas_spec::model::EmptyDirMount>,
    local_volumes: Vec<edas_spec::model::LocalVolume>,
    config_mounts: Vec<edas_spec::model::ConfigMount>,
    /// The environment so far (`subPathExpr` expands from it).
    env: BTreeMap<String, String>,
}

/// The blocking part of [`prepare_mounts`]: the plan, and (mount path, local path) of every
/// mount. `configs` holds the data (or the lookup error) of each `ConfigMountDescs` entry when
/// the files are written.
fn lay_out_mounts(
    job: &MountJob,
    configs: Vec<Result<ConfigData, String>>,
) -> Result<(MountPlan, Vec<(String, PathBuf)>), String> {
    let _files = job.files.lock().unwrap_or_else(|e| e.into_inner());
    let mounts = &job.mounts;
    let env = &job.env;
    let mut configs = configs.into_iter();
    let io =
        |what: &str, path: &Path, e: std::io::Error| format!("{what} `{}`: {e}", path.display());
    let own = |path: &Path| -> Result<(), String> {
        // edasd just created `path` in a directory only it can write: no link can be in the way.
        if let Some((uid, gid)) = job.owner {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))
                .map_err(|e| io("cannot give the instance", path, e))?;
        }
        Ok(())
    };
    crate::make_dir(mounts, 0o711).map_err(|e| io("cannot create", mounts, e))?;
    let mut plan = MountPlan::default();
    let mut announced: Vec<(String, PathBuf)> = Vec::new();
    for (i, m) in job.empty_dirs.iter().enumerate() {
        let base = mounts.join(format!("emptydir-{i}"));
        if !base.is_dir() {
            crate::make_dir(&base, 0o700)
                .map_err(|e| io("cannot create EmptyDirs directory", &base, e))?;
            own(&base)?;
        }
        plan.writable.push(base.clone());
        let mut path = base;
        if let Some(sub) = m.sub_path_expr.as_deref().filter(|s| !s.is_empty()) {
            let sub = expand(sub, env);
            if Path::new(&sub).is_absolute() || sub.split('/').any(|part| part == "..") {
                return Err(format!(
                    "`EmptyDirs` subPathExpr `{sub}` must be a relative path without `..`"
                ));
            }
            path = path.join(sub);
            // Inside a directory the instance owns: created by the launcher, as the instance.
            plan.create.push(Create {
                path: path.clone(),
                dir: true,
                param: "EmptyDirs".to_owned(),
            });
        }
        if m.read_only {
            plan.read_only.push(path.clone());
        }
        announced.push((m.mount_path.clone(), path));
    }
    for v in &job.local_volumes {
        let path = PathBuf::from(&v.node_path);
        let meta = std::fs::metadata(&path);
        // What to create is created by the launcher as the instance's user, so it owns it and
        // cannot create anything it could not create itself.
        let problem = match (v.kind.as_str(), &meta) {
            ("", _) => None,
            ("DirectoryOrCreate", _) => {
                plan.create.push(Create {
                    path: path.clone(),
                    dir: true,
                    param: "LocalVolume".to_owned(),
                });
                None
            }
            ("FileOrCreate", Err(_)) => {
                plan.create.push(Create {
                    path: path.clone(),
                    dir: false,
                    param: "LocalVolume".to_owned(),
                });
                None
            }
            ("Directory", Ok(m)) if m.is_dir() => None,
            ("File" | "FileOrCreate", Ok(m)) if m.is_file() => None,
            ("Socket", Ok(m)) if m.file_type().is_socket() => None,
            ("CharDevice", Ok(m)) if m.file_type().is_char_device() => None,
            ("BlockDevice", Ok(m)) if m.file_type().is_block_device() => None,
            (kind, Ok(_)) => Some(format!("it is not a {kind}")),
            (_, Err(e)) => Some(e.to_string()),
        };
        if let Some(p) = problem {
            return Err(format!(
                "`LocalVolume` node path `{}` ({}): {p}",
                v.node_path, v.kind
            ));
        }
        if meta.is_ok() {
            plan.writable.push(path.clone());
        }
        announced.push((v.mount_path.clone(), path));
    }
    for (i, m) in job.config_mounts.iter().enumerate() {
        let path = mounts.join(format!("config-{i}"));
        plan.read_only.push(path.clone());
        if !job.write_config_files {
            announced.push((m.mount_path.clone(), path));
            continue;
        }
        let secret = m.kind.eq_ignore_ascii_case("secret");
        let kind = if secret { "Secret" } else { "ConfigMap" };
        let data = configs.next().unwrap_or_else(|| {
            Err("`ConfigMountDescs`: internal error: data missing".to_owned())
        })?;
        let _ = std::fs::remove_dir_all(&path);
        crate::make_dir(&path, 0o755)
            .map_err(|e| io("cannot create ConfigMountDescs directory", &path, e))?;
        for (key, value) in data {
            if key.is_empty() || key.contains('/') || key == "." || key == ".." {
                return Err(format!(
                    "`ConfigMountDescs`: {kind} `{}` has key `{key}`, which is not a file name",
                    m.name
                ));
            }
            let file = path.join(&key);
            // Secret files are readable by their owner only (the instance's user).
            let mode = if secret { 0o600 } else { 0o644 };
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(&file)
                .and_then(|mut f| {
                    std::io::Write::write_all(&mut f, value.as_bytes())?;
                    match job.owner {
                        Some((uid, gid)) => std::os::unix::fs::fchown(&f, Some(uid), Some(gid)),
                        None => Ok(()),
                    }
                });
            written.map_err(|e| io("cannot write", &file, e))?;
        }
        announced.push((m.mount_path.clone(), path));
    }
    Ok((plan, announced))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let env = BTreeMap::from([("PORT".to_owned(), "8080".to_owned())]);
        assert_eq!(expand("--port=$(PORT)", &env), "--port=8080");
        assert_eq!(
            expand("$$(PORT) $(MISSING) $ $(", &env),
            "$(PORT) $(MISSING) $ $("
        );
    }

    #[test]
    fn mount_environment_names_are_documented_and_collisions_refused() {
        assert_eq!(mount_env_name("/app/conf.d"), "EDAS_MOUNT_APP_CONF_D");
        assert_eq!(mount_env_name("/data//x-y/"), "EDAS_MOUNT_DATA_X_Y");
        let mut spec = AppSpec::default();
        spec.empty_dirs.push(edas_spec::model::EmptyDirMount {
            mount_path: "/a-b".into(),
            read_only: false,
            sub_path_expr: None,
        });
        spec.empty_dirs.push(edas_spec::model::EmptyDirMount {
            mount_path: "/a_b".into(),
            read_only: false,
            sub_path_expr: None,
        });
        let err = mount_env_names(&spec).unwrap_err();
        assert!(err.contains("EDAS_MOUNT_A_B"), "{err}");
    }

    #[test]
    fn unsupported_specs_are_refused_with_the_parameter_named() {
        let java = |_: Option<&str>| Ok(PathBuf::from("java"));
        let mut spec = AppSpec {
            name: "demo".into(),
            artifact: Artifact::Image {
                url: "nginx:1".into(),
                repo_id: None,
            },
            ..Default::default()
        };
        assert!(
            check_supported(&spec, &java)
                .unwrap_err()
                .contains("container engine")
        );
        spec.command = Some("/bin/true".into());
        assert_eq!(check_supported(&spec, &java), Ok(()));
        spec.workload = edas_spec::model::Workload::StatefulSet;
        let err = check_supported(&spec, &java).unwrap_err();
        assert!(
            err.contains("`WorkloadType` StatefulSet") && err.contains("stable network identity"),
            "{err}"
        );
        spec.workload = edas_spec::model::Workload::Deployment;
        spec.liveness = Some(Probe {
            grpc: Some(Default::default()),
            ..Default::default()
        });
        assert!(
            check_supported(&spec, &java)
                .unwrap_err()
                .contains("`Liveness`: grpc")
        );
        spec.liveness = Some(Probe {
            http_get: Some(HTTPGetAction {
                host: Some("10.0.0.1".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(
            check_supported(&spec, &java)
                .unwrap_err()
                .contains("host `10.0.0.1`")
        );
        spec.liveness = None;
        spec.artifact = Artifact::None;
        spec.command = None;
        assert!(
            check_supported(&spec, &java)
                .unwrap_err()
                .contains("nothing to run")
        );
    }

    #[test]
    fn what_the_host_cannot_enforce_is_named_by_its_parameter() {
        let none = Cgroups::none();
        let host = Host {
            cgroups: &none,
            sandbox: false,
            root: false,
            run_as: None,
        };
        let mut spec = AppSpec::default();
        assert!(unenforced(&spec, &host).is_empty());
        spec.resources.cpu_limit_millis = Some(500);
        spec.resources.memory_limit_mib = Some(64);
        spec.resources.ephemeral_limit_gib = Some(1);
        spec.security_context = Some(k8s_openapi::api::core::v1::SecurityContext {
            read_only_root_filesystem: Some(true),
            privileged: Some(true),
            ..Default::default()
        });
        let missing = unenforced(&spec, &host).join("; ");
        assert!(missing.contains("`LimitmCpu`"), "{missing}");
        assert!(missing.contains("`LimitEphemeralStorage`"), "{missing}");
        assert!(missing.contains("readOnlyRootFilesystem"), "{missing}");
        assert!(missing.contains("privileged"), "{missing}");
        assert!(
            !missing.contains("LimitMem"),
            "a memory limit is watched without a cgroup: {missing}"
        );
    }

    #[test]
    fn host_paths_must_lie_under_an_allowed_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("shared");
        std::fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("escape")).unwrap();
        let roots = vec![root.clone()];
        assert!(host_path_allowed("LocalVolume", &root.join("data"), &roots).is_ok());
        for bad in [
            PathBuf::from("/"),
            root.join("../secret"),
            root.join("escape/passwd"),
            PathBuf::from("relative"),
        ] {
            let err = host_path_allowed("LocalVolume", &bad, &roots).unwrap_err();
            assert!(
                err.contains("`LocalVolume`") && err.contains("allowed_host_paths"),
                "{err}"
            );
        }
        let err = host_path_allowed("PackageUrl", Path::new("/x"), &[]).unwrap_err();
        assert!(err.contains("none is allowed"), "{err}");
    }

    #[test]
    fn run_as_root_needs_the_configuration_and_run_as_non_root_refuses_root() {
        let mut spec = AppSpec {
            security_context: Some(k8s_openapi::api::core::v1::SecurityContext {
                run_as_user: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        };
        if nix::unistd::geteuid().is_root() {
            assert!(identity(&spec, Some((65534, 65534))).is_err());
            assert_eq!(identity(&spec, Some((0, 0))), Ok(Some((0, 0))));
            spec.security_context = Some(k8s_openapi::api::core::v1::SecurityContext {
                run_as_user: Some(1234),
                run_as_group: Some(4321),
                ..Default::default()
            });
            assert_eq!(
                identity(&spec, Some((65534, 65534))),
                Ok(Some((1234, 4321)))
            );
        }
        spec.security_context = Some(k8s_openapi::api::core::v1::SecurityContext {
            run_as_non_root: Some(true),
            ..Default::default()
        });
        let own = nix::unistd::geteuid().as_raw();
        assert_eq!(identity(&spec, None).is_err(), own == 0);
    }
}
