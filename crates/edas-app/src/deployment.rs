//! GetAppDeployment: the object that runs an application's current template revision, as its
//! cluster has it now (on Kubernetes the Deployment; the local runtime runs processes and
//! refuses, saying so).

use std::sync::Arc;

use edas_runtime::{Runtime, RuntimeError};
use edas_store::Application;

use crate::{App, AppError};

impl App {
    /// The runtime of `cluster_id`, when it answers now.
    pub(crate) fn available_runtime(
        &self,
        cluster_id: &str,
    ) -> Result<&Arc<dyn Runtime>, AppError> {
        let Some(runtime) = self.engine.runtimes().get(cluster_id) else {
            return Err(AppError::Unavailable(format!(
                "cluster `{cluster_id}` has no runtime on this server"
            )));
        };
        runtime
            .availability()
            .map_err(|e| AppError::Unavailable(e.to_string()))?;
        Ok(runtime)
    }

    /// The Deployment of `app`'s current template revision as JSON text.
    pub async fn deployment(&self, app: &Application) -> Result<String, AppError> {
        let runtime = self.available_runtime(&app.cluster_id)?;
        let revision = &app.spec.template_revision;
        match runtime
            .deployment(&edas_engine::app_ref(app), revision)
            .await
        {
            Ok(Some(json)) => Ok(json),
            Ok(None) => Err(AppError::EntityNotFound(format!(
                "application `{}` has no Deployment for its revision {revision} in cluster `{}` now (stopped, scaled to 0, or not applied yet)",
                app.name, app.cluster_id
            ))),
            Err(RuntimeError::Unsupported(m)) => Err(AppError::Runtime(format!(
                "cluster `{}`: {m}",
                app.cluster_id
            ))),
            Err(RuntimeError::Unavailable(m)) => Err(AppError::Unavailable(m)),
        }
    }
}
