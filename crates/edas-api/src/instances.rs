//! What operators ask day to day: DescribeAppInstanceList (each instance with its revision,
//! version, readiness, restarts and how its last run ended), ListHistoryDeployVersion (the
//! application's revisions), a rollback to any of them (DeployK8sApplication with edasd's
//! `RollbackToRevision`), and an instance's output (`GET /edasd/v1/logs`, streamed).

use std::collections::BTreeMap;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use edas_app::LogRequest;
use edas_spec::AppSpec;
use edas_spec::catalog::Scope;
use edas_spec::model::Artifact;
use edas_spec::{Operation, Params, parse_int};
use edas_wire::application::ChangeOrderIdBody;
use edas_wire::instances::{
    AppInstance, HistoryBody, InstanceListBody, PackageVersion, PackageVersionList,
};
use serde_json::{Map, Value, json};
use tracing::Instrument as _;

use crate::Api;
use crate::apps::{actor, arn, live_application, revision_doc};
use crate::caller::{Caller, encode};
use crate::error::ApiError;
use crate::operations::ram;
use crate::params::{invalid, only, required};
use crate::server::{RequestId, authenticate, receive, respond};

/// DeployK8sApplication's edasd extension: release revision N's complete spec again.
pub(crate) const ROLLBACK_PARAMETER: &str = "RollbackToRevision";

/// The parameters of `GET /edasd/v1/logs`.
pub const LOG_PARAMETERS: &[&str] = &[
    "AppId",
    "InstanceName",
    "Follow",
    "Previous",
    "TailLines",
    "SinceSeconds",
];

/// The version of what a spec runs: its image, its package's `PackageVersion`, else `r<N>`.
fn version_of(spec: &AppSpec, revision: &str) -> (String, &'static str, String) {
    match &spec.artifact {
        Artifact::Image { url, .. } => (url.clone(), "image", url.clone()),
        Artifact::Package(p) => (p.version.clone(), "url", p.url.clone()),
        Artifact::None => (format!("r{revision}"), "command", String::new()),
    }
}

fn boolean(params: &Params, name: &str) -> Result<bool, ApiError> {
    match params.get(name) {
        None | Some("") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(invalid(name, format!("`{v}` is neither true nor false"))),
    }
}

fn count(params: &Params, name: &str) -> Result<Option<u64>, ApiError> {
    match params.get(name) {
        None | Some("") => Ok(None),
        Some(raw) => match parse_int(raw) {
            Some(n) if n >= 0 => Ok(Some(n.unsigned_abs())),
            _ => Err(invalid(
                name,
                format!("`{raw}` is not a non-negative integer"),
            )),
        },
    }
}

/// DescribeAppInstanceList.
pub(crate) async fn describe_instances(
    api: &Api,
    caller: &Caller,
    params: &Params,
) -> Result<Map<String, Value>, ApiError> {
    only(
        params,
        "DescribeAppInstanceList",
        &["AppId", "WithNodeInfo"],
    )?;
    let app_id = required(params, "AppId")?;
    let app = live_application(api, app_id).await?;
    caller.authorize(ram::READ_APPLICATION, &arn(api, &app))?;
    let with_nodes = boolean(params, "WithNodeInfo")?;
    let local = edas_app::service_address(&app.cluster_id).is_some();
    if with_nodes && !local {
        return Err(ApiError::new(
            crate::error::codes::INVALID_PARAMETER_NOT_SUPPORTED,
            "WithNodeInfo=true: edasd does not track the nodes of a Kubernetes cluster's pods",
        ));
    }
    let observed = api.app().observe(&app).await;
    let revisions = api.app().revisions(&app.id).await?;
    let versions: BTreeMap<String, String> = revisions
        .iter()
        .map(|r| {
            let n = r.number.to_string();
            (n.clone(), version_of(&r.spec.spec, &n).0)
        })
        .collect();
    let newest = revision_doc(&app)?.template_revision;
    let several = observed
        .instances
        .iter()
        .any(|i| i.revision != observed.instances[0].revision);
    let releasing = app.state == "DEPLOYING";
    let group_id = format!("{}-default", app.id);
    let list = observed
        .instances
        .iter()
        .map(|i| {
            let mut container = json!({
                "name": app.name.to_ascii_lowercase(),
                "ready": i.ready,
                "restartCount": i.restarts,
                "state": if i.failed.is_some() {
                    json!({"waiting": {"reason": "Failed", "message": i.failed}})
                } else {
                    json!({"running": {}})
                },
            });
            if let Some(last) = &i.last_exit {
                container["lastState"] = json!({"terminated": {"reason": last}});
            }
            let pod = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": i.name,
                    "namespace": app.k8s_namespace,
                    "labels": {
                        "edas.oam.appid": app.id,
                        "edas.oam.acname": app.name,
                        "edas.oam.revision": i.revision,
                    },
                },
                "spec": {"containers": [{
                    "name": app.name.to_ascii_lowercase(),
                    "ports": i.port.map(|p| vec![json!({"containerPort": p})]).unwrap_or_default(),
                }]},
                "status": {
                    "phase": if i.failed.is_some() { "Failed" } else { "Running" },
                    "podIP": i.ip,
                    "conditions": [{"type": "Ready", "status": if i.ready { "True" } else { "False" }}],
                    "containerStatuses": [container],
                },
            });
            AppInstance {
                app_id: app.id.clone(),
                canary: releasing && several && i.revision == newest,
                group_id: group_id.clone(),
                group_name: "_DEFAULT_GROUP".to_owned(),
                node_labels: if with_nodes {
                    json!({"kubernetes.io/hostname": "local"}).to_string()
                } else {
                    "{}".to_owned()
                },
                node_name: if local { "local".to_owned() } else { String::new() },
                pod_raw: pod.to_string(),
                version: versions.get(&i.revision).cloned().unwrap_or_default(),
                instance_name: i.name.clone(),
                revision: i.revision.clone(),
                ready: i.ready,
                restarts: i64::from(i.restarts),
                last_exit_reason: i.last_exit.clone().unwrap_or_default(),
                failed: i.failed.clone().unwrap_or_default(),
                ip: i.ip.clone().unwrap_or_default(),
                port: i.port.map_or(0, i64::from),
            }
        })
        .collect();
    if let Some(why) = &observed.unknown {
        tracing::warn!(app = %app.id, reason = %why, "instances answered from the last known state");
    }
    encode(&InstanceListBody {
        instance_list: list,
    })
}

/// ListHistoryDeployVersion: every revision, newest first, with the change order that made it.
pub(crate) async fn list_history(
    api: &Api,
    caller: &Caller,
    params: &Params,
) -> Result<Map<String, Value>, ApiError> {
    only(params, "ListHistoryDeployVersion", &["AppId"])?;
    let app_id = required(params, "AppId")?;
    let app = live_application(api, app_id).await?;
    caller.authorize(ram::READ_APPLICATION, &arn(api, &app))?;
    let revisions = api.app().revisions(&app.id).await?;
    let orders = api.app().change_orders(&app.id).await?;
    let versions = revisions
        .iter()
        .map(|r| {
            let n = r.number.to_string();
            let (version, kind, url) = version_of(&r.spec.spec, &n);
            let order = orders.iter().find(|o| o.revision == Some(r.number));
            let at = r.created_at.as_millisecond();
            PackageVersion {
                app_id: app.id.clone(),
                create_time: at,
                description: order
                    .map(|o| {
                        if o.description.is_empty() {
                            o.co_type.clone()
                        } else {
                            o.description.clone()
                        }
                    })
                    .unwrap_or_default(),
                id: n,
                package_version: version,
                public_url: url.clone(),
                r#type: kind.to_owned(),
                update_time: order.map_or(at, |o| o.updated_at.as_millisecond()),
                war_url: url,
                revision: r.number,
                change_order_id: order.map(|o| o.id.clone()).unwrap_or_default(),
                outcome: order
                    .map(|o| format!("{:?}", o.status).to_ascii_lowercase())
                    .unwrap_or_default(),
                creator: order.and_then(|o| o.creator.clone()).unwrap_or_default(),
                current: r.number == app.current_revision,
            }
        })
        .collect();
    encode(&HistoryBody {
        package_version_list: PackageVersionList {
            package_version: versions,
        },
    })
}

/// DeployK8sApplication with `RollbackToRevision=N`: revision N's complete spec released
/// again as a new revision, in batches like any release. Only the release's own parameters
/// (`UpdateStrategy`, `BatchTimeout`, `ChangeOrderDesc`, `TrafficControlStrategy` …) may come
/// with it: a parameter that would change the spec is refused, naming it.
pub(crate) async fn rollback(
    api: &Api,
    caller: &Caller,
    params: &Params,
    request_id: &str,
) -> Result<Map<String, Value>, ApiError> {
    let app_id = required(params, "AppId")?;
    let app = live_application(api, app_id).await?;
    caller.authorize(ram::MANAGE_APPLICATION, &arn(api, &app))?;
    let raw = required(params, ROLLBACK_PARAMETER)?;
    let revision = match parse_int(raw) {
        Some(n) if n >= 1 => n,
        _ => {
            return Err(invalid(
                ROLLBACK_PARAMETER,
                format!("`{raw}` is not a revision number (1 or more)"),
            ));
        }
    };
    let spec_changing: Vec<&str> = params
        .iter()
        .map(|(name, _)| name)
        .filter(|name| *name != ROLLBACK_PARAMETER && *name != "RegionId")
        .filter(|name| edas_spec::catalog::doc(name).is_some_and(|d| d.scope == Scope::Application))
        .collect();
    if !spec_changing.is_empty() {
        return Err(invalid(
            spec_changing[0],
            format!(
                "{ROLLBACK_PARAMETER} releases revision {revision}'s whole spec again; it cannot be combined with {}, which would change it (give only release parameters such as UpdateStrategy)",
                spec_changing.join(", ")
            ),
        ));
    }
    let rest: Vec<(String, String)> = params
        .iter()
        .filter(|(name, _)| *name != ROLLBACK_PARAMETER)
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let rest = Params::from_pairs(rest)?;
    let current = revision_doc(&app)?.spec;
    let change = edas_spec::apply(Operation::DeployK8sApplication, Some(&current), &rest)?;
    // Going back is a change like any other: on `local` it needs the cluster's right (and a
    // host path the current spec lacks, its own).
    let Some(target) = api.app().revision(&app.id, revision).await? else {
        return Err(invalid(
            ROLLBACK_PARAMETER,
            format!(
                "the application has no revision {revision} (it is at revision {})",
                app.current_revision
            ),
        ));
    };
    crate::apps::authorize_local_use(api, caller, Some(&current), &target.spec.spec)?;
    let change_order_id = api
        .app()
        .rollback_to_revision(
            &app,
            revision,
            change.release,
            ROLLBACK_PARAMETER,
            &actor(caller, request_id),
        )
        .await?;
    metrics::counter!("edasd_change_orders_submitted_total", "action" => "DeployK8sApplication")
        .increment(1);
    encode(ChangeOrderIdBody { change_order_id })
}

/// `GET /edasd/v1/logs?AppId=…&InstanceName=…[&Follow=true][&Previous=true][&TailLines=N]
/// [&SinceSeconds=S]`: an instance's output as `text/plain`, streamed (with `Follow`, until
/// the run ends or the client goes away). Signed like every request; allowed to whoever may
/// read the application (`edas:ReadApplication`). Refusals are the EDAS error envelope.
pub(crate) async fn logs(State(api): State<Api>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let request_id = RequestId::of(&parts);
    let span = tracing::info_span!("logs", request_id = %request_id, path = %parts.uri.path());
    async move {
        let started = Instant::now();
        match open_logs(&api, parts, body, &request_id).await {
            Ok((chunks, permit)) => {
                tracing::info!(status = 200, "streaming an instance's output");
                metrics::counter!("edasd_requests_total", "action" => "edasd.logs", "code" => "200")
                    .increment(1);
                // The permit lives as long as the body streams.
                let stream =
                    futures_util::stream::unfold((chunks, permit), |(mut rx, permit)| async move {
                        let chunk = rx.recv().await?;
                        Some((chunk.map_err(std::io::Error::other), (rx, permit)))
                    });
                let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                if let Ok(v) = HeaderValue::from_str(&request_id) {
                    headers.insert("x-acs-request-id", v);
                }
                response
            }
            Err(e) => respond(Err(e), &request_id, "edasd.logs", started),
        }
    }
    .instrument(span)
    .await
}

async fn open_logs(
    api: &Api,
    parts: axum::http::request::Parts,
    body: Body,
    request_id: &str,
) -> Result<(edas_app::LogChunks, crate::stream::Permit), ApiError> {
    let _ = request_id;
    if parts.method != axum::http::Method::GET {
        return Err(ApiError::new(
            crate::error::codes::API_NOT_FOUND,
            format!(
                "{} /edasd/v1/logs: the logs are read with GET",
                parts.method
            ),
        ));
    }
    let received = receive(parts, body).await?;
    let caller = authenticate(api, &received.signed).await?;
    if !received.signed.body().is_empty() {
        return Err(ApiError::new(
            crate::error::codes::INVALID_PARAMETER,
            "GET /edasd/v1/logs takes its parameters in the query string; the body must be empty",
        ));
    }
    let params = Params::from_pairs(received.signed.query().to_vec())?;
    only(&params, "edasd logs", LOG_PARAMETERS)?;
    let app_id = required(&params, "AppId")?;
    let instance = required(&params, "InstanceName")?;
    let request = LogRequest {
        follow: boolean(&params, "Follow")?,
        previous: boolean(&params, "Previous")?,
        tail_lines: count(&params, "TailLines")?,
        since_seconds: count(&params, "SinceSeconds")?,
    };
    let app = api.app().application(app_id).await?;
    caller.authorize(ram::READ_APPLICATION, &arn(api, &app))?;
    let permit = api.open_stream(&caller.user.name)?;
    let chunks = api.app().instance_logs(&app, instance, &request).await?;
    Ok((chunks, permit))
}

/// Whether a DeployK8sApplication is a rollback to a revision.
pub(crate) fn is_rollback(params: &Params) -> bool {
    params.get(ROLLBACK_PARAMETER).is_some()
}
