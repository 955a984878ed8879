//! Who is calling (the authenticated user and its policies) and how an unexpected failure is
//! answered: what every operation module needs from the request pipeline, kept apart from the
//! router so that no operation module imports the module that dispatches to it.

use edas_app::User;
use edas_spec::Params;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::Api;
use crate::error::{ApiError, codes};
use crate::policy::{Decision, PolicyDocument, evaluate_tagged};

/// The tags of applications (`application`, id) and clusters (`cluster`, id), read for a
/// caller whose policies have tag conditions.
pub(crate) type ResourceTags =
    std::collections::HashMap<(&'static str, String), std::collections::BTreeMap<String, String>>;

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
    /// The resources' tags the policies' conditions are evaluated on (empty when no policy
    /// has a condition).
    pub(crate) tags: ResourceTags,
}

impl Caller {
    /// The actor recorded in audit records: `user (access key)`.
    pub fn actor(&self) -> String {
        format!("{} ({})", self.user.name, self.access_key_id)
    }

    /// Whether the caller may perform `action` on `resource`.
    pub fn may(&self, action: &str, resource: &str) -> bool {
        self.user.admin || self.decide(action, resource) == Decision::Allowed
    }

    /// The policies' decision on `action` on `resource`, with the tags of the application or
    /// cluster its ARN names (other resources carry none).
    fn decide(&self, action: &str, resource: &str) -> Decision {
        let named = match (
            resource.rsplit_once("/application/"),
            resource.split_once(":cluster/"),
        ) {
            (Some((_, app)), _) => Some(("application", app)),
            // A cluster's own ARN; a ConfigMap/Secret inside it is not the tagged resource.
            (None, Some((_, cluster))) if !cluster.contains('/') => Some(("cluster", cluster)),
            _ => None,
        };
        let empty = std::collections::BTreeMap::new();
        let tags = named
            .and_then(|(kind, id)| self.tags.get(&(kind, id.to_owned())))
            .unwrap_or(&empty);
        evaluate_tagged(&self.policies, action, resource, tags)
    }

    /// `Ok` when the caller may perform `action` on `resource`, else `AUTH_ERROR` saying why.
    pub fn authorize(&self, action: &str, resource: &str) -> Result<(), ApiError> {
        if self.user.admin {
            return Ok(());
        }
        match self.decide(action, resource) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_conditions_see_the_tags_of_the_application_or_cluster_an_arn_names() {
        let policy = PolicyDocument::from_value(&serde_json::json!({"Statement": [
            {"Effect": "Allow", "Action": "edas:*", "Resource": "*",
             "Condition": {"StringEquals": {"acs:ResourceTag/env": "prod"}}}
        ]}))
        .unwrap();
        let prod: std::collections::BTreeMap<String, String> =
            [("env".to_owned(), "prod".to_owned())].into();
        let caller = Caller {
            user: User {
                name: "u".into(),
                admin: false,
                created_at: jiff::Timestamp::UNIX_EPOCH,
            },
            access_key_id: "AK".into(),
            policies: vec![policy],
            tags: [
                (("application", "app-1".to_owned()), prod.clone()),
                (("cluster", "k8s".to_owned()), prod),
            ]
            .into(),
        };
        let a = "acs:edas:r:acct";
        assert!(caller.may(
            "edas:ReadApplication",
            &format!("{a}:namespace/r/application/app-1")
        ));
        assert!(!caller.may(
            "edas:ReadApplication",
            &format!("{a}:namespace/r/application/app-2")
        ));
        assert!(caller.may("edas:ReadCluster", &format!("{a}:cluster/k8s")));
        assert!(!caller.may(
            "edas:ReadConfiguration",
            &format!("{a}:cluster/k8s/namespace/default/configmap/c")
        ));
        assert!(!caller.may("edas:ReadNamespace", &format!("{a}:namespace/r")));
    }
}
