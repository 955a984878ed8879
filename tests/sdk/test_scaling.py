"""Issue 24: the six ApplicationScalingRule operations (Create, Update, Delete, Describe,
Enable, Disable) through BOTH official SDKs against the real edasd. Every answer is read
through the keys the SDK models read. On `local` a QPS or CPU rule can be enabled (the
built-in autoscaler); a MEMORY one is refused, naming the metric."""

import json

import pytest
from alibabacloud_edas20170801 import models as tea
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkedas.request.v20170801 import (
    CreateApplicationScalingRuleRequest, DeleteApplicationScalingRuleRequest,
    DescribeApplicationScalingRulesRequest, DisableApplicationScalingRuleRequest,
    EnableApplicationScalingRuleRequest, UpdateApplicationScalingRuleRequest)
from Tea.exceptions import TeaException

from test_catalog import insert_app
from test_flow import assert_envelope
from test_operations import classic_request

METRIC = json.dumps({"minReplicas": 1, "maxReplicas": 4,
                     "metrics": [{"metricType": "CPU", "metricTargetAverageUtilization": 60}]})
MEMORY = json.dumps({"minReplicas": 1, "maxReplicas": 4,
                     "metrics": [{"metricType": "MEMORY", "metricTargetAverageUtilization": 60}]})
QPS = json.dumps({"minReplicas": 1, "maxReplicas": 4,
                  "metrics": [{"metricType": "QPS", "metricTargetAverageUtilization": 50}]})
BEHAVIOUR = json.dumps({
    "scaleUp": {"stabilizationWindowSeconds": "0", "selectPolicy": "Max",
                "policies": [{"type": "Pods", "value": 5, "periodSeconds": 15}]},
    "scaleDown": {"stabilizationWindowSeconds": "300", "selectPolicy": "Max",
                  "policies": [{"type": "Percent", "value": 200, "periodSeconds": 15}]}})


def test_tea_sdk_manages_scaling_rules(edasd):
    client = edasd.tea()
    app_id = insert_app(client, "tea-scaled")
    created = client.create_application_scaling_rule(tea.CreateApplicationScalingRuleRequest(
        app_id=app_id, scaling_rule_name="cpu", scaling_rule_type="metric",
        scaling_rule_enable=False, scaling_rule_metric=METRIC,
        scaling_behaviour=BEHAVIOUR)).body
    assert_envelope(created.to_map())
    rule = created.app_scaling_rule
    assert (rule.app_id, rule.scale_rule_name, rule.scale_rule_enabled) == (app_id, "cpu", False)
    assert (rule.min_replicas, rule.max_replicas) == (1, 4)
    assert rule.metric.metrics[0].metric_type == "CPU"
    assert rule.metric.metrics[0].metric_target_average_utilization == 60
    assert rule.behaviour.scale_up.policies[0].type == "Pods"
    assert rule.behaviour.scale_down.stabilization_window_seconds == 300
    assert rule.create_time > 0 and rule.update_time >= rule.create_time

    updated = client.update_application_scaling_rule(tea.UpdateApplicationScalingRuleRequest(
        app_id=app_id, scaling_rule_name="cpu",
        scaling_rule_metric=json.dumps({"minReplicas": 2, "maxReplicas": 5, "metrics": [
            {"metricType": "MEMORY", "metricTargetAverageUtilization": 70}]}))).body
    assert (updated.app_scaling_rule.min_replicas, updated.app_scaling_rule.max_replicas) == (2, 5)
    assert updated.app_scaling_rule.behaviour.scale_up.select_policy == "Max", "kept"

    listed = client.describe_application_scaling_rules(
        tea.DescribeApplicationScalingRulesRequest(app_id=app_id)).body
    assert_envelope(listed.to_map())
    assert listed.app_scaling_rules.total_size == 1
    assert listed.app_scaling_rules.result[0].metric.metrics[0].metric_type == "MEMORY"

    with pytest.raises(TeaException) as enabling:
        client.enable_application_scaling_rule(tea.EnableApplicationScalingRuleRequest(
            app_id=app_id, scaling_rule_name="cpu"))
    assert enabling.value.code == "InvalidParameter.NotSupported"
    assert "ScalingRuleMetric.metrics[0].metricType" in enabling.value.message
    with pytest.raises(TeaException) as bad:
        client.create_application_scaling_rule(tea.CreateApplicationScalingRuleRequest(
            app_id=app_id, scaling_rule_name="bad", scaling_rule_metric=json.dumps(
                {"minReplicas": 3, "maxReplicas": 2, "metrics": [
                    {"metricType": "GPU", "metricTargetAverageUtilization": 60}]})))
    assert bad.value.code == "InvalidParameter"
    assert "ScalingRuleMetric.minReplicas" in bad.value.message
    assert "ScalingRuleMetric.metrics[0].metricType" in bad.value.message

    disabled = client.disable_application_scaling_rule(tea.DisableApplicationScalingRuleRequest(
        app_id=app_id, scaling_rule_name="cpu")).body
    assert disabled.app_scaling_rule.scale_rule_enabled is False

    # A QPS rule is enabled on `local` (its built-in autoscaler), then disabled and deleted.
    on = client.create_application_scaling_rule(tea.CreateApplicationScalingRuleRequest(
        app_id=app_id, scaling_rule_name="rps", scaling_rule_type="metric",
        scaling_rule_enable=True, scaling_rule_metric=QPS)).body
    assert on.app_scaling_rule.scale_rule_enabled is True
    assert on.app_scaling_rule.metric.metrics[0].metric_type == "QPS"
    assert on.app_scaling_rule.metric.metrics[0].metric_target_average_utilization == 50
    off = client.disable_application_scaling_rule(tea.DisableApplicationScalingRuleRequest(
        app_id=app_id, scaling_rule_name="rps")).body
    assert off.app_scaling_rule.scale_rule_enabled is False
    client.delete_application_scaling_rule(tea.DeleteApplicationScalingRuleRequest(
        app_id=app_id, scaling_rule_name="rps"))
    deleted = client.delete_application_scaling_rule(tea.DeleteApplicationScalingRuleRequest(
        app_id=app_id, scaling_rule_name="cpu")).body
    assert_envelope(deleted.to_map())
    listed = client.describe_application_scaling_rules(
        tea.DescribeApplicationScalingRulesRequest(app_id=app_id)).body
    assert listed.app_scaling_rules.total_size == 0


def test_classic_sdk_manages_scaling_rules(edasd):
    app_id = insert_app(edasd.tea(), "classic-scaled")
    client = edasd.classic()
    created = client.call(classic_request(
        CreateApplicationScalingRuleRequest, AppId=app_id, ScalingRuleName="mem",
        ScalingRuleType="metric", ScalingRuleEnable=False, ScalingRuleMetric=json.dumps(
            {"minReplicas": 1, "maxReplicas": 3, "metrics": [
                {"metricType": "MEMORY", "metricTargetAverageUtilization": 80}]})))
    assert_envelope(created)
    assert created["AppScalingRule"]["ScaleRuleName"] == "mem"
    assert created["AppScalingRule"]["Metric"]["Metrics"][0]["MetricType"] == "MEMORY"
    with pytest.raises(ServerException) as twice:
        client.call(classic_request(
            CreateApplicationScalingRuleRequest, AppId=app_id, ScalingRuleName="mem",
            ScalingRuleMetric=METRIC))
    assert twice.value.get_error_code() == "EntityAlreadyExists"
    with pytest.raises(ServerException) as enabling:
        client.call(classic_request(
            CreateApplicationScalingRuleRequest, AppId=app_id, ScalingRuleName="on",
            ScalingRuleEnable=True, ScalingRuleMetric=MEMORY))
    assert enabling.value.get_error_code() == "InvalidParameter.NotSupported"
    assert "ScalingRuleMetric.metrics[0].metricType" in enabling.value.get_error_msg()
    cpu = client.call(classic_request(
        CreateApplicationScalingRuleRequest, AppId=app_id, ScalingRuleName="cpu",
        ScalingRuleType="metric", ScalingRuleEnable=True, ScalingRuleMetric=METRIC))
    assert cpu["AppScalingRule"]["ScaleRuleEnabled"] is True
    client.call(classic_request(
        DeleteApplicationScalingRuleRequest, AppId=app_id, ScalingRuleName="cpu"))
    with pytest.raises(ServerException) as trigger:
        client.call(classic_request(
            CreateApplicationScalingRuleRequest, AppId=app_id, ScalingRuleName="cron",
            ScalingRuleType="trigger", ScalingRuleTrigger=json.dumps(
                {"minReplicas": 1, "maxReplicas": 2, "triggers": [
                    {"name": "night", "type": "cron", "metaData": "{}"}]})))
    assert trigger.value.get_error_code() == "InvalidParameter.NotSupported"
    assert "ScalingRuleTrigger" in trigger.value.get_error_msg()

    updated = client.call(classic_request(
        UpdateApplicationScalingRuleRequest, AppId=app_id, ScalingRuleName="mem",
        ScalingBehaviour=BEHAVIOUR))
    assert updated["AppScalingRule"]["Behaviour"]["ScaleDown"]["Policies"][0]["Value"] == 200
    listed = client.call(classic_request(DescribeApplicationScalingRulesRequest, AppId=app_id))
    assert [r["ScaleRuleName"] for r in listed["AppScalingRules"]["Result"]] == ["mem"]
    with pytest.raises(ServerException) as enable:
        client.call(classic_request(
            EnableApplicationScalingRuleRequest, AppId=app_id, ScalingRuleName="mem"))
    assert enable.value.get_error_code() == "InvalidParameter.NotSupported"
    disabled = client.call(classic_request(
        DisableApplicationScalingRuleRequest, AppId=app_id, ScalingRuleName="mem"))
    assert disabled["AppScalingRule"]["ScaleRuleEnabled"] is False
    client.call(classic_request(
        DeleteApplicationScalingRuleRequest, AppId=app_id, ScalingRuleName="mem"))
    with pytest.raises(ServerException) as gone:
        client.call(classic_request(
            DeleteApplicationScalingRuleRequest, AppId=app_id, ScalingRuleName="mem"))
    assert gone.value.get_error_code() == "EntityNotExist"
