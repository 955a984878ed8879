//! Label and field selectors, parsed from the `labelSelector` / `fieldSelector` query parameters
//! and from `metav1.LabelSelector` objects (a Deployment's `spec.selector`).
//!
//! Label selectors support the whole string grammar: equality (`k=v`, `k==v`, `k!=v`), set-based
//! (`k in (a,b)`, `k notin (a,b)`), existence (`k`, `!k`). Field selectors support
//! `metadata.name` and `metadata.namespace` with `=`, `==` and `!=` (what kubectl and kube-rs send);
//! any other field is rejected with 400, never ignored.

use serde_json::Value;

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses the string form (`app=web,tier in (a,b),!legacy`).
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for clause in split_top_level(text) {
            let clause = clause.trim();
            if clause.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(clause)?);
        }
        Ok(Self { requirements })
    }

    /// Builds a selector from a `metav1.LabelSelector` object (`matchLabels` + `matchExpressions`).
    pub fn from_object(selector: &Value) -> Result<Self, String> {
        let mut requirements = Vec::new();
        if let Some(labels) = selector.get("matchLabels") {
            let labels = labels.as_object().ok_or("matchLabels: must be an object")?;
            for (key, value) in labels {
                let value = value
                    .as_str()
                    .ok_or_else(|| format!("matchLabels.{key}: must be a string"))?;
                requirements.push(Requirement::Equals(key.clone(), value.to_owned()));
            }
        }
        if let Some(expressions) = selector.get("matchExpressions") {
            let expressions = expressions
                .as_array()
                .ok_or("matchExpressions: must be a list")?;
            for (index, expression) in expressions.iter().enumerate() {
                let key = expression
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("matchExpressions[{index}].key: required"))?
                    .to_owned();
                let values: Vec<String> = expression
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|values| {
                        values
                            .iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let operator = expression
                    .get("operator")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                requirements.push(match operator {
                    "In" => Requirement::In(key, values),
                    "NotIn" => Requirement::NotIn(key, values),
                    "Exists" => Requirement::Exists(key),
                    "DoesNotExist" => Requirement::DoesNotExist(key),
                    other => {
                        return Err(format!(
                            "matchExpressions[{index}].operator: {other:?} is not one of In, NotIn, Exists, DoesNotExist"
                        ));
                    }
                });
            }
        }
        Ok(Self { requirements })
    }

    /// Whether this selector selects nothing in particular (matches every object).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let get = |key: &str| {
            labels
                .and_then(|labels| labels.get(key))
                .and_then(Value::as_str)
        };
        self.requirements
            .iter()
            .all(|requirement| match requirement {
                Requirement::Equals(key, value) => get(key) == Some(value.as_str()),
                Requirement::NotEquals(key, value) => get(key) != Some(value.as_str()),
                Requirement::In(key, values) => {
                    get(key).is_some_and(|v| values.iter().any(|x| x == v))
                }
                Requirement::NotIn(key, values) => {
                    !get(key).is_some_and(|v| values.iter().any(|x| x == v))
                }
                Requirement::Exists(key) => get(key).is_some(),
                Requirement::DoesNotExist(key) => get(key).is_none(),
            })
    }

    /// The string form the API server uses in `Scale.status.selector`.
    pub fn to_query_string(&self) -> String {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|requirement| match requirement {
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::NotEquals(k, v) => format!("{k}!={v}"),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect();
        parts.join(",")
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (index, ch) in text.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(clause: &str) -> Result<Requirement, ApiError> {
    let bad = |why: &str| {
        ApiError::bad_request(format!(
            "unable to parse requirement: labelSelector {clause:?}: {why}"
        ))
    };
    if let Some(key) = clause.strip_prefix('!') {
        let key = key.trim();
        check_key(key).map_err(|why| bad(&why))?;
        return Ok(Requirement::DoesNotExist(key.to_owned()));
    }
    if let Some((key, value)) = clause.split_once("!=") {
        return Ok(Requirement::NotEquals(
            valid_key(key, &bad)?,
            valid_value(value, &bad)?,
        ));
    }
    if let Some((key, value)) = clause.split_once("==").or_else(|| clause.split_once('=')) {
        return Ok(Requirement::Equals(
            valid_key(key, &bad)?,
            valid_value(value, &bad)?,
        ));
    }
    for (word, set_based) in [(" notin ", true), (" in ", false)] {
        if let Some((key, rest)) = clause.split_once(word) {
            let rest = rest.trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| bad("expected a parenthesized value list"))?;
            let values = inner
                .split(',')
                .map(|v| valid_value(v, &bad))
                .collect::<Result<Vec<_>, _>>()?;
            let key = valid_key(key, &bad)?;
            return Ok(if set_based {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            });
        }
    }
    let key = clause.trim();
    check_key(key).map_err(|why| bad(&why))?;
    Ok(Requirement::Exists(key.to_owned()))
}

fn valid_key(key: &str, bad: &impl Fn(&str) -> ApiError) -> Result<String, ApiError> {
    let key = key.trim();
    check_key(key).map_err(|why| bad(&why))?;
    Ok(key.to_owned())
}

fn valid_value(value: &str, bad: &impl Fn(&str) -> ApiError) -> Result<String, ApiError> {
    let value = value.trim();
    if value.len() > 63
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(bad(&format!("invalid label value {value:?}")));
    }
    Ok(value.to_owned())
}

fn check_key(key: &str) -> Result<(), String> {
    let name = key.rsplit_once('/').map_or(key, |(_, name)| name);
    if name.is_empty()
        || name.len() > 63
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(())
}

/// A field selector restricted to `metadata.name` / `metadata.namespace`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    /// `(field, value, equal)`: `equal == false` means `!=`.
    terms: Vec<(String, String, bool)>,
}

impl FieldSelector {
    /// Parses `metadata.name=web,metadata.namespace!=x`; other fields are a 400.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for clause in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = clause.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = clause.split_once("==").or_else(|| clause.split_once('='))
            {
                (f, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: {clause:?}; expected field=value"
                )));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field} (edas-fake-kube serves metadata.name and metadata.namespace)"
                )));
            }
            terms.push((field.to_owned(), value.trim().to_owned(), equal));
        }
        Ok(Self { terms })
    }

    /// Whether the object satisfies every term.
    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(field, value, equal)| {
            let pointer = if field == "metadata.name" {
                "/metadata/name"
            } else {
                "/metadata/namespace"
            };
            let actual = object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default();
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labelled(labels: Value) -> Value {
        json!({"metadata": {"name": "x", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn equality_and_set_based_requirements() {
        let object = labelled(json!({"app": "web", "tier": "front"}));
        for (selector, expected) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=api", false),
            ("tier in (front,back)", true),
            ("tier notin (front)", false),
            ("tier notin (back)", true),
            ("app,tier", true),
            ("!legacy", true),
            ("!app", false),
            ("app=web,tier in (back)", false),
            ("missing!=x", true),
        ] {
            let parsed = LabelSelector::parse(selector).expect(selector);
            assert_eq!(parsed.matches(&object), expected, "{selector}");
        }
    }

    #[test]
    fn malformed_selectors_are_rejected() {
        for bad in ["app in web", "a b=c", "app=we b", "=x"] {
            let error = LabelSelector::parse(bad).expect_err(bad);
            assert_eq!(error.code, 400, "{bad}");
        }
    }

    #[test]
    fn object_selectors_and_string_round_trip() {
        let selector = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]
        }))
        .unwrap();
        assert_eq!(selector.to_query_string(), "app=web,tier in (front)");
        assert!(selector.matches(&labelled(json!({"app": "web", "tier": "front"}))));
        assert!(!selector.matches(&labelled(json!({"app": "web"}))));
        let error = LabelSelector::from_object(
            &json!({"matchExpressions": [{"key": "a", "operator": "Near"}]}),
        );
        assert!(error.unwrap_err().contains("operator"));
    }

    #[test]
    fn field_selectors_support_name_and_namespace_only() {
        let object = labelled(json!({}));
        assert!(
            FieldSelector::parse("metadata.name=x")
                .unwrap()
                .matches(&object)
        );
        assert!(
            !FieldSelector::parse("metadata.name!=x")
                .unwrap()
                .matches(&object)
        );
        assert!(
            FieldSelector::parse("metadata.namespace==ns")
                .unwrap()
                .matches(&object)
        );
        assert_eq!(
            FieldSelector::parse("status.phase=Running")
                .unwrap_err()
                .code,
            400
        );
    }
}
