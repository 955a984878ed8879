//! The admin API's users, access keys and policies. Each change is one store transaction with
//! its audit record (the caller builds the record: actor, action, target, never a secret), and
//! every failure is an [`AccountError`], the one error type the admin API maps to its codes.

use edas_store::{AccessKey, AuditEntry, Policy, StoreError, User};
use jiff::Timestamp;

use crate::App;

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The user, key, policy or attachment does not exist.
    #[error("{entity} {id:?} not found")]
    NotFound { entity: &'static str, id: String },
    /// The id or name is taken.
    #[error("{0}")]
    Conflict(String),
    /// An argument the store refuses (the message names it).
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
    /// The store failed; the message is for the log.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { entity, id } => AccountError::NotFound { entity, id },
            StoreError::Conflict { reason, .. } => AccountError::Conflict(reason),
            StoreError::InvalidInput { field, reason } => {
                AccountError::InvalidInput { field, reason }
            }
            other => AccountError::Internal(other.to_string()),
        }
    }
}

/// An account change's audit record (actor, action, target; never a secret) and the time of the
/// change: what every command below writes in the change's own transaction.
#[derive(Debug, Clone)]
pub struct Audited {
    /// The record.
    pub entry: AuditEntry,
    /// When the change is made.
    pub at: Timestamp,
}

impl App {
    /// Every user, by name.
    pub async fn list_users(&self) -> Result<Vec<User>, AccountError> {
        Ok(self.store.list_users().await?)
    }

    /// User `name`.
    pub async fn get_user(&self, name: &str) -> Result<User, AccountError> {
        Ok(self.store.get_user(name).await?)
    }

    /// Creates or updates a user.
    pub async fn put_user(&self, user: &User, audit: Audited) -> Result<(), AccountError> {
        Ok(self.store.put_user(user, audit.entry, audit.at).await?)
    }

    /// Deletes a user with its keys and attachments; whether it existed.
    pub async fn delete_user(&self, name: &str, audit: Audited) -> Result<bool, AccountError> {
        Ok(self.store.delete_user(name, audit.entry, audit.at).await?)
    }

    /// A user's access keys, by id.
    pub async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKey>, AccountError> {
        Ok(self.store.list_access_keys(user).await?)
    }

    /// Stores a new access key (its secret encrypted at rest).
    pub async fn create_access_key(
        &self,
        key: &AccessKey,
        audit: Audited,
    ) -> Result<(), AccountError> {
        Ok(self
            .store
            .create_access_key(key, audit.entry, audit.at)
            .await?)
    }

    /// Enables or disables an access key.
    pub async fn set_access_key_enabled(
        &self,
        id: &str,
        enabled: bool,
        audit: Audited,
    ) -> Result<(), AccountError> {
        Ok(self
            .store
            .set_access_key_enabled(id, enabled, audit.entry, audit.at)
            .await?)
    }

    /// Deletes an access key; whether it existed.
    pub async fn delete_access_key(&self, id: &str, audit: Audited) -> Result<bool, AccountError> {
        Ok(self
            .store
            .delete_access_key(id, audit.entry, audit.at)
            .await?)
    }

    /// Every policy, by name.
    pub async fn list_policies(&self) -> Result<Vec<Policy>, AccountError> {
        Ok(self.store.list_policies().await?)
    }

    /// Creates or replaces a policy (its document validated by the caller).
    pub async fn put_policy(&self, policy: &Policy, audit: Audited) -> Result<(), AccountError> {
        Ok(self.store.put_policy(policy, audit.entry, audit.at).await?)
    }

    /// Deletes a policy and its attachments; whether it existed.
    pub async fn delete_policy(&self, name: &str, audit: Audited) -> Result<bool, AccountError> {
        Ok(self
            .store
            .delete_policy(name, audit.entry, audit.at)
            .await?)
    }

    /// Attaches a policy to a user (idempotent).
    pub async fn attach_policy(
        &self,
        user: &str,
        policy: &str,
        audit: Audited,
    ) -> Result<(), AccountError> {
        Ok(self
            .store
            .attach_policy(user, policy, audit.entry, audit.at)
            .await?)
    }

    /// Detaches a policy from a user; whether it was attached.
    pub async fn detach_policy(
        &self,
        user: &str,
        policy: &str,
        audit: Audited,
    ) -> Result<bool, AccountError> {
        Ok(self
            .store
            .detach_policy(user, policy, audit.entry, audit.at)
            .await?)
    }
}
