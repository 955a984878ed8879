//! WAL checkpoints off the writer's path. SQLite's automatic checkpoint runs inside the commit
//! that crosses its threshold: on the one writer, it copies the WAL's pages into the database
//! and syncs both files while every queued write waits (a pause of several milliseconds every
//! ~40 deploys: most of the writer's tail latency). Here the group writer's connection reports
//! the WAL's size after each commit (a WAL hook) and, past [`CHECKPOINT_PAGES`], wakes a
//! thread of its own that runs a `PASSIVE` checkpoint through its own connection, concurrently
//! with the writes (SQLite allows one checkpointer beside the writer). The next write
//! transaction after a complete checkpoint restarts the WAL from its start, so it stays small.
//!
//! If that thread falls behind (writes faster than it copies, so a passive checkpoint never
//! catches up to the WAL's end), the writer checkpoints itself at [`BACKSTOP_PAGES`], as
//! SQLite would: the WAL stays bounded either way.

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rusqlite::Connection;

use crate::error::StoreError;

/// The WAL size (pages, 16 MiB) from which the checkpointer is woken: four times SQLite's
/// default, so a page that several checkpoints would each have copied is copied once.
pub(crate) const CHECKPOINT_PAGES: i32 = 4000;
/// What the writer copies itself to finish a checkpoint (so the WAL restarts).
pub(crate) const FINISH_PAGES: i64 = 512;
/// The WAL size (pages) at which the writer checkpoints itself (the checkpointer is behind).
pub(crate) const BACKSTOP_PAGES: i32 = 4 * CHECKPOINT_PAGES;

thread_local! {
    /// The WAL's size in pages after the last commit on this thread's hooked connection.
    static WAL_PAGES: Cell<i32> = const { Cell::new(0) };
    /// [`WAL_PAGES`] when [`Checkpointer::committed`] last counted it.
    static COUNTED_PAGES: Cell<i32> = const { Cell::new(0) };
}

/// The WAL hook of the group writer's connection (replaces SQLite's automatic checkpoint on
/// it): remembers the WAL's size for [`Checkpointer::committed`], on the committing thread.
fn record_wal_pages(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

struct Shared {
    /// `true` while a checkpoint is asked for and not yet run.
    wanted: AtomicBool,
    /// Guards the thread's sleep; `true` once the store closes.
    stop: Mutex<bool>,
    wake: Condvar,
    /// Checkpoints run by the thread and by the writer (what tests and benchmarks count).
    runs: AtomicU64,
    /// The writer's short ones that finish the thread's (so the WAL restarts).
    finishes: AtomicU64,
    backstops: AtomicU64,
    /// WAL frames (pages) the hooked connection's commits wrote: the write path's volume.
    pages_written: AtomicU64,
}

/// The checkpoint thread of one SQLite database, driven by the group writer's commits.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Hooks `writer` (the group writer's connection: its automatic checkpoint is off from
    /// now on) and starts the thread, with a connection of its own to `path`.
    pub(crate) fn start(path: &Path, writer: &Connection) -> Result<Checkpointer, StoreError> {
        let db = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A checkpoint syncs the WAL before it copies and the database after (`NORMAL`).
        db.execute_batch("PRAGMA synchronous = NORMAL;")?;
        let shared = Arc::new(Shared {
            wanted: AtomicBool::new(false),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            runs: AtomicU64::new(0),
            finishes: AtomicU64::new(0),
            backstops: AtomicU64::new(0),
            pages_written: AtomicU64::new(0),
        });
        // SQLite syncs the database only after a checkpoint that reached the WAL's end; the
        // thread syncs once it is within reach of it, so the pages it copied are on disk
        // before the writer's finishing checkpoint (whose sync would otherwise write them all,
        // in the writer's time).
        let file = std::fs::File::open(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("edas-store-ckpt".into())
                .spawn(move || run(&db, &file, &shared))
                .map_err(|source| StoreError::Io {
                    path: path.to_path_buf(),
                    source,
                })?
        };
        writer.wal_hook(Some(record_wal_pages));
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// After a commit on the hooked connection (on its thread, between groups): past
    /// [`CHECKPOINT_PAGES`], finishes the thread's checkpoint when little is left to copy, or
    /// wakes the thread; past [`BACKSTOP_PAGES`], checkpoints on `writer` itself.
    pub(crate) fn committed(&self, writer: &Connection) {
        let pages = WAL_PAGES.with(Cell::get);
        // A WAL smaller than at the last count restarted: all of it is this commit's.
        let counted = COUNTED_PAGES.with(|c| c.replace(pages));
        let written = if pages >= counted {
            pages - counted
        } else {
            pages
        };
        self.shared
            .pages_written
            .fetch_add(u64::try_from(written).unwrap_or(0), Ordering::Relaxed);
        if pages < CHECKPOINT_PAGES || self.shared.wanted.load(Ordering::Acquire) {
            return;
        }
        let finish = pages >= BACKSTOP_PAGES
            || match progress(writer) {
                Ok((log, copied)) => log - copied <= FINISH_PAGES,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the WAL's checkpoint progress failed");
                    false
                }
            };
        if finish {
            WAL_PAGES.with(|p| p.set(0));
            COUNTED_PAGES.with(|c| c.set(0));
            let counter = if pages >= BACKSTOP_PAGES {
                &self.shared.backstops
            } else {
                &self.shared.finishes
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = checkpoint(writer) {
                tracing::warn!(error = %e, pages, "the writer's own WAL checkpoint failed");
            }
        } else if !self.shared.wanted.swap(true, Ordering::AcqRel) {
            let _guard = self.shared.stop.lock().unwrap_or_else(|p| p.into_inner());
            self.shared.wake.notify_one();
        }
    }

    /// Checkpoints run so far: by the thread, by the writer to finish one, and by the writer
    /// at the backstop.
    #[cfg(test)]
    pub(crate) fn runs(&self) -> (u64, u64, u64) {
        self.counts().get()
    }

    /// A handle on [`Checkpointer::runs`] that outlives the writer's ownership of this.
    pub(crate) fn counts(&self) -> CheckpointCounts {
        CheckpointCounts(self.shared.clone())
    }
}

/// Checkpoints run: by the thread, by the writer to finish one, and by the writer at the
/// backstop (what `/metrics` shows).
#[derive(Clone)]
pub(crate) struct CheckpointCounts(Arc<Shared>);

impl CheckpointCounts {
    pub(crate) fn get(&self) -> (u64, u64, u64) {
        (
            self.0.runs.load(Ordering::Relaxed),
            self.0.finishes.load(Ordering::Relaxed),
            self.0.backstops.load(Ordering::Relaxed),
        )
    }

    /// WAL pages written by the group writer's commits so far.
    pub(crate) fn pages_written(&self) -> u64 {
        self.0.pages_written.load(Ordering::Relaxed)
    }
}

impl Drop for Checkpointer {
    /// Stops the thread and closes its connection before the store counts as closed.
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(db: &Connection, file: &std::fs::File, shared: &Shared) {
    loop {
        {
            let mut stop = shared.stop.lock().unwrap_or_else(|p| p.into_inner());
            while !*stop && !shared.wanted.load(Ordering::Acquire) {
                stop = shared.wake.wait(stop).unwrap_or_else(|p| p.into_inner());
            }
            if *stop {
                return;
            }
        }
        // Copy until within reach of the WAL's end (the writer finishes from there), as long
        // as each round gets further (a reader may hold the rest back), then sync once.
        let mut before = -1;
        loop {
            match checkpoint(db) {
                Ok((log, copied)) => {
                    tracing::debug!(log, copied, "WAL checkpoint");
                    if log - copied > FINISH_PAGES && copied > before {
                        before = copied;
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
            }
            break;
        }
        if let Err(e) = file.sync_data() {
            tracing::warn!(error = %e, "syncing the database after a checkpoint failed");
        }
        shared.runs.fetch_add(1, Ordering::Relaxed);
        shared.wanted.store(false, Ordering::Release);
    }
}

/// The WAL's frames and how many of them are in the database, without copying any (`NOOP`).
fn progress(db: &Connection) -> rusqlite::Result<(i64, i64)> {
    db.query_row("PRAGMA wal_checkpoint(NOOP)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}

/// A `PASSIVE` checkpoint: copies what it can without waiting for the writer or readers;
/// answers the WAL's frames and how many of them are now in the database.
fn checkpoint(db: &Connection) -> rusqlite::Result<(i64, i64)> {
    db.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(dir: &Path) -> (std::path::PathBuf, Connection) {
        let path = dir.join("db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);",
            )
            .unwrap();
        (path, writer)
    }

    fn wal_pages(db: &Connection) -> i64 {
        progress(db).unwrap().0
    }

    /// One transaction of `pages` rows of a page each (ids from `first`).
    fn insert(writer: &Connection, first: i64, pages: i64) {
        writer.execute_batch("BEGIN IMMEDIATE").unwrap();
        for id in first..first + pages {
            writer
                .execute("INSERT INTO t (id, v) VALUES (?1, zeroblob(4000))", [id])
                .unwrap();
        }
        writer.execute_batch("COMMIT").unwrap();
    }

    /// [`insert`], then what the group writer does after a commit.
    fn commit(writer: &Connection, checkpointer: &Checkpointer, first: i64, pages: i64) {
        insert(writer, first, pages);
        checkpointer.committed(writer);
    }

    #[test]
    fn the_thread_checkpoints_and_the_wal_restarts_instead_of_growing() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = database(dir.path());
        let checkpointer = Checkpointer::start(&path, &writer).unwrap();
        // 160 transactions of ~100 pages each: 16,000 pages written, four times the threshold.
        for i in 0..160 {
            commit(&writer, &checkpointer, i * 100, 100);
            // Let the thread copy (it runs beside the writer; a real writer does not wait, but
            // a thread slower than this writer is the next test's case, not this one's: on a
            // slow machine a fixed pause was not enough and the backstop ran).
            let asked = std::time::Instant::now();
            while checkpointer.shared.wanted.load(Ordering::Acquire) {
                assert!(asked.elapsed().as_secs() < 30, "the thread never ran");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        let (runs, _finishes, backstops) = checkpointer.runs();
        assert!(runs >= 1, "the checkpointer never ran");
        assert_eq!(backstops, 0);
        // Every commit's pages are counted, across the WAL's restarts: a page per row, and
        // the table's interior pages (a commit of one page-sized row counted as 0 would not
        // reach this).
        let written = checkpointer.counts().pages_written();
        assert!(
            (16_000..17_000).contains(&written),
            "{written} WAL pages counted for 16,000 rows"
        );
        // Without checkpoints the WAL would hold every page written (over 4,000); it restarts
        // after each complete checkpoint, so it holds about a threshold's worth at most.
        let pages = wal_pages(&writer);
        assert!(
            pages < 2 * i64::from(CHECKPOINT_PAGES),
            "the WAL holds {pages} pages"
        );
        drop(checkpointer);
        // The hook replaced SQLite's own automatic checkpoint on the writer.
        let count: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 16_000);
    }

    #[test]
    fn a_writer_past_the_backstop_checkpoints_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = database(dir.path());
        let checkpointer = Checkpointer::start(&path, &writer).unwrap();
        // One transaction past the backstop (the thread may run too; the writer must not wait).
        commit(&writer, &checkpointer, 0, i64::from(BACKSTOP_PAGES) + 100);
        assert_eq!(checkpointer.runs().2, 1);
        let (log, copied) = checkpoint(&writer).unwrap();
        assert_eq!(
            log, copied,
            "everything is in the database after the backstop"
        );
    }

    /// A writer committing every millisecond: the WAL keeps restarting instead of growing to
    /// the backstop, whether the thread reaches its end alone (as on a fast disk) or the writer
    /// finishes what the thread leaves (in edasd's benchmark, where 80–141 backstops showed
    /// that the thread alone did not). The finishing path itself is the next test's.
    #[test]
    fn a_busy_writer_keeps_the_wal_restarting() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = database(dir.path());
        let checkpointer = Checkpointer::start(&path, &writer).unwrap();
        // 4,000 commits of ~5 pages each, 1 ms apart: 20,000 pages, past the backstop if the
        // WAL never restarted. (At 40 pages a millisecond this machine kind's checkpoint
        // thread fell behind, and at 20 under the whole suite's load: the rate is the test's
        // margin for a thread the suite keeps off the CPU, the WAL reaching the backstop
        // after 12,000 pages without a restart.)
        let mut largest = 0;
        for i in 0..4000 {
            commit(&writer, &checkpointer, i * 5, 5);
            largest = largest.max(WAL_PAGES.with(Cell::get));
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let (runs, finishes, backstops) = checkpointer.runs();
        assert!(runs + finishes >= 1, "no checkpoint ran");
        assert_eq!(
            backstops, 0,
            "the WAL grew to the backstop ({largest} pages)"
        );
    }

    /// The thread's checkpoint left a little of the WAL to copy (the writer appended while it
    /// copied): the writer's next commit finishes it, without waking the thread, and the WAL
    /// restarts at the commit after. Set up without timing: a reader keeps the WAL from
    /// restarting while a checkpoint on another connection copies and the writer appends.
    #[test]
    fn the_writer_finishes_a_checkpoint_with_little_left_and_the_wal_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = database(dir.path());
        let checkpointer = Checkpointer::start(&path, &writer).unwrap();
        let fill = i64::from(CHECKPOINT_PAGES) + 100;
        // Past the threshold, the thread not told (as if it had been, and were copying).
        insert(&writer, 0, fill);
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        // "The thread's" checkpoint copies everything there is so far...
        let other = Connection::open(&path).unwrap();
        let (log, copied) = checkpoint(&other).unwrap();
        assert_eq!(log, copied);
        // ...and the writer appends meanwhile (the reader keeps the WAL from restarting).
        insert(&writer, fill, 100);
        reader.execute_batch("COMMIT").unwrap();
        let (log, copied) = progress(&writer).unwrap();
        assert!(
            log - copied <= FINISH_PAGES,
            "{log} frames, {copied} copied"
        );
        checkpointer.committed(&writer);
        assert_eq!(checkpointer.runs(), (0, 1, 0), "the writer finished it");
        let (log, copied) = progress(&writer).unwrap();
        assert_eq!(log, copied, "everything is in the database");
        // The next commit restarts the WAL from its start.
        commit(&writer, &checkpointer, fill + 100, 10);
        assert!(wal_pages(&writer) < 100, "the WAL restarted");
    }
}
