//! An instance's output, read back from its log files ([`Runtime::logs`](edas_runtime::Runtime::logs)).
//!
//! Each run of an instance writes `logs/stdout.log` and `logs/stderr.log` (rotated by size into
//! `.1` … `.N`, `.1` the newest). When a run ends and the instance is restarted (and whenever a
//! process starts over files left by another run), [`retire_run`] moves the run's files into
//! `logs/previous/` (replacing the run before that), which is what `previous` reads. A stopped instance's `logs/` (with its `previous/`) is kept under
//! `<data_dir>/logs/<app_id>/<instance>/` and stays readable by the instance's name.
//!
//! The answer holds stdout's lines, then stderr's: they are separate files, so their order
//! relative to each other is not known. `tail_lines` applies to each. Lines carry no time, so
//! `since_seconds` selects whole files: a rotated file last written before the cutoff is left
//! out, the current file always counts. `follow` then sends what either file gains, as it is
//! written (looked at every [`FOLLOW_INTERVAL`]), until the run ends: its files are retired by a
//! restart or kept away by a stop.

use std::fs::File;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use edas_runtime::{LogChunks, LogError, LogRequest, RuntimeError, log_channel};
use tokio::sync::mpsc::Sender;

use crate::Inner;

/// The two files of a run, in the order the answer holds them.
const STREAMS: [&str; 2] = ["stdout.log", "stderr.log"];

/// How often a followed run's files are looked at for what they gained.
pub(crate) const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// The largest chunk sent at once.
const CHUNK: usize = 64 * 1024;

/// Where an instance's logs are.
pub(crate) struct Source {
    /// The directory edasd trusts (`instances_dir`, or `data_dir` for kept logs): every
    /// component below it is opened without following a symbolic link (see [`open_beneath`]).
    root: PathBuf,
    /// The `logs/` directory.
    logs: PathBuf,
    /// Whether the instance exists (a kept directory of a stopped one has nothing to follow).
    live: bool,
    /// The instance, for messages.
    instance: String,
}

impl Inner {
    /// The logs of the application's instance `instance`: a running one's, else the kept logs
    /// of a stopped one.
    pub(crate) fn log_dir(&self, app_id: &str, instance: &str) -> Result<Source, LogError> {
        let found = self
            .revisions()
            .iter()
            .filter(|((app, _), _)| app == app_id)
            .flat_map(|(_, entry)| entry.instances.iter())
            .find(|i| i.name == instance)
            .map(|i| i.dir.join("logs"));
        if let Some(logs) = found {
            return Ok(Source {
                root: self.config.instances_dir.clone(),
                logs,
                live: true,
                instance: instance.to_owned(),
            });
        }
        if crate::state::is_safe_segment(app_id) && crate::state::is_safe_segment(instance) {
            let kept = self.stopped_logs_dir(app_id).join(instance);
            if kept.is_dir() {
                return Ok(Source {
                    root: self.config.data_dir.clone(),
                    logs: kept,
                    live: false,
                    instance: instance.to_owned(),
                });
            }
        }
        Err(LogError::NoInstance(format!(
            "the application has no instance `{instance}` on this machine (running, or stopped with its logs kept)"
        )))
    }
}

/// Moves the files of the run before (if any) into `logs/previous/`, replacing what was there:
/// called by every start of an instance's process, before it opens its files.
pub(crate) fn retire_run(logs: &Path) -> Result<(), String> {
    let files: Vec<PathBuf> = std::fs::read_dir(logs)
        .map_err(|e| format!("cannot list `{}`: {e}", logs.display()))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| segment_of(p).is_some())
        .collect();
    if files.is_empty() {
        return Ok(());
    }
    let previous = logs.join("previous");
    let _ = std::fs::remove_dir_all(&previous);
    crate::make_dir(&previous, 0o700)
        .map_err(|e| format!("cannot create `{}`: {e}", previous.display()))?;
    for file in files {
        if let Some(name) = file.file_name() {
            std::fs::rename(&file, previous.join(name))
                .map_err(|e| format!("cannot move `{}`: {e}", file.display()))?;
        }
    }
    Ok(())
}

/// Opens the log file `path` (below `root`) for reading without following a symbolic link in
/// any component below `root`, and only if it is a regular file. An instance that shares
/// edasd's user (edasd not root) can write its own `logs/`: a link it planted there (to
/// `store.key`, or to another application's kept logs) must not make edasd read what it points
/// to, nor a FIFO hold a reader (`O_NONBLOCK`).
fn open_beneath(root: &Path, path: &Path) -> std::io::Result<File> {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::Mode;
    use std::path::Component;
    let refuse = |why: &str| {
        std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("`{}`: {why}", path.display()),
        )
    };
    let rel = path
        .strip_prefix(root)
        .map_err(|_| refuse("not below the runtime's directory"))?;
    let parts: Vec<&std::ffi::OsStr> = rel
        .components()
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err(refuse("not a plain path")),
        })
        .collect::<Result<_, _>>()?;
    let Some((last, dirs)) = parts.split_last() else {
        return Err(refuse("not a file"));
    };
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut fd = nix::fcntl::open(root, dir_flags, Mode::empty())?;
    for name in dirs {
        fd = openat(&fd, *name, dir_flags | OFlag::O_NOFOLLOW, Mode::empty())?;
    }
    let file_flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let file = File::from(openat(&fd, *last, file_flags, Mode::empty())?);
    if !file.metadata()?.is_file() {
        return Err(refuse("not a regular file"));
    }
    Ok(file)
}

/// `(stream, n)` of a log file name: `stdout.log` is `(0, 0)`, `stderr.log.2` is `(1, 2)`.
fn segment_of(path: &Path) -> Option<(usize, u32)> {
    let name = path.file_name()?.to_str()?;
    STREAMS.iter().enumerate().find_map(|(i, stream)| {
        let rest = name.strip_prefix(stream)?;
        if rest.is_empty() {
            Some((i, 0))
        } else {
            rest.strip_prefix('.')?.parse().ok().map(|n| (i, n))
        }
    })
}

/// Opens the output `request` asks for and starts sending it.
pub(crate) async fn open(source: Source, request: &LogRequest) -> Result<LogChunks, LogError> {
    let dir = if request.previous {
        source.logs.join("previous")
    } else {
        source.logs.clone()
    };
    let instance = source.instance.clone();
    let root = source.root.clone();
    let request = request.clone();
    let follow = request.follow && !request.previous && source.live;
    let opened = tokio::task::spawn_blocking(move || {
        if request.previous && !dir.is_dir() {
            return Err(LogError::NoPrevious(format!(
                "instance `{instance}` has not restarted: there is no previous run to read"
            )));
        }
        Ok((Run::open(&root, &dir, &request), dir))
    })
    .await
    .map_err(|e| RuntimeError::Unavailable(format!("reading the logs failed: {e}")))??;
    let (run, dir) = opened;
    let (tx, rx) = log_channel();
    tokio::spawn(async move {
        let run = match tokio::task::spawn_blocking({
            let tx = tx.clone();
            move || run.send_written(&tx).map(|()| run)
        })
        .await
        {
            Ok(Some(run)) => run,
            _ => return,
        };
        if follow {
            follow_run(run, source.root, dir, tx).await;
        }
    });
    Ok(rx)
}

/// One file of a run: open, and how much of it was read.
struct Segment {
    file: File,
    len: u64,
}

/// The files of one run as they were when opened.
struct Run {
    /// Per stream, its segments oldest first (the current file last, if it exists).
    streams: Vec<Vec<Segment>>,
    /// Per stream, the current file and the offset read so far (for following).
    current: Vec<Option<(File, u64)>>,
    tail: Option<u64>,
    error: Option<String>,
}

impl Run {
    fn open(root: &Path, dir: &Path, request: &LogRequest) -> Run {
        let cutoff = request
            .since_seconds
            .and_then(|s| SystemTime::now().checked_sub(Duration::from_secs(s)));
        let mut streams: Vec<Vec<(u32, PathBuf)>> = vec![Vec::new(); STREAMS.len()];
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let path = e.path();
                if let Some((stream, n)) = segment_of(&path) {
                    streams[stream].push((n, path));
                }
            }
        }
        let mut error = None;
        let mut run = Run {
            streams: Vec::new(),
            current: Vec::new(),
            tail: request.tail_lines,
            error: None,
        };
        for mut paths in streams {
            // Oldest (highest number) first; the current file (0) last.
            paths.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
            let mut segments = Vec::new();
            let mut current = None;
            for (n, path) in paths {
                let opened = open_beneath(root, &path).and_then(|f| {
                    let meta = f.metadata()?;
                    Ok((f, meta))
                });
                let (file, meta) = match opened {
                    Ok(x) => x,
                    // Rotated away between listing and opening: nothing lost but that file.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        error.get_or_insert_with(|| format!("`{}`: {e}", path.display()));
                        continue;
                    }
                };
                let old = cutoff.is_some_and(|c| meta.modified().is_ok_and(|m| m < c));
                if n == 0 {
                    if let Ok(dup) = file.try_clone() {
                        current = Some((dup, meta.len()));
                    }
                } else if old {
                    continue;
                }
                segments.push(Segment {
                    file,
                    len: meta.len(),
                });
            }
            run.streams.push(segments);
            run.current.push(current);
        }
        run.error = error;
        run
    }

    /// Sends what each stream held when opened (its last `tail` lines); `false` when the
    /// reader went away or a file could not be read.
    fn send_written(&self, tx: &Sender<Result<Vec<u8>, RuntimeError>>) -> Option<()> {
        if let Some(e) = &self.error {
            let _ = tx.blocking_send(Err(RuntimeError::Unavailable(format!(
                "cannot read the log {e}"
            ))));
            return None;
        }
        for segments in &self.streams {
            let total: u64 = segments.iter().map(|s| s.len).sum();
            let start = match self.tail {
                Some(n) => tail_start(segments, total, n).ok()?,
                None => 0,
            };
            send_range(segments, start, total, tx)?;
        }
        Some(())
    }
}

/// Reads `[from, to)` of the segments taken as one file.
fn read_range(segments: &[Segment], from: u64, to: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(usize::try_from(to.saturating_sub(from)).unwrap_or(0));
    let mut base = 0u64;
    for s in segments {
        let (lo, hi) = (from.max(base), to.min(base + s.len));
        if lo < hi {
            let mut buf = vec![0; usize::try_from(hi - lo).unwrap_or(0)];
            let n = read_at_most(&s.file, &mut buf, lo - base)?;
            buf.truncate(n);
            out.extend_from_slice(&buf);
        }
        base += s.len;
    }
    Ok(out)
}

/// Fills `buf` from `offset` until it is full or the file ends.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Where the last `n` lines of the segments start (a last line without its newline counts).
fn tail_start(segments: &[Segment], total: u64, n: u64) -> std::io::Result<u64> {
    if n == 0 {
        return Ok(total);
    }
    let mut end = total;
    if total > 0 && read_range(segments, total - 1, total)? == b"\n" {
        end -= 1;
    }
    let mut newlines = 0;
    while end > 0 {
        let from = end.saturating_sub(CHUNK as u64);
        let block = read_range(segments, from, end)?;
        for (i, b) in block.iter().enumerate().rev() {
            if *b == b'\n' {
                newlines += 1;
                if newlines == n {
                    return Ok(from + i as u64 + 1);
                }
            }
        }
        end = from;
    }
    Ok(0)
}

fn send_range(
    segments: &[Segment],
    mut from: u64,
    to: u64,
    tx: &Sender<Result<Vec<u8>, RuntimeError>>,
) -> Option<()> {
    while from < to {
        let upto = to.min(from + CHUNK as u64);
        let chunk = match read_range(segments, from, upto) {
            Ok(c) if c.is_empty() => return Some(()),
            Ok(c) => c,
            Err(e) => {
                let _ = tx.blocking_send(Err(RuntimeError::Unavailable(format!(
                    "cannot read the log: {e}"
                ))));
                return None;
            }
        };
        from += chunk.len() as u64;
        tx.blocking_send(Ok(chunk)).ok()?;
    }
    Some(())
}

/// Sends what the run's current files gain until the run ends or the reader goes away.
async fn follow_run(
    run: Run,
    root: PathBuf,
    dir: PathBuf,
    tx: Sender<Result<Vec<u8>, RuntimeError>>,
) {
    let mut follower = Follower {
        current: run.current,
        root,
        dir,
    };
    loop {
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_INTERVAL) => {}
            () = tx.closed() => return,
        }
        let polled = tokio::task::spawn_blocking(move || {
            let (chunks, ended) = follower.poll();
            (follower, chunks, ended)
        })
        .await;
        let Ok((f, chunks, ended)) = polled else {
            return;
        };
        follower = f;
        for chunk in chunks {
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
        if ended {
            return;
        }
    }
}

struct Follower {
    current: Vec<Option<(File, u64)>>,
    root: PathBuf,
    dir: PathBuf,
}

impl Follower {
    /// What the files gained, and whether the run ended (its files are no longer in `dir`).
    fn poll(&mut self) -> (Vec<Result<Vec<u8>, RuntimeError>>, bool) {
        let mut out = Vec::new();
        let mut ended = true;
        for (i, slot) in self.current.iter_mut().enumerate() {
            let path = self.dir.join(STREAMS[i]);
            let on_disk = std::fs::metadata(&path).ok();
            if slot.is_none() {
                // Not written yet when the reader came: it starts with the run.
                *slot = open_beneath(&self.root, &path).ok().map(|f| (f, 0));
            }
            let Some((file, offset)) = slot else {
                continue;
            };
            let Ok(meta) = file.metadata() else {
                continue;
            };
            if meta.len() < *offset {
                // Rotated (copied away and truncated): what it holds now is new.
                *offset = 0;
            }
            while *offset < meta.len() {
                let want = usize::try_from((meta.len() - *offset).min(CHUNK as u64)).unwrap_or(0);
                let mut buf = vec![0; want];
                match read_at_most(file, &mut buf, *offset) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        *offset += n as u64;
                        out.push(Ok(buf));
                    }
                    Err(e) => {
                        out.push(Err(RuntimeError::Unavailable(format!(
                            "cannot read `{}`: {e}",
                            path.display()
                        ))));
                        return (out, true);
                    }
                }
            }
            let same = on_disk.is_some_and(|m| m.ino() == meta.ino() && m.dev() == meta.dev());
            ended &= !same;
        }
        let gone = !self.dir.is_dir();
        (
            out,
            gone || (ended && self.current.iter().any(Option::is_some)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(mut rx: LogChunks) -> String {
        let mut out = Vec::new();
        while let Some(chunk) = rx.recv().await {
            out.extend(chunk.unwrap());
        }
        String::from_utf8(out).unwrap()
    }

    fn source(logs: &Path, live: bool) -> Source {
        Source {
            root: logs.parent().unwrap().parent().unwrap().to_owned(),
            logs: logs.to_owned(),
            live,
            instance: "a-1".into(),
        }
    }

    #[tokio::test]
    async fn tail_reads_across_rotated_files_and_previous_reads_the_retired_run() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        std::fs::write(logs.join("stdout.log.2"), "one\ntwo\n").unwrap();
        std::fs::write(logs.join("stdout.log.1"), "three\nfour\n").unwrap();
        std::fs::write(logs.join("stdout.log"), "five\nsix").unwrap();
        std::fs::write(logs.join("stderr.log"), "oops\n").unwrap();
        let all = open(source(&logs, true), &LogRequest::default()).await;
        assert_eq!(
            collect(all.unwrap()).await,
            "one\ntwo\nthree\nfour\nfive\nsixoops\n"
        );
        let req = LogRequest {
            tail_lines: Some(3),
            ..Default::default()
        };
        let tail = open(source(&logs, true), &req).await.unwrap();
        assert_eq!(collect(tail).await, "four\nfive\nsixoops\n");
        let none = LogRequest {
            previous: true,
            ..Default::default()
        };
        assert!(matches!(
            open(source(&logs, true), &none).await,
            Err(LogError::NoPrevious(_))
        ));
        retire_run(&logs).unwrap();
        std::fs::write(logs.join("stdout.log"), "new run\n").unwrap();
        let prev = open(source(&logs, true), &none).await.unwrap();
        assert_eq!(
            collect(prev).await,
            "one\ntwo\nthree\nfour\nfive\nsixoops\n"
        );
        let cur = open(source(&logs, true), &LogRequest::default()).await;
        assert_eq!(collect(cur.unwrap()).await, "new run\n");
    }

    #[tokio::test]
    async fn follow_sends_what_is_written_and_ends_with_the_run() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        std::fs::write(logs.join("stdout.log"), "before\n").unwrap();
        let req = LogRequest {
            follow: true,
            ..Default::default()
        };
        let mut rx = open(source(&logs, true), &req).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().unwrap(), b"before\n");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(logs.join("stdout.log"))
            .unwrap();
        f.write_all(b"after\n").unwrap();
        std::fs::write(logs.join("stderr.log"), "err\n").unwrap();
        let mut got = Vec::new();
        while got.len() < "after\nerr\n".len() {
            got.extend(rx.recv().await.unwrap().unwrap());
        }
        let got = String::from_utf8(got).unwrap();
        assert!(got.contains("after\n") && got.contains("err\n"), "{got}");
        // A restart retires the run: the follower ends.
        retire_run(&logs).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(matches!(ended, Ok(None)), "{ended:?}");
    }

    /// An instance sharing edasd's user plants links in its `logs/` (or makes `logs` itself a
    /// link): edasd reads none of what they point to.
    #[tokio::test]
    async fn links_planted_in_the_logs_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("store.key");
        std::fs::write(&secret, "SECRET-KEY\n").unwrap();
        let inst = dir.path().join("app/1/a-1");
        let logs = inst.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        std::os::unix::fs::symlink(&secret, logs.join("stdout.log")).unwrap();
        std::fs::write(logs.join("stderr.log"), "err\n").unwrap();
        let got = open(source(&logs, true), &LogRequest::default()).await;
        let mut text = Vec::new();
        let mut rx = got.unwrap();
        while let Some(chunk) = rx.recv().await {
            if let Ok(c) = chunk {
                text.extend(c);
            }
        }
        let text = String::from_utf8_lossy(&text);
        assert!(!text.contains("SECRET"), "{text}");
        // Following picks the file up when it appears: not through a link either.
        std::fs::remove_file(logs.join("stdout.log")).unwrap();
        let req = LogRequest {
            follow: true,
            ..Default::default()
        };
        let mut rx = open(source(&logs, true), &req).await.unwrap();
        std::os::unix::fs::symlink(&secret, logs.join("stdout.log")).unwrap();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + FOLLOW_INTERVAL * 5;
        while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            seen.extend(chunk.unwrap_or_default());
        }
        assert!(!String::from_utf8_lossy(&seen).contains("SECRET"));
        // `logs` itself a link to another instance's (or another application's kept) logs.
        let other = dir.path().join("other/1/b-1/logs");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("stdout.log"), "OTHER-APP\n").unwrap();
        std::fs::remove_dir_all(&logs).unwrap();
        std::os::unix::fs::symlink(&other, &logs).unwrap();
        let mut text = Vec::new();
        if let Ok(mut rx) = open(source(&logs, true), &LogRequest::default()).await {
            while let Some(chunk) = rx.recv().await {
                text.extend(chunk.unwrap_or_default());
            }
        }
        assert!(!String::from_utf8_lossy(&text).contains("OTHER-APP"));
        // A FIFO does not hold the reader.
        let fifo_dir = dir.path().join("app/1/a-2/logs");
        std::fs::create_dir_all(&fifo_dir).unwrap();
        nix::unistd::mkfifo(&fifo_dir.join("stdout.log"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let opened = tokio::time::timeout(
            Duration::from_secs(5),
            open(source(&fifo_dir, true), &LogRequest::default()),
        )
        .await
        .expect("a FIFO held the reader");
        if let Ok(mut rx) = opened {
            let end = tokio::time::timeout(Duration::from_secs(5), async {
                while rx.recv().await.is_some() {}
            })
            .await;
            assert!(end.is_ok(), "a FIFO held the reader");
        }
    }

    #[test]
    fn segments_are_named_by_stream_and_number() {
        assert_eq!(segment_of(Path::new("x/stdout.log")), Some((0, 0)));
        assert_eq!(segment_of(Path::new("stderr.log.3")), Some((1, 3)));
        assert_eq!(segment_of(Path::new("stderr.log.x")), None);
        assert_eq!(segment_of(Path::new("state.json")), None);
    }
}
