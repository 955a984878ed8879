//! The one table of error codes edasd answers with, and the error type handlers return.
//!
//! Both official SDKs treat any 2xx as success and never look at the body's `Code`, so an error
//! is never answered with a 2xx: every code has a 4xx/5xx status here, and docs/ERRORS.md lists
//! the same table (a test keeps them identical).

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use edas_pop::codes as pop;
use edas_spec::Violations;

/// One error code with its HTTP status and when it is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode {
    /// The body's `Code`.
    pub code: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// When edasd answers it.
    pub meaning: &'static str,
}

/// Codes of edasd's own (the signature codes come from `edas_pop::codes`, the parameter codes
/// from `edas_spec::ViolationKind`).
pub mod codes {
    /// A parameter is required but absent.
    pub const MISSING_PARAMETER: &str = "MissingParameter";
    /// A parameter value is malformed or refers to something that does not exist.
    pub const INVALID_PARAMETER: &str = "InvalidParameter";
    /// A well-formed value this server deliberately does not support.
    pub const INVALID_PARAMETER_NOT_SUPPORTED: &str = "InvalidParameter.NotSupported";
    /// A parameter the operation does not have.
    pub const INVALID_PARAMETER_UNKNOWN: &str = "InvalidParameter.Unknown";
    /// The caller's policies do not allow the action on the resource.
    pub const AUTH_ERROR: &str = "AUTH_ERROR";
    /// No operation at this method and path.
    pub const API_NOT_FOUND: &str = "InvalidApi.NotFound";
    /// An EDAS operation this server does not implement (yet).
    pub const UNSUPPORTED_OPERATION: &str = "UnsupportedOperation";
    /// The application does not exist (or was deleted).
    pub const APPLICATION_NOT_FOUND: &str = "InvalidAppId.NotFound";
    /// The change order does not exist.
    pub const CHANGE_ORDER_NOT_FOUND: &str = "InvalidChangeOrderId.NotFound";
    /// The application already has a change order in progress.
    pub const CHANGE_ORDER_CONFLICT: &str = "OperationConflict.ChangeOrderRunning";
    /// A change-order control operation that does not apply to the order's current status.
    pub const INVALID_CHANGE_ORDER_STATUS: &str = "InvalidChangeOrderStatus";
    /// The runtime of the application's cluster refuses the change.
    pub const RUNTIME_REFUSED: &str = "RuntimeRefused";
    /// The application's cluster does not answer now (its API server is down).
    pub const CLUSTER_UNAVAILABLE: &str = "ClusterUnavailable";
    /// Admin API: the user, key or policy does not exist.
    pub const ENTITY_NOT_FOUND: &str = "EntityNotExist";
    /// Admin API: the user, key or policy already exists.
    pub const ENTITY_ALREADY_EXISTS: &str = "EntityAlreadyExists";
    /// The URL or body is larger than the server accepts.
    pub const REQUEST_TOO_LARGE: &str = "RequestTooLarge";
    /// The request body did not arrive within the server's body deadline.
    pub const REQUEST_TIMEOUT: &str = "RequestTimeout";
    /// A ConfigMap or Secret cannot be deleted while applications use it.
    pub const RESOURCE_IN_USE: &str = "OperationDenied.ResourceInUse";
    /// The caller has as many streams open as a user may.
    pub const THROTTLING_USER: &str = "Throttling.User";
    /// Something failed inside edasd; the RequestId finds it in the logs.
    pub const INTERNAL_ERROR: &str = "InternalError";
}

/// Every code edasd answers with. docs/ERRORS.md is this table.
pub const ERROR_TABLE: &[ErrorCode] = &[
    ErrorCode {
        code: pop::INCOMPLETE_SIGNATURE,
        status: 400,
        meaning: "The Authorization header is missing or malformed, uses an unsupported algorithm, or a header that must be signed is not.",
    },
    ErrorCode {
        code: pop::SIGNATURE_DOES_NOT_MATCH,
        status: 400,
        meaning: "The signature does not match (wrong secret, or the request was altered). The message carries the server's string-to-sign after a colon, as the classic SDK expects.",
    },
    ErrorCode {
        code: pop::ILLEGAL_TIMESTAMP,
        status: 400,
        meaning: "`Date` (V1) or `x-acs-date` (V3) is missing or more than 15 minutes from the server clock.",
    },
    ErrorCode {
        code: pop::INVALID_TIMESTAMP_FORMAT,
        status: 400,
        meaning: "`Date` / `x-acs-date` is not a valid date.",
    },
    ErrorCode {
        code: pop::SIGNATURE_NONCE_USED,
        status: 400,
        meaning: "The `x-acs-signature-nonce` was already used within the 15-minute window (a replay). V1 requests without a nonce rely on the date window alone.",
    },
    ErrorCode {
        code: pop::CONTENT_MD5_NOT_MATCHED,
        status: 400,
        meaning: "`Content-MD5` does not match the body.",
    },
    ErrorCode {
        code: pop::CONTENT_SHA256_NOT_MATCHED,
        status: 400,
        meaning: "`x-acs-content-sha256` does not match the body.",
    },
    ErrorCode {
        code: pop::SECURITY_TOKEN_NOT_SUPPORTED,
        status: 400,
        meaning: "The request carries an STS security token (`x-acs-security-token`); sign with an access key pair.",
    },
    ErrorCode {
        code: pop::INVALID_ACCESS_KEY_ID_NOT_FOUND,
        status: 404,
        meaning: "The access key id is unknown.",
    },
    ErrorCode {
        code: pop::INVALID_ACCESS_KEY_ID_INACTIVE,
        status: 400,
        meaning: "The access key is disabled.",
    },
    ErrorCode {
        code: pop::SERVICE_UNAVAILABLE,
        status: 503,
        meaning: "Too many signed requests within the replay window to remember their nonces; retry later.",
    },
    ErrorCode {
        code: codes::MISSING_PARAMETER,
        status: 400,
        meaning: "A required parameter is absent; the message names it.",
    },
    ErrorCode {
        code: codes::INVALID_PARAMETER,
        status: 400,
        meaning: "A parameter is malformed, out of range or names something that does not exist (a cluster, a namespace); the message names it and says what is wrong. Also a malformed query string or admin request body.",
    },
    ErrorCode {
        code: codes::INVALID_PARAMETER_NOT_SUPPORTED,
        status: 400,
        meaning: "A well-formed value this self-hosted server deliberately does not support (docs/PARAMETERS.md says which).",
    },
    ErrorCode {
        code: codes::INVALID_PARAMETER_UNKNOWN,
        status: 400,
        meaning: "A parameter the operation does not have.",
    },
    ErrorCode {
        code: codes::AUTH_ERROR,
        status: 401,
        meaning: "The signature is valid but no policy of the user allows the action on the resource (or a Deny matches), or a non-administrator called the admin API. As the EDAS error-code page: HTTP 401 `AUTH_ERROR`.",
    },
    ErrorCode {
        code: codes::API_NOT_FOUND,
        status: 404,
        meaning: "No operation exists at this method and path.",
    },
    ErrorCode {
        code: codes::UNSUPPORTED_OPERATION,
        status: 501,
        meaning: "An EDAS operation this server does not implement; the message names the action.",
    },
    ErrorCode {
        code: codes::APPLICATION_NOT_FOUND,
        status: 404,
        meaning: "The application (`AppId`) does not exist or was deleted.",
    },
    ErrorCode {
        code: codes::CHANGE_ORDER_NOT_FOUND,
        status: 404,
        meaning: "The change order (`ChangeOrderId`) does not exist.",
    },
    ErrorCode {
        code: codes::INVALID_CHANGE_ORDER_STATUS,
        status: 400,
        meaning: "ContinuePipeline, AbortChangeOrder, RollbackChangeOrder, AbortAndRollbackChangeOrder or RetryChangeOrderTask does not apply to the change order's status (e.g. continuing a batch that is not waiting, continuing while the release analysis of the batch just done still runs, `SkipAnalysis=true` on an order that waits for no analysis, retrying an order that has not failed); the message says why. Nothing changed.",
    },
    ErrorCode {
        code: codes::CHANGE_ORDER_CONFLICT,
        status: 409,
        meaning: "The application already has a change order in progress; the message names it. Wait for it or abort it.",
    },
    ErrorCode {
        code: codes::CLUSTER_UNAVAILABLE,
        status: 503,
        meaning: "The cluster of the change does not answer now (its API server is down or unreachable); refused at once, nothing stored. The message names the cluster and its API server address. DeleteK8sApplication still succeeds: the application is removed at once and its objects are swept when the cluster answers.",
    },
    ErrorCode {
        code: codes::RUNTIME_REFUSED,
        status: 400,
        meaning: "The runtime of the application's cluster cannot run this change (for example an image-only setting on the local runtime).",
    },
    ErrorCode {
        code: codes::ENTITY_NOT_FOUND,
        status: 404,
        meaning: "The ConfigMap or Secret (UpdateK8s…/DeleteK8s…), the EDAS namespace (InsertOrUpdateRegion with an `Id`, DeleteUserDefineRegion), the precheck result (GetK8sAppPrecheckResult before a StartK8sAppPrecheck of that application since edasd started), or in the admin API the user, access key or policy, does not exist.",
    },
    ErrorCode {
        code: codes::ENTITY_ALREADY_EXISTS,
        status: 409,
        meaning: "CreateK8sConfigMap / CreateK8sSecret: the object already exists in that namespace of that cluster; InsertOrUpdateRegion without `Id`: the namespace exists (give its `Id` to change it); admin API: a user or access key with this name or id already exists.",
    },
    ErrorCode {
        code: codes::RESOURCE_IN_USE,
        status: 409,
        meaning: "DeleteK8sConfigMap / DeleteK8sSecret: the object is used by the current configuration of applications (an environment variable's valueFrom, EnvFroms, ConfigMountDescs, or the image pull secret); DeleteUserDefineRegion: applications are in the namespace; the message names them. Nothing changed.",
    },
    ErrorCode {
        code: codes::REQUEST_TOO_LARGE,
        status: 413,
        meaning: "The body exceeds 1 MiB. (The HTTP layer caps the request target at 64 KiB and answers a longer one with a bare 414 before edasd sees it.)",
    },
    ErrorCode {
        code: codes::REQUEST_TIMEOUT,
        status: 408,
        meaning: "The request body did not arrive completely within `[server] body_read_timeout_seconds` (30 s by default); the connection is closed. Requests whose line and headers do not arrive within `header_read_timeout_seconds` are closed without an answer.",
    },
    ErrorCode {
        code: codes::THROTTLING_USER,
        status: 429,
        meaning: "The user has 32 streams open already (`GET /edasd/v1/events` and `GET /edasd/v1/logs` together); close one and retry.",
    },
    ErrorCode {
        code: codes::INTERNAL_ERROR,
        status: 500,
        meaning: "An unexpected failure inside edasd (database unavailable, corrupt record); the RequestId finds the details in the server log.",
    },
];

/// The HTTP status of a code in [`ERROR_TABLE`].
pub fn status_of(code: &str) -> Option<u16> {
    ERROR_TABLE
        .iter()
        .find(|e| e.code == code)
        .map(|e| e.status)
}

/// The longest `Message` an error answer carries.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// An error answer: code, message; the status comes from [`ERROR_TABLE`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// The body's `Code`.
    pub code: Cow<'static, str>,
    /// The body's `Message`.
    pub message: String,
}

impl ApiError {
    /// An error with a code of [`ERROR_TABLE`].
    pub fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        debug_assert!(
            status_of(code).is_some(),
            "{code} is not in the error table"
        );
        ApiError {
            code: Cow::Borrowed(code),
            message: message.into(),
        }
    }

    /// An internal failure: logged in full by the caller, answered with the RequestId to find it.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(codes::INTERNAL_ERROR, message)
    }

    /// The HTTP status (500 for a code missing from the table, which a test forbids).
    pub fn status(&self) -> StatusCode {
        status_of(&self.code)
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The response, with the body `{"Code", "Message", "RequestId"}`.
    /// A message longer than [`MAX_MESSAGE_BYTES`] (one that quotes a hostile megabyte value)
    /// is cut there, so an error never echoes a request back.
    pub fn into_response_with(self, request_id: &str) -> Response {
        let status = self.status();
        let mut message = self.message;
        if message.len() > MAX_MESSAGE_BYTES {
            let total = message.len();
            message.truncate(message.floor_char_boundary(MAX_MESSAGE_BYTES));
            message.push_str(&format!("… (message cut; {total} bytes in all)"));
        }
        let body = edas_wire::envelope::ErrorBody {
            code: self.code.into_owned(),
            message,
            request_id: request_id.to_owned(),
        };
        let mut response = (status, Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(request_id) {
            response.headers_mut().insert("x-acs-request-id", value);
        }
        response
    }
}

impl From<edas_pop::VerifyError> for ApiError {
    fn from(error: edas_pop::VerifyError) -> ApiError {
        ApiError {
            code: Cow::Borrowed(error.code()),
            message: error.to_string(),
        }
    }
}

impl From<Violations> for ApiError {
    fn from(violations: Violations) -> ApiError {
        ApiError {
            code: Cow::Borrowed(violations.code()),
            message: violations.to_string(),
        }
    }
}

/// The application layer's errors as EDAS codes: the one place a layer error gets its code.
/// An `Internal` cause is logged under the RequestId and not shown to the caller.
impl From<edas_app::AppError> for ApiError {
    fn from(error: edas_app::AppError) -> ApiError {
        use edas_app::AppError;
        match error {
            AppError::ApplicationNotFound(m) => ApiError::new(codes::APPLICATION_NOT_FOUND, m),
            AppError::ChangeOrderNotFound(m) => ApiError::new(codes::CHANGE_ORDER_NOT_FOUND, m),
            AppError::EntityNotFound(m) => ApiError::new(codes::ENTITY_NOT_FOUND, m),
            AppError::AlreadyExists(m) => ApiError::new(codes::ENTITY_ALREADY_EXISTS, m),
            AppError::InUse(m) => ApiError::new(codes::RESOURCE_IN_USE, m),
            AppError::Invalid(violations) => ApiError::from(violations),
            AppError::InvalidStatus(m) => ApiError::new(codes::INVALID_CHANGE_ORDER_STATUS, m),
            AppError::Conflict(m) => ApiError::new(codes::CHANGE_ORDER_CONFLICT, m),
            AppError::Runtime(m) => ApiError::new(codes::RUNTIME_REFUSED, m),
            AppError::Unavailable(m) => ApiError::new(codes::CLUSTER_UNAVAILABLE, m),
            AppError::Internal { what, cause } => crate::caller::internal(&what, cause),
        }
    }
}

/// Renders docs/ERRORS.md's table from [`ERROR_TABLE`].
pub fn markdown_table() -> String {
    let mut out = String::from("| Code | HTTP status | When |\n|---|---|---|\n");
    for e in ERROR_TABLE {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            e.code, e.status, e.meaning
        ));
    }
    out
}

#[cfg(test)]
const TABLE_START: &str = "<!-- error table: generated from crates/edas-api/src/error.rs -->";
#[cfg(test)]
const TABLE_END: &str = "<!-- end of error table -->";

#[cfg(test)]
mod tests {
    use super::*;
    use edas_spec::{Violation, ViolationKind};

    #[test]
    fn every_code_is_an_error_status_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for e in ERROR_TABLE {
            assert!(
                (400..600).contains(&e.status),
                "{} has {}",
                e.code,
                e.status
            );
            assert!(seen.insert(e.code), "{} twice", e.code);
        }
    }

    #[test]
    fn every_signature_code_is_in_the_table_with_the_same_status() {
        for (code, status) in pop::TABLE {
            if *code == pop::INVALID_PARAMETER {
                assert_eq!(status_of(code), Some(400));
                continue;
            }
            assert_eq!(status_of(code), Some(*status), "{code}");
        }
    }

    #[test]
    fn every_violation_code_is_in_the_table() {
        for kind in [
            ViolationKind::Missing,
            ViolationKind::Invalid,
            ViolationKind::NotSupported,
            ViolationKind::Unknown,
        ] {
            assert_eq!(status_of(kind.code()), Some(400), "{}", kind.code());
        }
        let error = ApiError::from(Violations(vec![Violation {
            parameter: "Envs".into(),
            kind: ViolationKind::Invalid,
            message: "not a JSON array".into(),
        }]));
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(error.message.contains("Envs"));
    }

    #[test]
    fn docs_errors_md_is_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ERRORS.md");
        let doc = std::fs::read_to_string(path).expect("docs/ERRORS.md");
        if std::env::var_os("EDAS_UPDATE_DOCS").is_some() {
            let (head, rest) = doc.split_once(TABLE_START).expect("table start marker");
            let (_, tail) = rest.split_once(TABLE_END).expect("table end marker");
            let updated = format!("{head}{TABLE_START}\n{}{TABLE_END}{tail}", markdown_table());
            std::fs::write(path, updated).expect("writing docs/ERRORS.md");
            return;
        }
        assert!(
            doc.contains(&markdown_table()),
            "docs/ERRORS.md is out of date; regenerate with EDAS_UPDATE_DOCS=1 cargo test -p edas-api docs_errors"
        );
    }
}
