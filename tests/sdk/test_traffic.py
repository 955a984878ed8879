"""A lossless gray release on the built-in cluster `local`, driven by BOTH official SDKs, while a
client sends requests through the application's Service the whole time.

The application is the workspace binary `edas-testapp` (it answers `version=<APP_VERSION>
instance=<name>` and has a `/ready` endpoint); each test tags its instances with a unique
argument so they can be killed when the test ends (instances outlive edasd by design).
"""

import json
import os
import signal
import socket
import threading
import time
import uuid
import http.client
from pathlib import Path

import pytest
from alibabacloud_edas20170801 import models as tea
from aliyunsdkedas.request.v20170801.ContinuePipelineRequest import ContinuePipelineRequest
from aliyunsdkedas.request.v20170801.CreateK8sServiceRequest import CreateK8sServiceRequest
from aliyunsdkedas.request.v20170801.GetChangeOrderInfoRequest import GetChangeOrderInfoRequest
from aliyunsdkedas.request.v20170801.GetK8sServicesRequest import GetK8sServicesRequest

from conftest import REPO

TESTAPP = os.environ.get("EDAS_TESTAPP_BIN", str(REPO / "target" / "debug" / "edas-testapp"))
READINESS = json.dumps({"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1})
GRAY_THEN_TWO_MANUAL_BATCHES = json.dumps({
    "type": "GrayBatchUpdate",
    "batchUpdate": {"batch": 2, "releaseType": "manual", "batchWaitTime": 0},
    "grayUpdate": {"gray": 1},
})
TWENTY_PERCENT = json.dumps({"http": {"rules": [{"conditionType": "percent", "percent": 20}]}})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_version(port):
    """One GET / through the service port on a new connection: the version, or raises."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read().decode()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body.strip()}")
        return body.split()[0].removeprefix("version=")
    finally:
        conn.close()


class Client(threading.Thread):
    """Sends requests through the service port back to back until stopped; records every
    answer's version and every failure."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.versions = []
        self.failures = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.versions.append(get_version(self.port))
            except Exception as e:  # noqa: BLE001 - every failure counts
                self.failures.append(repr(e))

    def stop(self):
        self.halt.set()
        self.join(10)


class Tag(str):
    """The unique argument of a test's instances, and the applications created with it (each
    with the edasd that runs it)."""

    apps: list


@pytest.fixture
def tag():
    """A unique argument of the test's instances. When the test ends its applications are
    deleted (so edasd's supervisor stops restarting their instances), then any process still
    carrying the argument is killed: instances outlive edasd by design, and a kill alone raced
    with a restart and left one running after the run."""
    value = Tag(f"edasd-sdk-traffic-{uuid.uuid4().hex[:12]}")
    value.apps = []
    yield value
    for server, app_id in value.apps:
        try:
            deleted = server.tea().delete_k8s_application(
                tea.DeleteK8sApplicationRequest(app_id=app_id, force=True))
            order_id = deleted.body.change_order_id
            if order_id:
                wait_status(server.classic(), order_id, (2,), timeout=30)
        except Exception:  # the kill below still runs
            pass
    # The deletion's sweep stops the instances; whatever still carries the tag is killed, and
    # the scan repeats until it finds nothing twice in a row (a restart racing the kill).
    deadline = time.monotonic() + 20
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        found = _tagged(value)
        for pid in found:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        quiet = 0 if found else quiet + 1


def _tagged(value):
    """The processes whose arguments include `value`."""
    pids = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            args = (pid_dir / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if value.encode() in args:
            pids.append(int(pid_dir.name))
    return pids


def envs(version, **extra):
    pairs = {"APP_VERSION": version, **extra}
    return json.dumps([{"name": k, "value": v} for k, v in pairs.items()])


def classic_status(classic, order_id):
    request = GetChangeOrderInfoRequest()
    request.set_ChangeOrderId(order_id)
    return classic.call(request)["changeOrderInfo"]


def wait_status(classic, order_id, wanted, timeout=60):
    deadline = time.time() + timeout
    info = None
    while time.time() < deadline:
        info = classic_status(classic, order_id)
        if info["Status"] in wanted:
            return info
        assert info["Status"] in (0, 1, 8, 9), info
        time.sleep(0.1)
    raise AssertionError(f"change order {order_id} not in {wanted} after {timeout} s: {info}")


def create_app(edasd, tag, name):
    """InsertK8sApplication (Tea SDK): 3 instances of v1 with a readiness probe; waits for it."""
    tea_client = edasd.tea()
    created = tea_client.insert_k8s_application(tea.InsertK8sApplicationRequest(
        app_name=name, cluster_id="local", image_url="edas-testapp:v1",
        command=TESTAPP, command_args=json.dumps([{"argument": tag}]),
        envs=envs("v1"), readiness=READINESS, replicas=3))
    info = created.body.application_info
    tag.apps.append((edasd, info.app_id))
    wait_status(edasd.classic(), info.change_order_id, (2,))
    return info.app_id


def create_service(edasd, app_id, port):
    """CreateK8sService (classic SDK); waits for its change order."""
    classic = edasd.classic()
    request = CreateK8sServiceRequest()
    request.set_AppId(app_id)
    request.set_Name("web")
    request.set_Type("ClusterIP")
    request.set_ServicePorts(json.dumps([{"protocol": "TCP", "port": port, "targetPort": 8080}]))
    body = classic.call(request)
    assert body["Code"] == 200 and body["ChangeOrderId"], body
    wait_status(classic, body["ChangeOrderId"], (2,))
    listed = classic.call(_get_services(app_id))
    assert listed["Services"][0]["ServicePorts"][0]["Port"] == port, listed


def _get_services(app_id):
    request = GetK8sServicesRequest()
    request.set_AppId(app_id)
    return request


def test_a_gray_release_with_traffic_control_loses_no_request(edasd, tag):
    app_id = create_app(edasd, tag, "gray-traffic")
    port = free_port()
    create_service(edasd, app_id, port)
    assert get_version(port) == "v1"

    client = Client(port)
    client.start()
    try:
        deployed = edasd.tea().deploy_k8s_application(tea.DeployK8sApplicationRequest(
            app_id=app_id, image="edas-testapp:v2", envs=envs("v2"),
            update_strategy=GRAY_THEN_TWO_MANUAL_BATCHES,
            traffic_control_strategy=TWENTY_PERCENT))
        order_id = deployed.body.change_order_id
        classic = edasd.classic()
        info = wait_status(classic, order_id, (8,))

        # The gray batch is done: 20 % of the requests reach the gray instance.
        versions = [get_version(port) for _ in range(1000)]
        share = versions.count("v2") / len(versions)
        print(f"gray share over {len(versions)} requests: {share:.3f}")
        assert 0.15 <= share <= 0.25, f"gray share {share:.3f}"
        assert set(versions) == {"v1", "v2"}

        # Confirm each waiting batch until the release is done.
        while info["Status"] == 8:
            waiting = [p for p in info["PipelineInfoList"]["PipelineInfo"]
                       if p["PipelineStatus"] in (8, 9)]
            assert waiting, info
            request = ContinuePipelineRequest()
            request.set_PipelineId(waiting[0]["PipelineId"])
            request.set_Confirm(True)
            classic.call(request)
            info = wait_status(classic, order_id, (2, 8))
        assert info["Status"] == 2, info
    finally:
        client.stop()
    assert not client.failures, f"{len(client.failures)} failed: {client.failures[:5]}"
    print(f"continuous client: {len(client.versions)} answers, {len(client.failures)} failures")
    assert len(client.versions) > 200, len(client.versions)
    assert [get_version(port) for _ in range(30)] == ["v2"] * 30


def test_a_release_that_never_becomes_ready_fails_while_the_old_version_serves(edasd, tag):
    app_id = create_app(edasd, tag, "never-ready")
    port = free_port()
    create_service(edasd, app_id, port)

    client = Client(port)
    client.start()
    try:
        deployed = edasd.tea().deploy_k8s_application(tea.DeployK8sApplicationRequest(
            app_id=app_id, image="edas-testapp:v2", envs=envs("v2", NEVER_READY="1"),
            batch_timeout=4))
        info = wait_status(edasd.classic(), deployed.body.change_order_id, (3,))
        assert "timeout" in json.dumps(info).lower(), info
        time.sleep(0.5)
    finally:
        client.stop()
    assert not client.failures, f"{len(client.failures)} failed: {client.failures[:5]}"
    print(f"continuous client: {len(client.versions)} answers, {len(client.failures)} failures")
    assert len(client.versions) > 100, len(client.versions)
    assert set(client.versions) == {"v1"}
