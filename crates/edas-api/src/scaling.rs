//! The six ApplicationScalingRule operations: decoding EDAS's JSON-string parameters
//! (`ScalingRuleMetric`, `ScalingBehaviour`) into the application layer's inputs, which
//! validates and stores them (edas-app `scaling`).
//!
//! `ScalingRuleMetric` is `{"minReplicas": 1, "maxReplicas": 4, "metrics": [{"metricType":
//! "CPU", "metricTargetAverageUtilization": 60}]}` (the keys of the SDK models' `Metric`,
//! camelCase or PascalCase); `ScalingBehaviour` is EDAS's documented `{"scaleUp": {...},
//! "scaleDown": {"stabilizationWindowSeconds": "300", "selectPolicy": "Max", "policies":
//! [{"type": "Percent", "value": 200, "periodSeconds": 15}]}}`. `ScalingRuleTrigger` rules
//! (`cron`, `app_metric`) are refused: EDAS does not publish the format of their `metaData`,
//! so edasd cannot honour one. `ScalingRuleTimer` is deprecated by EDAS and refused.

use edas_app::{BehaviourInput, DirectionInput, MetricRuleInput, ScalingRule, ScalingRuleChange};
use edas_spec::{Params, Violation, ViolationKind, Violations};
use edas_wire::envelope::Empty;
use edas_wire::scaling as wire;
use serde_json::Value;

use crate::apps::{actor, arn, live_application};
use crate::caller::Call;
use crate::error::ApiError;
use crate::operations::ram;
use crate::params::{invalid, now, only, required};

const RULE_PARAMETERS: [&str; 8] = [
    "AppId",
    "ScalingRuleName",
    "ScalingRuleType",
    "ScalingRuleEnable",
    "ScalingRuleMetric",
    "ScalingRuleTimer",
    "ScalingRuleTrigger",
    "ScalingBehaviour",
];

fn not_supported(parameter: &str, message: impl Into<String>) -> ApiError {
    ApiError::from(Violations(vec![Violation {
        parameter: parameter.to_owned(),
        kind: ViolationKind::NotSupported,
        message: message.into(),
    }]))
}

/// The members of JSON object `value` at `path`, keys matched case-insensitively against
/// `known` (EDAS documents camelCase, its models PascalCase); any other key is refused.
fn members<'a>(
    value: &'a Value,
    path: &str,
    known: &[&'static str],
) -> Result<Vec<(&'static str, &'a Value)>, ApiError> {
    let Value::Object(map) = value else {
        return Err(invalid(path, "must be a JSON object"));
    };
    map.iter()
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

const PERIOD: &str = "periodSeconds";

fn int(value: &Value, path: &str) -> Result<i64, ApiError> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| invalid(path, format!("must be an integer, not {value}")))
}

fn text(value: &Value, path: &str) -> Result<String, ApiError> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(path, format!("must be a string, not {value}")))
}

fn array<'a>(value: &'a Value, path: &str) -> Result<&'a Vec<Value>, ApiError> {
    value
        .as_array()
        .ok_or_else(|| invalid(path, "must be a JSON array"))
}

fn parse_json(params: &Params, name: &str) -> Result<Option<Value>, ApiError> {
    match params.get(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => serde_json::from_str(v)
            .map(Some)
            .map_err(|e| invalid(name, format!("is not JSON: {e}"))),
    }
}

fn decode_metric(value: &Value) -> Result<MetricRuleInput, ApiError> {
    const P: &str = "ScalingRuleMetric";
    let mut m = MetricRuleInput::default();
    let (mut min, mut max, mut metrics) = (false, false, false);
    for (key, v) in members(value, P, &["minReplicas", "maxReplicas", "metrics"])? {
        let path = format!("{P}.{key}");
        match key {
            "minReplicas" => (m.min_replicas, min) = (int(v, &path)?, true),
            "maxReplicas" => (m.max_replicas, max) = (int(v, &path)?, true),
            _ => {
                metrics = true;
                for (i, item) in array(v, &path)?.iter().enumerate() {
                    let path = format!("{P}.metrics[{i}]");
                    let (mut kind, mut target) = (None, None);
                    for (key, v) in members(
                        item,
                        &path,
                        &["metricType", "metricTargetAverageUtilization"],
                    )? {
                        let path = format!("{path}.{key}");
                        if key == "metricType" {
                            kind = Some(text(v, &path)?);
                        } else {
                            target = Some(int(v, &path)?);
                        }
                    }
                    let kind = kind.ok_or_else(|| missing(&format!("{path}.metricType")))?;
                    let target = target.ok_or_else(|| {
                        missing(&format!("{path}.metricTargetAverageUtilization"))
                    })?;
                    m.metrics.push((kind, target));
                }
            }
        }
    }
    for (given, key) in [
        (min, "minReplicas"),
        (max, "maxReplicas"),
        (metrics, "metrics"),
    ] {
        if !given {
            return Err(missing(&format!("{P}.{key}")));
        }
    }
    Ok(m)
}

fn missing(parameter: &str) -> ApiError {
    ApiError::from(Violations(vec![Violation {
        parameter: parameter.to_owned(),
        kind: ViolationKind::Missing,
        message: format!("{parameter} is required"),
    }]))
}

fn decode_direction(value: &Value, path: &str) -> Result<DirectionInput, ApiError> {
    let mut d = DirectionInput {
        select_policy: "Max".into(),
        ..Default::default()
    };
    for (key, v) in members(
        value,
        path,
        &["stabilizationWindowSeconds", "selectPolicy", "policies"],
    )? {
        let p = format!("{path}.{key}");
        match key {
            "stabilizationWindowSeconds" => d.stabilization_window_seconds = int(v, &p)?,
            "selectPolicy" => d.select_policy = text(v, &p)?,
            _ => {
                for (i, item) in array(v, &p)?.iter().enumerate() {
                    let p = format!("{path}.policies[{i}]");
                    let Value::Object(map) = item else {
                        return Err(invalid(&p, "must be a JSON object"));
                    };
                    let (mut kind, mut val, mut period) = (None, None, None);
                    for (key, v) in map {
                        let kp = format!("{p}.{key}");
                        if key.eq_ignore_ascii_case("type") {
                            kind = Some(text(v, &kp)?);
                        } else if key.eq_ignore_ascii_case("value") {
                            val = Some(int(v, &kp)?);
                        } else if key.eq_ignore_ascii_case(PERIOD) {
                            period = Some(int(v, &kp)?);
                        } else {
                            return Err(invalid(
                                &kp,
                                format!("unknown key; {p} has type, value, {PERIOD}"),
                            ));
                        }
                    }
                    d.policies.push((
                        kind.ok_or_else(|| missing(&format!("{p}.type")))?,
                        val.ok_or_else(|| missing(&format!("{p}.value")))?,
                        period.ok_or_else(|| missing(&format!("{p}.{PERIOD}")))?,
                    ));
                }
            }
        }
    }
    Ok(d)
}

fn decode_behaviour(value: &Value) -> Result<BehaviourInput, ApiError> {
    const P: &str = "ScalingBehaviour";
    let mut b = BehaviourInput::default();
    for (key, v) in members(value, P, &["scaleUp", "scaleDown"])? {
        if v.is_null() {
            continue;
        }
        let d = Some(decode_direction(v, &format!("{P}.{key}"))?);
        if key == "scaleUp" {
            b.scale_up = d;
        } else {
            b.scale_down = d;
        }
    }
    Ok(b)
}

/// The change Create/UpdateApplicationScalingRule asks, every parameter honoured or refused.
fn decode_change(params: &Params) -> Result<ScalingRuleChange, ApiError> {
    if params
        .get("ScalingRuleTimer")
        .is_some_and(|v| !v.trim().is_empty())
    {
        return Err(not_supported(
            "ScalingRuleTimer",
            "EDAS deprecated timer rules and edasd does not run them; give ScalingRuleMetric",
        ));
    }
    if params
        .get("ScalingRuleTrigger")
        .is_some_and(|v| !v.trim().is_empty())
    {
        return Err(not_supported(
            "ScalingRuleTrigger",
            "trigger rules (cron, app_metric) are not supported: the format of their metaData is not published, so edasd could not honour one; give ScalingRuleType=metric with ScalingRuleMetric (minReplicas, maxReplicas, metrics of CPU/MEMORY with metricTargetAverageUtilization)",
        ));
    }
    match params.get("ScalingRuleType").map(str::trim) {
        None | Some("") | Some("metric") => {}
        Some("trigger") => {
            return Err(not_supported(
                "ScalingRuleType",
                "trigger rules (cron, app_metric) are not supported: the format of their metaData is not published; use ScalingRuleType=metric with ScalingRuleMetric",
            ));
        }
        Some(other) => {
            return Err(invalid(
                "ScalingRuleType",
                format!("`{other}` is not a rule type; edasd takes `metric`"),
            ));
        }
    }
    let enabled =
        match params.get("ScalingRuleEnable").map(str::trim) {
            None | Some("") => None,
            Some(v) => Some(edas_spec::parse_bool(v).ok_or_else(|| {
                invalid("ScalingRuleEnable", format!("`{v}` is not true or false"))
            })?),
        };
    let metric = parse_json(params, "ScalingRuleMetric")?
        .map(|v| decode_metric(&v))
        .transpose()?;
    let behaviour = parse_json(params, "ScalingBehaviour")?
        .map(|v| decode_behaviour(&v))
        .transpose()?;
    Ok(ScalingRuleChange {
        name: required(params, "ScalingRuleName")?.to_owned(),
        enabled,
        metric,
        behaviour,
    })
}

fn direction(d: &edas_app::ScalingDirection) -> wire::ScalingDirection {
    wire::ScalingDirection {
        policies: d
            .policies
            .iter()
            .map(|p| wire::ScalingPolicy {
                period_seconds: p.period_seconds.into(),
                r#type: p.kind.clone(),
                value: p.value.into(),
            })
            .collect(),
        select_policy: d.select_policy.clone(),
        stabilization_window_seconds: d.stabilization_window_seconds.into(),
    }
}

/// A stored rule in EDAS's `AppScalingRule` shape.
pub(crate) fn rule(r: &ScalingRule) -> wire::AppScalingRule {
    let doc = &r.doc;
    wire::AppScalingRule {
        app_id: r.app_id.clone(),
        behaviour: (doc.scale_up.is_some() || doc.scale_down.is_some()).then(|| {
            wire::ScalingBehaviour {
                scale_down: doc.scale_down.as_ref().map(direction),
                scale_up: doc.scale_up.as_ref().map(direction),
            }
        }),
        create_time: r.created_at.as_millisecond(),
        last_disable_time: r.last_disabled_at.map_or(0, |t| t.as_millisecond()),
        max_replicas: r.max_replicas.into(),
        metric: Some(wire::ScalingMetricRule {
            max_replicas: r.max_replicas.into(),
            metrics: doc
                .metrics
                .iter()
                .map(|m| wire::ScalingRuleMetric {
                    metric_target_average_utilization: m.target_utilization.into(),
                    metric_type: m.kind.clone(),
                })
                .collect(),
            min_replicas: r.min_replicas.into(),
        }),
        min_replicas: r.min_replicas.into(),
        scale_rule_enabled: r.enabled,
        scale_rule_name: r.name.clone(),
        scale_rule_type: "metric".into(),
        trigger: None,
        update_time: r.updated_at.as_millisecond(),
    }
}

async fn put(call: Call<'_>, create: bool) -> Result<wire::AppScalingRuleBody, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    let action = if create {
        "CreateApplicationScalingRule"
    } else {
        "UpdateApplicationScalingRule"
    };
    only(params, action, &RULE_PARAMETERS)?;
    let app = live_application(api, required(params, "AppId")?).await?;
    caller.authorize(ram::MANAGE_APPLICATION, &arn(api, &app))?;
    let change = decode_change(params)?;
    let stored = api
        .app()
        .put_scaling_rule(
            &app,
            change,
            create,
            action,
            &actor(caller, request_id),
            now(api),
        )
        .await?;
    Ok(wire::AppScalingRuleBody {
        app_scaling_rule: rule(&stored),
    })
}

pub(crate) async fn create(call: Call<'_>) -> Result<wire::AppScalingRuleBody, ApiError> {
    put(call, true).await
}

pub(crate) async fn update(call: Call<'_>) -> Result<wire::AppScalingRuleBody, ApiError> {
    put(call, false).await
}

pub(crate) async fn set_enabled(
    call: Call<'_>,
    enabled: bool,
) -> Result<wire::AppScalingRuleBody, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    let action = if enabled {
        "EnableApplicationScalingRule"
    } else {
        "DisableApplicationScalingRule"
    };
    only(params, action, &["AppId", "ScalingRuleName"])?;
    let app = live_application(api, required(params, "AppId")?).await?;
    caller.authorize(ram::MANAGE_APPLICATION, &arn(api, &app))?;
    let name = required(params, "ScalingRuleName")?;
    let stored = api
        .app()
        .set_scaling_rule_enabled(
            &app,
            name,
            enabled,
            action,
            &actor(caller, request_id),
            now(api),
        )
        .await?;
    Ok(wire::AppScalingRuleBody {
        app_scaling_rule: rule(&stored),
    })
}

pub(crate) async fn delete(call: Call<'_>) -> Result<Empty, ApiError> {
    let (api, caller, params, request_id) = call.parts();
    only(
        params,
        "DeleteApplicationScalingRule",
        &["AppId", "ScalingRuleName"],
    )?;
    let app = live_application(api, required(params, "AppId")?).await?;
    caller.authorize(ram::MANAGE_APPLICATION, &arn(api, &app))?;
    let name = required(params, "ScalingRuleName")?;
    api.app()
        .delete_scaling_rule(&app, name, &actor(caller, request_id), now(api))
        .await?;
    Ok(Empty {})
}

pub(crate) async fn describe(call: Call<'_>) -> Result<wire::AppScalingRulesBody, ApiError> {
    let (api, caller, params, _) = call.parts();
    only(params, "DescribeApplicationScalingRules", &["AppId"])?;
    let app = live_application(api, required(params, "AppId")?).await?;
    caller.authorize(ram::READ_APPLICATION, &arn(api, &app))?;
    let rules: Vec<wire::AppScalingRule> = api
        .app()
        .scaling_rules(&app.id)
        .await?
        .iter()
        .map(rule)
        .collect();
    let total = i64::try_from(rules.len()).unwrap_or(i64::MAX);
    Ok(wire::AppScalingRulesBody {
        app_scaling_rules: wire::AppScalingRulePage {
            current_page: 1,
            page_size: total,
            result: rules,
            total_size: total,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parameter(e: ApiError) -> String {
        format!("{e:?}")
    }

    #[test]
    fn the_metric_form_decodes_in_either_case() {
        let m = decode_metric(&json!({"MinReplicas": "1", "maxReplicas": 4,
            "metrics": [{"metricType": "CPU", "MetricTargetAverageUtilization": 60}]}))
        .unwrap();
        assert_eq!(
            m,
            MetricRuleInput {
                min_replicas: 1,
                max_replicas: 4,
                metrics: vec![("CPU".into(), 60)],
            }
        );
        let e =
            decode_metric(&json!({"minReplicas": 1, "maxReplicas": 2, "metrics": [], "step": 1}))
                .unwrap_err();
        assert!(parameter(e).contains("ScalingRuleMetric.step"));
        let e = decode_metric(&json!({"minReplicas": 1, "metrics": []})).unwrap_err();
        assert!(parameter(e).contains("ScalingRuleMetric.maxReplicas"));
        let e = decode_metric(&json!({"minReplicas": 1, "maxReplicas": 2,
            "metrics": [{"metricType": "CPU"}]}))
        .unwrap_err();
        assert!(parameter(e).contains("metricTargetAverageUtilization"));
    }

    #[test]
    fn edas_documented_behaviour_decodes() {
        let b = decode_behaviour(&json!({
            "scaleUp": {"stabilizationWindowSeconds": "0", "selectPolicy": "Max",
                "policies": [{"type": "Pods", "value": 5, "periodSeconds": 15}]},
            "scaleDown": {"stabilizationWindowSeconds": "300", "selectPolicy": "Max",
                "policies": [{"type": "Percent", "value": 200, "periodSeconds": 15}]}}))
        .unwrap();
        assert_eq!(b.scale_up.unwrap().policies, [("Pods".into(), 5, 15)]);
        assert_eq!(b.scale_down.unwrap().stabilization_window_seconds, 300);
        let e = decode_behaviour(
            &json!({"scaleUp": {"policies": [{"type": "Pods", "value": 1,
            "periodSeconds": 1, "extra": 1}]}}),
        )
        .unwrap_err();
        assert!(parameter(e).contains("ScalingBehaviour.scaleUp.policies[0].extra"));
    }
}
