//! The one error type of the layer's queries and commands.

use edas_spec::{Violation, ViolationKind, Violations};

/// Why a query or command did not succeed. Each variant is one EDAS error code at the API
/// edge; the message names the cause and is shown to the caller, except `Internal`'s cause,
/// which only the log sees.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The application does not exist (or, where live ones are asked for, was deleted).
    #[error("{0}")]
    ApplicationNotFound(String),
    /// The change order does not exist.
    #[error("{0}")]
    ChangeOrderNotFound(String),
    /// A ConfigMap or Secret does not exist.
    #[error("{0}")]
    EntityNotFound(String),
    /// A ConfigMap or Secret to create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// A ConfigMap or Secret to delete is used by an application.
    #[error("{0}")]
    InUse(String),
    /// Parameters that cannot be carried out as given.
    #[error("{0}")]
    Invalid(Violations),
    /// A change-order control that does not apply to the order's status.
    #[error("{0}")]
    InvalidStatus(String),
    /// Another change order is active, or the order moved on concurrently.
    #[error("{0}")]
    Conflict(String),
    /// The cluster's runtime refused the change.
    #[error("{0}")]
    Runtime(String),
    /// The cluster does not answer now.
    #[error("{0}")]
    Unavailable(String),
    /// An unexpected failure of storage or decoding: `what` failed because of `cause`.
    #[error("{what} failed: {cause}")]
    Internal {
        /// What was being done ("reading the application").
        what: String,
        /// The underlying error, for the log.
        cause: String,
    },
}

impl AppError {
    /// An unexpected failure while doing `what`.
    pub(crate) fn internal(what: impl Into<String>, cause: impl std::fmt::Display) -> AppError {
        AppError::Internal {
            what: what.into(),
            cause: cause.to_string(),
        }
    }

    /// Parameter `parameter` is malformed or names what does not exist.
    pub fn invalid(parameter: &str, message: impl Into<String>) -> AppError {
        AppError::Invalid(Violations(vec![Violation {
            parameter: parameter.to_owned(),
            kind: ViolationKind::Invalid,
            message: message.into(),
        }]))
    }

    pub(crate) fn no_application(id: &str) -> AppError {
        AppError::ApplicationNotFound(format!("the application `{id}` does not exist"))
    }

    pub(crate) fn no_change_order(id: &str) -> AppError {
        AppError::ChangeOrderNotFound(format!("the change order `{id}` does not exist"))
    }
}
