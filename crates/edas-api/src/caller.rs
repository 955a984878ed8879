//! Who is calling (the authenticated user and its policies) and how an unexpected failure is
//! answered: what every operation module needs from the request pipeline, kept apart from the
//! router so that no operation module imports the module that dispatches to it.

use edas_app::User;
use edas_spec::Params;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::Api;
use crate::error::{ApiError, codes};
use crate::policy::{Decision, PolicyDocument, evaluate};

/// One EDAS request as an operation sees it: the API, the authenticated caller, the decoded
/// parameters and the RequestId its audit records carry. Copied into every operation, so
/// their signatures are one argument plus what tells them apart.
#[derive(Clone, Copy)]
pub(crate) struct Call<'a> {
    pub api: &'a Api,
    pub caller: &'a Caller,
    pub params: &'a Params,
    pub request_id: &'a str,
}

impl<'a> Call<'a> {
    /// The API, the caller, the parameters and the RequestId, for an operation to name at once.
    pub fn parts(self) -> (&'a Api, &'a Caller, &'a Params, &'a str) {
        (self.api, self.caller, self.params, self.request_id)
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub user: User,
    pub access_key_id: String,
    pub(crate) policies: Vec<PolicyDocument>,
}

impl Caller {
    /// The actor recorded in audit records: `user (access key)`.
    pub fn actor(&self) -> String {
        format!("{} ({})", self.user.name, self.access_key_id)
    }

    /// Whether the caller may perform `action` on `resource`.
    pub fn may(&self, action: &str, resource: &str) -> bool {
        self.user.admin || evaluate(&self.policies, action, resource) == Decision::Allowed
    }

    /// `Ok` when the caller may perform `action` on `resource`, else `AUTH_ERROR` saying why.
    pub fn authorize(&self, action: &str, resource: &str) -> Result<(), ApiError> {
        if self.user.admin {
            return Ok(());
        }
        match evaluate(&self.policies, action, resource) {
            Decision::Allowed => Ok(()),
            Decision::ExplicitlyDenied => Err(ApiError::new(
                codes::AUTH_ERROR,
                format!(
                    "user `{}` is denied {action} on {resource} by an explicit Deny in its policies",
                    self.user.name
                ),
            )),
            Decision::NotAllowed => Err(ApiError::new(
                codes::AUTH_ERROR,
                format!(
                    "user `{}` is not allowed {action} on {resource}: no policy of the user allows it",
                    self.user.name
                ),
            )),
        }
    }
}

/// Logs an unexpected failure and turns it into an `InternalError` (details stay in the log).
pub(crate) fn internal(what: &str, error: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %error, "{what} failed");
    ApiError::internal(format!(
        "{what} failed inside edasd; the server log has the details under this RequestId"
    ))
}

/// An operation's typed response body (an `edas_wire` struct) as the fields the envelope
/// carries beside `Code`, `Message` and `RequestId`: the one place responses are encoded.
pub(crate) fn encode(body: impl Serialize) -> Result<Map<String, Value>, ApiError> {
    match serde_json::to_value(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(other) => Err(internal(
            "encoding the response",
            format!("not a JSON object: {other}"),
        )),
        Err(e) => Err(internal("encoding the response", e)),
    }
}
