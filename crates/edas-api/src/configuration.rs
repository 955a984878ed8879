//! ConfigMaps and Secrets: Create/Update/Delete/ListK8sConfigMap(s) and the Secret twins.
//!
//! Data is kept as an object of strings (what the runtimes hand to instances); Secret data is
//! encrypted at rest by the store and never written to the audit trail (only its keys are).
//! `Data` and `Condition` come either as one JSON string (classic SDK, or Tea given a `str`) or
//! flattened as `Data.<key>=<value>` / `Condition.<key>=<value>` (Tea given a dict).

use std::collections::BTreeMap;

use base64::Engine as _;
use edas_app::{Object, ObjectKind, ObjectRef};
use edas_spec::{Params, Violation, ViolationKind, Violations};
use edas_wire::configuration::{self as wire, ConfigMapsBody, SecretsBody};
use edas_wire::envelope::Empty;
use serde_json::{Map, Value};

use crate::Api;
use crate::apps::actor;
use crate::caller::{Call, Caller, encode};
use crate::clusters::existing_cluster;
use crate::error::ApiError;
use crate::operations::{Implemented, ram};
use crate::params::{invalid, now, only_with, required};
use crate::policy::configuration_arn;

type Kind = ObjectKind;

pub(crate) async fn dispatch(
    call: Call<'_>,
    op: Implemented,
) -> Result<Map<String, Value>, ApiError> {
    let kind = match op {
        Implemented::CreateK8sSecret
        | Implemented::UpdateK8sSecret
        | Implemented::DeleteK8sSecret
        | Implemented::ListK8sSecrets => ObjectKind::Secret,
        _ => ObjectKind::ConfigMap,
    };
    let action = op.action().name();
    match op {
        Implemented::CreateK8sConfigMap | Implemented::CreateK8sSecret => {
            encode(put(call, kind, action, true).await?)
        }
        Implemented::UpdateK8sConfigMap | Implemented::UpdateK8sSecret => {
            encode(put(call, kind, action, false).await?)
        }
        Implemented::DeleteK8sConfigMap | Implemented::DeleteK8sSecret => {
            encode(delete(call, kind, action).await?)
        }
        _ => {
            let page = list(call, kind, action).await?;
            match kind {
                Kind::ConfigMap => encode(ConfigMapsBody {
                    result: wire::ConfigMapPage {
                        config_maps: page.items,
                        total: page.total,
                    },
                }),
                Kind::Secret => encode(SecretsBody {
                    result: wire::SecretPage {
                        secrets: page.items.into_iter().map(opaque_secret).collect(),
                        total: page.total,
                    },
                }),
            }
        }
    }
}

/// A DNS label: lowercase letters, digits and `-`, at most 63, not starting or ending with `-`;
/// a ConfigMap or Secret name must also start with a letter (as EDAS documents).
fn check_dns_label(parameter: &str, value: &str, letter_first: bool) -> Result<(), ApiError> {
    let chars_ok = value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let first_ok = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || (!letter_first && c.is_ascii_digit()));
    if value.len() <= 63 && chars_ok && first_ok && !value.ends_with('-') {
        Ok(())
    } else {
        Err(invalid(
            parameter,
            format!(
                "`{value}` is not a valid name: use at most 63 lowercase letters, digits and hyphens, {} and not ending with a hyphen",
                if letter_first {
                    "starting with a letter"
                } else {
                    "starting with a letter or digit"
                }
            ),
        ))
    }
}

/// The ConfigMap or Secret a change names, once the caller may manage it.
fn authorized_target(
    api: &Api,
    caller: &Caller,
    params: &Params,
    kind: Kind,
) -> Result<ObjectRef, ApiError> {
    let cluster_id = required(params, "ClusterId")?.to_owned();
    let namespace = required(params, "Namespace")?.to_owned();
    let name = required(params, "Name")?.to_owned();
    check_dns_label("Namespace", &namespace, false)?;
    check_dns_label("Name", &name, true)?;
    caller.authorize(
        ram::MANAGE_CONFIGURATION,
        &arn(api, kind, &cluster_id, &namespace, &name),
    )?;
    Ok(ObjectRef {
        kind,
        cluster_id,
        namespace,
        name,
    })
}

fn arn(api: &Api, kind: Kind, cluster_id: &str, namespace: &str, name: &str) -> String {
    configuration_arn(
        &api.config().region_id,
        &api.config().account_id,
        cluster_id,
        namespace,
        kind.segment(),
        name,
    )
}

/// A data key as Kubernetes allows it: letters, digits, `-`, `_`, `.`; at most 253.
fn check_key(key: &str) -> Result<(), ApiError> {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && key != "."
        && key != "..";
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "Data",
            format!(
                "the key `{key}` is invalid: use 1-253 letters, digits, `-`, `_` or `.` (not `.` or `..` alone)"
            ),
        ))
    }
}

/// A JSON-string parameter or its flattened `Name.<key>` form, as key → value pairs.
fn object_param(params: &Params, name: &str) -> Result<Option<Vec<(String, Value)>>, ApiError> {
    let prefix = format!("{name}.");
    let flattened: Vec<(String, Value)> = params
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(&prefix)
                .map(|key| (key.to_owned(), Value::String(v.to_owned())))
        })
        .collect();
    match (params.get(name), flattened.is_empty()) {
        (Some(_), false) => Err(invalid(
            name,
            format!(
                "give either `{name}` as JSON text or flattened `{name}.<key>` parameters, not both"
            ),
        )),
        (None, true) => Ok(None),
        (None, false) => Ok(Some(flattened)),
        (Some(text), true) if text.trim().is_empty() => Ok(Some(Vec::new())),
        (Some(text), true) => {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| invalid(name, format!("is not valid JSON: {e}")))?;
            match value {
                Value::Object(map) => Ok(Some(map.into_iter().collect())),
                Value::Array(items) => {
                    // `[{"Key": "name", "Value": "william"}, …]`, as EDAS documents it.
                    let mut out = Vec::with_capacity(items.len());
                    for (i, item) in items.into_iter().enumerate() {
                        let key = item.get("Key").and_then(Value::as_str).ok_or_else(|| {
                            invalid(
                                name,
                                format!("item {} has no string `Key`: use [{{\"Key\": \"k\", \"Value\": \"v\"}}, …]", i + 1),
                            )
                        })?;
                        let value = item.get("Value").cloned().unwrap_or(Value::Null);
                        out.push((key.to_owned(), value));
                    }
                    Ok(Some(out))
                }
                _ => Err(invalid(
                    name,
                    "must be a JSON array of {\"Key\": …, \"Value\": …} objects or a JSON object",
                )),
            }
        }
    }
}

/// The data of a ConfigMap or Secret: string keys to string values, each key once.
fn data(params: &Params, base64_values: bool) -> Result<BTreeMap<String, String>, ApiError> {
    let pairs = object_param(params, "Data")?.unwrap_or_default();
    let mut out = BTreeMap::new();
    for (key, value) in pairs {
        check_key(&key)?;
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(invalid(
                    "Data",
                    format!("the value of `{key}` must be a string, not {other}"),
                ));
            }
        };
        let text = if base64_values {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| {
                    invalid(
                        "Data",
                        format!("the value of `{key}` is not Base64 (Base64Encoded is true): {e}"),
                    )
                })?;
            String::from_utf8(bytes).map_err(|_| {
                invalid(
                    "Data",
                    format!("the value of `{key}` does not decode to UTF-8 text; binary Secret values are not supported"),
                )
            })?
        } else {
            text
        };
        if out.insert(key.clone(), text).is_some() {
            return Err(invalid("Data", format!("the key `{key}` is given twice")));
        }
    }
    Ok(out)
}

fn bool_param(params: &Params, name: &str) -> Result<bool, ApiError> {
    match params.get(name) {
        None | Some("") => Ok(false),
        Some(v) => edas_spec::parse_bool(v)
            .ok_or_else(|| invalid(name, format!("`{v}` is not a boolean: use true or false"))),
    }
}

/// The Secret-only parameters: `Type` (Opaque only), `Base64Encoded`, and no certificate.
fn secret_options(params: &Params) -> Result<bool, ApiError> {
    for name in ["CertId", "CertRegionId"] {
        if params.get(name).is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::from(Violations(vec![Violation {
                parameter: name.into(),
                kind: ViolationKind::NotSupported,
                message: format!(
                    "{name}: certificates of Alibaba Cloud Certificate Management Service are not available to this self-hosted server; put the certificate in Data"
                ),
            }])));
        }
    }
    match params.get("Type") {
        None | Some("") | Some("Opaque") => {}
        Some(other) => {
            return Err(ApiError::from(Violations(vec![Violation {
                parameter: "Type".into(),
                kind: ViolationKind::NotSupported,
                message: format!(
                    "Secret type `{other}` is not supported; this server keeps Opaque Secrets only"
                ),
            }])));
        }
    }
    bool_param(params, "Base64Encoded")
}

async fn put(call: Call<'_>, kind: Kind, action: &str, create: bool) -> Result<Empty, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    let allowed: &[&str] = match kind {
        Kind::ConfigMap => &["ClusterId", "Data", "Name", "Namespace"],
        Kind::Secret => &[
            "Base64Encoded",
            "CertId",
            "CertRegionId",
            "ClusterId",
            "Data",
            "Name",
            "Namespace",
            "Type",
        ],
    };
    only_with(params, action, allowed, &["Data"])?;
    let t = authorized_target(api, caller, params, kind)?;
    // The cluster is named before the data is decoded, so a wrong ClusterId is the error.
    existing_cluster(api, &t.cluster_id).await?;
    let base64_values = match kind {
        Kind::Secret => secret_options(params)?,
        Kind::ConfigMap => false,
    };
    let data = data(params, base64_values)?;
    api.app()
        .put_config(
            &t,
            data,
            create,
            action,
            &actor(caller, request_id),
            now(api),
        )
        .await?;
    Ok(Empty {})
}

async fn delete(call: Call<'_>, kind: Kind, action: &str) -> Result<Empty, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    only_with(params, action, &["ClusterId", "Name", "Namespace"], &[])?;
    let t = authorized_target(api, caller, params, kind)?;
    api.app()
        .delete_config(&t, action, &actor(caller, request_id), now(api))
        .await?;
    Ok(Empty {})
}

/// `Condition`: `{"field": "Name", "pattern": "…"}` — names containing the pattern.
fn name_pattern(params: &Params) -> Result<Option<String>, ApiError> {
    let Some(pairs) = object_param(params, "Condition")? else {
        return Ok(None);
    };
    let mut field = None;
    let mut pattern = None;
    for (key, value) in pairs {
        let text = value.as_str().map(str::to_owned).ok_or_else(|| {
            invalid(
                "Condition",
                format!("`{key}` must be a string, not {value}"),
            )
        })?;
        match key.as_str() {
            "field" => field = Some(text),
            "pattern" => pattern = Some(text),
            other => {
                return Err(invalid(
                    "Condition",
                    format!(
                        "unknown condition `{other}`: use {{\"field\": \"Name\", \"pattern\": \"…\"}}"
                    ),
                ));
            }
        }
    }
    match field.as_deref() {
        None | Some("Name") | Some("name") => Ok(pattern.filter(|p| !p.is_empty())),
        Some(other) => Err(invalid(
            "Condition",
            format!("field `{other}` cannot be filtered on: only `Name`"),
        )),
    }
}

fn non_negative(params: &Params, name: &str) -> Result<Option<usize>, ApiError> {
    match params.get(name) {
        None | Some("") => Ok(None),
        Some(raw) => match edas_spec::parse_int(raw) {
            Some(n) if (0..=100_000).contains(&n) => Ok(Some(n as usize)),
            _ => Err(invalid(
                name,
                format!("`{raw}` is not an integer between 0 and 100000"),
            )),
        },
    }
}

/// One page of ConfigMaps or Secrets and the number of matches.
struct Listed {
    items: Vec<wire::ConfigItem>,
    total: i64,
}

/// A listed Secret: edasd keeps Opaque Secrets, their values decoded (not Base64).
fn opaque_secret(item: wire::ConfigItem) -> wire::SecretItem {
    wire::SecretItem {
        item,
        base64_encoded: false,
        r#type: "Opaque".to_owned(),
        cert_id: String::new(),
        cert_region_id: String::new(),
        related_ingress_rules: Vec::new(),
    }
}

async fn list(call: Call<'_>, kind: Kind, action: &str) -> Result<Listed, ApiError> {
    let (api, caller, params, _) = call.parts();
    only_with(
        params,
        action,
        &[
            "ClusterId",
            "Condition",
            "Namespace",
            "PageNo",
            "PageSize",
            "ShowRelatedApps",
        ],
        &["Condition"],
    )?;
    let pattern = name_pattern(params)?;
    let namespace = params.get("Namespace").filter(|v| !v.is_empty());
    if let Some(ns) = namespace {
        check_dns_label("Namespace", ns, false)?;
    }
    // Pages count from 1; PageNo 0 (where EDAS's docs start counting) is the first page too.
    let page_no = non_negative(params, "PageNo")?.unwrap_or(1).max(1);
    let page_size = non_negative(params, "PageSize")?.unwrap_or(0);
    let related = bool_param(params, "ShowRelatedApps")?;
    let cluster_id = params.get("ClusterId").filter(|v| !v.is_empty());
    let items: Vec<Object> = api
        .app()
        .configs(kind, cluster_id)
        .await?
        .into_iter()
        .filter(|item| {
            let at = &item.at;
            namespace.is_none_or(|ns| ns == at.namespace)
                && pattern.as_deref().is_none_or(|p| at.name.contains(p))
                && caller.may(
                    ram::READ_CONFIGURATION,
                    &arn(api, kind, &at.cluster_id, &at.namespace, &at.name),
                )
        })
        .collect();
    let total = items.len();
    let page: Vec<Object> = if page_size == 0 {
        items
    } else {
        items
            .into_iter()
            .skip((page_no - 1).saturating_mul(page_size))
            .take(page_size)
            .collect()
    };
    let mut items = Vec::with_capacity(page.len());
    for item in page {
        let data = item
            .data
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| wire::KeyValue {
                        key: k.clone(),
                        value: v.as_str().unwrap_or_default().to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let related_apps = if related {
            api.app()
                .config_users(&item.at)
                .await?
                .into_iter()
                .map(|a| wire::RelatedApp {
                    app_id: a.id,
                    app_name: a.name,
                })
                .collect()
        } else {
            Vec::new()
        };
        items.push(wire::ConfigItem {
            cluster_id: item.at.cluster_id,
            cluster_name: item.cluster_name,
            creation_time: item.created_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            data,
            name: item.at.name,
            namespace: item.at.namespace,
            related_apps,
        });
    }
    Ok(Listed {
        items,
        total: crate::render::count(total),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().map(|(k, v)| (*k, *v))).unwrap()
    }

    #[test]
    fn data_comes_as_json_array_object_or_flattened() {
        let array = params(&[(
            "Data",
            r#"[{"Key":"name","Value":"william"},{"Key":"age","Value":"12"}]"#,
        )]);
        let object = params(&[("Data", r#"{"name":"william","age":"12"}"#)]);
        let flat = params(&[("Data.name", "william"), ("Data.age", "12")]);
        for p in [array, object, flat] {
            let d = data(&p, false).unwrap();
            assert_eq!(d.get("name").map(String::as_str), Some("william"));
            assert_eq!(d.get("age").map(String::as_str), Some("12"));
        }
        assert!(data(&params(&[]), false).unwrap().is_empty());
    }

    #[test]
    fn bad_data_names_the_parameter() {
        for bad in [
            params(&[("Data", "[{")]),
            params(&[("Data", "[{\"Value\":\"x\"}]")]),
            params(&[("Data", "{\"a b\":\"x\"}")]),
            params(&[("Data", "{\"a\":{}}")]),
            params(&[("Data", "{\"a\":\"1\"}"), ("Data.b", "2")]),
            params(&[(
                "Data",
                "[{\"Key\":\"a\",\"Value\":\"1\"},{\"Key\":\"a\",\"Value\":\"2\"}]",
            )]),
            params(&[("Data", "7")]),
        ] {
            let e = data(&bad, false).unwrap_err();
            assert!(e.message.contains("Data"), "{}", e.message);
        }
    }

    #[test]
    fn base64_values_are_decoded_and_checked() {
        let p = params(&[("Data.pw", "czNjcjN0")]);
        assert_eq!(data(&p, true).unwrap()["pw"], "s3cr3t");
        let e = data(&params(&[("Data.pw", "not base64!")]), true).unwrap_err();
        assert!(e.message.contains("Base64"), "{}", e.message);
    }

    #[test]
    fn condition_filters_by_name_in_both_forms() {
        let json = params(&[("Condition", r#"{"field":"Name","pattern":"web-"}"#)]);
        let flat = params(&[("Condition.field", "Name"), ("Condition.pattern", "web-")]);
        assert_eq!(name_pattern(&json).unwrap().as_deref(), Some("web-"));
        assert_eq!(name_pattern(&flat).unwrap().as_deref(), Some("web-"));
        assert!(name_pattern(&params(&[("Condition.field", "Data")])).is_err());
        assert!(name_pattern(&params(&[("Condition.x", "1")])).is_err());
        assert_eq!(name_pattern(&params(&[])).unwrap(), None);
    }

    #[test]
    fn names_are_dns_labels() {
        assert!(check_dns_label("Name", "app-config", true).is_ok());
        assert!(check_dns_label("Namespace", "1team", false).is_ok());
        for bad in ["", "App", "1abc", "a_b", "a-", &"a".repeat(64)] {
            assert!(check_dns_label("Name", bad, true).is_err(), "{bad}");
        }
    }
}
