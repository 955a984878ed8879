//! Release notifications: subscriptions (validated by edas-notify's sinks, their URL and
//! secret sealed by the store), their deliveries, and the release events the push stream
//! reads.

use edas_store::{
    AuditEntry, Delivery, DeliveryState, EventScope, NewSubscription, Sensitive, StoreError,
    StoredEvent, Subscription, SubscriptionTarget,
};
use jiff::Timestamp;

use crate::App;

/// Why a notification command failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A parameter is invalid (the EDAS parameter name and why).
    #[error("{parameter}: {reason}")]
    Invalid {
        parameter: &'static str,
        reason: String,
    },
    /// The subscription or application does not exist.
    #[error("{entity} {id:?} not found")]
    NotFound { entity: &'static str, id: String },
    /// The store failed; the message is for the log.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for NotifyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { entity, id } => NotifyError::NotFound { entity, id },
            other => NotifyError::Internal(other.to_string()),
        }
    }
}

/// A subscription to create.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRequest {
    /// `None`: every application.
    pub app_id: Option<String>,
    /// Event types (`change_order.failed` …); empty: all.
    pub kinds: Vec<String>,
    pub sink: String,
    pub url: Sensitive<String>,
    pub secret: Option<Sensitive<String>>,
}

impl App {
    /// Validates and stores a subscription (URL and secret sealed) with its audit record
    /// (`audit` of the new subscription's id). Nothing is stored when a parameter is invalid.
    pub async fn create_subscription(
        &self,
        req: SubscriptionRequest,
        audit: impl FnOnce(&str) -> AuditEntry,
        now: Timestamp,
    ) -> Result<Subscription, NotifyError> {
        let sink = edas_notify::validate(
            &req.sink,
            req.url.expose(),
            req.secret.as_ref().map(|s| s.expose().as_str()),
            &req.kinds,
        )
        .map_err(|e| NotifyError::Invalid {
            parameter: e.parameter,
            reason: e.reason,
        })?;
        if let Some(app_id) = &req.app_id {
            match self.store.get_application(app_id).await {
                Ok(app) if !app.deleted => {}
                Ok(_) | Err(StoreError::NotFound { .. }) => {
                    return Err(NotifyError::Invalid {
                        parameter: "AppId",
                        reason: format!("no application {app_id:?}"),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut kinds = req.kinds;
        kinds.sort();
        kinds.dedup();
        let id = format!("sub-{}", uuid::Uuid::new_v4().simple());
        let audit = audit(&id);
        let new = NewSubscription {
            id,
            app_id: req.app_id,
            kinds,
            sink: sink.as_str().to_owned(),
            target: Sensitive::new(SubscriptionTarget {
                url: req.url.into_inner(),
                secret: req.secret.map(Sensitive::into_inner),
            }),
        };
        Ok(self.store.create_subscription(new, audit, now).await?)
    }

    /// Every subscription, oldest first.
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, NotifyError> {
        Ok(self.store.list_subscriptions().await?)
    }

    /// Deletes a subscription with its deliveries; whether it existed.
    pub async fn delete_subscription(
        &self,
        id: &str,
        audit: AuditEntry,
        now: Timestamp,
    ) -> Result<bool, NotifyError> {
        Ok(self.store.delete_subscription(id, audit, now).await?)
    }

    /// A subscription's latest deliveries (at most `limit`, newest first), of one state or all.
    pub async fn deliveries(
        &self,
        id: &str,
        state: Option<DeliveryState>,
        limit: u32,
    ) -> Result<Vec<Delivery>, NotifyError> {
        self.store.get_subscription(id).await?;
        Ok(self.store.list_deliveries(id, state, limit).await?)
    }

    /// Up to `limit` release events of `scope` after sequence number `after`.
    pub async fn events_after(
        &self,
        scope: &EventScope,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, NotifyError> {
        Ok(self.store.events_after(scope, after, limit).await?)
    }

    /// Changes whenever a commit may have recorded events (on PostgreSQL, any edasd process's):
    /// the push stream waits on it.
    pub fn events_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.store.events_signal()
    }
}
