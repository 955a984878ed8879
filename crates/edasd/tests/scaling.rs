//! Black-box tests of the autoscaling-rule operations on the real edasd: a rule is stored,
//! listed, changed, disabled and deleted in EDAS's shapes; bad input and enabling (on `local`,
//! which has no autoscaler; Kubernetes is `kube_scaling.rs`) are refused naming the parameter, and nothing is stored; a reader
//! cannot change rules.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Cluster, QUICK_RESTARTS};

/// Not a test: the test application's entry point when edasd's local runtime runs this binary.
#[test]
fn testapp_entry() {
    support::testapp_entry();
}

const RULE: &str = "/pop/v1/eam/scale/application_scaling_rule";
const RULES: &str = "/pop/v1/eam/scale/application_scaling_rules";
const CPU: &str = r#"{"minReplicas": 1, "maxReplicas": 4, "metrics": [{"metricType": "CPU", "metricTargetAverageUtilization": 60}]}"#;
const BEHAVIOUR: &str = r#"{"scaleDown": {"stabilizationWindowSeconds": "300", "selectPolicy": "Max", "policies": [{"type": "Percent", "value": 50, "periodSeconds": 15}]}}"#;

async fn rules(edasd: &Cluster, app: &str) -> Vec<Value> {
    let body = edasd
        .call(
            "GET",
            RULES,
            "DescribeApplicationScalingRules",
            &[("AppId", app)],
        )
        .await;
    let page = &body["AppScalingRules"];
    assert_eq!(page["CurrentPage"], 1, "{body}");
    let result = page["Result"].as_array().unwrap().clone();
    assert_eq!(page["TotalSize"], result.len(), "{body}");
    result
}

/// Refused with HTTP 400 and a message naming `parameter`.
async fn refused(
    edasd: &Cluster,
    method: &str,
    path: &str,
    action: &str,
    params: &[(&str, &str)],
    parameter: &str,
) {
    let (status, body) = edasd.call_raw(method, path, action, params).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["Message"].as_str().unwrap_or("").contains(parameter),
        "{parameter} not named: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_rules_are_stored_validated_and_never_silently_enabled() {
    let edasd = Cluster::launch(
        format!("edasd-scaling-{}", std::process::id()),
        |_, _| QUICK_RESTARTS.to_owned(),
        false,
        Duration::from_millis(50),
    );
    let (app, co) = edasd.insert("scaled", 0, &[], &[]).await;
    assert_eq!(
        edasd.finished(&co, Duration::from_secs(30)).await["Status"],
        2
    );
    let app = app.as_str();

    let created = edasd
        .call(
            "POST",
            RULE,
            "CreateApplicationScalingRule",
            &[
                ("AppId", app),
                ("ScalingRuleName", "cpu"),
                ("ScalingRuleType", "metric"),
                ("ScalingRuleEnable", "false"),
                ("ScalingRuleMetric", CPU),
                ("ScalingBehaviour", BEHAVIOUR),
            ],
        )
        .await;
    let rule = &created["AppScalingRule"];
    assert_eq!(
        (
            &rule["AppId"],
            &rule["ScaleRuleName"],
            &rule["ScaleRuleEnabled"],
            &rule["MinReplicas"],
            &rule["MaxReplicas"]
        ),
        (
            &json!(app),
            &json!("cpu"),
            &json!(false),
            &json!(1),
            &json!(4)
        ),
        "{created}"
    );
    assert_eq!(
        rule["Metric"]["Metrics"],
        json!([{"MetricTargetAverageUtilization": 60, "MetricType": "CPU"}])
    );
    assert_eq!(
        rule["Behaviour"]["ScaleDown"],
        json!({"Policies": [{"PeriodSeconds": 15, "Type": "Percent", "Value": 50}],
            "SelectPolicy": "Max", "StabilizationWindowSeconds": 300})
    );
    assert_eq!(rules(&edasd, app).await, vec![rule.clone()]);

    // Enabling is refused on `local` (no autoscaler), naming the parameter; nothing stored.
    let create = |name: &'static str, enable: &'static str, metric: &'static str| {
        [
            ("AppId", app),
            ("ScalingRuleName", name),
            ("ScalingRuleEnable", enable),
            ("ScalingRuleMetric", metric),
        ]
    };
    refused(
        &edasd,
        "POST",
        RULE,
        "CreateApplicationScalingRule",
        &create("on", "true", CPU),
        "ScalingRuleEnable",
    )
    .await;
    refused(
        &edasd,
        "PUT",
        "/pop/v1/eam/scale/enable_application_scaling_rule",
        "EnableApplicationScalingRule",
        &[("AppId", app), ("ScalingRuleName", "cpu")],
        "ScalingRuleName",
    )
    .await;
    // Bad input, named.
    refused(&edasd, "POST", RULE, "CreateApplicationScalingRule", &create("bad", "false", r#"{"minReplicas": 5, "maxReplicas": 2, "metrics": [{"metricType": "CPU", "metricTargetAverageUtilization": 60}]}"#), "ScalingRuleMetric.minReplicas").await;
    refused(&edasd, "POST", RULE, "CreateApplicationScalingRule", &create("bad", "false", r#"{"minReplicas": 1, "maxReplicas": 2, "metrics": [{"metricType": "QPS", "metricTargetAverageUtilization": 60}]}"#), "ScalingRuleMetric.metrics[0].metricType").await;
    refused(
        &edasd,
        "POST",
        RULE,
        "CreateApplicationScalingRule",
        &create("Bad_Name", "false", CPU),
        "ScalingRuleName",
    )
    .await;
    refused(&edasd, "POST", RULE, "CreateApplicationScalingRule", &[("AppId", app), ("ScalingRuleName", "trig"), ("ScalingRuleTrigger", r#"{"minReplicas":1,"maxReplicas":2,"triggers":[{"name":"c","type":"cron","metaData":"{}"}]}"#)], "ScalingRuleTrigger").await;
    refused(
        &edasd,
        "POST",
        RULE,
        "CreateApplicationScalingRule",
        &[("AppId", app), ("ScalingRuleName", "none")],
        "ScalingRuleMetric",
    )
    .await;
    let (status, body) = edasd
        .call_raw(
            "POST",
            RULE,
            "CreateApplicationScalingRule",
            &create("cpu", "false", CPU),
        )
        .await;
    assert!(status >= 400, "a second `cpu`: {body}");
    assert_eq!(
        rules(&edasd, app).await.len(),
        1,
        "nothing stored by a refusal"
    );

    // Update: the bounds change, the behaviour is kept; disable records nothing new (never on).
    let updated = edasd
        .call(
            "PUT",
            RULE,
            "UpdateApplicationScalingRule",
            &[
                ("AppId", app),
                ("ScalingRuleName", "cpu"),
                ("ScalingRuleMetric", r#"{"MinReplicas": 2, "MaxReplicas": 6, "Metrics": [{"MetricType": "memory", "MetricTargetAverageUtilization": "70"}]}"#),
            ],
        )
        .await;
    let rule = &updated["AppScalingRule"];
    assert_eq!(
        (&rule["MinReplicas"], &rule["MaxReplicas"]),
        (&json!(2), &json!(6))
    );
    assert_eq!(rule["Metric"]["Metrics"][0]["MetricType"], "MEMORY");
    assert_eq!(
        rule["Behaviour"]["ScaleDown"]["StabilizationWindowSeconds"],
        300
    );
    let disabled = edasd
        .call(
            "PUT",
            "/pop/v1/eam/scale/disable_application_scaling_rule",
            "DisableApplicationScalingRule",
            &[("AppId", app), ("ScalingRuleName", "cpu")],
        )
        .await;
    assert_eq!(disabled["AppScalingRule"]["ScaleRuleEnabled"], false);
    let (status, _) = edasd
        .call_raw(
            "PUT",
            RULE,
            "UpdateApplicationScalingRule",
            &[
                ("AppId", app),
                ("ScalingRuleName", "missing"),
                ("ScalingRuleMetric", CPU),
            ],
        )
        .await;
    assert!(status >= 400);

    // A reader cannot change rules, but lists them.
    let reader = support::user_with_policy(
        &edasd,
        "scalereader",
        json!({"Version": "1", "Statement": [{"Effect": "Allow", "Action": "edas:Read*", "Resource": "*"}]}),
    )
    .await;
    let (status, _) = support::signed(
        &edasd.client,
        &edasd.base,
        "DELETE",
        RULE,
        "DeleteApplicationScalingRule",
        &[("AppId", app), ("ScalingRuleName", "cpu")],
        reader,
    )
    .await;
    assert_eq!(status, 401);
    let (status, listed) = support::signed(
        &edasd.client,
        &edasd.base,
        "GET",
        RULES,
        "DescribeApplicationScalingRules",
        &[("AppId", app)],
        reader,
    )
    .await;
    assert_eq!(
        (status, listed["AppScalingRules"]["TotalSize"].as_i64()),
        (200, Some(1))
    );

    edasd
        .call(
            "DELETE",
            RULE,
            "DeleteApplicationScalingRule",
            &[("AppId", app), ("ScalingRuleName", "cpu")],
        )
        .await;
    assert!(rules(&edasd, app).await.is_empty());
    let (status, _) = edasd
        .call_raw(
            "DELETE",
            RULE,
            "DeleteApplicationScalingRule",
            &[("AppId", app), ("ScalingRuleName", "cpu")],
        )
        .await;
    assert!(status >= 400);
}
