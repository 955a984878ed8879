//! Queries the request pipeline asks before any operation: the access key a signature names,
//! its user and the user's policies, whether the store answers, and the active change orders
//! the metrics report. (The admin API's account commands are in `accounts`.)

use edas_store::{AccessKey, ChangeOrderStatus, Policy, StoreError, User};

use crate::{App, AppError};

impl App {
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
