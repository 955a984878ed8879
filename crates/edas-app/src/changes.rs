//! Commands that change applications: insert one, and submit a change (deploy, configure,
//! scale, start, stop, restart, delete, Services) of an existing one. Each becomes one change
//! order, stored with its audit record in one transaction by the engine.

use edas_engine::{CreateApplication, Submission, SubmitError};
use edas_spec::Change;
use edas_store::Application;

use crate::{Actor, App, AppError, FixedNamespaces};

/// A new application and the change order that releases it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// The new application's id.
    pub app_id: String,
    /// The change order releasing it.
    pub change_order_id: String,
}

impl From<SubmitError> for AppError {
    fn from(error: SubmitError) -> AppError {
        match error {
            SubmitError::Invalid(violations) => AppError::Invalid(violations),
            SubmitError::NotFound(m) => AppError::ApplicationNotFound(m),
            SubmitError::Conflict {
                active_change_order,
            } => AppError::Conflict(format!(
                "the application has a change order in progress ({active_change_order}); wait for it to finish or abort it"
            )),
            SubmitError::Runtime(m) => AppError::Runtime(m),
            SubmitError::Unavailable(m) => AppError::Unavailable(m),
            SubmitError::Internal(m) => AppError::internal("storing the change", m),
        }
    }
}

impl App {
    /// InsertK8sApplication: a new application in `namespace_id` (one of `fixed` or one stored,
    /// which must then still exist when the application is stored) on the change's cluster,
    /// which must be registered; on `local` its service ports must be free.
    pub async fn insert(
        &self,
        fixed: FixedNamespaces<'_>,
        namespace_id: &str,
        change: Change,
        actor: &Actor,
    ) -> Result<Created, AppError> {
        self.cluster(&change.spec.cluster_id).await?;
        self.local_service_ports_free(None, &change.spec, "ServiceConfigs")
            .await?;
        let submitted = self
            .engine
            .create_application(CreateApplication {
                app_id: uuid::Uuid::new_v4().to_string(),
                region_id: fixed.region_id.to_owned(),
                namespace_id: namespace_id.to_owned(),
                namespace_stored: !fixed.contains(namespace_id),
                change,
                actor: actor.name.clone(),
                request_id: actor.request_id.clone(),
            })
            .await?;
        Ok(Created {
            app_id: submitted.app_id,
            change_order_id: submitted.change_order_id,
        })
    }

    /// A change of live application `app`, whose current spec is `current`; returns the change
    /// order's id. On `local` changed Services must keep their ports free.
    pub async fn change(
        &self,
        app: &Application,
        current: &edas_spec::AppSpec,
        change: Change,
        actor: &Actor,
    ) -> Result<String, AppError> {
        if change.spec.services != current.services {
            self.local_service_ports_free(Some(&app.id), &change.spec, "ServicePorts")
                .await?;
        }
        // The application as the caller read it: the engine does not read it again.
        let submitted = self
            .engine
            .submit_read(
                Submission {
                    app_id: app.id.clone(),
                    change,
                    actor: actor.name.clone(),
                    request_id: actor.request_id.clone(),
                },
                app.clone(),
            )
            .await?;
        Ok(submitted.change_order_id)
    }
}
