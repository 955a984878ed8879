//! One cgroup per instance: CPU limit and request, memory limit and request, a pids limit, and
//! the OOM-kill counter that tells an OOM kill apart from any other SIGKILL.
//!
//! cgroup v2 is used when the unified hierarchy has the `cpu`, `memory` and `pids` controllers
//! for edasd's own cgroup; otherwise cgroup v1, one hierarchy per controller. Instance cgroups
//! are children of edasd's own cgroup in each hierarchy (`<edasd's cgroup>/edas-local/<instance>`),
//! so a host that limits edasd limits its instances too. The launcher joins them before `exec`
//! (see [`crate::sandbox`]). A controller edasd cannot create cgroups in is unavailable, and
//! what needs it is refused (or recorded only, see [`crate::Unenforceable`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The controllers the runtime uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    Cpu,
    Memory,
    Pids,
}

impl Controller {
    fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
        }
    }
}

/// What the host offers: per controller, the directory under which instance cgroups are made.
#[derive(Clone, Debug, Default)]
pub struct Cgroups {
    v2: bool,
    cpu: Option<PathBuf>,
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
}

/// The limits of one instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub cpu_limit_millis: Option<u32>,
    pub cpu_request_millis: Option<u32>,
    pub memory_limit_bytes: Option<u64>,
    pub memory_request_bytes: Option<u64>,
    pub pids_max: Option<u64>,
}

/// The cgroups of one instance (kept in its state file, so an adopted instance keeps them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceCgroup {
    /// Every directory the instance's processes join.
    pub dirs: Vec<PathBuf>,
    /// The memory cgroup (its OOM-kill counter).
    pub memory: Option<PathBuf>,
    /// cgroup v2 (`memory.events`) rather than v1 (`memory.oom_control`).
    pub v2: bool,
}

const PARENT: &str = "edas-local";

impl Cgroups {
    /// Looks at the host's cgroup mounts and edasd's own cgroups; creates the `edas-local`
    /// parents it can.
    pub fn detect() -> Cgroups {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mut found = Cgroups::default();
        if let Some(v2) = detect_v2(&mountinfo, &own) {
            found = v2;
        } else {
            for c in [Controller::Cpu, Controller::Memory, Controller::Pids] {
                let dir = v1_parent(&mountinfo, &own, c.name())
                    .filter(|d| std::fs::create_dir_all(d).is_ok() && writable(d));
                match c {
                    Controller::Cpu => found.cpu = dir,
                    Controller::Memory => found.memory = dir,
                    Controller::Pids => found.pids = dir,
                }
            }
        }
        found
    }

    /// No cgroups at all (nothing is limited through them).
    pub fn none() -> Cgroups {
        Cgroups::default()
    }

    /// Whether `c` can be used.
    pub fn has(&self, c: Controller) -> bool {
        self.parent(c).is_some()
    }

    fn parent(&self, c: Controller) -> Option<&PathBuf> {
        match c {
            Controller::Cpu => self.cpu.as_ref(),
            Controller::Memory => self.memory.as_ref(),
            Controller::Pids => self.pids.as_ref(),
        }
    }

    /// What the log says about them.
    pub fn describe(&self) -> String {
        let v = if self.v2 { "v2" } else { "v1" };
        let have: Vec<&str> = [Controller::Cpu, Controller::Memory, Controller::Pids]
            .into_iter()
            .filter(|c| self.has(*c))
            .map(Controller::name)
            .collect();
        if have.is_empty() {
            "none".to_owned()
        } else {
            format!("{v}: {}", have.join(", "))
        }
    }

    /// Creates (or reuses) the cgroup of instance `name` and writes its limits.
    pub fn create(&self, name: &str, limits: &Limits) -> Result<InstanceCgroup, String> {
        let mut cg = InstanceCgroup {
            v2: self.v2,
            ..Default::default()
        };
        let mut make = |c: Controller| -> Result<Option<PathBuf>, String> {
            let Some(parent) = self.parent(c) else {
                return Ok(None);
            };
            let dir = parent.join(name);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create cgroup `{}`: {e}", dir.display()))?;
            if !cg.dirs.contains(&dir) {
                cg.dirs.push(dir.clone());
            }
            Ok(Some(dir))
        };
        let cpu = make(Controller::Cpu)?;
        let memory = make(Controller::Memory)?;
        let pids = make(Controller::Pids)?;
        cg.memory = memory.clone();
        if self.v2 {
            if let Some(dir) = &cpu {
                let quota = limits.cpu_limit_millis.map_or("max".to_owned(), |m| {
                    (u64::from(m.max(1)) * 100).max(1000).to_string()
                });
                write(dir, "cpu.max", &format!("{quota} 100000"))?;
                if let Some(req) = limits.cpu_request_millis {
                    write(dir, "cpu.weight", &weight_of(shares_of(req)).to_string())?;
                }
            }
            if let Some(dir) = &memory {
                let max = limits
                    .memory_limit_bytes
                    .map_or("max".to_owned(), |b| b.to_string());
                write(dir, "memory.max", &max)?;
                if dir.join("memory.swap.max").exists() && limits.memory_limit_bytes.is_some() {
                    write(dir, "memory.swap.max", "0")?;
                }
                if let Some(req) = limits.memory_request_bytes {
                    write(dir, "memory.low", &req.to_string())?;
                }
                if dir.join("memory.oom.group").exists() {
                    write(dir, "memory.oom.group", "1")?;
                }
            }
        } else {
            if let Some(dir) = &cpu {
                write(dir, "cpu.cfs_period_us", "100000")?;
                let quota = limits.cpu_limit_millis.map_or("-1".to_owned(), |m| {
                    (u64::from(m) * 100).max(1000).to_string()
                });
                write(dir, "cpu.cfs_quota_us", &quota)?;
                if let Some(req) = limits.cpu_request_millis {
                    write(dir, "cpu.shares", &shares_of(req).to_string())?;
                }
            }
            if let Some(dir) = &memory {
                let limit = limits
                    .memory_limit_bytes
                    .map_or("-1".to_owned(), |b| b.to_string());
                write(dir, "memory.limit_in_bytes", &limit)?;
                if dir.join("memory.memsw.limit_in_bytes").exists() {
                    // No escape into swap: memory + swap is the same limit.
                    write(dir, "memory.memsw.limit_in_bytes", &limit)?;
                }
                if let Some(req) = limits.memory_request_bytes {
                    write(dir, "memory.soft_limit_in_bytes", &req.to_string())?;
                }
            }
        }
        if let Some(dir) = &pids {
            let max = limits.pids_max.map_or("max".to_owned(), |n| n.to_string());
            write(dir, "pids.max", &max)?;
        }
        Ok(cg)
    }
}

impl InstanceCgroup {
    /// How many processes of the instance the kernel has OOM-killed so far.
    pub fn oom_kills(&self) -> u64 {
        let Some(dir) = &self.memory else { return 0 };
        let (file, key) = if self.v2 {
            ("memory.events", "oom_kill")
        } else {
            ("memory.oom_control", "oom_kill")
        };
        std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == key).then(|| v.trim().parse().ok()).flatten()
                })
            })
            .unwrap_or(0)
    }

    /// The processes still in it.
    pub fn processes(&self) -> Vec<i32> {
        let mut out: Vec<i32> = self
            .dirs
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Kills every process left in it (a daemon that left the process group too) and removes
    /// it.
    pub fn remove(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = self.processes();
            if left.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in left {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for dir in &self.dirs {
            if let Err(e) = std::fs::remove_dir(dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(cgroup = %dir.display(), error = %e, "cannot remove the instance's cgroup");
            }
        }
    }
}

/// cgroup v1 `cpu.shares` for a request in millicores (Kubernetes' conversion).
fn shares_of(millis: u32) -> u64 {
    (u64::from(millis) * 1024 / 1000).max(2)
}

/// cgroup v2 `cpu.weight` for v1 shares (Kubernetes' conversion).
fn weight_of(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), String> {
    std::fs::write(dir.join(file), value)
        .map_err(|e| format!("cannot set {file} = {value} in `{}`: {e}", dir.display()))
}

fn writable(dir: &Path) -> bool {
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok()
}

/// edasd's own cgroup path in the hierarchy `hierarchy` (`0` for v2, else the v1 controller).
fn own_path(own: &str, controller: Option<&str>) -> Option<String> {
    own.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (id, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match controller {
            None => id == "0" && ctrls.is_empty(),
            Some(c) => ctrls.split(',').any(|x| x == c),
        };
        hit.then(|| path.to_owned())
    })
}

/// (mount point, filesystem type, super options) of every mount.
fn mounts(mountinfo: &str) -> Vec<(PathBuf, String, String)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fstype = r.next()?.to_owned();
            let _source = r.next()?;
            let opts = r.next().unwrap_or_default().to_owned();
            Some((PathBuf::from(point), fstype, opts))
        })
        .collect()
}

fn under(mount: &Path, path: &str) -> PathBuf {
    mount.join(path.trim_start_matches('/')).join(PARENT)
}

fn v1_parent(mountinfo: &str, own: &str, controller: &str) -> Option<PathBuf> {
    let (point, _, _) = mounts(mountinfo)
        .into_iter()
        .find(|(_, fs, opts)| fs == "cgroup" && opts.split(',').any(|o| o == controller))?;
    let path = own_path(own, Some(controller))?;
    Some(under(&point, &path))
}

fn detect_v2(mountinfo: &str, own: &str) -> Option<Cgroups> {
    let (point, _, _) = mounts(mountinfo)
        .into_iter()
        .find(|(_, fs, _)| fs == "cgroup2")?;
    let path = own_path(own, None)?;
    let own_dir = point.join(path.trim_start_matches('/'));
    let available = std::fs::read_to_string(own_dir.join("cgroup.controllers")).ok()?;
    let wanted = ["cpu", "memory", "pids"];
    if !wanted
        .iter()
        .all(|w| available.split_whitespace().any(|a| a == *w))
    {
        return None;
    }
    // Under edasd's own cgroup when the controllers can be enabled there (a delegated
    // cgroup without processes of its own), else under the root of the hierarchy (root only:
    // the root cgroup may enable controllers while it has processes).
    [own_dir.clone(), point.clone()]
        .into_iter()
        .find_map(|base| {
            let parent = base.join(PARENT);
            std::fs::create_dir_all(&parent).ok()?;
            // The controllers must be enabled for the children on the way down.
            let enabled = std::fs::write(base.join("cgroup.subtree_control"), "+cpu +memory +pids")
                .and_then(|()| {
                    std::fs::write(parent.join("cgroup.subtree_control"), "+cpu +memory +pids")
                });
            if enabled.is_err() {
                let _ = std::fs::remove_dir(&parent);
                return None;
            }
            Some(parent)
        })
        .map(|parent| Cgroups {
            v2: true,
            cpu: Some(parent.clone()),
            memory: Some(parent.clone()),
            pids: Some(parent),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    const OWN: &str = "4:memory:/process_api/abc\n1:cpu:/\n0::/\n";

    #[test]
    fn v1_instance_cgroups_nest_under_edasds_own() {
        assert_eq!(
            v1_parent(MOUNTINFO, OWN, "memory"),
            Some(PathBuf::from(
                "/sys/fs/cgroup/memory/process_api/abc/edas-local"
            ))
        );
        assert_eq!(
            v1_parent(MOUNTINFO, OWN, "cpu"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu/edas-local"))
        );
        assert_eq!(v1_parent(MOUNTINFO, OWN, "pids"), None, "not mounted");
        assert_eq!(own_path(OWN, None).as_deref(), Some("/"));
    }

    #[test]
    fn kubernetes_cpu_conversions() {
        assert_eq!(shares_of(1000), 1024);
        assert_eq!(shares_of(1), 2);
        assert_eq!(weight_of(1024), 39);
        assert_eq!(weight_of(2), 1);
    }

    /// On a host where this process may create cgroups (root with v1 or v2 controllers), the
    /// limits land in the cgroup files.
    #[test]
    fn limits_are_written_where_the_host_allows() {
        let cgroups = Cgroups::detect();
        if !cgroups.has(Controller::Memory) || !cgroups.has(Controller::Cpu) {
            eprintln!(
                "skipped: no usable cpu and memory cgroups here ({})",
                cgroups.describe()
            );
            return;
        }
        let name = format!("unit-test-{}", std::process::id());
        let cg = cgroups
            .create(
                &name,
                &Limits {
                    cpu_limit_millis: Some(500),
                    cpu_request_millis: Some(250),
                    memory_limit_bytes: Some(64 << 20),
                    memory_request_bytes: None,
                    pids_max: Some(100),
                },
            )
            .unwrap();
        let read = |dir: &Path, f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        let mem = cg.memory.clone().unwrap();
        if cg.v2 {
            assert_eq!(read(&mem, "memory.max").trim(), (64u64 << 20).to_string());
        } else {
            assert_eq!(
                read(&mem, "memory.limit_in_bytes").trim(),
                (64u64 << 20).to_string()
            );
            let cpu = cg
                .dirs
                .iter()
                .find(|d| d.join("cpu.cfs_quota_us").exists())
                .unwrap();
            assert_eq!(read(cpu, "cpu.cfs_quota_us").trim(), "50000");
            assert_eq!(read(cpu, "cpu.shares").trim(), "256");
        }
        assert_eq!(cg.oom_kills(), 0);
        assert!(cg.processes().is_empty());
        cg.remove();
        assert!(cg.dirs.iter().all(|d| !d.exists()));
    }
}
