//! What the metrics scrape reports per application: its current revision and its desired,
//! ready and available instances and their restarts, read at scrape time (the store, and each
//! runtime's cached view through [`App::observe`], which never waits on a cluster that does
//! not answer), plus the notification outbox's backlog.

use edas_store::{ApplicationFilter, OutboxCounts};

use crate::{App, AppError};

/// One live application's gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppGauges {
    pub app_id: String,
    /// The number of its current revision.
    pub revision: i64,
    /// Instances its current spec asks for (0 while stopped).
    pub desired: u32,
    /// Ready instances, every revision.
    pub ready: u32,
    /// Ready instances of the current template revision (what the spec runs).
    pub available: u32,
    /// Restarts of its instances, summed.
    pub restarts: u64,
    /// Whether the instances are unknown (the cluster does not answer).
    pub unknown: bool,
}

impl App {
    /// The gauges of every live application.
    pub async fn fleet(&self) -> Result<Vec<AppGauges>, AppError> {
        let apps = self.applications(&ApplicationFilter::default()).await?;
        let mut out = Vec::with_capacity(apps.len());
        for app in apps {
            let observed = self.observe(&app).await;
            let template = &app.spec.template_revision;
            let spec = &app.spec.spec;
            out.push(AppGauges {
                revision: app.current_revision,
                desired: if spec.stopped { 0 } else { spec.replicas },
                ready: count(observed.instances.iter().filter(|i| i.ready)),
                available: count(
                    observed
                        .instances
                        .iter()
                        .filter(|i| i.ready && i.failed.is_none() && &i.revision == template),
                ),
                restarts: observed
                    .instances
                    .iter()
                    .map(|i| u64::from(i.restarts))
                    .sum(),
                unknown: observed.unknown.is_some(),
                app_id: app.id,
            });
        }
        Ok(out)
    }

    /// The notification deliveries still pending and those given up on.
    pub async fn outbox(&self) -> Result<OutboxCounts, AppError> {
        self.store
            .outbox_counts()
            .await
            .map_err(|e| AppError::internal("counting the outbox", e))
    }
}

fn count<T>(items: impl Iterator<Item = T>) -> u32 {
    u32::try_from(items.count()).unwrap_or(u32::MAX)
}
