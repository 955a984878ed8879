//! Retention (pruning) and SQLite backup and restore.

use super::*;

impl Store {
    /// Deletes finished change orders and audit records beyond their retention, in one
    /// transaction. Unfinished change orders, applications and revisions are never pruned.
    pub async fn prune(
        &self,
        change_orders: Retention,
        audit: Retention,
        now: Timestamp,
    ) -> Result<PruneReport, StoreError> {
        let cutoff = |r: &Retention, field| -> Result<Option<i64>, StoreError> {
            r.max_age
                .map(|age| Ok(ms(now).saturating_sub(duration_ms(age, field)?)))
                .transpose()
        };
        let co_cutoff = cutoff(&change_orders, "change order max age")?;
        let audit_cutoff = cutoff(&audit, "audit max age")?;
        let keep = |r: &Retention| r.max_count.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let (co_keep, audit_keep) = (keep(&change_orders), keep(&audit));
        let mut report = PruneReport::default();
        on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            if let Some(cutoff) = co_cutoff {
                report.change_orders += sqlx::query(
                    "DELETE FROM change_orders WHERE finished_at IS NOT NULL AND finished_at < $1",
                )
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            if let Some(keep) = co_keep {
                report.change_orders += sqlx::query(
                    "DELETE FROM change_orders WHERE id IN (SELECT id FROM change_orders \
                     WHERE finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC \
                     LIMIT $1 OFFSET $2)",
                )
                .bind(i64::MAX)
                .bind(keep)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            if let Some(cutoff) = audit_cutoff {
                report.audit_records += sqlx::query("DELETE FROM audit WHERE at < $1")
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            if let Some(keep) = audit_keep {
                report.audit_records += sqlx::query(
                    "DELETE FROM audit WHERE id IN (SELECT id FROM audit \
                     ORDER BY at DESC, id DESC LIMIT $1 OFFSET $2)",
                )
                .bind(i64::MAX)
                .bind(keep)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
        });
        Ok(report)
    }

    /// Writes a consistent copy of the live SQLite database to `destination` (which must not
    /// exist) with `VACUUM INTO`, while the store keeps serving. The copy holds ciphertexts
    /// only: keep the key file with it. PostgreSQL backups are `pg_dump`'s job
    /// ([`StoreError::Unsupported`]).
    pub async fn backup_to(&self, destination: &Path) -> Result<(), StoreError> {
        let Backend::Sqlite(sqlite) = self.backend.as_ref() else {
            return Err(StoreError::Unsupported {
                operation: "backup",
                backend: "postgres (use pg_dump)",
            });
        };
        if destination.exists() {
            return Err(StoreError::InvalidInput {
                field: "backup destination",
                reason: format!("{} already exists", destination.display()),
            });
        }
        let path = destination
            .to_str()
            .ok_or_else(|| StoreError::InvalidInput {
                field: "backup destination",
                reason: format!("{} is not valid UTF-8", destination.display()),
            })?;
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(&sqlite.reader)
            .await?;
        Ok(())
    }
}

/// Replaces the SQLite database at `database` with the backup file `backup` (made by
/// [`Store::backup_to`]).
///
/// **The store must be stopped** (no process may have `database` open): the copy is written
/// beside it, synced, and renamed over it, and the old WAL and shared-memory files are
/// removed. The key file the backup was made with must be in place (it is not in the backup).
pub fn restore_sqlite_backup(backup: &Path, database: &Path) -> Result<(), StoreError> {
    use std::io::Read;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    let mut header = [0u8; 16];
    std::fs::File::open(backup)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(io(backup))?;
    if &header != b"SQLite format 3\0" {
        return Err(StoreError::InvalidInput {
            field: "backup",
            reason: format!("{} is not an SQLite database", backup.display()),
        });
    }
    let staging = sibling(database, ".restore-tmp");
    std::fs::copy(backup, &staging).map_err(io(&staging))?;
    std::fs::File::open(&staging)
        .and_then(|f| f.sync_all())
        .map_err(io(&staging))?;
    for suffix in ["-wal", "-shm"] {
        let path = sibling(database, suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::Io { path, source: e }),
        }
    }
    std::fs::rename(&staging, database).map_err(io(database))?;
    if let Some(parent) = database.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io(parent))?;
    }
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
