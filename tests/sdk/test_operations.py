"""Issue 9: the rest of the application API through BOTH official SDKs against the real edasd on
`local` — lifecycle change orders (scale, stop, start, restart, configure, delete) reported to
the end by GetChangeOrderInfo, GetApplication, QueryApplicationStatus, the clusters, and the
ConfigMaps and Secrets (form bodies; JSON-string and flattened `Data`/`Condition`). Each check
reads the response through the keys the SDK models read."""

import json
import time

import pytest
from alibabacloud_edas20170801 import models as tea
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkedas.request.v20170801 import (
    CreateK8sConfigMapRequest, CreateK8sSecretRequest, DeleteK8sApplicationRequest,
    DeleteK8sConfigMapRequest, DeleteK8sSecretRequest, GetApplicationRequest,
    GetChangeOrderInfoRequest, GetK8sClusterRequest, InsertK8sApplicationRequest,
    ListBuildPackRequest, ListClusterRequest, ListK8sConfigMapsRequest, ListK8sNamespacesRequest,
    ListK8sSecretsRequest, QueryApplicationStatusRequest, RestartK8sApplicationRequest,
    ScaleK8sApplicationRequest, StartK8sApplicationRequest, StopK8sApplicationRequest,
    UpdateK8sApplicationConfigRequest, UpdateK8sConfigMapRequest, UpdateK8sSecretRequest)
from Tea.exceptions import TeaException

from conftest import REGION, wait_finished
from test_flow import assert_envelope


def classic_request(module, **params):
    """A classic request object with `set_<Name>(value)` applied for each parameter."""
    request = getattr(module, module.__name__.rsplit(".", 1)[-1])()
    for name, value in params.items():
        getattr(request, f"set_{name}")(value)
    return request


def wait_running(read_count, expected, timeout=60):
    deadline = time.time() + timeout
    count = None
    while time.time() < deadline:
        count = read_count()
        if count == expected:
            return
        time.sleep(0.2)
    raise AssertionError(f"RunningInstanceCount is {count}, not {expected}, after {timeout} s")


# --- Tea SDK -----------------------------------------------------------------------------------

def test_tea_sdk_drives_the_application_lifecycle(edasd):
    client = edasd.tea()
    created = client.insert_k8s_application(tea.InsertK8sApplicationRequest(
        app_name="tea-life", cluster_id="local", image_url="busybox:1.36",
        command="sleep", command_args='[{"argument":"300"}]', replicas=1))
    app_id = created.body.application_info.app_id

    def status(order_id):
        got = client.get_change_order_info(tea.GetChangeOrderInfoRequest(change_order_id=order_id))
        assert got.body.change_order_info.change_order_id == order_id
        return got.body.change_order_info.status

    assert wait_finished(lambda: status(created.body.application_info.change_order_id)) == 2

    def to_the_end(response):
        assert_envelope(response.body.to_map())
        order_id = response.body.change_order_id
        assert order_id
        assert wait_finished(lambda: status(order_id)) == 2
        return order_id

    def running():
        return client.get_application(
            tea.GetApplicationRequest(app_id=app_id)).body.application.running_instance_count

    to_the_end(client.scale_k8s_application(
        tea.ScaleK8sApplicationRequest(app_id=app_id, replicas=2, timeout=120)))
    got = client.get_application(tea.GetApplicationRequest(app_id=app_id)).body
    assert_envelope(got.to_map())
    app = got.application
    assert app.app_id == app_id and app.name == "tea-life"
    assert app.instance_count == 2 and app.cluster_id == "local"
    assert app.app_phase == "ready" and app.region_id == REGION
    wait_running(running, 2)

    st = client.query_application_status(tea.QueryApplicationStatusRequest(app_id=app_id)).body
    assert_envelope(st.to_map())
    assert st.app_info.application.application_id == app_id
    assert st.app_info.application.instance_count == 2
    assert len(st.app_info.ecc_list.ecc) == 2
    assert all(e.app_id == app_id and e.ecc_id for e in st.app_info.ecc_list.ecc)
    assert st.app_info.group_list.group[0].group_type == 0
    assert st.app_info.deploy_record_list.deploy_record

    # The instances one by one, and the history a rollback names (issue 22).
    listed = client.describe_app_instance_list(
        tea.DescribeAppInstanceListRequest(app_id=app_id)).body
    assert_envelope(listed.to_map())
    assert len(listed.instance_list) == 2
    assert all(i.app_id == app_id and i.version == "busybox:1.36" for i in listed.instance_list)
    assert all(json.loads(i.pod_raw)["metadata"]["labels"]["edas.oam.revision"] == "1"
               for i in listed.instance_list)
    history = client.list_history_deploy_version(
        tea.ListHistoryDeployVersionRequest(app_id=app_id)).body
    assert_envelope(history.to_map())
    versions = history.package_version_list.package_version
    assert [v.id for v in versions] == ["2", "1"]
    assert versions[1].package_version == "busybox:1.36" and versions[1].type == "image"

    to_the_end(client.stop_k8s_application(tea.StopK8sApplicationRequest(app_id=app_id)))
    wait_running(running, 0)
    listed = client.list_application(tea.ListApplicationRequest(app_name="tea-life")).body
    assert [a.state for a in listed.application_list.application] == ["STOPPED"]
    to_the_end(client.start_k8s_application(
        tea.StartK8sApplicationRequest(app_id=app_id, timeout=120)))
    wait_running(running, 2)
    to_the_end(client.restart_k8s_application(tea.RestartK8sApplicationRequest(app_id=app_id)))
    to_the_end(client.update_k8s_application_config(tea.UpdateK8sApplicationConfigRequest(
        app_id=app_id, cluster_id="local", memory_limit="256", memory_request="128")))
    assert client.get_application(
        tea.GetApplicationRequest(app_id=app_id)).body.application.memory == 256

    with pytest.raises(TeaException) as refused:
        client.scale_k8s_application(tea.ScaleK8sApplicationRequest(app_id=app_id, replicas=-1))
    assert refused.value.code == "InvalidParameter" and "Replicas" in refused.value.message

    to_the_end(client.delete_k8s_application(
        tea.DeleteK8sApplicationRequest(app_id=app_id, force=True)))
    with pytest.raises(TeaException) as gone:
        client.get_application(tea.GetApplicationRequest(app_id=app_id))
    assert gone.value.code == "InvalidAppId.NotFound"


def test_tea_sdk_reads_clusters_namespaces_and_build_packs(edasd):
    client = edasd.tea()
    page = client.get_k8s_cluster(tea.GetK8sClusterRequest(region_tag=REGION)).body
    assert_envelope(page.to_map())
    clusters = page.cluster_page.cluster_list.cluster
    assert "local" in [c.cluster_id for c in clusters]
    local = next(c for c in clusters if c.cluster_id == "local")
    assert local.cluster_type == 5 and local.region_id == REGION and local.node_num == 1
    assert page.cluster_page.total_size == len(clusters)

    listed = client.list_cluster(tea.ListClusterRequest()).body
    assert_envelope(listed.to_map())
    assert "local" in [c.cluster_id for c in listed.cluster_list.cluster]

    namespaces = client.list_k8s_namespaces(tea.ListK8sNamespacesRequest(cluster_id="local")).body
    assert_envelope(namespaces.to_map())
    assert "default" in [n.namespace for n in namespaces.data]

    packs = client.list_build_pack().body
    assert_envelope(packs.to_map())
    assert packs.build_pack_list.build_pack == []


def test_tea_sdk_manages_config_maps_and_secrets(edasd):
    client = edasd.tea()
    target = dict(cluster_id="local", namespace="default")
    # Tea flattens the dict into `Data.url=…` form fields.
    created = client.create_k8s_config_map(tea.CreateK8sConfigMapRequest(
        name="tea-config", data={"url": "postgres://db", "mode": "tea"}, **target))
    assert_envelope(created.body.to_map())
    client.update_k8s_config_map(tea.UpdateK8sConfigMapRequest(
        name="tea-config", data={"url": "postgres://db2"}, **target))
    listed = client.list_k8s_config_maps(tea.ListK8sConfigMapsRequest(
        condition={"field": "Name", "pattern": "tea-"}, show_related_apps=True, **target)).body
    assert_envelope(listed.to_map())
    assert listed.result.total == 1
    cm = listed.result.config_maps[0]
    assert cm.name == "tea-config" and cm.cluster_id == "local" and cm.namespace == "default"
    assert [(d.key, d.value) for d in cm.data] == [("url", "postgres://db2")]
    assert cm.creation_time.endswith("Z") and cm.related_apps == []

    # A ConfigMap an application uses cannot be deleted; the refusal names the application.
    user = client.insert_k8s_application(tea.InsertK8sApplicationRequest(
        app_name="tea-cm-user", cluster_id="local", image_url="busybox:1.36",
        command="sleep", command_args='[{"argument":"300"}]', replicas=0,
        env_froms='[{"configMapRef":{"name":"tea-config"}}]'))
    with pytest.raises(TeaException) as in_use:
        client.delete_k8s_config_map(tea.DeleteK8sConfigMapRequest(name="tea-config", **target))
    assert in_use.value.code == "OperationDenied.ResourceInUse"
    assert "tea-cm-user" in in_use.value.message
    related = client.list_k8s_config_maps(tea.ListK8sConfigMapsRequest(
        condition={"field": "Name", "pattern": "tea-config"}, show_related_apps=True,
        **target)).body.result.config_maps[0].related_apps
    assert [a.app_name for a in related] == ["tea-cm-user"]
    assert related[0].app_id == user.body.application_info.app_id

    client.create_k8s_config_map(tea.CreateK8sConfigMapRequest(
        name="tea-spare", data={"k": "v"}, **target))
    deleted = client.delete_k8s_config_map(tea.DeleteK8sConfigMapRequest(name="tea-spare", **target))
    assert_envelope(deleted.body.to_map())

    secret = client.create_k8s_secret(tea.CreateK8sSecretRequest(
        name="tea-secret", type="Opaque", data='[{"Key":"password","Value":"s3cr3t"}]', **target))
    assert_envelope(secret.body.to_map())
    client.update_k8s_secret(tea.UpdateK8sSecretRequest(
        name="tea-secret", type="Opaque", data='[{"Key":"password","Value":"n3w"}]', **target))
    secrets = client.list_k8s_secrets(tea.ListK8sSecretsRequest(
        condition='{"field":"Name","pattern":"tea-secret"}', **target)).body
    assert_envelope(secrets.to_map())
    s = secrets.result.secrets[0]
    assert s.name == "tea-secret" and s.type == "Opaque" and s.base_64encoded is False
    assert [(d.key, d.value) for d in s.data] == [("password", "n3w")]
    assert secrets.result.total == 1
    gone = client.delete_k8s_secret(tea.DeleteK8sSecretRequest(name="tea-secret", **target))
    assert_envelope(gone.body.to_map())
    with pytest.raises(TeaException) as missing:
        client.delete_k8s_secret(tea.DeleteK8sSecretRequest(name="tea-secret", **target))
    assert missing.value.code == "EntityNotExist"


# --- classic SDK -------------------------------------------------------------------------------

def test_classic_sdk_drives_the_application_lifecycle(edasd):
    client = edasd.classic()
    body = client.call(classic_request(
        InsertK8sApplicationRequest, AppName="classic-life", ClusterId="local",
        ImageUrl="busybox:1.36", Command="sleep", CommandArgs='[{"argument":"300"}]',
        Replicas=1))
    app_id = body["ApplicationInfo"]["AppId"]

    def status(order_id):
        info = client.call(classic_request(GetChangeOrderInfoRequest, ChangeOrderId=order_id))
        return info["changeOrderInfo"]["Status"]

    assert wait_finished(lambda: status(body["ApplicationInfo"]["ChangeOrderId"])) == 2

    def to_the_end(module, **params):
        response = client.call(classic_request(module, AppId=app_id, **params))
        assert_envelope(response)
        assert wait_finished(lambda: status(response["ChangeOrderId"])) == 2

    def running():
        got = client.call(classic_request(GetApplicationRequest, AppId=app_id))
        return got["Application"]["RunningInstanceCount"]

    to_the_end(ScaleK8sApplicationRequest, Replicas=2, Timeout=120)
    wait_running(running, 2)
    app = client.call(classic_request(GetApplicationRequest, AppId=app_id))["Application"]
    assert app["AppId"] == app_id and app["InstanceCount"] == 2 and app["Name"] == "classic-life"
    st = client.call(classic_request(QueryApplicationStatusRequest, AppId=app_id))["AppInfo"]
    assert st["Application"]["ApplicationId"] == app_id
    assert len(st["EccList"]["Ecc"]) == 2
    assert all(e["AppState"] == 7 for e in st["EccList"]["Ecc"])

    to_the_end(StopK8sApplicationRequest)
    wait_running(running, 0)
    to_the_end(StartK8sApplicationRequest, Replicas=1)
    wait_running(running, 1)
    to_the_end(RestartK8sApplicationRequest, Timeout=120)
    to_the_end(UpdateK8sApplicationConfigRequest, CpuLimit="1", MemoryLimit="256")
    app = client.call(classic_request(GetApplicationRequest, AppId=app_id))["Application"]
    assert app["Memory"] == 256 and app["Cpu"] == 1

    with pytest.raises(ServerException) as refused:
        client.call(classic_request(StopK8sApplicationRequest, AppId="no-such-app"))
    assert refused.value.get_error_code() == "InvalidAppId.NotFound"

    to_the_end(DeleteK8sApplicationRequest, Force=True)
    with pytest.raises(ServerException) as gone:
        client.call(classic_request(GetApplicationRequest, AppId=app_id))
    assert gone.value.get_error_code() == "InvalidAppId.NotFound"


def test_classic_sdk_reads_clusters_namespaces_and_build_packs(edasd):
    client = edasd.classic()
    page = client.call(classic_request(GetK8sClusterRequest, RegionTag=REGION))
    assert_envelope(page)
    clusters = page["ClusterPage"]["ClusterList"]["Cluster"]
    assert "local" in [c["ClusterId"] for c in clusters]
    listed = client.call(classic_request(ListClusterRequest, LogicalRegionId=REGION))
    assert "local" in [c["ClusterId"] for c in listed["ClusterList"]["Cluster"]]
    namespaces = client.call(classic_request(ListK8sNamespacesRequest, ClusterId="local"))
    assert {"Namespace": "default"} in namespaces["Data"]
    packs = client.call(classic_request(ListBuildPackRequest))
    assert packs["BuildPackList"]["BuildPack"] == []
    with pytest.raises(ServerException) as refused:
        client.call(classic_request(ListK8sNamespacesRequest, ClusterId="nope"))
    assert refused.value.get_error_code() == "InvalidParameter"
    assert "ClusterId" in refused.value.get_error_msg()


def test_classic_sdk_manages_config_maps_and_secrets(edasd):
    client = edasd.classic()
    target = dict(ClusterId="local", Namespace="default")
    # The classic SDK sends `Data` and `Condition` as JSON strings in a form body.
    created = client.call(classic_request(
        CreateK8sConfigMapRequest, Name="classic-config",
        Data='[{"Key":"name","Value":"william"},{"Key":"age","Value":"12"}]', **target))
    assert_envelope(created)
    client.call(classic_request(
        UpdateK8sConfigMapRequest, Name="classic-config",
        Data='[{"Key":"name","Value":"bob"}]', **target))
    listed = client.call(classic_request(
        ListK8sConfigMapsRequest, Condition='{"field":"Name","pattern":"classic-"}',
        PageNo=1, PageSize=10, **target))
    assert listed["Result"]["Total"] == 1
    cm = listed["Result"]["ConfigMaps"][0]
    assert cm["Name"] == "classic-config" and cm["Data"] == [{"Key": "name", "Value": "bob"}]
    with pytest.raises(ServerException) as again:
        client.call(classic_request(CreateK8sConfigMapRequest, Name="classic-config",
                                    Data="[]", **target))
    assert again.value.get_error_code() == "EntityAlreadyExists"
    deleted = client.call(classic_request(DeleteK8sConfigMapRequest, Name="classic-config",
                                          **target))
    assert_envelope(deleted)

    client.call(classic_request(
        CreateK8sSecretRequest, Name="classic-secret", Type="Opaque", Base64Encoded=True,
        Data='[{"Key":"password","Value":"czNjcjN0"}]', **target))
    client.call(classic_request(
        UpdateK8sSecretRequest, Name="classic-secret", Type="Opaque",
        Data='[{"Key":"password","Value":"plain"},{"Key":"user","Value":"app"}]', **target))
    secrets = client.call(classic_request(
        ListK8sSecretsRequest, Condition='{"field":"Name","pattern":"classic-secret"}', **target))
    assert secrets["Result"]["Secrets"][0]["Data"] == [
        {"Key": "password", "Value": "plain"}, {"Key": "user", "Value": "app"}]
    with pytest.raises(ServerException) as tls:
        client.call(classic_request(CreateK8sSecretRequest, Name="classic-tls",
                                    Type="kubernetes.io/tls", Data="[]", **target))
    assert tls.value.get_error_code() == "InvalidParameter.NotSupported"
    assert "Type" in tls.value.get_error_msg()
    gone = client.call(classic_request(DeleteK8sSecretRequest, Name="classic-secret", **target))
    assert_envelope(gone)


def test_audit_trail_names_who_did_what(edasd):
    client = edasd.tea()
    created = client.insert_k8s_application(tea.InsertK8sApplicationRequest(
        app_name="audited", cluster_id="local", image_url="busybox:1.36",
        command="sleep", command_args='[{"argument":"300"}]', replicas=0))
    app_id = created.body.application_info.app_id
    trail = edasd.admin("GET", f"/edasd/v1/audit?AppId={app_id}")
    assert trail["Code"] == 200
    records = trail["Records"]
    insert = next(r for r in records if r["Action"] == "InsertK8sApplication")
    assert insert["AppId"] == app_id and insert["RequestId"]
    assert "admin" in insert["Actor"]
    assert json.dumps(insert["Detail"])


def test_tea_legacy_v2_form_bodies_are_refused_because_they_are_not_signed(edasd):
    """Tea's `signature_algorithm='v2'` sends form bodies without Content-MD5, so its signature
    does not cover them: refused with a message saying what to use instead."""
    from alibabacloud_edas20170801.client import Client
    from alibabacloud_tea_openapi.models import Config
    from conftest import ADMIN_ID, ADMIN_SECRET
    client = Client(Config(access_key_id=ADMIN_ID, access_key_secret=ADMIN_SECRET,
                           endpoint=edasd.endpoint, protocol="http", signature_algorithm="v2"))
    with pytest.raises(Exception) as refused:
        client.create_k8s_config_map(tea.CreateK8sConfigMapRequest(
            name="v2-config", data={"a": "b"}, cluster_id="local", namespace="default"))
    assert "IncompleteSignature" in str(refused.value)
    assert "signature_algorithm='v2'" in str(refused.value)
    listed = edasd.tea().list_k8s_config_maps(tea.ListK8sConfigMapsRequest(
        condition={"field": "Name", "pattern": "v2-config"})).body
    assert listed.result.total == 0
