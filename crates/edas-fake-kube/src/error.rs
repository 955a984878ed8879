//! Kubernetes API errors as the API server reports them: an HTTP status plus a `Status` object
//! (`kind: Status`, `reason`, `message`, `details`, `code`), which is what kube-rs decodes into
//! `kube::Error::Api` and what kubectl prints.

use serde_json::{Value, json};

/// One failed API call, rendered as a `meta.k8s.io/v1` `Status` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code (also `Status.code`).
    pub code: u16,
    /// `Status.reason`, e.g. `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `Expired`.
    pub reason: &'static str,
    /// Human readable `Status.message`, worded like the real API server's.
    pub message: String,
    /// `Status.details`, when the real server sends them.
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404: `deployments.apps "web" not found`.
    pub fn not_found(qualified: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{qualified} \"{name}\" not found"))
            .with_details(details(qualified, name))
    }

    /// 403, as RBAC refuses: `deployments.apps "web" is forbidden: User "edas-fake-kube" cannot
    /// patch resource "deployments" in API group "apps" in the namespace "ns"`.
    pub fn forbidden(
        qualified: &str,
        name: Option<&str>,
        verb: &str,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
    ) -> Self {
        let object = match name {
            Some(name) => format!("{qualified} \"{name}\""),
            None => qualified.to_owned(),
        };
        let scope = match namespace {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".to_owned(),
        };
        Self::new(
            403,
            "Forbidden",
            format!(
                "{object} is forbidden: User \"edas-fake-kube\" cannot {verb} resource \"{plural}\" in API group \"{group}\"{scope}"
            ),
        )
        .with_details(details(qualified, name.unwrap_or("")))
    }

    /// 409 on create: `deployments.apps "web" already exists`.
    pub fn already_exists(qualified: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{qualified} \"{name}\" already exists"),
        )
        .with_details(details(qualified, name))
    }

    /// 409 on an update whose `metadata.resourceVersion` is not the stored one.
    pub fn conflict(qualified: &str, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been \
                 modified; please apply your changes to the latest version and try again"
            ),
        )
        .with_details(details(qualified, name))
    }

    /// 409 from server-side apply when another field manager owns a field with another value.
    /// `conflicts` are `(manager description, field path)`; the description is
    /// `name" using apps/v1` so the message reads like the API server's.
    pub fn apply_conflict(conflicts: &[(String, String)]) -> Self {
        let listed: Vec<String> = conflicts
            .iter()
            .map(|(manager, field)| format!("conflict with \"{manager}: {field}"))
            .collect();
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, field)| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{manager}"), "field": field})
            })
            .collect();
        let noun = if conflicts.len() == 1 {
            "conflict"
        } else {
            "conflicts"
        };
        Self::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {} {noun}: {}",
                conflicts.len(),
                listed.join("; ")
            ),
        )
        .with_details(json!({"causes": causes}))
    }

    /// 422: the object is not valid; `field` is the JSON path of the offending field.
    pub fn invalid(kind: &str, name: &str, field: &str, problem: &str) -> Self {
        Self::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {field}: {problem}"),
        )
        .with_details(json!({
            "name": name,
            "kind": kind,
            "causes": [{"reason": "FieldValueInvalid", "message": problem, "field": field}],
        }))
    }

    /// 400: malformed request (bad JSON, bad selector, bad query parameter).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405: the verb is not supported on this path.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 415: a PATCH content type this server does not implement.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?}; edas-fake-kube implements no protobuf or CBOR)"
            ),
        )
    }

    /// 500: a bug in this fake (reported, never a crash).
    pub fn internal(message: String) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// 410: a resourceVersion older than the kept event history.
    pub fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 404 for a path that names no served resource.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource (path {path})"),
        )
    }

    /// A fault injected by the test: any status code, reason `InternalError` or `ServiceUnavailable`.
    pub fn injected(code: u16) -> Self {
        let reason = match code {
            503 => "ServiceUnavailable",
            504 => "Timeout",
            429 => "TooManyRequests",
            _ => "InternalError",
        };
        Self::new(
            code,
            reason,
            format!("injected fault: HTTP {code} (edas-fake-kube fault injection)"),
        )
    }

    /// The `Status` object the API server sends in the body (and in watch `ERROR` events).
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

fn details(qualified: &str, name: &str) -> Value {
    let (kind, group) = qualified.split_once('.').unwrap_or((qualified, ""));
    json!({"name": name, "group": group, "kind": kind})
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}
