//! Retention (pruning) and SQLite backup and restore.

use super::*;

/// The two statements that prune one kind of record: those older than a cutoff (bound `$1`),
/// and those beyond the newest `$2` (`$1` is the unbounded limit both backends accept).
struct Prunable {
    older_than: &'static str,
    beyond_newest: &'static str,
}

/// Finished change orders only: an unfinished one is never pruned.
const PRUNE_CHANGE_ORDERS: Prunable = Prunable {
    older_than: "DELETE FROM change_orders WHERE finished_at IS NOT NULL AND finished_at < $1",
    beyond_newest: "DELETE FROM change_orders WHERE id IN (SELECT id FROM change_orders \
         WHERE finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT $1 OFFSET $2)",
};

const PRUNE_AUDIT: Prunable = Prunable {
    older_than: "DELETE FROM audit WHERE at < $1",
    beyond_newest: "DELETE FROM audit WHERE id IN (SELECT id FROM audit \
         ORDER BY at DESC, id DESC LIMIT $1 OFFSET $2)",
};

impl Prunable {
    /// The statements `retention` asks for at `now`, with their binds.
    fn deletions(
        &self,
        retention: Retention,
        now: Timestamp,
        field: &'static str,
    ) -> Result<Vec<(&'static str, Vec<i64>)>, StoreError> {
        let mut out = Vec::new();
        if let Some(age) = retention.max_age {
            let cutoff = ms(now).saturating_sub(duration_ms(age, field)?);
            out.push((self.older_than, vec![cutoff]));
        }
        if let Some(count) = retention.max_count {
            let keep = i64::try_from(count).unwrap_or(i64::MAX);
            out.push((self.beyond_newest, vec![i64::MAX, keep]));
        }
        Ok(out)
    }
}

/// The release events of change orders that are gone, once no subscription is owed them: their
/// settled deliveries, then the events nothing refers to any more.
const PRUNE_EVENTS: [&str; 2] = [
    "DELETE FROM deliveries WHERE state <> 'pending' AND event_seq IN (SELECT e.seq FROM events e \
     WHERE NOT EXISTS (SELECT 1 FROM change_orders c WHERE c.id = e.change_order_id))",
    "DELETE FROM events WHERE NOT EXISTS (SELECT 1 FROM change_orders c \
     WHERE c.id = events.change_order_id) \
     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = events.seq)",
];

impl Store {
    /// Deletes finished change orders and audit records beyond their retention, in one
    /// transaction, and with the change orders their release events (but those a
    /// subscription is still owed). Unfinished change orders, applications and revisions are
    /// never pruned.
    pub async fn prune(
        &self,
        change_orders: Retention,
        audit: Retention,
        now: Timestamp,
    ) -> Result<PruneReport, StoreError> {
        let tables = [
            PRUNE_CHANGE_ORDERS.deletions(change_orders, now, "change order max age")?,
            PRUNE_AUDIT.deletions(audit, now, "audit max age")?,
        ];
        let removed = on_writer!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut removed = [0u64; 2];
            for (count, deletions) in removed.iter_mut().zip(&tables) {
                for (delete, binds) in deletions {
                    let mut query = sqlx::query(*delete);
                    for value in binds {
                        query = query.bind(*value);
                    }
                    *count += query.execute(&mut *tx).await?.rows_affected();
                }
            }
            for delete in PRUNE_EVENTS {
                sqlx::query(delete).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            removed
        });
        Ok(PruneReport {
            change_orders: removed[0],
            audit_records: removed[1],
        })
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
