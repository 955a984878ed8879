//! The router, the request pipeline (limits, signature, caller) and the envelope.

use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use edas_spec::Params;
use serde_json::{Map, Value};
use tracing::Instrument;

use crate::caller::Caller;
use crate::error::{ApiError, codes};
use crate::operations::{Action, Implemented};
use crate::policy::PolicyDocument;
use crate::{Api, MAX_REQUEST_BYTES, admin, handlers};

/// The whole HTTP surface: the EDAS operations (every path not listed here), `/healthz`,
/// `/metrics` and the admin API.
pub fn router(api: Api) -> Router {
    let admin_routes = admin::router();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/edasd/v1/logs", axum::routing::any(crate::instances::logs))
        .route(
            "/edasd/v1/events",
            axum::routing::any(crate::stream::events),
        )
        .route(
            "/edasd/v1/{*rest}",
            axum::routing::any(move |api: State<Api>, request: Request| {
                admin::handle(api, admin_routes.clone(), request)
            }),
        )
        .fallback(pop)
        // Bodies are read by the handlers with their own limit, answered with the error body.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(request_id_and_panic_guard))
        .with_state(api)
}

/// The request's id, set by [`request_id_and_panic_guard`] before any handler runs: every
/// response and log line of the request carries it.
#[derive(Clone, Debug)]
pub(crate) struct RequestId(pub String);

impl RequestId {
    /// The id the guard gave `request` (a fresh one if it ran without the guard).
    pub(crate) fn of(parts: &Parts) -> String {
        parts
            .extensions
            .get::<RequestId>()
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), |id| id.0.clone())
    }
}

/// Gives the request its RequestId and turns a panicking handler into the EDAS error envelope
/// (`InternalError`, HTTP 500, with that RequestId) instead of a dropped connection; the panic
/// is logged with the id.
pub(crate) async fn request_id_and_panic_guard(
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    use futures_util::FutureExt as _;
    let request_id = uuid::Uuid::new_v4().to_string();
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let path = request.uri().path().to_owned();
    match std::panic::AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic".to_owned());
            tracing::error!(request_id = %request_id, path = %path, panic = %what, "a handler panicked");
            metrics::counter!("edasd_handler_panics_total").increment(1);
            ApiError::internal(
                "edasd failed while handling this request; the server log has the details under this RequestId",
            )
            .into_response_with(&request_id)
        }
    }
}

async fn healthz(State(api): State<Api>) -> Response {
    match api.app().healthy().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: the store is not usable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

async fn metrics(State(api): State<Api>) -> Response {
    if api.inner.metrics.is_some() {
        record_active_change_orders(&api).await;
        crate::fleet_metrics::record(&api).await;
        // Group commit's work: how many WAL syncs made the commits durable (SQLite only).
        if let Some(syncs) = api.app().store().wal_syncs() {
            metrics::counter!("edasd_store_wal_syncs_total").absolute(syncs);
        }
        // How much the hot path wrote to the WAL: what its syncs and checkpoints carry.
        if let Some(pages) = api.app().store().wal_pages_written() {
            metrics::counter!("edasd_store_wal_pages_total").absolute(pages);
        }
        // Checkpoints beside the writer, the writer's short ones that finish them, and its
        // own whole ones when that thread fell behind.
        if let Some((thread, finish, backstop)) = api.app().store().wal_checkpoints() {
            for (by, n) in [
                ("thread", thread),
                ("finish", finish),
                ("backstop", backstop),
            ] {
                metrics::counter!("edasd_store_wal_checkpoints_total", "by" => by).absolute(n);
            }
        }
    }
    match &api.inner.metrics {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            )],
            handle.render(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "metrics are not enabled in this process\n",
        )
            .into_response(),
    }
}

/// Sets `edasd_active_change_orders{status}`: the unfinished change orders (at most one per
/// application) by EDAS status, counted by the store at scrape time (one indexed query) so
/// every node sharing a database reports the same numbers.
async fn record_active_change_orders(api: &Api) {
    let mut by_status: std::collections::BTreeMap<i32, u64> =
        [0, 1, 8, 9].into_iter().map(|s| (s, 0)).collect();
    match api.app().active_change_orders().await {
        Ok(counts) => {
            for (status, count) in counts {
                by_status.insert(status.code(), count);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: counting the active change orders failed");
            return;
        }
    }
    for (status, count) in by_status {
        metrics::gauge!("edasd_active_change_orders", "status" => status.to_string())
            .set(count as f64);
    }
}

/// A request's raw material once limits are checked: the signature view and the parts.
pub(crate) struct Received {
    pub parts: Parts,
    pub signed: edas_pop::Request,
}

/// Reads the body (bounded) and builds the signature view of the request.
pub(crate) async fn receive(parts: Parts, body: Body) -> Result<Received, ApiError> {
    let uri_len = parts.uri.to_string().len();
    if uri_len > MAX_REQUEST_BYTES {
        return Err(ApiError::new(
            codes::REQUEST_TOO_LARGE,
            format!("the URL has {uri_len} bytes; at most {MAX_REQUEST_BYTES} are accepted"),
        ));
    }
    // A body announced larger than the limit is refused at once, not after waiting for it.
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(announced) = announced.filter(|n| *n > MAX_REQUEST_BYTES as u64) {
        return Err(ApiError::new(
            codes::REQUEST_TOO_LARGE,
            format!("the body has {announced} bytes; at most {MAX_REQUEST_BYTES} are accepted"),
        ));
    }
    let body: Bytes = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|e| {
            if is_timeout(&e) {
                ApiError::new(
                    codes::REQUEST_TIMEOUT,
                    "the request body did not arrive within the server's body deadline",
                )
            } else {
                ApiError::new(
                    codes::REQUEST_TOO_LARGE,
                    format!("the body is larger than {MAX_REQUEST_BYTES} bytes"),
                )
            }
        })?;
    let mut signed = edas_pop::Request::new(parts.method.as_str(), parts.uri.path());
    if let Some(query) = parts.uri.query() {
        signed = signed.with_raw_query(query).map_err(|e| {
            ApiError::new(
                edas_pop::codes::INVALID_PARAMETER,
                format!("the query string is malformed: {e}"),
            )
        })?;
    }
    for (name, value) in &parts.headers {
        signed = signed.with_header(name.as_str(), String::from_utf8_lossy(value.as_bytes()));
    }
    // HTTP/2 carries the host in `:authority`, which V3 signs as `host`.
    if signed.header("host").is_none()
        && let Some(authority) = parts.uri.authority()
    {
        signed = signed.with_header("host", authority.as_str());
    }
    Ok(Received {
        parts,
        signed: signed.with_body(body.to_vec()),
    })
}

/// Whether a body error is the body deadline (tower-http's timeout, set by the server binary).
fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Verifies the signature and loads the caller with its policies.
pub(crate) async fn authenticate(
    api: &Api,
    request: &edas_pop::Request,
) -> Result<Caller, ApiError> {
    let parsed = edas_pop::parse(request)?;
    let key_id = parsed.access_key_id().to_owned();
    // From memory unless a key, user or policy changed since (see `App::signer`).
    let Some(signer) = api.app().signer(&key_id).await? else {
        return Err(ApiError::new(
            edas_pop::codes::INVALID_ACCESS_KEY_ID_NOT_FOUND,
            format!("the access key id `{key_id}` does not exist"),
        ));
    };
    let key = &signer.key;
    if !key.enabled {
        return Err(ApiError::new(
            edas_pop::codes::INVALID_ACCESS_KEY_ID_INACTIVE,
            format!("the access key `{key_id}` is disabled"),
        ));
    }
    {
        let now = api.now();
        let mut nonces = api
            .inner
            .nonces
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        edas_pop::verify(&parsed, request, key.secret.expose(), now, &mut nonces)?;
    }
    let user = signer.user.clone();
    let policies = signer
        .policies
        .iter()
        .map(|p| {
            PolicyDocument::from_value(&p.document).map_err(|e| {
                ApiError::internal(format!("the stored policy `{}` is invalid: {e}", p.name))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tags = if policies.iter().any(PolicyDocument::uses_resource_tags) {
        crate::tags::all_tags(api).await?
    } else {
        Default::default()
    };
    Ok(Caller {
        user,
        access_key_id: key_id,
        policies,
        tags,
    })
}

/// The EDAS operations.
async fn pop(State(api): State<Api>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let request_id = RequestId::of(&parts);
    let action = Action::route(&parts.method, parts.uri.path());
    let action_name = action.map_or("-", Action::name);
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        action = action_name,
        method = %parts.method,
        path = %parts.uri.path(),
    );
    async move {
        let started = Instant::now();
        let result = match action {
            Some(action) => run(&api, action, parts, body, &request_id).await,
            None => Err(not_found(&parts)),
        };
        respond(result, &request_id, action_name, started)
    }
    .instrument(span)
    .await
}

/// Logs and counts the outcome and builds the response.
pub(crate) fn respond(
    result: Result<Map<String, Value>, ApiError>,
    request_id: &str,
    action: &str,
    started: Instant,
) -> Response {
    let elapsed = started.elapsed();
    let (response, code) = match result {
        Ok(fields) => {
            // Reads (a watch polls GetChangeOrderInfo every few seconds) at DEBUG, changes at
            // INFO.
            let latency_ms = elapsed.as_millis() as u64;
            if read_only(action) {
                tracing::debug!(status = 200, latency_ms, "answered");
            } else {
                tracing::info!(status = 200, latency_ms, "answered");
            }
            (success(fields, request_id), "200".to_owned())
        }
        Err(error) => {
            let status = error.status();
            tracing::info!(
                status = status.as_u16(),
                code = %error.code,
                message = %error.message,
                latency_ms = elapsed.as_millis() as u64,
                "refused"
            );
            let code = error.code.to_string();
            (error.into_response_with(request_id), code)
        }
    };
    metrics::counter!("edasd_requests_total", "action" => action.to_owned(), "code" => code)
        .increment(1);
    metrics::histogram!("edasd_request_duration_seconds", "action" => action.to_owned())
        .record(elapsed.as_secs_f64());
    response
}

/// Whether an EDAS action only reads (its successful answers are logged at DEBUG).
fn read_only(action: &str) -> bool {
    ["Get", "List", "Query", "Describe"]
        .iter()
        .any(|prefix| action.starts_with(prefix))
}

/// The success envelope: HTTP 200, integer `Code` 200, `Message`, `RequestId` and the
/// operation's keys.
pub(crate) fn success(fields: Map<String, Value>, request_id: &str) -> Response {
    let mut body =
        crate::caller::encode(edas_wire::envelope::Success::new(request_id)).unwrap_or_default();
    body.extend(fields);
    let mut response = (StatusCode::OK, Json(Value::Object(body))).into_response();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-acs-request-id", value);
    }
    response
}

fn not_found(parts: &Parts) -> ApiError {
    let path = parts.uri.path();
    let methods: Vec<String> = Action::ALL
        .iter()
        .filter(|a| a.path() == path)
        .map(|a| format!("{} ({})", a.method(), a.name()))
        .collect();
    let message = if methods.is_empty() {
        format!("no EDAS operation exists at {} {path}", parts.method)
    } else {
        format!(
            "no EDAS operation exists at {} {path}; this path takes {}",
            parts.method,
            methods.join(", ")
        )
    };
    ApiError::new(codes::API_NOT_FOUND, message)
}

async fn run(
    api: &Api,
    action: Action,
    parts: Parts,
    body: Body,
    request_id: &str,
) -> Result<Map<String, Value>, ApiError> {
    let received = receive(parts, body).await?;
    let caller = authenticate(api, &received.signed).await?;
    tracing::debug!(user = %caller.user.name, access_key_id = %caller.access_key_id, "authenticated");
    check_signed_action(&received.signed, action)?;
    let Some(implemented) = action.implemented() else {
        let supported: Vec<&str> = Implemented::ALL.iter().map(|i| i.action().name()).collect();
        return Err(ApiError::new(
            codes::UNSUPPORTED_OPERATION,
            format!(
                "{} is not supported by this server; edasd implements {}",
                action.name(),
                supported.join(", ")
            ),
        ));
    };
    let mut pairs = received.signed.query().to_vec();
    pairs.extend(form_body(&received.signed, implemented)?);
    let params = Params::from_pairs(pairs)?;
    // Boxed: the operations' futures are large (typed records and bodies), and debug builds
    // copy them through every poll frame of the pipeline.
    Box::pin(handlers::dispatch(
        api,
        &caller,
        implemented,
        &params,
        request_id,
    ))
    .await
}

/// The parameters of a form body. Create/UpdateK8sConfigMap and Create/UpdateK8sSecret take
/// theirs in an `application/x-www-form-urlencoded` body (Tea `formData`; the classic SDK sends
/// the same); every other implemented operation takes them in the query string and must send no
/// body. A body must be covered by the signature (`Content-MD5` or `x-acs-content-sha256`).
fn form_body(
    request: &edas_pop::Request,
    op: Implemented,
) -> Result<Vec<(String, String)>, ApiError> {
    let body = request.body();
    if body.is_empty() {
        return Ok(Vec::new());
    }
    if !op.takes_form_body() {
        return Err(ApiError::new(
            codes::INVALID_PARAMETER,
            format!(
                "{} takes its parameters in the query string; the request body must be empty",
                op.action().name()
            ),
        ));
    }
    let content_type = request.header("content-type").unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(ApiError::new(
            codes::INVALID_PARAMETER,
            format!(
                "{} takes an application/x-www-form-urlencoded body, not `{content_type}`",
                op.action().name()
            ),
        ));
    }
    if request.header("content-md5").is_none() && request.header("x-acs-content-sha256").is_none() {
        return Err(ApiError::new(
            edas_pop::codes::INCOMPLETE_SIGNATURE,
            format!(
                "{} sends a form body, which must be covered by the signature: Content-MD5 (V1) or x-acs-content-sha256 (V3) is missing. The Tea SDK's legacy signature_algorithm='v2' does not sign form bodies; use its default (V3) or the classic SDK",
                op.action().name()
            ),
        ));
    }
    edas_pop::decode_form(body).map_err(|e| {
        ApiError::new(
            codes::INVALID_PARAMETER,
            format!("the form body is malformed: {e}"),
        )
    })
}

/// The SDKs also name the operation in `x-acs-action` and the version in `x-acs-version`; both
/// are signed, so a mismatch with the route is a client error, not something to ignore.
fn check_signed_action(request: &edas_pop::Request, action: Action) -> Result<(), ApiError> {
    if let Some(named) = request.header("x-acs-action")
        && named != action.name()
    {
        return Err(ApiError::new(
            codes::INVALID_PARAMETER,
            format!(
                "x-acs-action is `{named}` but {} {} is {}",
                action.method(),
                action.path(),
                action.name()
            ),
        ));
    }
    if let Some(version) = request.header("x-acs-version")
        && version != "2017-08-01"
    {
        return Err(ApiError::new(
            codes::INVALID_PARAMETER,
            format!("x-acs-version is `{version}`; this server implements EDAS 2017-08-01"),
        ));
    }
    Ok(())
}
