//! The store's error type. Callers match on the domain variants (`NotFound`, `Conflict`,
//! `Stale`, …); `Database` and `Migrate` carry the driver's error for logs.

use std::path::PathBuf;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist (or, for applications, was never created).
    #[error("{entity} {id:?} not found")]
    NotFound { entity: &'static str, id: String },

    /// The write would break a uniqueness rule: an id or name already taken, or a second active
    /// change order for one application.
    #[error("{entity} {id:?}: {reason}")]
    Conflict {
        entity: &'static str,
        id: String,
        reason: String,
    },

    /// The application already has an active (unfinished) change order, `active`: at most one
    /// runs per application. Callers answer it as a conflict naming `active`.
    #[error(
        "application {app_id:?} has an active change order {active}; wait for it to finish or stop it first"
    )]
    ActiveChangeOrder { app_id: String, active: String },

    /// Compare-and-swap refused: the change order is no longer at the version the writer read.
    /// Re-read it and decide again.
    #[error("change order {id:?} is at version {actual}, not the expected {expected}")]
    Stale {
        id: String,
        expected: i64,
        actual: i64,
    },

    /// The change order reached a final status; it never transitions again.
    #[error("change order {id:?} is finished and cannot transition")]
    Finished { id: String },

    /// The worker does not hold the change order's lease (never held, released, or taken over
    /// after it expired).
    #[error("worker {worker:?} does not hold the lease of change order {id:?}")]
    LeaseNotHeld { id: String, worker: String },

    /// A caller-supplied argument is invalid (the message names it).
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },

    /// The database was migrated by a newer binary; this one refuses to touch it.
    #[error(
        "database schema version {found} is newer than this binary supports ({supported}); \
         upgrade edasd or restore a backup made by this version"
    )]
    SchemaTooNew { found: i64, supported: i64 },

    /// The encryption key is malformed or its file is unsafe.
    #[error("invalid encryption key: {reason}")]
    InvalidKey { reason: String },

    /// The database was written with a different encryption key.
    #[error("the encryption key does not match the one this database was created with")]
    WrongKey,

    /// A sealed value failed to decrypt (corrupted, or moved from another row).
    #[error("cannot decrypt the value of {context}")]
    Crypto { context: String },

    /// A stored value cannot be read back (for example a timestamp out of range).
    #[error("corrupt stored value in {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },

    /// The operation is not available on this backend.
    #[error("{operation} is not supported on {backend}")]
    Unsupported {
        operation: &'static str,
        backend: &'static str,
    },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// An error of the synchronous statements on SQLite's writer connection (the hot write
    /// transactions run through rusqlite on sqlx's connection).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    pub(crate) fn not_found(entity: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound {
            entity,
            id: id.into(),
        }
    }

    pub(crate) fn conflict(
        entity: &'static str,
        id: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Conflict {
            entity,
            id: id.into(),
            reason: reason.into(),
        }
    }
}

/// Whether a driver error is a unique-constraint violation (the same check on both backends).
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Whether a driver error is a foreign-key violation.
pub(crate) fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}
