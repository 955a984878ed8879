//! The launcher every instance process, exec hook and exec probe goes through.
//!
//! edasd does not start an instance's program itself: it starts a launcher (the binary that
//! hosts the runtime, re-executed with [`LAUNCHER_ARG`]; see [`Launcher`]) whose environment is
//! already the instance's own (never edasd's) plus one variable, [`SPEC_ENV`], describing the
//! sandbox. In its own process, before `exec`, the launcher:
//!
//! 1. joins the instance's cgroups (its limits: CPU, memory, pids), so the program and every
//!    process it forks are accounted and limited from their first instruction;
//! 2. unshares a private mount namespace (and a user namespace when it is not root) in which
//!    edasd's data directory and key files are covered by an empty read-only tmpfs (files: by
//!    `/dev/null`), and, for `readOnlyRootFilesystem`, every other mount is read-only except the
//!    instance's writable directories; read-only volumes are bind-mounted read-only;
//! 3. drops to the instance's user and group (supplementary groups cleared) and sets
//!    `no_new_privs`, so no set-uid program can take the privileges back;
//! 4. creates the directories and files the instance owns (`LocalVolume` `DirectoryOrCreate` /
//!    `FileOrCreate`, `EmptyDirs` sub-paths) **as that user**, so they are owned by it and it
//!    can create nothing it could not create itself;
//! 5. `exec`s the program: the instance's pid is the launcher's, so adoption after an edasd
//!    restart and the process-group signals work as before.
//!
//! A failure is written to stderr (the instance's `stderr.log`) as one line starting with
//! [`FAILURE_PREFIX`], and the launcher exits with [`FAILURE_STATUS`]; the supervisor reports
//! that line as the reason.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The first argument that turns the hosting binary into the launcher.
pub const LAUNCHER_ARG: &str = "__edas-sandbox";
/// The environment variable carrying the [`Spec`] (JSON); removed before the program runs.
pub const SPEC_ENV: &str = "EDAS_SANDBOX_SPEC";
/// The exit status of a launcher that could not set the sandbox up.
pub const FAILURE_STATUS: i32 = 125;
/// How a launcher failure line starts.
pub const FAILURE_PREFIX: &str = "edas-sandbox: ";

/// How edasd runs the launcher: `program` with `args` (edasd: itself with [`LAUNCHER_ARG`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launcher {
    /// The binary.
    pub program: PathBuf,
    /// Its first arguments.
    pub args: Vec<OsString>,
}

impl Launcher {
    /// The running binary re-executed with [`LAUNCHER_ARG`]: its `main` must call
    /// [`run_if_launcher`] first thing.
    pub fn this_binary() -> std::io::Result<Launcher> {
        Ok(Launcher {
            program: std::env::current_exe()?,
            args: vec![LAUNCHER_ARG.into()],
        })
    }
}

/// A path to create as the instance's user before the program runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Create {
    /// The path.
    pub path: PathBuf,
    /// A directory (with its parents) or an empty file.
    pub dir: bool,
    /// The parameter it comes from, for the error.
    pub param: String,
}

/// What the launcher does before `exec` (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Spec {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// The working directory.
    pub workdir: PathBuf,
    /// Switch to this user and group (needs root); `None` keeps the launcher's.
    pub run_as: Option<(u32, u32)>,
    /// cgroup directories to join (their `cgroup.procs`).
    pub cgroups: Vec<PathBuf>,
    /// Paths covered in the private mount namespace (directories by an empty tmpfs, files by
    /// `/dev/null`).
    pub hide: Vec<PathBuf>,
    /// Make every mount read-only except `writable`.
    pub read_only_root: bool,
    /// Directories that stay writable under `read_only_root`.
    pub writable: Vec<PathBuf>,
    /// Paths bind-mounted read-only (read-only volumes).
    pub read_only: Vec<PathBuf>,
    /// Created as the instance's user before `exec`.
    pub create: Vec<Create>,
    /// Use a private mount namespace at all (off when the host has none).
    pub mount_namespace: bool,
    /// Also deny the `hide` paths with Landlock, where the kernel has it (see [`landlock_rules`]).
    pub landlock: bool,
}

/// If this process was started as the launcher, sets the sandbox up and execs the program (never
/// returning); otherwise returns at once. Call it first thing in `main`, before any thread.
pub fn run_if_launcher() {
    if std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new(LAUNCHER_ARG)) {
        run_launcher();
    }
}

/// The launcher itself (the spec from [`SPEC_ENV`]); never returns.
pub fn run_launcher() -> ! {
    let err = match std::env::var(SPEC_ENV)
        .map_err(|e| format!("{SPEC_ENV}: {e}"))
        .and_then(|s| serde_json::from_str::<Spec>(&s).map_err(|e| format!("{SPEC_ENV}: {e}")))
    {
        Ok(spec) => apply_and_exec(&spec),
        Err(e) => e,
    };
    eprintln!("{FAILURE_PREFIX}{err}");
    std::process::exit(FAILURE_STATUS);
}

/// Sets the sandbox up and execs the program; returns only the reason it could not.
fn apply_and_exec(spec: &Spec) -> String {
    use std::os::unix::process::CommandExt as _;
    let Some((program, args)) = spec.argv.split_first() else {
        return "nothing to run".to_owned();
    };
    let pid = std::process::id().to_string();
    for cg in &spec.cgroups {
        let procs = cg.join("cgroup.procs");
        if let Err(e) = std::fs::write(&procs, &pid) {
            return format!("cannot join cgroup `{}`: {e}", cg.display());
        }
    }
    if spec.mount_namespace
        && let Err(e) = private_mounts(spec)
    {
        return e;
    }
    // The rules are gathered while the launcher may still list every directory (before the
    // user switch); they apply from `restrict_self` on.
    let ruleset = if spec.landlock {
        match landlock_ruleset(&spec.hide) {
            Ok(r) => r,
            Err(e) => return e,
        }
    } else {
        None
    };
    if let Some((uid, gid)) = spec.run_as
        && let Err(e) = switch_user(uid, gid)
    {
        return e;
    }
    if let Err(e) = nix::sys::prctl::set_no_new_privs() {
        return format!("cannot set no_new_privs: {e}");
    }
    for c in &spec.create {
        if let Err(e) = create(c) {
            return e;
        }
    }
    if let Some(ruleset) = ruleset
        && let Err(e) = ruleset.restrict_self()
    {
        return format!("cannot apply the Landlock rules: {e}");
    }
    let err = std::process::Command::new(program)
        .args(args)
        .current_dir(&spec.workdir)
        .env_remove(SPEC_ENV)
        .exec();
    format!("cannot run `{program}`: {err}")
}

/// Creates what an instance needs before it starts (a directory, or an empty file unless it
/// exists); the launcher does it as the instance's user, edasd without a launcher as itself.
pub(crate) fn create(c: &Create) -> Result<(), String> {
    let done = if c.dir {
        std::fs::create_dir_all(&c.path)
    } else if c.path.exists() {
        Ok(())
    } else {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&c.path)
            .map(drop)
    };
    done.map_err(|e| format!("`{}` path `{}`: {e}", c.param, c.path.display()))
}

fn switch_user(uid: u32, gid: u32) -> Result<(), String> {
    use nix::unistd::{Gid, Uid};
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    nix::unistd::setgroups(&[gid]).map_err(|e| format!("cannot clear the groups: {e}"))?;
    nix::unistd::setgid(gid).map_err(|e| format!("cannot switch to group {gid}: {e}"))?;
    nix::unistd::setuid(uid).map_err(|e| format!("cannot switch to user {uid}: {e}"))?;
    if !uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err("switched to an unprivileged user but could switch back to root".to_owned());
    }
    Ok(())
}

/// The paths Landlock grants full access beneath so that everything but `hidden` stays
/// reachable: Landlock only allows, so every entry of each directory on the way to a hidden path
/// is granted except that directory's own way down (and the hidden path itself). What is created
/// later directly in such a directory is not granted (e.g. a new file in `/var/lib` when the data
/// directory is `/var/lib/edasd`).
pub fn landlock_rules(hidden: &[PathBuf]) -> Vec<PathBuf> {
    let hidden: Vec<&Path> = hidden
        .iter()
        .map(PathBuf::as_path)
        .filter(|p| p.is_absolute())
        .collect();
    let on_the_way = |p: &Path| hidden.iter().any(|h| h.starts_with(p) && h != &p);
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::from("/")];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if hidden.contains(&path.as_path()) {
                continue;
            }
            if on_the_way(&path) && entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Restricts this thread (and what it execs) to [`landlock_rules`]: best effort, so a kernel
/// without Landlock leaves it to the mount namespace and the user switch. Answers whether the
/// kernel enforces the rules.
pub fn restrict_with_landlock(hidden: &[PathBuf]) -> Result<bool, String> {
    match landlock_ruleset(hidden)? {
        None => Ok(false),
        Some(r) => r
            .restrict_self()
            .map(|status| status.ruleset != landlock::RulesetStatus::NotEnforced)
            .map_err(|e| format!("cannot apply the Landlock rules: {e}")),
    }
}

/// The ruleset of [`landlock_rules`], not yet applied (`None`: nothing to hide).
fn landlock_ruleset(hidden: &[PathBuf]) -> Result<Option<landlock::RulesetCreated>, String> {
    use landlock::{
        ABI, Access as _, AccessFs, Ruleset, RulesetAttr as _, RulesetCreatedAttr as _,
        path_beneath_rules,
    };
    if hidden.is_empty() {
        return Ok(None);
    }
    let all = AccessFs::from_all(ABI::V5);
    Ruleset::default()
        .handle_access(all)
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(landlock_rules(hidden), all)))
        .map(Some)
        .map_err(|e| format!("cannot prepare the Landlock rules: {e}"))
}

/// The private mount namespace: hide, then read-only volumes, then the read-only root.
fn private_mounts(spec: &Spec) -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    use nix::sched::CloneFlags;
    let root = nix::unistd::geteuid().is_root();
    if root {
        nix::sched::unshare(CloneFlags::CLONE_NEWNS)
            .map_err(|e| format!("cannot unshare the mount namespace: {e}"))?;
    } else {
        // Without root, a user namespace (where this user maps to itself) lets us mount; its
        // capabilities are lost at `exec` (the program runs with a non-zero uid), so the
        // program cannot unmount what hides the data directory.
        let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
            .map_err(|e| format!("cannot unshare a user and mount namespace: {e}"))?;
        let write = |file: &str, what: String| {
            std::fs::write(file, what).map_err(|e| format!("cannot write {file}: {e}"))
        };
        write("/proc/self/setgroups", "deny".to_owned())?;
        write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
        write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    }
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(|e| format!("cannot make the mounts private: {e}"))?;
    for path in &spec.hide {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        let hidden = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=4k,mode=000"),
            )
        } else {
            mount(Some("/dev/null"), path, none, MsFlags::MS_BIND, none)
        };
        hidden.map_err(|e| format!("cannot hide `{}`: {e}", path.display()))?;
    }
    for path in &spec.read_only {
        bind_read_only(path)?;
    }
    if spec.read_only_root {
        for path in &spec.writable {
            bind_to_itself(path)
                .map_err(|e| format!("cannot keep `{}` writable: {e}", path.display()))?;
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read the mounts: {e}"))?;
        for point in mount_points(&mounts) {
            let kept = spec.writable.iter().any(|w| point.starts_with(w))
                || ["/proc", "/sys", "/dev"]
                    .iter()
                    .any(|p| point.starts_with(p));
            if !kept {
                // A mount that cannot be remounted (e.g. locked in a user namespace) stays as it
                // is; the root itself must be read-only.
                let done = remount_read_only(&point);
                if point == Path::new("/") {
                    done?;
                }
            }
        }
    }
    Ok(())
}

fn bind_read_only(path: &Path) -> Result<(), String> {
    bind_to_itself(path).map_err(|e| format!("cannot bind `{}`: {e}", path.display()))?;
    remount_read_only(path)
}

/// Makes `path` (and the mounts below it) a mount point of its own, so it can be remounted
/// apart from its parent.
fn bind_to_itself(path: &Path) -> nix::Result<()> {
    use nix::mount::{MsFlags, mount};
    let none: Option<&str> = None;
    mount(
        Some(path),
        path,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
}

fn remount_read_only(path: &Path) -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    let none: Option<&str> = None;
    let flags = nix::sys::statvfs::statvfs(path)
        .map(|s| s.flags())
        .unwrap_or(nix::sys::statvfs::FsFlags::empty());
    let mut keep = MsFlags::empty();
    for (fs, ms) in [
        (nix::sys::statvfs::FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (nix::sys::statvfs::FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (nix::sys::statvfs::FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (nix::sys::statvfs::FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (
            nix::sys::statvfs::FsFlags::ST_NODIRATIME,
            MsFlags::MS_NODIRATIME,
        ),
        (
            nix::sys::statvfs::FsFlags::ST_RELATIME,
            MsFlags::MS_RELATIME,
        ),
    ] {
        if flags.contains(fs) {
            keep |= ms;
        }
    }
    mount(
        none,
        path,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep,
        none,
    )
    .map_err(|e| format!("cannot make `{}` read-only: {e}", path.display()))
}

/// The mount points of `/proc/self/mountinfo` (field 5, octal escapes decoded), parents first.
pub(crate) fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect();
    out.sort_by_key(|p| p.components().count());
    out.dedup();
    out
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The reason a launcher gave for failing, from the last [`FAILURE_PREFIX`] line of its stderr.
pub fn failure_reason(stderr_log: &Path) -> Option<String> {
    let text = std::fs::read(stderr_log).ok()?;
    let tail = &text[text.len().saturating_sub(8192)..];
    String::from_utf8_lossy(tail)
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(FAILURE_PREFIX).map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_decoded_and_parents_come_first() {
        let info = "22 1 0:21 / /a\\040b rw - tmpfs x rw\n1 0 8:1 / / rw - ext4 /dev/sda rw\n";
        assert_eq!(
            mount_points(info),
            vec![PathBuf::from("/"), PathBuf::from("/a b")]
        );
    }

    #[test]
    fn the_failure_line_is_found_at_the_end_of_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        std::fs::write(&log, "noise\nedas-sandbox: cannot join cgroup `x`: EPERM\n").unwrap();
        assert_eq!(
            failure_reason(&log).as_deref(),
            Some("cannot join cgroup `x`: EPERM")
        );
        std::fs::write(&log, "nothing here\n").unwrap();
        assert_eq!(failure_reason(&log), None);
    }

    #[test]
    fn landlock_grants_everything_but_the_hidden_paths() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("inner")).unwrap();
        std::fs::write(data.join("store.key"), "secret").unwrap();
        std::fs::write(dir.path().join("beside"), "public").unwrap();
        let rules = landlock_rules(std::slice::from_ref(&data));
        assert!(rules.contains(&dir.path().join("beside")));
        assert!(rules.contains(&PathBuf::from("/proc")));
        assert!(
            !rules
                .iter()
                .any(|r| r.starts_with(&data) || data.starts_with(r)),
            "{rules:?}"
        );

        // Applied to one thread only (Landlock restricts the calling thread), where the kernel has
        // Landlock: the hidden file cannot be read there, the file beside it can.
        let (key, beside) = (data.join("store.key"), dir.path().join("beside"));
        let outcome = std::thread::spawn(move || {
            let enforced = restrict_with_landlock(&[data]).unwrap();
            (
                std::fs::read(&key).is_ok(),
                std::fs::read(&beside).is_ok(),
                enforced,
            )
        })
        .join()
        .unwrap();
        assert!(outcome.1, "the rest stays readable");
        if outcome.2 {
            assert!(!outcome.0, "the hidden file is denied");
        } else {
            eprintln!("Landlock is not enforced by this kernel: only the rules were checked");
        }
    }
}
