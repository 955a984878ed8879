"""Issue 24: StartK8sAppPrecheck and GetK8sAppPrecheckResult through BOTH official SDKs against
the real edasd on `local`: the jobs a precheck runs, each job's outcome in EDAS's shape, a
capacity shortfall reported (the host's CPUs less the requests of the instances there), and
nothing stored by a precheck."""

import pytest
from alibabacloud_edas20170801 import models as tea
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkedas.request.v20170801 import (
    GetK8sAppPrecheckResultRequest, ListApplicationRequest, StartK8sAppPrecheckRequest)

from conftest import wait_finished
from test_flow import assert_envelope
from test_operations import classic_request

JOBS = ["ParameterCheck", "RightsCheck", "RenderCheck", "ReferenceCheck", "CapacityCheck",
        "QuotaCheck"]


def jobs(data):
    return {j.name: j for j in data.job_results}


def test_tea_sdk_prechecks_a_new_application(edasd):
    client = edasd.tea()
    started = client.start_k8s_app_precheck(tea.StartK8sAppPrecheckRequest(
        app_name="pre-new", cluster_id="local", namespace="default",
        image_url="busybox:1.36", replicas=3, requestsm_cpu=1000000, limitm_cpu=1000000)).body
    assert_envelope(started.to_map())
    assert started.data.jobs == JOBS
    result = client.get_k8s_app_precheck_result(tea.GetK8sAppPrecheckResultRequest(
        app_name="pre-new", cluster_id="local", namespace="default")).body
    assert_envelope(result.to_map())
    assert result.data.status == "failed" and result.data.reason
    by_name = jobs(result.data)
    assert list(by_name) == JOBS
    assert by_name["ParameterCheck"].pass_ is True
    capacity = by_name["CapacityCheck"]
    assert capacity.pass_ is False and capacity.interrupted is False
    assert "insufficient capacity" in capacity.reason and "short by 3" in capacity.reason
    # An image cannot run on `local`: the render check says so.
    assert by_name["RenderCheck"].pass_ is False and "local" in by_name["RenderCheck"].reason
    # Nothing was created.
    listed = edasd.classic().call(classic_request(ListApplicationRequest))
    assert "pre-new" not in [a["Name"] for a in listed["ApplicationList"]["Application"]]

    with pytest.raises(Exception) as missing:
        client.start_k8s_app_precheck(tea.StartK8sAppPrecheckRequest(app_name="x", cluster_id="local"))
    assert "Namespace" in str(missing.value)


def test_classic_sdk_prechecks_a_deploy(edasd):
    tea_client = edasd.tea()
    created = tea_client.insert_k8s_application(tea.InsertK8sApplicationRequest(
        app_name="pre-deploy", cluster_id="local", command="sleep",
        command_args='[{"argument":"300"}]', replicas=1))
    app_id = created.body.application_info.app_id

    def status():
        return tea_client.get_change_order_info(tea.GetChangeOrderInfoRequest(
            change_order_id=created.body.application_info.change_order_id)).body.change_order_info.status
    assert wait_finished(status) == 2

    client = edasd.classic()
    started = client.call(classic_request(
        StartK8sAppPrecheckRequest, AppId=app_id, AppName="pre-deploy", ClusterId="local",
        Namespace="default", Replicas=2,
        Envs='[{"name":"MODE","valueFrom":{"configMapKeyRef":{"name":"absent","key":"k"}}}]'))
    assert_envelope(started)
    assert started["Data"]["Jobs"] == JOBS
    result = client.call(classic_request(
        GetK8sAppPrecheckResultRequest, AppName="pre-deploy", ClusterId="local", Namespace="default"))
    data = result["Data"]
    assert data["Status"] == "failed"
    by_name = {j["Name"]: j for j in data["JobResults"]}
    assert by_name["RenderCheck"]["Pass"] is True, by_name["RenderCheck"]
    assert by_name["CapacityCheck"]["Pass"] is True, by_name["CapacityCheck"]
    assert by_name["ReferenceCheck"]["Pass"] is False
    assert "`absent` does not exist" in by_name["ReferenceCheck"]["Reason"]
    assert data["Reason"].startswith("ReferenceCheck")

    with pytest.raises(ServerException) as wrong:
        client.call(classic_request(
            StartK8sAppPrecheckRequest, AppId=app_id, ClusterId="local", Namespace="other"))
    assert wrong.value.get_error_code() == "InvalidParameter" and "Namespace" in wrong.value.get_error_msg()
    with pytest.raises(ServerException) as never:
        client.call(classic_request(
            GetK8sAppPrecheckResultRequest, AppName="never-checked", ClusterId="local", Namespace="default"))
    assert never.value.get_error_code() == "EntityNotExist"
