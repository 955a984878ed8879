//! Queries of what runs: an application's instances as its cluster's runtime reports them now,
//! and its revisions. Reads never wait long on a cluster that does not answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use edas_runtime::{Instance, RuntimeError};
use edas_store::{Application, PageRequest, Revision};

use crate::{App, AppError};

/// How long a read may wait on a cluster before answering from what it knows: reads never
/// wait on a cluster that does not answer (one that is known to be down answers at once).
const READ_BOUND: Duration = Duration::from_millis(500);

/// After a read of a cluster ran out of [`READ_BOUND`], reads of it do not wait at all for this
/// long (a cluster not reached yet must not cost every application of a list its bound).
const SLOW_MEMORY: Duration = Duration::from_secs(10);

/// Clusters whose last read ran out of its bound, and when.
#[derive(Default)]
pub(crate) struct SlowClusters(Mutex<HashMap<String, Instant>>);

impl SlowClusters {
    fn bound(&self, cluster_id: &str) -> Duration {
        let slow = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match slow.get(cluster_id) {
            Some(at) if at.elapsed() < SLOW_MEMORY => Duration::ZERO,
            _ => READ_BOUND,
        }
    }

    fn record(&self, cluster_id: &str, timed_out: bool, bound: Duration) {
        let mut slow = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match (timed_out, bound == READ_BOUND) {
            // It used its whole bound: remember (again) not to wait for it.
            (true, true) => {
                slow.insert(cluster_id.to_owned(), Instant::now());
            }
            (true, false) => {}
            (false, _) => {
                slow.remove(cluster_id);
            }
        }
    }
}

/// An application's instances, as its runtime reports them now or, when its cluster does not
/// answer, as last known: then `unknown` says why, and the answer marks its state unknown.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The instances (every revision that has any).
    pub instances: Vec<Instance>,
    /// Why the instances are not known to be current (the cluster does not answer).
    pub unknown: Option<String>,
}

impl Observed {
    /// `RunningInstanceCount`: ready instances.
    pub fn running(&self) -> usize {
        self.instances.iter().filter(|i| i.ready).count()
    }
}

impl App {
    /// The application's instances (see [`Observed`]). Never fails and never waits on a
    /// cluster that does not answer.
    pub async fn observe(&self, app: &Application) -> Observed {
        let Some(runtime) = self.engine.runtimes().get(&app.cluster_id) else {
            return Observed {
                instances: Vec::new(),
                unknown: Some(format!(
                    "cluster `{}` has no runtime on this server",
                    app.cluster_id
                )),
            };
        };
        let down = runtime.availability().err().map(|e| e.to_string());
        let read = async {
            let mut out = Vec::new();
            let app = edas_engine::app_ref(app);
            for revision in runtime.revisions(&app).await? {
                out.extend(runtime.observe(&app, &revision).await?.instances);
            }
            Ok::<_, RuntimeError>(out)
        };
        let bound = self.slow.bound(&app.cluster_id);
        let result = tokio::time::timeout(bound, read).await;
        self.slow.record(&app.cluster_id, result.is_err(), bound);
        match result {
            Ok(Ok(instances)) => Observed {
                instances,
                unknown: down,
            },
            Ok(Err(e)) => Observed {
                instances: Vec::new(),
                unknown: Some(down.unwrap_or_else(|| e.to_string())),
            },
            Err(_) => Observed {
                instances: Vec::new(),
                unknown: Some(down.unwrap_or_else(|| {
                    format!(
                        "cluster `{}` did not answer within {bound:?}",
                        app.cluster_id
                    )
                })),
            },
        }
    }

    /// The application's revisions (one page of the largest size).
    pub async fn revisions(&self, app_id: &str) -> Result<Vec<Revision>, AppError> {
        self.store
            .list_revisions(app_id, PageRequest::new(1, PageRequest::MAX_SIZE))
            .await
            .map(|page| page.items)
            .map_err(|e| AppError::internal("listing the application's revisions", e))
    }
}
