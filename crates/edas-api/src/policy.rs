//! RAM-style policy documents and their evaluation (pure).
//!
//! A document is `{"Version": "1", "Statement": [{"Effect": "Allow"|"Deny", "Action": …,
//! "Resource": …}]}` where `Action` and `Resource` are a string or a list of strings, with `*`
//! (any run of characters) and `?` (one character) wildcards. Actions match case-insensitively
//! (as RAM does), resources case-sensitively. Evaluation over all of a user's policies: an
//! explicit Deny that matches wins; otherwise an Allow that matches allows; otherwise nothing is
//! allowed.
//!
//! A statement may carry a `Condition` on the resource's tags, as EDAS's RAM policies do:
//! `{"StringEquals": {"acs:ResourceTag/team": ["a"]}}` (operators `StringEquals`,
//! `StringNotEquals`, `StringLike`, `StringNotLike`; `Like` takes `*`/`?`). The statement
//! applies only when every condition holds for the tags of the resource asked about (an
//! application or cluster; a resource without the tag matches only the `Not` operators).
//! Other condition keys are refused when the policy is stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A validated policy document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// `"1"` (the only RAM policy version).
    #[serde(rename = "Version", default = "default_version")]
    pub version: String,
    /// The statements, evaluated together.
    #[serde(rename = "Statement")]
    pub statement: Vec<Statement>,
}

fn default_version() -> String {
    "1".to_owned()
}

/// One statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// Allow or Deny.
    #[serde(rename = "Effect")]
    pub effect: Effect,
    /// Action patterns, e.g. `edas:ManageApplication` or `edas:*`.
    #[serde(rename = "Action")]
    pub action: OneOrMany,
    /// Resource patterns, e.g. `acs:edas:*:*:namespace/cn-hangzhou/application/*`.
    #[serde(rename = "Resource")]
    pub resource: OneOrMany,
    /// Conditions on the resource's tags: operator → `acs:ResourceTag/<key>` → values.
    #[serde(rename = "Condition", default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<BTreeMap<String, BTreeMap<String, OneOrMany>>>,
}

/// The prefix of the one condition key edasd evaluates.
pub const RESOURCE_TAG_KEY: &str = "acs:ResourceTag/";

/// The condition operators edasd evaluates.
const OPERATORS: [&str; 4] = [
    "StringEquals",
    "StringNotEquals",
    "StringLike",
    "StringNotLike",
];

/// The effect of a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Allows what it matches, unless a Deny matches too.
    Allow,
    /// Denies what it matches, whatever else allows it.
    Deny,
}

/// A string or a list of strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One pattern.
    One(String),
    /// Several patterns.
    Many(Vec<String>),
}

impl OneOrMany {
    fn patterns(&self) -> &[String] {
        match self {
            OneOrMany::One(p) => std::slice::from_ref(p),
            OneOrMany::Many(ps) => ps,
        }
    }
}

/// Why a policy document was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

impl PolicyDocument {
    /// Parses and validates a document: known fields only, Version `1`, at least one statement,
    /// non-empty pattern lists without empty patterns.
    pub fn from_value(value: &serde_json::Value) -> Result<PolicyDocument, PolicyError> {
        let doc: PolicyDocument = serde_json::from_value(value.clone())
            .map_err(|e| PolicyError(format!("the policy document is malformed: {e}")))?;
        if doc.version != "1" {
            return Err(PolicyError(format!(
                "Version must be \"1\", not {:?}",
                doc.version
            )));
        }
        if doc.statement.is_empty() {
            return Err(PolicyError("Statement must not be empty".into()));
        }
        for (i, s) in doc.statement.iter().enumerate() {
            if let Some(condition) = &s.condition {
                check_condition(i, condition)?;
            }
            for (field, list) in [("Action", &s.action), ("Resource", &s.resource)] {
                let patterns = list.patterns();
                if patterns.is_empty() || patterns.iter().any(|p| p.trim().is_empty()) {
                    return Err(PolicyError(format!(
                        "Statement[{i}].{field} must list at least one non-empty pattern"
                    )));
                }
            }
        }
        Ok(doc)
    }
}

/// Refuses a `Condition` edasd cannot evaluate (so none is silently ignored).
fn check_condition(
    i: usize,
    condition: &BTreeMap<String, BTreeMap<String, OneOrMany>>,
) -> Result<(), PolicyError> {
    if condition.is_empty() {
        return Err(PolicyError(format!(
            "Statement[{i}].Condition must name at least one operator"
        )));
    }
    for (operator, keys) in condition {
        if !OPERATORS.contains(&operator.as_str()) {
            return Err(PolicyError(format!(
                "Statement[{i}].Condition operator `{operator}` is not supported; use {}",
                OPERATORS.join(", ")
            )));
        }
        if keys.is_empty() {
            return Err(PolicyError(format!(
                "Statement[{i}].Condition.{operator} must name at least one key"
            )));
        }
        for (key, values) in keys {
            let tag = key.strip_prefix(RESOURCE_TAG_KEY).unwrap_or_default();
            if tag.is_empty() {
                return Err(PolicyError(format!(
                    "Statement[{i}].Condition.{operator}: the key `{key}` is not supported; edasd evaluates {RESOURCE_TAG_KEY}<tag key> only"
                )));
            }
            if values.patterns().is_empty() {
                return Err(PolicyError(format!(
                    "Statement[{i}].Condition.{operator}.{key} must list at least one value"
                )));
            }
        }
    }
    Ok(())
}

/// Whether every condition of `statement` holds for a resource carrying `tags`.
fn conditions_hold(statement: &Statement, tags: &BTreeMap<String, String>) -> bool {
    let Some(condition) = &statement.condition else {
        return true;
    };
    condition.iter().all(|(operator, keys)| {
        keys.iter().all(|(key, values)| {
            let tag = key.strip_prefix(RESOURCE_TAG_KEY).and_then(|k| tags.get(k));
            let values = values.patterns();
            match (operator.as_str(), tag) {
                ("StringEquals", Some(v)) => values.iter().any(|x| x == v),
                ("StringLike", Some(v)) => values.iter().any(|x| wildcard_match(x, v)),
                ("StringNotEquals", Some(v)) => values.iter().all(|x| x != v),
                ("StringNotLike", Some(v)) => values.iter().all(|x| !wildcard_match(x, v)),
                ("StringNotEquals" | "StringNotLike", None) => true,
                _ => false,
            }
        })
    })
}

impl PolicyDocument {
    /// Whether a statement has a condition on resource tags (so evaluating it needs them).
    pub fn uses_resource_tags(&self) -> bool {
        self.statement.iter().any(|s| s.condition.is_some())
    }
}

/// The outcome of evaluating policies for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// An Allow matched and no Deny did.
    Allowed,
    /// A Deny matched.
    ExplicitlyDenied,
    /// Nothing matched.
    NotAllowed,
}

/// Evaluates `action` on `resource` against every statement of `policies`, for a resource
/// without tags.
pub fn evaluate(policies: &[PolicyDocument], action: &str, resource: &str) -> Decision {
    evaluate_tagged(policies, action, resource, &BTreeMap::new())
}

/// Evaluates `action` on `resource`, which carries `tags`, against every statement of
/// `policies` (a statement's conditions are on those tags).
pub fn evaluate_tagged(
    policies: &[PolicyDocument],
    action: &str,
    resource: &str,
    tags: &BTreeMap<String, String>,
) -> Decision {
    let mut allowed = false;
    for statement in policies.iter().flat_map(|p| &p.statement) {
        let action_matches = statement
            .action
            .patterns()
            .iter()
            .any(|p| wildcard_match(&p.to_ascii_lowercase(), &action.to_ascii_lowercase()));
        let resource_matches = statement
            .resource
            .patterns()
            .iter()
            .any(|p| wildcard_match(p, resource));
        if action_matches && resource_matches && conditions_hold(statement, tags) {
            match statement.effect {
                Effect::Deny => return Decision::ExplicitlyDenied,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allowed
    } else {
        Decision::NotAllowed
    }
}

/// `*` matches any run of characters (also empty), `?` exactly one; everything else literally.
/// Iterative with backtracking to the last `*`: linear-ish, no recursion, no panics.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The ARN of an application: `acs:edas:{region}:{account}:namespace/{ns}/application/{app}`.
pub fn application_arn(region: &str, account: &str, namespace: &str, app_id: &str) -> String {
    format!("acs:edas:{region}:{account}:namespace/{namespace}/application/{app_id}")
}

/// The resource name of a cluster.
pub fn cluster_arn(region: &str, account: &str, cluster_id: &str) -> String {
    format!("acs:edas:{region}:{account}:cluster/{cluster_id}")
}

/// The resource name of a ConfigMap (`kind` = `configmap`) or Secret (`secret`).
pub fn configuration_arn(
    region: &str,
    account: &str,
    cluster_id: &str,
    k8s_namespace: &str,
    kind: &str,
    name: &str,
) -> String {
    format!(
        "acs:edas:{region}:{account}:cluster/{cluster_id}/namespace/{k8s_namespace}/{kind}/{name}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: serde_json::Value) -> PolicyDocument {
        PolicyDocument::from_value(&v).unwrap()
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match(
            "acs:edas:*:*:namespace/*/application/*",
            "acs:edas:cn-hangzhou:1:namespace/cn-hangzhou/application/x"
        ));
        assert!(!wildcard_match(
            "acs:edas:*:*:namespace/prod/*",
            "acs:edas:r:1:namespace/dev/application/x"
        ));
        assert!(wildcard_match("*a*b*", "xxaxxbxx"));
        assert!(!wildcard_match("abc", "abcd"));
    }

    #[test]
    fn nothing_is_allowed_by_default_and_deny_wins() {
        let arn = application_arn("cn-hangzhou", "1", "cn-hangzhou", "app-1");
        assert_eq!(
            evaluate(&[], "edas:ReadApplication", &arn),
            Decision::NotAllowed
        );
        let allow = doc(json!({"Version": "1", "Statement": [
            {"Effect": "Allow", "Action": "edas:*", "Resource": "*"}]}));
        assert_eq!(
            evaluate(std::slice::from_ref(&allow), "edas:ManageApplication", &arn),
            Decision::Allowed
        );
        let deny = doc(json!({"Statement": [
            {"Effect": "Deny", "Action": ["edas:ManageApplication"], "Resource": ["acs:edas:*:*:namespace/cn-hangzhou/application/app-?"]}]}));
        assert_eq!(
            evaluate(
                &[allow.clone(), deny.clone()],
                "edas:ManageApplication",
                &arn
            ),
            Decision::ExplicitlyDenied
        );
        assert_eq!(
            evaluate(&[allow, deny], "edas:ReadApplication", &arn),
            Decision::Allowed
        );
    }

    #[test]
    fn actions_match_case_insensitively_resources_do_not() {
        let p = doc(json!({"Statement": [
            {"Effect": "Allow", "Action": "EDAS:readapplication", "Resource": "acs:edas:*:*:namespace/NS/*"}]}));
        assert_eq!(
            evaluate(
                std::slice::from_ref(&p),
                "edas:ReadApplication",
                "acs:edas:r:1:namespace/NS/application/a"
            ),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(
                &[p],
                "edas:ReadApplication",
                "acs:edas:r:1:namespace/ns/application/a"
            ),
            Decision::NotAllowed
        );
    }

    #[test]
    fn tag_conditions_narrow_a_statement_to_tagged_resources() {
        let doc = PolicyDocument::from_value(&json!({"Statement": [
            {"Effect": "Allow", "Action": "edas:ManageApplication", "Resource": "*",
             "Condition": {"StringEquals": {"acs:ResourceTag/env": ["DEV", "TEST"]},
                           "StringLike": {"acs:ResourceTag/team": "team*"}}},
            {"Effect": "Deny", "Action": "edas:*", "Resource": "*",
             "Condition": {"StringEquals": {"acs:ResourceTag/env": "PROD"}}}
        ]}))
        .unwrap();
        assert!(doc.uses_resource_tags());
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let eval = |t: &BTreeMap<String, String>| {
            evaluate_tagged(
                std::slice::from_ref(&doc),
                "edas:ManageApplication",
                "arn",
                t,
            )
        };
        assert_eq!(
            eval(&tags(&[("env", "DEV"), ("team", "team1")])),
            Decision::Allowed
        );
        assert_eq!(
            eval(&tags(&[("env", "DEV"), ("team", "ops")])),
            Decision::NotAllowed
        );
        assert_eq!(
            eval(&tags(&[("env", "PROD"), ("team", "team1")])),
            Decision::ExplicitlyDenied
        );
        assert_eq!(eval(&tags(&[])), Decision::NotAllowed);
        let not = PolicyDocument::from_value(&json!({"Statement": [
            {"Effect": "Allow", "Action": "edas:Read*", "Resource": "*",
             "Condition": {"StringNotEquals": {"acs:ResourceTag/env": "PROD"}}}
        ]}))
        .unwrap();
        let read = |t: &BTreeMap<String, String>| {
            evaluate_tagged(std::slice::from_ref(&not), "edas:ReadApplication", "a", t)
        };
        assert_eq!(
            read(&tags(&[])),
            Decision::Allowed,
            "an untagged resource is not PROD"
        );
        assert_eq!(read(&tags(&[("env", "PROD")])), Decision::NotAllowed);
    }

    #[test]
    fn malformed_documents_are_refused_with_a_reason() {
        for (bad, why) in [
            (json!({"Statement": []}), "empty"),
            (
                json!({"Statement": [{"Effect": "Maybe", "Action": "a", "Resource": "b"}]}),
                "malformed",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Action": [], "Resource": "b"}]}),
                "Action",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Action": "a", "Resource": ""}]}),
                "Resource",
            ),
            (
                json!({"Version": "2", "Statement": [{"Effect": "Allow", "Action": "a", "Resource": "b"}]}),
                "Version",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Action": "a", "Resource": "b", "Condition": {}}]}),
                "Condition",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Action": "a", "Resource": "b",
                    "Condition": {"IpAddress": {"acs:SourceIp": ["10.0.0.0/8"]}}}]}),
                "not supported",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Action": "a", "Resource": "b",
                    "Condition": {"StringEquals": {"acs:SourceIp": ["x"]}}}]}),
                "ResourceTag",
            ),
        ] {
            let error = PolicyDocument::from_value(&bad).unwrap_err();
            assert!(error.0.contains(why), "{bad}: {error}");
        }
    }
}
