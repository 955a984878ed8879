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
        let runtime = self.available_runtime(&app.cluster_id)?;
        let app_ref = edas_engine::app_ref(app);
        match runtime.logs(&app_ref, instance, request).await {
            Ok(chunks) => Ok(chunks),
            Err(LogError::NoInstance(m)) => Err(AppError::invalid("InstanceName", m)),
            Err(LogError::NoPrevious(m)) => Err(AppError::invalid("Previous", m)),
            Err(LogError::Runtime(RuntimeError::Unsupported(m))) => Err(AppError::Runtime(m)),
            Err(LogError::Runtime(RuntimeError::Unavailable(m))) => Err(AppError::Unavailable(m)),
        }
    }

    /// Revision `number` of application `app_id`, if it has one.
    pub async fn revision(
        &self,
        app_id: &str,
        number: i64,
    ) -> Result<Option<edas_store::Revision>, AppError> {
        match self.store.get_revision(app_id, number).await {
            Ok(r) => Ok(Some(r)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(AppError::internal("reading the revision", e)),
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

    /// What an aborted release left, for the abort's answer: all traffic goes back to the
    /// revision before it while that has instances (the engine's routing of an aborted order),
    /// the new instances stay without traffic. Empty for an order that is not an aborted
    /// release.
    pub async fn aborted_traffic(&self, order_id: &str) -> Result<String, AppError> {
        let view = self.change_order(order_id).await?;
        let state = &view.stored.state;
        if state.status() != edas_release::Status::Terminated
            || state.kind() == edas_release::ChangeKind::Rollback
        {
            return Ok(String::new());
        }
        let new = &state.to_revision().0;
        let desired = state.desired_replicas();
        let new_count = desired
            .iter()
            .find(|(r, _)| &r.0 == new)
            .map_or(0, |(_, n)| *n);
        Ok(match desired.iter().find(|(r, n)| &r.0 != new && *n > 0) {
            Some((stable, n)) => format!(
                "all traffic goes to revision {} ({n} instances) from now on; the {new_count} instances of revision {new} stay, without traffic, until RollbackChangeOrder removes them or a new deploy replaces them",
                stable.0
            ),
            None => format!(
                "revision {new} keeps serving: the revision before it has no instances left; RollbackChangeOrder brings it back"
            ),
        })
    }
}
