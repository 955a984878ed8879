//! The on-disk layout and the per-instance state file that lets a new runtime adopt instances.
//!
//! ```text
//! <instances_dir>/<app_id>/<revision>/spec.json            the revision's AppSpec (0600)
//! <instances_dir>/<app_id>/<revision>/config.json          its ConfigMaps and Secrets (0600)
//! <instances_dir>/<app_id>/<revision>/<instance>/state.json this file (0600)
//! <instances_dir>/<app_id>/<revision>/<instance>/work/      working directory and HOME (the instance's user's)
//! <instances_dir>/<app_id>/<revision>/<instance>/logs/      stdout.log, stderr.log (+ .1 … .N) (edasd's, 0700)
//! <instances_dir>/<app_id>/<revision>/<instance>/logs/previous/  the same files of the run before
//! <instances_dir>/<app_id>/<revision>/<instance>/mounts/    EmptyDirs (the instance's user's) and ConfigMountDescs
//! <instances_dir>/.packages/<sha256>/<file>                 the package cache
//! <data_dir>/logs/<app_id>/<instance>/                      logs of stopped instances
//! <data_dir>/routing/<app_id>.json                          the service routing
//! ```
//!
//! Everything but `work/` and the `EmptyDirs` belongs to edasd's user, so an instance (another
//! user) cannot swap a file edasd writes, rotates or copies for a link elsewhere. Directories
//! on the way are `0711`: an instance reaches its own directory but lists nobody else's.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// What survives edasd about one instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceRecord {
    /// The instance name.
    pub name: String,
    /// Its `PORT`.
    pub port: u16,
    /// The process (also its process group), when one was started.
    pub pid: Option<i32>,
    /// The process's start time in clock ticks since boot (`/proc/<pid>/stat` field 22): a pid is
    /// adopted only when this still matches, so a reused pid is never mistaken for the instance.
    pub start_time: Option<u64>,
    /// Restarts so far.
    pub restarts: u32,
    /// Set when the runtime gave up on the instance.
    pub failed: Option<String>,
    /// How the run before the current one ended (the reason it was restarted).
    pub last_exit: Option<String>,
    /// Creation order (milliseconds since the Unix epoch), so scale-down prefers the newest.
    pub created_ms: u64,
    /// Whether it was ready when last seen, so a new runtime that adopts the process keeps
    /// routing to it until its readiness probe says otherwise (as a kubelet restart does not
    /// make pods unready).
    pub ready: bool,
    /// The instance's cgroups (removed with it; an adopted instance keeps them).
    pub cgroup: Option<crate::cgroup::InstanceCgroup>,
    /// The OOM kills its cgroup had counted when the current process started.
    pub oom_kills_at_start: u64,
}

/// Writes `value` as JSON to `path` atomically (a temporary file renamed over it), readable by
/// edasd's user only (a spec holds environment values).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?
        .write_all(&bytes)?;
    std::fs::rename(&tmp, path)
}

/// Reads a JSON file, or `None` when it is missing or unreadable.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether `s` can be used as one directory name (application ids and revisions are).
pub fn is_safe_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_segments_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let rec = InstanceRecord {
            name: "a-1".into(),
            port: 4000,
            pid: Some(7),
            start_time: Some(9),
            ..Default::default()
        };
        write_json(&path, &rec).unwrap();
        assert_eq!(read_json::<InstanceRecord>(&path), Some(rec));
        assert!(is_safe_segment("app-1_x.2"));
        for bad in ["", ".", "..", "a/b", "a b"] {
            assert!(!is_safe_segment(bad), "{bad:?}");
        }
    }
}
