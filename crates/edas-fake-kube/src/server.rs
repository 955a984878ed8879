//! The HTTP layer: Kubernetes REST paths, watch streaming, and the `/_fake/...` control API.
//!
//! Control API (JSON bodies, for black-box tests driving the binary):
//! - `POST /_fake/faults/api` with an [`ApiFault`] (`{"method":"GET","path":"/api/v1/*","status":503,"times":2}`
//!   or `{"path":"...","delayMs":3000}`);
//! - `POST /_fake/faults/pods` with a [`PodFault`] (`{"effect":"neverReady","selector":"app=web"}`,
//!   `{"effect":"crash","image":"bad:1","crashAfterMs":500}`);
//! - `DELETE /_fake/faults` removes every fault;
//!   effects `unschedulable`, `imagePullError`, `configError` take an optional `message`);
//! - `POST /_fake/rbac/deny` with a [`DeniedRight`] (`{"verb":"deletecollection","resource":"configmaps"}`):
//!   such calls answer 403 and SelfSubjectAccessReviews say `allowed: false` (until `DELETE /_fake/faults`);
//! - `POST /_fake/watches/drop` ends every open watch stream;
//! - `POST /_fake/watches/drain` makes every open watch stream go silent without closing, as on a
//!   draining API server (new watches are served normally);
//! - `POST /_fake/compact` forgets the event history (older resourceVersions get 410 Gone);
//! - `POST /_fake/logs/{namespace}/{pod}/{container}` appends the body to a container's output;
//! - `POST /_fake/hpa/{namespace}/{name}` with `{"desiredReplicas": 5}` plays the HPA controller
//!   (see [`crate::hpa`]) and answers the count set;
//! - `GET /_fake/healthz` answers `ok`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use crate::controller::selector_string;
use crate::error::ApiError;
use crate::faults::{ApiFault, ApiFaultAction, DeniedRight, Faults, PodFault};
use crate::resources::{self, RESOURCES, ResourceId};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Event, EventType, PatchKind, Propagation, Store, Subresource, WriteOptions};

/// Shared state of the HTTP handlers.
pub struct AppState {
    pub store: Arc<Store>,
    pub faults: Arc<Faults>,
    pub gateway_api: bool,
    pub bookmark_interval: Duration,
    /// Bumped to end every open watch.
    pub drop_watches: watch::Sender<u64>,
    /// Bumped to make every open watch go silent (a draining API server).
    pub drain_watches: watch::Sender<u64>,
    /// The simulated containers' output (the pods' `log` subresource).
    pub logs: Arc<crate::logs::Logs>,
}

/// The router serving the Kubernetes API and the control API.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/_fake/healthz", get(|| async { "ok" }))
        .route("/_fake/faults/api", post(add_api_fault))
        .route("/_fake/faults/pods", post(add_pod_fault))
        .route("/_fake/faults", delete(clear_faults))
        .route("/_fake/watches/drop", post(drop_watches))
        .route("/_fake/watches/drain", post(drain_watches))
        .route("/_fake/rbac/deny", post(deny_right))
        .route("/_fake/compact", post(compact))
        .route("/_fake/hpa/{namespace}/{name}", post(autoscale))
        .route(
            "/_fake/logs/{namespace}/{pod}/{container}",
            post(
                |State(app): State<Arc<AppState>>,
                 axum::extract::Path((ns, pod, c)): axum::extract::Path<(
                    String,
                    String,
                    String,
                )>,
                 body: String| async move {
                    app.logs.write(&ns, &pod, &c, &body);
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .fallback(kube_api)
        .with_state(state)
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    let mut text = body.to_string();
    text.push('\n');
    (code, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

fn table_response(value: &Value) -> Response {
    let mut text = value.to_string();
    text.push('\n');
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, crate::table::TABLE_CONTENT_TYPE)],
        text,
    )
        .into_response()
}

fn error_response(error: &ApiError) -> Response {
    json_response(
        StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &error.status(),
    )
}

fn control_error(message: String) -> Response {
    error_response(&ApiError::bad_request(message))
}

async fn add_api_fault(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    match serde_json::from_slice::<ApiFault>(&body) {
        Ok(fault) => match app.faults.add_api(fault) {
            Ok(()) => json_response(StatusCode::CREATED, &json!({"installed": true})),
            Err(message) => control_error(message),
        },
        Err(error) => control_error(format!("invalid ApiFault: {error}")),
    }
}

const POD_EFFECTS: [&str; 5] = [
    "neverReady",
    "crash",
    "unschedulable",
    "imagePullError",
    "configError",
];

async fn deny_right(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    match serde_json::from_slice::<DeniedRight>(&body) {
        Ok(right) => match app.faults.deny(right) {
            Ok(()) => json_response(StatusCode::CREATED, &json!({"denied": true})),
            Err(message) => control_error(message),
        },
        Err(error) => control_error(format!("invalid DeniedRight: {error}")),
    }
}

async fn drain_watches(State(app): State<Arc<AppState>>) -> Response {
    app.drain_watches.send_modify(|generation| *generation += 1);
    json_response(StatusCode::OK, &json!({"draining": true}))
}

async fn add_pod_fault(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    // serde names the bad value but not the field; name the field for the one enum.
    if let Ok(value) = serde_json::from_slice::<Value>(&body) {
        match value.get("effect") {
            Some(Value::String(effect)) if POD_EFFECTS.contains(&effect.as_str()) => {}
            Some(other) => {
                return control_error(format!(
                    "effect: {other} is not one of {}",
                    POD_EFFECTS.join(", ")
                ));
            }
            None => {
                return control_error(format!(
                    "effect: required (one of {})",
                    POD_EFFECTS.join(", ")
                ));
            }
        }
    }
    match serde_json::from_slice::<PodFault>(&body) {
        Ok(fault) => match app.faults.add_pod(fault) {
            Ok(()) => {
                app.store.controller_wake.notify_one();
                json_response(StatusCode::CREATED, &json!({"installed": true}))
            }
            Err(message) => control_error(message),
        },
        Err(error) => control_error(format!("invalid PodFault: {error}")),
    }
}

async fn clear_faults(State(app): State<Arc<AppState>>) -> Response {
    app.faults.clear();
    app.store.controller_wake.notify_one();
    json_response(StatusCode::OK, &json!({"cleared": true}))
}

async fn drop_watches(State(app): State<Arc<AppState>>) -> Response {
    app.drop_watches.send_modify(|generation| *generation += 1);
    json_response(StatusCode::OK, &json!({"dropped": true}))
}

async fn compact(State(app): State<Arc<AppState>>) -> Response {
    app.store.compact();
    json_response(
        StatusCode::OK,
        &json!({"compactedAt": app.store.current_rv().to_string()}),
    )
}

/// The body of `POST /_fake/hpa/{namespace}/{name}`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Autoscale {
    desired_replicas: i32,
}

async fn autoscale(
    State(app): State<Arc<AppState>>,
    axum::extract::Path((namespace, name)): axum::extract::Path<(String, String)>,
    body: Bytes,
) -> Response {
    match serde_json::from_slice::<Autoscale>(&body) {
        Ok(request) => {
            match crate::hpa::autoscale(&app.store, &namespace, &name, request.desired_replicas) {
                Ok(count) => json_response(StatusCode::OK, &json!({"desiredReplicas": count})),
                Err(message) => control_error(message),
            }
        }
        Err(error) => control_error(format!(
            "invalid body (want {{\"desiredReplicas\": N}}): {error}"
        )),
    }
}

/// A parsed resource path.
struct Target {
    resource: ResourceId,
    /// Namespace from the path (`None` for cluster-wide collections and cluster-scoped types).
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

enum Route {
    Json(Value),
    Resource(Target),
}

fn route(path: &str, gateway_api: bool) -> Result<Route, ApiError> {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let not_found = || ApiError::no_route(path);
    let (group, version, rest) = match segments.as_slice() {
        ["version"] => return Ok(Route::Json(resources::version_info())),
        ["api"] => return Ok(Route::Json(resources::core_versions())),
        ["apis"] => return Ok(Route::Json(resources::group_list(gateway_api))),
        ["openapi", "v3"] => return Ok(Route::Json(resources::openapi_v3_root(gateway_api))),
        ["openapi", "v3", "api", version] => {
            return resources::openapi_v3_group_version("", version, gateway_api)
                .map(Route::Json)
                .ok_or_else(not_found);
        }
        ["openapi", "v3", "apis", group, version] => {
            return resources::openapi_v3_group_version(group, version, gateway_api)
                .map(Route::Json)
                .ok_or_else(not_found);
        }
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group] => {
            return resources::group_document(group, gateway_api)
                .map(Route::Json)
                .ok_or_else(not_found);
        }
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(not_found()),
    };
    if rest.is_empty() {
        return resources::resource_list(group, version, gateway_api)
            .map(Route::Json)
            .ok_or_else(not_found);
    }
    let lookup = |plural: &str| resources::find(group, version, plural, gateway_api);
    let namespaced_path = rest.len() >= 3
        && rest[0] == "namespaces"
        && lookup(rest[2]).is_some_and(|r| RESOURCES[r].namespaced);
    let (resource, namespace, tail) = if namespaced_path {
        (
            lookup(rest[2]).ok_or_else(not_found)?,
            Some(rest[1].to_owned()),
            &rest[3..],
        )
    } else {
        (lookup(rest[0]).ok_or_else(not_found)?, None, &rest[1..])
    };
    if tail.len() > 2 || (!namespaced_path && RESOURCES[resource].namespaced && !tail.is_empty()) {
        return Err(not_found());
    }
    let subresource = tail.get(1).map(|s| (*s).to_owned());
    let rt = &RESOURCES[resource];
    if let Some(sub) = &subresource {
        let served =
            (sub == "status" && rt.status_subresource) || (sub == "scale" && rt.scale_subresource);
        if !served {
            return Err(not_found());
        }
    }
    Ok(Route::Resource(Target {
        resource,
        namespace,
        name: tail.first().map(|s| (*s).to_owned()),
        subresource,
    }))
}

const KNOWN_PARAMS: &[&str] = &[
    "pretty",
    "watch",
    "resourceVersion",
    "resourceVersionMatch",
    "allowWatchBookmarks",
    "sendInitialEvents",
    "timeoutSeconds",
    "labelSelector",
    "fieldSelector",
    "limit",
    "continue",
    "fieldManager",
    "fieldValidation",
    "force",
    "dryRun",
    "propagationPolicy",
    "orphanDependents",
    "gracePeriodSeconds",
];

fn parse_query(uri: &Uri) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(uri.query().unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
    let mut query = HashMap::new();
    for (key, value) in pairs {
        if !KNOWN_PARAMS.contains(&key.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {key:?} (edas-fake-kube serves: {})",
                KNOWN_PARAMS.join(", ")
            )));
        }
        query.insert(key, value);
    }
    Ok(query)
}

fn flag(query: &HashMap<String, String>, key: &str) -> Result<bool, ApiError> {
    match query.get(key).map(String::as_str) {
        None | Some("" | "false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "{key}: invalid boolean {other:?}"
        ))),
    }
}

fn dry_run(query: &HashMap<String, String>) -> Result<bool, ApiError> {
    match query.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "dryRun: Unsupported value: {other:?}: supported values: \"All\""
        ))),
    }
}

fn write_options(
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<WriteOptions, ApiError> {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let field_manager = query.get("fieldManager").cloned().unwrap_or_else(|| {
        user_agent
            .split(['/', ' '])
            .next()
            .unwrap_or_default()
            .to_owned()
    });
    if field_manager.len() > 128 {
        return Err(ApiError::bad_request(
            "fieldManager: Too long: may not be longer than 128",
        ));
    }
    Ok(WriteOptions {
        field_manager,
        force: flag(query, "force")?,
        dry_run: dry_run(query)?,
    })
}

fn parse_body(body: &Bytes, content_type: &str) -> Result<Value, ApiError> {
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        // kubectl's typed generators (`kubectl create namespace`, …) send protobuf; only JSON
        // and YAML are implemented.
        return Err(ApiError::unsupported_media_type(content_type));
    }
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => Ok(value),
        Err(json_error) if content_type.contains("yaml") => {
            let text = std::str::from_utf8(body)
                .map_err(|e| ApiError::bad_request(format!("the body is not UTF-8: {e}")))?;
            serde_saphyr::from_str::<Value>(text).map_err(|e| {
                ApiError::bad_request(format!(
                    "error decoding YAML body: {e} (as JSON: {json_error})"
                ))
            })
        }
        Err(error) => Err(ApiError::bad_request(format!(
            "error decoding JSON body: {error}"
        ))),
    }
}

async fn kube_api(
    State(app): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    tracing::debug!(message = "request", %method, %uri);
    match app.faults.take_api(method.as_str(), &path) {
        Some(ApiFaultAction::Fail(code)) => return error_response(&ApiError::injected(code)),
        Some(ApiFaultAction::Delay(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    if matches!(path.as_str(), "/healthz" | "/readyz" | "/livez") {
        return (StatusCode::OK, "ok").into_response();
    }
    if path == SELF_SUBJECT_ACCESS_REVIEWS && method == Method::POST {
        return access_review(&app, &body);
    }
    if let ["api", "v1", "namespaces", ns, "pods", pod, "log"] = path
        .trim_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .as_slice()
    {
        if method != Method::GET {
            return error_response(&ApiError::method_not_allowed(format!(
                "{method} is not supported on pods/log"
            )));
        }
        return crate::logs::serve(&app, ns, pod, uri.query());
    }
    let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handle(&app, &method, &uri, &headers, &body)
    }))
    .unwrap_or_else(|_| {
        Err(ApiError::internal(format!(
            "edas-fake-kube panicked serving {method} {}",
            uri.path()
        )))
    });
    match handled {
        Ok(Handled::Response(response)) => response,
        Ok(Handled::Watch(request)) => start_watch(&app, request),
        Err(error) => error_response(&error),
    }
}

const SELF_SUBJECT_ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

/// Answers a SelfSubjectAccessReview: allowed unless the right was denied (`/_fake/rbac/deny`).
fn access_review(app: &AppState, body: &Bytes) -> Response {
    let review: Value = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(error) => {
            return error_response(&ApiError::bad_request(format!(
                "SelfSubjectAccessReview: {error}"
            )));
        }
    };
    let Some(attributes) = review.pointer("/spec/resourceAttributes") else {
        return error_response(&ApiError::bad_request(
            "spec.resourceAttributes: required (nonResourceAttributes are not supported)",
        ));
    };
    let field = |name: &str| attributes.get(name).and_then(Value::as_str).unwrap_or("");
    let (verb, group, resource) = (field("verb"), field("group"), field("resource"));
    let allowed = !app.faults.is_denied(verb, group, resource);
    let mut answer = review.clone();
    answer["apiVersion"] = json!("authorization.k8s.io/v1");
    answer["kind"] = json!("SelfSubjectAccessReview");
    answer["status"] = if allowed {
        json!({"allowed": true, "reason": "edas-fake-kube grants every right not denied"})
    } else {
        json!({"allowed": false, "reason": format!("{verb} {resource} denied by /_fake/rbac/deny")})
    };
    json_response(StatusCode::CREATED, &answer)
}

enum Handled {
    Response(Response),
    Watch(WatchRequest),
}

struct WatchRequest {
    resource: ResourceId,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    from: Option<u64>,
    bookmarks: bool,
    initial_events_end: bool,
    timeout: Option<Duration>,
    /// Send each object as a one-row `Table` (kubectl's `get --watch`).
    table: bool,
}

fn handle(
    app: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Handled, ApiError> {
    let target = match route(uri.path(), app.gateway_api)? {
        Route::Json(document) => {
            if method != Method::GET {
                return Err(ApiError::method_not_allowed(format!(
                    "{method} is not allowed on {}",
                    uri.path()
                )));
            }
            return Ok(Handled::Response(json_response(StatusCode::OK, &document)));
        }
        Route::Resource(target) => target,
    };
    let query = parse_query(uri)?;
    let rt = &RESOURCES[target.resource];
    let verb = match (method.clone(), target.name.is_some()) {
        (Method::GET, true) => "get",
        (Method::GET, false) if query.get("watch").is_some_and(|w| w == "1" || w == "true") => {
            "watch"
        }
        (Method::GET, false) => "list",
        (Method::POST, _) => "create",
        (Method::PUT, _) => "update",
        (Method::PATCH, _) => "patch",
        (Method::DELETE, true) => "delete",
        (Method::DELETE, false) => "deletecollection",
        _ => "",
    };
    let plural = match target.subresource.as_deref() {
        Some(sub) => format!("{}/{sub}", rt.plural),
        None => rt.plural.to_owned(),
    };
    if app.faults.is_denied(verb, rt.group, &plural) {
        return Err(ApiError::forbidden(
            &rt.qualified(),
            target.name.as_deref(),
            verb,
            rt.group,
            &plural,
            target.namespace.as_deref(),
        ));
    }
    let namespace = target.namespace.clone().unwrap_or_default();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let subresource = match target.subresource.as_deref() {
        Some("status") => Subresource::Status,
        _ => Subresource::Main,
    };
    // A server-side apply that creates the object needs `create` too, as on a real server.
    if verb == "patch"
        && content_type == "application/apply-patch+yaml"
        && app.faults.is_denied("create", rt.group, &plural)
        && let Some(name) = target.name.as_deref()
        && app.store.get(target.resource, &namespace, name).is_err()
    {
        return Err(ApiError::forbidden(
            &rt.qualified(),
            Some(name),
            "create",
            rt.group,
            &plural,
            target.namespace.as_deref(),
        ));
    }
    let scale = target.subresource.as_deref() == Some("scale");
    let as_table = !scale
        && crate::table::wants_table(
            headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
        );
    let store = &app.store;
    let ok = |code: StatusCode, value: &Value| Ok(Handled::Response(json_response(code, value)));
    match (method.clone(), target.name.as_deref()) {
        (Method::GET, None) if flag(&query, "watch")? => {
            let mut request = watch_request(target.resource, target.namespace, &query)?;
            request.table = as_table;
            Ok(Handled::Watch(request))
        }
        (Method::GET, None) => {
            let listed = list(store, target.resource, target.namespace.as_deref(), &query)?;
            if as_table {
                let items = listed["items"].as_array().cloned().unwrap_or_default();
                let table = crate::table::table(rt, &items, listed["metadata"].clone());
                return Ok(Handled::Response(table_response(&table)));
            }
            ok(StatusCode::OK, &listed)
        }
        (Method::GET, Some(name)) => {
            let object = store.get(target.resource, &namespace, name)?;
            if as_table {
                let metadata =
                    json!({"resourceVersion": object.pointer("/metadata/resourceVersion")});
                let table = crate::table::table(rt, std::slice::from_ref(&object), metadata);
                return Ok(Handled::Response(table_response(&table)));
            }
            ok(
                StatusCode::OK,
                &if scale { scale_of(&object) } else { object },
            )
        }
        (Method::POST, None) => {
            if rt.namespaced && target.namespace.is_none() {
                return Err(ApiError::method_not_allowed(format!(
                    "POST requires a namespace for {}",
                    rt.qualified()
                )));
            }
            let created = store.create(
                target.resource,
                &namespace,
                parse_body(body, &content_type)?,
                &write_options(&query, headers)?,
            )?;
            ok(StatusCode::CREATED, &created)
        }
        (Method::PUT, Some(name)) => {
            let options = write_options(&query, headers)?;
            let body = parse_body(body, &content_type)?;
            if scale {
                return ok(
                    StatusCode::OK,
                    &write_scale(store, target.resource, &namespace, name, &body, &options)?,
                );
            }
            ok(
                StatusCode::OK,
                &store.replace(
                    target.resource,
                    &namespace,
                    name,
                    body,
                    subresource,
                    &options,
                )?,
            )
        }
        (Method::PATCH, Some(name)) => {
            let kind = match content_type.as_str() {
                "application/json-patch+json" => PatchKind::Json,
                "application/merge-patch+json" => PatchKind::Merge,
                "application/strategic-merge-patch+json" => PatchKind::Strategic,
                "application/apply-patch+yaml" => PatchKind::Apply,
                other => return Err(ApiError::unsupported_media_type(other)),
            };
            let options = write_options(&query, headers)?;
            let patch = parse_body(body, &content_type)?;
            if scale {
                let object = store.get(target.resource, &namespace, name)?;
                let mut current = scale_of(&object);
                match kind {
                    PatchKind::Strategic => {
                        crate::merge::strategic_merge_patch(&mut current, &patch)
                            .map_err(ApiError::bad_request)?;
                    }
                    PatchKind::Json => crate::merge::json_patch(&mut current, &patch)
                        .map_err(ApiError::bad_request)?,
                    _ => crate::merge::merge_patch(&mut current, &patch),
                }
                if patch.pointer("/metadata/resourceVersion").is_none() {
                    current["metadata"]["resourceVersion"] = json!("");
                }
                return ok(
                    StatusCode::OK,
                    &write_scale(store, target.resource, &namespace, name, &current, &options)?,
                );
            }
            if kind != PatchKind::Apply && flag(&query, "force")? {
                return Err(ApiError::bad_request(
                    "force: Forbidden: may not be specified for non-apply patch",
                ));
            }
            ok(
                StatusCode::OK,
                &store.patch(
                    target.resource,
                    &namespace,
                    name,
                    kind,
                    patch,
                    subresource,
                    &options,
                )?,
            )
        }
        (Method::DELETE, Some(name)) => {
            let (propagation, preconditions, dry) = delete_options(&query, body)?;
            ok(
                StatusCode::OK,
                &store.delete(
                    target.resource,
                    &namespace,
                    name,
                    propagation,
                    &preconditions,
                    dry,
                )?,
            )
        }
        (Method::DELETE, None) => {
            let (propagation, _, dry) = delete_options(&query, body)?;
            let labels =
                LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?;
            let fields =
                FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))?;
            let (items, _) = store.list(
                target.resource,
                target.namespace.as_deref(),
                &labels,
                &fields,
            );
            let mut deleted = Vec::new();
            for item in items {
                let item_namespace = item
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if let Ok(gone) = store.delete(
                    target.resource,
                    item_namespace,
                    crate::store::name_of(&item),
                    propagation,
                    &json!({}),
                    dry,
                ) {
                    deleted.push(gone);
                }
            }
            ok(
                StatusCode::OK,
                &json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": {"resourceVersion": store.current_rv().to_string()}, "items": deleted}),
            )
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {}",
            uri.path()
        ))),
    }
}

fn delete_options(
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Result<(Propagation, Value, bool), ApiError> {
    let options: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let policy = query.get("propagationPolicy").cloned().or_else(|| {
        options
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let orphan_flag = flag(query, "orphanDependents")?
        || options.get("orphanDependents").and_then(Value::as_bool) == Some(true);
    let propagation = match policy.as_deref() {
        None if orphan_flag => Propagation::Orphan,
        None | Some("Background" | "Foreground") => Propagation::Cascade,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    };
    let body_dry = match options.get("dryRun") {
        None => false,
        Some(Value::Array(values)) if values.iter().all(|v| v == "All") => !values.is_empty(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other}"
            )));
        }
    };
    let preconditions = options
        .get("preconditions")
        .cloned()
        .unwrap_or_else(|| json!({}));
    Ok((propagation, preconditions, dry_run(query)? || body_dry))
}

fn scale_of(object: &Value) -> Value {
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": object.pointer("/metadata/name"),
            "namespace": object.pointer("/metadata/namespace"),
            "uid": object.pointer("/metadata/uid"),
            "resourceVersion": object.pointer("/metadata/resourceVersion"),
            "creationTimestamp": object.pointer("/metadata/creationTimestamp"),
        },
        "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector_string(object),
        },
    })
}

fn write_scale(
    store: &Store,
    resource: ResourceId,
    namespace: &str,
    name: &str,
    scale: &Value,
    options: &WriteOptions,
) -> Result<Value, ApiError> {
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ApiError::invalid(
                "Scale",
                name,
                "spec.replicas",
                "Invalid value: must be a non-negative integer",
            )
        })?;
    let mut object = store.get(resource, namespace, name)?;
    let given_rv = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !given_rv.is_empty()
        && given_rv
            != object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
    {
        return Err(ApiError::conflict(&RESOURCES[resource].qualified(), name));
    }
    object["spec"]["replicas"] = json!(replicas);
    let updated = store.replace(
        resource,
        namespace,
        name,
        object,
        Subresource::Main,
        options,
    )?;
    Ok(scale_of(&updated))
}

fn list(
    store: &Store,
    resource: ResourceId,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    let rt = &RESOURCES[resource];
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))?;
    let requested = parse_rv(query)?;
    let exact = query.get("resourceVersionMatch").map(String::as_str);
    match exact {
        None | Some("" | "NotOlderThan") => {}
        Some("Exact") => {
            let rv = requested.ok_or_else(|| {
                ApiError::bad_request(
                    "resourceVersionMatch: Forbidden: Exact requires a non-zero resourceVersion",
                )
            })?;
            if rv != store.current_rv() {
                // No snapshots are kept: an exact list can only be served at the current revision.
                return Err(ApiError::expired(rv, store.current_rv()));
            }
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: {other:?}"
            )));
        }
    }
    let (mut items, rv) = store.list(resource, namespace, &labels, &fields);
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(token) = query.get("continue").filter(|t| !t.is_empty()) {
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<(u64, String, String)>(&bytes).ok())
            .ok_or_else(|| {
                ApiError::bad_request("continue: Invalid value: the continue token is not valid")
            })?;
        if let Some(expired) = store.is_compacted(decoded.0) {
            return Err(expired);
        }
        let after = (decoded.1, decoded.2);
        items.retain(|item| {
            let key = (
                item.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                crate::store::name_of(item).to_owned(),
            );
            key > after
        });
    }
    if let Some(limit) = query.get("limit").filter(|l| !l.is_empty()) {
        let limit: usize = limit
            .parse()
            .map_err(|_| ApiError::bad_request(format!("limit: invalid value {limit:?}")))?;
        if limit > 0 && items.len() > limit {
            let remaining = items.len() - limit;
            items.truncate(limit);
            let last = items.last().expect("limit > 0 items");
            let token = json!([
                rv,
                last.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                crate::store::name_of(last)
            ]);
            metadata["continue"] =
                json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string()));
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    Ok(
        json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": metadata, "items": items}),
    )
}

/// `resourceVersion` as a number; `""` and `"0"` mean "any / most recent" (`None`).
fn parse_rv(query: &HashMap<String, String>) -> Result<Option<u64>, ApiError> {
    match query.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => Ok(None),
        Some(text) => text.parse::<u64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: {text:?}: must be an integer"
            ))
        }),
    }
}

fn watch_request(
    resource: ResourceId,
    namespace: Option<String>,
    query: &HashMap<String, String>,
) -> Result<WatchRequest, ApiError> {
    let send_initial = flag(query, "sendInitialEvents")?;
    let bookmarks = flag(query, "allowWatchBookmarks")?;
    if send_initial
        && (query.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan")
            || !bookmarks)
    {
        return Err(ApiError::invalid(
            "ListOptions",
            "",
            "sendInitialEvents",
            "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan and allowWatchBookmarks",
        ));
    }
    let timeout = match query.get("timeoutSeconds").filter(|t| !t.is_empty()) {
        Some(t) => Some(Duration::from_secs(t.parse().map_err(|_| {
            ApiError::bad_request(format!("timeoutSeconds: invalid value {t:?}"))
        })?)),
        None => None,
    };
    Ok(WatchRequest {
        resource,
        namespace,
        labels: LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?,
        fields: FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))?,
        from: if send_initial { None } else { parse_rv(query)? },
        bookmarks,
        initial_events_end: send_initial,
        timeout,
        table: false,
    })
}

impl WatchRequest {
    fn selects(&self, namespace: &str, object: &Value) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == namespace)
            && self.labels.matches(object)
            && self.fields.matches(object)
    }

    /// The event as this watcher sees it (a selector turns MODIFIED into ADDED/DELETED at its edges).
    fn render(&self, event: &Event) -> Option<String> {
        if event.resource != self.resource {
            return None;
        }
        let now = self.selects(&event.namespace, &event.object);
        let before = event
            .old
            .as_ref()
            .is_some_and(|old| self.selects(&event.namespace, old));
        let kind = match event.kind {
            EventType::Added => now.then_some("ADDED"),
            EventType::Deleted => (now || before).then_some("DELETED"),
            EventType::Modified => match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
        }?;
        let object = if self.table {
            let metadata = json!({"resourceVersion": event.rv.to_string()});
            crate::table::table(
                &RESOURCES[self.resource],
                std::slice::from_ref(&event.object),
                metadata,
            )
        } else {
            event.object.clone()
        };
        Some(format!("{}\n", json!({"type": kind, "object": object})))
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> String {
        let rt = &RESOURCES[self.resource];
        let mut object = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": rv.to_string()}});
        if initial_events_end {
            object["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        format!("{}\n", json!({"type": "BOOKMARK", "object": object}))
    }
}

fn start_watch(app: &AppState, request: WatchRequest) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let opened = app.store.watch(request.resource, request.from);
    let mut dropped = app.drop_watches.subscribe();
    let mut drained = app.drain_watches.subscribe();
    let interval = app.bookmark_interval;
    tokio::spawn(async move {
        let start = match opened {
            Ok(start) => start,
            Err(error) => {
                let line = format!("{}\n", json!({"type": "ERROR", "object": error.status()}));
                let _ = tx.send(Bytes::from(line)).await;
                return;
            }
        };
        let mut last_rv = start.current_rv;
        for event in &start.initial {
            if let Some(line) = request.render(event)
                && tx.send(Bytes::from(line)).await.is_err()
            {
                return;
            }
        }
        if request.initial_events_end
            && tx
                .send(Bytes::from(request.bookmark(last_rv, true)))
                .await
                .is_err()
        {
            return;
        }
        let mut feed = start.feed;
        let deadline = request.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            let line = tokio::select! {
                received = feed.recv() => match received {
                    Ok(event) => {
                        last_rv = last_rv.max(event.rv);
                        match request.render(&event) {
                            Some(line) => line,
                            None => continue,
                        }
                    }
                    // A watcher that cannot keep up is closed; the client re-watches from its last version.
                    Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if request.bookmarks => request.bookmark(last_rv, false),
                _ = dropped.changed() => return,
                // A draining server: the connection stays open and says nothing more (not even
                // at its own timeout) until the client gives up or the watch is dropped.
                _ = drained.changed() => {
                    tokio::select! {
                        () = tx.closed() => {}
                        _ = dropped.changed() => {}
                    }
                    return;
                }
                () = sleep_until_opt(deadline) => return,
                () = tx.closed() => return,
            };
            if tx.send(Bytes::from(line)).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<Bytes, Infallible>(bytes), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| error_response(&ApiError::injected(500)))
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_resolve_like_the_api_server() {
        let Ok(Route::Resource(t)) =
            route("/apis/apps/v1/namespaces/ns/deployments/web/scale", false)
        else {
            panic!()
        };
        assert_eq!(
            (
                RESOURCES[t.resource].kind,
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("Deployment", Some("ns"), Some("web"), Some("scale"))
        );
        let Ok(Route::Resource(t)) = route("/api/v1/namespaces/ns", false) else {
            panic!()
        };
        assert_eq!(
            (RESOURCES[t.resource].kind, t.name.as_deref()),
            ("Namespace", Some("ns"))
        );
        let Ok(Route::Resource(t)) = route("/api/v1/namespaces/ns/status", false) else {
            panic!()
        };
        assert_eq!(
            (RESOURCES[t.resource].kind, t.subresource.as_deref()),
            ("Namespace", Some("status"))
        );
        let Ok(Route::Resource(t)) = route("/api/v1/pods", false) else {
            panic!()
        };
        assert_eq!((RESOURCES[t.resource].kind, t.namespace), ("Pod", None));
        assert!(
            route(
                "/apis/gateway.networking.k8s.io/v1/namespaces/ns/httproutes",
                false
            )
            .is_err()
        );
        assert!(
            route(
                "/apis/gateway.networking.k8s.io/v1/namespaces/ns/httproutes",
                true
            )
            .is_ok()
        );
        assert!(route("/api/v1/namespaces/ns/configmaps/x/scale", false).is_err());
        assert!(
            route("/api/v1/configmaps/x", false).is_err(),
            "namespaced objects need a namespace"
        );
        assert!(matches!(route("/apis/apps/v1", false), Ok(Route::Json(_))));
    }

    #[test]
    fn unknown_query_parameters_are_rejected() {
        let uri: Uri = "/api/v1/pods?labelSelector=a%3Db&bogus=1".parse().unwrap();
        assert!(parse_query(&uri).unwrap_err().message.contains("bogus"));
        let uri: Uri = "/api/v1/pods?labelSelector=a%3Db".parse().unwrap();
        assert_eq!(parse_query(&uri).unwrap()["labelSelector"], "a=b");
    }
}
