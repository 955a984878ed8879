//! Operating-system facts about instance processes: identity through `/proc`, signals to process
//! groups, waiting for a child or for an adopted process, log rotation and the memory watch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The start time of a live process, in clock ticks since boot (field 22 of `/proc/<pid>/stat`),
/// or `None` when the process is gone or a zombie. Together with the pid it names one process
/// for good: a reused pid has a different start time.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields = stat_fields(&stat)?;
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    // After the command, fields start at field 3 (state): starttime (22) is index 19.
    fields.get(19)?.parse().ok()
}

/// The process group of a live process (field 5 of `/proc/<pid>/stat`).
fn process_group_of(pid: &str) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat)?.get(2)?.parse().ok()
}

/// The fields after the command name, which may itself contain spaces and parentheses.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().collect())
}

/// Sends `signal` to a whole process group; a group that is already gone is not an error.
pub fn signal_group(pgid: i32, signal: Signal) {
    if pgid <= 1 {
        return;
    }
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pgid, %signal, error = %e, "cannot signal process group"),
    }
}

/// The resident memory of every process of each of `groups`, in bytes, from one scan of `/proc`
/// (a group with no process is missing).
pub fn groups_rss_bytes(groups: &[i32]) -> HashMap<i32, u64> {
    let mut totals = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return totals;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Some(pgid) = process_group_of(pid).filter(|g| groups.contains(g)) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        *totals.entry(pgid).or_default() += kib * 1024;
    }
    totals
}

/// The process groups (leaders' pids) started for an instance whose working directory is
/// `workdir` but that no state file names: a previous edasd killed between spawning the process
/// and recording its pid leaves one behind. It is recognised by its working directory or by the
/// `HOME` the runtime gives every instance (the instance's `work` directory, unique to it).
pub fn strays(workdir: &Path) -> Vec<i32> {
    let mut home = b"HOME=".to_vec();
    home.extend_from_slice(workdir.as_os_str().as_encoded_bytes());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if start_time(pid).is_none() {
            continue;
        }
        let in_dir = std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd == workdir);
        let with_home = || {
            std::fs::read(entry.path().join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == home.as_slice()))
        };
        if in_dir || with_home() {
            out.push(process_group_of(&pid.to_string()).unwrap_or(pid));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A running instance process: either our child or a process adopted from an earlier edasd.
pub struct Running {
    /// The process id, which is also its process group id (it leads its own group).
    pub pid: i32,
    /// Its start time (see [`start_time`]).
    pub start_time: u64,
    how: How,
}

/// How the end of a [`Running`] process is seen.
enum How {
    /// Our child: waited for.
    Child(tokio::process::Child),
    /// Adopted from an earlier edasd: not our child, so the runtime's housekeeping watches it.
    Adopted(Arc<crate::housekeeping::Housekeeping>),
}

impl Running {
    /// A child just spawned in its own process group.
    pub fn child(child: tokio::process::Child) -> Option<Running> {
        let pid = i32::try_from(child.id()?).ok()?;
        let start_time = start_time(pid).unwrap_or(0);
        Some(Running {
            pid,
            start_time,
            how: How::Child(child),
        })
    }

    /// A process found running, whose identity the caller has verified; `housekeeping` sees
    /// its exit.
    pub(crate) fn adopted(
        pid: i32,
        start_time: u64,
        housekeeping: Arc<crate::housekeeping::Housekeeping>,
    ) -> Running {
        Running {
            pid,
            start_time,
            how: How::Adopted(housekeeping),
        }
    }

    /// Waits until the process has exited and says how.
    pub async fn wait(&mut self) -> String {
        match &mut self.how {
            How::Child(child) => match child.wait().await {
                Ok(status) => describe_exit(status),
                Err(e) => format!("cannot wait for the process: {e}"),
            },
            How::Adopted(housekeeping) => {
                housekeeping.adopted_exit(self.pid, self.start_time).await;
                "exited (adopted process; exit status unknown)".to_owned()
            }
        }
    }

    /// Whether the process still runs (without waiting for it to end).
    pub async fn is_alive(&mut self) -> bool {
        match &mut self.how {
            How::Child(child) => matches!(child.try_wait(), Ok(None)),
            How::Adopted(_) => {
                let (pid, started) = (self.pid, self.start_time);
                tokio::task::spawn_blocking(move || start_time(pid) == Some(started))
                    .await
                    .unwrap_or(false)
            }
        }
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => {
            let name = Signal::try_from(sig)
                .map(|s| s.as_str())
                .unwrap_or("unknown signal");
            format!("killed by signal {sig} ({name})")
        }
        _ => "exited".to_owned(),
    }
}

/// Size-based rotation of an append-only log file, in the manner of logrotate's `copytruncate`:
/// the instance keeps its file descriptor (opened with `O_APPEND`, so after the truncation it
/// writes at the new end), `file` is copied to `file.1` (older copies shift to `.2`, … up to
/// `keep`) and truncated. Lines written between the copy and the truncation can be lost; that is
/// the price of never putting a pipe between the instance and edasd.
///
/// Links are never followed: an instance that shares edasd's user (edasd not root) can write its
/// `logs/`, and a `stdout.log` it made a link to edasd's database must neither be copied where
/// the instance reads it nor truncated; a link planted at `file.1` must not be written through.
/// Anything but a regular file is left alone.
pub fn rotate_if_large(file: &Path, max_bytes: u64, keep: u32) -> std::io::Result<bool> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let no_follow = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;
    let Ok(source) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(no_follow)
        .open(file)
    else {
        return Ok(false);
    };
    let meta = source.metadata()?;
    if !meta.is_file() || meta.len() < max_bytes || keep == 0 {
        return Ok(false);
    }
    let numbered = |n: u32| -> PathBuf {
        let mut name = file.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    let _ = std::fs::remove_file(numbered(keep));
    for n in (1..keep).rev() {
        let _ = std::fs::rename(numbered(n), numbered(n + 1));
    }
    let first = numbered(1);
    let _ = std::fs::remove_file(&first);
    let mut copy = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777)
        .custom_flags(no_follow)
        .open(&first)?;
    std::io::copy(&mut &source, &mut copy)?;
    source.set_len(0)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_follows_no_link() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("edasd.db");
        std::fs::write(&secret, "SECRET".repeat(100)).unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        // The log a link to edasd's database: neither copied nor truncated.
        let log = logs.join("stdout.log");
        std::os::unix::fs::symlink(&secret, &log).unwrap();
        assert!(!rotate_if_large(&log, 10, 3).unwrap());
        assert_eq!(std::fs::metadata(&secret).unwrap().len(), 600);
        assert!(!logs.join("stdout.log.1").exists());
        // A link planted at `.1`: replaced, not written through.
        std::fs::remove_file(&log).unwrap();
        std::fs::write(&log, "x".repeat(100)).unwrap();
        std::os::unix::fs::symlink(&secret, logs.join("stdout.log.1")).unwrap();
        assert!(rotate_if_large(&log, 10, 1).unwrap());
        assert_eq!(
            std::fs::read_to_string(&secret).unwrap(),
            "SECRET".repeat(100)
        );
        assert_eq!(
            std::fs::read_to_string(logs.join("stdout.log.1")).unwrap(),
            "x".repeat(100)
        );
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
    }

    #[test]
    fn reads_the_start_time_of_this_process_and_nothing_for_a_missing_one() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(start_time(me).is_some_and(|t| t > 0));
        assert_eq!(start_time(i32::MAX), None);
    }

    #[test]
    fn strays_are_found_by_working_directory_or_home() {
        use std::os::unix::process::CommandExt as _;
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let mut by_cwd = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(&work)
            .process_group(0)
            .spawn()
            .unwrap();
        let mut by_home = std::process::Command::new("sleep")
            .arg("30")
            .env("HOME", &work)
            .process_group(0)
            .spawn()
            .unwrap();
        let expected = [by_cwd.id() as i32, by_home.id() as i32];
        // A just-spawned child's /proc entries (cwd, environ) can lag its spawn for a moment on
        // a loaded machine; the scan is for long-lived strays, so look again briefly.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut found = strays(&work);
        while !expected.iter().all(|p| found.contains(p)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            found = strays(&work);
        }
        for pid in expected {
            signal_group(pid, Signal::SIGKILL);
        }
        let _ = (by_cwd.wait(), by_home.wait());
        for pid in expected {
            assert!(found.contains(&pid), "{pid} not among {found:?}");
        }
        assert!(strays(&dir.path().join("elsewhere")).is_empty());
    }

    #[test]
    fn stat_fields_survive_a_command_with_parentheses() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1";
        assert_eq!(stat_fields(stat).unwrap()[..3], ["S", "1", "42"]);
    }

    #[test]
    fn rotation_keeps_the_configured_number_of_copies() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stdout.log");
        for round in 0..4 {
            std::fs::write(&log, format!("round {round} ").repeat(10)).unwrap();
            assert!(rotate_if_large(&log, 10, 2).unwrap());
            assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
        }
        let one = std::fs::read_to_string(dir.path().join("stdout.log.1")).unwrap();
        let two = std::fs::read_to_string(dir.path().join("stdout.log.2")).unwrap();
        assert!(one.starts_with("round 3"));
        assert!(two.starts_with("round 2"));
        assert!(!dir.path().join("stdout.log.3").exists());
        assert!(
            !rotate_if_large(&log, 10, 2).unwrap(),
            "an empty file is not rotated"
        );
    }
}
