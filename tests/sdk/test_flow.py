"""Both official SDKs, configured only with endpoint, protocol http and a key pair, create an
application on the built-in cluster `local`, deploy it and read the change order back."""

import json
import uuid

from alibabacloud_edas20170801 import models as tea
from aliyunsdkedas.request.v20170801.DeployK8sApplicationRequest import DeployK8sApplicationRequest
from aliyunsdkedas.request.v20170801.GetChangeOrderInfoRequest import GetChangeOrderInfoRequest
from aliyunsdkedas.request.v20170801.GetK8sApplicationRequest import GetK8sApplicationRequest
from aliyunsdkedas.request.v20170801.InsertK8sApplicationRequest import InsertK8sApplicationRequest
from aliyunsdkedas.request.v20170801.ListApplicationRequest import ListApplicationRequest

from conftest import wait_finished

UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"


def assert_envelope(body):
    assert body["Code"] == 200 and isinstance(body["Code"], int), body
    assert body["Message"]
    uuid.UUID(body["RequestId"])


def test_tea_sdk_creates_deploys_and_reads_the_change_order(edasd):
    client = edasd.tea()
    created = client.insert_k8s_application(tea.InsertK8sApplicationRequest(
        app_name="tea-app", cluster_id="local", image_url="busybox:1.36",
        command="sleep", command_args='[{"argument":"30"}]', replicas=1))
    body = created.body.to_map()
    assert_envelope(body)
    info = created.body.application_info
    assert info.app_name == "tea-app" and info.app_id and info.change_order_id

    def status(order_id):
        got = client.get_change_order_info(tea.GetChangeOrderInfoRequest(change_order_id=order_id))
        return got.body.change_order_info.status

    assert wait_finished(lambda: status(info.change_order_id)) == 2

    deployed = client.deploy_k8s_application(tea.DeployK8sApplicationRequest(
        app_id=info.app_id, envs='[{"name":"GREETING","value":"hello"}]',
        change_order_desc="tea deploy"))
    assert_envelope(deployed.body.to_map())
    order_id = deployed.body.change_order_id
    assert order_id
    assert wait_finished(lambda: status(order_id)) == 2

    order = client.get_change_order_info(
        tea.GetChangeOrderInfoRequest(change_order_id=order_id)).body
    assert_envelope(order.to_map())
    co = order.change_order_info
    assert co.change_order_id == order_id
    assert co.change_order_description == "tea deploy"
    assert co.batch_count == len(co.pipeline_info_list.pipeline_info) >= 1
    pipeline = co.pipeline_info_list.pipeline_info[0]
    assert pipeline.pipeline_status == 2
    stages = pipeline.stage_detail_list.stage_detail_dto
    assert stages and all(s.stage_status == 2 for s in stages)
    assert all(t.task_status == "2" for s in stages for t in s.task_list.task_info_dto)

    app = client.get_k8s_application(tea.GetK8sApplicationRequest(app_id=info.app_id)).body
    assert app.applcation.app.env_list.env[0].name == "GREETING"
    assert app.applcation.app.env_list.env[0].value == "hello"

    listed = client.list_application(tea.ListApplicationRequest()).body
    assert info.app_id in [a.app_id for a in listed.application_list.application]


def test_classic_sdk_creates_deploys_and_reads_the_change_order(edasd):
    client = edasd.classic()
    insert = InsertK8sApplicationRequest()
    insert.set_AppName("classic-app")
    insert.set_ClusterId("local")
    insert.set_ImageUrl("busybox:1.36")
    insert.set_Command("sleep")
    insert.set_CommandArgs('[{"argument":"30"}]')
    insert.set_Replicas(1)
    body = client.call(insert)
    assert_envelope(body)
    app_id = body["ApplicationInfo"]["AppId"]

    def status(order_id):
        request = GetChangeOrderInfoRequest()
        request.set_ChangeOrderId(order_id)
        return client.call(request)["changeOrderInfo"]["Status"]

    assert wait_finished(lambda: status(body["ApplicationInfo"]["ChangeOrderId"])) == 2

    deploy = DeployK8sApplicationRequest()
    deploy.set_AppId(app_id)
    deploy.set_Replicas(2)
    deploy.set_Envs('[{"name":"MODE","value":"classic"}]')
    deploy.set_UpdateStrategy(
        '{"type":"BatchUpdate","batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":0}}')
    deployed = client.call(deploy)
    assert_envelope(deployed)
    order_id = deployed["ChangeOrderId"]
    assert wait_finished(lambda: status(order_id)) == 2

    request = GetChangeOrderInfoRequest()
    request.set_ChangeOrderId(order_id)
    info = client.call(request)["changeOrderInfo"]
    assert info["ChangeOrderId"] == order_id
    assert info["BatchCount"] == 2 and info["BatchType"] == "Automatic"
    pipelines = info["PipelineInfoList"]["PipelineInfo"]
    assert pipelines and pipelines[-1]["PipelineStatus"] == 2
    instances = [
        i for p in pipelines for s in p["StageList"]["StageInfoDTO"]
        for i in s["StageResultDTO"]["InstanceDTOList"]["InstanceDTO"]]
    assert instances, info

    get = GetK8sApplicationRequest()
    get.set_AppId(app_id)
    app = client.call(get)["Applcation"]
    assert app["App"]["Instances"] == 2
    assert app["App"]["EnvList"]["Env"] == [{"Name": "MODE", "Value": "classic"}]

    listed = client.call(ListApplicationRequest())
    assert app_id in [a["AppId"] for a in listed["ApplicationList"]["Application"]]


def test_tea_sdk_legacy_v2_signatures_work_too(edasd):
    """The Tea SDK's `signature_algorithm='v2'` signs with V1 HMAC-SHA1 (and a nonce)."""
    from alibabacloud_edas20170801.client import Client
    from alibabacloud_tea_openapi.models import Config
    from conftest import ADMIN_ID, ADMIN_SECRET
    client = Client(Config(access_key_id=ADMIN_ID, access_key_secret=ADMIN_SECRET,
                           endpoint=edasd.endpoint, protocol="http", signature_algorithm="v2"))
    created = client.insert_k8s_application(tea.InsertK8sApplicationRequest(
        app_name="tea-v2-app", cluster_id="local", image_url="busybox:1.36", replicas=0,
        labels='{"signed":"v2"}'))
    assert_envelope(created.body.to_map())
    app_id = created.body.application_info.app_id
    got = client.get_k8s_application(tea.GetK8sApplicationRequest(app_id=app_id)).body
    assert json.loads(got.applcation.app.labels) == {"signed": "v2"}
    listed = client.list_application(tea.ListApplicationRequest(app_name="tea-v2")).body
    assert [a.app_id for a in listed.application_list.application] == [app_id]
