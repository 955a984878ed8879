//! One housekeeping task per runtime: log rotation, the memory watch and the exit watch of
//! adopted processes for *all* instances, each pass one [`tokio::task::spawn_blocking`] call, so
//! no file or `/proc` work runs on a tokio worker and the cost is one `/proc` scan per pass
//! whatever the number of instances (a per-instance timer would scan `/proc` once per instance).
//!
//! Everything else the runtime learns is event-driven (a child's exit, probe results, state
//! changes). What is left here is periodic because the kernel gives no usable event for it:
//! - **Log size**: inotify would wake edasd on every write an instance makes (a chatty instance
//!   writes thousands of times a second); a size check every [`PERIOD`] bounds the cost whatever
//!   the write rate, and a log outgrows its limit by at most one period's output.
//! - **OOM kills**: cgroup v1's `memory.oom_control` raises no inotify event (only an eventfd
//!   registration, which needs unsafe code here), so both versions read the counter.
//! - **Resident memory without a memory cgroup**: no kernel event for a group crossing a size.
//! - **Exit of an adopted process**: it is not our child, so there is no `SIGCHLD`, and waiting
//!   on a pidfd needs `pidfd_open`, which has no safe binding here; its `/proc` start time is
//!   looked at every [`ADOPTED_PERIOD`] instead.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::cgroup::InstanceCgroup;
use crate::process;

/// How often logs are checked for rotation and memory for the limit.
pub(crate) const PERIOD: Duration = Duration::from_secs(1);
/// How often adopted processes are looked at (their exit is only seen this way).
pub(crate) const ADOPTED_PERIOD: Duration = Duration::from_millis(200);
/// The log files of an instance, in its `logs/` directory.
const LOG_FILES: [&str; 2] = ["stdout.log", "stderr.log"];

/// What the housekeeping watches of one running instance.
#[derive(Clone, Debug)]
pub(crate) struct Watched {
    /// The instance's `logs/` directory.
    pub logs: PathBuf,
    /// Its process group.
    pub pgid: i32,
    /// Its cgroup, when it has a memory controller: an OOM kill ends the instance.
    pub cgroup: Option<InstanceCgroup>,
    /// The cgroup's OOM kill count when the process started.
    pub oom_base: u64,
    /// The memory limit in bytes, if any.
    pub memory_limit: Option<u64>,
    /// The instance's lock on its files (see `InstanceEntry::files`): a rotation in progress
    /// finishes before the instance's directory is removed.
    pub files: Arc<Mutex<()>>,
}

impl Watched {
    /// Whether the kernel enforces the limit (a memory cgroup); else the resident memory is
    /// watched.
    fn kernel_limit(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|c| c.memory.is_some())
    }
}

/// The reason the memory limit ended an instance (the kernel's OOM kill).
pub(crate) fn oom_reason(limit: Option<u64>) -> String {
    format!(
        "OOMKilled: the memory limit of {} MiB was exceeded",
        limit.unwrap_or(0) / 1024 / 1024
    )
}

/// Whether the instance's memory cgroup counted an OOM kill since the process started.
/// Reads a cgroup file: call it off the tokio workers.
pub(crate) fn oom_killed(w: &Watched) -> bool {
    w.kernel_limit()
        && w.cgroup
            .as_ref()
            .is_some_and(|c| c.oom_kills() > w.oom_base)
}

struct Entry {
    watched: Watched,
    /// Where the reason goes when the instance has to be killed.
    kill: mpsc::Sender<String>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    running: BTreeMap<u64, Entry>,
    /// (pid, start time) of adopted processes → who waits for their exit.
    adopted: Vec<(i32, u64, oneshot::Sender<()>)>,
}

/// The runtime's housekeeping: what it watches. [`Housekeeping::run`] is its one task.
#[derive(Default)]
pub(crate) struct Housekeeping {
    registry: Mutex<Registry>,
}

/// A watched instance; dropping it stops the watch.
pub(crate) struct Registration {
    id: u64,
    owner: Weak<Housekeeping>,
    /// Why the instance must be killed (at once): OOM or resident memory over the limit.
    pub kills: mpsc::Receiver<String>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.upgrade() {
            owner.registry().running.remove(&self.id);
        }
    }
}

impl Housekeeping {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches a running instance until the registration is dropped.
    pub(crate) fn register(self: &Arc<Self>, watched: Watched) -> Registration {
        let (tx, rx) = mpsc::channel(1);
        let mut registry = self.registry();
        registry.next += 1;
        let id = registry.next;
        registry.running.insert(id, Entry { watched, kill: tx });
        Registration {
            id,
            owner: Arc::downgrade(self),
            kills: rx,
        }
    }

    /// Resolves once the adopted process `pid` with `start_time` is gone.
    pub(crate) async fn adopted_exit(&self, pid: i32, start_time: u64) {
        let (tx, rx) = oneshot::channel();
        self.registry().adopted.push((pid, start_time, tx));
        if rx.await.is_err() {
            // The housekeeping went away with the runtime, which detaches first.
            std::future::pending::<()>().await;
        }
    }

    /// The task: a pass every [`PERIOD`] and an adopted-exit check every [`ADOPTED_PERIOD`]
    /// (only when an adopted process is waited for), until `stop`.
    pub(crate) async fn run(
        self: Arc<Self>,
        max_bytes: u64,
        keep: u32,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut pass = tokio::time::interval(PERIOD);
        let mut adopted = tokio::time::interval(ADOPTED_PERIOD);
        pass.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        adopted.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = pass.tick() => self.pass(max_bytes, keep).await,
                _ = adopted.tick() => self.check_adopted().await,
            }
        }
    }

    /// One pass over every running instance (see the module docs).
    async fn pass(&self, max_bytes: u64, keep: u32) {
        let watched: Vec<(u64, Watched)> = {
            let registry = self.registry();
            registry
                .running
                .iter()
                .map(|(id, e)| (*id, e.watched.clone()))
                .collect()
        };
        if watched.is_empty() {
            return;
        }
        let Ok(kills) = tokio::task::spawn_blocking(move || pass(&watched, max_bytes, keep)).await
        else {
            return;
        };
        let registry = self.registry();
        for (id, reason) in kills {
            if let Some(entry) = registry.running.get(&id) {
                // A full channel already holds a kill; the next pass finds the cause again.
                let _ = entry.kill.try_send(reason);
            }
        }
    }

    /// Tells the waiters of adopted processes that are gone (one read of `/proc/<pid>/stat`
    /// each, off the workers), and forgets waiters that gave up.
    async fn check_adopted(&self) {
        let pids: Vec<(i32, u64)> = {
            let mut registry = self.registry();
            registry.adopted.retain(|(_, _, tx)| !tx.is_closed());
            registry.adopted.iter().map(|(p, t, _)| (*p, *t)).collect()
        };
        if pids.is_empty() {
            return;
        }
        let Ok(gone) = tokio::task::spawn_blocking(move || {
            pids.into_iter()
                .filter(|(pid, t)| process::start_time(*pid) != Some(*t))
                .collect::<Vec<_>>()
        })
        .await
        else {
            return;
        };
        let mut registry = self.registry();
        let (exited, alive): (Vec<_>, Vec<_>) = std::mem::take(&mut registry.adopted)
            .into_iter()
            .partition(|(p, t, _)| gone.contains(&(*p, *t)));
        registry.adopted = alive;
        for (_, _, tx) in exited {
            let _ = tx.send(());
        }
    }
}

/// One blocking pass: rotates every instance's logs, then finds the instances to kill (an OOM
/// kill counted by the cgroup, or resident memory over the limit, from one scan of `/proc`).
pub(crate) fn pass(watched: &[(u64, Watched)], max_bytes: u64, keep: u32) -> Vec<(u64, String)> {
    for (_, w) in watched {
        let _files = w.files.lock().unwrap_or_else(|e| e.into_inner());
        for name in LOG_FILES {
            let file = w.logs.join(name);
            if let Err(e) = process::rotate_if_large(&file, max_bytes, keep) {
                tracing::warn!(file = %file.display(), error = %e, "log rotation failed");
            }
        }
    }
    let mut kills = Vec::new();
    let mut by_rss = Vec::new();
    for (id, w) in watched {
        if oom_killed(w) {
            // The kernel killed a process of the instance: the whole instance goes, as a
            // container does.
            kills.push((*id, oom_reason(w.memory_limit)));
        } else if let Some(limit) = w.memory_limit.filter(|_| !w.kernel_limit()) {
            by_rss.push((*id, w.pgid, limit));
        }
    }
    if !by_rss.is_empty() {
        let groups: Vec<i32> = by_rss.iter().map(|(_, pgid, _)| *pgid).collect();
        let rss = process::groups_rss_bytes(&groups);
        for (id, pgid, limit) in by_rss {
            let used = rss.get(&pgid).copied().unwrap_or(0);
            if used > limit {
                kills.push((
                    id,
                    format!(
                        "OOMKilled: resident memory {} MiB over the limit of {} MiB",
                        used / 1024 / 1024,
                        limit / 1024 / 1024
                    ),
                ));
            }
        }
    }
    kills
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(logs: PathBuf) -> Watched {
        Watched {
            logs,
            pgid: 0,
            cgroup: None,
            oom_base: 0,
            memory_limit: None,
            files: Arc::default(),
        }
    }

    #[test]
    fn one_pass_rotates_the_logs_of_every_instance() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = Vec::new();
        for i in 0..3u64 {
            let logs = dir.path().join(format!("i{i}/logs"));
            std::fs::create_dir_all(&logs).unwrap();
            std::fs::write(logs.join("stdout.log"), "x".repeat(100)).unwrap();
            std::fs::write(logs.join("stderr.log"), "small").unwrap();
            all.push((i, watched(logs)));
        }
        assert!(pass(&all, 50, 2).is_empty(), "nothing to kill");
        for (_, w) in &all {
            assert_eq!(
                std::fs::metadata(w.logs.join("stdout.log")).unwrap().len(),
                0
            );
            assert_eq!(
                std::fs::read_to_string(w.logs.join("stdout.log.1")).unwrap(),
                "x".repeat(100)
            );
            assert_eq!(
                std::fs::read_to_string(w.logs.join("stderr.log")).unwrap(),
                "small",
                "a log under the limit is left alone"
            );
        }
    }

    #[test]
    fn a_group_over_its_resident_memory_limit_is_killed_and_one_under_it_is_not() {
        use std::os::unix::process::CommandExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = i32::try_from(child.id()).unwrap();
        let limited = |id, limit| {
            (
                id,
                Watched {
                    pgid,
                    memory_limit: Some(limit),
                    ..watched(dir.path().join("none"))
                },
            )
        };
        // `sleep` resides in more than one byte and in less than a terabyte. Its process group
        // can lag its spawn for a moment on a loaded machine: look again briefly.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut kills = pass(&[limited(1, 1), limited(2, 1 << 40)], 1 << 20, 1);
        while kills.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            kills = pass(&[limited(1, 1), limited(2, 1 << 40)], 1 << 20, 1);
        }
        process::signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
        assert_eq!(kills.len(), 1, "{kills:?}");
        assert_eq!(kills[0].0, 1);
        assert!(
            kills[0].1.starts_with("OOMKilled: resident memory"),
            "{kills:?}"
        );
    }

    #[tokio::test]
    async fn the_task_rotates_every_registered_instance_and_stops_with_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let hk = Arc::new(Housekeeping::default());
        let mut registrations = Vec::new();
        let mut logs = Vec::new();
        for i in 0..2 {
            let dir = dir.path().join(format!("i{i}/logs"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("stderr.log"), "y".repeat(64)).unwrap();
            registrations.push(hk.register(watched(dir.clone())));
            logs.push(dir);
        }
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(hk.clone().run(32, 1, stop.clone()));
        let rotated = |d: &PathBuf| d.join("stderr.log.1").exists();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !logs.iter().all(rotated) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        task.await.unwrap();
        assert!(
            logs.iter().all(rotated),
            "not every instance's log was rotated"
        );
    }

    #[tokio::test]
    async fn registrations_are_dropped_and_adopted_exits_are_seen() {
        let hk = Arc::new(Housekeeping::default());
        let reg = hk.register(watched(PathBuf::from("/nonexistent")));
        assert_eq!(hk.registry().running.len(), 1);
        drop(reg);
        assert!(hk.registry().running.is_empty());

        // A pid that does not exist is gone at the first check.
        let waiter = tokio::spawn({
            let hk = hk.clone();
            async move { hk.adopted_exit(i32::MAX, 1).await }
        });
        while hk.registry().adopted.is_empty() {
            tokio::task::yield_now().await;
        }
        hk.check_adopted().await;
        waiter.await.unwrap();
        assert!(hk.registry().adopted.is_empty());
    }
}
