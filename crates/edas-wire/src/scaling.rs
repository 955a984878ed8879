//! Applications' autoscaling rules: CreateApplicationScalingRule, UpdateApplicationScalingRule,
//! EnableApplicationScalingRule and DisableApplicationScalingRule answer `AppScalingRule`,
//! DescribeApplicationScalingRules `AppScalingRules` (a page of them),
//! DeleteApplicationScalingRule the envelope alone.

use serde::{Deserialize, Serialize};

use crate::lenient;

/// One rule, with every key of the SDK models' `AppScalingRule`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AppScalingRule {
    #[serde(deserialize_with = "lenient::text")]
    pub app_id: String,
    /// The scale-up and scale-down behaviour; `null` when the rule has none.
    pub behaviour: Option<ScalingBehaviour>,
    /// Epoch milliseconds.
    #[serde(deserialize_with = "lenient::int")]
    pub create_time: i64,
    /// Epoch milliseconds; 0 when never disabled.
    #[serde(deserialize_with = "lenient::int")]
    pub last_disable_time: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub max_replicas: i64,
    /// The metrics and their targets (edasd's rules are all of this form).
    pub metric: Option<ScalingMetricRule>,
    #[serde(deserialize_with = "lenient::int")]
    pub min_replicas: i64,
    #[serde(deserialize_with = "lenient::boolean")]
    pub scale_rule_enabled: bool,
    #[serde(deserialize_with = "lenient::text")]
    pub scale_rule_name: String,
    /// `metric` (the form edasd stores).
    #[serde(deserialize_with = "lenient::text")]
    pub scale_rule_type: String,
    /// Trigger rules (cron, app_metric): `null`, edasd stores none.
    pub trigger: Option<ScalingTriggerRule>,
    /// Epoch milliseconds.
    #[serde(deserialize_with = "lenient::int")]
    pub update_time: i64,
}

/// `Metric`: the replica bounds and the metrics with their target utilization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ScalingMetricRule {
    #[serde(deserialize_with = "lenient::int")]
    pub max_replicas: i64,
    pub metrics: Vec<ScalingRuleMetric>,
    #[serde(deserialize_with = "lenient::int")]
    pub min_replicas: i64,
}

/// One metric: `CPU` or `MEMORY`, and its target average utilization in percent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ScalingRuleMetric {
    #[serde(deserialize_with = "lenient::int")]
    pub metric_target_average_utilization: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub metric_type: String,
}

/// `Trigger`: the replica bounds and the triggers of a trigger rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ScalingTriggerRule {
    #[serde(deserialize_with = "lenient::int")]
    pub max_replicas: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub min_replicas: i64,
    pub triggers: Vec<ScalingTrigger>,
}

/// One trigger (`cron`, `app_metric`) and its metadata as EDAS gives it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ScalingTrigger {
    #[serde(deserialize_with = "lenient::text")]
    pub meta_data: String,
    #[serde(deserialize_with = "lenient::text")]
    pub name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub r#type: String,
}

/// `Behaviour`: how each direction scales; `null` for a direction left to the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ScalingBehaviour {
    pub scale_down: Option<ScalingDirection>,
    pub scale_up: Option<ScalingDirection>,
}

/// One direction: its policies, which of them wins and the stabilization (cool-down) window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ScalingDirection {
    pub policies: Vec<ScalingPolicy>,
    /// `Max`, `Min` or `Disabled`.
    #[serde(deserialize_with = "lenient::text")]
    pub select_policy: String,
    #[serde(deserialize_with = "lenient::int")]
    pub stabilization_window_seconds: i64,
}

/// One policy: at most `Value` pods (`Pods`) or percent (`Percent`) per `PeriodSeconds`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ScalingPolicy {
    #[serde(deserialize_with = "lenient::int")]
    pub period_seconds: i64,
    #[serde(deserialize_with = "lenient::text")]
    pub r#type: String,
    #[serde(deserialize_with = "lenient::int")]
    pub value: i64,
}

/// The body of Create/Update/Enable/DisableApplicationScalingRule: `{"AppScalingRule": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AppScalingRuleBody {
    pub app_scaling_rule: AppScalingRule,
}

/// The body of DescribeApplicationScalingRules: `{"AppScalingRules": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AppScalingRulesBody {
    pub app_scaling_rules: AppScalingRulePage,
}

/// A page of rules (edasd answers every rule of the application on page 1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AppScalingRulePage {
    #[serde(deserialize_with = "lenient::int")]
    pub current_page: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub page_size: i64,
    pub result: Vec<AppScalingRule>,
    #[serde(deserialize_with = "lenient::int")]
    pub total_size: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::round_trip;

    #[test]
    fn captured_answers_round_trip() {
        let created: AppScalingRuleBody = round_trip(include_str!(
            "../fixtures/create_application_scaling_rule.json"
        ));
        let rule = &created.app_scaling_rule;
        assert_eq!((rule.min_replicas, rule.max_replicas), (1, 4));
        let metric = rule.metric.as_ref().unwrap();
        assert_eq!(metric.metrics[0].metric_type, "CPU");
        let behaviour = rule.behaviour.as_ref().unwrap();
        assert_eq!(
            behaviour.scale_down.as_ref().unwrap().policies[0].r#type,
            "Percent"
        );
        let rules: AppScalingRulesBody = round_trip(include_str!(
            "../fixtures/describe_application_scaling_rules.json"
        ));
        assert_eq!(rules.app_scaling_rules.total_size, 1);
        assert_eq!(rules.app_scaling_rules.result[0], *rule);
    }
}
