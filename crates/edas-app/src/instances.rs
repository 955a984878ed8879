//! What operators ask about an application's instances and history: an instance's output
//! (through the runtime port's `logs`) and a rollback to any stored revision (the engine's
//! `rollback_to_revision`: that revision's complete spec released again as a new revision,
//! in batches like any release).

use edas_runtime::{LogChunks, LogError, LogRequest, RuntimeError};
use edas_spec::ReleaseSettings;
use edas_store::{Application, StoreError};

use crate::{Actor, App, AppError};

impl App {
    /// The output of instance `instance` of `app` (see [`LogRequest`]). An unknown instance
    /// is refused naming `InstanceName`, `previous` of an instance that never restarted
    /// naming `Previous`.
    pub async fn instance_logs(
        &self,
        app: &Application,
        instance: &str,
        request: &LogRequest,
    ) -> Result<LogChunks, AppError> {
        let Some(runtime) = self.engine.runtimes().get(&app.cluster_id) else {
            return Err(AppError::Unavailable(format!(
                "cluster `{}` has no runtime on this server",
                app.cluster_id
            )));
        };
        if let Err(e) = runtime.availability() {
            return Err(AppError::Unavailable(e.to_string()));
        }
        let app_ref = edas_engine::app_ref(app);
        match runtime.logs(&app_ref, instance, request).await {
            Ok(chunks) => Ok(chunks),
            Err(LogError::NoInstance(m)) => Err(AppError::invalid("InstanceName", m)),
            Err(LogError::NoPrevious(m)) => Err(AppError::invalid("Previous", m)),
            Err(LogError::Runtime(RuntimeError::Unsupported(m))) => Err(AppError::Runtime(m)),
            Err(LogError::Runtime(RuntimeError::Unavailable(m))) => Err(AppError::Unavailable(m)),
        }
    }

    /// Releases revision `revision` of `app` again (its whole spec, as a new revision), with
    /// `release`'s batches; returns the change order's id. A revision the application never
    /// had is refused naming `parameter`.
    pub async fn rollback_to_revision(
        &self,
        app: &Application,
        revision: i64,
        release: ReleaseSettings,
        parameter: &str,
        actor: &Actor,
    ) -> Result<String, AppError> {
        match self.store.get_revision(&app.id, revision).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => {
                return Err(AppError::invalid(
                    parameter,
                    format!(
                        "the application has no revision {revision} (it is at revision {})",
                        app.current_revision
                    ),
                ));
            }
            Err(e) => return Err(AppError::internal("reading the revision", e)),
        }
        let submitted = self
            .engine
            .rollback_to_revision(&app.id, revision, release, &actor.name, &actor.request_id)
            .await?;
        Ok(submitted.change_order_id)
    }
}
