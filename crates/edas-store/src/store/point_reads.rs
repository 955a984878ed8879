//! Point reads by primary key on SQLite, run inline on the caller's thread through a few
//! read-only `rusqlite` connections of their own. Reading one row from the page cache takes
//! microseconds, less than the two thread hand-offs a statement on sqlx's connection thread
//! costs (the read a deploy makes of its application was about a tenth of edasd's CPU at 8
//! clients, most of it those hand-offs). Only indexed one-row reads belong here: anything that
//! scans stays on sqlx's threads, off the server's workers.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension as _};

use super::from_ms;
use super::sync_sqlite::statement;
use crate::error::StoreError;
use crate::model::Application;

/// Connections kept open between reads (one per thread reading at once, at most).
const IDLE: usize = 8;

pub(crate) struct PointReader {
    path: PathBuf,
    busy_timeout: Duration,
    /// `None` once the store is closed: later reads fail, as sqlx's closed pools do.
    idle: Mutex<Option<Vec<Connection>>>,
}

impl PointReader {
    pub(crate) fn new(path: &Path, busy_timeout: Duration) -> PointReader {
        PointReader {
            path: path.to_path_buf(),
            busy_timeout,
            idle: Mutex::new(Some(Vec::new())),
        }
    }

    /// Runs `read` on an idle connection (or a new one), here and now.
    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = match self.lock().as_mut() {
            Some(idle) => idle.pop(),
            None => return Err(closed()),
        };
        let db = match idle {
            Some(db) => db,
            None => self.open()?,
        };
        let out = read(&db);
        if let Some(idle) = self.lock().as_mut()
            && idle.len() < IDLE
        {
            idle.push(db);
        }
        out
    }

    /// Closes the idle connections; later reads fail.
    pub(crate) fn close(&self) {
        self.lock().take();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<Connection>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let db = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        db.busy_timeout(self.busy_timeout)?;
        db.set_prepared_statement_cache_capacity(16);
        Ok(db)
    }

    /// The application with this id (deleted ones too).
    pub(crate) fn application(&self, id: &str) -> Result<Application, StoreError> {
        self.read(|db| {
            statement(
                db,
                concat!("SELECT ", app_cols!(), " FROM applications WHERE id = ?1"),
            )?
            .query_row([id], |row| Ok(application(row)))
            .optional()?
            .ok_or_else(|| StoreError::not_found("application", id))?
        })
    }
}

/// An application from a row of `app_cols!()`, as `AppRow` converts sqlx's.
fn application(r: &rusqlite::Row<'_>) -> Result<Application, StoreError> {
    let spec: String = r.get(8)?;
    Ok(Application {
        id: r.get(0)?,
        name: r.get(1)?,
        region_id: r.get(2)?,
        namespace_id: r.get(3)?,
        cluster_id: r.get(4)?,
        k8s_namespace: r.get(5)?,
        current_revision: r.get(6)?,
        state: r.get(7)?,
        spec: serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt {
            what: "applications.spec",
            reason: e.to_string(),
        })?,
        created_at: from_ms(r.get(9)?, "applications.created_at")?,
        updated_at: from_ms(r.get(10)?, "applications.updated_at")?,
        deleted: r.get(11)?,
    })
}

fn closed() -> StoreError {
    StoreError::Io {
        path: "edas-store point reads".into(),
        source: std::io::Error::other("the store was closed"),
    }
}
