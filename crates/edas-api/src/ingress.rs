//! The four K8s Ingress operations: CreateK8sIngressRule, UpdateK8sIngressRule,
//! DeleteK8sIngressRule and ListK8sIngressRules. `IngressConf` is decoded here in both forms
//! (the classic SDK's JSON text, the Tea SDK's flattened dict: `IngressConf.rules.1.host`,
//! `IngressConf.rules.1.paths.1.backend.servicePort`, lists 1-based); the application layer
//! validates it, resolves each backend to its application and hands the rule to the cluster's
//! runtime (edas-app `ingress`).
//!
//! Rights: a change needs `edas:ManageConfiguration` on the rule
//! (`…:cluster/{ClusterId}/namespace/{Namespace}/ingress/{Name}`) and `edas:ManageApplication`
//! on every application it routes to (routing traffic to an application changes how it is
//! reached), plus `edas:UseLocalCluster` on `local` (the listener exposes applications on
//! edasd's host); listing needs `edas:ReadConfiguration` on each rule (others are left out).

use std::collections::BTreeMap;

use edas_app::{IngressRequest, IngressRule, LOCAL_CLUSTER};
use edas_spec::ingress::{IngressBackend, IngressHost, IngressPath, IngressSpec, PathType};
use edas_spec::{Params, Violation, ViolationKind, Violations};
use edas_wire::envelope::Empty;
use edas_wire::ingress as wire;
use serde_json::{Map, Value};

use crate::Api;
use crate::apps::{actor, arn};
use crate::caller::{Call, Caller};
use crate::clusters::existing_cluster;
use crate::error::ApiError;
use crate::operations::ram;
use crate::params::{invalid, now, only_with, required};
use crate::policy::configuration_arn;

const CHANGE_PARAMETERS: [&str; 6] = [
    "ClusterId",
    "Namespace",
    "Name",
    "IngressConf",
    "Annotations",
    "Labels",
];

fn ingress_arn(api: &Api, cluster_id: &str, namespace: &str, name: &str) -> String {
    configuration_arn(
        &api.config().region_id,
        &api.config().account_id,
        cluster_id,
        namespace,
        "ingress",
        name,
    )
}

/// Sets `value` at `path` (keys, or 1-based list indexes) in `root`, building objects and
/// arrays on the way; `None` when a key clashes with a shape already built.
fn set_path(root: &mut Value, path: &[&str], value: Value) -> Option<()> {
    let Some((head, rest)) = path.split_first() else {
        *root = value;
        return Some(());
    };
    let slot = if let Ok(index) = head.parse::<usize>() {
        if root.is_null() {
            *root = Value::Array(Vec::new());
        }
        let items = root.as_array_mut()?;
        let i = index.checked_sub(1)?;
        // A flattened list longer than this is not one the SDKs produce.
        if i >= 1000 {
            return None;
        }
        if items.len() <= i {
            items.resize(i + 1, Value::Null);
        }
        &mut items[i]
    } else {
        if root.is_null() {
            *root = Value::Object(Map::new());
        }
        root.as_object_mut()?
            .entry((*head).to_owned())
            .or_insert(Value::Null)
    };
    set_path(slot, rest, value)
}

/// `IngressConf` as JSON: the classic SDK's text, or the Tea SDK's flattened parameters.
fn conf_value(params: &Params) -> Result<Option<Value>, ApiError> {
    const P: &str = "IngressConf";
    let flattened: Vec<(&str, &str)> = params
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("IngressConf.").map(|rest| (rest, v)))
        .collect();
    match (params.get(P), flattened.is_empty()) {
        (Some(_), false) => Err(invalid(
            P,
            "give either IngressConf as JSON text or flattened IngressConf.<key> parameters, not both",
        )),
        (None, true) => Ok(None),
        (Some(text), true) if text.trim().is_empty() => Ok(None),
        (Some(text), true) => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| invalid(P, format!("is not valid JSON: {e}"))),
        (None, false) => {
            let mut root = Value::Null;
            for (key, value) in flattened {
                let path: Vec<&str> = key.split('.').collect();
                set_path(&mut root, &path, Value::String(value.to_owned())).ok_or_else(|| {
                    invalid(
                        &format!("IngressConf.{key}"),
                        "does not fit the other IngressConf.<key> parameters",
                    )
                })?;
            }
            Ok(Some(root))
        }
    }
}

/// The members of object `value` at `path`, keys matched case-insensitively against `known`
/// (EDAS documents camelCase); any other key is refused, so a misspelt one is never dropped.
fn members<'a>(
    value: &'a Value,
    path: &str,
    known: &[&'static str],
) -> Result<Vec<(&'static str, &'a Value)>, ApiError> {
    let Value::Object(map) = value else {
        return Err(invalid(path, "must be a JSON object"));
    };
    map.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(key, v)| {
            known
                .iter()
                .copied()
                .find(|k| k.eq_ignore_ascii_case(key))
                .map(|name| (name, v))
                .ok_or_else(|| {
                    invalid(
                        &format!("{path}.{key}"),
                        format!("unknown key; {path} has {}", known.join(", ")),
                    )
                })
        })
        .collect()
}

fn text(value: &Value, path: &str) -> Result<String, ApiError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        _ => Err(invalid(path, format!("must be a string, not {value}"))),
    }
}

fn items<'a>(value: &'a Value, path: &str) -> Result<Vec<&'a Value>, ApiError> {
    match value {
        // A flattened list with a gap (`.1`, `.3`) leaves a null: refused, not skipped.
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if v.is_null() {
                    Err(invalid(&format!("{path}[{i}]"), "is missing"))
                } else {
                    Ok(v)
                }
            })
            .collect(),
        _ => Err(invalid(path, "must be a JSON array")),
    }
}

fn port(value: &Value, path: &str) -> Result<u16, ApiError> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .and_then(|n| u16::try_from(n).ok())
    .filter(|n| *n > 0)
    .ok_or_else(|| {
        invalid(
            path,
            format!("must be a port number (1-65535), not {value}"),
        )
    })
}

/// Decodes `IngressConf`'s `{"rules": [{"host", "secretName", "paths": [{"path", "pathType",
/// "backend": {"serviceName", "servicePort"}}]}]}`.
fn decode_conf(value: &Value) -> Result<Vec<IngressHost>, ApiError> {
    const P: &str = "IngressConf";
    let mut rules = Vec::new();
    for (_, v) in members(value, P, &["rules"])? {
        for (i, rule) in items(v, &format!("{P}.rules"))?.into_iter().enumerate() {
            let at = format!("{P}.rules[{i}]");
            let mut host = IngressHost::default();
            let mut paths = None;
            for (key, v) in members(rule, &at, &["host", "secretName", "paths"])? {
                let p = format!("{at}.{key}");
                match key {
                    "host" => host.host = text(v, &p)?.trim().to_ascii_lowercase(),
                    "secretName" => {
                        host.secret_name = Some(text(v, &p)?).filter(|s| !s.is_empty());
                    }
                    _ => paths = Some(v),
                }
            }
            let paths =
                paths.ok_or_else(|| invalid(&format!("{at}.paths"), "a rule needs its paths"))?;
            for (j, path) in items(paths, &format!("{at}.paths"))?
                .into_iter()
                .enumerate()
            {
                let at = format!("{at}.paths[{j}]");
                let mut out = IngressPath::default();
                let (mut has_path, mut backend) = (false, None);
                for (key, v) in members(path, &at, &["path", "pathType", "backend"])? {
                    let p = format!("{at}.{key}");
                    match key {
                        "path" => (out.path, has_path) = (text(v, &p)?, true),
                        "pathType" => {
                            let t = text(v, &p)?;
                            out.path_type = PathType::parse(&t).ok_or_else(|| {
                                invalid(
                                    &p,
                                    format!(
                                        "`{t}` is not a path type: Prefix, Exact or ImplementationSpecific"
                                    ),
                                )
                            })?;
                        }
                        _ => backend = Some(v),
                    }
                }
                if !has_path {
                    out.path = "/".into();
                }
                let backend = backend
                    .ok_or_else(|| invalid(&format!("{at}.backend"), "a path needs its backend"))?;
                let at = format!("{at}.backend");
                let (mut name, mut number) = (None, None);
                for (key, v) in members(backend, &at, &["serviceName", "servicePort"])? {
                    let p = format!("{at}.{key}");
                    if key == "serviceName" {
                        name = Some(text(v, &p)?);
                    } else {
                        number = Some(port(v, &p)?);
                    }
                }
                out.backend = IngressBackend {
                    service_name: name.ok_or_else(|| {
                        invalid(
                            &format!("{at}.serviceName"),
                            "the backend Service is required",
                        )
                    })?,
                    service_port: number.ok_or_else(|| {
                        invalid(&format!("{at}.servicePort"), "the backend port is required")
                    })?,
                    ..IngressBackend::default()
                };
                host.paths.push(out);
            }
            rules.push(host);
        }
    }
    Ok(rules)
}

/// `Annotations` or `Labels`: a JSON object of strings (empty text: none).
fn string_map(params: &Params, name: &str) -> Result<BTreeMap<String, String>, ApiError> {
    match params.get(name).map(str::trim) {
        None | Some("") => Ok(BTreeMap::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            invalid(
                name,
                format!("must be a JSON object of strings ({{\"key\": \"value\"}}): {e}"),
            )
        }),
    }
}

/// The request of a change, once the caller may make it.
async fn authorized_request(
    api: &Api,
    caller: &Caller,
    params: &Params,
    action: &str,
    update: bool,
) -> Result<IngressRequest, ApiError> {
    only_with(params, action, &CHANGE_PARAMETERS, &["IngressConf"])?;
    let cluster_id = required(params, "ClusterId")?.to_owned();
    let namespace = required(params, "Namespace")?.to_owned();
    let name = required(params, "Name")?.to_owned();
    caller.authorize(
        ram::MANAGE_CONFIGURATION,
        &ingress_arn(api, &cluster_id, &namespace, &name),
    )?;
    let cluster = existing_cluster(api, &cluster_id).await?;
    if cluster.id == LOCAL_CLUSTER {
        let config = api.config();
        caller.authorize(
            ram::USE_LOCAL_CLUSTER,
            &crate::policy::cluster_arn(&config.region_id, &config.account_id, LOCAL_CLUSTER),
        )?;
    }
    let rules = match conf_value(params)? {
        Some(value) => decode_conf(&value)?,
        None if update => {
            // An update without IngressConf keeps the stored routing.
            api.app()
                .ingress_rules(Some(&cluster_id), Some(&namespace))
                .await?
                .into_iter()
                .find(|r| r.name == name)
                .map(|r| r.spec.rules)
                .unwrap_or_default()
        }
        None => {
            return Err(ApiError::from(Violations(vec![Violation {
                parameter: "IngressConf".into(),
                kind: ViolationKind::Missing,
                message: "IngressConf is required: {\"rules\": [{\"host\", \"paths\": [{\"path\", \"backend\": {\"serviceName\", \"servicePort\"}}]}]}".into(),
            }])));
        }
    };
    let spec = IngressSpec {
        rules,
        annotations: string_map(params, "Annotations")?,
        labels: string_map(params, "Labels")?,
    };
    let request = IngressRequest {
        cluster_id,
        namespace,
        name,
        spec,
    };
    // Routing to an application changes how it is reached: its manager must agree.
    let (_, apps) = api.app().resolve_ingress_rule(&request).await?;
    for app in &apps {
        caller.authorize(ram::MANAGE_APPLICATION, &arn(api, app))?;
    }
    Ok(request)
}

async fn put(call: Call<'_>, create: bool) -> Result<Empty, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    let action = if create {
        "CreateK8sIngressRule"
    } else {
        "UpdateK8sIngressRule"
    };
    let request = authorized_request(api, caller, params, action, !create).await?;
    api.app()
        .put_ingress_rule(
            &request,
            create,
            action,
            &actor(caller, request_id),
            now(api),
        )
        .await?;
    Ok(Empty {})
}

pub(crate) async fn create(call: Call<'_>) -> Result<Empty, ApiError> {
    put(call, true).await
}

pub(crate) async fn update(call: Call<'_>) -> Result<Empty, ApiError> {
    put(call, false).await
}

pub(crate) async fn delete(call: Call<'_>) -> Result<Empty, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    only_with(
        params,
        "DeleteK8sIngressRule",
        &["ClusterId", "Namespace", "Name"],
        &[],
    )?;
    let cluster_id = required(params, "ClusterId")?;
    let namespace = required(params, "Namespace")?;
    let name = required(params, "Name")?;
    caller.authorize(
        ram::MANAGE_CONFIGURATION,
        &ingress_arn(api, cluster_id, namespace, name),
    )?;
    let cluster = existing_cluster(api, cluster_id).await?;
    if cluster.id == LOCAL_CLUSTER {
        let config = api.config();
        caller.authorize(
            ram::USE_LOCAL_CLUSTER,
            &crate::policy::cluster_arn(&config.region_id, &config.account_id, LOCAL_CLUSTER),
        )?;
    }
    api.app()
        .delete_ingress_rule(
            cluster_id,
            namespace,
            name,
            &actor(caller, request_id),
            now(api),
        )
        .await?;
    Ok(Empty {})
}

/// `Condition`: `{"field": "Name"|"ClusterName", "pattern": "…"}` (JSON text or flattened),
/// a name prefix.
fn condition(params: &Params) -> Result<Option<(bool, String)>, ApiError> {
    const P: &str = "Condition";
    let mut value = Value::Null;
    for (k, v) in params.iter() {
        if let Some(key) = k.strip_prefix("Condition.") {
            set_path(&mut value, &[key], Value::String(v.to_owned()))
                .ok_or_else(|| invalid(k, "is not a Condition key"))?;
        }
    }
    if let Some(text) = params.get(P).filter(|t| !t.trim().is_empty()) {
        if !value.is_null() {
            return Err(invalid(
                P,
                "give either Condition as JSON text or flattened Condition.<key> parameters, not both",
            ));
        }
        value = serde_json::from_str(text)
            .map_err(|e| invalid(P, format!("is not valid JSON: {e}")))?;
    }
    if value.is_null() {
        return Ok(None);
    }
    let (mut field, mut pattern) = (None, String::new());
    for (key, v) in members(&value, P, &["field", "pattern"])? {
        let t = text(v, &format!("{P}.{key}"))?;
        if key == "field" {
            field = Some(t);
        } else {
            pattern = t;
        }
    }
    match field.as_deref() {
        None | Some("Name") => Ok(Some((false, pattern))),
        Some("ClusterName") => Ok(Some((true, pattern))),
        Some(other) => Err(invalid(
            &format!("{P}.field"),
            format!("`{other}` is not a field to match: Name or ClusterName"),
        )),
    }
}

fn json_text(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".into())
}

async fn conf(api: &Api, rule: &IngressRule) -> Result<wire::IngressConf, ApiError> {
    let statuses = api.app().ingress_backend_status(rule).await?;
    let mut status = statuses.into_iter();
    let rules = rule
        .spec
        .rules
        .iter()
        .map(|r| wire::IngressRuleEntry {
            host: r.host.clone(),
            secret_name: r.secret_name.clone().unwrap_or_default(),
            enable_tls: r.secret_name.is_some(),
            paths: r
                .paths
                .iter()
                .map(|p| wire::IngressPathEntry {
                    path: p.path.clone(),
                    path_type: p.path_type.as_str().into(),
                    app_id: p.backend.app_id.clone(),
                    app_name: p.backend.app_name.clone(),
                    status: status
                        .next()
                        .map_or("Unknown", edas_app::BackendStatus::as_str)
                        .into(),
                    backend: wire::IngressBackendEntry {
                        service_name: p.backend.service_name.clone(),
                        service_port: p.backend.service_port.to_string(),
                    },
                })
                .collect(),
        })
        .collect();
    Ok(wire::IngressConf {
        name: rule.name.clone(),
        namespace: rule.namespace.clone(),
        annotations: json_text(&rule.spec.annotations),
        labels: json_text(&rule.spec.labels),
        creation_time: rule.created_at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        endpoint: String::new(),
        ingress_type: "NginxIngress".into(),
        ssl_redirect: false,
        rules,
    })
}

pub(crate) async fn list(call: Call<'_>) -> Result<wire::IngressRulesBody, ApiError> {
    let (api, caller, params, _) = call.parts();
    only_with(
        params,
        "ListK8sIngressRules",
        &["ClusterId", "Namespace", "Condition"],
        &["Condition"],
    )?;
    let cluster_id = params.get("ClusterId").filter(|v| !v.is_empty());
    let namespace = params.get("Namespace").filter(|v| !v.is_empty());
    let condition = condition(params)?;
    let clusters = match cluster_id {
        Some(id) => vec![api.app().cluster(id).await?],
        None => api.app().clusters().await?,
    };
    let rules = api.app().ingress_rules(cluster_id, namespace).await?;
    let mut data = Vec::new();
    for info in clusters {
        let cluster = &info.cluster;
        if let Some((true, pattern)) = &condition
            && !cluster.name.starts_with(pattern.as_str())
        {
            continue;
        }
        let mut confs = Vec::new();
        for rule in rules.iter().filter(|r| r.cluster_id == cluster.id) {
            if let Some((false, pattern)) = &condition
                && !rule.name.starts_with(pattern.as_str())
            {
                continue;
            }
            if !caller.may(
                ram::READ_CONFIGURATION,
                &ingress_arn(api, &rule.cluster_id, &rule.namespace, &rule.name),
            ) {
                continue;
            }
            confs.push(conf(api, rule).await?);
        }
        // A cluster without a rule to show is named only to those who may read it.
        let cluster_arn = crate::policy::cluster_arn(
            &api.config().region_id,
            &api.config().account_id,
            &cluster.id,
        );
        if confs.is_empty()
            && (cluster_id.is_none() || !caller.may(ram::READ_CLUSTER, &cluster_arn))
        {
            continue;
        }
        data.push(wire::ClusterIngresses {
            cluster_id: cluster.id.clone(),
            cluster_name: cluster.name.clone(),
            region_id: api.config().region_id.clone(),
            ingress_confs: confs,
        });
    }
    Ok(wire::IngressRulesBody { data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
    }

    fn named(e: ApiError) -> String {
        format!("{e:?}")
    }

    #[test]
    fn the_flattened_and_the_json_forms_decode_alike() {
        let flat = params(&[
            ("IngressConf.rules.1.host", "a.test"),
            ("IngressConf.rules.1.paths.1.path", "/"),
            ("IngressConf.rules.1.paths.1.backend.serviceName", "web"),
            ("IngressConf.rules.1.paths.1.backend.servicePort", "80"),
            ("IngressConf.rules.1.paths.2.path", "/api"),
            ("IngressConf.rules.1.paths.2.pathType", "Exact"),
            ("IngressConf.rules.1.paths.2.backend.serviceName", "api"),
            ("IngressConf.rules.1.paths.2.backend.servicePort", "8080"),
        ]);
        let text = json!({"rules": [{"host": "a.test", "paths": [
            {"path": "/", "backend": {"serviceName": "web", "servicePort": 80}},
            {"path": "/api", "pathType": "Exact",
             "backend": {"serviceName": "api", "servicePort": "8080"}}]}]})
        .to_string();
        let json = params(&[("IngressConf", &text)]);
        let a = decode_conf(&conf_value(&flat).unwrap().unwrap()).unwrap();
        let b = decode_conf(&conf_value(&json).unwrap().unwrap()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].paths[1].path_type, PathType::Exact);
        assert_eq!(a[0].paths[1].backend.service_port, 8080);
    }

    #[test]
    fn bad_shapes_name_their_path() {
        let decode = |v: Value| decode_conf(&v).map(drop).map_err(named).unwrap_err();
        assert!(decode(json!({"rule": []})).contains("IngressConf.rule"));
        assert!(
            decode(
                json!({"rules": [{"paths": [{"backend": {"serviceName": "w", "servicePort": 0}}]}]})
            )
            .contains("IngressConf.rules[0].paths[0].backend.servicePort")
        );
        assert!(
            decode(
                json!({"rules": [{"paths": [{"path": "/", "pathType": "Regex",
                "backend": {"serviceName": "w", "servicePort": 1}}]}]})
            )
            .contains("pathType")
        );
        let gap = params(&[("IngressConf.rules.2.host", "a.test")]);
        let e = decode_conf(&conf_value(&gap).unwrap().unwrap()).unwrap_err();
        assert!(named(e).contains("IngressConf.rules[0]"));
        let both = params(&[("IngressConf", "{}"), ("IngressConf.rules.1.host", "a")]);
        assert!(conf_value(&both).is_err());
    }

    #[test]
    fn conditions_match_names_or_cluster_names() {
        assert_eq!(
            condition(&params(&[(
                "Condition",
                r#"{"field":"Name","pattern":"my-"}"#
            )]))
            .unwrap(),
            Some((false, "my-".into()))
        );
        assert_eq!(
            condition(&params(&[
                ("Condition.field", "ClusterName"),
                ("Condition.pattern", "lo")
            ]))
            .unwrap(),
            Some((true, "lo".into()))
        );
        assert!(condition(&params(&[("Condition", r#"{"field":"Host"}"#)])).is_err());
    }
}
