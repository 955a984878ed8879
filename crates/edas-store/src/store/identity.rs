//! Users, (encrypted) access keys, policies and their attachments. Every change is written in
//! one transaction with its audit record (actor, action, target), so no admin change goes
//! unrecorded.

use std::sync::atomic::Ordering;

use super::*;

/// The `store_meta` key of the identity version: a random token every change of access keys,
/// users or policies writes in its transaction.
const IDENTITY_VERSION: &str = "identity_version";

/// Writes a new identity version inside the write transaction `$tx` (returns the error from the
/// enclosing function), so a change and its version commit together.
macro_rules! bump_identity {
    ($tx:expr) => {{
        sqlx::query(
            "INSERT INTO store_meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(IDENTITY_VERSION)
        .bind(uuid::Uuid::new_v4().as_bytes().to_vec())
        .execute($tx)
        .await?;
    }};
}

/// Runs one audited identity write ([`write_audited!`]) that also writes a new identity
/// version, and bumps this process's count once it committed. Evaluates to the rows changed.
macro_rules! write_identity {
    ($store:expr, $audit:expr, $tx:ident => $body:expr) => {{
        let changed = write_audited!($store, $audit, $tx => {
            let changed: u64 = $body;
            bump_identity!(&mut *$tx);
            changed
        });
        $store.identity.fetch_add(1, Ordering::SeqCst);
        changed
    }};
}

impl Store {
    /// The version of access keys, users and policies now: it changes with every change of
    /// them (committed before the change returns), so a cache of signers is valid while this
    /// answers the version it was filled at, and a revoked key stops working at once. SQLite
    /// (one process): this process's count, no I/O. PostgreSQL: one read of the token every
    /// change writes, so a change made through another edasd counts at once too.
    pub async fn identity_version(&self) -> Result<IdentityVersion, StoreError> {
        match self.backend.as_ref() {
            Backend::Sqlite(_) => Ok(IdentityVersion::Local(self.identity.load(Ordering::SeqCst))),
            Backend::Postgres(pool) => {
                let token: Option<Vec<u8>> =
                    sqlx::query_scalar("SELECT value FROM store_meta WHERE key = $1")
                        .bind(IDENTITY_VERSION)
                        .fetch_optional(pool)
                        .await?;
                Ok(IdentityVersion::Shared(token.unwrap_or_default()))
            }
        }
    }

    /// Inserts or updates a user (`created_at` of an existing one is kept).
    pub async fn put_user(
        &self,
        user: &User,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        non_empty(&user.name, "user name")?;
        write_identity!(self, Some((&audit, now)), tx => {
            sqlx::query(
                "INSERT INTO users (name, admin, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET admin = excluded.admin",
            )
            .bind(&user.name)
            .bind(user.admin)
            .bind(ms(user.created_at))
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    pub async fn get_user(&self, name: &str) -> Result<User, StoreError> {
        let select = "SELECT name, admin, created_at FROM users WHERE name = $1";
        self.fetch_row::<UserRow>(select, &[name], "user")
            .await?
            .try_into()
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let select = "SELECT name, admin, created_at FROM users ORDER BY name";
        rows(self.fetch_rows::<UserRow>(select, &[]).await?)
    }

    /// Deletes a user with its access keys and policy attachments. Returns whether it existed.
    pub async fn delete_user(
        &self,
        name: &str,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = write_identity!(self, Some((&audit, now)), tx => {
            sqlx::query("DELETE FROM users WHERE name = $1")
                .bind(name)
                .execute(&mut *tx).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// Stores a new access key (its secret encrypted). [`StoreError::Conflict`] if the id is
    /// taken, [`StoreError::NotFound`] if the user does not exist.
    pub async fn create_access_key(
        &self,
        key: &AccessKey,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        non_empty(&key.id, "access key id")?;
        non_empty(key.secret.expose(), "access key secret")?;
        let sealed = self
            .cipher
            .seal(&access_key_context(&key.id), key.secret.expose().as_bytes())?;
        write_identity!(self, Some((&audit, now)), tx => {
            sqlx::query(
                "INSERT INTO access_keys (id, secret_encrypted, user_name, enabled, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&key.id)
            .bind(&sealed)
            .bind(&key.user)
            .bind(key.enabled)
            .bind(ms(key.created_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    StoreError::not_found("user", &key.user)
                } else {
                    map_conflict(e, "access key", &key.id, "id already taken")
                }
            })?
            .rows_affected()
        });
        Ok(())
    }

    /// An access key with its decrypted secret.
    pub async fn get_access_key(&self, id: &str) -> Result<AccessKey, StoreError> {
        let select = "SELECT id, secret_encrypted, user_name, enabled, created_at \
                      FROM access_keys WHERE id = $1";
        self.open_access_key(self.fetch_row(select, &[id], "access key").await?)
    }

    /// A user's access keys, by id.
    pub async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKey>, StoreError> {
        let select = "SELECT id, secret_encrypted, user_name, enabled, created_at \
                      FROM access_keys WHERE user_name = $1 ORDER BY id";
        self.fetch_rows::<AccessKeyRow>(select, &[user])
            .await?
            .into_iter()
            .map(|row| self.open_access_key(row))
            .collect()
    }

    fn open_access_key(&self, row: AccessKeyRow) -> Result<AccessKey, StoreError> {
        let plain = self
            .cipher
            .open(&access_key_context(&row.id), &row.secret_encrypted)?;
        let secret = String::from_utf8(plain).map_err(|_| StoreError::Corrupt {
            what: "access_keys.secret",
            reason: "not UTF-8".into(),
        })?;
        Ok(AccessKey {
            id: row.id,
            secret: Sensitive::new(secret),
            user: row.user_name,
            enabled: row.enabled,
            created_at: from_ms(row.created_at, "access_keys.created_at")?,
        })
    }

    pub async fn set_access_key_enabled(
        &self,
        id: &str,
        enabled: bool,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let done = write_identity!(self, Some((&audit, now)), tx => {
            sqlx::query("UPDATE access_keys SET enabled = $1 WHERE id = $2")
                .bind(enabled)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        if done == 0 {
            return Err(StoreError::not_found("access key", id));
        }
        Ok(())
    }

    pub async fn delete_access_key(
        &self,
        id: &str,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = write_identity!(self, Some((&audit, now)), tx => {
            sqlx::query("DELETE FROM access_keys WHERE id = $1")
                .bind(id)
                .execute(&mut *tx).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// Inserts or replaces a policy (`created_at` of an existing one is kept).
    pub async fn put_policy(
        &self,
        policy: &Policy,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        non_empty(&policy.name, "policy name")?;
        write_identity!(self, Some((&audit, now)), tx => {
            sqlx::query(
                "INSERT INTO policies (name, document, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET \
                 document = excluded.document, updated_at = excluded.updated_at",
            )
            .bind(&policy.name)
            .bind(Json(&policy.document))
            .bind(ms(policy.created_at))
            .bind(ms(policy.updated_at))
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    pub async fn get_policy(&self, name: &str) -> Result<Policy, StoreError> {
        let select = "SELECT name, document, created_at, updated_at FROM policies WHERE name = $1";
        self.fetch_row::<PolicyRow>(select, &[name], "policy")
            .await?
            .try_into()
    }

    pub async fn list_policies(&self) -> Result<Vec<Policy>, StoreError> {
        let select = "SELECT name, document, created_at, updated_at FROM policies ORDER BY name";
        rows(self.fetch_rows::<PolicyRow>(select, &[]).await?)
    }

    /// Deletes a policy and its attachments. Returns whether it existed.
    pub async fn delete_policy(
        &self,
        name: &str,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = write_identity!(self, Some((&audit, now)), tx => {
            sqlx::query("DELETE FROM policies WHERE name = $1")
                .bind(name)
                .execute(&mut *tx).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// Attaches a policy to a user (idempotent). [`StoreError::NotFound`] if either is missing.
    pub async fn attach_policy(
        &self,
        user: &str,
        policy: &str,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        // Audited even when it was attached already (the request is what is recorded).
        write_identity!(self, Some((&audit, now)), tx => {
            sqlx::query(
                "INSERT INTO user_policies (user_name, policy_name) VALUES ($1, $2) \
                 ON CONFLICT (user_name, policy_name) DO NOTHING",
            )
            .bind(user)
            .bind(policy)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    StoreError::not_found("user or policy", format!("{user}/{policy}"))
                } else {
                    StoreError::Database(e)
                }
            })?;
            1
        });
        Ok(())
    }

    /// Returns whether the policy was attached.
    pub async fn detach_policy(
        &self,
        user: &str,
        policy: &str,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = write_identity!(self, Some((&audit, now)), tx => {
            sqlx::query("DELETE FROM user_policies WHERE user_name = $1 AND policy_name = $2")
                .bind(user)
                .bind(policy)
                .execute(&mut *tx).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// The policies attached to a user, by name.
    pub async fn user_policies(&self, user: &str) -> Result<Vec<Policy>, StoreError> {
        let select = "SELECT p.name, p.document, p.created_at, p.updated_at FROM policies p \
                      JOIN user_policies up ON up.policy_name = p.name \
                      WHERE up.user_name = $1 ORDER BY p.name";
        rows(self.fetch_rows::<PolicyRow>(select, &[user]).await?)
    }
}
