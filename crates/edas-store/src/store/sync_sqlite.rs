//! The hot write transactions on SQLite (deploy, transition, transition-and-deploy, creation),
//! run **synchronously and in groups** on the writer's thread, through a connection of its own.
//!
//! sqlx runs each statement on its connection's worker thread: a transaction of N statements
//! costs ~2N thread hand-offs, and the write lock is held across all of them. These run
//! instead on the writer thread through a `rusqlite` connection of their own, **in groups**:
//! the writer takes every job queued since its last group (at most [`MAX_GROUP`]), holds the
//! sqlx writer pool's one connection (the process's write lock, so no other write interleaves
//! and neither waits on SQLite's busy handler), and runs them in one `BEGIN IMMEDIATE …
//! COMMIT`, each job inside its own savepoint: a job that fails is rolled back to its
//! savepoint and answered with its error, without touching its neighbours (each job is
//! a whole command with its own checks: the one-active index, the version compare-and-swap,
//! name uniqueness decide per job, in queue order), and answered once the group is committed
//! (so a refusal can name what a neighbour stored). Then one sync covers the group, and only
//! after it are the group's jobs answered (by the syncer's thread): "persisted before it acts"
//! holds per caller. A crash before the sync loses the group, none of whose callers was
//! answered. While a group syncs the writer goes on with the next one (the WAL is one file
//! synced in order, so a later group is never durable before an earlier one): its transaction
//! stays open and takes the jobs that arrive until that sync ends, then commits, so there is
//! one commit per sync and under load a commit covers many jobs (their shared pages, the ends
//! of the time-ordered indexes, the header, written to the WAL once); a lone job costs one
//! transaction and one sync, as before.
//!
//! The SQL is SQLite's own (`?N` placeholders); PostgreSQL writes the same rows with
//! `pg_hot`'s one statement per transaction (deploy, transition) and the macros of
//! `store/mod.rs` (creation), which these mirror row for row.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension as _, params};
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::checkpoints::Checkpointer;
use super::durability::WalSync;
use super::writer_thread::WriterThread;
use super::{SqliteBackend, encode_doc, events::AsOrder as _};
use crate::error::StoreError;
use crate::model::*;

/// The most jobs one group (one transaction, one sync) takes.
pub(crate) const MAX_GROUP: usize = 64;
/// The most groups written under one hold of the write lock (while jobs keep coming).
const HELD_GROUPS: usize = 8;

/// A job's value, or the payload of its panic (resumed in the caller).
type Answer = Result<Result<Box<dyn Any + Send>, StoreError>, Box<dyn Any + Send>>;

type Job = Box<dyn FnOnce(&Connection) -> Result<Box<dyn Any + Send>, StoreError> + Send>;

struct Queued {
    job: Job,
    answer: oneshot::Sender<Answer>,
}

enum Message {
    Write(Queued),
    /// `Store::close`: the connection is closed, then this is answered.
    Close(oneshot::Sender<()>),
}

/// The queue of the hot write transactions; the group writer (on the writer thread) owns the
/// connection and stops when this is dropped.
pub(crate) struct HotWriter {
    queue: mpsc::UnboundedSender<Message>,
    /// Where the group writer runs (dropped after the queue, so the writer sees it close).
    _thread: WriterThread,
    pub(crate) checkpoints: super::checkpoints::CheckpointCounts,
}

impl HotWriter {
    /// Opens the connection (after the migrations, with the writer's settings: WAL,
    /// `synchronous=NORMAL`, foreign keys, the busy timeout) and starts the group writer.
    pub(crate) fn start(
        path: &Path,
        busy_timeout: std::time::Duration,
        lock: SqlitePool,
        sync: Arc<WalSync>,
    ) -> Result<Self, StoreError> {
        let db = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        db.busy_timeout(busy_timeout)?;
        // The savepoints' sub-journals in memory, not in temporary files (a write per page a
        // job first touches). SQLite's default page cache (2 MiB): a 32 MiB one was tried and
        // moved no throughput, cost 30 MiB of RSS, and its page-cache upkeep grew in the
        // writer's profile (BENCHMARKS.md, seventh session).
        db.execute_batch(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;",
        )?;
        db.set_prepared_statement_cache_capacity(64);
        let checkpointer = Checkpointer::start(path, &db)?;
        let checkpoints = checkpointer.counts();
        let (queue, jobs) = mpsc::unbounded_channel();
        let thread = WriterThread::start()?;
        thread.spawn(write_groups(db, jobs, lock, sync, checkpointer));
        Ok(HotWriter {
            queue,
            _thread: thread,
            checkpoints,
        })
    }

    /// Closes the connection once the jobs queued before are answered; later writes fail.
    pub(crate) async fn close(&self) {
        let (closed, done) = oneshot::channel();
        if self.queue.send(Message::Close(closed)).is_ok() {
            let _ = done.await;
        }
    }
}

/// The group writer: one group at a time, each answered (by the syncer) after the sync that
/// covers it. A group's transaction stays open while the last group's sync runs and takes the
/// jobs that arrive meanwhile (they could not be durable before the next sync anyway): one
/// commit per sync, so the pages a commit always writes (the ends of the time-ordered indexes,
/// the header, the sequences) are written once for all of them.
async fn write_groups(
    db: Connection,
    mut jobs: mpsc::UnboundedReceiver<Message>,
    lock: SqlitePool,
    sync: Arc<WalSync>,
    checkpoints: Checkpointer,
) {
    let mut messages = Vec::with_capacity(MAX_GROUP);
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut close = None;
    while close.is_none() && jobs.recv_many(&mut messages, MAX_GROUP).await > 0 {
        sort_messages(&mut messages, &mut group, &mut close);
        if group.is_empty() {
            continue;
        }
        let write_lock = match lock.acquire().await {
            Ok(write_lock) => write_lock,
            Err(e) => {
                fail_all(std::mem::take(&mut group), &e.to_string());
                continue;
            }
        };
        // Groups back to back under one hold of the write lock while jobs are already queued,
        // at most HELD_GROUPS (a cold write waits for no more): taking the lock is a round trip
        // through sqlx's pool, about 0.12 ms a group at 8 clients against 0.7 ms of writing.
        for held in 1..=HELD_GROUPS {
            let mut open = match OpenGroup::begin(&db) {
                Ok(open) => open,
                Err(e) => {
                    fail_all(
                        std::mem::take(&mut group),
                        &format!("starting a write transaction: {e}"),
                    );
                    break;
                }
            };
            open.run(&db, std::mem::take(&mut group));
            // While the last group syncs, this one takes what arrives (up to MAX_GROUP jobs).
            while open.jobs < MAX_GROUP && close.is_none() && sync.busy() {
                tokio::select! {
                    biased;
                    _ = sync.idle() => break,
                    n = jobs.recv_many(&mut messages, MAX_GROUP - open.jobs) => {
                        if n == 0 {
                            break;
                        }
                        sort_messages(&mut messages, &mut group, &mut close);
                        open.run(&db, std::mem::take(&mut group));
                    }
                }
            }
            let done = open.commit(&db);
            if !done.is_empty() {
                // Answered by the syncer once durable; meanwhile the next group is written.
                sync.after_durable(move |outcome| match outcome {
                    Ok(()) => {
                        for (answer, value) in done {
                            let _ = answer.send(Ok(Ok(value)));
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        for (answer, _) in done {
                            let _ = answer.send(Ok(Err(group_failed(&message))));
                        }
                    }
                });
            }
            checkpoints.committed(&db);
            if held == HELD_GROUPS || close.is_some() {
                break;
            }
            while messages.len() < MAX_GROUP {
                match jobs.try_recv() {
                    Ok(message) => messages.push(message),
                    Err(_) => break,
                }
            }
            sort_messages(&mut messages, &mut group, &mut close);
            if group.is_empty() {
                break;
            }
        }
        drop(write_lock);
    }
    drop(checkpoints);
    drop(db);
    // Every group committed before the close is answered before the close is.
    let _ = sync.durable().await;
    if let Some(closed) = close {
        let _ = closed.send(());
    }
}

/// Moves the queued writes of `messages` into `group`, notes a close, and refuses the writes
/// queued after it.
fn sort_messages(
    messages: &mut Vec<Message>,
    group: &mut Vec<Queued>,
    close: &mut Option<oneshot::Sender<()>>,
) {
    for message in messages.drain(..) {
        match message {
            Message::Write(queued) if close.is_none() => group.push(queued),
            Message::Write(queued) => {
                let _ = queued
                    .answer
                    .send(Ok(Err(group_failed("the store was closed"))));
            }
            Message::Close(closed) => *close = close.take().or(Some(closed)),
        }
    }
}

/// What a whole group fails with (every caller gets its own copy).
fn group_failed(message: &str) -> StoreError {
    StoreError::Io {
        path: "edas-store-writer".into(),
        source: std::io::Error::other(message.to_owned()),
    }
}

fn fail_all(
    group: Vec<Queued>,
    message: &str,
) -> Vec<(oneshot::Sender<Answer>, Box<dyn Any + Send>)> {
    for queued in group {
        let _ = queued.answer.send(Ok(Err(group_failed(message))));
    }
    Vec::new()
}

/// One group's open transaction: its jobs run as they come, each in its own savepoint.
struct OpenGroup {
    /// Committed with the group: answered after the sync.
    done: Vec<(oneshot::Sender<Answer>, Box<dyn Any + Send>)>,
    /// Refused: answered once the group is committed (so a refusal can name what a neighbour
    /// stored, e.g. the order that won the one-active index).
    failed: Vec<(oneshot::Sender<Answer>, Answer)>,
    /// Jobs taken so far.
    jobs: usize,
}

impl OpenGroup {
    fn begin(db: &Connection) -> rusqlite::Result<OpenGroup> {
        execute(db, "BEGIN IMMEDIATE")?;
        Ok(OpenGroup {
            done: Vec::new(),
            failed: Vec::new(),
            jobs: 0,
        })
    }

    /// Runs each job in its own savepoint: a job that fails is rolled back to it and
    /// answered with its error, without touching its neighbours.
    fn run(&mut self, db: &Connection, group: Vec<Queued>) {
        for Queued { job, answer } in group {
            self.jobs += 1;
            if db.is_autocommit() {
                // An error SQLite answers with a rollback (a full disk, an I/O error) ended the
                // group's transaction: a savepoint now would be a transaction of its own.
                let refusal = group_failed("the write transaction was rolled back by an error");
                self.failed.push((answer, Ok(Err(refusal))));
                continue;
            }
            if let Err(e) = execute(db, "SAVEPOINT job") {
                self.failed.push((answer, Ok(Err(StoreError::Sqlite(e)))));
                continue;
            }
            let refusal: Answer = match std::panic::catch_unwind(AssertUnwindSafe(|| job(db))) {
                Ok(Ok(value)) => match execute(db, "RELEASE job") {
                    Ok(()) => {
                        self.done.push((answer, value));
                        continue;
                    }
                    Err(e) => Ok(Err(StoreError::Sqlite(e))),
                },
                Ok(Err(e)) => Ok(Err(e)),
                Err(panic) => Err(panic),
            };
            let _ = execute(db, "ROLLBACK TO job").and_then(|()| execute(db, "RELEASE job"));
            self.failed.push((answer, refusal));
        }
    }

    /// Commits; answers the refused jobs and returns the committed ones (to be answered after
    /// the sync). A failed commit fails them all.
    fn commit(self, db: &Connection) -> Vec<(oneshot::Sender<Answer>, Box<dyn Any + Send>)> {
        let committed = execute(db, "COMMIT");
        for (answer, refusal) in self.failed {
            let _ = answer.send(refusal);
        }
        if let Err(e) = committed {
            let _ = db.execute_batch("ROLLBACK");
            let message = format!("committing a write transaction: {e}");
            for (answer, _) in self.done {
                let _ = answer.send(Ok(Err(group_failed(&message))));
            }
            return Vec::new();
        }
        self.done
    }
}

/// A statement without parameters or rows, prepared once (the group's `BEGIN`, savepoints
/// and `COMMIT` run for every job; `execute_batch` would parse them every time).
fn execute(db: &Connection, sql: &str) -> rusqlite::Result<()> {
    db.prepare_cached(sql)?.execute([]).map(|_| ())
}

impl SqliteBackend {
    /// Runs `work` as one job of the group writer ([`HotWriter::run`]).
    pub(crate) async fn write_sync<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.hot.run(work).await
    }
}

impl HotWriter {
    /// Runs `work` as one job of the group writer (its own savepoint in a shared transaction)
    /// and answers once its commit is durable. An error (or a panic, resumed here) inside
    /// `work` rolls back its own writes only.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |db| work(db).map(|v| Box::new(v) as Box<dyn Any + Send>));
        self.queue
            .send(Message::Write(Queued { job, answer }))
            .map_err(|_| group_failed("the writer stopped"))?;
        match answered.await {
            Ok(Ok(Ok(value))) => Ok(*value
                .downcast::<T>()
                .expect("a job answers the type it was queued with")),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(group_failed("the writer stopped")),
        }
    }
}

/// A cached prepared statement on `c`, logged as sqlx logs its statements (target
/// `edas_store::sql`, field `db.statement`) so a test can count what a write runs.
pub(super) fn statement<'c>(
    c: &'c Connection,
    sql: &str,
) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    tracing::event!(target: "edas_store::sql", tracing::Level::DEBUG, db.statement = sql);
    c.prepare_cached(sql)
}

/// A unique violation (a taken id or name, or the one-active-order index).
fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

fn map_conflict(e: rusqlite::Error, entity: &'static str, id: &str, reason: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::conflict(entity, id, reason)
    } else {
        StoreError::Sqlite(e)
    }
}

/// As `super::racing_change_order`: SQLite names the indexed column of the one-active index.
fn racing_change_order(e: rusqlite::Error, app_id: &str, co_id: &str) -> StoreError {
    let one_active = matches!(&e, rusqlite::Error::SqliteFailure(_, Some(m))
        if m.contains("change_orders.app_id"));
    if is_unique_violation(&e) && one_active {
        super::active_conflict(app_id, "")
    } else {
        map_conflict(e, "change order", co_id, "id already taken")
    }
}

fn json_text(value: &serde_json::Value) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::InvalidInput {
        field: "audit detail",
        reason: e.to_string(),
    })
}

pub(crate) fn insert_audit(c: &Connection, entry: &AuditEntry, at: i64) -> Result<(), StoreError> {
    statement(
        c,
        "INSERT INTO audit (at, actor, action, resource, app_id, request_id, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        at,
        entry.actor,
        entry.action,
        entry.resource,
        entry.app_id,
        entry.request_id,
        json_text(&entry.detail)?,
    ])?;
    Ok(())
}

/// The stored state of change order `id` at `version` (the events' "before").
fn state_before(
    c: &Connection,
    id: &str,
    version: i64,
) -> Result<Option<edas_release::ChangeOrder>, StoreError> {
    let state: Option<String> = statement(
        c,
        "SELECT state FROM change_orders WHERE id = ?1 AND version = ?2",
    )?
    .query_row(params![id, version], |row| row.get(0))
    .optional()?;
    Ok(state.and_then(|s| serde_json::from_str(&s).ok()))
}

/// The release events from `before` (`None`: just created) to `after`, in one INSERT; the
/// `events_deliveries` trigger adds their pending deliveries.
fn record_events(
    c: &Connection,
    app_id: &str,
    change_order_id: &str,
    before: Option<&edas_release::ChangeOrder>,
    after: Option<&edas_release::ChangeOrder>,
    at: i64,
) -> Result<(), StoreError> {
    let Some(after) = after else { return Ok(()) };
    let events = edas_release::events(before, after);
    if events.is_empty() {
        return Ok(());
    }
    let rows = vec!["(?, ?, ?, ?, ?, ?)"; events.len()].join(", ");
    let mut insert = statement(
        c,
        &format!("INSERT INTO events (id, app_id, change_order_id, kind, at, data) VALUES {rows}"),
    )?;
    let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(events.len() * 6);
    for mut event in events {
        change_order_id.clone_into(&mut event.change_order_id);
        let data = serde_json::to_string(&event).map_err(|e| StoreError::InvalidInput {
            field: "release event",
            reason: e.to_string(),
        })?;
        values.extend([
            crate::new_record_id().into(),
            app_id.to_owned().into(),
            change_order_id.to_owned().into(),
            event.kind.as_str().to_owned().into(),
            at.into(),
            data.into(),
        ]);
    }
    insert.execute(rusqlite::params_from_iter(values))?;
    Ok(())
}

/// As `insert_change_order!`, with the created order's events.
#[allow(clippy::too_many_arguments)]
fn insert_change_order(
    c: &Connection,
    app_id: &str,
    change_order: &NewChangeOrder,
    revision: Option<i64>,
    creator: &str,
    at: i64,
    lease: Option<&Lease>,
) -> Result<(), StoreError> {
    let state = encode_doc(&change_order.state, "change order state")?;
    statement(
        c,
        "INSERT INTO change_orders (id, app_id, co_type, status, version, revision, state, \
         description, created_at, updated_at, creator, finished_at, lease_owner, \
         lease_expires_at) \
         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, ?8, ?8, ?9, NULL, ?10, ?11)",
    )?
    .execute(params![
        change_order.id,
        app_id,
        change_order.co_type,
        change_order.status.code(),
        revision,
        state.0.get(),
        change_order.description,
        at,
        creator,
        lease.map(|l| l.owner.as_str()),
        lease.map(|l| super::ms(l.expires_at)),
    ])
    .map_err(|e| racing_change_order(e, app_id, &change_order.id))?;
    let after = change_order.state.as_order();
    record_events(c, app_id, &change_order.id, None, after.as_deref(), at)
}

/// As `replace_service_ports!`.
fn replace_service_ports(c: &Connection, app_id: &str, ports: &[i64]) -> Result<(), StoreError> {
    statement(c, "DELETE FROM service_ports WHERE app_id = ?1")?.execute([app_id])?;
    if !ports.is_empty() {
        let mut insert = statement(
            c,
            "INSERT INTO service_ports (app_id, port) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?;
        for port in ports {
            insert.execute(params![app_id, port])?;
        }
    }
    Ok(())
}

/// As `pg_hot::deploy`: the application's next revision and the change order that rolls it out.
/// Returns the revision number.
pub(crate) fn deploy(
    c: &Connection,
    app_id: &str,
    revision: &RevisionDoc,
    change_order: &NewChangeOrder,
    creator: &str,
    at: i64,
    lease: Option<&Lease>,
) -> Result<i64, StoreError> {
    let spec = encode_doc(revision, "revision spec")?;
    let number: Option<i64> = statement(
        c,
        "UPDATE applications SET current_revision = current_revision + 1, spec = ?1, \
             updated_at = ?2 WHERE id = ?3 AND deleted = FALSE RETURNING current_revision",
    )?
    .query_row(params![spec.0.get(), at, app_id], |row| row.get(0))
    .optional()?;
    let number = number.ok_or_else(|| StoreError::not_found("application", app_id))?;
    statement(
        c,
        "INSERT INTO revisions (app_id, number, spec, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![app_id, number, spec.0.get(), at])
    .map_err(|e| map_conflict(e, "application", app_id, "concurrent deploy"))?;
    insert_change_order(c, app_id, change_order, Some(number), creator, at, lease)?;
    replace_service_ports(c, app_id, &revision.spec.service_ports())?;
    Ok(number)
}

/// As `pg_hot::transition`: the compare-and-swap of a change order, its events and application
/// updates. Returns the new version.
pub(crate) fn transition(
    c: &Connection,
    id: &str,
    expected: i64,
    transition: &Transition,
    at: i64,
) -> Result<i64, StoreError> {
    let read_before = match &transition.before {
        Some(_) => None,
        None => state_before(c, id, expected)?,
    };
    let before = transition.before.as_deref().or(read_before.as_ref());
    let sql = if transition.finished {
        "UPDATE change_orders SET status = ?1, state = ?2, version = version + 1, \
         updated_at = ?3, finished_at = ?3, lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = ?4 AND version = ?5 AND finished_at IS NULL RETURNING version, app_id"
    } else {
        "UPDATE change_orders SET status = ?1, state = ?2, version = version + 1, \
         updated_at = ?3 \
         WHERE id = ?4 AND version = ?5 AND finished_at IS NULL RETURNING version, app_id"
    };
    let state = encode_doc(&transition.state, "change order state")?;
    let updated: Option<(i64, String)> = statement(c, sql)?
        .query_row(
            params![transition.status.code(), state.0.get(), at, id, expected],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let Some((version, app_id)) = updated else {
        let current: Option<(i64, Option<i64>)> = statement(
            c,
            "SELECT version, finished_at FROM change_orders WHERE id = ?1",
        )?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
        return Err(super::refused_transition(id, expected, current));
    };
    let after = transition.state.as_order();
    record_events(c, &app_id, id, before, after.as_deref(), at)?;
    if let Some(state) = &transition.app_state {
        statement(
            c,
            "UPDATE applications SET state = ?1, updated_at = ?2 WHERE id = ?3",
        )?
        .execute(params![state, at, app_id])?;
    }
    if transition.delete_app {
        statement(
            c,
            "UPDATE applications SET deleted = TRUE, updated_at = ?1 WHERE id = ?2",
        )?
        .execute(params![at, app_id])?;
    }
    Ok(version)
}

/// The writes of `Store::create_application` on SQLite: the application, its revision 1, its
/// first change order (leased under `lease`) and Service ports.
pub(crate) fn create_application(
    c: &Connection,
    app: &NewApplication,
    change_order: &NewChangeOrder,
    creator: &str,
    at: i64,
    lease: Option<&Lease>,
) -> Result<(), StoreError> {
    let spec = encode_doc(&app.spec, "application spec")?;
    if app.namespace_stored {
        let found: Option<i64> =
            statement(c, "SELECT id FROM edas_namespaces WHERE region_tag = ?1")?
                .query_row([&app.namespace_id], |row| row.get(0))
                .optional()?;
        if found.is_none() {
            return Err(StoreError::not_found("namespace", &app.namespace_id));
        }
    }
    let taken: Option<String> = statement(
        c,
        "SELECT id FROM applications WHERE region_id = ?1 AND name = ?2 AND deleted = FALSE",
    )?
    .query_row([&app.region_id, &app.name], |row| row.get(0))
    .optional()?;
    if let Some(other) = taken {
        return Err(super::name_taken(&app.region_id, &app.name, &other));
    }
    statement(
        c,
        "INSERT INTO applications (id, name, region_id, namespace_id, cluster_id, \
         k8s_namespace, current_revision, state, spec, created_at, updated_at, deleted) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9, ?9, FALSE)",
    )?
    .execute(params![
        app.id,
        app.name,
        app.region_id,
        app.namespace_id,
        app.cluster_id,
        app.k8s_namespace,
        app.state,
        spec.0.get(),
        at,
    ])
    .map_err(|e| map_conflict(e, "application", &app.id, "id or name already taken"))?;
    statement(
        c,
        "INSERT INTO revisions (app_id, number, spec, created_at) VALUES (?1, 1, ?2, ?3)",
    )?
    .execute(params![app.id, spec.0.get(), at])?;
    insert_change_order(c, &app.id, change_order, Some(1), creator, at, lease)?;
    replace_service_ports(c, &app.id, &app.spec.spec.service_ports())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer with table `t (n INTEGER PRIMARY KEY)`, and the pool whose one connection is
    /// the write lock (what the cold writes go through).
    async fn writer(dir: &Path) -> (Arc<HotWriter>, SqlitePool) {
        let (hot, lock, _) = writer_and_sync(dir).await;
        (hot, lock)
    }

    /// As [`writer`], with its syncer.
    async fn writer_and_sync(dir: &Path) -> (Arc<HotWriter>, SqlitePool, Arc<WalSync>) {
        let path = dir.join("db.sqlite3");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let lock = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .execute(&lock)
            .await
            .unwrap();
        let sync = Arc::new(WalSync::start(&path).unwrap());
        let hot = HotWriter::start(
            &path,
            std::time::Duration::from_secs(5),
            lock.clone(),
            sync.clone(),
        );
        (Arc::new(hot.unwrap()), lock, sync)
    }

    /// A job that ends the group's transaction (as SQLite does itself on a full disk or an
    /// I/O error) leaves no answer untrue: a job answered as stored is in the table, one
    /// answered with an error is not, and the writer goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_that_ends_the_transaction_leaves_no_answer_untrue() {
        let dir = tempfile::tempdir().unwrap();
        let (hot, _lock) = writer(dir.path()).await;
        let insert =
            |n: i64| move |db: &Connection| Ok(db.execute("INSERT INTO t (n) VALUES (?1)", [n])?);
        // The first job holds the writer while the next two queue: they form the next group.
        let (started, running) = std::sync::mpsc::channel();
        let first = {
            let hot = hot.clone();
            tokio::spawn(async move {
                hot.run(move |db: &Connection| {
                    started.send(()).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    insert(1)(db)
                })
                .await
            })
        };
        tokio::task::spawn_blocking(move || running.recv().unwrap())
            .await
            .unwrap();
        let ends = hot.run(|db: &Connection| {
            db.execute_batch("ROLLBACK")?;
            Ok(0)
        });
        let after = hot.run(insert(3));
        let (ends, after) = tokio::join!(ends, after);
        let first = first.await.unwrap();
        let reader = Connection::open(dir.path().join("db.sqlite3")).unwrap();
        let stored = |n: i64| -> bool {
            reader
                .query_row("SELECT count(*) FROM t WHERE n = ?1", [n], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap()
                == 1
        };
        assert!(
            ends.is_err(),
            "a job that ended the transaction was answered as stored"
        );
        for (n, answer) in [(1, first.map(|_| ())), (3, after.map(|_| ()))] {
            assert_eq!(
                answer.is_ok(),
                stored(n),
                "row {n}: answered {answer:?}, stored: {}",
                stored(n)
            );
        }
        hot.run(insert(4)).await.unwrap();
        assert!(stored(4), "the writer did not go on");
    }

    /// Under load a group's transaction stays open while the last sync runs and takes the jobs
    /// that arrive meanwhile: one commit per sync (a commit beside a running sync would be a
    /// second one the next sync covers, its always-written pages written twice).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_load_there_is_one_commit_per_sync() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let (hot, _lock, sync) = writer_and_sync(dir.path()).await;
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        hot.run(move |db: &Connection| {
            db.commit_hook(Some(move || {
                counter.fetch_add(1, Ordering::Relaxed);
                false
            }))?;
            Ok(())
        })
        .await
        .unwrap();
        let (commits_before, syncs_before) = (commits.load(Ordering::Relaxed), sync.syncs());
        // Fewer writers than MAX_GROUP (each waits for its answer): no group is ever full, so
        // none commits without waiting for the sync.
        let writers = 48i64;
        let each = 40i64;
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let hot = hot.clone();
                tokio::spawn(async move {
                    for k in 0..each {
                        let n = w * 1_000 + k;
                        hot.run(move |db: &Connection| {
                            Ok(db.execute("INSERT INTO t (n) VALUES (?1)", [n])?)
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let commits = commits.load(Ordering::Relaxed) - commits_before;
        let syncs = sync.syncs() - syncs_before;
        let jobs = u64::try_from(writers * each).unwrap();
        assert!(
            commits <= syncs,
            "{commits} commits for {syncs} syncs ({jobs} jobs)"
        );
        assert!(
            commits < jobs / 2,
            "{commits} commits for {jobs} jobs: no groups"
        );
    }

    /// 256 writers (four groups' worth) keep the queue full, so the group writer holds the
    /// write lock across groups back to back: a cold write (through the lock's pool) gets its
    /// turn after at most one hold (8 groups, counted in rows, not timed), and the hot writes
    /// go on after it; then a close in the middle of that stream: every write answered as
    /// stored is in the table, every later one is refused, and nothing hangs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cold_write_and_a_close_in_the_middle_of_held_groups() {
        let dir = tempfile::tempdir().unwrap();
        let (hot, lock) = writer(dir.path()).await;
        let stored = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let writers: Vec<_> = (0..4 * MAX_GROUP as i64)
            .map(|w| {
                let (hot, stored) = (hot.clone(), stored.clone());
                tokio::spawn(async move {
                    let mut answered = Vec::new();
                    for k in 0.. {
                        let n = w * 1_000_000 + k;
                        // A job of a few hundred microseconds (a deploy's is ~0.2 ms): while a
                        // group is written the next one waits in the queue, and the writers
                        // the last sync answered queue again, so the writer always finds jobs.
                        let job = move |db: &Connection| {
                            std::thread::sleep(std::time::Duration::from_micros(300));
                            Ok(db.execute("INSERT INTO t (n) VALUES (?1)", [n])?)
                        };
                        match hot.run(job).await {
                            Ok(_) => {
                                answered.push(n);
                                stored.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(e) => return (answered, e.to_string()),
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        let count = || stored.load(std::sync::atomic::Ordering::Relaxed);
        while count() < 500 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // The cold write waits for at most one hold of the lock (sqlx's pool hands the lock
        // to waiters in turn): it stores the rows it found, so the hot rows committed while
        // it waited are counted, not timed.
        let reader = Connection::open(dir.path().join("db.sqlite3")).unwrap();
        let rows = || -> i64 {
            reader
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap()
        };
        let before = rows();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            sqlx::query("INSERT INTO t (n) SELECT -1 - count(*) FROM t").execute(&lock),
        )
        .await
        .expect("a cold write got the write lock while hot writes kept coming")
        .unwrap();
        let found: i64 = -1
            - reader
                .query_row("SELECT n FROM t WHERE n < 0", [], |r| r.get::<_, i64>(0))
                .unwrap();
        let most = i64::try_from((HELD_GROUPS + 1) * MAX_GROUP).unwrap();
        assert!(
            found - before <= most,
            "{} hot rows were committed while the cold write waited (at most {most})",
            found - before
        );
        let after_cold = count();
        while count() < after_cold + 500 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        tokio::time::timeout(std::time::Duration::from_secs(10), hot.close())
            .await
            .expect("the close was answered while writes kept coming");
        let mut answered = Vec::new();
        for writer in writers {
            let (theirs, refusal) =
                tokio::time::timeout(std::time::Duration::from_secs(10), writer)
                    .await
                    .expect("every writer was answered after the close")
                    .unwrap();
            assert!(
                refusal.contains("closed") || refusal.contains("stopped"),
                "{refusal}"
            );
            answered.extend(theirs);
        }
        let mut in_table: Vec<i64> = sqlx::query_scalar("SELECT n FROM t WHERE n >= 0")
            .fetch_all(&lock)
            .await
            .unwrap();
        in_table.sort_unstable();
        answered.sort_unstable();
        assert_eq!(
            in_table, answered,
            "stored exactly the writes answered as stored"
        );
    }

    /// Three jobs queued at once: the one that panics is rolled back to its savepoint and its
    /// panic resumed in its caller; its neighbours are stored, and a later job still runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_job_is_rolled_back_alone_and_resumed_in_its_caller() {
        let dir = tempfile::tempdir().unwrap();
        let (hot, lock) = writer(dir.path()).await;
        let insert = |n: i64, panics: bool| {
            let hot = hot.clone();
            tokio::spawn(async move {
                hot.run(move |db| {
                    db.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                    assert!(!panics, "job {n} panics after its insert");
                    Ok(n)
                })
                .await
            })
        };
        let jobs = [insert(1, false), insert(2, true), insert(3, false)];
        let mut outcomes = Vec::new();
        for job in jobs {
            outcomes.push(match job.await {
                Ok(stored) => Ok(stored.unwrap()),
                Err(e) => Err(e.is_panic()),
            });
        }
        assert_eq!(outcomes, [Ok(1), Err(true), Ok(3)]);
        assert_eq!(insert(4, false).await.unwrap().unwrap(), 4);
        let stored: Vec<i64> = sqlx::query_scalar("SELECT n FROM t ORDER BY n")
            .fetch_all(&lock)
            .await
            .unwrap();
        assert_eq!(stored, [1, 3, 4]);
        hot.close().await;
        let closed = hot.run(|_| Ok(())).await.unwrap_err();
        assert!(closed.to_string().contains("stopped"), "{closed}");
    }
}
