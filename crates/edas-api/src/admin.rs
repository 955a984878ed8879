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
//!
//! An administrator cannot delete its own user nor disable or delete the key it signs with (so
//! the last way in is never removed by accident); another administrator can.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use edas_store::{AccessKey, AuditEntry, Policy, Sensitive, StoreError, User};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tracing::Instrument;

use crate::Api;
use crate::caller::{Caller, internal};
use crate::error::{ApiError, codes};
use crate::policy::PolicyDocument;
use crate::server::{authenticate, receive, respond};

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

pub(crate) async fn handle(State(api): State<Api>, request: Request) -> Response {
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
            if received.parts.uri.path() == "/edasd/v1/audit" {
                return audit_request(&api, &caller, &received).await;
            }
            if !caller.user.admin {
                return Err(ApiError::new(
                    codes::AUTH_ERROR,
                    format!(
                        "user `{}` is not an administrator; the admin API is for administrators only",
                        caller.user.name
                    ),
                ));
            }
            // The admin API takes JSON bodies; only the RegionId the classic SDK adds to every
            // request may be in the query, and is not used.
            if let Some((name, _)) = received.signed.query().iter().find(|(n, _)| n != "RegionId") {
                return Err(ApiError::new(
                    codes::INVALID_PARAMETER,
                    format!("the admin API takes no query parameter `{name}`; send a JSON body"),
                ));
            }
            let body = received.signed.body();
            if !body.is_empty()
                && received.signed.header("content-md5").is_none()
                && received.signed.header("x-acs-content-sha256").is_none()
            {
                return Err(ApiError::new(
                    edas_pop::codes::INCOMPLETE_SIGNATURE,
                    "a request with a body must carry Content-MD5 (V1) or x-acs-content-sha256 (V3) so that the signature covers the body",
                ));
            }
            let path = received.parts.uri.path().trim_start_matches("/edasd/v1/");
            let segments: Vec<&str> = path.split('/').collect();
            route(&api, &caller, &request_id, &received.parts.method, &segments, body).await
        }
        .await;
        respond(result, &request_id, "edasd.admin", started)
    }
    .instrument(span)
    .await
}

/// `GET /edasd/v1/audit`: open to every signed user; the handler authorizes per application.
async fn audit_request(
    api: &Api,
    caller: &Caller,
    received: &crate::server::Received,
) -> Result<Map<String, Value>, ApiError> {
    if received.parts.method != Method::GET {
        return Err(ApiError::new(
            codes::API_NOT_FOUND,
            format!(
                "{} /edasd/v1/audit does not exist; use GET",
                received.parts.method
            ),
        ));
    }
    no_body(received.signed.body())?;
    let params = edas_spec::Params::from_pairs(received.signed.query().iter().cloned())?;
    crate::audit::list(api, caller, &params).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Admin", default)]
    admin: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewKey {
    #[serde(rename = "AccessKeyId")]
    id: Option<String>,
    #[serde(rename = "AccessKeySecret")]
    secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyUpdate {
    #[serde(rename = "Enabled")]
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyPut {
    #[serde(rename = "Document")]
    document: Value,
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

fn store_error(kind: &str, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound { entity, id } => not_found(entity, &id),
        StoreError::Conflict { .. } => ApiError::new(
            codes::ENTITY_ALREADY_EXISTS,
            format!("the {kind} `{name}` already exists"),
        ),
        StoreError::InvalidInput { field, reason } => {
            ApiError::new(codes::INVALID_PARAMETER, format!("{field}: {reason}"))
        }
        other => internal(&format!("the admin request on {kind} `{name}`"), other),
    }
}

fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn user_json(u: &User) -> Value {
    json!({"Name": u.name, "Admin": u.admin, "CreateTime": u.created_at.as_millisecond()})
}

fn key_json(k: &AccessKey) -> Value {
    json!({"AccessKeyId": k.id, "User": k.user, "Enabled": k.enabled, "CreateTime": k.created_at.as_millisecond()})
}

fn policy_json(p: &Policy) -> Value {
    json!({"Name": p.name, "Document": p.document, "UpdateTime": p.updated_at.as_millisecond()})
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

/// The audit record of an admin change: who (the caller's key and user), what, on which target.
/// Never holds a secret.
fn admin_audit(
    caller: &Caller,
    request_id: &str,
    action: &str,
    resource: String,
    detail: Value,
) -> AuditEntry {
    let mut detail = match detail {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    detail.insert("ActorUser".into(), Value::from(caller.user.name.clone()));
    AuditEntry {
        actor: caller.access_key_id.clone(),
        action: format!("Admin.{action}"),
        resource,
        app_id: None,
        request_id: Some(request_id.to_owned()),
        detail: Value::Object(detail),
    }
}

async fn route(
    api: &Api,
    caller: &Caller,
    request_id: &str,
    method: &Method,
    segments: &[&str],
    body: &[u8],
) -> Result<Map<String, Value>, ApiError> {
    let store = api.store();
    match (method.as_str(), segments) {
        ("GET", ["users"]) => {
            no_body(body)?;
            let users = store
                .list_users()
                .await
                .map_err(|e| internal("listing users", e))?;
            Ok(obj(
                json!({"Users": users.iter().map(user_json).collect::<Vec<_>>()}),
            ))
        }
        ("POST", ["users"]) => {
            let new: NewUser = body_json(body)?;
            check_name("user", &new.name)?;
            match store.get_user(&new.name).await {
                Ok(_) => {
                    return Err(ApiError::new(
                        codes::ENTITY_ALREADY_EXISTS,
                        format!("the user `{}` already exists", new.name),
                    ));
                }
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(internal("reading the user", e)),
            }
            let user = User {
                name: new.name.clone(),
                admin: new.admin,
                created_at: now(),
            };
            store
                .put_user(
                    &user,
                    admin_audit(
                        caller,
                        request_id,
                        "CreateUser",
                        format!("user/{}", new.name),
                        json!({"Admin": new.admin}),
                    ),
                    now(),
                )
                .await
                .map_err(|e| store_error("user", &new.name, e))?;
            Ok(obj(json!({"User": user_json(&user)})))
        }
        ("DELETE", ["users", name]) => {
            no_body(body)?;
            not_self(caller, "delete the user", *name == caller.user.name)?;
            if store
                .delete_user(
                    name,
                    admin_audit(
                        caller,
                        request_id,
                        "DeleteUser",
                        format!("user/{name}"),
                        Value::Null,
                    ),
                    now(),
                )
                .await
                .map_err(|e| store_error("user", name, e))?
            {
                Ok(Map::new())
            } else {
                Err(not_found("user", name))
            }
        }
        ("GET", ["users", name, "keys"]) => {
            no_body(body)?;
            store
                .get_user(name)
                .await
                .map_err(|e| store_error("user", name, e))?;
            let keys = store
                .list_access_keys(name)
                .await
                .map_err(|e| store_error("user", name, e))?;
            Ok(obj(
                json!({"AccessKeys": keys.iter().map(key_json).collect::<Vec<_>>()}),
            ))
        }
        ("POST", ["users", name, "keys"]) => {
            let new: NewKey = if body.is_empty() {
                NewKey::default()
            } else {
                body_json(body)?
            };
            let (id, secret) = match (new.id, new.secret) {
                (None, None) => generate_access_key(),
                (Some(id), Some(secret)) => {
                    if !valid_name(&id)
                        || secret.len() < 16
                        || secret.chars().any(char::is_whitespace)
                    {
                        return Err(ApiError::new(
                            codes::INVALID_PARAMETER,
                            "AccessKeyId must be 1-64 letters, digits, `.`, `_`, `-` or `@`; AccessKeySecret at least 16 characters without whitespace",
                        ));
                    }
                    (id, secret)
                }
                _ => {
                    return Err(ApiError::new(
                        codes::INVALID_PARAMETER,
                        "give both AccessKeyId and AccessKeySecret, or neither to have them generated",
                    ));
                }
            };
            let key = AccessKey {
                id: id.clone(),
                secret: Sensitive::new(secret.clone()),
                user: (*name).to_owned(),
                enabled: true,
                created_at: now(),
            };
            store
                .create_access_key(
                    &key,
                    admin_audit(
                        caller,
                        request_id,
                        "CreateAccessKey",
                        format!("access_key/{id}"),
                        json!({"User": name}),
                    ),
                    now(),
                )
                .await
                .map_err(|e| store_error("access key", &id, e))?;
            Ok(obj(json!({"AccessKey": {
                "AccessKeyId": id, "AccessKeySecret": secret, "User": name, "Enabled": true,
            }})))
        }
        ("PUT", ["keys", id]) => {
            let update: KeyUpdate = body_json(body)?;
            not_self(
                caller,
                "disable the access key",
                !update.enabled && *id == caller.access_key_id,
            )?;
            store
                .set_access_key_enabled(
                    id,
                    update.enabled,
                    admin_audit(
                        caller,
                        request_id,
                        if update.enabled {
                            "EnableAccessKey"
                        } else {
                            "DisableAccessKey"
                        },
                        format!("access_key/{id}"),
                        Value::Null,
                    ),
                    now(),
                )
                .await
                .map_err(|e| store_error("access key", id, e))?;
            Ok(Map::new())
        }
        ("DELETE", ["keys", id]) => {
            no_body(body)?;
            not_self(caller, "delete the access key", *id == caller.access_key_id)?;
            if store
                .delete_access_key(
                    id,
                    admin_audit(
                        caller,
                        request_id,
                        "DeleteAccessKey",
                        format!("access_key/{id}"),
                        Value::Null,
                    ),
                    now(),
                )
                .await
                .map_err(|e| store_error("access key", id, e))?
            {
                Ok(Map::new())
            } else {
                Err(not_found("access key", id))
            }
        }
        ("GET", ["policies"]) => {
            no_body(body)?;
            let policies = store
                .list_policies()
                .await
                .map_err(|e| internal("listing policies", e))?;
            Ok(obj(
                json!({"Policies": policies.iter().map(policy_json).collect::<Vec<_>>()}),
            ))
        }
        ("PUT", ["policies", name]) => {
            check_name("policy", name)?;
            let put: PolicyPut = body_json(body)?;
            PolicyDocument::from_value(&put.document)
                .map_err(|e| ApiError::new(codes::INVALID_PARAMETER, format!("Document: {e}")))?;
            let policy = Policy {
                name: (*name).to_owned(),
                document: put.document,
                created_at: now(),
                updated_at: now(),
            };
            store
                .put_policy(
                    &policy,
                    admin_audit(
                        caller,
                        request_id,
                        "PutPolicy",
                        format!("policy/{name}"),
                        json!({"Document": policy.document}),
                    ),
                    now(),
                )
                .await
                .map_err(|e| store_error("policy", name, e))?;
            Ok(obj(json!({"Policy": policy_json(&policy)})))
        }
        ("DELETE", ["policies", name]) => {
            no_body(body)?;
            if store
                .delete_policy(
                    name,
                    admin_audit(
                        caller,
                        request_id,
                        "DeletePolicy",
                        format!("policy/{name}"),
                        Value::Null,
                    ),
                    now(),
                )
                .await
                .map_err(|e| store_error("policy", name, e))?
            {
                Ok(Map::new())
            } else {
                Err(not_found("policy", name))
            }
        }
        ("GET", ["users", name, "policies"]) => {
            no_body(body)?;
            store
                .get_user(name)
                .await
                .map_err(|e| store_error("user", name, e))?;
            let policies = store
                .user_policies(name)
                .await
                .map_err(|e| store_error("user", name, e))?;
            Ok(obj(
                json!({"Policies": policies.iter().map(policy_json).collect::<Vec<_>>()}),
            ))
        }
        ("PUT", ["users", name, "policies", policy]) => {
            no_body(body)?;
            store
                .attach_policy(
                    name,
                    policy,
                    admin_audit(
                        caller,
                        request_id,
                        "AttachPolicy",
                        format!("user/{name}"),
                        json!({"Policy": policy}),
                    ),
                    now(),
                )
                .await
                .map_err(|e| store_error("user or policy", &format!("{name}/{policy}"), e))?;
            Ok(Map::new())
        }
        ("DELETE", ["users", name, "policies", policy]) => {
            no_body(body)?;
            if store
                .detach_policy(
                    name,
                    policy,
                    admin_audit(
                        caller,
                        request_id,
                        "DetachPolicy",
                        format!("user/{name}"),
                        json!({"Policy": policy}),
                    ),
                    now(),
                )
                .await
                .map_err(|e| store_error("attachment", &format!("{name}/{policy}"), e))?
            {
                Ok(Map::new())
            } else {
                Err(not_found("attachment", &format!("{name}/{policy}")))
            }
        }
        _ => Err(ApiError::new(
            codes::API_NOT_FOUND,
            format!(
                "no admin operation at {method} /edasd/v1/{}; see the edas_api::admin docs for the list",
                segments.join("/")
            ),
        )),
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
