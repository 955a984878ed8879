//! Group commit for SQLite: commits write the WAL without waiting for the disk
//! (`synchronous=NORMAL`), and one syncer thread makes them durable together with one
//! `fdatasync` of the WAL file; every writer is answered only after a sync that started after
//! its commit returned.
//!
//! Why it is safe: a WAL commit has written its frames (commit frame included) to the file
//! before `COMMIT` returns; syncing the file then makes exactly those frames durable, and SQLite
//! replays every intact committed frame at recovery. Checkpoints sync the WAL and the database
//! themselves (SQLite's own rule for `NORMAL`). A process crash loses nothing either way (the
//! page cache keeps the frames); what the sync buys is surviving power loss, as `FULL` did.
//!
//! Why it is faster: the single writer connection is no longer held across an fsync (the next
//! transaction runs while the disk syncs), and the commits that arrive during one sync share
//! the next one instead of queueing an fsync each.
//!
//! What readers see: a reader may see a commit a fraction of a millisecond before it is
//! durable (as with PostgreSQL's `synchronous_commit=off` for readers, but never for writers:
//! a writer that read it and committed is answered after a sync that covers both, the WAL
//! being one file synced in order).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::error::StoreError;

/// What runs once the commits before it are durable (or their sync failed): called on the
/// syncer's thread, so it must be short (answering a channel).
type OnDurable = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

struct Waiting {
    /// The last ticket handed out (a ticket is taken after the commit it covers returned).
    requested: u64,
    /// The tickets not yet covered by a sync, in ticket order.
    callbacks: Vec<(u64, OnDurable)>,
    /// `true` once the store is gone (the syncer finishes what is waiting, then stops).
    stop: bool,
}

struct Shared {
    wal: PathBuf,
    /// Tickets and the syncer's sleep: a ticket and its callback are taken under one lock, so a
    /// sync that read the last ticket answers every callback up to it.
    waiting: Mutex<Waiting>,
    wake: Condvar,
    /// How many syncs ran (what the benchmarks and tests count).
    syncs: AtomicU64,
    /// The last ticket a finished sync covered (what [`WalSync::idle`] waits on).
    handled: tokio::sync::watch::Sender<u64>,
}

/// The syncer of one SQLite database (its thread stops when this is dropped).
pub(crate) struct WalSync {
    shared: Arc<Shared>,
}

impl WalSync {
    /// Starts the syncer of the database file `database` (its WAL is `<database>-wal`).
    pub(crate) fn start(database: &std::path::Path) -> Result<WalSync, StoreError> {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        let shared = Arc::new(Shared {
            wal: PathBuf::from(wal),
            waiting: Mutex::new(Waiting {
                requested: 0,
                callbacks: Vec::new(),
                stop: false,
            }),
            wake: Condvar::new(),
            syncs: AtomicU64::new(0),
            handled: tokio::sync::watch::Sender::new(0),
        });
        let thread = shared.clone();
        std::thread::Builder::new()
            .name("edas-store-sync".into())
            .spawn(move || run(&thread))
            .map_err(|source| StoreError::Io {
                path: shared.wal.clone(),
                source,
            })?;
        Ok(WalSync { shared })
    }

    /// Waits until every commit that returned before this call is durable.
    pub(crate) async fn durable(&self) -> Result<(), StoreError> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        self.after_durable(move |result| {
            let _ = done.send(result);
        });
        outcome
            .await
            .unwrap_or_else(|_| Err(sync_failed(&self.shared.wal, "the syncer stopped")))
    }

    /// Calls `then` (on the syncer's thread) once every commit that returned before this call
    /// is durable, without waiting here: the group writer goes on with its next group while
    /// the disk syncs the last one.
    pub(crate) fn after_durable(&self, then: impl FnOnce(Result<(), StoreError>) + Send + 'static) {
        let mut waiting = lock(&self.shared.waiting);
        waiting.requested += 1;
        let ticket = waiting.requested;
        waiting.callbacks.push((ticket, Box::new(then)));
        self.shared.wake.notify_one();
    }

    /// Whether a ticket is waiting for a sync (one runs, or is about to).
    pub(crate) fn busy(&self) -> bool {
        let requested = lock(&self.shared.waiting).requested;
        *self.shared.handled.borrow() < requested
    }

    /// Resolves once every ticket handed out before this call is answered (at once when none
    /// waits).
    pub(crate) async fn idle(&self) {
        let requested = lock(&self.shared.waiting).requested;
        let mut handled = self.shared.handled.subscribe();
        // The sender lives in `shared`, which this holds: the wait ends only by the syncer.
        let _ = handled.wait_for(|h| *h >= requested).await;
    }

    /// How many `fdatasync` calls the syncer made so far.
    pub(crate) fn syncs(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }
}

impl Drop for WalSync {
    fn drop(&mut self) {
        lock(&self.shared.waiting).stop = true;
        self.shared.wake.notify_one();
    }
}

fn lock(waiting: &Mutex<Waiting>) -> std::sync::MutexGuard<'_, Waiting> {
    waiting.lock().unwrap_or_else(|p| p.into_inner())
}

fn sync_failed(wal: &std::path::Path, reason: &str) -> StoreError {
    StoreError::Io {
        path: wal.to_path_buf(),
        source: std::io::Error::other(format!("committed, but making it durable failed: {reason}")),
    }
}

/// The syncer: sleeps until a ticket is waiting, then syncs once for every ticket handed out
/// before the sync started and calls their callbacks; stops once the store is gone and nothing
/// waits.
fn run(shared: &Shared) {
    let mut handled = 0u64;
    loop {
        let target = {
            let mut waiting = lock(&shared.waiting);
            while !waiting.stop && waiting.requested == handled {
                waiting = shared.wake.wait(waiting).unwrap_or_else(|p| p.into_inner());
            }
            if waiting.requested == handled {
                return;
            }
            waiting.requested
        };
        let outcome = sync_wal(&shared.wal);
        shared.syncs.fetch_add(1, Ordering::Relaxed);
        handled = target;
        if let Err(e) = &outcome {
            tracing::error!(message = "Syncing the SQLite WAL failed.", wal = %shared.wal.display(), error = %e);
        }
        let covered: Vec<(u64, OnDurable)> = {
            let mut waiting = lock(&shared.waiting);
            let split = waiting.callbacks.partition_point(|(t, _)| *t <= target);
            waiting.callbacks.drain(..split).collect()
        };
        for (_, then) in covered {
            then(match &outcome {
                Ok(()) => Ok(()),
                Err(e) => Err(sync_failed(&shared.wal, &e.to_string())),
            });
        }
        shared.handled.send_replace(target);
    }
}

/// `fdatasync` of the WAL file, opened afresh (SQLite deletes and recreates it when the last
/// connection closes). No WAL file: everything was checkpointed into the database, which the
/// checkpoint synced.
fn sync_wal(wal: &std::path::Path) -> std::io::Result<()> {
    match std::fs::File::open(wal) {
        Ok(file) => file.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_waiters_share_syncs_and_each_waits_for_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::write(dir.path().join("db-wal"), b"frames").unwrap();
        let sync = Arc::new(WalSync::start(&db).unwrap());
        let waiters: Vec<_> = (0..64)
            .map(|_| {
                let sync = sync.clone();
                tokio::spawn(async move { sync.durable().await })
            })
            .collect();
        for w in waiters {
            w.await.unwrap().unwrap();
        }
        let syncs = sync.syncs();
        assert!((1..=64).contains(&syncs), "{syncs} syncs");
        // A later waiter gets a sync of its own (one that started after it asked).
        sync.durable().await.unwrap();
        assert!(sync.syncs() > syncs);
    }

    #[tokio::test]
    async fn a_failed_sync_is_an_error_naming_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the WAL should be: opening works, syncing a directory works on
        // Linux, so use a path whose parent is a file instead.
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let sync = WalSync::start(&file.join("db")).unwrap();
        let error = sync.durable().await.unwrap_err().to_string();
        assert!(error.contains("db-wal"), "{error}");
    }

    #[tokio::test]
    async fn a_missing_wal_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let sync = WalSync::start(&dir.path().join("db")).unwrap();
        sync.durable().await.unwrap();
    }
}
