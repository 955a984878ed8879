//! Tags of applications and clusters: validated as EDAS documents them (at most 20 tags a
//! resource and a request, at most 20 resources a request, keys and values of at most 128
//! characters from letters, digits and `-,*/?:` … , no key starting with `aliyun` or `acs:`,
//! no `http://` or `https://`), stored with the audit record, listed, and matched by
//! ListApplication's tag filter.

use std::collections::{BTreeMap, BTreeSet};

use edas_spec::{Violation, ViolationKind, Violations};
use edas_store::{AuditEntry, ResourceTag, StoreError};
use serde_json::json;

use crate::{Actor, App, AppError};

/// At most this many tags a resource carries, a request sets, or resources a request names.
pub const MAX_TAGS: usize = 20;
/// The longest tag key or value.
const MAX_TAG_TEXT: usize = 128;

/// What can carry tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagResourceType {
    /// An EDAS application (by `AppId`).
    Application,
    /// A cluster (by `ClusterId`).
    Cluster,
}

impl TagResourceType {
    /// `ResourceType` as given: `application` or `cluster` (case-insensitive).
    pub fn parse(raw: &str) -> Result<TagResourceType, AppError> {
        match raw.to_ascii_lowercase().as_str() {
            "application" => Ok(TagResourceType::Application),
            "cluster" => Ok(TagResourceType::Cluster),
            _ => Err(AppError::invalid(
                "ResourceType",
                format!("`{raw}` is not a taggable resource type: use application or cluster"),
            )),
        }
    }

    /// `application` or `cluster`, as stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            TagResourceType::Application => "application",
            TagResourceType::Cluster => "cluster",
        }
    }
}

/// Checks one tag key (`value` false) or value against EDAS's rules.
fn check_text(parameter: &str, text: &str, is_key: bool) -> Result<(), Violation> {
    let what = if is_key { "tag key" } else { "tag value" };
    let bad = |message: String| Violation {
        parameter: parameter.to_owned(),
        kind: ViolationKind::Invalid,
        message,
    };
    let len = text.chars().count();
    if (is_key && len == 0) || len > MAX_TAG_TEXT {
        return Err(bad(format!(
            "the {what} `{text}` must be {}-{MAX_TAG_TEXT} characters",
            u8::from(is_key)
        )));
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("http://") || lower.contains("https://") {
        return Err(bad(format!(
            "the {what} `{text}` must not contain http:// or https://"
        )));
    }
    if is_key && (lower.starts_with("aliyun") || lower.starts_with("acs:")) {
        return Err(bad(format!(
            "the tag key `{text}` must not start with aliyun or acs:"
        )));
    }
    // EDAS: letters, digits, `-`, `,`, `*`, `/`, `?` and `:`; `_`, `.`, `=` and spaces are
    // admitted too, as Resource Management's tag rules do.
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_alphanumeric() || "-,*/?:_.= ".contains(*c)))
    {
        return Err(bad(format!("the {what} `{text}` must not contain `{c}`")));
    }
    Ok(())
}

/// Validates the tags of TagResources (`Tags`): each key once, at most [`MAX_TAGS`].
pub fn validate_tags(tags: &[(String, String)]) -> Result<(), AppError> {
    let mut violations = Vec::new();
    if tags.is_empty() || tags.len() > MAX_TAGS {
        violations.push(Violation {
            parameter: "Tags".into(),
            kind: ViolationKind::Invalid,
            message: format!("give 1-{MAX_TAGS} tags, not {}", tags.len()),
        });
    }
    let mut seen = BTreeSet::new();
    for (key, value) in tags {
        violations.extend(check_text("Tags", key, true).err());
        violations.extend(check_text("Tags", value, false).err());
        if !seen.insert(key) {
            violations.push(Violation {
                parameter: "Tags".into(),
                kind: ViolationKind::Invalid,
                message: format!("the tag key `{key}` is given twice"),
            });
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(AppError::Invalid(Violations(violations)))
    }
}

/// Validates the resource ids of a tag operation (`ResourceIds`): 1-[`MAX_TAGS`], each once.
pub fn validate_resource_ids(ids: &[String]) -> Result<(), AppError> {
    if ids.is_empty() || ids.len() > MAX_TAGS {
        return Err(AppError::invalid(
            "ResourceIds",
            format!("give 1-{MAX_TAGS} resource ids, not {}", ids.len()),
        ));
    }
    let mut seen = BTreeSet::new();
    if let Some(twice) = ids.iter().find(|id| !seen.insert(*id)) {
        return Err(AppError::invalid(
            "ResourceIds",
            format!("the resource `{twice}` is given twice"),
        ));
    }
    Ok(())
}

fn audit_entry(
    action: &str,
    kind: TagResourceType,
    ids: &[String],
    actor: &Actor,
    detail: serde_json::Value,
) -> AuditEntry {
    let app_id = match (kind, ids) {
        (TagResourceType::Application, [one]) => Some(one.clone()),
        _ => None,
    };
    AuditEntry {
        actor: actor.name.clone(),
        action: action.to_owned(),
        resource: format!("{}/{}", kind.as_str(), ids.join(",")),
        app_id,
        request_id: Some(actor.request_id.clone()),
        detail,
    }
}

impl App {
    /// TagResources: sets `tags` on the resources `ids` (which the caller checked exist and
    /// may be changed), refused with nothing stored when one would carry more than
    /// [`MAX_TAGS`].
    pub async fn tag_resources(
        &self,
        kind: TagResourceType,
        ids: &[String],
        tags: &[(String, String)],
        actor: &Actor,
        now: jiff::Timestamp,
    ) -> Result<(), AppError> {
        validate_resource_ids(ids)?;
        validate_tags(tags)?;
        let keys: Vec<&String> = tags.iter().map(|(k, _)| k).collect();
        let entry = audit_entry("TagResources", kind, ids, actor, json!({ "keys": keys }));
        self.store
            .tag_resources(kind.as_str(), ids, tags, MAX_TAGS, &entry, now)
            .await
            .map_err(|e| match e {
                StoreError::InvalidInput { field, reason } => AppError::invalid(field, reason),
                e => AppError::internal("storing the tags", e),
            })
    }

    /// UntagResources: removes the tags `keys` (all of them when `None`) from the resources
    /// `ids`; how many were removed.
    pub async fn untag_resources(
        &self,
        kind: TagResourceType,
        ids: &[String],
        keys: Option<&[String]>,
        actor: &Actor,
        now: jiff::Timestamp,
    ) -> Result<u64, AppError> {
        validate_resource_ids(ids)?;
        let entry = audit_entry("UntagResources", kind, ids, actor, json!({ "keys": keys }));
        self.store
            .untag_resources(kind.as_str(), ids, keys, &entry, now)
            .await
            .map_err(|e| AppError::internal("removing the tags", e))
    }

    /// The tags of resources of `kind` (of `ids` when given), by resource and key.
    pub async fn tags(
        &self,
        kind: TagResourceType,
        ids: Option<&[String]>,
    ) -> Result<Vec<ResourceTag>, AppError> {
        self.store
            .list_tags(kind.as_str(), ids)
            .await
            .map_err(|e| AppError::internal("listing tags", e))
    }

    /// The ids of the resources of `kind` that carry every tag of `wanted` (key → value), or
    /// `None` when `wanted` is empty (no filter).
    pub async fn tagged(
        &self,
        kind: TagResourceType,
        wanted: &BTreeMap<String, String>,
    ) -> Result<Option<BTreeSet<String>>, AppError> {
        if wanted.is_empty() {
            return Ok(None);
        }
        let mut by_resource: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for tag in self.tags(kind, None).await? {
            by_resource
                .entry(tag.resource_id)
                .or_default()
                .insert(tag.key, tag.value);
        }
        Ok(Some(
            by_resource
                .into_iter()
                .filter(|(_, tags)| wanted.iter().all(|(k, v)| tags.get(k) == Some(v)))
                .map(|(id, _)| id)
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn tags_follow_edas_rules() {
        validate_tags(&[tag("env", "prod"), tag("team/a", "x:y?*,-")]).unwrap();
        validate_tags(&[tag("empty-value", "")]).unwrap();
        for bad in [
            vec![],
            vec![tag("", "v")],
            vec![tag("aliyun:x", "v")],
            vec![tag("ACS:x", "v")],
            vec![tag("k", "see https://x")],
            vec![tag("k", "a;b")],
            vec![tag("k", &"v".repeat(129))],
            vec![tag("k", "1"), tag("k", "2")],
            (0..21).map(|i| tag(&format!("k{i}"), "v")).collect(),
        ] {
            let err = validate_tags(&bad).unwrap_err();
            assert!(
                err.to_string().contains("Tags") || matches!(err, AppError::Invalid(_)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn resource_ids_are_bounded_and_unique() {
        validate_resource_ids(&["a".into(), "b".into()]).unwrap();
        assert!(validate_resource_ids(&[]).is_err());
        assert!(validate_resource_ids(&["a".into(), "a".into()]).is_err());
        let many: Vec<String> = (0..21).map(|i| i.to_string()).collect();
        assert!(validate_resource_ids(&many).is_err());
        assert!(TagResourceType::parse("Application").is_ok());
        assert!(TagResourceType::parse("namespace").is_err());
    }
}
