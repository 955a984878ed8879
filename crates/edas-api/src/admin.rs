//! edasd's own admin API for users, access keys and policies: JSON under `/edasd/v1/`, signed
//! like the EDAS operations (V1 with `Content-MD5` when there is a body, or V3), administrators
//! only, answered in the same envelope.
//!
//! | Method and path | Body | Does |
//! |---|---|---|
//! | `GET /edasd/v1/users` | | lists users |
//! | `POST /edasd/v1/users` | `{"Name", "Admin"?}` | creates a user |
//! | `DELETE /edasd/v1/users/{name}` | | deletes a user with its keys |
//! | `GET /edasd/v1/users/{name}/keys` | | lists its access keys (never secrets) |
//! | `POST /edasd/v1/users/{name}/keys` | `{"AccessKeyId"?, "AccessKeySecret"?}` or none | creates a key; the secret is returned once |
//! | `PUT /edasd/v1/keys/{id}` | `{"Enabled": bool}` | enables or disables a key |
//! | `DELETE /edasd/v1/keys/{id}` | | deletes a key |
//! | `GET /edasd/v1/policies` | | lists policies |
//! | `PUT /edasd/v1/policies/{name}` | `{"Document": {…}}` | creates or replaces a policy (validated) |
//! | `DELETE /edasd/v1/policies/{name}` | | deletes a policy |
//! | `GET /edasd/v1/users/{name}/policies` | | the user's policies |
//! | `PUT /edasd/v1/users/{name}/policies/{policy}` | | attaches a policy |
//! | `DELETE /edasd/v1/users/{name}/policies/{policy}` | | detaches a policy |
//! | `GET /edasd/v1/audit?AppId=&From=&To=&PageNumber=&PageSize=` | | the audit trail, newest first (see `audit.rs`: also open to users allowed `edas:ReadApplication` on `AppId`) |
//! | `…/subscriptions…` | | release notifications: see `admin/notify.rs` |
//! | `…/applications/{app}/policy…` | | release policies, authorized per application: see `admin/release_policy.rs` |
//!
//! An administrator cannot delete its own user nor disable or delete the key it signs with (so
//! the last way in is never removed by accident); another administrator can.
//!
//! Routing: `handle` is the one gate (body limits, signature, administrator, query, a body the
//! signature covers, the envelope and its RequestId); it then runs `router`, axum routes
//! nested under `/edasd/v1` with one small handler each in `routes`. Names in paths are taken
//! as sent: percent-escapes are not decoded (pinned by the tests).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use edas_app::{AccessKey, AccountError, AuditEntry, Audited, Policy, User};
use edas_wire::admin as wire;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tower::ServiceExt as _;
use tracing::Instrument;

use crate::Api;
use crate::caller::{Caller, encode, internal};
use crate::error::{ApiError, codes};
use crate::server::{authenticate, receive, respond};

mod notify;
mod release_policy;
mod routes;

pub(crate) use notify::event as notify_event;

/// Generates an access key pair: an id `LTAI` + 20 characters and a 32-character secret, from
/// the operating system's random source (through UUID v4).
pub fn generate_access_key() -> (String, String) {
    let id_part = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase();
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    (format!("LTAI{}", &id_part[..20]), secret[..32].to_owned())
}

/// Whether a user or policy name is acceptable: 1–64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// The admin routes, nested under `/edasd/v1`. They run behind [`handle`], which checks every
/// request once (signature, administrator, query, body) and answers in the envelope; a path or
/// method not listed here is `InvalidApi.NotFound`.
pub(crate) fn router() -> Router {
    let routes = Router::new()
        .route("/audit", get(routes::audit))
        .route("/users", get(routes::list_users).post(routes::create_user))
        .route("/users/{name}", delete(routes::delete_user))
        .route(
            "/users/{name}/keys",
            get(routes::list_keys).post(routes::create_key),
        )
        .route(
            "/keys/{id}",
            put(routes::set_key).delete(routes::delete_key),
        )
        .route("/policies", get(routes::list_policies))
        .route(
            "/policies/{name}",
            put(routes::put_policy).delete(routes::delete_policy),
        )
        .route("/users/{name}/policies", get(routes::user_policies))
        .route(
            "/users/{name}/policies/{policy}",
            put(routes::attach_policy).delete(routes::detach_policy),
        )
        .route(
            "/applications/{app}/policy",
            get(release_policy::get)
                .put(release_policy::put)
                .delete(release_policy::delete),
        )
        .route(
            "/applications/{app}/policy/history",
            get(release_policy::history),
        )
        .route("/subscriptions", get(notify::list).post(notify::create))
        .route("/subscriptions/{id}", delete(notify::delete))
        .route("/subscriptions/{id}/deliveries", get(notify::deliveries))
        .route(
            "/subscriptions/{id}/deliveries/{state}",
            get(notify::deliveries_in),
        );
    Router::new().nest("/edasd/v1", routes)
}

/// Every admin request, `/edasd/v1/{*rest}`: the one place that reads the body within the
/// limits, checks the signature, refuses non-administrators (but for `GET /edasd/v1/audit`,
/// which authorizes per application), refuses query parameters but `RegionId` and bodies the
/// signature does not cover, then runs the route from [`router`] and answers in the envelope
/// with the request's RequestId.
pub(crate) async fn handle(State(api): State<Api>, routes: Router, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let request_id = crate::server::RequestId::of(&parts);
    let span = tracing::info_span!(
        "admin",
        request_id = %request_id,
        method = %parts.method,
        path = %parts.uri.path(),
    );
    async move {
        let started = Instant::now();
        let result = async {
            let received = receive(parts, body).await?;
            let caller = authenticate(&api, &received.signed).await?;
            let path = received.parts.uri.path().to_owned();
            let method = received.parts.method.clone();
            // The audit trail (with its query) and release policies authorize per
            // application in their handlers; everything else is for administrators.
            if path != "/edasd/v1/audit" {
                let admin_only = !path.starts_with("/edasd/v1/applications/");
                check(&caller, &received.signed, admin_only)?;
            }
            // `get` routes also answer HEAD; the admin API does not.
            if method == Method::HEAD {
                return Err(unknown_route(&method, &path));
            }
            let checked = Admin(Arc::new(Checked {
                api: api.clone(),
                caller,
                request_id: request_id.clone(),
                query: received.signed.query().to_vec(),
                body: Bytes::copy_from_slice(received.signed.body()),
            }));
            // The router decodes percent-escapes in the names it extracts; the admin API has
            // always taken names as sent, so escape the escapes.
            let uri: Uri = path
                .replace('%', "%25")
                .parse()
                .map_err(|_| unknown_route(&method, &path))?;
            let mut inner = Request::new(Body::empty());
            *inner.method_mut() = method.clone();
            *inner.uri_mut() = uri;
            inner.extensions_mut().insert(checked);
            let response = routes
                .oneshot(inner)
                .await
                .unwrap_or_else(|never| match never {});
            match response.extensions().get::<Answer>() {
                Some(Answer(result)) => result.clone(),
                // No route (or no method) answered: axum's own 404 or 405.
                None => Err(unknown_route(&method, &path)),
            }
        }
        .await;
        respond(result, &request_id, "edasd.admin", started)
    }
    .instrument(span)
    .await
}

/// The checks every admin route but the audit trail shares, in this order: administrator, query,
/// a body covered by the signature.
fn check(caller: &Caller, signed: &edas_pop::Request, admin_only: bool) -> Result<(), ApiError> {
    if admin_only && !caller.user.admin {
        return Err(ApiError::new(
            codes::AUTH_ERROR,
            format!(
                "user `{}` is not an administrator; the admin API is for administrators only",
                caller.user.name
            ),
        ));
    }
    // The admin API takes JSON bodies; only the RegionId the classic SDK adds to every request
    // may be in the query, and is not used.
    if let Some((name, _)) = signed.query().iter().find(|(n, _)| n != "RegionId") {
        return Err(ApiError::new(
            codes::INVALID_PARAMETER,
            format!("the admin API takes no query parameter `{name}`; send a JSON body"),
        ));
    }
    if !signed.body().is_empty()
        && signed.header("content-md5").is_none()
        && signed.header("x-acs-content-sha256").is_none()
    {
        return Err(ApiError::new(
            edas_pop::codes::INCOMPLETE_SIGNATURE,
            "a request with a body must carry Content-MD5 (V1) or x-acs-content-sha256 (V3) so that the signature covers the body",
        ));
    }
    Ok(())
}

fn unknown_route(method: &Method, path: &str) -> ApiError {
    if path == "/edasd/v1/audit" {
        return ApiError::new(
            codes::API_NOT_FOUND,
            format!("{method} /edasd/v1/audit does not exist; use GET"),
        );
    }
    ApiError::new(
        codes::API_NOT_FOUND,
        format!("no admin operation at {method} {path}; see the edas_api::admin docs for the list"),
    )
}

/// A checked admin request, as every route handler receives it.
#[derive(Clone)]
pub(crate) struct Admin(Arc<Checked>);

pub(crate) struct Checked {
    api: Api,
    caller: Caller,
    request_id: String,
    query: Vec<(String, String)>,
    body: Bytes,
}

impl std::ops::Deref for Admin {
    type Target = Checked;

    fn deref(&self) -> &Checked {
        &self.0
    }
}

impl Admin {
    fn app(&self) -> &edas_app::App {
        self.api.app()
    }

    /// The audit record of an admin change: who (the caller's key and user), what, on which
    /// target; written in the change's own transaction. Never holds a secret.
    fn audit(&self, action: &str, resource: String, detail: Value) -> AuditEntry {
        let mut detail = match detail {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        detail.insert(
            "ActorUser".into(),
            Value::from(self.caller.user.name.clone()),
        );
        AuditEntry {
            actor: self.caller.access_key_id.clone(),
            action: format!("Admin.{action}"),
            resource,
            app_id: None,
            request_id: Some(self.request_id.clone()),
            detail: Value::Object(detail),
        }
    }

    /// [`Admin::audit`] of a change made now, as an account command takes it.
    fn audited(&self, action: &str, resource: String, detail: Value) -> Audited {
        Audited {
            entry: self.audit(action, resource, detail),
            at: now(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Refused> {
        parts
            .extensions
            .get::<Admin>()
            .cloned()
            .ok_or_else(|| Refused(ApiError::internal("an admin route ran without its checks")))
    }
}

/// What a route handler answers: the success fields or the error, both put in the envelope by
/// [`handle`].
pub(crate) type Reply = Result<Fields, Refused>;

pub(crate) struct Fields(Map<String, Value>);

pub(crate) struct Refused(ApiError);

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Refused(error)
    }
}

/// The handler's answer as [`handle`] takes it back from the route's response.
#[derive(Clone)]
struct Answer(Result<Map<String, Value>, ApiError>);

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = StatusCode::OK.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

impl IntoResponse for Fields {
    fn into_response(self) -> Response {
        Answer(Ok(self.0)).into_response()
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        Answer(Err(self.0)).into_response()
    }
}

/// A typed answer (an `edas_wire::admin` body).
fn ok(body: impl Serialize) -> Reply {
    Ok(Fields(encode(body)?))
}

fn done() -> Reply {
    ok(edas_wire::envelope::Empty {})
}

/// The answer to a deletion: done, or `kind` `name` did not exist.
fn removed(deleted: bool, kind: &str, name: &str) -> Reply {
    if deleted {
        done()
    } else {
        Err(not_found(kind, name).into())
    }
}

fn body_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            codes::INVALID_PARAMETER,
            format!("the request body is not the expected JSON: {e}"),
        )
    })
}

fn no_body(body: &[u8]) -> Result<(), ApiError> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(ApiError::new(
            codes::INVALID_PARAMETER,
            "this request takes no body",
        ))
    }
}

fn check_name(kind: &str, name: &str) -> Result<(), ApiError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::new(
            codes::INVALID_PARAMETER,
            format!(
                "the {kind} name `{name}` is invalid: use 1-64 letters, digits, `.`, `_`, `-` or `@`"
            ),
        ))
    }
}

fn not_found(kind: &str, name: &str) -> ApiError {
    ApiError::new(
        codes::ENTITY_NOT_FOUND,
        format!("the {kind} `{name}` does not exist"),
    )
}

fn account_error(kind: &str, name: &str, e: AccountError) -> ApiError {
    match e {
        AccountError::NotFound { entity, id } => not_found(entity, &id),
        AccountError::Conflict(_) => ApiError::new(
            codes::ENTITY_ALREADY_EXISTS,
            format!("the {kind} `{name}` already exists"),
        ),
        AccountError::InvalidInput { field, reason } => {
            ApiError::new(codes::INVALID_PARAMETER, format!("{field}: {reason}"))
        }
        other => internal(&format!("the admin request on {kind} `{name}`"), other),
    }
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn user(u: &User) -> wire::User {
    wire::User {
        name: u.name.clone(),
        admin: u.admin,
        create_time: u.created_at.as_millisecond(),
    }
}

fn key(k: &AccessKey) -> wire::AccessKey {
    wire::AccessKey {
        access_key_id: k.id.clone(),
        user: k.user.clone(),
        enabled: k.enabled,
        create_time: k.created_at.as_millisecond(),
    }
}

fn policy(p: &Policy) -> wire::Policy {
    wire::Policy {
        name: p.name.clone(),
        document: p.document.clone(),
        update_time: p.updated_at.as_millisecond(),
    }
}

/// Refuses changes that would lock the caller out of the admin API.
fn not_self(caller: &Caller, what: &str, is_self: bool) -> Result<(), ApiError> {
    if is_self {
        Err(ApiError::new(
            codes::INVALID_PARAMETER,
            format!(
                "refusing to {what} of the caller itself (`{}`, key `{}`): use another administrator",
                caller.user.name, caller.access_key_id
            ),
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_look_like_access_keys_and_differ() {
        let (id, secret) = generate_access_key();
        assert!(id.starts_with("LTAI") && id.len() == 24 && valid_name(&id));
        assert_eq!(secret.len(), 32);
        assert_ne!(generate_access_key(), (id, secret));
    }

    #[test]
    fn names() {
        assert!(valid_name("alice@example.com"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(&"x".repeat(65)));
    }
}
