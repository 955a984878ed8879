"""Every signature failure and an unauthorised user are refused with the matching code and
HTTP status by both SDKs, and nothing is stored; invalid parameters name the parameter."""

import json

import pytest
from alibabacloud_edas20170801 import models as tea
from alibabacloud_tea_openapi.utils import Utils as TeaUtils
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.utils import parameter_helper
from aliyunsdkedas.request.v20170801.DeployK8sApplicationRequest import DeployK8sApplicationRequest
from aliyunsdkedas.request.v20170801.GetK8sApplicationRequest import GetK8sApplicationRequest
from aliyunsdkedas.request.v20170801.InsertK8sApplicationRequest import InsertK8sApplicationRequest
from aliyunsdkedas.request.v20170801.ListApplicationRequest import ListApplicationRequest

from conftest import wait_finished

STALE_HTTP_DATE = "Thu, 01 Jan 2026 00:00:00 GMT"
STALE_ISO_DATE = "2026-01-01T00:00:00Z"


def tea_error(call):
    """Runs a Tea SDK call that must fail; returns (HTTP status, Code, Message)."""
    with pytest.raises(Exception) as info:
        call()
    e = info.value
    status = getattr(e, "status_code", None) or (getattr(e, "data", None) or {}).get("statusCode")
    return status, e.code, e.message


def classic_error(client, request):
    with pytest.raises(ServerException) as info:
        client.call(request)
    e = info.value
    return e.get_http_status(), e.get_error_code(), e.get_error_msg()


def tea_insert(name):
    return tea.InsertK8sApplicationRequest(
        app_name=name, cluster_id="local", image_url="busybox:1.36", replicas=0)


def classic_insert(name):
    request = InsertK8sApplicationRequest()
    request.set_AppName(name)
    request.set_ClusterId("local")
    request.set_ImageUrl("busybox:1.36")
    request.set_Replicas(0)
    return request


def app_names(edasd):
    listed = edasd.classic().call(ListApplicationRequest())
    return sorted(a["Name"] for a in listed["ApplicationList"]["Application"])


@pytest.fixture
def unchanged(edasd):
    """Asserts that the test stored no application."""
    before = app_names(edasd)
    yield
    assert app_names(edasd) == before, "a refused request stored an application"


def test_wrong_secret(edasd, unchanged):
    status, code, message = tea_error(
        lambda: edasd.tea(secret="wrong-secret").insert_k8s_application(tea_insert("wrong1")))
    assert (status, code) == (400, "SignatureDoesNotMatch"), message
    status, code, _ = classic_error(edasd.classic(secret="wrong-secret"), classic_insert("wrong2"))
    # The classic SDK compares the server's string-to-sign with its own and, when they are equal
    # (only the secret differs), reports the clearer InvalidAccessKeySecret.
    assert status == 400 and code in ("SignatureDoesNotMatch", "InvalidAccessKeySecret")


def test_unknown_key(edasd, unchanged):
    status, code, message = tea_error(
        lambda: edasd.tea(key_id="LTAInobody", secret="x" * 20).insert_k8s_application(
            tea_insert("nokey1")))
    assert (status, code) == (404, "InvalidAccessKeyId.NotFound"), message
    assert "LTAInobody" in message
    status, code, _ = classic_error(edasd.classic(key_id="LTAInobody", secret="x" * 20),
                                    classic_insert("nokey2"))
    assert (status, code) == (404, "InvalidAccessKeyId.NotFound")


def test_stale_date(edasd, unchanged, monkeypatch):
    monkeypatch.setattr(TeaUtils, "get_timestamp", staticmethod(lambda: STALE_ISO_DATE))
    status, code, message = tea_error(
        lambda: edasd.tea().insert_k8s_application(tea_insert("stale1")))
    assert (status, code) == (400, "IllegalTimestamp"), message
    monkeypatch.setattr(parameter_helper, "get_rfc_2616_date", lambda: STALE_HTTP_DATE)
    status, code, message = classic_error(edasd.classic(), classic_insert("stale2"))
    assert (status, code) == (400, "IllegalTimestamp"), message


def test_replayed_nonce(edasd, unchanged, monkeypatch):
    client = edasd.tea()
    monkeypatch.setattr(TeaUtils, "get_nonce", staticmethod(lambda: "the-same-nonce-every-time"))
    # The first use of the nonce is accepted (a read), the second refused.
    client.list_application(tea.ListApplicationRequest())
    status, code, message = tea_error(lambda: client.insert_k8s_application(tea_insert("replay1")))
    assert (status, code) == (400, "SignatureNonceUsed"), message
    # The classic SDK sends no nonce of its own; one added as an x-acs- header is signed and checked.
    classic = edasd.classic()
    first = ListApplicationRequest()
    first.add_header("x-acs-signature-nonce", "classic-fixed-nonce")
    classic.call(first)
    again = classic_insert("replay2")
    again.add_header("x-acs-signature-nonce", "classic-fixed-nonce")
    status, code, _ = classic_error(classic, again)
    assert (status, code) == (400, "SignatureNonceUsed")


def test_sts_tokens_are_refused(edasd, unchanged):
    from alibabacloud_edas20170801.client import Client
    from alibabacloud_tea_openapi.models import Config
    from conftest import ADMIN_ID, ADMIN_SECRET
    client = Client(Config(access_key_id=ADMIN_ID, access_key_secret=ADMIN_SECRET,
                           security_token="sts-token", endpoint=edasd.endpoint, protocol="http"))
    status, code, _ = tea_error(lambda: client.insert_k8s_application(tea_insert("sts")))
    assert (status, code) == (400, "InvalidSecurityToken.NotSupported")


def test_user_without_a_policy(edasd):
    admin = edasd.classic()
    created = admin.call(classic_insert("guarded"))
    app_id = created["ApplicationInfo"]["AppId"]
    edasd.admin("POST", "/edasd/v1/users", {"Name": "dave"})
    key = edasd.admin("POST", "/edasd/v1/users/dave/keys")["AccessKey"]
    dave_tea = edasd.tea(key["AccessKeyId"], key["AccessKeySecret"])
    dave_classic = edasd.classic(key["AccessKeyId"], key["AccessKeySecret"])

    def spec():
        request = GetK8sApplicationRequest()
        request.set_AppId(app_id)
        return admin.call(request)["Applcation"]

    before = spec()
    names = app_names(edasd)
    status, code, message = tea_error(lambda: dave_tea.deploy_k8s_application(
        tea.DeployK8sApplicationRequest(app_id=app_id, replicas=3)))
    assert (status, code) == (401, "AUTH_ERROR"), message
    assert "edas:ManageApplication" in message
    deploy = DeployK8sApplicationRequest()
    deploy.set_AppId(app_id)
    deploy.set_Replicas(3)
    status, code, _ = classic_error(dave_classic, deploy)
    assert (status, code) == (401, "AUTH_ERROR")
    status, code, _ = tea_error(lambda: dave_tea.insert_k8s_application(tea_insert("daves")))
    assert (status, code) == (401, "AUTH_ERROR")
    assert spec() == before and app_names(edasd) == names

    # With a read-only policy, dave reads but still cannot deploy.
    edasd.admin("PUT", "/edasd/v1/policies/readonly", {"Document": {"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "edas:ReadApplication", "Resource": "acs:edas:*:*:namespace/*"}]}})
    edasd.admin("PUT", "/edasd/v1/users/dave/policies/readonly")
    got = dave_tea.get_k8s_application(tea.GetK8sApplicationRequest(app_id=app_id)).body
    assert got.applcation.app_id == app_id
    status, code, _ = tea_error(lambda: dave_tea.deploy_k8s_application(
        tea.DeployK8sApplicationRequest(app_id=app_id, replicas=3)))
    assert (status, code) == (401, "AUTH_ERROR")
    assert spec() == before


def test_unsupported_operation_and_unknown_path(edasd):
    status, code, message = tea_error(
        lambda: edasd.tea().insert_cluster(tea.InsertClusterRequest(cluster_name="c1")))
    assert (status, code) == (501, "UnsupportedOperation")
    assert "InsertCluster is not supported by this server" in message


def test_invalid_deploy_names_the_parameter_and_changes_nothing(edasd):
    admin = edasd.classic()
    created = admin.call(classic_insert("strict"))
    app_id = created["ApplicationInfo"]["AppId"]
    tea_client = edasd.tea()

    def order_status(order_id):
        return tea_client.get_change_order_info(
            tea.GetChangeOrderInfoRequest(change_order_id=order_id)).body.change_order_info.status

    wait_finished(lambda: order_status(created["ApplicationInfo"]["ChangeOrderId"]))

    def spec():
        request = GetK8sApplicationRequest()
        request.set_AppId(app_id)
        return admin.call(request)["Applcation"]

    before = spec()
    status, code, message = tea_error(lambda: tea_client.deploy_k8s_application(
        tea.DeployK8sApplicationRequest(app_id=app_id, envs='[{"name": "A", "value": 1}')))
    assert status == 400 and code == "InvalidParameter", (status, code, message)
    assert "Envs" in message
    deploy = DeployK8sApplicationRequest()
    deploy.set_AppId(app_id)
    deploy.set_Envs('{"name": "not-an-array"}')
    status, code, message = classic_error(admin, deploy)
    assert 400 <= status < 500 and "Envs" in message, (status, code, message)
    assert spec() == before
