//! What the operations on applications share: reading a live application and its revision
//! document, its policy resource name, submitting a change to the engine (with the local
//! cluster's rules checked first), and the engine's refusals as EDAS errors.

use edas_app::Application;
use edas_engine::{RevisionDoc, Submission, SubmitError};
use edas_spec::{Operation, Params};
use serde_json::{Map, Value};

use crate::Api;
use crate::caller::{Caller, internal};
use crate::error::{ApiError, codes};
use crate::operations::ram;
use crate::params::{invalid, required};
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
    RevisionDoc::from_value(&app.spec).map_err(|e| {
        internal(
            &format!("decoding the stored spec of application {}", app.id),
            e,
        )
    })
}

pub(crate) fn submit_error(error: SubmitError) -> ApiError {
    match error {
        SubmitError::Invalid(violations) => ApiError::from(violations),
        SubmitError::NotFound(message) => ApiError::new(codes::APPLICATION_NOT_FOUND, message),
        SubmitError::Conflict {
            active_change_order,
        } => ApiError::new(
            codes::CHANGE_ORDER_CONFLICT,
            format!(
                "the application has a change order in progress ({active_change_order}); wait for it to finish or abort it"
            ),
        ),
        SubmitError::Runtime(message) => ApiError::new(codes::RUNTIME_REFUSED, message),
        SubmitError::Unavailable(message) => ApiError::new(codes::CLUSTER_UNAVAILABLE, message),
        SubmitError::Internal(message) => internal("storing the change", message),
    }
}

/// Submits a change of an existing application (deploy, configure, scale, start, stop,
/// restart, delete) as a change order; the response is its `ChangeOrderId`.
pub(crate) async fn change_application(
    api: &Api,
    caller: &Caller,
    params: &Params,
    request_id: &str,
    operation: Operation,
    ram_action: &str,
) -> Result<Map<String, Value>, ApiError> {
    let app_id = required(params, "AppId")?;
    let app = live_application(api, app_id).await?;
    caller.authorize(ram_action, &arn(api, &app))?;
    let doc = revision_doc(&app)?;
    let change = edas_spec::apply(operation, Some(&doc.spec), params)?;
    authorize_local_use(api, caller, Some(&doc.spec), &change.spec)?;
    if change.spec.services != doc.spec.services {
        local_service_ports_free(api, Some(&app.id), &change.spec, "ServicePorts").await?;
    }
    let submitted = api
        .engine()
        .submit(Submission {
            app_id: app.id.clone(),
            change,
            actor: caller.actor(),
            request_id: request_id.to_owned(),
        })
        .await
        .map_err(submit_error)?;
    metrics::counter!("edasd_change_orders_submitted_total", "action" => operation.action())
        .increment(1);
    let mut out = Map::new();
    out.insert(
        "ChangeOrderId".into(),
        Value::from(submitted.change_order_id),
    );
    Ok(out)
}

/// The built-in cluster whose applications run as processes on edasd's own host.
const LOCAL_CLUSTER: &str = "local";

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
    if next.cluster_id != LOCAL_CLUSTER {
        return Ok(());
    }
    let config = api.config();
    let cluster = crate::policy::cluster_arn(&config.region_id, &config.account_id, LOCAL_CLUSTER);
    caller.authorize(ram::USE_LOCAL_CLUSTER, &cluster)?;
    if host_paths(next)
        .iter()
        .any(|p| !current.is_some_and(|c| host_paths(c).contains(p)))
    {
        caller.authorize(ram::USE_LOCAL_HOST_PATH, &cluster)?;
    }
    Ok(())
}

/// The host paths a spec reads on `local`: `LocalVolume` sources and a `file://` package.
fn host_paths(spec: &edas_spec::AppSpec) -> Vec<&str> {
    let mut paths: Vec<&str> = spec
        .local_volumes
        .iter()
        .map(|v| v.node_path.as_str())
        .collect();
    if let edas_spec::model::Artifact::Package(package) = &spec.artifact
        && package.url.starts_with("file://")
    {
        paths.push(&package.url);
    }
    paths
}

/// On cluster `local` every service port is one listening port on 127.0.0.1, so two applications
/// cannot both have a Service on the same port (on Kubernetes each Service has its own cluster
/// IP and this does not apply). Refused at the request, naming `parameter`, rather than failing
/// when the routing is applied.
pub(crate) async fn local_service_ports_free(
    api: &Api,
    app_id: Option<&str>,
    spec: &edas_spec::AppSpec,
    parameter: &str,
) -> Result<(), ApiError> {
    if spec.cluster_id != LOCAL_CLUSTER || spec.services.is_empty() {
        return Ok(());
    }
    let taken = api
        .store()
        .service_port_in_use(LOCAL_CLUSTER, &spec.service_ports(), app_id)
        .await
        .map_err(|e| internal("looking up service ports", e))?;
    match taken {
        None => Ok(()),
        Some(other) => Err(invalid(
            parameter,
            format!(
                "port {} is already a service port of application `{}` ({}) on cluster local, where every service port is a port on 127.0.0.1; choose another port",
                other.port, other.app_name, other.app_id
            ),
        )),
    }
}
