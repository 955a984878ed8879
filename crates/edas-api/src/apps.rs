//! What the operations on applications share: reading a live application and its revision
//! document, its policy resource name, the caller as a command's actor, submitting a change
//! through the application layer, and the RAM checks the local cluster asks for.

use edas_app::{Actor, Application, LOCAL_CLUSTER, LocalUse, RevisionDoc, local_use};
use edas_spec::Operation;
use edas_wire::application::ChangeOrderIdBody;

use crate::Api;
use crate::caller::{Call, Caller};
use crate::error::ApiError;
use crate::operations::ram;
use crate::params::required;
use crate::policy::application_arn;

/// A live application, or 404.
pub(crate) async fn live_application(api: &Api, app_id: &str) -> Result<Application, ApiError> {
    Ok(api.app().application(app_id).await?)
}

pub(crate) fn arn(api: &Api, app: &Application) -> String {
    application_arn(
        &api.config().region_id,
        &api.config().account_id,
        &app.namespace_id,
        &app.id,
    )
}

pub(crate) fn revision_doc(app: &Application) -> Result<RevisionDoc, ApiError> {
    Ok(app.spec.clone())
}

/// The caller as the actor of a command, under this request's id.
pub(crate) fn actor(caller: &Caller, request_id: &str) -> Actor {
    Actor {
        name: caller.actor(),
        request_id: request_id.to_owned(),
    }
}

/// Submits a change of an existing application (deploy, configure, scale, start, stop,
/// restart, delete) as a change order; the response is its `ChangeOrderId`.
pub(crate) async fn change_application(
    call: Call<'_>,
    operation: Operation,
    ram_action: &str,
) -> Result<ChangeOrderIdBody, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    let app_id = required(params, "AppId")?;
    let app = live_application(api, app_id).await?;
    caller.authorize(ram_action, &arn(api, &app))?;
    let doc = revision_doc(&app)?;
    let change = edas_spec::apply(operation, Some(&doc.spec), params)?;
    authorize_local_use(api, caller, Some(&doc.spec), &change.spec)?;
    let change_order_id = api
        .app()
        .change(&app, &doc.spec, change, &actor(caller, request_id))
        .await?;
    metrics::counter!("edasd_change_orders_submitted_total", "action" => operation.action())
        .increment(1);
    Ok(ChangeOrderIdBody { change_order_id })
}

/// An application on `local` is code run on edasd's host: every change of one needs
/// `edas:UseLocalCluster` on the cluster, and a new or changed host path (a `LocalVolume`, a
/// `file://` package) `edas:UseLocalHostPath` too, beyond the right for the change itself.
/// Administrators have both; nobody else unless a policy grants them.
pub(crate) fn authorize_local_use(
    api: &Api,
    caller: &Caller,
    current: Option<&edas_spec::AppSpec>,
    next: &edas_spec::AppSpec,
) -> Result<(), ApiError> {
    let new_host_path = match local_use(current, next) {
        LocalUse::None => return Ok(()),
        LocalUse::Cluster => false,
        LocalUse::ClusterAndNewHostPath => true,
    };
    let config = api.config();
    let cluster = crate::policy::cluster_arn(&config.region_id, &config.account_id, LOCAL_CLUSTER);
    caller.authorize(ram::USE_LOCAL_CLUSTER, &cluster)?;
    if new_host_path {
        caller.authorize(ram::USE_LOCAL_HOST_PATH, &cluster)?;
    }
    Ok(())
}
