"""Issue 24, `WorkloadType=StatefulSet` through BOTH official SDKs against the real edasd and the
fake Kubernetes API server (`edas-fake-kube`): the Tea SDK inserts a StatefulSet application
(one StatefulSet `<name>` with pods `<name>-0..2` and the headless Service `<name>-headless`),
the classic SDK deploys a new image in a manual gray + batch release whose gray batch runs the
new revision on the highest ordinal (partition 2), confirms the batches, and reads the
application back (`WorkloadType`). On `local` the Tea SDK's insert is refused with
`RuntimeRefused` naming `WorkloadType`, and nothing is stored."""

import json
import os
import tempfile

import pytest
from alibabacloud_edas20170801 import models as tea
from aliyunsdkedas.request.v20170801.ContinuePipelineRequest import ContinuePipelineRequest
from aliyunsdkedas.request.v20170801.DeployK8sApplicationRequest import DeployK8sApplicationRequest
from aliyunsdkedas.request.v20170801.GetK8sApplicationRequest import GetK8sApplicationRequest
from aliyunsdkedas.request.v20170801.ListApplicationRequest import ListApplicationRequest

from conftest import Edasd
from test_ingress import FakeKube
from test_traffic import wait_status

GRAY_MANUAL = json.dumps({"type": "GrayBatchUpdate", "grayUpdate": {"gray": 1},
                          "batchUpdate": {"batch": 2, "releaseType": "manual", "batchWaitTime": 0}})


@pytest.fixture(scope="module")
def kube_edasd():
    """edasd with the fake Kubernetes cluster `fake`."""
    with tempfile.TemporaryDirectory(prefix="edasd-sdk-sts-") as directory:
        # The local runtime's instances (their own users) traverse it to their directories.
        os.chmod(directory, 0o711)
        kube = FakeKube(directory)
        config = f'[[clusters]]\nid = "fake"\nkubeconfig = "{kube.kubeconfig}"\n'
        server = Edasd(os.path.join(directory, "data"), config)
        server.kube = kube
        try:
            yield server
        finally:
            server.stop()
            kube.stop()
            assert server.process.returncode == 0, "".join(server.log[-50:])


def statefulset(kube):
    s = kube.get("/apis/apps/v1/namespaces/default/statefulsets/ledger")
    return (s["spec"]["replicas"], s["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
            s["metadata"]["labels"]["edas.oam.revision"])


def pods_by_revision(kube):
    listed = kube.get("/api/v1/namespaces/default/pods?labelSelector=edas.oam.acname%3Dledger")
    out = {}
    for pod in listed["items"]:
        out.setdefault(pod["metadata"]["labels"]["edas.oam.revision"], []).append(
            pod["metadata"]["name"])
    return {revision: sorted(names) for revision, names in out.items()}


def test_a_statefulset_is_inserted_and_released_by_partition_through_both_sdks(kube_edasd):
    kube = kube_edasd.kube
    created = kube_edasd.tea().insert_k8s_application(tea.InsertK8sApplicationRequest(
        app_name="ledger", cluster_id="fake", image_url="nginx:1.27", replicas=3,
        workload_type="StatefulSet"))
    info = created.body.application_info
    classic = kube_edasd.classic()
    wait_status(classic, info.change_order_id, (2,))
    assert statefulset(kube) == (3, 0, "1")
    headless = kube.get("/api/v1/namespaces/default/services/ledger-headless")
    assert headless["spec"]["clusterIP"] == "None"

    read = GetK8sApplicationRequest()
    read.set_AppId(info.app_id)
    app = classic.call(read)["Applcation"]
    assert app["App"]["WorkloadType"] == "StatefulSet", app["App"]

    deploy = DeployK8sApplicationRequest()
    deploy.set_AppId(info.app_id)
    deploy.set_Image("nginx:1.28")
    deploy.set_UpdateStrategy(GRAY_MANUAL)
    order = classic.call(deploy)["ChangeOrderId"]
    status = wait_status(classic, order, (8,))
    # The gray batch: revision 2 on the highest ordinal, the partition at 2.
    assert statefulset(kube) == (3, 2, "2")
    assert pods_by_revision(kube) == {"1": ["ledger-0", "ledger-1"], "2": ["ledger-2"]}
    while status["Status"] == 8:
        waiting = [p for p in status["PipelineInfoList"]["PipelineInfo"]
                   if p["PipelineStatus"] in (8, 9)]
        assert waiting, status
        request = ContinuePipelineRequest()
        request.set_PipelineId(waiting[0]["PipelineId"])
        request.set_Confirm(True)
        classic.call(request)
        status = wait_status(classic, order, (2, 8))
    assert status["Status"] == 2, status
    assert statefulset(kube) == (3, 0, "2")


def test_local_refuses_a_statefulset_naming_the_parameter(edasd):
    def names():
        listed = edasd.classic().call(ListApplicationRequest())
        return sorted(a["Name"] for a in listed["ApplicationList"]["Application"])

    before = names()
    with pytest.raises(Exception) as info:
        edasd.tea().insert_k8s_application(tea.InsertK8sApplicationRequest(
            app_name="ledger-local", cluster_id="local", command="/bin/true", replicas=1,
            workload_type="StatefulSet"))
    assert info.value.code == "RuntimeRefused", info.value
    assert "WorkloadType" in info.value.message
    assert "stable network identity" in info.value.message
    assert names() == before
