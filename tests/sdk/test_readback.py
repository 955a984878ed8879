"""Every parameter InsertK8sApplication and DeployK8sApplication accept reads back through
GetK8sApplication where its response has a field for it (and, for the rest, through edasd's
extra `Edasd` object, which the SDK models ignore but a raw reader sees)."""

import base64
import json

from alibabacloud_edas20170801 import models as tea
from aliyunsdkedas.request.v20170801.DeployK8sApplicationRequest import DeployK8sApplicationRequest
from aliyunsdkedas.request.v20170801.GetChangeOrderInfoRequest import GetChangeOrderInfoRequest
from aliyunsdkedas.request.v20170801.GetK8sApplicationRequest import GetK8sApplicationRequest
from aliyunsdkedas.request.v20170801.ListApplicationRequest import ListApplicationRequest

from conftest import wait_finished

ENVS = [{"name": "PLAIN", "value": "v"},
        {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]
ENV_FROMS = [{"configMapRef": {"name": "cm"}}]
LIVENESS = {"exec": {"command": ["true"]}, "failureThreshold": 3, "periodSeconds": 10}
READINESS = {"httpGet": {"path": "/ready", "port": 8080}, "initialDelaySeconds": 5}
POST_START = {"exec": {"command": ["echo", "started"]}}
PRE_STOP = {"exec": {"command": ["echo", "stopping"]}}
AFFINITY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
    "nodeSelectorTerms": [{"matchExpressions": [
        {"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}
TOLERATIONS = [{"key": "dedicated", "operator": "Equal", "value": "edas", "effect": "NoSchedule"}]
LOCAL_VOLUME = [{"type": "Directory", "nodePath": "/tmp", "mountPath": "/data"}]
CONFIG_MOUNTS = [{"name": "cm", "type": "ConfigMap", "mountPath": "/etc/app"}]
EMPTY_DIRS = [{"mountPath": "/scratch", "readOnly": False}]
PVC_MOUNTS = [{"pvcName": "pvc-1", "mountPaths": [{"mountPath": "/pv", "readOnly": True}]}]
NFS_MOUNTS = [{"nasPath": "/exports/a", "mountPath": "/nfs"}]
SECURITY_YAML = "runAsUser: 1000\nrunAsNonRoot: true\n"
LABELS = {"team": "payments"}
ANNOTATIONS = {"example.com/owner": "alice"}
SIDECAR_YAML = "name: logger\nimage: busybox:1.36\ncommand: ['sleep', '3600']\n"


def js(value):
    return json.dumps(value)


def b64(text):
    return base64.b64encode(text.encode()).decode()


def get(edasd, app_id):
    request = GetK8sApplicationRequest()
    request.set_AppId(app_id)
    return edasd.classic().call(request)["Applcation"]


def finish(edasd, order_id):
    def status():
        request = GetChangeOrderInfoRequest()
        request.set_ChangeOrderId(order_id)
        return edasd.classic().call(request)["changeOrderInfo"]["Status"]
    wait_finished(status)


def test_insert_and_deploy_parameters_read_back(edasd):
    client = edasd.tea()
    created = client.insert_k8s_application(tea.InsertK8sApplicationRequest(
        app_name="readback", cluster_id="local", namespace="payments",
        logical_region_id="cn-hangzhou", image_url="registry.example.com/team/app:v1",
        repo_id="repo-1", replicas=0, command="/bin/app", command_args=js(
            [{"argument": "--port"}, {"argument": "8080"}]),
        envs=js(ENVS), env_froms=js(ENV_FROMS), labels=js(LABELS), annotations=js(ANNOTATIONS),
        limitm_cpu=1500, requestsm_cpu=250, limit_mem=1024, requests_mem=256,
        limit_ephemeral_storage=4, requests_ephemeral_storage=1,
        liveness=js(LIVENESS), readiness=js(READINESS), post_start=js(POST_START),
        pre_stop=js(PRE_STOP), custom_affinity=js(AFFINITY), custom_tolerations=js(TOLERATIONS),
        deploy_across_nodes="false", deploy_across_zones="false",
        enable_empty_push_reject=True, enable_lossless_rule=True, lossless_rule_aligned=True,
        lossless_rule_delay_time=15, lossless_rule_func_type=3, lossless_rule_related=False,
        lossless_rule_warmup_time=90, runtime_class_name="runc",
        security_context=js({"yamlEncoded": b64(SECURITY_YAML)}), is_multilingual_app=True,
        local_volume=js(LOCAL_VOLUME), config_mount_descs=js(CONFIG_MOUNTS),
        empty_dirs=js(EMPTY_DIRS), pvc_mount_descs=js(PVC_MOUNTS), nas_id="nfs.example.com",
        mount_descs=js(NFS_MOUNTS), storage_type="Performance",
        application_description="read-back test", resource_group_id="rg-1",
        startup=js(LIVENESS), terminate_grace_period=45, image_platforms="linux/amd64",
        secret_name="pull-secret", sidecars=js([{"yamlEncoded": b64(SIDECAR_YAML)}]),
        uri_encoding="UTF-8", timeout=600,
    )).body
    app_id = created.application_info.app_id
    finish(edasd, created.application_info.change_order_id)

    # The Tea SDK's models read every field.
    app = client.get_k8s_application(tea.GetK8sApplicationRequest(app_id=app_id)).body.applcation
    a, c = app.app, app.conf
    assert a.application_name == "readback" and a.cluster_id == "local"
    assert a.k_8s_namespace == "payments" and a.region_id == "cn-hangzhou"
    assert app.image_info.image_url == "registry.example.com/team/app:v1"
    assert app.image_info.tag == "v1" and app.image_info.repo_id == "repo-1"
    assert a.instances == 0
    assert a.cmd == c.k_8s_cmd == "/bin/app"
    assert a.cmd_args.cmd_arg == ["--port", "8080"] and json.loads(c.k_8s_cmd_args) == ["--port", "8080"]
    assert [(e.name, e.value) for e in a.env_list.env] == [("PLAIN", "v")]
    assert json.loads(app.deploy_groups.deploy_group[0].env) == ENVS
    assert json.loads(app.deploy_groups.deploy_group[0].env_from) == ENV_FROMS
    assert json.loads(a.labels) == LABELS and json.loads(a.annotations) == ANNOTATIONS
    assert (a.limit_cpu_m, a.request_cpu_m, a.limit_mem, a.request_mem) == (1500, 250, 1024, 256)
    assert (a.limit_ephemeral_storage, a.request_ephemeral_storage) == ("4", "1")
    assert json.loads(c.liveness) == LIVENESS and json.loads(c.readiness) == READINESS
    assert json.loads(c.post_start) == POST_START and json.loads(c.pre_stop) == PRE_STOP
    assert json.loads(c.affinity) == AFFINITY and json.loads(c.tolerations) == TOLERATIONS
    assert (c.deploy_across_nodes, c.deploy_across_zones) == ("false", "false")
    assert a.enable_empty_push_reject is True and a.enable_lossless_rule is True
    assert (a.lossless_rule_aligned, a.lossless_rule_related) == (True, False)
    assert (a.lossless_rule_delay_time, a.lossless_rule_func_type, a.lossless_rule_warmup_time) == (15, 3, 90)
    assert c.runtime_class_name == "runc"
    assert json.loads(a.security_context) == {"runAsUser": 1000, "runAsNonRoot": True}
    assert a.develop_type == "Multilingual"
    assert json.loads(c.k_8s_localvolume_info) == LOCAL_VOLUME
    volumes = json.loads(c.k_8s_volume_info)
    assert volumes["configMounts"] == CONFIG_MOUNTS
    assert volumes["emptyDirs"] == EMPTY_DIRS and volumes["pvcMounts"] == PVC_MOUNTS
    nas = json.loads(c.k_8s_nas_info)
    assert nas == {"nasId": "nfs.example.com", "storageType": "Performance", "mountDescs": NFS_MOUNTS}

    # Settings without an EDAS field, in the raw response (the classic SDK returns raw JSON).
    extra = get(edasd, app_id)["Edasd"]
    assert extra["Description"] == "read-back test" and extra["ResourceGroupId"] == "rg-1"
    assert extra["Startup"] == LIVENESS and extra["TerminateGracePeriod"] == 45
    assert extra["ImagePlatforms"] == ["linux/amd64"] and extra["ImagePullSecret"] == "pull-secret"
    assert extra["Sidecars"][0]["name"] == "logger" and extra["UriEncoding"] == "UTF-8"
    assert extra["EdasNamespace"] == "cn-hangzhou"
    listed = edasd.classic().call(ListApplicationRequest())["ApplicationList"]["Application"]
    item = next(i for i in listed if i["AppId"] == app_id)
    assert item["NamespaceId"] == "cn-hangzhou" and item["K8sNamespace"] == "payments"
    assert item["ResourceGroupId"] == "rg-1"

    # DeployK8sApplication's own parameter names, through the classic SDK.
    deploy = DeployK8sApplicationRequest()
    deploy.set_AppId(app_id)
    deploy.set_ImageTag("v2")
    deploy.set_Args(js(["--port", "9090"]))
    deploy.set_Command("/bin/app2")
    deploy.set_McpuLimit(2000)
    deploy.set_McpuRequest(500)
    deploy.set_MemoryLimit(2048)
    deploy.set_MemoryRequest(512)
    deploy.set_LimitEphemeralStorage(8)
    deploy.set_RequestsEphemeralStorage(2)
    deploy.set_Envs(js([{"name": "PLAIN", "value": "w"}]))
    deploy.set_EnvFroms(js([{"secretRef": {"name": "sec"}}]))
    deploy.set_Labels(js({"team": "core"}))
    deploy.set_Annotations("{}")
    deploy.set_Liveness("")
    deploy.set_Readiness(js(LIVENESS))
    deploy.set_PostStart("{}")
    deploy.set_PreStop(js(POST_START))
    deploy.set_CustomAffinity("")
    deploy.set_CustomTolerations("[]")
    deploy.set_EnableEmptyPushReject(False)
    deploy.set_EnableLosslessRule(False)
    deploy.set_LosslessRuleDelayTime(5)
    deploy.set_RuntimeClassName("runv")
    deploy.set_SecurityContext(js({"yamlEncoded": b64("runAsUser: 2000\n")})) if hasattr(deploy, "set_SecurityContext") else None
    deploy.set_LocalVolume("[]")
    deploy.set_ConfigMountDescs(js([{"name": "sec", "type": "secret", "mountPath": "/etc/sec"}]))
    deploy.set_EmptyDirs("[]")
    deploy.set_PvcMountDescs("[]")
    deploy.set_MountDescs("[]")
    deploy.set_Replicas(0)
    deploy.set_BatchWaitTime(7)
    deploy.set_ChangeOrderDesc("read-back deploy")
    order_id = edasd.classic().call(deploy)["ChangeOrderId"]
    finish(edasd, order_id)

    raw = get(edasd, app_id)
    a, c = raw["App"], raw["Conf"]
    assert raw["ImageInfo"]["ImageUrl"] == "registry.example.com/team/app:v2"
    assert raw["ImageInfo"]["Tag"] == "v2"
    assert a["CmdArgs"]["CmdArg"] == ["--port", "9090"] and a["Cmd"] == "/bin/app2"
    assert (a["LimitCpuM"], a["RequestCpuM"], a["LimitMem"], a["RequestMem"]) == (2000, 500, 2048, 512)
    assert (a["LimitEphemeralStorage"], a["RequestEphemeralStorage"]) == ("8", "2")
    assert a["EnvList"]["Env"] == [{"Name": "PLAIN", "Value": "w"}]
    assert json.loads(raw["DeployGroups"]["DeployGroup"][0]["EnvFrom"]) == [{"secretRef": {"name": "sec"}}]
    assert json.loads(a["Labels"]) == {"team": "core"} and a["Annotations"] == ""
    assert c["Liveness"] == "" and json.loads(c["Readiness"]) == LIVENESS
    assert c["PostStart"] == "" and json.loads(c["PreStop"]) == POST_START
    assert c["Affinity"] == "" and c["Tolerations"] == ""
    assert a["EnableEmptyPushReject"] is False and a["EnableLosslessRule"] is False
    assert a["LosslessRuleDelayTime"] == 5 and c["RuntimeClassName"] == "runv"
    assert c["K8sLocalvolumeInfo"] == ""
    assert json.loads(c["K8sVolumeInfo"]) == {
        "configMounts": [{"name": "sec", "type": "Secret", "mountPath": "/etc/sec"}],
        "pvcMounts": [], "emptyDirs": []}
    assert raw["Edasd"]["MinReadySeconds"] == 7
    # Unchanged by the deploy: what it did not name.
    assert a["K8sNamespace"] == "payments" and a["LosslessRuleWarmupTime"] == 90

    request = GetChangeOrderInfoRequest()
    request.set_ChangeOrderId(order_id)
    info = edasd.classic().call(request)["changeOrderInfo"]
    assert info["ChangeOrderDescription"] == "read-back deploy"

    # `Image` replaces the whole reference.
    deploy = DeployK8sApplicationRequest()
    deploy.set_AppId(app_id)
    deploy.set_Image("registry.example.com/other/app:v3")
    finish(edasd, edasd.classic().call(deploy)["ChangeOrderId"])
    image = get(edasd, app_id)["ImageInfo"]
    assert (image["ImageUrl"], image["RepoNamespace"], image["RepoName"], image["Tag"]) == (
        "registry.example.com/other/app:v3", "registry.example.com/other", "app", "v3")


def test_package_and_cpu_core_parameters_read_back(edasd):
    client = edasd.tea()
    created = client.insert_k8s_application(tea.InsertK8sApplicationRequest(
        app_name="package-app", cluster_id="local", replicas=0,
        package_url="https://example.com/app-1.0.jar", package_version="1.0",
        jdk="Custom OpenJDK", user_base_image_url="registry.example.com/jdk:17",
        limit_cpu=2, requests_cpu=1,
        java_start_up_config=js({"InitialHeapSize": {"original": 512, "startup": "-Xms512m"}}),
        web_container_config=js({"useDefaultConfig": False, "contextInputType": "root",
                                 "httpPort": 8088}),
    )).body
    app_id = created.application_info.app_id
    finish(edasd, created.application_info.change_order_id)
    raw = get(edasd, app_id)
    assert raw["LatestVersion"] == {"PackageVersion": "1.0", "Url": "https://example.com/app-1.0.jar", "WarUrl": ""}
    assert raw["App"]["ApplicationType"] == "FatJar"
    assert raw["Conf"]["UserBaseImageUrl"] == "registry.example.com/jdk:17"
    assert raw["Edasd"]["Jdk"] == "Custom OpenJDK"
    assert (raw["App"]["LimitCpuM"], raw["App"]["RequestCpuM"]) == (2000, 1000)
    assert "-Xms512m" in raw["Conf"]["JarStartOptions"]
    assert raw["Edasd"]["WebContainerConfig"]["httpPort"] == 8088

    deploy = DeployK8sApplicationRequest()
    deploy.set_AppId(app_id)
    deploy.set_PackageUrl("https://example.com/app-2.0.jar")
    deploy.set_PackageVersion("2.0")
    deploy.set_JDK("Open JDK 8")
    deploy.set_CpuLimit(3)
    deploy.set_CpuRequest(2)
    deploy.set_JavaStartUpConfig(js({"MaxHeapSize": {"original": 1024, "startup": "-Xmx1024m"}}))
    finish(edasd, edasd.classic().call(deploy)["ChangeOrderId"])
    raw = get(edasd, app_id)
    assert raw["LatestVersion"]["PackageVersion"] == "2.0"
    assert raw["LatestVersion"]["Url"] == "https://example.com/app-2.0.jar"
    assert raw["Edasd"]["Jdk"] == "Open JDK 8"
    assert (raw["App"]["LimitCpuM"], raw["App"]["RequestCpuM"]) == (3000, 2000)
    # JavaStartUpConfig is replaced; WebContainerConfig (not redeployed) is kept.
    assert raw["Conf"]["JarStartOptions"].split() == [
        "-Xmx1024m", "-Dserver.port=8088", "-Dserver.servlet.context-path=/"]
