//! Patch and apply semantics: RFC 7386 JSON merge patch, a subset of strategic merge patch, and a
//! simplified server-side apply with field ownership.
//!
//! **Keyed lists.** Where the real server consults the OpenAPI schema for `x-kubernetes-list-map-keys`
//! and `patchMergeKey`, this fake uses one field-name table ([`list_merge_key`]): `containers`,
//! `initContainers`, `env`, `volumes`, `imagePullSecrets` by `name`; `volumeMounts` by `mountPath`;
//! `ports` by `containerPort` (container ports) or `port` (Service ports). Every other list is
//! atomic: it is replaced as a whole and owned as a whole.
//!
//! **Strategic merge patch.** Maps merge recursively, `null` deletes, keyed lists merge item by
//! item (`$patch: delete` on an item removes it, `$patch: replace` replaces the list), other lists are
//! replaced. `$setElementOrder/…` and `$retainKeys` directives are accepted and dropped (order of
//! keyed items is not rearranged); `$deleteFromPrimitiveList/…` removes the listed values.
//!
//! **Server-side apply.** Each manager's set of owned leaf fields is kept in `metadata.managedFields`
//! (`FieldsV1`, keyed items as `k:{"name":…}`). Applying merges the configuration into the live
//! object, removes fields this manager owned before and no longer applies (unless another manager
//! owns them too; a map the configuration no longer has at all goes whole, defaulted fields
//! included, as the API server's `.` entries make it), and reports a conflict when another manager owns a field with a different value
//! (`force=true` takes the field over). Non-apply writes take ownership of the leaves they change.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// A path from the object root to an owned leaf (or a keyed list item, ending in [`PathElem::Key`]).
pub type FieldPath = Vec<PathElem>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathElem {
    /// A map field: `f:name`.
    Field(String),
    /// A keyed list item: `k:{"name":"app"}` (key field, key value as JSON).
    Key(String, String),
}

impl PathElem {
    fn render(&self) -> String {
        match self {
            PathElem::Field(name) => format!("f:{name}"),
            PathElem::Key(key, value) => format!("k:{{\"{key}\":{value}}}"),
        }
    }
}

/// The merge key of a list field, or `None` for atomic lists.
pub fn list_merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    let key = match field {
        "containers"
        | "initContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "ephemeralContainers" => "name",
        "volumeMounts" => "mountPath",
        "ports" => {
            if items.iter().any(|item| item.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    };
    items
        .iter()
        .all(|item| item.get(key).is_some())
        .then_some(key)
}

fn item_key(item: &Value, key: &str) -> String {
    item.get(key).map(Value::to_string).unwrap_or_default()
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(patch_map) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let target_map = target.as_object_mut().expect("made an object above");
            for (key, value) in patch_map {
                if value.is_null() {
                    target_map.remove(key);
                } else {
                    merge_patch(target_map.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The strategic-merge-patch subset described in the module docs.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target_map = target.as_object_mut().expect("made an object above");
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch_map.clone();
        replaced.remove("$patch");
        *target_map = replaced;
        return Ok(());
    }
    for (key, value) in patch_map {
        if key == "$retainKeys" || key == "$patch" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove = value.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(list)) = target_map.get_mut(field) {
                list.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            return Err(format!("unknown strategic merge patch directive {key:?}"));
        }
        if value.is_null() {
            target_map.remove(key);
            continue;
        }
        match value {
            Value::Array(patch_items) => {
                let merge_key = list_merge_key(key, patch_items);
                let current = target_map.get(key).and_then(Value::as_array).cloned();
                match (merge_key, current) {
                    (Some(merge_key), Some(mut items)) => {
                        if patch_items
                            .iter()
                            .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
                        {
                            let kept = patch_items
                                .iter()
                                .filter(|i| i.get("$patch").is_none())
                                .cloned()
                                .collect();
                            target_map.insert(key.clone(), Value::Array(kept));
                            continue;
                        }
                        for patch_item in patch_items {
                            let wanted = item_key(patch_item, merge_key);
                            let position =
                                items.iter().position(|i| item_key(i, merge_key) == wanted);
                            let delete =
                                patch_item.get("$patch").and_then(Value::as_str) == Some("delete");
                            match (position, delete) {
                                (Some(index), true) => {
                                    items.remove(index);
                                }
                                (None, true) => {}
                                (Some(index), false) => {
                                    strategic_merge_patch(&mut items[index], patch_item)?
                                }
                                (None, false) => {
                                    let mut fresh = Value::Object(Map::new());
                                    strategic_merge_patch(&mut fresh, patch_item)?;
                                    items.push(fresh);
                                }
                            }
                        }
                        target_map.insert(key.clone(), Value::Array(items));
                    }
                    _ => {
                        let mut cleaned = Vec::new();
                        for item in patch_items {
                            if item.get("$patch").is_some() {
                                continue;
                            }
                            let mut fresh = if item.is_object() {
                                Value::Object(Map::new())
                            } else {
                                Value::Null
                            };
                            strategic_merge_patch(&mut fresh, item)?;
                            cleaned.push(fresh);
                        }
                        target_map.insert(key.clone(), Value::Array(cleaned));
                    }
                }
            }
            Value::Object(_) => {
                strategic_merge_patch(target_map.entry(key.clone()).or_insert(Value::Null), value)?;
            }
            scalar => {
                target_map.insert(key.clone(), scalar.clone());
            }
        }
    }
    Ok(())
}

/// The owned leaf paths of an (applied or changed) object, skipping server-owned metadata and
/// `status`. Keyed list items contribute their own path too, so an item can be removed whole.
pub fn leaf_paths(object: &Value) -> BTreeSet<FieldPath> {
    let mut paths = BTreeSet::new();
    if let Value::Object(map) = object {
        for (key, value) in map {
            if matches!(key.as_str(), "apiVersion" | "kind" | "status") {
                continue;
            }
            if key == "metadata" {
                if let Value::Object(metadata) = value {
                    for (field, inner) in metadata {
                        if matches!(
                            field.as_str(),
                            "labels" | "annotations" | "ownerReferences" | "finalizers"
                        ) {
                            collect(
                                inner,
                                &mut vec![
                                    PathElem::Field(key.clone()),
                                    PathElem::Field(field.clone()),
                                ],
                                field,
                                &mut paths,
                            );
                        }
                    }
                }
                continue;
            }
            collect(
                value,
                &mut vec![PathElem::Field(key.clone())],
                key,
                &mut paths,
            );
        }
    }
    paths
}

fn collect(value: &Value, path: &mut FieldPath, field: &str, paths: &mut BTreeSet<FieldPath>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, inner) in map {
                path.push(PathElem::Field(key.clone()));
                collect(inner, path, key, paths);
                path.pop();
            }
        }
        Value::Array(items) => match list_merge_key(field, items) {
            Some(key) if !items.is_empty() => {
                for item in items {
                    path.push(PathElem::Key(key.to_owned(), item_key(item, key)));
                    paths.insert(path.clone());
                    collect(item, path, "", paths);
                    path.pop();
                }
            }
            _ => {
                paths.insert(path.clone());
            }
        },
        _ => {
            paths.insert(path.clone());
        }
    }
}

/// The value at a path, if present.
pub fn value_at<'a>(object: &'a Value, path: &[PathElem]) -> Option<&'a Value> {
    let mut current = object;
    for elem in path {
        current = match elem {
            PathElem::Field(name) => current.get(name)?,
            PathElem::Key(key, wanted) => current
                .as_array()?
                .iter()
                .find(|item| &item_key(item, key) == wanted)?,
        };
    }
    Some(current)
}

/// Removes the value at a path (a map field, or a whole keyed item).
pub fn remove_at(object: &mut Value, path: &[PathElem]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut current = object;
    for elem in parent_path {
        let next = match elem {
            PathElem::Field(name) => current.get_mut(name),
            PathElem::Key(key, wanted) => current
                .as_array_mut()
                .and_then(|items| items.iter_mut().find(|item| &item_key(item, key) == wanted)),
        };
        let Some(next) = next else { return };
        current = next;
    }
    match last {
        PathElem::Field(name) => {
            if let Some(map) = current.as_object_mut() {
                map.remove(name);
            }
        }
        PathElem::Key(key, wanted) => {
            if let Some(items) = current.as_array_mut() {
                items.retain(|item| &item_key(item, key) != wanted);
            }
        }
    }
}

/// Merges an applied configuration into the live object: maps recursively, keyed lists item by
/// item, everything else replaced.
pub fn apply_merge(live: &mut Value, applied: &Value, field: &str) {
    match (live, applied) {
        (Value::Object(live_map), Value::Object(applied_map)) => {
            for (key, value) in applied_map {
                match live_map.get_mut(key) {
                    Some(existing) => apply_merge(existing, value, key),
                    None => {
                        live_map.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(live_items), Value::Array(applied_items)) => {
            match (
                list_merge_key(field, applied_items),
                list_merge_key(field, live_items),
            ) {
                (Some(key), Some(_)) => {
                    for item in applied_items {
                        let wanted = item_key(item, key);
                        match live_items.iter_mut().find(|i| item_key(i, key) == wanted) {
                            Some(existing) => apply_merge(existing, item, ""),
                            None => live_items.push(item.clone()),
                        }
                    }
                }
                _ => *live_items = applied_items.clone(),
            }
        }
        (live, applied) => *live = applied.clone(),
    }
}

/// Renders a path set as a `FieldsV1` object.
pub fn fields_v1(paths: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in paths {
        let mut node = &mut root;
        for (index, elem) in path.iter().enumerate() {
            let entry = node.entry(elem.render()).or_insert_with(|| json!({}));
            let map = entry.as_object_mut().expect("fieldsV1 nodes are objects");
            if matches!(elem, PathElem::Key(..)) && index + 1 == path.len() {
                map.insert(".".to_owned(), json!({}));
            }
            node = map;
        }
    }
    Value::Object(root)
}

/// Parses a `FieldsV1` object back into paths (the inverse of [`fields_v1`]).
pub fn parse_fields_v1(fields: &Value) -> BTreeSet<FieldPath> {
    let mut paths = BTreeSet::new();
    parse_node(fields, &mut Vec::new(), &mut paths);
    paths
}

fn parse_node(node: &Value, path: &mut FieldPath, paths: &mut BTreeSet<FieldPath>) {
    let Some(map) = node.as_object() else { return };
    if (map.is_empty() || map.contains_key(".")) && !path.is_empty() {
        paths.insert(path.clone());
    }
    for (key, child) in map {
        let elem = if let Some(name) = key.strip_prefix("f:") {
            PathElem::Field(name.to_owned())
        } else if let Some(rest) = key.strip_prefix("k:") {
            let Ok(Value::Object(parsed)) = serde_json::from_str::<Value>(rest) else {
                continue;
            };
            let Some((k, v)) = parsed.into_iter().next() else {
                continue;
            };
            PathElem::Key(k, v.to_string())
        } else {
            continue;
        };
        path.push(elem);
        parse_node(child, path, paths);
        path.pop();
    }
}

/// Renders a path like the API server does in conflict messages: `.spec.template.spec.containers[name="app"].image`.
pub fn display_path(path: &[PathElem]) -> String {
    let mut text = String::new();
    for elem in path {
        match elem {
            PathElem::Field(name) => {
                text.push('.');
                text.push_str(name);
            }
            PathElem::Key(key, value) => text.push_str(&format!("[{key}={value}]")),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut target, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn strategic_merge_merges_containers_by_name_and_honours_directives() {
        let mut target = json!({"spec": {"containers": [
            {"name": "app", "image": "a:1", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
            {"name": "side", "image": "s:1"}
        ], "tolerations": [{"key": "x"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
            "containers": [{"name": "app", "image": "a:2"}, {"name": "side", "$patch": "delete"}, {"name": "new", "image": "n:1"}],
            "tolerations": [{"key": "y"}]
        }});
        strategic_merge_patch(&mut target, &patch).unwrap();
        assert_eq!(
            target,
            json!({"spec": {"containers": [
                {"name": "app", "image": "a:2", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                {"name": "new", "image": "n:1"}
            ], "tolerations": [{"key": "y"}]}})
        );
        assert!(strategic_merge_patch(&mut target, &json!({"$bogus": 1})).is_err());
    }

    #[test]
    fn leaf_paths_round_trip_through_fields_v1() {
        let object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "app", "image": "i"}], "tolerations": [{"key": "k"}]},
            "status": {"phase": "Running"}});
        let paths = leaf_paths(&object);
        let rendered = fields_v1(&paths);
        assert_eq!(
            rendered,
            json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {
                "f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:name": {}, "f:image": {}}},
                "f:tolerations": {}}})
        );
        assert_eq!(parse_fields_v1(&rendered), paths);
        let image = paths
            .iter()
            .find(|p| p.last() == Some(&PathElem::Field("image".into())))
            .unwrap();
        assert_eq!(value_at(&object, image), Some(&json!("i")));
        assert_eq!(display_path(image), ".spec.containers[name=\"app\"].image");
    }

    #[test]
    fn apply_merge_and_removal() {
        let mut live = json!({"spec": {"replicas": 2, "containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}});
        apply_merge(
            &mut live,
            &json!({"spec": {"containers": [{"name": "a", "image": "3"}]}}),
            "",
        );
        assert_eq!(
            value_at(
                &live,
                &[
                    PathElem::Field("spec".into()),
                    PathElem::Field("containers".into()),
                    PathElem::Key("name".into(), "\"a\"".into()),
                    PathElem::Field("image".into())
                ]
            ),
            Some(&json!("3"))
        );
        remove_at(
            &mut live,
            &[
                PathElem::Field("spec".into()),
                PathElem::Field("containers".into()),
                PathElem::Key("name".into(), "\"b\"".into()),
            ],
        );
        remove_at(
            &mut live,
            &[
                PathElem::Field("spec".into()),
                PathElem::Field("replicas".into()),
            ],
        );
        assert_eq!(
            live,
            json!({"spec": {"containers": [{"name": "a", "image": "3"}]}})
        );
    }
}

/// RFC 6902 JSON patch (`application/json-patch+json`): `add`, `remove`, `replace`, `move`,
/// `copy`, `test`. Errors name the failing operation.
pub fn json_patch(target: &mut Value, operations: &Value) -> Result<(), String> {
    let operations = operations
        .as_array()
        .ok_or("a JSON patch must be a list of operations")?;
    for (index, operation) in operations.iter().enumerate() {
        let fail = |why: String| format!("JSON patch operation {index}: {why}");
        let op = operation
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| fail("missing \"op\"".into()))?;
        let path = operation
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| fail("missing \"path\"".into()))?;
        let value = || {
            operation
                .get("value")
                .cloned()
                .ok_or_else(|| fail(format!("{op} needs a \"value\"")))
        };
        let from = || {
            operation
                .get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| fail(format!("{op} needs a \"from\"")))
        };
        match op {
            "add" => pointer_add(target, path, value()?).map_err(fail)?,
            "remove" => {
                pointer_remove(target, path).map_err(fail)?;
            }
            "replace" => {
                let slot = target
                    .pointer_mut(path)
                    .ok_or_else(|| fail(format!("path {path:?} does not exist")))?;
                *slot = value()?;
            }
            "move" => {
                let moved = pointer_remove(target, from()?).map_err(fail)?;
                pointer_add(target, path, moved).map_err(fail)?;
            }
            "copy" => {
                let copied = target
                    .pointer(from()?)
                    .cloned()
                    .ok_or_else(|| fail("\"from\" does not exist".into()))?;
                pointer_add(target, path, copied).map_err(fail)?;
            }
            "test" => {
                if target.pointer(path) != Some(&value()?) {
                    return Err(fail(format!("test failed at {path:?}")));
                }
            }
            other => return Err(fail(format!("unknown op {other:?}"))),
        }
    }
    Ok(())
}

fn split_pointer(path: &str) -> Result<(String, String), String> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    Ok((
        parent.to_owned(),
        last.replace("~1", "/").replace("~0", "~"),
    ))
}

fn pointer_add(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match target.pointer_mut(&parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
            Ok(())
        }
        Some(Value::Array(items)) => {
            if last == "-" {
                items.push(value);
                return Ok(());
            }
            let index: usize = last
                .parse()
                .map_err(|_| format!("invalid array index {last:?}"))?;
            if index > items.len() {
                return Err(format!("array index {index} is out of bounds"));
            }
            items.insert(index, value);
            Ok(())
        }
        _ => Err(format!("path {parent:?} does not exist")),
    }
}

fn pointer_remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    match target.pointer_mut(&parent) {
        Some(Value::Object(map)) => map
            .remove(&last)
            .ok_or_else(|| format!("path {path:?} does not exist")),
        Some(Value::Array(items)) => {
            let index: usize = last
                .parse()
                .map_err(|_| format!("invalid array index {last:?}"))?;
            if index >= items.len() {
                return Err(format!("array index {index} is out of bounds"));
            }
            Ok(items.remove(index))
        }
        _ => Err(format!("path {parent:?} does not exist")),
    }
}

#[cfg(test)]
mod json_patch_tests {
    use super::*;

    #[test]
    fn json_patch_applies_rfc6902_operations() {
        let mut doc = json!({"a": {"b": 1}, "l": [1, 2], "m/n": 0});
        json_patch(
            &mut doc,
            &json!([
                {"op": "test", "path": "/a/b", "value": 1},
                {"op": "replace", "path": "/a/b", "value": 2},
                {"op": "add", "path": "/l/1", "value": 9},
                {"op": "add", "path": "/l/-", "value": 3},
                {"op": "remove", "path": "/m~1n"},
                {"op": "copy", "from": "/a", "path": "/c"},
                {"op": "move", "from": "/c/b", "path": "/d"}
            ]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"a": {"b": 2}, "l": [1, 9, 2, 3], "c": {}, "d": 2})
        );
        let error =
            json_patch(&mut doc, &json!([{"op": "test", "path": "/d", "value": 5}])).unwrap_err();
        assert!(error.contains("operation 0"), "{error}");
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/zzz"}])).is_err());
    }
}
