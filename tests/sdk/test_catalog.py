"""Issue 24: EDAS namespaces (InsertOrUpdateRegion, ListUserDefineRegion,
DeleteUserDefineRegion), applications' base information (UpdateK8sApplicationBaseInfo,
UpdateApplicationBaseInfo), GetAppDeployment and tags (TagResources, UntagResources, ListTagResources, and the
`Tags` filter of ListApplication) through BOTH official SDKs against the real edasd. Every
answer is read through the keys the SDK models read."""

import json

import pytest
from alibabacloud_edas20170801 import models as tea
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkedas.request.v20170801 import (
    DeleteUserDefineRegionRequest, GetAppDeploymentRequest, GetApplicationRequest, InsertK8sApplicationRequest,
    InsertOrUpdateRegionRequest, ListApplicationRequest, ListTagResourcesRequest,
    ListUserDefineRegionRequest, TagResourcesRequest, UntagResourcesRequest,
    UpdateApplicationBaseInfoRequest, UpdateK8sApplicationBaseInfoRequest)
from Tea.exceptions import TeaException

from conftest import REGION
from test_flow import assert_envelope
from test_operations import classic_request


def insert_app(client, name, namespace=None):
    request = tea.InsertK8sApplicationRequest(
        app_name=name, cluster_id="local", image_url="busybox:1.36", command="sleep",
        command_args='[{"argument":"300"}]', replicas=0)
    if namespace:
        request.logical_region_id = namespace
    return client.insert_k8s_application(request).body.application_info.app_id


def test_tea_sdk_manages_namespaces(edasd):
    client = edasd.tea()
    created = client.insert_or_update_region(tea.InsertOrUpdateRegionRequest(
        region_tag=f"{REGION}:tea", region_name="Tea", description="by the Tea SDK",
        debug_enable=True)).body
    assert_envelope(created.to_map())
    entity = created.user_define_region_entity
    assert entity.region_id == f"{REGION}:tea" and entity.region_name == "Tea"
    assert entity.belong_region == REGION and entity.debug_enable is True and entity.id > 0

    changed = client.insert_or_update_region(tea.InsertOrUpdateRegionRequest(
        id=entity.id, region_tag=f"{REGION}:tea", region_name="Tea renamed")).body
    assert changed.user_define_region_entity.region_name == "Tea renamed"
    assert changed.user_define_region_entity.description == "by the Tea SDK", "kept"

    listed = client.list_user_define_region(tea.ListUserDefineRegionRequest()).body
    tags = [e.region_id for e in listed.user_define_region_list.user_define_region_entity]
    assert tags[0] == REGION and f"{REGION}:tea" in tags
    only_debug = client.list_user_define_region(
        tea.ListUserDefineRegionRequest(debug_enable=True)).body
    assert [e.region_id for e in only_debug.user_define_region_list.user_define_region_entity] \
        == [f"{REGION}:tea"]

    # An application in it keeps it; the refusal names the application.
    app_id = insert_app(client, "tea-ns-user", f"{REGION}:tea")
    with pytest.raises(TeaException) as refused:
        client.delete_user_define_region(tea.DeleteUserDefineRegionRequest(id=entity.id))
    assert refused.value.code == "OperationDenied.ResourceInUse"
    assert "tea-ns-user" in refused.value.message and app_id in refused.value.message
    client.delete_k8s_application(tea.DeleteK8sApplicationRequest(app_id=app_id, force=True))

    gone = client.delete_user_define_region(
        tea.DeleteUserDefineRegionRequest(region_tag=f"{REGION}:tea")).body
    assert gone.region_define.id == entity.id and gone.region_define.region_name == "Tea renamed"
    with pytest.raises(TeaException) as unknown:
        client.insert_k8s_application(tea.InsertK8sApplicationRequest(
            app_name="tea-ns-late", cluster_id="local", image_url="busybox:1.36",
            logical_region_id=f"{REGION}:tea"))
    assert unknown.value.code == "InvalidParameter" and "LogicalRegionId" in unknown.value.message

    for bad, code in [
        (tea.InsertOrUpdateRegionRequest(region_tag="eu-west-1:x", region_name="X"), "InvalidParameter"),
        (tea.InsertOrUpdateRegionRequest(region_tag=REGION, region_name="X"), "InvalidParameter"),
        (tea.InsertOrUpdateRegionRequest(region_tag=f"{REGION}:m", region_name="M",
                                         registry_type="exclusive_mse"), "InvalidParameter.NotSupported"),
    ]:
        with pytest.raises(TeaException) as err:
            client.insert_or_update_region(bad)
        assert err.value.code == code, err.value.message


def test_classic_sdk_manages_namespaces(edasd):
    client = edasd.classic()
    created = client.call(classic_request(
        InsertOrUpdateRegionRequest, RegionTag=f"{REGION}:classic", RegionName="Classic",
        Description="by the classic SDK"))
    assert_envelope(created)
    entity = created["UserDefineRegionEntity"]
    assert entity["RegionId"] == f"{REGION}:classic" and entity["UserId"]
    with pytest.raises(ServerException) as twice:
        client.call(classic_request(
            InsertOrUpdateRegionRequest, RegionTag=f"{REGION}:classic", RegionName="Again"))
    assert twice.value.get_error_code() == "EntityAlreadyExists"
    listed = client.call(classic_request(ListUserDefineRegionRequest))
    entities = listed["UserDefineRegionList"]["UserDefineRegionEntity"]
    assert any(e["RegionId"] == f"{REGION}:classic" for e in entities)
    gone = client.call(classic_request(DeleteUserDefineRegionRequest, Id=entity["Id"]))
    assert gone["RegionDefine"]["RegionId"] == f"{REGION}:classic"
    with pytest.raises(ServerException) as again:
        client.call(classic_request(DeleteUserDefineRegionRequest, Id=entity["Id"]))
    assert again.value.get_error_code() == "EntityNotExist"


def test_both_sdks_update_base_info(edasd):
    client = edasd.tea()
    app_id = insert_app(client, "base-info")
    result = client.update_k8s_application_base_info(tea.UpdateK8sApplicationBaseInfoRequest(
        app_id=app_id, description="the shop", owner="alice", email="alice@example.com",
        phone_number="+86 571 0000")).body
    assert_envelope(result.to_map())
    assert "Owner" in result.result
    app = client.get_application(tea.GetApplicationRequest(app_id=app_id)).body.application
    assert (app.description, app.owner, app.email) == ("the shop", "alice", "alice@example.com")
    with pytest.raises(TeaException) as bad:
        client.update_k8s_application_base_info(tea.UpdateK8sApplicationBaseInfoRequest(
            app_id=app_id, email="nobody", phone_number="call me"))
    assert bad.value.code == "InvalidParameter"
    assert "Email" in bad.value.message and "PhoneNumber" in bad.value.message

    classic = edasd.classic()
    updated = classic.call(classic_request(
        UpdateApplicationBaseInfoRequest, AppId=app_id, AppName="base-info", Desc="renewed",
        Owner="bob"))
    assert_envelope(updated)
    assert updated["Applcation"]["Description"] == "renewed"
    assert updated["Applcation"]["Owner"] == "bob" and updated["Applcation"]["AppId"] == app_id
    with pytest.raises(ServerException) as rename:
        classic.call(classic_request(UpdateApplicationBaseInfoRequest, AppId=app_id, AppName="other"))
    assert rename.value.get_error_code() == "InvalidParameter.NotSupported"
    got = classic.call(classic_request(GetApplicationRequest, AppId=app_id))["Application"]
    assert (got["Description"], got["Owner"], got["Email"]) == ("renewed", "bob", "alice@example.com")
    tea_update = client.update_application_base_info(tea.UpdateApplicationBaseInfoRequest(
        app_id=app_id, desc="by tea")).body
    assert tea_update.applcation.description == "by tea" and tea_update.applcation.owner == "bob"
    classic_result = classic.call(classic_request(
        UpdateK8sApplicationBaseInfoRequest, AppId=app_id, PhoneNumber="12345"))
    assert "PhoneNumber" in classic_result["Result"]

    # GetAppDeployment: `local` runs processes, not Deployments (the Kubernetes answer is in
    # crates/edasd/tests/kube_precheck.rs).
    with pytest.raises(TeaException) as no_deployment:
        client.get_app_deployment(tea.GetAppDeploymentRequest(app_id=app_id))
    assert no_deployment.value.code == "RuntimeRefused"
    assert "not Kubernetes Deployments" in no_deployment.value.message
    with pytest.raises(ServerException) as classic_refused:
        classic.call(classic_request(GetAppDeploymentRequest, AppId=app_id))
    assert classic_refused.value.get_error_code() == "RuntimeRefused"


def test_both_sdks_tag_and_filter(edasd):
    client = edasd.tea()
    first = insert_app(client, "tagged-one")
    second = insert_app(client, "tagged-two")
    client.tag_resources(tea.TagResourcesRequest(
        resource_region_id=REGION, resource_type="application",
        resource_ids=json.dumps([first, second]),
        tags=json.dumps([{"key": "env", "value": "prod"}])))
    classic = edasd.classic()
    assert_envelope(classic.call(classic_request(
        TagResourcesRequest, ResourceRegionId=REGION, ResourceType="application",
        ResourceIds=json.dumps([first]), Tags=json.dumps([{"key": "team", "value": "a"}]))))
    classic.call(classic_request(
        TagResourcesRequest, ResourceRegionId=REGION, ResourceType="cluster",
        ResourceIds=json.dumps(["local"]), Tags=json.dumps([{"key": "site", "value": "lab"}])))

    # Tea's ListTagResources takes dicts (flattened on the wire) or JSON strings.
    listed = client.list_tag_resources(tea.ListTagResourcesRequest(
        resource_region_id=REGION, resource_type="application",
        resource_ids=[first, second])).body
    rows = {(r.resource_id, r.tag_key, r.tag_value) for r in listed.tag_resources.tag_resource}
    assert rows == {(first, "env", "prod"), (first, "team", "a"), (second, "env", "prod")}
    by_tag = client.list_tag_resources(tea.ListTagResourcesRequest(
        resource_region_id=REGION, resource_type="application",
        tags={"team": "a"})).body
    assert {r.resource_id for r in by_tag.tag_resources.tag_resource} == {first}
    clusters = classic.call(classic_request(
        ListTagResourcesRequest, ResourceRegionId=REGION, ResourceType="cluster",
        ResourceIds=json.dumps(["local"])))
    assert clusters["TagResources"]["TagResource"] == [
        {"ResourceId": "local", "ResourceType": "cluster", "TagKey": "site", "TagValue": "lab"}]

    # ListApplication's Tags (edasd's filter).
    filtered = classic.call(classic_request(ListApplicationRequest))
    assert {first, second} <= {a["AppId"] for a in filtered["ApplicationList"]["Application"]}
    request = classic_request(ListApplicationRequest)
    request.add_query_param("Tags", json.dumps([{"key": "team", "value": "a"}]))
    only_first = classic.call(request)
    assert [a["AppId"] for a in only_first["ApplicationList"]["Application"]] == [first]

    with pytest.raises(ServerException) as nothing:
        classic.call(classic_request(
            UntagResourcesRequest, ResourceRegionId=REGION, ResourceType="application",
            ResourceIds=json.dumps([first])))
    assert nothing.value.get_error_code() == "InvalidParameter"
    assert "DeleteAll" in nothing.value.get_error_msg()
    client.untag_resources(tea.UntagResourcesRequest(
        resource_region_id=REGION, resource_type="application",
        resource_ids=json.dumps([first, second]), tag_keys=json.dumps(["env"])))
    classic.call(classic_request(
        UntagResourcesRequest, ResourceRegionId=REGION, ResourceType="application",
        ResourceIds=json.dumps([first]), DeleteAll=True))
    left = client.list_tag_resources(tea.ListTagResourcesRequest(
        resource_region_id=REGION, resource_type="application",
        resource_ids=json.dumps([first, second]))).body
    assert left.tag_resources.tag_resource == []

    for bad in [
        tea.TagResourcesRequest(resource_region_id=REGION, resource_type="application",
                                resource_ids=json.dumps([first]),
                                tags=json.dumps([{"key": "aliyun-x", "value": "v"}])),
        tea.TagResourcesRequest(resource_region_id="eu-west-1", resource_type="application",
                                resource_ids=json.dumps([first]),
                                tags=json.dumps([{"key": "k", "value": "v"}])),
        tea.TagResourcesRequest(resource_region_id=REGION, resource_type="vpc",
                                resource_ids=json.dumps([first]),
                                tags=json.dumps([{"key": "k", "value": "v"}])),
    ]:
        with pytest.raises(TeaException) as err:
            client.tag_resources(bad)
        assert err.value.code == "InvalidParameter", err.value.message
