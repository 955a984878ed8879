//! Server-side printing: the `meta.k8s.io/v1` `Table` that kubectl asks for
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), with the columns the real API server
//! prints for each kind (`-o wide` columns have priority 1). Rows carry `PartialObjectMetadata`.

use serde_json::{Value, json};

use crate::resources::ResourceType;

/// The content type of a Table response.
pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Whether the client asked for a v1 Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.contains(&"as=Table")
            && params.contains(&"v=v1")
            && params.contains(&"g=meta.k8s.io")
    })
}

fn column(name: &str, kind: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": kind, "format": format, "description": name, "priority": priority})
}

fn columns(rt: &ResourceType) -> Vec<Value> {
    let spec: &[(&str, &str, u8)] = match rt.kind {
        "Deployment" => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "StatefulSet" => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Age", "string", 0),
        ],
        "ReplicaSet" => &[
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
        ],
        "Pod" => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
        ],
        "Service" => &[
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
        ],
        "Namespace" => &[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Age", "string", 0),
        ],
        "ConfigMap" => &[
            ("Name", "string", 0),
            ("Data", "integer", 0),
            ("Age", "string", 0),
        ],
        "Secret" => &[
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Data", "integer", 0),
            ("Age", "string", 0),
        ],
        _ => &[("Name", "string", 0), ("Age", "string", 0)],
    };
    spec.iter()
        .map(|(name, kind, priority)| column(name, kind, *priority))
        .collect()
}

fn int(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// kubectl's `HumanDuration`: `45s`, `3m20s`, `2h`, `5d`, …
pub fn human_age(seconds: i64) -> String {
    if seconds < 0 {
        return "<invalid>".into();
    }
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86400);
    match () {
        () if seconds < 120 => format!("{seconds}s"),
        () if minutes < 10 && seconds % 60 != 0 => format!("{minutes}m{}s", seconds % 60),
        () if minutes < 180 => format!("{minutes}m"),
        () if hours < 8 && minutes % 60 != 0 => format!("{hours}h{}m", minutes % 60),
        () if hours < 48 => format!("{hours}h"),
        () if hours < 24 * 8 && hours % 24 != 0 => format!("{days}d{}h", hours % 24),
        () if days < 365 * 2 => format!("{days}d"),
        () => format!("{}y", days / 365),
    }
}

fn age(object: &Value) -> String {
    let created = text(object, "/metadata/creationTimestamp").parse::<jiff::Timestamp>();
    match created {
        Ok(created) => human_age(jiff::Timestamp::now().as_second() - created.as_second()),
        Err(_) => "<unknown>".into(),
    }
}

fn cells(rt: &ResourceType, object: &Value) -> Vec<Value> {
    let name = json!(text(object, "/metadata/name"));
    let age = json!(age(object));
    match rt.kind {
        "Deployment" => {
            let containers = object
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let joined = |field: &str| {
                containers
                    .iter()
                    .map(|c| c.get(field).and_then(Value::as_str).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(object, "/status/readyReplicas"),
                    int(object, "/spec/replicas")
                )),
                json!(int(object, "/status/updatedReplicas")),
                json!(int(object, "/status/availableReplicas")),
                age,
                json!(joined("name")),
                json!(joined("image")),
                json!(crate::controller::selector_string(object)),
            ]
        }
        "StatefulSet" => vec![
            name,
            json!(format!(
                "{}/{}",
                int(object, "/status/readyReplicas"),
                int(object, "/spec/replicas")
            )),
            age,
        ],
        "ReplicaSet" => vec![
            name,
            json!(int(object, "/spec/replicas")),
            json!(int(object, "/status/replicas")),
            json!(int(object, "/status/readyReplicas")),
            age,
        ],
        "Pod" => {
            let statuses = object
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = object
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses
                .iter()
                .filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            let restarts: i64 = statuses
                .iter()
                .map(|s| s.get("restartCount").and_then(Value::as_i64).unwrap_or(0))
                .sum();
            let waiting = statuses
                .iter()
                .find_map(|s| s.pointer("/state/waiting/reason").and_then(Value::as_str));
            let status = waiting.unwrap_or_else(|| text(object, "/status/phase"));
            let or_none = |value: &str| {
                if value.is_empty() {
                    "<none>".to_owned()
                } else {
                    value.to_owned()
                }
            };
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                age,
                json!(or_none(text(object, "/status/podIP"))),
                json!(or_none(text(object, "/spec/nodeName"))),
            ]
        }
        "Service" => {
            let ports: Vec<String> = object
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}/{}",
                        int(p, "/port"),
                        p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                    )
                })
                .collect();
            let ports = if ports.is_empty() {
                "<none>".to_owned()
            } else {
                ports.join(",")
            };
            let cluster_ip = text(object, "/spec/clusterIP");
            vec![
                name,
                json!(text(object, "/spec/type")),
                json!(if cluster_ip.is_empty() {
                    "<none>"
                } else {
                    cluster_ip
                }),
                json!("<none>"),
                json!(ports),
                age,
            ]
        }
        "Namespace" => vec![name, json!(text(object, "/status/phase")), age],
        "ConfigMap" => {
            let count = |field: &str| {
                object
                    .get(field)
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len())
            };
            vec![name, json!(count("data") + count("binaryData")), age]
        }
        "Secret" => {
            let count = object
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len());
            vec![name, json!(text(object, "/type")), json!(count), age]
        }
        _ => vec![name, age],
    }
}

fn row(rt: &ResourceType, object: &Value) -> Value {
    json!({
        "cells": cells(rt, object),
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or_default(),
        },
    })
}

/// A Table of `items`, at the list's resourceVersion (and continue token, if any).
pub fn table(rt: &ResourceType, items: &[Value], list_metadata: Value) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": columns(rt),
        "rows": items.iter().map(|item| row(rt, item)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{RESOURCES, by_kind};

    #[test]
    fn accept_negotiation_and_ages() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
        assert!(!wants_table(
            "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
        ));
        for (seconds, text) in [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (7200, "120m"),
            (4 * 3600 + 60, "4h1m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (400 * 86400, "400d"),
            (-1, "<invalid>"),
        ] {
            assert_eq!(human_age(seconds), text, "{seconds}");
        }
    }

    #[test]
    fn deployment_and_pod_rows_match_kubectl_columns() {
        let deployment = json!({"metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let table = table(
            &RESOURCES[by_kind("Deployment")],
            &[deployment],
            json!({"resourceVersion": "7"}),
        );
        let row = &table["rows"][0]["cells"];
        assert_eq!(row[0], "web");
        assert_eq!(row[1], "2/3");
        assert_eq!((row[2].clone(), row[3].clone()), (json!(3), json!(2)));
        assert_eq!(row[7], "app=web");
        assert_eq!(table["rows"][0]["object"]["metadata"]["name"], "web");
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [{"ready": false, "restartCount": 2,
                       "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let cells = cells(&RESOURCES[by_kind("Pod")], &pod);
        assert_eq!(
            (cells[1].clone(), cells[2].clone(), cells[3].clone()),
            (json!("0/1"), json!("CrashLoopBackOff"), json!("2"))
        );
    }
}
