//! Queries the request pipeline asks before any operation: the access key a signature names,
//! its user and the user's policies, whether the store answers, and the active change orders
//! the metrics report. (The admin API's account commands are in `accounts`.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use edas_store::{AccessKey, ChangeOrderStatus, IdentityVersion, Policy, StoreError, User};

use crate::{App, AppError};

/// Who signs a request: the access key (enabled or not), its user, and the user's policies
/// (none read for an administrator, who is allowed everything).
#[derive(Clone, Debug)]
pub struct Signer {
    pub key: AccessKey,
    pub user: User,
    pub policies: Vec<Policy>,
}

/// Signers by access key id, all read at one identity version: three reads saved per request,
/// dropped whole when the version moves (any change of a key, user or policy). Only keys that
/// exist are kept, so its size is bounded by the stored keys.
#[derive(Default)]
pub(crate) struct SignerCache {
    entries: Mutex<Signers>,
}

/// The version the signers were read at, and the signers by access key id.
type Signers = (Option<IdentityVersion>, HashMap<String, Arc<Signer>>);

impl App {
    /// The signer of access key `id` (none when there is no such key), remembered until an
    /// access key, user or policy changes: in this process, or on PostgreSQL in any process
    /// sharing the database ([`edas_store::Store::identity_version`]), so a disabled or
    /// deleted key, or a detached policy, counts from the next request on.
    pub async fn signer(&self, id: &str) -> Result<Option<Arc<Signer>>, AppError> {
        let version = self
            .store
            .identity_version()
            .await
            .map_err(|e| AppError::internal("reading the identity version", e))?;
        {
            let entries = self
                .signers
                .entries
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if entries.0.as_ref() == Some(&version)
                && let Some(signer) = entries.1.get(id)
            {
                return Ok(Some(signer.clone()));
            }
        }
        // Read after the version: what is read is at least as new, and any later change moves
        // the version, so this entry never outlives a change.
        let Some(key) = self.access_key(id).await? else {
            return Ok(None);
        };
        let user = self.key_user(&key).await?;
        let policies = if user.admin {
            Vec::new()
        } else {
            self.user_policies(&user.name).await?
        };
        let signer = Arc::new(Signer {
            key,
            user,
            policies,
        });
        let mut entries = self
            .signers
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if entries.0.as_ref() != Some(&version) {
            *entries = (Some(version), HashMap::new());
        }
        entries.1.insert(id.to_owned(), signer.clone());
        Ok(Some(signer))
    }

    /// The access key `id`, or none when there is no such key.
    pub async fn access_key(&self, id: &str) -> Result<Option<AccessKey>, AppError> {
        match self.store.get_access_key(id).await {
            Ok(key) => Ok(Some(key)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(AppError::internal("reading the access key", e)),
        }
    }

    /// The user an access key belongs to.
    pub async fn key_user(&self, key: &AccessKey) -> Result<User, AppError> {
        self.store
            .get_user(&key.user)
            .await
            .map_err(|e| AppError::internal("reading the key's user", e))
    }

    /// The policies attached to user `name`.
    pub async fn user_policies(&self, name: &str) -> Result<Vec<Policy>, AppError> {
        self.store
            .user_policies(name)
            .await
            .map_err(|e| AppError::internal("reading the user's policies", e))
    }

    /// Whether the store answers a read (the health check).
    pub async fn healthy(&self) -> Result<(), AppError> {
        self.store
            .list_users()
            .await
            .map(drop)
            .map_err(|e| AppError::internal("reading the store", e))
    }

    /// The unfinished change orders by status, counted by the store (one indexed query), so
    /// every node sharing a database reports the same numbers.
    pub async fn active_change_orders(&self) -> Result<Vec<(ChangeOrderStatus, u64)>, AppError> {
        self.store
            .count_active_change_orders()
            .await
            .map_err(|e| AppError::internal("counting the active change orders", e))
    }
}
