//! TagResources, UntagResources and ListTagResources on applications and clusters, and the
//! tag filter ListApplication takes (edasd's `Tags`). Each resource is authorized on its own
//! ARN: changing tags needs `edas:ManageApplication` on an application and
//! `edas:ManageCluster` on a cluster; a listing leaves out what the caller may not read.
//!
//! `ResourceIds`, `Tags` and `TagKeys` are JSON arrays (the classic SDK and the Tea SDK's
//! string fields), or flattened when the Tea SDK is given a list or dict for ListTagResources'
//! `Dict` fields (`ResourceIds.1=…`, `Tags.1.key=…&Tags.1.value=…`, `Tags.k=v`).

use std::collections::BTreeMap;

use edas_app::{AppError, TagResourceType};
use edas_spec::{Params, Violation, ViolationKind, Violations};
use edas_wire::catalog::{TagResource, TagResourceList, TagResourcesBody};
use edas_wire::envelope::Empty;
use serde_json::Value;

use crate::Api;
use crate::apps::{actor, arn, live_application};
use crate::caller::{Call, Caller};
use crate::error::ApiError;
use crate::operations::ram;
use crate::params::{invalid, now, only_with, required};
use crate::policy::cluster_arn;

/// The flattened `name.…` parameters as one JSON value: `name.1`, `name.2` … a list (by
/// index), `name.1.key` a list of objects, `name.k` an object; `None` when there are none.
fn flattened(params: &Params, name: &str) -> Option<Value> {
    let prefix = format!("{name}.");
    let mut entries: Vec<(Vec<&str>, &str)> = params
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(&prefix)
                .map(|rest| (rest.split('.').collect(), v))
        })
        .collect();
    if entries.is_empty() {
        return None;
    }
    entries.sort_by_key(|(path, _)| path.first().and_then(|i| i.parse::<u64>().ok()));
    let indexed = entries
        .iter()
        .all(|(path, _)| path[0].parse::<u64>().is_ok());
    if !indexed {
        let object = entries
            .into_iter()
            .map(|(path, v)| (path.join("."), Value::String(v.to_owned())))
            .collect();
        return Some(Value::Object(object));
    }
    let mut items: BTreeMap<u64, Value> = BTreeMap::new();
    for (path, v) in entries {
        let index = path[0].parse::<u64>().unwrap_or(0);
        if path.len() == 1 {
            items.insert(index, Value::String(v.to_owned()));
        } else {
            let item = items
                .entry(index)
                .or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(map) = item {
                map.insert(path[1..].join("."), Value::String(v.to_owned()));
            }
        }
    }
    Some(Value::Array(items.into_values().collect()))
}

/// Parameter `name` as JSON: the one JSON string, or its flattened form.
fn json_param(params: &Params, name: &str) -> Result<Option<Value>, ApiError> {
    match params.get(name) {
        Some(raw) if !raw.trim().is_empty() => serde_json::from_str(raw)
            .map(Some)
            .map_err(|e| invalid(name, format!("must be a JSON array: {e}"))),
        _ => Ok(flattened(params, name)),
    }
}

/// A JSON array of strings (`ResourceIds`, `TagKeys`).
fn string_list(params: &Params, name: &str) -> Result<Option<Vec<String>>, ApiError> {
    let Some(value) = json_param(params, name)? else {
        return Ok(None);
    };
    let items = match value {
        Value::Array(items) => items,
        other => {
            return Err(invalid(
                name,
                format!("must be a JSON array of strings, not {other}"),
            ));
        }
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) if !s.is_empty() => Ok(s),
            other => Err(invalid(
                name,
                format!("must list non-empty strings; `{other}` is not one"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Tags as (key, value): `[{"key": k, "value": v}, …]` (`Key`/`Value` too) or `{"k": "v", …}`.
pub(crate) fn tag_pairs(
    params: &Params,
    name: &str,
) -> Result<Option<Vec<(String, String)>>, ApiError> {
    let Some(value) = json_param(params, name)? else {
        return Ok(None);
    };
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        None | Some(Value::Null) => Some(String::new()),
        _ => None,
    };
    let shape = || {
        invalid(
            name,
            "must be a JSON array of {\"key\": …, \"value\": …} objects or a JSON object of keys and values",
        )
    };
    let pairs = match value {
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let key = item.get("key").or_else(|| item.get("Key"));
                let value = item.get("value").or_else(|| item.get("Value"));
                match (key.and_then(Value::as_str), text(value)) {
                    (Some(k), Some(v)) => Ok((k.to_owned(), v)),
                    _ => Err(shape()),
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| text(Some(v)).map(|v| (k.clone(), v)).ok_or_else(shape))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(shape()),
    };
    Ok(Some(pairs))
}

/// `ResourceType` and `ResourceRegionId` (this server's region).
fn resource_type(api: &Api, params: &Params) -> Result<TagResourceType, ApiError> {
    let region = required(params, "ResourceRegionId")?;
    if region != api.config().region_id {
        return Err(invalid(
            "ResourceRegionId",
            format!(
                "this server serves region `{}`, not `{region}`",
                api.config().region_id
            ),
        ));
    }
    Ok(TagResourceType::parse(required(params, "ResourceType")?)?)
}

/// Every resource exists and the caller may change its tags.
async fn authorize_changes(
    api: &Api,
    caller: &Caller,
    kind: TagResourceType,
    ids: &[String],
) -> Result<(), ApiError> {
    for id in ids {
        match kind {
            TagResourceType::Application => {
                let app = live_application(api, id).await?;
                caller.authorize(ram::MANAGE_APPLICATION, &arn(api, &app))?;
            }
            TagResourceType::Cluster => {
                if api.app().find_cluster(id).await?.is_none() {
                    return Err(invalid(
                        "ResourceIds",
                        format!("no cluster `{id}` is registered"),
                    ));
                }
                caller.authorize(ram::MANAGE_CLUSTER, &cluster_arn_of(api, id))?;
            }
        }
    }
    Ok(())
}

fn cluster_arn_of(api: &Api, id: &str) -> String {
    cluster_arn(&api.config().region_id, &api.config().account_id, id)
}

fn missing(name: &str) -> ApiError {
    ApiError::from(Violations(vec![Violation {
        parameter: name.to_owned(),
        kind: ViolationKind::Missing,
        message: format!("{name} is required"),
    }]))
}

pub(crate) async fn tag(call: Call<'_>) -> Result<Empty, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    only_with(
        params,
        "TagResources",
        &["ResourceIds", "ResourceRegionId", "ResourceType", "Tags"],
        &["ResourceIds", "Tags"],
    )?;
    let kind = resource_type(api, params)?;
    let ids = string_list(params, "ResourceIds")?.ok_or_else(|| missing("ResourceIds"))?;
    let tags = tag_pairs(params, "Tags")?.ok_or_else(|| missing("Tags"))?;
    edas_app::validate_resource_ids(&ids)?;
    edas_app::validate_tags(&tags)?;
    authorize_changes(api, caller, kind, &ids).await?;
    api.app()
        .tag_resources(kind, &ids, &tags, &actor(caller, request_id), now(api))
        .await?;
    Ok(Empty {})
}

pub(crate) async fn untag(call: Call<'_>) -> Result<Empty, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    only_with(
        params,
        "UntagResources",
        &[
            "DeleteAll",
            "ResourceIds",
            "ResourceRegionId",
            "ResourceType",
            "TagKeys",
        ],
        &["ResourceIds", "TagKeys"],
    )?;
    let kind = resource_type(api, params)?;
    let ids = string_list(params, "ResourceIds")?.ok_or_else(|| missing("ResourceIds"))?;
    let keys = string_list(params, "TagKeys")?.filter(|k| !k.is_empty());
    let delete_all = match params.get("DeleteAll") {
        None | Some("") => false,
        Some(v) => edas_spec::parse_bool(v).ok_or_else(|| {
            invalid(
                "DeleteAll",
                format!("`{v}` is not a boolean: use true or false"),
            )
        })?,
    };
    // EDAS removes every tag only when TagKeys is empty and DeleteAll is true.
    if keys.is_none() && !delete_all {
        return Err(invalid(
            "TagKeys",
            "name the tag keys to remove, or set DeleteAll=true (with no TagKeys) to remove every tag",
        ));
    }
    edas_app::validate_resource_ids(&ids)?;
    authorize_changes(api, caller, kind, &ids).await?;
    api.app()
        .untag_resources(
            kind,
            &ids,
            keys.as_deref(),
            &actor(caller, request_id),
            now(api),
        )
        .await?;
    Ok(Empty {})
}

pub(crate) async fn list(call: Call<'_>) -> Result<TagResourcesBody, ApiError> {
    let (api, caller, params, _) = call.parts();
    only_with(
        params,
        "ListTagResources",
        &["ResourceIds", "ResourceRegionId", "ResourceType", "Tags"],
        &["ResourceIds", "Tags"],
    )?;
    let kind = resource_type(api, params)?;
    let ids = string_list(params, "ResourceIds")?;
    if let Some(ids) = &ids {
        edas_app::validate_resource_ids(ids)?;
    }
    let wanted: BTreeMap<String, String> = tag_pairs(params, "Tags")?
        .unwrap_or_default()
        .into_iter()
        .collect();
    let matching = api.app().tagged(kind, &wanted).await?;
    let mut readable: BTreeMap<String, bool> = BTreeMap::new();
    let mut tag_resource = Vec::new();
    for tag in api.app().tags(kind, ids.as_deref()).await? {
        if matching
            .as_ref()
            .is_some_and(|m| !m.contains(&tag.resource_id))
        {
            continue;
        }
        let may = match readable.get(&tag.resource_id) {
            Some(may) => *may,
            None => {
                let may = may_read(api, caller, kind, &tag.resource_id).await?;
                readable.insert(tag.resource_id.clone(), may);
                may
            }
        };
        if may {
            tag_resource.push(TagResource {
                resource_id: tag.resource_id,
                resource_type: tag.resource_type,
                tag_key: tag.key,
                tag_value: tag.value,
            });
        }
    }
    Ok(TagResourcesBody {
        tag_resources: TagResourceList { tag_resource },
    })
}

/// Every application's and cluster's tags, for evaluating policies with tag conditions.
pub(crate) async fn all_tags(api: &Api) -> Result<crate::caller::ResourceTags, ApiError> {
    let mut out = crate::caller::ResourceTags::new();
    for kind in [TagResourceType::Application, TagResourceType::Cluster] {
        for tag in api.app().tags(kind, None).await? {
            out.entry((kind.as_str(), tag.resource_id))
                .or_default()
                .insert(tag.key, tag.value);
        }
    }
    Ok(out)
}

/// Whether the caller may read the resource (a deleted application's tags are not listed).
async fn may_read(
    api: &Api,
    caller: &Caller,
    kind: TagResourceType,
    id: &str,
) -> Result<bool, ApiError> {
    Ok(match kind {
        TagResourceType::Application => match api.app().application(id).await {
            Ok(app) => caller.may(ram::READ_APPLICATION, &arn(api, &app)),
            Err(AppError::ApplicationNotFound(_)) => false,
            Err(e) => return Err(e.into()),
        },
        TagResourceType::Cluster => caller.may(ram::READ_CLUSTER, &cluster_arn_of(api, id)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
    }

    #[test]
    fn lists_and_tags_come_as_json_or_flattened() {
        let json = params(&[
            ("ResourceIds", r#"["a","b"]"#),
            ("Tags", r#"[{"key":"env","value":"prod"}]"#),
        ]);
        assert_eq!(
            string_list(&json, "ResourceIds").unwrap().unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            tag_pairs(&json, "Tags").unwrap().unwrap(),
            [("env".to_owned(), "prod".to_owned())]
        );
        let flat = params(&[
            ("ResourceIds.2", "b"),
            ("ResourceIds.1", "a"),
            ("Tags.1.key", "env"),
            ("Tags.1.value", "prod"),
            ("Tags.2.Key", "team"),
            ("Tags.2.Value", "x"),
        ]);
        assert_eq!(
            string_list(&flat, "ResourceIds").unwrap().unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            tag_pairs(&flat, "Tags").unwrap().unwrap(),
            [
                ("env".to_owned(), "prod".to_owned()),
                ("team".to_owned(), "x".to_owned())
            ]
        );
        let dict = params(&[("Tags.env", "prod"), ("Tags", "")]);
        assert_eq!(
            tag_pairs(&dict, "Tags").unwrap().unwrap(),
            [("env".to_owned(), "prod".to_owned())]
        );
        let object = params(&[("Tags", r#"{"env":"prod"}"#)]);
        assert_eq!(
            tag_pairs(&object, "Tags").unwrap().unwrap(),
            [("env".to_owned(), "prod".to_owned())]
        );
        for bad in [r#"[1]"#, r#""x""#, r#"[{"value":"v"}]"#, "not json"] {
            assert!(
                tag_pairs(&params(&[("Tags", bad)]), "Tags").is_err(),
                "{bad}"
            );
        }
        assert!(string_list(&params(&[("ResourceIds", r#"[""]"#)]), "ResourceIds").is_err());
        assert!(string_list(&params(&[]), "ResourceIds").unwrap().is_none());
    }
}
