//! The on-disk layout and the per-instance state file that lets a new runtime adopt instances.
//!
//! ```text
//! <data_dir>/instances/<app_id>/<revision>/spec.json            the revision's AppSpec
//! <data_dir>/instances/<app_id>/<revision>/<instance>/state.json this file
//! <data_dir>/instances/<app_id>/<revision>/<instance>/work/      working directory and HOME
//! <data_dir>/instances/<app_id>/<revision>/<instance>/logs/      stdout.log, stderr.log (+ .1 … .N)
//! <data_dir>/instances/<app_id>/<revision>/<instance>/mounts/    EmptyDirs and ConfigMountDescs
//! <data_dir>/packages/<sha256>/<file>                            the package cache
//! <data_dir>/logs/<app_id>/<instance>/                            logs of stopped instances
//! ```

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
    /// Creation order (milliseconds since the Unix epoch), so scale-down prefers the newest.
    pub created_ms: u64,
    /// Whether it was ready when last seen, so a new runtime that adopts the process keeps
    /// routing to it until its readiness probe says otherwise (as a kubelet restart does not
    /// make pods unready).
    pub ready: bool,
}

/// Writes `value` as JSON to `path` atomically (a temporary file renamed over it).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, bytes)?;
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
